#!/usr/bin/env python3
"""How far can per-image JPEG quality allocation go without checking the coded images with the
classifiers? (docs/compression.md, "jnd-alloc: per-image allocation without the classifiers";
`dmvjnd compress --methods jnd-alloc` is the built form of the last predictor below.)

    /usr/bin/python3 tools/torch/alloc_study.py [--model models/jnd_v1.0.safetensors]
        [--cifar data/cifar-10-batches-bin] [--train 3000] [--test 1000] [--cache DIR] [--threads 2]

Data: every image coded by plain JPEG (PIL = libjpeg-turbo, baseline 4:4:4, optimised Huffman
tables, as dmvjnd's plain coding) at the ladder 5, 10, ..., 100; per image and quality the
header-free bits (SOS to EOI), the decoded image's distortion and whether each of the model's four
classifiers keeps its label of x (the PyTorch twins). Training images: the first --train records of
data_batch_2; test images: the first --test test records. With --cache the arrays are kept in
DIR/alloc_{train,test}.npz and reused when present.

Allocation: per image, the ladder quality maximising P(q) - lambda * bits(q), where P is a
predicted mean share of labels kept; sweeping lambda traces a rate-RCA curve, compared with plain
(every image at the same quality) by BD-rate and the bits saved at RCA 0.95 and 0.98 (PCHIP, as
dmvjnd compress). Predictors, each a logistic regression per classifier fitted on the training
images, evaluated on the test images:
  * oracle: the true labels kept (the ceiling; what guard searches for);
  * distortion: features of the coded image that need no classifier (log MSE, log CAM-weighted
    MSE, share of values past the DMV-JND budget 255|e|, log bits);
  * margin + distortion: the same plus each classifier's margin p1 - p2 on x (from the forward
    pass on x that the JND generator makes anyway for the class activation maps), and its
    products with the distortion features;
  * + margins on x + e: the same plus each classifier's margin of its label on the JND image
    x + e (p_label - max other p, from the pass that labels x + e), for k and as the minimum,
    and its products with the distortion features;
  * jnd-alloc's features: the same plus what classifier k thinks x is: its log-probabilities of
    the classes on x (clamped at -12) and log MSE and log bits times "k's label of x is class j"
    (include/dmvjnd/compress.h, "jnd-alloc");
  * ... without the JND: jnd-alloc's features less the two the DMV-JND gives (the margins on
    x + e and the share of values past 255|e|): what the JND itself adds to the allocation.
Savings are printed at RCA 0.6, 0.7, 0.8, 0.9, 0.95 and 0.98: where along the curve each predictor
saves. Then the share of labels kept at q30 and q70 by class, on the training images; per quality, how well two of the predictors tell which labels survive (the AUC of
each classifier's predicted probability, mean over the classifiers). Also the Spearman correlation of the coarsest quality keeping all labels with per-image mean |e|,
mean c and the smallest margin. Prints one line per predictor and a JSON line.
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
from qtable_study import bd_rate, payload, records, saving_at  # noqa: E402

LADDER = list(range(5, 96, 5)) + [98, 100]  # 98: plain's curve near RCA 0.98 is measured, not interpolated
FEATURES = ["mse", "cmse", "over", "bits"]


def margins_and_cam(twin, u8):
    """Each classifier's p1 - p2 on x (n, K) and the mean CAM c (n, h, w)."""
    x = twin.normalize(u8.float() / 255.0)
    ms, maps = [], []
    with torch.no_grad():
        for net in twin.nets:
            p = torch.softmax(net(x), 1).topk(2, 1)[0]
            ms.append((p[:, 0] - p[:, 1]).numpy())
            maps.append(twin.labels_and_cam(net, x)[1])
    return np.stack(ms, 1), (sum(maps) / len(maps)).numpy()


