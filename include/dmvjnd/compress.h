/*
 * JND-guided JPEG/WebP compression for machines, measured end to end.
 *
 * Every method codes an 8-bit RGB image x with libjpeg-turbo or libwebp
 * (dmvjnd/codec.h) and is driven by a per-pixel error budget b (8-bit
 * levels, h*w*3 values; dmvjnd/budget.h), applied at strength s:
 *
 *   plain           the codec at quality q (no budget);
 *   *-prefilter     x moved toward a cheaper target T, never further than
 *                   s*b per value (dj_prefilter), then coded at q. T is the
 *                   codec's own decoded image at quality max(1, q/4)
 *                   (default: what the codec at q would spend bits on and
 *                   the coarser codec drops) or a Gaussian-smoothed x;
 *   *-quant         (JPEG only) quantised DCT coefficients moved toward zero
 *                   while every decoded value stays within max(s*b, plain
 *                   error) (dj_jpeg_encode_suppressed) at q;
 *   *-rate          the paper's bit allocation at image granularity: the
 *                   coarsest ladder quality q_i <= q whose plain decoded
 *                   image meets the allocation criterion against s*b (no
 *                   classifier runs), then *-quant at q_i (JPEG) or plain
 *                   at q_i (WebP);
 *   jnd-alloc       per image the plain ladder quality maximising
 *                   P - lambda(q) * bpp, where P is the share of the four
 *                   classifiers' labels a calibration (fitted once per codec
 *                   and model on training images) predicts the decoded image
 *                   keeps, from the classifiers' margins on x and on the JND
 *                   image x + e and their class probabilities on x (which
 *                   the JND generation computes anyway) and the decoded
 *                   image's distortion against b and c; no
 *                   classifier runs on a coded image. lambda(q) = 10^(-q/40)
 *                   per bpp;
 *   guard           per image the coarsest plain ladder quality whose
 *                   decoded image keeps every label of the four classifiers
 *                   (the known machines); for images none keeps, quality 100
 *                   with error feedback (dj_compress_code_feedback), then, with
 *                   WebP, lossless WebP: one operating point, reported apart.
 *
 * Budgets: jnd = 255|e| (the DMV-JND generator's e); hvs = the NAMM map of
 * Yang et al. on all three channels, scaled per image to the jnd budget's
 * mean (matched, the default) or kept at its own levels (native); flat = a
 * uniform budget with the jnd budget's mean.
 */
#ifndef DMVJND_COMPRESS_H
#define DMVJND_COMPRESS_H

#include <stddef.h>
#include <stdint.h>

#include "dmvjnd/codec.h"
#include "dmvjnd/jnd_generate.h"
#include "dmvjnd/train.h"

