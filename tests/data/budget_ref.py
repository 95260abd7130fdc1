#!/usr/bin/python3
"""Reference values for tests/test_hvs_jnd.c and tests/test_bdrate.c, written
independently of the C code (numpy loops, 2-D kernels instead of separable
ones, iterative hysteresis instead of a stack; scipy's PchipInterpolator for
PCHIP). Run once; the printed constants are pasted into the tests, which do
not need Python.

    /usr/bin/python3 tests/data/budget_ref.py
"""
import numpy as np
from scipy.interpolate import PchipInterpolator


def pad_get(img, y, x):
    h, w = img.shape
    return img[min(max(y, 0), h - 1), min(max(x, 0), w - 1)]


def corr2(img, k):
    """2-D correlation (MATLAB filter2) with replicate border."""
    h, w = img.shape
    r = k.shape[0] // 2
    out = np.zeros((h, w))
    for y in range(h):
        for x in range(w):
            s = 0.0
            for i in range(-r, r + 1):
                for j in range(-r, r + 1):
                    s += k[i + r, j + r] * pad_get(img, y + i, x + j)
            out[y, x] = s
    return out


def gauss2(sigma, r):
    ax = np.arange(-r, r + 1)
    g = np.exp(-(ax[:, None] ** 2 + ax[None, :] ** 2) / (2 * sigma * sigma))
    return g / g.sum()


def canny(lum):
    h, w = lum.shape
    sm = corr2(lum, gauss2(np.sqrt(2), 5))
    kx = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], float)
    gx = corr2(sm, kx)
    gy = corr2(sm, kx.T)
    mag = np.hypot(gx, gy)
    mx = mag.max()
    ang = np.degrees(np.arctan2(gy, gx)) % 180.0
    keep = np.zeros((h, w), bool)
    for y in range(h):
        for x in range(w):
            a = ang[y, x]
            if a < 22.5 or a >= 157.5:
                off = (0, 1)
            elif a < 67.5:
                off = (1, 1)
            elif a < 112.5:
                off = (1, 0)
            else:
                off = (1, -1)
            n1 = pad_get(mag, y + off[0], x + off[1])
            n2 = pad_get(mag, y - off[0], x - off[1])
            keep[y, x] = mx > 0 and mag[y, x] >= n1 and mag[y, x] >= n2
    strong = keep & (mag > 0.5 * mx)
    weak = keep & (mag > 0.2 * mx)
    edges = strong.copy()
    while True:  # grow edges into 8-connected weak pixels until nothing changes
        grown = edges.copy()
        for y in range(h):
            for x in range(w):
                if weak[y, x] and not edges[y, x]:
                    for i in (-1, 0, 1):
                        for j in (-1, 0, 1):
                            yy, xx = y + i, x + j
                            if 0 <= yy < h and 0 <= xx < w and edges[yy, xx]:
                                grown[y, x] = True
        if (grown == edges).all():
            break
        edges = grown
    return edges, mag, mx


def namm(rgb):
    lum = 0.299 * rgb[..., 0] + 0.587 * rgb[..., 1] + 0.114 * rgb[..., 2]
    bgk = np.array([[1, 1, 1, 1, 1], [1, 2, 2, 2, 1], [1, 2, 0, 2, 1], [1, 2, 2, 2, 1], [1, 1, 1, 1, 1]], float)
    bg = corr2(lum, bgk) / 32
    ops = [
        [[0, 0, 0, 0, 0], [1, 3, 8, 3, 1], [0, 0, 0, 0, 0], [-1, -3, -8, -3, -1], [0, 0, 0, 0, 0]],
        [[0, 0, 1, 0, 0], [0, 8, 3, 0, 0], [1, 3, 0, -3, -1], [0, 0, -3, -8, 0], [0, 0, -1, 0, 0]],
        [[0, 0, 1, 0, 0], [0, 0, 3, 8, 0], [-1, -3, 0, 3, 1], [0, -8, -3, 0, 0], [0, 0, -1, 0, 0]],
        [[0, 1, 0, -1, 0], [0, 3, 0, -3, 0], [0, 8, 0, -8, 0], [0, 3, 0, -3, 0], [0, 1, 0, -1, 0]],
    ]
    G = np.max([np.abs(corr2(lum, np.array(o, float)) / 16) for o in ops], axis=0)
    edges, mag, mx = canny(lum)
    W = corr2(np.where(edges, 0.1, 1.0), gauss2(0.8, 3))
    Tl = np.where(bg <= 127, 17 * (1 - np.sqrt(np.maximum(bg, 0) / 127)) + 3, 3 / 128 * (bg - 127) + 3)
    Tt = 0.117 * G * W
    return Tl + Tt - 0.3 * np.minimum(Tl, Tt), bg, G, edges, W, mag, mx


