/* Max, average and global average pooling against naive reference loops on
 * awkward shapes (odd sizes where floor mode matters, padding, stride 2),
 * backward against finite differences, accum semantics and errors. */
#include <stdlib.h>

#include "check.h"
#include "dmvjnd/dmvjnd.h"
#include "gradcheck.h"

static const dj_pool_desc descs[] = {
    {3, 2, 1}, /* ResNet stem style */
    {2, 2, 0}, /* odd inputs: the last row/column is dropped */
    {3, 1, 1},
    {3, 3, 0},
    {1, 1, 0},
    {5, 2, 2},
    {4, 3, 2},
};
#define NDESC (int)(sizeof descs / sizeof descs[0])

static float *falloc(size_t n) { return (float *)calloc(n ? n : 1, sizeof(float)); }

static size_t at(const dj_tensor *t, int i, int y, int x, int c) {
    return (((size_t)i * t->h + y) * t->w + x) * t->c + c;
}

/* ------------------------------------------------------------ references */

/* Straight from the definition: padding is -inf for max, 0 for average,
 * and the average divides by k*k (count_include_pad, floor mode). */
static void ref_pool(const dj_pool_desc *d, const dj_tensor *x, dj_tensor *y, int32_t *argmax, int is_max) {
    for (int i = 0; i < y->n; i++)
        for (int oy = 0; oy < y->h; oy++)
            for (int ox = 0; ox < y->w; ox++)
                for (int c = 0; c < y->c; c++) {
                    double best = -INFINITY, sum = 0;
                    int32_t arg = -1;
                    for (int ky = 0; ky < d->k; ky++)
                        for (int kx = 0; kx < d->k; kx++) {
                            int iy = oy * d->stride - d->pad + ky, ix = ox * d->stride - d->pad + kx;
                            if (iy < 0 || iy >= x->h || ix < 0 || ix >= x->w) continue;
                            double v = x->data[at(x, i, iy, ix, c)];
                            sum += v;
                            if (v > best) {
                                best = v;
                                arg = (int32_t)((iy * x->w + ix) * x->c + c);
                            }
                        }
                    size_t o = at(y, i, oy, ox, c);
                    y->data[o] = (float)(is_max ? best : sum / (d->k * d->k));
                    if (argmax) argmax[o] = arg;
                }
}

/* Backward by the definition: scatter dy to the window's argmax (max), to
 * every window element / (k*k) (avg), or to every pixel / (h*w) (gap). */
static void ref_backward(const dj_pool_desc *d, int kind, const dj_tensor *dy, const int32_t *argmax, dj_tensor *dx) {
    memset(dx->data, 0, dj_tensor_numel(dx) * sizeof(float));
    size_t plane = (size_t)dx->h * dx->w * dx->c;
    for (int i = 0; i < dy->n; i++)
        for (int oy = 0; oy < dy->h; oy++)
            for (int ox = 0; ox < dy->w; ox++)
                for (int c = 0; c < dy->c; c++) {
                    size_t o = at(dy, i, oy, ox, c);
                    float g = dy->data[o];
                    if (kind == 0) {
                        dx->data[i * plane + (size_t)argmax[o]] += g;
                    } else if (kind == 2) {
                        for (int p = 0; p < dx->h * dx->w; p++)
                            dx->data[i * plane + (size_t)p * dx->c + c] += g / (dx->h * dx->w);
                    } else {
                        for (int ky = 0; ky < d->k; ky++)
                            for (int kx = 0; kx < d->k; kx++) {
                                int iy = oy * d->stride - d->pad + ky, ix = ox * d->stride - d->pad + kx;
                                if (iy < 0 || iy >= dx->h || ix < 0 || ix >= dx->w) continue;
                                dx->data[at(dx, i, iy, ix, c)] += g / (d->k * d->k);
                            }
                    }
                }
}

/* ------------------------------------------------------------ out shape */

