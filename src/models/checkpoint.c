/* Training checkpoints: a weights file plus the optimiser's state, its step
 * count, the generator and the training position, restored all-or-nothing.
 * See dmvjnd/checkpoint.h for the format. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dmvjnd/checkpoint.h"
#include "dmvjnd/fileio.h"
#include "models/weights_impl.h"

int dj_graph_make_optim(dj_graph *g, const dj_optim_config *cfg, dj_optim **out) {
    if (!out) return dj_error(DJ_EINVAL, "dj_graph_make_optim: NULL output");
    *out = NULL;
    int rc = dj_weights_check_graph(g, "dj_graph_make_optim", 0);
    if (rc) return rc;
    int n = dj_graph_num_params(g);
    dj_param_ref *refs = malloc((size_t)(n > 0 ? n : 1) * sizeof *refs);
    if (!refs) return dj_error(DJ_ENOMEM, "dj_graph_make_optim: out of memory");
    size_t k = 0;
    for (int i = 0; i < n; i++) {
        const dj_param *p = dj_graph_param(g, i);
        if (!p->trainable) continue; /* BN running statistics are buffers */
        refs[k].w = p->data;
        refs[k].g = p->grad;
        refs[k].n = p->count;
        refs[k].decay = p->decay;
        k++;
    }
    rc = dj_optim_create(out, cfg, refs, k);
    free(refs);
    return rc;
}

/* The optimiser's k-th tensor must be the graph's k-th trainable parameter:
 * that is what lets the state be saved per parameter name. Comparing the
 * pointers catches an optimiser made from another graph, another order or
 * a subset, which would otherwise restore momenta onto the wrong weights. */
static int check_layout(const dj_graph *g, const dj_optim *o, const char *path) {
    if (!o) return dj_error(DJ_EINVAL, "%s: NULL optimiser", path);
    size_t k = 0, count = dj_optim_count(o);
    const dj_param_ref *refs = dj_optim_params(o);
    int n = dj_graph_num_params(g);
    for (int i = 0; i < n; i++) {
        const dj_param *p = dj_graph_param(g, i);
        if (!p->trainable) continue;
        if (k >= count || refs[k].w != p->data || refs[k].n != p->count)
            return dj_error(DJ_EINVAL,
                            "%s: the optimiser's tensor %zu is not the graph's trainable parameter '%s' "
                            "(create the optimiser with dj_graph_make_optim)",
                            path, k, p->name);
        k++;
    }
    if (k != count)
        return dj_error(DJ_EINVAL,
                        "%s: the optimiser has %zu tensors, the graph %zu trainable ones "
                        "(create the optimiser with dj_graph_make_optim)",
                        path, count, k);
    return DJ_OK;
}

/* "optim.<slot>.<param>", malloc'ed. */
static char *state_name(const char *slot, const char *param) {
    size_t len = strlen("optim.") + strlen(slot) + 1 + strlen(param) + 1;
    char *s = malloc(len);
    if (s) snprintf(s, len, "optim.%s.%s", slot, param);
    return s;
}

int dj_checkpoint_save(const char *path, const dj_graph *g, const char *arch, dj_optim *opt, const dj_rng *rng,
                       int64_t epoch, int64_t step, const dj_kv *meta, int nmeta) {
    if (!path) return dj_error(DJ_EINVAL, "dj_checkpoint_save: NULL path");
    int rc = dj_weights_check_graph(g, path, 0);
    if (rc) return rc;
    if ((rc = check_layout(g, opt, path))) return rc;
    if (epoch < 0 || step < 0)
        return dj_error(DJ_EINVAL, "%s: epoch %lld and step %lld must be >= 0", path, (long long)epoch,
                        (long long)step);
    char num[32], hex[65];
    dj_st_writer *w = NULL;
    if ((rc = dj_st_writer_new(&w))) return rc;
    if ((rc = dj_weights_set_base_meta(w, path, DJ_CHECKPOINT_FORMAT, arch))) goto out;
    snprintf(num, sizeof num, "%lld", (long long)epoch);
    if ((rc = dj_st_writer_set_metadata(w, "epoch", num))) goto out;
    snprintf(num, sizeof num, "%lld", (long long)step);
    if ((rc = dj_st_writer_set_metadata(w, "step", num))) goto out;
    snprintf(num, sizeof num, "%lld", (long long)dj_optim_step_count(opt));
    if ((rc = dj_st_writer_set_metadata(w, "optim_step", num))) goto out;
    if ((rc = dj_st_writer_set_metadata(w, "optim", dj_optim_kind_name(dj_optim_get_config(opt)->kind)))) goto out;
    if (rng) {
        dj_rng_to_hex(rng, hex);
        if ((rc = dj_st_writer_set_metadata(w, "rng", hex))) goto out;
    }
    if ((rc = dj_weights_set_user_meta(w, path, meta, nmeta))) goto out;
    if ((rc = dj_weights_add_tensors(w, g))) goto out;

    /* State slot s holds the trainable parameters' values back to back in
     * graph order (check_layout), so tensor k of slot s starts at
     * s*numel + (sum of the counts before it). */
    float *state;
    size_t nstate;
    dj_optim_state(opt, &state, &nstate);
    int slots = dj_optim_state_slots(opt);
    size_t numel = dj_optim_numel(opt);
    for (int s = 0; s < slots && nstate; s++) {
        size_t off = (size_t)s * numel;
        int n = dj_graph_num_params(g);
        for (int i = 0; i < n; i++) {
            const dj_param *p = dj_graph_param(g, i);
            if (!p->trainable) continue;
            char *name = state_name(dj_optim_state_slot_name(opt, s), p->name);
            if (!name) {
                rc = dj_error(DJ_ENOMEM, "%s: out of memory", path);
                goto out;
            }
            rc = dj_st_writer_add_f32(w, name, p->ndim, p->shape, state + off);
            free(name);
            if (rc) goto out;
            off += p->count;
        }
    }
    rc = dj_st_writer_write(w, path);
out:
    dj_st_writer_free(w);
    return rc;
}

