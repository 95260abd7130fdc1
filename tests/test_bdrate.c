/* BD-rate with a PCHIP fit: cases with closed-form answers (a constant rate
 * ratio; log rate linear in quality, which PCHIP reproduces exactly), the
 * lower-rate frontier, the errors, rate_at, and PCHIP itself against hand-
 * worked slopes, scipy.interpolate.PchipInterpolator (values in
 * tests/data/budget_ref.py) and a naive Hermite-basis evaluation integrated
 * by Simpson's rule. */
#include <stdlib.h>

#include "check.h"
#include "dmvjnd/budget.h"
#include "dmvjnd/dmvjnd.h"

static const dj_rd_point anchor5[5] = {
    {1000, 0.60}, {1500, 0.70}, {2300, 0.78}, {3600, 0.85}, {6000, 0.90}};

/* Every rate x 0.7: log rates differ by log 0.7 everywhere, BD-rate -0.30. */
static void test_constant_ratio(void) {
    dj_rd_point t[5];
    for (int i = 0; i < 5; i++) t[i] = (dj_rd_point){anchor5[i].rate * 0.7, anchor5[i].quality};
    double bd = 0;
    CHECK_OK(dj_bd_rate(anchor5, 5, t, 5, &bd));
    CHECK_CLOSE(bd, -0.30, 1e-9, 0);
    CHECK_OK(dj_bd_rate(t, 5, anchor5, 5, &bd));
    CHECK_CLOSE(bd, 1 / 0.7 - 1, 1e-9, 0);
    /* The order of the points does not matter. */
    dj_rd_point shuf[5] = {t[3], t[0], t[4], t[2], t[1]};
    CHECK_OK(dj_bd_rate(anchor5, 5, shuf, 5, &bd));
    CHECK_CLOSE(bd, -0.30, 1e-9, 0);
}

/* log r = a + k q on both curves (different a, k, ranges and point
 * spacings). PCHIP reproduces a line exactly, so the mean difference over
 * [lo, hi] is (a_t - a_a) + (k_t - k_a)(lo + hi)/2. */
static void test_linear_log_rate(void) {
    const double aa = 5.0, ka = 4.0, at = 4.6, kt = 4.5;
    const double qa[4] = {0.50, 0.62, 0.81, 0.95}, qt[6] = {0.40, 0.55, 0.60, 0.72, 0.80, 0.88};
    dj_rd_point A[4], T[6];
    for (int i = 0; i < 4; i++) A[i] = (dj_rd_point){exp(aa + ka * qa[i]), qa[i]};
    for (int i = 0; i < 6; i++) T[i] = (dj_rd_point){exp(at + kt * qt[i]), qt[i]};
    double lo = 0.50, hi = 0.88;
    double want = exp((at - aa) + (kt - ka) * (lo + hi) / 2) - 1;
    double bd = 0;
    CHECK_OK(dj_bd_rate(A, 4, T, 6, &bd));
    CHECK_CLOSE(bd, want, 1e-12, 1e-10);
    /* rate_at on a line: exact between the points, and on them */
    double r = 0;
    CHECK_OK(dj_rd_rate_at(A, 4, 0.7, &r));
    CHECK_CLOSE(r, exp(aa + ka * 0.7), 0, 1e-12);
    for (int i = 0; i < 4; i++) {
        CHECK_OK(dj_rd_rate_at(A, 4, qa[i], &r));
        CHECK_CLOSE(r, A[i].rate, 0, 1e-12);
    }
}

/* Points off the frontier (a higher rate than some better point; a repeated
 * quality at a higher rate) are dropped: the result equals the one without
 * them. */
static void test_frontier(void) {
    dj_rd_point noisy[8] = {anchor5[0], anchor5[1], anchor5[2], anchor5[3], anchor5[4],
                            {2500, 0.74},  /* dearer than 0.78 at 2300: dropped */
                            {4000, 0.85},  /* same quality as 3600: dropped */
                            {7000, 0.88}}; /* dearer than 0.90 at 6000: dropped */
    dj_rd_point t[5];
    for (int i = 0; i < 5; i++) t[i] = (dj_rd_point){anchor5[i].rate * 0.8, anchor5[i].quality + 0.01};
    double clean = 0, with = 0;
    CHECK_OK(dj_bd_rate(anchor5, 5, t, 5, &clean));
    CHECK_OK(dj_bd_rate(noisy, 8, t, 5, &with));
    CHECK_CLOSE(with, clean, 1e-15, 0);
    double r1 = 0, r2 = 0;
    CHECK_OK(dj_rd_rate_at(anchor5, 5, 0.74, &r1));
    CHECK_OK(dj_rd_rate_at(noisy, 8, 0.74, &r2));
    CHECK_CLOSE(r2, r1, 0, 1e-15);
    /* A point cheaper than a better one survives even if it is "out of
     * order" in the input; one dearer than a better one does not, so a
     * curve whose best point is also its cheapest collapses to one point. */
    dj_rd_point collapse[3] = {{500, 0.9}, {800, 0.8}, {900, 0.7}};
    double bd = 0;
    CHECK_FAILS(dj_bd_rate(collapse, 3, t, 5, &bd), DJ_EINVAL, "1 point(s) on its lower-rate frontier");
    CHECK_FAILS(dj_rd_rate_at(collapse, 3, 0.8, &bd), DJ_EINVAL, "frontier");
}

