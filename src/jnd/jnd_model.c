/* The trained DMV-JND model file, generation with it, and loading the
 * frozen classifiers; see dmvjnd/jnd_train.h, sections 1 and 5. */
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "dmvjnd/cam.h"
#include "dmvjnd/checkpoint.h"
#include "dmvjnd/dmvjnd.h"
#include "train/recipe.h"
#include "dmvjnd/jnd_train.h"
#include "dmvjnd/models.h"
#include "dmvjnd/safetensors.h"

#define ED_ARCH "jnd_ed"

/* ----------------------------------------------------------------- helpers */

int dj_jnd_unit_from_name(const char *name, int *unit) {
    if (name && !strcmp(name, "normalized")) {
        *unit = DJ_JND_UNIT_NORMALIZED;
        return DJ_OK;
    }
    if (name && !strcmp(name, "pixel01")) {
        *unit = DJ_JND_UNIT_PIXEL01;
        return DJ_OK;
    }
    return dj_error(DJ_EINVAL, "unknown e unit '%s' (normalized or pixel01)", name ? name : "(null)");
}

const char *dj_jnd_unit_name(int unit) {
    return unit == DJ_JND_UNIT_NORMALIZED ? "normalized" : unit == DJ_JND_UNIT_PIXEL01 ? "pixel01" : "?";
}

static int parse_float(const char *s, float *v) {
    if (!s) return -1;
    char *end;
    double d = strtod(s, &end);
    if (end == s || *end || !isfinite(d)) return -1;
    *v = (float)d;
    return 0;
}

static int parse_int(const char *s, int *v) {
    if (!s) return -1;
    char *end;
    long d = strtol(s, &end, 10);
    if (end == s || *end || d < 0 || d > 1 << 20) return -1;
    *v = (int)d;
    return 0;
}

/* ------------------------------------------------------------- classifiers */

/* dj_classifier_load with a caller's builder. */
static int load_with_builder(dj_classifier *c, const char *path, dj_model_builder build) {
    memset(c, 0, sizeof *c);
    dj_st_file *f = NULL;
    int rc = dj_st_open(path, DJ_ST_CHECK_FINITE, &f);
    if (rc) return rc;
    const char *arch = dj_st_metadata(f, "arch");
    const char *mean = dj_st_metadata(f, "train.mean"), *sd = dj_st_metadata(f, "train.std");
    const char *acc = dj_st_metadata(f, "test_accuracy");
    if (!arch || !*arch || strlen(arch) >= sizeof c->arch) {
        rc = dj_error(DJ_EFORMAT, "%s: no usable 'arch' metadata", path);
        goto fail;
    }
    strcpy(c->arch, arch);
    for (int i = 0; i < 3; i++) c->mean[i] = c->std[i] = 0.5f;
    if ((mean && recipe_parse_triple(mean, c->mean)) || (sd && recipe_parse_triple(sd, c->std))) {
        rc = dj_error(DJ_EFORMAT, "%s: metadata train.mean/train.std are not three numbers a,b,c", path);
        goto fail;
    }
    c->test_accuracy = acc ? strtod(acc, NULL) : NAN;
    dj_rng rng;
    dj_rng_seed(&rng, 0);
    if ((rc = build(&c->graph, arch, DJ_CIFAR10_CLASSES, &rng))) {
        rc = dj_error(DJ_EFORMAT, "%s: %s", path, dj_last_error());
        goto fail;
    }
    if ((rc = dj_weights_load_file(c->graph, f, arch))) goto fail;
    if ((rc = dj_graph_freeze(c->graph))) goto fail;
    dj_st_close(f);
    return DJ_OK;
fail:
    dj_st_close(f);
    dj_graph_destroy(c->graph);
    memset(c, 0, sizeof *c);
    return rc;
}

void dj_jnd_classifiers_free(dj_classifier *c, int count) {
    if (!c) return;
    for (int k = 0; k < count; k++) dj_classifier_free(&c[k]);
}

