#!/bin/sh
# A ResNet-20 weights file written by the C library loads into the PyTorch
# twin with load_state_dict(strict=True) and gives finite output.
set -u
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
if "${BUILD:-build}"/tests/test_checkpoint --write-resnet20 "$dir/r20.safetensors" >/dev/null &&
   /usr/bin/python3 tools/torch/check_weights.py "$dir/r20.safetensors" --arch resnet20; then
    echo "test_weights_torch: 1 passed, 0 failed"
else
    echo "test_weights_torch: 0 passed, 1 failed"; exit 1
fi
