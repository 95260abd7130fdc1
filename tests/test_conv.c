/* Convolution (src/nn/conv.c + src/backend/dnnl.c) against a naive loop
 * written here, and its backward passes against finite differences. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backend/dnnl.h"
#include "backend/dnnl_conv.h"
#include "check.h"
#include "dmvjnd/dmvjnd.h"
#include "gradcheck.h"

/* ------------------------------------------------------------ reference */

/* y = conv(x, w) + b (+ y_old if post_sum) (relu if post_relu), NHWC x/y,
 * OIHW w, accumulated in double. Independent of oneDNN. */
static void ref_conv(const dj_conv_desc *d, const dj_tensor *x, const float *w, const float *b, dj_tensor *y) {
    for (int n = 0; n < y->n; n++)
        for (int oy = 0; oy < y->h; oy++)
            for (int ox = 0; ox < y->w; ox++)
                for (int co = 0; co < d->cout; co++) {
                    double acc = b ? b[co] : 0.0;
                    for (int ky = 0; ky < d->k; ky++) {
                        int iy = oy * d->stride - d->pad + ky;
                        if (iy < 0 || iy >= x->h) continue;
                        for (int kx = 0; kx < d->k; kx++) {
                            int ix = ox * d->stride - d->pad + kx;
                            if (ix < 0 || ix >= x->w) continue;
                            const float *xp = x->data + ((size_t)(n * x->h + iy) * x->w + ix) * x->c;
                            for (int ci = 0; ci < d->cin; ci++)
                                acc += (double)xp[ci] * w[((size_t)(co * d->cin + ci) * d->k + ky) * d->k + kx];
                        }
                    }
                    float *yp = y->data + ((size_t)(n * y->h + oy) * y->w + ox) * y->c + co;
                    if (d->post_sum) acc += *yp;
                    if (d->post_relu && acc < 0) acc = 0;
                    *yp = (float)acc;
                }
}

/* ------------------------------------------------------------ fixtures */

/* One layer under test with its tensors, all owned. */
typedef struct fx {
    dj_conv_desc d;
    dj_conv *conv;
    dj_tensor x, y, dy, dx;
    float *w, *b, *dw, *db;
    size_t nw;
} fx;

static int fx_init(fx *f, const dj_conv_desc *d, int n, int h, int w, uint64_t seed) {
    memset(f, 0, sizeof *f);
    f->d = *d;
    int oh, ow;
    if (dj_conv_out_shape(d, h, w, &oh, &ow) != 0) return -1;
    if (dj_conv_create(&f->conv, d) != 0) return -1;
    f->nw = dj_conv_weight_count(d);
    dj_tensor_alloc(&f->x, n, h, w, d->cin);
    dj_tensor_alloc(&f->dx, n, h, w, d->cin);
    dj_tensor_alloc(&f->y, n, oh, ow, d->cout);
    dj_tensor_alloc(&f->dy, n, oh, ow, d->cout);
    f->w = calloc(f->nw, sizeof(float));
    f->dw = calloc(f->nw, sizeof(float));
    f->b = calloc((size_t)d->cout, sizeof(float));
    f->db = calloc((size_t)d->cout, sizeof(float));
    gc_fill(f->x.data, dj_tensor_numel(&f->x), -1.f, 1.f, seed);
    gc_fill(f->w, f->nw, -0.5f, 0.5f, seed + 1);
    gc_fill(f->b, (size_t)d->cout, -0.5f, 0.5f, seed + 2);
    gc_fill(f->dy.data, dj_tensor_numel(&f->dy), -1.f, 1.f, seed + 3);
    return 0;
}

static void fx_free(fx *f) {
    dj_conv_destroy(f->conv);
    dj_tensor_free(&f->x);
    dj_tensor_free(&f->y);
    dj_tensor_free(&f->dx);
    dj_tensor_free(&f->dy);
    free(f->w);
    free(f->b);
    free(f->dw);
    free(f->db);
}

static const float *fx_bias(const fx *f) { return f->d.bias ? f->b : NULL; }

/* Forward through the library and the reference; returns the worst error
 * ratio (<= 1 passes). y_old (post_sum) is a fixed pattern in both. */
static double fx_forward_err(fx *f, double atol, double rtol) {
    size_t ny = dj_tensor_numel(&f->y);
    dj_tensor ref;
    dj_tensor_alloc(&ref, f->y.n, f->y.h, f->y.w, f->y.c);
    gc_fill(f->y.data, ny, -1.f, 1.f, 77);
    memcpy(ref.data, f->y.data, ny * sizeof(float));
    int rc = dj_conv_forward(f->conv, &f->x, f->w, fx_bias(f), &f->y);
    if (rc != 0) fprintf(stderr, "dj_conv_forward: %s\n", dj_last_error());
    ref_conv(&f->d, &f->x, f->w, fx_bias(f), &ref);
    double err = rc == 0 ? check_max_err(f->y.data, ref.data, ny, atol, rtol) : INFINITY;
    dj_tensor_free(&ref);
    return err;
}

