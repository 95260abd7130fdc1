/* Training a CIFAR-10 classifier: the loop, per-epoch evaluation, CSV log,
 * checkpoints, resume and the final weights file. See dmvjnd/train.h.
 *
 * Order of the random draws (all from the one generator `rng`, serially):
 *   model initialisation (fresh runs only; a resume loads the weights and
 *   then the generator from the checkpoint), then per epoch: the permutation
 *   (dj_cifar10_epoch_order), and per batch: the augmentation of each image
 *   (dj_cifar10_batch), then whatever the forward pass draws (dropout).
 * Evaluation draws nothing. Checkpoints are written after an epoch's last
 * draw, so a resumed run continues the same sequence. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dmvjnd/checkpoint.h"
#include "dmvjnd/dmvjnd.h"
#include "dmvjnd/fileio.h"
#include "dmvjnd/models.h"
#include "dmvjnd/safetensors.h"
#include "dmvjnd/train.h"
#include "train/csvlog.h"
#include "train/recipe.h"
#include "util/timer.h"

dj_train_config dj_train_defaults(void) {
    dj_train_config c;
    memset(&c, 0, sizeof c);
    c.arch = "resnet20";
    c.epochs = 30;
    c.batch = 128;
    c.optim = dj_optim_defaults(DJ_OPTIM_SGD);
    c.optim.momentum = 0.9;
    c.optim.nesterov = 1;
    c.optim.weight_decay = 5e-4;
    c.lr = 0.1;
    c.schedule = "cosine";
    c.augment = 1;
    for (int i = 0; i < 3; i++) c.mean[i] = c.std[i] = 0.5f;
    c.seed = 1;
    c.eval_limit = 1000;
    c.final_eval_limit = 10000;
    return c;
}

/* ------------------------------------------------------------ the recipe */


int dj_train_recipe(const dj_train_config *cfg, int train_images, dj_kv *kv, char *buf, size_t buf_size) {
    recipe_buf r = {kv, 0, DJ_TRAIN_RECIPE_MAX, buf, buf_size, 0, 0};
    const dj_optim_config *o = &cfg->optim;
    recipe_add(&r, "train.arch", "%s", cfg->arch ? cfg->arch : "");
    recipe_add(&r, "train.epochs", "%d", cfg->epochs);
    recipe_add(&r, "train.batch", "%d", cfg->batch);
    recipe_add(&r, "train.drop_last", "%d", cfg->drop_last ? 1 : 0);
    recipe_add(&r, "train.optimizer", "%s", dj_optim_kind_name(o->kind));
    recipe_add(&r, "train.lr", "%.17g", cfg->lr);
    if (o->kind == DJ_OPTIM_SGD) {
        recipe_add(&r, "train.momentum", "%.17g", o->momentum);
        recipe_add(&r, "train.dampening", "%.17g", o->dampening);
        recipe_add(&r, "train.nesterov", "%d", o->nesterov ? 1 : 0);
    } else {
        recipe_add(&r, "train.beta1", "%.17g", o->beta1);
        recipe_add(&r, "train.beta2", "%.17g", o->beta2);
        recipe_add(&r, "train.eps", "%.17g", o->eps);
    }
    recipe_add(&r, "train.weight_decay", "%.17g", o->weight_decay);
    recipe_add(&r, "train.schedule", "%s", cfg->schedule && *cfg->schedule ? cfg->schedule : "constant");
    recipe_add(&r, "train.augment", "%d", cfg->augment ? 1 : 0);
    recipe_add(&r, "train.mean", "%.9g,%.9g,%.9g", cfg->mean[0], cfg->mean[1], cfg->mean[2]);
    recipe_add(&r, "train.std", "%.9g,%.9g,%.9g", cfg->std[0], cfg->std[1], cfg->std[2]);
    recipe_add(&r, "train.seed", "%llu", (unsigned long long)cfg->seed);
    recipe_add(&r, "train.train_images", "%d", train_images);
    recipe_add(&r, "train.threads", "%d", dj_get_num_threads());
    if (r.overflow) return dj_error(DJ_EINVAL, "dj_train_recipe: buffer of %zu bytes is too small", buf_size);
    return r.n;
}

/* Keys whose difference does not change the result bit for bit in a way
 * that makes resuming wrong. The thread count does change the rounding of
 * oneDNN's reductions, so it is reported, not refused. */
static int recipe_key_informational(const char *key) { return !strcmp(key, "train.threads"); }

