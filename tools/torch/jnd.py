"""PyTorch twin of dmvjnd's DMV-JND E-D autoencoder and losses.

Same architecture and state_dict keys as dj_model_jnd_ed (src/models/jnd_ed.c),
same loss definitions as src/jnd/losses.c (see include/dmvjnd/jnd.h and
docs/method.md for the equations and the conventions chosen). Tensors here
are NCHW; dmvjnd's are NHWC.

    net = JndEd(width=1.0, slope=0.01)
    e = net(stack(x, c))                  # x: N x 3 x H x W, c: N x 1 x H x W
    l2 = loss2(e, c); l3 = loss3(e, c)    # batch means
    x_hat = apply(x, e, clip=True)
"""
import math

import torch
import torch.nn as nn

# Widths at multiplier 1: enc.0, enc.3, enc.7, enc.11, dec.0, dec.3, dec.6.
BASE_WIDTHS = (64, 128, 256, 64, 256, 128, 64)

UNIT_NORMALIZED = "normalized"  # DJ_JND_UNIT_NORMALIZED: e as the E-D outputs it (default)
UNIT_PIXEL01 = "pixel01"        # DJ_JND_UNIT_PIXEL01: e * std, the [0, 1] pixel scale

PAPER_MEAN = (0.5, 0.5, 0.5)
PAPER_STD = (0.5, 0.5, 0.5)
PSNR_MAX = 100.0  # DJ_JND_PSNR_MAX: reported for identical images


def ed_widths(width=1.0):
    """dj_jnd_ed_widths: round(base * width) (halves up), at least 1."""
    if not (0 < width <= 16):
        raise ValueError("width multiplier %r must be in (0, 16]" % width)
    return [max(1, int(math.floor(b * width + 0.5))) for b in BASE_WIDTHS]


class JndEd(nn.Module):
    """The E-D (paper Fig. 4 as reconstructed in docs/method.md), as dj_model_jnd_ed.

    enc: conv3x3 4->w0, BN, act | conv3x3 ->w1, BN, act, maxpool2 | conv3x3 ->w2, BN, act,
         maxpool2 | conv3x3 ->w3, BN, act, maxpool2
    dec: deconv2x2/2 ->w4, BN, act | deconv ->w5, BN, act | deconv ->w6, BN, act |
         conv3x3 ->3 (+bias), tanh
    act = LeakyReLU(slope), or ReLU when slope is 0. Convolutions before a BN have no bias.
    margin_input=True: 5 input channels, the fifth the margin plane (dj_jnd_margin_update).
    """

    def __init__(self, width=1.0, slope=0.01, margin_input=False):
        super().__init__()
        w = ed_widths(width)
        self.in_channels = 5 if margin_input else 4

        def act():
            return nn.LeakyReLU(slope) if slope > 0 else nn.ReLU()

        def conv(cin, cout, bias=False):
            return nn.Conv2d(cin, cout, 3, 1, 1, bias=bias)

        self.enc = nn.Sequential(
            conv(self.in_channels, w[0]), nn.BatchNorm2d(w[0]), act(),                     # 0-2
            conv(w[0], w[1]), nn.BatchNorm2d(w[1]), act(), nn.MaxPool2d(2),                # 3-6
            conv(w[1], w[2]), nn.BatchNorm2d(w[2]), act(), nn.MaxPool2d(2),                # 7-10
            conv(w[2], w[3]), nn.BatchNorm2d(w[3]), act(), nn.MaxPool2d(2))                # 11-14
        self.dec = nn.Sequential(
            nn.ConvTranspose2d(w[3], w[4], 2, 2, bias=False), nn.BatchNorm2d(w[4]), act(),  # 0-2
            nn.ConvTranspose2d(w[4], w[5], 2, 2, bias=False), nn.BatchNorm2d(w[5]), act(),  # 3-5
            nn.ConvTranspose2d(w[5], w[6], 2, 2, bias=False), nn.BatchNorm2d(w[6]), act(),  # 6-8
            conv(w[6], 3, bias=True), nn.Tanh())                                            # 9-10

    def forward(self, xc):
        """xc: N x 4 x H x W (x then c; 5: then the margin), H and W multiples of 8. Returns e, N x 3 x H x W."""
        if xc.shape[1] != self.in_channels or xc.shape[2] % 8 or xc.shape[3] % 8:
            raise ValueError("JndEd takes N x %d x H x W with H, W multiples of 8, got %s"
                             % (self.in_channels, tuple(xc.shape)))
        return self.dec(self.enc(xc))


def stack(x, c, margin=None):
    """The E-D's input: x (N x 3 x H x W) then the merged CAM map c (N x 1 x H x W), then, when
    given, the margin plane (margin: N values, each repeated over its image's pixels)."""
    if margin is None:
        return torch.cat([x, c], 1)
    plane = margin.reshape(-1, 1, 1, 1).to(x.dtype).expand(-1, 1, x.shape[2], x.shape[3])
    return torch.cat([x, c, plane], 1)


