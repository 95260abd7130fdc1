/* The labels + merged-CAM cache of the JND training job; see
 * dmvjnd/jnd_train.h, section 2.
 *
 * File: a safetensors file (dmvjnd/safetensors.h) written here directly
 * because it holds U16 and I32 tensors (the library's writer does F32 and
 * I64 only):
 *   __metadata__  format = "dmvjnd-jnd-cache", format_version = "2",
 *                 "<split>.key" = the identity the split was computed for
 *                 (cache_key below), "classifiers" = the files' names,
 *                 one per line (informational: the key holds their hashes)
 *   <split>.labels  I32 [n, flips, classifiers]
 *   <split>.margin  F32 [n, flips]   (version 2; dj_jnd_margin_update)
 *   <split>.cam     U16 [n, flips, h, w]
 * for split "train" and, when present, "test". The file is read back with
 * dj_st_open, which validates all of it. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dmvjnd/cam.h"
#include "dmvjnd/dmvjnd.h"
#include "dmvjnd/fileio.h"
#include "dmvjnd/jnd_train.h"
#include "dmvjnd/safetensors.h"
#include "dmvjnd/json.h"
#include "util/timer.h"

#define CACHE_FORMAT "dmvjnd-jnd-cache"
#define CACHE_VERSION "2"
#define KEY_MAX 2048

enum { SIDE = DJ_CIFAR10_SIDE, HW = DJ_CIFAR10_SIDE * DJ_CIFAR10_SIDE, CH = DJ_CIFAR10_CHANNELS };

/* ------------------------------------------------------------------ batches */

int dj_jnd_make_batch(const dj_cifar10 *ds, const int32_t *idx, const uint8_t *flip, int n, const dj_jnd_norm *norm,
                      dj_tensor *x) {
    if (!ds || !idx || !norm || !x || !x->data || x->n != n || x->h != SIDE || x->w != SIDE || x->c != CH)
        return dj_error(DJ_EINVAL, "jnd batch: bad arguments (x must be %d x 32 x 32 x 3)", n);
    for (int k = 0; k < n; k++)
        if (idx[k] < 0 || idx[k] >= ds->n)
            return dj_error(DJ_EINVAL, "jnd batch: image index %d is not in 0..%d", idx[k], ds->n - 1);
    int rc = DJ_OK;
#pragma omp parallel for schedule(static) reduction(min : rc)
    for (int k = 0; k < n; k++) {
        const uint8_t *src = ds->pixels + (size_t)idx[k] * DJ_CIFAR10_IMAGE_BYTES;
        uint8_t tmp[DJ_CIFAR10_IMAGE_BYTES];
        if (flip && flip[k]) {
            for (int y = 0; y < SIDE; y++)
                for (int xx = 0; xx < SIDE; xx++)
                    memcpy(tmp + ((size_t)y * SIDE + xx) * CH, src + ((size_t)y * SIDE + (SIDE - 1 - xx)) * CH, CH);
            src = tmp;
        }
        int r = dj_normalize_u8(src, HW, norm->mean, norm->std, x->data + (size_t)k * HW * CH);
        if (r < rc) rc = r;
    }
    return rc ? dj_error(rc, "jnd batch: bad normalisation") : DJ_OK;
}

/* ------------------------------------------------------------------ compute */

static void split_free(dj_jnd_cache_split *s) {
    dj_free(s->cam);
    dj_free(s->labels);
    dj_free(s->margin);
    memset(s, 0, sizeof *s);
}

void dj_jnd_cache_split_free(dj_jnd_cache_split *s) {
    if (s) split_free(s);
}

void dj_jnd_cache_free(dj_jnd_cache *c) {
    if (!c) return;
    split_free(&c->train);
    split_free(&c->test);
}

static int split_alloc(dj_jnd_cache_split *s, int n, int flips, int classifiers) {
    memset(s, 0, sizeof *s);
    s->n = n;
    s->flips = flips;
    s->classifiers = classifiers;
    s->h = SIDE;
    s->w = SIDE;
    size_t nf = (size_t)n * flips;
    s->cam = dj_malloc(nf * HW * sizeof *s->cam + 64);
    s->labels = dj_malloc(nf * classifiers * sizeof *s->labels + 64);
    s->margin = dj_malloc(nf * sizeof *s->margin + 64);
    if (!s->cam || !s->labels || !s->margin) {
        split_free(s);
        return dj_error(DJ_ENOMEM, "jnd cache: out of memory for %d images x %d flips", n, flips);
    }
    return DJ_OK;
}

