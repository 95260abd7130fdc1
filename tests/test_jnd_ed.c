/* The DMV-JND E-D autoencoder: its size against closed-form counts, its
 * names, output shape and range, gradients against central finite
 * differences, freezing, input checks, and the input stacking helper (with
 * and without the margin plane). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backend/dnnl.h"
#include "check.h"
#include "dmvjnd/dmvjnd.h"
#include "dmvjnd/jnd.h"
#include "dmvjnd/models.h"
#include "gradcheck.h"

/* Trainable parameters for widths w[0..6] (enc.0, enc.3, enc.7, enc.11,
 * dec.0, dec.3, dec.6): 3x3 convs without bias, 2x2 deconvs without bias,
 * the last 3x3 conv with bias, and BN gamma + beta per channel. */
static size_t ed_params(const int *w) {
    size_t conv = 9 * ((size_t)4 * w[0] + (size_t)w[0] * w[1] + (size_t)w[1] * w[2] + (size_t)w[2] * w[3]);
    size_t deconv = 4 * ((size_t)w[3] * w[4] + (size_t)w[4] * w[5] + (size_t)w[5] * w[6]);
    size_t last = 9 * (size_t)w[6] * 3 + 3;
    size_t bn = 0;
    for (int i = 0; i < 7; i++) bn += 2 * (size_t)w[i];
    return conv + deconv + last + bn;
}

/* FLOPs (2 x MACs) per image of size h x w: convs at their output size,
 * deconvs at their input size. */
static double ed_flops(const int *c, int h, int w) {
    double a = (double)h * w;
    double mac = a * 9 * (4.0 * c[0] + (double)c[0] * c[1]) + a / 4 * 9 * c[1] * c[2] + a / 16 * 9 * c[2] * c[3] +
                 a / 64 * 4 * c[3] * c[4] + a / 16 * 4 * c[4] * c[5] + a / 4 * 4 * c[5] * c[6] + a * 9 * c[6] * 3;
    return 2 * mac;
}

static void test_sizes(void) {
    const float widths[2] = {1.0f, 0.5f};
    /* 32x32: 364.8 MFLOP at width 1, 93.3 at width 0.5 */
    const double lo[2] = {360, 92}, hi[2] = {370, 95};
    for (int k = 0; k < 2; k++) {
        dj_jnd_ed_config cfg = dj_jnd_ed_defaults();
        cfg.width = widths[k];
        int wd[7];
        CHECK_OK(dj_jnd_ed_widths(&cfg, wd));
        dj_graph *g = NULL;
        dj_rng rng;
        dj_rng_seed(&rng, 1);
        CHECK_OK(dj_model_jnd_ed(&g, &cfg, 32, 32, &rng));
        if (!g) continue;
        CHECK(wd[0] == (k ? 32 : 64) && wd[2] == (k ? 128 : 256) && wd[4] == (k ? 128 : 256));
        CHECK(dj_graph_trainable_count(g) == ed_params(wd));
        double mflop = dj_graph_flops(g) / 1e6;
        printf("jnd_ed width %.2g: %zu parameters, %.1f MFLOP per 32x32 image\n", widths[k],
               dj_graph_trainable_count(g), mflop);
        CHECK_CLOSE(dj_graph_flops(g), ed_flops(wd, 32, 32), 0, 1e-9);
        CHECK(mflop > lo[k] && mflop < hi[k]);
        int h, w, c;
        dj_graph_node_shape(g, 0, &h, &w, &c);
        CHECK(h == 32 && w == 32 && c == 4);
        dj_graph_node_shape(g, dj_graph_output_node(g), &h, &w, &c);
        CHECK(h == 32 && w == 32 && c == 3);
        /* PyTorch names; no bias before a batch norm */
        const dj_param *p = dj_graph_find_param(g, "dec.0.weight");
        CHECK(p && p->ndim == 4 && p->shape[0] == wd[3] && p->shape[1] == wd[4] && p->shape[2] == 2);
        CHECK(dj_graph_find_param(g, "enc.0.weight") && !dj_graph_find_param(g, "enc.0.bias"));
        CHECK(dj_graph_find_param(g, "enc.12.running_var") && dj_graph_find_param(g, "dec.7.bias"));
        CHECK(dj_graph_find_param(g, "dec.9.bias") && !dj_graph_find_param(g, "dec.6.bias"));
        dj_graph_destroy(g);
    }
    /* width 1: 751,427 trainable parameters (documented in jnd.h) */
    int w1[7] = {64, 128, 256, 64, 256, 128, 64};
    CHECK(ed_params(w1) == 751427);
    /* the registry knows it */
    dj_graph *g = NULL;
    CHECK_OK(dj_model_build(&g, "jnd_ed_half", 10, NULL));
    if (g) CHECK(dj_graph_find_param(g, "enc.0.weight")->shape[0] == 32);
    dj_graph_destroy(g);
}

