#!/usr/bin/env python3
"""GPU sweep of DMV-JND loss weights with the PyTorch twin of `dmvjnd train --preset fast`.

    python3 tools/torch/jnd_sweep.py --data DIR --classifiers F1,F2,... \\
        [--train-limit N] [--test-limit N] --configs "a,b,epochs[,lr];..." \\
        [--width 0.5] [--batch 50] [--e-init 0.1] [--lr 1e-3] [--device cuda] \\
        [--seed 1] [--eval-every K] [--time-budget S] [--group G] [--jobs P] \\
        [--init MODEL.safetensors] [--save-dir DIR] --out FILE.json

CIFAR-10 files may be cut to a whole number of 3073-byte records (`head -c $((3073 * N))`), to
carry less data to a GPU machine; the train split is the data_batch_*.bin present, in order.
tools/torch/cifar_pack.py carries the whole training set in two GPU calls (docs/results.md,
"Session 9").

Fine-tuning and shipping (--init, --save-dir, epochs 0): --init starts every config from a dmvjnd
JND model file (an x,cam E-D; its width and slope are used) instead of a fresh E-D, as `dmvjnd train
--init` does; --save-dir writes each config's E-D after every epoch as DIR/<name>.safetensors, a
dmvjnd JND model file that `dmvjnd eval` and `dmvjnd generate` read (the metadata's jnd.train.*
keys describe this run, jnd.train.trainer names this script). A config with 0 epochs gets as many
as fit --time-budget, measured after 30 steps and again after the first epoch.

For each config (alpha, beta, epochs[, peak lr]) a fresh E-D (tools/torch/jnd.py, JndEd) is
trained from the same seed against the frozen classifiers (tools/torch/models.py), exactly the
step of dj_jnd_step_run (src/jnd/train.c) with the recipe of dj_jnd_train_preset("fast"):

  x (normalised, mean = std = 0.5, each image mirrored with p = 0.5), c and the labels l_k from
  the cache; e = E-D([x, c]) in training mode; x_hat = clamp(x + e, -1, 1);
  Loss = (1/K) sum_k CE(S_k(x_hat), l_k) + alpha Loss2(e, c) + beta Loss3(e, c)  (unit: normalised);
  Adam (betas 0.9/0.999, eps 1e-8, coupled L2 weight decay 1e-3 on every trainable tensor, as
  torch.optim.Adam(weight_decay=...) and src/optim/adam.c), batch 50, last partial batch kept;
  E-D width 0.5, LeakyReLU 0.01, last convolution (dec.9 weight and bias) scaled by e_init = 0.1
  after PyTorch's default initialisation; lr(step) = "cosine+warmup:1:0.1" as src/optim/schedule.c:
  lr = peak (1 + cos(pi t / T)) / 2 over all T = epochs x steps_per_epoch steps (the cosine runs
  from step 0, the warm-up does not shift it), times 0.1 + 0.9 t / W during the first
  W = 1 epoch of steps (LinearLR's closed form, start factor 0.1, end 1).

The cache (once, before the configs; src/jnd/cache.c + src/jnd/cam.c): for every training image
and its mirror image, and for every test image (no mirror), each classifier's own label (argmax
of its logits, first maximum on ties) and its class activation map for that label
(W[label] . F, no bias, bilinear upsampling with align_corners = False, per-image min-max
normalisation; a constant map is all zeros), the maps merged by their mean and stored as 16-bit
fixed point: c = floor(m 65535 + 0.5) (clamped to 0..65535) times float(1/65535), the values
dj_jnd_cache_cam hands the step. The mirrored image gets the label and the CAM computed ON the
mirrored image (not the mirrored CAM), as the C cache (fill_batch reads entry [index][flip]).

Per epoch: one line with the training means over the epoch's batches as trained (E-D in training
mode, float x_hat, flips drawn), as the C trainer's CSV "train_*" columns: Loss, Loss1-3, RCA per
classifier and mean, PSNR of the 8-bit x_hat (dj_jnd_psnr(quantize = 1): round half up),
mean |e| (8-bit levels), N, N0, images/s, seconds. With --eval-every K also the test evaluation
every K epochs. After the last epoch the full evaluation of `dmvjnd eval` (src/jnd/evaluate.c,
dj_jnd_generator_run in src/jnd/generate.c) on the training subset (the first min(N, 10000)
training images, unmirrored) and on the test records, the records 0-999 (the bit-exact ones)
reported separately when --test-limit > 1000:
  E-D in inference mode (running BN statistics); e_pix = e std; the stored image
  x_hat = u8(x + 255 e_pix) (round half to even, clamp 0..255: to_u8 / dj_jnd_add_u8);
  RCA per classifier (labels of the stored x_hat vs the cached labels of x), their mean and the
  share of images on which every classifier kept its label; PSNR = mean over images of the
  8-bit PSNR (100 dB cap); mean |e| = mean |255 e_pix| (of the unclipped e) and mean |x_hat - x|
  in levels; RCA of the unclipped float x + e_pix (and the PSNR of e itself); the WGN test
  (per image, Gaussian noise rescaled to exactly the energy of the stored distortion
  sum (x_hat - x)^2, added, rounded and clamped as x_hat; its RCA and PSNR); homogeneity:
  u8(x + 255 (k/9) e_pix) for k = 1..8, RCA and PSNR each.

Output: progress lines (flushed), the JSON (--out; rewritten after every config, so a timeout
keeps the finished ones) and a Markdown table on stdout at the end.

Speed (GPU): everything (images, labels, maps) lives on the device, no DataLoader, no
torch.compile, no host-to-device copy inside a step (a pageable copy would wait for the GPU), no
.item() inside a step except for the progress lines. Configs are trained in groups (--group,
default: all of them, at most 8, on CUDA): one step feeds the same batch to every config's E-D and
runs the frozen classifiers ONCE on all the configs' x_hat concatenated (P x 50 images). The
classifiers are in eval() mode, so each image's logits and input gradient do not depend on the
other images: every config gets exactly what it would get alone (verified on CPU: identical
per-epoch figures with --group 1 and 2), and the classifiers' ~1000 kernel launches per step,
which dominate an eager step at batch 50, are paid once per group instead of once per config.
--jobs P runs P groups at once in P processes. --time-budget S (seconds from the start): a
config whose projected end (its remaining steps at the measured pace of its group, after 30 steps
and after every epoch, plus the final evaluations) passes the budget is stopped, and a config that
cannot start in time is skipped; the others go on.

--check-model FILE: no training; loads a dmvjnd JND model file (`dmvjnd train --out`) into the
twin and prints (a) the losses and train statistics of one training-mode step on the training
images 0..batch-1, unmirrored, at that model's weights (compare with the epoch-1 train_* CSV
row of `dmvjnd train --train-limit <batch> --lr 0 --flip 0 --epochs 1`, which never changes the
weights), and (b) the full evaluation (compare with `dmvjnd eval --model FILE`).

Where this twin deliberately differs from the C trainer (`dmvjnd train --preset fast`):
  1. Random streams: the E-D's initialisation is PyTorch's (torch.manual_seed(seed)), the epoch
     permutations and flips come from a CPU torch.Generator(seed), the WGN noise from
     torch.Generator(seed + 1); dmvjnd draws all of these from its own dj_rng. Same
     distributions, not the same numbers: a run here is not bit-identical to a C run.
  2. TF32: with --tf32 (default on CUDA) the training steps may run matrix products and
     convolutions in TF32 (torch.backends.cuda.matmul.allow_tf32, cudnn.allow_tf32;
     cudnn.benchmark on). The cache and every evaluation run in full FP32 (TF32 switched off
     around them), so labels and RCA are those of FP32 classifiers, as dmvjnd's.
  3. Classifiers in eval() mode with BN applied as such; dmvjnd folds BN into the convolutions
     (dj_graph_freeze). Equal up to float rounding (parity tests: logits within ~3e-5).
  4. Reductions: the losses are computed in float32 by PyTorch (C: per-image sums in double);
     CE and BN statistics likewise. Differences ~1e-6 relative.
  5. Divergence: the C trainer checks the loss before every step and stops; here (to avoid a
     GPU sync per step) the epoch's summed loss and the parameters are checked at the end of
     each epoch, and a non-finite one marks the config "diverged".
  6. No checkpoints, no resume, no per-epoch test metrics in training mode: the per-epoch test
     figures of the C CSV (test_* columns, from dj_jnd_step_eval: 8-bit x_hat by
     dj_denormalize_u8, round HALF UP) are replaced here by `dmvjnd eval`'s stored-image
     evaluation (round half to EVEN, x_u8 + 255 e_pix): the two round a value exactly at .5
     differently, and the C trainer also reports Loss on the test set, which is not computed here.
  7. Evaluation runs in large batches (--eval-batch) with all the images' tensors on the device;
     the C code runs 50 (trainer) or 200 (eval) at a time. The E-D in inference mode is per-image,
     so only float rounding can differ. The evaluation uses the 16-bit cached c (as the C
     trainer's evaluate), while `dmvjnd eval` recomputes c in float (difference <= 7.7e-6).
  8. Adam is torch.optim.Adam, fused=True where the installed PyTorch offers it on CUDA (else its
     default kernel); dmvjnd's Adam is the single-tensor algorithm in float. Equal up to rounding.
  9. Training subset evaluation: the first min(N, 10000) training images (the C trainer never
     evaluates the training set with the stored image; `dmvjnd eval --split train --limit`
     does, on the same first images).
 10. Grouping (--group, above) and --jobs are execution devices only: the same figures, up to
     float rounding (the classifiers' convolutions see P x 50 instead of 50 images).
 11. The clamp x_hat = clamp(x + e, -1, 1) uses torch.clamp with scalar bounds (gradient 1 on the
     closed interval, as dj_jnd_apply_backward); jnd.apply's maximum/minimum would split the
     gradient at an exact tie and builds its bounds on the host at every call.

Checks made on CPU against the C code (2 shipped classifiers, torch 1.13): the cache of
`dmvjnd train` (its jnd-cache.safetensors) and this script's agree on every label (train incl.
mirrors, test) and on every map within one 16-bit step (1.5e-5); --check-model reproduces the
C trainer's step statistics (Loss 3.059432 vs 3.059430, Loss1-3, RCA, PSNR, mean |e|, N, N0 to
the printed digits) and `dmvjnd eval`'s figures (RCA per classifier, all-kept, PSNR, mean |e|,
mean |x_hat - x|, float RCA and PSNR, homogeneity RCA and PSNR; WGN only statistically: other
noise); one Adam step from the C's initial weights gives the C's weights except where a gradient
element is ~1% of the typical one or less (sign flips under float rounding, cf. check_jnd.py).
"""
import argparse
import json
import math
import os
import re
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import jnd  # noqa: E402
import models  # noqa: E402