/* Every combination of the awkward shape: batch 3, 5x7 images, cin 3,
 * cout 5, stride 1/2, pad 0/1/2, kernel 1/3/5, with and without bias. */
static int awkward_desc(int i, dj_conv_desc *d) {
    static const int ks[] = {1, 3, 5}, strides[] = {1, 2}, pads[] = {0, 1, 2};
    if (i >= 3 * 2 * 3 * 2) return 0;
    memset(d, 0, sizeof *d);
    d->cin = 3;
    d->cout = 5;
    d->k = ks[i % 3];
    d->stride = strides[(i / 3) % 2];
    d->pad = pads[(i / 6) % 3];
    d->bias = (i / 18) % 2;
    return 1;
}

static void desc_str(const dj_conv_desc *d, char *buf, size_t size) {
    snprintf(buf, size, "k%d s%d p%d bias%d%s%s%s", d->k, d->stride, d->pad, d->bias, d->post_sum ? " sum" : "",
             d->post_relu ? " relu" : "", d->winograd ? " wino" : "");
}

/* ------------------------------------------------------------ forward */

static void test_forward_awkward(void) {
    dj_backend_set_strict(0); /* odd channel counts may get slow kernels */
    dj_conv_desc d;
    for (int i = 0; awkward_desc(i, &d); i++) {
        fx f;
        CHECK(fx_init(&f, &d, 3, 5, 7, 100 + i) == 0);
        double err = fx_forward_err(&f, 1e-5, 1e-4);
        if (!(err <= 1)) {
            char s[64];
            desc_str(&d, s, sizeof s);
            fprintf(stderr, "forward %s: err %g\n", s, err);
        }
        CHECK(err <= 1);
        fx_free(&f);
    }
    dj_backend_set_strict(1);
}

static int is_ref(const char *impl) { return strncmp(impl, "ref", 3) == 0; }

/* A shape every real network has: the kernels must be oneDNN's fast ones
 * (strict mode, the default, would refuse ref anyway; check both). */
static void test_forward_fast_shape(void) {
    CHECK(dj_backend_strict() == 1);
    dj_conv_desc d = {.cin = 16, .cout = 32, .k = 3, .stride = 1, .pad = 1, .bias = 1};
    fx f;
    CHECK(fx_init(&f, &d, 4, 16, 16, 7) == 0);
    CHECK_OK(dj_conv_forward(f.conv, &f.x, f.w, f.b, &f.y));
    CHECK(fx_forward_err(&f, 1e-5, 1e-4) <= 1);
    CHECK_OK(dj_conv_backward_data(f.conv, &f.dy, f.w, &f.dx, 0));
    CHECK_OK(dj_conv_backward_weights(f.conv, &f.x, &f.dy, f.dw, f.db));
    for (int p = 0; p < 3; p++) {
        const char *impl = dj_conv_impl_name(f.conv, p);
        if (is_ref(impl) || !impl[0]) fprintf(stderr, "pass %d impl '%s'\n", p, impl);
        CHECK(impl[0] && !is_ref(impl));
    }
    fx_free(&f);

    /* Downsampling and 1x1 projection layers of a ResNet. */
    dj_conv_desc d2 = {.cin = 16, .cout = 32, .k = 3, .stride = 2, .pad = 1};
    dj_conv_desc d3 = {.cin = 16, .cout = 32, .k = 1, .stride = 2, .pad = 0};
    const dj_conv_desc *ds[] = {&d2, &d3};
    for (int i = 0; i < 2; i++) {
        CHECK(fx_init(&f, ds[i], 4, 16, 16, 8 + i) == 0);
        CHECK(fx_forward_err(&f, 1e-5, 1e-4) <= 1);
        CHECK(!is_ref(dj_conv_impl_name(f.conv, 0)));
        fx_free(&f);
    }
}

/* Same result with 1 and 2 threads (oneDNN and the library share OpenMP). */
static void test_forward_threads(void) {
    int keep = dj_get_num_threads();
    dj_conv_desc d = {.cin = 16, .cout = 16, .k = 3, .stride = 1, .pad = 1, .bias = 1};
    for (int t = 1; t <= 2; t++) {
        dj_set_num_threads(t);
        fx f;
        CHECK(fx_init(&f, &d, 3, 9, 11, 20 + t) == 0);
        CHECK(fx_forward_err(&f, 1e-5, 1e-4) <= 1);
        CHECK_OK(dj_conv_backward_weights(f.conv, &f.x, &f.dy, f.dw, f.db));
        fx_free(&f);
    }
    dj_set_num_threads(keep);
}

