#!/usr/bin/env bash
# Cuts the CIFAR-10 binary files to a subset small enough to travel with a
# GPU call (the device tool carries at most 64 MiB with the repository, which
# is ~17 MB): whole 3073-byte records, the training images from
# data_batch_1.bin on, the first test records. tools/torch/jnd_sweep.py reads
# the result like the full set.
#
#   bash tools/torch/sweep_data.sh [SRC=data/cifar-10-batches-bin] [OUT=data/gpu] [TRAIN=13000] [TEST=2000]
#
# 13,000 + 2,000 records are 46 MB. OUT must be git-ignored (data/ is) and is
# named in the call's `carry`.
set -euo pipefail
src=${1:-data/cifar-10-batches-bin}
out=${2:-data/gpu}
train=${3:-13000}
test=${4:-2000}
rec=3073
per=10000
[ -f "$src/test_batch.bin" ] || { echo "sweep_data: $src/test_batch.bin not found" >&2; exit 3; }
[ "$train" -ge 1 ] && [ "$train" -le 50000 ] || { echo "sweep_data: TRAIN must be 1..50000" >&2; exit 2; }
[ "$test" -ge 1 ] && [ "$test" -le 10000 ] || { echo "sweep_data: TEST must be 1..10000" >&2; exit 2; }
mkdir -p "$out"
rm -f "$out"/data_batch_*.bin
left=$train
for b in 1 2 3 4 5; do
    [ "$left" -gt 0 ] || break
    n=$((left < per ? left : per))
    head -c $((rec * n)) "$src/data_batch_$b.bin" > "$out/data_batch_$b.bin"
    left=$((left - n))
done
head -c $((rec * test)) "$src/test_batch.bin" > "$out/test_batch.bin"
echo "sweep_data: $train training and $test test records in $out ($(du -sh "$out" | cut -f1))"
