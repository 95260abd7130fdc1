/* jnd-alloc (dmvjnd/compress.h, section "jnd-alloc") against independent
 * references: distortion terms of a hand-made 2x2 image worked out by hand,
 * the feature layout and the predictor recomputed here, lambda and the pick
 * on hand examples, the logistic fit on samples drawn from known weights
 * (near them, and its first-order optimality condition recomputed here),
 * the calibration file (round trip, every kind of bad file), and, with the
 * CIFAR-10 data and the shipped model, dj_compress_calibrate +
 * dj_compress_evaluate (each image's coded quality recomputed here from the
 * generator's margins and plain codings) and `dmvjnd compress --calibrate /
 * --calibration` end to end. Checks that need the data or the model print
 * SKIP without them. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "cli_run.h"
#include "dmvjnd/cifar10.h"
#include "dmvjnd/codec.h"
#include "dmvjnd/compress.h"
#include "dmvjnd/dmvjnd.h"
#include "dmvjnd/fileio.h"
#include "dmvjnd/jnd_generate.h"
#include "dmvjnd/json.h"
#include "dmvjnd/model_find.h"
#include "dmvjnd/rng.h"

enum { F = DJ_ALLOC_MAX_FEATURES, B = DJ_ALLOC_BASE_FEATURES, D = DJ_ALLOC_DISTORTION };

static char tmpdir[] = "/tmp/dj_test_compress_alloc.XXXXXX";
static char bin[4096];
static int have_data;
static int have_model;
static char jnd_model[4096];

/* ------------------------------------------------------------ references */

/* The feature vector as the header describes it, written out here:
 * f = (log(mse + 1e-3), log(cmse + 1e-3), over, log(max(bpp, 1e-3))),
 * lm = log of the margin on x clamped to [1e-4, 1] (non-finite: 1e-4), hm =
 * the margin on x_hat clamped to [-1, 1] (non-finite: -1): a non-finite
 * margin is the most careful value. */
static double ref_lm(float m) {
    double v = (double)m;
    if (!isfinite(v) || v < 1e-4) v = 1e-4;
    if (v > 1) v = 1;
    return log(v);
}

static double ref_hm(float m) {
    double v = (double)m;
    if (!isfinite(v) || v < -1) return -1;
    return v > 1 ? 1 : v;
}

/* The class features: C = the class count when it is 2..16, else none; a
 * log-probability clamped to [-12, 0] (non-finite: -12). */
static int ref_classes(int classes) { return classes >= 2 && classes <= 16 ? classes : 0; }

static double ref_lp(float v) {
    if (!isfinite(v) || v < -12) return -12;
    return v > 0 ? 0 : v;
}

/* A result with only the margins set (margins[0..K) on x, [K..2K) on x_hat)
 * and no class count: the base features only. */
static dj_jnd_image_result result_of(const float *margins, int K) {
    dj_jnd_image_result r;
    memset(&r, 0, sizeof r);
    for (int k = 0; k < K; k++) r.margin[k] = margins[k], r.hat_margin[k] = margins[K + k];
    return r;
}

static void ref_features(const double *d, const dj_jnd_image_result *r, int K, int k, double *phi) {
    double f[4] = {log(d[0] + 1e-3), log(d[1] + 1e-3), d[2], log(d[3] > 1e-3 ? d[3] : 1e-3)};
    double lmin = INFINITY, hmin = INFINITY;
    for (int j = 0; j < K; j++) {
        if (ref_lm(r->margin[j]) < lmin) lmin = ref_lm(r->margin[j]);
        if (ref_hm(r->hat_margin[j]) < hmin) hmin = ref_hm(r->hat_margin[j]);
    }
    double lk = ref_lm(r->margin[k]), hk = ref_hm(r->hat_margin[k]);
    double out[B] = {1,      f[0],      f[1],      f[2], f[3],      lk,        lmin,      f[0] * lk, f[1] * lk,
                     f[2] * lk, f[3] * lk, hk,     hmin, f[0] * hk, f[1] * hk, f[2] * hk, f[3] * hk};
    memcpy(phi, out, sizeof out);
    const int C = ref_classes(r->classes[k]);
    for (int j = 0; j < C; j++) {
        phi[B + j] = ref_lp(r->log_prob[k][j]);
        phi[B + C + j] = r->before[k] == j ? f[0] : 0;
        phi[B + 2 * C + j] = r->before[k] == j ? f[3] : 0;
    }
}

static double ref_sigmoid(double z) { return 1.0 / (1.0 + exp(-z)); }

static double ref_predict(const dj_compress_calibration *cal, const double *d, const dj_jnd_image_result *r) {
    double p = 0, phi[F];
    for (int k = 0; k < cal->classifiers; k++) {
        ref_features(d, r, cal->classifiers, k, phi);
        double z = 0;
        for (int f = 0; f < B + 3 * ref_classes(cal->classes[k]); f++) z += cal->w[k][f] * phi[f];
        p += ref_sigmoid(z);
    }
    return p / cal->classifiers;
}

/* The distortion terms by plain loops (the hand-worked test checks these
 * loops too). */
static void ref_distortion(const uint8_t *x, const uint8_t *y, const float *sb, const float *cam, int h, int w,
                           size_t payload, double *d) {
    double se = 0, cse = 0, over = 0;
    for (int p = 0; p < h * w; p++) {
        double px = 0;
        for (int c = 0; c < 3; c++) {
            double e = (double)y[p * 3 + c] - x[p * 3 + c];
            px += e * e;
            if (sb && fabs(e) > sb[p * 3 + c]) over++;
        }
        se += px;
        cse += (cam ? cam[p] : 1.0) * px / 3;
    }
    d[0] = se / (3.0 * h * w);
    d[1] = cse / (h * w);
    d[2] = over / (3.0 * h * w);
    d[3] = 8.0 * payload / (h * w);
}

/* ------------------------------------------------------------ distortion */

static void test_distortion_by_hand(void) {
    /* 2x2: per-value differences decoded - x
     *   pixel 0: ( 1, -2, 0)  squared sum  5
     *   pixel 1: ( 3,  0, 0)                9
     *   pixel 2: ( 0,  0, 0)                0
     *   pixel 3: (-4,  2, 1)               21
     * mse = 35/12. cam (1, 0.5, 0.25, 0): cmse = (5/3*1 + 9/3*0.5)/4 = 19/24.
     * budget 1.5 everywhere but 2.0 at value 1 (|-2| is not above 2):
     * over = |{3, 4, 2}| / 12 = 3/12. payload 3 bytes: bpp = 24/4 = 6. */
    const uint8_t x[12] = {10, 20, 30, 40, 50, 60, 70, 80, 90, 100, 110, 120};
    const uint8_t y[12] = {11, 18, 30, 43, 50, 60, 70, 80, 90, 96, 112, 121};
    const float cam[4] = {1.0f, 0.5f, 0.25f, 0.0f};
    float b[12];
    for (int i = 0; i < 12; i++) b[i] = 1.5f;
    b[1] = 2.0f;
    double d[D];
    dj_compress_alloc_distortion(x, y, b, cam, 2, 2, 3, d);
    CHECK_CLOSE(d[0], 35.0 / 12, 0, 1e-15);
    CHECK_CLOSE(d[1], 19.0 / 24, 0, 1e-15);
    CHECK(d[2] == 0.25);
    CHECK(d[3] == 6.0);
    /* no cam: cmse = mse; no budget: over = 0 */
    dj_compress_alloc_distortion(x, y, NULL, NULL, 2, 2, 3, d);
    CHECK_CLOSE(d[0], 35.0 / 12, 0, 1e-15);
    CHECK_CLOSE(d[1], 35.0 / 12, 0, 1e-15);
    CHECK(d[2] == 0.0 && d[3] == 6.0);
    /* the budget is per value and strict: 1.0 everywhere counts |-2|, 3,
     * |-4| and 2 (not the two 1s), 4 of 12 */
    for (int i = 0; i < 12; i++) b[i] = 1.0f;
    dj_compress_alloc_distortion(x, y, b, cam, 2, 2, 0, d);
    CHECK_CLOSE(d[2], 4.0 / 12, 0, 1e-15);
    CHECK(d[3] == 0.0);
    /* identical images: all zero */
    dj_compress_alloc_distortion(x, x, b, cam, 2, 2, 0, d);
    CHECK(d[0] == 0 && d[1] == 0 && d[2] == 0 && d[3] == 0);
    /* the extremes of 8 bits, no wrap-around: 1x1, (255, 0, 128) -> (0, 255, 128) */
    const uint8_t a[3] = {255, 0, 128}, c[3] = {0, 255, 128};
    const float half = 0.5f;
    dj_compress_alloc_distortion(a, c, NULL, &half, 1, 1, 1, d);
    CHECK(d[0] == 2.0 * 255 * 255 / 3);
    CHECK(d[1] == 0.5 * 2.0 * 255 * 255 / 3);
    CHECK(d[3] == 8.0);
    /* the loops used below as reference agree on a random 5x7 image */
    dj_rng r;
    dj_rng_seed(&r, 11);
    uint8_t u[105], v[105];
    float sb[105], cm[35];
    for (int i = 0; i < 105; i++) {
        u[i] = (uint8_t)dj_rng_below(&r, 256);
        v[i] = (uint8_t)dj_rng_below(&r, 256);
        sb[i] = 100.0f * dj_rng_uniform(&r);
    }
    for (int i = 0; i < 35; i++) cm[i] = dj_rng_uniform(&r);
    double dr[D];
    dj_compress_alloc_distortion(u, v, sb, cm, 5, 7, 77, d);
    ref_distortion(u, v, sb, cm, 5, 7, 77, dr);
    for (int j = 0; j < D; j++) CHECK_CLOSE(d[j], dr[j], 0, 1e-12);
}

