/* The training job both trainers share: checks, plan, resume, the epoch
 * loop, divergence, wall time. See dmvjnd/train_job.h.
 *
 * Order of the random draws: the trainer builds its model from j->rng
 * (seeded in dj_train_job_plan) before dj_train_job_attach; a resume then
 * loads the weights and the generator from the checkpoint, so the draws of
 * later epochs continue the sequence of the uninterrupted run. Checkpoints
 * are written after an epoch's last draw and evaluation draws nothing. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dmvjnd/checkpoint.h"
#include "dmvjnd/cifar10.h"
#include "dmvjnd/dmvjnd.h"
#include "dmvjnd/fileio.h"
#include "dmvjnd/safetensors.h"
#include "dmvjnd/train_job.h"
#include "util/timer.h"

/* ------------------------------------------------------------- the spec */

static int check_spec(const dj_train_job_spec *s) {
    const char *nm = s->name ? s->name : "train";
    if (s->epochs < 1) return dj_error(DJ_EINVAL, "%s: epochs = %d must be >= 1", nm, s->epochs);
    if (s->batch < 1) return dj_error(DJ_EINVAL, "%s: batch = %d must be >= 1", nm, s->batch);
    if (!isfinite(s->lr) || s->lr < 0) return dj_error(DJ_EINVAL, "%s: lr = %g must be finite and >= 0", nm, s->lr);
    if (s->threads < 0) return dj_error(DJ_EINVAL, "%s: threads = %d must be >= 0", nm, s->threads);
    const int train_max = DJ_CIFAR10_RECORDS_PER_FILE * DJ_CIFAR10_TRAIN_FILES, test_max = DJ_CIFAR10_RECORDS_PER_FILE;
    if (s->train_limit < 0 || s->train_limit > train_max)
        return dj_error(DJ_EINVAL, "%s: train_limit = %d must be in 0..%d", nm, s->train_limit, train_max);
    for (int i = 0; i < 2; i++)
        if (s->eval_names[i] && (s->eval_limits[i] < 0 || s->eval_limits[i] > test_max))
            return dj_error(DJ_EINVAL, "%s: %s = %d must be in 0..%d", nm, s->eval_names[i], s->eval_limits[i],
                            test_max);
    if (s->stop_after < 0) return dj_error(DJ_EINVAL, "%s: stop_after = %d must be >= 0", nm, s->stop_after);
    if (s->resume && !s->checkpoint_path)
        return dj_error(DJ_EINVAL, "%s: resume needs a checkpoint path (the file to resume from)", nm);
    for (int i = 0; i < DJ_TRAIN_JOB_MAX_OUTPUTS; i++)
        for (int k = i + 1; k < DJ_TRAIN_JOB_MAX_OUTPUTS; k++)
            if (s->outputs[i] && s->outputs[k] && !strcmp(s->outputs[i], s->outputs[k]))
                return dj_error(DJ_EINVAL, "%s: the %s and the %s are the same file '%s'", nm, s->output_names[i],
                                s->output_names[k], s->outputs[i]);
    return DJ_OK;
}

/* Output folders must be writable before hours of training, not after. */
static int check_outputs(const dj_train_job_spec *s) {
    for (int i = 0; i < DJ_TRAIN_JOB_MAX_OUTPUTS; i++) {
        const char *p = s->outputs[i];
        if (!p) continue;
        if (!*p) return dj_error(DJ_EINVAL, "%s: the %s path is empty", s->name, s->output_names[i]);
        int rc = dj_check_writable_parent(p);
        if (rc) return dj_error(rc, "cannot write the %s '%s': %s", s->output_names[i], p, dj_last_error());
    }
    return DJ_OK;
}

int dj_train_job_init(dj_train_job *j, const dj_train_job_spec *spec) {
    if (!j) return dj_error(DJ_EINVAL, "dj_train_job_init: NULL job");
    memset(j, 0, sizeof *j);
    j->t_start = j->t_loop = dj_now();
    if (!spec) return dj_error(DJ_EINVAL, "dj_train_job_init: NULL spec");
    j->spec = *spec;
    if (!j->spec.name) j->spec.name = "train"; /* both trainers' */
    if (!j->spec.key_prefix) j->spec.key_prefix = "train.";
    int rc = check_spec(&j->spec);
    if (rc) return rc;
    if (spec->threads > 0) dj_set_num_threads(spec->threads);
    return check_outputs(&j->spec);
}

