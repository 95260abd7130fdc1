/* The model zoo: every named model builds; the four JND classifiers have the
 * parameter counts and FLOPs documented in docs/models.md (checked against
 * counts worked out by hand here, not by walking the graph); global average
 * pooling follows the last feature maps directly (CAM); a batch of 2 gives
 * finite 2x10 logits; the frozen graph computes what the inference pass
 * does. Other input sizes (dj_model_build_sized, dj_model_stride,
 * dj_classifier_load_sized): each model's stride, the same parameters at
 * every size, and 32x32 weights run at 64x48. The C-vs-PyTorch comparison,
 * at 32x32 and at 64x48, is tools/torch/run_parity.sh. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "dmvjnd/checkpoint.h"
#include "dmvjnd/dmvjnd.h"
#include "dmvjnd/graph.h"
#include "dmvjnd/models.h"
#include "dmvjnd/train.h"

static dj_graph *build(const char *name) {
    dj_graph *g = NULL;
    dj_rng rng;
    dj_rng_seed(&rng, 1);
    CHECK_OK(dj_model_build(&g, name, 10, &rng));
    return g;
}

static size_t conv(size_t cin, size_t cout, size_t k) { return cin * cout * k * k; }

/* Trainable floats and forward MACs per 32x32 image, by hand. */
typedef struct expect {
    const char *name;
    size_t params;
    double macs;
    double mflop_lo, mflop_hi; /* the documented range */
    int fh, fw, fc;            /* last feature maps (CAM resolution) */
} expect;

static expect expected(int which) {
    expect e = {0};
    switch (which) {
    case 0: /* AlexNet-style: 5x5 64 @32, 3x3 128 @16, 192 @8, 128 @8, 128 @4 */
        e.name = "alexnet";
        e.params = conv(3, 64, 5) + conv(64, 128, 3) + conv(128, 192, 3) + conv(192, 128, 3) + conv(128, 128, 3) +
                   2 * (64 + 128 + 192 + 128 + 128) + 128 * 10 + 10;
        e.macs = 3.0 * 64 * 25 * 1024 + 64.0 * 128 * 9 * 256 + 128.0 * 192 * 9 * 64 + 192.0 * 128 * 9 * 64 +
                 128.0 * 128 * 9 * 16 + 128 * 10;
        e.mflop_lo = 100, e.mflop_hi = 120;
        e.fh = e.fw = 4, e.fc = 128;
        break;
    case 1: /* VGG-11-BN: 48 @32, 96 @16, 192 x2 @8, 256 x4 @4 */
        e.name = "vgg11bn";
        e.params = conv(3, 48, 3) + conv(48, 96, 3) + conv(96, 192, 3) + conv(192, 192, 3) + conv(192, 256, 3) +
                   3 * conv(256, 256, 3) + 2 * (48 + 96 + 2 * 192 + 4 * 256) + 256 * 10 + 10;
        e.macs = 9.0 * (3 * 48 * 1024 + 48 * 96 * 256 + (96 * 192 + 192 * 192) * 64 + (192 * 256 + 3 * 256 * 256) * 16) +
                 256 * 10;
        e.mflop_lo = 150, e.mflop_hi = 170;
        e.fh = e.fw = 4, e.fc = 256;
        break;
    case 2: /* He et al.'s ResNet-20 (as tests/test_graph.c) */
        e.name = "resnet20";
        e.params = 16 * 3 * 9 + 6 * 16 * 16 * 9 + (16 * 32 * 9 + 5 * 32 * 32 * 9) + (32 * 64 * 9 + 5 * 64 * 64 * 9) +
                   16 * 32 + 32 * 64 + 2 * (16 * 7 + 32 * 7 + 64 * 7) + 64 * 10 + 10;
        e.macs = 9.0 * (3 * 16 + 6 * 16 * 16) * 1024 + 9.0 * (16 * 32 + 5 * 32 * 32) * 256 + 16.0 * 32 * 256 +
                 9.0 * (32 * 64 + 5 * 64 * 64) * 64 + 32.0 * 64 * 64 + 64 * 10;
        e.mflop_lo = 80, e.mflop_hi = 84;
        e.fh = e.fw = 8, e.fc = 64;
        break;
    case 3: {
        /* DenseNet-BC-40, k = 12: conv0 3->24; 3 blocks of 6 layers
         * (BN, 1x1 cin->48, BN, 3x3 48->12) with cin = c0 + 12 i; channels
         * 24 -> 96 -> 48 (transition) -> 120 -> 60 -> 132; final BN. */
        e.name = "densenet40bc";
        size_t p = conv(3, 24, 3);
        double macs = 3.0 * 24 * 9 * 1024;
        const size_t c0[3] = {24, 48, 60};
        const double px[3] = {1024, 256, 64};
        for (int b = 0; b < 3; b++) {
            for (size_t l = 0; l < 6; l++) {
                size_t cin = c0[b] + 12 * l;
                p += 2 * cin + conv(cin, 48, 1) + 2 * 48 + conv(48, 12, 3);
                macs += px[b] * (double)(conv(cin, 48, 1) + conv(48, 12, 3));
            }
        }
        p += 2 * 96 + conv(96, 48, 1) + 2 * 120 + conv(120, 60, 1); /* transitions */
        macs += 1024.0 * 96 * 48 + 256.0 * 120 * 60;
        p += 2 * 132 + 132 * 10 + 10;
        macs += 132 * 10;
        e.params = p; /* 176122 */
        e.macs = macs;
        e.mflop_lo = 140, e.mflop_hi = 150;
        e.fh = e.fw = 8, e.fc = 132;
        break;
    }
    }
    return e;
}

