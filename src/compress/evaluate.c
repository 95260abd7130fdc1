/* The rate-accuracy measurement: every method at every grid quality over a
 * set of images, JND generated once per image. dmvjnd/compress.h. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compress/compress_impl.h"
#include "dmvjnd/codec.h"
#include "dmvjnd/compress.h"
#include "dmvjnd/dmvjnd.h"
#include "util/timer.h"

/* One image coded one way at one quality, measured: methods that code the
 * same way (jnd-quant at q and jnd-rate choosing q, guard's candidates)
 * share it instead of coding and classifying again. */
typedef struct entry {
    int key, q;
    size_t payload, size;
    double psnr, sse;
    int32_t *labels;    /* K labels of the decoded image */
    uint8_t *data;      /* the coded file (for on_coded) */
} entry;

typedef struct icache {
    entry *e;
    int n, cap;
} icache;

/* What the measurement holds for all images between its stages. */
typedef struct ctx {
    const dj_compress_config *cfg;
    const dj_compress_machines *mach;
    const dj_compress_images *im;
    int K, K0;
    float **budget[DJ_BUDGET_KINDS]; /* [kind][image], NULL where unused    */
    int32_t *ref;                    /* labels of the originals, N*K         */
    int ladder[DJ_COMPRESS_MAX_LADDER], nl;
    uint8_t *pass[DJ_BUDGET_KINDS];  /* [kind]: N*nl criterion results      */
    icache *cache;                   /* [image]                              */
    const dj_compress_method *guard; /* the method guard's candidates use    */
    int alloc;                       /* jnd-alloc is measured: keep res, c   */
    dj_jnd_image_result *res;        /* [image]: what JND generation measured */
    float **cam;                     /* [image]: h*w merged CAM c            */
    double *alloc_p, *alloc_bpp;     /* N*nl: jnd-alloc's P and bpp per rung */
    dj_compress_progress_fn on_progress;
    void *user;
    double t0;
    long done, total;
} ctx;

static void progress(ctx *c, const char *stage, long add) {
    c->done += add;
    if (!c->on_progress) return;
    double el = dj_now() - c->t0, rate = el > 0 ? (double)c->done / el : 0;
    c->on_progress(stage, c->done, c->total, rate, rate > 0 ? (double)(c->total - c->done) / rate : NAN, c->user);
}

/* The run of images [i0, i1) that share i0's size, at most `batch` long. */
static int same_size_run(const dj_compress_images *im, int i0, int batch) {
    int i1 = i0;
    while (i1 < im->n && i1 - i0 < batch && im->h[i1] == im->h[i0] && im->w[i1] == im->w[i0]) i1++;
    return i1;
}