def prepare(twin, u8):
    """What the coding does not change: labels of x, e, margins, c."""
    ref, es, ms, cs = [], [], [], []
    for s in range(0, len(u8), 250):
        before, _, e, _, _, _ = twin.generate(u8[s:s + 250])
        m, c = margins_and_cam(twin, u8[s:s + 250])
        ref.append(before), es.append(e.numpy() * 255.0), ms.append(m), cs.append(c)
    return torch.cat(ref), np.concatenate(es), np.concatenate(ms), np.concatenate(cs)


def code_at(twin, u8, q, ref, e, cam):
    """Per image at quality q: bits, kept (K), MSE, CAM-weighted MSE, share of values past 255|e|."""
    from PIL import Image
    X = u8.permute(0, 2, 3, 1).numpy()
    bits, dec = np.zeros(len(u8)), []
    for i in range(len(u8)):
        buf = io.BytesIO()
        Image.fromarray(X[i]).save(buf, "JPEG", quality=q, subsampling=0, optimize=True)
        data = buf.getvalue()
        bits[i] = 8 * payload(data)
        dec.append(np.asarray(Image.open(io.BytesIO(data)).convert("RGB")))
    dec = np.stack(dec)
    df = dec.astype(np.float32) - X
    after = twin.classify(torch.from_numpy(dec).permute(0, 3, 1, 2).float() / 255, 500)
    return {"bits": bits, "kept": (after == ref).numpy(), "mse": (df ** 2).mean((1, 2, 3)),
            "cmse": ((df ** 2).mean(3) * cam).mean((1, 2)),
            "over": (np.abs(df) > np.abs(e).transpose(0, 2, 3, 1)).mean((1, 2, 3))}


def build(twin, u8):
    ref, e, margin, cam = prepare(twin, u8)
    cols = []
    for q in LADDER:
        cols.append(code_at(twin, u8, q, ref, e, cam))
        print("coded q %d of %d images" % (q, len(u8)), file=sys.stderr, flush=True)
    d = {k: np.stack([c[k] for c in cols], 1) for k in cols[0]}
    d["margin"] = margin
    return d


def hat_margins(twin, u8):
    """Each classifier's margin of its label of x on the stored JND image x + e (n, K)."""
    out = []
    for s in range(0, len(u8), 250):
        before, _, _, xh, _, _ = twin.generate(u8[s:s + 250])
        x = twin.normalize(xh.float() / 255.0)
        ms = []
        with torch.no_grad():
            for k, net in enumerate(twin.nets):
                p = torch.softmax(net(x), 1)
                own = p.gather(1, before[:, k:k + 1])[:, 0]
                other = p.scatter(1, before[:, k:k + 1], -1.0).max(1)[0]
                ms.append((own - other).numpy())
        out.append(np.stack(ms, 1))
    return np.concatenate(out)


def log_probs(twin, u8):
    """Each classifier's log-softmax on x (n, K, classes) and its label of x (n, K)."""
    lp = []
    with torch.no_grad():
        for s in range(0, len(u8), 500):
            x = twin.normalize(u8[s:s + 500].float() / 255.0)
            lp.append(np.stack([torch.log_softmax(net(x), 1).numpy() for net in twin.nets], 1))
    lp = np.concatenate(lp)
    return lp, lp.argmax(-1)


def load_or_build(twin, path, u8):
    if path and os.path.exists(path):
        d = dict(np.load(path))
    else:
        d = build(twin, u8)
    if "hat" not in d:  # caches written before the x + e margins were studied
        d["hat"] = hat_margins(twin, u8)
    if "log_prob" not in d:  # caches written before the class features were studied
        d["log_prob"], d["label"] = log_probs(twin, u8)
    if path:
        np.savez(path, **d)
    return d


