#!/usr/bin/env bash
# Copies what a finished experiment folder needs to be read and redrawn into experiments/<name>/:
# the config, the summary tables and figures, the censoring report and every run's result.json
# (the per-epoch histories stay behind: they are large and rebuilt by rerunning).
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
echo "exported $src -> $dst ($(find "$dst" -name result.json | wc -l) runs)"
