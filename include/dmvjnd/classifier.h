/*
 * A trained CIFAR-10 classifier for inference: loading one from its weights
 * file (dmvjnd/weights.h), its predictions, and short unique tags for
 * several of them. Training them is dmvjnd/train.h.
 */
#ifndef DMVJND_CLASSIFIER_H
#define DMVJND_CLASSIFIER_H

#include <stdint.h>

#include "dmvjnd/graph.h"
#include "dmvjnd/models.h"
#include "dmvjnd/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A trained classifier as loaded from a weights file. */
typedef struct dj_classifier {
    dj_graph *graph;          /* built from the file's "arch", weights loaded   */
    char arch[64];            /* the file's "arch" metadata                      */
    float mean[3], std[3];    /* "train.mean"/"train.std" metadata; 0.5 if absent */
    double test_accuracy;     /* "test_accuracy" metadata; NaN if absent         */
} dj_classifier;

/* Load the weights file at `path` into *c: its "arch" metadata names the
 * architecture (dj_model_build; a file without it, e.g. a PyTorch export, is
 * refused with DJ_EFORMAT), the model is built and loaded all-or-nothing
 * (dj_weights_load), and frozen (BN folded, ReLU fused) when freeze is 1.
 * "train.std" must be three positive numbers. On failure *c is zeroed and
 * nothing leaks. */
int dj_classifier_load(const char *path, int freeze, dj_classifier *c);

/* The same with the graph built for h x w inputs (dj_model_build_sized): the
 * weights of a 32x32-trained classifier work at any size, e.g. to classify
 * or take the CAM of a whole PNG. h and w must be positive multiples of the
 * architecture's stride (dj_model_stride), else DJ_EINVAL naming the file,
 * the model and the size. dj_classifier_load is this with h = w = 32. */
int dj_classifier_load_sized(const char *path, int freeze, int h, int w, dj_classifier *c);

/* The same with the graph built by build(&g, arch, 10, rng) (tests and
 * experiments: a network that is not registered; 32x32 only); build NULL
 * is dj_classifier_load_sized. */
int dj_classifier_load_with(const char *path, int freeze, int h, int w, dj_model_builder build, dj_classifier *c);
void dj_classifier_free(dj_classifier *c);

/* Short unique names of classifiers, for CSV columns, JSON keys and file
 * names: each one's arch lowercased, any other character than a-z and 0-9
 * becoming '_' (a run of them one), at most 20 characters ("c" for none);
 * the second, third, ... of equal names get "_2", "_3", ... */
#define DJ_CLASSIFIER_TAG_SIZE 32
void dj_classifier_tags(const dj_classifier *c, int n, char (*tags)[DJ_CLASSIFIER_TAG_SIZE]);

/* Predictions for a batch of normalised inputs (N x H x W x C, the graph's
 * input size) with an inference-mode forward pass (works on a frozen graph
 * and on a training graph alike): pred[i] = argmax of the logits (the first
 * one on ties, as torch.argmax), conf[i] = its softmax probability. probs,
 * when not NULL, receives all N*K softmax probabilities. Any output may be
 * NULL. The graph's output must be N x 1 x 1 x K. */
int dj_classify_batch(dj_graph *g, const dj_tensor *x, int32_t *pred, float *conf, float *probs);

#ifdef __cplusplus
}
#endif

#endif
