/* Human-vision JND of Yang et al. 2005 (NAMM: nonlinear additivity model
 * for masking), pixel domain, on luma, with the Canny edge map its
 * edge-protection weight needs. It is the baseline the machine-vision JND is
 * compared with, so it follows the published model, not a tuned variant;
 * docs/budget.md lists each formula, constant and where it comes from.
 *
 * Every filter replicates the border: the reference MATLAB code pads with
 * zeros (filter2), which makes the border look dark and busy; on a 32x32
 * image a fifth of the pixels lie within two of the border, so that would
 * bias the whole map. */
#include <math.h>
#include <stdlib.h>

#include "dmvjnd/budget.h"
#include "dmvjnd/dmvjnd.h"

#define NAMM_C 0.3f      /* overlap of luminance and texture masking */
#define NAMM_ETA 0.117f  /* texture masking gain */
#define EDGE_WEIGHT 0.1f /* W on a Canny edge before smoothing: edges are visible, protect them */
#define W_SIGMA 0.8      /* 7x7 Gaussian that spreads the edge weight */
#define W_RADIUS 3
#define CANNY_SIGMA 1.4142135623730951 /* MATLAB edge(I,'canny') default sqrt(2) */
#define CANNY_RADIUS 5                 /* ceil(3 sigma) */
#define CANNY_HIGH 0.5f                /* of the largest magnitude, as the reference code's edge(I,'canny',0.5) */
#define CANNY_LOW 0.2f                 /* 0.4 x high, MATLAB's ThresholdRatio */

static inline int clampi(int v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : v; }

/* Normalised 1-D Gaussian taps k[0..2r]. */
static void gauss_taps(double sigma, int r, float *k) {
    double sum = 0;
    for (int i = -r; i <= r; i++) sum += k[i + r] = (float)exp(-(double)i * i / (2 * sigma * sigma));
    for (int i = 0; i <= 2 * r; i++) k[i] = (float)(k[i] / sum);
}

/* Separable correlation with taps k (2r+1) along rows then columns,
 * replicate border; tmp and out h*w, out may not alias in. */
static void sep_blur(const float *in, int h, int w, const float *k, int r, float *tmp, float *out) {
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            double s = 0;
            for (int i = -r; i <= r; i++) s += (double)k[i + r] * in[(size_t)y * w + clampi(x + i, 0, w - 1)];
            tmp[(size_t)y * w + x] = (float)s;
        }
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            double s = 0;
            for (int i = -r; i <= r; i++) s += (double)k[i + r] * tmp[(size_t)clampi(y + i, 0, h - 1) * w + x];
            out[(size_t)y * w + x] = (float)s;
        }
}

/* 5x5 correlation sum (no normalisation), replicate border. */
static double corr5(const float *p, int h, int w, int y, int x, const signed char m[5][5]) {
    double s = 0;
    for (int i = 0; i < 5; i++) {
        const float *row = p + (size_t)clampi(y + i - 2, 0, h - 1) * w;
        for (int j = 0; j < 5; j++)
            if (m[i][j]) s += m[i][j] * (double)row[clampi(x + j - 2, 0, w - 1)];
    }
    return s;
}

int dj_canny_edges(const float *luma, int h, int w, uint8_t *edges) {
    if (!luma || !edges) return dj_error(DJ_EINVAL, "canny: NULL image or edge map");
    if (h < 1 || w < 1) return dj_error(DJ_EINVAL, "canny: empty image %dx%d", h, w);
    size_t n = (size_t)h * w;
    float *buf = malloc(4 * n * sizeof *buf);
    int *stack = malloc(n * sizeof *stack);
    if (!buf || !stack) {
        free(buf);
        free(stack);
        return dj_error(DJ_ENOMEM, "canny: no memory for a %dx%d image", h, w);
    }
    float *smooth = buf, *tmp = buf + n, *mag = buf + 2 * n;
    uint8_t *dir = (uint8_t *)(buf + 3 * n); /* 0: horizontal gradient, 1: 45, 2: vertical, 3: 135 */
    uint8_t *weak = (uint8_t *)tmp;          /* tmp is free once smoothed: ridge pixels above the low threshold */
    float k[2 * CANNY_RADIUS + 1];
    gauss_taps(CANNY_SIGMA, CANNY_RADIUS, k);
    sep_blur(luma, h, w, k, CANNY_RADIUS, tmp, smooth);

    /* Sobel, y pointing down the rows. */
    float maxmag = 0;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            int ym = clampi(y - 1, 0, h - 1), yp = clampi(y + 1, 0, h - 1);
            int xm = clampi(x - 1, 0, w - 1), xp = clampi(x + 1, 0, w - 1);
#define S(r, c) ((double)smooth[(size_t)(r) * w + (c)])
            double gx = (S(ym, xp) + 2 * S(y, xp) + S(yp, xp)) - (S(ym, xm) + 2 * S(y, xm) + S(yp, xm));
            double gy = (S(yp, xm) + 2 * S(yp, x) + S(yp, xp)) - (S(ym, xm) + 2 * S(ym, x) + S(ym, xp));
#undef S
            float m = (float)sqrt(gx * gx + gy * gy);
            mag[(size_t)y * w + x] = m;
            if (m > maxmag) maxmag = m;
            /* Quantise the gradient direction to 0/45/90/135 degrees by
             * comparing |gy| with tan(22.5)|gx| and tan(67.5)|gx|. */
            double ax = fabs(gx), ay = fabs(gy);
            uint8_t d;
            if (ay <= 0.41421356237309503 * ax) d = 0;
            else if (ay >= 2.414213562373095 * ax) d = 2;
            else d = (gx > 0) == (gy > 0) ? 1 : 3;
            dir[(size_t)y * w + x] = d;
        }

    /* Non-maximum suppression across the edge (>= on both sides, so a step
     * between two pixels keeps both, symmetrically), then hysteresis:
     * strong pixels seed, weak pixels join when 8-connected to an edge. */
    static const int dy[4] = {0, 1, 1, 1}, dx[4] = {1, 1, 0, -1};
    float hi = CANNY_HIGH * maxmag, lo = CANNY_LOW * maxmag;
    int top = 0;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            size_t i = (size_t)y * w + x;
            int d = dir[i];
            float m = mag[i];
            float a = mag[(size_t)clampi(y + dy[d], 0, h - 1) * w + clampi(x + dx[d], 0, w - 1)];
            float b = mag[(size_t)clampi(y - dy[d], 0, h - 1) * w + clampi(x - dx[d], 0, w - 1)];
            int ridge = maxmag > 0 && m >= a && m >= b;
            edges[i] = 0;
            weak[i] = ridge && m > lo;
            if (ridge && m > hi) {
                edges[i] = 1;
                stack[top++] = (int)i;
            }
        }
    while (top > 0) {
        int i = stack[--top], y = i / w, x = i % w;
        for (int yy = y - 1; yy <= y + 1; yy++)
            for (int xx = x - 1; xx <= x + 1; xx++) {
                if (yy < 0 || yy >= h || xx < 0 || xx >= w) continue;
                size_t j = (size_t)yy * w + xx;
                if (!edges[j] && weak[j]) {
                    edges[j] = 1;
                    stack[top++] = (int)j;
                }
            }
    }
    free(buf);
    free(stack);
    return DJ_OK;
}