static void test_forward_range(void) {
    dj_graph *g = NULL;
    dj_rng rng;
    dj_rng_seed(&rng, 3);
    /* any multiple of 8, not only square */
    CHECK_OK(dj_model_jnd_ed(&g, NULL, 24, 40, &rng));
    if (!g) return;
    dj_tensor x;
    CHECK_OK(dj_tensor_alloc(&x, 2, 24, 40, 4));
    gc_fill(x.data, dj_tensor_numel(&x), -1, 1, 4);
    for (int train = 1; train >= 0; train--) {
        const dj_tensor *y;
        CHECK_OK(dj_graph_forward(g, &x, train, &rng, &y));
        CHECK(y->n == 2 && y->h == 24 && y->w == 40 && y->c == 3);
        float mx = 0;
        for (size_t i = 0; i < dj_tensor_numel(y); i++) mx = fmaxf(mx, fabsf(y->data[i]));
        CHECK(mx > 0.0f && mx < 1.0f); /* tanh: inside (-1, 1), and not all zero */
        CHECK(dj_all_finite(y->data, dj_tensor_numel(y)));
    }
    dj_tensor_free(&x);
    dj_graph_destroy(g);
}

typedef struct ctx {
    dj_graph *g;
    dj_tensor x;
    float *r;
} ctx;

static double loss_of(void *p) {
    ctx *c = p;
    const dj_tensor *y;
    if (dj_graph_forward(c->g, &c->x, 1, NULL, &y)) return NAN;
    double l = 0;
    for (size_t i = 0; i < dj_tensor_numel(y); i++) l += (double)y->data[i] * c->r[i];
    return l;
}

/* Directional derivative check. Central differences element by element do
 * not work on the whole E-D: in float32, with batch norm on small batches
 * after every layer, the loss carries rounding noise of ~1e-5 (every
 * output moves with the batch statistics), while the maximum pools and
 * LeakyReLUs put kinks close to any point, so no step is both above the
 * noise and below the kinks for one element. Along a random unit direction
 * v of the whole tensor the signal is larger and the kinks average out:
 *   num = (L(x + h v) - L(x - h v)) / 2h   vs   ana = <g, v>,
 * judged against S = sqrt(sum g_i^2 v_i^2), the typical size of <g, v>:
 * |num - ana| <= 0.1 S + 2e-3 in each of 6 directions, h = 3e-4. Measured
 * on this network: correct gradients stay below 0.06 S; a gradient scaled
 * by 1.2 shows >= 0.1 S, one with every 4th element zeroed >= 0.25 S. (The
 * exact check is tools/torch/check_jnd.py against PyTorch's autograd.)
 * Returns the worst |num - ana| / (0.1 S + 2e-3): <= 1 passes. */