static void test_errors(void) {
    double bd = 0, r = 0;
    dj_rd_point low[2] = {{100, 0.1}, {200, 0.2}}, high[2] = {{100, 0.5}, {300, 0.7}}, touch[2] = {{50, 0.2}, {90, 0.4}};
    CHECK_FAILS(dj_bd_rate(low, 2, high, 2, &bd), DJ_EINVAL, "do not overlap");
    CHECK_FAILS(dj_bd_rate(low, 2, touch, 2, &bd), DJ_EINVAL, "do not overlap"); /* share one quality only */
    CHECK_FAILS(dj_bd_rate(low, 1, high, 2, &bd), DJ_EINVAL, "anchor");
    CHECK_FAILS(dj_bd_rate(low, 2, high, 0, &bd), DJ_EINVAL, "test");
    CHECK_FAILS(dj_bd_rate(NULL, 2, high, 2, &bd), DJ_EINVAL, "NULL");
    dj_rd_point bad[2] = {{0, 0.1}, {200, 0.2}}, nanq[2] = {{10, NAN}, {200, 0.2}};
    CHECK_FAILS(dj_bd_rate(bad, 2, high, 2, &bd), DJ_EINVAL, "rate must be positive");
    CHECK_FAILS(dj_bd_rate(nanq, 2, high, 2, &bd), DJ_EINVAL, "finite");
    CHECK_FAILS(dj_rd_rate_at(high, 2, 0.49, &r), DJ_EINVAL, "outside");
    CHECK_FAILS(dj_rd_rate_at(high, 2, 0.71, &r), DJ_EINVAL, "outside");
    CHECK_OK(dj_rd_rate_at(high, 2, 0.5, &r));
    CHECK_CLOSE(r, 100, 0, 1e-12);
    CHECK_OK(dj_rd_rate_at(high, 2, 0.6, &r)); /* 2 points: log-linear */
    CHECK_CLOSE(r, sqrt(100.0 * 300.0), 0, 1e-12);
}

/* Slopes worked by hand for x = 0 1 3 4 7, y = 0 1 1.5 3 3.2: secants
 * s = 1, 0.25, 1.5, 0.0667; h = 1 2 1 3.
 *  d1: w1 = 2*2+1 = 5, w2 = 2+2*1 = 4: 9 / (5/1 + 4/0.25) = 9/21 = 0.428571
 *  d2: w1 = 2*1+2 = 4, w2 = 1+2*2 = 5: 9 / (4/0.25 + 5/1.5) = 9/19.3333 = 0.465517
 *  d3: w1 = 2*3+1 = 7, w2 = 3+2*1 = 5: 12 / (7/1.5 + 5/0.0667) = 12/79.6667 = 0.150628
 *  d0 = ((2*1+2)*1 - 1*0.25)/3 = 1.25 (same sign as s0, no clipping: s0, s1 agree)
 *  d4 = ((2*3+1)*0.0667 - 3*1.5)/4 = -1.008 < 0, sign differs from s3: 0.
 * scipy's PchipInterpolator gives the same slopes and these values. */
