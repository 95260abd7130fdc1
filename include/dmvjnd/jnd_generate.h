/*
 * Generating the DMV-JND of images with a trained model: what a codec or a
 * watermarking tool calls. 8-bit RGB images in; the JND image e, the
 * distorted image x + e as the 8-bit picture a user would store, and each
 * classifier's label before and after, out.
 *
 * For one image x (h x w, any size):
 *   1. x is padded to a multiple of the networks' stride (dj_jnd_generator_stride:
 *      the E-D's 8 and every classifier's) by replicating its last row and
 *      column, and normalised (the model's mean/std);
 *   2. every classifier labels the padded x and gives its class activation
 *      map for that label (dmvjnd/cam.h); c = their mean;
 *   3. e = E-D([x, c]) (inference mode), cropped back to h x w;
 *   4. x_hat = x + e, clamped to the valid range, rounded to 8 bits: the
 *      stored image (the model's clip setting only matters in training);
 *   5. every classifier labels x_hat (padded the same way): "after".
 * The classifiers are CIFAR-10 networks trained on 32x32 images; they are
 * fully convolutional up to a global average pooling, so they run at any
 * size, but their labels mean most at the size they were trained for.
 *
 * Units: e is returned on the [0, 1] pixel scale (e_pix = e * std per
 * channel), so 255 * e_pix is the change in 8-bit levels before rounding.
 */
#ifndef DMVJND_JND_GENERATE_H
#define DMVJND_JND_GENERATE_H

#include <stddef.h>
#include <stdint.h>

#include "dmvjnd/jnd_model.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct dj_jnd_generator dj_jnd_generator; /* opaque */

/* Load a model file (dj_jnd_model_load) and its classifiers. classifiers
 * NULL: the files the model names (its "jnd.classifiers", paths as stored,
 * relative to the working directory); otherwise `count` files in the same
 * roles. Every classifier must have the model's normalisation. Errors name
 * the file. */
int dj_jnd_generator_create(dj_jnd_generator **out, const char *model_path, const char *const *classifiers,
                            int count);
void dj_jnd_generator_destroy(dj_jnd_generator *g);

/* The loaded model and classifiers. */
const dj_jnd_model *dj_jnd_generator_model(const dj_jnd_generator *g);
int dj_jnd_generator_count(const dj_jnd_generator *g);
/* Classifier k's tag (its architecture, "-2", "-3" appended to repeats) and file. */
const char *dj_jnd_generator_tag(const dj_jnd_generator *g, int k);
const char *dj_jnd_generator_path(const dj_jnd_generator *g, int k);
/* Image sides are padded up to a multiple of this. */
int dj_jnd_generator_stride(const dj_jnd_generator *g);

/* Classes whose log-probabilities a result keeps: the first this many
 * (every class of a CIFAR-10 or any classifier of up to 16 classes). */
#define DJ_JND_RESULT_CLASSES 16

/* What generation measured on one image. */
typedef struct dj_jnd_image_result {
    int32_t before[DJ_JND_MAX_CLASSIFIERS]; /* label of classifier k on x         */
    int32_t after[DJ_JND_MAX_CLASSIFIERS];  /* ... on the stored 8-bit x_hat        */
    int kept;                               /* classifiers with after == before    */
    float margin[DJ_JND_MAX_CLASSIFIERS];   /* classifier k's p1 - p2 on x (softmax:
                                               its label's probability less the
                                               runner-up's; 0 for non-finite logits) */
    float hat_margin[DJ_JND_MAX_CLASSIFIERS]; /* classifier k's margin of its label
                                               of x on x_hat: p_label - max other
                                               p, in [-1, 1], negative when x_hat
                                               changed the label (dj_jnd_label_margin) */
    int classes[DJ_JND_MAX_CLASSIFIERS]; /* classifier k's class count       */
    float log_prob[DJ_JND_MAX_CLASSIFIERS][DJ_JND_RESULT_CLASSES]; /* classifier
                             k's log-softmax on x, classes 0..min(classes[k],
                             DJ_JND_RESULT_CLASSES)-1 (dj_jnd_log_softmax) */
    double psnr;          /* dB, 8-bit x vs x_hat (DJ_JND_PSNR_MAX when identical) */
    double mean_abs_e;    /* mean |255 e_pix| over pixels and channels (levels)   */
    double mean_abs_diff; /* mean |x_hat - x| of the stored bytes (levels)         */
} dj_jnd_image_result;

