#!/usr/bin/env python3
"""JND generation in the PyTorch twin: the same work as dj_jnd_generator_run
(`dmvjnd bench --jnd generate`), timed on the same images.

    /usr/bin/python3 tools/torch/bench_jnd_generate.py [--model models/jnd_v1.0.safetensors]
        [--images 500] [--batch 100] [--runs 3] [--threads 2] [--cifar DIR]

Per batch of CIFAR-10 test images (the first --images records; random images
when the data set is absent, as the C benchmark): every classifier's label and
class activation map of x (include/dmvjnd/cam.h), their mean c, e = E-D([x, c])
in inference mode, the stored x_hat = round(clamp(x + 255 e_pix)), every
classifier's label on x_hat, and the per-image PSNR, mean |e| and mean
|x_hat - x|. The model and classifiers are read from the same safetensors files
(the classifiers the model names). Prints one JSON object; jnd_generate_img_per_s
is the median over --runs timed passes over all the images, after one untimed
batch.
"""
import argparse
import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import jnd  # noqa: E402
import models  # noqa: E402

SIDE = 32
PSNR_MAX = 100.0


def load_test_images(cifar, n):
    """The first n test records as uint8 (n, 3, 32, 32), or random images (seeded) when absent."""
    path = os.path.join(cifar or "", "test_batch.bin")
    if cifar and os.path.exists(path):
        raw = np.fromfile(path, dtype=np.uint8, count=n * 3073).reshape(-1, 3073)
        if raw.shape[0] == n:
            return torch.from_numpy(raw[:, 1:].reshape(n, 3, SIDE, SIDE).copy()), "cifar10-test"
    g = torch.Generator().manual_seed(1)
    return torch.randint(0, 256, (n, 3, SIDE, SIDE), generator=g, dtype=torch.uint8), "synthetic"


class Twin:
    """The model file's E-D and its classifiers, loaded from the same files as dmvjnd."""

    def __init__(self, model_path):
        tensors, meta = models.read_safetensors(model_path)
        if meta.get("jnd.input", "x,cam") != "x,cam":
            raise ValueError("%s: input %s; this benchmark runs x,cam E-Ds" % (model_path, meta.get("jnd.input")))
        self.ed = jnd.JndEd(width=float(meta.get("jnd.width", 1)), slope=float(meta.get("jnd.slope", 0.01)))
        state = self.ed.state_dict()
        self.ed.load_state_dict({k: torch.from_numpy(v) for k, v in tensors.items() if k in state}, strict=False)
        self.ed.eval()
        self.mean = torch.tensor([float(v) for v in meta.get("norm.mean", "0.5,0.5,0.5").split(",")]).view(1, 3, 1, 1)
        self.std = torch.tensor([float(v) for v in meta.get("norm.std", "0.5,0.5,0.5").split(",")]).view(1, 3, 1, 1)
        self.nets = []
        for p in meta["jnd.classifiers"].split(","):
            if not os.path.exists(p):  # names relative to the model's folder (dj_jnd_model_load)
                p = os.path.join(os.path.dirname(model_path), os.path.basename(p))
            _, m = models.read_safetensors(p)
            net = models.build(m["arch"])
            models.load_safetensors(net, p)
            self.nets.append(net.eval())

    def normalize(self, pix):
        """pix on the [0, 1] scale (n, 3, h, w) -> the networks' input."""
        return (pix - self.mean) / self.std

    @torch.no_grad()
    def labels_and_cam(self, net, x):
        """Own label and its CAM (cam.c: dj_cam_compute)."""
        lin = net.fc if hasattr(net, "fc") else net.classifier
        feats = net.features(x)
        lab = lin(feats.mean((2, 3))).argmax(1)
        m = torch.einsum("nchw,nc->nhw", feats, lin.weight[lab]).unsqueeze(1)
        m = F.interpolate(m, size=x.shape[2:], mode="bilinear", align_corners=False)[:, 0]
        m = m - m.flatten(1).min(1)[0][:, None, None]
        hi = m.flatten(1).max(1)[0][:, None, None]
        ok = hi > 0
        return lab, torch.where(ok, m / torch.where(ok, hi, torch.ones_like(hi)), torch.zeros_like(m))

    @torch.no_grad()
    def classify(self, pix, batch):
        """Labels (n, K) of every classifier on images given on the [0, 1] scale, in batches."""
        out = []
        for s in range(0, pix.shape[0], batch):
            x = self.normalize(pix[s:s + batch])
            out.append(torch.stack([net(x).argmax(1) for net in self.nets], 1))
        return torch.cat(out, 0)

    @torch.no_grad()
    def generate(self, u8):
        """One batch: before (n, K), c (n, 32, 32), e on the pixel scale, x_hat uint8, after, and
        per-image PSNR, mean |e| and mean |x_hat - x| (levels)."""
        x = self.normalize(u8.float() / 255.0)
        before, maps = [], []
        for net in self.nets:
            lab, m = self.labels_and_cam(net, x)
            before.append(lab)
            maps.append(m)
        c = sum(maps) / float(len(maps))
        e = self.ed(jnd.stack(x, c.unsqueeze(1))) * self.std
        xh = torch.nan_to_num(u8.float() + 255.0 * e, nan=0.0).clamp(0, 255).round().to(torch.uint8)
        after = self.classify(xh.float() / 255.0, u8.shape[0])
        d = xh.double() - u8.double()
        se = (d * d).flatten(1).sum(1)
        mse = se / d[0].numel()
        psnr = torch.where(mse > 0, (10 * torch.log10(255.0 ** 2 / mse.clamp_min(1e-300))).clamp(max=PSNR_MAX),
                           torch.full_like(mse, PSNR_MAX))
        stats = {"psnr": psnr, "abs_e": (255.0 * e).abs().flatten(1).mean(1), "abs_diff": d.abs().flatten(1).mean(1)}
        return torch.stack(before, 1), c, e, xh, after, stats


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="models/jnd_v1.0.safetensors")
    ap.add_argument("--images", type=int, default=500)
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--cifar", default=os.environ.get("DMVJND_DATA", "data/cifar-10-batches-bin"))
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    twin = Twin(a.model)
    u8, data = load_test_images(a.cifar, a.images)
    twin.generate(u8[:a.batch])  # warm-up
    rates, kept = [], 0
    for _ in range(a.runs):
        t0 = time.perf_counter()
        kept = 0
        for s in range(0, a.images, a.batch):
            before, _, _, _, after, _ = twin.generate(u8[s:s + a.batch])
            kept += int((before == after).sum())
        rates.append(a.images / (time.perf_counter() - t0))
    print(json.dumps({"model": "jnd-generate", "torch": torch.__version__, "data": data, "images": a.images,
                      "batch": a.batch, "threads": torch.get_num_threads(), "runs": a.runs,
                      "jnd_generate_img_per_s": round(statistics.median(rates), 1), "min": round(min(rates), 1),
                      "max": round(max(rates), 1), "rca_mean": kept / (a.images * len(twin.nets))}))


if __name__ == "__main__":
    main()