void dj_jnd_cache_cam(const dj_jnd_cache_split *s, int i, int f, float *out) {
    const size_t hw = (size_t)s->h * s->w;
    const uint16_t *src = s->cam + ((size_t)i * s->flips + f) * hw;
    const float inv = 1.0f / 65535.0f;
    for (size_t p = 0; p < hw; p++) out[p] = (float)src[p] * inv;
}

static uint16_t quant16(float v) {
    float q = v * 65535.0f + 0.5f;
    if (!(q > 0)) return 0; /* NaN too */
    if (q >= 65535.0f) return 65535;
    return (uint16_t)q;
}

int dj_jnd_cache_compute(dj_jnd_cache_split *s, dj_classifier *cls, int count, const dj_cifar10 *ds, int flips,
                         const dj_jnd_norm *norm, int batch, dj_jnd_cache_progress_fn progress, void *user) {
    if (!s || !cls || !ds || !norm || count < 1 || count > DJ_JND_MAX_CLASSIFIERS || (flips != 1 && flips != 2) ||
        batch < 1)
        return dj_error(DJ_EINVAL, "jnd cache: bad arguments");
    int rc = split_alloc(s, ds->n, flips, count);
    if (rc) return rc;
    int B = batch < ds->n ? batch : (ds->n > 0 ? ds->n : 1);
    dj_tensor x = {0};
    float *cams[DJ_JND_MAX_CLASSIFIERS] = {0}, *merged = malloc((size_t)B * HW * sizeof(float));
    int32_t *lab = malloc((size_t)B * sizeof *lab), *idx = malloc((size_t)B * sizeof *idx);
    float *marg = malloc((size_t)B * sizeof *marg);
    uint8_t *fl = malloc((size_t)B);
    rc = !merged || !lab || !idx || !fl || !marg ? dj_error(DJ_ENOMEM, "jnd cache: out of memory") : DJ_OK;
    for (int k = 0; !rc && k < count; k++)
        if (!(cams[k] = malloc((size_t)B * HW * sizeof(float)))) rc = dj_error(DJ_ENOMEM, "jnd cache: out of memory");
    if (!rc) rc = dj_tensor_alloc(&x, B, SIDE, SIDE, CH);
    const char *name = flips == 2 ? "train" : "test";
    double t0 = dj_now(), last = -1;
    int total = ds->n * flips, done = 0;
    for (int start = 0; !rc && start < ds->n; start += B) {
        int n = ds->n - start < B ? ds->n - start : B;
        for (int i = 0; i < n; i++) idx[i] = start + i;
        for (int f = 0; !rc && f < flips; f++) {
            memset(fl, f, (size_t)n);
            dj_tensor xv = dj_tensor_view(x.data, n, SIDE, SIDE, CH);
            if ((rc = dj_jnd_make_batch(ds, idx, fl, n, norm, &xv))) break;
            for (int k = 0; !rc && k < count; k++) {
                rc = dj_cam_compute(cls[k].graph, &xv, cams[k], lab, NULL);
                if (!rc) rc = dj_jnd_margin_from_graph(cls[k].graph, n, marg, k == 0);
                for (int i = 0; !rc && i < n; i++) s->labels[((size_t)(start + i) * flips + f) * count + k] = lab[i];
            }
            if (rc) break;
            for (int i = 0; i < n; i++) s->margin[(size_t)(start + i) * flips + f] = marg[i];
            if ((rc = dj_cam_merge((const float *const *)cams, count, (size_t)n * HW, merged))) break;
            for (int i = 0; i < n; i++) {
                uint16_t *dst = s->cam + ((size_t)(start + i) * flips + f) * HW;
                const float *m = merged + (size_t)i * HW;
                for (int p = 0; p < HW; p++) dst[p] = quant16(m[p]);
            }
            done += n;
        }
        double now = dj_now();
        if (!rc && progress && (now - last >= 0.2 || done == total)) {
            last = now;
            dj_jnd_cache_progress p;
            p.split = name;
            p.done = done;
            p.total = total;
            p.images_per_s = now > t0 ? done / (now - t0) : 0;
            p.eta_s = p.images_per_s > 0 ? (total - done) / p.images_per_s : NAN;
            progress(&p, user);
        }
    }
    dj_tensor_free(&x);
    for (int k = 0; k < count; k++) free(cams[k]);
    free(merged);
    free(lab);
    free(idx);
    free(marg);
    free(fl);
    if (rc) split_free(s);
    return rc;
}

