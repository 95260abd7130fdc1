/* Transposed convolution (PyTorch ConvTranspose2d semantics, IOHW weights)
 * against a naive scatter loop written here, and its backward passes against
 * finite differences. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backend/dnnl.h"
#include "backend/dnnl_conv.h"
#include "check.h"
#include "dmvjnd/dmvjnd.h"
#include "gradcheck.h"

/* ------------------------------------------------------------ reference */

/* Every input pixel scatters x * w[ci][co] into the outputs it reaches:
 *   y[iy*stride - pad + ky][ix*stride - pad + kx][co] += x[iy][ix][ci] * w[ci][co][ky][kx]
 * then bias, post_sum and post_relu. Outputs no input reaches (output
 * padding) get only the bias. Accumulated in double. */
static void ref_deconv(const dj_conv_desc *d, const dj_tensor *x, const float *w, const float *b, dj_tensor *y) {
    size_t ny = dj_tensor_numel(y);
    double *acc = calloc(ny, sizeof(double));
    for (int n = 0; n < x->n; n++)
        for (int iy = 0; iy < x->h; iy++)
            for (int ix = 0; ix < x->w; ix++)
                for (int ci = 0; ci < d->cin; ci++) {
                    double xv = x->data[((size_t)(n * x->h + iy) * x->w + ix) * x->c + ci];
                    for (int ky = 0; ky < d->k; ky++) {
                        int oy = iy * d->stride - d->pad + ky;
                        if (oy < 0 || oy >= y->h) continue;
                        for (int kx = 0; kx < d->k; kx++) {
                            int ox = ix * d->stride - d->pad + kx;
                            if (ox < 0 || ox >= y->w) continue;
                            double *yp = acc + ((size_t)(n * y->h + oy) * y->w + ox) * y->c;
                            for (int co = 0; co < d->cout; co++)
                                yp[co] += xv * w[((size_t)(ci * d->cout + co) * d->k + ky) * d->k + kx];
                        }
                    }
                }
    for (size_t i = 0; i < ny; i++) {
        double v = acc[i] + (b ? b[i % (size_t)d->cout] : 0.0);
        if (d->post_sum) v += y->data[i];
        if (d->post_relu && v < 0) v = 0;
        y->data[i] = (float)v;
    }
    free(acc);
}

/* ------------------------------------------------------------ fixtures */

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

static double fx_forward_err(fx *f, double atol, double rtol) {
    size_t ny = dj_tensor_numel(&f->y);
    dj_tensor ref;
    dj_tensor_alloc(&ref, f->y.n, f->y.h, f->y.w, f->y.c);
    gc_fill(f->y.data, ny, -1.f, 1.f, 77);
    memcpy(ref.data, f->y.data, ny * sizeof(float));
    int rc = dj_conv_forward(f->conv, &f->x, f->w, fx_bias(f), &f->y);
    if (rc != 0) fprintf(stderr, "dj_conv_forward: %s\n", dj_last_error());
    ref_deconv(&f->d, &f->x, f->w, fx_bias(f), &ref);
    double err = rc == 0 ? check_max_err(f->y.data, ref.data, ny, atol, rtol) : INFINITY;
    dj_tensor_free(&ref);
    return err;
}

/* The decoder shapes of the brief plus harder ones: output padding larger
 * than the padding (oneDNN sees a negative right padding), stride > kernel
 * (outputs no input reaches), pad > 0 with out_pad 0. */
static const struct {
    int k, stride, pad, out_pad;
} shapes[] = {{2, 2, 0, 0}, {3, 2, 1, 1}, {3, 1, 1, 0}, {2, 2, 0, 1}, {5, 3, 2, 2},
              {1, 2, 0, 1}, {4, 2, 1, 0}, {3, 2, 0, 0}, {1, 1, 0, 0}};
#define NSHAPES (int)(sizeof shapes / sizeof shapes[0])

static dj_conv_desc awkward(int i, int bias) {
    dj_conv_desc d = {.cin = 3, .cout = 5, .transposed = 1, .bias = bias};
    d.k = shapes[i].k;
    d.stride = shapes[i].stride;
    d.pad = shapes[i].pad;
    d.out_pad = shapes[i].out_pad;
    return d;
}