static void test_out_shape(void) {
    int oh = 0, ow = 0;
    dj_pool_desc d = {2, 2, 0};
    CHECK_OK(dj_pool_out_shape(&d, 5, 7, &oh, &ow));
    CHECK(oh == 2 && ow == 3);
    d = (dj_pool_desc){3, 2, 1};
    CHECK_OK(dj_pool_out_shape(&d, 5, 7, &oh, &ow));
    CHECK(oh == 3 && ow == 4);
    CHECK_OK(dj_pool_out_shape(&d, 32, 32, &oh, &ow));
    CHECK(oh == 16 && ow == 16);
    d = (dj_pool_desc){3, 2, 0};
    CHECK_OK(dj_pool_out_shape(&d, 5, 7, &oh, &ow));
    CHECK(oh == 2 && ow == 3);
    d = (dj_pool_desc){3, 1, 0};
    CHECK_OK(dj_pool_out_shape(&d, 3, 3, &oh, &ow));
    CHECK(oh == 1 && ow == 1);
    CHECK_FAILS(dj_pool_out_shape(&d, 2, 3, &oh, &ow), DJ_EINVAL, "window 3 does not fit input 2x3");
    d = (dj_pool_desc){3, 2, 2};
    CHECK_FAILS(dj_pool_out_shape(&d, 5, 7, &oh, &ow), DJ_EINVAL, "pad 2 exceeds k/2");
    d = (dj_pool_desc){3, 0, 1};
    CHECK_FAILS(dj_pool_out_shape(&d, 5, 7, &oh, &ow), DJ_EINVAL, "stride = 0");
    d = (dj_pool_desc){0, 1, 0};
    CHECK_FAILS(dj_pool_out_shape(&d, 5, 7, &oh, &ow), DJ_EINVAL, "k = 0");
    CHECK_FAILS(dj_pool_out_shape(NULL, 5, 7, &oh, &ow), DJ_EINVAL, "descriptor is NULL");
}

/* ------------------------------------------------------------- forward */

static void check_forward(const dj_pool_desc *d, int n, int h, int w, int c, int is_max, int ties) {
    int oh, ow;
    CHECK_OK(dj_pool_out_shape(d, h, w, &oh, &ow));
    dj_tensor x, y, ry;
    CHECK_OK(dj_tensor_alloc(&x, n, h, w, c));
    CHECK_OK(dj_tensor_alloc(&y, n, oh, ow, c));
    CHECK_OK(dj_tensor_alloc(&ry, n, oh, ow, c));
    size_t numel = dj_tensor_numel(&x), onumel = dj_tensor_numel(&y);
    gc_fill(x.data, numel, -3, 3, 100 + c);
    if (ties) /* few distinct values: many ties, which go to the first */
        for (size_t i = 0; i < numel; i++) x.data[i] = floorf(x.data[i]);
    int32_t *am = malloc(onumel * sizeof *am), *ram = malloc(onumel * sizeof *ram);
    ref_pool(d, &x, &ry, ram, is_max);
    if (is_max) {
        CHECK_OK(dj_maxpool_forward(d, &x, &y, am));
        CHECK(memcmp(y.data, ry.data, onumel * sizeof(float)) == 0);
        CHECK(memcmp(am, ram, onumel * sizeof *am) == 0);
        CHECK_OK(dj_maxpool_forward(d, &x, &y, NULL)); /* inference: no argmax */
        CHECK(memcmp(y.data, ry.data, onumel * sizeof(float)) == 0);
    } else {
        CHECK_OK(dj_avgpool_forward(d, &x, &y));
        CHECK(check_max_err(y.data, ry.data, onumel, 1e-6, 1e-6) <= 1);
    }
    free(am), free(ram);
    dj_tensor_free(&x), dj_tensor_free(&y), dj_tensor_free(&ry);
}

static void test_maxpool_forward(void) {
    for (int i = 0; i < NDESC; i++) {
        check_forward(&descs[i], 3, 5, 7, 3, 1, 0);
        check_forward(&descs[i], 3, 7, 5, 17, 1, 1);
        check_forward(&descs[i], 2, 9, 9, 5, 1, 1);
    }
    check_forward(&descs[0], 16, 32, 32, 16, 1, 0); /* threaded */
}

