/* Winograd convolution (src/nn/winograd*.c) against a naive direct loop and a
 * naive transposed loop written here, against central differences, against
 * oneDNN's direct kernel (dj_conv_*) on ResNet-20 shapes, and through the
 * dj_conv_* routing of desc.winograd. The suite runs once per SIMD path the
 * CPU has (AVX2, AVX-512; a path the CPU lacks prints a SKIP line and counts
 * neither as passed nor as failed), then the two paths against each other,
 * the process-wide path API, and `dmvjnd --conv` / DMVJND_CONV. */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "backend/dnnl.h"
#include "check.h"
#include "dmvjnd/dmvjnd.h"
#include "gradcheck.h"
#include "dmvjnd/conv_path.h"
#include "nn/conv_path.h"
#include "nn/winograd.h"

/* ------------------------------------------------------------ reference */

/* y = relu?(conv3x3(x, w, pad) + b + (acc ? y_old : 0)), in double. */
static void ref_forward(const dj_tensor *x, const float *w, const float *b, int pad, int acc, int relu,
                        dj_tensor *y) {
    int ci = x->c, co = y->c;
    for (int n = 0; n < y->n; n++)
        for (int oy = 0; oy < y->h; oy++)
            for (int ox = 0; ox < y->w; ox++)
                for (int k = 0; k < co; k++) {
                    double s = b ? b[k] : 0.0;
                    for (int ky = 0; ky < 3; ky++) {
                        int iy = oy - pad + ky;
                        if (iy < 0 || iy >= x->h) continue;
                        for (int kx = 0; kx < 3; kx++) {
                            int ix = ox - pad + kx;
                            if (ix < 0 || ix >= x->w) continue;
                            const float *xp = x->data + ((size_t)(n * x->h + iy) * x->w + ix) * ci;
                            for (int c = 0; c < ci; c++) s += (double)xp[c] * w[((size_t)(k * ci + c) * 3 + ky) * 3 + kx];
                        }
                    }
                    float *yp = y->data + ((size_t)(n * y->h + oy) * y->w + ox) * co + k;
                    if (acc) s += *yp;
                    if (relu && s < 0) s = 0;
                    *yp = (float)s;
                }
}

/* dx (+)= the transposed loop: every dy element scatters through w. */
static void ref_backward_data(const dj_tensor *dy, const float *w, int pad, int acc, dj_tensor *dx) {
    int ci = dx->c, co = dy->c;
    size_t nx = dj_tensor_numel(dx);
    double *sum = calloc(nx, sizeof(double));
    for (int n = 0; n < dy->n; n++)
        for (int oy = 0; oy < dy->h; oy++)
            for (int ox = 0; ox < dy->w; ox++)
                for (int k = 0; k < co; k++) {
                    double g = dy->data[((size_t)(n * dy->h + oy) * dy->w + ox) * co + k];
                    for (int ky = 0; ky < 3; ky++) {
                        int iy = oy - pad + ky;
                        if (iy < 0 || iy >= dx->h) continue;
                        for (int kx = 0; kx < 3; kx++) {
                            int ix = ox - pad + kx;
                            if (ix < 0 || ix >= dx->w) continue;
                            double *dp = sum + ((size_t)(n * dx->h + iy) * dx->w + ix) * ci;
                            for (int c = 0; c < ci; c++) dp[c] += g * w[((size_t)(k * ci + c) * 3 + ky) * 3 + kx];
                        }
                    }
                }
    for (size_t i = 0; i < nx; i++) dx->data[i] = (float)((acc ? dx->data[i] : 0.0) + sum[i]);
    free(sum);
}

/* max |a - b| / max |b|: the error relative to the output's magnitude. */
static double rel_err(const float *a, const float *b, size_t n) {
    double d = 0, m = 0;
    for (size_t i = 0; i < n; i++) {
        double e = fabs((double)a[i] - (double)b[i]);
        if (!(e <= d)) d = e;
        if (fabs((double)b[i]) > m) m = fabs((double)b[i]);
    }
    return m > 0 ? d / m : d;
}

/* ------------------------------------------------------------ fixtures */

typedef struct fx {
    int cin, cout, pad;
    dj_tensor x, y, dy, dx;
    float *w, *b;
} fx;

static int fx_init(fx *f, int n, int h, int w, int cin, int cout, int pad, uint64_t seed) {
    memset(f, 0, sizeof *f);
    f->cin = cin;
    f->cout = cout;
    f->pad = pad;
    int oh = h + 2 * pad - 2, ow = w + 2 * pad - 2;
    if (oh < 1 || ow < 1) return -1;
    if (dj_tensor_alloc(&f->x, n, h, w, cin) || dj_tensor_alloc(&f->dx, n, h, w, cin) ||
        dj_tensor_alloc(&f->y, n, oh, ow, cout) || dj_tensor_alloc(&f->dy, n, oh, ow, cout))
        return -1;
    f->w = malloc((size_t)cout * cin * 9 * sizeof(float));
    f->b = malloc((size_t)cout * sizeof(float));
    gc_fill(f->x.data, dj_tensor_numel(&f->x), -1.f, 1.f, seed);
    gc_fill(f->w, (size_t)cout * cin * 9, -0.5f, 0.5f, seed + 1);
    gc_fill(f->b, (size_t)cout, -0.5f, 0.5f, seed + 2);
    gc_fill(f->dy.data, dj_tensor_numel(&f->dy), -1.f, 1.f, seed + 3);
    return 0;
}

static void fx_free(fx *f) {
    dj_tensor_free(&f->x);
    dj_tensor_free(&f->y);
    dj_tensor_free(&f->dx);
    dj_tensor_free(&f->dy);
    free(f->w);
    free(f->b);
}

