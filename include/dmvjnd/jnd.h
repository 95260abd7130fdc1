/*
 * The DMV-JND network (Jin et al., "Just Noticeable Difference for Deep
 * Machine Vision"): the E-D autoencoder that outputs the JND image e, and
 * the losses that train it.
 *
 * Data flow (paper Fig. 3): x (n x H x W x 3, normalised) and the merged CAM
 * map c (n x H x W x 1, in [0, 1]; dmvjnd/cam.h) are stacked into the E-D's
 * 4-channel input; the E-D gives e (n x H x W x 3, in (-1, 1)); x_hat = x + e
 * goes through the four frozen classifiers (Loss1, their cross-entropy
 * against their own labels on x: dj_softmax_ce_*), and e and c give Loss2
 * (magnitude) and Loss3 (spatial distribution). The total is
 *     Loss = Loss1 + alpha * Loss2 + beta * Loss3          (Eq. 7)
 * with alpha = beta = 1 in the paper.
 *
 * Every choice the paper leaves open (the E-D's layers, the unit in which
 * |e| is measured, clipping, PSNR) is explained in docs/method.md.
 *
 * Sections:
 *   1. normalisation          the pixel <-> network-input mapping
 *   2. E-D autoencoder        config, input stacking (builder: models.h)
 *   3. losses                 Loss2, Loss3, combined
 *   4. distortion and metrics x_hat = x + e (clipped), PSNR, mean |e|
 */
#ifndef DMVJND_JND_H
#define DMVJND_JND_H

#include <stddef.h>
#include <stdint.h>

#include "dmvjnd/graph.h"
#include "dmvjnd/rng.h"
#include "dmvjnd/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* =========================================================== 1. normalisation */

/* The classifiers' input normalisation: a pixel p in [0, 1] of channel ch
 * becomes (p - mean[ch]) / std[ch] (dmvjnd/train.h). The paper's is
 * mean = std = 0.5, which maps pixels to [-1, 1]. */
typedef struct dj_jnd_norm {
    float mean[3], std[3];
} dj_jnd_norm;

/* mean = std = (0.5, 0.5, 0.5): the paper's (Sec. V-A). */
dj_jnd_norm dj_jnd_norm_paper(void);

/* ========================================================= 2. E-D autoencoder */

/* The E-D (paper Fig. 4, reconstructed; see docs/method.md):
 *   enc.0  conv 3x3/1 pad 1, 4 -> 64        enc.1 BN, LeakyReLU      (H x W)
 *   enc.3  conv 3x3,  64 -> 128             enc.4 BN, LeakyReLU, maxpool 2 (H/2)
 *   enc.7  conv 3x3, 128 -> 256             enc.8 BN, LeakyReLU, maxpool 2 (H/4)
 *   enc.11 conv 3x3, 256 -> 64              enc.12 BN, LeakyReLU, maxpool 2 (H/8)
 *   dec.0  deconv 2x2/2,  64 -> 256         dec.1 BN, LeakyReLU      (H/4)
 *   dec.3  deconv 2x2/2, 256 -> 128         dec.4 BN, LeakyReLU      (H/2)
 *   dec.6  deconv 2x2/2, 128 -> 64          dec.7 BN, LeakyReLU      (H)
 *   dec.9  conv 3x3/1 pad 1, 64 -> 3 (+ bias), tanh  -> e
 * The numbers are the state_dict indices of the twin's two nn.Sequential
 * (tools/torch/jnd.py: "enc.0.weight", "enc.1.running_mean", ...). The
 * convolutions before a batch norm have no bias (it would cancel), the last
 * one has. Widths scale with cfg.width (rounded, at least 1). Weights start
 * with PyTorch's default initialisation (what nn.Conv2d/ConvTranspose2d do).
 *
 * Parameters at width 1: 751,427 trainable (+ 1,920 BN running statistics);
 * 365 MFLOP per 32x32 image (2 x multiply-accumulates, dj_graph_flops). */
typedef struct dj_jnd_ed_config {
    float width;      /* width multiplier: 1 = 64-128-256-64 / 256-128-64; 0.5 = half */
    float slope;      /* LeakyReLU negative slope (0 = plain ReLU); default 0.01      */
    int margin_input; /* 1: a fifth input channel, the margin plane (below); 0 = the  */
                      /* paper's x and c only (default)                               */
} dj_jnd_ed_config;

#define DJ_JND_ED_IN_CHANNELS 4  /* the paper's input: x (3, normalised) then c (1) */
#define DJ_JND_ED_OUT_CHANNELS 3 /* e                                        */
#define DJ_JND_ED_MULTIPLE 8     /* H and W must be multiples of this (3 pools) */

/* width 1, slope 0.01 (PyTorch's nn.LeakyReLU default), no margin input. */
dj_jnd_ed_config dj_jnd_ed_defaults(void);

