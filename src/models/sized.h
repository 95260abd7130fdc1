/* Internal: the classifier builders with the input size as a parameter.
 *
 * Every classifier here is fully convolutional up to global average pooling
 * + one linear layer, so its parameters (names, shapes, and the values drawn
 * from rng) do not depend on the input size: weights trained at 32x32 load
 * into a graph built for any h x w. The public dj_model_*_cifar builders
 * (dmvjnd/models.h) are these at 32x32; dj_model_build_sized checks h and w
 * against the model's stride before calling them, so they do not check it
 * again (any positive size builds a graph; only multiples of the stride give
 * feature maps of exactly h/stride x w/stride, which CAM upsampling assumes). */
#ifndef DMVJND_MODELS_SIZED_H
#define DMVJND_MODELS_SIZED_H

#include "dmvjnd/graph.h"
#include "dmvjnd/rng.h"

int dj_model_alexnet_sized(dj_graph **out, int classes, int h, int w, dj_rng *rng);
int dj_model_vgg11bn_sized(dj_graph **out, int classes, int h, int w, dj_rng *rng);
int dj_model_resnet_sized(dj_graph **out, int depth, int width, int classes, int h, int w, dj_rng *rng);
int dj_model_densenet_bc_sized(dj_graph **out, int depth, int growth, int classes, int h, int w, dj_rng *rng);

#endif
