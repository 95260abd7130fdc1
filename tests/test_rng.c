/* dj_rng: exact outputs against an independent reference, distribution
 * moments, unbiasedness of below(), shuffles, forks and the hex checkpoint. */
#include <inttypes.h>
#include <stdlib.h>

#include "check.h"
#include "dmvjnd/dmvjnd.h"

/* ---- reference: splitmix64 + xoshiro256** written from the papers' C code,
 * kept deliberately separate from src/util/rng.c. */
static uint64_t ref_sm_state;
static uint64_t ref_splitmix64(void) {
    uint64_t z = (ref_sm_state += UINT64_C(0x9E3779B97F4A7C15));
    z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
    return z ^ (z >> 31);
}
static uint64_t ref_s[4];
static uint64_t ref_rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
static uint64_t ref_next(void) {
    uint64_t result = ref_rotl(ref_s[1] * 5, 7) * 9, t = ref_s[1] << 17;
    ref_s[2] ^= ref_s[0];
    ref_s[3] ^= ref_s[1];
    ref_s[1] ^= ref_s[2];
    ref_s[0] ^= ref_s[3];
    ref_s[2] ^= t;
    ref_s[3] = ref_rotl(ref_s[3], 45);
    return result;
}
static void ref_seed(uint64_t seed) {
    ref_sm_state = seed;
    for (int i = 0; i < 4; i++) ref_s[i] = ref_splitmix64();
}

static void test_reference_itself(void) {
    /* Published values: splitmix64 from state 0 starts 0xe220a8397b1dcdaf;
     * xoshiro256** from state {1,2,3,4} starts 11520, 0, 1509978240, ... */
    ref_sm_state = 0;
    CHECK(ref_splitmix64() == UINT64_C(0xe220a8397b1dcdaf));
    static const uint64_t expect[] = {11520u, 0u, 1509978240u, UINT64_C(1215971899390074240),
                                      UINT64_C(1216172134540287360), UINT64_C(607988272756665600),
                                      UINT64_C(16172922978634559625), UINT64_C(8476171486693032832),
                                      UINT64_C(10595114339597558777), UINT64_C(2904607092377533576)};
    ref_s[0] = 1, ref_s[1] = 2, ref_s[2] = 3, ref_s[3] = 4;
    for (int i = 0; i < 10; i++) CHECK(ref_next() == expect[i]);

    /* The same vector through the library, its state set via the hex form. */
    dj_rng r;
    CHECK_OK(dj_rng_from_hex(&r, "0000000000000001000000000000000200000000000000030000000000000004"));
    for (int i = 0; i < 10; i++) CHECK(dj_rng_u64(&r) == expect[i]);
}

static void test_known_outputs(void) {
    static const uint64_t seeds[] = {0, 1, 42, UINT64_C(0xdeadbeefcafef00d), UINT64_MAX};
    for (size_t k = 0; k < sizeof seeds / sizeof seeds[0]; k++) {
        dj_rng r;
        dj_rng_seed(&r, seeds[k]);
        ref_seed(seeds[k]);
        for (int i = 0; i < 4; i++) CHECK(r.s[i] == ref_s[i]);
        for (int i = 0; i < 1000; i++) {
            uint64_t a = dj_rng_u64(&r), b = ref_next();
            if (a != b) {
                fprintf(stderr, "seed %" PRIu64 " output %d: %" PRIx64 " != %" PRIx64 "\n", seeds[k], i, a, b);
                CHECK(a == b);
                break;
            }
        }
    }
    /* Different seeds give different streams. */
    dj_rng a, b;
    dj_rng_seed(&a, 1);
    dj_rng_seed(&b, 2);
    CHECK(dj_rng_u64(&a) != dj_rng_u64(&b));
}

static void test_uniform(void) {
    dj_rng r;
    dj_rng_seed(&r, 7);
    const int n = 1000000;
    double sum = 0, sum2 = 0;
    int bad = 0, not_grid = 0;
    for (int i = 0; i < n; i++) {
        float u = dj_rng_uniform(&r);
        if (!(u >= 0.0f && u < 1.0f)) bad++;
        /* 24 bits: u * 2^24 is an integer. */
        double g = (double)u * 16777216.0;
        if (g != floor(g)) not_grid++;
        sum += u;
        sum2 += (double)u * u;
    }
    double mean = sum / n, var = sum2 / n - mean * mean;
    CHECK(bad == 0);
    CHECK(not_grid == 0);
    CHECK_CLOSE(mean, 0.5, 0.002, 0);       /* sd of mean 0.00029 */
    CHECK_CLOSE(var, 1.0 / 12, 0.0005, 0);  /* sd of var ~0.00007 */

    /* The uniform is the top 24 bits of the u64 stream. */
    dj_rng a, b;
    dj_rng_seed(&a, 99);
    b = a;
    for (int i = 0; i < 100; i++) CHECK(dj_rng_uniform(&a) == (float)(dj_rng_u64(&b) >> 40) / 16777216.0f);
}

