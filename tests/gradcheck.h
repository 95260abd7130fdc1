/* Central finite-difference gradient checks (the ggml habit: every op's
 * backward is compared with numerical derivatives of its forward).
 *
 * The scalar checked is L = sum_i y_i * r_i with fixed random weights r, so
 * one backward with dy = r gives dL/d(input) and dL/d(params) at once. */
#ifndef DMVJND_TESTS_GRADCHECK_H
#define DMVJND_TESTS_GRADCHECK_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Evaluates the scalar loss (in double) at the current parameter values. */
typedef double (*gc_loss_fn)(void *ctx);

static inline uint64_t gc_next(uint64_t *s) {
    *s = *s * 6364136223846793005ULL + 1442695040888963407ULL;
    return *s >> 11;
}

/* Fill x[0..n) with uniform values in [lo, hi) from a fixed seed. */
static inline void gc_fill(float *x, size_t n, float lo, float hi, uint64_t seed) {
    uint64_t s = seed * 2654435761ULL + 1;
    for (size_t i = 0; i < n; i++) x[i] = lo + (hi - lo) * (float)((double)gc_next(&s) / 9007199254740992.0);
}

/* Compare the analytic gradient g of `loss` with respect to x[0..n) with
 * central differences (step eps) at up to max_checks positions (all if n is
 * small, else a fixed random sample). Returns the worst
 *   |analytic - numeric| / (atol + rtol * max(|analytic|, |numeric|)),
 * so a result <= 1 passes. Prints the worst position when it fails.
 *
 * Kinks (ReLU at 0, max-pool ties) make central differences meaningless
 * where a perturbation crosses one. Such a position is recognised because
 * the differences at eps and eps/2 disagree (for a smooth function they
 * agree to O(eps^2)); it is skipped. A real gradient bug does not look like
 * that, since both steps then agree with each other and not with the
 * analytic value. If more than a quarter of the positions are skipped the
 * check fails: the test must then pick inputs away from kinks. */
static inline double gc_check(const char *what, gc_loss_fn loss, void *ctx, float *x, const float *g, size_t n,
                              float eps, double atol, double rtol, int max_checks) {
    uint64_t s = 12345;
    double worst = 0;
    size_t worst_i = 0, skipped = 0;
    double worst_a = 0, worst_n = 0;
    size_t checks = n <= (size_t)max_checks ? n : (size_t)max_checks;
    for (size_t k = 0; k < checks; k++) {
        size_t i = n <= (size_t)max_checks ? k : (size_t)(gc_next(&s) % n);
        double num[2];
        for (int h = 0; h < 2; h++) {
            float step = h ? eps / 2 : eps;
            float keep = x[i];
            x[i] = keep + step;
            double lp = loss(ctx);
            x[i] = keep - step;
            double lm = loss(ctx);
            x[i] = keep;
            num[h] = (lp - lm) / ((double)(keep + step) - (double)(keep - step));
        }
        double ana = g[i];
        double scale = fabs(num[0]) > fabs(ana) ? fabs(num[0]) : fabs(ana);
        if (fabs(num[0] - num[1]) > 0.5 * (atol + rtol * scale)) {
            skipped++;
            continue;
        }
        double e = fabs(num[1] - ana) / (atol + rtol * scale);
        if (!(e <= worst)) {
            worst = e;
            worst_i = i;
            worst_a = ana;
            worst_n = num[1];
        }
    }
    if (skipped * 4 > checks) {
        fprintf(stderr, "gradcheck %s: %zu of %zu positions sit at kinks; choose other inputs\n", what, skipped,
                checks);
        return 1e9;
    }
    if (!(worst <= 1.0))
        fprintf(stderr, "gradcheck %s: worst at %zu: analytic %.7g numeric %.7g (err %.3g)\n", what, worst_i, worst_a,
                worst_n, worst);
    return worst;
}

#endif