#ifdef __cplusplus
extern "C" {
#endif

enum { DJ_CODEC_JPEG = 0, DJ_CODEC_WEBP = 1 };
enum { DJ_BUDGET_NONE = 0, DJ_BUDGET_JND, DJ_BUDGET_HVS, DJ_BUDGET_FLAT, DJ_BUDGET_KINDS };
enum { DJ_USE_PLAIN = 0, DJ_USE_PREFILTER, DJ_USE_QUANT, DJ_USE_RATE, DJ_USE_ALLOC, DJ_USE_GUARD };
enum { DJ_TARGET_CODEC = 0, DJ_TARGET_SMOOTH = 1 };
/* Allocation criteria (dj_compress_criterion_ok). */
enum {
    DJ_CRIT_SHARE = 0, /* share of values with |decoded - x| > s*b at most tau */
    DJ_CRIT_MEAN = 1   /* mean over values of max(0, |decoded - x| - s*b) at most tau levels */
};

#define DJ_COMPRESS_NAME_MAX 24
#define DJ_COMPRESS_MAX_EXTRA 8
#define DJ_COMPRESS_MAX_LADDER 128
#define DJ_COMPRESS_MAX_FEEDBACK 32

typedef struct dj_compress_method {
    const char *name; /* "plain", "jnd-quant", ...                       */
    int budget;       /* DJ_BUDGET_*                                      */
    int use;          /* DJ_USE_*                                         */
    const char *what; /* one line for --help and the report               */
} dj_compress_method;

/* The method table, in report order. */
int dj_compress_method_count(void);
const dj_compress_method *dj_compress_method_at(int i);
/* The method called `name` usable with `codec`: DJ_EINVAL naming it when it
 * is unknown, or when it is a *-quant method and codec is WebP. */
int dj_compress_method_find(const char *name, int codec, const dj_compress_method **m);
/* "jpeg" / "webp" -> DJ_CODEC_*; DJ_EINVAL for anything else. */
int dj_compress_codec_parse(const char *name, int *codec);
const char *dj_compress_codec_name(int codec);
/* File extension without the dot: "jpg" / "webp". */
const char *dj_compress_codec_ext(int codec);

typedef struct dj_compress_calibration dj_compress_calibration;

typedef struct dj_compress_config {
    int codec;          /* DJ_CODEC_*                                              */
    double strength;    /* s in (0, 1]: every budget is applied as s*b             */
    int hvs_native;     /* 1: NAMM's own levels; 0: scaled to the jnd mean (default) */
    int target;         /* prefilter target: DJ_TARGET_CODEC (default) or _SMOOTH  */
    double target_div;  /* codec target quality = max(1, q / target_div) (default 4) */
    double smooth_sigma;/* Gaussian sigma of the smooth target, pixels (default 1)   */
    int criterion;      /* DJ_CRIT_* (default DJ_CRIT_SHARE)                       */
    double tau;         /* its threshold (default 0.05)                            */
    int ladder_step;    /* rate/guard ladder: step, step*2, ..., 100 (default 5)    */
    int guard_all;      /* 1: guard keeps the extra classifiers' labels too          */
    int guard_feedback; /* guard's last resort: up to this many rounds of error
                           feedback at quality 100 (dj_compress_code_feedback) for
                           images no plain quality keeps (default 16, 0: none)      */
    int guard_lossless; /* WebP: guard's very last candidate is lossless WebP, which
                           keeps every label (default 1; JPEG has none: baseline
                           libjpeg-turbo 2.1 has no lossless mode)                   */
    int batch;          /* images per generator / classifier call (default 500)    */
    const dj_compress_calibration *calibration; /* jnd-alloc's (required by it;
                           dj_compress_calibration_read or dj_compress_calibrate) */
} dj_compress_config;

dj_compress_config dj_compress_defaults(void);
/* DJ_EINVAL naming the field for an out-of-range value. */
int dj_compress_config_check(const dj_compress_config *cfg);

/* --------------------------------------------------------- one image */

/* The three budgets of one h x w image from its e (n = h*w*3 values on the
 * [0, 1] pixel scale). Any output may be NULL; jnd is needed internally for
 * hvs (matched) and flat, so it is computed anyway. Levels, unscaled by s. */
int dj_compress_budgets(const dj_compress_config *cfg, const uint8_t *rgb, int h, int w, const float *e, float *jnd,
                        float *hvs, float *flat);

/* Code one image with one method at `quality` (1..100). budget: the method's
 * budget (h*w*3 levels, not yet multiplied by s; NULL only for plain). For
 * *-rate and guard `quality` is the allocated q_i (dj_compress_rate_pick,
 * dj_compress_guard): the image is coded as those methods code at q_i.
 * out is owned by the caller (dj_coded_free). */
int dj_compress_code(const dj_compress_config *cfg, const dj_compress_method *m, const uint8_t *rgb, int h, int w,
                     int quality, const float *budget, dj_coded *out);

/* Plain coding at `quality` after `rounds` of error feedback: starting from
 * y = x, each round codes y, decodes it and adds the error back,
 * y <- y + (x - decoded(y)) (y kept within [-255, 510], coded clipped to
 * 0..255). Each round gives another standard file of either codec whose
 * decoded image lies near x but differs from plain's: not closer in
 * general (on sharp edges the added error is itself quantised), but a
 * different point of the codec's neighbourhood of x. Guard tries these for
 * images whose labels no plain quality keeps: in the default JPEG run on
 * test records 0-999, all 11 such images keep them within 16 rounds, while
 * 4 rounds leave one whose labels sit on a decision boundary
 * (docs/compression.md). rounds 0 is plain coding; at most
 * DJ_COMPRESS_MAX_FEEDBACK. */
int dj_compress_code_feedback(int codec, const uint8_t *rgb, int h, int w, int quality, int rounds, dj_coded *out);

/* Decode what dj_compress_code wrote with cfg->codec; *rgb malloc'ed. */
int dj_compress_decode(int codec, const dj_coded *c, uint8_t **rgb, int *h, int *w);

/* --------------------------------------------------------- allocation */

/* The quality ladder the rate methods and guard choose from: multiples of
 * cfg->ladder_step up to 100, plus the grid qualities, sorted, unique.
 * Returns the count (<= DJ_COMPRESS_MAX_LADDER). */
int dj_compress_ladder(const dj_compress_config *cfg, const int *grid, int ngrid, int *ladder);

/* The allocation criterion: does `decoded` stay within s*b of x in the
 * configured sense? n values. Returns 1 or 0. */
int dj_compress_criterion_ok(const dj_compress_config *cfg, const uint8_t *x, const uint8_t *decoded,
                             const float *budget, size_t n);

/* pass[l] = 1 when the plain codec at ladder[l] meets the criterion. */
int dj_compress_rate_ladder(const dj_compress_config *cfg, const uint8_t *rgb, int h, int w, const float *budget,
                            const int *ladder, int nl, uint8_t *pass);

/* The coarsest ladder quality <= q that passed; q itself when none did. */
int dj_compress_rate_pick(const int *ladder, int nl, const uint8_t *pass, int q);

/* --------------------------------------------------------- machines */

/* The classifiers whose labels are checked: the generator's (the four the
 * JND was trained against) and extra ones (32x32 images only). */
typedef struct dj_compress_machines {
    dj_jnd_generator *gen;
    dj_classifier *extra; /* nextra loaded classifiers, may be NULL */
    int nextra;
} dj_compress_machines;

/* Every classifier's label on n images of h x w: labels[i*K + k], K =
 * count(m) (the generator's first, then the extras). */
int dj_compress_machines_count(const dj_compress_machines *m);
int dj_compress_classify(const dj_compress_machines *m, const uint8_t *rgb, int n, int h, int w, int32_t *labels);

/* --------------------------------------------------------- jnd-alloc */

/* jnd-alloc's predictor: per classifier k, a logistic regression of "the
 * decoded image keeps k's label of x" on dj_compress_alloc_count(C_k)
 * features (dj_compress_alloc_features). Distortion terms of the decoded
 * image: log(mse), log(cmse), over, log(bpp), where mse is the mean squared
 * error in levels (each log of the value + 1e-3; bpp's of max(bpp, 1e-3)),
 * cmse the same weighted per pixel by the JND's merged CAM c, over the
 * share of values with |decoded - x| > s*b_jnd and bpp the header-free bits
 * per pixel. The image's tolerance, from the JND generation
 * (dj_jnd_image_result): lm_k = log of classifier k's margin p1 - p2 on x
 * (clamped to [1e-4, 1]), hm_k = its label's margin on the JND image
 * x_hat = x + e, in [-1, 1], and k's log-probabilities of x's classes.
 * The features: 1, the four distortion terms, lm_k, min_j lm_j, the four
 * terms times lm_k, hm_k, min_j hm_j, the four terms times hm_k (the first
 * DJ_ALLOC_BASE_FEATURES); then, for a classifier of C_k <=
 * DJ_JND_RESULT_CLASSES classes, max(log p_k(j | x), -12) for each class j,
 * and log(mse) and log(bpp) times "k's label of x is j" for each j (3 C_k
 * more). Why these: the labels that coding flips belong to images near a
 * decision boundary, whatever the distortion, and how much of its margin
 * an image keeps at its JND says how near; what the image is (its class
 * and the classes it could be mistaken for) says how fast coarse coding
 * pushes it across (docs/compression.md, "jnd-alloc"). */
#define DJ_ALLOC_BASE_FEATURES 17
#define DJ_ALLOC_MAX_FEATURES (DJ_ALLOC_BASE_FEATURES + 3 * DJ_JND_RESULT_CLASSES)
#define DJ_ALLOC_DISTORTION 4 /* mse, cmse, over, bpp */

struct dj_compress_calibration {
    int codec;                 /* DJ_CODEC_* it was fitted for             */
    int classifiers;           /* K, the generator's classifiers            */
    char tags[DJ_JND_MAX_CLASSIFIERS][80]; /* their tags, checked at use     */
    int classes[DJ_JND_MAX_CLASSIFIERS];   /* C_k: k's class count, or 0 when
                                  it has more than DJ_JND_RESULT_CLASSES (then
                                  k's features are the base ones only)       */
    double strength;           /* s it was fitted with (over uses s*b)      */
    int images;                /* training images                           */
    long samples;              /* image x ladder quality pairs              */
    double kept;               /* share of labels the samples kept          */
    double loss[DJ_JND_MAX_CLASSIFIERS]; /* mean log loss after the fit     */
    double w[DJ_JND_MAX_CLASSIFIERS][DJ_ALLOC_MAX_FEATURES]; /* the first
                                  dj_compress_alloc_count(classes[k]) used  */
};

/* The distortion terms of one decoded candidate of an h x w image: d[0]
 * mse, d[1] cmse (cam: h*w, may be NULL = uniform 1), d[2] over (budget:
 * s*b, h*w*3 levels), d[3] bpp from payload bytes. */
void dj_compress_alloc_distortion(const uint8_t *x, const uint8_t *decoded, const float *budget, const float *cam,
                                  int h, int w, size_t payload, double d[DJ_ALLOC_DISTORTION]);
/* C_k for a classifier of `classes` classes: classes when it is at most
 * DJ_JND_RESULT_CLASSES (a result keeps them all), else 0. */
int dj_compress_alloc_classes(int classes);
/* The number of features of a classifier with C_k = classes. */
int dj_compress_alloc_count(int classes);
/* Classifier k's feature vector (dj_compress_alloc_count(C) values, C =
 * dj_compress_alloc_classes(r->classes[k])) from the distortion terms and
 * what the JND generation measured on the image (r; K classifiers). */
void dj_compress_alloc_features(const double d[DJ_ALLOC_DISTORTION], const dj_jnd_image_result *r, int K, int k,
                                double phi[DJ_ALLOC_MAX_FEATURES]);
/* The predicted share of the K classifiers' labels kept (mean over k). */
double dj_compress_alloc_predict(const dj_compress_calibration *cal, const double d[DJ_ALLOC_DISTORTION],
                                 const dj_jnd_image_result *r);
/* The price of one bpp at grid quality q: 10^(-q/40) (q 100: 0.0032, the
 * finest; q 10: 0.56, the coarsest usable). */
double dj_compress_alloc_lambda(int quality);
/* The candidate l in 0..n-1 maximising p[l] - lambda * bpp[l]; ties go to
 * the cheaper. */
int dj_compress_alloc_pick(const double *p, const double *bpp, int n, double lambda);

/* Fit cal->w from n samples: d (n x DJ_ALLOC_DISTORTION), img (n pointers:
 * the JND result of each sample's image; many samples share one), kept
 * (n x K, 1 when the decoded image kept k's label). L2-regularised (1e-3)
 * logistic regression by Newton's method, 50 steps; sets w, classifiers,
 * classes (from img[0]), samples, kept and loss. DJ_EINVAL for n < 2, a
 * sample with non-finite terms or images of different class counts. */
int dj_compress_alloc_fit(long n, int K, const double *d, const dj_jnd_image_result *const *img,
                          const uint8_t *kept, dj_compress_calibration *cal);

/* A calibration as a JSON file (format "dmvjnd-alloc-calibration", version
 * 2; written atomically) and back. Reading checks every field: a missing
 * or wrong one is DJ_EFORMAT naming the file and the field. */
int dj_compress_calibration_write(const dj_compress_calibration *cal, const char *path);
int dj_compress_calibration_read(const char *path, dj_compress_calibration *cal);
/* The calibration file beside a model: "<model without .safetensors>.alloc-<codec>.json". */
int dj_compress_calibration_path(const char *model_path, int codec, char *out, size_t cap);
/* DJ_EINVAL naming the difference when cal was not fitted for this codec,
 * these classifiers (count and tags) and strength. */
int dj_compress_calibration_check(const dj_compress_calibration *cal, int codec, const dj_jnd_generator *gen,
                                  double strength);

/* --------------------------------------------------------- evaluation */

/* The images: n of them, each its own size. */
typedef struct dj_compress_images {
    int n;
    const uint8_t *const *rgb; /* rgb[i]: h[i]*w[i]*3 bytes            */
    const int *h, *w;
    const int32_t *truth;      /* ground-truth labels, or NULL          */
} dj_compress_images;

/* One method at one quality over all images. */
typedef struct dj_compress_point {
    char method[DJ_COMPRESS_NAME_MAX];
    int quality;         /* grid quality; 0 for guard                       */
    int images;
    double bpp;          /* 8 * sum(payload) / sum(pixels): entropy-coded bytes */
    double file_bpp;     /* 8 * sum(file size) / sum(pixels)                */
    double rca_mean;     /* mean over the four of RCA                       */
    double rca[DJ_JND_MAX_CLASSIFIERS];
    double extra_rca_mean; /* NaN without extras                            */
    double extra_rca[DJ_COMPRESS_MAX_EXTRA];
    double accuracy;     /* mean over the four of accuracy vs truth; NaN without truth */
    double psnr_db;      /* mean of per-image PSNR (dB, identical = DJ_JND_PSNR_MAX) */
    double psnr_mse_db;  /* PSNR of the mean MSE over all images              */
    double mean_q;       /* mean quality the images were coded at            */
    int fallback;        /* guard: images no candidate kept (coded at 100)    */
    int feedback;        /* guard: images coded with error feedback at 100    */
    int lossless;        /* guard, WebP: images coded lossless (counted in bpp) */
} dj_compress_point;

/* A method's summary against plain. NaN = not defined (no overlap, a single
 * point, out of range). */
typedef struct dj_compress_summary {
    char method[DJ_COMPRESS_NAME_MAX];
    double bd_rate;        /* on (bpp, rca_mean), negative = fewer bits       */
    double bd_rate_extra;  /* on (bpp, extra_rca_mean)                        */
    double saving95, saving98; /* 1 - rate_m(r) / rate_plain(r), r = RCA 0.95/0.98 */
} dj_compress_summary;

typedef struct dj_compress_result {
    int codec;
    double strength;
    int npoints;
    dj_compress_point *points; /* method-major, grid order                  */
    int nsummary;
    dj_compress_summary *summary; /* one per method other than plain and guard */
    int classifiers, extras;
    char tags[DJ_JND_MAX_CLASSIFIERS + DJ_COMPRESS_MAX_EXTRA][80];
    int images;
    double mean_jnd_budget, mean_hvs_budget; /* levels, before s              */
    /* guard vs plain: plain's rate at RCA 0.99 (PCHIP on plain's points; NaN
     * when out of range) and the lowest grid quality whose RCA >= 0.99 (0: none) */
    double plain_rate_at_99;
    int plain_q_99;
    double plain_bpp_q_99;
    double gen_seconds, code_seconds;
} dj_compress_result;

/* Called after each coded image of each point (the CLI saves files and the
 * montage's decoded images). point is filled as far as known (method,
 * quality). Return non-zero (a DJ_E* code) to stop. */
typedef int (*dj_compress_coded_fn)(const dj_compress_point *point, int image, int coded_quality, const dj_coded *c,
                                    const uint8_t *decoded, int h, int w, void *user);
/* done/total work units (image codings), images per second, ETA seconds. */
typedef void (*dj_compress_progress_fn)(const char *stage, long done, long total, double rate, double eta,
                                        void *user);

/* The whole measurement: JND generated once per image (in batches of
 * cfg->batch), every method at every grid quality (guard once), labels of
 * the originals and of every decoded image, rates, PSNR, BD-rates and
 * savings. methods: names (dj_compress_method_find); plain must be among
 * them for the summaries. res is freed with dj_compress_result_free. */
int dj_compress_evaluate(const dj_compress_config *cfg, const dj_compress_machines *machines,
                         const dj_compress_images *im, const char *const *methods, int nmethods, const int *grid,
                         int ngrid, dj_compress_coded_fn on_coded, dj_compress_progress_fn on_progress, void *user,
                         dj_compress_result *res);
void dj_compress_result_free(dj_compress_result *res);

/* Fit jnd-alloc's calibration on im (training images, not those it will be
 * measured on): JND and margins once per image, every image plain-coded at
 * every ladder quality of cfg (multiples of cfg->ladder_step, and 98 and
 * 100), its distortion terms, and whether each of the generator's
 * classifiers keeps its label (the extras are not used); then
 * dj_compress_alloc_fit. cal also gets codec, tags, strength and images. */
int dj_compress_calibrate(const dj_compress_config *cfg, const dj_compress_machines *machines,
                          const dj_compress_images *im, dj_compress_progress_fn on_progress, void *user,
                          dj_compress_calibration *cal);

/* BD-rates and savings of every method against plain (called by
 * dj_compress_evaluate; exposed for tests). */
int dj_compress_summarise(dj_compress_result *res);

/* --------------------------------------------------------- report */

/* results.csv (one row per point), report.md and report.json as text
 * (malloc'ed). extra (may be NULL) is a JSON object text of run facts
 * (command, wall time, peak RSS) copied into report.json under "run". */
int dj_compress_csv(const dj_compress_result *res, char **text);
int dj_compress_markdown(const dj_compress_result *res, const char *command, char **text);
int dj_compress_json(const dj_compress_result *res, double wall_s, size_t peak_rss, char **text);

/* A montage PNG: rows of panels (each h x w RGB), zoomed, gaps white. */
int dj_compress_montage_write(const char *path, const uint8_t *const *panels, int rows, int cols, int h, int w,
                              int zoom);

#ifdef __cplusplus
}
#endif

#endif
