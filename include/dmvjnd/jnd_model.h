/*
 * The trained DMV-JND model (Jin et al.) for inference: its file, the frozen
 * classifiers it was trained against, and generation of e for a batch. A
 * codec includes dmvjnd/jnd_generate.h (which includes this) and nothing
 * about training; training is dmvjnd/jnd_train.h.
 */
#ifndef DMVJND_JND_MODEL_H
#define DMVJND_JND_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "dmvjnd/classifier.h"
#include "dmvjnd/graph.h"
#include "dmvjnd/jnd.h"
#include "dmvjnd/tensor.h"
#include "dmvjnd/weights.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ============================================================ the classifiers */

/* Most classifiers a job, a cache or a model file takes. */
#define DJ_JND_MAX_CLASSIFIERS 8

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

/* ============================================================ the model file */

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
int dj_jnd_model_save(const char *path, const dj_graph *ed, const dj_jnd_model_info *info, const dj_kv *extra,
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