static void test_sizes(void) {
    double total = 0;
    for (int i = 0; i < 4; i++) {
        expect e = expected(i);
        dj_graph *g = build(e.name);
        if (!g) continue;
        size_t params = dj_graph_trainable_count(g);
        double mflop = dj_graph_flops(g) / 1e6;
        if (params != e.params || !(mflop >= e.mflop_lo && mflop <= e.mflop_hi))
            fprintf(stderr, "%s: %zu parameters (expected %zu), %.2f MFLOP (expected %.2f in [%g, %g])\n", e.name,
                    params, e.params, mflop, 2 * e.macs / 1e6, e.mflop_lo, e.mflop_hi);
        CHECK(params == e.params);
        CHECK_CLOSE(dj_graph_flops(g), 2 * e.macs, 0, 1e-9);
        CHECK(mflop >= e.mflop_lo && mflop <= e.mflop_hi);
        total += mflop;
        dj_graph_destroy(g);
    }
    /* the JND net runs all four forward and backward at every step */
    CHECK(total < 500);
}

/* CAM needs: output = linear(GAP(features)) with the features at least 4x4
 * and the linear weight classes x channels. */
static void test_cam_layout(void) {
    for (int i = 0; i < 4; i++) {
        expect e = expected(i);
        dj_graph *g = build(e.name);
        if (!g) continue;
        int out = dj_graph_output_node(g), gap = dj_graph_node_input(g, out), feat = dj_graph_node_input(g, gap);
        int h, w, c;
        dj_graph_node_shape(g, out, &h, &w, &c);
        CHECK(h == 1 && w == 1 && c == 10);
        dj_graph_node_shape(g, gap, &h, &w, &c);
        CHECK(h == 1 && w == 1 && c == e.fc);
        dj_graph_node_shape(g, feat, &h, &w, &c);
        CHECK(h == e.fh && w == e.fw && c == e.fc);
        const char *fc = strcmp(e.name, "resnet20") ? "classifier.weight" : "fc.weight";
        const dj_param *p = dj_graph_find_param(g, fc);
        CHECK(p && p->ndim == 2 && p->shape[0] == 10 && p->shape[1] == e.fc);
        dj_graph_destroy(g);
    }
}