def carr(name, a, fmt="%.6f"):
    flat = np.asarray(a).ravel()
    body = ", ".join(fmt % v for v in flat)
    print("static const %s %s[%d] = {%s};" % ("float" if "f" in fmt else "unsigned char", name, flat.size, body))


def lcg_image(h, w, seed):
    """The same generator as the test: x = x * 1103515245 + 12345 mod 2^31, byte = x >> 16 & 255."""
    s = seed
    out = np.zeros((h, w, 3))
    for i in range(h * w * 3):
        s = (s * 1103515245 + 12345) % (1 << 31)
        out.flat[i] = (s >> 16) & 255
    return out


print("/* --- NAMM: 8x8 vertical edge, columns 50 50 50 125 200 200 200 200 --- */")
step = np.zeros((8, 8, 3))
step[:, :3] = 50
step[:, 3] = 125
step[:, 4:] = 200
jnd, bg, G, edges, W, mag, mx = namm(step)
print("bg row", bg[0], "G row", G[0], "edges row", edges[0].astype(int), "W row", W[0])
carr("step_jnd_row", jnd[0])

print("/* --- NAMM: 6x7 pseudo-random image, seed 7 --- */")
img = lcg_image(6, 7, 7)
jnd, bg, G, edges, W, mag, mx = namm(img)
print("edges:\n", edges.astype(int))
# Margin of each ridge pixel from the two thresholds, to see that float32 in C cannot flip a decision.
print("min |mag - 0.5max|/max, |mag-0.2max|/max:", np.min(np.abs(mag - 0.5 * mx)) / mx, np.min(np.abs(mag - 0.2 * mx)) / mx)
carr("rand_edges", edges.astype(int), "%d")
carr("rand_jnd", jnd)

print("/* --- PCHIP (scipy.interpolate.PchipInterpolator) --- */")
x = np.array([0.0, 1.0, 3.0, 4.0, 7.0])
y = np.array([0.0, 1.0, 1.5, 3.0, 3.2])
p = PchipInterpolator(x, y)
print("slopes", repr(p.derivative()(x)))
xq = np.array([0.5, 2.0, 3.5, 5.0, 6.9])
print("values", repr(p(xq)))

print("/* --- BD-rate of two non-linear curves (scipy PCHIP integrate) --- */")
qa = np.array([0.60, 0.70, 0.78, 0.85, 0.90])
ra = np.array([1000.0, 1500.0, 2300.0, 3600.0, 6000.0])
qt = np.array([0.58, 0.66, 0.75, 0.83, 0.88, 0.93])
rt = np.array([800.0, 1000.0, 1700.0, 2500.0, 3900.0, 7000.0])
fa = PchipInterpolator(qa, np.log(ra))
ft = PchipInterpolator(qt, np.log(rt))
lo, hi = max(qa[0], qt[0]), min(qa[-1], qt[-1])
bd = np.exp((ft.integrate(lo, hi) - fa.integrate(lo, hi)) / (hi - lo)) - 1
print("bd_rate %.15f" % bd)
print("rate_at(anchor, 0.74) %.12f" % np.exp(fa(0.74)))

print("/* --- Canny on smooth noise (16x16 gray, seeds 11 and 12) --- */")
for seed in (11, 12):
    noise = lcg_image(16, 16, seed)[..., 0]
    sm = corr2(noise, gauss2(1.5, 4))
    g = np.round(20 + 215 * (sm - sm.min()) / (sm.max() - sm.min()))
    edges, mag, mx = canny(g.astype(float))
    # Margins: how far each decision is from flipping (relative to the largest magnitude).
    ang = np.degrees(np.arctan2(corr2(corr2(g, gauss2(np.sqrt(2), 5)), np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]]).T),
                                corr2(corr2(g, gauss2(np.sqrt(2), 5)), np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]])))) % 180
    dmargin = np.min(np.abs(((ang - 22.5) % 45) - 22.5 * 0 - 0) % 45)
    print("seed", seed, "threshold margins", np.min(np.abs(mag - 0.5 * mx)) / mx, np.min(np.abs(mag - 0.2 * mx)) / mx,
          "direction margin (deg)", np.min(np.minimum((ang - 22.5) % 45, 45 - (ang - 22.5) % 45)))
    print(edges.astype(int))
    carr("noise%d_img" % seed, g, "%d")
    carr("noise%d_edges" % seed, edges.astype(int), "%d")
    rgb = np.stack([g, g, g], axis=-1)
    carr("noise%d_jnd" % seed, namm(rgb)[0])
