/* Linear layer: forward against a naive double loop (x flattened in NHWC
 * order, weight (out, in) as torch.nn.Linear), backward against finite
 * differences and the reference, accum semantics and errors. */
#include <stdlib.h>

#include "check.h"
#include "dmvjnd/dmvjnd.h"
#include "gradcheck.h"

static float *falloc(size_t n) { return (float *)calloc(n ? n : 1, sizeof(float)); }

static void ref_forward(const dj_tensor *x, const float *w, const float *b, int out, double *y) {
    int in = x->h * x->w * x->c;
    for (int i = 0; i < x->n; i++)
        for (int o = 0; o < out; o++) {
            double s = b ? b[o] : 0;
            for (int j = 0; j < in; j++) s += (double)x->data[(size_t)i * in + j] * w[(size_t)o * in + j];
            y[(size_t)i * out + o] = s;
        }
}

static void check_forward(int n, int h, int w, int c, int out, int bias) {
    int in = h * w * c;
    dj_tensor x, y;
    CHECK_OK(dj_tensor_alloc(&x, n, h, w, c));
    CHECK_OK(dj_tensor_alloc(&y, n, 1, 1, out));
    float *wt = falloc((size_t)out * in), *b = bias ? falloc(out) : NULL;
    gc_fill(x.data, dj_tensor_numel(&x), -1, 1, 1);
    gc_fill(wt, (size_t)out * in, -0.5f, 0.5f, 2);
    if (b) gc_fill(b, out, -1, 1, 3);
    for (int i = 0; i < n * out; i++) y.data[i] = NAN; /* y's old contents must not matter */
    CHECK_OK(dj_linear_forward(&x, wt, b, &y));
    double *ry = malloc((size_t)n * out * sizeof *ry);
    ref_forward(&x, wt, b, out, ry);
    double worst = 0;
    for (int i = 0; i < n * out; i++) worst = fmax(worst, fabs(y.data[i] - ry[i]));
    CHECK(worst < 1e-5 * sqrt((double)in));
    free(ry), free(wt), free(b);
    dj_tensor_free(&x), dj_tensor_free(&y);
}

static void test_forward(void) {
    check_forward(3, 2, 3, 5, 7, 1); /* spatial input flattened in NHWC order */
    check_forward(3, 1, 1, 17, 3, 0);
    check_forward(5, 1, 1, 64, 10, 1); /* ResNet-20 head */
    check_forward(128, 1, 1, 64, 10, 1);
    check_forward(128, 1, 1, 512, 10, 1); /* VGG-11 head: above LIN_SERIAL, so threaded */
    check_forward(64, 4, 4, 96, 33, 0);    /* wide and odd */
    check_forward(1, 1, 1, 1, 1, 1);
}

/* ---------------------------------------------------------------- backward */

typedef struct {
    dj_tensor x, y;
    float *w, *b, *r;
} lin_ctx;

static double lin_loss(void *p) {
    lin_ctx *k = p;
    dj_linear_forward(&k->x, k->w, k->b, &k->y);
    double s = 0;
    size_t n = dj_tensor_numel(&k->y);
    for (size_t i = 0; i < n; i++) s += (double)k->y.data[i] * k->r[i];
    return s;
}