/* ------------------------------------------------------------------ keys */

static int cache_key(char *key, size_t size, const dj_jnd_cache_request *req, const uint64_t *hash,
                     const uint64_t *fsize, const dj_cifar10 *ds, int flips) {
    uint64_t ph = dj_fnv1a64(DJ_FNV1A64_OFFSET, ds->pixels, (size_t)ds->n * DJ_CIFAR10_IMAGE_BYTES);
    const dj_jnd_norm *nm = &req->norm;
    int len = snprintf(key, size, "v2;hw=%dx%d;norm=%.9g,%.9g,%.9g/%.9g,%.9g,%.9g;classifiers=", SIDE, SIDE,
                       nm->mean[0], nm->mean[1], nm->mean[2], nm->std[0], nm->std[1], nm->std[2]);
    for (int k = 0; k < req->count && len > 0 && (size_t)len < size; k++)
        len += snprintf(key + len, size - (size_t)len, "%s%llu:%016llx", k ? "," : "", (unsigned long long)fsize[k],
                        (unsigned long long)hash[k]);
    if (len > 0 && (size_t)len < size)
        len += snprintf(key + len, size - (size_t)len, ";images=%d;offset=%d;pixels=%016llx;flips=%d", ds->n,
                        ds->offset, (unsigned long long)ph, flips);
    if (len < 0 || (size_t)len >= size) return dj_error(DJ_EINTERNAL, "jnd cache: key too long");
    return DJ_OK;
}

/* ------------------------------------------------------------------ file */

/* Load split `name` from an open cache file if its key matches. */
static int load_split(const dj_st_file *f, const char *name, const char *key, int flips, int count,
                      dj_jnd_cache_split *s, int *loaded) {
    *loaded = 0;
    char k[64];
    snprintf(k, sizeof k, "%s.key", name);
    const char *have = dj_st_metadata(f, k);
    if (!have || strcmp(have, key)) return DJ_OK;
    snprintf(k, sizeof k, "%s.labels", name);
    const dj_st_tensor *tl = dj_st_find(f, k);
    snprintf(k, sizeof k, "%s.cam", name);
    const dj_st_tensor *tc = dj_st_find(f, k);
    snprintf(k, sizeof k, "%s.margin", name);
    const dj_st_tensor *tm = dj_st_find(f, k);
    if (!tl || !tc || !tm || strcmp(tl->dtype, "I32") || strcmp(tc->dtype, "U16") || strcmp(tm->dtype, "F32") ||
        tl->ndim != 3 || tc->ndim != 4 || tm->ndim != 2 || tm->shape[0] != tl->shape[0] || tm->shape[1] != flips ||
        tl->shape[1] != flips || tl->shape[2] != count || tc->shape[0] != tl->shape[0] || tc->shape[1] != flips ||
        tc->shape[2] != SIDE || tc->shape[3] != SIDE || tl->shape[0] > 1000000)
        return dj_error(DJ_EFORMAT, "%s: split '%s' matches but its tensors have unexpected dtypes or shapes",
                        dj_st_path(f), name);
    int n = (int)tl->shape[0];
    int rc = split_alloc(s, n, flips, count);
    if (rc) return rc;
    memcpy(s->labels, tl->raw, tl->nbytes);
    memcpy(s->cam, tc->raw, tc->nbytes);
    memcpy(s->margin, tm->raw, tm->nbytes);
    for (size_t i = 0; i < tm->count; i++)
        if (!(s->margin[i] >= 0.0f && s->margin[i] <= 1.0f)) {
            split_free(s);
            return dj_error(DJ_EFORMAT, "%s: %s.margin holds %g, not a margin in [0, 1]", dj_st_path(f), name,
                            s->margin[i]);
        }
    for (size_t i = 0; i < tl->count; i++)
        if (s->labels[i] < 0 || s->labels[i] >= DJ_CIFAR10_CLASSES) {
            split_free(s);
            return dj_error(DJ_EFORMAT, "%s: %s.labels holds %d, not a class", dj_st_path(f), name, s->labels[i]);
        }
    *loaded = 1;
    return DJ_OK;
}

