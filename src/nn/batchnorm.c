/* Batch normalisation over N, H, W for each channel of an NHWC tensor
 * (torch.nn.BatchNorm2d semantics), with an optional fused ReLU.
 *
 * The tensor is viewed as rows = n*h*w rows of c contiguous channels. Every
 * pass runs over rows (split evenly between threads) with the inner loop
 * along channels, so it vectorises. Channels are handled in chunks of BN_CH:
 * that bounds the per-thread partial sums, which then live on the stack (no
 * allocation), and keeps a chunk's columns warm in cache between the
 * statistics pass and the pass that uses them.
 *
 * Accuracy: a thread sums BN_BLOCK rows in float (vector lanes), then adds
 * that block total into double; the threads' doubles are combined in thread
 * order (deterministic for a given thread count). The variance uses sums of
 * (x - shift) with shift = the channel's first value, so that E[d^2] - E[d]^2
 * does not cancel catastrophically when |mean| >> std.
 */
#include <math.h>
#include <omp.h>
#include <string.h>

#include "dmvjnd/core.h"
#include "dmvjnd/nn.h"

#define BN_CH 64       /* channels per chunk                                 */
#define BN_MAXT 32     /* most threads a pass uses (sizes the stack partials) */
#define BN_BLOCK 64    /* rows summed in float before moving to double       */
#define BN_SERIAL 32768 /* below this many elements threading costs more     */

/* ------------------------------------------------------------ validation */

static int bn_check_tensor(const char *fn, const char *name, const dj_tensor *t) {
    if (!t || !t->data) return dj_error(DJ_EINVAL, "%s: %s is NULL", fn, name);
    if (t->n <= 0 || t->h <= 0 || t->w <= 0 || t->c <= 0)
        return dj_error(DJ_EINVAL, "%s: %s has an empty shape %dx%dx%dx%d", fn, name, t->n, t->h, t->w, t->c);
    return DJ_OK;
}

/* `t` must have the shape of `ref`; the message names the first dimension that differs. */
static int bn_check_like(const char *fn, const char *name, const dj_tensor *t, const char *rn, const dj_tensor *ref) {
    int st = bn_check_tensor(fn, name, t);
    if (st) return st;
    if (t->c != ref->c) return dj_error(DJ_EINVAL, "%s: %s has %d channels but %s has %d", fn, rn, ref->c, name, t->c);
    if (t->n != ref->n) return dj_error(DJ_EINVAL, "%s: %s has batch %d but %s has %d", fn, rn, ref->n, name, t->n);
    if (t->h != ref->h || t->w != ref->w)
        return dj_error(DJ_EINVAL, "%s: %s is %dx%d but %s is %dx%d", fn, rn, ref->h, ref->w, name, t->h, t->w);
    return DJ_OK;
}

static int bn_check_eps(const char *fn, float eps) {
    if (!(eps >= 0.0f) || !isfinite(eps)) return dj_error(DJ_EINVAL, "%s: eps %g must be finite and >= 0", fn, eps);
    return DJ_OK;
}

/* -------------------------------------------------------------- threading */

static int bn_threads(size_t elems) {
    if (elems < BN_SERIAL) return 1;
    int nt = omp_get_max_threads();
    return nt > BN_MAXT ? BN_MAXT : nt < 1 ? 1 : nt;
}

/* Rows [*r0, *r1) of the calling thread: even contiguous split. */
static void bn_my_rows(size_t rows, size_t *r0, size_t *r1) {
    size_t t = (size_t)omp_get_thread_num(), nt = (size_t)omp_get_num_threads();
    *r0 = rows * t / nt;
    *r1 = rows * (t + 1) / nt;
}

/* Row kernels. Each is an always-inlined body plus a dispatcher that calls
 * it with the chunk width as a constant for the common widths (16, 32, 64:
 * every ResNet stage), so the channel loop is fully unrolled into whole
 * vectors and the float block sums stay in registers; other widths take the
 * same body with a run-time width. Plain C: the compiler picks the ISA. */
#define BN_INLINE static inline __attribute__((always_inline))
#define BN_DISPATCH(body, cc, ...)                                                                                     \
    switch (cc) {                                                                                                      \
    case 16: body(16, __VA_ARGS__); break;                                                                             \
    case 32: body(32, __VA_ARGS__); break;                                                                             \
    case 64: body(64, __VA_ARGS__); break;                                                                             \
    default: body(cc, __VA_ARGS__); break;                                                                             \
    }