/* A resumed run must have the same recipe as the checkpoint. */
static int check_resume_recipe(const dj_st_file *f, const dj_kv *kv, int n) {
    const char *path = dj_st_path(f);
    for (int i = 0; i < n; i++) {
        const char *have = dj_st_metadata(f, kv[i].key);
        if (recipe_key_informational(kv[i].key)) {
            if (have && strcmp(have, kv[i].value))
                dj_log(DJ_LOG_WARN,
                       "%s: the checkpoint was trained with %s = %s, this run has %s: it resumes, but the final "
                       "weights will not be bit-identical to an uninterrupted run",
                       path, kv[i].key, have, kv[i].value);
            continue;
        }
        if (!have)
            return dj_error(DJ_EINVAL,
                            "%s: cannot resume: the checkpoint has no '%s' (not written by a training run of this "
                            "recipe); train without resume, or with another checkpoint file",
                            path, kv[i].key);
        if (strcmp(have, kv[i].value))
            return dj_error(DJ_EINVAL,
                            "%s: cannot resume: the checkpoint was trained with %s = %s, this run asks for %s "
                            "(resume with the same recipe, or start a new run without resume)",
                            path, kv[i].key, have, kv[i].value);
    }
    return DJ_OK;
}

/* ------------------------------------------------------------------ config */

static int check_config(const dj_train_config *c) {
    if (!c) return dj_error(DJ_EINVAL, "dj_train_classifier: NULL config");
    if (!c->arch || !*c->arch) return dj_error(DJ_EINVAL, "train: arch (the model name) is required");
    if (c->epochs < 1) return dj_error(DJ_EINVAL, "train: epochs = %d must be >= 1", c->epochs);
    if (c->batch < 1) return dj_error(DJ_EINVAL, "train: batch = %d must be >= 1", c->batch);
    if (!isfinite(c->lr) || c->lr < 0) return dj_error(DJ_EINVAL, "train: lr = %g must be finite and >= 0", c->lr);
    for (int i = 0; i < 3; i++) {
        if (!isfinite(c->mean[i])) return dj_error(DJ_EINVAL, "train: mean[%d] = %g is not finite", i, c->mean[i]);
        if (!(isfinite(c->std[i]) && c->std[i] > 0))
            return dj_error(DJ_EINVAL, "train: std[%d] = %g must be finite and > 0", i, c->std[i]);
    }
    if (c->threads < 0) return dj_error(DJ_EINVAL, "train: threads = %d must be >= 0", c->threads);
    if (c->train_limit < 0 || c->train_limit > DJ_CIFAR10_RECORDS_PER_FILE * DJ_CIFAR10_TRAIN_FILES)
        return dj_error(DJ_EINVAL, "train: train_limit = %d must be in 0..50000", c->train_limit);
    if (c->eval_limit < 0 || c->eval_limit > DJ_CIFAR10_RECORDS_PER_FILE)
        return dj_error(DJ_EINVAL, "train: eval_limit = %d must be in 0..10000", c->eval_limit);
    if (c->final_eval_limit < 0 || c->final_eval_limit > DJ_CIFAR10_RECORDS_PER_FILE)
        return dj_error(DJ_EINVAL, "train: final_eval_limit = %d must be in 0..10000", c->final_eval_limit);
    if (c->stop_after < 0) return dj_error(DJ_EINVAL, "train: stop_after = %d must be >= 0", c->stop_after);
    if (c->resume && !c->checkpoint_path)
        return dj_error(DJ_EINVAL, "train: resume needs a checkpoint path (the file to resume from)");
    const char *paths[3] = {c->out_path, c->checkpoint_path, c->log_path};
    const char *what[3] = {"weights file", "checkpoint", "CSV log"};
    for (int i = 0; i < 3; i++)
        for (int j = i + 1; j < 3; j++)
            if (paths[i] && paths[j] && !strcmp(paths[i], paths[j]))
                return dj_error(DJ_EINVAL, "train: the %s and the %s are the same file '%s'", what[i], what[j],
                                paths[i]);
    return DJ_OK;
}

/* Output folders must be writable before hours of training, not after. */
static int check_outputs(const dj_train_config *c) {
    const char *paths[3] = {c->out_path, c->checkpoint_path, c->log_path};
    const char *what[3] = {"weights file", "checkpoint", "CSV log"};
    for (int i = 0; i < 3; i++) {
        if (!paths[i]) continue;
        if (!*paths[i]) return dj_error(DJ_EINVAL, "train: the %s path is empty", what[i]);
        int rc = dj_check_writable_parent(paths[i]);
        if (rc) return dj_error(rc, "cannot write the %s '%s': %s", what[i], paths[i], dj_last_error());
    }
    return DJ_OK;
}

