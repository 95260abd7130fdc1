/* parity_dump: writes what tools/torch/parity.py compares against the
 * PyTorch twins (tools/torch/models.py).
 *
 *     parity_dump OUTDIR [MODEL ...]     (default: alexnet vgg11bn resnet20 densenet40bc)
 *
 * For each model: builds it with seed 1, gives every batch norm a random
 * affine transform (gamma in [0.5, 1.5], beta in [-0.25, 0.25]) and runs 3
 * SGD steps (batch 8, random images and labels, lr 0.05) so that weights and
 * running statistics are non-trivial; then, on a fixed batch of 4 random
 * images, runs the inference forward and, after dj_graph_freeze, the frozen
 * forward. Then the same at another input size: the saved weights are
 * loaded (dj_weights_load) into the model built by dj_model_build_sized for
 * SIZED_H x SIZED_W (64x48: non-square, not 32, a multiple of every
 * classifier's stride) and run on 4 random images of that size, which
 * checks that 32x32 weights compute at any size what PyTorch computes.
 * Writes
 *     OUTDIR/MODEL.weights.safetensors   dj_weights_save (arch = MODEL)
 *     OUTDIR/MODEL.io.safetensors        input (4x32x32x3, NHWC), logits
 *                                        (4x10), features (the node feeding
 *                                        global average pooling, NHWC), and
 *                                        frozen_logits, frozen_features;
 *                                        sized_input (4x64x48x3), sized_logits,
 *                                        sized_features, sized_frozen_logits,
 *                                        sized_frozen_features
 * and prints two lines per model. Exit status 0 when every model was written.
 *
 *     parity_dump OUTDIR --shipped MODELDIR
 *
 * The shipped classifiers instead: for each MODELDIR/<name>.safetensors of
 * the four that exists, loaded and frozen as the CLI does, on CIFAR-10 test
 * records 0-99 (default data folder): OUTDIR/shipped_<name>.io.safetensors
 * with input (100x32x32x3), logits, features, cams (100x32x32, each image's
 * CAM for its own label, dj_cam_compute) and labels. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dmvjnd/cam.h"
#include "dmvjnd/checkpoint.h"
#include "dmvjnd/cifar10.h"
#include "dmvjnd/train.h"
#include "dmvjnd/dmvjnd.h"
#include "dmvjnd/graph.h"
#include "dmvjnd/models.h"
#include "dmvjnd/nn.h"
#include "dmvjnd/safetensors.h"

#define CLASSES 10
#define TRAIN_N 8
#define EVAL_N 4
#define SIZED_H 64
#define SIZED_W 48

static void fill_uniform(dj_rng *rng, float *x, size_t n, float lo, float hi) {
    for (size_t i = 0; i < n; i++) x[i] = lo + (hi - lo) * dj_rng_uniform(rng);
}

static int train_steps(dj_graph *g, dj_rng *rng) {
    dj_tensor x, dlogits;
    int rc = dj_tensor_alloc(&x, TRAIN_N, 32, 32, 3);
    if (rc) return rc;
    if ((rc = dj_tensor_alloc(&dlogits, TRAIN_N, 1, 1, CLASSES))) {
        dj_tensor_free(&x);
        return rc;
    }
    float probs[TRAIN_N * CLASSES], loss;
    int32_t labels[TRAIN_N];
    for (int step = 0; step < 3 && !rc; step++) {
        fill_uniform(rng, x.data, dj_tensor_numel(&x), -2, 2);
        for (int i = 0; i < TRAIN_N; i++) labels[i] = (int32_t)dj_rng_below(rng, CLASSES);
        const dj_tensor *logits;
        dj_graph_zero_grad(g);
        if ((rc = dj_graph_forward(g, &x, 1, rng, &logits))) break;
        if ((rc = dj_softmax_ce_forward(logits, labels, probs, &loss))) break;
        if ((rc = dj_softmax_ce_backward(probs, labels, 1.0f, &dlogits, 0))) break;
        if ((rc = dj_graph_backward(g, &dlogits, NULL))) break;
        for (int i = 0; i < dj_graph_num_params(g); i++) {
            const dj_param *p = dj_graph_param(g, i);
            if (!p->trainable) continue;
            for (size_t j = 0; j < p->count; j++) p->data[j] -= 0.05f * p->grad[j];
        }
    }
    dj_tensor_free(&x);
    dj_tensor_free(&dlogits);
    return rc;
}

/* Random BN affine parameters (they start at gamma 1, beta 0). */
static void randomise_bn(dj_graph *g, dj_rng *rng) {
    for (int i = 0; i < dj_graph_num_params(g); i++) {
        const dj_param *p = dj_graph_param(g, i);
        const dj_param *rm = NULL;
        size_t len = strlen(p->name);
        char buddy[256];
        if (len > 7 && !strcmp(p->name + len - 7, ".weight") && len < sizeof buddy) {
            snprintf(buddy, sizeof buddy, "%.*s.running_mean", (int)(len - 7), p->name);
            rm = dj_graph_find_param(g, buddy);
        }
        if (rm) fill_uniform(rng, p->data, p->count, 0.5f, 1.5f);
        if (len > 5 && !strcmp(p->name + len - 5, ".bias") && len < sizeof buddy) {
            snprintf(buddy, sizeof buddy, "%.*s.running_mean", (int)(len - 5), p->name);
            if (dj_graph_find_param(g, buddy)) fill_uniform(rng, p->data, p->count, -0.25f, 0.25f);
        }
    }
}