static double dir_check(const char *what, gc_loss_fn loss, void *arg, float *x, const float *g, size_t n) {
    float *keep = malloc(n * sizeof(float)), *v = malloc(n * sizeof(float));
    memcpy(keep, x, n * sizeof(float));
    const double h = 3e-4;
    double worst = 0;
    for (int d = 0; d < 6; d++) {
        gc_fill(v, n, -1, 1, 100 + (uint64_t)d);
        double norm = 0;
        for (size_t i = 0; i < n; i++) norm += (double)v[i] * v[i];
        norm = sqrt(norm);
        double ana = 0, s = 0;
        for (size_t i = 0; i < n; i++) {
            v[i] = (float)(v[i] / norm);
            ana += (double)g[i] * v[i];
            s += (double)g[i] * g[i] * v[i] * v[i];
        }
        for (size_t i = 0; i < n; i++) x[i] = keep[i] + (float)h * v[i];
        double lp = loss(arg);
        for (size_t i = 0; i < n; i++) x[i] = keep[i] - (float)h * v[i];
        double lm = loss(arg);
        memcpy(x, keep, n * sizeof(float));
        double num = (lp - lm) / (2 * h), e = fabs(num - ana) / (0.1 * sqrt(s) + 2e-3);
        if (!(e <= worst)) {
            worst = e;
            if (!(e <= 1))
                fprintf(stderr, "dir_check %s: direction %d: analytic %.7g numeric %.7g (err %.3g)\n", what, d, ana,
                        num, e);
        }
    }
    free(keep);
    free(v);
    return worst;
}

/* Training-mode gradients at width 0.125 (widths 8-16-32-8 / 32-16-8),
 * batch 2, for the input and every trainable parameter, with the default
 * LeakyReLU and with plain ReLU (fused into the batch norms). The input is
 * 16x16 rather than 8x8: at 8x8 the bottleneck is 1x1 and its batch norm
 * sees only 2 values per channel, which it maps to +-1 whatever they are,
 * so nothing before it would get a gradient worth checking. On oneDNN's
 * direct convolutions: the Winograd kernel's extra rounding (~5e-6) puts
 * noise of ~1e-4 in the loss here, which the step h = 3e-4 cannot carry
 * (with h = 1e-3 it passes); that kernel has its own gradient checks in
 * test_winograd. */
static void test_gradients(void) {
    int wino = dj_graph_default_winograd();
    dj_graph_set_default_winograd(0);
    for (int relu = 0; relu < 2; relu++) {
        dj_jnd_ed_config cfg = dj_jnd_ed_defaults();
        cfg.width = 0.125f;
        if (relu) cfg.slope = 0.0f;
        ctx c = {0};
        dj_rng rng;
        dj_rng_seed(&rng, 5);
        CHECK_OK(dj_model_jnd_ed(&c.g, &cfg, 16, 16, &rng));
        if (!c.g) return;
        CHECK_OK(dj_tensor_alloc(&c.x, 2, 16, 16, 4));
        gc_fill(c.x.data, dj_tensor_numel(&c.x), -1, 1, 6);
        size_t ny = 2 * 16 * 16 * 3;
        c.r = malloc(ny * sizeof(float));
        gc_fill(c.r, ny, -1, 1, 7);
        dj_tensor dy = dj_tensor_view(c.r, 2, 16, 16, 3), dx;
        CHECK_OK(dj_tensor_alloc(&dx, 2, 16, 16, 4));
        dj_graph_zero_grad(c.g);
        loss_of(&c);
        CHECK_OK(dj_graph_backward(c.g, &dy, &dx));
        CHECK(dir_check("jnd_ed dx", loss_of, &c, c.x.data, dx.data, dj_tensor_numel(&dx)) <= 1);
        int checked = 0;
        for (int i = 0; i < dj_graph_num_params(c.g); i++) {
            const dj_param *p = dj_graph_param(c.g, i);
            if (!p->trainable) continue;
            float *gcopy = malloc(p->count * sizeof(float));
            memcpy(gcopy, p->grad, p->count * sizeof(float));
            CHECK(dir_check(p->name, loss_of, &c, p->data, gcopy, p->count) <= 1);
            /* the output layer's bias element by element too: it is smooth there */
            if (!strcmp(p->name, "dec.9.bias"))
                CHECK(gc_check(p->name, loss_of, &c, p->data, gcopy, p->count, 1e-3f, 2e-3, 2e-2, 3) <= 1);
            free(gcopy);
            checked++;
        }
        CHECK(checked == 23); /* 8 conv weights + dec.9.bias + 7 BN x 2 */
        free(c.r);
        dj_tensor_free(&dx);
        dj_tensor_free(&c.x);
        dj_graph_destroy(c.g);
    }
    dj_graph_set_default_winograd(wino);
}

