#!/usr/bin/python3
"""PyTorch reference numbers for dmvjnd's optimisers and LR schedules.

Runs torch.optim.SGD / Adam / AdamW for a few steps on fixed small tensors
with fixed gradients, and torch's LR schedulers for a few schedule specs, and
writes everything (inputs and expected outputs) as the C header
tests/data/optim_expected.h, which tests/test_optim.c and
tests/test_schedule.c compare against. The C tests therefore run without
torch; this script re-derives the numbers when torch is available.

Usage (from the repository root; needs torch, e.g. Debian's python3-torch):
    /usr/bin/python3 tools/torch/optim_reference.py           # regenerate the header
    /usr/bin/python3 tools/torch/optim_reference.py --check   # compare with the committed one

--check exits 1 if any number of the committed header differs from what this
torch computes by more than 1e-6 relative (so a different torch build, whose
vectorised kernels may round differently in the last bit, still passes).

Conventions the C side relies on:
  * Inputs are closed-form functions of the index (no RNG), rounded to float32.
  * Learning rates are float32 values (dj_optim_step takes a float), so torch
    and dmvjnd see the same lr; the other hyperparameters are doubles printed
    with repr(), which C parses to the same double.
  * Parameter tensors with decay=1 go in a param group with the case's
    weight_decay, the others in a group with weight_decay 0: what dmvjnd's
    per-tensor `decay` flag means.
  * Optimiser state is written in dmvjnd's layout: slot by slot (SGD:
    momentum_buffer; Adam: exp_avg then exp_avg_sq), each slot the tensors'
    values concatenated in list order.
  * Schedule values: lr(k) is what scheduler.get_last_lr() reports after k
    calls of scheduler.step(), for k = 0..len-1.
"""
import argparse
import math
import os
import re
import struct
import sys

import torch

SIZES = [15, 7, 36]  # parameter tensors (flattened)
DECAY = [1, 0, 1]
STEPS = 5
N = sum(SIZES)
HEADER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "data", "optim_expected.h")


def f32(x):
    return struct.unpack("f", struct.pack("f", x))[0]


def initial_weights():
    # |w| in [0.25, 1]: away from 0 so a relative comparison is meaningful.
    return [f32((1 if i % 3 else -1) * (0.25 + 0.75 * abs(math.sin(0.37 * i + 0.11)))) for i in range(N)]


def gradients():
    # Magnitudes from 1e-4 to ~1.4 (exercises Adam's eps), element 5 always 0,
    # otherwise the sign of the weight: then g + wd*w never cancels, so
    # momentum / exp_avg stay well away from 0 and a 1e-6 relative comparison
    # of them is meaningful (with cancellation an ulp of difference in an
    # input becomes a large relative one in the result).
    g = []
    for t in range(STEPS):
        row = []
        for i in range(N):
            scale = 10 ** (-4 + 4 * ((i * 0.6180339887) % 1.0))
            sign = 1 if i % 3 else -1  # sign of initial_weights()[i]
            v = 0.0 if i == 5 else sign * scale * (1 + 0.4 * math.sin(1.3 * t + 0.7 * i))
            row.append(f32(v))
        g.append(row)
    return g


# kind: 0 SGD, 1 Adam, 2 AdamW (enum dj_optim_kind). Learning rates are
# small enough that no weight gets near 0 in 5 steps (checked in run_case),
# for the same reason.
CASES = [
    dict(name="sgd_nesterov", kind=0, weight_decay=1e-2, momentum=0.9, dampening=0.0, nesterov=1,
         lr=[0.01] * STEPS),
    dict(name="sgd_momentum_dampening", kind=0, weight_decay=5e-4, momentum=0.9, dampening=0.1, nesterov=0,
         lr=[0.02, 0.02, 0.01, 0.01, 0.005]),
    dict(name="sgd_plain", kind=0, weight_decay=1e-2, momentum=0.0, dampening=0.0, nesterov=0, lr=[0.03] * STEPS),
    dict(name="adam_l2", kind=1, weight_decay=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, lr=[1e-3] * STEPS),
    dict(name="adam_plain", kind=1, weight_decay=0.0, beta1=0.9, beta2=0.999, eps=1e-8, lr=[0.02] * STEPS),
    dict(name="adamw", kind=2, weight_decay=1e-2, beta1=0.8, beta2=0.99, eps=1e-6,
         lr=[1e-3, 2e-3, 3e-3, 2e-3, 1e-3]),
]


