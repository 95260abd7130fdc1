/* Weights files: a graph's parameters and buffers as a safetensors file
 * that PyTorch's load_state_dict(strict=True) accepts, and the strict,
 * all-or-nothing loader. See dmvjnd/weights.h for the format. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "models/weights_impl.h"

const char *const dj_weights_reserved_keys[] = {"format", "format_version", "arch",  "dmvjnd_version", "epoch",
                                                "step",   "optim_step",     "optim", "rng",            NULL};

static const char bn_marker[] = ".running_mean";
static const char nbt_suffix[] = ".num_batches_tracked";

/* 1 if s ends with suffix (and has something before it). */
static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), m = strlen(suffix);
    return n > m && memcmp(s + n - m, suffix, m) == 0;
}

static const char *path_or_file(const char *path) { return path ? path : "(weights)"; }

int dj_weights_check_graph(const dj_graph *g, const char *path, int for_load) {
    if (!g) return dj_error(DJ_EINVAL, "%s: NULL graph", path_or_file(path));
    /* Parameters get their memory at finalize; before it there is nothing
     * to save or load into (dj_param.data is NULL). */
    const dj_param *p0 = dj_graph_param(g, 0);
    if (p0 && !p0->data) return dj_error(DJ_EINVAL, "%s: the graph is not finalized", path_or_file(path));
    /* Freezing copies and folds the weights once; loading afterwards would
     * change the parameters but not what the frozen graph computes. */
    if (for_load && dj_graph_is_frozen(g))
        return dj_error(DJ_EINVAL, "%s: cannot load into a frozen graph (load weights before dj_graph_freeze)",
                        path_or_file(path));
    return DJ_OK;
}

int dj_weights_add_tensors(dj_st_writer *w, const dj_graph *g) {
    /* PyTorch keeps a 0-dim int64 counter per BN layer in its state_dict;
     * strict loading wants it. The graph does not count, so every entry is
     * 0 (it only matters to BN with momentum=None, which dmvjnd lacks). */
    static const int64_t zero = 0;
    int n = dj_graph_num_params(g);
    for (int i = 0; i < n; i++) {
        const dj_param *p = dj_graph_param(g, i);
        int rc = dj_st_writer_add_f32(w, p->name, p->ndim, p->shape, p->data);
        if (rc) return rc;
        if (ends_with(p->name, bn_marker)) {
            size_t plen = strlen(p->name) - strlen(bn_marker);
            size_t len = plen + sizeof nbt_suffix;
            char *name = malloc(len);
            if (!name) return dj_error(DJ_ENOMEM, "out of memory naming %s's num_batches_tracked", p->name);
            snprintf(name, len, "%.*s%s", (int)plen, p->name, nbt_suffix);
            rc = dj_st_writer_add_i64(w, name, 0, NULL, &zero);
            free(name);
            if (rc) return rc;
        }
    }
    return DJ_OK;
}

int dj_weights_set_base_meta(dj_st_writer *w, const char *path, const char *format, const char *arch) {
    if (!arch || !*arch) return dj_error(DJ_EINVAL, "%s: an architecture name (arch) is required", path);
    char version[16];
    snprintf(version, sizeof version, "%d", DJ_WEIGHTS_FORMAT_VERSION);
    int rc;
    if ((rc = dj_st_writer_set_metadata(w, "format", format))) return rc;
    if ((rc = dj_st_writer_set_metadata(w, "format_version", version))) return rc;
    if ((rc = dj_st_writer_set_metadata(w, "arch", arch))) return rc;
    return dj_st_writer_set_metadata(w, "dmvjnd_version", DJ_VERSION_STRING);
}

