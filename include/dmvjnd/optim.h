/*
 * Optimisers (SGD, Adam, AdamW) and learning-rate schedules.
 *
 * Parameters. A model keeps all its parameters in ONE float allocation and
 * their gradients in another with the same layout. The optimiser is given a
 * list of dj_param_ref, one per parameter tensor, each pointing into those
 * two allocations. It copies the list (the caller's array may go away), but
 * the memory the refs point to must stay put for the optimiser's lifetime.
 * A tensor that is frozen is simply left out of the list. `decay` says
 * whether weight decay applies to the tensor: the usual choice is 1 for conv
 * and linear weights, 0 for biases and batch-norm gamma/beta (PyTorch does
 * this with two param groups; one flag per tensor says the same thing).
 *
 * Semantics follow PyTorch 1.13's torch.optim exactly (single-tensor code
 * path), including the order of floating-point operations, so a run can be
 * compared with PyTorch to about 1e-6 relative (tests/test_optim.c does,
 * against numbers from tools/torch/optim_reference.py):
 *
 *   SGD    g' = g + wd*w                               (coupled decay)
 *          buf = g'                          first step
 *          buf = momentum*buf + (1-dampening)*g'  later steps
 *          u = g' + momentum*buf (nesterov) or buf (momentum > 0) or g'
 *          w = w - lr*u
 *   Adam   g' = g + wd*w                               (coupled L2, as torch.optim.Adam)
 *          m = b1*m + (1-b1)*g';  v = b2*v + (1-b2)*g'^2
 *          w = w - (lr/bc1) * m / (sqrt(v)/sqrt(bc2) + eps),  bcK = 1 - bK^t
 *   AdamW  w = w*(1 - lr*wd)                           (decoupled)
 *          then Adam with g' = g
 *
 * t is the step number counted from 1 (the step being taken); per-step
 * scalars (1-b1, bc1, lr*wd, ...) are computed in double and rounded to
 * float as PyTorch does, the element-wise arithmetic is in float.
 * Not supported: amsgrad, maximize, Nesterov-Adam. Every listed tensor is
 * updated at every step (PyTorch skips tensors whose .grad is None; a zero
 * gradient still moves a tensor through momentum and decay in both). Steps
 * do not look for NaN gradients: check with dj_all_finite before stepping.
 *
 * State. The optimiser's state (SGD's momentum buffer, Adam's m and v) lives
 * in ONE allocation of slots*numel floats: slot s (see
 * dj_optim_state_slot_name) holds, for each parameter tensor in list order,
 * its n floats, concatenated. So when the param list walks the parameter
 * allocation in order without gaps, each slot is laid out exactly like the
 * parameters. Together with the step count this is everything a checkpoint
 * needs: save the floats from dj_optim_state and dj_optim_step_count; to
 * resume, create an optimiser with the same config and param list, copy the
 * floats back through the same pointer and call dj_optim_set_step_count.
 * The resumed run is bit-identical to an uninterrupted one.
 *
 * dj_optim_step never allocates. Its loops run OpenMP-parallel over each
 * tensor larger than DJ_OPTIM_PARALLEL_MIN floats (smaller ones run on the
 * calling thread: a parallel region costs more than updating them). Every
 * element is updated independently, so results do not depend on the number
 * of threads.
 *
 * Schedules. The learning rate is an argument of each step; a schedule is a
 * pure function lr(step) of a dj_schedule config (below), kept apart from the
 * optimiser so the caller can log, plot or override it.
 */
#ifndef DMVJND_OPTIM_H
#define DMVJND_OPTIM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Tensors with more floats than this are updated by all threads. */
#define DJ_OPTIM_PARALLEL_MIN 32768

/* One parameter tensor: n values at w (updated in place), n gradients at g. */
typedef struct dj_param_ref {
    float *w;
    const float *g;
    size_t n;
    int decay; /* 1: weight decay applies to this tensor; 0: exempt */
} dj_param_ref;

enum dj_optim_kind { DJ_OPTIM_SGD = 0, DJ_OPTIM_ADAM = 1, DJ_OPTIM_ADAMW = 2 };

/* Hyperparameters, in double like PyTorch's Python floats. Fields that do not
 * apply to `kind` are ignored. */
