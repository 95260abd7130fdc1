/*
 * Training the DMV-JND network (Jin et al., Sec. IV-V), the trained model
 * file, and generation with it.
 *
 * Sections:
 *   1. classifiers     loading the frozen classifiers (Loss1, CAMs, labels)
 *   2. cache           their labels and merged CAM maps of every image
 *   3. training step   one optimiser step of the E-D (also what `bench` times)
 *   4. training job    dj_jnd_train: presets, CSV, checkpoints, resume, plots
 *   5. model file      the trained E-D and its settings; generation
 *
 * The data flow of one step (paper Fig. 3; dmvjnd/jnd.h has the pieces):
 *   x (normalised, flipped or not)  --cache-->  c (merged CAM of x), l_k (label of classifier k on x)
 *   e = E-D([x, c]);  x_hat = x + e (clamped to the valid range when clip is on)
 *   Loss1 = mean_k CE(S_k(x_hat), l_k);  Loss2, Loss3 from e and c
 *   Loss  = Loss1 + alpha Loss2 + beta Loss3, minimised over the E-D's weights only.
 * Classifiers are frozen (BN folded): their backward gives d/dx_hat only.
 * Since c and l_k depend on x alone and the classifiers never change, they
 * are computed once per image and flip, cached, and saved next to the
 * outputs (section 2). The choices are explained in docs/method.md
 * ("Training").
 */
#ifndef DMVJND_JND_TRAIN_H
#define DMVJND_JND_TRAIN_H

#include <stddef.h>
#include <stdint.h>

#include "dmvjnd/cifar10.h"
#include "dmvjnd/graph.h"
#include "dmvjnd/jnd.h"
#include "dmvjnd/optim.h"
#include "dmvjnd/train.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Most classifiers a job, a cache or a model file takes. */
#define DJ_JND_MAX_CLASSIFIERS 8

/* ============================================================ 1. classifiers */

/* Load `count` classifier weights files, each frozen (BN folded; backward
 * gives d/dx only), into out[0..count). build: NULL = dj_classifier_load
 * (the file's "arch" must be a registered model); otherwise the graph is
 * built with build(&g, arch, 10, rng) (tests use unregistered tiny nets).
 * Each must take 32x32x3 images, have 10 outputs and class activation maps
 * (dj_cam_find), and, when norm is not NULL, have been trained with that
 * normalisation (its "train.mean"/"train.std"): x_hat is fed to every
 * classifier in one normalised space. Errors name the file. On failure
 * nothing stays loaded. */
int dj_jnd_classifiers_load(dj_classifier *out, const char *const *paths, int count, dj_model_builder build,
                            const dj_jnd_norm *norm);
void dj_jnd_classifiers_free(dj_classifier *c, int count);

/* ==================================================================== 2. cache */

/* Labels and merged CAM maps of the frozen classifiers on every image of a
 * split, for each flip (flips = 2: f = 0 the image, f = 1 mirrored
 * left-right; flips = 1: the image only).
 *   cam[((i*flips + f)*H + y)*W + x] = round(c * 65535), c the merged map
 *     (dj_cam_merge of each classifier's dj_cam_compute) in [0, 1]: 16-bit
 *     fixed point, error <= 7.7e-6, half the memory of floats (50000 images
 *     x 2 flips = 210 MB instead of 420 MB);
 *   labels[(i*flips + f)*classifiers + k] = classifier k's prediction;
 *   margin[i*flips + f] = the margin of the image (dmvjnd/jnd.h, section 2).
 */
typedef struct dj_jnd_cache_split {
    int n, flips, classifiers, h, w;
    uint16_t *cam;
    int32_t *labels;
    float *margin; /* margin[i*flips + f]: dj_jnd_margin_update over the classifiers */
} dj_jnd_cache_split;

typedef struct dj_jnd_cache {
    dj_jnd_cache_split train; /* flips = 2 */
    dj_jnd_cache_split test;  /* flips = 1; n = 0 when not asked for */
} dj_jnd_cache;

/* Merged map of image i, flip f as floats (h*w values). */
void dj_jnd_cache_cam(const dj_jnd_cache_split *s, int i, int f, float *out);

