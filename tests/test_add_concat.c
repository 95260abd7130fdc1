/* Element-wise add and channel concatenation: forward against naive loops,
 * concat backward slices (accum per input, NULL inputs), errors. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "dmvjnd/dmvjnd.h"
#include "gradcheck.h"

static void test_add(void) {
    int shapes[2][4] = {{3, 5, 7, 17}, {16, 32, 32, 16}}; /* small and threaded */
    for (int s = 0; s < 2; s++) {
        dj_tensor a, b, y;
        CHECK_OK(dj_tensor_alloc(&a, shapes[s][0], shapes[s][1], shapes[s][2], shapes[s][3]));
        CHECK_OK(dj_tensor_alloc(&b, shapes[s][0], shapes[s][1], shapes[s][2], shapes[s][3]));
        CHECK_OK(dj_tensor_alloc(&y, shapes[s][0], shapes[s][1], shapes[s][2], shapes[s][3]));
        size_t n = dj_tensor_numel(&a);
        gc_fill(a.data, n, -1, 1, 1);
        gc_fill(b.data, n, -1, 1, 2);
        CHECK_OK(dj_add_forward(&a, &b, &y));
        int bad = 0;
        for (size_t i = 0; i < n; i++) bad += y.data[i] != a.data[i] + b.data[i];
        /* in place: y = a */
        CHECK_OK(dj_add_forward(&a, &b, &a));
        for (size_t i = 0; i < n; i++) bad += a.data[i] != y.data[i];
        CHECK(bad == 0);
        dj_tensor_free(&a), dj_tensor_free(&b), dj_tensor_free(&y);
    }
    float buf[64] = {0};
    dj_tensor a = dj_tensor_view(buf, 2, 1, 1, 3), b = dj_tensor_view(buf + 8, 2, 1, 1, 4);
    CHECK_FAILS(dj_add_forward(&a, &b, &a), DJ_EINVAL, "add: a is 2x1x1x3 but b is 2x1x1x4");
    b = dj_tensor_view(buf + 8, 2, 1, 1, 3);
    dj_tensor y = dj_tensor_view(buf + 16, 1, 2, 1, 3);
    CHECK_FAILS(dj_add_forward(&a, &b, &y), DJ_EINVAL, "but y is 1x2x1x3");
    CHECK_FAILS(dj_add_forward(&a, NULL, &y), DJ_EINVAL, "b is NULL");
}

/* Three inputs of 3, 5 and 7 channels -> 15, pixel by pixel. */
static void check_concat(int n, int h, int w) {
    int cs[3] = {3, 5, 7};
    dj_tensor x[3], y, dy, dx[3];
    for (int i = 0; i < 3; i++) {
        CHECK_OK(dj_tensor_alloc(&x[i], n, h, w, cs[i]));
        CHECK_OK(dj_tensor_alloc(&dx[i], n, h, w, cs[i]));
        gc_fill(x[i].data, dj_tensor_numel(&x[i]), -1, 1, 10 + i);
    }
    CHECK_OK(dj_tensor_alloc(&y, n, h, w, 15));
    CHECK_OK(dj_tensor_alloc(&dy, n, h, w, 15));
    gc_fill(dy.data, dj_tensor_numel(&dy), -1, 1, 20);
    const dj_tensor *xs[3] = {&x[0], &x[1], &x[2]};
    CHECK_OK(dj_concat_forward(xs, 3, &y));
    size_t rows = (size_t)n * h * w;
    int bad = 0;
    for (size_t r = 0; r < rows; r++)
        for (int c = 0; c < 15; c++) {
            int i = c < 3 ? 0 : c < 8 ? 1 : 2, off = c < 3 ? 0 : c < 8 ? 3 : 8;
            bad += y.data[r * 15 + c] != x[i].data[r * cs[i] + c - off];
        }
    CHECK(bad == 0);

    /* backward: input 0 overwritten (garbage before), input 1 accumulated,
     * input 2 overwritten */
    for (int i = 0; i < 3; i++)
        for (size_t j = 0; j < dj_tensor_numel(&dx[i]); j++) dx[i].data[j] = i == 1 ? 0.5f : NAN;
    dj_tensor *dxs[3] = {&dx[0], &dx[1], &dx[2]};
    int accum[3] = {0, 1, 0};
    CHECK_OK(dj_concat_backward(&dy, dxs, 3, accum));
    bad = 0;
    for (size_t r = 0; r < rows; r++)
        for (int c = 0; c < 15; c++) {
            int i = c < 3 ? 0 : c < 8 ? 1 : 2, off = c < 3 ? 0 : c < 8 ? 3 : 8;
            float want = dy.data[r * 15 + c] + (i == 1 ? 0.5f : 0.0f);
            bad += dx[i].data[r * cs[i] + c - off] != want;
        }
    CHECK(bad == 0);
    for (int i = 0; i < 3; i++) dj_tensor_free(&x[i]), dj_tensor_free(&dx[i]);
    dj_tensor_free(&y), dj_tensor_free(&dy);
}

