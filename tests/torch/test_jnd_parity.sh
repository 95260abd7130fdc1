#!/bin/sh
# The E-D autoencoder and the JND losses agree with their PyTorch twin
# (tools/torch/jnd.py): outputs, losses, input and parameter gradients.
# Twice: on oneDNN's direct convolutions with the default LeakyReLU, and on
# the Winograd kernel (the library's default) without the activation's kink,
# which its extra rounding would cross (check_jnd.py explains).
make -s "${BUILD:-build}/tools/jnd_dump" >/dev/null || exit 1
passed=0; failed=0
for args in "--conv direct" "--conv winograd --slope 1"; do
    # shellcheck disable=SC2086
    out=$(BUILD="${BUILD:-build}" /usr/bin/python3 tools/torch/check_jnd.py $args 2>&1); rc=$?
    line=$(printf '%s\n' "$out" | grep -E '^check_jnd: [0-9]+ passed, [0-9]+ failed$' | tail -n 1)
    if [ $rc -ne 0 ] || [ -z "$line" ]; then printf '%s\n' "$out"; else printf '%s\n' "$out" | tail -n 2; fi
    p=$(echo "$line" | sed -n 's/^check_jnd: \([0-9]*\) passed.*/\1/p')
    f=$(echo "$line" | sed -n 's/.* \([0-9]*\) failed$/\1/p')
    [ $rc -ne 0 ] && [ "${f:-0}" -eq 0 ] && f=1
    passed=$((passed + ${p:-0})); failed=$((failed + ${f:-1}))
done
echo "test_jnd_parity: $passed passed, $failed failed"
[ $failed -eq 0 ]