/* JND once per image, the budgets the methods need, the originals' labels. */
static int prepare(ctx *c, const int *need) {
    const dj_compress_images *im = c->im;
    int rc = DJ_OK;
    for (int k = 1; k < DJ_BUDGET_KINDS; k++)
        if (need[k] && !(c->budget[k] = calloc((size_t)im->n, sizeof(float *))))
            return dj_error(DJ_ENOMEM, "compress: out of memory");
    c->ref = malloc((size_t)(im->n > 0 ? im->n : 1) * c->K * sizeof *c->ref);
    if (!c->ref) return dj_error(DJ_ENOMEM, "compress: out of memory");
    if (c->alloc) {
        c->res = malloc((size_t)(im->n > 0 ? im->n : 1) * sizeof *c->res);
        c->cam = calloc((size_t)im->n, sizeof *c->cam);
        if (!c->res || !c->cam) return dj_error(DJ_ENOMEM, "compress: out of memory");
    }
    for (int i0 = 0; !rc && i0 < im->n;) {
        int i1 = same_size_run(im, i0, c->cfg->batch), nb = i1 - i0;
        const int h = im->h[i0], w = im->w[i0];
        const size_t per = (size_t)h * w * 3;
        uint8_t *x = malloc((size_t)nb * per);
        float *e = malloc((size_t)nb * per * sizeof *e), *cam = NULL;
        if (c->alloc) cam = malloc((size_t)nb * h * w * sizeof *cam);
        if (!x || !e || (c->alloc && !cam)) rc = dj_error(DJ_ENOMEM, "compress: out of memory");
        for (int i = i0; !rc && i < i1; i++) memcpy(x + (size_t)(i - i0) * per, im->rgb[i], per);
        if (!rc) rc = dj_jnd_generator_run(c->mach->gen, x, nb, h, w, NULL, e, cam, c->alloc ? c->res + i0 : NULL);
        for (int i = i0; !rc && c->alloc && i < i1; i++) {
            if (!(c->cam[i] = malloc((size_t)h * w * sizeof(float))))
                rc = dj_error(DJ_ENOMEM, "compress: out of memory");
            else memcpy(c->cam[i], cam + (size_t)(i - i0) * h * w, (size_t)h * w * sizeof(float));
        }
        if (!rc) rc = dj_compress_classify(c->mach, x, nb, h, w, c->ref + (size_t)i0 * c->K);
        for (int i = i0; !rc && i < i1; i++) {
            float *b[DJ_BUDGET_KINDS] = {0};
            for (int k = 1; k < DJ_BUDGET_KINDS; k++)
                if (need[k] && !(b[k] = c->budget[k][i] = malloc(per * sizeof(float))))
                    rc = dj_error(DJ_ENOMEM, "compress: out of memory");
            if (!rc)
                rc = dj_compress_budgets(c->cfg, im->rgb[i], h, w, e + (size_t)(i - i0) * per, b[DJ_BUDGET_JND],
                                         b[DJ_BUDGET_HVS], b[DJ_BUDGET_FLAT]);
        }
        free(x);
        free(e);
        free(cam);
        progress(c, "jnd", nb);
        i0 = i1;
    }
    return rc;
}

/* The rate methods' criterion on every ladder quality, once per budget. */
static int prepare_ladder(ctx *c, int kind) {
    const dj_compress_images *im = c->im;
    if (c->pass[kind]) return DJ_OK;
    if (!(c->pass[kind] = malloc((size_t)(im->n > 0 ? im->n : 1) * c->nl)))
        return dj_error(DJ_ENOMEM, "compress: out of memory");
    int rc = DJ_OK;
    for (int i = 0; !rc && i < im->n; i++) {
        rc = dj_compress_rate_ladder(c->cfg, im->rgb[i], im->h[i], im->w[i], c->budget[kind][i], c->ladder, c->nl,
                                     c->pass[kind] + (size_t)i * c->nl);
        if ((i + 1) % 100 == 0 || i + 1 == im->n) progress(c, "criterion", (i + 1) % 100 ? (i + 1) % 100 : 100);
    }
    return rc;
}

/* Decode what image i was coded into; *rgb malloc'ed (also on a size error). */
static int decode_image(const ctx *c, int i, const dj_coded *cd, uint8_t **rgb) {
    const int h = c->im->h[i], w = c->im->w[i];
    int dh = 0, dw = 0;
    int rc = dj_compress_decode(c->cfg->codec, cd, rgb, &dh, &dw);
    if (!rc && (dh != h || dw != w))
        rc = dj_error(DJ_EINTERNAL, "compress: image %d decoded at %dx%d, coded %dx%d", i, dw, dh, w, h);
    return rc;
}

/* One image plain-coded at every ladder quality: the decoded images'
 * distortion terms (dj_compress_alloc_distortion) into d (nl rows); the
 * decoded images into dec (nl*h*w*3 bytes) when it is not NULL. */
static int alloc_rungs(const ctx *c, int i, double *d, uint8_t *dec) {
    const dj_compress_images *im = c->im;
    const int h = im->h[i], w = im->w[i];
    const size_t per = (size_t)h * w * 3;
    const dj_compress_method *plain = dj_compress_method_at(0);
    float *sb = dj_compress_scaled_budget(c->budget[DJ_BUDGET_JND][i], per, c->cfg->strength);
    int rc = sb ? DJ_OK : dj_error(DJ_ENOMEM, "compress: out of memory");
    for (int l = 0; !rc && l < c->nl; l++) {
        dj_coded cd = {0};
        uint8_t *out = NULL;
        rc = dj_compress_code(c->cfg, plain, im->rgb[i], h, w, c->ladder[l], NULL, &cd);
        if (!rc) rc = decode_image(c, i, &cd, &out);
        if (!rc)
            dj_compress_alloc_distortion(im->rgb[i], out, sb, c->cam[i], h, w, cd.payload,
                                         d + (size_t)l * DJ_ALLOC_DISTORTION);
        if (!rc && dec) memcpy(dec + (size_t)l * per, out, per);
        free(out);
        dj_coded_free(&cd);
    }
    free(sb);
    return rc;
}