/* Progress of a cache build (it takes minutes on the whole training set). */
typedef struct dj_jnd_cache_progress {
    const char *split;   /* "train" or "test"                          */
    int done, total;     /* image-flips computed and to compute         */
    double images_per_s; /* image-flips per second so far               */
    double eta_s;        /* seconds left for this split                 */
} dj_jnd_cache_progress;
typedef void (*dj_jnd_cache_progress_fn)(const dj_jnd_cache_progress *p, void *user);

/* Batch x (x->n = n, 32x32x3) from images idx[0..n) of ds, image k mirrored
 * left-right when flip[k] (flip may be NULL: none), normalised with norm:
 * torchvision's RandomHorizontalFlip then ToTensor + Normalize, bit for bit.
 * The training loop and the cache build their inputs with this. */
int dj_jnd_make_batch(const dj_cifar10 *ds, const int32_t *idx, const uint8_t *flip, int n, const dj_jnd_norm *norm,
                      dj_tensor *x);

/* Compute one split: every image of ds for `flips` flips, in batches of
 * `batch`, through the classifiers (cls[k].graph, frozen). progress may be
 * NULL. s is allocated here; free it with dj_jnd_cache_split_free. */
int dj_jnd_cache_compute(dj_jnd_cache_split *s, dj_classifier *cls, int count, const dj_cifar10 *ds, int flips,
                         const dj_jnd_norm *norm, int batch, dj_jnd_cache_progress_fn progress, void *user);

/* What a cache file must match to be reused: the classifier files' contents
 * (size and 64-bit FNV-1a hash of the bytes, in order), the normalisation,
 * and per split the number of images, their offset and a hash of their
 * pixels, and the flips. */
typedef struct dj_jnd_cache_request {
    const char *const *classifier_paths; /* files of cls, in the same order  */
    dj_classifier *cls;
    int count;
    dj_jnd_norm norm;
    const dj_cifar10 *train; /* flips 2; required                           */
    const dj_cifar10 *test;  /* flips 1; NULL or n = 0: none                */
    int batch;               /* images per forward while computing (>= 1)   */
} dj_jnd_cache_request;

/* Fill *c: splits found in `path` with a matching key are loaded (bit for
 * bit what was computed), the others are computed and the file rewritten
 * (atomically) with every split. path NULL: compute, write nothing.
 * *reused (may be NULL) = bit 0: train loaded, bit 1: test loaded. A file
 * that exists but is not a readable cache is replaced, with a warning. */
int dj_jnd_cache_get(dj_jnd_cache *c, const char *path, const dj_jnd_cache_request *req,
                     dj_jnd_cache_progress_fn progress, void *user, int *reused);
void dj_jnd_cache_free(dj_jnd_cache *c);
void dj_jnd_cache_split_free(dj_jnd_cache_split *s);

/* The 64-bit FNV-1a hash of a file's bytes and its size (cache keys). */
int dj_file_fnv1a64(const char *path, uint64_t *hash, uint64_t *size);

/* ============================================================ 3. training step */

/* One optimiser step of the E-D on a batch. */
typedef struct dj_jnd_step_config {
    float alpha, beta;         /* Eq. 7's weights                                      */
    dj_jnd_loss_config loss;   /* e_unit, normalisation (also the clip range), q       */
    int clip;                  /* 1: x_hat clamped to the valid range (Loss1 sees it)  */
    float changed_weight;      /* Loss1's extra weight on the labels x_hat changes: a */
                               /* classifier's cross-entropy on an image whose label */
                               /* x_hat changes counts 1 + changed_weight times (0:  */
                               /* the paper's Eq. 9; docs/method.md)                 */
} dj_jnd_step_config;

/* What one step measured (means over the batch). */
typedef struct dj_jnd_step_stats {
    int n;                                  /* images                                 */
    double loss, loss1, loss2, loss3;       /* Eq. 7, 9, 13, 15                        */
    double n_target, n0;                    /* N and N0 of Loss2 (e_unit)              */
    int correct[DJ_JND_MAX_CLASSIFIERS];    /* x_hat labelled as x, per classifier     */
    double psnr;                            /* mean per-image PSNR of the 8-bit x_hat  */
    double mean_abs_e;                      /* mean |e| in 8-bit levels                */
} dj_jnd_step_stats;

