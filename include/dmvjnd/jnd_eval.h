/*
 * Evaluating a trained DMV-JND model (paper Sec. V-B to V-D) on CIFAR-10,
 * always on the images a user would store (8-bit x + e, dmvjnd/jnd_generate.h):
 *
 *   RCA (Eq. 16-17)  share of images whose stored x_hat classifier k labels
 *                    as it labelled x; rca_mean = mean over the classifiers.
 *   PSNR             8-bit x vs x_hat per image, averaged over images (the
 *                    paper's 9.56 dB is read as this mean; docs/method.md).
 *   WGN test         per image, white Gaussian noise with the SAME ENERGY as
 *                    the stored distortion (sum of (x_hat - x)^2 over the
 *                    image's bytes: the noise vector is rescaled to it
 *                    exactly, not just in expectation), added to x, clamped
 *                    and rounded like x_hat; RCA. Matching the stored
 *                    distortion rather than the float e compares the two at
 *                    the same PSNR before the noise's own clamping (whose
 *                    PSNR is reported beside it). The noise of record r is
 *                    drawn from seed and r only, so it does not depend on
 *                    batching or --limit.
 *   unclipped float  for comparison with the paper (which probably measured
 *                    this): the classifiers on x + e in float, neither
 *                    clamped nor rounded; RCA and the PSNR of e itself.
 *   homogeneity      x + (k/9) e for k = 1..8, clamped and rounded; RCA and
 *                    PSNR at each (paper Sec. V-D: a JND should keep every
 *                    label at any fraction of itself).
 *   shaped noise     two more noises at the DMV-JND's own PSNR, to weigh
 *                    "machines tolerate this much" against where the
 *                    distortion goes: random-sign noise whose amplitude
 *                    follows (a) the human-vision JND map (NAMM, Yang et
 *                    al. 2005: dj_hvs_jnd_namm) and (b) 1 - c, c the
 *                    classifiers' merged CAM (large where they do not
 *                    look). Each is scaled per image so that the stored
 *                    8-bit image has the PSNR of the stored x + e (within
 *                    0.01 dB where the rounding allows: see
 *                    dj_jnd_shaped_noise_u8); RCA.
 *
 * One pass per batch: the generator gives labels, CAM, e and the stored
 * x + e once; every other image tested (float x + e, the noises, the k/9
 * fractions) is built from them and all go through the classifiers
 * together. The figures do not depend on the batch size.
 */
#ifndef DMVJND_JND_EVAL_H
#define DMVJND_JND_EVAL_H

#include <stdint.h>

#include "dmvjnd/cifar10.h"
#include "dmvjnd/jnd_generate.h"

