/*
 * Throughput benchmark of a model: a full training step (forward in training
 * mode, softmax cross-entropy, backward, optimiser update) and inference (the
 * frozen network: BN folded, ReLU fused), on synthetic data.
 */
#ifndef DMVJND_BENCH_H
#define DMVJND_BENCH_H

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
} dj_bench_config;

typedef struct dj_bench_result {
    double train_img_per_s, infer_img_per_s; /* medians */
    /* Frozen network, forward + backward to the input (what the JND net
     * does with each classifier); backward_over_forward is the backward's
     * cost relative to the forward's, from the two medians. */
    double frozen_img_per_s, backward_over_forward;
    double train_min, train_max, infer_min, infer_max;
    double params;     /* trainable parameters */
    double mflop;      /* forward MFLOP per image */
    int threads;
    char profile_text[2048];       /* training step */
    char infer_profile_text[2048]; /* inference */
} dj_bench_result;

dj_bench_config dj_bench_defaults(void);
int dj_bench_run(const dj_bench_config *cfg, dj_bench_result *res);

#ifdef __cplusplus
}
#endif

#endif