static float *copy_of(const dj_tensor *t) {
    float *p = malloc(dj_tensor_numel(t) * sizeof(float));
    memcpy(p, t->data, dj_tensor_numel(t) * sizeof(float));
    return p;
}

/* Tolerance on rel_err: F(4x4)'s transforms lose a few bits more than F(2x2). */
#define TOL 1e-5

/* ------------------------------------------------------------ tests */

/* Every awkward combination: image sizes with partial tiles (5x7, 7x5, 1x1,
 * 9x10), channel counts off the 8-lane grid, pad 0/1/2, F(2) and F(4),
 * blocks of 1, 5, 13 tiles or automatic, with/without bias, accumulate,
 * ReLU; forward and backward-data against the naive loops. */
static void test_awkward(void) {
    static const int sizes[][2] = {{5, 7}, {7, 5}, {1, 1}, {9, 10}, {3, 3}};
    static const int cins[] = {3, 5, 17}, couts[] = {1, 5, 33}, tbs[] = {0, 1, 5, 13};
    int cases = 0;
    double worst_f = 0, worst_b = 0;
    for (int si = 0; si < 5; si++)
        for (int a = 0; a < 3; a++)
            for (int bo = 0; bo < 3; bo++)
                for (int pad = 0; pad <= 2; pad++)
                    for (int m = 2; m <= 4; m += 2) {
                        int idx = cases;
                        fx f;
                        if (fx_init(&f, 3, sizes[si][0], sizes[si][1], cins[a], couts[bo], pad, 1000 + idx) != 0) {
                            fx_free(&f);
                            continue; /* empty output (1x1 with pad 0) */
                        }
                        cases++;
                        int bias = idx & 1, acc = (idx >> 1) & 1, relu = (idx >> 2) & 1;
                        dj_wino *o = NULL;
                        CHECK_OK(dj_wino_create(&o, f.cin, f.cout, pad, (idx >> 3) & 1));
                        CHECK_OK(dj_wino_tune(o, m, tbs[idx % 4]));
                        /* forward */
                        size_t ny = dj_tensor_numel(&f.y);
                        gc_fill(f.y.data, ny, -1.f, 1.f, 77 + idx);
                        float *ref = copy_of(&f.y);
                        dj_tensor r = f.y;
                        r.data = ref;
                        ref_forward(&f.x, f.w, bias ? f.b : NULL, pad, acc, relu, &r);
                        CHECK_OK(dj_wino_forward(o, &f.x, f.w, bias ? f.b : NULL, &f.y, acc, relu));
                        double ef = rel_err(f.y.data, ref, ny);
                        if (!(ef <= TOL))
                            fprintf(stderr, "forward %dx%d cin %d cout %d pad %d F%d tb %d bias %d acc %d relu %d: %g\n",
                                    f.x.h, f.x.w, f.cin, f.cout, pad, m, tbs[idx % 4], bias, acc, relu, ef);
                        CHECK(ef <= TOL);
                        if (!(ef <= worst_f)) worst_f = ef;
                        free(ref);
                        /* backward-data */
                        size_t nx = dj_tensor_numel(&f.dx);
                        gc_fill(f.dx.data, nx, -1.f, 1.f, 99 + idx);
                        ref = copy_of(&f.dx);
                        r = f.dx;
                        r.data = ref;
                        ref_backward_data(&f.dy, f.w, pad, acc, &r);
                        CHECK_OK(dj_wino_backward_data(o, &f.dy, f.w, &f.dx, acc));
                        double eb = rel_err(f.dx.data, ref, nx);
                        if (!(eb <= TOL))
                            fprintf(stderr, "backward %dx%d cin %d cout %d pad %d F%d tb %d acc %d: %g\n", f.x.h,
                                    f.x.w, f.cin, f.cout, pad, m, tbs[idx % 4], acc, eb);
                        CHECK(eb <= TOL);
                        if (!(eb <= worst_b)) worst_b = eb;
                        free(ref);
                        dj_wino_destroy(o);
                        fx_free(&f);
                    }
    printf("awkward: %d cases, worst error relative to max |y|: forward %.2g, backward-data %.2g\n", cases, worst_f,
           worst_b);
}

/* Element-wise view of the error on one larger layer, for the record:
 * |a - b| <= 1e-4 * (max|b| * 1e-1 + |b|) everywhere. */
static void test_elementwise(void) {
    for (int m = 2; m <= 4; m += 2) {
        fx f;
        CHECK(fx_init(&f, 2, 13, 11, 40, 24, 1, 7) == 0);
        dj_wino *o = NULL;
        CHECK_OK(dj_wino_create(&o, f.cin, f.cout, 1, 0));
        CHECK_OK(dj_wino_tune(o, m, 0));
        size_t ny = dj_tensor_numel(&f.y);
        float *ref = calloc(ny, sizeof(float));
        dj_tensor r = f.y;
        r.data = ref;
        ref_forward(&f.x, f.w, f.b, 1, 0, 0, &r);
        CHECK_OK(dj_wino_forward(o, &f.x, f.w, f.b, &f.y, 0, 0));
        double mx = 0;
        for (size_t i = 0; i < ny; i++) mx = fabs(ref[i]) > mx ? fabs(ref[i]) : mx;
        double e = check_max_err(f.y.data, ref, ny, 1e-5 * mx, 1e-4);
        printf("elementwise F%d: rel_err %.2g, max |y| %.3g, err ratio %.3g\n", m, rel_err(f.y.data, ref, ny), mx, e);
        CHECK(e <= 1);
        free(ref);
        dj_wino_destroy(o);
        fx_free(&f);
    }
}

