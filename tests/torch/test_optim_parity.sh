#!/bin/sh
# The committed expected numbers of tests/data/optim_expected.h still match
# what the installed PyTorch computes (SGD, Adam, AdamW, schedules).
if /usr/bin/python3 tools/torch/optim_reference.py --check; then
    echo "test_optim_parity: 1 passed, 0 failed"
else
    echo "test_optim_parity: 0 passed, 1 failed"; exit 1
fi
