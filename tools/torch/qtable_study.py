#!/usr/bin/env python3
"""Is the paper's rule "quantisation step = twice the DMV-JND" a good JPEG quantisation table?
(docs/compression.md, "Quantisation tables shaped by the JND".)

    /usr/bin/python3 tools/torch/qtable_study.py [--model models/jnd_v1.0.safetensors]
        [--cifar data/cifar-10-batches-bin] [--train 2000] [--test 1000] [--threads 2]

The JND e of the first --train training records (data_batch_1, the PyTorch twin of the
generator, tools/torch/bench_jnd_generate.py) is taken to JPEG's colour space (YCbCr, linear
part) and 8x8 DCT (the orthonormal DCT JPEG quantises). Per component and frequency the RMS of
e's coefficients is the JND's spectrum S. Three tables, each scaled by libjpeg's quality mapping
(q < 50: 5000/q %, else 200 - 2q %) and clamped to 1..255:
  * jnd:  2 S for luma, 2 S of the two chroma components pooled (root mean square) for chroma
          (the paper's rule, with a step per frequency);
  * flat: every step the mean of the jnd table (same overall coarseness, no spectral shape);
  * jnd-chroma: the standard luma table with the jnd chroma table.
Plain is libjpeg's standard (Annex K, human-vision) tables at the same qualities. Every file is
baseline 4:4:4 with optimised Huffman tables (PIL, which is libjpeg-turbo, byte-identical to
dmvjnd's plain coding); the rate is the entropy-coded bytes between SOS and EOI (as
dj_jpeg_payload_bytes). The first --test test records are coded, decoded and classified by the
model's four classifiers; RCA = share of labels kept. BD-rate against plain: log rate as a PCHIP
of RCA over the RCA range both cover (as dmvjnd compress). Prints a table and one JSON line.
"""
import argparse
import io
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from bench_jnd_generate import Twin  # noqa: E402

STD_LUMA = np.array([16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40, 57, 69, 56,
                     14, 17, 22, 29, 51, 87, 80, 62, 18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113,
                     92, 49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99], float).reshape(8, 8)
QUALITIES = [10, 30, 50, 70, 80, 90, 95, 98]
PLAIN_QUALITIES = [10, 20, 30, 40, 50, 60, 70, 80, 90, 95, 98, 100]
DCT = np.array([[(np.sqrt(1 / 8) if u == 0 else np.sqrt(2 / 8)) * np.cos((2 * x + 1) * u * np.pi / 16)
                 for x in range(8)] for u in range(8)])


def fail(msg):
    sys.exit("qtable_study.py: " + msg)


def records(path, n):
    try:
        raw = np.fromfile(path, np.uint8)
    except OSError as e:
        fail("%s: %s" % (path, e.strerror))
    if raw.size % 3073 or raw.size // 3073 < n:
        fail("%s: %d bytes, not %d whole 3073-byte records" % (path, raw.size, n))
    return torch.from_numpy(raw.reshape(-1, 3073)[:n, 1:].reshape(n, 3, 32, 32).copy())


def jnd_and_labels(twin, u8):
    labels, es = [], []
    for s in range(0, len(u8), 250):
        before, _, e, _, _, _ = twin.generate(u8[s:s + 250])
        labels.append(before)
        es.append(e)
    return torch.cat(labels), torch.cat(es).numpy() * 255.0


def spectrum(e):
    """RMS over images and blocks of the 8x8 DCT of e in YCbCr: (3, 8, 8), levels."""
    r, g, b = e[:, 0], e[:, 1], e[:, 2]
    ycc = np.stack([0.299 * r + 0.587 * g + 0.114 * b, -0.168736 * r - 0.331264 * g + 0.5 * b,
                    0.5 * r - 0.418688 * g - 0.081312 * b], 1)
    n, _, h, w = ycc.shape
    blocks = ycc.reshape(n, 3, h // 8, 8, w // 8, 8).transpose(0, 1, 2, 4, 3, 5)
    coef = np.einsum("ux,ncijxy,vy->ncijuv", DCT, blocks, DCT)
    return np.sqrt((coef ** 2).mean((0, 2, 3)))


def scaled(table, q):
    s = (5000.0 / q if q < 50 else 200.0 - 2 * q) / 100.0
    return np.clip(np.floor(table * s + 0.5), 1, 255).astype(int)


def payload(data):
    sos = data.find(b"\xff\xda")
    return data.rfind(b"\xff\xd9") - (sos + 2 + data[sos + 2] * 256 + data[sos + 3])


def code_all(u8, q=None, tables=None):
    from PIL import Image
    bits, out = 0, []
    for im in u8.permute(0, 2, 3, 1).numpy():
        buf = io.BytesIO()
        if tables is None:
            Image.fromarray(im).save(buf, "JPEG", quality=q, subsampling=0, optimize=True)
        else:
            Image.fromarray(im).save(buf, "JPEG", qtables=[list(t.flatten()) for t in tables], subsampling=0,
                                     optimize=True)
        data = buf.getvalue()
        bits += 8 * payload(data)
        out.append(np.asarray(Image.open(io.BytesIO(data)).convert("RGB")))
    return bits / (len(u8) * u8.shape[2] * u8.shape[3]), torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2)