/* State-dict keys the PyTorch twins have (tools/torch/models.py). */
static void test_names(void) {
    static const char *const keys[][4] = {
        {"alexnet", "features.0.weight", "features.16.running_var", "features.15.weight"},
        {"vgg11bn", "features.0.weight", "features.24.weight", "features.25.running_mean"},
        {"densenet40bc", "features.conv0.weight", "features.denseblock3.denselayer6.conv2.weight",
         "features.transition2.conv.weight"},
        {"densenet40bc", "features.denseblock1.denselayer1.norm1.running_mean", "features.norm5.bias",
         "classifier.bias"},
    };
    for (size_t i = 0; i < sizeof keys / sizeof *keys; i++) {
        dj_graph *g = build(keys[i][0]);
        if (!g) continue;
        for (int j = 1; j < 4; j++) {
            if (!dj_graph_find_param(g, keys[i][j])) fprintf(stderr, "%s: no %s\n", keys[i][0], keys[i][j]);
            CHECK(dj_graph_find_param(g, keys[i][j]) != NULL);
        }
        /* no conv bias before a BN */
        CHECK(dj_graph_find_param(g, "features.0.bias") == NULL);
        dj_graph_destroy(g);
    }
    /* the VGG's last conv is Sequential index 24 (7 convs x 3 + 3 pools) */
    dj_graph *g = build("vgg11bn");
    if (g) {
        CHECK(dj_graph_find_param(g, "features.27.weight") == NULL);
        dj_graph_destroy(g);
    }
}

/* Every registered name builds (classifiers and the JND net's E-D), and
 * unknown ones are refused. */
static void test_registry(void) {
    const char *const *names = dj_model_names();
    int count = 0;
    for (int i = 0; names[i]; i++, count++) {
        dj_graph *g = build(names[i]);
        if (!g) {
            fprintf(stderr, "model %s does not build\n", names[i]);
            continue;
        }
        dj_graph_destroy(g);
    }
    CHECK(count >= 4);
    dj_graph *g;
    CHECK_FAILS(dj_model_build(&g, "vgg19", 10, NULL), DJ_EINVAL, "alexnet, vgg11bn, resnet20");
    CHECK(g == NULL);
    CHECK_FAILS(dj_model_densenet_bc_cifar(&g, 41, 12, 10, NULL), DJ_EINVAL, "6n+4");
    CHECK_FAILS(dj_model_alexnet_cifar(&g, 0, NULL), DJ_EINVAL, "classes");
}

static void fill(float *x, size_t n, uint64_t seed) {
    dj_rng r;
    dj_rng_seed(&r, seed);
    for (size_t i = 0; i < n; i++) x[i] = 4 * dj_rng_uniform(&r) - 2;
}

/* Batch of 2: finite 2x10 logits in training and inference mode; after a
 * few training passes (non-trivial running statistics), the frozen graph
 * (BN folded into convs, ReLU fused) gives the inference pass's logits and
 * last feature maps. */