/* ------------------------------------------------------------ features */

static void check_phi_r(const double *d, const dj_jnd_image_result *r, int K, int k, const double *want) {
    double phi[F];
    const int nf = B + 3 * ref_classes(r->classes[k]);
    CHECK(dj_compress_alloc_count(r->classes[k]) == nf);
    dj_compress_alloc_features(d, r, K, k, phi);
    for (int f = 0; f < nf; f++)
        if (!(fabs(phi[f] - want[f]) <= 1e-12 * (1 + fabs(want[f])))) {
            fprintf(stderr, "feature %d of classifier %d: %.17g, expected %.17g\n", f, k, phi[f], want[f]);
            check_failed_asserts++;
        }
}

static void check_phi(const double *d, const float *m, int K, int k, const double *want) {
    dj_jnd_image_result r = result_of(m, K);
    check_phi_r(d, &r, K, k, want);
}

static void test_features_layout(void) {
    /* K = 3, written out term by term */
    const double d[D] = {2.0, 0.5, 0.25, 1.5};
    const double f0 = log(2.001), f1 = log(0.501), f2 = 0.25, f3 = log(1.5);
    const float m[6] = {0.5f, 0.02f, 2.0f, 0.3f, 0.9f, -0.2f};
    const double lm[3] = {log((double)0.5f), log((double)0.02f), 0.0}; /* 2.0 clamped to 1 */
    const double hm[3] = {(double)0.3f, (double)0.9f, (double)-0.2f};
    const double lmin = lm[1], hmin = hm[2];
    for (int k = 0; k < 3; k++) {
        const double want[F] = {1,
                                f0,
                                f1,
                                f2,
                                f3,
                                lm[k],
                                lmin,
                                f0 * lm[k],
                                f1 * lm[k],
                                f2 * lm[k],
                                f3 * lm[k],
                                hm[k],
                                hmin,
                                f0 * hm[k],
                                f1 * hm[k],
                                f2 * hm[k],
                                f3 * hm[k]};
        check_phi(d, m, 3, k, want);
    }
    /* clamps and non-finite margins: on x 0, -0.3 and NaN all give log(1e-4)
     * (the most careful), 3 is clamped to 1; on x_hat -2 and +inf give -1
     * (a non-finite margin is the most careful value, whatever its sign),
     * 1.5 gives 1. mse 0 and bpp below 1e-3 stay finite. */
    const double z[D] = {0.0, 0.0, 1.0, 1e-5};
    const double g0 = log(1e-3), g1 = log(1e-3), g2 = 1.0, g3 = log(1e-3);
    const float c[8] = {0.0f, -0.3f, NAN, 3.0f, -2.0f, INFINITY, 1.5f, 0.25f};
    const double L = log(1e-4);
    const double lc[4] = {L, L, L, 0.0}, hc[4] = {-1, -1, 1, 0.25};
    for (int k = 0; k < 4; k++) {
        const double want[F] = {1,     g0,     g1,         g2,         g3,         lc[k],
                                L,     g0 * lc[k], g1 * lc[k], g2 * lc[k], g3 * lc[k], hc[k],
                                -1,    g0 * hc[k], g1 * hc[k], g2 * hc[k], g3 * hc[k]};
        check_phi(z, c, 4, k, want);
    }
    /* +inf on x is as careful as NaN, -inf on x_hat is -1 */
    const float inf[2] = {INFINITY, -INFINITY};
    double ph[F];
    dj_jnd_image_result ri = result_of(inf, 1);
    dj_compress_alloc_features(z, &ri, 1, 0, ph);
    CHECK(ph[5] == L && ph[11] == -1);
    /* K = 1: the minima are the classifier's own */
    const float one[2] = {0.125f, -0.5f};
    double phi[F];
    dj_jnd_image_result r1 = result_of(one, 1);
    dj_compress_alloc_features(d, &r1, 1, 0, phi);
    CHECK(phi[5] == phi[6] && phi[11] == phi[12] && phi[11] == -0.5);
    CHECK_CLOSE(phi[5], log(0.125), 0, 1e-15);
    /* the reference above agrees on random inputs */
    dj_rng r;
    dj_rng_seed(&r, 5);
    for (int t = 0; t < 200; t++) {
        double dd[D] = {exp(8 * dj_rng_uniform(&r) - 3), exp(8 * dj_rng_uniform(&r) - 3), dj_rng_uniform(&r),
                        exp(4 * dj_rng_uniform(&r) - 3)};
        float mm[8];
        for (int j = 0; j < 8; j++) mm[j] = 2.4f * dj_rng_uniform(&r) - 1.2f;
        dj_jnd_image_result rr = result_of(mm, 4);
        for (int k = 0; k < 4; k++) { /* class counts 10, 16 (the most kept), 17 (none), 3 */
            static const int counts[4] = {10, 16, 17, 3};
            rr.classes[k] = counts[k];
            rr.before[k] = (int32_t)dj_rng_below(&r, (uint32_t)counts[k]);
            for (int j = 0; j < DJ_JND_RESULT_CLASSES; j++) rr.log_prob[k][j] = -15 * dj_rng_uniform(&r);
        }
        double want[F];
        ref_features(dd, &rr, 4, t % 4, want);
        check_phi_r(dd, &rr, 4, t % 4, want);
    }
}

static void test_features_classes(void) {
    /* K = 2 with 3 classes; classifier 0 says class 2, classifier 1 class 0.
     * log-probabilities: -20 is clamped to -12, NaN is -12 (no contender),
     * +0.25 (not a log-probability) is clamped to 0. */
    CHECK(dj_compress_alloc_classes(10) == 10 && dj_compress_alloc_classes(16) == 16);
    CHECK(dj_compress_alloc_classes(17) == 0 && dj_compress_alloc_classes(1) == 0 && dj_compress_alloc_classes(0) == 0);
    CHECK(dj_compress_alloc_count(10) == 47 && dj_compress_alloc_count(17) == 17 && dj_compress_alloc_count(3) == 26);
    const double d[D] = {4.0, 1.0, 0.5, 2.0};
    const double f0 = log(4.001), f3 = log(2.0);
    const float m[4] = {0.5f, 0.25f, 0.125f, -0.5f};
    dj_jnd_image_result r = result_of(m, 2);
    r.classes[0] = r.classes[1] = 3;
    r.before[0] = 2, r.before[1] = 0;
    const float lp0[3] = {-20.0f, -2.5f, -0.125f}, lp1[3] = {NAN, 0.25f, -3.0f};
    memcpy(r.log_prob[0], lp0, sizeof lp0), memcpy(r.log_prob[1], lp1, sizeof lp1);
    double phi[F];
    dj_compress_alloc_features(d, &r, 2, 0, phi);
    const double want0[9] = {-12, -2.5, -0.125, 0, 0, f0, 0, 0, f3};
    for (int j = 0; j < 9; j++) CHECK_CLOSE(phi[B + j], want0[j], 0, 1e-15);
    dj_compress_alloc_features(d, &r, 2, 1, phi);
    const double want1[9] = {-12, 0, -3, f0, 0, 0, f3, 0, 0};
    for (int j = 0; j < 9; j++) CHECK_CLOSE(phi[B + j], want1[j], 0, 1e-15);
    /* the base features do not depend on the class part */
    double base[F];
    dj_jnd_image_result r0 = result_of(m, 2);
    dj_compress_alloc_features(d, &r0, 2, 1, base);
    for (int j = 0; j < B; j++) CHECK(phi[j] == base[j]);
    /* a label outside the classes marks none */
    r.before[1] = -1;
    dj_compress_alloc_features(d, &r, 2, 1, phi);
    for (int j = 3; j < 9; j++) CHECK(phi[B + j] == 0);
}

static void test_predict(void) {
    dj_compress_calibration cal;
    memset(&cal, 0, sizeof cal);
    cal.classifiers = 2;
    const double d[D] = {30.0, 12.0, 0.1, 2.5};
    const float mm[4] = {0.7f, 0.05f, 0.4f, -0.1f};
    dj_jnd_image_result rm = result_of(mm, 2);
    const dj_jnd_image_result *m = &rm;
    /* only the intercept: sigmoid(1) and sigmoid(-2) */
    cal.w[0][0] = 1.0;
    cal.w[1][0] = -2.0;
    CHECK_CLOSE(dj_compress_alloc_predict(&cal, d, m), (ref_sigmoid(1) + ref_sigmoid(-2)) / 2, 0, 1e-14);
    /* every weight */
    dj_rng r;
    dj_rng_seed(&r, 3);
    for (int k = 0; k < 2; k++)
        for (int f = 0; f < F; f++) cal.w[k][f] = 0.4 * (dj_rng_uniform(&r) - 0.5);
    CHECK_CLOSE(dj_compress_alloc_predict(&cal, d, m), ref_predict(&cal, d, m), 0, 1e-13);
    /* with class features on one classifier (10 classes) and none on the other */
    rm.classes[0] = 10, rm.before[0] = 4;
    cal.classes[0] = 10;
    for (int j = 0; j < 10; j++) rm.log_prob[0][j] = -1.5f * j;
    CHECK_CLOSE(dj_compress_alloc_predict(&cal, d, m), ref_predict(&cal, d, m), 0, 1e-13);
    cal.classes[0] = 0;
    memset(&rm.classes, 0, sizeof rm.classes);
    /* saturated logits: exactly 0 and 1, no NaN */
    memset(cal.w, 0, sizeof cal.w);
    cal.w[0][0] = -800;
    cal.w[1][0] = 800;
    CHECK(dj_compress_alloc_predict(&cal, d, m) == 0.5);
    cal.w[0][0] = -800;
    cal.w[1][0] = -800;
    CHECK(dj_compress_alloc_predict(&cal, d, m) == 0.0);
}