def features(d, with_margin, k, with_hat=False, with_class=False, with_jnd=True):
    """Design matrix (n*L, f) for classifier k. with_jnd=False leaves out the share of values past
    the DMV-JND budget (the margins on x + e, the JND's other term, go with with_hat)."""
    n, L = d["bits"].shape
    mse, bits = np.log(d["mse"] + 1e-3), np.log(d["bits"] / 1024)
    F = np.stack([mse, np.log(d["cmse"] + 1e-3)] + ([d["over"]] if with_jnd else []) + [bits], -1)
    cols = [F, np.ones((n, L, 1))]
    if with_margin:
        lm = np.log(np.clip(d["margin"], 1e-4, 1))
        mk = np.repeat(lm[:, None, k:k + 1], L, 1)
        cols += [mk, np.repeat(lm.min(1)[:, None, None], L, 1), F * mk]
    if with_hat:
        hm = np.clip(d["hat"], -1, 1)
        hk = np.repeat(hm[:, None, k:k + 1], L, 1)
        cols += [hk, np.repeat(hm.min(1)[:, None, None], L, 1), F * hk]
    if with_class:
        lp = np.maximum(d["log_prob"][:, k], -12)  # (n, classes)
        onehot = np.eye(lp.shape[1])[d["label"][:, k]]
        mb = np.stack([mse, bits], -1)
        cols += [np.repeat(lp[:, None], L, 1), (mb[:, :, :, None] * onehot[:, None, None, :]).reshape(n, L, -1)]
    return np.concatenate(cols, -1).reshape(n * L, -1)


def logistic(X, y, iters=50, l2=1e-3):
    """L2-regularised logistic regression by Newton's method."""
    w = np.zeros(X.shape[1])
    for _ in range(iters):
        p = 1 / (1 + np.exp(-X @ w))
        g = X.T @ (p - y) / len(y) + l2 * w
        H = (X * (p * (1 - p))[:, None]).T @ X / len(y) + l2 * np.eye(len(w))
        w -= np.linalg.solve(H, g)
    return w


def predicted_each(train, test, *which):
    """Each classifier's predicted probability of keeping its label, (n, L, K)."""
    K = train["kept"].shape[2]
    n, L = test["bits"].shape
    P = np.zeros((n, L, K))
    for k in range(K):
        w = logistic(features(train, *which[:1], k, *which[1:]), train["kept"][:, :, k].reshape(-1).astype(float))
        P[:, :, k] = (1 / (1 + np.exp(-features(test, *which[:1], k, *which[1:]) @ w))).reshape(n, L)
    return P


def predicted(train, test, *which):
    return predicted_each(train, test, *which).mean(-1)


def auc(score, kept):
    """Area under the ROC curve of score for kept (ties by mean rank)."""
    r, n1 = ranks(score), kept.sum()
    return float((r[kept].sum() - n1 * (n1 + 1) / 2) / (n1 * (len(kept) - n1)))


def allocated(d, score):
    n, L = d["bits"].shape
    pts = []
    for lam in np.exp(np.linspace(np.log(1e-6), np.log(1e-1), 120)):
        pick = np.argmax(score - lam * d["bits"], 1)
        pts.append((d["bits"][np.arange(n), pick].sum() / (n * 1024), float(d["kept"][np.arange(n), pick].mean())))
    return pts


def ranks(v):
    """Ranks 1..n, ties given their mean rank."""
    order = np.argsort(v, kind="mergesort")
    r = np.empty(len(v))
    r[order] = np.arange(1, len(v) + 1)
    for u in np.unique(v):
        tie = v == u
        r[tie] = r[tie].mean()
    return r


