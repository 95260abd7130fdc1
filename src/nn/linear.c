/* Fully connected layer, torch.nn.Linear: y = x w^T + b with w of shape
 * (out, in). x is flattened per sample in NHWC order. All the arithmetic is
 * oneDNN's GEMM (dj_sgemm); only the bias loops are ours. */
#include <limits.h>
#include <string.h>

#include "backend/dnnl.h"
#include "dmvjnd/dmvjnd.h"

#define LIN_CH 256 /* outputs per chunk of the bias-gradient accumulators */

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
    /* Bias rows first, then GEMM accumulates onto them (beta = 1). */
    if (b)
        for (int i = 0; i < n; i++) memcpy(y->data + (size_t)i * out, b, (size_t)out * sizeof(float));
    return dj_sgemm('N', 'T', n, out, in, 1.0f, x->data, in, w, in, b ? 1.0f : 0.0f, y->data, out);
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
    if (dx) { /* dx[n x in] (+)= dy[n x out] w[out x in] */
        st = dj_sgemm('N', 'N', n, in, out, 1.0f, dy->data, out, w, in, accum ? 1.0f : 0.0f, dx->data, in);
        if (st) return st;
    }
    if (dw) { /* dw[out x in] += dy^T x */
        st = dj_sgemm('T', 'N', out, in, n, 1.0f, dy->data, out, x->data, in, 1.0f, dw, in);
        if (st) return st;
    }
    if (db) bias_grad(dy->data, n, out, db);
    return DJ_OK;
}