typedef struct out_tensor {
    char name[32];
    const char *dtype;
    int64_t shape[4];
    int ndim;
    const void *data;
    size_t nbytes;
} out_tensor;

static int write_cache(const char *path, const dj_jnd_cache *c, const char *train_key, const char *test_key,
                       const dj_jnd_cache_request *req) {
    out_tensor t[6];
    int nt = 0;
    const dj_jnd_cache_split *sp[2] = {&c->train, &c->test};
    const char *names[2] = {"train", "test"};
    /* I32 and F32 first, then U16: every tensor starts at a multiple of its
     * element size. */
    for (int pass = 0; pass < 3; pass++)
        for (int i = 0; i < 2; i++) {
            const dj_jnd_cache_split *s = sp[i];
            if (s->n <= 0) continue;
            out_tensor *o = &t[nt++];
            snprintf(o->name, sizeof o->name, "%s.%s", names[i], pass == 2 ? "cam" : pass ? "margin" : "labels");
            o->shape[0] = s->n;
            o->shape[1] = s->flips;
            if (pass == 1) {
                o->dtype = "F32";
                o->ndim = 2;
                o->data = s->margin;
                o->nbytes = (size_t)s->n * s->flips * sizeof(float);
            } else if (!pass) {
                o->dtype = "I32";
                o->ndim = 3;
                o->shape[2] = s->classifiers;
                o->data = s->labels;
                o->nbytes = (size_t)s->n * s->flips * s->classifiers * sizeof(int32_t);
            } else {
                o->dtype = "U16";
                o->ndim = 4;
                o->shape[2] = s->h;
                o->shape[3] = s->w;
                o->data = s->cam;
                o->nbytes = (size_t)s->n * s->flips * s->h * s->w * sizeof(uint16_t);
            }
        }
    dj_jw w;
    dj_jw_init(&w, 0);
    dj_jw_begin_object(&w);
    dj_jw_key(&w, "__metadata__");
    dj_jw_begin_object(&w);
    dj_jw_key(&w, "format");
    dj_jw_string(&w, CACHE_FORMAT);
    dj_jw_key(&w, "format_version");
    dj_jw_string(&w, CACHE_VERSION);
    if (c->train.n > 0) {
        dj_jw_key(&w, "train.key");
        dj_jw_string(&w, train_key);
    }
    if (c->test.n > 0) {
        dj_jw_key(&w, "test.key");
        dj_jw_string(&w, test_key);
    }
    {
        size_t len = 1;
        for (int k = 0; k < req->count; k++) len += strlen(req->classifier_paths[k]) + 1;
        char *names_txt = malloc(len);
        if (!names_txt) {
            dj_jw_free(&w);
            return dj_error(DJ_ENOMEM, "jnd cache: out of memory");
        }
        names_txt[0] = '\0';
        for (int k = 0; k < req->count; k++) {
            if (k) strcat(names_txt, "\n");
            strcat(names_txt, req->classifier_paths[k]);
        }
        dj_jw_key(&w, "classifiers");
        dj_jw_string(&w, names_txt);
        free(names_txt);
    }
    dj_jw_end_object(&w);
    size_t off = 0;
    for (int i = 0; i < nt; i++) {
        dj_jw_key(&w, t[i].name);
        dj_jw_begin_object(&w);
        dj_jw_key(&w, "dtype");
        dj_jw_string(&w, t[i].dtype);
        dj_jw_key(&w, "shape");
        dj_jw_begin_array(&w);
        for (int d = 0; d < t[i].ndim; d++) dj_jw_int(&w, t[i].shape[d]);
        dj_jw_end_array(&w);
        dj_jw_key(&w, "data_offsets");
        dj_jw_begin_array(&w);
        dj_jw_uint(&w, off);
        dj_jw_uint(&w, off + t[i].nbytes);
        dj_jw_end_array(&w);
        dj_jw_end_object(&w);
        off += t[i].nbytes;
    }
    dj_jw_end_object(&w);
    char *hdr;
    size_t hlen;
    int rc = dj_jw_finish(&w, &hdr, &hlen);
    if (rc) return rc;
    size_t padded = (hlen + 7) / 8 * 8;
    char *h2 = realloc(hdr, padded + 1);
    if (!h2) {
        free(hdr);
        return dj_error(DJ_ENOMEM, "jnd cache: out of memory");
    }
    memset(h2 + hlen, ' ', padded - hlen);
    uint8_t len8[8];
    for (int i = 0; i < 8; i++) len8[i] = (uint8_t)((uint64_t)padded >> (8 * i));
    dj_atomic_file *af = NULL;
    rc = dj_atomic_open(path, &af);
    if (!rc) {
        dj_atomic_write(af, len8, 8);
        dj_atomic_write(af, h2, padded);
        for (int i = 0; i < nt; i++) dj_atomic_write(af, t[i].data, t[i].nbytes);
        rc = dj_atomic_commit(af);
    }
    free(h2);
    if (rc) return dj_error(rc, "cannot write the JND cache '%s': %s", path, dj_last_error());
    return DJ_OK;
}