typedef struct dj_jnd_step dj_jnd_step; /* opaque: buffers for batches up to max_batch */

/* ed: the E-D (training graph); cls[0..count): frozen classifiers; all must
 * outlive the step. */
int dj_jnd_step_create(dj_jnd_step **out, dj_graph *ed, dj_graph *const *cls, int count, int max_batch,
                       const dj_jnd_step_config *cfg);
void dj_jnd_step_destroy(dj_jnd_step *s);

/* x: n x H x W x 3 normalised; c: n x H x W x 1; margin: n floats
 * (dj_jnd_margin_update) when the E-D takes the margin input (5 channels),
 * NULL when it takes the paper's 4; labels[i*count + k] = classifier k's
 * label on x_i. Forward (E-D in training mode), Loss,
 * backward, then opt (made with dj_graph_make_optim(ed, ...)) steps with
 * lr. opt NULL: gradients only (the E-D's parameter gradients are zeroed
 * first and hold dLoss/dw afterwards). rng: passed to the E-D's forward.
 * A non-finite loss returns DJ_ENUMERIC before any parameter changes. */
int dj_jnd_step_run(dj_jnd_step *s, const dj_tensor *x, const dj_tensor *c, const float *margin,
                    const int32_t *labels, dj_optim *opt, float lr, dj_rng *rng, dj_jnd_step_stats *st);

/* The same quantities without training, E-D in inference mode (running BN
 * statistics), from one E-D forward: *stored (may be NULL) with the
 * classifiers seeing the 8-bit image a user would store (x + e clamped,
 * rounded to 8 bits, normalised again); *as_float (may be NULL) with the
 * float x_hat of training (clipped per cfg). PSNR is of the 8-bit image in
 * both. */
int dj_jnd_step_eval(dj_jnd_step *s, const dj_tensor *x, const dj_tensor *c, const float *margin,
                     const int32_t *labels, dj_jnd_step_stats *stored, dj_jnd_step_stats *as_float);

/* ============================================================ 4. training job */

typedef struct dj_jnd_train_config {
    /* classifiers */
    const char *const *classifiers; /* weights files; 1..DJ_JND_MAX_CLASSIFIERS        */
    int nclassifiers;
    dj_model_builder classifier_build; /* NULL: registered models only (tests: tiny nets) */
    const char *data_dir;           /* CIFAR-10; NULL = dj_cifar10_default_dir()       */
    /* the network and the loss */
    dj_jnd_ed_config ed;            /* width, LeakyReLU slope                          */
    float e_init;                   /* scale of the last conv's initial weights and   */
                                    /* bias (1 = PyTorch's default; small = e ~ 0 at  */
                                    /* the start, x_hat ~ x)                          */
    const char *init_path;          /* NULL, or a model file whose E-D weights the run */
                                    /* starts from (fine-tuning; a 4-input model can   */
                                    /* start a margin-input E-D: its fifth input       */
                                    /* channel starts at 0). Width and slope must match */
    float alpha, beta;              /* Eq. 7                                           */
    float changed_weight;           /* dj_jnd_step_config.changed_weight (0 = Eq. 9)   */
    int e_unit;                     /* enum dj_jnd_unit                                */
    int clip;                       /* x_hat clamped to the valid range                */
    dj_jnd_norm norm;               /* the classifiers' normalisation                  */
    /* optimisation */
    int epochs, batch, drop_last;
    dj_optim_config optim;          /* paper: Adam (coupled L2 weight decay 1e-3)      */
    double lr;
    const char *schedule;           /* dj_schedule_parse spec, lengths in epochs       */
    float flip_p;                   /* horizontal flip probability                     */
    uint64_t seed;
    int threads;                    /* > 0: dj_set_num_threads first                   */
    int train_limit;                /* first N training images; 0 = all 50000          */
    int eval_limit;                 /* test records 0..N-1 evaluated per epoch; 0 = none */
    int stop_after;                 /* > 0: return after this epoch (resume later)     */
    /* files (NULL = not written) */
    const char *out_path;           /* the model file (section 5)                      */
    const char *checkpoint_path;
    int resume;                     /* continue from checkpoint_path if it exists      */
    const char *log_path;           /* CSV, one row per epoch                          */
    const char *plot_dir;           /* PNG trend plots, rewritten every epoch          */
    const char *cache_path;         /* labels + CAM cache; NULL: next to out_path or   */
                                    /* checkpoint_path ("jnd-cache.safetensors"), or   */
                                    /* in memory only when neither is given            */
    int no_cache_file;              /* 1: never read or write a cache file             */
} dj_jnd_train_config;

