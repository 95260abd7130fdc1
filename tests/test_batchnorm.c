/* Batch normalisation: forward against a double-precision reference,
 * running statistics against PyTorch's rule, backward against finite
 * differences and an independent reference of the formula. */
#include <float.h>
#include <stdlib.h>

#include "check.h"
#include "dmvjnd/dmvjnd.h"
#include "gradcheck.h"

static float *falloc(size_t n) { return (float *)calloc(n ? n : 1, sizeof(float)); }

/* ---------------------------------------------------------- references */

/* Batch mean and biased variance of channel c, in double. */
static void ref_stats(const dj_tensor *x, int c, double *mean, double *var) {
    size_t rows = (size_t)x->n * x->h * x->w;
    double s = 0, q = 0;
    for (size_t r = 0; r < rows; r++) s += x->data[r * x->c + c];
    *mean = s / rows;
    for (size_t r = 0; r < rows; r++) {
        double d = x->data[r * x->c + c] - *mean;
        q += d * d;
    }
    *var = q / rows;
}

/* y = gamma * (x - mean) / sqrt(var + eps) + beta, optionally ReLU, in double. */
static void ref_forward(const dj_tensor *x, const float *gamma, const float *beta, const double *mean,
                        const double *var, double eps, int relu, double *y) {
    size_t rows = (size_t)x->n * x->h * x->w;
    for (size_t r = 0; r < rows; r++)
        for (int c = 0; c < x->c; c++) {
            double v = gamma[c] * (x->data[r * x->c + c] - mean[c]) / sqrt(var[c] + eps) + beta[c];
            y[r * x->c + c] = relu && v < 0 ? 0 : v;
        }
}

/* Training-mode backward straight from the textbook formula, in double. */
static void ref_backward(const dj_tensor *x, const float *y, const float *dy, const float *gamma, double eps, int relu,
                         double *dx, double *dgamma, double *dbeta) {
    size_t rows = (size_t)x->n * x->h * x->w;
    int C = x->c;
    for (int c = 0; c < C; c++) {
        double mean, var;
        ref_stats(x, c, &mean, &var);
        double invstd = 1 / sqrt(var + eps), sg = 0, sgx = 0;
        for (size_t r = 0; r < rows; r++) {
            double xh = (x->data[r * C + c] - mean) * invstd;
            double g = dy[r * C + c];
            if (relu && !(y[r * C + c] > 0)) g = 0;
            sg += g;
            sgx += g * xh;
        }
        dgamma[c] = sgx;
        dbeta[c] = sg;
        for (size_t r = 0; r < rows; r++) {
            double xh = (x->data[r * C + c] - mean) * invstd;
            double g = dy[r * C + c];
            if (relu && !(y[r * C + c] > 0)) g = 0;
            dx[r * C + c] = gamma[c] * invstd * (g - sg / rows - xh * sgx / rows);
        }
    }
}

/* ------------------------------------------------------------ forward */

static void check_forward_shape(int n, int h, int w, int c, int relu, float offset) {
    dj_tensor x, y;
    CHECK_OK(dj_tensor_alloc(&x, n, h, w, c));
    CHECK_OK(dj_tensor_alloc(&y, n, h, w, c));
    size_t numel = dj_tensor_numel(&x);
    gc_fill(x.data, numel, -2.0f + offset, 3.0f + offset, 11 + c);
    float *gamma = falloc(c), *beta = falloc(c), *rm = falloc(c), *rv = falloc(c), *sm = falloc(c), *si = falloc(c);
    gc_fill(gamma, c, 0.5f, 1.5f, 2);
    gc_fill(beta, c, -0.5f, 0.5f, 3);
    for (int i = 0; i < c; i++) rv[i] = 1.0f;
    const float eps = 1e-5f, mom = 0.1f;
    CHECK_OK(dj_bn_forward_train(&x, gamma, beta, rm, rv, mom, eps, relu, &y, sm, si));

    double *mean = malloc(c * sizeof *mean), *var = malloc(c * sizeof *var), *ry = malloc(numel * sizeof *ry);
    size_t rows = numel / c;
    for (int i = 0; i < c; i++) {
        ref_stats(&x, i, &mean[i], &var[i]);
        CHECK_CLOSE(sm[i], mean[i], 1e-6 + 1e-6 * fabs(offset), 1e-6);
        CHECK_CLOSE(si[i], 1 / sqrt(var[i] + eps), 0, 1e-5);
        CHECK_CLOSE(rm[i], mom * mean[i], 1e-7, 1e-5);
        CHECK_CLOSE(rv[i], (1 - mom) + mom * var[i] * rows / (rows - 1), 1e-7, 1e-5);
    }
    ref_forward(&x, gamma, beta, mean, var, eps, relu, ry);
    float *fy = falloc(numel);
    for (size_t i = 0; i < numel; i++) fy[i] = (float)ry[i];
    /* |y| is O(3); float rounding of x - mean when |mean| ~ 100 costs ~1e-5 */
    CHECK(check_max_err(y.data, fy, numel, 2e-5 + 2e-7 * fabs(offset), 1e-5) <= 1);
    if (relu)
        for (size_t i = 0; i < numel; i++) CHECK(y.data[i] >= 0);
    free(fy);
    free(ry);
    free(mean);
    free(var);
    free(gamma), free(beta), free(rm), free(rv), free(sm), free(si);
    dj_tensor_free(&x);
    dj_tensor_free(&y);
}