/* jnd-alloc's predicted share kept and bpp on every ladder quality, once. */
static int prepare_alloc(ctx *c) {
    const dj_compress_images *im = c->im;
    if (c->alloc_p) return DJ_OK;
    const size_t nl = (size_t)c->nl, N = (size_t)(im->n > 0 ? im->n : 1);
    c->alloc_p = malloc(N * nl * sizeof *c->alloc_p);
    c->alloc_bpp = malloc(N * nl * sizeof *c->alloc_bpp);
    double *d = malloc(nl * DJ_ALLOC_DISTORTION * sizeof *d);
    int rc = c->alloc_p && c->alloc_bpp && d ? DJ_OK : dj_error(DJ_ENOMEM, "compress: out of memory");
    const dj_compress_calibration *cal = c->cfg->calibration;
    for (int k = 0; !rc && im->n > 0 && k < cal->classifiers; k++)
        if (dj_compress_alloc_classes(c->res[0].classes[k]) != cal->classes[k])
            rc = dj_error(DJ_EINVAL, "jnd-alloc: the calibration's classifier %d has %d class features, the model's %d",
                          k, cal->classes[k], dj_compress_alloc_classes(c->res[0].classes[k]));
    for (int i = 0; !rc && i < im->n; i++) {
        rc = alloc_rungs(c, i, d, NULL);
        for (size_t l = 0; !rc && l < nl; l++) {
            const double *dl = d + l * DJ_ALLOC_DISTORTION;
            c->alloc_p[i * nl + l] = dj_compress_alloc_predict(cal, dl, &c->res[i]);
            c->alloc_bpp[i * nl + l] = dl[3];
        }
        if (!rc && ((i + 1) % 100 == 0 || i + 1 == im->n)) progress(c, "alloc", (i + 1) % 100 ? (i + 1) % 100 : 100);
    }
    free(d);
    return rc;
}

/* Images that code the same way share a key: plain (and WebP's rate and
 * guard, which code plain at q_i), each prefilter, each suppression budget. */
static int coding_key(const dj_compress_config *cfg, const dj_compress_method *m) {
    switch (m->use) {
    case DJ_USE_PLAIN:
    case DJ_USE_ALLOC:
    case DJ_USE_GUARD: return 0; /* jnd-alloc and guard code plain: they share plain's codings */
    case DJ_USE_PREFILTER: return 10 + m->budget;
    default: return cfg->codec == DJ_CODEC_JPEG ? 20 + m->budget : 0;
    }
}

static entry *find(const icache *ic, int key, int q) {
    for (int k = 0; k < ic->n; k++)
        if (ic->e[k].key == key && ic->e[k].q == q) return &ic->e[k];
    return NULL;
}

static entry *add(ctx *c, icache *ic) {
    if (ic->n == ic->cap) {
        int cap = ic->cap ? 2 * ic->cap : 16;
        entry *e = realloc(ic->e, (size_t)cap * sizeof *e);
        if (!e) return NULL;
        ic->e = e;
        ic->cap = cap;
    }
    entry *e = &ic->e[ic->n];
    memset(e, 0, sizeof *e);
    if (!(e->labels = malloc((size_t)c->K * sizeof *e->labels))) return NULL;
    ic->n++;
    return e;
}

/* Guard's last candidate with WebP: lossless WebP, which decodes to x. */
#define GUARD_LOSSLESS 1000

/* One image coded with m at q. Guard's candidates above 100 are its last
 * resort: quality 100 after q - 100 rounds of error feedback, or lossless. */
