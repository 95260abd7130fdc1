/* The JND training job: dj_jnd_train, the trainer that the shared job
 * (src/train/job.c: checks, resume, epochs, CSV, checkpoints, divergence)
 * runs. Per epoch it trains with src/jnd/train_step.c and evaluates on the
 * test records; the classifiers' labels and CAMs come from the cache
 * (src/jnd/cache.c). See dmvjnd/jnd_train.h.
 *
 * Order of the random draws (the job's one generator, serially): E-D
 * initialisation (fresh runs only; a resume loads the weights and then the
 * generator from the checkpoint), then per epoch the permutation
 * (dj_cifar10_epoch_order) and per batch one flip draw per image
 * (dj_augment_draw with pad 0: torchvision's RandomHorizontalFlip). The E-D
 * draws nothing (no dropout); evaluation draws nothing. A resumed run is
 * bit-identical with the same seed and thread count. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dmvjnd/checkpoint.h"
#include "dmvjnd/dmvjnd.h"
#include "dmvjnd/fileio.h"
#include "dmvjnd/jnd_train.h"
#include "dmvjnd/models.h"
#include "dmvjnd/safetensors.h"
#include "dmvjnd/train_job.h"
#include "jnd/train_internal.h"
#include "util/timer.h"

enum { SIDE = DJ_CIFAR10_SIDE, HW = DJ_CIFAR10_SIDE * DJ_CIFAR10_SIDE, CH = DJ_CIFAR10_CHANNELS };

/* The job (checks, resume, epochs, files) and what this trainer adds. */
typedef struct trainer {
    dj_train_job job;
    const dj_jnd_train_config *cfg;
    const dj_jnd_train_callbacks *cb;
    dj_jnd_train_result *res;
    dj_cifar10 train, test;  /* test: records 0..eval_limit-1 */
    dj_classifier cls[DJ_JND_MAX_CLASSIFIERS];
    dj_graph *cg[DJ_JND_MAX_CLASSIFIERS];
    int K;
    dj_jnd_cache cache;
    dj_graph *ed;
    dj_jnd_step *step_ctx;
    char header[4096];
    dj_jnd_epoch_stats st; /* the epoch in progress */
    /* batch buffers */
    dj_tensor x, c;
    int32_t *idx, *labels;
    float *margin;
    uint8_t *flips;
} trainer;

/* ================================================================ metrics */

/* Weighted sums of step stats. */
typedef struct acc {
    double n, loss, loss1, loss2, loss3, nt, n0, psnr, mae;
    double correct[DJ_JND_MAX_CLASSIFIERS];
} acc;

static void acc_add(acc *a, const dj_jnd_step_stats *s, int K) {
    double n = s->n;
    a->n += n;
    a->loss += s->loss * n;
    a->loss1 += s->loss1 * n;
    a->loss2 += s->loss2 * n;
    a->loss3 += s->loss3 * n;
    a->nt += s->n_target * n;
    a->n0 += s->n0 * n;
    a->psnr += s->psnr * n;
    a->mae += s->mean_abs_e * n;
    for (int k = 0; k < K; k++) a->correct[k] += s->correct[k];
}

static void acc_metrics(const acc *a, int K, dj_jnd_metrics *m) {
    memset(m, 0, sizeof *m);
    m->images = (int)a->n;
    double d = a->n > 0 ? a->n : NAN;
    m->loss = a->loss / d;
    m->loss1 = a->loss1 / d;
    m->loss2 = a->loss2 / d;
    m->loss3 = a->loss3 / d;
    m->n_target = a->nt / d;
    m->n0 = a->n0 / d;
    m->psnr = a->psnr / d;
    m->mean_abs_e = a->mae / d;
    m->rca_mean = 0;
    for (int k = 0; k < K; k++) {
        m->rca[k] = a->correct[k] / d;
        m->rca_mean += m->rca[k] / K;
    }
}

/* ============================================================== batches */

/* x, c, margins and labels of a batch of `n` images idx[] with flips fl[]
 * (NULL: none). */