static void check_backward(int n, int h, int w, int c, int out) {
    int in = h * w * c;
    lin_ctx k;
    CHECK_OK(dj_tensor_alloc(&k.x, n, h, w, c));
    CHECK_OK(dj_tensor_alloc(&k.y, n, 1, 1, out));
    size_t nw = (size_t)out * in, nx = dj_tensor_numel(&k.x);
    k.w = falloc(nw), k.b = falloc(out), k.r = falloc((size_t)n * out);
    gc_fill(k.x.data, nx, -1, 1, 11);
    gc_fill(k.w, nw, -0.5f, 0.5f, 12);
    gc_fill(k.b, out, -1, 1, 13);
    gc_fill(k.r, (size_t)n * out, -1, 1, 14);
    dj_tensor dy = dj_tensor_view(k.r, n, 1, 1, out), dx;
    CHECK_OK(dj_tensor_alloc(&dx, n, h, w, c));
    float *dw = falloc(nw), *db = falloc(out);
    CHECK_OK(dj_linear_backward(&k.x, k.w, &dy, &dx, 0, dw, db));
    CHECK(gc_check("linear dx", lin_loss, &k, k.x.data, dx.data, nx, 1e-2f, 1e-3, 1e-2, 300) <= 1);
    CHECK(gc_check("linear dw", lin_loss, &k, k.w, dw, nw, 1e-2f, 1e-3, 1e-2, 300) <= 1);
    CHECK(gc_check("linear db", lin_loss, &k, k.b, db, out, 1e-2f, 1e-3, 1e-2, 300) <= 1);

    /* exact formulas: dx = dy w, dw = dy^T x, db = column sums of dy */
    double worst = 0;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < in; j++) {
            double s = 0;
            for (int o = 0; o < out; o++) s += (double)k.r[i * out + o] * k.w[(size_t)o * in + j];
            worst = fmax(worst, fabs(s - dx.data[(size_t)i * in + j]));
        }
    for (int o = 0; o < out; o++) {
        double sb = 0;
        for (int i = 0; i < n; i++) sb += k.r[i * out + o];
        worst = fmax(worst, fabs(sb - db[o]));
        for (int j = 0; j < in; j++) {
            double s = 0;
            for (int i = 0; i < n; i++) s += (double)k.r[i * out + o] * k.x.data[(size_t)i * in + j];
            worst = fmax(worst, fabs(s - dw[(size_t)o * in + j]));
        }
    }
    CHECK(worst < 1e-5 * sqrt((double)(n + in + out)));

    /* accum = 0 overwrites garbage, accum = 1 adds; dw and db always add */
    float *dx0 = falloc(nx), *dw0 = falloc(nw), *db0 = falloc(out);
    memcpy(dx0, dx.data, nx * sizeof(float));
    memcpy(dw0, dw, nw * sizeof(float));
    memcpy(db0, db, out * sizeof(float));
    for (size_t i = 0; i < nx; i++) dx.data[i] = NAN;
    CHECK_OK(dj_linear_backward(&k.x, k.w, &dy, &dx, 0, NULL, NULL));
    CHECK(check_max_err(dx.data, dx0, nx, 1e-6, 1e-6) <= 1);
    for (size_t i = 0; i < nx; i++) dx.data[i] = 2.0f;
    CHECK_OK(dj_linear_backward(&k.x, k.w, &dy, &dx, 1, dw, db));
    int bad = 0;
    for (size_t i = 0; i < nx; i++) bad += !(fabsf(dx.data[i] - (2.0f + dx0[i])) <= 1e-5f);
    for (size_t i = 0; i < nw; i++) bad += !(fabsf(dw[i] - 2 * dw0[i]) <= 1e-5f * (1 + fabsf(dw0[i])));
    for (int i = 0; i < out; i++) bad += !(fabsf(db[i] - 2 * db0[i]) <= 1e-5f * (1 + fabsf(db0[i])));
    CHECK(bad == 0);
    /* everything optional: frozen layer, first layer */
    CHECK_OK(dj_linear_backward(&k.x, k.w, &dy, NULL, 0, NULL, NULL));
    free(dx0), free(dw0), free(db0), free(dw), free(db), free(k.w), free(k.b), free(k.r);
    dj_tensor_free(&k.x), dj_tensor_free(&k.y), dj_tensor_free(&dx);
}

static void test_backward(void) {
    check_backward(3, 2, 3, 5, 7);
    check_backward(3, 1, 1, 17, 3);
    check_backward(7, 1, 1, 64, 10);
    check_backward(128, 1, 1, 512, 10); /* threaded */
}

static void test_errors(void) {
    float buf[256] = {0}, wt[256] = {0};
    dj_tensor x = dj_tensor_view(buf, 3, 1, 1, 5), y = dj_tensor_view(buf + 64, 2, 1, 1, 4);
    CHECK_FAILS(dj_linear_forward(&x, wt, NULL, &y), DJ_EINVAL, "linear: x has batch 3 but y has 2");
    y = dj_tensor_view(buf + 64, 3, 2, 1, 4);
    CHECK_FAILS(dj_linear_forward(&x, wt, NULL, &y), DJ_EINVAL, "y must be n x 1 x 1 x out");
    y = dj_tensor_view(buf + 64, 3, 1, 1, 4);
    CHECK_FAILS(dj_linear_forward(&x, NULL, NULL, &y), DJ_EINVAL, "weight is NULL");
    dj_tensor dx = dj_tensor_view(buf + 128, 3, 1, 1, 6);
    CHECK_FAILS(dj_linear_backward(&x, wt, &y, &dx, 0, NULL, NULL), DJ_EINVAL,
                "linear backward: dx is 3x1x1x6 but x is 3x1x1x5");
    dj_tensor dy = dj_tensor_view(buf + 64, 4, 1, 1, 4);
    CHECK_FAILS(dj_linear_backward(&x, wt, &dy, NULL, 0, wt, NULL), DJ_EINVAL, "x has batch 3 but dy has 4");
    CHECK_FAILS(dj_linear_forward(NULL, wt, NULL, &y), DJ_EINVAL, "x is NULL");
}

int main(void) {
    RUN(test_forward);
    RUN(test_backward);
    RUN(test_errors);
    return check_report("test_linear");
}
