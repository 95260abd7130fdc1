#!/usr/bin/env python3
"""Layer table of a PyTorch twin: each conv / BN / pool / linear with its
output shape (C x H x W), trainable parameters and forward MFLOP (2 x MACs,
convs and the linear layer only: the rule of dmvjnd's dj_graph_flops), as
Markdown. The totals must equal what the C builder reports
(`build/tools/parity_dump DIR MODEL`, `dmvjnd bench --model MODEL`, and
tests/test_models.c checks them against hand counts).

    summary.py MODEL [MODEL ...]
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402

import models  # noqa: E402


def table(name):
    model = models.build(name).eval()
    rows = []

    def hook(mod, inp, out):
        params = sum(p.numel() for p in mod.parameters(recurse=False))
        if isinstance(mod, nn.Conv2d):
            flops = 2 * mod.in_channels * mod.out_channels * mod.kernel_size[0] * mod.kernel_size[1] * \
                out.shape[2] * out.shape[3]
            what = "conv %dx%d %d->%d" % (mod.kernel_size[0], mod.kernel_size[1], mod.in_channels, mod.out_channels)
        elif isinstance(mod, nn.Linear):
            flops = 2 * mod.in_features * mod.out_features
            what = "linear %d->%d (after global average pooling)" % (mod.in_features, mod.out_features)
        elif isinstance(mod, nn.BatchNorm2d):
            flops, what = 0, "BN + ReLU"
        elif isinstance(mod, nn.MaxPool2d):
            flops, what = 0, "max pool %d/%d pad %d" % (mod.kernel_size, mod.stride, mod.padding)
        elif isinstance(mod, nn.AvgPool2d):
            flops, what = 0, "avg pool %d/%d" % (mod.kernel_size, mod.stride)
        else:
            return
        shape = "x".join(str(s) for s in out.shape[1:]) if out.dim() == 4 else str(out.shape[1])
        rows.append((names[mod], what, shape, params, flops))

    names = {m: n for n, m in model.named_modules()}
    handles = [m.register_forward_hook(hook) for m in model.modules()]
    with torch.no_grad():
        model(torch.zeros(1, 3, 32, 32))
    for h in handles:
        h.remove()
    print("| layer | what | output | params | MFLOP |")
    print("|---|---|---|---:|---:|")
    for r in rows:
        print("| `%s` | %s | %s | %d | %.2f |" % (r[0], r[1], r[2], r[3], r[4] / 1e6))
    params = sum(p.numel() for p in model.parameters())
    flops = sum(r[4] for r in rows)
    print("| **total** | | | **%d** | **%.2f** |" % (params, flops / 1e6))
    return params, flops


if __name__ == "__main__":
    for n in sys.argv[1:] or ["alexnet", "vgg11bn", "resnet20", "densenet40bc"]:
        print("\n### %s\n" % n)
        table(n)