static int fill_batch(trainer *j, const dj_cifar10 *ds, const dj_jnd_cache_split *cs, const int32_t *idx,
                      const uint8_t *fl, int n, dj_tensor *x, dj_tensor *c) {
    *x = dj_tensor_view(j->x.data, n, SIDE, SIDE, CH);
    *c = dj_tensor_view(j->c.data, n, SIDE, SIDE, 1);
    int rc = dj_jnd_make_batch(ds, idx, fl, n, &j->cfg->norm, x);
    if (rc) return rc;
    for (int i = 0; i < n; i++) {
        int f = fl ? fl[i] : 0;
        dj_jnd_cache_cam(cs, idx[i], f, c->data + (size_t)i * HW);
        j->margin[i] = cs->margin[(size_t)idx[i] * cs->flips + f];
        const int32_t *l = cs->labels + ((size_t)idx[i] * cs->flips + f) * j->K;
        for (int k = 0; k < j->K; k++) j->labels[(size_t)i * j->K + k] = l[k];
    }
    return DJ_OK;
}

/* Test records 0..eval_limit-1, inference mode: the stored 8-bit x_hat and
 * the float one. */
static int evaluate(trainer *j, dj_jnd_metrics *stored, dj_jnd_metrics *as_float) {
    int N = j->cfg->eval_limit, B = j->cfg->batch;
    acc a, b;
    memset(&a, 0, sizeof a);
    memset(&b, 0, sizeof b);
    for (int start = 0; start < N; start += B) {
        int n = N - start < B ? N - start : B;
        for (int i = 0; i < n; i++) j->idx[i] = start + i;
        dj_tensor x, c;
        int rc = fill_batch(j, &j->test, &j->cache.test, j->idx, NULL, n, &x, &c);
        dj_jnd_step_stats s1, s2;
        const float *margin = j->cfg->ed.margin_input ? j->margin : NULL;
        if (!rc) rc = dj_jnd_step_eval(j->step_ctx, &x, &c, margin, j->labels, &s1, &s2);
        if (rc) return rc;
        acc_add(&a, &s1, j->K);
        acc_add(&b, &s2, j->K);
    }
    acc_metrics(&a, j->K, stored);
    acc_metrics(&b, j->K, as_float);
    return DJ_OK;
}

/* ====================================================== the job's parts */

static void report_step(trainer *t, const acc *a) {
    dj_jnd_train_progress p;
    dj_jnd_metrics m;
    acc_metrics(a, t->K, &m);
    DJ_TRAIN_JOB_PROGRESS_TO(&p, &t->job, a->n);
    p.loss = m.loss;
    p.loss1 = m.loss1;
    p.loss2 = m.loss2;
    p.loss3 = m.loss3;
    p.rca = m.rca_mean;
    p.psnr = m.psnr;
    p.mean_abs_e = m.mean_abs_e;
    t->cb->on_step(&p, t->cb->user);
}

static int train_epoch(dj_train_job *j, void *user) {
    trainer *t = user;
    const dj_jnd_train_config *cfg = t->cfg;
    int N = t->train.n, B = cfg->batch, K = t->K;
    dj_augment aug = {0, cfg->flip_p};
    acc a;
    memset(&a, 0, sizeof a);
    for (int b = 0; b < j->steps_per_epoch; b++) {
        int n = N - b * B < B ? N - b * B : B;
        const int32_t *idx = j->order + (size_t)b * B;
        for (int i = 0; i < n; i++) t->flips[i] = cfg->flip_p > 0 ? (uint8_t)dj_augment_draw(&aug, &j->rng).flip : 0;
        dj_tensor x, c;
        int rc = fill_batch(t, &t->train, &t->cache.train, idx, t->flips, n, &x, &c);
        if (rc) return rc;
        double lr = dj_train_job_lr(j);
        dj_jnd_step_stats s;
        rc = dj_jnd_step_run(t->step_ctx, &x, &c, cfg->ed.margin_input ? t->margin : NULL, t->labels, j->opt,
                             (float)lr, &j->rng, &s);
        if (rc == DJ_ENUMERIC) {
            char what[256];
            snprintf(what, sizeof what, "%s", dj_last_error());
            return dj_train_job_diverged(j, what, lr);
        }
        if (rc) return rc;
        dj_train_job_step_done(j);
        acc_add(&a, &s, K);
        if (t->cb && t->cb->on_step) report_step(t, &a);
    }
    memset(&t->st, 0, sizeof t->st);
    acc_metrics(&a, K, &t->st.train);
    return DJ_OK;
}