/* y = relu(conv + b + y_old), each post-op alone and both, training and
 * frozen (inference primitives). */
static void test_post_ops(void) {
    for (int i = 0; i < 12; i++) {
        dj_conv_desc d = {.cin = 16, .cout = 16, .k = 3, .stride = 1, .pad = 1, .bias = 1};
        d.post_sum = (i % 3) != 1;
        d.post_relu = (i % 3) != 0;
        d.frozen = (i / 3) % 2;
        if (i >= 6) { /* awkward channels too */
            d.cin = 3;
            d.cout = 5;
            d.stride = 2;
        }
        dj_backend_set_strict(i < 6);
        fx f;
        CHECK(fx_init(&f, &d, 2, 6, 7, 30 + i) == 0);
        double err = fx_forward_err(&f, 1e-5, 1e-4);
        if (!(err <= 1)) {
            char s[64];
            desc_str(&d, s, sizeof s);
            fprintf(stderr, "post-ops %s frozen %d: err %g\n", s, d.frozen, err);
        }
        CHECK(err <= 1);
        fx_free(&f);
    }
    dj_backend_set_strict(1);
}

/* Winograd (where oneDNN has it: 3x3 stride 1, AVX-512) agrees with the
 * reference within Winograd's precision; elsewhere it falls back to the
 * direct kernel, also for the awkward shapes. */
static void test_winograd(void) {
    dj_conv_desc d = {.cin = 16, .cout = 32, .k = 3, .stride = 1, .pad = 1, .bias = 1, .winograd = 1};
    fx f;
    CHECK(fx_init(&f, &d, 4, 12, 12, 40) == 0);
    CHECK(fx_forward_err(&f, 1e-3, 1e-3) <= 1);
    CHECK_OK(dj_conv_backward_data(f.conv, &f.dy, f.w, &f.dx, 0));
    CHECK_OK(dj_conv_backward_weights(f.conv, &f.x, &f.dy, f.dw, f.db));
    /* The same gradients from a direct conv. */
    dj_conv_desc dd = d;
    dd.winograd = 0;
    fx g;
    CHECK(fx_init(&g, &dd, 4, 12, 12, 40) == 0);
    CHECK_OK(dj_conv_backward_data(g.conv, &g.dy, g.w, &g.dx, 0));
    CHECK_OK(dj_conv_backward_weights(g.conv, &g.x, &g.dy, g.dw, g.db));
    CHECK(check_max_err(f.dx.data, g.dx.data, dj_tensor_numel(&f.dx), 1e-3, 1e-3) <= 1);
    CHECK(check_max_err(f.dw, g.dw, f.nw, 1e-2, 1e-3) <= 1);
    CHECK(check_max_err(f.db, g.db, (size_t)d.cout, 1e-3, 1e-4) <= 1);
    for (int p = 0; p < 3; p++) CHECK(!is_ref(dj_conv_impl_name(f.conv, p)));
    fx_free(&f);
    fx_free(&g);

    /* Fused post-ops and frozen inference through the Winograd path. */
    dj_conv_desc d2 = {.cin = 16,
                       .cout = 16,
                       .k = 3,
                       .stride = 1,
                       .pad = 1,
                       .bias = 1,
                       .winograd = 1,
                       .post_sum = 1,
                       .post_relu = 1,
                       .frozen = 1};
    CHECK(fx_init(&f, &d2, 2, 8, 8, 41) == 0);
    CHECK(fx_forward_err(&f, 1e-3, 1e-3) <= 1);
    fx_free(&f);

    /* Shapes Winograd cannot do fall back. */
    dj_backend_set_strict(0);
    dj_conv_desc d3 = {.cin = 3, .cout = 5, .k = 3, .stride = 2, .pad = 1, .winograd = 1};
    CHECK(fx_init(&f, &d3, 3, 5, 7, 42) == 0);
    CHECK(fx_forward_err(&f, 1e-5, 1e-4) <= 1);
    fx_free(&f);
    dj_backend_set_strict(1);
}

/* ------------------------------------------------------------ gradients */

typedef struct gc_ctx {
    fx *f;
    const float *r; /* dL/dy */
} gc_ctx;

/* L = sum y * r with y from the library's forward. */
static double conv_loss(void *p) {
    gc_ctx *g = p;
    fx *f = g->f;
    if (dj_conv_forward(f->conv, &f->x, f->w, fx_bias(f), &f->y) != 0) return NAN;
    double l = 0;
    size_t ny = dj_tensor_numel(&f->y);
    for (size_t i = 0; i < ny; i++) l += (double)f->y.data[i] * g->r[i];
    return l;
}

/* dx, dw, db of one layer against central differences of its forward.
 * The conv is linear in each argument, so differences are exact up to
 * float rounding: eps 1e-2 with atol 1e-3, rtol 1e-2 still catches a
 * flipped kernel or an off-by-one (errors of O(0.1)). */
