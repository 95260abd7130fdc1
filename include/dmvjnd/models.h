/*
 * Model builders: each returns a finalised dj_graph whose parameter names
 * match the PyTorch twin in tools/torch/models.py.
 */
#ifndef DMVJND_MODELS_H
#define DMVJND_MODELS_H

#include "dmvjnd/graph.h"

#ifdef __cplusplus
extern "C" {
#endif

/* He et al.'s CIFAR ResNet (depth = 6n + 2: 20, 32, 44, 56, 110) with stage
 * widths w, 2w, 4w (w = 16 in the paper) and 3x3 basic blocks. Shortcuts
 * that change shape are 1x1 strided conv + BN ("option B"); the others are
 * identities. Ends in global average pooling and one linear layer, so class
 * activation maps exist. Input 32x32x3 (any size works), `classes` outputs. */
int dj_model_resnet_cifar(dj_graph **out, int depth, int width, int classes, dj_rng *rng);

/* Build a model by name ("resnet20", ...). Returns DJ_EINVAL listing the
 * known names when `name` is unknown. */
int dj_model_build(dj_graph **out, const char *name, int classes, dj_rng *rng);

/* NULL-terminated list of the names dj_model_build knows. */
const char *const *dj_model_names(void);

#ifdef __cplusplus
}
#endif

#endif