static int evaluate_epoch(dj_train_job *j, void *user) {
    trainer *t = user;
    dj_jnd_epoch_stats *st = &t->st;
    for (int k = 0; k < DJ_JND_MAX_CLASSIFIERS; k++) st->test.rca[k] = st->test_float.rca[k] = NAN;
    if (t->cfg->eval_limit > 0) return evaluate(t, &st->test, &st->test_float);
    dj_jnd_metrics *m[2] = {&st->test, &st->test_float};
    for (int i = 0; i < 2; i++) {
        m[i]->loss = m[i]->loss1 = m[i]->loss2 = m[i]->loss3 = m[i]->n_target = m[i]->n0 = NAN;
        m[i]->rca_mean = m[i]->psnr = m[i]->mean_abs_e = NAN;
    }
    return DJ_OK;
}

static int finish_epoch(dj_train_job *j, char *row, size_t size, void *user) {
    trainer *t = user;
    dj_jnd_epoch_stats *st = &t->st;
    const dj_train_job_epoch *e = &j->epoch;
    DJ_TRAIN_JOB_EPOCH_TO(st, e);
    st->classifiers = t->K;
    st->images_per_s = e->train_s > 0 ? st->train.images / e->train_s : 0;
    t->res->epochs_done = e->epoch;
    t->res->steps = e->step;
    t->res->last = *st;
    return dj_jnd_csv_row(row, size, st, t->K);
}

static int epoch_done(dj_train_job *j, void *user) {
    trainer *t = user;
    if (t->cb && t->cb->on_epoch) t->cb->on_epoch(&t->st, t->cb->user);
    return DJ_OK;
}

/* ====================================================== the model file */

/* After the last epoch (or a resume of a finished run): the test metrics of
 * the final weights, for the model file. */
static int final_eval(trainer *t) {
    dj_jnd_epoch_stats *st = &t->res->last;
    if (st->epoch == t->cfg->epochs && (st->test.images > 0 || t->cfg->eval_limit == 0)) return DJ_OK;
    st->epoch = t->cfg->epochs;
    st->epochs = t->cfg->epochs;
    st->classifiers = t->K;
    st->step = t->job.step;
    if (t->cfg->eval_limit > 0) return evaluate(t, &st->test, &st->test_float);
    return DJ_OK;
}

static int write_model(trainer *j) {
    const dj_jnd_train_config *cfg = j->cfg;
    const dj_jnd_epoch_stats *st = &j->res->last;
    dj_kv extra[DJ_TRAIN_JOB_MAX_RECIPE + 12];
    int n = j->job.nrecipe;
    memcpy(extra, j->job.recipe, (size_t)n * sizeof *extra);
    char v[8][32];
    snprintf(v[0], 32, "%.3f", j->res->wall_s);
    extra[n++] = (dj_kv){"jnd.final.wall_s", v[0]};
    snprintf(v[1], 32, "%d", st->epoch);
    extra[n++] = (dj_kv){"jnd.final.epoch", v[1]};
    if (st->train.images > 0) {
        snprintf(v[2], 32, "%.6f", st->train.rca_mean);
        extra[n++] = (dj_kv){"jnd.final.train_rca_mean", v[2]};
        snprintf(v[3], 32, "%.4f", st->train.psnr);
        extra[n++] = (dj_kv){"jnd.final.train_psnr", v[3]};
    }
    if (st->test.images > 0) {
        snprintf(v[4], 32, "%.6f", st->test.rca_mean);
        extra[n++] = (dj_kv){"jnd.final.test_rca_mean", v[4]};
        snprintf(v[5], 32, "%.4f", st->test.psnr);
        extra[n++] = (dj_kv){"jnd.final.test_psnr", v[5]};
        snprintf(v[6], 32, "%d", st->test.images);
        extra[n++] = (dj_kv){"jnd.final.test_images", v[6]};
        snprintf(v[7], 32, "%.4f", st->test.mean_abs_e);
        extra[n++] = (dj_kv){"jnd.final.test_mean_abs_e", v[7]};
    }
    dj_jnd_model_info info;
    memset(&info, 0, sizeof info);
    info.ed_cfg = cfg->ed;
    info.h = info.w = SIDE;
    info.e_unit = cfg->e_unit;
    info.clip = cfg->clip;
    info.alpha = cfg->alpha;
    info.beta = cfg->beta;
    info.norm = cfg->norm;
    info.classifiers = cfg->classifiers;
    info.nclassifiers = cfg->nclassifiers;
    return dj_jnd_model_save(cfg->out_path, j->ed, &info, extra, n);
}