/* ------------------------------------------------------------ forward */

static void test_out_shape(void) {
    dj_conv_desc d = {.cin = 1, .cout = 1, .k = 3, .stride = 2, .pad = 1, .out_pad = 1, .transposed = 1};
    int oh, ow;
    CHECK_OK(dj_conv_out_shape(&d, 5, 7, &oh, &ow));
    CHECK(oh == 10 && ow == 14); /* (in-1)*2 - 2 + 3 + 1 = 2*in */
    d.k = 2;
    d.pad = 0;
    d.out_pad = 0;
    CHECK_OK(dj_conv_out_shape(&d, 5, 7, &oh, &ow));
    CHECK(oh == 10 && ow == 14);
    dj_conv_desc e = {.cin = 1, .cout = 1, .k = 1, .stride = 1, .pad = 1, .transposed = 1};
    CHECK_FAILS(dj_conv_out_shape(&e, 1, 4, &oh, &ow), DJ_EINVAL, "empty output");
}

static void test_forward_awkward(void) {
    dj_backend_set_strict(0);
    for (int i = 0; i < NSHAPES; i++)
        for (int bias = 0; bias < 2; bias++) {
            dj_conv_desc d = awkward(i, bias);
            fx f;
            CHECK(fx_init(&f, &d, 3, 5, 7, 100 + i) == 0);
            double err = fx_forward_err(&f, 1e-5, 1e-4);
            if (!(err <= 1))
                fprintf(stderr, "deconv k%d s%d p%d op%d bias%d: err %g\n", d.k, d.stride, d.pad, d.out_pad, bias, err);
            CHECK(err <= 1);
            fx_free(&f);
        }
    dj_backend_set_strict(1);
}

/* Decoder-sized layers run on fast kernels (strict mode is on). */
static void test_forward_fast_shape(void) {
    dj_conv_desc ds[] = {
        {.cin = 32, .cout = 16, .k = 2, .stride = 2, .transposed = 1, .bias = 1},
        {.cin = 16, .cout = 32, .k = 3, .stride = 2, .pad = 1, .out_pad = 1, .transposed = 1, .bias = 1},
        {.cin = 16, .cout = 16, .k = 3, .stride = 1, .pad = 1, .transposed = 1},
    };
    for (int i = 0; i < 3; i++) {
        fx f;
        CHECK(fx_init(&f, &ds[i], 4, 8, 8, 10 + i) == 0);
        CHECK(fx_forward_err(&f, 1e-5, 1e-4) <= 1);
        CHECK_OK(dj_conv_backward_data(f.conv, &f.dy, f.w, &f.dx, 0));
        CHECK_OK(dj_conv_backward_weights(f.conv, &f.x, &f.dy, f.dw, fx_bias(&f) ? f.db : NULL));
        for (int p = 0; p < 3; p++) {
            const char *impl = dj_conv_impl_name(f.conv, p);
            if (!impl[0] || !strncmp(impl, "ref", 3)) fprintf(stderr, "deconv %d pass %d impl '%s'\n", i, p, impl);
            CHECK(impl[0] && strncmp(impl, "ref", 3) != 0);
        }
        fx_free(&f);
    }
}

/* The backend applies a transposed conv's bias and post-ops itself (oneDNN's
 * own are reference loops): every combination, small and large enough for
 * the threaded loops, and the bias gradient on a large dy. */