static void test_below(void) {
    dj_rng r;
    dj_rng_seed(&r, 11);
    for (int i = 0; i < 1000; i++) CHECK(dj_rng_below(&r, 1) == 0);

    /* Range and chi-square on a small n. */
    enum { K = 7, N = 700000 };
    long counts[K] = {0};
    int out = 0;
    for (int i = 0; i < N; i++) {
        uint32_t v = dj_rng_below(&r, K);
        if (v >= K) out++;
        else counts[v]++;
    }
    CHECK(out == 0);
    double chi2 = 0, e = (double)N / K;
    for (int k = 0; k < K; k++) chi2 += (counts[k] - e) * (counts[k] - e) / e;
    CHECK(chi2 < 22.5); /* 6 dof: P(chi2 > 22.46) = 0.001 */

    /* Unbiasedness where it matters: n = 3*2^30. Plain (x mod n) on 32-bit x
     * would return values below 2^30 with probability 1/2; unbiased is 1/3. */
    const uint32_t big = UINT32_C(3) << 30;
    int low = 0, over = 0;
    const int M = 300000;
    for (int i = 0; i < M; i++) {
        uint32_t v = dj_rng_below(&r, big);
        if (v >= big) over++;
        if (v < (UINT32_C(1) << 30)) low++;
    }
    CHECK(over == 0);
    CHECK_CLOSE((double)low / M, 1.0 / 3, 0.005, 0);

    /* Extremes of the range. */
    int hit_top = 0;
    for (int i = 0; i < 1000; i++) {
        uint32_t v = dj_rng_below(&r, UINT32_MAX);
        CHECK(v < UINT32_MAX);
        uint32_t w = dj_rng_below(&r, 2);
        CHECK(w < 2);
        hit_top += w;
    }
    CHECK(hit_top > 400 && hit_top < 600);
}

static void test_normal(void) {
    dj_rng r;
    dj_rng_seed(&r, 3);
    const int n = 1000000;
    double sum = 0, sum2 = 0, sum4 = 0;
    int tail = 0, nonfinite = 0;
    for (int i = 0; i < n; i++) {
        float x = dj_rng_normal(&r);
        if (!isfinite(x)) nonfinite++;
        sum += x;
        sum2 += (double)x * x;
        sum4 += (double)x * x * x * x;
        if (fabsf(x) > 1.959964f) tail++;
    }
    double mean = sum / n, var = sum2 / n - mean * mean;
    CHECK(nonfinite == 0);
    CHECK_CLOSE(mean, 0.0, 0.005, 0);
    CHECK_CLOSE(var, 1.0, 0.01, 0);
    CHECK_CLOSE(sum4 / n, 3.0, 0.06, 0); /* kurtosis of a normal */
    CHECK_CLOSE((double)tail / n, 0.05, 0.002, 0);

    /* Two uniforms per call (documented in rng.h). */
    dj_rng a, b;
    dj_rng_seed(&a, 5);
    b = a;
    (void)dj_rng_normal(&a);
    dj_rng_u64(&b);
    dj_rng_u64(&b);
    CHECK(memcmp(&a, &b, sizeof a) == 0);
}

static void test_shuffle(void) {
    dj_rng r;
    dj_rng_seed(&r, 17);
    enum { N = 1000 };
    int32_t idx[N];
    for (int i = 0; i < N; i++) idx[i] = i;
    dj_rng_shuffle(&r, idx, N);
    char seen[N] = {0};
    int fixed = 0, dup = 0;
    for (int i = 0; i < N; i++) {
        if (idx[i] < 0 || idx[i] >= N || seen[idx[i]]) dup++;
        else seen[idx[i]] = 1;
        fixed += idx[i] == i;
    }
    CHECK(dup == 0);
    CHECK(fixed < 10); /* expected 1 fixed point */

    /* Empty and single-element arrays are fine. */
    int32_t one = 5;
    dj_rng_shuffle(&r, &one, 1);
    CHECK(one == 5);
    dj_rng_shuffle(&r, NULL, 0);

    /* All 6 permutations of 3 are equally likely. */
    long counts[6] = {0};
    const int M = 120000;
    for (int t = 0; t < M; t++) {
        int32_t p[3] = {0, 1, 2};
        dj_rng_shuffle(&r, p, 3);
        counts[p[0] * 2 + (p[1] > p[2])]++;
    }
    double chi2 = 0, e = M / 6.0;
    for (int k = 0; k < 6; k++) chi2 += (counts[k] - e) * (counts[k] - e) / e;
    CHECK(chi2 < 20.5); /* 5 dof: P(chi2 > 20.5) = 0.001 */

    /* Same seed, same order. */
    dj_rng a, b;
    dj_rng_seed(&a, 1234);
    dj_rng_seed(&b, 1234);
    int32_t x[50], y[50];
    for (int i = 0; i < 50; i++) x[i] = y[i] = i;
    dj_rng_shuffle(&a, x, 50);
    dj_rng_shuffle(&b, y, 50);
    CHECK(memcmp(x, y, sizeof x) == 0);
}

