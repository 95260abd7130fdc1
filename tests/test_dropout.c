/* Inverted dropout: keep rate, scaling, mask reuse in backward,
 * reproducibility from the seed (whatever the thread count), errors. */
#include <stdlib.h>

#include "check.h"
#include "dmvjnd/dmvjnd.h"
#include "gradcheck.h"

static float *falloc(size_t n) { return (float *)calloc(n ? n : 1, sizeof(float)); }

/* Over a million elements the kept fraction is 1 - p within 5 sigma, and
 * every output is 0 or x / (1 - p). */
static void test_keep_rate_and_scale(void) {
    const float ps[3] = {0.1f, 0.5f, 0.8f};
    int n = 1000003;
    dj_tensor x, y;
    CHECK_OK(dj_tensor_alloc(&x, 1, 1, 1, n));
    CHECK_OK(dj_tensor_alloc(&y, 1, 1, 1, n));
    gc_fill(x.data, n, 0.5f, 2, 1);
    uint8_t *mask = malloc(n);
    dj_rng rng;
    dj_rng_seed(&rng, 42);
    for (int k = 0; k < 3; k++) {
        float p = ps[k], scale = 1.0f / (1.0f - p);
        CHECK_OK(dj_dropout_forward(p, &rng, &x, &y, mask));
        size_t kept = 0;
        int bad = 0;
        for (int i = 0; i < n; i++) {
            bad += mask[i] > 1;
            kept += mask[i];
            float want = mask[i] ? x.data[i] * scale : 0.0f;
            bad += y.data[i] != want;
        }
        CHECK(bad == 0);
        double frac = (double)kept / n, sigma = sqrt(p * (1 - p) / n);
        CHECK(fabs(frac - (1 - p)) < 5 * sigma);
        if (!(fabs(frac - (1 - p)) < 5 * sigma)) fprintf(stderr, "  p = %g: kept %.5f\n", p, frac);
    }
    /* neighbours are independent: P(both kept) = (1-p)^2 */
    size_t both = 0;
    for (int i = 0; i + 1 < n; i += 2) both += mask[i] & mask[i + 1];
    double pb = 0.2 * 0.2, sb = sqrt(pb * (1 - pb) / (n / 2));
    CHECK(fabs((double)both / (n / 2) - pb) < 5 * sb);
    free(mask);
    dj_tensor_free(&x), dj_tensor_free(&y);
}

static void test_p_zero_is_identity(void) {
    float x[7] = {1, -2, 3, -4, 5, -6, 7}, y[7];
    uint8_t mask[7];
    dj_rng rng;
    dj_rng_seed(&rng, 1);
    dj_tensor tx = dj_tensor_view(x, 1, 1, 1, 7), ty = dj_tensor_view(y, 1, 1, 1, 7);
    CHECK_OK(dj_dropout_forward(0.0f, &rng, &tx, &ty, mask));
    for (int i = 0; i < 7; i++) CHECK(y[i] == x[i] && mask[i] == 1);
}

/* Same seed -> same mask, with 1 or 2 threads; the generator advances so the
 * next call draws a different mask. */
static void test_reproducible(void) {
    int n = 300007; /* several blocks, threaded */
    dj_tensor x, y;
    CHECK_OK(dj_tensor_alloc(&x, 3, 5, 7, n / 105 + 1));
    CHECK_OK(dj_tensor_alloc(&y, 3, 5, 7, n / 105 + 1));
    size_t numel = dj_tensor_numel(&x);
    uint8_t *m1 = malloc(numel), *m2 = malloc(numel), *m3 = malloc(numel);
    int threads = dj_get_num_threads();
    dj_rng a, b;
    dj_rng_seed(&a, 7);
    dj_rng_seed(&b, 7);
    dj_set_num_threads(1);
    CHECK_OK(dj_dropout_forward(0.5f, &a, &x, &y, m1));
    dj_set_num_threads(2);
    CHECK_OK(dj_dropout_forward(0.5f, &b, &x, &y, m2));
    dj_set_num_threads(threads);
    CHECK(memcmp(m1, m2, numel) == 0);
    CHECK(memcmp(&a, &b, sizeof a) == 0);
    CHECK_OK(dj_dropout_forward(0.5f, &a, &x, &y, m3));
    CHECK(memcmp(m1, m3, numel) != 0);
    /* a different seed gives a different mask */
    dj_rng_seed(&b, 8);
    CHECK_OK(dj_dropout_forward(0.5f, &b, &x, &y, m2));
    CHECK(memcmp(m1, m2, numel) != 0);
    free(m1), free(m2), free(m3);
    dj_tensor_free(&x), dj_tensor_free(&y);
}

typedef struct {
    dj_tensor x, y;
    float *r;
    uint8_t *mask;
    float p;
} drop_ctx;

