/* Max, average and global average pooling on NHWC tensors (PyTorch's
 * MaxPool2d / AvgPool2d with floor mode and count_include_pad = True, and
 * AdaptiveAvgPool2d(1)). Every inner loop runs along the contiguous channels
 * of one pixel; threads split output rows (or images where a backward
 * scatters inside an image). */
#include <limits.h>
#include <string.h>

#include "dmvjnd/core.h"
#include "dmvjnd/nn.h"

#define POOL_SERIAL 32768 /* below this many elements threading costs more */
#define GAP_CH 64         /* channels per chunk of GAP's double accumulators */
#define GAP_BLOCK 64      /* pixels summed in float before moving to double  */

/* ------------------------------------------------------------ validation */

static int pool_check_tensor(const char *fn, const char *name, const dj_tensor *t) {
    if (!t || !t->data) return dj_error(DJ_EINVAL, "%s: %s is NULL", fn, name);
    if (t->n <= 0 || t->h <= 0 || t->w <= 0 || t->c <= 0)
        return dj_error(DJ_EINVAL, "%s: %s has an empty shape %dx%dx%dx%d", fn, name, t->n, t->h, t->w, t->c);
    return DJ_OK;
}

static int pool_check_desc(const char *fn, const dj_pool_desc *d) {
    if (!d) return dj_error(DJ_EINVAL, "%s: descriptor is NULL", fn);
    if (d->k < 1 || d->stride < 1 || d->pad < 0)
        return dj_error(DJ_EINVAL, "%s: k = %d, stride = %d, pad = %d (need k >= 1, stride >= 1, pad >= 0)", fn, d->k,
                        d->stride, d->pad);
    if (d->pad > d->k / 2) return dj_error(DJ_EINVAL, "%s: pad %d exceeds k/2 (k = %d)", fn, d->pad, d->k);
    return DJ_OK;
}

static int out_shape(const char *fn, const dj_pool_desc *d, int h, int w, int *oh, int *ow) {
    int st = pool_check_desc(fn, d);
    if (st) return st;
    if (h <= 0 || w <= 0) return dj_error(DJ_EINVAL, "%s: input size %dx%d is empty", fn, h, w);
    /* int arithmetic below cannot overflow: pad <= k/2 and k <= h + 2*pad */
    if ((long long)h + 2LL * d->pad < d->k || (long long)w + 2LL * d->pad < d->k)
        return dj_error(DJ_EINVAL, "%s: window %d does not fit input %dx%d with pad %d", fn, d->k, h, w, d->pad);
    int y = (h + 2 * d->pad - d->k) / d->stride + 1, x = (w + 2 * d->pad - d->k) / d->stride + 1;
    if (oh) *oh = y;
    if (ow) *ow = x;
    return DJ_OK;
}

int dj_pool_out_shape(const dj_pool_desc *d, int h, int w, int *oh, int *ow) {
    return out_shape("pool", d, h, w, oh, ow);
}

/* x (input-side tensor) and y (output-side) must agree with the descriptor. */
static int pool_check_pair(const char *fn, const dj_pool_desc *d, const char *xn, const dj_tensor *x, const char *yn,
                           const dj_tensor *y) {
    int st = pool_check_tensor(fn, xn, x);
    if (!st) st = pool_check_tensor(fn, yn, y);
    if (st) return st;
    int oh = 0, ow = 0;
    st = out_shape(fn, d, x->h, x->w, &oh, &ow);
    if (st) return st;
    if (y->n != x->n) return dj_error(DJ_EINVAL, "%s: %s has batch %d but %s has %d", fn, xn, x->n, yn, y->n);
    if (y->c != x->c) return dj_error(DJ_EINVAL, "%s: %s has %d channels but %s has %d", fn, xn, x->c, yn, y->c);
    if (y->h != oh || y->w != ow)
        return dj_error(DJ_EINVAL, "%s: %s is %dx%d, so %s must be %dx%d, not %dx%d", fn, xn, x->h, x->w, yn, oh, ow,
                        y->h, y->w);
    return DJ_OK;
}