int dj_weights_set_user_meta(dj_st_writer *w, const char *path, const dj_kv *meta, int nmeta) {
    if (nmeta < 0 || (nmeta > 0 && !meta))
        return dj_error(DJ_EINVAL, "%s: %d metadata pairs with a %s list", path, nmeta, meta ? "non-NULL" : "NULL");
    for (int i = 0; i < nmeta; i++) {
        if (!meta[i].key || !meta[i].value)
            return dj_error(DJ_EINVAL, "%s: metadata pair %d has a NULL key or value", path, i);
        /* A caller's "arch" or "step" would silently replace the library's
         * value (the writer keeps the last one): refuse. */
        for (int k = 0; dj_weights_reserved_keys[k]; k++)
            if (!strcmp(meta[i].key, dj_weights_reserved_keys[k]))
                return dj_error(DJ_EINVAL, "%s: metadata key '%s' is reserved for the library", path, meta[i].key);
        int rc = dj_st_writer_set_metadata(w, meta[i].key, meta[i].value);
        if (rc) return dj_error(rc, "%s: %s", path, dj_last_error());
    }
    return DJ_OK;
}

int dj_weights_save(const char *path, const dj_graph *g, const char *arch, const dj_kv *meta, int nmeta) {
    if (!path) return dj_error(DJ_EINVAL, "dj_weights_save: NULL path");
    int rc = dj_weights_check_graph(g, path, 0);
    if (rc) return rc;
    dj_st_writer *w = NULL;
    if ((rc = dj_st_writer_new(&w))) return rc;
    if (!(rc = dj_weights_set_base_meta(w, path, DJ_WEIGHTS_FORMAT, arch)) &&
        !(rc = dj_weights_set_user_meta(w, path, meta, nmeta)) && !(rc = dj_weights_add_tensors(w, g)))
        rc = dj_st_writer_write(w, path);
    dj_st_writer_free(w);
    return rc;
}

const char *dj_weights_arch_label(const dj_st_file *f, const char *arch) {
    /* Not the file's "arch": when the tensors do not fit, the file is right
     * about itself and it is the graph that is something else. */
    (void)f;
    return arch ? arch : "the model being loaded";
}

/* A strict non-negative decimal integer (what the writers put in metadata):
 * digits only, no sign, no spaces, no overflow. */
static int parse_version(const char *s, long *out) {
    if (!s || !*s) return 0;
    long v = 0;
    for (; *s; s++) {
        if (*s < '0' || *s > '9' || v > 100000) return 0;
        v = v * 10 + (*s - '0');
    }
    *out = v;
    return 1;
}

/* Accepts the file's "format" when it is one of ours (then the version must
 * be one this library reads) or foreign (a PyTorch export, "pt", none...):
 * foreign files are judged by their tensors alone. */
static int check_format(const dj_st_file *f) {
    const char *p = dj_st_path(f);
    const char *fmt = dj_st_metadata(f, "format");
    if (!fmt || (strcmp(fmt, DJ_WEIGHTS_FORMAT) && strcmp(fmt, DJ_CHECKPOINT_FORMAT))) return DJ_OK;
    const char *ver = dj_st_metadata(f, "format_version");
    long v;
    if (!ver) return dj_error(DJ_EFORMAT, "%s: %s file without 'format_version'", p, fmt);
    if (!parse_version(ver, &v) || v < 1)
        return dj_error(DJ_EFORMAT, "%s: format_version '%.40s' is not a positive integer", p, ver);
    if (v > DJ_WEIGHTS_FORMAT_VERSION)
        return dj_error(DJ_EFORMAT, "%s: format_version %ld is newer than this dmvjnd reads (%d); upgrade dmvjnd", p,
                        v, DJ_WEIGHTS_FORMAT_VERSION);
    return DJ_OK;
}

/* name is "<bn>.num_batches_tracked" for a BN layer <bn> of g (one with a
 * parameter "<bn>.running_mean"). */
static int is_bn_counter(const dj_graph *g, const char *name) {
    if (!ends_with(name, nbt_suffix)) return 0;
    size_t plen = strlen(name) - strlen(nbt_suffix);
    int n = dj_graph_num_params(g);
    for (int i = 0; i < n; i++) {
        const char *q = dj_graph_param(g, i)->name;
        if (ends_with(q, bn_marker) && strlen(q) - strlen(bn_marker) == plen && !memcmp(q, name, plen)) return 1;
    }
    return 0;
}

