/*
 * The training job: what every trainer of this library does around its own
 * optimiser steps. dj_train_classifier (dmvjnd/train.h) and dj_jnd_train
 * (dmvjnd/jnd_train.h) are each a dj_train_job plus their step.
 *
 * The job owns:
 *   - the checks of the fields every recipe has (epochs, batch, rate,
 *     threads, limits, resume) and of the output files (distinct, in
 *     writable folders), BEFORE any data is loaded or anything is trained;
 *   - the plan: steps per epoch (drop_last), total steps, the schedule;
 *   - the optimiser of the trained graph, and the check that the weights
 *     and checkpoints fit on their disks;
 *   - resume: the checkpoint's recipe against this run's (keys that only
 *     inform are reported, keys added after old checkpoints were written
 *     take the value those runs had), then weights, optimiser state,
 *     generator, epoch and step; the wall time of earlier sessions;
 *   - the epoch loop: per epoch a new random order of the training images
 *     (j->order, dj_cifar10_epoch_order: the epoch's first draw), the
 *     trainer's train_epoch, the non-finite
 *     parameter check, its evaluate, its CSV row (the log is rewritten
 *     atomically), the atomic checkpoint (recipe + elapsed time), its
 *     epoch_done; stop_after; after the last epoch the trainer's save;
 *   - divergence: a non-finite loss or parameter stops the run with one
 *     message (epoch, step, rate, which checkpoint holds the last good
 *     epoch) and DJ_ENUMERIC;
 *   - wall time (summed over resumed sessions), ETA and the learning rate
 *     of each step with the first and last rate of the epoch.
 *
 * The trainer owns its data, its model, its step, its metrics and its
 * output file. A trainer:
 *     dj_train_job j;
 *     dj_train_job_init(&j, &spec);             checks, threads, outputs
 *     ... load data ...
 *     dj_train_job_plan(&j, train_images);      steps, schedule
 *     ... build the model from j.rng ...
 *     dj_train_job_attach(&j, g, &optim, recipe, n, csv_header);   resume
 *     dj_train_job_run(&j, &ops, trainer);      the epochs
 *     dj_train_job_free(&j);
 * and in train_epoch, per step: lr = dj_train_job_lr(&j); ...step...;
 * dj_train_job_step_done(&j).
 */
#ifndef DMVJND_TRAIN_JOB_H
#define DMVJND_TRAIN_JOB_H

#include <stddef.h>
#include <stdint.h>

#include "dmvjnd/checkpoint.h"
#include "dmvjnd/graph.h"
#include "dmvjnd/optim.h"
#include "dmvjnd/rng.h"