/* Valid input range [*lo, *hi) of the window starting at `start`. */
static inline void window(int start, int k, int size, int *lo, int *hi) {
    *lo = start < 0 ? 0 : start;
    *hi = start + k < size ? start + k : size;
}

/* ------------------------------------------------------------- max pool */

/* One output pixel: yo/am hold the running max and its index. Padding acts
 * as -inf, and pad <= k/2 guarantees at least one real input per window.
 * `v > m || v != v` keeps ties on the first and lets NaN win (as PyTorch). */
static void max_pixel(const float *xi, int w, int C, int y0, int y1, int x0, int x1, float *yo, int32_t *am) {
    int first = 1;
    for (int iy = y0; iy < y1; iy++) {
        for (int ix = x0; ix < x1; ix++) {
            int32_t base = (int32_t)((iy * w + ix) * C);
            const float *xp = xi + base;
            if (first) {
                memcpy(yo, xp, (size_t)C * sizeof(float));
                if (am)
                    for (int c = 0; c < C; c++) am[c] = base + c;
                first = 0;
            } else if (am) {
#pragma omp simd
                for (int c = 0; c < C; c++) {
                    float v = xp[c];
                    if (v > yo[c] || v != v) {
                        yo[c] = v;
                        am[c] = base + c;
                    }
                }
            } else {
#pragma omp simd
                for (int c = 0; c < C; c++) {
                    float v = xp[c];
                    yo[c] = (v > yo[c] || v != v) ? v : yo[c];
                }
            }
        }
    }
}

int dj_maxpool_forward(const dj_pool_desc *d, const dj_tensor *x, dj_tensor *y, int32_t *argmax) {
    static const char fn[] = "maxpool";
    int st = pool_check_pair(fn, d, "x", x, "y", y);
    if (st) return st;
    if ((long long)x->h * x->w * x->c > INT32_MAX)
        return dj_error(DJ_EINVAL, "%s: image %dx%dx%d is too large for int32 argmax", fn, x->h, x->w, x->c);
    int H = x->h, W = x->w, C = x->c, OH = y->h, OW = y->w, k = d->k, s = d->stride, p = d->pad;
    long long rows = (long long)x->n * OH;
#pragma omp parallel for schedule(static) if (dj_tensor_numel(x) > POOL_SERIAL)
    for (long long r = 0; r < rows; r++) {
        int i = (int)(r / OH), oy = (int)(r % OH), y0, y1;
        window(oy * s - p, k, H, &y0, &y1);
        const float *xi = x->data + (size_t)i * H * W * C;
        for (int ox = 0; ox < OW; ox++) {
            int x0, x1;
            window(ox * s - p, k, W, &x0, &x1);
            size_t o = ((size_t)r * OW + ox) * C;
            max_pixel(xi, W, C, y0, y1, x0, x1, y->data + o, argmax ? argmax + o : NULL);
        }
    }
    return DJ_OK;
}

int dj_maxpool_backward(const dj_pool_desc *d, const dj_tensor *dy, const int32_t *argmax, dj_tensor *dx, int accum) {
    static const char fn[] = "maxpool backward";
    if (!dx) return DJ_OK; /* input gradient not needed */
    int st = pool_check_pair(fn, d, "dx", dx, "dy", dy);
    if (st) return st;
    if (!argmax) return dj_error(DJ_EINVAL, "%s: argmax is NULL", fn);
    size_t plane = (size_t)dx->h * dx->w * dx->c, oplane = (size_t)dy->h * dy->w * dy->c;
    int bad = 0;
    /* Windows overlap, so threads own whole images (argmax stays inside one). */
#pragma omp parallel for schedule(static) reduction(| : bad) if (dj_tensor_numel(dx) > POOL_SERIAL)
    for (int i = 0; i < dx->n; i++) {
        float *dxi = dx->data + (size_t)i * plane;
        const float *dyi = dy->data + (size_t)i * oplane;
        const int32_t *ai = argmax + (size_t)i * oplane;
        if (!accum) memset(dxi, 0, plane * sizeof(float));
        for (size_t j = 0; j < oplane; j++) {
            if ((size_t)(uint32_t)ai[j] < plane)
                dxi[ai[j]] += dyi[j];
            else
                bad = 1;
        }
    }
    if (bad) return dj_error(DJ_EINVAL, "%s: argmax holds an index outside the %zu-element image", fn, plane);
    return DJ_OK;
}