/* ------------------------------------------------------------- statistics */

/* Over rows [r0, r1) of channels [c0, c0+cc): s1 = sum(x - shift),
 * s2 = sum((x - shift)^2); s1 and s2 are overwritten. */
BN_INLINE void stats_body(int cc, const float *x, size_t C, size_t c0, size_t r0, size_t r1, const float *shift,
                          double *s1, double *s2) {
    float b1[BN_CH], b2[BN_CH];
    for (int c = 0; c < cc; c++) s1[c] = s2[c] = 0.0;
    for (size_t rb = r0; rb < r1; rb += BN_BLOCK) {
        size_t re = rb + BN_BLOCK < r1 ? rb + BN_BLOCK : r1;
        for (int c = 0; c < cc; c++) b1[c] = b2[c] = 0.0f;
        for (size_t r = rb; r < re; r++) {
            const float *xr = x + r * C + c0;
#pragma omp simd
            for (int c = 0; c < cc; c++) {
                float d = xr[c] - shift[c];
                b1[c] += d;
                b2[c] += d * d;
            }
        }
        for (int c = 0; c < cc; c++) {
            s1[c] += b1[c];
            s2[c] += b2[c];
        }
    }
}

static void bn_stats_rows(const float *x, size_t C, size_t c0, int cc, size_t r0, size_t r1, const float *shift,
                          double *s1, double *s2) {
    BN_DISPATCH(stats_body, cc, x, C, c0, r0, r1, shift, s1, s2)
}

/* Backward sums over rows [r0, r1): s1 = sum(g), s2 = sum(g * (x - mean)),
 * with g = dy masked by y > 0 when relu (y is not read otherwise). */
BN_INLINE void grad_body(int cc, const float *x, const float *y, const float *dy, size_t C, size_t c0, size_t r0,
                         size_t r1, const float *mean, int relu, double *s1, double *s2) {
    float b1[BN_CH], b2[BN_CH];
    for (int c = 0; c < cc; c++) s1[c] = s2[c] = 0.0;
    for (size_t rb = r0; rb < r1; rb += BN_BLOCK) {
        size_t re = rb + BN_BLOCK < r1 ? rb + BN_BLOCK : r1;
        for (int c = 0; c < cc; c++) b1[c] = b2[c] = 0.0f;
        for (size_t r = rb; r < re; r++) {
            size_t o = r * C + c0;
            if (relu) {
#pragma omp simd
                for (int c = 0; c < cc; c++) {
                    float g = y[o + c] > 0.0f ? dy[o + c] : 0.0f;
                    b1[c] += g;
                    b2[c] += g * (x[o + c] - mean[c]);
                }
            } else {
#pragma omp simd
                for (int c = 0; c < cc; c++) {
                    float g = dy[o + c];
                    b1[c] += g;
                    b2[c] += g * (x[o + c] - mean[c]);
                }
            }
        }
        for (int c = 0; c < cc; c++) {
            s1[c] += b1[c];
            s2[c] += b2[c];
        }
    }
}

static void bn_grad_rows(const float *x, const float *y, const float *dy, size_t C, size_t c0, int cc, size_t r0,
                         size_t r1, const float *mean, int relu, double *s1, double *s2) {
    BN_DISPATCH(grad_body, cc, x, y, dy, C, c0, r0, r1, mean, relu, s1, s2)
}

/* ----------------------------------------------------- element-wise passes */

/* y = x * a + b (then ReLU) over rows [r0, r1) of one chunk. */
BN_INLINE void affine_body(int cc, const float *x, float *y, size_t C, size_t c0, size_t r0, size_t r1, const float *a,
                           const float *b, int relu) {
    for (size_t r = r0; r < r1; r++) {
        size_t o = r * C + c0;
        if (relu) {
#pragma omp simd
            for (int c = 0; c < cc; c++) {
                float v = x[o + c] * a[c] + b[c];
                y[o + c] = v < 0.0f ? 0.0f : v; /* NaN stays NaN, as torch.relu */
            }
        } else {
#pragma omp simd
            for (int c = 0; c < cc; c++) y[o + c] = x[o + c] * a[c] + b[c];
        }
    }
}

