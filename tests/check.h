/* Minimal test harness: each tests/test_<module>.c is one program whose main
 * calls RUN(test) for each test and returns check_report(). A failed CHECK
 * prints file:line and the values, and the test goes on (so one run shows
 * every failure). The last line a test program prints is
 * "<name>: N passed, N failed, N skipped", with " (K not for this CPU or
 * build)" appended when K of the skips are SKIP_PLATFORM's.
 *
 * Skips: a test that cannot run calls SKIP(reason) (a missing resource, e.g.
 * the CIFAR-10 data set: it should run where the resource is provided, and
 * tests/run.sh with DMVJND_REQUIRE_ALL=1 counts it as a failure) or
 * SKIP_PLATFORM(reason) (it cannot run on this CPU or in this build, e.g.
 * an AVX-512 kernel on an AVX2 machine, malloc counting under
 * AddressSanitizer: allowed everywhere). Both print "SKIP <test>: reason"
 * and return from the test; check_skip() does the same for a test main
 * decides not to RUN. docs/install.md, "Tests". */
#ifndef DMVJND_TESTS_CHECK_H
#define DMVJND_TESTS_CHECK_H

#include <math.h>
#include <stdio.h>
#include <string.h>

static int check_failed_asserts;
static int check_tests_passed;
static int check_tests_failed;
static int check_tests_skipped;
static int check_tests_skipped_platform; /* of check_tests_skipped */
static int check_skip_kind;              /* set by SKIP in the running test: 1, 2 = platform */

/* Counts `test` as skipped (platform: it cannot run on this CPU or build). */
static inline void check_skip(const char *test, int platform, const char *reason) {
    fprintf(stderr, "SKIP %s: %s%s\n", test, reason, platform ? " (not for this CPU or build)" : "");
    check_tests_skipped++;
    check_tests_skipped_platform += platform != 0;
}

#define SKIP(reason)                                                                                  \
    do {                                                                                              \
        fprintf(stderr, "SKIP %s: %s\n", __func__, (reason));                                        \
        check_skip_kind = 1;                                                                          \
        return;                                                                                       \
    } while (0)

#define SKIP_PLATFORM(reason)                                                                         \
    do {                                                                                              \
        fprintf(stderr, "SKIP %s: %s (not for this CPU or build)\n", __func__, (reason));            \
        check_skip_kind = 2;                                                                          \
        return;                                                                                       \
    } while (0)

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
        check_skip_kind = 0;                                                                          \
        test();                                                                                       \
        if (check_failed_asserts == before_ && check_skip_kind) {                                     \
            check_tests_skipped++;                                                                    \
            check_tests_skipped_platform += check_skip_kind == 2;                                     \
        } else if (check_failed_asserts == before_) {                                                 \
            check_tests_passed++;                                                                     \
        } else {                                                                                      \
            check_tests_failed++;                                                                     \
            fprintf(stderr, "FAIL %s\n", #test);                                                     \
        }                                                                                             \
    } while (0)

static inline int check_report(const char *name) {
    (void)check_skip_kind; /* used only by RUN and SKIP */
    if (check_tests_skipped_platform)
        printf("%s: %d passed, %d failed, %d skipped (%d not for this CPU or build)\n", name, check_tests_passed,
               check_tests_failed, check_tests_skipped, check_tests_skipped_platform);
    else
        printf("%s: %d passed, %d failed, %d skipped\n", name, check_tests_passed, check_tests_failed,
               check_tests_skipped);
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
