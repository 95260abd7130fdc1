/*
 * Weights files: the parameters of a model as shipped to users, loaded by
 * every inference path (classifiers, the JND model). Checkpoints, the
 * training kind of the same file, are in dmvjnd/checkpoint.h.
 *
 * A safetensors file (dmvjnd/safetensors.h) written atomically: a crash or a
 * full disk during a save leaves the previous file intact.
 *   - one F32 tensor per graph parameter and buffer (dj_graph_param list),
 *     named by its PyTorch state_dict key and shaped as in PyTorch;
 *   - for every batch-norm layer (a parameter "<prefix>.running_mean") an
 *     I64 scalar "<prefix>.num_batches_tracked" = 0, so that PyTorch's
 *     load_state_dict(strict=True) accepts the file unchanged. (The graph
 *     does not count batches; the count only matters to PyTorch's BN with
 *     momentum=None, which dmvjnd does not have.) Loading ignores it;
 *   - metadata: "format" = "dmvjnd-weights", "format_version" = "1",
 *     "arch" (e.g. "resnet20"), "dmvjnd_version", then the caller's pairs
 *     (training recipe, accuracy, ...).
 *
 * Loaders take the file first, then what is read into, then options:
 * dj_weights_load(path, g, arch), dj_checkpoint_load(path, g, arch, ...),
 * dj_jnd_model_load(path, &model), dj_classifier_load(path, freeze, &c).
 *
 * Loading is all-or-nothing: the whole file is validated against the graph
 * first; on any error the graph is unchanged. Errors name the file and the
 * tensor:
 *   DJ_ENOTFOUND  a parameter is missing
 *   DJ_EINVAL     a tensor has the wrong shape; the graph is frozen
 *   DJ_EFORMAT    a tensor has the wrong dtype; the file holds a tensor the
 *                 model does not have ("tensor 'x' is not a parameter of
 *                 resnet20": a different architecture); "arch" differs from
 *                 the expected one; newer format_version; and every
 *                 malformation dj_st_open reports (truncated file, ...)
 *   DJ_ENUMERIC   a tensor holds NaN or Inf
 *   DJ_EIO        the file cannot be read
 *
 * Frozen graphs: dj_graph_freeze copies and folds the weights at freeze
 * time, so weights loaded afterwards would never be used. Load before
 * freezing; loading into a frozen graph fails with DJ_EINVAL. (Saving a
 * frozen graph is fine: its parameters are the unfolded originals.)
 */
#ifndef DMVJND_WEIGHTS_H
#define DMVJND_WEIGHTS_H

#include <stddef.h>

#include "dmvjnd/graph.h"
#include "dmvjnd/safetensors.h"

#ifdef __cplusplus
extern "C" {
#endif

#define DJ_WEIGHTS_FORMAT "dmvjnd-weights"
/* A checkpoint (dmvjnd/checkpoint.h) is a weights file of this format. */
#define DJ_CHECKPOINT_FORMAT "dmvjnd-checkpoint"
/* format_version this library writes; it reads this one and older. */
#define DJ_WEIGHTS_FORMAT_VERSION 1

/* A metadata pair (both UTF-8 strings). */
typedef struct dj_kv {
    const char *key;
    const char *value;
} dj_kv;

/* Write every parameter and buffer of `g` to `path` (atomically), with the
 * metadata described above. `arch` is required (non-empty). `meta` holds
 * nmeta caller pairs (meta may be NULL when nmeta is 0); a caller key may
 * not be one of the reserved keys (format, format_version, arch,
 * dmvjnd_version, epoch, step, optim_step, optim, rng): DJ_EINVAL. */
int dj_weights_save(const char *path, const dj_graph *g, const char *arch, const dj_kv *meta, int nmeta);

/* Load every parameter and buffer of `g` from `path` (a weights file, a
 * checkpoint, or a PyTorch state_dict saved as safetensors). When `arch` is
 * not NULL and the file has "arch" metadata, they must be equal (a file
 * without it, e.g. exported by PyTorch, is judged by its tensors alone: the
 * names, shapes and the absence of extra tensors identify the architecture).
 * Ignored: "<bn>.num_batches_tracked" I64 scalars of the graph's BN layers
 * and "optim.*" tensors. All-or-nothing; see the top of this file. */
int dj_weights_load(const char *path, dj_graph *g, const char *arch);

/* The same from a file already open (e.g. after printing its metadata).
 * NaN/Inf are checked here even if `f` was opened without
 * DJ_ST_CHECK_FINITE. */
int dj_weights_load_file(const dj_st_file *f, dj_graph *g, const char *arch);

/* Copy metadata value `key` of the file at `path` into buf[size]
 * (NUL-terminated). DJ_ENOTFOUND if the key is absent, DJ_EINVAL if the
 * value (plus NUL) does not fit, else what dj_st_open returns. To list all
 * pairs, open the file with dj_st_open and use dj_st_metadata_at. */
int dj_weights_read_meta(const char *path, const char *key, char *buf, size_t size);

#ifdef __cplusplus
}
#endif

#endif