int dj_jnd_classifiers_load(dj_classifier *out, const char *const *paths, int count, dj_model_builder build,
                            const dj_jnd_norm *norm) {
    if (!out || !paths || count < 1 || count > DJ_JND_MAX_CLASSIFIERS)
        return dj_error(DJ_EINVAL, "jnd: %d classifiers (1..%d)", count, DJ_JND_MAX_CLASSIFIERS);
    memset(out, 0, (size_t)count * sizeof *out);
    int rc = DJ_OK, k;
    for (k = 0; k < count && !rc; k++) {
        if (!paths[k] || !*paths[k]) {
            rc = dj_error(DJ_EINVAL, "jnd: classifier %d has an empty path", k + 1);
            break;
        }
        rc = build ? load_with_builder(&out[k], paths[k], build) : dj_classifier_load(&out[k], paths[k], 1);
        if (rc) break;
        dj_graph *g = out[k].graph;
        int h, w, c, classes;
        dj_graph_node_shape(g, 0, &h, &w, &c);
        dj_graph_node_shape(g, dj_graph_output_node(g), NULL, NULL, &classes);
        dj_cam_layout L;
        if (h != DJ_CIFAR10_SIDE || w != DJ_CIFAR10_SIDE || c != DJ_CIFAR10_CHANNELS ||
            classes != DJ_CIFAR10_CLASSES) {
            rc = dj_error(DJ_EINVAL, "%s: the classifier takes %dx%dx%d images and has %d outputs; the JND network "
                                     "needs 32x32x3 and 10",
                          paths[k], h, w, c, classes);
        } else if (dj_cam_find(g, &L)) {
            rc = dj_error(DJ_EINVAL, "%s: %s", paths[k], dj_last_error());
        } else if (norm) {
            for (int i = 0; i < 3 && !rc; i++)
                if (out[k].mean[i] != norm->mean[i] || out[k].std[i] != norm->std[i])
                    rc = dj_error(DJ_EINVAL,
                                  "%s: the classifier was trained with normalisation mean %g,%g,%g std %g,%g,%g, "
                                  "the JND network uses mean %g,%g,%g std %g,%g,%g (x_hat goes to every classifier "
                                  "in one normalised space)",
                                  paths[k], out[k].mean[0], out[k].mean[1], out[k].mean[2], out[k].std[0],
                                  out[k].std[1], out[k].std[2], norm->mean[0], norm->mean[1], norm->mean[2],
                                  norm->std[0], norm->std[1], norm->std[2]);
        }
    }
    if (rc) dj_jnd_classifiers_free(out, count);
    return rc;
}

/* ------------------------------------------------- classifier files named */

/* A JND model file names its classifiers (jnd.classifiers) by paths relative
 * to its own folder (plain file names when they lie beside it, as the
 * shipped models do), so a model folder can be moved or installed as a
 * whole. jnd.classifier_hashes records "size:fnv1a64" of each file, so a
 * classifier replaced by another one is refused instead of silently giving
 * other results. */