/* Backward-data against central differences of the forward. */
typedef struct gc_ctx {
    dj_wino *o;
    fx *f;
} gc_ctx;

static double wino_loss(void *p) {
    gc_ctx *g = p;
    if (dj_wino_forward(g->o, &g->f->x, g->f->w, g->f->b, &g->f->y, 0, 0) != 0) return NAN;
    double l = 0;
    size_t ny = dj_tensor_numel(&g->f->y);
    for (size_t i = 0; i < ny; i++) l += (double)g->f->y.data[i] * g->f->dy.data[i];
    return l;
}

static void test_gradcheck(void) {
    static const int shapes[][5] = {{3, 5, 7, 3, 5}, {2, 7, 5, 17, 1}, {1, 6, 6, 16, 16}, {2, 1, 1, 5, 33}};
    for (int s = 0; s < 4; s++)
        for (int m = 2; m <= 4; m += 2)
            for (int pad = 0; pad <= 2; pad++) {
                fx f;
                if (fx_init(&f, shapes[s][0], shapes[s][1], shapes[s][2], shapes[s][3], shapes[s][4], pad, 500 + s) !=
                    0) {
                    fx_free(&f);
                    continue;
                }
                dj_wino *o = NULL;
                CHECK_OK(dj_wino_create(&o, f.cin, f.cout, pad, 0));
                CHECK_OK(dj_wino_tune(o, m, 0));
                CHECK_OK(dj_wino_backward_data(o, &f.dy, f.w, &f.dx, 0));
                gc_ctx g = {o, &f};
                char what[64];
                snprintf(what, sizeof what, "shape %d F%d pad %d", s, m, pad);
                /* L is linear in x, so a large step is exact and keeps the
                 * rounding noise of the float forward out of the difference. */
                double e = gc_check(what, wino_loss, &g, f.x.data, f.dx.data, dj_tensor_numel(&f.x), 0.25f, 1e-3,
                                    1e-2, 300);
                CHECK(e <= 1);
                dj_wino_destroy(o);
                fx_free(&f);
            }
}

/* dw (+)= sum over images and output pixels of dy (x) the input patch, and
 * db (+)= sum of dy, in double. */
static void ref_backward_weights(const dj_tensor *x, const dj_tensor *dy, int pad, float *dw, float *db) {
    int ci = x->c, co = dy->c;
    size_t nw = (size_t)co * ci * 9;
    double *sw = calloc(nw, sizeof(double)), *sb = calloc((size_t)co, sizeof(double));
    for (int n = 0; n < dy->n; n++)
        for (int oy = 0; oy < dy->h; oy++)
            for (int ox = 0; ox < dy->w; ox++)
                for (int k = 0; k < co; k++) {
                    double g = dy->data[((size_t)(n * dy->h + oy) * dy->w + ox) * co + k];
                    sb[k] += g;
                    for (int ky = 0; ky < 3; ky++) {
                        int iy = oy - pad + ky;
                        if (iy < 0 || iy >= x->h) continue;
                        for (int kx = 0; kx < 3; kx++) {
                            int ix = ox - pad + kx;
                            if (ix < 0 || ix >= x->w) continue;
                            const float *xp = x->data + ((size_t)(n * x->h + iy) * x->w + ix) * ci;
                            for (int c = 0; c < ci; c++) sw[((size_t)(k * ci + c) * 3 + ky) * 3 + kx] += g * xp[c];
                        }
                    }
                }
    for (size_t i = 0; i < nw; i++) dw[i] = (float)(dw[i] + sw[i]);
    if (db)
        for (int k = 0; k < co; k++) db[k] = (float)(db[k] + sb[k]);
    free(sw);
    free(sb);
}

/* Backward-weights on awkward shapes (partial tiles, channels off the
 * 8-lane grid, pad 0/1/2, F(2) and F(4), 1 and 3 threads), accumulating
 * into non-zero dw and db, against the naive loop. */