static int code_one(const ctx *c, const dj_compress_method *m, int i, int q, const float *budget, dj_coded *out) {
    const dj_compress_images *im = c->im;
    if (m->use == DJ_USE_GUARD && q == GUARD_LOSSLESS)
        return dj_webp_encode_lossless(im->rgb[i], im->h[i], im->w[i], out);
    if (m->use == DJ_USE_GUARD && q > 100)
        return dj_compress_code_feedback(c->cfg->codec, im->rgb[i], im->h[i], im->w[i], 100, q - 100, out);
    return dj_compress_code(c->cfg, m, im->rgb[i], im->h[i], im->w[i], q, budget, out);
}

/* Code, decode, measure and classify images idx[j] at q[j] with m, except
 * those already in the cache; classifier calls take up to cfg->batch
 * images of one size. */
static int ensure(ctx *c, const dj_compress_method *m, int n, const int *idx, const int *q) {
    const dj_compress_images *im = c->im;
    const int key = coding_key(c->cfg, m);
    float **bud = m->budget ? c->budget[m->budget] : NULL;
    int *todo = malloc((size_t)(n > 0 ? n : 1) * sizeof *todo), nt = 0;
    if (!todo) return dj_error(DJ_ENOMEM, "compress: out of memory");
    for (int j = 0; j < n; j++)
        if (!find(&c->cache[idx[j]], key, q[j])) todo[nt++] = j;
    int rc = DJ_OK;
    for (int t0 = 0; !rc && t0 < nt;) {
        const int h = im->h[idx[todo[t0]]], w = im->w[idx[todo[t0]]];
        int t1 = t0;
        while (t1 < nt && t1 - t0 < c->cfg->batch && im->h[idx[todo[t1]]] == h && im->w[idx[todo[t1]]] == w) t1++;
        const size_t per = (size_t)h * w * 3;
        uint8_t *dec = malloc((size_t)(t1 - t0) * per);
        int32_t *lab = malloc((size_t)(t1 - t0) * c->K * sizeof *lab);
        entry **ent = calloc((size_t)(t1 - t0), sizeof *ent);
        if (!dec || !lab || !ent) rc = dj_error(DJ_ENOMEM, "compress: out of memory");
        for (int t = t0; !rc && t < t1; t++) {
            const int j = todo[t], i = idx[j];
            dj_coded cd = {0};
            uint8_t *d = NULL;
            rc = code_one(c, m, i, q[j], bud ? bud[i] : NULL, &cd);
            if (!rc) rc = decode_image(c, i, &cd, &d);
            entry *e = rc ? NULL : add(c, &c->cache[i]);
            if (!rc && !e) rc = dj_error(DJ_ENOMEM, "compress: out of memory");
            if (!rc) {
                ent[t - t0] = e;
                e->key = key, e->q = q[j], e->payload = cd.payload, e->size = cd.size;
                e->data = cd.data; /* the entry owns the file now */
                cd.data = NULL;
                e->psnr = dj_psnr_u8(im->rgb[i], d, per);
                for (size_t p = 0; p < per; p++) {
                    double df = (double)d[p] - (double)im->rgb[i][p];
                    e->sse += df * df;
                }
                memcpy(dec + (size_t)(t - t0) * per, d, per);
            }
            free(d);
            dj_coded_free(&cd);
        }
        if (!rc) rc = dj_compress_classify(c->mach, dec, t1 - t0, h, w, lab);
        for (int t = t0; !rc && t < t1; t++) memcpy(ent[t - t0]->labels, lab + (size_t)(t - t0) * c->K, (size_t)c->K * sizeof *lab);
        free(dec);
        free(lab);
        free(ent);
        t0 = t1;
    }
    free(todo);
    return rc;
}

/* guard's view of a candidate quality (dj_compress_labels_fn) */
static int guard_labels(void *user, int n, const int *idx, const int *q, int32_t *labels) {
    ctx *c = user;
    int rc = ensure(c, c->guard, n, idx, q);
    for (int j = 0; !rc && j < n; j++)
        memcpy(labels + (size_t)j * c->K, find(&c->cache[idx[j]], coding_key(c->cfg, c->guard), q[j])->labels,
               (size_t)c->K * sizeof *labels);
    return rc;
}

