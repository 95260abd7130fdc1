/*
 * Networks as graphs of layers with named parameters.
 *
 * A graph is built in C, node by node, in topological order (every node's
 * inputs exist before it), then finalised. Parameter names follow the
 * PyTorch state_dict keys of the same model ("layer1.0.conv1.weight",
 * "bn1.running_mean", ...), so weights load unchanged into the PyTorch twin
 * in tools/torch/.
 *
 * Memory: all parameters and buffers (BN running statistics) live in one
 * allocation, their gradients in a second of the same layout; activations,
 * activation gradients and per-layer scratch live in an arena sized at the
 * first forward pass for a batch size and reused afterwards, so a training
 * step allocates nothing after the first one.
 *
 * Two modes:
 *   - training graph: dj_graph_forward(train = 1 or 0), dj_graph_backward
 *     accumulates parameter gradients and, if asked, the input gradient;
 *   - frozen graph (dj_graph_freeze): inference-mode batch norm folded into
 *     the preceding convolution, ReLU fused into it, weights reordered once;
 *     backward gives only the input gradient (this is how the JND net trains
 *     through four fixed classifiers).
 */
#ifndef DMVJND_GRAPH_H
#define DMVJND_GRAPH_H

#include <stddef.h>
#include <stdint.h>

#include "dmvjnd/nn.h"
#include "dmvjnd/rng.h"
#include "dmvjnd/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct dj_graph dj_graph;

/* A named parameter or buffer, for iteration (optimisers, checkpoints). */
typedef struct dj_param {
    const char *name; /* PyTorch state_dict key */
    float *data;
    float *grad;      /* NULL for buffers (running statistics) */
    size_t count;
    int ndim;
    int64_t shape[4];
    int trainable;    /* 0 for buffers */
    int decay;        /* 1 if weight decay applies (weights and biases here) */
} dj_param;

/* Convolution algorithm for the graphs built from now on (process-wide):
 * 1 runs every 3x3 stride-1 pad-1 convolution's forward and backward-data
 * on the library's Winograd F(4x4,3x3) kernel (src/nn/winograd.c, about 2x
 * oneDNN's direct kernel on this project's AVX2 machines, error ~5e-6
 * relative on single layers), the default; 0 keeps oneDNN's direct kernel
 * everywhere (what gradient-parity tests use: the extra rounding moves the
 * odd pre-activation across a ReLU kink, which changes a gradient element
 * entirely). CLI: `dmvjnd --conv direct|winograd <command>`. */
void dj_graph_set_default_winograd(int on);
int dj_graph_default_winograd(void);

/* Create a graph whose input is an n x h x w x c tensor (any n). Node 0 is
 * the input. */
int dj_graph_create(dj_graph **out, int in_h, int in_w, int in_c);
void dj_graph_destroy(dj_graph *g);

/* Node builders. Each returns the new node's id (>= 0) or a negative DJ_E*
 * code. `name` is the state_dict prefix of the layer's parameters, e.g.
 * "layer1.0.conv1" gives "layer1.0.conv1.weight". Output shapes are derived
 * and checked here, so a wrong architecture fails at build time. */
int dj_graph_conv(dj_graph *g, int in, const char *name, int cout, int k, int stride, int pad, int bias);
int dj_graph_deconv(dj_graph *g, int in, const char *name, int cout, int k, int stride, int pad, int out_pad,
                    int bias);
/* Batch norm (momentum 0.1, eps 1e-5, as PyTorch), optionally fused with ReLU. */
int dj_graph_bn(dj_graph *g, int in, const char *name, int relu);
int dj_graph_act(dj_graph *g, int in, int kind, float slope);
int dj_graph_maxpool(dj_graph *g, int in, int k, int stride, int pad);
int dj_graph_avgpool(dj_graph *g, int in, int k, int stride, int pad);
int dj_graph_gap(dj_graph *g, int in);
int dj_graph_linear(dj_graph *g, int in, const char *name, int out, int bias);
int dj_graph_dropout(dj_graph *g, int in, float p);
/* y = a + b, with an optional fused ReLU. */
int dj_graph_add(dj_graph *g, int a, int b, int relu);
int dj_graph_concat(dj_graph *g, const int *ins, int count);