/* Copies of a node's output (the graph's arena is reused by the next pass). */
static float *copy_out(const dj_tensor *t) {
    size_t n = dj_tensor_numel(t);
    float *c = malloc(n * sizeof(float));
    if (c) memcpy(c, t->data, n * sizeof(float));
    return c;
}

static double max_abs_diff(const float *a, const float *b, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (!(d <= m)) m = d;
    }
    return m;
}

/* Inference-mode logits and last feature maps of g on x, then the same
 * after dj_graph_freeze (g stays frozen). The four buffers are the
 * caller's to free, also on failure. */
static int run_both(dj_graph *g, const dj_tensor *x, int feat, float **logits, float **feats, float **flogits,
                    float **ffeats) {
    const dj_tensor *y;
    int rc;
    if ((rc = dj_graph_forward(g, x, 0, NULL, &y))) return rc;
    *logits = copy_out(y);
    *feats = copy_out(dj_graph_node_output(g, feat));
    if ((rc = dj_graph_freeze(g))) return rc;
    if ((rc = dj_graph_forward(g, x, 0, NULL, &y))) return rc;
    *flogits = copy_out(y);
    *ffeats = copy_out(dj_graph_node_output(g, feat));
    if (!*logits || !*feats || !*flogits || !*ffeats) return dj_error(DJ_ENOMEM, "out of memory");
    return DJ_OK;
}

/* The node feeding global average pooling, and its shape; DJ_EINVAL when
 * the output is not linear(GAP(...)). */
static int gap_features(const dj_graph *g, const char *model, int *feat, int *fh, int *fw, int *fc) {
    int out = dj_graph_output_node(g), gap = dj_graph_node_input(g, out), gh, gw;
    *feat = dj_graph_node_input(g, gap);
    dj_graph_node_shape(g, gap, &gh, &gw, NULL);
    dj_graph_node_shape(g, *feat, fh, fw, fc);
    if (gh != 1 || gw != 1)
        return dj_error(DJ_EINVAL, "%s: the node before the output is not global average pooling", model);
    return DJ_OK;
}