/* ------------------------------------------------------------- avg pool */

/* PyTorch's divisor with count_include_pad: the window clipped to the padded
 * input (always k*k in floor mode, kept general for clarity). */
static inline int avg_divisor(int oy, int ox, int k, int s, int p, int H, int W) {
    int ys = oy * s - p, xs = ox * s - p;
    int ye = ys + k < H + p ? ys + k : H + p, xe = xs + k < W + p ? xs + k : W + p;
    return (ye - ys) * (xe - xs);
}

int dj_avgpool_forward(const dj_pool_desc *d, const dj_tensor *x, dj_tensor *y) {
    static const char fn[] = "avgpool";
    int st = pool_check_pair(fn, d, "x", x, "y", y);
    if (st) return st;
    int H = x->h, W = x->w, C = x->c, OH = y->h, OW = y->w, k = d->k, s = d->stride, p = d->pad;
    long long rows = (long long)x->n * OH;
#pragma omp parallel for schedule(static) if (dj_tensor_numel(x) > POOL_SERIAL)
    for (long long r = 0; r < rows; r++) {
        int i = (int)(r / OH), oy = (int)(r % OH), y0, y1;
        window(oy * s - p, k, H, &y0, &y1);
        const float *xi = x->data + (size_t)i * H * W * C;
        for (int ox = 0; ox < OW; ox++) {
            int x0, x1;
            window(ox * s - p, k, W, &x0, &x1);
            float *yo = y->data + ((size_t)r * OW + ox) * C;
            for (int c = 0; c < C; c++) yo[c] = 0.0f;
            for (int iy = y0; iy < y1; iy++)
                for (int ix = x0; ix < x1; ix++) {
                    const float *xp = xi + ((size_t)iy * W + ix) * C;
#pragma omp simd
                    for (int c = 0; c < C; c++) yo[c] += xp[c];
                }
            float dv = (float)avg_divisor(oy, ox, k, s, p, H, W);
#pragma omp simd
            for (int c = 0; c < C; c++) yo[c] /= dv; /* divide, as PyTorch does */
        }
    }
    return DJ_OK;
}

/* Outputs o whose window [o*s - p, o*s - p + k) covers input i: [*lo, *hi]. */
static inline void covering(int i, int k, int s, int p, int osize, int *lo, int *hi) {
    int t = i + p - k + 1;
    *lo = t <= 0 ? 0 : (t + s - 1) / s;
    int h = (i + p) / s;
    *hi = h < osize - 1 ? h : osize - 1;
}

/* Gathers into each input pixel from the outputs covering it, so threads can
 * split input rows without write conflicts. */
int dj_avgpool_backward(const dj_pool_desc *d, const dj_tensor *dy, dj_tensor *dx, int accum) {
    static const char fn[] = "avgpool backward";
    if (!dx) return DJ_OK; /* input gradient not needed */
    int st = pool_check_pair(fn, d, "dx", dx, "dy", dy);
    if (st) return st;
    int H = dx->h, W = dx->w, C = dx->c, OH = dy->h, OW = dy->w, k = d->k, s = d->stride, p = d->pad;
    long long rows = (long long)dx->n * H;
#pragma omp parallel for schedule(static) if (dj_tensor_numel(dx) > POOL_SERIAL)
    for (long long r = 0; r < rows; r++) {
        int i = (int)(r / H), iy = (int)(r % H), oy0, oy1;
        covering(iy, k, s, p, OH, &oy0, &oy1);
        const float *dyi = dy->data + (size_t)i * OH * OW * C;
        for (int ix = 0; ix < W; ix++) {
            int ox0, ox1;
            covering(ix, k, s, p, OW, &ox0, &ox1);
            float *g = dx->data + ((size_t)r * W + ix) * C;
            if (!accum)
                for (int c = 0; c < C; c++) g[c] = 0.0f;
            for (int oy = oy0; oy <= oy1; oy++)
                for (int ox = ox0; ox <= ox1; ox++) {
                    const float *gp = dyi + ((size_t)oy * OW + ox) * C;
                    float dv = (float)avg_divisor(oy, ox, k, s, p, H, W);
#pragma omp simd
                    for (int c = 0; c < C; c++) g[c] += gp[c] / dv;
                }
        }
    }
    return DJ_OK;
}