static void test_forward_small(void) {
    check_forward_shape(3, 5, 7, 3, 0, 0);
    check_forward_shape(3, 5, 7, 17, 1, 0);
    check_forward_shape(3, 5, 7, 5, 0, 0);
    check_forward_shape(2, 3, 3, 1, 1, 0);
}

/* More than one channel chunk (64) and a ragged last chunk. */
static void test_forward_wide(void) {
    check_forward_shape(3, 5, 7, 131, 1, 0);
    check_forward_shape(4, 8, 8, 64, 0, 0);
    check_forward_shape(8, 16, 16, 32, 1, 0);
}

/* Threaded path, and accuracy with a large mean relative to the spread. */
static void test_forward_large(void) {
    check_forward_shape(128, 32, 32, 16, 1, 0);
    check_forward_shape(16, 32, 32, 7, 0, 100.0f);
}

/* ------------------------------------------------- running statistics */

/* Two steps with PyTorch's rule, by hand on a 2x1x2x1 tensor (4 values). */
static void test_running_stats_two_steps(void) {
    float x1[4] = {1, 2, 3, 6}, x2[4] = {-1, 0, 0, 5};
    float y[4], g = 1, b = 0, rm = 0, rv = 1, sm, si;
    dj_tensor tx = dj_tensor_view(x1, 2, 1, 2, 1), ty = dj_tensor_view(y, 2, 1, 2, 1);
    const float mom = 0.1f;
    CHECK_OK(dj_bn_forward_train(&tx, &g, &b, &rm, &rv, mom, 1e-5f, 0, &ty, &sm, &si));
    tx.data = x2;
    CHECK_OK(dj_bn_forward_train(&tx, &g, &b, &rm, &rv, mom, 1e-5f, 0, &ty, &sm, &si));
    /* step 1: mean 3, unbiased var (4+1+0+9)/3 = 14/3
     * step 2: mean 1, unbiased var (4+1+1+16)/3 = 22/3 */
    double erm = 0.9 * (0.1 * 3) + 0.1 * 1;
    double erv = 0.9 * (0.9 * 1 + 0.1 * 14.0 / 3) + 0.1 * 22.0 / 3;
    CHECK_CLOSE(rm, erm, 1e-6, 1e-6);
    CHECK_CLOSE(rv, erv, 1e-6, 1e-6);
    /* the normalisation itself uses the biased variance: 22/4 */
    CHECK_CLOSE(si, 1 / sqrt(22.0 / 4 + 1e-5), 0, 1e-6);
    CHECK_CLOSE(y[3], (5 - 1) / sqrt(22.0 / 4 + 1e-5), 1e-6, 1e-6);

    /* inference uses the running statistics, not the batch's */
    float yi[4];
    dj_tensor tyi = dj_tensor_view(yi, 2, 1, 2, 1);
    g = 2, b = 0.5f;
    CHECK_OK(dj_bn_forward_infer(&tx, &g, &b, &rm, &rv, 1e-5f, 0, &tyi));
    for (int i = 0; i < 4; i++) CHECK_CLOSE(yi[i], 2 * (x2[i] - erm) / sqrt(erv + 1e-5) + 0.5, 1e-6, 1e-6);
    CHECK_OK(dj_bn_forward_infer(&tx, &g, &b, &rm, &rv, 1e-5f, 1, &tyi));
    CHECK(yi[0] == 0.0f); /* 2 * (-1 - 0.37) / 1.6 + 0.5 < 0 */
    CHECK_CLOSE(yi[3], 2 * (5 - erm) / sqrt(erv + 1e-5) + 0.5, 1e-6, 1e-6);
}