/* Reseeds every time, so each evaluation draws the same mask. */
static double drop_loss(void *pc) {
    drop_ctx *c = pc;
    dj_rng rng;
    dj_rng_seed(&rng, 99);
    dj_dropout_forward(c->p, &rng, &c->x, &c->y, c->mask);
    double s = 0;
    size_t n = dj_tensor_numel(&c->y);
    for (size_t i = 0; i < n; i++) s += (double)c->y.data[i] * c->r[i];
    return s;
}

static void test_backward(void) {
    drop_ctx c;
    c.p = 0.3f;
    CHECK_OK(dj_tensor_alloc(&c.x, 3, 5, 7, 5));
    CHECK_OK(dj_tensor_alloc(&c.y, 3, 5, 7, 5));
    size_t n = dj_tensor_numel(&c.x);
    c.r = falloc(n);
    c.mask = malloc(n);
    gc_fill(c.x.data, n, -1, 1, 3);
    gc_fill(c.r, n, -1, 1, 4);
    drop_loss(&c);
    dj_tensor dy = dj_tensor_view(c.r, 3, 5, 7, 5), dx;
    CHECK_OK(dj_tensor_alloc(&dx, 3, 5, 7, 5));
    CHECK_OK(dj_dropout_backward(c.p, c.mask, &dy, &dx, 0));
    CHECK(gc_check("dropout dx", drop_loss, &c, c.x.data, dx.data, n, 1e-2f, 1e-3, 1e-2, 1000) <= 1);
    /* exactly dy * mask / (1 - p); accum semantics */
    int bad = 0;
    float scale = 1.0f / (1.0f - c.p);
    for (size_t i = 0; i < n; i++) bad += dx.data[i] != (c.mask[i] ? c.r[i] * scale : 0.0f);
    for (size_t i = 0; i < n; i++) dx.data[i] = NAN;
    CHECK_OK(dj_dropout_backward(c.p, c.mask, &dy, &dx, 0));
    for (size_t i = 0; i < n; i++) bad += dx.data[i] != (c.mask[i] ? c.r[i] * scale : 0.0f);
    for (size_t i = 0; i < n; i++) dx.data[i] = 1.0f;
    CHECK_OK(dj_dropout_backward(c.p, c.mask, &dy, &dx, 1));
    for (size_t i = 0; i < n; i++) bad += dx.data[i] != 1.0f + (c.mask[i] ? c.r[i] * scale : 0.0f);
    CHECK(bad == 0);
    CHECK_OK(dj_dropout_backward(c.p, c.mask, &dy, NULL, 0));
    free(c.r), free(c.mask);
    dj_tensor_free(&c.x), dj_tensor_free(&c.y), dj_tensor_free(&dx);
}

static void test_errors(void) {
    float x[8] = {0}, y[8];
    uint8_t mask[8];
    dj_rng rng;
    dj_rng_seed(&rng, 1);
    dj_tensor tx = dj_tensor_view(x, 2, 1, 1, 4), ty = dj_tensor_view(y, 2, 1, 1, 4);
    CHECK_FAILS(dj_dropout_forward(1.0f, &rng, &tx, &ty, mask), DJ_EINVAL, "dropout: p = 1 must be in [0, 1)");
    CHECK_FAILS(dj_dropout_forward(-0.1f, &rng, &tx, &ty, mask), DJ_EINVAL, "must be in [0, 1)");
    CHECK_FAILS(dj_dropout_forward(NAN, &rng, &tx, &ty, mask), DJ_EINVAL, "must be in [0, 1)");
    CHECK_FAILS(dj_dropout_forward(0.5f, NULL, &tx, &ty, mask), DJ_EINVAL, "rng and mask are required");
    CHECK_FAILS(dj_dropout_forward(0.5f, &rng, &tx, &ty, NULL), DJ_EINVAL, "rng and mask are required");
    ty = dj_tensor_view(y, 2, 1, 1, 3);
    CHECK_FAILS(dj_dropout_forward(0.5f, &rng, &tx, &ty, mask), DJ_EINVAL, "x is 2x1x1x4 but y is 2x1x1x3");
    CHECK_FAILS(dj_dropout_backward(0.5f, mask, &tx, &ty, 0), DJ_EINVAL,
                "dropout backward: dy is 2x1x1x4 but dx is 2x1x1x3");
    CHECK_FAILS(dj_dropout_backward(0.5f, NULL, &tx, &tx, 0), DJ_EINVAL, "mask is NULL");
}

int main(void) {
    RUN(test_keep_rate_and_scale);
    RUN(test_p_zero_is_identity);
    RUN(test_reproducible);
    RUN(test_backward);
    RUN(test_errors);
    return check_report("test_dropout");
}
