/* Element-wise activations. Backward works from the forward output y, which
 * is enough for all three (the ReLUs' derivative depends only on the sign of
 * x, which y keeps; tanh' = 1 - y^2), so forward may overwrite its input. */
#include <math.h>

#include "dmvjnd/core.h"
#include "dmvjnd/nn.h"

#define ACT_SERIAL 65536 /* below this many elements threading costs more */

static int act_check(const char *fn, int kind, float slope, const void *a, const void *b, const void *c, size_t n) {
    if (kind != DJ_ACT_RELU && kind != DJ_ACT_LEAKY_RELU && kind != DJ_ACT_TANH)
        return dj_error(DJ_EINVAL, "%s: unknown activation kind %d", fn, kind);
    if (kind == DJ_ACT_LEAKY_RELU && !(slope > 0.0f && isfinite(slope)))
        return dj_error(DJ_EINVAL, "%s: leaky relu slope %g must be > 0", fn, slope);
    if (n > 0 && (!a || !b || !c)) return dj_error(DJ_EINVAL, "%s: NULL buffer", fn);
    return DJ_OK;
}

int dj_act_forward(int kind, float slope, const float *x, float *y, size_t n) {
    int st = act_check("activation", kind, slope, x, y, x, n);
    if (st) return st;
    switch (kind) {
    case DJ_ACT_RELU:
#pragma omp parallel for simd schedule(static) if (n > ACT_SERIAL)
        for (size_t i = 0; i < n; i++) y[i] = x[i] < 0.0f ? 0.0f : x[i]; /* NaN stays NaN */
        break;
    case DJ_ACT_LEAKY_RELU:
#pragma omp parallel for simd schedule(static) if (n > ACT_SERIAL)
        for (size_t i = 0; i < n; i++) y[i] = x[i] > 0.0f ? x[i] : x[i] * slope;
        break;
    default: /* DJ_ACT_TANH: libm's tanhf is scalar, so thread it earlier */
#pragma omp parallel for schedule(static) if (n > ACT_SERIAL / 8)
        for (size_t i = 0; i < n; i++) y[i] = tanhf(x[i]);
        break;
    }
    return DJ_OK;
}

/* Each backward has an overwrite and an accumulate loop: reading dx when
 * accum = 0 would let garbage (NaN) leak into the result. */
static void relu_backward(const float *y, const float *dy, float *dx, size_t n, int accum) {
    if (accum) {
#pragma omp parallel for simd schedule(static) if (n > ACT_SERIAL)
        for (size_t i = 0; i < n; i++) dx[i] += y[i] > 0.0f ? dy[i] : 0.0f;
    } else {
#pragma omp parallel for simd schedule(static) if (n > ACT_SERIAL)
        for (size_t i = 0; i < n; i++) dx[i] = y[i] > 0.0f ? dy[i] : 0.0f;
    }
}

/* slope > 0, so sign(y) = sign(x) and y tells which branch x took. */
static void leaky_backward(float slope, const float *y, const float *dy, float *dx, size_t n, int accum) {
    if (accum) {
#pragma omp parallel for simd schedule(static) if (n > ACT_SERIAL)
        for (size_t i = 0; i < n; i++) dx[i] += y[i] > 0.0f ? dy[i] : dy[i] * slope;
    } else {
#pragma omp parallel for simd schedule(static) if (n > ACT_SERIAL)
        for (size_t i = 0; i < n; i++) dx[i] = y[i] > 0.0f ? dy[i] : dy[i] * slope;
    }
}

static void tanh_backward(const float *y, const float *dy, float *dx, size_t n, int accum) {
    if (accum) {
#pragma omp parallel for simd schedule(static) if (n > ACT_SERIAL)
        for (size_t i = 0; i < n; i++) dx[i] += dy[i] * (1.0f - y[i] * y[i]);
    } else {
#pragma omp parallel for simd schedule(static) if (n > ACT_SERIAL)
        for (size_t i = 0; i < n; i++) dx[i] = dy[i] * (1.0f - y[i] * y[i]);
    }
}

int dj_act_backward(int kind, float slope, const float *y, const float *dy, float *dx, size_t n, int accum) {
    if (!dx) return act_check("activation backward", kind, slope, y, dy, dy, n); /* gradient not needed */
    int st = act_check("activation backward", kind, slope, y, dy, dx, n);
    if (st) return st;
    switch (kind) {
    case DJ_ACT_RELU: relu_backward(y, dy, dx, n, accum); break;
    case DJ_ACT_LEAKY_RELU: leaky_backward(slope, y, dy, dx, n, accum); break;
    default: tanh_backward(y, dy, dx, n, accum); break;
    }
    return DJ_OK;
}
