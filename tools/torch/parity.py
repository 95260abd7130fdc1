#!/usr/bin/env python3
"""Compare dmvjnd's model builders with their PyTorch twins (models.py).

    parity.py DIR [MODEL ...]      (default: alexnet vgg11bn resnet20 densenet40bc)

DIR holds what `parity_dump DIR` wrote (tools/parity_dump.c): per model,
MODEL.weights.safetensors (dmvjnd's weights after 3 SGD steps on random
data, so BN running statistics are non-trivial) and MODEL.io.safetensors
(a batch of 4 NHWC input images, the C inference logits and last feature
maps, and the same after dj_graph_freeze). For each model this loads the
weights into the twin with load_state_dict(strict=True), runs the inputs
(NHWC -> NCHW) in eval mode and compares:
    logits            C inference logits vs twin             max abs diff <= 1e-3
    features          C node feeding GAP vs twin.features()  max abs diff <= 1e-3 * max(1, max |f|)
    frozen_logits     the same for the frozen (BN-folded) C graph
    frozen_features
and the same four at another input size (HxW = 64x48, from parity_dump's
sized_* tensors: the same weights in a graph built by dj_model_build_sized),
reported as logits@HxW, features@HxW, frozen_logits@HxW, frozen_features@HxW,
so 32x32 weights are checked to compute what the twin computes at any size.
Prints one line per check and "parity: N passed, N failed"; exits 1 on any failure.
Run everything with tools/torch/run_parity.sh.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402
import torch  # noqa: E402

import models  # noqa: E402

DEFAULT = ["alexnet", "vgg11bn", "resnet20", "densenet40bc"]
LOGIT_TOL = 1e-3
FEATURE_TOL = 1e-3


def check_model(d, name, report):
    tensors, meta = models.read_safetensors(os.path.join(d, name + ".weights.safetensors"))
    io, _ = models.read_safetensors(os.path.join(d, name + ".io.safetensors"))
    model = models.build(name, io["logits"].shape[1])
    try:
        state = {k: torch.from_numpy(v) for k, v in tensors.items()}
        model.load_state_dict(state, strict=True)
        bad_dtype = [k for k, v in model.state_dict().items() if state[k].dtype != v.dtype]
        ok = meta.get("arch") == name and not bad_dtype
        report(name, "load_strict", ok, "arch %r, %d tensors%s" % (
            meta.get("arch"), len(tensors), ", dtype differs: %s" % bad_dtype if bad_dtype else ""))
    except (RuntimeError, KeyError) as e:
        report(name, "load_strict", False, str(e).splitlines()[0])
        return
    model.eval()
    compare(model, io, name, "", "", report)
    # The same weights at another size (the twin is size-agnostic as is);
    # required, so a dump that lost them fails instead of skipping.
    if "sized_input" not in io:
        report(name, "sized", False, "no sized_* tensors in %s.io.safetensors (parity_dump too old?)" % name)
        return
    h, w = io["sized_input"].shape[1:3]
    compare(model, io, name, "sized_", "@%dx%d" % (h, w), report)


def compare(model, io, name, key, suffix, report):
    """The four checks on io[key + "input"]; check names get `suffix`."""
    x = torch.from_numpy(io[key + "input"]).permute(0, 3, 1, 2).contiguous()
    with torch.no_grad():
        logits = model(x).numpy()
        feats = model.features(x).permute(0, 2, 3, 1).numpy()  # NCHW -> NHWC, as dmvjnd
    for prefix in ("", "frozen_"):
        check = prefix + "%s" + suffix
        c_logits, c_feats = io[key + prefix + "logits"], io[key + prefix + "features"]
        diff = float(np.max(np.abs(c_logits - logits)))
        report(name, check % "logits", diff <= LOGIT_TOL, "max abs diff %.2e (|logit| <= %.2f)" % (
            diff, float(np.max(np.abs(logits)))))
        if c_feats.shape != feats.shape:
            report(name, check % "features", False, "shape %s, twin %s" % (c_feats.shape, feats.shape))
            continue
        scale = max(1.0, float(np.max(np.abs(feats))))
        diff = float(np.max(np.abs(c_feats - feats)))
        report(name, check % "features", diff <= FEATURE_TOL * scale, "max abs diff %.2e (max |f| %.2f, %s)" % (
            diff, scale, "x".join(str(s) for s in c_feats.shape[1:])))


def main():
    if len(sys.argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    d, names = sys.argv[1], sys.argv[2:] or DEFAULT
    torch.set_num_threads(2)
    counts = [0, 0]

    def report(model, check, ok, detail):
        counts[0 if ok else 1] += 1
        print("%-4s %-13s %-21s %s" % ("ok" if ok else "FAIL", model, check, detail))

    for name in names:
        try:
            check_model(d, name, report)
        except (OSError, ValueError, KeyError) as e:
            report(name, "files", False, str(e))
    print("parity: %d passed, %d failed" % tuple(counts))
    return 1 if counts[1] else 0


if __name__ == "__main__":
    sys.exit(main())
