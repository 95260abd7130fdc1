/* ReLU, LeakyReLU, tanh: forward against libm, in-place use, backward from
 * the output against finite differences, accum semantics and errors. */
#include <stdlib.h>

#include "check.h"
#include "dmvjnd/dmvjnd.h"
#include "gradcheck.h"

static double ref_act(int kind, float slope, float x) {
    switch (kind) {
    case DJ_ACT_RELU: return x > 0 ? x : 0;
    case DJ_ACT_LEAKY_RELU: return x > 0 ? x : (double)slope * x;
    default: return tanh((double)x);
    }
}

static const int kinds[3] = {DJ_ACT_RELU, DJ_ACT_LEAKY_RELU, DJ_ACT_TANH};

/* Sizes on both sides of the threading threshold, and odd. */
static void test_forward(void) {
    size_t sizes[2] = {3 * 5 * 7 * 17, 300007};
    for (int s = 0; s < 2; s++) {
        size_t n = sizes[s];
        float *x = malloc(n * sizeof *x), *y = malloc(n * sizeof *y);
        gc_fill(x, n, -4, 4, 1);
        for (int k = 0; k < 3; k++) {
            CHECK_OK(dj_act_forward(kinds[k], 0.1f, x, y, n));
            double worst = 0;
            for (size_t i = 0; i < n; i++) worst = fmax(worst, fabs(y[i] - ref_act(kinds[k], 0.1f, x[i])));
            CHECK(worst <= 2e-7);
        }
        free(x);
        free(y);
    }
}

/* y may be x. */
static void test_in_place(void) {
    float x[6] = {-2, -0.5f, 0, 0.5f, 3, -1e-30f}, ref[6];
    for (int k = 0; k < 3; k++) {
        float v[6];
        memcpy(v, x, sizeof x);
        for (int i = 0; i < 6; i++) ref[i] = (float)ref_act(kinds[k], 0.2f, x[i]);
        CHECK_OK(dj_act_forward(kinds[k], 0.2f, v, v, 6));
        for (int i = 0; i < 6; i++) CHECK_CLOSE(v[i], ref[i], 1e-7, 1e-6);
    }
    float leaky[2] = {-10, 10};
    CHECK_OK(dj_act_forward(DJ_ACT_LEAKY_RELU, 0.01f, leaky, leaky, 2));
    CHECK_CLOSE(leaky[0], -0.1, 1e-7, 1e-6);
    CHECK(leaky[1] == 10);
    /* NaN propagates (torch.relu(nan) is nan) so that divergence is visible */
    float nan[1] = {NAN};
    CHECK_OK(dj_act_forward(DJ_ACT_RELU, 0, nan, nan, 1));
    CHECK(isnan(nan[0]));
}

typedef struct {
    int kind;
    float slope;
    float *x, *y, *r;
    size_t n;
} act_ctx;

static double act_loss(void *p) {
    act_ctx *c = p;
    dj_act_forward(c->kind, c->slope, c->x, c->y, c->n);
    double s = 0;
    for (size_t i = 0; i < c->n; i++) s += (double)c->y[i] * c->r[i];
    return s;
}

/* x kept at least 0.05 away from the kink at 0 (step 1e-2 never crosses). */
static void test_backward_gradcheck(void) {
    size_t n = 3 * 5 * 7 * 5;
    act_ctx c = {0, 0.1f, malloc(n * sizeof(float)), malloc(n * sizeof(float)), malloc(n * sizeof(float)), n};
    float *dx = malloc(n * sizeof *dx);
    gc_fill(c.x, n, -3, 3, 7);
    for (size_t i = 0; i < n; i++)
        if (fabsf(c.x[i]) < 0.05f) c.x[i] += c.x[i] >= 0 ? 0.1f : -0.1f;
    gc_fill(c.r, n, -1, 1, 8);
    for (int k = 0; k < 3; k++) {
        c.kind = kinds[k];
        act_loss(&c);
        CHECK_OK(dj_act_backward(c.kind, c.slope, c.y, c.r, dx, n, 0));
        CHECK(gc_check("act dx", act_loss, &c, c.x, dx, n, 1e-2f, 1e-3, 1e-2, 1000) <= 1);
    }
    free(c.x), free(c.y), free(c.r), free(dx);
}