static void gradcheck_layer(const dj_conv_desc *d, int n, int h, int w, uint64_t seed) {
    fx f;
    CHECK(fx_init(&f, d, n, h, w, seed) == 0);
    gc_ctx g = {&f, f.dy.data};
    char s[64];
    desc_str(d, s, sizeof s);
    CHECK_OK(dj_conv_backward_data(f.conv, &f.dy, f.w, &f.dx, 0));
    CHECK_OK(dj_conv_backward_weights(f.conv, &f.x, &f.dy, f.dw, d->bias ? f.db : NULL));
    double e1 = gc_check(s, conv_loss, &g, f.x.data, f.dx.data, dj_tensor_numel(&f.x), 1e-2f, 1e-3, 1e-2, 400);
    double e2 = gc_check(s, conv_loss, &g, f.w, f.dw, f.nw, 1e-2f, 1e-3, 1e-2, 400);
    double e3 = d->bias ? gc_check(s, conv_loss, &g, f.b, f.db, (size_t)d->cout, 1e-2f, 1e-3, 1e-2, 400) : 0;
    if (!(e1 <= 1 && e2 <= 1 && e3 <= 1)) fprintf(stderr, "gradcheck %s: dx %g dw %g db %g\n", s, e1, e2, e3);
    CHECK(e1 <= 1);
    CHECK(e2 <= 1);
    CHECK(e3 <= 1);
    fx_free(&f);
}

static void test_gradcheck_awkward(void) {
    dj_backend_set_strict(0);
    dj_conv_desc d;
    for (int i = 0; awkward_desc(i, &d); i++) gradcheck_layer(&d, 3, 5, 7, 200 + i);
    dj_backend_set_strict(1);
}

static void test_gradcheck_fast_shape(void) {
    dj_conv_desc d = {.cin = 16, .cout = 16, .k = 3, .stride = 1, .pad = 1, .bias = 1};
    gradcheck_layer(&d, 2, 6, 6, 300);
    dj_conv_desc d2 = {.cin = 16, .cout = 32, .k = 3, .stride = 2, .pad = 1, .bias = 1};
    gradcheck_layer(&d2, 2, 8, 8, 301);
}

/* oneDNN 2.6.3's strided 1x1 backward-weights kernel on an NHWC source with
 * few channels races past its workspace (wrong dw in ~10% of calls with 2
 * threads, sometimes heap corruption); the backend routes these layers
 * around it. Repeated calls, each against the exact gradient. */
static void test_1x1_strided_bwd_weights(void) {
    int keep = dj_get_num_threads();
    dj_set_num_threads(2);
    dj_backend_set_strict(0);
    static const int shapes[][3] = {{3, 5, 2}, {5, 20, 3}, {1, 12, 2}, {12, 8, 2}};
    for (int s = 0; s < 4; s++) {
        dj_conv_desc d = {.cin = shapes[s][0], .cout = shapes[s][1], .k = 1, .stride = shapes[s][2], .bias = 1};
        fx f;
        CHECK(fx_init(&f, &d, 1 + s % 2, 6, 6, 450 + s) == 0);
        /* Exact dw: sum over outputs of x at the strided position times dy. */
        double *ref = calloc(f.nw, sizeof(double));
        for (int n = 0; n < f.dy.n; n++)
            for (int oy = 0; oy < f.dy.h; oy++)
                for (int ox = 0; ox < f.dy.w; ox++)
                    for (int co = 0; co < d.cout; co++)
                        for (int ci = 0; ci < d.cin; ci++)
                            ref[co * d.cin + ci] +=
                                (double)f.x
                                    .data[((size_t)(n * f.x.h + oy * d.stride) * f.x.w + ox * d.stride) * d.cin + ci] *
                                f.dy.data[((size_t)(n * f.dy.h + oy) * f.dy.w + ox) * d.cout + co];
        int bad = 0;
        for (int it = 0; it < 100; it++) {
            memset(f.dw, 0, f.nw * sizeof(float));
            CHECK_OK(dj_conv_backward_weights(f.conv, &f.x, &f.dy, f.dw, f.db));
            for (size_t i = 0; i < f.nw; i++)
                if (!(fabs(f.dw[i] - ref[i]) <= 1e-5 + 1e-5 * fabs(ref[i]))) {
                    bad++;
                    break;
                }
        }
        if (bad) fprintf(stderr, "1x1 stride %d, %d->%d: %d of 100 calls wrong\n", d.stride, d.cin, d.cout, bad);
        CHECK(bad == 0);
        free(ref);
        fx_free(&f);
    }
    dj_backend_set_strict(1);
    dj_set_num_threads(keep);
}

/* ------------------------------------------------------------ accumulation */

/* dw, db add to what is there; backward_data with accum = 0 overwrites
 * (even NaN garbage), with accum = 1 adds. */