static int dump(const char *dir, const char *model) {
    dj_graph *g = NULL;
    dj_rng rng;
    dj_rng_seed(&rng, 1);
    int rc = dj_model_build(&g, model, CLASSES, &rng);
    if (rc) return rc;
    float *logits = NULL, *feats = NULL, *flogits = NULL, *ffeats = NULL;
    float *slogits = NULL, *sfeats = NULL, *sflogits = NULL, *sffeats = NULL;
    dj_graph *gs = NULL;
    dj_st_writer *w = NULL;
    dj_tensor x = {0}, xs = {0};
    dj_rng data;
    dj_rng_seed(&data, 2);
    randomise_bn(g, &data);
    if ((rc = train_steps(g, &data))) goto done;

    int feat, fh, fw, fc;
    if ((rc = gap_features(g, model, &feat, &fh, &fw, &fc))) goto done;
    if ((rc = dj_tensor_alloc(&x, EVAL_N, 32, 32, 3))) goto done;
    fill_uniform(&data, x.data, dj_tensor_numel(&x), -2, 2);
    if ((rc = run_both(g, &x, feat, &logits, &feats, &flogits, &ffeats))) goto done;

    char path[4096];
    snprintf(path, sizeof path, "%s/%s.weights.safetensors", dir, model);
    dj_kv meta[1] = {{"purpose", "parity test: random weights, 3 SGD steps on random data"}};
    if ((rc = dj_weights_save(g, path, model, meta, 1))) goto done;

    /* The same weights at SIZED_H x SIZED_W, through the file (what a
     * sized classifier load does); the build's own initialisation is
     * overwritten, so its seed does not matter. Drawn from `data` after
     * everything above, so the 32x32 tensors are what they always were. */
    int sfeat, sh, sw, sc;
    dj_rng any;
    dj_rng_seed(&any, 3);
    if ((rc = dj_model_build_sized(&gs, model, CLASSES, SIZED_H, SIZED_W, &any))) goto done;
    if ((rc = dj_weights_load(gs, path, model))) goto done;
    if ((rc = gap_features(gs, model, &sfeat, &sh, &sw, &sc))) goto done;
    if ((rc = dj_tensor_alloc(&xs, EVAL_N, SIZED_H, SIZED_W, 3))) goto done;
    fill_uniform(&data, xs.data, dj_tensor_numel(&xs), -2, 2);
    if ((rc = run_both(gs, &xs, sfeat, &slogits, &sfeats, &sflogits, &sffeats))) goto done;

    int64_t s_in[4] = {EVAL_N, 32, 32, 3}, s_lo[2] = {EVAL_N, CLASSES}, s_f[4] = {EVAL_N, fh, fw, fc};
    int64_t ss_in[4] = {EVAL_N, SIZED_H, SIZED_W, 3}, ss_f[4] = {EVAL_N, sh, sw, sc};
    if ((rc = dj_st_writer_new(&w))) goto done;
    if ((rc = dj_st_writer_add_f32(w, "input", 4, s_in, x.data)) ||
        (rc = dj_st_writer_add_f32(w, "logits", 2, s_lo, logits)) ||
        (rc = dj_st_writer_add_f32(w, "features", 4, s_f, feats)) ||
        (rc = dj_st_writer_add_f32(w, "frozen_logits", 2, s_lo, flogits)) ||
        (rc = dj_st_writer_add_f32(w, "frozen_features", 4, s_f, ffeats)) ||
        (rc = dj_st_writer_add_f32(w, "sized_input", 4, ss_in, xs.data)) ||
        (rc = dj_st_writer_add_f32(w, "sized_logits", 2, s_lo, slogits)) ||
        (rc = dj_st_writer_add_f32(w, "sized_features", 4, ss_f, sfeats)) ||
        (rc = dj_st_writer_add_f32(w, "sized_frozen_logits", 2, s_lo, sflogits)) ||
        (rc = dj_st_writer_add_f32(w, "sized_frozen_features", 4, ss_f, sffeats)) ||
        (rc = dj_st_writer_set_metadata(w, "arch", model)))
        goto done;
    snprintf(path, sizeof path, "%s/%s.io.safetensors", dir, model);
    if ((rc = dj_st_writer_write(w, path))) goto done;
    printf("parity_dump: %-13s %9zu trainable params, %6.1f MFLOP, features %dx%dx%d, frozen vs inference: "
           "logits %.2e, features %.2e\n",
           model, dj_graph_trainable_count(g), dj_graph_flops(g) / 1e6, fh, fw, fc,
           max_abs_diff(flogits, logits, (size_t)EVAL_N * CLASSES),
           max_abs_diff(ffeats, feats, (size_t)EVAL_N * fh * fw * fc));
    printf("parity_dump: %-13s at %dx%d: %6.1f MFLOP, features %dx%dx%d, frozen vs inference: logits %.2e, "
           "features %.2e\n",
           model, SIZED_H, SIZED_W, dj_graph_flops(gs) / 1e6, sh, sw, sc,
           max_abs_diff(sflogits, slogits, (size_t)EVAL_N * CLASSES),
           max_abs_diff(sffeats, sfeats, (size_t)EVAL_N * sh * sw * sc));
done:
    dj_st_writer_free(w);
    dj_tensor_free(&x);
    dj_tensor_free(&xs);
    free(logits);
    free(feats);
    free(flogits);
    free(ffeats);
    free(slogits);
    free(sfeats);
    free(sflogits);
    free(sffeats);
    dj_graph_destroy(gs);
    dj_graph_destroy(g);
    return rc;
}

