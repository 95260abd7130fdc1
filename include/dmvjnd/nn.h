/*
 * Layers: plain forward / backward functions on NHWC float tensors.
 *
 * Conventions (every layer follows them):
 *   - forward(x, params) -> y. The caller owns every buffer; layers never
 *     allocate after their first call with a given shape.
 *   - backward computes the input gradient dx from dy. `accum` = 0 overwrites
 *     dx, `accum` = 1 adds into it (a tensor read by several layers gets the
 *     sum of their gradients). dx may be NULL when the input gradient is not
 *     needed (first layer of a network).
 *   - Parameter gradients (dw, db, dgamma, ...) are always ADDED to; the
 *     caller zeroes them once per step. Any of them may be NULL (frozen).
 *   - Parameters use PyTorch's layouts: conv weight OIHW (out, in, kh, kw),
 *     transposed conv weight IOHW (in, out, kh, kw), linear weight (out, in).
 *   - Functions return 0 or a negative DJ_E* code (DJ_EINVAL for shapes that
 *     do not match, with a message saying which dimension).
 *
 * Each layer kind lives in src/nn/<kind>.c with its naive reference loop
 * tested in tests/test_<kind>.c.
 */
#ifndef DMVJND_NN_H
#define DMVJND_NN_H

#include <stddef.h>
#include <stdint.h>

#include "dmvjnd/rng.h"
#include "dmvjnd/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------- helpers */

/* dst = src (accum = 0) or dst += src (accum = 1), n floats, OpenMP. */
void dj_accumulate(float *dst, const float *src, size_t n, int accum);

/* ------------------------------------------------- convolution (oneDNN) */

/* Convolution or transposed convolution, square kernel, symmetric zero
 * padding, no dilation, no groups. Output size:
 *   conv:       (in + 2*pad - k) / stride + 1
 *   transposed: (in - 1) * stride - 2*pad + k + out_pad   (PyTorch's rule)
 * The fused post-ops (sum, relu) serve frozen networks:
 *   y = relu(conv(x) + b + y_old)   with post_sum and post_relu set.
 * The backward passes are those of the convolution alone: a caller that
 * fused a ReLU masks dy with (y > 0) itself first (src/nn/graph.c does). */
typedef struct dj_conv_desc {
    int cin, cout;
    int k, stride, pad;
    int bias;       /* 1: add a bias of cout floats                          */
    int transposed; /* 1: ConvTranspose2d                                     */
    int out_pad;    /* transposed only: PyTorch's output_padding (< stride)  */
    int post_sum;   /* forward adds into y's previous contents (residual)    */
    int post_relu;  /* forward applies ReLU at the end                       */
    int frozen;     /* weights never change between calls: reordered once;   */
                    /* call dj_conv_weights_changed() if they do             */
    int winograd;   /* 1: Winograd. Non-transposed 3x3 stride-1 pad-1 convs  */
                    /* run forward (with post-ops) and backward-data on the  */
                    /* library's own F(4x4,3x3) kernel (src/nn/winograd.c,   */
                    /* ~1e-5 relative to direct conv) when that pass's input */
                    /* has >= 8 channels (cin forward, cout backward-data),  */
                    /* and backward-weights when both have >= 8; the other   */
                    /* passes run on oneDNN's direct kernel. Other shapes:   */
                    /* oneDNN's Winograd where it has one (AVX-512), else    */
                    /* its direct kernel                                     */
} dj_conv_desc;

typedef struct dj_conv dj_conv; /* opaque: descriptor + cached primitives */

int dj_conv_create(dj_conv **out, const dj_conv_desc *d);
void dj_conv_destroy(dj_conv *c);
const dj_conv_desc *dj_conv_get_desc(const dj_conv *c);
/* Output spatial size for an input of h x w; returns DJ_EINVAL if empty. */
int dj_conv_out_shape(const dj_conv_desc *d, int h, int w, int *oh, int *ow);
/* Number of weight floats: cout*cin*k*k. */
size_t dj_conv_weight_count(const dj_conv_desc *d);
/* y = conv(x, w) + b (+ post-ops). b may be NULL iff !d->bias. */
int dj_conv_forward(dj_conv *c, const dj_tensor *x, const float *w, const float *b, dj_tensor *y);
/* dx (+)= conv_backward_data(dy, w). */
int dj_conv_backward_data(dj_conv *c, const dj_tensor *dy, const float *w, dj_tensor *dx, int accum);
/* dw += dL/dw, db += dL/db (db may be NULL). Not allowed when frozen. */
int dj_conv_backward_weights(dj_conv *c, const dj_tensor *x, const dj_tensor *dy, float *dw, float *db);
/* Frozen convs cache reordered weights; call after changing them. */
void dj_conv_weights_changed(dj_conv *c);
/* oneDNN implementation name of the last primitive of a pass
 * (0 forward, 1 backward-data, 2 backward-weights), for diagnostics. */
const char *dj_conv_impl_name(const dj_conv *c, int pass);

/* ----------------------------------------------------- batch normalisation */

/* Training mode: normalise with the batch's statistics (biased variance),
 * update running statistics as PyTorch does:
 *   running = (1 - momentum) * running + momentum * batch_stat
 * with the UNBIASED batch variance for running_var. save_mean/save_invstd
 * (c floats each) keep what backward needs. relu = 1 fuses max(0, .). */
int dj_bn_forward_train(const dj_tensor *x, const float *gamma, const float *beta, float *running_mean,
                        float *running_var, float momentum, float eps, int relu, dj_tensor *y, float *save_mean,
                        float *save_invstd);