/* Every image with m at its own quality qi[i]: the point's figures. */
static int measure(ctx *c, const dj_compress_method *m, const int *qi, dj_compress_point *pt,
                   dj_compress_coded_fn on_coded, void *user) {
    const dj_compress_images *im = c->im;
    const int K = c->K, K0 = c->K0, N = im->n, key = coding_key(c->cfg, m);
    int *idx = malloc((size_t)N * sizeof *idx);
    if (!idx) return dj_error(DJ_ENOMEM, "compress: out of memory");
    for (int i = 0; i < N; i++) idx[i] = i;
    int rc = ensure(c, m, N, idx, qi);
    free(idx);
    double payload = 0, size = 0, pixels = 0, psnr = 0, sse = 0, vals = 0, qsum = 0;
    long kept[DJ_JND_MAX_CLASSIFIERS + DJ_COMPRESS_MAX_EXTRA] = {0}, correct = 0;
    for (int i = 0; !rc && i < N; i++) {
        const entry *e = find(&c->cache[i], key, qi[i]);
        const size_t per = (size_t)im->h[i] * im->w[i] * 3;
        payload += (double)e->payload;
        size += (double)e->size;
        pixels += (double)per / 3;
        vals += (double)per;
        qsum += qi[i] > 100 ? 100 : qi[i]; /* guard's last-resort candidates count as 100 */
        pt->feedback += qi[i] > 100 && qi[i] != GUARD_LOSSLESS;
        pt->lossless += qi[i] == GUARD_LOSSLESS;
        psnr += e->psnr;
        sse += e->sse;
        for (int k = 0; k < K; k++) kept[k] += e->labels[k] == c->ref[(size_t)i * K + k];
        if (im->truth)
            for (int k = 0; k < K0; k++) correct += e->labels[k] == im->truth[i];
        if (on_coded) {
            dj_coded cd = {e->data, e->size, e->payload};
            uint8_t *d = NULL;
            int dh = 0, dw = 0;
            rc = dj_compress_decode(c->cfg->codec, &cd, &d, &dh, &dw);
            if (!rc) rc = on_coded(pt, i, qi[i], &cd, d, dh, dw, user);
            free(d);
        }
    }
    if (rc) return rc;
    progress(c, pt->method, N);
    pt->images = N;
    pt->bpp = pixels > 0 ? 8 * payload / pixels : NAN;
    pt->file_bpp = pixels > 0 ? 8 * size / pixels : NAN;
    pt->rca_mean = 0;
    for (int k = 0; k < K0; k++) pt->rca_mean += (pt->rca[k] = N ? (double)kept[k] / N : NAN) / K0;
    pt->extra_rca_mean = c->mach->nextra ? 0 : NAN;
    for (int k = 0; k < c->mach->nextra; k++)
        pt->extra_rca_mean += (pt->extra_rca[k] = N ? (double)kept[K0 + k] / N : NAN) / c->mach->nextra;
    pt->accuracy = im->truth && N ? (double)correct / ((double)N * K0) : NAN;
    pt->psnr_db = N ? psnr / N : NAN;
    double mse = vals > 0 ? sse / vals : NAN;
    pt->psnr_mse_db = mse > 0 ? fmin(10 * log10(255.0 * 255.0 / mse), DJ_JND_PSNR_MAX) : DJ_JND_PSNR_MAX;
    pt->mean_q = N ? qsum / N : NAN;
    return DJ_OK;
}

static void ctx_free(ctx *c) {
    for (int k = 0; k < DJ_BUDGET_KINDS; k++) {
        if (c->budget[k])
            for (int i = 0; i < c->im->n; i++) free(c->budget[k][i]);
        free(c->budget[k]);
        free(c->pass[k]);
    }
    free(c->ref);
    free(c->res);
    for (int i = 0; c->cam && i < c->im->n; i++) free(c->cam[i]);
    free(c->cam);
    free(c->alloc_p);
    free(c->alloc_bpp);
    for (int i = 0; c->cache && i < c->im->n; i++) {
        for (int k = 0; k < c->cache[i].n; k++) {
            free(c->cache[i].e[k].labels);
            free(c->cache[i].e[k].data);
        }
        free(c->cache[i].e);
    }
    free(c->cache);
}