int dj_jnd_cache_get(dj_jnd_cache *c, const char *path, const dj_jnd_cache_request *req,
                     dj_jnd_cache_progress_fn progress, void *user, int *reused) {
    if (reused) *reused = 0;
    if (!c || !req || !req->train || !req->cls || !req->classifier_paths || req->count < 1 ||
        req->count > DJ_JND_MAX_CLASSIFIERS || req->batch < 1)
        return dj_error(DJ_EINVAL, "jnd cache: bad request");
    memset(c, 0, sizeof *c);
    uint64_t hash[DJ_JND_MAX_CLASSIFIERS], fsize[DJ_JND_MAX_CLASSIFIERS];
    int rc;
    for (int k = 0; k < req->count; k++)
        if ((rc = dj_file_fnv1a64(req->classifier_paths[k], &hash[k], &fsize[k]))) return rc;
    char train_key[KEY_MAX], test_key[KEY_MAX] = "";
    const int want_test = req->test && req->test->n > 0;
    if ((rc = cache_key(train_key, sizeof train_key, req, hash, fsize, req->train, 2))) return rc;
    if (want_test && (rc = cache_key(test_key, sizeof test_key, req, hash, fsize, req->test, 1))) return rc;

    int got_train = 0, got_test = 0;
    if (path && access(path, F_OK) == 0) {
        dj_st_file *f = NULL;
        rc = dj_st_open(path, 0, &f);
        const char *fmt = rc ? NULL : dj_st_metadata(f, "format");
        if (rc || !fmt || strcmp(fmt, CACHE_FORMAT)) {
            dj_log(DJ_LOG_WARN, "%s: not a JND cache this version can read (%s); it will be rebuilt", path,
                   rc ? dj_last_error() : "no 'format' dmvjnd-jnd-cache");
        } else {
            rc = load_split(f, "train", train_key, 2, req->count, &c->train, &got_train);
            if (!rc && want_test) rc = load_split(f, "test", test_key, 1, req->count, &c->test, &got_test);
            if (rc) {
                dj_log(DJ_LOG_WARN, "%s: %s; it will be rebuilt", path, dj_last_error());
                dj_jnd_cache_free(c);
                got_train = got_test = 0;
            }
        }
        dj_st_close(f);
    }
    if (!got_train &&
        (rc = dj_jnd_cache_compute(&c->train, req->cls, req->count, req->train, 2, &req->norm, req->batch, progress,
                                   user)))
        goto fail;
    if (want_test && !got_test &&
        (rc = dj_jnd_cache_compute(&c->test, req->cls, req->count, req->test, 1, &req->norm, req->batch, progress,
                                   user)))
        goto fail;
    if (path && (!got_train || (want_test && !got_test)) &&
        (rc = write_cache(path, c, train_key, test_key, req)))
        goto fail;
    if (reused) *reused = got_train | (got_test << 1);
    return DJ_OK;
fail:
    dj_jnd_cache_free(c);
    return rc;
}
