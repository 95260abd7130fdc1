#!/bin/sh
# The E-D autoencoder and the JND losses agree with their PyTorch twin
# (tools/torch/jnd.py): outputs, losses, input and parameter gradients.
make -s "${BUILD:-build}/tools/jnd_dump" >/dev/null || exit 1
out=$(BUILD="${BUILD:-build}" /usr/bin/python3 tools/torch/check_jnd.py 2>&1); rc=$?
printf '%s\n' "$out" | tail -n 3
[ $rc -eq 0 ] || { echo "test_jnd_parity: 0 passed, 1 failed"; exit 1; }