int dj_compress_evaluate(const dj_compress_config *cfg, const dj_compress_machines *machines,
                         const dj_compress_images *im, const char *const *methods, int nmethods, const int *grid,
                         int ngrid, dj_compress_coded_fn on_coded, dj_compress_progress_fn on_progress, void *user,
                         dj_compress_result *res) {
    memset(res, 0, sizeof *res);
    int rc = dj_compress_config_check(cfg);
    if (rc) return rc;
    if (!machines || !machines->gen || !im || im->n < 1 || nmethods < 1 || ngrid < 1)
        return dj_error(DJ_EINVAL, "compress: nothing to measure (images, methods and qualities are required)");
    if (machines->nextra > DJ_COMPRESS_MAX_EXTRA)
        return dj_error(DJ_EINVAL, "compress: at most %d extra classifiers", DJ_COMPRESS_MAX_EXTRA);
    for (int g = 0; g < ngrid; g++)
        if (grid[g] < 1 || grid[g] > 100) return dj_error(DJ_EINVAL, "compress: quality %d is outside 1..100", grid[g]);
    const dj_compress_method **ms = calloc((size_t)nmethods, sizeof *ms);
    if (!ms) return dj_error(DJ_ENOMEM, "compress: out of memory");
    int need[DJ_BUDGET_KINDS] = {0}, npoints = 0;
    for (int j = 0; !rc && j < nmethods; j++) {
        if ((rc = dj_compress_method_find(methods[j], cfg->codec, &ms[j]))) break;
        need[DJ_BUDGET_JND] = 1; /* hvs (matched) and flat take the jnd mean */
        need[ms[j]->budget] = 1;
        npoints += ms[j]->use == DJ_USE_GUARD ? 1 : ngrid;
    }
    ctx c = {.cfg = cfg, .mach = machines, .im = im, .on_progress = on_progress, .user = user, .t0 = dj_now()};
    for (int j = 0; !rc && j < nmethods; j++)
        if (ms[j]->use == DJ_USE_ALLOC) {
            c.alloc = 1;
            rc = dj_compress_calibration_check(cfg->calibration, cfg->codec, machines->gen, cfg->strength);
        }
    c.K0 = dj_jnd_generator_count(machines->gen);
    c.K = c.K0 + machines->nextra;
    c.nl = dj_compress_ladder(cfg, grid, ngrid, c.ladder);
    c.cache = calloc((size_t)im->n, sizeof *c.cache);
    if (!rc && !c.cache) rc = dj_error(DJ_ENOMEM, "compress: out of memory");
    int *qi = malloc((size_t)im->n * sizeof *qi);
    res->points = calloc((size_t)(npoints > 0 ? npoints : 1), sizeof *res->points);
    if (!rc && (!qi || !res->points)) rc = dj_error(DJ_ENOMEM, "compress: out of memory");
    res->codec = cfg->codec;
    res->strength = cfg->strength;
    res->classifiers = c.K0;
    res->extras = machines->nextra;
    res->images = im->n;
    for (int k = 0; k < c.K0; k++) snprintf(res->tags[k], sizeof res->tags[k], "%s", dj_jnd_generator_tag(machines->gen, k));
    for (int k = 0; k < machines->nextra; k++)
        snprintf(res->tags[c.K0 + k], sizeof res->tags[0], "%s", machines->extra[k].arch);
    c.total = (long)im->n * (1 + npoints);
    if (!rc) rc = prepare(&c, need);
    res->gen_seconds = dj_now() - c.t0;
    double sj = 0, sh = 0, nv = 0;
    for (int i = 0; !rc && i < im->n; i++) {
        size_t per = (size_t)im->h[i] * im->w[i] * 3;
        for (size_t p = 0; p < per; p++) {
            sj += c.budget[DJ_BUDGET_JND][i][p];
            if (c.budget[DJ_BUDGET_HVS]) sh += c.budget[DJ_BUDGET_HVS][i][p];
        }
        nv += (double)per;
    }
    res->mean_jnd_budget = nv > 0 ? sj / nv : NAN;
    res->mean_hvs_budget = nv > 0 && c.budget[DJ_BUDGET_HVS] ? sh / nv : NAN;
    double t1 = dj_now();
    for (int j = 0; !rc && j < nmethods; j++) {
        const dj_compress_method *m = ms[j];
        if (m->use == DJ_USE_RATE || m->use == DJ_USE_GUARD) {
            int kind = m->use == DJ_USE_GUARD ? DJ_BUDGET_JND : m->budget;
            c.total += (long)im->n * (c.pass[kind] ? 0 : 1);
            if ((rc = prepare_ladder(&c, kind))) break;
        }
        if (m->use == DJ_USE_ALLOC) {
            c.total += (long)im->n * (c.alloc_p ? 0 : 1);
            if ((rc = prepare_alloc(&c))) break;
        }
        for (int g = 0; !rc && g < (m->use == DJ_USE_GUARD ? 1 : ngrid); g++) {
            dj_compress_point *pt = &res->points[res->npoints];
            snprintf(pt->method, sizeof pt->method, "%s", m->name);
            pt->quality = m->use == DJ_USE_GUARD ? 0 : grid[g];
            if (m->use == DJ_USE_GUARD) {
                /* start at jnd-rate's choice with no cap: the coarsest quality meeting the criterion */
                int *start = malloc((size_t)im->n * sizeof *start);
                uint8_t *fb = malloc((size_t)im->n);
                if (!start || !fb) rc = dj_error(DJ_ENOMEM, "compress: out of memory");
                for (int i = 0; !rc && i < im->n; i++) {
                    int q0 = dj_compress_rate_pick(c.ladder, c.nl, c.pass[DJ_BUDGET_JND] + (size_t)i * c.nl, 100);
                    start[i] = 0;
                    while (start[i] < c.nl - 1 && c.ladder[start[i]] < q0) start[i]++;
                }
                /* the plain ladder, then quality 100 with 1..guard_feedback rounds of error feedback,
                 * then (WebP) lossless */
                int lad[DJ_COMPRESS_MAX_LADDER + DJ_COMPRESS_MAX_FEEDBACK + 1], nl = c.nl;
                memcpy(lad, c.ladder, (size_t)c.nl * sizeof *lad);
                for (int r = 1; r <= cfg->guard_feedback; r++) lad[nl++] = 100 + r;
                if (cfg->codec == DJ_CODEC_WEBP && cfg->guard_lossless) lad[nl++] = GUARD_LOSSLESS;
                c.guard = m;
                if (!rc)
                    rc = dj_compress_guard(im->n, c.K, guard_labels, &c, lad, c.nl, nl, start, c.ref,
                                           cfg->guard_all ? c.K : c.K0, qi, fb);
                for (int i = 0; !rc && i < im->n; i++) pt->fallback += fb[i];
                free(start);
                free(fb);
            } else if (m->use == DJ_USE_ALLOC) {
                const double lambda = dj_compress_alloc_lambda(grid[g]);
                for (int i = 0; i < im->n; i++) {
                    const size_t o = (size_t)i * c.nl;
                    qi[i] = c.ladder[dj_compress_alloc_pick(c.alloc_p + o, c.alloc_bpp + o, c.nl, lambda)];
                }
            } else {
                for (int i = 0; i < im->n; i++)
                    qi[i] = m->use == DJ_USE_RATE
                                ? dj_compress_rate_pick(c.ladder, c.nl, c.pass[m->budget] + (size_t)i * c.nl, grid[g])
                                : grid[g];
            }
            if (!rc) rc = measure(&c, m, qi, pt, on_coded, user);
            if (!rc) res->npoints++;
        }
    }
    res->code_seconds = dj_now() - t1;
    if (!rc) rc = dj_compress_summarise(res);
    free(qi);
    free((void *)ms);
    ctx_free(&c);
    if (rc) dj_compress_result_free(res);
    return rc;
}

