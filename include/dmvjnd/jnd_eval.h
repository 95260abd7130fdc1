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
} dj_jnd_eval_stats;

typedef struct dj_jnd_eval_config {
    int batch;        /* images per generator call; 0 = 200                     */
    uint64_t seed;    /* the WGN test's noise                                    */
    int wgn;          /* 1: run the WGN test                                     */
    int homogeneity;  /* 1: run the homogeneity test                             */
    int unclipped;    /* 1: also RCA on the unclipped float x + e                */
    int subset;       /* > 0: also figures over records 0..subset-1 of the split */
} dj_jnd_eval_config;

/* wgn = homogeneity = unclipped = 1, batch 200, seed 1, subset 0. */
dj_jnd_eval_config dj_jnd_eval_defaults(void);

typedef void (*dj_jnd_eval_progress_fn)(int done, int total, double images_per_s, double eta_s, void *user);

/* Evaluate every image of ds (records ds->offset ...). *all gets the
 * figures over them; *sub (may be NULL) over those with a record index
 * below cfg->subset. progress may be NULL. */
int dj_jnd_evaluate(dj_jnd_generator *g, const dj_cifar10 *ds, const dj_jnd_eval_config *cfg, dj_jnd_eval_stats *all,
                    dj_jnd_eval_stats *sub, dj_jnd_eval_progress_fn progress, void *user);

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
} dj_jnd_eval_report;

/* The report as JSON (one object: "model", "classifiers", and per split
 * evaluated "train" / "test" / "test_subset" objects holding rca_mean,
 * rca_per_classifier {tag: rca}, all_kept, psnr_db, mean_abs_e,
 * mean_abs_diff, wgn_rca_mean, wgn_rca_per_classifier, wgn_psnr_db,
 * float_rca_mean, float_rca_per_classifier, float_psnr_db,
 * homogeneity_rca [8 means, k = 1..8], homogeneity_psnr_db [8], images) or
 * as Markdown. *text is malloc'ed. */
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
