#!/bin/sh
# The shipped classifiers (models/*.safetensors, unchanged) give in the
# PyTorch twin the logits, labels and class activation maps dmvjnd gives, on
# CIFAR-10 test records 0-99 (tools/parity_dump.c --shipped,
# tools/torch/parity.py --shipped).
data=${DMVJND_DATA:-data/cifar-10-batches-bin}
if [ ! -f "$data/test_batch.bin" ]; then
    echo "SKIP test_shipped_parity: no CIFAR-10 in $data"
    echo "test_shipped_parity: 0 passed, 0 failed, 1 skipped"; exit 0
fi
make -s "${BUILD:-build}/tools/parity_dump" >/dev/null || exit 1
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
if ! "${BUILD:-build}/tools/parity_dump" "$dir" --shipped models; then
    echo "test_shipped_parity: 0 passed, 1 failed"
    exit 1
fi
out=$(/usr/bin/python3 tools/torch/parity.py "$dir" --shipped models 2>&1); rc=$?
printf '%s\n' "$out" | sed 's/^parity: /test_shipped_parity: /'
if [ $rc -ne 0 ] && ! printf '%s\n' "$out" | grep -q '^parity: '; then
    echo "test_shipped_parity: 0 passed, 1 failed"
fi
exit $rc