/* Presets: "paper" (Sec. V-A: Adam lr 1e-5, weight decay 1e-3, batch 50,
 * flip 0.5, alpha = beta = 1, width 1, e_unit normalized, clip, 200 epochs)
 * and "fast" (docs/method.md, "Training"). Classifier paths: the four
 * default files (models/alexnet_v1.0.safetensors, ...). DJ_EINVAL for another
 * name. */
int dj_jnd_train_preset(dj_jnd_train_config *cfg, const char *name);

/* The default classifier files (NULL-terminated). */
const char *const *dj_jnd_default_classifiers(void);

/* Progress inside an epoch, after every step. */
typedef struct dj_jnd_train_progress {
    int epoch, epochs, batch_index, batches;
    int64_t step, total_steps;
    double loss, loss1, loss2, loss3; /* means of the epoch so far        */
    double rca;                       /* mean over classifiers, so far    */
    double psnr, mean_abs_e;          /* epoch so far                     */
    double lr, images_per_s, eta_s;
} dj_jnd_train_progress;

/* One set of metrics (training: over the epoch's batches; test: after it). */
typedef struct dj_jnd_metrics {
    int images;
    double loss, loss1, loss2, loss3, n_target, n0;
    double rca[DJ_JND_MAX_CLASSIFIERS], rca_mean; /* fractions in [0, 1]          */
    double psnr, mean_abs_e;
} dj_jnd_metrics;

typedef struct dj_jnd_epoch_stats {
    int epoch, epochs, classifiers;
    int64_t step;
    double lr_first, lr_last;
    dj_jnd_metrics train;      /* training mode, as trained (float x_hat)              */
    dj_jnd_metrics test;       /* inference mode, the stored 8-bit x_hat; images 0     */
                               /* when eval_limit is 0                                 */
    dj_jnd_metrics test_float; /* the same e, unquantised float x_hat (clip per cfg)   */
    double images_per_s, epoch_s, wall_s;
} dj_jnd_epoch_stats;

struct dj_jnd_train_result;

typedef struct dj_jnd_train_callbacks {
    void (*on_cache)(const dj_jnd_cache_progress *p, void *user);
    void (*on_start)(const struct dj_jnd_train_result *r, void *user);
    void (*on_step)(const dj_jnd_train_progress *p, void *user);
    void (*on_epoch)(const dj_jnd_epoch_stats *s, void *user);
    void *user;
} dj_jnd_train_callbacks;

typedef struct dj_jnd_train_result {
    int start_epoch, epochs_done, completed, diverged;
    int64_t steps;
    int cache_reused;            /* bit 0 train, bit 1 test: loaded from the cache file */
    char cache_path[1024];       /* the cache file used; "" if none (memory only)      */
    char tags[DJ_JND_MAX_CLASSIFIERS][32]; /* classifier tags (arch, made unique)       */
    int classifiers;
    dj_jnd_epoch_stats last;     /* the last epoch's metrics                           */
    double wall_s;
} dj_jnd_train_result;

/* Run the job (as dj_train_classifier does for classifiers: checks the
 * outputs first, then loads data and classifiers, the cache, resumes, trains,
 * writes CSV + checkpoint + plots after every epoch and the model file at
 * the end). Errors as dj_train_classifier's; DJ_ENUMERIC when the loss or a
 * parameter becomes NaN/Inf (res->diverged). cb and res may be NULL. */
int dj_jnd_train(const dj_jnd_train_config *cfg, const dj_jnd_train_callbacks *cb, dj_jnd_train_result *res);

/* The CSV header for these classifier tags (buf of size bytes). Columns:
 * epoch, step, lr_first, lr_last, then for "train" and "test":
 * <s>_loss, <s>_loss1, <s>_loss2, <s>_loss3, <s>_rca_<tag> per classifier,
 * <s>_rca_mean, <s>_psnr, <s>_mean_abs_e, <s>_n, <s>_n0; then
 * test_float_rca_mean, test_float_psnr, test_images, images_per_s, epoch_s,
 * wall_s. RCAs are fractions, PSNR in dB (mean of per-image, 8-bit images),
 * mean_abs_e in 8-bit levels. */