/* A required non-negative decimal metadata integer, strictly parsed. */
static int meta_i64(const dj_st_file *f, const char *key, int64_t *out) {
    const char *s = dj_st_metadata(f, key);
    if (!s) return dj_error(DJ_EFORMAT, "%s: checkpoint without '%s' metadata", dj_st_path(f), key);
    int64_t v = 0;
    const char *c = s;
    if (!*c) goto bad;
    for (; *c; c++) {
        if (*c < '0' || *c > '9') goto bad;
        int d = *c - '0';
        if (v > (INT64_MAX - d) / 10) goto bad;
        v = v * 10 + d;
    }
    *out = v;
    return DJ_OK;
bad:
    return dj_error(DJ_EFORMAT, "%s: metadata %s = '%.40s' is not a non-negative integer", dj_st_path(f), key, s);
}

/* The file's "optim.*" tensors must be exactly this optimiser's slots over
 * the graph's trainable parameters; a leftover one means the checkpoint
 * came from an optimiser with more state (e.g. SGD with momentum resumed
 * as plain SGD), whose state would silently be dropped. */
static int check_state_names(const dj_graph *g, dj_optim *opt, const dj_st_file *f) {
    int slots = dj_optim_state_slots(opt);
    const char *kind = dj_optim_kind_name(dj_optim_get_config(opt)->kind);
    size_t count = dj_st_count(f);
    for (size_t i = 0; i < count; i++) {
        const char *name = dj_st_at(f, i)->name;
        if (strncmp(name, "optim.", 6) || dj_graph_find_param(g, name)) continue;
        const char *rest = name + 6;
        int ok = 0;
        for (int s = 0; s < slots && !ok; s++) {
            const char *slot = dj_optim_state_slot_name(opt, s);
            size_t sl = strlen(slot);
            if (!strncmp(rest, slot, sl) && rest[sl] == '.') {
                const dj_param *p = dj_graph_find_param(g, rest + sl + 1);
                ok = p && p->trainable;
            }
        }
        if (!ok)
            return dj_error(DJ_EFORMAT, "%s: tensor '%s' is not state of this %s optimiser (%s)", dj_st_path(f), name,
                            kind,
                            slots == 0   ? "which keeps none: was the checkpoint saved with momentum?"
                            : slots == 1 ? "state: momentum_buffer"
                                         : "state: exp_avg, exp_avg_sq");
    }
    return DJ_OK;
}

/* Every state tensor present, F32, shaped like its parameter; src[k] gets
 * the data of the k-th one (slot-major, graph order), so that the copy
 * after validation has nothing left that can fail. */
static int check_state_tensors(const dj_graph *g, dj_optim *opt, const dj_st_file *f, const float **src) {
    int slots = dj_optim_state_slots(opt);
    const char *kind = dj_optim_kind_name(dj_optim_get_config(opt)->kind);
    int n = dj_graph_num_params(g);
    size_t k = 0;
    for (int s = 0; s < slots; s++) {
        const char *slot = dj_optim_state_slot_name(opt, s);
        /* A whole slot missing is a configuration mismatch rather than a
         * damaged file: say so instead of naming the first tensor. */
        int any = dj_optim_numel(opt) == 0;
        size_t sl = strlen(slot);
        for (size_t i = 0; i < dj_st_count(f) && !any; i++) {
            const char *name = dj_st_at(f, i)->name;
            any = !strncmp(name, "optim.", 6) && !strncmp(name + 6, slot, sl) && name[6 + sl] == '.';
        }
        if (!any)
            return dj_error(DJ_EFORMAT,
                            "%s: the checkpoint has no '%s' state, which this %s optimiser needs "
                            "(saved with another configuration, e.g. without momentum?)",
                            dj_st_path(f), slot, kind);
        for (int i = 0; i < n; i++) {
            const dj_param *p = dj_graph_param(g, i);
            if (!p->trainable) continue;
            char *name = state_name(slot, p->name);
            if (!name) return dj_error(DJ_ENOMEM, "%s: out of memory", dj_st_path(f));
            int rc = dj_st_get_f32(f, name, p->ndim, p->shape, &src[k++]);
            free(name);
            if (rc) return rc;
        }
    }
    return DJ_OK;
}