static void check_accumulate(const dj_conv_desc *d, int n, int h, int w, uint64_t seed) {
    fx f;
    CHECK(fx_init(&f, d, n, h, w, seed) == 0);
    size_t nx = dj_tensor_numel(&f.dx);
    float *dx0 = malloc(nx * sizeof(float)), *dw0 = malloc(f.nw * sizeof(float));
    float *db0 = malloc((size_t)d->cout * sizeof(float));
    float *base = malloc((nx > f.nw ? nx : f.nw) * sizeof(float));

    /* Fresh gradients (the fixture starts with dw = db = 0). */
    CHECK_OK(dj_conv_backward_weights(f.conv, &f.x, &f.dy, f.dw, d->bias ? f.db : NULL));
    memcpy(dw0, f.dw, f.nw * sizeof(float));
    memcpy(db0, f.db, (size_t)d->cout * sizeof(float));
    for (size_t i = 0; i < nx; i++) f.dx.data[i] = NAN;
    CHECK_OK(dj_conv_backward_data(f.conv, &f.dy, f.w, &f.dx, 0));
    memcpy(dx0, f.dx.data, nx * sizeof(float));
    CHECK(dj_all_finite(dx0, nx));

    /* Second backward_weights on top: dw = base + dw0. */
    gc_fill(base, f.nw, -1.f, 1.f, seed + 9);
    memcpy(f.dw, base, f.nw * sizeof(float));
    for (int i = 0; i < d->cout; i++) f.db[i] = (float)i;
    CHECK_OK(dj_conv_backward_weights(f.conv, &f.x, &f.dy, f.dw, d->bias ? f.db : NULL));
    for (size_t i = 0; i < f.nw; i++) CHECK_CLOSE(f.dw[i], base[i] + dw0[i], 1e-5, 1e-5);
    for (int i = 0; i < d->cout; i++) CHECK_CLOSE(f.db[i], (d->bias ? db0[i] : 0.f) + (float)i, 1e-5, 1e-5);

    /* dw only, db only. */
    memcpy(f.dw, base, f.nw * sizeof(float));
    CHECK_OK(dj_conv_backward_weights(f.conv, &f.x, &f.dy, f.dw, NULL));
    for (size_t i = 0; i < f.nw; i++) CHECK_CLOSE(f.dw[i], base[i] + dw0[i], 1e-5, 1e-5);
    if (d->bias) {
        for (int i = 0; i < d->cout; i++) f.db[i] = 1.f;
        CHECK_OK(dj_conv_backward_weights(f.conv, &f.x, &f.dy, NULL, f.db));
        for (int i = 0; i < d->cout; i++) CHECK_CLOSE(f.db[i], 1.f + db0[i], 1e-5, 1e-5);
    }

    /* accum = 1 adds, accum = 0 overwrites again afterwards. */
    gc_fill(base, nx, -1.f, 1.f, seed + 10);
    memcpy(f.dx.data, base, nx * sizeof(float));
    CHECK_OK(dj_conv_backward_data(f.conv, &f.dy, f.w, &f.dx, 1));
    for (size_t i = 0; i < nx; i++) CHECK_CLOSE(f.dx.data[i], base[i] + dx0[i], 1e-5, 1e-5);
    CHECK_OK(dj_conv_backward_data(f.conv, &f.dy, f.w, &f.dx, 0));
    CHECK(memcmp(f.dx.data, dx0, nx * sizeof(float)) == 0);

    free(dx0);
    free(dw0);
    free(db0);
    free(base);
    fx_free(&f);
}

static void test_accumulate(void) {
    dj_conv_desc d = {.cin = 16, .cout = 32, .k = 3, .stride = 1, .pad = 1, .bias = 1};
    check_accumulate(&d, 2, 8, 8, 500);
    dj_backend_set_strict(0);
    dj_conv_desc d2 = {.cin = 3, .cout = 5, .k = 3, .stride = 2, .pad = 1, .bias = 1};
    check_accumulate(&d2, 3, 5, 7, 501);
    dj_conv_desc d3 = {.cin = 3, .cout = 5, .k = 1, .stride = 1, .pad = 0};
    check_accumulate(&d3, 3, 5, 7, 502);
    dj_backend_set_strict(1);
}

/* Activations in oneDNN's own blocked layout (the Winograd path's way):
 * the reorders around the primitive, post-op sum input and accumulation
 * through an adding reorder must give the same answers. */
static void test_blocked_activations(void) {
    dj_bconv_debug_layout(DJ_BCONV_DEBUG_ANY_ACT);
    dj_conv_desc d = {.cin = 16, .cout = 24, .k = 3, .stride = 1, .pad = 1, .bias = 1};
    gradcheck_layer(&d, 2, 6, 5, 600);
    check_accumulate(&d, 2, 6, 5, 601);
    dj_conv_desc d2 = d;
    d2.post_sum = 1;
    d2.post_relu = 1;
    fx f;
    CHECK(fx_init(&f, &d2, 2, 6, 5, 602) == 0);
    CHECK(fx_forward_err(&f, 1e-5, 1e-4) <= 1);
    fx_free(&f);
    dj_bconv_debug_layout(0);
}

