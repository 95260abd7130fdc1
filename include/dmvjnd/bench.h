/*
 * Throughput benchmark of a model: a full training step (forward in training
 * mode, softmax cross-entropy, backward, optimiser update) and inference (the
 * frozen network: BN folded, ReLU fused), on synthetic data.
 */
#ifndef DMVJND_BENCH_H
#define DMVJND_BENCH_H

#include <stddef.h>
#include <stdint.h>

#include "dmvjnd/jnd_generate.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct dj_bench_config {
    const char *model; /* a dj_model_build name */
    int batch;
    int warmup;        /* untimed steps first */
    int runs;          /* timed runs; the median is reported */
    int steps;         /* steps per timed run */
    int train, infer;  /* which parts to run */
    int profile;       /* fill profile_text with per-layer-kind times */
    /* jnd = 1: time the DMV-JND training step instead (dj_jnd_step_run,
     * dmvjnd/jnd_train.h): the E-D at width jnd_width (0 = 1) trained with
     * Adam through frozen classifiers, the paper's loss (alpha = beta = 1,
     * x_hat clipped). Classifiers: the weights files jnd_classifiers[0..
     * jnd_nclassifiers), or freshly initialised alexnet, vgg11bn, resnet20
     * and densenet40bc when jnd_nclassifiers is 0 (so it runs anywhere). */
    int jnd;
    float jnd_width;
    const char *const *jnd_classifiers;
    int jnd_nclassifiers;
} dj_bench_config;

typedef struct dj_bench_result {
    double train_img_per_s, infer_img_per_s; /* medians */
    /* Frozen network, forward + backward to the input (what the JND net
     * does with each classifier); backward_over_forward is the backward's
     * time over the forward's within the same frozen steps (median of the
     * runs' ratios). */
    double frozen_img_per_s, backward_over_forward;
    double train_min, train_max, infer_min, infer_max;
    double params;     /* trainable parameters */
    double mflop;      /* forward MFLOP per image */
    int threads;
    char profile_text[2048];       /* training step */
    char infer_profile_text[2048]; /* inference */
    char frozen_profile_text[2048]; /* frozen forward + backward to the input */
    double jnd_img_per_s, jnd_min, jnd_max; /* JND training step (cfg->jnd)  */
    double jnd_ed_params, jnd_ed_mflop;     /* its E-D                        */
    int jnd_classifiers;
} dj_bench_result;

dj_bench_config dj_bench_defaults(void);
int dj_bench_run(const dj_bench_config *cfg, dj_bench_result *res);

/* Throughput of JND generation: images/s of dj_jnd_generator_run on the n
 * images rgb (h x w, 8-bit RGB) with every output asked for (x_hat, e, the
 * per-image results; no CAM, no files), at the generator's batch size. One
 * untimed call on the first batch builds graphs and buffers; then `runs`
 * timed calls over all n images. *median, *lo, *hi: images/s. */
int dj_bench_jnd_generate(dj_jnd_generator *g, const uint8_t *rgb, int n, int h, int w, int runs, double *median,
                          double *lo, double *hi);

/* Peak resident memory of this process so far (getrusage's ru_maxrss), in
 * bytes; 0 when the system does not say. Commands put it in their JSON. */
size_t dj_peak_rss_bytes(void);

#ifdef __cplusplus
}
#endif

#endif