static int params_finite(const dj_graph *g, const char **bad) {
    int n = dj_graph_num_params(g);
    for (int i = 0; i < n; i++) {
        const dj_param *p = dj_graph_param(g, i);
        if (!dj_all_finite(p->data, p->count)) {
            *bad = p->name;
            return 0;
        }
    }
    return 1;
}

/* ---------------------------------------------------------------- the job */

typedef struct job {
    const dj_train_config *cfg;
    const dj_train_callbacks *cb;
    dj_train_result *res;
    dj_cifar10 train, test;
    dj_graph *g;
    dj_optim *opt;
    dj_schedule sched;
    dj_rng rng;
    dj_kv recipe[DJ_TRAIN_RECIPE_MAX + 8];
    int nrecipe;
    char recipe_buf[4096];
    int steps_per_epoch;
    int64_t step, total_steps;
    double wall_before; /* wall seconds of earlier sessions (resume) */
    double t_start;     /* this session's start */
    int64_t step_start; /* step at this session's start */
    csvlog csv;
} job;

static double job_wall(const job *j) { return j->wall_before + (dj_now() - j->t_start); }

/* Accuracy on test records 0..limit-1 (limit <= j->test.n). */
static int eval_head(job *j, int limit, double *acc) {
    dj_cifar10 view = j->test;
    view.n = limit;
    dj_eval_result er;
    int rc = dj_evaluate(j->g, &view, j->cfg->mean, j->cfg->std, j->cfg->batch, &er, NULL, NULL);
    if (rc) return rc;
    *acc = er.accuracy;
    return DJ_OK;
}

/* Metadata of checkpoints: the recipe plus the wall time so far. */
static int save_checkpoint(job *j, int epochs_done) {
    char wall[32];
    snprintf(wall, sizeof wall, "%.3f", job_wall(j));
    dj_kv meta[DJ_TRAIN_RECIPE_MAX + 1];
    memcpy(meta, j->recipe, (size_t)j->nrecipe * sizeof *meta);
    meta[j->nrecipe] = (dj_kv){"train.elapsed_s", wall};
    return dj_checkpoint_save(j->cfg->checkpoint_path, j->g, j->cfg->arch, j->opt, &j->rng, epochs_done, j->step,
                              meta, j->nrecipe + 1);
}

static int diverged(job *j, int epoch, const char *what, double lr) {
    j->res->diverged = 1;
    char where[512];
    if (j->cfg->checkpoint_path && epoch > 1)
        snprintf(where, sizeof where, "the checkpoint '%s' holds epoch %d, the last good one", j->cfg->checkpoint_path,
                 epoch - 1);
    else
        snprintf(where, sizeof where, "no checkpoint of a good epoch was written");
    return dj_error(DJ_ENUMERIC,
                    "training diverged in epoch %d at step %lld (learning rate %g): %s; stopped, %s (try a "
                    "smaller learning rate or a warm-up)",
                    epoch, (long long)j->step, lr, what, where);
}