static void test_backward_weights(void) {
    static const int shapes[][5] = {{3, 5, 7, 8, 8},  {2, 7, 5, 17, 9}, {1, 1, 1, 9, 33},
                                    {2, 9, 10, 33, 17}, {3, 3, 3, 16, 24}, {2, 13, 11, 40, 64}};
    int keep = dj_get_num_threads(), cases = 0;
    double worst = 0;
    for (int s = 0; s < 6; s++)
        for (int pad = 0; pad <= 2; pad++)
            for (int m = 2; m <= 4; m += 2)
                for (int threads = 1; threads <= 3; threads += 2) {
                    fx f;
                    if (fx_init(&f, shapes[s][0], shapes[s][1], shapes[s][2], shapes[s][3], shapes[s][4], pad,
                                1200 + s) != 0) {
                        fx_free(&f);
                        continue;
                    }
                    cases++;
                    size_t nw = (size_t)f.cout * f.cin * 9;
                    float *dw = malloc(nw * sizeof(float)), *db = malloc((size_t)f.cout * sizeof(float));
                    gc_fill(dw, nw, -1.f, 1.f, 31);
                    gc_fill(db, (size_t)f.cout, -1.f, 1.f, 32);
                    float *rw = malloc(nw * sizeof(float)), *rb = malloc((size_t)f.cout * sizeof(float));
                    memcpy(rw, dw, nw * sizeof(float));
                    memcpy(rb, db, (size_t)f.cout * sizeof(float));
                    int with_bias = (s + pad) & 1;
                    ref_backward_weights(&f.x, &f.dy, pad, rw, with_bias ? rb : NULL);
                    dj_wino *o = NULL;
                    CHECK_OK(dj_wino_create(&o, f.cin, f.cout, pad, 0));
                    CHECK_OK(dj_wino_tune_weights(o, m));
                    dj_set_num_threads(threads);
                    CHECK_OK(dj_wino_backward_weights(o, &f.x, &f.dy, dw, with_bias ? db : NULL));
                    dj_set_num_threads(keep);
                    double e = rel_err(dw, rw, nw);
                    if (!(e <= TOL))
                        fprintf(stderr, "backward-weights shape %d pad %d F%d threads %d: %g\n", s, pad, m, threads, e);
                    CHECK(e <= TOL);
                    if (!(e <= worst)) worst = e;
                    if (with_bias)
                        CHECK(rel_err(db, rb, (size_t)f.cout) <= TOL);
                    else
                        CHECK(memcmp(db, rb, (size_t)f.cout * sizeof(float)) == 0); /* db NULL: untouched */
                    free(dw);
                    free(db);
                    free(rw);
                    free(rb);
                    dj_wino_destroy(o);
                    fx_free(&f);
                }
    printf("backward-weights: %d cases, worst error relative to max |dw| %.2g\n", cases, worst);
    dj_wino *o = NULL;
    CHECK_OK(dj_wino_create(&o, 8, 8, 1, 0));
    CHECK_FAILS(dj_wino_tune_weights(o, 3), DJ_EINVAL, "m = 3");
    fx f;
    CHECK(fx_init(&f, 1, 4, 4, 8, 8, 1, 1300) == 0);
    float dw[8 * 8 * 9];
    dj_tensor bad = f.dy;
    bad.h = 3;
    CHECK_FAILS(dj_wino_backward_weights(o, &f.x, &bad, dw, NULL), DJ_EINVAL, "dy is");
    CHECK_FAILS(dj_wino_backward_weights(o, &f.x, &f.dy, NULL, NULL), DJ_EINVAL, "dw");
    dj_wino_destroy(o);
    fx_free(&f);
}

/* Backward-weights against central differences of the forward (wino_loss:
 * L = sum(y * dy) is linear in w, so the difference quotient is exact up to
 * rounding). */
static void test_gradcheck_weights(void) {
    static const int shapes[][5] = {{3, 5, 7, 8, 9}, {2, 6, 6, 17, 8}};
    for (int s = 0; s < 2; s++)
        for (int m = 2; m <= 4; m += 2)
            for (int pad = 0; pad <= 2; pad++) {
                fx f;
                CHECK(fx_init(&f, shapes[s][0], shapes[s][1], shapes[s][2], shapes[s][3], shapes[s][4], pad, 1400 + s) ==
                      0);
                size_t nw = (size_t)f.cout * f.cin * 9;
                float *dw = calloc(nw, sizeof(float));
                dj_wino *o = NULL, *fwd = NULL;
                CHECK_OK(dj_wino_create(&o, f.cin, f.cout, pad, 0));
                CHECK_OK(dj_wino_tune_weights(o, m));
                CHECK_OK(dj_wino_backward_weights(o, &f.x, &f.dy, dw, NULL));
                CHECK_OK(dj_wino_create(&fwd, f.cin, f.cout, pad, 0)); /* unfrozen: follows w */
                gc_ctx g = {fwd, &f};
                char what[64];
                snprintf(what, sizeof what, "weights shape %d F%d pad %d", s, m, pad);
                double e = gc_check(what, wino_loss, &g, f.w, dw, nw, 0.25f, 1e-3, 1e-2, 300);
                CHECK(e <= 1);
                free(dw);
                dj_wino_destroy(o);
                dj_wino_destroy(fwd);
                fx_free(&f);
            }
}

/* ResNet-20's layers against oneDNN's direct kernel (dj_conv_*), with its
 * fused post-ops, and backward-data with accumulation. */
static void test_vs_onednn(void) {
    static const int layers[][3] = {{32, 16, 16}, {16, 32, 32}, {8, 64, 64}, {32, 3, 16}};
    for (int l = 0; l < 4; l++)
        for (int m = 2; m <= 4; m += 2)
            for (int post = 0; post < 2; post++) {
                int hw = layers[l][0], cin = layers[l][1], cout = layers[l][2];
                fx f;
                CHECK(fx_init(&f, 4, hw, hw, cin, cout, 1, 600 + l) == 0);
                dj_conv_desc d = {.cin = cin, .cout = cout, .k = 3, .stride = 1, .pad = 1, .bias = 1,
                                  .post_sum = post, .post_relu = post};
                dj_conv *c = NULL;
                CHECK_OK(dj_conv_create(&c, &d));
                dj_wino *o = NULL;
                CHECK_OK(dj_wino_create(&o, cin, cout, 1, 0));
                CHECK_OK(dj_wino_tune(o, m, 0));
                size_t ny = dj_tensor_numel(&f.y), nx = dj_tensor_numel(&f.x);
                gc_fill(f.y.data, ny, -1.f, 1.f, 5);
                float *ref = copy_of(&f.y);
                dj_tensor r = f.y;
                r.data = ref;
                CHECK_OK(dj_conv_forward(c, &f.x, f.w, f.b, &r));
                CHECK_OK(dj_wino_forward(o, &f.x, f.w, f.b, &f.y, post, post));
                double ef = rel_err(f.y.data, ref, ny);
                free(ref);
                gc_fill(f.dx.data, nx, -1.f, 1.f, 6);
                ref = copy_of(&f.dx);
                r = f.dx;
                r.data = ref;
                CHECK_OK(dj_conv_backward_data(c, &f.dy, f.w, &r, post));
                CHECK_OK(dj_wino_backward_data(o, &f.dy, f.w, &f.dx, post));
                double eb = rel_err(f.dx.data, ref, nx);
                free(ref);
                printf("vs oneDNN %dx%d %d->%d F%d post %d: forward %.2g, backward-data %.2g\n", hw, hw, cin, cout, m,
                       post, ef, eb);
                CHECK(ef <= TOL);
                CHECK(eb <= TOL);
                dj_wino_destroy(o);
                dj_conv_destroy(c);
                fx_free(&f);
            }
}