SIDE = 32
RECORD = 1 + 3 * SIDE * SIDE  # CIFAR-10 binary record: label byte + 3072 pixel bytes (CHW)
MEAN = np.array(jnd.PAPER_MEAN, dtype=np.float32)
STD = np.array(jnd.PAPER_STD, dtype=np.float32)
PSNR_MAX = jnd.PSNR_MAX
HOMOGENEITY_STEPS = 8
EXACT_TEST_RECORDS = 1000  # test records 0-999: the bit-exact ones of this copy
ARCHES = ("alexnet", "vgg11bn", "resnet20", "densenet40bc")


def log(msg):
    print(msg, flush=True)


# ------------------------------------------------------------------ data

def read_records(path, limit=None):
    """uint8 pixels (n, 3, 32, 32) and labels (n,) of a CIFAR-10 binary file.

    A file cut to a whole number of records (e.g. `head -c $((3073 * 2000))`) is read as is."""
    size = os.path.getsize(path)
    if size % RECORD:
        raise ValueError("%s: %d bytes is not a whole number of %d-byte records" % (path, size, RECORD))
    n = size // RECORD
    if limit is not None:
        n = min(n, limit)
    with open(path, "rb") as f:
        raw = np.frombuffer(f.read(n * RECORD), dtype=np.uint8).reshape(n, RECORD)
    return raw[:, 1:].reshape(n, 3, SIDE, SIDE).copy(), raw[:, 0].astype(np.int64)


def load_split(data_dir, split, limit):
    """The first `limit` records (None: all) of the split; train: data_batch_*.bin present, in order."""
    if split == "train":
        files = []
        for name in os.listdir(data_dir):
            m = re.fullmatch(r"data_batch_(\d+)\.bin", name)
            if m:
                files.append((int(m.group(1)), os.path.join(data_dir, name)))
        files = [p for _, p in sorted(files)]
    else:
        files = [os.path.join(data_dir, "test_batch.bin")]
    if not files or not all(os.path.exists(p) for p in files):
        raise FileNotFoundError("%s: no CIFAR-10 %s files" % (data_dir, split))
    xs, ys, used, have = [], [], [], 0
    for p in files:
        if limit is not None and have >= limit:
            break
        x, y = read_records(p, None if limit is None else limit - have)
        xs.append(x)
        ys.append(y)
        used.append(p)
        have += len(x)
    return np.concatenate(xs), np.concatenate(ys), used


def make_luts(device):
    """dj_normalize_u8's table ((v / 255 - mean) / std in float32; flat, channel-major: 3 x 256) and v / 255."""
    v01 = np.arange(256, dtype=np.float32) / np.float32(255.0)
    norm = (v01[None, :] - MEAN[:, None]) / STD[:, None]  # 3 x 256, float32 as the C LUT
    return (torch.from_numpy(np.ascontiguousarray(norm).reshape(-1)).to(device),
            torch.from_numpy(v01).to(device))


_CONSTS = {}


def consts(device):
    """Small per-device constants, made once: a host-to-device copy inside the step would make
    PyTorch wait for the GPU (a pageable copy synchronises the stream) at every step."""
    key = str(device)
    if key not in _CONSTS:
        _CONSTS[key] = {"std": torch.from_numpy(STD).to(device).view(1, 3, 1, 1),
                        "mean": torch.from_numpy(MEAN).to(device).view(1, 3, 1, 1),
                        "lut_off": torch.arange(0, 3 * 256, 256, device=device).view(1, 3, 1, 1)}
    return _CONSTS[key]


def normalize_u8(u8, lut):
    """u8 (n, 3, h, w) uint8 -> normalised float32, through the per-channel LUT (bit-exact to C)."""
    return lut[u8.long() + consts(u8.device)["lut_off"]]


def std_view(device):
    return consts(device)["std"]


def mean_view(device):
    return consts(device)["mean"]


# The valid range of x_hat: the normalised image of [0, 1], per channel ([-1, 1] for the paper's
# normalisation). One value for all channels, so torch.clamp takes Python scalars.
CLIP_LO = (0.0 - MEAN) / STD
CLIP_HI = (1.0 - MEAN) / STD
assert np.all(CLIP_LO == CLIP_LO[0]) and np.all(CLIP_HI == CLIP_HI[0])


def apply_clip(x, e, clip=True):
    """dj_jnd_apply: x + e, clamped when clip; gradient 1 where lo <= x + e <= hi (torch.clamp's).
    (jnd.apply builds its bounds from Python lists at each call: a host-to-device copy per step.)"""
    y = x + e
    return torch.clamp(y, float(CLIP_LO[0]), float(CLIP_HI[0])) if clip else y


def to_u8_rne(v):
    """to_u8 of src/jnd/generate.c: NaN and v <= 0 -> 0, v >= 255 -> 255, else lrintf (half to even)."""
    return torch.nan_to_num(v, nan=0.0).clamp(0.0, 255.0).round().to(torch.uint8)


def denorm_u8_half_up(v):
    """dj_denormalize_u8 of normalised v: floor((v std + mean) 255 + 0.5), clamped (round half up)."""
    p = (v * std_view(v.device) + mean_view(v.device)) * 255.0
    return torch.floor(torch.nan_to_num(p, nan=0.0) + 0.5).clamp(0.0, 255.0)


def psnr_from_se(se, count):
    """Per image (float64): 10 log10(255^2 / (se / count)), PSNR_MAX when se == 0, capped there."""
    mse = se / count
    pos = mse > 0
    p = torch.clamp(10.0 * torch.log10(255.0 ** 2 / torch.where(pos, mse, torch.ones_like(mse))), max=PSNR_MAX)
    return torch.where(pos, p, torch.full_like(p, PSNR_MAX))  # no boolean indexing: no GPU sync per step


def psnr_u8(a, b):
    """dj_psnr_u8 per image of two uint8 (or integer-valued) batches, float64."""
    d = a.double() - b.double()
    return psnr_from_se((d * d).flatten(1).sum(1), d[0].numel())