static void test_epilogue(void) {
    for (int i = 0; i < 16; i++) {
        dj_conv_desc d = {.cin = 16, .cout = 32, .k = 2, .stride = 2, .transposed = 1};
        d.bias = i & 1;
        d.post_sum = (i >> 1) & 1;
        d.post_relu = (i >> 2) & 1;
        int big = i >> 3; /* 4x32x32x32 outputs: above the threading threshold */
        fx f;
        CHECK(fx_init(&f, &d, big ? 4 : 1, big ? 16 : 3, big ? 16 : 5, 40 + i) == 0);
        double err = fx_forward_err(&f, 1e-5, 1e-4);
        if (!(err <= 1))
            fprintf(stderr, "epilogue bias %d sum %d relu %d big %d: %g\n", d.bias, d.post_sum, d.post_relu, big, err);
        CHECK(err <= 1);
        if (d.bias && !d.post_relu) {
            double ref[32] = {0};
            size_t ny = dj_tensor_numel(&f.dy);
            for (size_t j = 0; j < ny; j++) ref[j % 32] += f.dy.data[j];
            for (int j = 0; j < 32; j++) f.db[j] = 1.f;
            CHECK_OK(dj_conv_backward_weights(f.conv, &f.x, &f.dy, NULL, f.db)); /* db alone */
            for (int j = 0; j < 32; j++) CHECK_CLOSE(f.db[j], 1.0 + ref[j], 1e-4, 1e-5);
            CHECK_OK(dj_conv_backward_weights(f.conv, &f.x, &f.dy, f.dw, f.db)); /* both */
            for (int j = 0; j < 32; j++) CHECK_CLOSE(f.db[j], 1.0 + 2 * ref[j], 1e-4, 1e-5);
        }
        fx_free(&f);
    }
}

static void test_post_ops_frozen_winograd(void) {
    for (int i = 0; i < 4; i++) {
        dj_conv_desc d = {.cin = 16,
                          .cout = 16,
                          .k = 3,
                          .stride = 1,
                          .pad = 1,
                          .transposed = 1,
                          .bias = 1,
                          .post_sum = 1,
                          .post_relu = 1,
                          .frozen = i & 1,
                          .winograd = i >> 1};
        fx f;
        CHECK(fx_init(&f, &d, 2, 6, 5, 20 + i) == 0);
        CHECK(fx_forward_err(&f, 1e-3, 1e-3) <= 1);
        fx_free(&f);
    }
    dj_conv_desc d = {.cin = 16, .cout = 16, .k = 3, .stride = 2, .pad = 1, .out_pad = 1, .transposed = 1, .frozen = 1};
    fx f;
    CHECK(fx_init(&f, &d, 2, 6, 5, 30) == 0);
    CHECK(fx_forward_err(&f, 1e-5, 1e-4) <= 1);
    size_t ny = dj_tensor_numel(&f.y);
    float *y1 = malloc(ny * sizeof(float));
    memcpy(y1, f.y.data, ny * sizeof(float));
    for (size_t i = 0; i < f.nw; i++) f.w[i] += 0.25f;
    CHECK_OK(dj_conv_forward(f.conv, &f.x, f.w, NULL, &f.y));
    CHECK(memcmp(y1, f.y.data, ny * sizeof(float)) == 0); /* cached weights */
    dj_conv_weights_changed(f.conv);
    CHECK(fx_forward_err(&f, 1e-5, 1e-4) <= 1);
    free(y1);
    fx_free(&f);

    /* out_pad > pad (the backend extends the kernel): same caching rules,
     * and weights at a new address are picked up. */
    dj_conv_desc e = {.cin = 8, .cout = 16, .k = 2, .stride = 2, .out_pad = 1, .transposed = 1, .frozen = 1};
    CHECK(fx_init(&f, &e, 2, 4, 5, 31) == 0);
    CHECK(fx_forward_err(&f, 1e-5, 1e-4) <= 1);
    ny = dj_tensor_numel(&f.y);
    y1 = malloc(ny * sizeof(float));
    memcpy(y1, f.y.data, ny * sizeof(float));
    for (size_t i = 0; i < f.nw; i++) f.w[i] -= 0.5f;
    CHECK_OK(dj_conv_forward(f.conv, &f.x, f.w, NULL, &f.y));
    CHECK(memcmp(y1, f.y.data, ny * sizeof(float)) == 0); /* cached weights */
    dj_conv_weights_changed(f.conv);
    CHECK(fx_forward_err(&f, 1e-5, 1e-4) <= 1);
    float *w2 = malloc(f.nw * sizeof(float));
    for (size_t i = 0; i < f.nw; i++) w2[i] = 2 * f.w[i];
    float *keep = f.w;
    f.w = w2;
    CHECK(fx_forward_err(&f, 1e-5, 1e-4) <= 1); /* new address, new weights */
    f.w = keep;
    free(w2);
    free(y1);
    fx_free(&f);
}

/* ------------------------------------------------------------ gradients */

