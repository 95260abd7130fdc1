/* Bjontegaard delta rate (VCEG-M33) between two rate-quality curves, with a
 * monotone piecewise-cubic (Fritsch-Carlson PCHIP) fit of log(rate) against
 * quality instead of the original cubic polynomial: with 4-6 noisy points a
 * cubic can swing outside the data and even turn back, PCHIP cannot.
 *
 * Each curve is first reduced to its lower-rate frontier (see budget.h):
 * measured RCA is noisy and not always monotone in rate, and a point that
 * costs more than a better one is never the rate a codec needs for its
 * quality. The frontier is strictly increasing in both quality and rate. */
#include <math.h>
#include <stdlib.h>

#include "dmvjnd/budget.h"
#include "dmvjnd/dmvjnd.h"

static int sgn(double v) { return (v > 0) - (v < 0); }

int dj_pchip_slopes(const double *x, const double *y, int n, double *d) {
    if (!x || !y || !d || n < 2) return dj_error(DJ_EINVAL, "pchip: need at least 2 points, got %d", n);
    for (int k = 0; k + 1 < n; k++)
        if (!(x[k + 1] > x[k]) || !isfinite(x[k]) || !isfinite(x[k + 1]) || !isfinite(y[k]) || !isfinite(y[k + 1]))
            return dj_error(DJ_EINVAL, "pchip: x not strictly increasing or not finite at point %d", k + 1);
    if (n == 2) {
        d[0] = d[1] = (y[1] - y[0]) / (x[1] - x[0]);
        return DJ_OK;
    }
    /* Interior: the weighted harmonic mean of the neighbouring secants
     * (Fritsch & Butland 1984), 0 at a local extremum or a flat secant. */
    for (int k = 1; k + 1 < n; k++) {
        double h0 = x[k] - x[k - 1], h1 = x[k + 1] - x[k];
        double s0 = (y[k] - y[k - 1]) / h0, s1 = (y[k + 1] - y[k]) / h1;
        if (s0 * s1 <= 0) {
            d[k] = 0;
        } else {
            double w1 = 2 * h1 + h0, w2 = h1 + 2 * h0;
            d[k] = (w1 + w2) / (w1 / s0 + w2 / s1);
        }
    }
    /* Ends: the one-sided three-point formula, kept shape-preserving. */
    for (int end = 0; end < 2; end++) {
        int a = end ? n - 1 : 0, b = end ? n - 2 : 1, c = end ? n - 3 : 2;
        double h0 = fabs(x[b] - x[a]), h1 = fabs(x[c] - x[b]);
        double s0 = (y[b] - y[a]) / (x[b] - x[a]), s1 = (y[c] - y[b]) / (x[c] - x[b]);
        double v = ((2 * h0 + h1) * s0 - h0 * s1) / (h0 + h1);
        if (sgn(v) != sgn(s0)) v = 0;
        else if (sgn(s0) != sgn(s1) && fabs(v) > fabs(3 * s0)) v = 3 * s0;
        d[a] = v;
    }
    return DJ_OK;
}

/* Segment k of the interpolant as p(t) = y0 + d0 t + c2 t^2 + c3 t^3, t = x - x[k]. */
static void seg_coef(const double *x, const double *y, const double *d, int k, double *c2, double *c3) {
    double hk = x[k + 1] - x[k], s = (y[k + 1] - y[k]) / hk;
    *c2 = (3 * s - 2 * d[k] - d[k + 1]) / hk;
    *c3 = (d[k] + d[k + 1] - 2 * s) / (hk * hk);
}

static int seg_of(const double *x, int n, double xq) {
    int k = 0;
    while (k < n - 2 && xq > x[k + 1]) k++;
    return k;
}

double dj_pchip_eval(const double *x, const double *y, const double *d, int n, double xq) {
    int k = seg_of(x, n, xq);
    double c2, c3, t = xq - x[k];
    seg_coef(x, y, d, k, &c2, &c3);
    return y[k] + t * (d[k] + t * (c2 + t * c3));
}

/* Exact integral of the interpolant over [a, b] inside [x0, x_{n-1}]. */
static double pchip_integral(const double *x, const double *y, const double *d, int n, double a, double b) {
    double total = 0;
    for (int k = 0; k < n - 1; k++) {
        double lo = a > x[k] ? a : x[k], hi = b < x[k + 1] ? b : x[k + 1];
        if (!(hi > lo)) continue;
        double c2, c3;
        seg_coef(x, y, d, k, &c2, &c3);
        double t0 = lo - x[k], t1 = hi - x[k];
#define PRIM(t) ((t) * (y[k] + (t) * (d[k] / 2 + (t) * (c2 / 3 + (t) * c3 / 4))))
        total += PRIM(t1) - PRIM(t0);
#undef PRIM
    }
    return total;
}