def pchip(xs, ys, x):
    """Monotone cubic (Fritsch-Carlson) through (xs, ys), xs increasing, evaluated at x."""
    xs, ys = np.asarray(xs, float), np.asarray(ys, float)
    h, d = np.diff(xs), np.diff(ys) / np.diff(xs)
    m = np.zeros_like(xs)
    if len(xs) == 2:
        m[:] = d[0]
    for k in range(1, len(xs) - 1):
        if d[k - 1] * d[k] > 0:
            w1, w2 = 2 * h[k] + h[k - 1], h[k] + 2 * h[k - 1]
            m[k] = (w1 + w2) / (w1 / d[k - 1] + w2 / d[k])
    for a, b in ((0, 0), (-1, -1)) if len(xs) > 2 else ():  # ends: three-point, shape-preserving (bdrate.c)
        h0, h1, s0, s1 = (h[0], h[1], d[0], d[1]) if a == 0 else (h[-1], h[-2], d[-1], d[-2])
        v = ((2 * h0 + h1) * s0 - h0 * s1) / (h0 + h1)
        if np.sign(v) != np.sign(s0):
            v = 0.0
        elif np.sign(s0) != np.sign(s1) and abs(v) > abs(3 * s0):
            v = 3 * s0
        m[a] = v
    k = np.clip(np.searchsorted(xs, x) - 1, 0, len(xs) - 2)
    t = (x - xs[k]) / h[k]
    return ((2 * t ** 3 - 3 * t ** 2 + 1) * ys[k] + (t ** 3 - 2 * t ** 2 + t) * h[k] * m[k]
            + (-2 * t ** 3 + 3 * t ** 2) * ys[k + 1] + (t ** 3 - t ** 2) * h[k] * m[k + 1])


def monotone(points):
    """(rca, log bpp) with RCA strictly increasing: points sorted by RCA, a point that does not raise it dropped."""
    out = []
    for bpp, rca in sorted(points, key=lambda p: (p[1], p[0])):
        if not out or rca > out[-1][0] + 1e-12:
            out.append((rca, np.log(bpp)))
    return [p[0] for p in out], [p[1] for p in out]


def bd_rate(plain, method):
    (pr, pl), (mr, ml) = monotone(plain), monotone(method)
    lo, hi = max(pr[0], mr[0]), min(pr[-1], mr[-1])
    if len(pr) < 2 or len(mr) < 2 or hi <= lo:
        return float("nan")
    r = np.linspace(lo, hi, 401)
    return float(np.exp(np.mean(pchip(mr, ml, r) - pchip(pr, pl, r))) - 1)


def saving_at(plain, method, rca):
    (pr, pl), (mr, ml) = monotone(plain), monotone(method)
    if not (pr[0] <= rca <= pr[-1] and mr[0] <= rca <= mr[-1]):
        return float("nan")
    return float(1 - np.exp(pchip(mr, ml, rca) - pchip(pr, pl, rca)))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="models/jnd_v1.0.safetensors")
    ap.add_argument("--cifar", default=os.environ.get("DMVJND_DATA", "data/cifar-10-batches-bin"))
    ap.add_argument("--train", type=int, default=2000)
    ap.add_argument("--test", type=int, default=1000)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    twin = Twin(a.model)
    _, e_train = jnd_and_labels(twin, records(os.path.join(a.cifar, "data_batch_1.bin"), a.train))
    test = records(os.path.join(a.cifar, "test_batch.bin"), a.test)
    ref, _ = jnd_and_labels(twin, test)
    S = spectrum(e_train)
    luma, chroma = 2 * S[0], 2 * np.sqrt((S[1] ** 2 + S[2] ** 2) / 2)
    tables = {"jnd": [luma, chroma], "flat": [np.full((8, 8), luma.mean()), np.full((8, 8), chroma.mean())],
              "jnd-chroma": [STD_LUMA, chroma]}
    np.set_printoptions(precision=1, suppress=True, linewidth=120)
    print("2 x JND spectrum, luma (levels):\n%s\nchroma:\n%s" % (luma, chroma))

    def measure(name, quality, **kw):
        bpp, dec = code_all(test, **kw)
        rca = float((twin.classify(dec.float() / 255.0, 500) == ref).float().mean())
        print("%-10s q %3d  %7.3f bpp  RCA %.4f" % (name, quality, bpp, rca), flush=True)
        return bpp, rca

    curves = {"plain": [measure("plain", q, q=q) for q in PLAIN_QUALITIES]}
    for name, t in tables.items():
        curves[name] = [measure(name, q, tables=[scaled(t[0], q), scaled(t[1], q)]) for q in QUALITIES]
    summary = {}
    for name in tables:
        summary[name] = {"bd_rate": bd_rate(curves["plain"], curves[name]),
                         "saving_at_0.95": saving_at(curves["plain"], curves[name], 0.95),
                         "saving_at_0.98": saving_at(curves["plain"], curves[name], 0.98)}
        print("%-10s BD-rate %+.1f%%  saved at RCA 0.95 %+.1f%%  at 0.98 %+.1f%%" % (
            name, 100 * summary[name]["bd_rate"], 100 * summary[name]["saving_at_0.95"],
            100 * summary[name]["saving_at_0.98"]))
    print(json.dumps({"train": a.train, "test": a.test, "points": {k: [[round(b, 4), round(r, 4)] for b, r in v]
                                                                  for k, v in curves.items()},
                      "summary": summary}))


if __name__ == "__main__":
    main()
