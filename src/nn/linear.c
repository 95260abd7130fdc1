/* Fully connected layer, torch.nn.Linear: y = x w^T + b with w of shape
 * (out, in). x is flattened per sample in NHWC order.
 *
 * The three products are plain loops over contiguous rows (dot products and
 * axpys the compiler vectorises), not oneDNN's GEMM: the layer is the
 * classifiers' head (in <= 512 features, 10 outputs), microseconds of work
 * beside the convolutions, and dnnl_sgemm allocates a packing buffer on
 * every call (16 KB with AVX2, 72 KB with AVX-512), which breaks the "no
 * allocation inside a training step" rule (tests/test_alloc.c). */
#include <limits.h>
#include <string.h>

#include "dmvjnd/core.h"
#include "dmvjnd/nn.h"

#define LIN_CH 256        /* outputs per chunk of the bias-gradient accumulators */
#define LIN_SERIAL 262144 /* below this many multiply-adds threading costs more */

static int lin_check_tensor(const char *fn, const char *name, const dj_tensor *t) {
    if (!t || !t->data) return dj_error(DJ_EINVAL, "%s: %s is NULL", fn, name);
    if (t->n <= 0 || t->h <= 0 || t->w <= 0 || t->c <= 0)
        return dj_error(DJ_EINVAL, "%s: %s has an empty shape %dx%dx%dx%d", fn, name, t->n, t->h, t->w, t->c);
    return DJ_OK;
}

/* x (n x in) and y (n x 1 x 1 x out); sets *in. */
static int lin_check(const char *fn, const dj_tensor *x, const char *yn, const dj_tensor *y, const float *w, int *in) {
    int st = lin_check_tensor(fn, "x", x);
    if (!st) st = lin_check_tensor(fn, yn, y);
    if (st) return st;
    if (!w) return dj_error(DJ_EINVAL, "%s: weight is NULL", fn);
    long long features = (long long)x->h * x->w * x->c;
    if (features > INT_MAX) return dj_error(DJ_EINVAL, "%s: x has %lld features per sample, too many", fn, features);
    if (y->n != x->n) return dj_error(DJ_EINVAL, "%s: x has batch %d but %s has %d", fn, x->n, yn, y->n);
    if (y->h != 1 || y->w != 1)
        return dj_error(DJ_EINVAL, "%s: %s must be n x 1 x 1 x out, not %dx%dx%dx%d", fn, yn, y->n, y->h, y->w, y->c);
    *in = (int)features;
    return DJ_OK;
}

int dj_linear_forward(const dj_tensor *x, const float *w, const float *b, dj_tensor *y) {
    static const char fn[] = "linear";
    int in = 0;
    int st = lin_check(fn, x, "y", y, w, &in);
    if (st) return st;
    int n = x->n, out = y->c;
    const float *xd = x->data;
    float *yd = y->data;
    /* y[i][o] = b[o] + x_i . w_o: both rows contiguous */
#pragma omp parallel for schedule(static) if ((double)n * out * in > LIN_SERIAL)
    for (int i = 0; i < n; i++) {
        const float *xi = xd + (size_t)i * in;
        for (int o = 0; o < out; o++) {
            const float *wo = w + (size_t)o * in;
            float s = 0.0f;
#pragma omp simd reduction(+ : s)
            for (int k = 0; k < in; k++) s += xi[k] * wo[k];
            yd[(size_t)i * out + o] = (b ? b[o] : 0.0f) + s;
        }
    }
    return DJ_OK;
}

/* db[o] += sum_i dy[i][o], summed in double (chunked so it fits the stack). */
static void bias_grad(const float *dy, int n, int out, float *db) {
    for (int o0 = 0; o0 < out; o0 += LIN_CH) {
        int oc = out - o0 < LIN_CH ? out - o0 : LIN_CH;
        double acc[LIN_CH];
        for (int o = 0; o < oc; o++) acc[o] = 0.0;
        for (int i = 0; i < n; i++) {
            const float *g = dy + (size_t)i * out + o0;
#pragma omp simd
            for (int o = 0; o < oc; o++) acc[o] += g[o];
        }
        for (int o = 0; o < oc; o++) db[o0 + o] += (float)acc[o];
    }
}

int dj_linear_backward(const dj_tensor *x, const float *w, const dj_tensor *dy, dj_tensor *dx, int accum, float *dw,
                       float *db) {
    static const char fn[] = "linear backward";
    int in = 0;
    int st = lin_check(fn, x, "dy", dy, w, &in);
    if (st) return st;
    if (dx) {
        st = lin_check_tensor(fn, "dx", dx);
        if (st) return st;
        if (dx->n != x->n || dx->h != x->h || dx->w != x->w || dx->c != x->c)
            return dj_error(DJ_EINVAL, "%s: dx is %dx%dx%dx%d but x is %dx%dx%dx%d", fn, dx->n, dx->h, dx->w, dx->c,
                            x->n, x->h, x->w, x->c);
    }
    int n = x->n, out = dy->c;
    const float *xd = x->data, *g = dy->data;
    int threaded = (double)n * out * in > LIN_SERIAL;
    if (dx) { /* dx_i (+)= sum_o dy[i][o] w_o */
        float *dxd = dx->data;
#pragma omp parallel for schedule(static) if (threaded)
        for (int i = 0; i < n; i++) {
            float *dxi = dxd + (size_t)i * in;
            if (!accum) memset(dxi, 0, (size_t)in * sizeof(float));
            for (int o = 0; o < out; o++) {
                const float gi = g[(size_t)i * out + o], *wo = w + (size_t)o * in;
#pragma omp simd
                for (int k = 0; k < in; k++) dxi[k] += gi * wo[k];
            }
        }
    }
    if (dw) { /* dw_o += sum_i dy[i][o] x_i */
#pragma omp parallel for schedule(static) if (threaded)
        for (int o = 0; o < out; o++) {
            float *dwo = dw + (size_t)o * in;
            for (int i = 0; i < n; i++) {
                const float gi = g[(size_t)i * out + o], *xi = xd + (size_t)i * in;
#pragma omp simd
                for (int k = 0; k < in; k++) dwo[k] += gi * xi[k];
            }
        }
    }
    if (db) bias_grad(g, n, out, db);
    return DJ_OK;
}
