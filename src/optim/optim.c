/* The optimiser object: validation, the state allocation, checkpoint access
 * and the dispatch of dj_optim_step to sgd.c / adam.c. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "optim/optim_impl.h"

dj_optim_config dj_optim_defaults(int kind) {
    dj_optim_config c;
    memset(&c, 0, sizeof c);
    c.kind = kind;
    c.beta1 = 0.9;
    c.beta2 = 0.999;
    c.eps = 1e-8;
    /* torch.optim.AdamW is the only one whose default decay is not 0. */
    c.weight_decay = kind == DJ_OPTIM_ADAMW ? 1e-2 : 0.0;
    return c;
}

static const char *const kind_names[] = {"sgd", "adam", "adamw"};

int dj_optim_kind_from_name(const char *name, int *kind) {
    for (int k = 0; name && k < 3; k++) {
        if (strcmp(name, kind_names[k]) == 0) {
            *kind = k;
            return DJ_OK;
        }
    }
    return dj_error(DJ_EINVAL, "unknown optimiser \"%s\" (expected sgd, adam or adamw)", name ? name : "(null)");
}

const char *dj_optim_kind_name(int kind) { return kind >= 0 && kind < 3 ? kind_names[kind] : "?"; }

/* The same range checks torch.optim's constructors make, so a config that
 * PyTorch refuses is refused here too. isfinite() also rejects NaN. */
static int check_config(const dj_optim_config *c) {
    if (c->kind < DJ_OPTIM_SGD || c->kind > DJ_OPTIM_ADAMW)
        return dj_error(DJ_EINVAL, "optimiser kind %d is not sgd, adam or adamw", c->kind);
    const char *k = kind_names[c->kind];
    if (!isfinite(c->weight_decay) || c->weight_decay < 0)
        return dj_error(DJ_EINVAL, "%s: weight_decay %g must be finite and >= 0", k, c->weight_decay);
    if (c->kind == DJ_OPTIM_SGD) {
        if (!isfinite(c->momentum) || c->momentum < 0)
            return dj_error(DJ_EINVAL, "sgd: momentum %g must be finite and >= 0", c->momentum);
        if (!isfinite(c->dampening) || c->dampening < 0 || c->dampening > 1)
            return dj_error(DJ_EINVAL, "sgd: dampening %g must be in [0, 1]", c->dampening);
        if (c->nesterov && (c->momentum <= 0 || c->dampening != 0))
            return dj_error(DJ_EINVAL, "sgd: nesterov needs momentum > 0 and dampening 0 (got %g, %g)",
                            c->momentum, c->dampening);
    } else {
        if (!(c->beta1 >= 0 && c->beta1 < 1))
            return dj_error(DJ_EINVAL, "%s: beta1 %g must be in [0, 1)", k, c->beta1);
        if (!(c->beta2 >= 0 && c->beta2 < 1))
            return dj_error(DJ_EINVAL, "%s: beta2 %g must be in [0, 1)", k, c->beta2);
        if (!isfinite(c->eps) || c->eps < 0) return dj_error(DJ_EINVAL, "%s: eps %g must be finite and >= 0", k, c->eps);
    }
    return DJ_OK;
}

int dj_optim_create(dj_optim **out, const dj_optim_config *cfg, const dj_param_ref *params, size_t count) {
    if (!out || !cfg) return dj_error(DJ_EINVAL, "dj_optim_create: out and cfg must not be NULL");
    *out = NULL;
    int rc = check_config(cfg);
    if (rc) return rc;
    if (count > 0 && !params) return dj_error(DJ_EINVAL, "dj_optim_create: %zu params but a NULL list", count);
    size_t numel = 0;
    for (size_t i = 0; i < count; i++) {
        const dj_param_ref *p = &params[i];
        if (!p->w || !p->g || p->n == 0)
            return dj_error(DJ_EINVAL, "dj_optim_create: param %zu has a NULL pointer or n = 0", i);
        if (p->n > SIZE_MAX / 2 / sizeof(float) - numel)
            return dj_error(DJ_EINVAL, "dj_optim_create: params total more than SIZE_MAX bytes");
        numel += p->n;
    }
    int slots = cfg->kind == DJ_OPTIM_SGD ? (cfg->momentum != 0 ? 1 : 0) : 2;

    dj_optim *o = calloc(1, sizeof *o);
    if (!o) return dj_error(DJ_ENOMEM, "cannot allocate the optimiser");
    o->cfg = *cfg;
    o->count = count;
    o->numel = numel;
    o->slots = slots;
    if (count > 0) {
        o->params = malloc(count * sizeof *o->params);
        if (!o->params) goto nomem;
        memcpy(o->params, params, count * sizeof *o->params);
    }
    if (slots > 0 && numel > 0) {
        /* numel <= SIZE_MAX/2/sizeof(float) was checked above, slots <= 2 */
        o->state = dj_calloc((size_t)slots * numel * sizeof(float));
        if (!o->state) goto nomem;
    }
    *out = o;
    return DJ_OK;
nomem:
    dj_optim_destroy(o);
    return dj_error(DJ_ENOMEM, "cannot allocate %s state for %zu parameters", kind_names[cfg->kind], numel);
}

void dj_optim_destroy(dj_optim *o) {
    if (!o) return;
    dj_free(o->state);
    free(o->params);
    free(o);
}

int dj_optim_step(dj_optim *o, float lr) {
    if (!o) return dj_error(DJ_EINVAL, "dj_optim_step: NULL optimiser");
    if (!isfinite(lr) || lr < 0) return dj_error(DJ_EINVAL, "dj_optim_step: learning rate %g must be finite and >= 0", lr);
    if (o->cfg.kind == DJ_OPTIM_SGD)
        dj_sgd_step(o, lr);
    else
        dj_adam_step(o, lr);
    o->step++;
    return DJ_OK;
}

void dj_optim_state(dj_optim *o, float **data, size_t *count) {
    if (data) *data = o->state;
    if (count) *count = o->state ? (size_t)o->slots * o->numel : 0;
}

int dj_optim_state_slots(const dj_optim *o) { return o->slots; }

const char *dj_optim_state_slot_name(const dj_optim *o, int slot) {
    if (slot < 0 || slot >= o->slots) return NULL;
    if (o->cfg.kind == DJ_OPTIM_SGD) return "momentum_buffer";
    return slot == 0 ? "exp_avg" : "exp_avg_sq";
}

size_t dj_optim_numel(const dj_optim *o) { return o->numel; }

int64_t dj_optim_step_count(const dj_optim *o) { return o->step; }

int dj_optim_set_step_count(dj_optim *o, int64_t t) {
    if (t < 0) return dj_error(DJ_EINVAL, "dj_optim_set_step_count: step %lld must be >= 0", (long long)t);
    o->step = t;
    return DJ_OK;
}

void dj_optim_reset(dj_optim *o) {
    if (o->state) memset(o->state, 0, (size_t)o->slots * o->numel * sizeof(float));
    o->step = 0;
}

const dj_optim_config *dj_optim_get_config(const dj_optim *o) { return &o->cfg; }

size_t dj_optim_count(const dj_optim *o) { return o ? o->count : 0; }
const dj_param_ref *dj_optim_params(const dj_optim *o) { return o ? o->params : NULL; }