/* Frozen objects reuse the transformed filter until told otherwise;
 * unfrozen ones follow every change. */
static void test_frozen(void) {
    fx f;
    CHECK(fx_init(&f, 2, 6, 6, 8, 8, 1, 700) == 0);
    size_t ny = dj_tensor_numel(&f.y);
    dj_wino *fz = NULL, *lv = NULL;
    CHECK_OK(dj_wino_create(&fz, 8, 8, 1, 1));
    CHECK_OK(dj_wino_create(&lv, 8, 8, 1, 0));
    CHECK_OK(dj_wino_forward(fz, &f.x, f.w, f.b, &f.y, 0, 0));
    float *y1 = copy_of(&f.y);
    for (int i = 0; i < 8 * 8 * 9; i++) f.w[i] *= 2.f;
    CHECK_OK(dj_wino_forward(fz, &f.x, f.w, f.b, &f.y, 0, 0));
    CHECK(memcmp(y1, f.y.data, ny * sizeof(float)) == 0); /* stale, by contract */
    dj_wino_weights_changed(fz);
    CHECK_OK(dj_wino_forward(fz, &f.x, f.w, f.b, &f.y, 0, 0));
    float *y2 = copy_of(&f.y);
    CHECK(memcmp(y1, y2, ny * sizeof(float)) != 0);
    CHECK_OK(dj_wino_forward(lv, &f.x, f.w, f.b, &f.y, 0, 0));
    CHECK(memcmp(y2, f.y.data, ny * sizeof(float)) == 0);
    /* tile size change invalidates the cache too */
    CHECK_OK(dj_wino_tune(fz, 2, 0));
    CHECK_OK(dj_wino_forward(fz, &f.x, f.w, f.b, &f.y, 0, 0));
    CHECK(rel_err(f.y.data, y2, ny) <= TOL);
    free(y1);
    free(y2);
    dj_wino_destroy(fz);
    dj_wino_destroy(lv);
    fx_free(&f);
}

/* Thread counts 1..3 give identical results (each output tile is computed
 * by one thread with the same arithmetic). */
static void test_threads(void) {
    int keep = dj_get_num_threads();
    fx f;
    CHECK(fx_init(&f, 3, 9, 9, 16, 16, 1, 800) == 0);
    size_t ny = dj_tensor_numel(&f.y);
    dj_wino *o = NULL;
    CHECK_OK(dj_wino_create(&o, 16, 16, 1, 0));
    CHECK_OK(dj_wino_tune(o, 4, 6));
    float *ys[3];
    for (int t = 1; t <= 3; t++) {
        dj_set_num_threads(t);
        CHECK_OK(dj_wino_forward(o, &f.x, f.w, f.b, &f.y, 0, 1));
        ys[t - 1] = copy_of(&f.y);
    }
    CHECK(memcmp(ys[0], ys[1], ny * sizeof(float)) == 0);
    CHECK(memcmp(ys[0], ys[2], ny * sizeof(float)) == 0);
    for (int t = 0; t < 3; t++) free(ys[t]);
    dj_set_num_threads(keep);
    dj_wino_destroy(o);
    fx_free(&f);
}

static void test_bad_args(void) {
    dj_wino *o = NULL;
    CHECK_FAILS(dj_wino_create(&o, 0, 4, 1, 0), DJ_EINVAL, "cin");
    CHECK_FAILS(dj_wino_create(&o, 4, 4, 3, 0), DJ_EINVAL, "pad");
    CHECK_OK(dj_wino_create(&o, 4, 5, 1, 0));
    CHECK_FAILS(dj_wino_tune(o, 3, 0), DJ_EINVAL, "m = 3");
    fx f;
    CHECK(fx_init(&f, 1, 4, 4, 4, 5, 1, 900) == 0);
    dj_tensor y = f.y;
    y.w = 3;
    CHECK_FAILS(dj_wino_forward(o, &f.x, f.w, NULL, &y, 0, 0), DJ_EINVAL, "y is");
    dj_tensor x = f.x;
    x.c = 3;
    CHECK_FAILS(dj_wino_forward(o, &x, f.w, NULL, &f.y, 0, 0), DJ_EINVAL, "channels");
    CHECK_FAILS(dj_wino_backward_data(o, &y, f.w, &f.dx, 0), DJ_EINVAL, "dy is");
    dj_tensor alias = f.y; /* y over x's memory (x has 4 channels, y 5: fits in x + dx) */
    alias.data = f.x.data;
    dj_tensor small = f.x;
    small.n = 1;
    CHECK_FAILS(dj_wino_forward(o, &small, f.w, NULL, &alias, 0, 0), DJ_EINVAL, "overlap");
    dj_wino_destroy(o);
    fx_free(&f);
}

/* dj_conv_* with desc.winograd on 3x3/s1/p1 routes forward (input cin >= 8)
 * and backward-data (input cout >= 8) through this kernel: results match
 * the naive loops within Winograd's precision, with post-ops, accumulation
 * and frozen weights; backward-weights (cin and cout >= 8, not frozen) too. */