int dj_weights_validate(const dj_graph *g, const dj_st_file *f, const char *arch, int require_arch) {
    const char *p = dj_st_path(f);
    int rc = check_format(f);
    if (rc) return rc;
    if (arch) {
        const char *fa = dj_st_metadata(f, "arch");
        if (!fa && require_arch) return dj_error(DJ_EFORMAT, "%s: no 'arch' metadata, expected '%s'", p, arch);
        if (fa && strcmp(fa, arch))
            return dj_error(DJ_EFORMAT, "%s: the file holds a '%s' model, expected '%s'", p, fa, arch);
    }
    /* Every parameter: present, F32, the right shape. dj_st_get_f32's
     * messages already start with the path and name the tensor. */
    int n = dj_graph_num_params(g);
    for (int i = 0; i < n; i++) {
        const dj_param *q = dj_graph_param(g, i);
        const float *data;
        if ((rc = dj_st_get_f32(f, q->name, q->ndim, q->shape, &data))) return rc;
    }
    /* Nothing else: an extra tensor means another architecture (a deeper
     * ResNet has every tensor of a shallower one, plus more). */
    size_t count = dj_st_count(f);
    for (size_t i = 0; i < count; i++) {
        const dj_st_tensor *t = dj_st_at(f, i);
        if (dj_graph_find_param(g, t->name)) continue;
        if (!strncmp(t->name, "optim.", 6)) continue;
        if (is_bn_counter(g, t->name)) {
            if (strcmp(t->dtype, "I64") || t->count != 1)
                return dj_error(DJ_EFORMAT, "%s: tensor '%s' is %s with %zu elements, expected one I64", p, t->name,
                                t->dtype, t->count);
            continue;
        }
        return dj_error(DJ_EFORMAT, "%s: tensor '%s' is not a parameter of %s", p, t->name,
                        dj_weights_arch_label(f, arch));
    }
    return DJ_OK;
}

void dj_weights_copy(dj_graph *g, const dj_st_file *f) {
    int n = dj_graph_num_params(g);
    for (int i = 0; i < n; i++) {
        const dj_param *q = dj_graph_param(g, i);
        const dj_st_tensor *t = dj_st_find(f, q->name);
        /* validated: present, F32 (f32 non-NULL), count == q->count */
        memcpy(q->data, t->f32, q->count * sizeof(float));
    }
}

int dj_weights_load_file(const dj_st_file *f, dj_graph *g, const char *arch) {
    if (!f) return dj_error(DJ_EINVAL, "dj_weights_load_file: NULL file");
    int rc = dj_weights_check_graph(g, dj_st_path(f), 1);
    if (rc) return rc;
    if ((rc = dj_st_check_finite(f))) return rc;
    if ((rc = dj_weights_validate(g, f, arch, 0))) return rc;
    dj_weights_copy(g, f);
    return DJ_OK;
}

int dj_weights_load(const char *path, dj_graph *g, const char *arch) {
    if (!path) return dj_error(DJ_EINVAL, "dj_weights_load: NULL path");
    int rc = dj_weights_check_graph(g, path, 1);
    if (rc) return rc;
    dj_st_file *f = NULL;
    if ((rc = dj_st_open(path, DJ_ST_CHECK_FINITE, &f))) return rc;
    if (!(rc = dj_weights_validate(g, f, arch, 0))) dj_weights_copy(g, f);
    dj_st_close(f);
    return rc;
}

int dj_weights_read_meta(const char *path, const char *key, char *buf, size_t size) {
    if (!path || !key || (!buf && size))
        return dj_error(DJ_EINVAL, "dj_weights_read_meta: NULL path, key or buffer");
    dj_st_file *f = NULL;
    int rc = dj_st_open(path, 0, &f);
    if (rc) return rc;
    const char *v = dj_st_metadata(f, key);
    if (!v) {
        rc = dj_error(DJ_ENOTFOUND, "%s: no metadata '%s'", path, key);
    } else if (strlen(v) >= size) {
        rc = dj_error(DJ_EINVAL, "%s: metadata '%s' has %zu bytes, the buffer holds %zu", path, key, strlen(v) + 1,
                      size);
    } else {
        memcpy(buf, v, strlen(v) + 1);
    }
    dj_st_close(f);
    return rc;
}
