#!/bin/bash
# Trains both halves of the zoo (experiments/zoo/README.md) into runs/, resumably: rerun it to
# continue. REALBIAS: the binary (default target/debug/realbias). Its niceness leaves the
# machine usable while it trains.
set -u
cd "$(dirname "$0")/.."
export REALBIAS_DATA="${REALBIAS_DATA:-../shared/datasets}"
bin="${REALBIAS:-target/debug/realbias}"
for d in mnist cifar10; do
  nice -n 10 "$bin" run "configs/zoo-$d.toml" --out runs --jobs 2 || exit $?
done