static void test_conv_routing(void) {
    static const int chans[][2] = {{9, 17}, {5, 17}, {17, 5}};
    dj_backend_set_strict(0); /* odd channel counts may get slow oneDNN kernels */
    for (int ch = 0; ch < 3; ch++)
        for (int post = 0; post < 4; post++) {
            int cin = chans[ch][0], cout = chans[ch][1];
            dj_conv_desc d = {.cin = cin, .cout = cout, .k = 3, .stride = 1, .pad = 1, .bias = post & 1,
                              .post_sum = post >> 1, .post_relu = post >> 1, .winograd = 1, .frozen = post == 3};
            dj_conv *c = NULL;
            CHECK_OK(dj_conv_create(&c, &d));
            fx f;
            CHECK(fx_init(&f, 3, 7, 5, cin, cout, 1, 950 + post) == 0);
            size_t ny = dj_tensor_numel(&f.y), nx = dj_tensor_numel(&f.x);
            const float *b = d.bias ? f.b : NULL;
            gc_fill(f.y.data, ny, -1.f, 1.f, 3);
            float *ref = copy_of(&f.y);
            dj_tensor r = f.y;
            r.data = ref;
            ref_forward(&f.x, f.w, b, 1, d.post_sum, d.post_relu, &r);
            CHECK_OK(dj_conv_forward(c, &f.x, f.w, b, &f.y));
            CHECK(rel_err(f.y.data, ref, ny) <= TOL);
            CHECK((strstr(dj_conv_impl_name(c, 0), "winograd") != NULL) == (cin >= 8));
            free(ref);
            gc_fill(f.dx.data, nx, -1.f, 1.f, 4);
            ref = copy_of(&f.dx);
            r = f.dx;
            r.data = ref;
            ref_backward_data(&f.dy, f.w, 1, 1, &r);
            CHECK_OK(dj_conv_backward_data(c, &f.dy, f.w, &f.dx, 1));
            CHECK(rel_err(f.dx.data, ref, nx) <= TOL);
            CHECK((strstr(dj_conv_impl_name(c, 1), "winograd") != NULL) == (cout >= 8));
            free(ref);
            if (d.frozen) {
                /* New weights reach the cached filters after weights_changed. */
                for (size_t i = 0; i < (size_t)cout * cin * 9; i++) f.w[i] = -f.w[i];
                dj_conv_weights_changed(c);
                gc_fill(f.y.data, ny, -1.f, 1.f, 3);
                ref = copy_of(&f.y);
                r = f.y;
                r.data = ref;
                ref_forward(&f.x, f.w, b, 1, d.post_sum, d.post_relu, &r);
                CHECK_OK(dj_conv_forward(c, &f.x, f.w, b, &f.y));
                CHECK(rel_err(f.y.data, ref, ny) <= TOL);
                free(ref);
            } else {
                float *dw = calloc((size_t)cout * cin * 9, sizeof(float));
                CHECK_OK(dj_conv_backward_weights(c, &f.x, &f.dy, dw, NULL));
                CHECK((strstr(dj_conv_impl_name(c, 2), "winograd") != NULL) == (cin >= 8 && cout >= 8));
                /* dw[k][c][ky][kx] = sum x[iy][ix][c] dy[oy][ox][k] */
                double e = 0;
                for (int k = 0; k < cout; k++)
                    for (int ci = 0; ci < cin; ci++)
                        for (int ky = 0; ky < 3; ky++)
                            for (int kx = 0; kx < 3; kx++) {
                                double sum = 0;
                                for (int n = 0; n < 3; n++)
                                    for (int oy = 0; oy < 7; oy++)
                                        for (int ox = 0; ox < 5; ox++) {
                                            int iy = oy - 1 + ky, ix = ox - 1 + kx;
                                            if (iy < 0 || iy >= 7 || ix < 0 || ix >= 5) continue;
                                            sum += (double)f.x.data[((n * 7 + iy) * 5 + ix) * cin + ci] *
                                                   f.dy.data[((n * 7 + oy) * 5 + ox) * cout + k];
                                        }
                                double err = fabs(sum - dw[((k * cin + ci) * 3 + ky) * 3 + kx]);
                                if (err > e) e = err;
                            }
                CHECK(e <= 1e-4);
                free(dw);
            }
            dj_conv_destroy(c);
            fx_free(&f);
        }
    dj_backend_set_strict(1);
    /* Shapes outside the rule keep oneDNN (stride 2 here). */
    dj_conv_desc d2 = {.cin = 16, .cout = 16, .k = 3, .stride = 2, .pad = 1, .winograd = 1};
    dj_conv *c2 = NULL;
    CHECK_OK(dj_conv_create(&c2, &d2));
    fx f;
    CHECK(fx_init(&f, 1, 8, 8, 16, 16, 1, 990) == 0);
    dj_tensor y;
    CHECK_OK(dj_tensor_alloc(&y, 1, 4, 4, 16));
    CHECK_OK(dj_conv_forward(c2, &f.x, f.w, NULL, &y));
    CHECK(strstr(dj_conv_impl_name(c2, 0), "winograd") == NULL);
    dj_tensor_free(&y);
    dj_conv_destroy(c2);
    fx_free(&f);
}

/* ------------------------------------------------------------ SIMD paths */

/* The path under test (set by main) and its implementation-name suffix. */
static const char *isa_suffix = "";

/* Objects created now run the path under test: checks the name, so the
 * suite cannot silently test the other path. */
static void test_runs_path(void) {
    dj_wino *o = NULL;
    CHECK_OK(dj_wino_create(&o, 17, 33, 1, 0));
    const char *name = dj_wino_impl_name(o);
    size_t n = strlen(name), k = strlen(isa_suffix);
    CHECK(n > k && !strcmp(name + n - k, isa_suffix));
    printf("objects run %s\n", name);
    dj_wino_destroy(o);
}

