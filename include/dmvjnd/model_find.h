/*
 * Finding the shipped model files (models/jnd_v1.0.safetensors and the four
 * classifiers) by name, so that commands work from any folder without a
 * --model argument, both in a built source tree and after `make install`.
 *
 * Folders searched, in order (the first that holds the file wins):
 *   1. $DMVJND_MODELS, when set and not empty
 *   2. the installed folder, $(PREFIX)/share/dmvjnd/models, fixed at build
 *      time (dj_model_dir_installed)
 *   3. beside the running program: <exe>/../share/dmvjnd/models (an install
 *      tree moved elsewhere), then models/ in the program's folder and up to
 *      two folders above it (build/dmvjnd, build/tests/test_x in a source tree)
 *   4. ./models
 * docs/install.md describes the layout.
 */
#ifndef DMVJND_MODEL_FIND_H
#define DMVJND_MODEL_FIND_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* File names of the shipped models (versioned: a retrained model gets a new
 * name, so a figure always names the file that produced it). */
#define DJ_MODEL_JND "jnd_v1.0.safetensors"
#define DJ_MODEL_ALEXNET "alexnet_v1.0.safetensors"
#define DJ_MODEL_VGG11BN "vgg11bn_v1.0.safetensors"
#define DJ_MODEL_RESNET20 "resnet20_v1.0.safetensors"
#define DJ_MODEL_DENSENET40BC "densenet40bc_v1.0.safetensors"
#define DJ_MODEL_CLASSIFIERS 4

/* The four shipped classifiers' file names, in the order the JND model uses. */
extern const char *const dj_model_classifier_names[DJ_MODEL_CLASSIFIERS];

/* The folder `make install` puts the models in (compiled in). */
const char *dj_model_dir_installed(void);

/* Find the shipped model `file_name` (a plain file name, no '/') in the
 * folders above; writes its path (cap bytes at most, with the '\0') to path.
 * Errors: DJ_ENOTFOUND naming the file and every folder searched, DJ_EINVAL
 * for a name with '/', DJ_EIO when the path does not fit in cap. */
int dj_model_find(const char *file_name, char *path, size_t cap);

#ifdef __cplusplus
}
#endif

#endif