/* Generation can use the frozen graph (BN folded into the convs and
 * transposed convs): same output as the inference pass. */
static void test_freeze(void) {
    dj_graph *g = NULL;
    dj_rng rng;
    dj_rng_seed(&rng, 8);
    dj_jnd_ed_config cfg = dj_jnd_ed_defaults();
    cfg.width = 0.25f;
    CHECK_OK(dj_model_jnd_ed(&g, &cfg, 16, 16, &rng));
    if (!g) return;
    dj_tensor x;
    CHECK_OK(dj_tensor_alloc(&x, 3, 16, 16, 4));
    const dj_tensor *y;
    for (int i = 0; i < 3; i++) { /* running statistics move away from 0 / 1 */
        gc_fill(x.data, dj_tensor_numel(&x), -2, 2, 20 + i);
        CHECK_OK(dj_graph_forward(g, &x, 1, NULL, &y));
    }
    gc_fill(x.data, dj_tensor_numel(&x), -1, 1, 30);
    CHECK_OK(dj_graph_forward(g, &x, 0, NULL, &y));
    size_t n = dj_tensor_numel(y);
    float *ref = malloc(n * sizeof(float));
    memcpy(ref, y->data, n * sizeof(float));
    CHECK_OK(dj_graph_freeze(g));
    CHECK_OK(dj_graph_forward(g, &x, 0, NULL, &y));
    CHECK(check_max_err(y->data, ref, n, 1e-5, 1e-4) <= 1);
    free(ref);
    dj_tensor_free(&x);
    dj_graph_destroy(g);
}

static void test_errors(void) {
    dj_graph *g = (dj_graph *)&g;
    CHECK_FAILS(dj_model_jnd_ed(&g, NULL, 30, 32, NULL), DJ_EINVAL, "multiples of 8");
    CHECK(g == NULL);
    CHECK_FAILS(dj_model_jnd_ed(&g, NULL, 32, 36, NULL), DJ_EINVAL, "32x36");
    CHECK_FAILS(dj_model_jnd_ed(&g, NULL, 0, 0, NULL), DJ_EINVAL, "multiples of 8");
    dj_jnd_ed_config cfg = dj_jnd_ed_defaults();
    cfg.width = 0;
    CHECK_FAILS(dj_model_jnd_ed(&g, &cfg, 32, 32, NULL), DJ_EINVAL, "width");
    cfg.width = NAN;
    CHECK_FAILS(dj_model_jnd_ed(&g, &cfg, 32, 32, NULL), DJ_EINVAL, "width");
    cfg = dj_jnd_ed_defaults();
    cfg.slope = -0.1f;
    CHECK_FAILS(dj_model_jnd_ed(&g, &cfg, 32, 32, NULL), DJ_EINVAL, "slope");
    /* a wrong input size at forward time */
    CHECK_OK(dj_model_jnd_ed(&g, NULL, 8, 8, NULL));
    if (g) {
        dj_tensor x;
        CHECK_OK(dj_tensor_alloc(&x, 1, 8, 8, 3));
        const dj_tensor *y;
        CHECK_FAILS(dj_graph_forward(g, &x, 0, NULL, &y), DJ_EINVAL, "8x8x4");
        dj_tensor_free(&x);
        dj_graph_destroy(g);
    }
}