/* ------------------------------------------------------------ lambda, pick */

static void test_lambda_and_pick(void) {
    CHECK(dj_compress_alloc_lambda(0) == 1.0);
    CHECK_CLOSE(dj_compress_alloc_lambda(40), 0.1, 0, 1e-15);
    CHECK_CLOSE(dj_compress_alloc_lambda(80), 0.01, 0, 1e-15);
    CHECK_CLOSE(dj_compress_alloc_lambda(100), 0.0031622776601683794, 0, 1e-15);
    CHECK_CLOSE(dj_compress_alloc_lambda(10), 0.56234132519034907, 0, 1e-15);
    for (int q = 1; q <= 100; q++) CHECK(dj_compress_alloc_lambda(q) < dj_compress_alloc_lambda(q - 1));

    /* (values exact in binary, so the ties are exact) */
    {   /* scores 0.125, 0.5, 0.5, 0.75: the last */
        const double p[4] = {0.25, 0.75, 1.0, 0.875}, b[4] = {0.5, 1.0, 2.0, 0.5};
        CHECK(dj_compress_alloc_pick(p, b, 4, 0.25) == 3);
        CHECK(dj_compress_alloc_pick(p, b, 3, 0.25) == 1); /* 1 and 2 tie at 0.5: the cheaper, 1 */
        CHECK(dj_compress_alloc_pick(p, b, 4, 0.0) == 2);  /* free bits: the largest p */
        CHECK(dj_compress_alloc_pick(p, b, 4, 1e3) == 3);  /* dear bits: the cheapest, 0 and 3, and of those the larger p */
        CHECK(dj_compress_alloc_pick(p, b, 3, 1e3) == 0);
        CHECK(dj_compress_alloc_pick(p, b, 1, 0.25) == 0);
    }
    {   /* a tie where the cheaper comes later: scores 0.5, 0.5 */
        const double p[2] = {1.0, 0.75}, b[2] = {2.0, 1.0};
        CHECK(dj_compress_alloc_pick(p, b, 2, 0.25) == 1);
        /* and earlier: scores 0.25, 0.25, 0 */
        const double p2[3] = {0.5, 0.75, 1.0}, b2[3] = {0.5, 1.0, 2.0};
        CHECK(dj_compress_alloc_pick(p2, b2, 3, 0.5) == 0);
    }
    {   /* a ladder of 10: the pick maximises p - lambda bpp (brute force) */
        dj_rng r;
        dj_rng_seed(&r, 17);
        for (int t = 0; t < 500; t++) {
            double p[10], b[10];
            for (int l = 0; l < 10; l++) {
                p[l] = dj_rng_uniform(&r);
                b[l] = 4 * dj_rng_uniform(&r);
            }
            double lambda = dj_compress_alloc_lambda((int)dj_rng_below(&r, 101));
            int got = dj_compress_alloc_pick(p, b, 10, lambda), best = 0;
            for (int l = 1; l < 10; l++)
                if (p[l] - lambda * b[l] > p[best] - lambda * b[best]) best = l;
            CHECK(got == best);
        }
    }
}

/* ------------------------------------------------------------ the fit */

/* Gauss-Jordan inverse of an n x n matrix (a is overwritten); 0 on success. */
static int invert(double *a, double *inv, int n) {
    for (int i = 0; i < n * n; i++) inv[i] = i % (n + 1) == 0;
    for (int c = 0; c < n; c++) {
        int piv = c;
        for (int r = c + 1; r < n; r++)
            if (fabs(a[r * n + c]) > fabs(a[piv * n + c])) piv = r;
        if (a[piv * n + c] == 0) return -1;
        for (int j = 0; j < n; j++) {
            double t = a[c * n + j];
            a[c * n + j] = a[piv * n + j], a[piv * n + j] = t;
            t = inv[c * n + j];
            inv[c * n + j] = inv[piv * n + j], inv[piv * n + j] = t;
        }
        double s = a[c * n + c];
        for (int j = 0; j < n; j++) a[c * n + j] /= s, inv[c * n + j] /= s;
        for (int r = 0; r < n; r++)
            if (r != c) {
                double m = a[r * n + c];
                for (int j = 0; j < n; j++) a[r * n + j] -= m * a[c * n + j], inv[r * n + j] -= m * inv[c * n + j];
            }
    }
    return 0;
}

/* Samples drawn from known weights: n samples, K classifiers of `classes`
 * classes (0: base features only). Distortion terms over the range coding
 * gives, margins and log-probabilities at random, kept ~ Bernoulli(sigmoid(
 * truth . phi)). img[i] = &res[i]. Returns the share kept. */
static double draw_samples(int n, int K, int classes, const double (*truth)[F], double *d, dj_jnd_image_result *res,
                           const dj_jnd_image_result **img, uint8_t *kept, uint64_t seed) {
    dj_rng r;
    dj_rng_seed(&r, seed);
    long nkept = 0;
    for (int i = 0; i < n; i++) {
        double *di = d + (size_t)i * D;
        di[0] = exp(7 * dj_rng_uniform(&r) - 2);          /* mse e^-2 .. e^5 */
        di[1] = di[0] * (0.1 + 0.9 * dj_rng_uniform(&r)); /* cmse below it   */
        di[2] = dj_rng_uniform(&r);                        /* over            */
        di[3] = exp(3 * dj_rng_uniform(&r) - 1.5);         /* bpp 0.22 .. 4.5 */
        dj_jnd_image_result *ri = &res[i];
        memset(ri, 0, sizeof *ri);
        for (int k = 0; k < K; k++) {
            ri->margin[k] = (float)exp(log(1e-3) * dj_rng_uniform(&r)); /* 1e-3 .. 1 */
            ri->hat_margin[k] = 2 * dj_rng_uniform(&r) - 1;
            ri->classes[k] = classes;
            if (classes) ri->before[k] = (int32_t)dj_rng_below(&r, (uint32_t)classes);
            for (int j = 0; j < classes; j++) ri->log_prob[k][j] = -14 * dj_rng_uniform(&r);
        }
        img[i] = ri;
        for (int k = 0; k < K; k++) {
            double ph[F], z = 0;
            ref_features(di, ri, K, k, ph);
            for (int f = 0; f < B + 3 * classes; f++) z += truth[k][f] * ph[f];
            kept[(size_t)i * K + k] = dj_rng_uniform(&r) < ref_sigmoid(z);
            nkept += kept[(size_t)i * K + k];
        }
    }
    return (double)nkept / ((double)n * K);
}

/* First-order optimality of mean log loss + 1e-3/2 |w|^2 for classifier k,
 * recomputed in long double: the largest gradient entry; *loss gets the
 * mean log loss. */
static double fit_gradient(const dj_compress_calibration *cal, int k, int n, int K, const double *d,
                           const dj_jnd_image_result *res, const uint8_t *kept, double *loss) {
    const int nf = B + 3 * ref_classes(cal->classes[k]);
    long double g[F] = {0}, l = 0;
    for (int i = 0; i < n; i++) {
        double x[F], z = 0;
        ref_features(d + (size_t)i * D, &res[i], K, k, x);
        for (int f = 0; f < nf; f++) z += cal->w[k][f] * x[f];
        const double p = ref_sigmoid(z), y = kept[(size_t)i * K + k];
        for (int f = 0; f < nf; f++) g[f] += (long double)(p - y) * x[f];
        l -= y ? logl(p) : logl(1 - p);
    }
    double gmax = 0;
    for (int f = 0; f < nf; f++) gmax = fmax(gmax, fabs((double)(g[f] / n) + 1e-3 * cal->w[k][f]));
    *loss = (double)(l / n);
    return gmax;
}