static void test_forward_and_freeze(void) {
    for (int i = 0; i < 4; i++) {
        expect e = expected(i);
        dj_graph *g = build(e.name);
        if (!g) continue;
        dj_tensor x;
        CHECK_OK(dj_tensor_alloc(&x, 2, 32, 32, 3));
        const dj_tensor *y = NULL;
        for (int s = 0; s < 3; s++) {
            fill(x.data, dj_tensor_numel(&x), 10 + s);
            CHECK_OK(dj_graph_forward(g, &x, 1, NULL, &y));
        }
        CHECK(y && y->n == 2 && y->h == 1 && y->w == 1 && y->c == 10 && dj_all_finite(y->data, 20));
        fill(x.data, dj_tensor_numel(&x), 20);
        CHECK_OK(dj_graph_forward(g, &x, 0, NULL, &y));
        CHECK(y && y->n == 2 && y->c == 10 && dj_all_finite(y->data, 20));
        float ref[20];
        memcpy(ref, y->data, sizeof ref);
        int feat = dj_graph_node_input(g, dj_graph_node_input(g, dj_graph_output_node(g)));
        size_t nf = dj_tensor_numel(dj_graph_node_output(g, feat));
        float *fref = malloc(nf * sizeof(float));
        memcpy(fref, dj_graph_node_output(g, feat)->data, nf * sizeof(float));
        CHECK_OK(dj_graph_freeze(g));
        CHECK_OK(dj_graph_forward(g, &x, 0, NULL, &y));
        double err = check_max_err(y->data, ref, 20, 1e-4, 1e-4);
        double ferr = check_max_err(dj_graph_node_output(g, feat)->data, fref, nf, 1e-4, 1e-4);
        if (err > 1 || ferr > 1) fprintf(stderr, "%s: frozen vs inference: %g %g\n", e.name, err, ferr);
        CHECK(err <= 1);
        CHECK(ferr <= 1);
        free(fref);
        dj_tensor_free(&x);
        dj_graph_destroy(g);
    }
}

/* ---------------------------------------------------------- input sizes */

/* The stride each classifier must have, worked out from the layer lists in
 * src/models/ (not read back from the registry): the stride-2 pools / stages. */
static int expected_stride(const char *name) {
    if (!strcmp(name, "alexnet") || !strcmp(name, "vgg11bn")) return 8; /* three stride-2 pools */
    if (!strncmp(name, "resnet", 6) || !strncmp(name, "densenet", 8)) return 4; /* two stride-2 stages */
    return -1;
}

static int is_classifier(const char *name) { return strncmp(name, "jnd_ed", 6) != 0; }

static dj_graph *build_sized(const char *name, int h, int w) {
    dj_graph *g = NULL;
    dj_rng rng;
    dj_rng_seed(&rng, 1);
    CHECK_OK(dj_model_build_sized(&g, name, 10, h, w, &rng));
    return g;
}

static int feature_node(const dj_graph *g) {
    return dj_graph_node_input(g, dj_graph_node_input(g, dj_graph_output_node(g)));
}

/* Same parameter names, shapes, kinds and values (same seed). */
static int same_params(const dj_graph *a, const dj_graph *b) {
    if (dj_graph_num_params(a) != dj_graph_num_params(b)) return 0;
    for (int i = 0; i < dj_graph_num_params(a); i++) {
        const dj_param *p = dj_graph_param(a, i), *q = dj_graph_param(b, i);
        if (strcmp(p->name, q->name) || p->ndim != q->ndim || p->count != q->count || p->trainable != q->trainable ||
            memcmp(p->shape, q->shape, sizeof p->shape) || memcmp(p->data, q->data, p->count * sizeof(float))) {
            fprintf(stderr, "parameter %d: %s vs %s differ\n", i, p->name, q->name);
            return 0;
        }
    }
    return 1;
}

/* dj_model_stride is each model's downsampling factor: a multiple of it
 * builds, with last feature maps of exactly h/stride x w/stride, and conv
 * FLOPs 3x those at 32x32 (64x48 has 3x the pixels); a non-multiple, a
 * zero or a negative size fails with DJ_EINVAL naming model and size. */
