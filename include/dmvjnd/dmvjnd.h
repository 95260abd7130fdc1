/*
 * dmvjnd: Just Noticeable Difference for Deep Machine Vision.
 *
 * Umbrella header of the public C API: the core (dmvjnd/core.h: errors,
 * log, threads) and the engine (tensors, generator, layers, optimisers,
 * file formats). Every public symbol is prefixed `dj_` (types `dj_*`,
 * macros `DJ_*`). Layers and what a program needs: docs/architecture.md.
 *
 * Conventions that hold across the whole library:
 *   - Functions that can fail return 0 on success or a negative DJ_E* code.
 *     The code says what kind of failure; dj_last_error() gives a message
 *     that names the file, tensor or argument at fault.
 *   - Nothing in the library prints to stdout or calls exit(); diagnostics go
 *     through the log hook (see dj_set_log).
 *   - Images and activations are float32 tensors in NHWC order (dj_tensor).
 *   - Parameters use PyTorch's layouts and state_dict names, so weights move
 *     between dmvjnd and PyTorch unchanged.
 */
#ifndef DMVJND_DMVJND_H
#define DMVJND_DMVJND_H

#include "dmvjnd/core.h"
#include "dmvjnd/tensor.h"
#include "dmvjnd/rng.h"
#include "dmvjnd/nn.h"
#include "dmvjnd/optim.h"
#include "dmvjnd/io.h"

#endif