static int save(dj_train_job *j, void *user) {
    trainer *t = user;
    if (!t->cfg->out_path) return DJ_OK;
    t->res->wall_s = dj_train_job_wall(j);
    int rc = final_eval(t);
    return rc ? rc : write_model(t);
}

/* --init: start the E-D from a trained model file's weights (fine-tuning),
 * tensor by tensor by name. A model without the margin input can start one
 * with it: enc.0.weight gains a fifth input channel of zero weights, so the
 * new E-D starts out computing exactly what the old one did. */
static int init_from_model(trainer *j) {
    const char *path = j->cfg->init_path;
    dj_st_file *f = NULL;
    int rc = dj_st_open(path, DJ_ST_CHECK_FINITE, &f);
    if (rc) return rc;
    const char *arch = dj_st_metadata(f, "arch");
    const char *w = dj_st_metadata(f, "jnd.width"), *sl = dj_st_metadata(f, "jnd.slope");
    if (!arch || strcmp(arch, "jnd_ed")) {
        rc = dj_error(DJ_EFORMAT, "%s: --init needs a DMV-JND model file (arch '%s', expected 'jnd_ed')", path,
                      arch ? arch : "(none)");
        goto out;
    }
    if (!w || !sl || (float)strtod(w, NULL) != j->cfg->ed.width || (float)strtod(sl, NULL) != j->cfg->ed.slope) {
        rc = dj_error(DJ_EINVAL, "%s: --init: the model has E-D width %s and slope %s, this run %g and %g", path,
                      w ? w : "?", sl ? sl : "?", j->cfg->ed.width, j->cfg->ed.slope);
        goto out;
    }
    int n = dj_graph_num_params(j->ed);
    for (int i = 0; i < n && !rc; i++) {
        const dj_param *q = dj_graph_param(j->ed, i);
        const dj_st_tensor *t = dj_st_find(f, q->name);
        int same = t && t->f32 && t->ndim == q->ndim;
        for (int d = 0; same && d < q->ndim; d++) same = t->shape[d] == q->shape[d];
        if (same) {
            memcpy(q->data, t->f32, q->count * sizeof(float));
            continue;
        }
        /* [O, 4, kh, kw] into [O, 5, kh, kw]: the margin channel starts at 0 */
        if (t && t->f32 && !strcmp(q->name, "enc.0.weight") && q->ndim == 4 && t->ndim == 4 &&
            t->shape[0] == q->shape[0] && t->shape[1] == DJ_JND_ED_IN_CHANNELS &&
            q->shape[1] == DJ_JND_ED_IN_CHANNELS + 1 && t->shape[2] == q->shape[2] && t->shape[3] == q->shape[3]) {
            size_t k = (size_t)q->shape[2] * q->shape[3];
            for (int64_t o = 0; o < q->shape[0]; o++) {
                memcpy(q->data + (size_t)o * 5 * k, t->f32 + (size_t)o * 4 * k, 4 * k * sizeof(float));
                memset(q->data + ((size_t)o * 5 + 4) * k, 0, k * sizeof(float));
            }
            continue;
        }
        rc = dj_error(DJ_EFORMAT, "%s: --init: tensor '%s' is %s in the file, the E-D's is %lldx%lldx%lldx%lld", path,
                      q->name, t ? "of another shape or type" : "missing", (long long)q->shape[0],
                      (long long)(q->ndim > 1 ? q->shape[1] : 1), (long long)(q->ndim > 2 ? q->shape[2] : 1),
                      (long long)(q->ndim > 3 ? q->shape[3] : 1));
    }
out:
    dj_st_close(f);
    return rc;
}