/* Finish building: lays out parameters in one allocation and initialises
 * them (weights: PyTorch's default rule, BN gamma 1, beta 0, running mean 0,
 * var 1), drawing from rng. The last node built is the output. */
int dj_graph_finalize(dj_graph *g, dj_rng *rng);

/* He (Kaiming) normal initialisation, fan_out mode, for every conv weight
 * (what torchvision's ResNets do); call after finalize. */
void dj_graph_init_kaiming(dj_graph *g, dj_rng *rng);

/* Parameters, in build order. */
int dj_graph_num_params(const dj_graph *g);
const dj_param *dj_graph_param(const dj_graph *g, int i);
const dj_param *dj_graph_find_param(const dj_graph *g, const char *name);
/* Number of trainable floats. */
size_t dj_graph_trainable_count(const dj_graph *g);
void dj_graph_zero_grad(dj_graph *g);

/* Forward pass. train = 1: batch-norm batch statistics (running averages
 * updated), dropout active, and everything kept for backward. train = 0:
 * inference. *out points into the graph's arena (valid until the next
 * forward). x is n x h x w x c with the graph's h, w, c. */
int dj_graph_forward(dj_graph *g, const dj_tensor *x, int train, dj_rng *rng, const dj_tensor **out);
/* Backward pass after a forward with train = 1 (or a frozen graph's
 * forward): dout is dL/d(output). Adds into parameter gradients (not for a
 * frozen graph); writes dL/dx into dx when dx is not NULL. */
int dj_graph_backward(dj_graph *g, const dj_tensor *dout, dj_tensor *dx);

/* Freeze: inference mode for good. Folds each batch norm into the conv
 * before it and fuses the ReLU that follows; weights are copied and folded,
 * so the original parameters stay unchanged (and savable). After this,
 * forward's `train` must be 0 and backward gives only dx. */
int dj_graph_freeze(dj_graph *g);
int dj_graph_is_frozen(const dj_graph *g);

/* Access to nodes (class activation maps need the last feature maps and
 * the linear layer's weights). */
int dj_graph_num_nodes(const dj_graph *g);
int dj_graph_output_node(const dj_graph *g);
/* Output shape of a node for an n-image batch (h, w, c; any may be NULL). */
void dj_graph_node_shape(const dj_graph *g, int node, int *h, int *w, int *c);
/* Output of a node from the last forward pass (NULL before one). */
const dj_tensor *dj_graph_node_output(const dj_graph *g, int node);
/* Id of the node whose output feeds node `node` (its first input). */
int dj_graph_node_input(const dj_graph *g, int node);

/* Profiling: when on, every forward and backward pass adds the time spent in
 * each layer kind; the report gives milliseconds per pass and each kind's
 * share, one line per kind, in buf. Turning it on resets the counters. */
void dj_graph_set_profiling(dj_graph *g, int on);
int dj_graph_profile_report(const dj_graph *g, char *buf, size_t size);

/* Forward multiply-accumulates per image x 2 (FLOPs), for the docs. */
double dj_graph_flops(const dj_graph *g);

/* Kind of node `node` as a name: "input", "conv", "batchnorm", "activation",
 * "maxpool", "avgpool", "gap", "linear", "dropout", "add", "concat"; NULL for
 * an id out of range. (Class activation maps walk the graph back from the
 * output with this: linear <- gap <- feature maps.) */
const char *dj_graph_node_kind(const dj_graph *g, int node);
/* A node's parameter: which = 0 its weight (conv, linear; BN gamma), 1 its
 * bias (BN beta); NULL when the node has none. */
const dj_param *dj_graph_node_param(const dj_graph *g, int node, int which);

#ifdef __cplusplus
}
#endif

#endif