/* NULL running statistics (track_running_stats = False) are allowed. */
static void test_no_running_stats(void) {
    float x[6] = {1, 2, 3, 4, 5, 7}, y[6], sm[2], si[2];
    dj_tensor tx = dj_tensor_view(x, 3, 1, 1, 2), ty = dj_tensor_view(y, 3, 1, 1, 2);
    CHECK_OK(dj_bn_forward_train(&tx, NULL, NULL, NULL, NULL, 0.1f, 1e-5f, 0, &ty, sm, si));
    CHECK_CLOSE(sm[0], 3, 1e-6, 0);
    CHECK_CLOSE(sm[1], 13.0 / 3, 1e-6, 1e-6);
    CHECK_CLOSE(y[0], -2 / sqrt(8.0 / 3 + 1e-5), 1e-6, 1e-6);
}

/* ----------------------------------------------------------- inference */

static void test_infer_forward(void) {
    int n = 3, h = 5, w = 7, c = 17;
    dj_tensor x, y;
    CHECK_OK(dj_tensor_alloc(&x, n, h, w, c));
    CHECK_OK(dj_tensor_alloc(&y, n, h, w, c));
    size_t numel = dj_tensor_numel(&x);
    gc_fill(x.data, numel, -2, 2, 5);
    float gamma[17], beta[17], rm[17], rv[17];
    gc_fill(gamma, c, 0.5f, 1.5f, 6);
    gc_fill(beta, c, -0.5f, 0.5f, 7);
    gc_fill(rm, c, -0.5f, 0.5f, 8);
    gc_fill(rv, c, 0.5f, 2.0f, 9);
    for (int relu = 0; relu < 2; relu++) {
        CHECK_OK(dj_bn_forward_infer(&x, gamma, beta, rm, rv, 1e-3f, relu, &y));
        double worst = 0;
        for (size_t i = 0; i < numel; i++) {
            int ch = (int)(i % c);
            double v = gamma[ch] * (x.data[i] - rm[ch]) / sqrt(rv[ch] + 1e-3) + beta[ch];
            if (relu && v < 0) v = 0;
            double e = fabs(v - y.data[i]);
            if (e > worst) worst = e;
        }
        CHECK(worst < 2e-6);
    }
    dj_tensor_free(&x);
    dj_tensor_free(&y);
}

/* -------------------------------------------------- backward: gradcheck */

typedef struct {
    dj_tensor x, y;
    float *gamma, *beta, *r, *sm, *si;
    int relu, infer;
    float *rm, *rv;
} bn_ctx;

static double bn_loss(void *p) {
    bn_ctx *k = p;
    if (k->infer)
        dj_bn_forward_infer(&k->x, k->gamma, k->beta, k->rm, k->rv, 1e-5f, k->relu, &k->y);
    else
        dj_bn_forward_train(&k->x, k->gamma, k->beta, NULL, NULL, 0.1f, 1e-5f, k->relu, &k->y, k->sm, k->si);
    double s = 0;
    size_t numel = dj_tensor_numel(&k->y);
    for (size_t i = 0; i < numel; i++) s += (double)k->y.data[i] * k->r[i];
    return s;
}

/* Moves x away from the ReLU kink: every pre-activation ends up at least
 * `margin` from 0, so a finite-difference step never crosses it. */
static void avoid_kinks(bn_ctx *k, float margin) {
    int C = k->x.c, relu = k->relu;
    size_t numel = dj_tensor_numel(&k->x);
    k->relu = 0;
    for (int it = 0; it < 50; it++) {
        bn_loss(k);
        int moved = 0;
        for (size_t i = 0; i < numel; i++) {
            float z = k->y.data[i];
            if (fabsf(z) < margin) {
                int ch = (int)(i % C);
                float step = 3 * margin / (k->gamma[ch] * (k->infer ? 1 : k->si[ch]));
                k->x.data[i] += z >= 0 ? step : -step;
                moved = 1;
            }
        }
        if (!moved) break;
    }
    k->relu = relu;
}