/* Inference mode with running statistics. */
int dj_bn_forward_infer(const dj_tensor *x, const float *gamma, const float *beta, const float *running_mean,
                        const float *running_var, float eps, int relu, dj_tensor *y);
/* Backward of training mode. y (the forward output) is only read when relu. */
int dj_bn_backward(const dj_tensor *x, const dj_tensor *y, const dj_tensor *dy, const float *gamma,
                   const float *save_mean, const float *save_invstd, int relu, dj_tensor *dx, int accum,
                   float *dgamma, float *dbeta);
/* Backward of inference mode (statistics are constants). */
int dj_bn_backward_infer(const dj_tensor *y, const dj_tensor *dy, const float *gamma, const float *running_var,
                         float eps, int relu, dj_tensor *dx, int accum);

/* ------------------------------------------------------------ activations */

enum dj_act_kind { DJ_ACT_RELU = 0, DJ_ACT_LEAKY_RELU = 1, DJ_ACT_TANH = 2 };

/* y = f(x), n floats; y may equal x (in place). slope is LeakyReLU's
 * negative slope and must be > 0 for it (ignored otherwise). */
int dj_act_forward(int kind, float slope, const float *x, float *y, size_t n);
/* dx (+)= f'(.) * dy, computed from the forward OUTPUT y (which is why
 * forward may run in place). */
int dj_act_backward(int kind, float slope, const float *y, const float *dy, float *dx, size_t n, int accum);

/* ---------------------------------------------------------------- pooling */

/* Max and average pooling, square window; output (in + 2*pad - k)/stride + 1
 * (PyTorch's floor mode). Average pooling counts padding (PyTorch default,
 * count_include_pad = True). pad <= k/2. */
typedef struct dj_pool_desc {
    int k, stride, pad;
} dj_pool_desc;

int dj_pool_out_shape(const dj_pool_desc *d, int h, int w, int *oh, int *ow);
/* argmax: one int32 per output element, the flat index (y*w + x)*c + ch of
 * the winner inside its image; NULL in inference. Ties go to the first. */
int dj_maxpool_forward(const dj_pool_desc *d, const dj_tensor *x, dj_tensor *y, int32_t *argmax);
int dj_maxpool_backward(const dj_pool_desc *d, const dj_tensor *dy, const int32_t *argmax, dj_tensor *dx, int accum);
int dj_avgpool_forward(const dj_pool_desc *d, const dj_tensor *x, dj_tensor *y);
int dj_avgpool_backward(const dj_pool_desc *d, const dj_tensor *dy, dj_tensor *dx, int accum);
/* Global average pooling: y is n x 1 x 1 x c. */
int dj_gap_forward(const dj_tensor *x, dj_tensor *y);
int dj_gap_backward(const dj_tensor *dy, dj_tensor *dx, int accum);

/* ----------------------------------------------------------------- linear */

/* y[n, out] = x[n, in] * w^T + b, with in = x->h * x->w * x->c (x flattened
 * in NHWC order) and y of shape n x 1 x 1 x out. b may be NULL. */
int dj_linear_forward(const dj_tensor *x, const float *w, const float *b, dj_tensor *y);
int dj_linear_backward(const dj_tensor *x, const float *w, const dj_tensor *dy, dj_tensor *dx, int accum, float *dw,
                       float *db);

/* ---------------------------------------------------------------- dropout */

/* Training mode (inverted dropout): y = x * mask / (1 - p), mask ~ Bernoulli(1-p)
 * drawn from rng; mask holds one byte per element. 0 <= p < 1. In inference
 * dropout is the identity and is not called. */
int dj_dropout_forward(float p, dj_rng *rng, const dj_tensor *x, dj_tensor *y, uint8_t *mask);
int dj_dropout_backward(float p, const uint8_t *mask, const dj_tensor *dy, dj_tensor *dx, int accum);

/* ------------------------------------------------------ add and concatenate */

/* y = a + b (same shapes). Backward is dj_accumulate(da, dy) and (db, dy). */
int dj_add_forward(const dj_tensor *a, const dj_tensor *b, dj_tensor *y);
/* The residual join y = relu(a + b) (relu = 0: plain sum), in one pass. */
int dj_add_relu_forward(const dj_tensor *a, const dj_tensor *b, int relu, dj_tensor *y);
/* Its backward: g = dy * (y > 0) (or dy), da (+)= g, db (+)= g in one pass;
 * da or db may be NULL. y is the forward output. */
int dj_add_relu_backward(const dj_tensor *y, const dj_tensor *dy, int relu, dj_tensor *da, int accum_a, dj_tensor *db,
                         int accum_b);
/* Channel concatenation: y->c = sum of xs[i]->c; n, h, w equal. */
int dj_concat_forward(const dj_tensor *const *xs, int count, dj_tensor *y);
/* dxs[i] gets its slice of dy; accum[i] per input; dxs[i] may be NULL. */
int dj_concat_backward(const dj_tensor *dy, dj_tensor *const *dxs, int count, const int *accum);

/* ------------------------------------------------- softmax cross-entropy */

/* logits: n x 1 x 1 x k. labels: n ints in [0, k). Computes probs (n*k
 * floats, kept for backward) and *loss = mean over the batch of
 * -log softmax(logits)[label]. Numerically stable (max subtracted). */
int dj_softmax_ce_forward(const dj_tensor *logits, const int32_t *labels, float *probs, float *loss);
/* dlogits (+)= scale * (probs - onehot(label)) / n; scale is dL/dloss. */
int dj_softmax_ce_backward(const float *probs, const int32_t *labels, float scale, dj_tensor *dlogits, int accum);

#ifdef __cplusplus
}
#endif

#endif