typedef struct gc_ctx {
    fx *f;
} gc_ctx;

static double deconv_loss(void *p) {
    fx *f = ((gc_ctx *)p)->f;
    if (dj_conv_forward(f->conv, &f->x, f->w, fx_bias(f), &f->y) != 0) return NAN;
    double l = 0;
    size_t ny = dj_tensor_numel(&f->y);
    for (size_t i = 0; i < ny; i++) l += (double)f->y.data[i] * f->dy.data[i];
    return l;
}

/* Linear in each argument, so central differences are exact up to float
 * rounding; atol 1e-3 / rtol 1e-2 catches a flipped or transposed kernel. */
static void gradcheck_layer(const dj_conv_desc *d, int n, int h, int w, uint64_t seed) {
    fx f;
    CHECK(fx_init(&f, d, n, h, w, seed) == 0);
    gc_ctx g = {&f};
    char s[64];
    snprintf(s, sizeof s, "deconv k%d s%d p%d op%d bias%d", d->k, d->stride, d->pad, d->out_pad, d->bias);
    CHECK_OK(dj_conv_backward_data(f.conv, &f.dy, f.w, &f.dx, 0));
    CHECK_OK(dj_conv_backward_weights(f.conv, &f.x, &f.dy, f.dw, d->bias ? f.db : NULL));
    double e1 = gc_check(s, deconv_loss, &g, f.x.data, f.dx.data, dj_tensor_numel(&f.x), 1e-2f, 1e-3, 1e-2, 400);
    double e2 = gc_check(s, deconv_loss, &g, f.w, f.dw, f.nw, 1e-2f, 1e-3, 1e-2, 400);
    double e3 = d->bias ? gc_check(s, deconv_loss, &g, f.b, f.db, (size_t)d->cout, 1e-2f, 1e-3, 1e-2, 400) : 0;
    if (!(e1 <= 1 && e2 <= 1 && e3 <= 1)) fprintf(stderr, "gradcheck %s: dx %g dw %g db %g\n", s, e1, e2, e3);
    CHECK(e1 <= 1);
    CHECK(e2 <= 1);
    CHECK(e3 <= 1);
    fx_free(&f);
}

static void test_gradcheck_awkward(void) {
    dj_backend_set_strict(0);
    for (int i = 0; i < NSHAPES; i++) {
        dj_conv_desc d = awkward(i, i % 2 == 0);
        gradcheck_layer(&d, 3, 5, 7, 200 + i);
    }
    dj_backend_set_strict(1);
}

static void test_gradcheck_fast_shape(void) {
    dj_conv_desc d = {.cin = 16, .cout = 16, .k = 3, .stride = 2, .pad = 1, .out_pad = 1, .transposed = 1, .bias = 1};
    gradcheck_layer(&d, 2, 4, 3, 300);
}

/* dw, db add; dx overwrites with accum = 0 and adds with accum = 1. */
static void test_accumulate(void) {
    dj_backend_set_strict(0);
    dj_conv_desc d = {.cin = 3, .cout = 5, .k = 3, .stride = 2, .pad = 1, .out_pad = 1, .transposed = 1, .bias = 1};
    fx f;
    CHECK(fx_init(&f, &d, 2, 4, 5, 400) == 0);
    size_t nx = dj_tensor_numel(&f.dx);
    CHECK_OK(dj_conv_backward_weights(f.conv, &f.x, &f.dy, f.dw, f.db));
    float *dw0 = malloc(f.nw * sizeof(float)), db0[5], *dx0 = malloc(nx * sizeof(float));
    memcpy(dw0, f.dw, f.nw * sizeof(float));
    memcpy(db0, f.db, sizeof db0);
    CHECK_OK(dj_conv_backward_weights(f.conv, &f.x, &f.dy, f.dw, f.db));
    for (size_t i = 0; i < f.nw; i++) CHECK_CLOSE(f.dw[i], 2 * dw0[i], 1e-5, 1e-5);
    for (int i = 0; i < 5; i++) CHECK_CLOSE(f.db[i], 2 * db0[i], 1e-5, 1e-5);
    for (size_t i = 0; i < nx; i++) f.dx.data[i] = NAN;
    CHECK_OK(dj_conv_backward_data(f.conv, &f.dy, f.w, &f.dx, 0));
    memcpy(dx0, f.dx.data, nx * sizeof(float));
    CHECK(dj_all_finite(dx0, nx));
    CHECK_OK(dj_conv_backward_data(f.conv, &f.dy, f.w, &f.dx, 1));
    for (size_t i = 0; i < nx; i++) CHECK_CLOSE(f.dx.data[i], 2 * dx0[i], 1e-5, 1e-5);
    free(dw0);
    free(dx0);
    fx_free(&f);
    dj_backend_set_strict(1);
}