static void bn_affine_rows(const float *x, float *y, size_t C, size_t c0, int cc, size_t r0, size_t r1,
                           const float *a, const float *b, int relu) {
    BN_DISPATCH(affine_body, cc, x, y, C, c0, r0, r1, a, b, relu)
}

/* dx (+)= k*g + p*(x - mean) + q over rows [r0, r1), g as in grad_body. */
BN_INLINE void dx_body(int cc, const float *x, const float *y, const float *dy, float *dx, size_t C, size_t c0,
                       size_t r0, size_t r1, const float *mean, const float *k, const float *p, const float *q,
                       int relu, int accum) {
    for (size_t r = r0; r < r1; r++) {
        size_t o = r * C + c0;
        if (accum) {
#pragma omp simd
            for (int c = 0; c < cc; c++) {
                float g = !relu || y[o + c] > 0.0f ? dy[o + c] : 0.0f;
                dx[o + c] += k[c] * g + p[c] * (x[o + c] - mean[c]) + q[c];
            }
        } else {
#pragma omp simd
            for (int c = 0; c < cc; c++) {
                float g = !relu || y[o + c] > 0.0f ? dy[o + c] : 0.0f;
                dx[o + c] = k[c] * g + p[c] * (x[o + c] - mean[c]) + q[c];
            }
        }
    }
}

static void bn_dx_rows(const float *x, const float *y, const float *dy, float *dx, size_t C, size_t c0, int cc,
                       size_t r0, size_t r1, const float *mean, const float *k, const float *p, const float *q,
                       int relu, int accum) {
    BN_DISPATCH(dx_body, cc, x, y, dy, dx, C, c0, r0, r1, mean, k, p, q, relu, accum)
}

/* dx (+)= s * g over rows [r0, r1): backward with constant statistics. Not
 * on the training path, so the run-time width loop is enough. */
static void bn_scale_rows(const float *y, const float *dy, float *dx, size_t C, size_t c0, int cc, size_t r0,
                          size_t r1, const float *s, int relu, int accum) {
    for (size_t r = r0; r < r1; r++) {
        size_t o = r * C + c0;
        if (accum) {
#pragma omp simd
            for (int c = 0; c < cc; c++) dx[o + c] += s[c] * (!relu || y[o + c] > 0.0f ? dy[o + c] : 0.0f);
        } else {
#pragma omp simd
            for (int c = 0; c < cc; c++) dx[o + c] = s[c] * (!relu || y[o + c] > 0.0f ? dy[o + c] : 0.0f);
        }
    }
}

/* ------------------------------------------------------------- training */

/* Per chunk: mean, biased var -> save_*, running stats, affine coefficients. */
static void bn_finish_stats(double (*part)[2][BN_CH], int nt, const float *shift, size_t c0, int cc, size_t rows,
                            const float *gamma, const float *beta, float *running_mean, float *running_var,
                            float momentum, float eps, float *save_mean, float *save_invstd, float *a, float *b) {
    for (int c = 0; c < cc; c++) {
        double s1 = 0.0, s2 = 0.0;
        for (int t = 0; t < nt; t++) {
            s1 += part[t][0][c];
            s2 += part[t][1][c];
        }
        double dmean = s1 / (double)rows;
        double var = s2 / (double)rows - dmean * dmean;
        if (var < 0.0) var = 0.0;
        double mean = (double)shift[c] + dmean;
        double invstd = 1.0 / sqrt(var + (double)eps);
        size_t ch = c0 + (size_t)c;
        save_mean[ch] = (float)mean;
        save_invstd[ch] = (float)invstd;
        if (running_mean)
            running_mean[ch] = (float)((1.0 - momentum) * (double)running_mean[ch] + (double)momentum * mean);
        if (running_var) {
            double unbiased = var * (double)rows / (double)(rows - 1);
            running_var[ch] = (float)((1.0 - momentum) * (double)running_var[ch] + (double)momentum * unbiased);
        }
        double g = gamma ? (double)gamma[ch] : 1.0, bt = beta ? (double)beta[ch] : 0.0;
        a[c] = (float)(g * invstd);
        b[c] = (float)(bt - mean * g * invstd);
    }
}

