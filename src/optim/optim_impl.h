/* Internals shared by src/optim/{optim,sgd,adam}.c: the optimiser object and
 * the per-algorithm step functions that optim.c dispatches to. */
#ifndef DMVJND_OPTIM_IMPL_H
#define DMVJND_OPTIM_IMPL_H

#include "dmvjnd/dmvjnd.h"

struct dj_optim {
    dj_optim_config cfg;
    dj_param_ref *params; /* private copy of the caller's list */
    size_t count;
    size_t numel; /* sum of params[i].n: floats per state slot */
    int slots;
    float *state; /* slots * numel floats; NULL when slots == 0 */
    int64_t step; /* steps taken so far */
};

/* One step with step count t = o->step + 1 (optim.c increments o->step
 * afterwards). lr has been validated. */
void dj_sgd_step(dj_optim *o, float lr);
void dj_adam_step(dj_optim *o, float lr); /* Adam and AdamW */

#endif