static void test_fit_synthetic(void) {
    enum { N = 20000, K = 2 };
    static const double truth[K][F] = {
        {0.8, -0.5, 0.3, -1.5, 0.6, 0.7, 0.3, 0.1, -0.1, 0.4, -0.2, 1.2, 0.5, -0.3, 0.2, -0.8, 0.3},
        {-0.4, 0.2, -0.6, 1.0, -0.3, -0.5, 0.4, -0.05, 0.15, -0.3, 0.25, 0.6, -0.7, 0.1, -0.2, 0.5, -0.4}};
    double *d = malloc((size_t)N * D * sizeof *d), *phi = malloc((size_t)N * B * sizeof *phi);
    dj_jnd_image_result *res = malloc((size_t)N * sizeof *res);
    const dj_jnd_image_result **img = malloc((size_t)N * sizeof *img);
    uint8_t *kept = malloc((size_t)N * K);
    if (!d || !phi || !res || !img || !kept) {
        CHECK(!"out of memory");
        free(d), free(phi), free(res), free(img), free(kept);
        return;
    }
    const double share = draw_samples(N, K, 0, truth, d, res, img, kept, 2024);
    dj_compress_calibration cal;
    memset(&cal, 0, sizeof cal);
    CHECK_OK(dj_compress_alloc_fit(N, K, d, img, kept, &cal));
    CHECK(cal.classifiers == K && cal.samples == N && cal.classes[0] == 0 && cal.classes[1] == 0);
    CHECK_CLOSE(cal.kept, share, 0, 1e-15);
    printf("synthetic fit: %d samples, labels kept %.3f\n", N, cal.kept);
    CHECK(cal.kept > 0.25 && cal.kept < 0.75); /* the draw is informative, not saturated */
    for (int k = 0; k < K; k++) {
        for (int i = 0; i < N; i++) {
            double x[F];
            ref_features(d + (size_t)i * D, &res[i], K, k, x);
            memcpy(phi + (size_t)i * B, x, B * sizeof *phi);
        }
        double loss = 0;
        const double gmax = fit_gradient(&cal, k, N, K, d, res, kept, &loss);
        CHECK_CLOSE(cal.loss[k], loss, 0, 1e-10);
        /* near the true weights: each within 4.5 standard errors, where
         * se_f = sqrt((Fisher^-1)_ff / N), the Fisher information at the truth */
        static double fisher[B * B], cov[B * B];
        memset(fisher, 0, sizeof fisher);
        for (int i = 0; i < N; i++) {
            const double *x = phi + (size_t)i * B;
            double zt = 0;
            for (int f = 0; f < B; f++) zt += truth[k][f] * x[f];
            const double pt = ref_sigmoid(zt);
            for (int a = 0; a < B; a++)
                for (int b = 0; b < B; b++) fisher[a * B + b] += pt * (1 - pt) * x[a] * x[b] / N;
        }
        CHECK(invert(fisher, cov, B) == 0);
        double zmax = 0, emax = 0;
        for (int f = 0; f < B; f++) {
            const double se = sqrt(cov[f * B + f] / N), e = fabs(cal.w[k][f] - truth[k][f]);
            CHECK(se > 0 && se < 0.5);
            zmax = fmax(zmax, e / se);
            emax = fmax(emax, e);
        }
        printf("classifier %d: |gradient| %.2g, loss %.4f, max |w - truth| %.3f (%.2f standard errors)\n", k, gmax,
               cal.loss[k], emax, zmax);
        CHECK(gmax <= 1e-9);
        CHECK(zmax <= 4.5);
    }
    /* n < 2, a non-finite or negative distortion term, bad K, a missing
     * result, results of different class counts: DJ_EINVAL */
    CHECK_FAILS(dj_compress_alloc_fit(1, K, d, img, kept, &cal), DJ_EINVAL, "at least 2");
    CHECK_FAILS(dj_compress_alloc_fit(0, K, d, img, kept, &cal), DJ_EINVAL, "at least 2");
    const double keep = d[7 * D + 2];
    d[7 * D + 2] = NAN;
    CHECK_FAILS(dj_compress_alloc_fit(N, K, d, img, kept, &cal), DJ_EINVAL, "sample 7");
    d[7 * D + 2] = INFINITY;
    CHECK_FAILS(dj_compress_alloc_fit(N, K, d, img, kept, &cal), DJ_EINVAL, "bad distortion term");
    d[7 * D + 2] = -0.5;
    CHECK_FAILS(dj_compress_alloc_fit(N, K, d, img, kept, &cal), DJ_EINVAL, "bad distortion term");
    d[7 * D + 2] = keep;
    CHECK_FAILS(dj_compress_alloc_fit(N, 0, d, img, kept, &cal), DJ_EINVAL, "bad arguments");
    CHECK_FAILS(dj_compress_alloc_fit(N, DJ_JND_MAX_CLASSIFIERS + 1, d, img, kept, &cal), DJ_EINVAL, "bad arguments");
    CHECK_FAILS(dj_compress_alloc_fit(N, K, NULL, img, kept, &cal), DJ_EINVAL, "bad arguments");
    CHECK_FAILS(dj_compress_alloc_fit(N, K, d, NULL, kept, &cal), DJ_EINVAL, "bad arguments");
    img[9] = NULL;
    CHECK_FAILS(dj_compress_alloc_fit(N, K, d, img, kept, &cal), DJ_EINVAL, "sample 9 has no JND result");
    img[9] = &res[9];
    res[11].classes[1] = 10;
    CHECK_FAILS(dj_compress_alloc_fit(N, K, d, img, kept, &cal), DJ_EINVAL, "classifier 1 has 10 classes on sample 11");
    res[11].classes[1] = 0;
    /* NaN margins are features' careful values, not an error; two samples
     * that keep every label fit (the L2 term keeps w finite) */
    float mn[2 * K];
    for (int j = 0; j < 2 * K; j++) mn[j] = NAN;
    dj_jnd_image_result rn = result_of(mn, K);
    const dj_jnd_image_result *two[2] = {&rn, &rn};
    uint8_t all[2 * K] = {1, 1, 1, 1};
    CHECK_OK(dj_compress_alloc_fit(2, K, d, two, all, &cal));
    for (int k = 0; k < K; k++)
        for (int f = 0; f < B; f++) CHECK(isfinite(cal.w[k][f]));
    CHECK(dj_compress_alloc_predict(&cal, d, &rn) > 0.9);
    free(d), free(phi), free(res), free(img), free(kept);
}

/* With class features (4 classes: 17 + 12 weights per classifier). The
 * indicator-times-term columns sum to the term's own column, so the
 * weights are not identified; the L2 term picks one solution. So this
 * checks what is: the fit is a stationary point of the regularised loss,
 * and its predictions are close to the truth's on fresh samples. */
static void test_fit_synthetic_classes(void) {
    enum { N = 20000, M = 4000, K = 2, C = 4 };
    static double truth[K][F];
    dj_rng r;
    dj_rng_seed(&r, 77);
    for (int k = 0; k < K; k++)
        for (int f = 0; f < B + 3 * C; f++) truth[k][f] = 0.6 * (dj_rng_uniform(&r) - 0.5);
    for (int j = 0; j < C; j++) truth[0][B + C + j] = 0.4 * (j - 1.5), truth[1][B + j] = 0.3 * (1.5 - j);
    double *d = malloc((size_t)(N + M) * D * sizeof *d);
    dj_jnd_image_result *res = malloc((size_t)(N + M) * sizeof *res);
    const dj_jnd_image_result **img = malloc((size_t)(N + M) * sizeof *img);
    uint8_t *kept = malloc((size_t)(N + M) * K);
    if (!d || !res || !img || !kept) {
        CHECK(!"out of memory");
        free(d), free(res), free(img), free(kept);
        return;
    }
    draw_samples(N, K, C, (const double(*)[F])truth, d, res, img, kept, 31);
    draw_samples(M, K, C, (const double(*)[F])truth, d + (size_t)N * D, res + N, img + N, kept + (size_t)N * K, 32);
    dj_compress_calibration cal;
    memset(&cal, 0, sizeof cal);
    CHECK_OK(dj_compress_alloc_fit(N, K, d, img, kept, &cal));
    CHECK(cal.classes[0] == C && cal.classes[1] == C);
    double worst = 0, mean = 0;
    for (int k = 0; k < K; k++) {
        double loss = 0;
        const double gmax = fit_gradient(&cal, k, N, K, d, res, kept, &loss);
        CHECK(gmax <= 1e-9);
        CHECK_CLOSE(cal.loss[k], loss, 0, 1e-10);
        for (int i = N; i < N + M; i++) {
            double x[F], zf = 0, zt = 0;
            ref_features(d + (size_t)i * D, &res[i], K, k, x);
            for (int f = 0; f < B + 3 * C; f++) zf += cal.w[k][f] * x[f], zt += truth[k][f] * x[f];
            const double e = fabs(ref_sigmoid(zf) - ref_sigmoid(zt));
            worst = fmax(worst, e), mean += e / (K * M);
        }
    }
    printf("synthetic fit with %d classes: mean |p - p_true| %.4f on fresh samples (worst %.3f)\n", C, mean, worst);
    CHECK(mean < 0.02);
    CHECK(worst < 0.2);
    free(d), free(res), free(img), free(kept);
}

/* ------------------------------------------------------------ the file */

static dj_compress_calibration sample_cal(void) {
    dj_compress_calibration c;
    memset(&c, 0, sizeof c);
    c.codec = DJ_CODEC_WEBP;
    c.classifiers = 3;
    snprintf(c.tags[0], sizeof c.tags[0], "alexnet");
    snprintf(c.tags[1], sizeof c.tags[1], "vgg \"11\" bn\\%s", "\xc3\xa9"); /* quotes, backslash, UTF-8 */
    snprintf(c.tags[2], sizeof c.tags[2], "%079d", 7);                      /* the longest tag that fits */
    c.strength = 0.75;
    c.images = 123;
    c.samples = 4503599627370497L; /* 2^52 + 1: exact in a double */
    c.kept = 0.8125;
    c.classes[0] = 10, c.classes[1] = 0, c.classes[2] = 16; /* CIFAR-10, none, the most */
    dj_rng r;
    dj_rng_seed(&r, 99);
    for (int k = 0; k < 3; k++) {
        c.loss[k] = 0.1 + dj_rng_uniform(&r) / 3;
        for (int f = 0; f < dj_compress_alloc_count(c.classes[k]); f++)
            c.w[k][f] = (dj_rng_uniform(&r) - 0.5) * pow(10, (int)dj_rng_below(&r, 12) - 6);
    }
    c.w[0][0] = 0.1; /* shortest form */
    c.w[0][1] = 1e-300;
    c.w[0][2] = 4.9406564584124654e-324; /* the smallest subnormal */
    c.w[0][3] = -1e6;                    /* the bound */
    c.w[0][4] = 0;
    return c;
}