def run_case(case, w0, grads):
    lrs = [f32(x) for x in case["lr"]]
    params, offsets = [], []
    off = 0
    for n in SIZES:
        params.append(torch.tensor(w0[off:off + n], dtype=torch.float32, requires_grad=True))
        offsets.append(off)
        off += n
    wd = case["weight_decay"]
    groups = [dict(params=[p for p, d in zip(params, DECAY) if d], weight_decay=wd),
              dict(params=[p for p, d in zip(params, DECAY) if not d], weight_decay=0.0)]
    if case["kind"] == 0:
        opt = torch.optim.SGD(groups, lr=lrs[0], momentum=case["momentum"], dampening=case["dampening"],
                              nesterov=bool(case["nesterov"]))
        slots = ["momentum_buffer"] if case["momentum"] != 0 else []
    else:
        cls = torch.optim.Adam if case["kind"] == 1 else torch.optim.AdamW
        opt = cls(groups, lr=lrs[0], betas=(case["beta1"], case["beta2"]), eps=case["eps"])
        slots = ["exp_avg", "exp_avg_sq"]
    for t in range(STEPS):
        for g in opt.param_groups:
            g["lr"] = lrs[t]
        for p, o, n in zip(params, offsets, SIZES):
            p.grad = torch.tensor(grads[t][o:o + n], dtype=torch.float32)
        opt.step()
    w = [x for p in params for x in p.detach().tolist()]
    assert min(abs(x) for x in w) > 0.1, "%s: a weight came near 0" % case["name"]
    state = [x for s in slots for p in params for x in opt.state[p][s].tolist()]
    return lrs, w, state


def scheduler_values(make, base_lr, count):
    """lr(k) for k in [0, count): get_last_lr() after k scheduler steps."""
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=base_lr)
    sched = make(opt)
    out = []
    for _ in range(count):
        out.append(sched.get_last_lr()[0])
        opt.step()
        sched.step()
    return out


def schedules():
    S = torch.optim.lr_scheduler
    res = []

    def add(spec, base_lr, total, count, make):
        res.append(dict(spec=spec, base_lr=base_lr, total=total, lr=scheduler_values(make, base_lr, count)))

    add("step:10,20:0.5", 0.1, 0, 30, lambda o: S.MultiStepLR(o, milestones=[10, 20], gamma=0.5))
    add("step:10,20+warmup:5:0.1", 0.1, 0, 30,
        lambda o: S.ChainedScheduler([S.LinearLR(o, start_factor=0.1, end_factor=1.0, total_iters=5),
                                      S.MultiStepLR(o, milestones=[10, 20], gamma=0.1)]))
    add("cosine:0.0001", 0.1, 50, 51, lambda o: S.CosineAnnealingLR(o, T_max=50, eta_min=1e-4))
    # With eta_min = 0 CosineAnnealingLR's recursive update is multiplicative,
    # so chaining it with LinearLR gives exactly warm-up factor * cosine.
    add("cosine+warmup:5:0.1", 0.1, 40, 41,
        lambda o: S.ChainedScheduler([S.LinearLR(o, start_factor=0.1, end_factor=1.0, total_iters=5),
                                      S.CosineAnnealingLR(o, T_max=40, eta_min=0.0)]))
    add("onecycle:0.3", 0.1, 100, 100,
        lambda o: S.OneCycleLR(o, max_lr=0.1, total_steps=100, pct_start=0.3, anneal_strategy="cos",
                               cycle_momentum=False, three_phase=False))
    add("onecycle:0.25:10:100", 2.0, 37, 37,
        lambda o: S.OneCycleLR(o, max_lr=2.0, total_steps=37, pct_start=0.25, div_factor=10.0,
                               final_div_factor=100.0, anneal_strategy="cos", cycle_momentum=False,
                               three_phase=False))
    return res


def c_float(x):
    # 9 significant digits round-trip a float32; C needs a '.' or exponent
    # before the f suffix ("0f" is not a literal).
    s = "%.9g" % x
    if not any(ch in s for ch in ".eE"):
        s += ".0"
    return s + "f"


def fmt_floats(xs, per_line=6):
    items = [c_float(x) for x in xs]
    return ",\n".join("        " + ", ".join(items[i:i + per_line]) for i in range(0, len(items), per_line))


def fmt_doubles(xs, per_line=4):
    items = [repr(float(x)) for x in xs]
    return ",\n".join("        " + ", ".join(items[i:i + per_line]) for i in range(0, len(items), per_line))


