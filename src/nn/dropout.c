/* Inverted dropout (torch.nn.Dropout in training): y = x * mask / (1 - p).
 *
 * The mask is drawn in blocks of DROP_BLOCK elements, block b from
 * dj_rng_fork(rng, b), and rng then advances by one step. So the mask is a
 * function of the generator state and the element count alone: the same
 * seed gives the same mask whatever the thread count, blocks can be drawn in
 * parallel, and the next call draws a different mask. */
#include <math.h>
#include <string.h>

#include "dmvjnd/core.h"
#include "dmvjnd/nn.h"

#define DROP_BLOCK 8192     /* elements per forked stream (even)            */
#define DROP_SERIAL 65536   /* below this many elements threading costs more */

static int drop_check_p(const char *fn, float p) {
    if (!(p >= 0.0f && p < 1.0f)) return dj_error(DJ_EINVAL, "%s: p = %g must be in [0, 1)", fn, p);
    return DJ_OK;
}

static int drop_check_pair(const char *fn, const char *an, const dj_tensor *a, const char *bn, const dj_tensor *b) {
    if (!a || !a->data) return dj_error(DJ_EINVAL, "%s: %s is NULL", fn, an);
    if (!b || !b->data) return dj_error(DJ_EINVAL, "%s: %s is NULL", fn, bn);
    if (a->n <= 0 || a->h <= 0 || a->w <= 0 || a->c <= 0)
        return dj_error(DJ_EINVAL, "%s: %s has an empty shape %dx%dx%dx%d", fn, an, a->n, a->h, a->w, a->c);
    if (a->n != b->n || a->h != b->h || a->w != b->w || a->c != b->c)
        return dj_error(DJ_EINVAL, "%s: %s is %dx%dx%dx%d but %s is %dx%dx%dx%d", fn, an, a->n, a->h, a->w, a->c, bn,
                        b->n, b->h, b->w, b->c);
    return DJ_OK;
}

/* mask[i] = 1 with probability keep/2^32: each 64-bit draw gives two 32-bit
 * uniforms (all of xoshiro256**'s output bits are good). */
static void draw_mask(dj_rng *r, uint8_t *mask, size_t n, uint64_t keep) {
    size_t i = 0;
    for (; i + 1 < n; i += 2) {
        uint64_t u = dj_rng_u64(r);
        mask[i] = (u & 0xffffffffu) < keep;
        mask[i + 1] = (u >> 32) < keep;
    }
    if (i < n) mask[i] = (dj_rng_u64(r) & 0xffffffffu) < keep;
}

int dj_dropout_forward(float p, dj_rng *rng, const dj_tensor *x, dj_tensor *y, uint8_t *mask) {
    static const char fn[] = "dropout";
    int st = drop_check_p(fn, p);
    if (!st) st = drop_check_pair(fn, "x", x, "y", y);
    if (st) return st;
    if (!rng || !mask) return dj_error(DJ_EINVAL, "%s: rng and mask are required", fn);
    size_t n = dj_tensor_numel(x);
    size_t blocks = (n + DROP_BLOCK - 1) / DROP_BLOCK;
    /* P(keep) = keep / 2^32 = 1 - p up to 2^-32; p = 0 keeps everything. */
    uint64_t keep = (uint64_t)ldexp(1.0 - (double)p, 32);
    float scale = 1.0f / (1.0f - p);
    const float *xd = x->data;
    float *yd = y->data;
#pragma omp parallel for schedule(static) if (n > DROP_SERIAL)
    for (size_t b = 0; b < blocks; b++) {
        size_t i0 = b * DROP_BLOCK, len = n - i0 < DROP_BLOCK ? n - i0 : DROP_BLOCK;
        dj_rng r = dj_rng_fork(rng, (uint64_t)b);
        draw_mask(&r, mask + i0, len, keep);
        const uint8_t *m = mask + i0;
#pragma omp simd
        for (size_t i = 0; i < len; i++) yd[i0 + i] = m[i] ? xd[i0 + i] * scale : 0.0f;
    }
    dj_rng_u64(rng);
    return DJ_OK;
}

int dj_dropout_backward(float p, const uint8_t *mask, const dj_tensor *dy, dj_tensor *dx, int accum) {
    static const char fn[] = "dropout backward";
    int st = drop_check_p(fn, p);
    if (!st && !dx) return DJ_OK; /* input gradient not needed */
    if (!st) st = drop_check_pair(fn, "dy", dy, "dx", dx);
    if (st) return st;
    if (!mask) return dj_error(DJ_EINVAL, "%s: mask is NULL", fn);
    size_t n = dj_tensor_numel(dy);
    float scale = 1.0f / (1.0f - p);
    const float *g = dy->data;
    float *o = dx->data;
    if (accum) {
#pragma omp parallel for simd schedule(static) if (n > DROP_SERIAL)
        for (size_t i = 0; i < n; i++) o[i] += mask[i] ? g[i] * scale : 0.0f;
    } else {
#pragma omp parallel for simd schedule(static) if (n > DROP_SERIAL)
        for (size_t i = 0; i < n; i++) o[i] = mask[i] ? g[i] * scale : 0.0f;
    }
    return DJ_OK;
}