static int run_epoch(job *j, int epoch, dj_tensor *xbuf, dj_tensor *dlogits, int32_t *order, int32_t *labels,
                     float *probs, dj_epoch_stats *st) {
    const dj_train_config *cfg = j->cfg;
    int N = j->train.n, B = cfg->batch;
    dj_augment aug = DJ_AUGMENT_CIFAR10;
    double t0 = dj_now(), loss_sum = 0;
    long correct = 0, seen = 0;
    memset(st, 0, sizeof *st);
    st->epoch = epoch;
    st->epochs = cfg->epochs;
    dj_cifar10_epoch_order(&j->rng, order, N);
    for (int b = 0; b < j->steps_per_epoch; b++) {
        int n = N - b * B < B ? N - b * B : B;
        dj_tensor x = dj_tensor_view(xbuf->data, n, DJ_CIFAR10_SIDE, DJ_CIFAR10_SIDE, DJ_CIFAR10_CHANNELS);
        dj_tensor dl = dj_tensor_view(dlogits->data, n, 1, 1, DJ_CIFAR10_CLASSES);
        int rc = dj_cifar10_batch(&j->train, order + (size_t)b * B, n, cfg->augment ? &aug : NULL, &j->rng, cfg->mean,
                                  cfg->std, &x, labels);
        if (rc) return rc;
        double lr = dj_schedule_lr(&j->sched, j->step);
        if (b == 0) st->lr_first = lr;
        st->lr_last = lr;
        const dj_tensor *logits;
        float loss;
        dj_graph_zero_grad(j->g);
        if ((rc = dj_graph_forward(j->g, &x, 1, &j->rng, &logits))) return rc;
        if ((rc = dj_softmax_ce_forward(logits, labels, probs, &loss))) return rc;
        if (!isfinite(loss)) {
            char what[64];
            snprintf(what, sizeof what, "the loss is %g", (double)loss);
            return diverged(j, epoch, what, lr);
        }
        for (int i = 0; i < n; i++) {
            const float *l = logits->data + (size_t)i * DJ_CIFAR10_CLASSES;
            int best = 0;
            for (int k = 1; k < DJ_CIFAR10_CLASSES; k++)
                if (l[k] > l[best]) best = k;
            correct += best == labels[i];
        }
        if ((rc = dj_softmax_ce_backward(probs, labels, 1.0f, &dl, 0))) return rc;
        if ((rc = dj_graph_backward(j->g, &dl, NULL))) return rc;
        if ((rc = dj_optim_step(j->opt, (float)lr))) return rc;
        j->step++;
        loss_sum += (double)loss * n;
        seen += n;
        if (j->cb && j->cb->on_step) {
            dj_train_progress p;
            double now = dj_now();
            p.epoch = epoch;
            p.epochs = cfg->epochs;
            p.batch_index = b + 1;
            p.batches = j->steps_per_epoch;
            p.step = j->step;
            p.total_steps = j->total_steps;
            p.loss = loss;
            p.epoch_loss = loss_sum / (double)seen;
            p.lr = lr;
            p.images_per_s = now > t0 ? (double)seen / (now - t0) : 0;
            int64_t done = j->step - j->step_start;
            p.eta_s = done > 0 ? (now - j->t_start) / (double)done * (double)(j->total_steps - j->step) : NAN;
            j->cb->on_step(&p, j->cb->user);
        }
    }
    double t_train = dj_now() - t0;
    st->step = j->step;
    st->train_loss = seen ? loss_sum / (double)seen : NAN;
    st->train_acc = seen ? (double)correct / (double)seen : NAN;
    st->images_per_s = t_train > 0 ? (double)seen / t_train : 0;
    const char *bad;
    if (!params_finite(j->g, &bad)) {
        char what[160];
        snprintf(what, sizeof what, "parameter '%s' is no longer finite", bad);
        return diverged(j, epoch, what, st->lr_last);
    }
    st->test_acc = NAN;
    if (cfg->eval_limit > 0) {
        int rc = eval_head(j, cfg->eval_limit, &st->test_acc);
        if (rc) return rc;
        st->test_images = cfg->eval_limit;
    }
    st->epoch_s = dj_now() - t0;
    st->wall_s = job_wall(j);
    return DJ_OK;
}

static int csv_row(job *j, const dj_epoch_stats *st) {
    char row[512], acc[32] = "";
    if (st->test_images > 0) snprintf(acc, sizeof acc, "%.6f", st->test_acc);
    snprintf(row, sizeof row, "%d,%lld,%.8g,%.8g,%.6f,%.6f,%s,%d,%.1f,%.3f,%.3f", st->epoch, (long long)st->step,
             st->lr_first, st->lr_last, st->train_loss, st->train_acc, acc, st->test_images, st->images_per_s,
             st->epoch_s, st->wall_s);
    return csvlog_write_row(&j->csv, row, j->cfg->log_path);
}

static int load_data(job *j) {
    const dj_train_config *cfg = j->cfg;
    dj_cifar10_opts o = {0, cfg->train_limit, 0};
    int rc = dj_cifar10_load(&j->train, cfg->data_dir, "train", &o);
    if (rc) return rc;
    int test_n = cfg->eval_limit > cfg->final_eval_limit ? cfg->eval_limit : cfg->final_eval_limit;
    if (test_n > 0) {
        dj_cifar10_opts t = {0, test_n, 0};
        if ((rc = dj_cifar10_load(&j->test, cfg->data_dir, "test", &t))) return rc;
        if (j->test.n < test_n)
            return dj_error(DJ_EFORMAT, "train: the test split has %d records, %d requested", j->test.n, test_n);
    }
    return DJ_OK;
}