typedef struct dj_optim_config {
    int kind;            /* enum dj_optim_kind                                  */
    double weight_decay; /* >= 0; SGD and Adam: coupled (L2), AdamW: decoupled  */
    double momentum;     /* SGD: >= 0; 0 = plain SGD (no state)                 */
    double dampening;    /* SGD: in [0, 1]; must be 0 with nesterov              */
    int nesterov;        /* SGD: 1 = Nesterov momentum (needs momentum > 0)     */
    double beta1, beta2; /* Adam/AdamW: in [0, 1)                               */
    double eps;          /* Adam/AdamW: >= 0                                    */
} dj_optim_config;

/* PyTorch's defaults for `kind`: SGD momentum 0, dampening 0, no nesterov,
 * weight decay 0; Adam betas (0.9, 0.999), eps 1e-8, weight decay 0; AdamW
 * the same with weight decay 1e-2. */
dj_optim_config dj_optim_defaults(int kind);

/* "sgd", "adam" or "adamw" (case-sensitive) -> *kind; else DJ_EINVAL. */
int dj_optim_kind_from_name(const char *name, int *kind);
/* "sgd", "adam", "adamw" or "?" */
const char *dj_optim_kind_name(int kind);

typedef struct dj_optim dj_optim; /* opaque */

/* Validates cfg (DJ_EINVAL naming the bad field) and the refs (non-NULL
 * pointers, n > 0), copies both, and allocates the zeroed state. count may
 * be 0 (nothing to train: step does nothing). Step count starts at 0. */
int dj_optim_create(dj_optim **out, const dj_optim_config *cfg, const dj_param_ref *params, size_t count);
void dj_optim_destroy(dj_optim *o);

/* One update of every parameter from its current gradient with learning
 * rate lr (finite, >= 0, else DJ_EINVAL and nothing changes); increments
 * the step count. Gradients are read, never modified or zeroed. */
int dj_optim_step(dj_optim *o, float lr);

/* The state floats (read them to save, write them to restore). *count is
 * dj_optim_state_slots(o) * dj_optim_numel(o); it is 0 (and *data NULL) for
 * SGD without momentum. */
void dj_optim_state(dj_optim *o, float **data, size_t *count);
/* Number of state slots: SGD 1 (0 without momentum), Adam/AdamW 2. */
int dj_optim_state_slots(const dj_optim *o);
/* PyTorch's state_dict key of a slot: "momentum_buffer", "exp_avg",
 * "exp_avg_sq"; NULL for a slot that does not exist. */
const char *dj_optim_state_slot_name(const dj_optim *o, int slot);
/* Sum of n over the param list: the floats in one slot. */
size_t dj_optim_numel(const dj_optim *o);

/* Steps taken so far (PyTorch's state "step"). Adam's bias correction uses
 * it; SGD uses it only to know that the first step must initialise the
 * momentum buffer. set returns DJ_EINVAL for t < 0. */
int64_t dj_optim_step_count(const dj_optim *o);
int dj_optim_set_step_count(dj_optim *o, int64_t t);

/* Zero the state and the step count: a fresh optimiser on the same params. */
void dj_optim_reset(dj_optim *o);

const dj_optim_config *dj_optim_get_config(const dj_optim *o);
/* The tensors it updates, in the order given to dj_optim_create (its own
 * copy of the list; checkpoints check it against a graph's parameters). */
size_t dj_optim_count(const dj_optim *o);
const dj_param_ref *dj_optim_params(const dj_optim *o);

/* ------------------------------------------------------------ schedules */

enum dj_sched_kind {
    DJ_SCHED_CONSTANT = 0, /* base_lr                                            */
    DJ_SCHED_STEP = 1,     /* base_lr * gamma^(number of milestones <= step)     */
    DJ_SCHED_COSINE = 2,   /* min_lr + (base_lr-min_lr)*(1+cos(pi*step/T))/2     */
    DJ_SCHED_ONECYCLE = 3  /* PyTorch OneCycleLR, cos annealing, two phases      */
};

#define DJ_SCHED_MAX_MILESTONES 16