/* AVX2 against AVX-512 on the same data, all three passes: channel counts off
 * both lane grids (17, 40, 33, 24), odd image sizes, batch 1 and 3. Each path
 * is within TOL of the double reference (the suite above), so they agree
 * within 2 TOL. Measured: bitwise equal, as expected: the lanes only group
 * channels, every element sees the same operations in the same order. */
static void test_paths_agree(void) {
    static const int shapes[][5] = {{1, 5, 7, 17, 33}, {3, 9, 10, 40, 24}, {3, 7, 5, 33, 17}, {1, 11, 13, 64, 48}};
    double worst[3] = {0, 0, 0};
    for (int s = 0; s < 4; s++)
        for (int m = 2; m <= 4; m += 2) {
            fx f;
            CHECK(fx_init(&f, shapes[s][0], shapes[s][1], shapes[s][2], shapes[s][3], shapes[s][4], 1, 900 + s) == 0);
            size_t ny = dj_tensor_numel(&f.y), nx = dj_tensor_numel(&f.dx), nw = (size_t)f.cout * f.cin * 9;
            float *out[2][3];
            for (int isa = 0; isa < 2; isa++) {
                dj_wino *o = NULL;
                CHECK_OK(dj_wino_create(&o, f.cin, f.cout, 1, 0));
                CHECK_OK(dj_wino_set_isa(o, isa));
                CHECK_OK(dj_wino_tune(o, m, 0));
                CHECK_OK(dj_wino_tune_weights(o, m));
                CHECK(strstr(dj_wino_impl_name(o), isa ? "_avx512" : "_avx2") != NULL);
                CHECK_OK(dj_wino_forward(o, &f.x, f.w, f.b, &f.y, 0, 1));
                out[isa][0] = copy_of(&f.y);
                CHECK_OK(dj_wino_backward_data(o, &f.dy, f.w, &f.dx, 0));
                out[isa][1] = copy_of(&f.dx);
                out[isa][2] = calloc(nw + (size_t)f.cout, sizeof(float));
                CHECK_OK(dj_wino_backward_weights(o, &f.x, &f.dy, out[isa][2], out[isa][2] + nw));
                dj_wino_destroy(o);
            }
            size_t count[3] = {ny, nx, nw + (size_t)f.cout};
            for (int p = 0; p < 3; p++) {
                double e = rel_err(out[1][p], out[0][p], count[p]);
                if (!(e <= 2 * TOL)) fprintf(stderr, "paths differ: shape %d F%d pass %d: %g\n", s, m, p, e);
                CHECK(e <= 2 * TOL);
                if (!(e <= worst[p])) worst[p] = e;
                free(out[0][p]);
                free(out[1][p]);
            }
            fx_free(&f);
        }
    printf("avx2 vs avx512, largest difference relative to max |out|: forward %.2g, backward-data %.2g, "
           "backward-weights %.2g\n",
           worst[0], worst[1], worst[2]);
}

/* dj_conv_set_path / dj_conv_path_name, and that dj_conv follows the path. */
static void test_path_api(void) {
    CHECK_FAILS(dj_conv_set_path("bogus"), DJ_EINVAL, "unknown convolution path 'bogus'");
    CHECK_FAILS(dj_conv_set_path(NULL), DJ_EINVAL, "unknown convolution path");
    static const char *const forced[] = {"winograd-avx2", "winograd-avx512", "direct"};
    static const dj_conv_path_id ids[] = {DJ_CONV_PATH_WINOGRAD_AVX2, DJ_CONV_PATH_WINOGRAD_AVX512,
                                          DJ_CONV_PATH_DIRECT};
    dj_conv_desc d = {.cin = 16, .cout = 16, .k = 3, .stride = 1, .pad = 1, .winograd = 1};
    for (int i = 0; i < 3; i++) {
        if (!dj_conv_path_cpu_has(ids[i])) {
            CHECK_FAILS(dj_conv_set_path(forced[i]), DJ_EINVAL, "this CPU lacks");
            continue;
        }
        CHECK_OK(dj_conv_set_path(forced[i]));
        CHECK(!strcmp(dj_conv_path_name(), forced[i]));
        dj_conv *c = NULL;
        CHECK_OK(dj_conv_create(&c, &d));
        const char *impl = dj_conv_impl_name(c, 0);
        if (ids[i] == DJ_CONV_PATH_DIRECT)
            CHECK(strstr(impl, "winograd") == NULL);
        else
            CHECK(strstr(impl, ids[i] == DJ_CONV_PATH_WINOGRAD_AVX512 ? "winograd_f4x3_avx512" : "winograd_f4x3_avx2"));
        dj_conv_destroy(c);
    }
    /* "winograd": the best this CPU has */
    CHECK_OK(dj_conv_set_path("winograd"));
    const char *best = dj_conv_path_cpu_has(DJ_CONV_PATH_WINOGRAD_AVX512) ? "winograd-avx512"
                       : dj_conv_path_cpu_has(DJ_CONV_PATH_WINOGRAD_AVX2) ? "winograd-avx2"
                                                                          : "direct";
    CHECK(!strcmp(dj_conv_path_name(), best));
}

/* ------------------------------------------------------------ the CLI */

static char dmvjnd_bin[4096], cli_out[8192];

/* Runs `[env] dmvjnd args...` (args NULL-terminated); stdout and stderr
 * together land in cli_out. Returns the exit code. */