/* Chou & Li 1995 luminance adaptation: visibility threshold at background bg. */
static float lum_adapt(double bg) {
    if (bg <= 127) return (float)(17.0 * (1.0 - sqrt(bg / 127.0)) + 3.0);
    return (float)(3.0 / 128.0 * (bg - 127.0) + 3.0);
}

int dj_hvs_jnd_namm(const uint8_t *rgb, int h, int w, float *out) {
    if (!rgb || !out) return dj_error(DJ_EINVAL, "NAMM JND: NULL image or output");
    if (h < 1 || w < 1) return dj_error(DJ_EINVAL, "NAMM JND: empty image %dx%d", h, w);
    size_t n = (size_t)h * w;
    float *buf = malloc(3 * n * sizeof *buf);
    uint8_t *edges = malloc(n);
    if (!buf || !edges) {
        free(buf);
        free(edges);
        return dj_error(DJ_ENOMEM, "NAMM JND: no memory for a %dx%d image", h, w);
    }
    float *luma = buf, *tmp = buf + n, *wmap = buf + 2 * n;
    for (size_t i = 0; i < n; i++)
        luma[i] = (float)(0.299 * rgb[3 * i] + 0.587 * rgb[3 * i + 1] + 0.114 * rgb[3 * i + 2]);

    int st = dj_canny_edges(luma, h, w, edges);
    if (st) {
        free(buf);
        free(edges);
        return st;
    }
    /* Edge protection: edges are where noise shows, so their texture masking
     * is cut to 0.1, and the cut is spread by a 7x7 Gaussian. out holds the
     * unsmoothed weights for a moment. */
    for (size_t i = 0; i < n; i++) out[i] = edges[i] ? EDGE_WEIGHT : 1.0f;
    float kw[2 * W_RADIUS + 1];
    gauss_taps(W_SIGMA, W_RADIUS, kw);
    sep_blur(out, h, w, kw, W_RADIUS, tmp, wmap);

    /* Chou & Li's background weights and directional gradient operators. */
    static const signed char bgm[5][5] = {
        {1, 1, 1, 1, 1}, {1, 2, 2, 2, 1}, {1, 2, 0, 2, 1}, {1, 2, 2, 2, 1}, {1, 1, 1, 1, 1}};
    static const signed char g[4][5][5] = {
        {{0, 0, 0, 0, 0}, {1, 3, 8, 3, 1}, {0, 0, 0, 0, 0}, {-1, -3, -8, -3, -1}, {0, 0, 0, 0, 0}},
        {{0, 0, 1, 0, 0}, {0, 8, 3, 0, 0}, {1, 3, 0, -3, -1}, {0, 0, -3, -8, 0}, {0, 0, -1, 0, 0}},
        {{0, 0, 1, 0, 0}, {0, 0, 3, 8, 0}, {-1, -3, 0, 3, 1}, {0, -8, -3, 0, 0}, {0, 0, -1, 0, 0}},
        {{0, 1, 0, -1, 0}, {0, 3, 0, -3, 0}, {0, 8, 0, -8, 0}, {0, 3, 0, -3, 0}, {0, 1, 0, -1, 0}}};
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            size_t i = (size_t)y * w + x;
            double bg = corr5(luma, h, w, y, x, bgm) / 32.0;
            double gm = 0;
            for (int k = 0; k < 4; k++) {
                double gk = fabs(corr5(luma, h, w, y, x, g[k])) / 16.0;
                if (gk > gm) gm = gk;
            }
            float tl = lum_adapt(bg);
            float tt = (float)(NAMM_ETA * gm * wmap[i]);
            out[i] = tl + tt - NAMM_C * (tl < tt ? tl : tt);
        }
    free(buf);
    free(edges);
    return DJ_OK;
}