def spearman(a, b):
    return float(np.corrcoef(ranks(np.asarray(a, float)), ranks(np.asarray(b, float)))[0, 1])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="models/jnd_v1.0.safetensors")
    ap.add_argument("--cifar", default=os.environ.get("DMVJND_DATA", "data/cifar-10-batches-bin"))
    ap.add_argument("--train", type=int, default=3000)
    ap.add_argument("--test", type=int, default=1000)
    ap.add_argument("--cache", default="")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    twin = Twin(a.model)
    if a.cache:
        os.makedirs(a.cache, exist_ok=True)
    cache = (lambda name: os.path.join(a.cache, name)) if a.cache else (lambda name: "")
    test = load_or_build(twin, cache("alloc_test.npz"), records(os.path.join(a.cifar, "test_batch.bin"), a.test))
    train = load_or_build(twin, cache("alloc_train.npz"),
                          records(os.path.join(a.cifar, "data_batch_2.bin"), a.train))
    n = test["bits"].shape[0]
    plain = [(test["bits"][:, l].sum() / (n * 1024), float(test["kept"][:, l].mean())) for l in range(len(LADDER))]
    curves = {"oracle": allocated(test, test["kept"].mean(-1)),
              "distortion": allocated(test, predicted(train, test, False)),
              "margin+distortion": allocated(test, predicted(train, test, True)),
              "+ margins on x + e": allocated(test, predicted(train, test, True, True)),
              "jnd-alloc features": allocated(test, predicted(train, test, True, True, True)),
              "... without the JND": allocated(test, predicted(train, test, True, False, True, False))}
    out = {}
    levels = [0.6, 0.7, 0.8, 0.9, 0.95, 0.98]  # where along the curve the saving is made
    for name, pts in curves.items():
        out[name] = {"bd_rate": bd_rate(plain, pts)}
        out[name].update({"saving_at_%g" % r: saving_at(plain, pts, r) for r in levels})
        print("%-20s BD-rate %+.1f%%  saved at RCA %s" % (name, 100 * out[name]["bd_rate"], "  ".join(
            "%g %+.1f%%" % (r, 100 * out[name]["saving_at_%g" % r]) for r in levels)))
    # Do classes lose their labels at different qualities? Share of labels kept on the training
    # images by the class of the label (each classifier's own), at q30 and q70.
    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    by_class = {}
    for c, name in enumerate(names):
        mask = train["label"] == c  # (n, K)
        by_class[name] = [float(train["kept"][:, LADDER.index(q)][mask].mean()) for q in (30, 70)]
    print("labels kept at q30 / q70 by class (training images): " +
          "  ".join("%s %.2f/%.2f" % (name, *v) for name, v in by_class.items()))
    # How well each predictor tells, at one quality, which labels survive: the AUC of classifier k's
    # predicted probability for "k keeps its label" over the test images, mean over k.
    each = {"margin+distortion": predicted_each(train, test, True),
            "jnd-alloc features": predicted_each(train, test, True, True, True)}
    K = test["kept"].shape[2]
    aucs = {name: {q: float(np.mean([auc(P[:, l, k], test["kept"][:, l, k]) for k in range(K)]))
                   for l, q in enumerate(LADDER) if q in (5, 10, 30, 50, 70, 85, 95, 100)} for name, P in each.items()}
    for name, a_ in aucs.items():
        print("AUC of %-18s %s" % (name, "  ".join("q%d %.3f" % qa for qa in a_.items())))
    # Does the shipped JND's per-image magnitude say which images tolerate coarse coding? The
    # coarsest ladder quality keeping all labels (101 when none does) against per-image features.
    keep_all = test["kept"].all(-1)
    coarsest = np.where(keep_all.any(1), np.array(LADDER)[keep_all.argmax(1)], 101)
    _, e, margin, cam = prepare(twin, records(os.path.join(a.cifar, "test_batch.bin"), a.test))
    corr = {"mean_abs_e": spearman(np.abs(e).mean((1, 2, 3)), coarsest),
            "mean_cam": spearman(cam.mean((1, 2)), coarsest), "min_margin": spearman(margin.min(1), coarsest)}
    print("Spearman with the coarsest quality keeping all labels: mean |e| %+.2f, mean c %+.2f, "
          "smallest margin %+.2f" % (corr["mean_abs_e"], corr["mean_cam"], corr["min_margin"]))
    print(json.dumps({"train": a.train, "test": a.test, "plain": plain, "summary": out, "auc": aucs,
                      "kept_by_class_q30_q70": by_class,
                      "spearman": corr}))


if __name__ == "__main__":
    main()