/* ------------------------------------------------ global average pooling */

static int gap_check(const char *fn, const char *xn, const dj_tensor *x, const char *yn, const dj_tensor *y) {
    int st = pool_check_tensor(fn, xn, x);
    if (!st) st = pool_check_tensor(fn, yn, y);
    if (st) return st;
    if (y->n != x->n) return dj_error(DJ_EINVAL, "%s: %s has batch %d but %s has %d", fn, xn, x->n, yn, y->n);
    if (y->c != x->c) return dj_error(DJ_EINVAL, "%s: %s has %d channels but %s has %d", fn, xn, x->c, yn, y->c);
    if (y->h != 1 || y->w != 1) return dj_error(DJ_EINVAL, "%s: %s must be 1x1, not %dx%d", fn, yn, y->h, y->w);
    return DJ_OK;
}

/* Mean over pixels of channels [c0, c0+cc) of one image: float sums over
 * blocks of pixels, double across blocks (large images stay accurate). */
static void gap_chunk(const float *xi, size_t pixels, int C, int c0, int cc, float *yo) {
    double acc[GAP_CH];
    float blk[GAP_CH];
    for (int c = 0; c < cc; c++) acc[c] = 0.0;
    for (size_t pb = 0; pb < pixels; pb += GAP_BLOCK) {
        size_t pe = pb + GAP_BLOCK < pixels ? pb + GAP_BLOCK : pixels;
        for (int c = 0; c < cc; c++) blk[c] = 0.0f;
        for (size_t q = pb; q < pe; q++) {
            const float *xp = xi + q * (size_t)C + c0;
#pragma omp simd
            for (int c = 0; c < cc; c++) blk[c] += xp[c];
        }
        for (int c = 0; c < cc; c++) acc[c] += blk[c];
    }
    for (int c = 0; c < cc; c++) yo[c0 + c] = (float)(acc[c] / (double)pixels);
}

int dj_gap_forward(const dj_tensor *x, dj_tensor *y) {
    int st = gap_check("global avgpool", "x", x, "y", y);
    if (st) return st;
    size_t pixels = (size_t)x->h * x->w;
    int C = x->c;
#pragma omp parallel for schedule(static) if (dj_tensor_numel(x) > POOL_SERIAL)
    for (int i = 0; i < x->n; i++) {
        const float *xi = x->data + (size_t)i * pixels * C;
        for (int c0 = 0; c0 < C; c0 += GAP_CH)
            gap_chunk(xi, pixels, C, c0, C - c0 < GAP_CH ? C - c0 : GAP_CH, y->data + (size_t)i * C);
    }
    return DJ_OK;
}

int dj_gap_backward(const dj_tensor *dy, dj_tensor *dx, int accum) {
    if (!dx) return DJ_OK; /* input gradient not needed */
    int st = gap_check("global avgpool backward", "dx", dx, "dy", dy);
    if (st) return st;
    size_t pixels = (size_t)dx->h * dx->w;
    long long rows = (long long)dx->n * (long long)pixels;
    int C = dx->c;
    float inv = (float)(1.0 / (double)pixels);
#pragma omp parallel for schedule(static) if (dj_tensor_numel(dx) > POOL_SERIAL)
    for (long long r = 0; r < rows; r++) {
        const float *g = dy->data + (size_t)(r / (long long)pixels) * C;
        float *o = dx->data + (size_t)r * C;
        if (accum) {
#pragma omp simd
            for (int c = 0; c < C; c++) o[c] += g[c] * inv;
        } else {
#pragma omp simd
            for (int c = 0; c < C; c++) o[c] = g[c] * inv;
        }
    }
    return DJ_OK;
}