#ifdef __cplusplus
extern "C" {
#endif

#define DJ_JND_HOMOGENEITY_STEPS 8 /* k/9, k = 1..8 */

/* Figures over a set of images. RCAs are fractions. */
typedef struct dj_jnd_eval_stats {
    int images, classifiers;
    double rca[DJ_JND_MAX_CLASSIFIERS], rca_mean;
    double all_kept;               /* share of images whose every label stayed */
    double psnr_db;                /* mean per-image PSNR of the stored x_hat  */
    double mean_abs_e;             /* mean |e| (levels), float e               */
    double mean_abs_diff;          /* mean |x_hat - x| of the stored bytes     */
    double wgn_rca[DJ_JND_MAX_CLASSIFIERS], wgn_rca_mean, wgn_psnr_db;
    double float_rca[DJ_JND_MAX_CLASSIFIERS], float_rca_mean; /* unclipped float x + e */
    double float_psnr_db;                                     /* PSNR of 255 e_pix     */
    double homogeneity_rca[DJ_JND_HOMOGENEITY_STEPS][DJ_JND_MAX_CLASSIFIERS];
    double homogeneity_rca_mean[DJ_JND_HOMOGENEITY_STEPS];
    double homogeneity_psnr_db[DJ_JND_HOMOGENEITY_STEPS];
    /* noise shaped by the human-vision JND, and by 1 - c, at x + e's PSNR */
    double hvs_rca[DJ_JND_MAX_CLASSIFIERS], hvs_rca_mean, hvs_psnr_db;
    double camshaped_rca[DJ_JND_MAX_CLASSIFIERS], camshaped_rca_mean, camshaped_psnr_db;
} dj_jnd_eval_stats;

typedef struct dj_jnd_eval_config {
    int batch;        /* images per generator call; 0 = 200                     */
    uint64_t seed;    /* the WGN test's noise                                    */
    int wgn;          /* 1: run the WGN test                                     */
    int homogeneity;  /* 1: run the homogeneity test                             */
    int unclipped;    /* 1: also RCA on the unclipped float x + e                */
    int subset;       /* > 0: also figures over records 0..subset-1 of the split */
    int shaped;       /* 1: the HVS- and CAM-shaped noise tests (same seed)     */
} dj_jnd_eval_config;

/* wgn = homogeneity = unclipped = shaped = 1, batch 200, seed 1, subset 0. */
dj_jnd_eval_config dj_jnd_eval_defaults(void);

typedef void (*dj_jnd_eval_progress_fn)(int done, int total, double images_per_s, double eta_s, void *user);

/* Evaluate every image of ds (records ds->offset ...). *all gets the
 * figures over them; *sub (may be NULL) over those with a record index
 * below cfg->subset. progress may be NULL. */
int dj_jnd_evaluate(dj_jnd_generator *g, const dj_cifar10 *ds, const dj_jnd_eval_config *cfg, dj_jnd_eval_stats *all,
                    dj_jnd_eval_stats *sub, dj_jnd_eval_progress_fn progress, void *user);

/* The noise tests' images, one 32x32 (or any h x w) image at a time, for
 * record `record` of the data set (the noise depends on seed and record
 * only, never on batching). x: the image, xh: its stored x + e (n = h*w*3
 * bytes each); out: n bytes; z: n floats of scratch.
 * WGN: z ~ N(0, 1) per byte, scaled so that sum (s z)^2 = sum (xh - x)^2
 * exactly, then out = clamp(round(x + s z)). */
void dj_jnd_wgn_u8(const uint8_t *x, const uint8_t *xh, size_t n, uint64_t seed, int record, float *z, uint8_t *out);

/* Shaped noise: z[p] = +-amp[pixel of p] (amp: h*w values >= 0; a random
 * sign per byte from seed, `stream` and record), out = clamp(round(x + s z))
 * with s found by bisection so that the PSNR of out against x is that of xh
 * against x: the closest the rounding allows (within 0.01 dB on any image
 * whose distortion is not a handful of levels). xh == x gives out = x.
 * Returns the PSNR reached (DJ_JND_PSNR_MAX when out == x). Streams: 1 the
 * HVS-shaped test, 2 the CAM-shaped one. */
double dj_jnd_shaped_noise_u8(const uint8_t *x, const uint8_t *xh, const float *amp, int h, int w, uint64_t seed,
                              uint64_t stream, int record, float *z, uint8_t *out);

/* A report of one model's evaluation: what dmvjnd eval writes. */
typedef struct dj_jnd_eval_report {
    const char *model_path;
    const dj_jnd_generator *gen;  /* classifier tags and files            */
    int has_train, has_test, has_subset;
    int subset;                   /* records 0..subset-1 of the test split */
    dj_jnd_eval_stats train, test, test_subset;
    uint64_t seed;
    double seconds;
    const char *montage;          /* montage PNG file name, or NULL        */
    size_t peak_rss_bytes;        /* the process's peak memory; 0: not reported */
} dj_jnd_eval_report;

/* The report as JSON (one object: "model", "classifiers", and per split
 * evaluated "train" / "test" / "test_subset" objects holding rca_mean,
 * rca_per_classifier {tag: rca}, all_kept, psnr_db, mean_abs_e,
 * mean_abs_diff, wgn_rca_mean, wgn_rca_per_classifier, wgn_psnr_db,
 * float_rca_mean, float_rca_per_classifier, float_psnr_db,
 * homogeneity_rca [8 means, k = 1..8], homogeneity_psnr_db [8],
 * hvs_noise_rca_mean, hvs_noise_rca_per_classifier, hvs_noise_psnr_db,
 * cam_noise_rca_mean, cam_noise_rca_per_classifier, cam_noise_psnr_db,
 * images; "peak_rss_bytes" when known) or as Markdown. *text is malloc'ed. */
int dj_jnd_eval_json(const dj_jnd_eval_report *r, char **text);
int dj_jnd_eval_markdown(const dj_jnd_eval_report *r, char **text);

/* The paper's Fig. 8 as one PNG: a row per image, CAM (heat map) | e (mid
 * gray = no change, gain e_gain) | x | stored x + e, each scaled up `zoom`
 * times (nearest neighbour), with 2-pixel white gaps. n images of h x w. */
int dj_jnd_montage(dj_jnd_generator *g, const uint8_t *rgb, int n, int h, int w, int zoom, float e_gain,
                   const char *path);

#ifdef __cplusplus
}
#endif

#endif
