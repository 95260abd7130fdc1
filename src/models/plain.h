/* Internal: a plain CNN (conv-BN-ReLU and max-pool layers in a row, then
 * global average pooling and one linear layer), shared by the AlexNet- and
 * VGG-style builders.
 *
 * Parameter names are those of a PyTorch
 *   features = nn.Sequential(Conv2d, BatchNorm2d, ReLU, [MaxPool2d], ...)
 *   classifier = nn.Linear
 * i.e. a conv layer at Sequential index i is "features.i", its BN
 * "features.(i+1)", its ReLU takes index i+2, a pool one index; the linear
 * layer is "classifier" (torchvision's VGG naming). */
#ifndef DMVJND_MODELS_PLAIN_H
#define DMVJND_MODELS_PLAIN_H

#include "dmvjnd/graph.h"
#include "dmvjnd/rng.h"

/* One layer of a plain CNN: conv (cout > 0: k x k kernel, stride 1,
 * pad k/2, no bias, then BN + ReLU) or max pool (cout == 0: window k,
 * stride, pad). */
typedef struct dj_plain_layer {
    int cout;
    int k;
    int stride; /* pool only */
    int pad;    /* pool only */
} dj_plain_layer;

/* Builds, finalises and He-initialises the network for an h x w x 3 input
 * (the parameters do not depend on h and w; see sized.h). `what` names the
 * model in error messages. */
int dj_model_plain_cnn(dj_graph **out, const char *what, const dj_plain_layer *layers, int count, int classes,
                       int h, int w, dj_rng *rng);

#endif