static void test_avgpool_forward(void) {
    for (int i = 0; i < NDESC; i++) {
        check_forward(&descs[i], 3, 5, 7, 3, 0, 0);
        check_forward(&descs[i], 3, 7, 5, 17, 0, 0);
    }
    check_forward(&descs[1], 16, 32, 32, 16, 0, 0); /* threaded */
}

/* count_include_pad: a corner window of a padded 3x3/s2/p1 pool divides by 9. */
static void test_avgpool_counts_padding(void) {
    float x[4] = {1, 2, 3, 4}, y[1];
    dj_tensor tx = dj_tensor_view(x, 1, 2, 2, 1), ty = dj_tensor_view(y, 1, 1, 1, 1);
    dj_pool_desc d = {3, 2, 1};
    CHECK_OK(dj_avgpool_forward(&d, &tx, &ty));
    CHECK_CLOSE(y[0], 10.0 / 9, 1e-7, 1e-6);
}

/* Padding acts as -inf: an all-negative image never yields 0. */
static void test_maxpool_padding_is_minus_inf(void) {
    float x[4] = {-5, -6, -7, -8}, y[4];
    int32_t am[4];
    dj_tensor tx = dj_tensor_view(x, 1, 2, 2, 1), ty = dj_tensor_view(y, 1, 2, 2, 1);
    dj_pool_desc d = {3, 1, 1};
    CHECK_OK(dj_maxpool_forward(&d, &tx, &ty, am));
    for (int i = 0; i < 4; i++) CHECK(y[i] == -5 && am[i] == 0);
    /* NaN wins a window, as in PyTorch */
    x[3] = NAN;
    CHECK_OK(dj_maxpool_forward(&d, &tx, &ty, am));
    for (int i = 0; i < 4; i++) CHECK(isnan(y[i]) && am[i] == 3);
}

/* ------------------------------------------------------------- backward */

typedef struct {
    const dj_pool_desc *d;
    int kind; /* 0 max, 1 avg, 2 gap */
    dj_tensor x, y;
    float *r;
} pool_ctx;

static double pool_loss(void *p) {
    pool_ctx *c = p;
    if (c->kind == 0) dj_maxpool_forward(c->d, &c->x, &c->y, NULL);
    if (c->kind == 1) dj_avgpool_forward(c->d, &c->x, &c->y);
    if (c->kind == 2) dj_gap_forward(&c->x, &c->y);
    double s = 0;
    size_t n = dj_tensor_numel(&c->y);
    for (size_t i = 0; i < n; i++) s += (double)c->y.data[i] * c->r[i];
    return s;
}

/* Backward against the reference scatter, and against finite differences
 * when `fd` (small shapes: float loss noise grows with the tensor). */