int dj_bn_forward_train(const dj_tensor *x, const float *gamma, const float *beta, float *running_mean,
                        float *running_var, float momentum, float eps, int relu, dj_tensor *y, float *save_mean,
                        float *save_invstd) {
    static const char fn[] = "batchnorm";
    int st = bn_check_tensor(fn, "x", x);
    if (!st) st = bn_check_like(fn, "y", y, "x", x);
    if (!st) st = bn_check_eps(fn, eps);
    if (st) return st;
    if (!save_mean || !save_invstd) return dj_error(DJ_EINVAL, "%s: save_mean and save_invstd are required", fn);
    if (!isfinite(momentum)) return dj_error(DJ_EINVAL, "%s: momentum %g is not finite", fn, momentum);
    size_t C = (size_t)x->c, rows = (size_t)x->n * (size_t)x->h * (size_t)x->w;
    if (rows < 2)
        return dj_error(DJ_EINVAL, "%s: training needs more than 1 value per channel (x is %dx%dx%dx%d)", fn, x->n,
                        x->h, x->w, x->c);

    int nt = bn_threads(rows * C);
    double part[BN_MAXT][2][BN_CH];
    float shift[BN_CH], a[BN_CH], b[BN_CH];
    const float *xd = x->data;
    float *yd = y->data;
#pragma omp parallel num_threads(nt)
    {
        size_t r0, r1;
        bn_my_rows(rows, &r0, &r1);
        int tid = omp_get_thread_num(), nth = omp_get_num_threads();
        for (size_t c0 = 0; c0 < C; c0 += BN_CH) {
            int cc = (int)(C - c0 < BN_CH ? C - c0 : BN_CH);
#pragma omp single
            memcpy(shift, xd + c0, (size_t)cc * sizeof(float));
            bn_stats_rows(xd, C, c0, cc, r0, r1, shift, part[tid][0], part[tid][1]);
#pragma omp barrier
#pragma omp single
            bn_finish_stats(part, nth, shift, c0, cc, rows, gamma, beta, running_mean, running_var, momentum, eps,
                            save_mean, save_invstd, a, b);
            bn_affine_rows(xd, yd, C, c0, cc, r0, r1, a, b, relu);
            /* a, b and shift are rewritten by the next chunk's singles. */
#pragma omp barrier
        }
    }
    return DJ_OK;
}

int dj_bn_backward(const dj_tensor *x, const dj_tensor *y, const dj_tensor *dy, const float *gamma,
                   const float *save_mean, const float *save_invstd, int relu, dj_tensor *dx, int accum,
                   float *dgamma, float *dbeta) {
    static const char fn[] = "batchnorm backward";
    int st = bn_check_tensor(fn, "x", x);
    if (!st) st = bn_check_like(fn, "dy", dy, "x", x);
    if (!st && relu) st = bn_check_like(fn, "y", y, "x", x);
    if (!st && dx) st = bn_check_like(fn, "dx", dx, "x", x);
    if (st) return st;
    if (!save_mean || !save_invstd) return dj_error(DJ_EINVAL, "%s: save_mean and save_invstd are required", fn);
    if (!dx && !dgamma && !dbeta) return DJ_OK;

    size_t C = (size_t)x->c, rows = (size_t)x->n * (size_t)x->h * (size_t)x->w;
    int nt = bn_threads(rows * C);
    double part[BN_MAXT][2][BN_CH];
    float k[BN_CH], p[BN_CH], q[BN_CH];
    const float *xd = x->data, *yd = relu ? y->data : NULL, *dyd = dy->data;
    float *dxd = dx ? dx->data : NULL;
#pragma omp parallel num_threads(nt)
    {
        size_t r0, r1;
        bn_my_rows(rows, &r0, &r1);
        int tid = omp_get_thread_num(), nth = omp_get_num_threads();
        for (size_t c0 = 0; c0 < C; c0 += BN_CH) {
            int cc = (int)(C - c0 < BN_CH ? C - c0 : BN_CH);
            bn_grad_rows(xd, yd, dyd, C, c0, cc, r0, r1, save_mean + c0, relu, part[tid][0], part[tid][1]);
#pragma omp barrier
#pragma omp single
            for (int c = 0; c < cc; c++) {
                double sg = 0.0, sgx = 0.0;
                for (int t = 0; t < nth; t++) {
                    sg += part[t][0][c];
                    sgx += part[t][1][c];
                }
                size_t ch = c0 + (size_t)c;
                double invstd = save_invstd[ch];
                if (dbeta) dbeta[ch] += (float)sg;
                if (dgamma) dgamma[ch] += (float)(sgx * invstd);
                /* dx = k*(g - mean(g) - xhat*mean(g*xhat)), xhat = (x-mean)*invstd */
                double kk = (gamma ? (double)gamma[ch] : 1.0) * invstd;
                k[c] = (float)kk;
                p[c] = (float)(-kk * invstd * invstd * sgx / (double)rows);
                q[c] = (float)(-kk * sg / (double)rows);
            }
            if (dxd)
                bn_dx_rows(xd, yd, dyd, dxd, C, c0, cc, r0, r1, save_mean + c0, k, p, q, relu, accum);
#pragma omp barrier
        }
    }
    return DJ_OK;
}