static void test_stack(void) {
    float x[2 * 2 * 3], c[2 * 2], xc[2 * 2 * 4];
    for (int i = 0; i < 12; i++) x[i] = (float)i;
    for (int i = 0; i < 4; i++) c[i] = 100.0f + (float)i;
    dj_tensor tx = dj_tensor_view(x, 2, 1, 2, 3), tc = dj_tensor_view(c, 2, 1, 2, 1);
    dj_tensor txc = dj_tensor_view(xc, 2, 1, 2, 4);
    CHECK_OK(dj_jnd_stack(&tx, &tc, NULL, &txc));
    for (int p = 0; p < 4; p++) {
        for (int ch = 0; ch < 3; ch++) CHECK(xc[p * 4 + ch] == x[p * 3 + ch]);
        CHECK(xc[p * 4 + 3] == c[p]);
    }
    dj_tensor bad = dj_tensor_view(c, 1, 2, 2, 1);
    CHECK_FAILS(dj_jnd_stack(&tx, &bad, NULL, &txc), DJ_EINVAL, "jnd_stack");
}

/* The margin input: a fifth channel, margin[i] on every pixel of image i;
 * the builder takes 5 channels then, and rejects a margin_input that is
 * not 0 or 1. */
static void test_stack_margin(void) {
    float x[2 * 2 * 3], c[2 * 2], xc[2 * 2 * 5], m[2] = {0.25f, 0.75f};
    for (int i = 0; i < 12; i++) x[i] = (float)i;
    for (int i = 0; i < 4; i++) c[i] = 100.0f + (float)i;
    dj_tensor tx = dj_tensor_view(x, 2, 1, 2, 3), tc = dj_tensor_view(c, 2, 1, 2, 1);
    dj_tensor txc = dj_tensor_view(xc, 2, 1, 2, 5), t4 = dj_tensor_view(xc, 2, 1, 2, 4);
    CHECK_OK(dj_jnd_stack(&tx, &tc, m, &txc));
    for (int p = 0; p < 4; p++) {
        for (int ch = 0; ch < 3; ch++) CHECK(xc[p * 5 + ch] == x[p * 3 + ch]);
        CHECK(xc[p * 5 + 3] == c[p]);
        CHECK(xc[p * 5 + 4] == m[p / 2]); /* pixels 0-1 are image 0's */
    }
    CHECK_FAILS(dj_jnd_stack(&tx, &tc, m, &t4), DJ_EINVAL, "N x H x W x 5");
    CHECK_FAILS(dj_jnd_stack(&tx, &tc, NULL, &txc), DJ_EINVAL, "N x H x W x 4");

    dj_jnd_ed_config cfg = dj_jnd_ed_defaults();
    CHECK(cfg.margin_input == 0 && dj_jnd_ed_in_channels(&cfg) == 4 && dj_jnd_ed_in_channels(NULL) == 4);
    cfg.width = 0.25f;
    cfg.margin_input = 1;
    CHECK(dj_jnd_ed_in_channels(&cfg) == 5);
    dj_graph *g = NULL;
    CHECK_OK(dj_model_jnd_ed(&g, &cfg, 16, 16, NULL));
    if (g) {
        int h, w, ch;
        dj_graph_node_shape(g, 0, &h, &w, &ch);
        CHECK(h == 16 && w == 16 && ch == 5);
        const dj_param *p = dj_graph_find_param(g, "enc.0.weight");
        CHECK(p && p->ndim == 4 && p->shape[1] == 5 && p->shape[0] == 16);
        dj_graph_destroy(g);
    }
    cfg.margin_input = 2;
    CHECK_FAILS(dj_model_jnd_ed(&g, &cfg, 16, 16, NULL), DJ_EINVAL, "margin_input");
}

int main(void) {
    dj_set_num_threads(2);
    dj_backend_set_strict(0); /* tiny awkward shapes may use reference kernels */
    RUN(test_sizes);
    RUN(test_forward_range);
    RUN(test_gradients);
    RUN(test_freeze);
    RUN(test_errors);
    RUN(test_stack);
    RUN(test_stack_margin);
    return check_report("test_jnd_ed");
}