int dj_train_job_plan(dj_train_job *j, int train_images) {
    const dj_train_job_spec *s = &j->spec;
    int N = train_images, B = s->batch;
    j->train_images = N;
    j->steps_per_epoch = s->drop_last ? N / B : (N + B - 1) / B;
    if (j->steps_per_epoch < 1)
        return dj_error(DJ_EINVAL, "%s: %d training images make no full batch of %d (drop_last)", s->name, N, B);
    j->total_steps = (int64_t)s->epochs * j->steps_per_epoch;
    const char *spec = s->schedule && *s->schedule ? s->schedule : "constant";
    int rc = dj_schedule_parse(&j->sched, spec, s->lr, j->total_steps, j->steps_per_epoch);
    if (!rc) rc = dj_schedule_check(&j->sched);
    if (rc) return rc;
    dj_rng_seed(&j->rng, s->seed);
    free(j->order);
    if (!(j->order = malloc((size_t)N * sizeof *j->order))) return dj_error(DJ_ENOMEM, "%s: out of memory", s->name);
    return DJ_OK;
}

/* ---------------------------------------------------------------- resume */

static const char *key_after_prefix(const dj_train_job *j, const char *key) {
    size_t n = strlen(j->spec.key_prefix);
    return strncmp(key, j->spec.key_prefix, n) ? NULL : key + n;
}

static int key_is_threads(const dj_train_job *j, const char *key) {
    const char *rest = key_after_prefix(j, key);
    return rest && !strcmp(rest, "threads");
}

/* Keys whose difference does not make resuming wrong. The thread count does
 * change the rounding of oneDNN's reductions, so it is reported. */
static int key_informational(const dj_train_job *j, const char *key) {
    if (key_is_threads(j, key)) return 1;
    for (const char *const *k = j->spec.informational_keys; k && *k; k++)
        if (!strcmp(*k, key)) return 1;
    return 0;
}

static const char *value_before_key_existed(const dj_train_job *j, const char *key) {
    for (int i = 0; i < j->spec.nadded_keys; i++)
        if (!strcmp(key, j->spec.added_keys[i].key)) return j->spec.added_keys[i].value;
    return NULL;
}

/* A resumed run must have the checkpoint's recipe. */
static int check_resume_recipe(const dj_train_job *j, const dj_st_file *f) {
    const char *path = dj_st_path(f);
    for (int i = 0; i < j->nrecipe; i++) {
        const dj_kv *kv = &j->recipe[i];
        const char *have = dj_st_metadata(f, kv->key);
        if (!have) have = value_before_key_existed(j, kv->key);
        if (key_informational(j, kv->key)) {
            if (have && strcmp(have, kv->value) && key_is_threads(j, kv->key))
                dj_log(DJ_LOG_WARN,
                       "%s: the checkpoint was trained with %s = %s, this run has %s: it resumes, but the final "
                       "weights will not be bit-identical to an uninterrupted run",
                       path, kv->key, have, kv->value);
            continue;
        }
        if (!have)
            return dj_error(DJ_EINVAL,
                            "%s: cannot resume: the checkpoint has no '%s' (not written by a training run of this "
                            "kind); train without resume, or with another checkpoint file",
                            path, kv->key);
        if (strcmp(have, kv->value))
            return dj_error(DJ_EINVAL,
                            "%s: cannot resume: the checkpoint was trained with %s = %s, this run asks for %s "
                            "(resume with the same recipe, or start a new run without resume)",
                            path, kv->key, have, kv->value);
    }
    return DJ_OK;
}

static void elapsed_key(const dj_train_job *j, char *buf, size_t size) {
    snprintf(buf, size, "%selapsed_s", j->spec.key_prefix);
}

