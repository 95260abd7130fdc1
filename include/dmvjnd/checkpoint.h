/*
 * Training checkpoints (resume): a weights file (dmvjnd/weights.h) of format
 * "dmvjnd-checkpoint" plus
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
 * Loading is all-or-nothing, as for weights files: on any error the graph,
 * optimiser, rng and the epoch/step outputs are unchanged. Besides the
 * weights' errors: DJ_ENOTFOUND for a missing optimiser state tensor,
 * DJ_EINVAL for an optimiser not laid out over the graph's parameters,
 * DJ_EFORMAT for another "optim" or a missing or malformed checkpoint field.
 */
#ifndef DMVJND_CHECKPOINT_H
#define DMVJND_CHECKPOINT_H

#include <stddef.h>
#include <stdint.h>

#include "dmvjnd/graph.h"
#include "dmvjnd/optim.h"
#include "dmvjnd/rng.h"
#include "dmvjnd/safetensors.h"
#include "dmvjnd/weights.h"

#ifdef __cplusplus
extern "C" {
#endif

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