static void test_calibration_round_trip(void) {
    char path[4200];
    snprintf(path, sizeof path, "%s/cal.json", tmpdir);
    dj_compress_calibration a = sample_cal(), b;
    CHECK_OK(dj_compress_calibration_write(&a, path));
    memset(&b, 0x5a, sizeof b);
    CHECK_OK(dj_compress_calibration_read(path, &b));
    CHECK(b.codec == a.codec && b.classifiers == a.classifiers && b.images == a.images && b.samples == a.samples);
    CHECK(b.strength == a.strength && b.kept == a.kept);
    CHECK(!memcmp(b.tags, a.tags, sizeof a.tags));
    CHECK(!memcmp(b.loss, a.loss, sizeof a.loss));
    CHECK(!memcmp(b.classes, a.classes, sizeof a.classes));
    CHECK(!memcmp(b.w, a.w, sizeof a.w)); /* bit for bit, the unused rows zero */
    /* the file is what the header promises: JSON, format, version, codec name */
    void *data = NULL;
    size_t size = 0;
    dj_json *root = NULL;
    CHECK_OK(dj_read_file(path, 1 << 20, &data, &size));
    CHECK_OK(dj_json_parse(data, size, path, 0, &root));
    if (root) {
        const dj_json *fmt = dj_json_get(root, "format"), *ver = dj_json_get(root, "version"),
                      *codec = dj_json_get(root, "codec"), *cs = dj_json_get(root, "classifiers");
        CHECK(fmt && fmt->type == DJ_JSON_STRING && !strcmp(fmt->string, "dmvjnd-alloc-calibration"));
        CHECK(ver && ver->type == DJ_JSON_NUMBER && ver->number == 2);
        CHECK(codec && codec->type == DJ_JSON_STRING && !strcmp(codec->string, "webp"));
        CHECK(cs && cs->type == DJ_JSON_ARRAY && cs->len == 3);
        /* each classifier names its features: 17 + 3 per class */
        static const size_t nf[3] = {47, 17, 65};
        static const char *last[3] = {"log_bpp*label9", "log_bpp*hm_k", "log_bpp*label15"};
        for (size_t k = 0; cs && cs->type == DJ_JSON_ARRAY && k < cs->len && k < 3; k++) {
            const dj_json *fs = dj_json_get(&cs->items[k], "features"), *w = dj_json_get(&cs->items[k], "w");
            CHECK(fs && fs->type == DJ_JSON_ARRAY && fs->len == nf[k]);
            CHECK(w && w->type == DJ_JSON_ARRAY && w->len == nf[k]);
            if (fs && fs->type == DJ_JSON_ARRAY && fs->len == nf[k]) {
                CHECK(!strcmp(fs->items[0].string, "1") && !strcmp(fs->items[nf[k] - 1].string, last[k]));
                if (k == 0)
                    CHECK(!strcmp(fs->items[17].string, "log_p0") && !strcmp(fs->items[27].string, "log_mse*label0"));
            }
        }
    }
    dj_json_free(root);
    free(data);
    /* writing what was read gives the same bytes */
    char again[4300];
    snprintf(again, sizeof again, "%s/again.json", tmpdir);
    CHECK_OK(dj_compress_calibration_write(&b, again));
    void *d1 = NULL, *d2 = NULL;
    size_t s1 = 0, s2 = 0;
    CHECK_OK(dj_read_file(path, 1 << 20, &d1, &s1));
    CHECK_OK(dj_read_file(again, 1 << 20, &d2, &s2));
    CHECK(d1 && d2 && s1 == s2 && !memcmp(d1, d2, s1));
    free(d1), free(d2);
    /* the shipped calibration reads (4 classifiers, JPEG, strength 1) */
    dj_compress_calibration s;
    if (access("models/jnd_v1.0.alloc-jpeg.json", R_OK) == 0) {
        CHECK_OK(dj_compress_calibration_read("models/jnd_v1.0.alloc-jpeg.json", &s));
        CHECK(s.codec == DJ_CODEC_JPEG && s.classifiers == 4 && s.strength == 1.0 && s.samples > s.images);
        for (int k = 0; k < s.classifiers; k++) CHECK(s.classes[k] == 10); /* CIFAR-10's classifiers */
    }
}

/* A calibration file's text with the pieces a bad-file test changes. */
typedef struct cal_text {
    const char *format;  /* "\"dmvjnd-alloc-calibration\"" */
    const char *version; /* "2" */
    const char *codec;   /* "\"jpeg\"", NULL: left out */
    int classifiers;     /* objects in "classifiers" */
    const char *classes; /* each classifier's "classes": "0" (base features) or "3" */
    int weights;         /* numbers in each "w" */
    int names;           /* names in each "features" */
    const char *name;    /* the last feature's name, NULL: the right one */
    const char *weight;  /* the first weight's token */
    const char *strength;
} cal_text;

static cal_text good_text(void) {
    cal_text t = {"\"dmvjnd-alloc-calibration\"", "2", "\"jpeg\"", 2, "0", B, B, NULL, "0.5", "1"};
    return t;
}

static void write_text(const char *path, const cal_text *t, size_t cut) {
    static char buf[1 << 16];
    int n = snprintf(buf, sizeof buf, "{\"format\": %s, \"version\": %s, ", t->format, t->version);
    if (t->codec) n += snprintf(buf + n, sizeof buf - n, "\"codec\": %s, ", t->codec);
    n += snprintf(buf + n, sizeof buf - n,
                  "\"strength\": %s, \"images\": 10, \"samples\": 200, \"kept\": 0.75, \"classifiers\": [",
                  t->strength);
    static const char *base[B] = {"1",         "log_mse",      "log_cmse",      "over",         "log_bpp",
                                  "lm_k",      "lm_min",       "log_mse*lm_k",  "log_cmse*lm_k", "over*lm_k",
                                  "log_bpp*lm_k", "hm_k",      "hm_min",        "log_mse*hm_k", "log_cmse*hm_k",
                                  "over*hm_k", "log_bpp*hm_k"};
    static const char *cls[9] = {"log_p0",         "log_p1",         "log_p2",
                                 "log_mse*label0", "log_mse*label1", "log_mse*label2",
                                 "log_bpp*label0", "log_bpp*label1", "log_bpp*label2"};
    for (int k = 0; k < t->classifiers; k++) {
        n += snprintf(buf + n, sizeof buf - n, "%s{\"tag\": \"c%d\", \"classes\": %s, \"loss\": 0.25, \"features\": [",
                      k ? ", " : "", k, t->classes);
        for (int f = 0; f < t->names; f++) {
            const char *nm = f == t->names - 1 && t->name ? t->name : f < B ? base[f] : f < B + 9 ? cls[f - B] : "x";
            n += snprintf(buf + n, sizeof buf - n, "%s\"%s\"", f ? ", " : "", nm);
        }
        n += snprintf(buf + n, sizeof buf - n, "], \"w\": [");
        for (int f = 0; f < t->weights; f++)
            n += snprintf(buf + n, sizeof buf - n, "%s%s", f ? ", " : "", f ? "-0.125" : t->weight);
        n += snprintf(buf + n, sizeof buf - n, "]}");
    }
    n += snprintf(buf + n, sizeof buf - n, "]}\n");
    FILE *f = fopen(path, "wb");
    if (!f) {
        CHECK(!"cannot write a test file");
        return;
    }
    fwrite(buf, 1, cut && cut < (size_t)n ? cut : (size_t)n, f);
    fclose(f);
}

static int zeroed(const dj_compress_calibration *c) {
    static const dj_compress_calibration z;
    return !memcmp(c, &z, sizeof z);
}

/* read must fail with `code`, naming the file and `what`, leaving cal zeroed. */
#define CHECK_BAD(t, cut, code, what)                                                                  \
    do {                                                                                               \
        write_text(path, &(t), (cut));                                                                 \
        memset(&cal, 0x5a, sizeof cal);                                                                \
        CHECK_FAILS(dj_compress_calibration_read(path, &cal), (code), (what));                          \
        CHECK(strstr(dj_last_error(), path) != NULL);                                                  \
        CHECK(zeroed(&cal));                                                                           \
    } while (0)