static void test_pchip(void) {
    const double x[5] = {0, 1, 3, 4, 7}, y[5] = {0, 1, 1.5, 3, 3.2};
    double d[5];
    CHECK_OK(dj_pchip_slopes(x, y, 5, d));
    const double want_d[5] = {1.25, 9.0 / 21, 9.0 / (16 + 10.0 / 3), 12.0 / (7 / 1.5 + 5 / (0.2 / 3)), 0};
    for (int i = 0; i < 5; i++) CHECK_CLOSE(d[i], want_d[i], 1e-12, 1e-12);
    const double xq[5] = {0.5, 2.0, 3.5, 5.0, 6.9};
    const double scipy_v[5] = {0.60267857, 1.24076355, 2.2893612, 3.11879746, 3.1998335};
    for (int i = 0; i < 5; i++) CHECK_CLOSE(dj_pchip_eval(x, y, d, 5, xq[i]), scipy_v[i], 1e-8, 0);
    for (int i = 0; i < 5; i++) CHECK_CLOSE(dj_pchip_eval(x, y, d, 5, x[i]), y[i], 1e-14, 0);
    /* Monotone data stays monotone between the points. */
    double prev = -1;
    int dips = 0;
    for (int i = 0; i <= 700; i++) {
        double v = dj_pchip_eval(x, y, d, 5, i * 0.01);
        dips += v < prev - 1e-15;
        prev = v;
    }
    CHECK(dips == 0);
    /* End slope clipped to 3 s0 when the secants change sign: x = 0 1 2,
     * y = 0 1 -19: d0 = ((2+1)*1 - 1*(-20))/2 = 11.5 -> 3; d1 = 0 (extremum);
     * d2 = (3*(-20) - 1*1)/2 = -30.5, within 3|s| = 60. scipy agrees. */
    const double x3[3] = {0, 1, 2}, y3[3] = {0, 1, -19};
    double d3[3];
    CHECK_OK(dj_pchip_slopes(x3, y3, 3, d3));
    CHECK_CLOSE(d3[0], 3.0, 1e-14, 0);
    CHECK_CLOSE(d3[1], 0.0, 1e-14, 0);
    CHECK_CLOSE(d3[2], -30.5, 1e-14, 0);
    const double xbad[3] = {0, 1, 1};
    CHECK_FAILS(dj_pchip_slopes(xbad, y, 3, d), DJ_EINVAL, "strictly increasing");
    CHECK_FAILS(dj_pchip_slopes(x, y, 1, d), DJ_EINVAL, "at least 2");
}

/* Naive Hermite-basis evaluation of the interpolant (slopes from the library,
 * checked above): h00 y0 + h10 h d0 + h01 y1 + h11 h d1. */
static double hermite(const double *x, const double *y, const double *d, int n, double q) {
    int k = 0;
    while (k < n - 2 && q > x[k + 1]) k++;
    double h = x[k + 1] - x[k], t = (q - x[k]) / h;
    double h00 = 2 * t * t * t - 3 * t * t + 1, h10 = t * t * t - 2 * t * t + t;
    double h01 = -2 * t * t * t + 3 * t * t, h11 = t * t * t - t * t;
    return h00 * y[k] + h10 * h * d[k] + h01 * y[k + 1] + h11 * h * d[k + 1];
}

static double simpson(const double *x, const double *y, const double *d, int n, double a, double b) {
    /* Exact for cubics on each piece when the knots fall on the grid: use
     * many steps so the pieces' joins cost nothing measurable. */
    const int m = 200000;
    double hstep = (b - a) / m, s = hermite(x, y, d, n, a) + hermite(x, y, d, n, b);
    for (int i = 1; i < m; i++) s += (i % 2 ? 4 : 2) * hermite(x, y, d, n, a + i * hstep);
    return s * hstep / 3;
}

/* Two non-linear curves: the library's BD-rate against (1) scipy's
 * PchipInterpolator.integrate (tests/data/budget_ref.py) and (2) Simpson
 * integration of the naive Hermite evaluation. */
static void test_bd_nonlinear(void) {
    const double qa[5] = {0.60, 0.70, 0.78, 0.85, 0.90}, ra[5] = {1000, 1500, 2300, 3600, 6000};
    const double qt[6] = {0.58, 0.66, 0.75, 0.83, 0.88, 0.93}, rt[6] = {800, 1000, 1700, 2500, 3900, 7000};
    dj_rd_point A[5], T[6];
    double la[5], lt[6], da[5], dt[6];
    for (int i = 0; i < 5; i++) A[i] = (dj_rd_point){ra[i], qa[i]}, la[i] = log(ra[i]);
    for (int i = 0; i < 6; i++) T[i] = (dj_rd_point){rt[i], qt[i]}, lt[i] = log(rt[i]);
    double bd = 0;
    CHECK_OK(dj_bd_rate(A, 5, T, 6, &bd));
    CHECK_CLOSE(bd, -0.174923446403804, 1e-12, 0); /* scipy */
    CHECK_OK(dj_pchip_slopes(qa, la, 5, da));
    CHECK_OK(dj_pchip_slopes(qt, lt, 6, dt));
    double lo = 0.60, hi = 0.90;
    double naive = exp((simpson(qt, lt, dt, 6, lo, hi) - simpson(qa, la, da, 5, lo, hi)) / (hi - lo)) - 1;
    CHECK_CLOSE(bd, naive, 1e-9, 0);
    double r = 0;
    CHECK_OK(dj_rd_rate_at(A, 5, 0.74, &r));
    CHECK_CLOSE(r, 1835.230218483881, 0, 1e-12); /* scipy */
    CHECK_CLOSE(r, exp(hermite(qa, la, da, 5, 0.74)), 0, 1e-12);
}

int main(void) {
    RUN(test_constant_ratio);
    RUN(test_linear_log_rate);
    RUN(test_frontier);
    RUN(test_errors);
    RUN(test_pchip);
    RUN(test_bd_nonlinear);
    return check_report("test_bdrate");
}
