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

    parity.py DIR --shipped MODELDIR

The shipped classifiers instead (`parity_dump DIR --shipped MODELDIR`): each
MODELDIR/<name>.safetensors, unchanged, in the twin, on the C side's 100
CIFAR-10 test images: logits (max abs diff <= 1e-3), labels (equal wherever
the twin's top two logits are more than 1e-3 apart), and the class activation
maps recomputed here from the twin's features and linear layer (Zhou et al.:
W[label] . F, bilinear upsampling with align_corners=False, per-image min-max
normalisation; max abs diff <= 1e-3).
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


def twin_cams(model, x, labels):
    """CAM of each image for its label, as include/dmvjnd/cam.h defines it."""
    import torch.nn.functional as F
    lin = model.fc if hasattr(model, "fc") else model.classifier
    with torch.no_grad():
        feats = model.features(x)                              # N x C x h x w
        w = lin.weight[torch.from_numpy(labels).long()]        # N x C
        m = torch.einsum("nchw,nc->nhw", feats, w).unsqueeze(1)
        m = F.interpolate(m, size=x.shape[2:], mode="bilinear", align_corners=False)[:, 0]
        lo = m.flatten(1).min(1)[0][:, None, None]
        m = m - lo
        hi = m.flatten(1).max(1)[0][:, None, None]
        return torch.where(hi > 0, m / torch.where(hi > 0, hi, torch.ones_like(hi)), torch.zeros_like(m)).numpy()


def check_shipped(d, modeldir, report):
    found = 0
    for name in DEFAULT:
        io_path = os.path.join(d, "shipped_%s.io.safetensors" % name)
        if not os.path.exists(io_path):
            continue
        found += 1
        tensors, meta = models.read_safetensors(os.path.join(modeldir, name + "_v1.0.safetensors"))
        io, _ = models.read_safetensors(io_path)
        model = models.build(name, io["logits"].shape[1])
        model.load_state_dict({k: torch.from_numpy(v) for k, v in tensors.items()}, strict=True)
        model.eval()
        x = torch.from_numpy(io["input"]).permute(0, 3, 1, 2).contiguous()
        with torch.no_grad():
            logits = model(x).numpy()
        diff = float(np.max(np.abs(io["logits"] - logits)))
        report(name, "shipped_logits", diff <= LOGIT_TOL, "max abs diff %.2e on %d test images (|logit| <= %.2f)" % (
            diff, x.shape[0], float(np.max(np.abs(logits)))))
        top2 = np.sort(logits, axis=1)[:, -2:]
        clear = (top2[:, 1] - top2[:, 0]) > LOGIT_TOL
        same = io["labels"] == logits.argmax(1)
        report(name, "shipped_labels", bool(np.all(same[clear])), "%d/%d equal (%d with a clear top logit)" % (
            int(same.sum()), len(same), int(clear.sum())))
        cams = twin_cams(model, x, io["labels"])
        diff = float(np.max(np.abs(io["cams"] - cams)))
        report(name, "shipped_cams", diff <= FEATURE_TOL, "max abs diff %.2e" % diff)
    report("models", "shipped_found", found >= 1, "%d shipped classifier(s) in %s" % (found, modeldir))


def main():
    if len(sys.argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    if len(sys.argv) == 4 and sys.argv[2] == "--shipped":
        torch.set_num_threads(2)
        counts = [0, 0]

        def report_s(model, check, ok, detail):
            counts[0 if ok else 1] += 1
            print("%-4s %-13s %-21s %s" % ("ok" if ok else "FAIL", model, check, detail))

        check_shipped(sys.argv[1], sys.argv[3], report_s)
        print("parity: %d passed, %d failed" % tuple(counts))
        return 1 if counts[1] else 0
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