static void test_fork(void) {
    dj_rng r;
    dj_rng_seed(&r, 2024);
    dj_rng before = r;
    dj_rng f1 = dj_rng_fork(&r, 1), f2 = dj_rng_fork(&r, 2), f1b = dj_rng_fork(&r, 1);
    CHECK(memcmp(&r, &before, sizeof r) == 0); /* parent not advanced */
    CHECK(memcmp(&f1, &f1b, sizeof f1) == 0);  /* deterministic */

    /* Streams differ from each other and from the parent. */
    dj_rng p = r;
    int same12 = 0, same1p = 0;
    for (int i = 0; i < 100; i++) {
        uint64_t a = dj_rng_u64(&f1), b = dj_rng_u64(&f2), c = dj_rng_u64(&p);
        same12 += a == b;
        same1p += a == c;
    }
    CHECK(same12 == 0 && same1p == 0);

    /* A fork of an advanced parent differs from a fork of the original. */
    dj_rng q = r;
    dj_rng_u64(&q);
    dj_rng g = dj_rng_fork(&q, 1), h = dj_rng_fork(&r, 1);
    CHECK(dj_rng_u64(&g) != dj_rng_u64(&h));

    /* Rough independence: correlation of uniforms of streams 0 and 1. */
    dj_rng s0 = dj_rng_fork(&r, 0), s1 = dj_rng_fork(&r, 1);
    double sxy = 0;
    const int n = 200000;
    for (int i = 0; i < n; i++) sxy += (dj_rng_uniform(&s0) - 0.5) * (dj_rng_uniform(&s1) - 0.5);
    CHECK(fabs(sxy / n * 12) < 0.01); /* correlation; sd 0.0022 */
}

static void test_hex(void) {
    dj_rng r, back;
    dj_rng_seed(&r, 77);
    for (int i = 0; i < 5; i++) dj_rng_u64(&r);
    char buf[65];
    memset(buf, 'x', sizeof buf);
    dj_rng_to_hex(&r, buf);
    CHECK(strlen(buf) == 64);
    char expect[65];
    snprintf(expect, sizeof expect, "%016" PRIx64 "%016" PRIx64 "%016" PRIx64 "%016" PRIx64, r.s[0], r.s[1],
             r.s[2], r.s[3]);
    CHECK(strcmp(buf, expect) == 0);
    CHECK_OK(dj_rng_from_hex(&back, buf));
    CHECK(memcmp(&r, &back, sizeof r) == 0);
    for (int i = 0; i < 10; i++) CHECK(dj_rng_u64(&r) == dj_rng_u64(&back));

    /* Upper case is accepted and means the same state. */
    char lower[65];
    memcpy(lower, buf, sizeof lower);
    for (int i = 0; i < 64; i++)
        if (buf[i] >= 'a') buf[i] = (char)(buf[i] - 'a' + 'A');
    dj_rng up;
    CHECK_OK(dj_rng_from_hex(&up, buf));
    dj_rng_to_hex(&up, expect);
    CHECK(strcmp(expect, lower) == 0);
}

static void test_bad_hex(void) {
    dj_rng r;
    dj_rng_seed(&r, 1);
    dj_rng keep = r;
    char good[65];
    dj_rng_to_hex(&r, good);
    char bad[80];

    CHECK_FAILS(dj_rng_from_hex(&r, ""), DJ_EFORMAT, "0 hex digits, expected 64");
    memcpy(bad, good, 63);
    bad[63] = '\0';
    CHECK_FAILS(dj_rng_from_hex(&r, bad), DJ_EFORMAT, "63 hex digits, expected 64");
    snprintf(bad, sizeof bad, "%s0", good);
    CHECK_FAILS(dj_rng_from_hex(&r, bad), DJ_EFORMAT, "more than 64 hex digits");
    snprintf(bad, sizeof bad, "%s\n", good);
    CHECK_FAILS(dj_rng_from_hex(&r, bad), DJ_EFORMAT, "more than 64");
    memcpy(bad, good, 65);
    bad[10] = 'g';
    CHECK_FAILS(dj_rng_from_hex(&r, bad), DJ_EFORMAT, "character 10 is not a hex digit");
    bad[10] = ' ';
    CHECK_FAILS(dj_rng_from_hex(&r, bad), DJ_EFORMAT, "not a hex digit");
    snprintf(bad, sizeof bad, "0x%.62s", good);
    CHECK_FAILS(dj_rng_from_hex(&r, bad), DJ_EFORMAT, "character 1 is not");
    memset(bad, '0', 64);
    bad[64] = '\0';
    CHECK_FAILS(dj_rng_from_hex(&r, bad), DJ_EFORMAT, "all zero");
    CHECK_FAILS(dj_rng_from_hex(&r, NULL), DJ_EFORMAT, "NULL");
    /* A failed parse leaves the generator untouched. */
    CHECK(memcmp(&r, &keep, sizeof r) == 0);
}

int main(void) {
    RUN(test_reference_itself);
    RUN(test_known_outputs);
    RUN(test_uniform);
    RUN(test_below);
    RUN(test_normal);
    RUN(test_shuffle);
    RUN(test_fork);
    RUN(test_hex);
    RUN(test_bad_hex);
    return check_report("test_rng");
}