static int by_quality_desc(const void *pa, const void *pb) {
    const dj_rd_point *a = pa, *b = pb;
    if (a->quality != b->quality) return a->quality < b->quality ? 1 : -1;
    return (a->rate > b->rate) - (a->rate < b->rate);
}

/* A curve reduced to its frontier: q strictly increasing, lr = log(rate). */
typedef struct frontier {
    int n;
    double *q, *lr, *d;
} frontier;

static void frontier_free(frontier *f) {
    free(f->q);
    f->q = NULL;
}

static int frontier_build(const char *name, const dj_rd_point *pts, int n, frontier *f) {
    f->n = 0;
    f->q = NULL;
    if (!pts || n < 0) return dj_error(DJ_EINVAL, "rate-quality curve %s: NULL or negative count", name);
    for (int i = 0; i < n; i++)
        if (!(pts[i].rate > 0) || !isfinite(pts[i].rate) || !isfinite(pts[i].quality))
            return dj_error(DJ_EINVAL, "rate-quality curve %s: point %d has rate %g, quality %g (rate must be positive, both finite)",
                            name, i, pts[i].rate, pts[i].quality);
    dj_rd_point *s = malloc((size_t)(n ? n : 1) * sizeof *s);
    double *mem = malloc((size_t)(n ? n : 1) * 3 * sizeof *mem);
    if (!s || !mem) {
        free(s);
        free(mem);
        return dj_error(DJ_ENOMEM, "rate-quality curve %s: no memory", name);
    }
    for (int i = 0; i < n; i++) s[i] = pts[i];
    qsort(s, (size_t)n, sizeof *s, by_quality_desc);
    /* From the best quality down: keep a point when it is cheaper than every
     * point of higher quality; among equal qualities the sort puts the
     * cheapest first, and the others are not cheaper than it. */
    int m = 0;
    double cheapest = INFINITY;
    for (int i = 0; i < n; i++) {
        if (s[i].rate < cheapest && (m == 0 || s[i].quality < s[m - 1].quality)) {
            cheapest = s[i].rate;
            s[m++] = s[i];
        }
    }
    f->q = mem;
    f->lr = mem + n;
    f->d = mem + 2 * n;
    for (int i = 0; i < m; i++) { /* reverse into increasing quality */
        f->q[i] = s[m - 1 - i].quality;
        f->lr[i] = log(s[m - 1 - i].rate);
    }
    free(s);
    f->n = m;
    if (m < 2) {
        frontier_free(f);
        return dj_error(DJ_EINVAL, "rate-quality curve %s: %d point(s) on its lower-rate frontier, need 2", name, m);
    }
    int st = dj_pchip_slopes(f->q, f->lr, m, f->d);
    if (st) frontier_free(f);
    return st;
}

int dj_bd_rate(const dj_rd_point *anchor, int na, const dj_rd_point *test, int nt, double *out) {
    if (!out) return dj_error(DJ_EINVAL, "BD-rate: NULL output");
    frontier fa, ft;
    int st = frontier_build("anchor", anchor, na, &fa);
    if (st) return st;
    st = frontier_build("test", test, nt, &ft);
    if (st) {
        frontier_free(&fa);
        return st;
    }
    double lo = fa.q[0] > ft.q[0] ? fa.q[0] : ft.q[0];
    double hi = fa.q[fa.n - 1] < ft.q[ft.n - 1] ? fa.q[fa.n - 1] : ft.q[ft.n - 1];
    if (!(hi > lo)) {
        st = dj_error(DJ_EINVAL, "BD-rate: quality ranges do not overlap (anchor %g..%g, test %g..%g)", fa.q[0],
                      fa.q[fa.n - 1], ft.q[0], ft.q[ft.n - 1]);
    } else {
        double ia = pchip_integral(fa.q, fa.lr, fa.d, fa.n, lo, hi);
        double it = pchip_integral(ft.q, ft.lr, ft.d, ft.n, lo, hi);
        *out = exp((it - ia) / (hi - lo)) - 1.0;
    }
    frontier_free(&fa);
    frontier_free(&ft);
    return st;
}

int dj_rd_rate_at(const dj_rd_point *curve, int n, double quality, double *rate) {
    if (!rate) return dj_error(DJ_EINVAL, "rate at quality: NULL output");
    frontier f;
    int st = frontier_build("curve", curve, n, &f);
    if (st) return st;
    if (!(quality >= f.q[0] && quality <= f.q[f.n - 1])) {
        st = dj_error(DJ_EINVAL, "rate at quality %g: outside the curve's range %g..%g", quality, f.q[0], f.q[f.n - 1]);
    } else {
        *rate = exp(dj_pchip_eval(f.q, f.lr, f.d, f.n, quality));
    }
    frontier_free(&f);
    return st;
}
