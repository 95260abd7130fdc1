/* What the files of the JND training job share (src/jnd/train_*.c):
 *   train_config.c  presets, the checks of the JND fields, the job spec, the
 *                   recipe, where the cache file goes
 *   train_csv.c     the CSV log's header and rows
 *   train_job.c     dj_jnd_train: the trainer around src/train/job.c
 *   train_step.c    one step (its own API, dmvjnd/jnd_train.h) */
#ifndef DMVJND_JND_TRAIN_INTERNAL_H
#define DMVJND_JND_TRAIN_INTERNAL_H

#include <stddef.h>

#include "dmvjnd/jnd_train.h"
#include "dmvjnd/train_job.h"

#define DJ_JND_ED_ARCH "jnd_ed" /* the E-D's arch in checkpoints and model files */

/* The fields only JND training has (the job checks the shared ones). */
int dj_jnd_train_check(const dj_jnd_train_config *c);

/* The job's part of cfg; cache_path ("" for none) is one of its outputs.
 * The strings are cfg's and cache_path's. */
dj_train_job_spec dj_jnd_train_job_spec(const dj_jnd_train_config *cfg, const char *cache_path);

/* The cache file: cfg->cache_path, or jnd-cache.safetensors next to the
 * model file or the checkpoint, or "" (memory only). */
void dj_jnd_train_cache_path(const dj_jnd_train_config *cfg, char *buf, size_t size);

/* The recipe as "jnd.train.*" pairs (the classifier files with their sizes
 * and hashes, the network, the loss, the optimisation, the data). Returns
 * the number of pairs or an error. */
int dj_jnd_train_recipe(const dj_jnd_train_config *cfg, int train_images, dj_kv *kv, int max, char *buf,
                        size_t size);

/* One CSV row (dj_jnd_csv_header's columns) for K classifiers. */
int dj_jnd_csv_row(char *row, size_t size, const dj_jnd_epoch_stats *st, int K);

#endif