/* Restores the checkpoint when resuming; sets j->res->start_epoch. */
static int maybe_resume(job *j) {
    const dj_train_config *cfg = j->cfg;
    if (!cfg->resume || access(cfg->checkpoint_path, F_OK) != 0) return DJ_OK;
    dj_st_file *f = NULL;
    int rc = dj_st_open(cfg->checkpoint_path, 0, &f);
    if (rc) return rc;
    rc = check_resume_recipe(f, j->recipe, j->nrecipe);
    const char *el = dj_st_metadata(f, "train.elapsed_s");
    double wall = el ? strtod(el, NULL) : 0;
    dj_st_close(f);
    if (rc) return rc;
    int64_t epoch = 0, step = 0;
    if ((rc = dj_checkpoint_load(cfg->checkpoint_path, j->g, cfg->arch, j->opt, &j->rng, &epoch, &step))) return rc;
    if (epoch > cfg->epochs || step != epoch * j->steps_per_epoch)
        return dj_error(DJ_EFORMAT,
                        "%s: cannot resume: the checkpoint is at epoch %lld, step %lld, which this recipe (%d epochs "
                        "of %d steps) cannot have reached",
                        cfg->checkpoint_path, (long long)epoch, (long long)step, cfg->epochs, j->steps_per_epoch);
    j->res->start_epoch = (int)epoch;
    j->step = step;
    j->wall_before = isfinite(wall) && wall > 0 ? wall : 0;
    return DJ_OK;
}

static int final_outputs(job *j) {
    const dj_train_config *cfg = j->cfg;
    dj_train_result *res = j->res;
    int rc;
    if (cfg->eval_limit > 0 && !(res->head_images > 0)) {
        if ((rc = eval_head(j, cfg->eval_limit, &res->head_accuracy))) return rc;
        res->head_images = cfg->eval_limit;
    }
    if (cfg->final_eval_limit > 0) {
        if ((rc = eval_head(j, cfg->final_eval_limit, &res->test_accuracy))) return rc;
        res->test_images = cfg->final_eval_limit;
    }
    res->wall_s = job_wall(j);
    if (!cfg->out_path) return DJ_OK;
    dj_kv meta[DJ_TRAIN_RECIPE_MAX + 8];
    int n = j->nrecipe;
    memcpy(meta, j->recipe, (size_t)n * sizeof *meta);
    char wall[32], acc[32], imgs[32], hacc[32], himgs[32];
    snprintf(wall, sizeof wall, "%.3f", res->wall_s);
    meta[n++] = (dj_kv){"train.wall_s", wall};
    if (res->test_images > 0) {
        snprintf(acc, sizeof acc, "%.6f", res->test_accuracy);
        snprintf(imgs, sizeof imgs, "%d", res->test_images);
        meta[n++] = (dj_kv){"test_accuracy", acc};
        meta[n++] = (dj_kv){"test_images", imgs};
    }
    if (res->head_images > 0) {
        snprintf(hacc, sizeof hacc, "%.6f", res->head_accuracy);
        snprintf(himgs, sizeof himgs, "%d", res->head_images);
        meta[n++] = (dj_kv){"test_accuracy_head", hacc};
        meta[n++] = (dj_kv){"test_images_head", himgs};
    }
    return dj_weights_save(j->g, cfg->out_path, cfg->arch, meta, n);
}