static void test_calibration_bad_files(void) {
    char path[4200];
    snprintf(path, sizeof path, "%s/bad.json", tmpdir);
    dj_compress_calibration cal;
    /* the template itself reads */
    cal_text t = good_text();
    write_text(path, &t, 0);
    CHECK_OK(dj_compress_calibration_read(path, &cal));
    CHECK(cal.classifiers == 2 && cal.codec == DJ_CODEC_JPEG && cal.w[1][0] == 0.5 && cal.w[1][16] == -0.125);
    CHECK(!strcmp(cal.tags[1], "c1") && cal.images == 10 && cal.samples == 200 && cal.kept == 0.75);
    /* missing */
    char missing[4300];
    snprintf(missing, sizeof missing, "%s/missing.json", tmpdir);
    memset(&cal, 0x5a, sizeof cal);
    CHECK_FAILS(dj_compress_calibration_read(missing, &cal), DJ_EIO, missing);
    CHECK(zeroed(&cal));
    /* truncated JSON, at several places */
    const size_t cuts[4] = {1, 40, 300, 600};
    for (int c = 0; c < 4; c++) CHECK_BAD(t, cuts[c], DJ_EFORMAT, "invalid JSON");
    /* an empty file, and JSON that is not an object */
    FILE *f = fopen(path, "wb");
    if (f) fclose(f);
    CHECK_FAILS(dj_compress_calibration_read(path, &cal), DJ_EFORMAT, path);
    f = fopen(path, "wb");
    if (f) fputs("[1, 2]", f), fclose(f);
    CHECK_FAILS(dj_compress_calibration_read(path, &cal), DJ_EFORMAT, "not a JSON object");
    CHECK(zeroed(&cal));
    /* each field */
    cal_text b = good_text();
    b.format = "\"dmvjnd-alloc-calibratio\"";
    CHECK_BAD(b, 0, DJ_EFORMAT, "format \"dmvjnd-alloc-calibratio\"");
    b = good_text(), b.format = "7";
    CHECK_BAD(b, 0, DJ_EFORMAT, "\"format\" must be a string");
    b = good_text(), b.version = "1"; /* the margins-only features of earlier builds */
    CHECK_BAD(b, 0, DJ_EFORMAT,
              "version 1; this build reads version 2 (fit a new one with dmvjnd compress --calibrate)");
    b = good_text(), b.version = "3";
    CHECK_BAD(b, 0, DJ_EFORMAT, "version 3");
    b = good_text(), b.version = "0";
    CHECK_BAD(b, 0, DJ_EFORMAT, "\"version\"");
    b = good_text(), b.version = "\"2\"";
    CHECK_BAD(b, 0, DJ_EFORMAT, "\"version\"");
    b = good_text(), b.codec = NULL;
    CHECK_BAD(b, 0, DJ_EFORMAT, "\"codec\"");
    b = good_text(), b.codec = "\"avif\"";
    CHECK_BAD(b, 0, DJ_EFORMAT, "codec \"avif\"");
    b = good_text(), b.codec = "\"JPEG\"";
    CHECK_BAD(b, 0, DJ_EFORMAT, "codec \"JPEG\"");
    b = good_text(), b.strength = "0";
    CHECK_BAD(b, 0, DJ_EFORMAT, "\"strength\"");
    b = good_text(), b.strength = "1.5";
    CHECK_BAD(b, 0, DJ_EFORMAT, "\"strength\"");
    b = good_text(), b.weights = B - 1;
    CHECK_BAD(b, 0, DJ_EFORMAT, "classifiers[0].w must hold 17 numbers");
    b = good_text(), b.weights = B + 1;
    CHECK_BAD(b, 0, DJ_EFORMAT, "classifiers[0].w must hold 17 numbers");
    /* class features: 3 classes are 26 names and weights, in this build's order */
    b = good_text(), b.classes = "3", b.names = b.weights = B + 9;
    write_text(path, &b, 0);
    CHECK_OK(dj_compress_calibration_read(path, &cal));
    CHECK(cal.classes[0] == 3 && cal.classes[1] == 3 && cal.w[1][25] == -0.125);
    b.weights = B;
    CHECK_BAD(b, 0, DJ_EFORMAT, "classifiers[0].w must hold 26 numbers");
    b.weights = B + 9, b.names = B;
    CHECK_BAD(b, 0, DJ_EFORMAT, "classifiers[0].features must list 26 names");
    b.names = B + 9, b.name = "log_mse*label2";
    CHECK_BAD(b, 0, DJ_EFORMAT, "classifiers[0].features[25] is not \"log_bpp*label2\"");
    b = good_text(), b.name = "log_bpp*lm_k";
    CHECK_BAD(b, 0, DJ_EFORMAT, "features[16] is not \"log_bpp*hm_k\"");
    b = good_text(), b.classes = "1";
    CHECK_BAD(b, 0, DJ_EFORMAT, "classes must be 0 or a whole number in 2..16");
    b = good_text(), b.classes = "2.5";
    CHECK_BAD(b, 0, DJ_EFORMAT, "classes must be 0 or a whole number in 2..16");
    b = good_text(), b.classes = "17";
    CHECK_BAD(b, 0, DJ_EFORMAT, "\"classes\" must be a number in [0, 16]");
    b = good_text(), b.classes = "\"3\"";
    CHECK_BAD(b, 0, DJ_EFORMAT, "\"classes\"");
    b = good_text(), b.weight = "\"0.5\"";
    CHECK_BAD(b, 0, DJ_EFORMAT, "classifiers[0].w[0] is not a finite weight");
    b = good_text(), b.weight = "null";
    CHECK_BAD(b, 0, DJ_EFORMAT, "w[0] is not a finite weight");
    b = good_text(), b.weight = "1e7";
    CHECK_BAD(b, 0, DJ_EFORMAT, "w[0] is not a finite weight");
    b = good_text(), b.weight = "1e999"; /* overflows a double: the parser's error */
    CHECK_BAD(b, 0, DJ_EFORMAT, "invalid JSON");
    b = good_text(), b.classifiers = 0;
    CHECK_BAD(b, 0, DJ_EFORMAT, "\"classifiers\" must be an array of 1..8");
    b = good_text(), b.classifiers = DJ_JND_MAX_CLASSIFIERS;
    write_text(path, &b, 0);
    CHECK_OK(dj_compress_calibration_read(path, &cal));
    CHECK(cal.classifiers == DJ_JND_MAX_CLASSIFIERS);
    b.classifiers = DJ_JND_MAX_CLASSIFIERS + 1;
    CHECK_BAD(b, 0, DJ_EFORMAT, "\"classifiers\" must be an array of 1..8");
    /* a file over the size limit */
    f = fopen(path, "wb");
    if (f) {
        fputc('{', f);
        for (int i = 0; i < (1 << 20); i++) fputc(' ', f);
        fputc('}', f);
        fclose(f);
    }
    CHECK_FAILS(dj_compress_calibration_read(path, &cal), DJ_EFORMAT, path);
    CHECK(zeroed(&cal));
}

static void test_calibration_path(void) {
    char out[4096];
    CHECK_OK(dj_compress_calibration_path("models/jnd_v1.0.safetensors", DJ_CODEC_WEBP, out, sizeof out));
    CHECK(!strcmp(out, "models/jnd_v1.0.alloc-webp.json"));
    CHECK_OK(dj_compress_calibration_path("models/jnd_v1.0.safetensors", DJ_CODEC_JPEG, out, sizeof out));
    CHECK(!strcmp(out, "models/jnd_v1.0.alloc-jpeg.json"));
    CHECK_OK(dj_compress_calibration_path("/x/y/model.bin", DJ_CODEC_JPEG, out, sizeof out));
    CHECK(!strcmp(out, "/x/y/model.bin.alloc-jpeg.json"));
    CHECK_OK(dj_compress_calibration_path("a.safetensors.safetensors", DJ_CODEC_JPEG, out, sizeof out));
    CHECK(!strcmp(out, "a.safetensors.alloc-jpeg.json")); /* one extension off */
    CHECK_OK(dj_compress_calibration_path("safetensors", DJ_CODEC_JPEG, out, sizeof out));
    CHECK(!strcmp(out, "safetensors.alloc-jpeg.json"));
    /* "m.alloc-jpeg.json" is 17 bytes: a capacity of 18 fits, 17 does not */
    CHECK_OK(dj_compress_calibration_path("m.safetensors", DJ_CODEC_JPEG, out, 18));
    CHECK(!strcmp(out, "m.alloc-jpeg.json"));
    CHECK_FAILS(dj_compress_calibration_path("m.safetensors", DJ_CODEC_JPEG, out, 17), DJ_EINVAL, "too long");
    CHECK_FAILS(dj_compress_calibration_path("models/jnd_v1.0.safetensors", DJ_CODEC_WEBP, out, 10), DJ_EINVAL,
                "models/jnd_v1.0.safetensors: too long");
    CHECK_FAILS(dj_compress_calibration_path(NULL, DJ_CODEC_JPEG, out, sizeof out), DJ_EINVAL, "bad arguments");
    CHECK_FAILS(dj_compress_calibration_path("m.safetensors", DJ_CODEC_JPEG, NULL, 0), DJ_EINVAL, "bad arguments");
}

static void test_calibration_check(void) {
    CHECK_FAILS(dj_compress_calibration_check(NULL, DJ_CODEC_JPEG, NULL, 1.0), DJ_EINVAL, "needs a calibration");
    if (!have_model) SKIP("the shipped jnd_v1.0.safetensors not found");
    dj_jnd_generator *gen = NULL;
    CHECK_OK(dj_jnd_generator_create(&gen, jnd_model, NULL, 0));
    if (!gen) return;
    const int K = dj_jnd_generator_count(gen);
    CHECK(K >= 2 && K <= DJ_JND_MAX_CLASSIFIERS);
    dj_compress_calibration cal;
    memset(&cal, 0, sizeof cal);
    cal.codec = DJ_CODEC_JPEG;
    cal.classifiers = K;
    cal.strength = 1.0;
    for (int k = 0; k < K; k++) snprintf(cal.tags[k], sizeof cal.tags[k], "%s", dj_jnd_generator_tag(gen, k));
    CHECK_OK(dj_compress_calibration_check(&cal, DJ_CODEC_JPEG, gen, 1.0));
    CHECK_FAILS(dj_compress_calibration_check(&cal, DJ_CODEC_WEBP, gen, 1.0), DJ_EINVAL,
                "fitted for jpeg, not webp");
    CHECK_FAILS(dj_compress_calibration_check(&cal, DJ_CODEC_JPEG, gen, 0.5), DJ_EINVAL, "strength 1, not 0.5");
    cal.classifiers = K - 1;
    CHECK_FAILS(dj_compress_calibration_check(&cal, DJ_CODEC_JPEG, gen, 1.0), DJ_EINVAL, "classifiers");
    cal.classifiers = K;
    snprintf(cal.tags[1], sizeof cal.tags[1], "%s", "lenet");
    CHECK_FAILS(dj_compress_calibration_check(&cal, DJ_CODEC_JPEG, gen, 1.0), DJ_EINVAL, "classifier 1 is lenet");
    /* the tags in another order */
    for (int k = 0; k < K; k++)
        snprintf(cal.tags[k], sizeof cal.tags[k], "%s", dj_jnd_generator_tag(gen, K - 1 - k));
    CHECK(dj_compress_calibration_check(&cal, DJ_CODEC_JPEG, gen, 1.0) == DJ_EINVAL);
    /* the shipped calibration fits the shipped model */
    if (access("models/jnd_v1.0.alloc-jpeg.json", R_OK) == 0) {
        CHECK_OK(dj_compress_calibration_read("models/jnd_v1.0.alloc-jpeg.json", &cal));
        CHECK_OK(dj_compress_calibration_check(&cal, DJ_CODEC_JPEG, gen, 1.0));
    }
    dj_jnd_generator_destroy(gen);
}