static void gradcheck_bn(int n, int h, int w, int c, int relu, int infer) {
    bn_ctx k = {0};
    k.relu = relu;
    k.infer = infer;
    CHECK_OK(dj_tensor_alloc(&k.x, n, h, w, c));
    CHECK_OK(dj_tensor_alloc(&k.y, n, h, w, c));
    size_t numel = dj_tensor_numel(&k.x);
    gc_fill(k.x.data, numel, -1.5f, 2.5f, 21 + c);
    k.r = falloc(numel);
    gc_fill(k.r, numel, -1, 1, 22);
    k.gamma = falloc(c), k.beta = falloc(c), k.sm = falloc(c), k.si = falloc(c), k.rm = falloc(c), k.rv = falloc(c);
    gc_fill(k.gamma, c, 0.5f, 1.5f, 23);
    gc_fill(k.beta, c, -0.3f, 0.3f, 24);
    gc_fill(k.rm, c, -0.3f, 0.3f, 25);
    gc_fill(k.rv, c, 0.5f, 2.0f, 26);
    if (relu) avoid_kinks(&k, 0.1f);
    bn_loss(&k);

    float *dx = falloc(numel), *dg = falloc(c), *db = falloc(c);
    dj_tensor tdx = dj_tensor_view(dx, n, h, w, c), tdy = dj_tensor_view(k.r, n, h, w, c);
    if (infer) {
        CHECK_OK(dj_bn_backward_infer(&k.y, &tdy, k.gamma, k.rv, 1e-5f, relu, &tdx, 0));
    } else {
        CHECK_OK(dj_bn_backward(&k.x, &k.y, &tdy, k.gamma, k.sm, k.si, relu, &tdx, 0, dg, db));
    }
    const float eps = 1e-2f;
    CHECK(gc_check("bn dx", bn_loss, &k, k.x.data, dx, numel, eps, 1e-3, 1e-2, 400) <= 1);
    if (!infer) {
        CHECK(gc_check("bn dgamma", bn_loss, &k, k.gamma, dg, c, eps, 1e-3, 1e-2, 400) <= 1);
        CHECK(gc_check("bn dbeta", bn_loss, &k, k.beta, db, c, eps, 1e-3, 1e-2, 400) <= 1);
    }
    free(dx), free(dg), free(db);
    free(k.r), free(k.gamma), free(k.beta), free(k.sm), free(k.si), free(k.rm), free(k.rv);
    dj_tensor_free(&k.x);
    dj_tensor_free(&k.y);
}

static void test_backward_gradcheck(void) {
    gradcheck_bn(3, 5, 7, 3, 0, 0);
    gradcheck_bn(3, 5, 7, 5, 1, 0);
    gradcheck_bn(2, 3, 3, 70, 1, 0); /* two channel chunks */
}

static void test_backward_infer_gradcheck(void) {
    gradcheck_bn(3, 5, 7, 7, 0, 1);
    gradcheck_bn(3, 5, 7, 17, 1, 1);
}

/* ---------------------------------------- backward: reference, threaded */

static void check_backward_ref(int n, int h, int w, int c, int relu) {
    dj_tensor x, y, dy, dx;
    CHECK_OK(dj_tensor_alloc(&x, n, h, w, c));
    CHECK_OK(dj_tensor_alloc(&y, n, h, w, c));
    CHECK_OK(dj_tensor_alloc(&dy, n, h, w, c));
    CHECK_OK(dj_tensor_alloc(&dx, n, h, w, c));
    size_t numel = dj_tensor_numel(&x);
    gc_fill(x.data, numel, -1, 3, 31);
    gc_fill(dy.data, numel, -1, 1, 32);
    float *gamma = falloc(c), *beta = falloc(c), *sm = falloc(c), *si = falloc(c), *dg = falloc(c), *db = falloc(c);
    gc_fill(gamma, c, 0.5f, 1.5f, 33);
    CHECK_OK(dj_bn_forward_train(&x, gamma, beta, NULL, NULL, 0.1f, 1e-5f, relu, &y, sm, si));
    CHECK_OK(dj_bn_backward(&x, &y, &dy, gamma, sm, si, relu, &dx, 0, dg, db));
    double *rdx = malloc(numel * sizeof *rdx), *rdg = malloc(c * sizeof *rdg), *rdb = malloc(c * sizeof *rdb);
    ref_backward(&x, y.data, dy.data, gamma, 1e-5, relu, rdx, rdg, rdb);
    /* sums over n*h*w terms: compare relative to their magnitude sqrt(rows) */
    double rows = (double)numel / c, worst = 0, worst_p = 0;
    for (size_t i = 0; i < numel; i++) worst = fmax(worst, fabs(dx.data[i] - rdx[i]));
    for (int i = 0; i < c; i++) {
        worst_p = fmax(worst_p, fabs(dg[i] - rdg[i]) / sqrt(rows));
        worst_p = fmax(worst_p, fabs(db[i] - rdb[i]) / sqrt(rows));
    }
    CHECK(worst < 1e-5);
    CHECK(worst_p < 1e-5);
    if (!(worst < 1e-5) || !(worst_p < 1e-5)) fprintf(stderr, "  dx err %g, param err %g\n", worst, worst_p);
    free(rdx), free(rdg), free(rdb);
    free(gamma), free(beta), free(sm), free(si), free(dg), free(db);
    dj_tensor_free(&x), dj_tensor_free(&y), dj_tensor_free(&dy), dj_tensor_free(&dx);
}

