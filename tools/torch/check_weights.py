#!/usr/bin/env python3
"""Check that a dmvjnd weights file (or checkpoint) loads into the PyTorch twin.

    check_weights.py FILE --arch resnet20 [--classes N]

Builds tools/torch/models.py's model for --arch and loads the file with
load_state_dict(strict=True): every state_dict key must be in the file with
the same shape, and the file may hold nothing else (a checkpoint's
"optim.*" tensors are set aside first). Also checks the dtypes (strict
loading would silently convert them), the file's "arch" metadata, and that
a forward pass gives finite logits. Prints "ok" and exits 0, or prints
what is wrong to stderr and exits 1.

The class count is taken from fc.weight's shape unless --classes is given.

To check what the C library writes:
    build/tests/test_checkpoint --write-resnet20 /tmp/r20.safetensors
    python3 tools/torch/check_weights.py /tmp/r20.safetensors --arch resnet20
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch  # noqa: E402

import models  # noqa: E402


def check(path, arch, classes=None):
    """Return a list of problems (empty when the file loads strictly)."""
    tensors, meta = models.read_safetensors(path)
    problems = []
    file_arch = meta.get("arch")
    if file_arch is not None and file_arch != arch:
        problems.append("metadata arch is %r, expected %r" % (file_arch, arch))
    weights = {k: v for k, v in tensors.items() if not k.startswith("optim.")}
    if classes is None:
        fc = weights.get("fc.weight")
        if fc is None or fc.ndim != 2:
            return problems + ["no 2-D fc.weight to take the class count from (use --classes)"]
        classes = int(fc.shape[0])
    model = models.build(arch, classes)
    state = model.state_dict()
    for k, v in weights.items():
        if k in state and state[k].dtype != torch.from_numpy(v).dtype:
            problems.append("%s: dtype %s, PyTorch has %s" % (k, v.dtype, state[k].dtype))
    try:
        model.load_state_dict({k: torch.from_numpy(v) for k, v in weights.items()}, strict=True)
    except RuntimeError as e:  # missing/unexpected keys, shape mismatches
        problems.append(str(e))
        return problems
    model.eval()
    with torch.no_grad():
        y = model(torch.randn(2, 3, 32, 32))
    if tuple(y.shape) != (2, classes) or not torch.isfinite(y).all():
        problems.append("forward gave %s logits of shape %s" %
                        ("non-finite" if not torch.isfinite(y).all() else "finite", tuple(y.shape)))
    return problems


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("file")
    ap.add_argument("--arch", required=True, help="model name known to models.build, e.g. resnet20")
    ap.add_argument("--classes", type=int, default=None)
    args = ap.parse_args()
    try:
        problems = check(args.file, args.arch, args.classes)
    except (OSError, ValueError, KeyError) as e:
        problems = ["cannot read: %s" % e]
    if problems:
        for p in problems:
            print("%s: %s" % (args.file, p), file=sys.stderr)
        return 1
    print("ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
