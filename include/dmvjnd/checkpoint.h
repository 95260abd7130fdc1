/*
 * Weights files (models shipped to users) and training checkpoints (resume).
 *
 * Both are safetensors files (dmvjnd/safetensors.h) written atomically: a
 * crash or a full disk during a save leaves the previous file intact.
 *
 * Weights file
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
 * Checkpoint file = a weights file (format "dmvjnd-checkpoint") plus
 *   - per optimiser state slot s (dj_optim_state_slot_name: "momentum_buffer",
 *     "exp_avg", "exp_avg_sq") and trainable parameter P, an F32 tensor
 *     "optim.<s>.<P>" shaped like P;
 *   - metadata "epoch", "step", "optim_step" (decimal integers), "optim"
 *     ("sgd", "adam", "adamw") and "rng" (dj_rng_to_hex), then the caller's
 *     pairs (the training recipe as text, so a resume can compare it).
 * A checkpoint is also a valid weights file: dj_weights_load reads its
 * parameters and ignores the "optim.*" tensors.
 *
 * The optimiser must be created with dj_graph_make_optim (or, equivalently,
 * from the graph's trainable parameters in dj_graph_param order, each with
 * its decay flag). The optimiser's state is one array laid out slot-major
 * over its param list; only with that list does the state's k-th tensor
 * belong to the k-th trainable parameter, which is what gives the
 * "optim.<slot>.<param>" tensors their names. Save and load check it and
 * refuse (DJ_EINVAL) an optimiser built on another list.
 *
 * Loading is all-or-nothing: the whole file is validated against the graph
 * (and optimiser) first; on any error the graph, optimiser, rng and the
 * epoch/step outputs are unchanged. Errors name the file and the tensor:
 *   DJ_ENOTFOUND  a parameter (or optimiser state tensor) is missing
 *   DJ_EINVAL     a tensor has the wrong shape; the graph is frozen; the
 *                 optimiser is not laid out over the graph's parameters
 *   DJ_EFORMAT    a tensor has the wrong dtype; the file holds a tensor the
 *                 model does not have ("tensor 'x' is not a parameter of
 *                 resnet20": a different architecture); "arch" or "optim"
 *                 differs from the expected one; newer format_version;
 *                 a checkpoint field is missing or malformed; and every
 *                 malformation dj_st_open reports (truncated file, ...)
 *   DJ_ENUMERIC   a tensor holds NaN or Inf
 *   DJ_EIO        the file cannot be read
 *
 * Frozen graphs: dj_graph_freeze copies and folds the weights at freeze
 * time, so weights loaded afterwards would never be used. Load before
 * freezing; loading into a frozen graph fails with DJ_EINVAL. (Saving a
 * frozen graph is fine: its parameters are the unfolded originals.)
 */
#ifndef DMVJND_CHECKPOINT_H
#define DMVJND_CHECKPOINT_H

#include <stddef.h>
#include <stdint.h>

#include "dmvjnd/graph.h"
#include "dmvjnd/optim.h"
#include "dmvjnd/rng.h"
#include "dmvjnd/safetensors.h"