static void test_backward_reference(void) {
    check_backward_ref(3, 5, 7, 17, 1);
    check_backward_ref(8, 16, 16, 37, 0); /* threaded */
    check_backward_ref(8, 16, 16, 67, 1); /* threaded, two chunks */
    check_backward_ref(16, 16, 16, 16, 1); /* the unrolled widths of ResNet-20 */
    check_backward_ref(8, 16, 16, 32, 0);
    check_backward_ref(4, 8, 8, 64, 1);
}

/* ------------------------------------------------------ accum semantics */

static void test_accum(void) {
    int n = 3, h = 5, w = 7, c = 5;
    size_t numel = (size_t)n * h * w * c;
    float *x = falloc(numel), *y = falloc(numel), *dy = falloc(numel), *dx0 = falloc(numel), *dx = falloc(numel);
    float gamma[5], beta[5] = {0}, sm[5], si[5], dg0[5] = {0}, db0[5] = {0}, dg[5], db[5];
    gc_fill(x, numel, -1, 1, 41);
    gc_fill(dy, numel, -1, 1, 42);
    gc_fill(gamma, c, 0.5f, 1.5f, 43);
    dj_tensor tx = dj_tensor_view(x, n, h, w, c), ty = dj_tensor_view(y, n, h, w, c);
    dj_tensor tdy = dj_tensor_view(dy, n, h, w, c), tdx = dj_tensor_view(dx, n, h, w, c);
    dj_tensor tdx0 = dj_tensor_view(dx0, n, h, w, c);
    CHECK_OK(dj_bn_forward_train(&tx, gamma, beta, NULL, NULL, 0.1f, 1e-5f, 1, &ty, sm, si));
    CHECK_OK(dj_bn_backward(&tx, &ty, &tdy, gamma, sm, si, 1, &tdx0, 0, dg0, db0));

    /* accum = 0 overwrites garbage */
    for (size_t i = 0; i < numel; i++) dx[i] = NAN;
    CHECK_OK(dj_bn_backward(&tx, &ty, &tdy, gamma, sm, si, 1, &tdx, 0, NULL, NULL));
    CHECK(memcmp(dx, dx0, numel * sizeof(float)) == 0);
    /* accum = 1 adds; parameter gradients add to what is there */
    for (size_t i = 0; i < numel; i++) dx[i] = 1.5f;
    for (int i = 0; i < c; i++) dg[i] = db[i] = 2.0f;
    CHECK_OK(dj_bn_backward(&tx, &ty, &tdy, gamma, sm, si, 1, &tdx, 1, dg, db));
    for (size_t i = 0; i < numel; i++) CHECK_CLOSE(dx[i], 1.5f + dx0[i], 1e-6, 1e-6);
    for (int i = 0; i < c; i++) {
        CHECK_CLOSE(dg[i], 2.0f + dg0[i], 1e-6, 1e-6);
        CHECK_CLOSE(db[i], 2.0f + db0[i], 1e-6, 1e-6);
    }
    /* dx may be NULL (parameter gradients only) */
    for (int i = 0; i < c; i++) dg[i] = db[i] = 0.0f;
    CHECK_OK(dj_bn_backward(&tx, &ty, &tdy, gamma, sm, si, 1, NULL, 0, dg, db));
    for (int i = 0; i < c; i++) CHECK(dg[i] == dg0[i] && db[i] == db0[i]);

    /* inference backward: same rules */
    float rv[5] = {1, 2, 3, 4, 5};
    CHECK_OK(dj_bn_backward_infer(&ty, &tdy, gamma, rv, 1e-5f, 1, &tdx0, 0));
    for (size_t i = 0; i < numel; i++) dx[i] = NAN;
    CHECK_OK(dj_bn_backward_infer(&ty, &tdy, gamma, rv, 1e-5f, 1, &tdx, 0));
    CHECK(memcmp(dx, dx0, numel * sizeof(float)) == 0);
    for (size_t i = 0; i < numel; i++) dx[i] = -0.5f;
    CHECK_OK(dj_bn_backward_infer(&ty, &tdy, gamma, rv, 1e-5f, 1, &tdx, 1));
    for (size_t i = 0; i < numel; i++) CHECK_CLOSE(dx[i], -0.5f + dx0[i], 1e-6, 1e-6);
    free(x), free(y), free(dy), free(dx0), free(dx);
}

