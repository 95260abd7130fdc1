#!/bin/sh
# One command for the C-vs-PyTorch parity check of the model builders:
# builds tools/parity_dump, writes weights and outputs of every model into a
# temporary folder, and compares them with the PyTorch twins
# (tools/torch/parity.py). Prints "parity: N passed, N failed"; exit 1 on a
# failure. Usage: tools/torch/run_parity.sh [MODEL ...]   (from anywhere)
# Needs PyTorch: the first of $PYTHON, python3, /usr/bin/python3 that has it.
set -eu
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
make -s "$BUILD/tools/parity_dump" >/dev/null
py=""
for p in ${PYTHON:-} python3 /usr/bin/python3; do
    if "$p" -c "import torch, numpy" >/dev/null 2>&1; then py=$p; break; fi
done
if [ -z "$py" ]; then
    echo "run_parity: no python with torch and numpy (scripts/install-deps.sh installs python3-torch)" >&2
    exit 1
fi
dir=$(mktemp -d "${TMPDIR:-/tmp}/dmvjnd-parity.XXXXXX")
trap 'rm -rf "$dir"' EXIT
"$BUILD/tools/parity_dump" "$dir" "$@"
"$py" tools/torch/parity.py "$dir" "$@"
