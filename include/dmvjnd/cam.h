/*
 * Class activation maps (Zhou et al., "Learning Deep Features for
 * Discriminative Localization", CVPR 2016), as the JND paper uses them.
 *
 * A classifier whose graph ends in
 *     F (h x w x C feature maps) -> global average pooling -> linear (W: K x C, b)
 * has, for class k, the map
 *     M_k(y, x) = sum_c W[k, c] * F(y, x, c)
 * (Zhou et al.'s Eq. 1; the bias is left out, as there: it only shifts the
 * map and the normalisation below removes shifts). dmvjnd computes it for k =
 * the classifier's OWN prediction on the image (argmax of its logits), then
 *   1. upsamples it bilinearly from h x w to the input size H x W, with
 *      torch.nn.functional.interpolate(mode='bilinear', align_corners=False)
 *      semantics: output pixel (Y, X) samples the map at
 *          sy = (Y + 0.5) * h / H - 0.5,  sx = (X + 0.5) * w / W - 0.5,
 *      a coordinate below 0 is clamped to 0, the neighbour beyond the last
 *      row/column is the last row/column (edge replication);
 *   2. normalises it per image to [0, 1]: m = min, then (v - m) / max(v - m).
 *      A constant map (max == min) becomes all zeros. Non-finite values are
 *      not expected (weights are checked for NaN when loaded).
 * The merged map of several classifiers is their mean (the paper's Eq. 2);
 * it stays in [0, 1] and is not normalised again.
 *
 * Dropout between the pooling and the linear layer is allowed (it is the
 * identity at inference). Frozen graphs work: the feature maps of a frozen
 * graph are the same values (up to the rounding of batch-norm folding).
 */
#ifndef DMVJND_CAM_H
#define DMVJND_CAM_H

#include <stddef.h>
#include <stdint.h>

#include "dmvjnd/graph.h"
#include "dmvjnd/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Where a graph's CAM comes from. */
typedef struct dj_cam_layout {
    int feature_node; /* node whose output is F (the input of the pooling)   */
    int pool_node, linear_node;
    int h, w, c;      /* F's shape per image                                  */
    int classes;      /* K                                                    */
    const float *weight; /* W, K x C row-major (the linear layer's parameter) */
} dj_cam_layout;

/* Find F, the pooling and W by walking back from the output: the output must
 * be a linear layer, its input (through dropout nodes) a global average
 * pooling. DJ_EINVAL, saying what the graph ends in, otherwise. */
int dj_cam_find(const dj_graph *g, dj_cam_layout *layout);

/* Forward x (n x H x W x C, normalised, the graph's input size) in inference
 * mode and compute for each image its class activation map for the graph's
 * own predicted class, upsampled to H x W and normalised as above:
 * cams[i*H*W + Y*W + X]. labels[i] (the predictions) and conf[i] (their
 * softmax probabilities) may be NULL. */
int dj_cam_compute(dj_graph *g, const dj_tensor *x, float *cams, int32_t *labels, float *conf);

/* The same for given classes (classes[i] in 0..K-1 for image i), e.g. the
 * true labels; labels/conf still receive the graph's own predictions. */
int dj_cam_compute_for(dj_graph *g, const dj_tensor *x, const int32_t *classes, float *cams, int32_t *labels,
                       float *conf);

/* Building blocks, public for tests and other maps:
 * bilinear upsampling (align_corners=False) of one h x w map to oh x ow; */
void dj_cam_upsample(const float *src, int h, int w, float *dst, int oh, int ow);
/* in-place min-max normalisation of n values to [0, 1] (all zeros if constant). */
void dj_cam_normalize(float *map, size_t n);

/* out[i] = mean over k of cams[k][i], i < n (n = images * H * W floats),
 * summed in k order in float then divided by count. out may alias cams[0]. */
int dj_cam_merge(const float *const *cams, int count, size_t n, float *out);

#ifdef __cplusplus
}
#endif

#endif