static void test_concat(void) {
    check_concat(3, 5, 7);
    check_concat(16, 32, 32); /* threaded */
}

/* More parts than concat backward handles in one pass over dy (64): 70
 * one-channel parts, odd ones accumulated, every other one wanted. */
static void test_concat_backward_many(void) {
    enum { P = 70, ROWS = 3 * 4 * 5 };
    float g[ROWS * P], d[P][ROWS];
    gc_fill(g, ROWS * P, -1, 1, 33);
    dj_tensor dy = dj_tensor_view(g, 3, 4, 5, P), t[P];
    dj_tensor *dxs[P];
    int acc[P];
    for (int i = 0; i < P; i++) {
        for (int r = 0; r < ROWS; r++) d[i][r] = (float)i;
        t[i] = dj_tensor_view(i % 4 == 3 ? NULL : d[i], 3, 4, 5, 1); /* every 4th: width only */
        dxs[i] = &t[i];
        acc[i] = i % 2;
    }
    CHECK_OK(dj_concat_backward(&dy, dxs, P, acc));
    int bad = 0;
    for (int i = 0; i < P; i++)
        for (int r = 0; r < ROWS; r++) {
            float want = i % 4 == 3 ? (float)i : g[r * P + i] + (i % 2 ? (float)i : 0.f);
            bad += d[i][r] != want;
        }
    CHECK(bad == 0);
}

/* dxs[i] NULL: no gradient for that input. The others still get their slice. */
static void test_concat_backward_null(void) {
    /* dy: one pixel, channels [a0 a1 | b0 b1 b2 | c0] = 1..6 */
    float g[6] = {1, 2, 3, 4, 5, 6}, da[2], db[3], dc[1];
    dj_tensor dy = dj_tensor_view(g, 1, 1, 1, 6);
    dj_tensor ta = dj_tensor_view(da, 1, 1, 1, 2), tb = dj_tensor_view(db, 1, 1, 1, 3);
    dj_tensor tc = dj_tensor_view(dc, 1, 1, 1, 1);
    int acc[3] = {0, 0, 0};
    dj_tensor *mid_null[3] = {&ta, NULL, &tc};
    CHECK_OK(dj_concat_backward(&dy, mid_null, 3, acc));
    CHECK(da[0] == 1 && da[1] == 2 && dc[0] == 6);
    dj_tensor *first_null[3] = {NULL, &tb, &tc};
    CHECK_OK(dj_concat_backward(&dy, first_null, 3, acc));
    CHECK(db[0] == 3 && db[1] == 4 && db[2] == 5 && dc[0] == 6);
    /* NULL on both sides of b: its offset is unknown... */
    dj_tensor *ambiguous[3] = {NULL, &tb, NULL};
    CHECK_FAILS(dj_concat_backward(&dy, ambiguous, 3, acc), DJ_EINVAL, "channel offset is unknown");
    /* ...unless the caller names the widths with data = NULL */
    dj_tensor wa = dj_tensor_view(NULL, 1, 1, 1, 2), wc = dj_tensor_view(NULL, 1, 1, 1, 1);
    dj_tensor *named[3] = {&wa, &tb, &wc};
    db[0] = db[1] = db[2] = 0;
    CHECK_OK(dj_concat_backward(&dy, named, 3, acc));
    CHECK(db[0] == 3 && db[1] == 4 && db[2] == 5);
    dj_tensor *none[3] = {NULL, NULL, NULL};
    CHECK_OK(dj_concat_backward(&dy, none, 3, NULL));
}