/* Every count here is in optimiser steps (the caller converts epochs:
 * dj_schedule_parse does it with steps_per_unit). Step numbers start at 0:
 * lr(k) is the rate for the k-th call of dj_optim_step, which is what a
 * PyTorch scheduler reports after k calls of scheduler.step().
 *
 * CONSTANT: base_lr at every step.
 * STEP: PyTorch's MultiStepLR(milestones, gamma); at step == milestone the
 *   rate is already multiplied.
 * COSINE: PyTorch's CosineAnnealingLR(T_max = total_steps, eta_min = min_lr).
 *   Past total_steps it stays at min_lr (PyTorch's would climb back up).
 * ONECYCLE: PyTorch's OneCycleLR(max_lr = base_lr, total_steps, pct_start,
 *   div_factor, final_div_factor, anneal_strategy='cos', three_phase=False).
 *   From base_lr/div_factor it rises along a half cosine to base_lr at step
 *   pct_start*total_steps - 1, then falls along a half cosine to
 *   base_lr/div_factor/final_div_factor at step total_steps - 1 and stays
 *   there. (Only the learning rate: OneCycleLR's momentum cycling is not
 *   part of this; compare with cycle_momentum=False.)
 * Warm-up (CONSTANT, STEP, COSINE only; ONECYCLE has its own): for
 *   step < warmup_steps the rate above is multiplied by
 *       warmup_start + (1 - warmup_start) * step / warmup_steps
 *   The main schedule keeps counting from step 0, so milestones and
 *   total_steps are absolute. This is PyTorch's ChainedScheduler([LinearLR(
 *   start_factor=warmup_start, total_iters=warmup_steps), main]) for STEP,
 *   and for COSINE with min_lr = 0 (with min_lr > 0 PyTorch's recursive
 *   chaining is not a plain product). With warmup_start = 0 (the parser's
 *   default), step 0 has lr 0. A "linear warm-up, then cosine decay"
 *   one-cycle is COSINE with a warm-up. */
typedef struct dj_schedule {
    int kind; /* enum dj_sched_kind */
    double base_lr;
    int64_t total_steps; /* COSINE, ONECYCLE: >= 1; ignored otherwise */
    /* STEP */
    int n_milestones; /* 0..DJ_SCHED_MAX_MILESTONES */
    int64_t milestones[DJ_SCHED_MAX_MILESTONES]; /* strictly increasing, >= 0 */
    double gamma;                                /* > 0 */
    /* COSINE */
    double min_lr; /* >= 0 */
    /* ONECYCLE */
    double pct_start;        /* in (0, 1), with pct_start*total_steps > 1 */
    double div_factor;       /* > 0 */
    double final_div_factor; /* > 0 */
    /* warm-up */
    int64_t warmup_steps; /* >= 0; 0 = none */
    double warmup_start;  /* in [0, 1] */
} dj_schedule;

/* A schedule of `kind` with PyTorch's defaults: gamma 0.1, no milestones,
 * min_lr 0, pct_start 0.3, div_factor 25, final_div_factor 1e4, no warm-up. */
dj_schedule dj_schedule_defaults(int kind, double base_lr, int64_t total_steps);

/* 0, or DJ_EINVAL with a message naming the field at fault. */
int dj_schedule_check(const dj_schedule *s);

/* Learning rate for step `step` (negative steps count as 0). s must pass
 * dj_schedule_check; otherwise the result is meaningless (but never NaN
 * from a division by zero). */
double dj_schedule_lr(const dj_schedule *s, int64_t step);

/* Parse a schedule from text (the CLI's --lr-schedule). Grammar, no spaces:
 *
 *   spec     := schedule [ "+" warmup ]
 *   schedule := "constant"
 *             | "step:" MILESTONE { "," MILESTONE } [ ":" GAMMA ]
 *             | "cosine" [ ":" MIN_LR ]
 *             | "onecycle" [ ":" PCT_START [ ":" DIV_FACTOR [ ":" FINAL_DIV_FACTOR ] ] ]
 *   warmup   := "warmup:" LENGTH [ ":" START_FACTOR ]
 *
 * MILESTONE and LENGTH are non-negative integers in units of steps_per_unit
 * steps (pass the steps per epoch to write them in epochs, 1 for steps);
 * the other fields are decimal numbers (strtod syntax, e.g. 1e-5). Fields
 * left out take dj_schedule_defaults' values (GAMMA 0.1, MIN_LR 0, ...;
 * START_FACTOR 0). Examples:
 *   "cosine", "cosine:1e-5+warmup:5", "step:30,60:0.1", "step:100,150+warmup:2:0.1",
 *   "onecycle:0.3", "onecycle:0.25:10:100".
 * base_lr is the peak rate (max_lr for onecycle); total_steps the length of
 * training in steps (needed by cosine and onecycle). On failure *s is left
 * unchanged and DJ_EINVAL is returned with a message quoting the spec. */
int dj_schedule_parse(dj_schedule *s, const char *spec, double base_lr, int64_t total_steps,
                      int64_t steps_per_unit);

#ifdef __cplusplus
}
#endif

#endif