static int is_file(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* Length of the folder part of path ("dir/" included), 0 when it has none. */
static size_t dir_len(const char *path) {
    const char *slash = strrchr(path, '/');
    return slash ? (size_t)(slash - path) + 1 : 0;
}

static char *join(const char *path, size_t dlen, const char *name) {
    size_t n = strlen(name);
    char *s = malloc(dlen + n + 1);
    if (!s) return NULL;
    memcpy(s, path, dlen);
    memcpy(s + dlen, name, n + 1);
    return s;
}

/* The file a model at model_path means by `name` (malloc'ed; NULL when out
 * of memory): an absolute name as it is; else name in the model's folder;
 * else (files written by older versions, which stored paths as typed, e.g.
 * "models/alexnet.safetensors") the name's last part in the model's folder,
 * then the name relative to the current folder. When none exists, the first
 * candidate, so that the error names the file the model looks for. */
static char *resolve_classifier(const char *model_path, const char *name) {
    if (name[0] == '/') return join("", 0, name);
    size_t dl = dir_len(model_path);
    char *first = join(model_path, dl, name);
    if (!first || is_file(first)) return first;
    const char *base = name + dir_len(name);
    char *c = base != name ? join(model_path, dl, base) : NULL;
    if (c && is_file(c)) {
        free(first);
        return c;
    }
    free(c);
    if (dl && is_file(name)) {
        free(first);
        return join("", 0, name);
    }
    return first;
}

/* The path of `target` relative to the folder of `model_path`, when both
 * exist (malloc'ed), else a copy of target: stored in the model file. */
static char *relative_name(const char *model_path, const char *target) {
    char mdir[PATH_MAX], tgt[PATH_MAX];
    size_t dl = dir_len(model_path);
    char *d = dl ? join(model_path, dl, ".") : join("", 0, ".");
    int ok = d && realpath(d, mdir) && realpath(target, tgt);
    free(d);
    if (!ok) return join("", 0, target);
    /* Common leading folders, then one "../" for each folder of mdir left. */
    size_t common = 0;
    for (size_t i = 0; mdir[i] && mdir[i] == tgt[i]; i++)
        if (tgt[i + 1] == '/' && (mdir[i + 1] == '/' || !mdir[i + 1])) common = i + 1;
    size_t ups = 0;
    if (!strcmp(mdir, "/")) common = 0; /* the root: rest is tgt + 1, no "../" */
    else
        for (const char *p = mdir + common; *p; p++) ups += *p == '/';
    const char *rest = tgt + common + 1;
    char *s = malloc(3 * ups + strlen(rest) + 1);
    if (!s) return NULL;
    s[0] = '\0';
    for (size_t i = 0; i < ups; i++) strcat(s, "../");
    strcat(s, rest);
    return s;
}

/* "size:hash" of a file, as jnd.classifier_hashes stores it. */
static int file_key(const char *path, char *out, size_t cap) {
    uint64_t h, sz;
    int rc = dj_file_fnv1a64(path, &h, &sz);
    if (!rc) snprintf(out, cap, "%llu:%016llx", (unsigned long long)sz, (unsigned long long)h);
    return rc;
}

/* Item k of a comma separated list into out; 0 if there is one. */
static int list_item(const char *list, int k, char *out, size_t cap) {
    for (int i = 0; list && i < k; i++)
        if ((list = strchr(list, ','))) list++;
    if (!list) return -1;
    size_t n = strcspn(list, ",");
    if (n >= cap) return -1;
    memcpy(out, list, n);
    out[n] = '\0';
    return 0;
}

static int list_count(const char *list) {
    int n = 1;
    for (; *list; list++) n += *list == ',';
    return n;
}

/* Resolves m->classifiers[] (names as stored) to the files they mean, and
 * checks each existing one against its recorded hash. A missing file is
 * left for the classifier loader to report by name: callers may pass
 * classifiers of their own instead. */
static int resolve_classifiers(const char *path, dj_st_file *f, dj_jnd_model *m) {
    const char *hashes = dj_st_metadata(f, "jnd.classifier_hashes");
    /* Files the C trainer wrote before jnd.classifier_hashes existed record
     * the same list under the recipe's key. */
    if (!hashes) {
        const char *files = dj_st_metadata(f, "jnd.train.classifier_files");
        const char *names = dj_st_metadata(f, "jnd.classifiers");
        if (files && names && !strcmp(files, names)) hashes = dj_st_metadata(f, "jnd.train.classifier_hashes");
    }
    if (hashes && list_count(hashes) != m->nclassifiers)
        return dj_error(DJ_EFORMAT, "%s: jnd.classifier_hashes has %d entries for %d classifiers", path,
                        list_count(hashes), m->nclassifiers);
    for (int k = 0; k < m->nclassifiers; k++) {
        char *file = resolve_classifier(path, m->classifiers[k]);
        if (!file) return dj_error(DJ_ENOMEM, "jnd model load: out of memory");
        free(m->classifiers[k]);
        m->classifiers[k] = file;
        char want[64], got[64];
        if (!hashes || !is_file(file)) continue;
        if (list_item(hashes, k, want, sizeof want))
            return dj_error(DJ_EFORMAT, "%s: jnd.classifier_hashes entry %d is malformed", path, k + 1);
        int rc = file_key(file, got, sizeof got);
        if (rc) return rc;
        if (strcmp(want, got))
            return dj_error(DJ_EFORMAT,
                            "%s: does not match the classifier the JND model was trained with (size:hash %s != %s "
                            "recorded in %s)",
                            file, got, want, path);
    }
    return DJ_OK;
}

/* ------------------------------------------------------------- model file */

void dj_jnd_model_free(dj_jnd_model *m) {
    if (!m) return;
    dj_graph_destroy(m->ed);
    for (int k = 0; k < DJ_JND_MAX_CLASSIFIERS; k++) free(m->classifiers[k]);
    memset(m, 0, sizeof *m);
}

int dj_jnd_model_save(const dj_graph *ed, const char *path, const dj_jnd_model_info *info, const dj_kv *extra,
                      int nextra) {
    if (!ed || !path || !info || nextra < 0 || (nextra > 0 && !extra))
        return dj_error(DJ_EINVAL, "jnd model save: NULL argument");
    if (info->nclassifiers < 0 || info->nclassifiers > DJ_JND_MAX_CLASSIFIERS)
        return dj_error(DJ_EINVAL, "jnd model save: %d classifiers", info->nclassifiers);
    char width[32], slope[32], alpha[32], beta[32], ih[16], iw[16], mean[96], sd[96];
    snprintf(width, sizeof width, "%.9g", info->ed_cfg.width);
    snprintf(slope, sizeof slope, "%.9g", info->ed_cfg.slope);
    snprintf(alpha, sizeof alpha, "%.9g", info->alpha);
    snprintf(beta, sizeof beta, "%.9g", info->beta);
    snprintf(ih, sizeof ih, "%d", info->h);
    snprintf(iw, sizeof iw, "%d", info->w);
    snprintf(mean, sizeof mean, "%.9g,%.9g,%.9g", info->norm.mean[0], info->norm.mean[1], info->norm.mean[2]);
    snprintf(sd, sizeof sd, "%.9g,%.9g,%.9g", info->norm.std[0], info->norm.std[1], info->norm.std[2]);
    /* Classifiers by their path relative to the model's folder (see
     * resolve_classifier), each with its size and hash. */
    char *rel[DJ_JND_MAX_CLASSIFIERS] = {0};
    char hashes[DJ_JND_MAX_CLASSIFIERS * 48 + 1] = "";
    size_t len = 1;
    int rc = DJ_OK;
    for (int k = 0; k < info->nclassifiers && !rc; k++) {
        char key[48];
        if (!info->classifiers[k] || !*info->classifiers[k] || strchr(info->classifiers[k], ','))
            rc = dj_error(DJ_EINVAL, "jnd model save: classifier name %d is empty or holds a comma", k + 1);
        else if (!(rel[k] = relative_name(path, info->classifiers[k])))
            rc = dj_error(DJ_ENOMEM, "jnd model save: out of memory");
        else if (!(rc = file_key(info->classifiers[k], key, sizeof key))) {
            len += strlen(rel[k]) + 1;
            snprintf(hashes + strlen(hashes), sizeof hashes - strlen(hashes), "%s%s", k ? "," : "", key);
        }
    }
    char *names = rc ? NULL : malloc(len);
    dj_kv *meta = rc ? NULL : malloc(((size_t)nextra + 14) * sizeof *meta);
    if (!rc && (!names || !meta)) rc = dj_error(DJ_ENOMEM, "jnd model save: out of memory");
    if (rc) {
        for (int k = 0; k < info->nclassifiers; k++) free(rel[k]);
        free(names);
        free(meta);
        return rc;
    }
    names[0] = '\0';
    for (int k = 0; k < info->nclassifiers; k++) {
        if (k) strcat(names, ",");
        strcat(names, rel[k]);
        free(rel[k]);
    }
    int n = 0;
    meta[n++] = (dj_kv){"jnd.width", width};
    meta[n++] = (dj_kv){"jnd.slope", slope};
    meta[n++] = (dj_kv){"jnd.input", info->ed_cfg.margin_input ? "x,cam,margin" : "x,cam"};
    meta[n++] = (dj_kv){"jnd.e_unit", dj_jnd_unit_name(info->e_unit)};
    meta[n++] = (dj_kv){"jnd.clip", info->clip ? "1" : "0"};
    meta[n++] = (dj_kv){"jnd.alpha", alpha};
    meta[n++] = (dj_kv){"jnd.beta", beta};
    meta[n++] = (dj_kv){"jnd.classifiers", names};
    meta[n++] = (dj_kv){"jnd.classifier_hashes", hashes};
    meta[n++] = (dj_kv){"jnd.input_h", ih};
    meta[n++] = (dj_kv){"jnd.input_w", iw};
    meta[n++] = (dj_kv){"norm.mean", mean};
    meta[n++] = (dj_kv){"norm.std", sd};
    for (int i = 0; i < nextra; i++) meta[n++] = extra[i];
    rc = dj_weights_save(ed, path, ED_ARCH, meta, n);
    free(names);
    free(meta);
    return rc;
}

int dj_jnd_model_load(const char *path, dj_jnd_model *m) {
    if (!path || !m) return dj_error(DJ_EINVAL, "jnd model load: NULL argument");
    memset(m, 0, sizeof *m);
    dj_st_file *f = NULL;
    int rc = dj_st_open(path, DJ_ST_CHECK_FINITE, &f);
    if (rc) return rc;
    const char *arch = dj_st_metadata(f, "arch");
    const char *what = NULL;
    if (!arch || strcmp(arch, ED_ARCH)) {
        rc = dj_error(DJ_EFORMAT, "%s: not a DMV-JND model file (arch '%s', expected '%s')", path,
                      arch ? arch : "(none)", ED_ARCH);
        goto fail;
    }
    const char *unit = dj_st_metadata(f, "jnd.e_unit"), *clip = dj_st_metadata(f, "jnd.clip");
    const char *names = dj_st_metadata(f, "jnd.classifiers");
    /* Files written before the margin input existed have no jnd.input. */
    const char *input = dj_st_metadata(f, "jnd.input");
    m->ed_cfg.margin_input = input && !strcmp(input, "x,cam,margin");
    if (parse_float(dj_st_metadata(f, "jnd.width"), &m->ed_cfg.width)) what = "jnd.width";
    else if (parse_float(dj_st_metadata(f, "jnd.slope"), &m->ed_cfg.slope)) what = "jnd.slope";
    else if (!unit || dj_jnd_unit_from_name(unit, &m->e_unit)) what = "jnd.e_unit";
    else if (!clip || (strcmp(clip, "0") && strcmp(clip, "1"))) what = "jnd.clip";
    else if (parse_float(dj_st_metadata(f, "jnd.alpha"), &m->alpha)) what = "jnd.alpha";
    else if (parse_float(dj_st_metadata(f, "jnd.beta"), &m->beta)) what = "jnd.beta";
    else if (parse_int(dj_st_metadata(f, "jnd.input_h"), &m->h)) what = "jnd.input_h";
    else if (parse_int(dj_st_metadata(f, "jnd.input_w"), &m->w)) what = "jnd.input_w";
    else if (!dj_st_metadata(f, "norm.mean") || recipe_parse_triple(dj_st_metadata(f, "norm.mean"), m->norm.mean))
        what = "norm.mean";
    else if (!dj_st_metadata(f, "norm.std") || recipe_parse_triple(dj_st_metadata(f, "norm.std"), m->norm.std) ||
             !(m->norm.std[0] > 0 && m->norm.std[1] > 0 && m->norm.std[2] > 0))
        what = "norm.std";
    else if (!names)
        what = "jnd.classifiers";
    else if (input && strcmp(input, "x,cam") && strcmp(input, "x,cam,margin"))
        what = "jnd.input";
    if (what) {
        rc = dj_error(DJ_EFORMAT, "%s: metadata '%s' is missing or malformed ('%.60s')", path, what,
                      dj_st_metadata(f, what) ? dj_st_metadata(f, what) : "");
        goto fail;
    }
    m->clip = clip[0] == '1';
    /* classifiers: comma separated */
    for (const char *s = names; *s;) {
        const char *e = strchr(s, ',');
        size_t len = e ? (size_t)(e - s) : strlen(s);
        if (m->nclassifiers >= DJ_JND_MAX_CLASSIFIERS) {
            rc = dj_error(DJ_EFORMAT, "%s: more than %d classifiers in jnd.classifiers", path, DJ_JND_MAX_CLASSIFIERS);
            goto fail;
        }
        char *name = malloc(len + 1);
        if (!name) {
            rc = dj_error(DJ_ENOMEM, "jnd model load: out of memory");
            goto fail;
        }
        memcpy(name, s, len);
        name[len] = '\0';
        m->classifiers[m->nclassifiers++] = name;
        s += len;
        if (*s == ',') s++;
    }
    if ((rc = resolve_classifiers(path, f, m))) goto fail;
    dj_rng rng;
    dj_rng_seed(&rng, 0);
    if ((rc = dj_model_jnd_ed(&m->ed, &m->ed_cfg, m->h, m->w, &rng))) {
        rc = dj_error(rc, "%s: %s", path, dj_last_error());
        goto fail;
    }
    if ((rc = dj_weights_load_file(m->ed, f, ED_ARCH))) goto fail;
    if ((rc = dj_graph_freeze(m->ed))) goto fail;
    dj_st_close(f);
    return DJ_OK;
fail:
    dj_st_close(f);
    dj_jnd_model_free(m);
    return rc;
}

int dj_jnd_generate(dj_jnd_model *m, dj_graph *const *cls, int count, const dj_tensor *x, dj_tensor *e, float *cam,
                    int32_t *labels) {
    if (!m || !m->ed || !cls || count < 1 || count > DJ_JND_MAX_CLASSIFIERS || !x || !x->data || !e || !e->data)
        return dj_error(DJ_EINVAL, "jnd generate: bad arguments");
    if (x->h != m->h || x->w != m->w || x->c != 3 || e->n != x->n || e->h != x->h || e->w != x->w || e->c != 3)
        return dj_error(DJ_EINVAL, "jnd generate: x is %dx%dx%dx%d and e %dx%dx%dx%d; the model takes n x %d x %d x 3",
                        x->n, x->h, x->w, x->c, e->n, e->h, e->w, e->c, m->h, m->w);
    const size_t hw = (size_t)x->h * x->w, n = (size_t)x->n;
    float *maps[DJ_JND_MAX_CLASSIFIERS] = {0};
    float *merged = cam ? cam : malloc(n * hw * sizeof(float) + 1);
    int32_t *lab = malloc(n * sizeof *lab + 1);
    float *margin = m->ed_cfg.margin_input ? malloc(n * sizeof *margin + 1) : NULL;
    dj_tensor xc = {0};
    int rc = !merged || !lab || (m->ed_cfg.margin_input && !margin) ? dj_error(DJ_ENOMEM, "jnd generate: out of memory")
                                                                    : DJ_OK;
    for (int k = 0; !rc && k < count; k++)
        if (!(maps[k] = malloc(n * hw * sizeof(float) + 1))) rc = dj_error(DJ_ENOMEM, "jnd generate: out of memory");
    for (int k = 0; !rc && k < count; k++) {
        rc = dj_cam_compute(cls[k], x, maps[k], lab, NULL);
        if (!rc && margin) rc = dj_jnd_margin_from_graph(cls[k], x->n, margin, k == 0);
        if (!rc && labels)
            for (size_t i = 0; i < n; i++) labels[i * count + k] = lab[i];
    }
    if (!rc) rc = dj_cam_merge((const float *const *)maps, count, n * hw, merged);
    if (!rc) rc = dj_tensor_alloc(&xc, x->n, x->h, x->w, dj_jnd_ed_in_channels(&m->ed_cfg));
    if (!rc) {
        dj_tensor c = dj_tensor_view(merged, x->n, x->h, x->w, 1);
        rc = dj_jnd_stack(x, &c, margin, &xc);
    }
    const dj_tensor *out = NULL;
    if (!rc) rc = dj_graph_forward(m->ed, &xc, 0, NULL, &out);
    if (!rc) memcpy(e->data, out->data, dj_tensor_numel(e) * sizeof(float));
    for (int k = 0; k < count; k++) free(maps[k]);
    if (merged != cam) free(merged);
    free(lab);
    free(margin);
    dj_tensor_free(&xc);
    return rc;
}
