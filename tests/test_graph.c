/* Whole-graph tests: a small network touching every layer kind, its
 * gradients against central finite differences, freezing (BN folding and
 * ReLU fusion) against the unfrozen inference pass, and the arena's reuse
 * across batch sizes. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "dmvjnd/dmvjnd.h"
#include "dmvjnd/graph.h"
#include "dmvjnd/models.h"
#include "backend/dnnl.h"
#include "gradcheck.h"

/* input 5x7x3 -> conv+bn(+relu) -> {conv s2 + bn + leaky, avgpool s2} concat
 * -> conv 1x1 -> add(residual via 1x1 conv)(+relu) -> tanh -> maxpool -> gap
 * -> linear 5.
 *
 * Checked with and without the fused ReLUs: ReLU and max-pool kinks make
 * some finite differences meaningless, which gc_check detects and skips
 * (see tests/gradcheck.h). */
static dj_graph *small_net(int with_dropout, int relu) {
    dj_graph *g;
    dj_rng rng;
    dj_rng_seed(&rng, 7);
    if (dj_graph_create(&g, 5, 7, 3)) return NULL;
    int a = dj_graph_conv(g, 0, "c1", 4, 3, 1, 1, 1);
    a = dj_graph_bn(g, a, "b1", relu);
    int b = dj_graph_conv(g, a, "c2", 6, 3, 2, 1, 0);
    b = dj_graph_bn(g, b, "b2", 0);
    b = dj_graph_act(g, b, DJ_ACT_LEAKY_RELU, 0.1f);
    int p = dj_graph_avgpool(g, a, 3, 2, 1);
    int cat[2] = {b, p};
    int c = dj_graph_concat(g, cat, 2);
    int d = dj_graph_conv(g, c, "c3", 5, 1, 1, 0, 1);
    int s = dj_graph_conv(g, c, "sc", 5, 1, 1, 0, 0);
    s = dj_graph_bn(g, s, "sb", 0);
    int e = dj_graph_add(g, d, s, relu);
    e = dj_graph_act(g, e, DJ_ACT_TANH, 0);
    if (with_dropout) e = dj_graph_dropout(g, e, 0.25f);
    e = dj_graph_maxpool(g, e, 2, relu ? 1 : 2, 0);
    e = dj_graph_gap(g, e);
    e = dj_graph_linear(g, e, "fc", 5, 1);
    if (e < 0 || dj_graph_finalize(g, &rng)) {
        fprintf(stderr, "small_net: %s\n", dj_last_error());
        dj_graph_destroy(g);
        return NULL;
    }
    return g;
}

typedef struct ctx {
    dj_graph *g;
    dj_tensor x;
    float r[64];
    int train;
    uint64_t seed; /* dropout: the same mask at every evaluation */
} ctx;

static double loss_of(void *p) {
    ctx *c = p;
    const dj_tensor *y;
    dj_rng rng;
    dj_rng_seed(&rng, c->seed);
    if (dj_graph_forward(c->g, &c->x, c->train, &rng, &y)) return NAN;
    double l = 0;
    for (size_t i = 0; i < dj_tensor_numel(y); i++) l += (double)y->data[i] * c->r[i];
    return l;
}

static void run_gradcheck(ctx *c, int check_params) {
    dj_tensor dout, dx;
    CHECK_OK(dj_tensor_alloc(&dout, 3, 1, 1, 5));
    CHECK_OK(dj_tensor_alloc(&dx, 3, 5, 7, 3));
    memcpy(dout.data, c->r, 15 * sizeof(float));
    if (!dj_graph_is_frozen(c->g)) dj_graph_zero_grad(c->g);
    loss_of(c);
    CHECK_OK(dj_graph_backward(c->g, &dout, &dx));
    CHECK(gc_check("dx", loss_of, c, c->x.data, dx.data, dj_tensor_numel(&dx), 1e-3f, 2e-3, 2e-2, 105) <= 1);
    if (check_params) {
        for (int i = 0; i < dj_graph_num_params(c->g); i++) {
            const dj_param *p = dj_graph_param(c->g, i);
            if (!p->trainable) continue;
            /* copy: gc_check perturbs p->data while the grad buffer stays */
            float *gcopy = malloc(p->count * sizeof(float));
            memcpy(gcopy, p->grad, p->count * sizeof(float));
            CHECK(gc_check(p->name, loss_of, c, p->data, gcopy, p->count, 1e-3f, 2e-3, 2e-2, 40) <= 1);
            free(gcopy);
        }
    }
    dj_tensor_free(&dout);
    dj_tensor_free(&dx);
}

static void test_small_net_gradients(void) {
    for (int relu = 0; relu < 2; relu++) {
    ctx c = {0};
    c.g = small_net(0, relu);
    CHECK(c.g != NULL);
    if (!c.g) return;
    c.train = 1;
    CHECK_OK(dj_tensor_alloc(&c.x, 3, 5, 7, 3));
    gc_fill(c.x.data, dj_tensor_numel(&c.x), -1, 1, 3);
    gc_fill(c.r, 15, -1, 1, 4);
    run_gradcheck(&c, 1);
    dj_tensor_free(&c.x);
    dj_graph_destroy(c.g);
    }
}

static void test_dropout_gradients(void) {
    ctx c = {0};
    c.g = small_net(1, 1);
    CHECK(c.g != NULL);
    if (!c.g) return;
    c.train = 1;
    c.seed = 99;
    CHECK_OK(dj_tensor_alloc(&c.x, 3, 5, 7, 3));
    gc_fill(c.x.data, dj_tensor_numel(&c.x), -1, 1, 5);
    gc_fill(c.r, 15, -1, 1, 6);
    run_gradcheck(&c, 0);
    dj_tensor_free(&c.x);
    dj_graph_destroy(c.g);
}

