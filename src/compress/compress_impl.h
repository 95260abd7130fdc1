/* What the compression files share inside the library. */
#ifndef DMVJND_COMPRESS_IMPL_H
#define DMVJND_COMPRESS_IMPL_H

#include "dmvjnd/compress.h"

/* Guard: for each image i, the coarsest ladder quality whose image coded
 * with `m` (jnd-rate's coding: suppression within s*b for JPEG) keeps every
 * checked label (the first `check` of each image's ref labels, K per image).
 * Starts at ladder index start[i]: where labels are kept it walks down until
 * a quality loses one (and takes the last that kept them), else up until one
 * keeps them; none does: 100, fallback[i] = 1. Each round codes and
 * classifies every image still searching in batches of cfg->batch. q[i]
 * gets the quality. */
int dj_compress_guard(const dj_compress_config *cfg, const dj_compress_machines *mach,
                      const dj_compress_images *im, const dj_compress_method *m, float *const *budget,
                      const int *ladder, int nl, const int *start, const int32_t *ref, int check, int *q,
                      uint8_t *fallback);

#endif
