#!/usr/bin/env bash
# The prepared GPU measurement: one command for a machine with a GPU, under 8 minutes.
#
#   scripts/gpu-check.sh OUT_DIR
#
# 1. builds the wgpu binary (release; or takes REALBIAS_BIN, a wgpu binary built elsewhere,
#    for a machine without the crates) and the CPU (flex) binary to compare with (or
#    REALBIAS_CPU_BIN);
# 2. `realbias bench --json`: µs per step of single runs and of ensembles of 8 and 35 at
#    H = 16, 64, 256, 1024 (Figure 2's 2,000 + 2,000 examples);
# 3. times Figure 2's MNIST protocol at 2 repetitions on the GPU and the same config on the CPU
#    (`--jobs` = the CPU's cores there), and compares their summaries;
# 4. writes everything as JSON lines in OUT_DIR/gpu-check.jsonl (the runs' folders beside it).
#
# Building both binaries on the GPU machine needs the crates (~/.cargo) there and takes minutes
# of the 8; carry binaries built elsewhere (REALBIAS_BIN, REALBIAS_CPU_BIN) to leave the time to
# the measurements. A wgpu build for the GPU: `cargo build --release --bin realbias
# --no-default-features --features wgpu`.
#
# REALBIAS_DATA: the datasets folder (default ../shared/datasets). GPU_CHECK_QUICK=1: one
# width, one bench epoch and a 20-epoch Figure 2, to check the script itself on any machine.
# Each step has a time limit, so one that hangs (a driver) cannot eat the rest; a step that
# fails is recorded as such and the others still run.
set -uo pipefail
cd "$(dirname "$0")/.."

out=${1:?usage: scripts/gpu-check.sh OUT_DIR}
mkdir -p "$out" || exit 1
out=$(cd "$out" && pwd)
lines="$out/gpu-check.jsonl"
: >"$lines"
export REALBIAS_DATA=${REALBIAS_DATA:-$(cd .. && pwd)/shared/datasets}
quick=${GPU_CHECK_QUICK:-0}
say() { echo "[gpu-check $(date +%T)] $*" >&2; }
# One JSON line of a step's outcome: name, status, seconds, and extra `"key": value` pairs.
record() {
    local name=$1 status=$2 seconds=$3 extra=${4:-}
    echo "{\"step\": \"$name\", \"status\": \"$status\", \"seconds\": $seconds${extra:+, $extra}}" >>"$lines"
}
# The whole check stops before 8 minutes: every step's limit is cut to the time left.
deadline=$((SECONDS + ${GPU_CHECK_SECONDS:-470}))
# Runs "$@" with a time limit of $1 seconds (at most what is left); the seconds it took go
# to $out/.seconds.
timed() {
    local limit=$1 start=$SECONDS
    shift
    local left=$((deadline - SECONDS))
    [ "$limit" -gt "$left" ] && limit=$left
    if [ "$limit" -le 0 ]; then
        echo 0 >"$out/.seconds${TIMED_TAG:-}"
        return 124
    fi
    timeout "$limit" "$@"
    local rc=$?
    echo $((SECONDS - start)) >"$out/.seconds${TIMED_TAG:-}"
    return $rc
}

if [ ! -d "$REALBIAS_DATA/mnist" ]; then
    say "no MNIST under REALBIAS_DATA=$REALBIAS_DATA"
    record data failed 0 "\"message\": \"no mnist folder in $REALBIAS_DATA\""
    exit 1
fi
record machine ok 0 "\"cores\": $(nproc), \"gpu\": \"$(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null | head -1 | tr -d '"')\", \"revision\": \"$(git rev-parse --short HEAD 2>/dev/null || echo unknown)\""