/* Activations in oneDNN's blocked layout (the Winograd path's way), with
 * the backend's own epilogue reading the reordered output. */
static void test_blocked_activations(void) {
    dj_bconv_debug_layout(DJ_BCONV_DEBUG_ANY_ACT);
    dj_conv_desc d = {.cin = 16, .cout = 24, .k = 3, .stride = 2, .pad = 1, .out_pad = 1, .transposed = 1, .bias = 1};
    gradcheck_layer(&d, 2, 3, 4, 600);
    d.post_sum = 1;
    d.post_relu = 1;
    fx f;
    CHECK(fx_init(&f, &d, 2, 3, 4, 601) == 0);
    CHECK(fx_forward_err(&f, 1e-5, 1e-4) <= 1);
    fx_free(&f);
    dj_bconv_debug_layout(0);
}

/* ------------------------------------------------------------ errors */

static void test_bad_desc(void) {
    dj_conv_desc ok = {.cin = 3, .cout = 5, .k = 3, .stride = 2, .pad = 1, .out_pad = 1, .transposed = 1};
    dj_conv *c = NULL;
    dj_conv_desc d = ok;
    d.out_pad = 2;
    CHECK_FAILS(dj_conv_create(&c, &d), DJ_EINVAL, "out_pad = 2, must be >= 0 and < stride = 2");
    d.out_pad = -1;
    CHECK_FAILS(dj_conv_create(&c, &d), DJ_EINVAL, "out_pad = -1");
    d = ok;
    d.stride = 1; /* out_pad 1 is not < stride 1 */
    CHECK_FAILS(dj_conv_create(&c, &d), DJ_EINVAL, "transposed conv descriptor");
    d = ok;
    d.k = 0;
    CHECK_FAILS(dj_conv_create(&c, &d), DJ_EINVAL, "k = 0");
    d = ok;
    d.cout = 0;
    CHECK_FAILS(dj_conv_create(&c, &d), DJ_EINVAL, "cout = 0");
    CHECK(c == NULL);

    /* Output shape of a transposed conv, not a conv: 4x5 -> 8x10. */
    dj_backend_set_strict(0);
    fx f;
    CHECK(fx_init(&f, &ok, 2, 4, 5, 500) == 0);
    CHECK(f.y.h == 8 && f.y.w == 10);
    dj_tensor y = f.y;
    y.h = 7;
    CHECK_FAILS(dj_conv_forward(f.conv, &f.x, f.w, NULL, &y), DJ_EINVAL, "needs 2x8x10x5");
    dj_tensor x = f.x;
    x.c = 5;
    CHECK_FAILS(dj_conv_forward(f.conv, &x, f.w, NULL, &f.y), DJ_EINVAL, "x has 5 channels");
    CHECK_FAILS(dj_conv_backward_data(f.conv, &y, f.w, &f.dx, 0), DJ_EINVAL, "dy is 2x7x10x5");
    CHECK_FAILS(dj_conv_forward(f.conv, &f.x, f.w, f.b, &f.y), DJ_EINVAL, "without bias");
    fx_free(&f);
    dj_backend_set_strict(1);
}

int main(void) {
    RUN(test_out_shape);
    RUN(test_forward_awkward);
    RUN(test_forward_fast_shape);
    RUN(test_epilogue);
    RUN(test_post_ops_frozen_winograd);
    RUN(test_gradcheck_awkward);
    RUN(test_gradcheck_fast_shape);
    RUN(test_accumulate);
    RUN(test_blocked_activations);
    RUN(test_bad_desc);
    return check_report("test_deconv");
}