/* ------------------------------------------------------------- inference */

int dj_bn_forward_infer(const dj_tensor *x, const float *gamma, const float *beta, const float *running_mean,
                        const float *running_var, float eps, int relu, dj_tensor *y) {
    static const char fn[] = "batchnorm inference";
    int st = bn_check_tensor(fn, "x", x);
    if (!st) st = bn_check_like(fn, "y", y, "x", x);
    if (!st) st = bn_check_eps(fn, eps);
    if (st) return st;
    if (!running_mean || !running_var) return dj_error(DJ_EINVAL, "%s: running_mean and running_var are required", fn);

    size_t C = (size_t)x->c, rows = (size_t)x->n * (size_t)x->h * (size_t)x->w;
    int nt = bn_threads(rows * C);
    const float *xd = x->data;
    float *yd = y->data;
    for (size_t c0 = 0; c0 < C; c0 += BN_CH) {
        int cc = (int)(C - c0 < BN_CH ? C - c0 : BN_CH);
        float a[BN_CH], b[BN_CH];
        for (int c = 0; c < cc; c++) {
            size_t ch = c0 + (size_t)c;
            double s = (gamma ? (double)gamma[ch] : 1.0) / sqrt((double)running_var[ch] + (double)eps);
            a[c] = (float)s;
            b[c] = (float)((beta ? (double)beta[ch] : 0.0) - (double)running_mean[ch] * s);
        }
#pragma omp parallel num_threads(nt)
        {
            size_t r0, r1;
            bn_my_rows(rows, &r0, &r1);
            bn_affine_rows(xd, yd, C, c0, cc, r0, r1, a, b, relu);
        }
    }
    return DJ_OK;
}

int dj_bn_backward_infer(const dj_tensor *y, const dj_tensor *dy, const float *gamma, const float *running_var,
                         float eps, int relu, dj_tensor *dx, int accum) {
    static const char fn[] = "batchnorm inference backward";
    int st = bn_check_tensor(fn, "dy", dy);
    if (!st && relu) st = bn_check_like(fn, "y", y, "dy", dy);
    if (!st && dx) st = bn_check_like(fn, "dx", dx, "dy", dy);
    if (!st) st = bn_check_eps(fn, eps);
    if (st) return st;
    if (!running_var) return dj_error(DJ_EINVAL, "%s: running_var is required", fn);
    if (!dx) return DJ_OK;

    size_t C = (size_t)dy->c, rows = (size_t)dy->n * (size_t)dy->h * (size_t)dy->w;
    int nt = bn_threads(rows * C);
    const float *yd = relu ? y->data : NULL, *dyd = dy->data;
    float *dxd = dx->data;
    for (size_t c0 = 0; c0 < C; c0 += BN_CH) {
        int cc = (int)(C - c0 < BN_CH ? C - c0 : BN_CH);
        float s[BN_CH];
        for (int c = 0; c < cc; c++) {
            size_t ch = c0 + (size_t)c;
            s[c] = (float)((gamma ? (double)gamma[ch] : 1.0) / sqrt((double)running_var[ch] + (double)eps));
        }
#pragma omp parallel num_threads(nt)
        {
            size_t r0, r1;
            bn_my_rows(rows, &r0, &r1);
            bn_scale_rows(yd, dyd, dxd, C, c0, cc, r0, r1, s, relu, accum);
        }
    }
    return DJ_OK;
}
