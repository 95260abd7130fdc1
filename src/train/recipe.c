/* Recipe pairs in one caller buffer: see dmvjnd/train_job.h. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "dmvjnd/optim.h"
#include "dmvjnd/train_job.h"

void dj_recipe_add(dj_recipe *r, const char *key, const char *fmt, ...) {
    if (r->overflow || r->n >= r->max) {
        r->overflow = 1;
        return;
    }
    size_t klen = strlen(key) + 1;
    if (r->used + klen >= r->size) {
        r->overflow = 1;
        return;
    }
    char *k = r->buf + r->used;
    memcpy(k, key, klen);
    r->used += klen;
    va_list ap;
    va_start(ap, fmt);
    int len = vsnprintf(r->buf + r->used, r->size - r->used, fmt, ap);
    va_end(ap);
    if (len < 0 || (size_t)len + 1 > r->size - r->used) {
        r->overflow = 1;
        return;
    }
    r->kv[r->n].key = k;
    r->kv[r->n].value = r->buf + r->used;
    r->n++;
    r->used += (size_t)len + 1;
}

void dj_train_job_recipe_common(dj_recipe *r, const dj_train_job_spec *s, const dj_optim_config *o) {
    const char *pre = s->key_prefix ? s->key_prefix : "train.";
    char key[96];
#define KEY(name) (snprintf(key, sizeof key, "%s%s", pre, name), key)
    dj_recipe_add(r, KEY("epochs"), "%d", s->epochs);
    dj_recipe_add(r, KEY("batch"), "%d", s->batch);
    dj_recipe_add(r, KEY("drop_last"), "%d", s->drop_last ? 1 : 0);
    dj_recipe_add(r, KEY("optimizer"), "%s", dj_optim_kind_name(o->kind));
    dj_recipe_add(r, KEY("lr"), "%.17g", s->lr);
    if (o->kind == DJ_OPTIM_SGD) {
        dj_recipe_add(r, KEY("momentum"), "%.17g", o->momentum);
        dj_recipe_add(r, KEY("dampening"), "%.17g", o->dampening);
        dj_recipe_add(r, KEY("nesterov"), "%d", o->nesterov ? 1 : 0);
    } else {
        dj_recipe_add(r, KEY("beta1"), "%.17g", o->beta1);
        dj_recipe_add(r, KEY("beta2"), "%.17g", o->beta2);
        dj_recipe_add(r, KEY("eps"), "%.17g", o->eps);
    }
    dj_recipe_add(r, KEY("weight_decay"), "%.17g", o->weight_decay);
    dj_recipe_add(r, KEY("schedule"), "%s", s->schedule && *s->schedule ? s->schedule : "constant");
#undef KEY
}