static void test_stride(void) {
    const char *const *names = dj_model_names();
    int classifiers = 0;
    for (int i = 0; names[i]; i++) {
        const char *name = names[i];
        int s = -1;
        CHECK_OK(dj_model_stride(name, &s));
        if (!is_classifier(name)) {
            CHECK(s == 8);
            continue;
        }
        classifiers++;
        if (s != expected_stride(name)) fprintf(stderr, "%s: stride %d, expected %d\n", name, s, expected_stride(name));
        CHECK(s == expected_stride(name));
        if (s < 1) continue;
        dj_graph *g = build_sized(name, 64, 48), *g32 = build(name);
        if (!g || !g32) {
            dj_graph_destroy(g);
            dj_graph_destroy(g32);
            continue;
        }
        int h, w, c;
        dj_graph_node_shape(g, 0, &h, &w, &c);
        CHECK(h == 64 && w == 48 && c == 3);
        dj_graph_node_shape(g, feature_node(g), &h, &w, &c);
        if (h != 64 / s || w != 48 / s) fprintf(stderr, "%s at 64x48: features %dx%d\n", name, h, w);
        CHECK(h == 64 / s && w == 48 / s);
        dj_graph_node_shape(g, dj_graph_output_node(g), &h, &w, NULL);
        CHECK(h == 1 && w == 1);
        double linear = 2.0 * c * 10; /* the one layer that does not scale with the pixels */
        CHECK_CLOSE(dj_graph_flops(g), 3 * dj_graph_flops(g32) - 2 * linear, 0, 1e-12);
        dj_graph_destroy(g);
        dj_graph_destroy(g32);
        /* the smallest size: one stride, 1x1 last feature maps */
        g = build_sized(name, s, s);
        if (g) {
            dj_graph_node_shape(g, feature_node(g), &h, &w, NULL);
            CHECK(h == 1 && w == 1);
            dj_graph_destroy(g);
        }
        char want[64];
        snprintf(want, sizeof want, "%s: input %dx48", name, 64 + s / 2);
        CHECK_FAILS(dj_model_build_sized(&g, name, 10, 64 + s / 2, 48, NULL), DJ_EINVAL, want);
        CHECK(g == NULL);
        snprintf(want, sizeof want, "multiples of %d", s);
        CHECK_FAILS(dj_model_build_sized(&g, name, 10, 64, 48 + s / 2, NULL), DJ_EINVAL, want);
        CHECK_FAILS(dj_model_build_sized(&g, name, 10, 0, 48, NULL), DJ_EINVAL, "input 0x48");
        CHECK_FAILS(dj_model_build_sized(&g, name, 10, 64, -s, NULL), DJ_EINVAL, name);
        CHECK(g == NULL);
    }
    CHECK(classifiers >= 4);
    int s = 123;
    CHECK_FAILS(dj_model_stride("vgg19", &s), DJ_EINVAL, "unknown model 'vgg19'");
    CHECK(s == 123);
    dj_graph *g;
    CHECK_FAILS(dj_model_build_sized(&g, "vgg19", 10, 64, 48, NULL), DJ_EINVAL, "alexnet, vgg11bn, resnet20");
    /* the E-D at another size, 4 channels in, 3 out at full resolution */
    CHECK_OK(dj_model_build_sized(&g, "jnd_ed_half", 10, 16, 24, NULL));
    if (g) {
        int h, w, c;
        dj_graph_node_shape(g, 0, &h, &w, &c);
        CHECK(h == 16 && w == 24 && c == 4);
        dj_graph_node_shape(g, dj_graph_output_node(g), &h, &w, &c);
        CHECK(h == 16 && w == 24 && c == 3);
        dj_graph_destroy(g);
    }
    CHECK_FAILS(dj_model_build_sized(&g, "jnd_ed", 10, 20, 24, NULL), DJ_EINVAL, "jnd_ed: input 20x24");
}

/* A sized graph has the 32x32 graph's parameters: names, shapes and, with
 * the same seed, values; dj_model_build is dj_model_build_sized at 32x32. */