static int maybe_resume(dj_train_job *j) {
    const dj_train_job_spec *s = &j->spec;
    if (!s->resume || access(s->checkpoint_path, F_OK) != 0) return DJ_OK;
    dj_st_file *f = NULL;
    int rc = dj_st_open(s->checkpoint_path, 0, &f);
    if (rc) return rc;
    rc = check_resume_recipe(j, f);
    char key[64];
    elapsed_key(j, key, sizeof key);
    const char *el = dj_st_metadata(f, key);
    double wall = el ? strtod(el, NULL) : 0;
    dj_st_close(f);
    if (rc) return rc;
    int64_t epoch = 0, step = 0;
    if ((rc = dj_checkpoint_load(s->checkpoint_path, j->g, s->arch, j->opt, &j->rng, &epoch, &step))) return rc;
    if (epoch > s->epochs || step != epoch * j->steps_per_epoch)
        return dj_error(DJ_EFORMAT,
                        "%s: cannot resume: the checkpoint is at epoch %lld, step %lld, which this recipe (%d epochs "
                        "of %d steps) cannot have reached",
                        s->checkpoint_path, (long long)epoch, (long long)step, s->epochs, j->steps_per_epoch);
    j->start_epoch = (int)epoch;
    j->step = step;
    j->wall_before = isfinite(wall) && wall > 0 ? wall : 0;
    return DJ_OK;
}

int dj_train_job_attach(dj_train_job *j, dj_graph *g, const dj_optim_config *optim, const dj_kv *recipe, int n,
                        const char *csv_header) {
    const dj_train_job_spec *s = &j->spec;
    if (!g || !optim || n < 0 || n > DJ_TRAIN_JOB_MAX_RECIPE - 1 || (n && !recipe))
        return dj_error(DJ_EINVAL, "%s: bad job arguments (%d recipe pairs)", s->name, n);
    j->g = g;
    memcpy(j->recipe, recipe, (size_t)n * sizeof *recipe);
    j->nrecipe = n;
    /* a full disk is found now, not after hours of work */
    int rc = dj_check_training_space(g, s->outputs[0], s->checkpoint_path);
    if (!rc) rc = dj_graph_make_optim(g, optim, &j->opt);
    if (!rc) rc = maybe_resume(j);
    if (rc) return rc;
    j->step_start = j->step;
    j->epochs_done = j->start_epoch;
    return dj_csvlog_start(&j->csv, csv_header ? csv_header : "", s->log_path, j->start_epoch);
}

/* ------------------------------------------------------------- the loop */

double dj_train_job_wall(const dj_train_job *j) { return j->wall_before + (dj_now() - j->t_start); }

double dj_train_job_lr(dj_train_job *j) {
    double lr = dj_schedule_lr(&j->sched, j->step);
    if (j->step == j->epoch.step) j->epoch.lr_first = lr; /* the epoch's first step */
    j->epoch.lr_last = lr;
    return lr;
}

void dj_train_job_step_done(dj_train_job *j) { j->step++; }

double dj_train_job_eta(const dj_train_job *j) {
    int64_t done = j->step - j->step_start;
    return done > 0 ? (dj_now() - j->t_loop) / (double)done * (double)(j->total_steps - j->step) : NAN;
}

int dj_train_job_diverged(dj_train_job *j, const char *what, double lr) {
    j->diverged = 1;
    int epoch = j->epoch.epoch;
    char where[512];
    if (j->spec.checkpoint_path && epoch > 1)
        snprintf(where, sizeof where, "the checkpoint '%s' holds epoch %d, the last good one", j->spec.checkpoint_path,
                 epoch - 1);
    else
        snprintf(where, sizeof where, "no checkpoint of a good epoch was written");
    return dj_error(DJ_ENUMERIC,
                    "training diverged in epoch %d at step %lld (learning rate %g): %s; stopped, %s (try a "
                    "smaller learning rate or a warm-up)",
                    epoch, (long long)j->step, lr, what, where);
}

static int check_params_finite(dj_train_job *j) {
    int n = dj_graph_num_params(j->g);
    for (int i = 0; i < n; i++) {
        const dj_param *p = dj_graph_param(j->g, i);
        if (!dj_all_finite(p->data, p->count)) {
            char what[160];
            snprintf(what, sizeof what, "parameter '%s' is no longer finite", p->name);
            return dj_train_job_diverged(j, what, j->epoch.lr_last);
        }
    }
    return DJ_OK;
}

