#!/usr/bin/env bash
# Copies what a finished experiment folder needs to be read and redrawn into experiments/<name>/:
# the config, the summary tables and figures, the censoring report and every run's result.json
# (the per-epoch histories stay behind: they are large and rebuilt by rerunning), and the saved
# networks (network.safetensors) only when all of the experiment's together stay under a cap,
# 8 MiB by default (REALBIAS_NETWORK_CAP_MIB): Figure 2's 350 networks are about 190 MB, too
# much for git; an experiment's networks are committed all or none.
#   scripts/export-experiment.sh runs/fig2-mnist
set -euo pipefail
src=${1:?usage: $0 RUN_FOLDER}
name=$(basename "$src")
dst="$(dirname "$0")/../experiments/$name"
mkdir -p "$dst"
for f in experiment.toml summary.csv report.md weight-decay-grid.csv errors.png errors.svg norms.png norms.svg measures.csv measures.md measures.png measures.svg paired.csv paired.md vary.png vary.svg; do
    [ -f "$src/$f" ] && cp "$src/$f" "$dst/"
done
(cd "$src" && find . -name result.json -o -name censor.json -o -name key.toml) | while read -r f; do
    mkdir -p "$dst/$(dirname "$f")"
    cp "$src/$f" "$dst/$f"
done
cap_mib=${REALBIAS_NETWORK_CAP_MIB:-8}
bytes=$( (cd "$src" && find . -name network.safetensors -printf '%s\n') | awk '{s += $1} END {print s + 0}')
count=$( (cd "$src" && find . -name network.safetensors) | wc -l)
if [ "$count" -gt 0 ] && [ "$bytes" -le $((cap_mib * 1024 * 1024)) ]; then
    (cd "$src" && find . -name network.safetensors) | while read -r f; do cp "$src/$f" "$dst/$f"; done
    echo "networks: all $count exported ($((bytes / 1024)) KiB)"
elif [ "$count" -gt 0 ]; then
    echo "networks: none exported ($count networks, $((bytes / 1024 / 1024)) MiB, over the ${cap_mib} MiB cap)"
fi
echo "exported $src -> $dst ($(find "$dst" -name result.json | wc -l) runs)"