/* Strict mode refuses a reference kernel with a message naming the pass,
 * the shapes and the implementation; without it the layer runs (correctly)
 * after one warning. Plain weights are the way to get oneDNN's ref kernel. */
static int warnings;
static char last_warning[512];
static void count_log(int level, const char *msg, void *user) {
    (void)user;
    if (level == DJ_LOG_WARN) {
        warnings++;
        snprintf(last_warning, sizeof last_warning, "%s", msg);
    }
}

static void test_strict(void) {
    dj_bconv_debug_layout(DJ_BCONV_DEBUG_PLAIN_WEIGHTS);
    dj_conv_desc d = {.cin = 16, .cout = 16, .k = 3, .stride = 1, .pad = 1, .bias = 1};
    fx f;
    CHECK(fx_init(&f, &d, 2, 5, 6, 650) == 0);
    CHECK(dj_backend_strict() == 1);
    CHECK_FAILS(dj_conv_forward(f.conv, &f.x, f.w, f.b, &f.y), DJ_EBACKEND, "ref");
    CHECK(strstr(dj_last_error(), "conv forward") && strstr(dj_last_error(), "2x5x6x16"));
    CHECK_FAILS(dj_conv_backward_data(f.conv, &f.dy, f.w, &f.dx, 0), DJ_EBACKEND, "conv backward-data");
    CHECK_FAILS(dj_conv_backward_weights(f.conv, &f.x, &f.dy, f.dw, f.db), DJ_EBACKEND, "conv backward-weights");

    dj_backend_set_strict(0);
    warnings = 0;
    dj_set_log(count_log, NULL, DJ_LOG_WARN);
    CHECK(fx_forward_err(&f, 1e-5, 1e-4) <= 1);
    CHECK(fx_forward_err(&f, 1e-5, 1e-4) <= 1);
    CHECK(warnings == 1); /* once, not per call */
    CHECK(strstr(last_warning, "ref") != NULL);
    CHECK(is_ref(dj_conv_impl_name(f.conv, 0)));
    fx_free(&f);
    dj_conv_desc small = {.cin = 3, .cout = 4, .k = 3, .stride = 2, .pad = 1, .bias = 1};
    gradcheck_layer(&small, 2, 4, 5, 651); /* the path without weight reorders */
    check_accumulate(&small, 2, 4, 5, 652);
    dj_set_log(NULL, NULL, DJ_LOG_WARN);
    dj_backend_set_strict(1);
    dj_bconv_debug_layout(0);
}

/* ------------------------------------------------------------ caching */

/* Frozen: weights are reordered once and reused until weights_changed. */
static void test_frozen(void) {
    dj_conv_desc d = {.cin = 16, .cout = 32, .k = 3, .stride = 1, .pad = 1, .bias = 1, .frozen = 1};
    fx f;
    CHECK(fx_init(&f, &d, 2, 8, 8, 700) == 0);
    CHECK(fx_forward_err(&f, 1e-5, 1e-4) <= 1);
    CHECK_OK(dj_conv_backward_data(f.conv, &f.dy, f.w, &f.dx, 0));
    size_t ny = dj_tensor_numel(&f.y), nx = dj_tensor_numel(&f.dx);
    float *y1 = malloc(ny * sizeof(float)), *dx1 = malloc(nx * sizeof(float));
    memcpy(y1, f.y.data, ny * sizeof(float));
    memcpy(dx1, f.dx.data, nx * sizeof(float));

    for (size_t i = 0; i < f.nw; i++) f.w[i] *= -2.f; /* changed in place */
    CHECK_OK(dj_conv_forward(f.conv, &f.x, f.w, f.b, &f.y));
    CHECK(memcmp(f.y.data, y1, ny * sizeof(float)) == 0); /* still the cached weights */
    CHECK_OK(dj_conv_backward_data(f.conv, &f.dy, f.w, &f.dx, 0));
    CHECK(memcmp(f.dx.data, dx1, nx * sizeof(float)) == 0);

    dj_conv_weights_changed(f.conv);
    CHECK(fx_forward_err(&f, 1e-5, 1e-4) <= 1); /* new weights */
    CHECK_OK(dj_conv_backward_data(f.conv, &f.dy, f.w, &f.dx, 0));
    for (size_t i = 0; i < nx; i++) CHECK_CLOSE(f.dx.data[i], -2.f * dx1[i], 1e-4, 1e-4);

    CHECK_FAILS(dj_conv_backward_weights(f.conv, &f.x, &f.dy, f.dw, f.db), DJ_EINVAL, "frozen");
    free(y1);
    free(dx1);
    fx_free(&f);
}

