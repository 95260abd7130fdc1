/* Shared by the CLI commands (classify, cam, generate, eval): repeated options (--model
 * F --model G, --png A B C), the images to run on (a CIFAR-10 slice or PNG
 * files) and the classifiers (weights files). */
#ifndef DMVJND_CLI_INPUTS_H
#define DMVJND_CLI_INPUTS_H

#include <stdint.h>

#include "dmvjnd/tensor.h"
#include "dmvjnd/classifier.h"

/* Removes every "--<name> V" and "--<name>=V" from argv[1..*argc) (argv[0]
 * stays) and appends the values to *vals (malloc'ed, count in *n; free the
 * array, not the strings). With multi = 1, "--<name> A B C" takes every
 * following argument up to the next one starting with "--". Returns EXIT_OK
 * or EXIT_USAGE (a message printed) for an option without a value. */
int cli_take_repeated(const char *cmd, int *argc, char **argv, const char *name, int multi, const char ***vals,
                      int *n);

/* The images: n images of 32x32 RGB, uint8 NHWC. */
typedef struct cli_images {
    int n;
    uint8_t *pixels;     /* n*32*32*3                                       */
    int32_t *labels;     /* dataset labels (CIFAR-10), NULL for PNG files    */
    int *index;          /* record index in the split, or position in --png  */
    const char **files;  /* PNG paths (borrowed from argv), NULL for CIFAR   */
    char split[8];       /* "train"/"test" or ""                            */
    int offset;
} cli_images;

/* Loads a CIFAR-10 slice (dir NULL = default folder) or PNG files (each must
 * be 32x32; any colour type is converted to RGB). Returns a library status;
 * messages name the file. */
int cli_images_load_cifar(cli_images *im, const char *dir, const char *split, int offset, int limit);
int cli_images_load_png(cli_images *im, const char *const *files, int count);
void cli_images_free(cli_images *im);

/* Images [start, start + x->n) normalised with mean/std into x (32x32x3). */
int cli_images_batch(const cli_images *im, int start, const float mean[3], const float std[3], dj_tensor *x);

/* The classifiers: loaded and frozen; tags from dj_classifier_tags (the
 * arch, made unique with "_2", "_3", ... when several files hold one). */
typedef struct cli_models {
    int n;
    dj_classifier *m;
    const char **paths;
    char (*tag)[DJ_CLASSIFIER_TAG_SIZE];
} cli_models;

int cli_models_load(cli_models *ms, const char *const *paths, int count);
void cli_models_free(cli_models *ms);

/* Creates an output folder if missing (one level), then checks that it can
 * be written. Returns a library status; the message names the folder. */
int cli_prepare_out_dir(const char *dir);

/* CIFAR-10's class names (fixed by the data set). */
extern const char *const cli_class_names[10];

#endif
