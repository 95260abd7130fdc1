#!/usr/bin/env python3
"""PyTorch twin of one DMV-JND training step, the peer of `dmvjnd bench --jnd`.

The same networks and the same step as dj_jnd_step_run (src/jnd/train.c):
  e = JndEd([x, c])                      training mode (batch statistics)
  x_hat = clamp(x + e, -1, 1)            the paper's normalisation
  Loss1 = mean over the classifiers of CE(S_k(x_hat), l_k)
  Loss  = Loss1 + Loss2 + Loss3          (alpha = beta = 1)
  backward, Adam(lr 1e-5, weight_decay 1e-3) step of the E-D only.
The four classifiers (tools/torch/models.py: alexnet, vgg11bn, resnet20,
densenet40bc) are frozen the PyTorch way: eval() (running BN statistics) and
requires_grad False on every parameter, so autograd computes only the
gradient with respect to their input. Synthetic data: x uniform in [-1, 1],
c uniform in [0, 1], random labels. Timing as bench/bench_torch.py: warm-up
steps, then the median images/s of several timed runs. Prints one JSON
object: {"jnd_train_img_per_s": ...}.
"""
import argparse
import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch  # noqa: E402

import jnd  # noqa: E402
import models  # noqa: E402

CLASSIFIERS = ("alexnet", "vgg11bn", "resnet20", "densenet40bc")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=50)
    ap.add_argument("--width", type=float, default=1.0, help="E-D width multiplier")
    ap.add_argument("--classifiers", default=",".join(CLASSIFIERS),
                    help="architectures (models.build names), comma separated")
    ap.add_argument("--weights", default="",
                    help="optional dmvjnd weights files for them, comma separated (default: fresh initialisation)")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(1)

    names = [n for n in a.classifiers.split(",") if n]
    weights = [w for w in a.weights.split(",") if w]
    cls = []
    for i, name in enumerate(names):
        net = models.build(name)
        if weights:
            models.load_safetensors(net, weights[i])
        net.eval()
        for p in net.parameters():
            p.requires_grad_(False)
        cls.append(net)
    ed = jnd.JndEd(width=a.width)
    ed.train()
    opt = torch.optim.Adam(ed.parameters(), lr=1e-5, weight_decay=1e-3)

    n = a.batch
    x = torch.rand(n, 3, 32, 32) * 2 - 1
    c = torch.rand(n, 1, 32, 32)
    labels = [torch.randint(0, 10, (n,)) for _ in cls]

    def step():
        opt.zero_grad()
        e = ed(jnd.stack(x, c))
        x_hat = jnd.apply(x, e, clip=True)
        loss1 = jnd.loss1([net(x_hat) for net in cls], labels)
        loss = loss1 + 1.0 * jnd.loss2(e, c) + 1.0 * jnd.loss3(e, c)
        loss.backward()
        opt.step()

    for _ in range(a.warmup):
        step()
    rates = []
    for _ in range(a.runs):
        t0 = time.perf_counter()
        for _ in range(a.steps):
            step()
        rates.append(n * a.steps / (time.perf_counter() - t0))
    print(json.dumps({"model": "jnd", "batch": n, "threads": a.threads, "jnd_width": a.width,
                      "classifiers": len(cls), "torch": torch.__version__,
                      "jnd_train_img_per_s": round(statistics.median(rates), 1)}))


if __name__ == "__main__":
    main()
