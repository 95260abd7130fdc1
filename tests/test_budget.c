/* Budget maps, the budgeted pre-filter and the smoothing target: the
 * pre-filter's guarantee (never more than s*b, never past the target, all the
 * way when allowed) on random data, exact small cases, the mean-preserving
 * budgets, and the separable blur against a naive 2-D convolution. */
#include <stdint.h>
#include <stdlib.h>

#include "check.h"
#include "dmvjnd/budget.h"
#include "dmvjnd/dmvjnd.h"

static void test_prefilter_random(void) {
    enum { N = 20000 };
    dj_rng r;
    dj_rng_seed(&r, 42);
    uint8_t *x = malloc(N), *t = malloc(N), *out = malloc(N);
    float *b = malloc(N * sizeof *b);
    static const float ss[] = {0.25f, 0.5f, 1.0f};
    for (int si = 0; si < 3; si++) {
        float s = ss[si];
        for (int i = 0; i < N; i++) {
            x[i] = (uint8_t)dj_rng_below(&r, 256);
            /* targets near x most of the time, so both cases occur often */
            int d = (int)dj_rng_below(&r, 41) - 20;
            int v = x[i] + d;
            t[i] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
            b[i] = 16.0f * dj_rng_uniform(&r);
        }
        dj_prefilter(x, t, b, s, N, out);
        int over = 0, past = 0, short_of = 0, full = 0, limited = 0;
        for (int i = 0; i < N; i++) {
            int mv = out[i] - x[i], want = t[i] - x[i];
            float lim = s * b[i];
            over += abs(mv) > lim;
            past += (want >= 0 ? (mv < 0 || mv > want) : (mv > 0 || mv < want));
            if (abs(want) <= lim) {
                short_of += mv != want; /* the budget allows it: all the way */
                full++;
            } else {
                short_of += abs(mv) != (int)floorf(lim); /* as far as allowed */
                limited++;
            }
        }
        CHECK(over == 0);
        CHECK(past == 0);
        CHECK(short_of == 0);
        CHECK(full > N / 10 && limited > N / 10);
    }
    free(x);
    free(t);
    free(out);
    free(b);
}

static void test_prefilter_cases(void) {
    /* x, T, b, s -> out */
    static const struct {
        uint8_t x, t;
        float b, s;
        uint8_t want;
    } c[] = {
        {100, 110, 20, 1, 110},  /* budget allows: to T */
        {100, 110, 20, 0.25f, 105}, /* s*b = 5 */
        {100, 90, 4.9f, 1, 96},  /* 4.9 rounds toward x: 4 */
        {100, 90, 0.9f, 1, 100}, /* less than a level: no move */
        {250, 255, 100, 1, 255}, /* stops at T, never past 255 */
        {3, 0, 100, 1, 0},
        {0, 255, 1000, 1, 255},
        {255, 0, 1000, 0.5f, 0},
        {50, 60, -3, 1, 50},     /* negative budget: no move */
        {77, 77, 9, 1, 77},
    };
    int n = (int)(sizeof c / sizeof c[0]);
    for (int i = 0; i < n; i++) {
        uint8_t out;
        dj_prefilter(&c[i].x, &c[i].t, &c[i].b, c[i].s, 1, &out);
        if (out != c[i].want) fprintf(stderr, "case %d: got %d want %d\n", i, out, c[i].want);
        CHECK(out == c[i].want);
    }
    uint8_t x = 10, t = 20, out;
    float nanb = NAN;
    dj_prefilter(&x, &t, &nanb, 1, 1, &out);
    CHECK(out == 10);
}

static void test_budget_from_e(void) {
    const float e[6] = {-0.1f, 0.2f, 0.0f, 1.0f, -1.0f, 0.5f / 255};
    float b[6];
    dj_budget_from_e(e, 6, b);
    const float want[6] = {25.5f, 51.0f, 0.0f, 255.0f, 255.0f, 0.5f};
    for (int i = 0; i < 6; i++) CHECK_CLOSE(b[i], want[i], 1e-5, 1e-6);
    const float map[6] = {1, 2, 3, 4, 5, 6}; /* 2x3 */
    float bm[18];
    dj_budget_from_map(map, 2, 3, bm);
    for (int i = 0; i < 6; i++)
        for (int c = 0; c < 3; c++) CHECK(bm[3 * i + c] == map[i]);
}

