/* Minimal test harness: each tests/test_<module>.c is one program whose main
 * calls RUN(test) for each test and returns check_report(). A failed CHECK
 * prints file:line and the values, and the test goes on (so one run shows
 * every failure). The last line a test program prints is
 * "<name>: N passed, N failed". */
#ifndef DMVJND_TESTS_CHECK_H
#define DMVJND_TESTS_CHECK_H

#include <math.h>
#include <stdio.h>
#include <string.h>

static int check_failed_asserts;
static int check_tests_passed;
static int check_tests_failed;

#define CHECK(cond)                                                                                   \
    do {                                                                                              \
        if (!(cond)) {                                                                                \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);                 \
            check_failed_asserts++;                                                                   \
        }                                                                                             \
    } while (0)

/* a and b agree within atol + rtol * |b|. */
#define CHECK_CLOSE(a, b, atol, rtol)                                                                 \
    do {                                                                                              \
        double ca_ = (double)(a), cb_ = (double)(b);                                                  \
        if (!(fabs(ca_ - cb_) <= (atol) + (rtol) * fabs(cb_))) {                                      \
            fprintf(stderr, "%s:%d: CHECK_CLOSE failed: %s = %.9g, %s = %.9g\n", __FILE__, __LINE__, #a, \
                    ca_, #b, cb_);                                                                     \
            check_failed_asserts++;                                                                   \
        }                                                                                             \
    } while (0)

/* A status-returning call must succeed. */
#define CHECK_OK(call)                                                                                \
    do {                                                                                              \
        int cs_ = (call);                                                                             \
        if (cs_ != 0) {                                                                               \
            fprintf(stderr, "%s:%d: %s returned %d: %s\n", __FILE__, __LINE__, #call, cs_,             \
                    dj_last_error());                                                                 \
            check_failed_asserts++;                                                                   \
        }                                                                                             \
    } while (0)

/* A call must fail with `code`, and its message must contain `substr`. */
#define CHECK_FAILS(call, code, substr)                                                               \
    do {                                                                                              \
        int cs_ = (call);                                                                             \
        if (cs_ != (code) || !strstr(dj_last_error(), (substr))) {                                    \
            fprintf(stderr, "%s:%d: %s returned %d (\"%s\"), expected %d with \"%s\"\n", __FILE__,       \
                    __LINE__, #call, cs_, dj_last_error(), (int)(code), (substr));                     \
            check_failed_asserts++;                                                                   \
        }                                                                                             \
    } while (0)

#define RUN(test)                                                                                     \
    do {                                                                                              \
        int before_ = check_failed_asserts;                                                           \
        test();                                                                                       \
        if (check_failed_asserts == before_) {                                                        \
            check_tests_passed++;                                                                     \
        } else {                                                                                      \
            check_tests_failed++;                                                                     \
            fprintf(stderr, "FAIL %s\n", #test);                                                     \
        }                                                                                             \
    } while (0)

static inline int check_report(const char *name) {
    printf("%s: %d passed, %d failed\n", name, check_tests_passed, check_tests_failed);
    return check_tests_failed ? 1 : 0;
}

/* Largest |a[i] - b[i]| / (atol + rtol*|b[i]|); <= 1 means all agree. */
static inline double check_max_err(const float *a, const float *b, size_t n, double atol, double rtol) {
    double worst = 0;
    for (size_t i = 0; i < n; i++) {
        double e = fabs((double)a[i] - (double)b[i]) / (atol + rtol * fabs((double)b[i]));
        if (!(e <= worst)) worst = e; /* NaN propagates as a failure */
    }
    return worst;
}

#endif