int dj_jnd_csv_header(char *buf, size_t size, const char tags[][32], int count);

/* Write the trend plots of a CSV log written by dj_jnd_train (the paper's
 * Fig. 5-7) into dir: rca.png (mean and per classifier, training and test),
 * loss.png (Loss, Loss1, Loss2, Loss3; training solid, test dashed, one
 * panel each) and psnr.png. */
int dj_jnd_plot_csv(const char *csv_path, const char *dir);

/* ============================================================ 5. model file */

/* A trained DMV-JND model: the E-D (frozen: inference-mode BN folded) and
 * the settings it was trained with. Files are dj_weights_save files with
 * arch "jnd_ed" and metadata:
 *   jnd.width, jnd.slope      the E-D (dj_jnd_ed_config)
 *   jnd.input                 "x,cam" (the paper's; also when absent) or
 *                             "x,cam,margin" (margin_input)
 *   jnd.e_unit                "normalized" | "pixel01"
 *   jnd.clip                  "1" | "0": x_hat = clamp(x + e) or x + e
 *   jnd.alpha, jnd.beta       Eq. 7's weights
 *   jnd.classifiers           the classifier files, comma separated, as given
 *   jnd.input_h, jnd.input_w  the input size the E-D was built for (32, 32)
 *   norm.mean, norm.std       "a,b,c"
 * plus the recipe ("jnd.train.*") and final metrics ("jnd.final.*"). */
typedef struct dj_jnd_model {
    dj_graph *ed;                 /* frozen E-D, input h x w x 4 (5: margin input)   */
    dj_jnd_ed_config ed_cfg;
    int h, w;
    int e_unit, clip;
    float alpha, beta;
    dj_jnd_norm norm;
    int nclassifiers;
    char *classifiers[DJ_JND_MAX_CLASSIFIERS]; /* file names as stored (owned)      */
} dj_jnd_model;

/* Load a model file: builds the E-D with the stored width/slope, loads the
 * weights, freezes it. Errors name the file (DJ_EFORMAT for a file that is
 * not a JND model or has malformed settings). On failure *m is zeroed. */
int dj_jnd_model_load(const char *path, dj_jnd_model *m);
void dj_jnd_model_free(dj_jnd_model *m);

/* Settings a model file records (the training job fills it; others may
 * save an E-D of their own). */
typedef struct dj_jnd_model_info {
    dj_jnd_ed_config ed_cfg;
    int h, w, e_unit, clip;
    float alpha, beta;
    dj_jnd_norm norm;
    const char *const *classifiers;
    int nclassifiers;
} dj_jnd_model_info;

/* Save ed (training or frozen graph) with info's settings and extra pairs. */
int dj_jnd_model_save(const dj_graph *ed, const char *path, const dj_jnd_model_info *info, const dj_kv *extra,
                      int nextra);

/* Generation for a batch: c = merged CAM of cls[0..count) on x (each
 * classifier's map for its own prediction, dj_cam_compute + dj_cam_merge),
 * then e = E-D([x, c]) (or E-D([x, c, margin]) for a margin-input model,
 * the margin from the same classifiers) in inference mode. x: n x h x w x 3 normalised with
 * m->norm; e: n x h x w x 3 (caller's memory). cam (may be NULL): n*h*w
 * floats, receives c. labels (may be NULL): n*count, labels[i*count + k] =
 * classifier k's prediction on x_i. The distorted image is then
 * dj_jnd_apply(x, e, m->clip ? &m->norm : NULL, x_hat). */
int dj_jnd_generate(dj_jnd_model *m, dj_graph *const *cls, int count, const dj_tensor *x, dj_tensor *e, float *cam,
                    int32_t *labels);

/* "normalized" / "pixel01" <-> enum dj_jnd_unit; DJ_EINVAL for another name. */
int dj_jnd_unit_from_name(const char *name, int *unit);
const char *dj_jnd_unit_name(int unit);

#ifdef __cplusplus
}
#endif

#endif