static void test_concat_errors(void) {
    float buf[64] = {0};
    dj_tensor a = dj_tensor_view(buf, 2, 1, 1, 3), b = dj_tensor_view(buf + 8, 2, 1, 1, 4);
    dj_tensor y = dj_tensor_view(buf + 16, 2, 1, 1, 8);
    const dj_tensor *xs[2] = {&a, &b};
    CHECK_FAILS(dj_concat_forward(xs, 2, &y), DJ_EINVAL, "concat: inputs have 7 channels in all but y has 8");
    dj_tensor b2 = dj_tensor_view(buf + 8, 1, 2, 1, 4);
    const dj_tensor *xs2[2] = {&a, &b2};
    y = dj_tensor_view(buf + 16, 2, 1, 1, 7);
    CHECK_FAILS(dj_concat_forward(xs2, 2, &y), DJ_EINVAL, "xs[1] is 1x2x1 (n, h, w) but y is 2x1x1");
    CHECK_FAILS(dj_concat_forward(xs, 0, &y), DJ_EINVAL, "count 0");
    const dj_tensor *xs3[2] = {&a, NULL};
    CHECK_FAILS(dj_concat_forward(xs3, 2, &y), DJ_EINVAL, "xs[1] is NULL");
    dj_tensor *dxs[2] = {&a, &b};
    int acc[2] = {0, 0};
    dj_tensor dy = dj_tensor_view(buf + 16, 2, 1, 1, 9);
    CHECK_FAILS(dj_concat_backward(&dy, dxs, 2, acc), DJ_EINVAL, "inputs have 7 channels in all but dy has 9");
    dy = dj_tensor_view(buf + 16, 2, 1, 1, 7);
    CHECK_FAILS(dj_concat_backward(&dy, dxs, 2, NULL), DJ_EINVAL, "accum is NULL");
    CHECK_OK(dj_concat_backward(&dy, dxs, 2, acc));
}

/* Fused residual join: y = relu(a + b) and its backward against naive loops
 * (values kept away from 0 so the mask is unambiguous). */
static void test_add_relu(void) {
    const int n = 3, h = 5, w = 7, c = 17;
    size_t cnt = (size_t)n * h * w * c;
    float *a = malloc(cnt * 4), *b = malloc(cnt * 4), *y = malloc(cnt * 4), *dy = malloc(cnt * 4);
    float *da = malloc(cnt * 4), *db = malloc(cnt * 4);
    gc_fill(a, cnt, -1, 1, 1);
    gc_fill(b, cnt, -1, 1, 2);
    gc_fill(dy, cnt, -1, 1, 3);
    for (size_t i = 0; i < cnt; i++)
        if (fabsf(a[i] + b[i]) < 1e-3f) a[i] += 0.01f;
    dj_tensor ta = dj_tensor_view(a, n, h, w, c), tb = dj_tensor_view(b, n, h, w, c);
    dj_tensor ty = dj_tensor_view(y, n, h, w, c), tdy = dj_tensor_view(dy, n, h, w, c);
    dj_tensor tda = dj_tensor_view(da, n, h, w, c), tdb = dj_tensor_view(db, n, h, w, c);
    CHECK_OK(dj_add_relu_forward(&ta, &tb, 1, &ty));
    int bad = 0;
    for (size_t i = 0; i < cnt; i++) bad += y[i] != (a[i] + b[i] > 0 ? a[i] + b[i] : 0);
    CHECK(bad == 0);
    for (size_t i = 0; i < cnt; i++) db[i] = 0.5f; /* accumulated into */
    CHECK_OK(dj_add_relu_backward(&ty, &tdy, 1, &tda, 0, &tdb, 1));
    bad = 0;
    for (size_t i = 0; i < cnt; i++) {
        float g = a[i] + b[i] > 0 ? dy[i] : 0;
        bad += da[i] != g || db[i] != 0.5f + g;
    }
    CHECK(bad == 0);
    CHECK_OK(dj_add_relu_backward(&ty, &tdy, 0, &tda, 0, NULL, 0)); /* plain sum passes dy through */
    CHECK(memcmp(da, dy, cnt * 4) == 0);
    dj_tensor small = dj_tensor_view(db, n, h, w, c - 1);
    CHECK_FAILS(dj_add_relu_backward(&ty, &tdy, 1, &tda, 0, &small, 0), DJ_EINVAL, "add:");
    free(a), free(b), free(y), free(dy), free(da), free(db);
}

int main(void) {
    RUN(test_add);
    RUN(test_add_relu);
    RUN(test_concat);
    RUN(test_concat_backward_null);
    RUN(test_concat_backward_many);
    RUN(test_concat_errors);
    return check_report("test_add_concat");
}