_TF32 = {"on": False, "warned": False}


def set_tf32(on):
    """TF32 for matmuls and cuDNN convolutions on or off (the legacy flags, which PyTorch 1.13 to 2.x
    know; the fp32_precision settings of newer versions if those flags are refused)."""
    on = bool(on)
    _TF32["on"] = on
    try:
        torch.backends.cuda.matmul.allow_tf32 = on
        torch.backends.cudnn.allow_tf32 = on
        return
    except Exception as exc:  # pragma: no cover (newer PyTorch only)
        err = exc
    try:
        torch.backends.cuda.matmul.fp32_precision = "tf32" if on else "ieee"
        torch.backends.cudnn.conv.fp32_precision = "tf32" if on else "ieee"
    except Exception:  # pragma: no cover
        if not _TF32["warned"]:
            _TF32["warned"] = True
            log("warning: cannot set TF32 (%s); PyTorch's default stays" % err)


class tf32_off:
    """Full FP32 inside (cache, evaluation), the previous TF32 setting restored after."""

    def __enter__(self):
        self.saved = _TF32["on"]
        if self.saved:
            set_tf32(False)

    def __exit__(self, *exc):
        if self.saved:
            set_tf32(True)
        return False


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# ------------------------------------------------------------------ classifiers

def classifier_arch(path):
    """Architecture from the file's metadata ("arch"), else from its name."""
    _, meta = models.read_safetensors(path)
    arch = meta.get("arch")
    if arch:
        return arch
    base = os.path.basename(path).split(".")[0].lower()
    for a in ARCHES:
        if base.startswith(a):
            return a
    raise ValueError("%s: no 'arch' in the metadata and no known architecture in the name" % path)


def load_classifiers(paths, device):
    nets, arches = [], []
    for p in paths:
        arch = classifier_arch(p)
        net = models.build(arch)
        models.load_safetensors(net, p)
        net.eval()
        for q in net.parameters():
            q.requires_grad_(False)
        nets.append(net.to(device))
        arches.append(arch)
    return nets, arches


def make_tags(arches):
    """Unique tags as make_tags in src/jnd/train.c (arch, then _2, _3 for repeats)."""
    bases = [re.sub(r"[^a-z0-9]+", "_", a.lower()).lstrip("_")[:20] or "c" for a in arches]
    return ["%s_%d" % (b, bases[:i].count(b) + 1) if bases[:i].count(b) else b for i, b in enumerate(bases)]


def linear_of(net):
    return net.fc if hasattr(net, "fc") else net.classifier


@torch.no_grad()
def labels_and_cam(net, x):
    """Own label (argmax) and its CAM as include/dmvjnd/cam.h (cam.c: dj_cam_compute)."""
    lin = linear_of(net)
    feats = net.features(x)                                 # n x C x h x w
    logits = lin(feats.mean((2, 3)))
    lab = logits.argmax(1)
    w = lin.weight[lab]                                     # n x C
    m = torch.einsum("nchw,nc->nhw", feats, w).unsqueeze(1)
    m = F.interpolate(m, size=x.shape[2:], mode="bilinear", align_corners=False)[:, 0]
    lo = m.flatten(1).min(1)[0][:, None, None]
    m = m - lo
    hi = m.flatten(1).max(1)[0][:, None, None]
    ok = hi > 0
    m = torch.where(ok, m / torch.where(ok, hi, torch.ones_like(hi)), torch.zeros_like(m))
    return lab, m


def quant16(m):
    """dj_jnd_cache's fixed point and back: float(uint16(m 65535 + 0.5)) * (1.0f / 65535)."""
    q = torch.floor(torch.nan_to_num(m * 65535.0 + 0.5, nan=0.0)).clamp(0.0, 65535.0)
    return q * float(np.float32(1.0) / np.float32(65535.0))


@torch.no_grad()
def classify(nets, x):
    """n x K labels."""
    return torch.stack([net(x).argmax(1) for net in nets], 1)


@torch.no_grad()
def build_cache(nets, u8, lut, flips, batch):
    """Labels (n, flips, K) int64 and merged, 16-bit-quantised CAM (n, flips, 32, 32) float32."""
    n, K = u8.shape[0], len(nets)
    labels = torch.empty(n, flips, K, dtype=torch.long, device=u8.device)
    cam = torch.empty(n, flips, SIDE, SIDE, dtype=torch.float32, device=u8.device)
    with tf32_off():
        for s in range(0, n, batch):
            x0 = normalize_u8(u8[s:s + batch], lut)
            for f in range(flips):
                x = x0.flip(3) if f else x0
                maps = []
                for k, net in enumerate(nets):
                    lab, m = labels_and_cam(net, x)
                    labels[s:s + batch, f, k] = lab
                    maps.append(m)
                merged = maps[0]
                for m in maps[1:]:
                    merged = merged + m
                cam[s:s + batch, f] = quant16(merged / float(K))
    return labels, cam


# ------------------------------------------------------------------ schedule

def lr_at(step, peak, total_steps, warmup_steps, warmup_start):
    """dj_schedule_lr for "cosine+warmup:W:S" (min_lr 0)."""
    t_max = max(total_steps, 1)
    t = min(step, t_max)
    lr = peak * (1.0 + math.cos(math.pi * t / t_max)) / 2.0
    if step < warmup_steps:
        lr *= warmup_start + (1.0 - warmup_start) * step / warmup_steps
    return lr


# ------------------------------------------------------------------ the E-D

def make_ed(args, device):
    torch.manual_seed(args.seed)
    ed = jnd.JndEd(width=args.width, slope=args.slope)
    if args.e_init != 1.0:
        with torch.no_grad():
            ed.dec[9].weight.mul_(args.e_init)
            ed.dec[9].bias.mul_(args.e_init)
    return ed.to(device)


def make_adam(ed, lr, wd, device):
    params = list(ed.parameters())
    if device.type == "cuda":
        try:
            return torch.optim.Adam(params, lr=lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=wd, fused=True), "fused"
        except (TypeError, RuntimeError, ValueError):
            pass
    return torch.optim.Adam(params, lr=lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=wd), "default"


def load_ed_file(path, args, device):
    """A dmvjnd JND model file (dj_jnd_model_save: E-D weights + BN statistics) into JndEd."""
    tensors, meta = models.read_safetensors(path)
    if meta.get("jnd.input", "x,cam") != "x,cam":
        raise ValueError("%s: input %s; this twin trains x,cam E-Ds only" % (path, meta.get("jnd.input")))
    width = float(meta.get("jnd.width", args.width))
    slope = float(meta.get("jnd.slope", args.slope))
    ed = jnd.JndEd(width=width, slope=slope)
    state = ed.state_dict()
    missing = [k for k in state if k not in tensors and not k.endswith("num_batches_tracked")]
    if missing:
        raise KeyError("%s: missing tensors %s" % (path, missing))
    ed.load_state_dict({k: torch.from_numpy(v) for k, v in tensors.items() if k in state}, strict=False)
    return ed.to(device), meta


