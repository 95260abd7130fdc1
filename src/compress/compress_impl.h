/* What the compression files share inside the library. */
#ifndef DMVJND_COMPRESS_IMPL_H
#define DMVJND_COMPRESS_IMPL_H

#include "dmvjnd/compress.h"

/* Labels (K per image, labels[j*K + k]) of images idx[j] coded at quality
 * q[j] by the caller's method: how guard sees a candidate. */
typedef int (*dj_compress_labels_fn)(void *user, int n, const int *idx, const int *q, int32_t *labels);

/* Guard: for each image i, the coarsest quality whose image coded by
 * `labels_of` keeps every checked label (the first `check` of each image's
 * ref labels, K per image). ladder[0..nplain) are plain qualities, ascending;
 * ladder[nplain..nl) are extra candidates (guard's error-feedback and
 * lossless codings),
 * tried in order only when no plain rung keeps the labels.
 * Starts at ladder index start[i]: where labels are kept it walks down until
 * a quality loses one (and takes the last that kept them), else up until one
 * keeps them; nothing from the start up: down from below the start (the
 * first that keeps them), then the extras. None does: 100, fallback[i] = 1.
 * Each round asks labels_of for every image still searching at once. q[i]
 * gets the ladder value chosen. */
int dj_compress_guard(int n, int K, dj_compress_labels_fn labels_of, void *user, const int *ladder, int nplain,
                      int nl, const int *start, const int32_t *ref, int check, int *q, uint8_t *fallback);

/* s*b as the suppression and jnd-alloc's over-budget share take it
 * (malloc'ed; NULL when out of memory). */
float *dj_compress_scaled_budget(const float *b, size_t n, double s);

#endif