#define SHIPPED_N 100

static int dump_shipped(const char *dir, const char *modeldir, const char *name, int *found) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s_v1.0.safetensors", modeldir, name);
    FILE *f = fopen(path, "rb");
    if (!f) return DJ_OK; /* not shipped (yet) */
    fclose(f);
    (*found)++;
    dj_classifier c;
    dj_cifar10 ds = {0};
    dj_tensor x = {0};
    dj_st_writer *w = NULL;
    float *cams = malloc(SHIPPED_N * 32 * 32 * sizeof *cams);
    int32_t lab[SHIPPED_N];
    int64_t lab64[SHIPPED_N];
    dj_cifar10_opts o = {0, SHIPPED_N, 0};
    int rc = dj_classifier_load(&c, path, 1);
    if (rc) {
        free(cams);
        return rc;
    }
    if (!cams) rc = dj_error(DJ_ENOMEM, "out of memory");
    if (!rc) rc = dj_cifar10_load(&ds, NULL, "test", &o);
    if (!rc) rc = dj_tensor_alloc(&x, SHIPPED_N, 32, 32, 3);
    if (!rc) rc = dj_normalize_u8(ds.pixels, (size_t)SHIPPED_N * 1024, c.mean, c.std, x.data);
    if (!rc) rc = dj_cam_compute(c.graph, &x, cams, lab, NULL);
    dj_cam_layout L;
    if (!rc) rc = dj_cam_find(c.graph, &L);
    if (rc) goto done;
    /* dj_cam_compute ran the forward: logits and features are still there */
    const dj_tensor *lo = dj_graph_node_output(c.graph, dj_graph_output_node(c.graph));
    const dj_tensor *fe = dj_graph_node_output(c.graph, L.feature_node);
    for (int i = 0; i < SHIPPED_N; i++) lab64[i] = lab[i];
    int64_t s_in[4] = {SHIPPED_N, 32, 32, 3}, s_lo[2] = {SHIPPED_N, L.classes},
            s_f[4] = {SHIPPED_N, L.h, L.w, L.c}, s_c[3] = {SHIPPED_N, 32, 32}, s_l[1] = {SHIPPED_N};
    if ((rc = dj_st_writer_new(&w))) goto done;
    if ((rc = dj_st_writer_add_f32(w, "input", 4, s_in, x.data)) ||
        (rc = dj_st_writer_add_f32(w, "logits", 2, s_lo, lo->data)) ||
        (rc = dj_st_writer_add_f32(w, "features", 4, s_f, fe->data)) ||
        (rc = dj_st_writer_add_f32(w, "cams", 3, s_c, cams)) || (rc = dj_st_writer_add_i64(w, "labels", 1, s_l, lab64)))
        goto done;
    snprintf(path, sizeof path, "%s/shipped_%s.io.safetensors", dir, name);
    rc = dj_st_writer_write(w, path);
    if (!rc) printf("parity_dump: shipped %s (%s): %d test images\n", name, c.arch, SHIPPED_N);
done:
    dj_st_writer_free(w);
    dj_tensor_free(&x);
    dj_cifar10_free(&ds);
    dj_classifier_free(&c);
    free(cams);
    return rc;
}

int main(int argc, char **argv) {
    static const char *defaults[] = {"alexnet", "vgg11bn", "resnet20", "densenet40bc"};
    if (argc == 4 && !strcmp(argv[2], "--shipped")) {
        int found = 0, failed = 0;
        for (int i = 0; i < 4; i++)
            if (dump_shipped(argv[1], argv[3], defaults[i], &found)) {
                fprintf(stderr, "parity_dump: shipped %s: %s\n", defaults[i], dj_last_error());
                failed++;
            }
        return failed ? 1 : 0;
    }
    if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
        fprintf(stderr, "usage: parity_dump OUTDIR [MODEL ...] | parity_dump OUTDIR --shipped MODELDIR\n");
        return 2;
    }
    const char **models = argc > 2 ? (const char **)argv + 2 : defaults;
    int count = argc > 2 ? argc - 2 : (int)(sizeof defaults / sizeof *defaults), failed = 0;
    for (int i = 0; i < count; i++) {
        int rc = dump(argv[1], models[i]);
        if (rc) {
            fprintf(stderr, "parity_dump: %s: %s\n", models[i], dj_last_error());
            failed++;
        }
    }
    return failed ? 1 : 0;
}