static void test_sized_params(void) {
    const char *const *names = dj_model_names();
    for (int i = 0; names[i]; i++) {
        dj_graph *a = build(names[i]), *b = build_sized(names[i], 32, 32), *c = build_sized(names[i], 64, 48);
        if (a && b && c) {
            if (!same_params(a, b) || !same_params(a, c)) fprintf(stderr, "%s: parameters differ\n", names[i]);
            CHECK(same_params(a, b));
            CHECK(same_params(a, c));
            CHECK(dj_graph_num_nodes(a) == dj_graph_num_nodes(b) && dj_graph_num_nodes(a) == dj_graph_num_nodes(c));
            CHECK(dj_graph_flops(a) == dj_graph_flops(b));
            int h, w, ch;
            dj_graph_node_shape(b, 0, &h, &w, &ch);
            CHECK(h == 32 && w == 32);
        }
        dj_graph_destroy(a);
        dj_graph_destroy(b);
        dj_graph_destroy(c);
    }
}

/* Non-trivial BN: random gamma, beta, running mean and variance, so that a
 * weights file saved at 32x32 carries values that matter at any size. */
static void randomise_bn(dj_graph *g, uint64_t seed) {
    dj_rng r;
    dj_rng_seed(&r, seed);
    for (int i = 0; i < dj_graph_num_params(g); i++) {
        const dj_param *p = dj_graph_param(g, i);
        const char *dot = strrchr(p->name, '.');
        float lo = 0, hi = 0;
        if (!dot || strncmp(p->name, "classifier", 10) == 0 || strncmp(p->name, "fc.", 3) == 0) continue;
        if (!strcmp(dot, ".running_mean")) lo = -0.2f, hi = 0.2f;
        else if (!strcmp(dot, ".running_var")) lo = 0.5f, hi = 2.0f;
        else if (!strcmp(dot, ".bias")) lo = -0.25f, hi = 0.25f; /* convs have none: BN beta */
        else if (!strcmp(dot, ".weight") && p->ndim == 1) lo = 0.5f, hi = 1.5f; /* BN gamma */
        else continue;
        for (size_t j = 0; j < p->count; j++) p->data[j] = lo + (hi - lo) * dj_rng_uniform(&r);
    }
}

/* 32x32 weights saved with dj_weights_save and loaded with
 * dj_classifier_load_sized at 64x48: the parameters arrive unchanged; the
 * logits on a random 64x48 batch are finite and equal the linear layer
 * applied to the mean of the 64x48 feature maps (computed here in double:
 * GAP + linear checked at a non-square size); the frozen load gives the
 * same logits. A size that is not a multiple of the stride fails with
 * DJ_EINVAL naming the file. The whole network's numbers are compared with
 * the PyTorch twin at 64x48 by tools/torch/run_parity.sh. */