void dj_compress_result_free(dj_compress_result *res) {
    if (!res) return;
    free(res->points);
    free(res->summary);
    memset(res, 0, sizeof *res);
}

int dj_compress_calibrate(const dj_compress_config *cfg, const dj_compress_machines *machines,
                          const dj_compress_images *im, dj_compress_progress_fn on_progress, void *user,
                          dj_compress_calibration *cal) {
    memset(cal, 0, sizeof *cal);
    int rc = dj_compress_config_check(cfg);
    if (rc) return rc;
    if (!machines || !machines->gen || !im || im->n < 1)
        return dj_error(DJ_EINVAL, "compress calibrate: no images to fit on");
    /* the generator's classifiers only: the calibration predicts what they keep */
    dj_compress_machines four = {.gen = machines->gen};
    ctx c = {.cfg = cfg, .mach = &four, .im = im, .on_progress = on_progress, .user = user, .t0 = dj_now(),
             .alloc = 1};
    c.K0 = c.K = dj_jnd_generator_count(machines->gen);
    static const int top[] = {98, 100}; /* the finest rungs, where the labels that survive are decided */
    c.nl = dj_compress_ladder(cfg, top, 2, c.ladder);
    const long S = (long)im->n * c.nl;
    double *d = malloc((size_t)S * DJ_ALLOC_DISTORTION * sizeof *d);
    const dj_jnd_image_result **img = malloc((size_t)S * sizeof *img);
    uint8_t *kept = malloc((size_t)S * c.K);
    int need[DJ_BUDGET_KINDS] = {[DJ_BUDGET_JND] = 1};
    c.total = (long)im->n * (1 + c.nl);
    if (!d || !img || !kept) rc = dj_error(DJ_ENOMEM, "compress calibrate: out of memory for %ld samples", S);
    if (!rc) rc = prepare(&c, need);
    /* images of one size, cfg->batch decoded candidates per classifier call */
    const int per_call = cfg->batch / c.nl > 0 ? cfg->batch / c.nl : 1;
    uint8_t *dec = NULL;
    int32_t *lab = NULL;
    for (int i0 = 0; !rc && i0 < im->n;) {
        const int i1 = same_size_run(im, i0, per_call), nb = i1 - i0;
        const size_t per = (size_t)im->h[i0] * im->w[i0] * 3;
        uint8_t *dn = realloc(dec, (size_t)nb * c.nl * per);
        int32_t *ln = realloc(lab, (size_t)nb * c.nl * c.K * sizeof *lab);
        if (dn) dec = dn;
        if (ln) lab = ln;
        if (!dn || !ln) rc = dj_error(DJ_ENOMEM, "compress calibrate: out of memory");
        for (int i = i0; !rc && i < i1; i++)
            rc = alloc_rungs(&c, i, d + (size_t)i * c.nl * DJ_ALLOC_DISTORTION, dec + (size_t)(i - i0) * c.nl * per);
        if (!rc) rc = dj_compress_classify(&four, dec, nb * c.nl, im->h[i0], im->w[i0], lab);
        for (int i = i0; !rc && i < i1; i++)
            for (int l = 0; l < c.nl; l++) {
                const size_t s = (size_t)i * c.nl + l, j = (size_t)(i - i0) * c.nl + l;
                img[s] = &c.res[i];
                for (int k = 0; k < c.K; k++) kept[s * c.K + k] = lab[j * c.K + k] == c.ref[(size_t)i * c.K + k];
            }
        if (!rc) progress(&c, "calibrate", (long)nb * c.nl);
        i0 = i1;
    }
    free(dec);
    free(lab);
    if (!rc) rc = dj_compress_alloc_fit(S, c.K, d, img, kept, cal);
    if (!rc) {
        cal->codec = cfg->codec;
        cal->strength = cfg->strength;
        cal->images = im->n;
        for (int k = 0; k < c.K; k++)
            snprintf(cal->tags[k], sizeof cal->tags[k], "%s", dj_jnd_generator_tag(machines->gen, k));
    }
    free(d);
    free(img);
    free(kept);
    ctx_free(&c);
    return rc;
}