/* More input shapes than cache slots, revisited: evicted primitives are
 * rebuilt and every answer stays right. */
static void test_shape_cache(void) {
    dj_conv_desc d = {.cin = 8, .cout = 16, .k = 3, .stride = 1, .pad = 1, .bias = 1};
    dj_conv *conv;
    CHECK_OK(dj_conv_create(&conv, &d));
    size_t nw = dj_conv_weight_count(&d);
    float *w = malloc(nw * sizeof(float)), b[16];
    gc_fill(w, nw, -0.5f, 0.5f, 800);
    gc_fill(b, 16, -0.5f, 0.5f, 801);
    static const int sizes[][3] = {{1, 4, 4}, {2, 4, 4}, {1, 5, 6}, {3, 3, 3}, {1, 8, 2},
                                   {1, 4, 4}, {2, 6, 6}, {3, 3, 3}, {1, 4, 4}, {2, 4, 4}};
    for (int i = 0; i < 10; i++) {
        dj_tensor x, y, r;
        int n = sizes[i][0], h = sizes[i][1], ww = sizes[i][2];
        dj_tensor_alloc(&x, n, h, ww, 8);
        dj_tensor_alloc(&y, n, h, ww, 16);
        dj_tensor_alloc(&r, n, h, ww, 16);
        gc_fill(x.data, dj_tensor_numel(&x), -1.f, 1.f, 810 + i);
        CHECK_OK(dj_conv_forward(conv, &x, w, b, &y));
        ref_conv(&d, &x, w, b, &r);
        CHECK(check_max_err(y.data, r.data, dj_tensor_numel(&y), 1e-5, 1e-4) <= 1);
        dj_tensor_free(&x);
        dj_tensor_free(&y);
        dj_tensor_free(&r);
    }
    free(w);
    dj_conv_destroy(conv);
}

/* ------------------------------------------------------------ errors */

static void test_bad_desc(void) {
    dj_conv_desc ok = {.cin = 3, .cout = 5, .k = 3, .stride = 1, .pad = 1, .bias = 1};
    dj_conv *c = NULL;
    dj_conv_desc d = ok;
    d.k = 0;
    CHECK_FAILS(dj_conv_create(&c, &d), DJ_EINVAL, "kernel size k = 0");
    CHECK(c == NULL);
    d = ok;
    d.cout = 0;
    CHECK_FAILS(dj_conv_create(&c, &d), DJ_EINVAL, "cout = 0");
    d = ok;
    d.cin = -2;
    CHECK_FAILS(dj_conv_create(&c, &d), DJ_EINVAL, "cin = -2");
    d = ok;
    d.stride = 0;
    CHECK_FAILS(dj_conv_create(&c, &d), DJ_EINVAL, "stride = 0");
    d = ok;
    d.pad = -1;
    CHECK_FAILS(dj_conv_create(&c, &d), DJ_EINVAL, "pad = -1");
    d = ok;
    d.out_pad = 1;
    CHECK_FAILS(dj_conv_create(&c, &d), DJ_EINVAL, "only for transposed");
    d = ok;
    d.transposed = 1;
    d.stride = 2;
    d.out_pad = 2;
    CHECK_FAILS(dj_conv_create(&c, &d), DJ_EINVAL, "out_pad = 2");
    CHECK_FAILS(dj_conv_create(&c, NULL), DJ_EINVAL, "NULL");
    CHECK(dj_conv_weight_count(&ok) == 5 * 3 * 3 * 3);

    int oh = 0, ow = 0;
    CHECK_OK(dj_conv_out_shape(&ok, 5, 7, &oh, &ow));
    CHECK(oh == 5 && ow == 7);
    d = ok;
    d.stride = 2;
    d.pad = 0;
    d.k = 5;
    CHECK_OK(dj_conv_out_shape(&d, 5, 8, &oh, &ow));
    CHECK(oh == 1 && ow == 2);
    CHECK_FAILS(dj_conv_out_shape(&d, 4, 8, &oh, &ow), DJ_EINVAL, "empty output");
    CHECK_FAILS(dj_conv_out_shape(&d, 0, 8, &oh, &ow), DJ_EINVAL, "empty dimension");
}