#ifdef __cplusplus
extern "C" {
#endif

#define DJ_TRAIN_JOB_MAX_OUTPUTS 6
#define DJ_TRAIN_JOB_MAX_RECIPE 48

/* What a trainer tells the job about its recipe and its files. Strings are
 * the caller's and must outlive the job. */
typedef struct dj_train_job_spec {
    const char *name;          /* start of messages, e.g. "train"                      */
    const char *key_prefix;    /* recipe keys' prefix: "train." or "jnd.train."; the   */
                               /* checkpoint's elapsed time is <prefix>elapsed_s and    */
                               /* <prefix>threads is the thread count (reported)       */
    int epochs, batch, drop_last, stop_after, threads;
    double lr;
    const char *schedule;      /* dj_schedule_parse spec in epochs; NULL/"" constant   */
    uint64_t seed;             /* the one generator (j.rng) is seeded with it           */
    int train_limit;           /* 0..50000 (0: all)                                     */
    int eval_limits[2];        /* each 0..10000 (test records)                          */
    const char *eval_names[2]; /* their names in messages; NULL: unused                 */
    const char *arch;          /* the trained graph's arch in checkpoints               */
    const char *checkpoint_path;
    int resume;                /* continue from checkpoint_path if it exists            */
    const char *log_path;      /* CSV log                                               */
    /* every file the job writes, with its name in messages ("weights file"):
     * outputs[0] the trained weights (NULL: none), then checkpoint_path,
     * log_path and the trainer's others; NULL entries are skipped */
    const char *outputs[DJ_TRAIN_JOB_MAX_OUTPUTS];
    const char *output_names[DJ_TRAIN_JOB_MAX_OUTPUTS];
    /* recipe keys a resume reports instead of comparing (NULL-terminated;
     * may be NULL); <prefix>threads is always one of them */
    const char *const *informational_keys;
    /* recipe keys added after checkpoints were first written, with the value
     * every earlier run had: a checkpoint without one resumes a run asking for
     * that value */
    const dj_kv *added_keys;
    int nadded_keys;
} dj_train_job_spec;

/* The epoch the loop is in; filled by the job, read by the trainer. */
typedef struct dj_train_job_epoch {
    int epoch, epochs;             /* 1-based                                           */
    int64_t step;                  /* steps done (after train_epoch: the epoch's last)  */
    double lr_first, lr_last;      /* rates of the epoch's first and last step          */
    double t_start;                /* dj_now() at the start of the epoch                */
    double train_s;                /* seconds of train_epoch                            */
    double epoch_s;                /* seconds including evaluation (for csv_row on)     */
    double wall_s;                 /* job wall time at the end of evaluation            */
} dj_train_job_epoch;

typedef struct dj_train_job dj_train_job;

/* The trainer's parts of an epoch; user is dj_train_job_run's. */
typedef struct dj_train_job_ops {
    /* Once, before the first epoch of this session (buffers, callbacks);
     * may be NULL. */
    int (*start)(dj_train_job *j, void *user);
    /* j->steps_per_epoch steps over the images in j->order: per step dj_train_job_lr, the step,
     * dj_train_job_step_done. A non-finite loss: return
     * dj_train_job_diverged(j, what, lr). */
    int (*train_epoch)(dj_train_job *j, void *user);
    /* After the parameters were found finite; may be NULL. */
    int (*evaluate)(dj_train_job *j, void *user);
    /* The epoch is measured (j->epoch complete): fill the trainer's record
     * of it and write its CSV row (no newline) into row. Called every
     * epoch, also without a log. */
    int (*finish_epoch)(dj_train_job *j, char *row, size_t size, void *user);
    /* After the row and the checkpoint are written (callbacks); may be NULL. */
    int (*epoch_done)(dj_train_job *j, void *user);
    /* After the last epoch (not after stop_after): final evaluation and
     * the output file; may be NULL. */
    int (*save)(dj_train_job *j, void *user);
} dj_train_job_ops;

/* The per-epoch CSV log: the whole text in memory, rewritten atomically
 * after every epoch (a killed run leaves a complete file); a resumed run
 * starts from the rows of the epochs its checkpoint holds. */
typedef struct dj_csvlog {
    char *text;
    size_t len, cap;
} dj_csvlog;

struct dj_train_job {
    dj_train_job_spec spec;
    /* the plan (dj_train_job_plan) */
    int train_images, steps_per_epoch;
    int64_t total_steps;
    int32_t *order;                /* the epoch's order of the training images          */
    dj_schedule sched;
    dj_rng rng;                    /* seeded by dj_train_job_plan                       */
    /* the trained graph (dj_train_job_attach) */
    dj_graph *g;                   /* the trainer's; not freed by the job               */
    dj_optim *opt;                 /* owned                                             */
    dj_kv recipe[DJ_TRAIN_JOB_MAX_RECIPE];
    int nrecipe;
    dj_csvlog csv;
    /* progress */
    int start_epoch;               /* epochs the checkpoint held (0: fresh run)        */
    int epochs_done;
    int diverged;                  /* 1: stopped by a non-finite loss or parameter     */
    int64_t step, step_start;      /* steps done; at this session's first step         */
    double wall_before;            /* wall seconds of earlier sessions                  */
    double t_start, t_loop;        /* this session's start; its first step              */
    dj_train_job_epoch epoch;
};

/* How far a job got (the trainers' results start with these). */
typedef struct dj_train_job_status {
    int start_epoch, epochs_done, completed, diverged;
    int64_t steps;
    double wall_s;
} dj_train_job_status;
dj_train_job_status dj_train_job_get_status(const dj_train_job *j);

/* Where a running epoch is, after a step (for the trainers' on_step). */
typedef struct dj_train_job_progress {
    int epoch, epochs, batch_index, batches; /* 1-based; steps done in the epoch, per epoch */
    int64_t step, total_steps;
    double lr;                               /* the rate of the last step                  */
    double images_per_s;                     /* images_seen over the epoch's time so far    */
    double eta_s;                            /* dj_train_job_eta                            */
} dj_train_job_progress;
dj_train_job_progress dj_train_job_get_progress(const dj_train_job *j, double images_seen);

/* A trainer's config, stats and result structs use the job's names for the
 * fields they share; these copy them (one place for what both trainers do).
 *   DJ_TRAIN_JOB_SPEC_FROM(spec, cfg)      epochs, batch, drop_last, stop_after,
 *                                          threads, lr, schedule, seed,
 *                                          train_limit, checkpoint_path, resume,
 *                                          log_path
 *   DJ_TRAIN_JOB_EPOCH_TO(stats, epoch)    epoch, epochs, step, lr_first,
 *                                          lr_last, epoch_s, wall_s
 *   DJ_TRAIN_JOB_PROGRESS_TO(progress, job, images_seen)
 *                                          dj_train_job_get_progress's epoch,
 *                                          epochs, batch_index, batches, step,
 *                                          total_steps, lr, images_per_s, eta_s
 *   DJ_TRAIN_JOB_RESULT_TO(result, job)    dj_train_job_get_status's start_epoch,
 *                                          epochs_done, completed, diverged,
 *                                          steps, wall_s */
#define DJ_TRAIN_JOB_SPEC_FROM(s, c)                                                                                  \
    ((s)->epochs = (c)->epochs, (s)->batch = (c)->batch, (s)->drop_last = (c)->drop_last,                          \
     (s)->stop_after = (c)->stop_after, (s)->threads = (c)->threads, (s)->lr = (c)->lr,                           \
     (s)->schedule = (c)->schedule, (s)->seed = (c)->seed, (s)->train_limit = (c)->train_limit,                   \
     (s)->checkpoint_path = (c)->checkpoint_path, (s)->resume = (c)->resume, (s)->log_path = (c)->log_path)
#define DJ_TRAIN_JOB_EPOCH_TO(d, e)                                                                                   \
    ((d)->epoch = (e)->epoch, (d)->epochs = (e)->epochs, (d)->step = (e)->step, (d)->lr_first = (e)->lr_first,     \
     (d)->lr_last = (e)->lr_last, (d)->epoch_s = (e)->epoch_s, (d)->wall_s = (e)->wall_s)
#define DJ_TRAIN_JOB_PROGRESS_TO(p, j, images)                                                                        \
    do {                                                                                                              \
        dj_train_job_progress pr_ = dj_train_job_get_progress(j, images);                                             \
        (p)->epoch = pr_.epoch, (p)->epochs = pr_.epochs, (p)->batch_index = pr_.batch_index;                        \
        (p)->batches = pr_.batches, (p)->step = pr_.step, (p)->total_steps = pr_.total_steps, (p)->lr = pr_.lr;       \
        (p)->images_per_s = pr_.images_per_s, (p)->eta_s = pr_.eta_s;                                                 \
    } while (0)
#define DJ_TRAIN_JOB_RESULT_TO(r, j)                                                                                  \
    do {                                                                                                              \
        dj_train_job_status st_ = dj_train_job_get_status(j);                                                         \
        (r)->start_epoch = st_.start_epoch, (r)->epochs_done = st_.epochs_done, (r)->completed = st_.completed;      \
        (r)->diverged = st_.diverged, (r)->steps = st_.steps, (r)->wall_s = st_.wall_s;                               \
    } while (0)

/* Checks spec (named fields; DJ_EINVAL), sets the thread count, checks that
 * every output is distinct and its folder writable (DJ_ENOTFOUND, DJ_EIO),
 * starts the wall clock. The job needs dj_train_job_free also on failure. */
int dj_train_job_init(dj_train_job *j, const dj_train_job_spec *spec);

/* Steps per epoch for train_images images, the total, the schedule (errors
 * name a bad spec), the order buffer, and the generator seeded with
 * spec.seed. */
int dj_train_job_plan(dj_train_job *j, int train_images);

/* g (built and initialised from j->rng by the trainer) is the trained
 * graph: the space its files need is checked, its optimiser made, and when
 * resuming the checkpoint restored (recipe checked against recipe[0..n),
 * DJ_EINVAL naming the key and both values); the CSV log is started
 * (csv_header; a resumed run keeps the rows of its epochs). The recipe
 * pairs are copied (the strings stay the caller's). */
int dj_train_job_attach(dj_train_job *j, dj_graph *g, const dj_optim_config *optim, const dj_kv *recipe, int n,
                        const char *csv_header);

/* ops->start, the epochs from j->start_epoch to spec.epochs (or
 * stop_after), then ops->save when all are done. */
int dj_train_job_run(dj_train_job *j, const dj_train_job_ops *ops, void *user);

/* The rate of the next step (recorded as the epoch's first / last). */
double dj_train_job_lr(dj_train_job *j);
/* One step done. */
void dj_train_job_step_done(dj_train_job *j);
/* Seconds left for the whole run, from this session's steps; NaN before one. */
double dj_train_job_eta(const dj_train_job *j);
/* Training wall time, earlier sessions included. */
double dj_train_job_wall(const dj_train_job *j);

/* Marks the run diverged and returns DJ_ENUMERIC with the message: the
 * epoch, the step, the rate, `what` happened, and which checkpoint holds
 * the last good epoch. */
int dj_train_job_diverged(dj_train_job *j, const char *what, double lr);

/* Frees what the job owns (optimiser, order, log); j->g stays the trainer's. */
void dj_train_job_free(dj_train_job *j);

/* The log alone (the job keeps the text in j->csv also without a file). */
/* Appends s (0 or an error code; on error the log is unchanged). */
int dj_csvlog_append(dj_csvlog *c, const char *s);
/* Starts the log with header and a newline, then, if `path` exists, takes
 * its rows of epochs 1..keep_epochs. The file's first line must be
 * `header`: a log of another run or version is an error naming the file,
 * never overwritten. */
int dj_csvlog_start(dj_csvlog *c, const char *header, const char *path, int keep_epochs);
/* Appends one row (without its newline) and rewrites `path` atomically
 * (path NULL: memory only). */
int dj_csvlog_write_row(dj_csvlog *c, const char *row, const char *path);
void dj_csvlog_free(dj_csvlog *c);

/* Recipe pairs written into one caller buffer: "key\0value\0" appended to
 * buf and a pair pointing at them to kv (at most max pairs). A pair that
 * does not fit sets overflow and later adds do nothing, so the caller
 * checks once at the end. */
typedef struct dj_recipe {
    dj_kv *kv;
    int n, max;
    char *buf;
    size_t size, used;
    int overflow;
} dj_recipe;

void dj_recipe_add(dj_recipe *r, const char *key, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* The keys every recipe has, in this order, each <prefix><name>: epochs,
 * batch, drop_last, optimizer, lr, then momentum, dampening, nesterov (SGD)
 * or beta1, beta2, eps (Adam), weight_decay, schedule. */
void dj_train_job_recipe_common(dj_recipe *r, const dj_train_job_spec *spec, const dj_optim_config *optim);

#ifdef __cplusplus
}
#endif

#endif