int dj_train_classifier(const dj_train_config *cfg, const dj_train_callbacks *cb, dj_train_result *res) {
    dj_train_result local;
    if (!res) res = &local;
    memset(res, 0, sizeof *res);
    res->final_loss = res->head_accuracy = res->test_accuracy = NAN;
    int rc = check_config(cfg);
    if (rc) return rc;
    if (cfg->threads > 0) dj_set_num_threads(cfg->threads);
    if ((rc = check_outputs(cfg))) return rc;

    job j;
    memset(&j, 0, sizeof j);
    j.cfg = cfg;
    j.cb = cb;
    j.res = res;
    j.t_start = dj_now();
    dj_tensor x = {0}, dlogits = {0};
    int32_t *order = NULL, *labels = NULL;
    float *probs = NULL;

    if ((rc = load_data(&j))) goto out;
    int N = j.train.n, B = cfg->batch;
    j.steps_per_epoch = cfg->drop_last ? N / B : (N + B - 1) / B;
    if (j.steps_per_epoch < 1) {
        rc = dj_error(DJ_EINVAL, "train: %d training images make no full batch of %d (drop_last)", N, B);
        goto out;
    }
    j.total_steps = (int64_t)cfg->epochs * j.steps_per_epoch;
    const char *spec = cfg->schedule && *cfg->schedule ? cfg->schedule : "constant";
    if ((rc = dj_schedule_parse(&j.sched, spec, cfg->lr, j.total_steps, j.steps_per_epoch))) goto out;
    if ((rc = dj_schedule_check(&j.sched))) goto out;

    dj_rng_seed(&j.rng, cfg->seed);
    rc = cfg->build ? cfg->build(&j.g, cfg->arch, DJ_CIFAR10_CLASSES, &j.rng)
                    : dj_model_build(&j.g, cfg->arch, DJ_CIFAR10_CLASSES, &j.rng);
    if (rc) goto out;
    {
        int h, w, c, k;
        dj_graph_node_shape(j.g, 0, &h, &w, &c);
        dj_graph_node_shape(j.g, dj_graph_output_node(j.g), NULL, NULL, &k);
        if (h != DJ_CIFAR10_SIDE || w != DJ_CIFAR10_SIDE || c != DJ_CIFAR10_CHANNELS || k != DJ_CIFAR10_CLASSES) {
            rc = dj_error(DJ_EINVAL, "train: model '%s' takes %dx%dx%d images and has %d outputs; CIFAR-10 needs "
                                     "32x32x3 and 10",
                          cfg->arch, h, w, c, k);
            goto out;
        }
    }
    /* a full disk is found now, not after hours of work */
    if ((rc = dj_check_training_space(j.g, cfg->out_path, cfg->checkpoint_path))) goto out;
    if ((rc = dj_graph_make_optim(j.g, &cfg->optim, &j.opt))) goto out;
    if ((rc = dj_train_recipe(cfg, N, j.recipe, j.recipe_buf, sizeof j.recipe_buf)) < 0) goto out;
    j.nrecipe = rc;
    rc = DJ_OK;
    if ((rc = maybe_resume(&j))) goto out;
    j.step_start = j.step;
    res->steps = j.step;
    res->epochs_done = res->start_epoch;
    if (cfg->log_path) {
        if ((rc = csvlog_start(&j.csv, DJ_TRAIN_CSV_HEADER, cfg->log_path, res->start_epoch))) goto out;
    }

    order = malloc((size_t)N * sizeof *order);
    labels = malloc((size_t)B * sizeof *labels);
    probs = malloc((size_t)B * DJ_CIFAR10_CLASSES * sizeof *probs);
    if (!order || !labels || !probs) {
        rc = dj_error(DJ_ENOMEM, "train: out of memory");
        goto out;
    }
    if ((rc = dj_tensor_alloc(&x, B, DJ_CIFAR10_SIDE, DJ_CIFAR10_SIDE, DJ_CIFAR10_CHANNELS))) goto out;
    if ((rc = dj_tensor_alloc(&dlogits, B, 1, 1, DJ_CIFAR10_CLASSES))) goto out;
    if (cb && cb->on_start) cb->on_start(res, cb->user);

    for (int e = res->start_epoch; e < cfg->epochs; e++) {
        if (cfg->stop_after > 0 && e >= cfg->stop_after) break;
        dj_epoch_stats st;
        if ((rc = run_epoch(&j, e + 1, &x, &dlogits, order, labels, probs, &st))) goto out;
        res->epochs_done = e + 1;
        res->steps = j.step;
        res->final_loss = st.train_loss;
        res->head_accuracy = st.test_acc;
        res->head_images = st.test_images;
        if (cfg->log_path && (rc = csv_row(&j, &st))) goto out;
        if (cfg->checkpoint_path && (rc = save_checkpoint(&j, e + 1))) goto out;
        if (cb && cb->on_epoch) cb->on_epoch(&st, cb->user);
    }
    res->completed = res->epochs_done == cfg->epochs;
    if (res->completed) rc = final_outputs(&j);
    res->wall_s = job_wall(&j);
out:
    dj_tensor_free(&x);
    dj_tensor_free(&dlogits);
    free(order);
    free(labels);
    free(probs);
    csvlog_free(&j.csv);
    dj_optim_destroy(j.opt);
    dj_graph_destroy(j.g);
    dj_cifar10_free(&j.train);
    dj_cifar10_free(&j.test);
    return rc;
}
