#!/usr/bin/env python3
"""JND evaluation in the PyTorch twin: the work of `dmvjnd eval` (src/jnd/evaluate.c) on the
same test images, timed.

    /usr/bin/python3 tools/torch/bench_jnd_eval.py [--model models/jnd_v1.0.safetensors]
        [--images 1000] [--batch 200] [--threads 2] [--cifar DIR] [--seed 1]

Per batch: generation as tools/torch/bench_jnd_generate.py (labels and CAM of x, E-D, the
stored x_hat, labels after), then the images dmvjnd eval tests, all built from that one pass
and classified together: x + e in float (not clamped or rounded), x + white Gaussian noise of
the stored distortion's energy, x + noise shaped by 1 - c at the stored image's PSNR (random
sign per byte, scale by bisection), and x + (k/9) e for k = 1..8, each clamped and rounded
to 8 bits. (dmvjnd eval also tests noise shaped by the human-vision JND map when the library
has it; the twin does not, so it does a little less work than the C side.) The noise is drawn
with torch's generator, so its figures match dmvjnd's only statistically; the others match up
to float rounding. One timed pass over all images, no warm-up (as `dmvjnd eval`'s "seconds").
Prints one JSON object.
"""
import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch  # noqa: E402

from bench_jnd_generate import PSNR_MAX, Twin, load_test_images  # noqa: E402

STEPS = 8


def to_u8(v):
    return torch.nan_to_num(v, nan=0.0).clamp(0, 255).round()


def psnr(a, b):
    d = a.double() - b.double()
    mse = (d * d).flatten(1).mean(1)
    p = (10 * torch.log10(255.0 ** 2 / mse.clamp_min(1e-300))).clamp(max=PSNR_MAX)
    return torch.where(mse > 0, p, torch.full_like(p, PSNR_MAX))


def shaped(x, xh, amp, gen):
    """x + s z, z = +-amp per byte, s per image so that the PSNR is xh's (bisection, all at once)."""
    n = x.shape[0]
    target = ((xh - x) ** 2).flatten(1).sum(1)
    sign = torch.randint(0, 2, x.shape, generator=gen).float() * 2 - 1
    z = sign * amp.unsqueeze(1)
    zz = (z * z).flatten(1).sum(1)

    def se(s):
        return ((to_u8(x + s.view(n, 1, 1, 1) * z) - x) ** 2).flatten(1).sum(1)

    lo = torch.zeros(n)
    hi = torch.sqrt(target / zz.clamp_min(1e-30))
    for _ in range(60):
        short = se(hi) < target
        if not bool(short.any()):
            break
        lo = torch.where(short, hi, lo)
        hi = torch.where(short, hi * 2, hi)
    for _ in range(40):
        mid = 0.5 * (lo + hi)
        low = se(mid) < target
        lo = torch.where(low, mid, lo)
        hi = torch.where(low, hi, mid)
    out = to_u8(x + hi.view(n, 1, 1, 1) * z)
    return torch.where((target > 0).view(n, 1, 1, 1), out, x)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="models/jnd_v1.0.safetensors")
    ap.add_argument("--images", type=int, default=1000)
    ap.add_argument("--batch", type=int, default=200)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--cifar", default=os.environ.get("DMVJND_DATA", "data/cifar-10-batches-bin"))
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    twin = Twin(a.model)
    u8, data = load_test_images(a.cifar, a.images)
    gen = torch.Generator().manual_seed(a.seed)
    K = len(twin.nets)
    names = ["x_plus_e", "float", "wgn", "cam_noise"] + ["homogeneity_%d" % (k + 1) for k in range(STEPS)]
    kept = {v: 0 for v in names}
    psnr_sum = {v: 0.0 for v in names}
    t0 = time.perf_counter()
    with torch.no_grad():
        for s in range(0, a.images, a.batch):
            xb = u8[s:s + a.batch]
            n = xb.shape[0]
            before, c, e, xh, after, st = twin.generate(xb)
            x = xb.float()
            xhf = xh.float()
            kept["x_plus_e"] += int((before == after).sum())
            psnr_sum["x_plus_e"] += float(st["psnr"].sum())
            stack, ps = [], []
            ef = 255.0 * e
            stack.append(x / 255.0 + e)
            se = (ef.double() ** 2).flatten(1).sum(1)
            ps.append(torch.where(se > 0, (10 * torch.log10(255.0 ** 2 * x[0].numel() / se.clamp_min(1e-300)))
                                  .clamp(max=PSNR_MAX), torch.full_like(se, PSNR_MAX)))
            energy = ((xhf - x) ** 2).flatten(1).sum(1)
            z = torch.randn(x.shape, generator=gen)
            scale = torch.sqrt(energy / (z * z).flatten(1).sum(1))
            w = to_u8(x + scale.view(n, 1, 1, 1) * z)
            stack.append(w / 255.0)
            ps.append(psnr(x, w))
            cn = shaped(x, xhf, 1.0 - c, gen)
            stack.append(cn / 255.0)
            ps.append(psnr(x, cn))
            for k in range(STEPS):
                hk = to_u8(x + ef * ((k + 1) / 9.0))
                stack.append(hk / 255.0)
                ps.append(psnr(x, hk))
            labels = twin.classify(torch.cat(stack, 0), a.batch)
            for v, name in enumerate(names[1:]):
                kept[name] += int((labels[v * n:(v + 1) * n] == before).sum())
                psnr_sum[name] += float(ps[v].sum())
    seconds = time.perf_counter() - t0
    out = {"model": "jnd-eval", "torch": torch.__version__, "data": data, "images": a.images, "batch": a.batch,
           "threads": torch.get_num_threads(), "seconds": round(seconds, 2),
           "eval_img_per_s": round(a.images / seconds, 2)}
    for v in names:
        out[v + "_rca_mean"] = kept[v] / (a.images * K)
        out[v + "_psnr_db"] = psnr_sum[v] / a.images
    print(json.dumps(out))


if __name__ == "__main__":
    main()