/* ----------------------------------------------------------------- errors */

static void test_errors(void) {
    float x[30] = {0}, y[30], sm[5], si[5], g[5] = {1, 1, 1, 1, 1}, b[5] = {0};
    dj_tensor tx = dj_tensor_view(x, 2, 3, 1, 5), ty = dj_tensor_view(y, 2, 3, 1, 4);
    CHECK_FAILS(dj_bn_forward_train(&tx, g, b, NULL, NULL, 0.1f, 1e-5f, 0, &ty, sm, si), DJ_EINVAL,
                "batchnorm: x has 5 channels but y has 4");
    ty = dj_tensor_view(y, 2, 1, 3, 5);
    CHECK_FAILS(dj_bn_forward_train(&tx, g, b, NULL, NULL, 0.1f, 1e-5f, 0, &ty, sm, si), DJ_EINVAL,
                "x is 3x1 but y is 1x3");
    ty = dj_tensor_view(y, 1, 6, 1, 5);
    CHECK_FAILS(dj_bn_forward_infer(&tx, g, b, g, g, 1e-5f, 0, &ty), DJ_EINVAL, "x has batch 2 but y has 1");
    ty = dj_tensor_view(y, 2, 3, 1, 5);
    CHECK_FAILS(dj_bn_forward_train(&tx, g, b, NULL, NULL, 0.1f, -1.0f, 0, &ty, sm, si), DJ_EINVAL, "eps");
    CHECK_FAILS(dj_bn_forward_train(&tx, g, b, NULL, NULL, 0.1f, 1e-5f, 0, &ty, NULL, si), DJ_EINVAL, "save_mean");
    CHECK_FAILS(dj_bn_forward_train(NULL, g, b, NULL, NULL, 0.1f, 1e-5f, 0, &ty, sm, si), DJ_EINVAL, "x is NULL");
    dj_tensor one = dj_tensor_view(x, 1, 1, 1, 5), yone = dj_tensor_view(y, 1, 1, 1, 5);
    CHECK_FAILS(dj_bn_forward_train(&one, g, b, NULL, NULL, 0.1f, 1e-5f, 0, &yone, sm, si), DJ_EINVAL,
                "more than 1 value per channel");
    dj_tensor bad = dj_tensor_view(y, 2, 3, 1, 6);
    CHECK_FAILS(dj_bn_backward(&tx, &ty, &bad, g, sm, si, 0, &ty, 0, NULL, NULL), DJ_EINVAL,
                "batchnorm backward: x has 5 channels but dy has 6");
    CHECK_FAILS(dj_bn_backward(&tx, &ty, &ty, g, sm, si, 0, &bad, 0, NULL, NULL), DJ_EINVAL, "but dx has 6");
    CHECK_FAILS(dj_bn_backward(&tx, NULL, &ty, g, sm, si, 1, &ty, 0, NULL, NULL), DJ_EINVAL, "y is NULL");
    CHECK_FAILS(dj_bn_backward_infer(&ty, &ty, g, g, 1e-5f, 0, &bad, 0), DJ_EINVAL,
                "batchnorm inference backward: dy has 5 channels but dx has 6");
}

int main(void) {
    RUN(test_forward_small);
    RUN(test_forward_wide);
    RUN(test_forward_large);
    RUN(test_running_stats_two_steps);
    RUN(test_no_running_stats);
    RUN(test_infer_forward);
    RUN(test_backward_gradcheck);
    RUN(test_backward_infer_gradcheck);
    RUN(test_backward_reference);
    RUN(test_accum);
    RUN(test_errors);
    return check_report("test_batchnorm");
}