# 1. The binaries.
build() {
    local name=$1 dir=$2
    shift 2
    say "building the $name binary (release)"
    if timed 300 cargo build --release --bin realbias -p realbias-cli --target-dir "$dir" "$@" >"$out/build-$name.log" 2>&1; then
        record "build-$name" ok "$(cat "$out/.seconds")"
        return 0
    fi
    record "build-$name" failed "$(cat "$out/.seconds")" "\"log\": \"build-$name.log\""
    return 1
}
gpu_bin=${REALBIAS_BIN:-}
if [ -z "$gpu_bin" ]; then
    build wgpu target/gpu-check-wgpu --no-default-features --features wgpu && gpu_bin=target/gpu-check-wgpu/release/realbias
fi
cpu_bin=${REALBIAS_CPU_BIN:-}
if [ -z "$cpu_bin" ]; then
    build flex target/gpu-check-flex && cpu_bin=target/gpu-check-flex/release/realbias
fi
[ -n "$gpu_bin" ] || { say "no wgpu binary"; exit 1; }

# 2. µs per step: single runs and ensembles of 8 and 35.
widths=16,64,256,1024
epochs=3
[ "$quick" = 1 ] && widths=16 && epochs=1
for members in 1 8 35; do
    args=(bench --hidden "$widths" --examples 2000 --validation 2000 --epochs "$epochs" --json)
    [ "$members" -gt 1 ] && args+=(--ensemble "$members")
    say "bench, $members member(s), H = $widths"
    if timed 75 "$gpu_bin" "${args[@]}" >"$out/bench-$members.jsonl" 2>"$out/bench-$members.log"; then
        record "bench-$members" ok "$(cat "$out/.seconds")"
        sed 's/^/{"step": "bench-row", "row": /; s/$/}/' "$out/bench-$members.jsonl" >>"$lines"
        backend=$(grep -o '"backend":"[a-z]*"' "$out/bench-$members.jsonl" | head -1 | cut -d'"' -f4)
        [ "$backend" = wgpu ] || say "warning: the GPU binary runs on $backend, not wgpu"
    else
        record "bench-$members" failed "$(cat "$out/.seconds")" "\"log\": \"bench-$members.log\""
    fi
done

# 3. Figure 2 (MNIST, every width and condition) at 2 repetitions, GPU against CPU.
fig2=(run configs/fig2-mnist.toml --set sweep.repetitions=2)
[ "$quick" = 1 ] && fig2+=(--set 'sweep.hidden=[16]' --set train.max_epochs=20)
fig2_run() {
    local name=$1 bin=$2 limit=$3
    shift 3
    local TIMED_TAG=-$name
    say "Figure 2 at 2 repetitions on $name"
    if timed "$limit" "$bin" "${fig2[@]}" --out "$out/fig2-$name" "$@" >"$out/fig2-$name.log" 2>&1; then
        local runs
        runs=$(find "$out/fig2-$name" -name result.json | wc -l)
        record "fig2-$name" ok "$(cat "$out/.seconds-$name")" "\"runs\": $runs, \"jobs_args\": \"$*\""
    else
        record "fig2-$name" failed "$(cat "$out/.seconds-$name")" "\"log\": \"fig2-$name.log\""
    fi
}
# Side by side, to fit the 8 minutes: the CPU run on all cores but two, the GPU run (one
# job: its widths' runs are ensembles) on what is left.
cpu_jobs=$(($(nproc) > 3 ? $(nproc) - 2 : 1))
if [ -n "$cpu_bin" ]; then
    fig2_run cpu "$cpu_bin" 240 --jobs "$cpu_jobs" &
    cpu_pid=$!
fi
fig2_run wgpu "$gpu_bin" 240 --jobs 1
[ -n "${cpu_pid:-}" ] && wait "$cpu_pid"
gpu_summary="$out/fig2-wgpu/fig2-mnist/summary.csv"
cpu_summary="$out/fig2-cpu/fig2-mnist/summary.csv"
if [ -f "$gpu_summary" ] && [ -f "$cpu_summary" ]; then
    if cmp -s "$gpu_summary" "$cpu_summary"; then same=true; else same=false; fi
    record fig2-compare ok 0 "\"summaries_identical\": $same"
fi
rm -f "$out"/.seconds*
say "done: $lines"