/* dx = 0 where relu's output is 0 (PyTorch: gradient 0 at x = 0). */
static void test_backward_values(void) {
    float y[4] = {0, 2, 0, 0.5f}, dy[4] = {1, 2, 3, 4}, dx[4];
    CHECK_OK(dj_act_backward(DJ_ACT_RELU, 0, y, dy, dx, 4, 0));
    CHECK(dx[0] == 0 && dx[1] == 2 && dx[2] == 0 && dx[3] == 4);
    float yl[3] = {-0.3f, 1, -0.0f}, dxl[3];
    CHECK_OK(dj_act_backward(DJ_ACT_LEAKY_RELU, 0.1f, yl, dy, dxl, 3, 0));
    CHECK_CLOSE(dxl[0], 0.1, 1e-7, 1e-6);
    CHECK(dxl[1] == 2);
    CHECK_CLOSE(dxl[2], 0.3, 1e-7, 1e-6);
    float yt[2] = {0.5f, -0.9f}, dxt[2];
    CHECK_OK(dj_act_backward(DJ_ACT_TANH, 0, yt, dy, dxt, 2, 0));
    CHECK_CLOSE(dxt[0], 1 * (1 - 0.25), 1e-7, 1e-6);
    CHECK_CLOSE(dxt[1], 2 * (1 - 0.81), 1e-6, 1e-6);
}

static void test_accum(void) {
    size_t n = 200003; /* threaded */
    float *y = malloc(n * sizeof *y), *dy = malloc(n * sizeof *dy), *d0 = malloc(n * sizeof *d0),
          *d1 = malloc(n * sizeof *d1);
    gc_fill(y, n, -0.99f, 0.99f, 3);
    gc_fill(dy, n, -1, 1, 4);
    for (int k = 0; k < 3; k++) {
        CHECK_OK(dj_act_backward(kinds[k], 0.3f, y, dy, d0, n, 0));
        for (size_t i = 0; i < n; i++) d1[i] = NAN;
        CHECK_OK(dj_act_backward(kinds[k], 0.3f, y, dy, d1, n, 0));
        CHECK(memcmp(d0, d1, n * sizeof *d0) == 0);
        for (size_t i = 0; i < n; i++) d1[i] = 0.25f;
        CHECK_OK(dj_act_backward(kinds[k], 0.3f, y, dy, d1, n, 1));
        int bad = 0;
        for (size_t i = 0; i < n; i++) bad += d1[i] != 0.25f + d0[i];
        CHECK(bad == 0);
    }
    /* in place: dx = dy */
    memcpy(d1, dy, n * sizeof *dy);
    CHECK_OK(dj_act_backward(DJ_ACT_TANH, 0, y, d1, d1, n, 0));
    CHECK(memcmp(d0, d1, n * sizeof *d0) == 0);
    /* dx NULL: gradient not needed */
    CHECK_OK(dj_act_backward(DJ_ACT_RELU, 0, y, dy, NULL, n, 0));
    free(y), free(dy), free(d0), free(d1);
}

static void test_errors(void) {
    float a[2] = {1, 2}, b[2];
    CHECK_FAILS(dj_act_forward(7, 0, a, b, 2), DJ_EINVAL, "unknown activation kind 7");
    CHECK_FAILS(dj_act_forward(DJ_ACT_LEAKY_RELU, 0, a, b, 2), DJ_EINVAL, "slope");
    CHECK_FAILS(dj_act_forward(DJ_ACT_LEAKY_RELU, -0.1f, a, b, 2), DJ_EINVAL, "slope");
    CHECK_FAILS(dj_act_backward(DJ_ACT_LEAKY_RELU, NAN, a, a, b, 2, 0), DJ_EINVAL, "slope");
    CHECK_FAILS(dj_act_forward(DJ_ACT_RELU, 0, NULL, b, 2), DJ_EINVAL, "NULL");
    CHECK_FAILS(dj_act_backward(DJ_ACT_TANH, 0, a, NULL, b, 2, 0), DJ_EINVAL, "NULL");
    CHECK_OK(dj_act_forward(DJ_ACT_RELU, 0, NULL, NULL, 0)); /* nothing to do */
}

int main(void) {
    RUN(test_forward);
    RUN(test_in_place);
    RUN(test_backward_gradcheck);
    RUN(test_backward_values);
    RUN(test_accum);
    RUN(test_errors);
    return check_report("test_activation");
}