def generate():
    w0, grads = initial_weights(), gradients()
    out = []
    out.append("/* Generated by tools/torch/optim_reference.py with torch %s -- do not edit.\n"
               " * Regenerate: /usr/bin/python3 tools/torch/optim_reference.py\n"
               " * Inputs and PyTorch's results for tests/test_optim.c and tests/test_schedule.c;\n"
               " * see the script for the conventions. */" % torch.__version__)
    out.append("#ifndef DMVJND_TESTS_OPTIM_EXPECTED_H\n#define DMVJND_TESTS_OPTIM_EXPECTED_H\n")
    out.append("#include <stddef.h>\n")
    out.append("#define OPTX_TENSORS %d\n#define OPTX_N %d\n#define OPTX_STEPS %d\n" % (len(SIZES), N, STEPS))
    out.append("static const size_t optx_sizes[OPTX_TENSORS] = {%s};" % ", ".join(map(str, SIZES)))
    out.append("static const int optx_decay[OPTX_TENSORS] = {%s};\n" % ", ".join(map(str, DECAY)))
    out.append("static const float optx_w0[OPTX_N] = {\n%s};\n" % fmt_floats(w0))
    out.append("static const float optx_grad[OPTX_STEPS][OPTX_N] = {\n%s};\n" %
               ",\n".join("    {\n%s}" % fmt_floats(row) for row in grads))
    out.append("typedef struct optx_case {\n"
               "    const char *name;\n"
               "    int kind; /* enum dj_optim_kind */\n"
               "    double weight_decay, momentum, dampening;\n"
               "    int nesterov;\n"
               "    double beta1, beta2, eps;\n"
               "    float lr[OPTX_STEPS];\n"
               "    float w[OPTX_N];         /* parameters after OPTX_STEPS steps */\n"
               "    int slots;\n"
               "    float state[2 * OPTX_N]; /* dmvjnd's state layout */\n"
               "} optx_case;\n")
    out.append("static const optx_case optx_cases[] = {")
    for case in CASES:
        lrs, w, state = run_case(case, w0, grads)
        slots = len(state) // N
        out.append("    {\"%s\", %d, %r, %r, %r, %d, %r, %r, %r,\n" % (
            case["name"], case["kind"], case["weight_decay"], case.get("momentum", 0.0),
            case.get("dampening", 0.0), case.get("nesterov", 0), case.get("beta1", 0.0),
            case.get("beta2", 0.0), case.get("eps", 0.0)) +
            "     {%s},\n" % ", ".join(c_float(x) for x in lrs) +
            "     {\n%s},\n" % fmt_floats(w) +
            "     %d,\n" % slots +
            "     {\n%s}},\n" % (fmt_floats(state) if state else "        0"))
    out.append("};\n#define OPTX_CASES ((int)(sizeof optx_cases / sizeof optx_cases[0]))\n")

    out.append("typedef struct optx_sched {\n"
               "    const char *spec; /* dj_schedule_parse grammar, steps_per_unit 1 */\n"
               "    double base_lr;\n"
               "    long total_steps;\n"
               "    int count;\n"
               "    double lr[128]; /* lr(0..count-1) from torch's scheduler */\n"
               "} optx_sched;\n")
    out.append("static const optx_sched optx_scheds[] = {")
    for s in schedules():
        assert len(s["lr"]) <= 128
        out.append("    {\"%s\", %r, %d, %d, {\n%s}},\n" % (s["spec"], s["base_lr"], s["total"], len(s["lr"]),
                                                        fmt_doubles(s["lr"])))
    out.append("};\n#define OPTX_SCHEDS ((int)(sizeof optx_scheds / sizeof optx_scheds[0]))\n")
    out.append("#endif")
    return "\n".join(out) + "\n"


NUM = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")


def numbers(text):
    # Every numeric literal after the banner comment, in order.
    body = text.split("*/", 1)[1]
    return [float(x) for x in NUM.findall(body)]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--check", action="store_true", help="compare with the committed header instead of writing it")
    ap.add_argument("--out", default=HEADER, help="header path (default tests/data/optim_expected.h)")
    args = ap.parse_args()
    text = generate()
    if not args.check:
        os.makedirs(os.path.dirname(args.out), exist_ok=True)
        with open(args.out, "w") as f:
            f.write(text)
        print("wrote", os.path.normpath(args.out))
        return 0
    with open(args.out) as f:
        old = numbers(f.read())
    new = numbers(text)
    if len(old) != len(new):
        print("optim_reference: %s has %d numbers, torch gives %d" % (args.out, len(old), len(new)))
        return 1
    worst = max((abs(a - b) / (1e-12 + 1e-6 * abs(b)) for a, b in zip(old, new)), default=0.0)
    ok = worst <= 1.0
    print("optim_reference: %s (worst error %.3g of tolerance)" % ("OK" if ok else "MISMATCH", worst))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