static int run_cli(const char *env, const char *const *args) {
    char out_path[] = "/tmp/dj_test_winograd.XXXXXX";
    int fd = mkstemp(out_path);
    if (fd < 0) return -1;
    char *argv[32], *envp[] = {(char *)env, NULL};
    int argc = 0;
    argv[argc++] = dmvjnd_bin;
    while (*args && argc < 31) argv[argc++] = (char *)*args++;
    argv[argc] = NULL;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fd, 1);
    posix_spawn_file_actions_adddup2(&fa, fd, 2);
    pid_t pid;
    int rc = posix_spawn(&pid, dmvjnd_bin, &fa, NULL, argv, env ? envp : (char *[]){NULL});
    posix_spawn_file_actions_destroy(&fa);
    int status = 0;
    if (rc == 0)
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
        }
    ssize_t n = pread(fd, cli_out, sizeof cli_out - 1, 0);
    cli_out[n > 0 ? n : 0] = '\0';
    close(fd);
    unlink(out_path);
    if (rc != 0) return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

#define BENCH_ARGS "bench", "--model", "resnet20", "--batch", "2", "--mode", "infer", "--warmup", "0", "--runs", "1", \
                   "--steps", "1", "--threads", "1", "--json"

/* `dmvjnd --conv`: a bad name exits 2 with the names; a forced path shows
 * in bench --json, or exits 2 naming the missing CPU feature. */
static void test_cli_conv(void) {
    CHECK(run_cli(NULL, (const char *[]){"--conv", "bogus", "bench", NULL}) == 2);
    CHECK(strstr(cli_out, "unknown convolution path 'bogus' (winograd, winograd-avx2, winograd-avx512 or direct)"));
    static const char *const forced[] = {"winograd-avx2", "winograd-avx512", "direct"};
    static const dj_conv_path_id ids[] = {DJ_CONV_PATH_WINOGRAD_AVX2, DJ_CONV_PATH_WINOGRAD_AVX512,
                                          DJ_CONV_PATH_DIRECT};
    for (int i = 0; i < 3; i++) {
        int rc = run_cli(NULL, (const char *[]){"--conv", forced[i], BENCH_ARGS, NULL});
        char want[64];
        snprintf(want, sizeof want, "\"conv_path\": \"%s\"", forced[i]);
        if (dj_conv_path_cpu_has(ids[i])) {
            CHECK(rc == 0);
            CHECK(strstr(cli_out, want) != NULL);
        } else {
            CHECK(rc == 2);
            CHECK(strstr(cli_out, "this CPU lacks") != NULL);
        }
        if (rc != (dj_conv_path_cpu_has(ids[i]) ? 0 : 2)) fprintf(stderr, "dmvjnd --conv %s: %s\n", forced[i], cli_out);
    }
}

/* DMVJND_CONV: a bad value exits 2 naming the variable; a good one shows in
 * bench --json; --conv overrides it. */
static void test_env_conv(void) {
    CHECK(run_cli("DMVJND_CONV=sideways", (const char *[]){BENCH_ARGS, NULL}) == 2);
    CHECK(strstr(cli_out, "DMVJND_CONV: unknown convolution path 'sideways'") != NULL);
    CHECK(run_cli("DMVJND_CONV=direct", (const char *[]){BENCH_ARGS, NULL}) == 0);
    CHECK(strstr(cli_out, "\"conv_path\": \"direct\"") != NULL);
    if (dj_conv_path_cpu_has(DJ_CONV_PATH_WINOGRAD_AVX2)) {
        CHECK(run_cli("DMVJND_CONV=direct", (const char *[]){"--conv", "winograd-avx2", BENCH_ARGS, NULL}) == 0);
        CHECK(strstr(cli_out, "\"conv_path\": \"winograd-avx2\"") != NULL);
    }
}

/* Runs the per-path suite on `path` (a dj_conv_set_path name) if the CPU has
 * it; else counts one skip for another CPU, runs nothing. */
static void run_suite(const char *path, dj_conv_path_id id, const char *suffix, const char *feature) {
    if (!dj_conv_path_cpu_has(id)) {
        char why[64];
        snprintf(why, sizeof why, "CPU lacks %s", feature);
        check_skip(path, 1, why);
        return;
    }
    printf("== %s ==\n", path);
    CHECK_OK(dj_conv_set_path(path));
    isa_suffix = suffix;
    RUN(test_runs_path);
    RUN(test_awkward);
    RUN(test_elementwise);
    RUN(test_gradcheck);
    RUN(test_backward_weights);
    RUN(test_gradcheck_weights);
    RUN(test_vs_onednn);
    RUN(test_frozen);
    RUN(test_threads);
    RUN(test_bad_args);
    RUN(test_conv_routing);
}

int main(void) {
    run_suite("winograd-avx2", DJ_CONV_PATH_WINOGRAD_AVX2, "_avx2", "avx2/fma");
    run_suite("winograd-avx512", DJ_CONV_PATH_WINOGRAD_AVX512, "_avx512", "avx512f/bw/vl/dq");
    if (dj_conv_path_cpu_has(DJ_CONV_PATH_WINOGRAD_AVX2) && dj_conv_path_cpu_has(DJ_CONV_PATH_WINOGRAD_AVX512))
        RUN(test_paths_agree);
    else
        check_skip("test_paths_agree", 1, "CPU lacks AVX2 or AVX-512");
    RUN(test_path_api);
    const char *build = getenv("BUILD");
    snprintf(dmvjnd_bin, sizeof dmvjnd_bin, "%s/dmvjnd", build && *build ? build : "build");
    if (access(dmvjnd_bin, X_OK) == 0) {
        RUN(test_cli_conv);
        RUN(test_env_conv);
    } else {
        fprintf(stderr, "test_winograd: %s not found (run from the repository root after make)\n", dmvjnd_bin);
        check_tests_failed++;
    }
    return check_report("test_winograd");
}