def margin(logits_list):
    """dj_jnd_margin_update over classifiers: per image, the smallest p1 - p2 of their softmax."""
    gaps = []
    for z in logits_list:
        top2 = torch.softmax(z.double(), 1).topk(2, 1).values
        gaps.append(top2[:, 0] - top2[:, 1])
    return torch.stack(gaps, 0).min(0).values.float()


def loss1(logits_list, labels_list, changed_weight=0.0):
    """Loss1 of the training step (src/jnd/train.c, classifiers_pass): the mean over
    classifiers and images of w * cross-entropy against each classifier's label on x,
    w = 1 + changed_weight where the classifier's label on x_hat differs from it, else 1
    (changed_weight 0: the paper's Eq. 9). w is not differentiated (a step function)."""
    terms = []
    for z, lab in zip(logits_list, labels_list):
        ce = torch.nn.functional.cross_entropy(z, lab, reduction="none")
        w = 1 + changed_weight * (z.detach().argmax(1) != lab).to(ce.dtype)
        terms.append((w * ce).mean())
    return sum(terms) / len(terms)


def _unit(e, unit, std):
    if unit == UNIT_NORMALIZED:
        return e
    if unit == UNIT_PIXEL01:
        return e * torch.as_tensor(std, dtype=e.dtype, device=e.device).view(1, 3, 1, 1)
    raise ValueError("unknown unit %r" % unit)


def loss2_per_image(e, c, unit=UNIT_NORMALIZED, std=PAPER_STD, q=1e-10):
    """Eq. 10-13 per image: N = 1 - mean(c), N0 = mean over pixels and channels of |u|,
    Loss2 = ln(N^2 + N0^2 + q) - ln(2 N N0 + q)."""
    n = 1 - c.mean(dim=(1, 2, 3))
    n0 = _unit(e, unit, std).abs().mean(dim=(1, 2, 3))
    return torch.log(n * n + n0 * n0 + q) - torch.log(2 * n * n0 + q)


def loss3_per_image(e, c, unit=UNIT_NORMALIZED, std=PAPER_STD):
    """Eq. 14-15 per image: v = softmax of c over the H*W pixels, Loss3 = sum_p v_p mean_ch |u_p|."""
    v = torch.softmax(c.flatten(1), dim=1)
    m = _unit(e, unit, std).abs().mean(dim=1).flatten(1)
    return (v * m).sum(dim=1)


def loss2(e, c, **kw):
    return loss2_per_image(e, c, **kw).mean()


def loss3(e, c, **kw):
    return loss3_per_image(e, c, **kw).mean()


def clip_range(mean=PAPER_MEAN, std=PAPER_STD):
    """Per channel: the normalised image of [0, 1] ([-1, 1] for the paper's normalisation)."""
    lo = [(0.0 - m) / s for m, s in zip(mean, std)]
    hi = [(1.0 - m) / s for m, s in zip(mean, std)]
    return lo, hi


def apply(x, e, clip=True, mean=PAPER_MEAN, std=PAPER_STD):
    """x_hat = x + e (Eq. 4), clamped per channel to the valid range when clip.

    The clamp's gradient is 1 where lo <= x + e <= hi and 0 outside (torch.clamp's)."""
    y = x + e
    if not clip:
        return y
    lo, hi = clip_range(mean, std)
    lo = torch.as_tensor(lo, dtype=y.dtype, device=y.device).view(1, 3, 1, 1)
    hi = torch.as_tensor(hi, dtype=y.dtype, device=y.device).view(1, 3, 1, 1)
    return torch.maximum(torch.minimum(y, hi), lo)


def to_u8(v, mean=PAPER_MEAN, std=PAPER_STD):
    """8-bit pixels of normalised values, as dj_denormalize_u8: round half up, clamp to 0..255."""
    m = torch.as_tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
    s = torch.as_tensor(std, dtype=torch.float32).view(1, 3, 1, 1)
    return torch.floor((v.float() * s + m) * 255.0 + 0.5).clamp(0, 255)


def psnr_per_image(x, x_hat, mean=PAPER_MEAN, std=PAPER_STD, quantize=False):
    """PSNR on the 0..255 scale per image (float64); PSNR_MAX for identical images."""
    if quantize:
        d = (to_u8(x_hat, mean, std) - to_u8(x, mean, std)).double()
    else:
        s = torch.as_tensor(std, dtype=torch.float64).view(1, 3, 1, 1)
        d = (x_hat.double() - x.double()) * s * 255.0
    mse = (d * d).mean(dim=(1, 2, 3))
    out = torch.full_like(mse, PSNR_MAX)
    pos = mse > 0
    out[pos] = torch.clamp(10 * torch.log10(255.0 ** 2 / mse[pos]), max=PSNR_MAX)
    return out


def mean_abs_255(e, std=PAPER_STD):
    """Mean |e * std| * 255 per image: mean |e| in 8-bit levels."""
    s = torch.as_tensor(std, dtype=torch.float64).view(1, 3, 1, 1)
    return (e.double() * s).abs().mean(dim=(1, 2, 3)) * 255.0