def save_ed_file(path, ed, init_meta, args, cfg, epoch, train_stats):
    """JndEd as a dmvjnd JND model file: the tensors of dj_jnd_model_save (state_dict names, BN
    running statistics included) and its metadata. The model keys (jnd.width, jnd.input, norm.*, ...)
    come from the --init file when there is one; the jnd.train.* keys describe this run (the C
    trainer's keys where they mean the same, jnd.train.trainer naming this script), and the
    jnd.final.* keys of the C trainer, which this script does not compute, are dropped."""
    meta = {k: v for k, v in (init_meta or {}).items()
            if not k.startswith("jnd.train.") and not k.startswith("jnd.final.")
            and k not in ("jnd.classifier_hashes", "dmvjnd.model_version")}  # the --init file's, not this run's
    files = ",".join(p for p in args.classifiers.split(",") if p)
    width = float((init_meta or {}).get("jnd.width", args.width))
    slope = float((init_meta or {}).get("jnd.slope", args.slope))
    meta.update({"format": "dmvjnd-weights", "format_version": "1", "arch": "jnd_ed",
                 "jnd.width": "%.9g" % width, "jnd.slope": "%.9g" % slope, "jnd.input": "x,cam",
                 "jnd.e_unit": "normalized", "jnd.clip": "0" if args.no_clip else "1",
                 "jnd.alpha": "%.9g" % cfg["alpha"], "jnd.beta": "%.9g" % cfg["beta"],
                 "jnd.input_h": str(SIDE), "jnd.input_w": str(SIDE),
                 "norm.mean": ",".join("%g" % v for v in MEAN), "norm.std": ",".join("%g" % v for v in STD)})
    meta["jnd.classifiers"] = files  # the classifiers this E-D was trained against, whatever --init had
    meta.update({"jnd.train.trainer": "tools/torch/jnd_sweep.py (PyTorch %s, %s)" % (
                     torch.__version__, torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"),
                 "jnd.train.classifier_files": files, "jnd.train.init": args.init or "none",
                 "jnd.train.width": "%.9g" % width, "jnd.train.slope": "%.9g" % slope,
                 "jnd.train.input": "x,cam", "jnd.train.alpha": "%.9g" % cfg["alpha"],
                 "jnd.train.beta": "%.9g" % cfg["beta"], "jnd.train.changed_weight": "0",
                 "jnd.train.e_unit": "normalized", "jnd.train.clip": "0" if args.no_clip else "1",
                 "jnd.train.epochs": str(cfg["epochs"]), "jnd.train.epochs_done": str(epoch),
                 "jnd.train.batch": str(args.batch), "jnd.train.optimizer": "adam", "jnd.train.lr": "%g" % cfg["lr"],
                 "jnd.train.weight_decay": "%g" % args.wd,
                 "jnd.train.schedule": "cosine+warmup:%d:%g" % (args.warmup_epochs, args.warmup_start),
                 "jnd.train.flip": "%g" % args.flip, "jnd.train.seed": str(args.seed),
                 "jnd.train.tf32": str(args.tf32), "jnd.train.train_images": str(train_stats["images"]),
                 "jnd.train.last_epoch_rca_mean": "%.6f" % train_stats["rca_mean"],
                 "jnd.train.last_epoch_psnr": "%.4f" % train_stats["psnr"]})
    tensors = {k: v.detach().cpu().numpy() for k, v in ed.state_dict().items()}
    models.write_safetensors(path, tensors, meta)


# ------------------------------------------------------------------ training

STAT_NAMES = ("loss", "loss1", "loss2", "loss3", "n_target", "n0", "psnr", "mean_abs_e")


def group_losses(eds, nets, x, c, lab, alpha, beta, clip=True):
    """Forward of one training step for P E-Ds (configs) on the same batch.

    Each config's loss is exactly dj_jnd_step_run's: Loss1 = mean over the K classifiers of the
    batch-mean CE of its x_hat against the cached labels, plus alpha Loss2 + beta Loss3 of its e.
    The classifiers are frozen and in eval() mode, hence per-image functions: running them once on
    the P x_hat batches concatenated gives every config exactly what it would get alone (up to
    float rounding), and the gradient of the summed losses reaches each E-D only through its own
    loss. alpha, beta: P-vectors on the device. Returns (sum of the P losses, P x S statistics
    sums, no GPU sync): STAT_NAMES weighted by the batch size, then the correct count per classifier."""
    P, n = len(eds), x.shape[0]
    xc = jnd.stack(x, c)
    es = [ed(xc) for ed in eds]
    E = torch.stack(es) if P > 1 else es[0].unsqueeze(0)             # P x n x 3 x H x W
    XH = apply_clip(x.unsqueeze(0), E, clip=clip)                    # P x n x 3 x H x W
    xh = XH.reshape(P * n, *x.shape[1:])
    ce = []
    correct = []
    for k, net in enumerate(nets):
        lk = lab[:, k].repeat(P)
        logits = net(xh)
        ce.append(F.cross_entropy(logits, lk, reduction="none").view(P, n).mean(1))
        correct.append((logits.detach().argmax(1) == lk).view(P, n).sum(1))
    loss1 = torch.stack(ce).mean(0)                                  # P
    Ef = E.reshape(P * n, *x.shape[1:])
    cP = c.repeat(P, 1, 1, 1)
    l2 = jnd.loss2_per_image(Ef, cP).view(P, n)
    l3 = jnd.loss3_per_image(Ef, cP).view(P, n)
    loss = loss1 + alpha * l2.mean(1) + beta * l3.mean(1)            # P
    with torch.no_grad():
        Ed = E.detach().double()
        d = denorm_u8_half_up(xh.detach()).view(P, n, -1) - denorm_u8_half_up(x).view(1, n, -1)
        psnr = psnr_from_se((d.double() ** 2).sum(2), d.shape[2])      # P x n
        mae = (Ed * std_view(x.device).double()).abs().flatten(2).mean(2) * 255.0
        nt = (1.0 - c.double().mean((1, 2, 3))).sum().expand(P)
        n0 = Ed.abs().flatten(2).mean(2)
        stats = torch.stack([loss.detach().double() * n, loss1.detach().double() * n, l2.detach().double().sum(1),
                             l3.detach().double().sum(1), nt, n0.sum(1), psnr.sum(1), mae.sum(1)]
                            + [cc.double() for cc in correct], 1)     # P x S
    return loss.sum(), stats


def stats_dict(acc, n, tags):
    """Means over n images of one config's summed step statistics acc (syncs)."""
    a = acc.cpu().tolist()
    d = {name: (a[i] / n if n else float("nan")) for i, name in enumerate(STAT_NAMES)}
    d["images"] = int(n)
    d["rca"] = {t: a[len(STAT_NAMES) + k] / n for k, t in enumerate(tags)}
    d["rca_mean"] = sum(d["rca"].values()) / len(tags)
    return d


def params_finite(ed):
    return all(bool(torch.isfinite(p).all()) for p in ed.parameters())


PACE_EXTRA = 0.25  # time of a group step per extra config, relative to a one-config step (estimate)


FIT_PROVISIONAL_EPOCHS = 1000
FIT_SAFETY = 1.05  # a fitted config's schedule assumes steps this much slower than measured


class Run:
    """One config of a group: its E-D, optimiser, schedule and result."""

    def __init__(self, cfg, args, device, spe, prefix):
        self.cfg = cfg
        self.prefix = prefix
        self.spe = spe
        # A config fitted to the budget runs its first 30 steps on a long provisional schedule (the
        # cosine factor is ~1 there either way), then gets the epochs that fit (fit_epochs).
        self.total = (cfg["epochs"] or FIT_PROVISIONAL_EPOCHS) * spe
        self.warm = args.warmup_epochs * spe
        if args.init:
            self.ed, self.init_meta = load_ed_file(args.init, args, device)  # every config from the same weights
        else:
            self.ed, self.init_meta = make_ed(args, device), None  # torch.manual_seed(seed): same init for all
        self.ed.train()
        self.opt, kind = make_adam(self.ed, self.lr(0, args), args.wd, device)
        self.res = {"config": cfg, "status": "running", "epochs_log": [], "steps": 0, "adam": kind}
        self.t0 = time.time()
        self.lr_first = self.lr_last = None

    def fit_epochs(self, step, sps, seconds_left):
        """Set the epochs of a fitted config: the whole epochs whose remaining steps take at most
        seconds_left at sps seconds per step (at least one more epoch than those done: the projection
        stops the config if that one does not fit either)."""
        epochs = max(step // self.spe + 1, int((step + seconds_left / sps) // self.spe))
        self.cfg["epochs"] = epochs
        self.total = epochs * self.spe
        log("%s fitted to the time budget: %d epochs (%.1f ms/step)" % (self.prefix, epochs, 1e3 * sps))

    def save(self, args, epoch, train_stats):
        """The E-D as a dmvjnd JND model file (--save-dir/<name>.safetensors), rewritten atomically
        after every epoch so that a stopped run keeps its last one."""
        if not args.save_dir:
            return
        path = os.path.join(args.save_dir, self.cfg["name"] + ".safetensors")
        save_ed_file(path, self.ed, self.init_meta, args, self.cfg, epoch, train_stats)
        self.res["model_file"] = path

    def lr(self, step, args):
        return lr_at(step, self.cfg["lr"], self.total, self.warm, args.warmup_start)

    def finish(self, status):
        self.res["status"] = status
        self.res["seconds"] = time.time() - self.t0
        if status != "done":
            log("%s %s" % (self.prefix, status))
        self.ed = self.opt = None  # free the memory


def train_group(cfgs, st, args, deadline, prefix, on_done):
    """Train the configs cfgs together (one classifier pass per step for all of them, same data
    order and flips, as each would see alone from the seed). on_done(i, result) is called as each
    config ends. Stops configs whose projected end passes the deadline."""
    device = st["device"]
    N, B = st["train_u8"].shape[0], args.batch
    spe = (N + B - 1) // B
    if device.type == "cuda":
        set_tf32(args.tf32)
    names = [c["name"] for c in cfgs]
    runs = [Run(c, args, device, spe, "[%s%s]" % (c["name"], prefix)) for c in cfgs]
    for r in runs:
        log("%s start: alpha %g beta %g, %d epochs, peak lr %g%s" % (
            r.prefix, r.cfg["alpha"], r.cfg["beta"], r.cfg["epochs"], r.cfg["lr"],
            ", trained together with %s" % ", ".join(n for n in names if n != r.cfg["name"]) if len(cfgs) > 1 else ""))
    gen = torch.Generator()
    gen.manual_seed(args.seed)
    lut, nets, tags = st["lut"], st["nets"], st["tags"]
    u8, cam, labels = st["train_u8"], st["train_cam"], st["train_labels"]
    pace = None  # (seconds per step, number of configs in the group when it was measured)
    step = 0

    def end(i, status):
        runs[i].finish(status)
        on_done(i, runs[i].res)

    def project(active, now):
        """Stop configs until the others can end before the deadline: among those that cannot, the
        last in the given order goes first. A group of P configs is assumed to step in
        s1 (1 + (P - 1) PACE_EXTRA) seconds (s1 fitted to the measured pace), so that dropping a
        config speeds the rest up a little; configs ending earlier are assumed to keep going."""
        if not deadline or pace is None:
            return active
        s1 = pace[0] / (1.0 + (pace[1] - 1) * PACE_EXTRA)
        keep = list(active)
        while keep:
            sps = s1 * (1.0 + (len(keep) - 1) * PACE_EXTRA)
            late = []
            for i in keep:
                evals = sum(1 for j in keep if runs[j].total <= runs[i].total)  # final evaluations by its end
                proj = now + (runs[i].total - step) * sps + evals * st["eval_est_s"]
                if proj > deadline:
                    late.append((i, proj))
            if not late:
                break
            i, proj = late[-1]
            end(i, "stopped after %d steps: projected end %.0f s after the time budget (%.1f ms/step for %d "
                   "config(s))" % (step, proj - deadline, 1e3 * sps, len(keep)))
            keep.remove(i)
        return keep

    def fit(active, whole_epoch):
        """The epochs of the configs fitted to the budget: first from the pace of steps 10-29, then
        again from the whole first epoch's (the early steps ran ~25% faster than the epoch on an
        H100, and a config whose projected end passes the budget is stopped, not shortened).
        Every config's final evaluation comes at its end, and the fitted ones end last."""
        left_s = deadline - time.time() - len(active) * st["eval_est_s"] - 5.0
        for i in active:
            r = runs[i]
            if r.cfg.get("fit") and (whole_epoch or r.cfg["epochs"] == 0):  # 0: not fitted yet
                r.fit_epochs(step, FIT_SAFETY * pace[0], left_s)

    active = list(range(len(runs)))
    if deadline and st.get("pace"):
        pace = st["pace"]
        active = project(active, time.time())
        pace = None
    epoch = 0
    while active:
        epoch += 1
        perm = torch.randperm(N, generator=gen)
        flips = (torch.rand(N, generator=gen) < args.flip) if args.flip > 0 else torch.zeros(N, dtype=torch.bool)
        perm, flips = perm.to(device), flips.to(device)
        dev_ab = (torch.tensor([runs[i].cfg["alpha"] for i in active], dtype=torch.float32, device=device),
                  torch.tensor([runs[i].cfg["beta"] for i in active], dtype=torch.float32, device=device))
        acc = torch.zeros(len(active), len(STAT_NAMES) + len(nets), dtype=torch.float64, device=device)
        for i in active:
            runs[i].lr_first = None
        sync(device)
        t0 = t_log = time.time()
        t_mark = None
        for b in range(spe):
            idx = perm[b * B:(b + 1) * B]
            fl = flips[b * B:(b + 1) * B]
            fi = fl.long()
            x = normalize_u8(u8[idx], lut)
            x = torch.where(fl.view(-1, 1, 1, 1), x.flip(3), x)
            c = cam[idx, fi].unsqueeze(1)
            lab = labels[idx, fi]
            for i in active:
                r = runs[i]
                lr = r.lr(step, args)
                if r.lr_first is None:
                    r.lr_first = lr
                r.lr_last = lr
                for g in r.opt.param_groups:
                    g["lr"] = lr
            loss, s = group_losses([runs[i].ed for i in active], nets, x, c, lab, dev_ab[0], dev_ab[1],
                                   clip=not args.no_clip)
            for i in active:
                runs[i].opt.zero_grad(set_to_none=True)
            loss.backward()
            for i in active:
                runs[i].opt.step()
            acc += s
            step += 1
            if epoch == 1 and b == 9:
                sync(device)
                t_mark = time.time()
            if epoch == 1 and b == 29 and t_mark is not None:
                sync(device)
                pace = ((time.time() - t_mark) / 20, len(active))
                fit(active, False)
                left = project(active, time.time())
                if left != active:  # go on with the others (their state is untouched)
                    acc = acc[[j for j, i in enumerate(active) if i in left]]
                    active = left
                    if not active:
                        break
                    dev_ab = (torch.tensor([runs[i].cfg["alpha"] for i in active], dtype=torch.float32,
                                           device=device),
                              torch.tensor([runs[i].cfg["beta"] for i in active], dtype=torch.float32,
                                           device=device))
            now = time.time()
            if args.log_every > 0 and now - t_log >= args.log_every:
                t_log = now
                a = acc.cpu().tolist()
                seen = min(N, (b + 1) * B)
                log("%s epoch %d step %d/%d  %s  %.0f img/s" % (
                    prefix or "[group]", epoch, b + 1, spe, "  ".join(
                        "%s: loss %.4f RCA %.2f%%" % (runs[i].cfg["name"], a[j][0] / seen,
                                                      100 * sum(a[j][len(STAT_NAMES):]) / (seen * len(nets)))
                        for j, i in enumerate(active)), seen / (now - t0)))
        if not active:
            break
        sync(device)
        dt = time.time() - t0
        pace = (dt / spe, len(active))
        st["pace"] = pace  # for the next group's start decision
        still = []
        for j, i in enumerate(active):
            r = runs[i]
            m = stats_dict(acc[j], N, tags)
            r.res["steps"] = step
            row = {"epoch": epoch, "step": step, "lr_first": r.lr_first, "lr_last": r.lr_last, "train": m,
                   "images_per_s": N / dt, "epoch_s": dt, "configs_together": len(active)}
            r.res["epochs_log"].append(row)
            log("%s epoch %d/%s  loss %.4f (L1 %.4f L2 %.4f L3 %.4f)  RCA %.2f%% [%s]  PSNR %.2f dB  |e| %.2f  "
                "N %.3f N0 %.4f  lr %.2e  %.0f img/s x %d config(s)  %.1f s" % (
                    r.prefix, epoch, r.cfg["epochs"] or "fit", m["loss"], m["loss1"], m["loss2"], m["loss3"],
                    100 * m["rca_mean"], " ".join("%s %.1f" % (t, 100 * v) for t, v in m["rca"].items()),
                    m["psnr"], m["mean_abs_e"], m["n_target"], m["n0"], r.lr_last, N / dt, len(active), dt))
            finite = all(math.isfinite(m[k]) for k in ("loss", "loss1", "loss2", "loss3")) and params_finite(r.ed)
            if not finite:
                end(i, "diverged in epoch %d (non-finite loss or parameters)" % epoch)
                continue
            r.save(args, epoch, m)
            if epoch == r.cfg["epochs"]:
                r.res["train_s"] = time.time() - r.t0
                te = time.time()
                r.res["final"] = {"train": evaluate_split(r.ed, st, "train", args),
                                  "test": evaluate_split(r.ed, st, "test", args)}
                r.res["eval_s"] = time.time() - te
                st["eval_est_s"] = 1.2 * r.res["eval_s"] + 1.0
                log("%s final train-subset: %s" % (r.prefix, short_eval(r.res["final"]["train"]["all"])))
                log("%s final test:         %s" % (r.prefix, short_eval(r.res["final"]["test"]["all"])))
                if "exact" in r.res["final"]["test"]:
                    log("%s final test 0-999:   %s" % (r.prefix, short_eval(r.res["final"]["test"]["exact"])))
                end(i, "done")
                continue
            if args.eval_every > 0 and epoch % args.eval_every == 0:
                te = time.time()
                row["test"] = evaluate_split(r.ed, st, "test", args)
                row["eval_s"] = time.time() - te
                log("%s   test after epoch %d: %s" % (r.prefix, epoch, short_eval(row["test"]["all"])))
            still.append(i)
        if epoch == 1:
            fit(still, True)
        active = project(still, time.time())
    return [r.res for r in runs]


# ------------------------------------------------------------------ evaluation

class EvalAcc:
    def __init__(self, K):
        self.K = K
        self.n = 0
        self.sums = {}

    def add(self, name, v):
        self.sums[name] = self.sums.get(name, 0.0) + v

    def finish(self, tags):
        n = self.n
        s = self.sums

        def rcas(prefix):
            r = {t: s.get("%s_kept_%d" % (prefix, k), 0.0) / n for k, t in enumerate(tags)}
            return r, sum(r.values()) / len(tags)

        out = {"images": n}
        out["rca"], out["rca_mean"] = rcas("x_hat")
        out["all_kept"] = s["all_kept"] / n
        out["psnr"] = s["psnr"] / n
        out["mean_abs_e"] = s["mean_abs_e"] / n
        out["mean_abs_diff"] = s["mean_abs_diff"] / n
        out["float_rca"], out["float_rca_mean"] = rcas("float")
        out["float_psnr"] = s["float_psnr"] / n
        out["wgn_rca"], out["wgn_rca_mean"] = rcas("wgn")
        out["wgn_psnr"] = s["wgn_psnr"] / n
        out["homogeneity"] = []
        for j in range(HOMOGENEITY_STEPS):
            r, mean = rcas("homo%d" % j)
            out["homogeneity"].append({"k": j + 1, "scale": "%d/9" % (j + 1), "rca_mean": mean, "rca": r,
                                       "psnr": s["homo_psnr_%d" % j] / n})
        return out


@torch.no_grad()
def evaluate_split(ed, st, split, args, limit=None):
    """`dmvjnd eval` on the split's evaluated records (the first `limit` of them when given);
    {"all": ..., "exact": ... (test, more than 1000 records)}."""
    device, lut, lut01, nets, tags = st["device"], st["lut"], st["lut01"], st["nets"], st["tags"]
    if split == "train":
        n = min(st["train_u8"].shape[0], args.train_eval)
        u8, cam, before = st["train_u8"][:n], st["train_cam"][:n, 0], st["train_labels"][:n, 0]
    else:
        u8, cam, before = st["test_u8"], st["test_cam"][:, 0], st["test_labels"][:, 0]
        n = u8.shape[0]
    if limit is not None:
        n = min(n, limit)
    K = len(nets)
    subset = split == "test" and n > EXACT_TEST_RECORDS
    accs = [EvalAcc(K)] + ([EvalAcc(K)] if subset else [])
    gen = torch.Generator()
    gen.manual_seed(args.seed + 1)
    sv = std_view(device)
    was_training = ed.training
    ed.eval()
    f255 = float(np.float32(255.0))
    with tf32_off():
        for s0 in range(0, n, args.eval_batch):
            xu = u8[s0:s0 + args.eval_batch]
            nb = xu.shape[0]
            records = torch.arange(s0, s0 + nb, device=device)
            bl = before[s0:s0 + args.eval_batch]
            x = normalize_u8(xu, lut)
            c = cam[s0:s0 + args.eval_batch].unsqueeze(1)
            ep = ed(jnd.stack(x, c)) * sv                     # e on the [0, 1] pixel scale
            xf = xu.float()
            xh = to_u8_rne(xf + f255 * ep)                     # dj_jnd_add_u8(x, e, 1)
            kept = classify(nets, normalize_u8(xh, lut)) == bl  # nb x K
            per = {"all_kept": kept.all(1).double(), "psnr": psnr_u8(xu, xh),
                   "mean_abs_e": (255.0 * ep.double()).abs().flatten(1).mean(1),
                   "mean_abs_diff": (xh.double() - xf.double()).abs().flatten(1).mean(1)}
            for k in range(K):
                per["x_hat_kept_%d" % k] = kept[:, k].double()
            # WGN with the energy of the stored distortion (evaluate.c: add_wgn)
            d = xh.double() - xf.double()
            energy = (d * d).flatten(1).sum(1)
            z = torch.randn(nb, 3, SIDE, SIDE, generator=gen).to(device)
            zz = (z.double() ** 2).flatten(1).sum(1)
            scale = torch.where(zz > 0, torch.sqrt(energy / torch.where(zz > 0, zz, torch.ones_like(zz))) / 255.0,
                                torch.zeros_like(zz)).float()
            alt = to_u8_rne(xf + (f255 * scale).view(-1, 1, 1, 1) * z)
            kept = classify(nets, normalize_u8(alt, lut)) == bl
            per["wgn_psnr"] = psnr_u8(xu, alt)
            for k in range(K):
                per["wgn_kept_%d" % k] = kept[:, k].double()
            # unclipped float x + e
            fl = lut01[xu.long()] + ep
            kept = classify(nets, (fl - mean_view(device)) / sv) == bl
            se = ((255.0 * ep.double()) ** 2).flatten(1).sum(1)
            per["float_psnr"] = psnr_from_se(se, ep[0].numel())
            for k in range(K):
                per["float_kept_%d" % k] = kept[:, k].double()
            # homogeneity: x + (j/9) e
            for j in range(HOMOGENEITY_STEPS):
                fac = float(np.float32(255.0) * (np.float32(j + 1) / np.float32(9.0)))
                alt = to_u8_rne(xf + fac * ep)
                kept = classify(nets, normalize_u8(alt, lut)) == bl
                per["homo_psnr_%d" % j] = psnr_u8(xu, alt)
                for k in range(K):
                    per["homo%d_kept_%d" % (j, k)] = kept[:, k].double()
            masks = [None] + ([records < EXACT_TEST_RECORDS] if subset else [])
            for a, msk in zip(accs, masks):
                a.n += nb if msk is None else int(msk.sum())
                for name, v in per.items():
                    a.add(name, float((v if msk is None else v[msk]).sum()))
    if was_training:
        ed.train()
    out = {"all": accs[0].finish(tags)}
    if subset:
        out["exact"] = accs[1].finish(tags)
    return out


def short_eval(m):
    h = m["homogeneity"]
    return ("RCA %.2f%% [%s] all-kept %.2f%%  PSNR %.2f dB  |e| %.2f  float RCA %.2f%%  WGN RCA %.2f%% (%.2f dB)  "
            "homog. RCA k=1..8 %s  (%d images)" % (
                100 * m["rca_mean"], " ".join("%s %.1f" % (t, 100 * v) for t, v in m["rca"].items()),
                100 * m["all_kept"], m["psnr"], m["mean_abs_e"], 100 * m["float_rca_mean"],
                100 * m["wgn_rca_mean"], m["wgn_psnr"], "/".join("%.1f" % (100 * x["rca_mean"]) for x in h),
                m["images"]))


# ------------------------------------------------------------------ setup

def parse_configs(text, default_lr):
    out = []
    for part in text.split(";"):
        part = part.strip()
        if not part:
            continue
        f = [v.strip() for v in part.split(",")]
        if len(f) not in (3, 4):
            raise ValueError("config %r: expected a,b,epochs[,lr]" % part)
        cfg = {"alpha": float(f[0]), "beta": float(f[1]), "epochs": int(f[2]),
               "lr": float(f[3]) if len(f) == 4 else default_lr}
        if cfg["epochs"] < 0 or cfg["alpha"] < 0 or cfg["beta"] < 0 or cfg["lr"] < 0:
            raise ValueError("config %r: epochs >= 0, a, b, lr >= 0" % part)
        cfg["fit"] = cfg["epochs"] == 0  # as many epochs as the time budget allows (set after 30 steps)
        cfg["name"] = "a%g_b%g_e%s_lr%g" % (cfg["alpha"], cfg["beta"], "fit" if cfg["fit"] else cfg["epochs"],
                                           cfg["lr"])
        out.append(cfg)
    if not out:
        raise ValueError("no configs")
    return out


def setup_device(args):
    if args.device:
        device = torch.device(args.device)
    else:
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        set_tf32(False)  # FP32 for the cache; the training steps switch TF32 on (--tf32)
    return device


def prepare(args, device):
    """Data, classifiers, cache: the state every config shares (tensors on the device)."""
    t0 = time.time()
    paths = [p for p in args.classifiers.split(",") if p]
    nets, arches = load_classifiers(paths, device)
    tags = make_tags(arches)
    tr_u8, tr_y, tr_files = load_split(args.data, "train", args.train_limit or None)
    te_u8, te_y, _ = load_split(args.data, "test", args.test_limit or None)
    log("data: %d training images from %s; %d test records; classifiers %s; device %s (%s), torch %s" % (
        len(tr_u8), ",".join(os.path.basename(p) for p in tr_files), len(te_u8), ",".join(tags), device,
        torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu", torch.__version__))
    lut, lut01 = make_luts(device)
    st = {"device": device, "lut": lut, "lut01": lut01, "nets": nets, "tags": tags, "paths": paths,
          "train_u8": torch.from_numpy(tr_u8).to(device), "test_u8": torch.from_numpy(te_u8).to(device),
          "train_y": torch.from_numpy(tr_y), "test_y": torch.from_numpy(te_y)}
    sync(device)
    tc = time.time()
    st["train_labels"], st["train_cam"] = build_cache(nets, st["train_u8"], lut, 2, args.cache_batch)
    st["test_labels"], st["test_cam"] = build_cache(nets, st["test_u8"], lut, 1, args.cache_batch)
    sync(device)
    dt = time.time() - tc
    passes = 2 * len(tr_u8) + len(te_u8)
    rate = passes / dt if dt > 0 else float("inf")  # images through all K classifiers (+ CAM) per s
    info = {"seconds": dt, "images_per_s": rate, "train_images": len(tr_u8), "test_images": len(te_u8)}
    acc = {}
    ex = min(len(te_u8), EXACT_TEST_RECORDS)
    for k, t in enumerate(tags):
        acc[t] = {"test_accuracy": float((st["test_labels"][:, 0, k].cpu() == st["test_y"]).double().mean()),
                  "test_accuracy_0_999": float((st["test_labels"][:ex, 0, k].cpu() == st["test_y"][:ex])
                                               .double().mean()),
                  "train_accuracy": float((st["train_labels"][:, 0, k].cpu() == st["train_y"]).double().mean()),
                  "flip_label_agreement": float((st["train_labels"][:, 0, k] == st["train_labels"][:, 1, k])
                                                .double().mean())}
    info["classifier_accuracy"] = acc
    info["mean_cam_train"] = float(st["train_cam"].double().mean())
    info["mean_cam_test"] = float(st["test_cam"].double().mean())
    st["cache_info"] = info
    log("cache: %d image-flips through %d classifiers in %.1f s (%.0f img/s); mean c %.3f (N %.3f)" % (
        passes, len(nets), dt, rate, info["mean_cam_train"], 1 - info["mean_cam_train"]))
    for t, a in acc.items():
        log("  %-14s accuracy test %.2f%% (records 0-%d: %.2f%%), train %.2f%%; label kept under the mirror %.2f%%" % (
            t, 100 * a["test_accuracy"], ex - 1, 100 * a["test_accuracy_0_999"], 100 * a["train_accuracy"],
            100 * a["flip_label_agreement"]))
    # The final evaluation's cost, for --time-budget: timed on a fresh E-D over a few test images
    # (twice on a GPU: the first pass autotunes cudnn).
    n_eval = min(len(tr_u8), args.train_eval) + len(te_u8)
    st["eval_est_s"] = 0.0
    if args.time_budget > 0:
        probe = min(len(te_u8), 1000 if device.type == "cuda" else 100)
        ed = make_ed(args, device)
        for _ in range(2 if device.type == "cuda" else 1):
            sync(device)
            te = time.time()
            evaluate_split(ed, st, "test", args, limit=probe)
            sync(device)
            per_image = (time.time() - te) / probe
        st["eval_est_s"] = 1.3 * per_image * n_eval + 1.0
        info["eval_probe"] = {"images": probe, "s_per_image": per_image, "final_eval_estimate_s": st["eval_est_s"]}
        log("evaluation: %.2f ms per image measured; estimate %.1f s per config for %d images" % (
            1e3 * per_image, st["eval_est_s"], n_eval))
    st["prepare_s"] = time.time() - t0
    return st


def state_to_cpu(st):
    keys = ("train_u8", "test_u8", "train_labels", "train_cam", "test_labels", "test_cam", "train_y", "test_y")
    return {k: st[k].cpu() for k in keys}


# ------------------------------------------------------------------ workers (--jobs)

def worker_main(wid, args, shared_path, task_q, result_q, deadline, eval_est):
    device = setup_device(args)
    if device.type == "cpu" and args.threads <= 0:
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // args.jobs))
    data = torch.load(shared_path)
    nets, arches = load_classifiers([p for p in args.classifiers.split(",") if p], device)
    lut, lut01 = make_luts(device)
    st = {"device": device, "lut": lut, "lut01": lut01, "nets": nets, "tags": make_tags(arches),
          "eval_est_s": eval_est}
    for k, v in data.items():
        st[k] = v.to(device)
    while True:
        item = task_q.get()
        if item is None:
            break
        idxs, cfgs = item
        run_group(idxs, cfgs, st, args, deadline, " w%d" % wid, lambda i, r: result_q.put((i, r)))
    result_q.put(None)


def run_group(idxs, cfgs, st, args, deadline, suffix, on_done):
    """Train configs cfgs (global indices idxs) together; on_done(global index, result) for each."""
    if deadline and time.time() >= deadline - 1:
        for i, c in zip(idxs, cfgs):
            on_done(i, {"config": c, "status": "skipped: the time budget is spent", "epochs_log": []})
        return
    reported = set()

    def done(j, res):
        reported.add(j)
        on_done(idxs[j], res)

    try:
        train_group(cfgs, st, args, deadline, suffix, done)
    except Exception as exc:  # keep the other groups
        import traceback
        traceback.print_exc()
        for j, c in enumerate(cfgs):
            if j not in reported:
                on_done(idxs[j], {"config": c, "status": "error: %s" % exc, "epochs_log": []})


# ------------------------------------------------------------------ report

def fmt(v, pct=False, nd=2):
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "-"
    return ("%.*f" % (nd, 100 * v)) if pct else ("%.*f" % (nd, v))


def markdown(doc):
    lines = ["| config (alpha, beta, epochs, lr) | status | train RCA (batches, last epoch) | train-subset RCA | "
             "train-subset PSNR | test RCA | test all-kept | test PSNR | test mean abs e | test float RCA | "
             "test WGN RCA | homog. RCA k=1/4/8 | test 0-999 RCA | test 0-999 PSNR | img/s | s |",
             "|" + "---|" * 16]
    for r in doc["configs"]:
        c = r["config"]
        last = r["epochs_log"][-1] if r.get("epochs_log") else None
        fin = r.get("final", {})
        tr = fin.get("train", {}).get("all", {})
        te = fin.get("test", {}).get("all", {})
        ex = fin.get("test", {}).get("exact", te if te and te.get("images", 0) <= EXACT_TEST_RECORDS else {})
        h = te.get("homogeneity")
        lines.append("| %g, %g, %d, %g | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
            c["alpha"], c["beta"], c["epochs"], c["lr"], r["status"].split(":")[0],
            fmt(last["train"]["rca_mean"], True) if last else "-",
            fmt(tr.get("rca_mean"), True), fmt(tr.get("psnr")), fmt(te.get("rca_mean"), True),
            fmt(te.get("all_kept"), True), fmt(te.get("psnr")), fmt(te.get("mean_abs_e")),
            fmt(te.get("float_rca_mean"), True), fmt(te.get("wgn_rca_mean"), True),
            "/".join(fmt(h[j]["rca_mean"], True, 1) for j in (0, 3, 7)) if h else "-",
            fmt(ex.get("rca_mean"), True), fmt(ex.get("psnr")),
            fmt(last["images_per_s"], nd=0) if last else "-", fmt(r.get("seconds"), nd=0)))
    return "\n".join(lines)


def write_json(path, doc):
    if not path:
        return
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(doc, f, indent=1)
    os.replace(tmp, path)


# ------------------------------------------------------------------ --check-model

def check_model(args, st):
    device = st["device"]
    ed, meta = load_ed_file(args.check_model, args, device)
    n = min(args.batch, st["train_u8"].shape[0])
    x = normalize_u8(st["train_u8"][:n], st["lut"])
    c = st["train_cam"][:n, 0].unsqueeze(1)
    lab = st["train_labels"][:n, 0]
    alpha = float(meta.get("jnd.alpha", 0.1))
    beta = float(meta.get("jnd.beta", 2.0))
    saved = {k: v.clone() for k, v in ed.state_dict().items()}  # the step's BN pass moves running stats
    ed.train()
    ab = [torch.tensor([v], dtype=torch.float32, device=device) for v in (alpha, beta)]
    with tf32_off():
        loss, s = group_losses([ed], st["nets"], x, c, lab, ab[0], ab[1], clip=meta.get("jnd.clip", "1") != "0")
    ed.load_state_dict(saved)
    m = stats_dict(s[0], n, st["tags"])
    log("check-model %s (alpha %g, beta %g): one training-mode step on training images 0-%d, unmirrored:" % (
        args.check_model, alpha, beta, n - 1))
    log("  loss %.6f loss1 %.6f loss2 %.6f loss3 %.6f rca %s mean %.6f psnr %.4f mean_abs_e %.4f n %.6f n0 %.6f" % (
        m["loss"], m["loss1"], m["loss2"], m["loss3"], " ".join("%s %.6f" % kv for kv in m["rca"].items()),
        m["rca_mean"], m["psnr"], m["mean_abs_e"], m["n_target"], m["n0"]))
    out = {"step": m}
    for split in ("train", "test"):
        ev = evaluate_split(ed, st, split, args)
        out[split] = ev
        for part, v in ev.items():
            log("  eval %s (%s): %s" % (split, part, short_eval(v)))
            log("    psnr %.4f mean_abs_e %.4f mean_abs_diff %.4f float_psnr %.4f wgn_psnr %.4f homog. psnr %s" % (
                v["psnr"], v["mean_abs_e"], v["mean_abs_diff"], v["float_psnr"], v["wgn_psnr"],
                " ".join("%.3f" % h["psnr"] for h in v["homogeneity"])))
    return out


# ------------------------------------------------------------------ main

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, help="CIFAR-10 binary folder (data_batch_*.bin present, test_batch.bin)")
    ap.add_argument("--classifiers", required=True, help="classifier safetensors files, comma separated")
    ap.add_argument("--train-limit", type=int, default=0, help="first N training images (0: all present)")
    ap.add_argument("--test-limit", type=int, default=1000, help="first N test records (default 1000)")
    ap.add_argument("--train-eval", type=int, default=10000, help="training images in the final evaluation")
    ap.add_argument("--configs", default="0.1,2,12", help='"alpha,beta,epochs[,lr];..." (default the preset)')
    ap.add_argument("--width", type=float, default=0.5)
    ap.add_argument("--slope", type=float, default=0.01)
    ap.add_argument("--batch", type=int, default=50)
    ap.add_argument("--e-init", type=float, default=0.1)
    ap.add_argument("--lr", type=float, default=1e-3, help="peak learning rate when a config gives none")
    ap.add_argument("--wd", type=float, default=1e-3, help="Adam's coupled L2 weight decay")
    ap.add_argument("--warmup-epochs", type=int, default=1)
    ap.add_argument("--warmup-start", type=float, default=0.1)
    ap.add_argument("--flip", type=float, default=0.5)
    ap.add_argument("--no-clip", action="store_true")
    ap.add_argument("--device", default="")
    ap.add_argument("--tf32", type=int, default=1, help="1: TF32 in training steps on CUDA (default), 0: off")
    ap.add_argument("--threads", type=int, default=0, help="CPU threads (0: PyTorch's default)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--eval-every", type=int, default=0, help="test evaluation every K epochs (0: last only)")
    ap.add_argument("--eval-batch", type=int, default=0, help="images per evaluation pass (0: 1000 cuda, 200 cpu)")
    ap.add_argument("--cache-batch", type=int, default=0, help="images per cache pass (0: 1000 cuda, 200 cpu)")
    ap.add_argument("--time-budget", type=float, default=0, help="seconds from the start; configs that cannot "
                    "finish in it are skipped or stopped (0: none)")
    ap.add_argument("--group", type=int, default=0, help="configs trained together in one process, sharing "
                    "the classifiers' passes (0: all, at most 8, on CUDA; 1 on CPU)")
    ap.add_argument("--jobs", type=int, default=1, help="processes, each training one group at a time")
    ap.add_argument("--log-every", type=float, default=60, help="seconds between in-epoch progress lines (0: none)")
    ap.add_argument("--out", default="", help="JSON results file")
    ap.add_argument("--check-model", default="", help="evaluate a dmvjnd JND model file instead of training")
    ap.add_argument("--init", default="", help="start every config from this dmvjnd JND model file (fine-tuning; "
                    "its width and slope replace --width/--slope)")
    ap.add_argument("--save-dir", default="", help="write each config's E-D as DIR/<name>.safetensors, a dmvjnd "
                    "JND model file, after every epoch")
    args = ap.parse_args()
    t_start = time.time()
    deadline = t_start + args.time_budget if args.time_budget > 0 else 0
    device = setup_device(args)
    big = device.type == "cuda"
    args.eval_batch = args.eval_batch or (1000 if big else 200)
    args.cache_batch = args.cache_batch or (1000 if big else 200)
    configs = parse_configs(args.configs, args.lr)
    if any(c["fit"] for c in configs) and args.time_budget <= 0:
        ap.error("a config with 0 epochs (fit to the budget) needs --time-budget")
    if args.save_dir:
        os.makedirs(args.save_dir, exist_ok=True)

    st = prepare(args, device)
    if args.check_model:
        out = check_model(args, st)
        write_json(args.out, out)
        return 0

    doc = {"tool": "tools/torch/jnd_sweep.py", "argv": sys.argv[1:], "args": vars(args), "device": str(device),
           "device_name": torch.cuda.get_device_name(device) if big else "cpu", "torch": torch.__version__,
           "classifiers": [{"file": p, "tag": t} for p, t in zip(st["paths"], st["tags"])],
           "cache": st["cache_info"], "prepare_s": st["prepare_s"], "configs": []}
    results = [None] * len(configs)

    def publish():
        doc["configs"] = [r for r in results if r is not None]
        doc["wall_s"] = time.time() - t_start
        write_json(args.out, doc)

    gsize = args.group if args.group > 0 else (min(len(configs), 8) if big else 1)
    groups = [list(range(i, min(i + gsize, len(configs)))) for i in range(0, len(configs), gsize)]
    doc["groups"] = [[configs[i]["name"] for i in g] for g in groups]

    def got(i, r):
        results[i] = r
        publish()

    if args.jobs <= 1:
        for g in groups:
            run_group(g, [configs[i] for i in g], st, args, deadline, "", got)
    else:
        import torch.multiprocessing as mp
        ctx = mp.get_context("spawn")
        tmpdir = tempfile.mkdtemp(prefix="jnd_sweep.")
        shared = os.path.join(tmpdir, "state.pt")
        torch.save(state_to_cpu(st), shared)
        task_q, result_q = ctx.Queue(), ctx.Queue()
        for g in groups:
            task_q.put((g, [configs[i] for i in g]))
        jobs = min(args.jobs, len(groups))
        for _ in range(jobs):
            task_q.put(None)
        procs = [ctx.Process(target=worker_main, args=(w, args, shared, task_q, result_q, deadline,
                                                       st["eval_est_s"]))
                 for w in range(jobs)]
        for p in procs:
            p.start()
        done = 0
        while done < jobs:
            try:
                item = result_q.get(timeout=5)
            except Exception:
                if not any(p.is_alive() for p in procs):
                    break
                continue
            if item is None:
                done += 1
                continue
            got(*item)
        for p in procs:
            p.join()
        try:
            os.remove(shared)
            os.rmdir(tmpdir)
        except OSError:
            pass
    for i, cfg in enumerate(configs):
        if results[i] is None:
            results[i] = {"config": cfg, "status": "lost (its worker died)", "epochs_log": []}
    publish()
    log("")
    log(markdown(doc))
    log("")
    log("wall %.1f s (data + cache %.1f s)%s" % (time.time() - t_start, st["prepare_s"],
                                                 ", JSON: %s" % args.out if args.out else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