#ifdef __cplusplus
extern "C" {
#endif

#define DJ_WEIGHTS_FORMAT "dmvjnd-weights"
#define DJ_CHECKPOINT_FORMAT "dmvjnd-checkpoint"
/* format_version this library writes; it reads this one and older. */
#define DJ_WEIGHTS_FORMAT_VERSION 1

/* A metadata pair (both UTF-8 strings). */
typedef struct dj_kv {
    const char *key;
    const char *value;
} dj_kv;

/* ---------------------------------------------------------------- weights */

/* Write every parameter and buffer of `g` to `path` (atomically), with the
 * metadata described above. `arch` is required (non-empty). `meta` holds
 * nmeta caller pairs (meta may be NULL when nmeta is 0); a caller key may
 * not be one of the reserved keys (format, format_version, arch,
 * dmvjnd_version, epoch, step, optim_step, optim, rng): DJ_EINVAL. */
int dj_weights_save(const dj_graph *g, const char *path, const char *arch, const dj_kv *meta, int nmeta);

/* Load every parameter and buffer of `g` from `path` (a weights file, a
 * checkpoint, or a PyTorch state_dict saved as safetensors). When `arch` is
 * not NULL and the file has "arch" metadata, they must be equal (a file
 * without it, e.g. exported by PyTorch, is judged by its tensors alone: the
 * names, shapes and the absence of extra tensors identify the architecture).
 * Ignored: "<bn>.num_batches_tracked" I64 scalars of the graph's BN layers
 * and "optim.*" tensors. All-or-nothing; see the top of this file. */
int dj_weights_load(dj_graph *g, const char *path, const char *arch);

/* The same from a file already open (e.g. after printing its metadata).
 * NaN/Inf are checked here even if `f` was opened without
 * DJ_ST_CHECK_FINITE. */
int dj_weights_load_file(dj_graph *g, const dj_st_file *f, const char *arch);

/* Copy metadata value `key` of the file at `path` into buf[size]
 * (NUL-terminated). DJ_ENOTFOUND if the key is absent, DJ_EINVAL if the
 * value (plus NUL) does not fit, else what dj_st_open returns. To list all
 * pairs, open the file with dj_st_open and use dj_st_metadata_at. */
int dj_weights_read_meta(const char *path, const char *key, char *buf, size_t size);

/* ------------------------------------------------------------ checkpoints */

/* An optimiser over the trainable parameters of `g` in dj_graph_param
 * order, each with its decay flag: the layout checkpoints need. The graph
 * must be finalized and outlive the optimiser. */
int dj_graph_make_optim(dj_graph *g, const dj_optim_config *cfg, dj_optim **out);

/* Save weights + optimiser state + the training position. `opt` must have
 * been made by dj_graph_make_optim(g, ...) (checked). `rng` may be NULL (no
 * "rng" is written; loading into a non-NULL rng then fails). epoch and step
 * must be >= 0; they are the caller's counters (e.g. epochs completed and
 * optimiser steps taken), returned as they were by dj_checkpoint_load.
 * Caller pairs as for dj_weights_save. */
int dj_checkpoint_save(const char *path, const dj_graph *g, const char *arch, dj_optim *opt, const dj_rng *rng,
                       int64_t epoch, int64_t step, const dj_kv *meta, int nmeta);

/* Restore what dj_checkpoint_save wrote: parameters and buffers into `g`,
 * state and step count into `opt` (made by dj_graph_make_optim(g, cfg) with
 * a cfg of the same kind; its other hyperparameters are the caller's
 * business, e.g. by comparing the recipe in the metadata), the generator
 * into `rng` (may be NULL: not restored), and *epoch, *step (either may be
 * NULL). `arch` as for dj_weights_load, except that a checkpoint must carry
 * "arch" when arch is given. The file's format must be "dmvjnd-checkpoint"
 * (a plain weights file has no optimiser state: DJ_EFORMAT). An optimiser
 * of another kind, or SGD with momentum against one without, is refused
 * with DJ_EFORMAT. All-or-nothing. */
int dj_checkpoint_load(const char *path, dj_graph *g, const char *arch, dj_optim *opt, dj_rng *rng,
                       int64_t *epoch, int64_t *step);

/* Refuse, before a training run starts, output folders whose file system is
 * too full for what the run will write (dj_check_free_space): the weights
 * file (every parameter and buffer of g, float32) at weights_path, and at
 * checkpoint_path a checkpoint (the same plus up to two optimiser tensors per
 * parameter) twice over, since the old one stays until the new one replaces
 * it; 1 MB of margin each (metadata, CSV). NULL paths are skipped. */
int dj_check_training_space(const dj_graph *g, const char *weights_path, const char *checkpoint_path);

#ifdef __cplusplus
}
#endif

#endif