/* State slot s holds the trainable parameters back to back in graph order,
 * the same order src[] was filled in: one running offset does. */
static void copy_state(const dj_graph *g, dj_optim *opt, const float *const *src) {
    float *state;
    size_t nstate;
    dj_optim_state(opt, &state, &nstate);
    if (!nstate) return;
    int slots = dj_optim_state_slots(opt);
    int n = dj_graph_num_params(g);
    size_t off = 0, k = 0;
    for (int s = 0; s < slots; s++)
        for (int i = 0; i < n; i++) {
            const dj_param *p = dj_graph_param(g, i);
            if (!p->trainable) continue;
            memcpy(state + off, src[k++], p->count * sizeof(float));
            off += p->count;
        }
}

int dj_checkpoint_load(const char *path, dj_graph *g, const char *arch, dj_optim *opt, dj_rng *rng,
                       int64_t *epoch, int64_t *step) {
    if (!path) return dj_error(DJ_EINVAL, "dj_checkpoint_load: NULL path");
    int rc = dj_weights_check_graph(g, path, 1);
    if (rc) return rc;
    if ((rc = check_layout(g, opt, path))) return rc;
    dj_st_file *f = NULL;
    if ((rc = dj_st_open(path, DJ_ST_CHECK_FINITE, &f))) return rc;

    /* Validate everything, then change anything. */
    int64_t e = 0, st = 0, ost = 0;
    dj_rng r = {{0, 0, 0, 0}};
    /* One pointer per state tensor; allocated before anything is changed. */
    size_t nsrc = (size_t)dj_optim_state_slots(opt) * dj_optim_count(opt);
    const float **src = malloc((nsrc ? nsrc : 1) * sizeof *src);
    if (!src) {
        rc = dj_error(DJ_ENOMEM, "%s: out of memory", path);
        goto out;
    }
    const char *fmt = dj_st_metadata(f, "format");
    const char *kind = dj_optim_kind_name(dj_optim_get_config(opt)->kind);
    const char *fkind = dj_st_metadata(f, "optim");
    if (!fmt || strcmp(fmt, DJ_CHECKPOINT_FORMAT)) {
        if (fmt && !strcmp(fmt, DJ_WEIGHTS_FORMAT))
            rc = dj_error(DJ_EFORMAT, "%s: a weights file, not a checkpoint (it has no optimiser state)", path);
        else
            rc = dj_error(DJ_EFORMAT, "%s: not a dmvjnd checkpoint (format '%s')", path, fmt ? fmt : "none");
        goto out;
    }
    if ((rc = dj_weights_validate(g, f, arch, 1))) goto out;
    if (!fkind) {
        rc = dj_error(DJ_EFORMAT, "%s: checkpoint without 'optim' metadata", path);
        goto out;
    }
    if (strcmp(fkind, kind)) {
        rc = dj_error(DJ_EFORMAT, "%s: the checkpoint was saved with optimiser '%s', this run uses '%s'", path, fkind,
                      kind);
        goto out;
    }
    if ((rc = meta_i64(f, "epoch", &e)) || (rc = meta_i64(f, "step", &st)) || (rc = meta_i64(f, "optim_step", &ost)))
        goto out;
    if (rng) {
        const char *hex = dj_st_metadata(f, "rng");
        if (!hex) {
            rc = dj_error(DJ_EFORMAT, "%s: checkpoint without 'rng' metadata", path);
            goto out;
        }
        if ((rc = dj_rng_from_hex(&r, hex))) {
            rc = dj_error(rc, "%s: %s", path, dj_last_error());
            goto out;
        }
    }
    if ((rc = check_state_names(g, opt, f)) || (rc = check_state_tensors(g, opt, f, src))) goto out;

    dj_weights_copy(g, f);
    copy_state(g, opt, src);
    dj_optim_set_step_count(opt, ost); /* ost >= 0: cannot fail */
    if (rng) *rng = r;
    if (epoch) *epoch = e;
    if (step) *step = st;
out:
    free(src);
    dj_st_close(f);
    return rc;
}

int dj_check_training_space(const dj_graph *g, const char *weights_path, const char *checkpoint_path) {
    if (!g) return dj_error(DJ_EINVAL, "training space check: NULL graph");
    uint64_t bytes = 0;
    for (int i = 0; i < dj_graph_num_params(g); i++) bytes += (uint64_t)dj_graph_param(g, i)->count * 4u;
    const uint64_t margin = 1u << 20;
    int rc = DJ_OK;
    if (weights_path) rc = dj_check_free_space(weights_path, bytes + margin);
    if (!rc && checkpoint_path) rc = dj_check_free_space(checkpoint_path, 2 * 3 * bytes + margin);
    return rc;
}
