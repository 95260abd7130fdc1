/* Internals shared by src/models/{weights,checkpoint}.c: a checkpoint is a
 * weights file with more tensors and metadata, so both go through the same
 * writer setup and the same validate-then-copy loader. */
#ifndef DMVJND_WEIGHTS_IMPL_H
#define DMVJND_WEIGHTS_IMPL_H

#include "dmvjnd/weights.h"
#include "dmvjnd/dmvjnd.h"

/* Metadata keys the library sets itself; callers may not pass them. */
extern const char *const dj_weights_reserved_keys[];

/* Check g is usable for save/load: finalized, and (load) not frozen. */
int dj_weights_check_graph(const dj_graph *g, const char *path, int for_load);

/* Add every parameter/buffer of g as F32 and one I64 scalar
 * "<bn>.num_batches_tracked" per BN layer. Data is borrowed from g. */
int dj_weights_add_tensors(dj_st_writer *w, const dj_graph *g);

/* format, format_version, arch, dmvjnd_version. */
int dj_weights_set_base_meta(dj_st_writer *w, const char *path, const char *format, const char *arch);
/* The caller's pairs, refusing reserved keys and NULL strings. */
int dj_weights_set_user_meta(dj_st_writer *w, const char *path, const dj_kv *meta, int nmeta);

/* Validate that f can be loaded into g without copying anything:
 *   - "format"/"format_version" (if the file is ours, a version we read);
 *   - "arch" against `arch` (when arch is given; a file without "arch" is
 *     an error only when require_arch);
 *   - every parameter present as F32 with g's shape;
 *   - no tensor the graph does not have, except num_batches_tracked of the
 *     graph's BN layers and tensors whose name starts with "optim." (the
 *     checkpoint loader validates those itself).
 * NaN/Inf are not looked for here: the loaders open files with
 * DJ_ST_CHECK_FINITE (or call dj_st_check_finite), which covers every F32
 * tensor, optimiser state included, in one pass. */
int dj_weights_validate(const dj_graph *g, const dj_st_file *f, const char *arch, int require_arch);

/* Copy every parameter from a validated file into g (cannot fail). */
void dj_weights_copy(dj_graph *g, const dj_st_file *f);

/* What messages call the graph: arch if given, else a generic phrase. */
const char *dj_weights_arch_label(const dj_st_file *f, const char *arch);

#endif