/* The E-D's input channels: DJ_JND_ED_IN_CHANNELS, + 1 with margin_input. */
int dj_jnd_ed_in_channels(const dj_jnd_ed_config *cfg);

/* The seven layer widths for cfg (enc.0, enc.3, enc.7, enc.11, dec.0, dec.3,
 * dec.6): round(base * width), at least 1. DJ_EINVAL for a width that is not
 * a finite number in (0, 16] or a negative / non-finite slope. */
int dj_jnd_ed_widths(const dj_jnd_ed_config *cfg, int widths[7]);

/* The E-D's builder (src/models/jnd_ed.c; dj_model_build knows it as
 * "jnd_ed"): cfg NULL = defaults; h, w multiples of DJ_JND_ED_MULTIPLE (the
 * caller pads), else DJ_EINVAL. The graph's input is n x h x w x 4 (5 with
 * the margin input), its output n x h x w x 3 in (-1, 1). */
int dj_model_jnd_ed(dj_graph **out, const dj_jnd_ed_config *cfg, int h, int w, dj_rng *rng);

/* The E-D's input: xc[..., 0:3] = x, xc[..., 3] = c (torch.cat([x, c], 1)),
 * and with margin (n floats, may be NULL) xc[i, :, :, 4] = margin[i] for
 * every pixel of image i. x: n x h x w x 3, c: n x h x w x 1, xc:
 * n x h x w x 4 (margin NULL) or x 5 (margin given), not aliasing x or c. */
int dj_jnd_stack(const dj_tensor *x, const dj_tensor *c, const float *margin, dj_tensor *xc);

/* The margin plane (docs/method.md, "The margin input"). The merged CAM is
 * min-max normalised per image, so it says where a classifier looks but not
 * how sure it is; the labels a JND loses sit on the images some classifier
 * is unsure of. The margin of an image is the smallest, over the
 * classifiers, of p1 - p2: the gap between the two largest softmax
 * probabilities of the classifier on x (in [0, 1]; 0 = a tie).
 *
 * logits: n x classes, one classifier's outputs on x. first = 1:
 * margin[i] = its gap; first = 0: margin[i] = min(margin[i], its gap), so
 * calling it once per classifier gives the smallest. Non-finite logits give
 * a margin of 0 (the most careful). DJ_EINVAL for classes < 2. */
int dj_jnd_margin_update(const float *logits, int n, int classes, float *margin, int first);

/* The same from a classifier graph's last forward (its output node holds n
 * images' logits, e.g. after dj_cam_compute). DJ_EINVAL if it holds fewer. */
int dj_jnd_margin_from_graph(const dj_graph *g, int n, float *margin, int first);

/* The margin of a given label: p_label - max over j != label of p_j, in
 * [-1, 1] (negative when another class wins). labels[i * stride] is image
 * i's label; one outside 0..classes-1 or non-finite logits give -1 (the
 * most careful). Used on the JND image x + e with the labels of x: how
 * much of its margin an image keeps at its JND (dj_jnd_image_result). */
int dj_jnd_label_margin(const float *logits, int n, int classes, const int32_t *labels, size_t stride,
                        float *margin);

/* The log-softmax of n images' logits (classes each), the first `keep`
 * classes of each kept: out[i * keep + j] = log p_j, computed in double
 * from the largest logit, so it never overflows. Non-finite logits give
 * every class log(1/classes) (no confidence at all). What the classifier
 * thinks x is, beyond its label's margin (dj_jnd_image_result.log_prob).
 * DJ_EINVAL for classes < 2 or keep outside 0..classes. */
int dj_jnd_log_softmax(const float *logits, int n, int classes, int keep, float *out);

/* ================================================================ 3. losses */

/* The unit in which e is measured inside Loss2 and Loss3 (the paper does not
 * say; docs/method.md). */
enum dj_jnd_unit {
    /* e as the E-D outputs it, in the normalised input space ([-1, 1] for the
     * paper's normalisation). Default: reproduces the paper's 9.56 dB. */
    DJ_JND_UNIT_NORMALIZED = 0,
    /* e on the [0, 1] pixel scale: e_pix = e * std[ch]. */
    DJ_JND_UNIT_PIXEL01 = 1
};

typedef struct dj_jnd_loss_config {
    int e_unit;       /* enum dj_jnd_unit                               */
    dj_jnd_norm norm; /* std is used by DJ_JND_UNIT_PIXEL01             */
    double q;         /* Eq. 13's guard; 1e-10 in the paper             */
} dj_jnd_loss_config;

/* e_unit NORMALIZED, the paper's normalisation, q = 1e-10. */
dj_jnd_loss_config dj_jnd_loss_defaults(void);

