#!/bin/sh
# The C model builders (alexnet, vgg11bn, resnet20, densenet40bc) compute
# what their PyTorch twins compute: logits and last feature maps, before and
# after freezing, with weights saved by the C library and loaded strictly;
# and the same weights at 64x48 in graphs built by dj_model_build_sized
# (tools/torch/run_parity.sh; details in docs/models.md).
out=$(BUILD="${BUILD:-build}" sh tools/torch/run_parity.sh 2>&1); rc=$?
printf '%s\n' "$out" | sed 's/^parity: /test_model_parity: /'
if [ $rc -ne 0 ] && ! printf '%s\n' "$out" | grep -q '^parity: '; then
    echo "test_model_parity: 0 passed, 1 failed"
fi
exit $rc