static void test_flat_and_scale(void) {
    enum { N = 3001 };
    float *v = malloc(N * sizeof *v), *f = malloc(N * sizeof *f);
    double sum = 0;
    for (int i = 0; i < N; i++) sum += v[i] = (float)((i * 37) % 101) * 0.25f;
    double mean = sum / N;
    dj_budget_flat_like(v, N, f);
    double fs = 0;
    for (int i = 0; i < N; i++) {
        CHECK(f[i] == f[0]);
        fs += f[i];
    }
    CHECK_CLOSE(f[0], mean, 0, 1e-6);
    CHECK_CLOSE(fs / N, mean, 0, 1e-6);
    /* scale to mean 3: factor 3/mean, every value scaled by it */
    for (int i = 0; i < N; i++) f[i] = v[i];
    double k = dj_budget_scale_to_mean(f, N, 3.0);
    CHECK_CLOSE(k, 3.0 / mean, 0, 1e-12);
    double s2 = 0;
    for (int i = 0; i < N; i++) {
        CHECK_CLOSE(f[i], v[i] * (3.0 / mean), 1e-6, 1e-6);
        s2 += f[i];
    }
    CHECK_CLOSE(s2 / N, 3.0, 0, 1e-6);
    /* all zero: factor 0, unchanged */
    for (int i = 0; i < N; i++) f[i] = 0;
    CHECK(dj_budget_scale_to_mean(f, N, 5.0) == 0.0);
    for (int i = 0; i < N; i++) CHECK(f[i] == 0);
    free(v);
    free(f);
}

/* The separable blur against the plain 2-D convolution with the 2-D kernel
 * exp(-(i^2+j^2)/(2 sigma^2)) / sum, replicate border, rounded. */
static void test_smooth_target(void) {
    static const int dims[][2] = {{7, 5}, {1, 9}, {32, 32}, {3, 1}};
    static const float sigmas[] = {0.5f, 1.0f, 2.3f};
    dj_rng r;
    dj_rng_seed(&r, 7);
    for (int di = 0; di < 4; di++)
        for (int si = 0; si < 3; si++) {
            int h = dims[di][0], w = dims[di][1];
            float sg = sigmas[si];
            size_t n = (size_t)h * w * 3;
            uint8_t *img = malloc(n), *out = malloc(n);
            for (size_t i = 0; i < n; i++) img[i] = (uint8_t)dj_rng_below(&r, 256);
            CHECK_OK(dj_smooth_target(img, h, w, sg, out));
            int rad = (int)ceil(3.0 * sg), off = 0, exact = 0;
            double ksum = 0;
            for (int i = -rad; i <= rad; i++)
                for (int j = -rad; j <= rad; j++) ksum += exp(-(i * i + j * j) / (2.0 * sg * sg));
            for (int y = 0; y < h; y++)
                for (int x = 0; x < w; x++)
                    for (int c = 0; c < 3; c++) {
                        double s = 0;
                        for (int i = -rad; i <= rad; i++)
                            for (int j = -rad; j <= rad; j++) {
                                int yy = y + i < 0 ? 0 : y + i >= h ? h - 1 : y + i;
                                int xx = x + j < 0 ? 0 : x + j >= w ? w - 1 : x + j;
                                s += exp(-(i * i + j * j) / (2.0 * sg * sg)) * img[((size_t)yy * w + xx) * 3 + c];
                            }
                        int want = (int)floor(s / ksum + 0.5);
                        int got = out[((size_t)y * w + x) * 3 + c];
                        /* a float rounding can flip an exact .5 only */
                        off += abs(got - want) > 1 || (got != want && fabs(s / ksum - floor(s / ksum) - 0.5) > 1e-3);
                        exact += got == want;
                    }
            CHECK(off == 0);
            CHECK(exact >= (int)n * 99 / 100);
            free(img);
            free(out);
        }
    uint8_t img[3] = {1, 2, 3}, out[3];
    CHECK_FAILS(dj_smooth_target(img, 1, 1, 0.0f, out), DJ_EINVAL, "sigma");
    CHECK_FAILS(dj_smooth_target(img, 1, 1, NAN, out), DJ_EINVAL, "sigma");
    CHECK_FAILS(dj_smooth_target(img, 0, 1, 1.0f, out), DJ_EINVAL, "empty");
    CHECK_FAILS(dj_smooth_target(NULL, 1, 1, 1.0f, out), DJ_EINVAL, "NULL");
    /* a flat image stays flat */
    uint8_t flat[5 * 4 * 3], fo[5 * 4 * 3];
    for (int i = 0; i < 60; i++) flat[i] = 200;
    CHECK_OK(dj_smooth_target(flat, 5, 4, 1.7f, fo));
    for (int i = 0; i < 60; i++) CHECK(fo[i] == 200);
}

int main(void) {
    RUN(test_prefilter_random);
    RUN(test_prefilter_cases);
    RUN(test_budget_from_e);
    RUN(test_flat_and_scale);
    RUN(test_smooth_target);
    return check_report("test_budget");
}