/* Shapes for every loss: e is n x h x w x 3, c is n x h x w x 1 (the merged
 * CAM map, values in [0, 1]), de (when not NULL) has e's shape. With u = k*e
 * (k = 1, or std[ch] for DJ_JND_UNIT_PIXEL01), per image:
 *
 * Loss2 (magnitude, Eq. 10-13):
 *   I  = mean over the H*W pixels of c                            (Eq. 10)
 *   N  = 1 - I                                                    (Eq. 11)
 *   N0 = mean over the H*W pixels AND the 3 channels of |u|       (Eq. 12)
 *   Loss2 = ln(N^2 + N0^2 + q) - ln(2 N N0 + q)                   (Eq. 13)
 * (>= 0, zero when N0 = N.)
 *
 * Loss3 (spatial distribution, Eq. 14-15):
 *   v = softmax of c over the H*W pixels of the image             (Eq. 14)
 *   Loss3 = sum_p v_p * mean_ch |u_p,ch|                          (Eq. 15)
 * (the inner product <v, e> with e's channel-mean magnitude: signed e would
 * make it unbounded below.)
 *
 * Both are averaged over the batch. Gradients are taken w.r.t. e only (c
 * comes from frozen networks); d|u|/de is k*sign(e) with sign(0) = 0, the
 * subgradient torch.abs uses.
 *
 * Each function: *loss (may be NULL) = batch mean; per_image[i] (may be
 * NULL) = image i's value; when de is not NULL,
 *   de (accum ? += : =) scale * dLoss/de   (Loss = the batch mean).
 * DJ_EINVAL for mismatched shapes or an unknown e_unit. */
int dj_jnd_loss2(const dj_tensor *e, const dj_tensor *c, const dj_jnd_loss_config *cfg, double *loss,
                 float *per_image, float scale, dj_tensor *de, int accum);
int dj_jnd_loss3(const dj_tensor *e, const dj_tensor *c, const dj_jnd_loss_config *cfg, double *loss,
                 float *per_image, float scale, dj_tensor *de, int accum);

/* Batch means of the two losses and of the quantities behind Loss2. */
typedef struct dj_jnd_loss_values {
    double loss2, loss3; /* Eq. 13 and 15                                 */
    double n, n0;        /* target N and actual N0 (Eq. 11, 12), e_unit    */
} dj_jnd_loss_values;

/* Both losses in one pass: *out (may be NULL) and, when de is not NULL,
 *   de (accum ? += : =) a * dLoss2/de + b * dLoss3/de
 * (a, b = alpha, beta of Eq. 7). cfg NULL = defaults. */
int dj_jnd_losses(const dj_tensor *e, const dj_tensor *c, const dj_jnd_loss_config *cfg, float a, float b,
                  dj_jnd_loss_values *out, dj_tensor *de, int accum);

/* ================================================ 4. distortion and metrics */

/* x_hat = x + e (Eq. 4). clip NULL: no clipping. Otherwise each channel is
 * clamped to the normalised image of [0, 1], [-mean/std, (1 - mean)/std]
 * ([-1, 1] for the paper's), so x_hat is an image that can be stored.
 * x, e, x_hat: n x h x w x 3; x_hat may alias x or e. */
int dj_jnd_apply(const dj_tensor *x, const dj_tensor *e, const dj_jnd_norm *clip, dj_tensor *x_hat);

/* Its backward: de (accum ? += : =) dx_hat * m, with m = 1 where
 * lo <= x + e <= hi (inclusive, as torch.clamp's gradient) and 0 outside;
 * m = 1 everywhere when clip is NULL. x and e are the forward's inputs. */
int dj_jnd_apply_backward(const dj_tensor *x, const dj_tensor *e, const dj_jnd_norm *clip, const dj_tensor *dx_hat,
                          dj_tensor *de, int accum);

/* PSNR reported for identical images (MSE = 0), so that means stay finite. */
#define DJ_JND_PSNR_MAX 100.0

/* PSNR between x and x_hat (both normalised with norm; NULL = the paper's)
 * on the 0..255 scale, per image:
 *   d = (x_hat - x) * std[ch] * 255,  MSE = mean over h, w, ch of d^2,
 *   PSNR = 10 log10(255^2 / MSE), DJ_JND_PSNR_MAX when MSE = 0 (or the
 *   PSNR would exceed it).
 * quantize = 1 first maps both to 8-bit pixels (round(255*(v*std + mean)),
 * clamped to 0..255), i.e. measures the images a user would store.
 * per_image[i] (may be NULL) and *mean (may be NULL) = the mean of the
 * per-image values (what the paper's 9.56 dB is read as; docs/method.md). */
int dj_jnd_psnr(const dj_tensor *x, const dj_tensor *x_hat, const dj_jnd_norm *norm, int quantize, float *per_image,
                double *mean);

/* Mean |e| in 8-bit pixel levels: mean over h, w, ch of |e * std[ch]| * 255,
 * per image (per_image may be NULL) and over the batch (*mean, may be NULL).
 * norm NULL = the paper's. */
int dj_jnd_mean_abs_255(const dj_tensor *e, const dj_jnd_norm *norm, float *per_image, double *mean);

#ifdef __cplusplus
}
#endif

#endif
