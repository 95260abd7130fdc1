/*
 * Model builders: each returns a finalised dj_graph whose parameter names
 * match the PyTorch twin in tools/torch/models.py. The DMV-JND E-D's
 * builder, dj_model_jnd_ed, is in dmvjnd/jnd.h with its config.
 */
#ifndef DMVJND_MODELS_H
#define DMVJND_MODELS_H

#include "dmvjnd/graph.h"
#include "dmvjnd/rng.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Optional model builder: builds `arch` for `classes` outputs, initialised
 * from rng (dj_model_build's signature, which is the default). Tests and
 * experiments pass their own to train a network that is not registered. */
typedef int (*dj_model_builder)(dj_graph **out, const char *arch, int classes, dj_rng *rng);


/* He et al.'s CIFAR ResNet (depth = 6n + 2: 20, 32, 44, 56, 110) with stage
 * widths w, 2w, 4w (w = 16 in the paper) and 3x3 basic blocks. Shortcuts
 * that change shape are 1x1 strided conv + BN ("option B"); the others are
 * identities. Ends in global average pooling and one linear layer, so class
 * activation maps exist. Input 32x32x3 (any size works), `classes` outputs. */
int dj_model_resnet_cifar(dj_graph **out, int depth, int width, int classes, dj_rng *rng);

/* AlexNet-style CIFAR network with batch norm: conv 5x5 64, pool, conv 3x3
 * 128, pool, conv 192, conv 128, pool, conv 128 (4x4), global average
 * pooling, linear. Names as torchvision's VGG (features.<i>, classifier).
 * See src/models/alexnet.c and docs/models.md. */
int dj_model_alexnet_cifar(dj_graph **out, int classes, dj_rng *rng);

/* VGG-11 with batch norm for CIFAR: widths 48-96-192-256, the last two max
 * pools removed (4x4 last feature maps), global average pooling, linear.
 * See src/models/vgg.c and docs/models.md. */
int dj_model_vgg11bn_cifar(dj_graph **out, int classes, dj_rng *rng);

/* DenseNet-BC for CIFAR (Huang et al.): depth = 6n + 4 (40, 52, 100, ...),
 * growth rate k, bottleneck width 4k, compression 0.5, first conv 2k
 * channels, BN-ReLU-conv order, final BN + ReLU (8x8), global average
 * pooling, linear. Names as torchvision's DenseNet. */
int dj_model_densenet_bc_cifar(dj_graph **out, int depth, int growth, int classes, dj_rng *rng);

/* Build a model by name ("alexnet", "vgg11bn", "resnet20", "densenet40bc", ...) for 32x32 inputs. Returns
 * DJ_EINVAL listing the known names when `name` is unknown. "jnd_ed" and "jnd_ed_half" (width 0.5) are the E-D at
 * 32x32 with default settings; they are not classifiers (`classes` is ignored). */
int dj_model_build(dj_graph **out, const char *name, int classes, dj_rng *rng);

/* The same for h x w x 3 inputs (classifiers) or h x w x 4 (the E-D).
 * Every classifier is fully convolutional up to global average pooling +
 * linear, so the parameters (names, shapes, and the values drawn from rng)
 * are those of the 32x32 build: weights trained at 32x32 load unchanged,
 * and the last feature maps (the CAM) are h/stride x w/stride. h and w must
 * be positive multiples of the model's stride (dj_model_stride), else
 * DJ_EINVAL naming the model and the size; unknown names as dj_model_build.
 * dj_model_build(out, name, classes, rng) is this with h = w = 32. */
int dj_model_build_sized(dj_graph **out, const char *name, int classes, int h, int w, dj_rng *rng);

/* The factor input sides of `name` must be multiples of: the product of its
 * downsampling strides, i.e. the ratio of the input to its last feature
 * maps (alexnet 8, vgg11bn 8, resnet* 4, densenet*bc 4, jnd_ed* 8).
 * DJ_EINVAL for an unknown name (*stride untouched). */
int dj_model_stride(const char *name, int *stride);

/* NULL-terminated list of the names dj_model_build knows. */
const char *const *dj_model_names(void);

#ifdef __cplusplus
}
#endif

#endif