static void check_backward(const dj_pool_desc *d, int kind, int n, int h, int w, int c, int fd) {
    int oh = 1, ow = 1;
    if (kind != 2) CHECK_OK(dj_pool_out_shape(d, h, w, &oh, &ow));
    pool_ctx k = {d, kind, {0}, {0}, NULL};
    CHECK_OK(dj_tensor_alloc(&k.x, n, h, w, c));
    CHECK_OK(dj_tensor_alloc(&k.y, n, oh, ow, c));
    size_t numel = dj_tensor_numel(&k.x), onumel = dj_tensor_numel(&k.y);
    /* distinct values 0.05 apart (a random permutation): a 1e-2 step never
     * changes which element of a window is the maximum */
    for (size_t i = 0; i < numel; i++) k.x.data[i] = (float)i;
    uint64_t s = 77;
    for (size_t i = numel - 1; i > 0; i--) {
        size_t j = (size_t)(gc_next(&s) % (i + 1));
        float t = k.x.data[i];
        k.x.data[i] = k.x.data[j];
        k.x.data[j] = t;
    }
    for (size_t i = 0; i < numel; i++) k.x.data[i] = (k.x.data[i] - numel / 2) * 0.05f;
    k.r = falloc(onumel);
    gc_fill(k.r, onumel, -1, 1, 5);
    dj_tensor dy = dj_tensor_view(k.r, n, oh, ow, c), dx, rdx;
    CHECK_OK(dj_tensor_alloc(&dx, n, h, w, c));
    CHECK_OK(dj_tensor_alloc(&rdx, n, h, w, c));
    int32_t *am = malloc(onumel * sizeof *am);
    if (kind == 0) {
        CHECK_OK(dj_maxpool_forward(d, &k.x, &k.y, am));
        CHECK_OK(dj_maxpool_backward(d, &dy, am, &dx, 0));
    } else if (kind == 1) {
        CHECK_OK(dj_avgpool_backward(d, &dy, &dx, 0));
    } else {
        CHECK_OK(dj_gap_backward(&dy, &dx, 0));
    }
    ref_backward(d, kind, &dy, am, &rdx);
    CHECK(check_max_err(dx.data, rdx.data, numel, 1e-6, 1e-5) <= 1);
    if (fd)
        CHECK(gc_check(kind == 0 ? "maxpool dx" : kind == 1 ? "avgpool dx" : "gap dx", pool_loss, &k, k.x.data,
                       dx.data, numel, 1e-2f, 1e-3, 1e-2, 500) <= 1);

    /* accum = 0 overwrites garbage; accum = 1 adds */
    float *d0 = falloc(numel);
    memcpy(d0, dx.data, numel * sizeof(float));
    for (int accum = 0; accum < 2; accum++) {
        for (size_t i = 0; i < numel; i++) dx.data[i] = accum ? 0.5f : NAN;
        if (kind == 0) CHECK_OK(dj_maxpool_backward(d, &dy, am, &dx, accum));
        if (kind == 1) CHECK_OK(dj_avgpool_backward(d, &dy, &dx, accum));
        if (kind == 2) CHECK_OK(dj_gap_backward(&dy, &dx, accum));
        int bad = 0;
        for (size_t i = 0; i < numel; i++) bad += !(fabsf(dx.data[i] - ((accum ? 0.5f : 0) + d0[i])) <= 1e-6f);
        CHECK(bad == 0);
    }
    free(d0), free(am), free(k.r);
    dj_tensor_free(&k.x), dj_tensor_free(&k.y), dj_tensor_free(&dx), dj_tensor_free(&rdx);
}

static void test_maxpool_backward(void) {
    for (int i = 0; i < NDESC; i++) {
        check_backward(&descs[i], 0, 3, 5, 7, 3, 1);
        check_backward(&descs[i], 0, 2, 7, 5, 5, 1);
    }
    check_backward(&descs[0], 0, 8, 32, 32, 16, 0); /* threaded */
    check_backward(&descs[1], 0, 4, 33, 31, 7, 0);
}

static void test_avgpool_backward(void) {
    for (int i = 0; i < NDESC; i++) {
        check_backward(&descs[i], 1, 3, 5, 7, 3, 1);
        check_backward(&descs[i], 1, 2, 7, 5, 5, 1);
    }
    check_backward(&descs[0], 1, 8, 32, 32, 16, 0); /* threaded */
    check_backward(&descs[5], 1, 4, 33, 31, 7, 0);
}

/* ------------------------------------------------------------------- GAP */