/* ============================================================== setup */

static int load_data(trainer *t) {
    const dj_jnd_train_config *cfg = t->cfg;
    dj_cifar10_opts o = {0, cfg->train_limit, 0};
    int rc = dj_cifar10_load(&t->train, cfg->data_dir, "train", &o);
    if (rc || cfg->eval_limit <= 0) return rc;
    dj_cifar10_opts o2 = {0, cfg->eval_limit, 0};
    return dj_cifar10_load(&t->test, cfg->data_dir, "test", &o2);
}

static void relay_cache(const dj_jnd_cache_progress *p, void *user) {
    const dj_jnd_train_callbacks *cb = user;
    if (cb && cb->on_cache) cb->on_cache(p, cb->user);
}

/* The classifiers' labels, CAMs and margins of every image and flip. */
static int get_cache(trainer *t, const char *cache_path) {
    const dj_jnd_train_config *cfg = t->cfg;
    dj_jnd_cache_request req;
    req.classifier_paths = cfg->classifiers;
    req.cls = t->cls;
    req.count = t->K;
    req.norm = cfg->norm;
    req.train = &t->train;
    req.test = cfg->eval_limit > 0 ? &t->test : NULL;
    req.batch = cfg->batch;
    /* a cache file to write (not there yet) must fit before minutes of
     * computing: 16-bit maps and 32-bit labels per image and flip */
    if (cache_path[0] && access(cache_path, F_OK) != 0) {
        uint64_t per = (uint64_t)SIDE * SIDE * 2u + (uint64_t)t->K * 4u + 4u;
        uint64_t n = 2u * (uint64_t)t->train.n + (cfg->eval_limit > 0 ? (uint64_t)t->test.n : 0u);
        int rc = dj_check_free_space(cache_path, n * per + (1u << 20));
        if (rc) return rc;
    }
    return dj_jnd_cache_get(&t->cache, cache_path[0] ? cache_path : NULL, &req, relay_cache, (void *)t->cb,
                            &t->res->cache_reused);
}

/* The E-D from the job's generator, its last layer scaled by e_init, or
 * started from --init's model. */
static int build_ed(trainer *t) {
    const dj_jnd_train_config *cfg = t->cfg;
    int rc = dj_model_jnd_ed(&t->ed, &cfg->ed, SIDE, SIDE, &t->job.rng);
    if (rc) return rc;
    if (cfg->e_init != 1.0f) {
        const char *names[2] = {"dec.9.weight", "dec.9.bias"};
        for (int i = 0; i < 2; i++) {
            const dj_param *p = dj_graph_find_param(t->ed, names[i]);
            if (!p) return dj_error(DJ_EINTERNAL, "train: the E-D has no '%s'", names[i]);
            for (size_t q = 0; q < p->count; q++) p->data[q] *= cfg->e_init;
        }
    }
    if (cfg->init_path && (rc = init_from_model(t))) return rc;
    dj_jnd_step_config sc;
    sc.alpha = cfg->alpha;
    sc.beta = cfg->beta;
    sc.changed_weight = cfg->changed_weight;
    sc.loss = dj_jnd_loss_defaults();
    sc.loss.e_unit = cfg->e_unit;
    sc.loss.norm = cfg->norm;
    sc.clip = cfg->clip;
    return dj_jnd_step_create(&t->step_ctx, t->ed, t->cg, t->K, cfg->batch, &sc);
}