/* ------------------------------------------------ CIFAR-10, the library */

#define GRID 3
static const int grid[GRID] = {30, 60, 90};
enum { NTRAIN = 30, NTEST = 30 };

typedef struct seen {
    int q[GRID][NTEST];     /* jnd-alloc's coded quality per grid point and image */
    size_t payload[GRID][NTEST];
    int calls;
} seen;

static int on_coded(const dj_compress_point *pt, int image, int coded_quality, const dj_coded *c,
                    const uint8_t *decoded, int h, int w, void *user) {
    seen *s = user;
    if (strcmp(pt->method, "jnd-alloc")) return 0;
    for (int g = 0; g < GRID; g++)
        if (pt->quality == grid[g] && image >= 0 && image < NTEST) {
            s->q[g][image] = coded_quality;
            s->payload[g][image] = c->payload;
            s->calls++;
        }
    return 0;
}

static void test_calibrate_and_evaluate(void) {
    if (!have_data) SKIP("CIFAR-10 not found (set DMVJND_DATA)");
    if (!have_model) SKIP("the shipped jnd_v1.0.safetensors not found");
    dj_cifar10 tr, te;
    dj_cifar10_opts otr = {0, NTRAIN, 0}, ote = {0, NTEST, 0};
    memset(&tr, 0, sizeof tr), memset(&te, 0, sizeof te);
    CHECK_OK(dj_cifar10_load(&tr, NULL, "train", &otr));
    CHECK_OK(dj_cifar10_load(&te, NULL, "test", &ote));
    dj_jnd_generator *gen = NULL;
    CHECK_OK(dj_jnd_generator_create(&gen, jnd_model, NULL, 0));
    if (!gen || tr.n != NTRAIN || te.n != NTEST) {
        dj_jnd_generator_destroy(gen);
        dj_cifar10_free(&tr), dj_cifar10_free(&te);
        return;
    }
    const int K = dj_jnd_generator_count(gen);
    const uint8_t *rtr[NTRAIN], *rte[NTEST];
    int hs[NTEST > NTRAIN ? NTEST : NTRAIN], ws[NTEST > NTRAIN ? NTEST : NTRAIN];
    for (int i = 0; i < NTRAIN; i++) rtr[i] = tr.pixels + (size_t)i * 3072;
    for (int i = 0; i < NTEST; i++) rte[i] = te.pixels + (size_t)i * 3072;
    for (int i = 0; i < (NTEST > NTRAIN ? NTEST : NTRAIN); i++) hs[i] = ws[i] = 32;
    dj_compress_machines mach = {gen, NULL, 0};
    dj_compress_images itr = {NTRAIN, rtr, hs, ws, tr.labels}, ite = {NTEST, rte, hs, ws, te.labels};
    dj_compress_config cfg = dj_compress_defaults();
    cfg.ladder_step = 10; /* 10, 20, ..., 100 (+ 98 for the fit, + the grid for the pick) */

    dj_compress_calibration cal;
    CHECK_OK(dj_compress_calibrate(&cfg, &mach, &itr, NULL, NULL, &cal));
    int tl[DJ_COMPRESS_MAX_LADDER];
    const int top[2] = {98, 100};
    const int ntl = dj_compress_ladder(&cfg, top, 2, tl);
    CHECK(ntl == 11);
    CHECK(cal.codec == DJ_CODEC_JPEG && cal.classifiers == K && cal.images == NTRAIN && cal.strength == 1.0);
    CHECK(cal.samples == (long)NTRAIN * ntl);
    CHECK(cal.kept > 0.5 && cal.kept <= 1.0);
    for (int k = 0; k < K; k++) {
        CHECK(!strcmp(cal.tags[k], dj_jnd_generator_tag(gen, k)));
        CHECK(isfinite(cal.loss[k]) && cal.loss[k] >= 0 && cal.loss[k] < log(2.0));
    }
    printf("calibration on %d training images: %ld samples, labels kept %.4f\n", NTRAIN, cal.samples, cal.kept);
    CHECK_OK(dj_compress_calibration_check(&cal, DJ_CODEC_JPEG, gen, 1.0));

    /* evaluate refuses jnd-alloc without a calibration, or one for another codec */
    const char *methods[2] = {"plain", "jnd-alloc"};
    dj_compress_result res;
    memset(&res, 0, sizeof res);
    CHECK_FAILS(dj_compress_evaluate(&cfg, &mach, &ite, methods, 2, grid, GRID, NULL, NULL, NULL, &res), DJ_EINVAL,
                "needs a calibration");
    dj_compress_calibration other = cal;
    other.codec = DJ_CODEC_WEBP;
    cfg.calibration = &other;
    CHECK_FAILS(dj_compress_evaluate(&cfg, &mach, &ite, methods, 2, grid, GRID, NULL, NULL, NULL, &res), DJ_EINVAL,
                "fitted for webp");

    cfg.calibration = &cal;
    seen s;
    memset(&s, 0, sizeof s);
    CHECK_OK(dj_compress_evaluate(&cfg, &mach, &ite, methods, 2, grid, GRID, on_coded, NULL, &s, &res));
    CHECK(res.npoints == 2 * GRID);
    CHECK(s.calls == GRID * NTEST);
    int ladder[DJ_COMPRESS_MAX_LADDER];
    const int nl = dj_compress_ladder(&cfg, grid, GRID, ladder);
    const dj_compress_point *pa[GRID] = {0}, *pp[GRID] = {0};
    for (int j = 0; j < res.npoints; j++)
        for (int g = 0; g < GRID; g++)
            if (res.points[j].quality == grid[g]) {
                if (!strcmp(res.points[j].method, "jnd-alloc")) pa[g] = &res.points[j];
                if (!strcmp(res.points[j].method, "plain")) pp[g] = &res.points[j];
            }

    /* each image's choice recomputed here: the generator's margins, cam and
     * e (-> the jnd budget) on the test images, every ladder quality coded
     * plain with the codec, the distortion and prediction by the loops at
     * the top of this file, argmax of p - lambda bpp with ties to the cheaper */
    float *e = malloc((size_t)NTEST * 3072 * sizeof *e), *cam = malloc((size_t)NTEST * 1024 * sizeof *cam);
    dj_jnd_image_result *jr = malloc(NTEST * sizeof *jr);
    uint8_t *x = malloc((size_t)NTEST * 3072);
    double *p = malloc((size_t)NTEST * nl * sizeof *p), *bpp = malloc((size_t)NTEST * nl * sizeof *bpp);
    if (!e || !cam || !jr || !x || !p || !bpp) CHECK(!"out of memory");
    int ok = e && cam && jr && x && p && bpp;
    if (ok) {
        memcpy(x, te.pixels, (size_t)NTEST * 3072);
        CHECK_OK(dj_jnd_generator_run(gen, x, NTEST, 32, 32, NULL, e, cam, jr));
    }
    for (int i = 0; ok && i < NTEST; i++) {
        float jnd[3072], sb[3072];
        CHECK_OK(dj_compress_budgets(&cfg, rte[i], 32, 32, e + (size_t)i * 3072, jnd, NULL, NULL));
        for (int v = 0; v < 3072; v++) sb[v] = (float)(cfg.strength * jnd[v]);
        for (int l = 0; l < nl; l++) {
            dj_coded cd = {0};
            uint8_t *dec = NULL;
            int h = 0, w = 0;
            double d[D];
            CHECK_OK(dj_jpeg_encode(rte[i], 32, 32, ladder[l], &cd));
            CHECK_OK(dj_jpeg_decode(cd.data, cd.size, &dec, &h, &w));
            if (dec) ref_distortion(rte[i], dec, sb, cam + (size_t)i * 1024, 32, 32, cd.payload, d);
            p[(size_t)i * nl + l] = dec ? ref_predict(&cal, d, &jr[i]) : NAN;
            bpp[(size_t)i * nl + l] = dec ? d[3] : NAN;
            free(dec);
            dj_coded_free(&cd);
        }
    }
    int mismatch = 0;
    for (int g = 0; g < GRID; g++) {
        CHECK(pa[g] != NULL && pp[g] != NULL);
        if (!pa[g] || !pp[g]) continue;
        CHECK(pa[g]->images == NTEST);
        const double lambda = pow(10.0, -grid[g] / 40.0);
        double sum_payload = 0, sum_q = 0;
        for (int i = 0; i < NTEST; i++) {
            int on_ladder = 0;
            for (int l = 0; l < nl; l++) on_ladder += s.q[g][i] == ladder[l];
            CHECK(on_ladder == 1);
            sum_payload += (double)s.payload[g][i];
            sum_q += s.q[g][i];
            if (!ok) continue;
            int best = 0;
            for (int l = 1; l < nl; l++) {
                const double a = p[(size_t)i * nl + l] - lambda * bpp[(size_t)i * nl + l];
                const double b = p[(size_t)i * nl + best] - lambda * bpp[(size_t)i * nl + best];
                if (a > b || (a == b && bpp[(size_t)i * nl + l] < bpp[(size_t)i * nl + best])) best = l;
            }
            int got = -1;
            for (int l = 0; l < nl; l++)
                if (ladder[l] == s.q[g][i]) got = l;
            if (got != best) {
                /* only a near-tie (the two computations of p may differ in
                 * the last bits) may go either way */
                const double sb = p[(size_t)i * nl + best] - lambda * bpp[(size_t)i * nl + best];
                const double sg = got < 0 ? -INFINITY : p[(size_t)i * nl + got] - lambda * bpp[(size_t)i * nl + got];
                fprintf(stderr, "image %d at q%d: jnd-alloc coded at %d, expected %d (score %.17g vs %.17g)\n", i,
                        grid[g], s.q[g][i], ladder[best], sg, sb);
                mismatch += !(sb - sg <= 1e-12);
            }
            /* the payload it reports is that of the plain coding at the quality chosen */
            if (got >= 0) CHECK_CLOSE(8.0 * s.payload[g][i] / 1024, bpp[(size_t)i * nl + got], 0, 1e-12);
        }
        CHECK_CLOSE(pa[g]->bpp, 8 * sum_payload / (NTEST * 1024.0), 1e-12, 1e-12);
        CHECK_CLOSE(pa[g]->mean_q, sum_q / NTEST, 1e-12, 1e-12);
        CHECK(pa[g]->rca_mean >= 0 && pa[g]->rca_mean <= 1);
        printf("q%d: plain %.3f bpp RCA %.3f, jnd-alloc %.3f bpp RCA %.3f (mean quality %.1f)\n", grid[g],
               pp[g]->bpp, pp[g]->rca_mean, pa[g]->bpp, pa[g]->rca_mean, pa[g]->mean_q);
        /* within the range plain spans over the ladder */
        if (ok) {
            double lo = 0, hi = 0;
            for (int i = 0; i < NTEST; i++) lo += bpp[(size_t)i * nl], hi += bpp[(size_t)i * nl + nl - 1];
            CHECK(pa[g]->bpp >= lo / NTEST - 1e-12 && pa[g]->bpp <= hi / NTEST + 1e-12);
        }
        /* a lower price of bits never buys fewer: bpp non-decreasing in q */
        if (g > 0 && pa[g - 1]) CHECK(pa[g]->bpp >= pa[g - 1]->bpp);
    }
    CHECK(mismatch == 0);
    /* the plain points are plain at the grid quality */
    for (int g = 0; g < GRID && ok; g++) {
        if (!pp[g]) continue;
        double sum = 0;
        for (int i = 0; i < NTEST; i++) {
            dj_coded cd = {0};
            CHECK_OK(dj_jpeg_encode(rte[i], 32, 32, grid[g], &cd));
            sum += (double)cd.payload;
            dj_coded_free(&cd);
        }
        CHECK_CLOSE(pp[g]->bpp, 8 * sum / (NTEST * 1024.0), 1e-12, 1e-12);
    }
    free(e), free(cam), free(jr), free(x), free(p), free(bpp);
    dj_compress_result_free(&res);
    dj_jnd_generator_destroy(gen);
    dj_cifar10_free(&tr), dj_cifar10_free(&te);
}

