#!/usr/bin/env python3
"""Do the labels a JND model loses sit on the images its classifiers are unsure of, and would
scaling e down on those images alone reach a training RCA of 99.5%? (docs/method.md, "The margin
input".)

    build/dmvjnd generate --model models/jnd_v1.0.safetensors --split train --limit 10000 --out runs/gen-train
    python3 tools/torch/margin_study.py --gen runs/gen-train --limit 10000 [--rules]

For each image it computes the margin as dj_jnd_margin_update does (the smallest over the
classifiers of p1 - p2 on x, with the PyTorch twins of the classifiers), then:
  * the share of the lost labels (from results.csv) on images with a margin below a threshold;
  * with --rules: the RCA and mean PSNR of the stored images when the stored e (x+e minus x, from
    the *_jnd.png files) is scaled by a factor chosen from the margin alone, re-rounded, clamped
    and classified again. This costs one pass of the four classifiers per rule (minutes per rule
    on 2 cores for 10,000 images).
The training records are the first `--limit` of data_batch_1..5 in order, as `generate --split
train` numbers them.
"""
import argparse
import csv
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import models  # noqa: E402

NAMES = ["alexnet", "vgg11bn", "resnet20", "densenet40bc"]
RULES = [(0.3, 0.5), (0.5, 0.5), (0.5, 0.3), (0.7, 0.5), (0.9, 0.6)]  # (margin below, scale)


def fail(msg):
    sys.exit("margin_study.py: " + msg)


def train_images(cifar_dir, n):
    out = []
    for i in range(1, 6):
        path = os.path.join(cifar_dir, "data_batch_%d.bin" % i)
        try:
            raw = np.fromfile(path, np.uint8)
        except OSError as e:
            fail("%s: %s" % (path, e.strerror))
        if raw.size % 3073:
            fail("%s: %d bytes, not a whole number of 3073-byte records" % (path, raw.size))
        out.append(raw.reshape(-1, 3073)[:, 1:])
        if sum(len(o) for o in out) >= n:
            break
    x = np.concatenate(out)[:n]
    if len(x) < n:
        fail("%s holds %d training images, fewer than --limit %d" % (cifar_dir, len(x), n))
    return x.reshape(-1, 3, 32, 32).astype(np.float32)


def stored_images(gen, n):
    from PIL import Image
    out = np.empty((n, 3, 32, 32), np.float32)
    for i in range(n):
        path = os.path.join(gen, "train-%05d_jnd.png" % i)
        try:
            out[i] = np.asarray(Image.open(path).convert("RGB")).transpose(2, 0, 1)
        except OSError as e:
            fail("%s: %s (run generate --split train --limit %d --out %s first)" % (path, e, n, gen))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--gen", required=True, help="output folder of dmvjnd generate --split train")
    ap.add_argument("--data", default="data/cifar-10-batches-bin", help="CIFAR-10 binary folder")
    ap.add_argument("--models", default="models", help="folder of the classifiers' .safetensors")
    ap.add_argument("--limit", type=int, default=10000, help="first N training images")
    ap.add_argument("--rules", action="store_true", help="also measure scaling e by margin rules")
    ap.add_argument("--threads", type=int, default=0)
    a = ap.parse_args()
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    n = a.limit
    nets = []
    for name in NAMES:
        path = os.path.join(a.models, name + ".safetensors")
        if not os.path.exists(path):
            fail("%s: no such classifier file" % path)
        m = models.build(name)
        models.load_safetensors(m, path)
        nets.append(m.eval())

    def logits(u8):
        with torch.no_grad():
            return np.stack([torch.cat([net(torch.from_numpy(u8[b:b + 500] / 255.0 * 2 - 1).float())
                                        for b in range(0, len(u8), 500)]).numpy() for net in nets])

    x8 = train_images(a.data, n)
    z0 = logits(x8)  # K x N x 10
    labels = z0.argmax(2)
    p = np.exp(z0 - z0.max(2, keepdims=True))
    p /= p.sum(2, keepdims=True)
    ps = np.sort(p, 2)
    margin = (ps[:, :, -1] - ps[:, :, -2]).min(0)

    csv_path = os.path.join(a.gen, "results.csv")
    try:
        rows = list(csv.DictReader(open(csv_path)))[:n]
    except OSError as e:
        fail("%s: %s" % (csv_path, e.strerror))
    if len(rows) < n or any(not r["image"].startswith("train-") for r in rows):
        fail("%s: needs %d rows of training images (generate --split train --limit %d)" % (csv_path, n, n))
    lost = np.array([[1 - int(r[k + "_kept"]) for k in NAMES] for r in rows]).sum(1)
    psnr = np.array([float(r["psnr_db"]) for r in rows])
    print("%d images, %d of %d labels lost (RCA %.2f%%), mean PSNR %.2f dB"
          % (n, lost.sum(), 4 * n, 100 - lost.sum() / (4 * n) * 100, psnr.mean()))
    print("| margin below | images | lost labels on them | share of all lost | their mean PSNR |")
    print("|---|---|---|---|---|")
    for q in [0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9]:
        s = margin < q
        print("| %.2f | %.1f%% | %d | %.0f%% | %.2f dB |" % (q, s.mean() * 100, lost[s].sum(),
                                                             lost[s].sum() / max(lost.sum(), 1) * 100,
                                                             psnr[s].mean() if s.any() else float("nan")))
    if not a.rules:
        return
    e8 = stored_images(a.gen, n) - x8

    def measure(scale):
        xh = np.clip(np.round(x8 + e8 * scale[:, None, None, None]), 0, 255)
        kept = logits(xh).argmax(2) == labels
        mse = ((xh - x8) ** 2).mean((1, 2, 3))
        db = np.where(mse > 0, 10 * np.log10(255.0 ** 2 / np.maximum(mse, 1e-12)), 100.0)
        return kept.mean() * 100, db.mean()

    print("\n| rule | training RCA | PSNR |\n|---|---|---|")
    print("| e as stored | %.2f%% | %.2f dB |" % measure(np.ones(n, np.float32)))
    for thr, s in RULES:
        print("| e x %.1f where margin < %.1f | %.2f%% | %.2f dB |"
              % ((s, thr) + measure(np.where(margin < thr, s, 1.0).astype(np.float32))))
    for g in [0.5, 1.0]:
        print("| e x margin^%.1f | %.2f%% | %.2f dB |" % ((g,) + measure(np.clip(margin, 0, 1) ** g)))


if __name__ == "__main__":
    main()
