/*
 * Distortion budgets for JND-guided compression: how far each pixel value may
 * move before a viewer (a person, or the DMV classifiers) notices.
 *
 *   - dj_hvs_jnd_namm: the human-vision JND of Yang et al. 2005 (NAMM), the
 *     baseline the machine-vision JND is compared with;
 *   - dj_budget_*: budget maps b (8-bit levels, one value per pixel and
 *     channel) from the DMV-JND e, from a per-pixel map, flat, rescaled;
 *   - dj_prefilter / dj_smooth_target: move pixels toward a cheaper-to-code
 *     target, never further than the budget;
 *   - dj_bd_rate / dj_rd_rate_at: Bjontegaard delta rate between two
 *     rate-quality curves (monotone PCHIP fit).
 *
 * The formulae, constants and references are in docs/budget.md.
 */
#ifndef DMVJND_BUDGET_H
#define DMVJND_BUDGET_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Human-vision JND: Yang et al. 2005 NAMM on luma (BT.601 Y of the 8-bit RGB,
 * not rounded), per pixel, in 8-bit levels:
 *   JND = T_l + T_t - C * min(T_l, T_t), C = 0.3;
 *   T_l: Chou & Li luminance adaptation over the 5x5 weighted background bg;
 *   T_t = eta * G * W, G = max of the four directional 5x5 gradient operators
 *   (sums / 16), W = edge-protection weight (Canny edges 0.1, others 1,
 *   smoothed by a 7x7 Gaussian of sigma 0.8), eta = 0.117.
 * Border: replicate. rgb: h*w*3 (HWC); out: h*w floats.
 * Returns 0, DJ_EINVAL (NULL pointer, h or w < 1) or DJ_ENOMEM. */
int dj_hvs_jnd_namm(const uint8_t *rgb, int h, int w, float *out);

/* The Canny edge map used by dj_hvs_jnd_namm, on a luma plane (h*w floats):
 * Gaussian smoothing (sigma sqrt(2), 11 taps, replicate border), Sobel
 * gradient, non-maximum suppression in four directions, hysteresis with
 * thresholds 0.5 and 0.2 of the largest gradient magnitude (8-connected).
 * edges: h*w bytes, 1 on an edge, else 0. Returns 0, DJ_EINVAL or DJ_ENOMEM. */
int dj_canny_edges(const float *luma, int h, int w, uint8_t *edges);

/* Budget maps, all h*w*3 floats in 8-bit levels (one value per pixel and channel).
 * From the DMV-JND e (generator output on the [0,1] pixel scale): b = 255 * |e|. */
void dj_budget_from_e(const float *e, size_t n /* h*w*3 */, float *budget);
/* From a per-pixel (h*w) map, the same value on all three channels. */
void dj_budget_from_map(const float *map, int h, int w, float *budget);
/* Flat: every value = mean of `like` (n values), so flat and JND budgets
 * carry the same mean. */
void dj_budget_flat_like(const float *like, size_t n, float *budget);
/* Scale a budget so its mean equals target_mean; returns the factor used,
 * 0 (and the budget unchanged) when its mean is not positive. */
double dj_budget_scale_to_mean(float *budget, size_t n, double target_mean);

/* Pre-filter: move each value of x toward a cheaper target T but never
 * further than s*budget: out = clamp(x + m, 0, 255) with
 * m = clamp(T - x, -s*b, s*b) rounded toward zero, so |out - x| <= s*b
 * always (m is an integer already whenever the budget does not bind).
 * A negative or NaN budget value counts as 0. s in (0, 1]. n = h*w*3. */
void dj_prefilter(const uint8_t *x, const uint8_t *target, const float *budget, float s, size_t n, uint8_t *out);

/* A smoothing target for the pre-filter: separable Gaussian blur of sigma
 * (pixels; taps to radius ceil(3 sigma)), replicate border, per channel,
 * rounded to the nearest level. rgb, out: h*w*3.
 * Returns 0, DJ_EINVAL (NULL, empty, sigma not in (0, 64]) or DJ_ENOMEM. */
int dj_smooth_target(const uint8_t *rgb, int h, int w, float sigma, uint8_t *out);

/* Rate-quality curves and BD-rate (Bjontegaard, VCEG-M33, with a monotone
 * PCHIP fit). A curve is n points (rate > 0, quality); here quality is RCA
 * in [0, 1]. */
typedef struct dj_rd_point {
    double rate, quality;
} dj_rd_point;

/* BD-rate of `test` against `anchor`: log(rate) as a monotone piecewise-cubic
 * (Fritsch-Carlson PCHIP) function of quality for each curve, integrated over
 * the quality interval both cover; *out = exp(mean difference) - 1 (negative:
 * test needs fewer bits). Before fitting, each curve is reduced to its
 * lower-rate frontier: sorted by quality, a point is kept only if its rate is
 * below that of every point of higher quality (of points with equal quality
 * only the cheapest), because measured RCA is noisy and not always monotone in
 * rate. Errors (DJ_EINVAL): a NULL curve, a rate not positive and finite or a
 * quality not finite, fewer than 2 frontier points, no overlap of the ranges. */
int dj_bd_rate(const dj_rd_point *anchor, int na, const dj_rd_point *test, int nt, double *out);

/* The rate a curve needs at quality q (same frontier + PCHIP on log rate);
 * DJ_EINVAL if q is outside the frontier's quality range. */
int dj_rd_rate_at(const dj_rd_point *curve, int n, double quality, double *rate);

/* Fritsch-Carlson PCHIP (as Moler's pchip and scipy's PchipInterpolator):
 * slopes d[0..n) at strictly increasing x with values y. n >= 2.
 * Returns 0 or DJ_EINVAL (n < 2, x not strictly increasing or not finite). */
int dj_pchip_slopes(const double *x, const double *y, int n, double *d);
/* The cubic Hermite interpolant with those slopes at xq, n >= 2 (outside
 * [x0, x_{n-1}] the end segments' polynomials are extended). */
double dj_pchip_eval(const double *x, const double *y, const double *d, int n, double xq);

#ifdef __cplusplus
}
#endif

#endif