static void test_bad_shapes(void) {
    dj_conv_desc d = {.cin = 3, .cout = 5, .k = 3, .stride = 2, .pad = 1, .bias = 1};
    dj_backend_set_strict(0);
    fx f;
    CHECK(fx_init(&f, &d, 3, 5, 7, 900) == 0); /* y is 3x3x4x5 */
    dj_tensor x = f.x, y = f.y;
    x.c = 4;
    CHECK_FAILS(dj_conv_forward(f.conv, &x, f.w, f.b, &f.y), DJ_EINVAL, "x has 4 channels");
    y.w = 3;
    CHECK_FAILS(dj_conv_forward(f.conv, &f.x, f.w, f.b, &y), DJ_EINVAL, "y is 3x3x3x5");
    y = f.y;
    y.n = 2;
    CHECK_FAILS(dj_conv_forward(f.conv, &f.x, f.w, f.b, &y), DJ_EINVAL, "needs 3x3x4x5");
    y = f.y;
    y.c = 6;
    CHECK_FAILS(dj_conv_forward(f.conv, &f.x, f.w, f.b, &y), DJ_EINVAL, "needs 3x3x4x5");
    CHECK_FAILS(dj_conv_forward(f.conv, &f.x, f.w, NULL, &f.y), DJ_EINVAL, "b is NULL");
    CHECK_FAILS(dj_conv_forward(f.conv, &f.x, NULL, f.b, &f.y), DJ_EINVAL, "weights");
    CHECK_FAILS(dj_conv_forward(f.conv, NULL, f.w, f.b, &f.y), DJ_EINVAL, "x is NULL");
    x = f.x;
    x.data = NULL;
    CHECK_FAILS(dj_conv_forward(f.conv, &x, f.w, f.b, &f.y), DJ_EINVAL, "no data");
    y = f.y;
    y.data = f.x.data; /* in place */
    CHECK_FAILS(dj_conv_forward(f.conv, &f.x, f.w, f.b, &y), DJ_EINVAL, "overlap");
    dj_tensor dy = f.dy;
    dy.h = 5;
    CHECK_FAILS(dj_conv_backward_data(f.conv, &dy, f.w, &f.dx, 0), DJ_EINVAL, "dy is 3x5x4x5");
    CHECK_FAILS(dj_conv_backward_weights(f.conv, &f.x, &dy, f.dw, f.db), DJ_EINVAL, "dy is 3x5x4x5");
    CHECK_OK(dj_conv_backward_data(f.conv, &f.dy, f.w, NULL, 0)); /* dx not wanted */
    CHECK_OK(dj_conv_backward_weights(f.conv, &f.x, &f.dy, NULL, NULL));
    fx_free(&f);

    dj_conv_desc nb = {.cin = 3, .cout = 5, .k = 3, .stride = 1, .pad = 1};
    CHECK(fx_init(&f, &nb, 1, 4, 4, 901) == 0);
    CHECK_FAILS(dj_conv_forward(f.conv, &f.x, f.w, f.b, &f.y), DJ_EINVAL, "without bias");
    CHECK_FAILS(dj_conv_backward_weights(f.conv, &f.x, &f.dy, f.dw, f.db), DJ_EINVAL, "without bias");
    fx_free(&f);

    /* Backward of a conv with fused post-ops is that of the conv alone (the
     * caller masks dy for the ReLU): same dx and dw as without post-ops. */
    dj_conv_desc plain = {.cin = 3, .cout = 5, .k = 3, .stride = 1, .pad = 1, .bias = 1};
    dj_conv_desc fused = plain;
    fused.post_relu = 1;
    fused.post_sum = 1;
    fx g;
    CHECK(fx_init(&f, &plain, 2, 4, 4, 902) == 0);
    CHECK(fx_init(&g, &fused, 2, 4, 4, 902) == 0);
    CHECK_OK(dj_conv_backward_data(f.conv, &f.dy, f.w, &f.dx, 0));
    CHECK_OK(dj_conv_backward_data(g.conv, &g.dy, g.w, &g.dx, 0));
    CHECK(memcmp(f.dx.data, g.dx.data, dj_tensor_numel(&f.dx) * sizeof(float)) == 0);
    CHECK_OK(dj_conv_backward_weights(f.conv, &f.x, &f.dy, f.dw, f.db));
    CHECK_OK(dj_conv_backward_weights(g.conv, &g.x, &g.dy, g.dw, g.db));
    CHECK(check_max_err(g.dw, f.dw, f.nw, 1e-6, 1e-6) <= 1);
    CHECK(check_max_err(g.db, f.db, 5, 1e-6, 1e-6) <= 1);
    fx_free(&f);
    fx_free(&g);
    dj_backend_set_strict(1);
}

int main(void) {
    RUN(test_forward_awkward);
    RUN(test_forward_fast_shape);
    RUN(test_forward_threads);
    RUN(test_post_ops);
    RUN(test_winograd);
    RUN(test_gradcheck_awkward);
    RUN(test_gradcheck_fast_shape);
    RUN(test_1x1_strided_bwd_weights);
    RUN(test_accumulate);
    RUN(test_blocked_activations);
    RUN(test_strict);
    RUN(test_frozen);
    RUN(test_shape_cache);
    RUN(test_bad_desc);
    RUN(test_bad_shapes);
    return check_report("test_conv");
}