/* ------------------------------------------------------------ the CLI */

#define RUNX(code, needle, ...)                                                                        \
    do {                                                                                               \
        snprintf(a, sizeof a, __VA_ARGS__);                                                            \
        CHECK(cli_exits(bin, tmpdir, code, needle, a));                                                \
    } while (0)

static void test_cli(void) {
    if (!have_data) SKIP("CIFAR-10 not found (set DMVJND_DATA)");
    if (!have_model || access(bin, X_OK)) SKIP("the CLI or the shipped jnd_v1.0.safetensors not found");
    char a[8192], cal[4200], missing[4200], bad[4200];
    snprintf(cal, sizeof cal, "%s/cli-cal.json", tmpdir);
    snprintf(missing, sizeof missing, "%s/missing.json", tmpdir);
    snprintf(bad, sizeof bad, "%s/bad-cal.json", tmpdir);
    /* usage errors first (cheap) */
    RUNX(2, "--calibrate FILE fits and writes the calibration only",
         "compress --split train --limit 20 --calibrate %s --out %s/o", cal, tmpdir);
    RUNX(2, "--calibrate FILE fits and writes the calibration only",
         "compress --split train --limit 20 --calibrate %s --methods plain", cal);
    CHECK(access(cal, F_OK) != 0);
    /* a missing or bad calibration asked for by name: exit 3 naming the file */
    RUNX(3, missing, "compress --split test --limit 5 --methods jnd-alloc --calibration %s --out %s/o", missing,
         tmpdir);
    FILE *f = fopen(bad, "wb");
    if (f) fputs("{\"format\": \"something-else\"}", f), fclose(f);
    RUNX(3, bad, "compress --split test --limit 5 --methods plain,jnd-alloc --calibration %s --out %s/o", bad, tmpdir);
    /* a calibration of the earlier, margins-only format: refused, saying what to do */
    f = fopen(bad, "wb");
    if (f) fputs("{\"format\": \"dmvjnd-alloc-calibration\", \"version\": 1}", f), fclose(f);
    RUNX(3, "fit a new one with dmvjnd compress --calibrate",
         "compress --split test --limit 5 --methods plain,jnd-alloc --calibration %s --out %s/o", bad, tmpdir);
    /* WebP has no calibration beside the shipped model: asked for by name it
     * is an error; in the default method list jnd-alloc is left out */
    char beside[4200];
    if (!dj_compress_calibration_path(jnd_model, DJ_CODEC_WEBP, beside, sizeof beside) && access(beside, F_OK)) {
        RUNX(3, "alloc-webp.json", "compress --split test --limit 5 --codec webp --methods plain,jnd-alloc --out %s/w",
             tmpdir);
        RUNX(0, "jnd-alloc left out",
             "compress --split test --limit 3 --codec webp --qualities 50 --out %s/w --no-plot --threads 2", tmpdir);
    }

    /* fit, then measure with it */
    RUNX(0, cal, "compress --split train --limit 20 --calibrate %s", cal);
    dj_compress_calibration c;
    CHECK_OK(dj_compress_calibration_read(cal, &c));
    CHECK(c.codec == DJ_CODEC_JPEG && c.images == 20 && c.classifiers >= 2 && c.strength == 1.0);
    CHECK(c.samples == 20L * 21); /* ladder 5, 10, ..., 100 and 98 */
    RUNX(2, "strength", "compress --split test --limit 5 --strength 0.5 --methods plain,jnd-alloc --calibration %s "
                        "--out %s/o",
         cal, tmpdir);
    RUNX(0, "jnd-alloc",
         "compress --split test --limit 20 --methods plain,jnd-alloc --calibration %s --qualities 50,90 --out %s/o "
         "--no-plot",
         cal, tmpdir);
    char path[4300];
    snprintf(path, sizeof path, "%s/o/report.json", tmpdir);
    void *data = NULL;
    size_t size = 0;
    dj_json *root = NULL;
    CHECK_OK(dj_read_file(path, 1 << 22, &data, &size));
    if (data) CHECK_OK(dj_json_parse(data, size, path, 0, &root));
    const dj_json *pts = root ? dj_json_get(root, "points") : NULL;
    int alloc_points = 0, plain_points = 0;
    for (size_t i = 0; pts && i < pts->len; i++) {
        const dj_json *m = dj_json_get(&pts->items[i], "method"), *q = dj_json_get(&pts->items[i], "quality");
        const dj_json *bpp = dj_json_get(&pts->items[i], "bpp");
        if (!m || !q || m->type != DJ_JSON_STRING) continue;
        if (!strcmp(m->string, "jnd-alloc")) {
            alloc_points++;
            CHECK(q->number == 50 || q->number == 90);
            CHECK(bpp && bpp->type == DJ_JSON_NUMBER && bpp->number > 0);
        }
        plain_points += !strcmp(m->string, "plain");
    }
    CHECK(alloc_points == 2 && plain_points == 2);
    dj_json_free(root);
    free(data);
    /* the coded files of jnd-alloc are there */
    snprintf(path, sizeof path, "%s/o/coded", tmpdir);
    struct stat st;
    CHECK(stat(path, &st) == 0 && S_ISDIR(st.st_mode));
}

int main(void) {
    const char *b = getenv("BUILD");
    snprintf(bin, sizeof bin, "%s/dmvjnd", b && *b ? b : "build");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    char dir[4200];
    snprintf(dir, sizeof dir, "%s/test_batch.bin", dj_cifar10_default_dir());
    have_data = access(dir, R_OK) == 0;
    have_model = dj_model_find(DJ_MODEL_JND, jnd_model, sizeof jnd_model) == 0;
    RUN(test_distortion_by_hand);
    RUN(test_features_layout);
    RUN(test_predict);
    RUN(test_lambda_and_pick);
    RUN(test_features_classes);
    RUN(test_fit_synthetic);
    RUN(test_fit_synthetic_classes);
    RUN(test_calibration_round_trip);
    RUN(test_calibration_bad_files);
    RUN(test_calibration_path);
    RUN(test_calibration_check);
    RUN(test_calibrate_and_evaluate);
    RUN(test_cli);
    char cmd[4300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    if (system(cmd)) fprintf(stderr, "could not remove %s\n", tmpdir);
    return check_report("test_compress_alloc");
}