/* Freezing must not change what the network computes in inference mode,
 * and the frozen backward must be the gradient of the frozen forward. */
static void test_freeze_matches_inference(void) {
    ctx c = {0};
    c.g = small_net(1, 1);
    CHECK(c.g != NULL);
    if (!c.g) return;
    CHECK_OK(dj_tensor_alloc(&c.x, 3, 5, 7, 3));
    /* a few training passes give non-trivial running statistics */
    for (int i = 0; i < 4; i++) {
        gc_fill(c.x.data, dj_tensor_numel(&c.x), -2, 2, 10 + i);
        c.train = 1;
        loss_of(&c);
    }
    gc_fill(c.x.data, dj_tensor_numel(&c.x), -1, 1, 20);
    gc_fill(c.r, 15, -1, 1, 21);
    const dj_tensor *y;
    CHECK_OK(dj_graph_forward(c.g, &c.x, 0, NULL, &y));
    float ref[15];
    memcpy(ref, y->data, sizeof ref);
    CHECK_OK(dj_graph_freeze(c.g));
    CHECK(dj_graph_is_frozen(c.g));
    CHECK_FAILS(dj_graph_forward(c.g, &c.x, 1, NULL, &y), DJ_EINVAL, "frozen");
    CHECK_OK(dj_graph_forward(c.g, &c.x, 0, NULL, &y));
    CHECK(check_max_err(y->data, ref, 15, 1e-5, 1e-4) <= 1);
    c.train = 0;
    run_gradcheck(&c, 0);
    dj_tensor_free(&c.x);
    dj_graph_destroy(c.g);
}

/* A smaller batch after a larger one reuses the arena; results per image
 * do not depend on the batch in inference mode. */
static void test_batch_sizes(void) {
    dj_graph *g = small_net(0, 1);
    CHECK(g != NULL);
    if (!g) return;
    dj_tensor x;
    CHECK_OK(dj_tensor_alloc(&x, 4, 5, 7, 3));
    gc_fill(x.data, dj_tensor_numel(&x), -1, 1, 30);
    const dj_tensor *y;
    CHECK_OK(dj_graph_forward(g, &x, 0, NULL, &y));
    float first[5];
    memcpy(first, y->data, sizeof first);
    dj_tensor one = dj_tensor_view(x.data, 1, 5, 7, 3);
    CHECK_OK(dj_graph_forward(g, &one, 0, NULL, &y));
    CHECK(y->n == 1);
    CHECK(check_max_err(y->data, first, 5, 1e-6, 1e-5) <= 1);
    dj_tensor bad = dj_tensor_view(x.data, 1, 7, 5, 3);
    CHECK_FAILS(dj_graph_forward(g, &bad, 0, NULL, &y), DJ_EINVAL, "takes Nx5x7x3");
    dj_tensor_free(&x);
    dj_graph_destroy(g);
}

static void test_build_errors(void) {
    dj_graph *g;
    CHECK_OK(dj_graph_create(&g, 8, 8, 3));
    CHECK_FAILS(dj_graph_conv(g, 5, "c", 4, 3, 1, 1, 0), DJ_EINVAL, "does not exist");
    int a = dj_graph_conv(g, 0, "c", 4, 3, 1, 1, 0);
    CHECK(a > 0);
    CHECK_FAILS(dj_graph_conv(g, a, "c", 4, 3, 1, 1, 0), DJ_EINVAL, "used twice");
    int b = dj_graph_maxpool(g, a, 2, 2, 0);
    CHECK_FAILS(dj_graph_add(g, a, b, 0), DJ_EINVAL, "differ");
    CHECK_FAILS(dj_graph_act(g, a, DJ_ACT_LEAKY_RELU, 0), DJ_EINVAL, "slope");
    dj_graph_destroy(g);
    CHECK_FAILS(dj_model_resnet_cifar(&g, 21, 16, 10, NULL), DJ_EINVAL, "6n+2");
}

/* ResNet-20's shape and size: 0.27 M parameters (He et al.; with 1x1
 * projection shortcuts), about 81 MFLOP per 32x32 image. */
static void test_resnet20_size(void) {
    dj_graph *g;
    dj_rng rng;
    dj_rng_seed(&rng, 1);
    CHECK_OK(dj_model_build(&g, "resnet20", 10, &rng));
    if (!g) return;
    /* independent count: convs 3x3 + projections + BN + fc */
    size_t convs = 16 * 3 * 9 + 6 * 16 * 16 * 9 + (16 * 32 * 9 + 5 * 32 * 32 * 9) + (32 * 64 * 9 + 5 * 64 * 64 * 9);
    size_t proj = 16 * 32 + 32 * 64;
    size_t bn = 2 * (16 * 7 + 32 * 7 + 64 * 7);
    size_t fc = 64 * 10 + 10;
    CHECK(dj_graph_trainable_count(g) == convs + proj + bn + fc);
    double mflop = dj_graph_flops(g) / 1e6;
    CHECK(mflop > 80 && mflop < 84);
    CHECK(dj_graph_find_param(g, "layer2.0.shortcut.0.weight") != NULL);
    CHECK(dj_graph_find_param(g, "layer3.2.bn2.running_var") != NULL);
    CHECK(dj_graph_find_param(g, "fc.bias") != NULL);
    dj_graph_destroy(g);
}

int main(void) {
    dj_set_num_threads(2);
    dj_backend_set_strict(0); /* tiny awkward shapes may use reference kernels */
    RUN(test_small_net_gradients);
    RUN(test_dropout_gradients);
    RUN(test_freeze_matches_inference);
    RUN(test_batch_sizes);
    RUN(test_build_errors);
    RUN(test_resnet20_size);
    return check_report("test_graph");
}