/* Generate for n images of h x w (rgb: n*h*w*3 bytes, interleaved, image
 * after image). Every output may be NULL:
 *   x_hat: n*h*w*3 bytes, the stored distorted images;
 *   e:     n*h*w*3 floats, the JND image on the [0, 1] pixel scale;
 *   cam:   n*h*w floats, the merged map c in [0, 1];
 *   res:   n results.
 * Graphs and buffers are made for each new padded size (the previous
 * size's are dropped), so a stream of same-size images costs one build and
 * no allocation after the first call. n may be any size: the images go
 * through in passes of dj_jnd_generator_batch images, so memory does not
 * grow with n, and the outputs do not depend on the pass size (up to the
 * rounding of the convolution kernels chosen for it). */
int dj_jnd_generator_run(dj_jnd_generator *g, const uint8_t *rgb, int n, int h, int w, uint8_t *x_hat, float *e,
                         float *cam, dj_jnd_image_result *res);

/* Images per pass of every call below (default DJ_JND_GENERATOR_BATCH):
 * larger passes use the cores better up to a point and take memory in
 * proportion. Setting it drops the buffers; the next call makes them. */
#define DJ_JND_GENERATOR_BATCH 100
int dj_jnd_generator_set_batch(dj_jnd_generator *g, int batch);
int dj_jnd_generator_batch(const dj_jnd_generator *g);

/* Fractions of e that dj_jnd_generator_keep_labels tries: k/9, k = 8..1
 * (the homogeneity test's). */
#define DJ_JND_KEEP_LABELS_STEPS 8

/* Verified JND (opt-in; `dmvjnd generate --keep-labels`). The network's e
 * changes some label on a few percent of images (its RCA); for those, this
 * backs e off along the paper's homogeneity axis: the largest fraction
 * k/9 (k = 8..1) of e whose stored image keeps every classifier's label, or
 * no distortion at all when none does. Takes what dj_jnd_generator_run
 * wrote for the same n images (x_hat, e and res are required) and updates
 * the images that had changed a label: e scaled in place (x_hat = x + e
 * still holds byte for byte), x_hat, and res (after = before, kept = all,
 * hat_margin on the new x_hat, PSNR, mean |e|, mean |x_hat - x|). scale (may be NULL) gets each image's
 * fraction: 1 (untouched), k/9, or 0. Afterwards every label is kept by
 * construction, so RCA says nothing about such output: judge the network by
 * dj_jnd_generator_run's own result, and this by its PSNR. On an error, each
 * image is either settled as above or left as dj_jnd_generator_run wrote it. */
int dj_jnd_generator_keep_labels(dj_jnd_generator *g, const uint8_t *rgb, int n, int h, int w, uint8_t *x_hat,
                                 float *e, dj_jnd_image_result *res, float *scale);

/* Labels of every classifier on n 8-bit images of h x w (padded as above):
 * labels[i*count + k]. For tests of other distortions of the same images
 * (evaluation's noise and scaled-e tests). */
int dj_jnd_generator_classify(dj_jnd_generator *g, const uint8_t *rgb, int n, int h, int w, int32_t *labels);

/* The same for float images on the [0, 1] pixel scale (pix: n*h*w*3,
 * values outside [0, 1] allowed): what the classifiers say about an
 * unclipped, unrounded x + e (evaluation's float comparison). */
int dj_jnd_generator_classify_f32(dj_jnd_generator *g, const float *pix, int n, int h, int w, int32_t *labels);

/* The 8-bit picture of e (the paper's convention: mid-gray = no change):
 * out = clamp(round(128 + gain * 255 * e_pix), 0, 255) for n values. */
void dj_jnd_e_to_u8(const float *e, size_t n, float gain, uint8_t *out);

/* x_hat bytes = clamp(round(x + 255 * scale * e_pix), 0, 255) for n values
 * (scale 1 = generation's rounding; the homogeneity test uses k/9). */
void dj_jnd_add_u8(const uint8_t *x, const float *e, size_t n, float scale, uint8_t *out);


#ifdef __cplusplus
}
#endif

#endif