static void test_gap(void) {
    int shapes[3][4] = {{3, 5, 7, 17}, {2, 8, 8, 64}, {1, 256, 256, 3}};
    for (int s = 0; s < 3; s++) {
        int n = shapes[s][0], h = shapes[s][1], w = shapes[s][2], c = shapes[s][3];
        dj_tensor x, y;
        CHECK_OK(dj_tensor_alloc(&x, n, h, w, c));
        CHECK_OK(dj_tensor_alloc(&y, n, 1, 1, c));
        /* an offset well above the spread checks that large images stay accurate */
        gc_fill(x.data, dj_tensor_numel(&x), 99, 101, 9);
        CHECK_OK(dj_gap_forward(&x, &y));
        for (int i = 0; i < n; i++)
            for (int ch = 0; ch < c; ch++) {
                double sum = 0;
                for (int p = 0; p < h * w; p++) sum += x.data[((size_t)i * h * w + p) * c + ch];
                CHECK_CLOSE(y.data[i * c + ch], sum / (h * w), 0, 4e-7); /* float sums: a few ulp */
            }
        dj_tensor_free(&x), dj_tensor_free(&y);
    }
    check_backward(NULL, 2, 3, 5, 7, 17, 1);
    check_backward(NULL, 2, 64, 32, 32, 16, 0); /* threaded */
}

/* ------------------------------------------------------------------ errors */

static void test_errors(void) {
    float buf[4096] = {0};
    int32_t am[1024];
    dj_pool_desc d = {3, 2, 1};
    dj_tensor x = dj_tensor_view(buf, 2, 5, 7, 3);
    dj_tensor y = dj_tensor_view(buf + 1024, 2, 3, 3, 3);
    CHECK_FAILS(dj_maxpool_forward(&d, &x, &y, am), DJ_EINVAL, "maxpool: x is 5x7, so y must be 3x4, not 3x3");
    y = dj_tensor_view(buf + 1024, 2, 3, 4, 4);
    CHECK_FAILS(dj_avgpool_forward(&d, &x, &y), DJ_EINVAL, "avgpool: x has 3 channels but y has 4");
    y = dj_tensor_view(buf + 1024, 1, 3, 4, 3);
    CHECK_FAILS(dj_maxpool_forward(&d, &x, &y, am), DJ_EINVAL, "x has batch 2 but y has 1");
    y = dj_tensor_view(buf + 1024, 2, 3, 4, 3);
    CHECK_FAILS(dj_maxpool_backward(&d, &y, NULL, &x, 0), DJ_EINVAL, "argmax is NULL");
    for (int i = 0; i < 72; i++) am[i] = 0;
    am[5] = 5 * 7 * 3; /* one past the image */
    CHECK_FAILS(dj_maxpool_backward(&d, &y, am, &x, 0), DJ_EINVAL, "argmax holds an index outside");
    am[5] = -1;
    CHECK_FAILS(dj_maxpool_backward(&d, &y, am, &x, 0), DJ_EINVAL, "argmax holds an index outside");
    CHECK_FAILS(dj_avgpool_backward(&d, &x, &y, 0), DJ_EINVAL, "avgpool backward: dx is 3x4, so dy must be 2x2");
    dj_pool_desc bad = {2, 2, 2};
    CHECK_FAILS(dj_maxpool_forward(&bad, &x, &y, am), DJ_EINVAL, "pad 2 exceeds k/2");
    CHECK_FAILS(dj_maxpool_forward(&d, NULL, &y, am), DJ_EINVAL, "x is NULL");
    dj_tensor g = dj_tensor_view(buf + 2048, 2, 1, 1, 4);
    CHECK_FAILS(dj_gap_forward(&x, &g), DJ_EINVAL, "global avgpool: x has 3 channels but y has 4");
    g = dj_tensor_view(buf + 2048, 2, 2, 1, 3);
    CHECK_FAILS(dj_gap_forward(&x, &g), DJ_EINVAL, "y must be 1x1, not 2x1");
    CHECK_FAILS(dj_gap_backward(&g, &x, 0), DJ_EINVAL, "dy must be 1x1");
}

int main(void) {
    RUN(test_out_shape);
    RUN(test_maxpool_forward);
    RUN(test_avgpool_forward);
    RUN(test_avgpool_counts_padding);
    RUN(test_maxpool_padding_is_minus_inf);
    RUN(test_maxpool_backward);
    RUN(test_avgpool_backward);
    RUN(test_gap);
    RUN(test_errors);
    return check_report("test_pool");
}