/* Checkpoint metadata: the recipe plus the wall time so far. */
static int save_checkpoint(dj_train_job *j) {
    char wall[32], key[64];
    snprintf(wall, sizeof wall, "%.3f", dj_train_job_wall(j));
    elapsed_key(j, key, sizeof key);
    j->recipe[j->nrecipe] = (dj_kv){key, wall};
    return dj_checkpoint_save(j->spec.checkpoint_path, j->g, j->spec.arch, j->opt, &j->rng, j->epochs_done, j->step,
                              j->recipe, j->nrecipe + 1);
}

static int run_one_epoch(dj_train_job *j, int epoch, const dj_train_job_ops *ops, void *user) {
    memset(&j->epoch, 0, sizeof j->epoch);
    j->epoch.epoch = epoch;
    j->epoch.epochs = j->spec.epochs;
    j->epoch.step = j->step;
    j->epoch.t_start = dj_now();
    dj_cifar10_epoch_order(&j->rng, j->order, j->train_images);
    int rc = ops->train_epoch(j, user);
    if (rc) return rc;
    j->epoch.train_s = dj_now() - j->epoch.t_start;
    j->epoch.step = j->step;
    if ((rc = check_params_finite(j))) return rc;
    if (ops->evaluate && (rc = ops->evaluate(j, user))) return rc;
    j->epoch.epoch_s = dj_now() - j->epoch.t_start;
    j->epoch.wall_s = dj_train_job_wall(j);
    char row[4096] = "";
    if ((rc = ops->finish_epoch(j, row, sizeof row, user))) return rc;
    j->epochs_done = epoch;
    if ((rc = dj_csvlog_write_row(&j->csv, row, j->spec.log_path))) return rc;
    if (j->spec.checkpoint_path && (rc = save_checkpoint(j))) return rc;
    return ops->epoch_done ? ops->epoch_done(j, user) : DJ_OK;
}

int dj_train_job_run(dj_train_job *j, const dj_train_job_ops *ops, void *user) {
    if (!ops || !ops->train_epoch || !ops->finish_epoch || !j->g)
        return dj_error(DJ_EINVAL, "%s: the job has no trainer (train_epoch, finish_epoch) or no graph", j->spec.name);
    int rc = ops->start ? ops->start(j, user) : DJ_OK;
    if (rc) return rc;
    j->t_loop = dj_now();
    for (int e = j->start_epoch; e < j->spec.epochs; e++) {
        if (j->spec.stop_after > 0 && e >= j->spec.stop_after) break;
        if ((rc = run_one_epoch(j, e + 1, ops, user))) return rc;
    }
    if (j->epochs_done == j->spec.epochs && ops->save) return ops->save(j, user);
    return DJ_OK;
}

dj_train_job_status dj_train_job_get_status(const dj_train_job *j) {
    dj_train_job_status s;
    s.start_epoch = j->start_epoch;
    s.epochs_done = j->epochs_done;
    s.completed = j->g && j->epochs_done == j->spec.epochs; /* g: the job got that far */
    s.diverged = j->diverged;
    s.steps = j->step;
    s.wall_s = dj_train_job_wall(j);
    return s;
}

dj_train_job_progress dj_train_job_get_progress(const dj_train_job *j, double images_seen) {
    dj_train_job_progress p;
    double now = dj_now();
    p.epoch = j->epoch.epoch;
    p.epochs = j->epoch.epochs;
    p.batch_index = (int)(j->step - j->epoch.step);
    p.batches = j->steps_per_epoch;
    p.step = j->step;
    p.total_steps = j->total_steps;
    p.lr = j->epoch.lr_last;
    p.images_per_s = now > j->epoch.t_start ? images_seen / (now - j->epoch.t_start) : 0;
    p.eta_s = dj_train_job_eta(j);
    return p;
}

void dj_train_job_free(dj_train_job *j) {
    if (!j) return;
    dj_optim_destroy(j->opt);
    j->opt = NULL;
    free(j->order);
    j->order = NULL;
    dj_csvlog_free(&j->csv);
}
