#!/usr/bin/env python3
"""PyTorch peer of `dmvjnd bench`: the same model (tools/torch/models.py),
the same step (forward in training mode, cross-entropy, backward, SGD with
momentum 0.9 and weight decay 5e-4) and inference (eval mode, no_grad), on
synthetic data; prints one JSON object like `dmvjnd bench --json`."""
import argparse
import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools", "torch"))
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import models  # noqa: E402


def timed(fn, warmup, runs, steps, batch):
    for _ in range(warmup):
        fn()
    rates = []
    for _ in range(runs):
        t0 = time.perf_counter()
        for _ in range(steps):
            fn()
        rates.append(batch * steps / (time.perf_counter() - t0))
    return statistics.median(rates)


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", default="resnet20")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(1)
    net = models.build(a.model)
    x = torch.randn(a.batch, 3, 32, 32)
    y = torch.randint(0, 10, (a.batch,))
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)

    def train_step():
        opt.zero_grad()
        F.cross_entropy(net(x), y).backward()
        opt.step()

    net.train()
    train = timed(train_step, a.warmup, a.runs, a.steps, a.batch)
    net.eval()

    def infer_step():
        with torch.no_grad():
            net(x)

    infer = timed(infer_step, a.warmup, a.runs, a.steps, a.batch)
    print(json.dumps({"model": a.model, "batch": a.batch, "threads": a.threads, "torch": torch.__version__,
                      "train_img_per_s": round(train, 1), "infer_img_per_s": round(infer, 1)}))


if __name__ == "__main__":
    main()
