/* The compute backend: the only module that calls oneDNN (src/backend/dnnl.c).
 * Everything else in the library reaches oneDNN through these functions and
 * through the dj_conv_* API of include/dmvjnd/nn.h, so that moving to
 * oneDNN v3 (whose C API differs) or to another backend changes one file. */
#ifndef DMVJND_BACKEND_DNNL_H
#define DMVJND_BACKEND_DNNL_H

#include <stddef.h>

/* Strict mode (the default): a primitive for which oneDNN picks a reference
 * ("ref:") implementation is refused with DJ_EBACKEND, because such kernels
 * run 100-1400x slower and would silently turn hours into weeks. Tests on
 * deliberately awkward shapes switch it off.
 *
 * Process-wide on purpose, and internal (not in include/dmvjnd): it guards
 * the one oneDNN engine every graph shares, primitives are created deep in
 * the layers with no graph or job at hand, and the only callers are tests.
 * Set it while no other thread runs the library. */
void dj_backend_set_strict(int strict);
int dj_backend_strict(void);

#endif