/* The batch buffers, then the caller's on_start. */
static int start(dj_train_job *j, void *user) {
    trainer *t = user;
    int B = t->cfg->batch;
    t->idx = malloc((size_t)B * sizeof *t->idx);
    t->labels = malloc((size_t)B * t->K * sizeof *t->labels);
    t->flips = malloc((size_t)B);
    t->margin = malloc((size_t)B * sizeof *t->margin);
    if (!t->idx || !t->labels || !t->flips || !t->margin)
        return dj_error(DJ_ENOMEM, "train: out of memory");
    int rc = dj_tensor_alloc(&t->x, B, SIDE, SIDE, CH);
    if (rc || (rc = dj_tensor_alloc(&t->c, B, SIDE, SIDE, 1))) return rc;
    DJ_TRAIN_JOB_RESULT_TO(t->res, &t->job);
    if (t->cb && t->cb->on_start) t->cb->on_start(t->res, t->cb->user);
    return DJ_OK;
}

int dj_jnd_train(const dj_jnd_train_config *cfg, const dj_jnd_train_callbacks *cb, dj_jnd_train_result *res) {
    dj_jnd_train_result local;
    if (!res) res = &local;
    memset(res, 0, sizeof *res);
    int rc = dj_jnd_train_check(cfg);
    if (rc) return rc;
    trainer *t = calloc(1, sizeof *t);
    if (!t) return dj_error(DJ_ENOMEM, "train: out of memory");
    t->cfg = cfg;
    t->cb = cb;
    t->res = res;
    t->K = cfg->nclassifiers;
    dj_train_job *j = &t->job;
    static const dj_train_job_ops ops = {start, train_epoch, evaluate_epoch, finish_epoch, epoch_done, save};
    char cache_path[1024];
    dj_jnd_train_cache_path(cfg, cache_path, sizeof cache_path);
    snprintf(res->cache_path, sizeof res->cache_path, "%s", cache_path);
    dj_train_job_spec spec = dj_jnd_train_job_spec(cfg, cache_path);
    dj_kv recipe[DJ_TRAIN_JOB_MAX_RECIPE];
    char recipe_buf[8192];

    if ((rc = dj_train_job_init(j, &spec))) goto out;
    if ((rc = load_data(t))) goto out;
    if ((rc = dj_train_job_plan(j, t->train.n))) goto out;
    /* the classifiers, their tags and their cache */
    if ((rc = dj_jnd_classifiers_load(t->cls, cfg->classifiers, t->K, cfg->classifier_build, &cfg->norm))) goto out;
    for (int k = 0; k < t->K; k++) t->cg[k] = t->cls[k].graph;
    dj_classifier_tags(t->cls, t->K, res->tags);
    res->classifiers = t->K;
    if ((rc = dj_jnd_csv_header(t->header, sizeof t->header, (const char(*)[32])res->tags, t->K))) goto out;
    int nrecipe = dj_jnd_train_recipe(cfg, t->train.n, recipe, DJ_TRAIN_JOB_MAX_RECIPE - 1, recipe_buf,
                                      sizeof recipe_buf);
    if ((rc = nrecipe < 0 ? nrecipe : DJ_OK)) goto out;
    if ((rc = get_cache(t, cache_path))) goto out;
    /* the E-D, its step and the job around them */
    if ((rc = build_ed(t))) goto out;
    if (!(rc = dj_train_job_attach(j, t->ed, &cfg->optim, recipe, nrecipe, t->header)))
        rc = dj_train_job_run(j, &ops, t);
out:
    DJ_TRAIN_JOB_RESULT_TO(t->res, &t->job);
    dj_train_job_free(j);
    dj_jnd_step_destroy(t->step_ctx);
    dj_tensor_free(&t->x);
    dj_tensor_free(&t->c);
    free(t->idx);
    free(t->labels);
    free(t->flips);
    free(t->margin);
    dj_graph_destroy(t->ed);
    dj_jnd_cache_free(&t->cache);
    dj_jnd_classifiers_free(t->cls, t->K);
    dj_cifar10_free(&t->train);
    dj_cifar10_free(&t->test);
    free(t);
    return rc;
}