static void test_load_sized(void) {
    char dir[] = "/tmp/dj_test_models.XXXXXX";
    if (!mkdtemp(dir)) {
        CHECK(!"mkdtemp");
        return;
    }
    const char *const *names = dj_model_names();
    for (int i = 0; names[i]; i++) {
        const char *name = names[i];
        if (!is_classifier(name)) continue;
        int s = 0;
        CHECK_OK(dj_model_stride(name, &s));
        dj_graph *g = build(name);
        if (!g || s < 1) {
            dj_graph_destroy(g);
            continue;
        }
        randomise_bn(g, 5 + (uint64_t)i);
        char path[256];
        snprintf(path, sizeof path, "%s/%s.safetensors", dir, name);
        CHECK_OK(dj_weights_save(path, g, name, NULL, 0));

        dj_classifier c, f;
        CHECK_OK(dj_classifier_load_sized(path, 0, 64, 48, &c));
        CHECK_OK(dj_classifier_load_sized(path, 1, 64, 48, &f));
        if (!c.graph || !f.graph) {
            dj_classifier_free(&c);
            dj_classifier_free(&f);
            dj_graph_destroy(g);
            continue;
        }
        CHECK(!strcmp(c.arch, name));
        CHECK(same_params(g, c.graph));
        int h, w, ch;
        dj_graph_node_shape(c.graph, 0, &h, &w, &ch);
        CHECK(h == 64 && w == 48 && ch == 3);

        dj_tensor x;
        CHECK_OK(dj_tensor_alloc(&x, 2, 64, 48, 3));
        fill(x.data, dj_tensor_numel(&x), 30 + (uint64_t)i);
        const dj_tensor *y = NULL;
        CHECK_OK(dj_graph_forward(c.graph, &x, 0, NULL, &y));
        float logits[20] = {0}, ref[20], frozen[20] = {0};
        if (y && y->n == 2 && y->c == 10) memcpy(logits, y->data, sizeof logits);
        CHECK(y && y->n == 2 && y->h == 1 && y->w == 1 && y->c == 10 && dj_all_finite(logits, 20));
        /* head by hand: b + W mean_xy(f) */
        const dj_tensor *ft = dj_graph_node_output(c.graph, feature_node(c.graph));
        const char *fcname = strncmp(name, "resnet", 6) ? "classifier" : "fc";
        char key[32];
        snprintf(key, sizeof key, "%s.weight", fcname);
        const dj_param *W = dj_graph_find_param(c.graph, key);
        snprintf(key, sizeof key, "%s.bias", fcname);
        const dj_param *B = dj_graph_find_param(c.graph, key);
        CHECK(W && B && ft && ft->h == 64 / s && ft->w == 48 / s && W->shape[1] == ft->c);
        if (W && B && ft && W->shape[1] == ft->c) {
            int fc = ft->c, pix = ft->h * ft->w;
            for (int n = 0; n < 2; n++)
                for (int k = 0; k < 10; k++) {
                    double acc = B->data[k];
                    for (int cc = 0; cc < fc; cc++) {
                        double m = 0;
                        for (int p = 0; p < pix; p++) m += ft->data[((size_t)n * pix + p) * fc + cc];
                        acc += (double)W->data[k * fc + cc] * (m / pix);
                    }
                    ref[n * 10 + k] = (float)acc;
                }
            double err = check_max_err(logits, ref, 20, 1e-5, 1e-5);
            if (err > 1) fprintf(stderr, "%s at 64x48: logits vs GAP + linear by hand: %g\n", name, err);
            CHECK(err <= 1);
        }
        CHECK_OK(dj_graph_forward(f.graph, &x, 0, NULL, &y));
        if (y && y->n == 2 && y->c == 10) memcpy(frozen, y->data, sizeof frozen);
        double err = check_max_err(frozen, logits, 20, 1e-4, 1e-4);
        if (err > 1) fprintf(stderr, "%s at 64x48: frozen vs inference: %g\n", name, err);
        CHECK(err <= 1);
        dj_tensor_free(&x);
        dj_classifier_free(&c);
        dj_classifier_free(&f);

        /* a size the architecture cannot take: the caller's error, naming the file */
        CHECK_FAILS(dj_classifier_load_sized(path, 1, 64 + s / 2, 48, &c), DJ_EINVAL, path);
        CHECK(c.graph == NULL);
        char want[64];
        snprintf(want, sizeof want, "%s: input %dx48", name, 64 + s / 2);
        CHECK_FAILS(dj_classifier_load_sized(path, 1, 64 + s / 2, 48, &c), DJ_EINVAL, want);
        /* and the 32x32 loader is the sized one at 32x32 */
        CHECK_OK(dj_classifier_load(path, 0, &c));
        if (c.graph) {
            dj_graph_node_shape(c.graph, 0, &h, &w, NULL);
            CHECK(h == 32 && w == 32 && same_params(g, c.graph));
        }
        dj_classifier_free(&c);
        unlink(path);
        dj_graph_destroy(g);
    }
    rmdir(dir);
}

int main(void) {
    dj_set_num_threads(2);
    RUN(test_sizes);
    RUN(test_cam_layout);
    RUN(test_names);
    RUN(test_registry);
    RUN(test_forward_and_freeze);
    RUN(test_stride);
    RUN(test_sized_params);
    RUN(test_load_sized);
    return check_report("test_models");
}
