/*
 * Training and evaluating CIFAR-10 classifiers.
 *
 * dj_train_classifier runs a whole training job from a config: it builds the
 * model, loads CIFAR-10, trains with one optimiser step per batch, evaluates
 * after every epoch, writes a CSV log row and an atomic checkpoint per
 * epoch, and finally the weights file that `dmvjnd classify`, `dmvjnd cam`
 * and the JND network load. The library prints nothing: progress and
 * per-epoch results go to the caller's callbacks (the CLI prints them).
 *
 * Reproducibility. Everything random (initialisation, the epoch's shuffle,
 * the crop and flip of every image, dropout) is drawn from ONE generator
 * seeded with cfg->seed, in a fixed serial order, and that generator is
 * saved in every checkpoint. Checkpoints are written at epoch boundaries, so
 * a run resumed from one (cfg->resume) draws exactly what the uninterrupted
 * run would have drawn: with the same seed and the same thread count the
 * final weights are bit-identical (tests/test_classifier.c checks it). The
 * thread count matters because oneDNN's reductions split work by thread.
 *
 * Batches. Every epoch visits a new random permutation of the training
 * images in batches of cfg->batch. The last, smaller batch of an epoch is
 * kept by default (drop_last = 0: PyTorch's DataLoader default); with
 * drop_last = 1 it is skipped. Steps per epoch are therefore
 * ceil(N / batch), or floor(N / batch) with drop_last.
 *
 * Evaluation uses the training graph in inference mode (batch norm with its
 * running statistics, no dropout); it draws no random numbers, so it does
 * not change the training trajectory.
 *
 * Normalisation. Images are mapped to (x/255 - mean) / std per channel. The
 * default mean = std = 0.5 (inputs in [-1, 1]) is the JND paper's: the four
 * classifiers see the JND network's x + e in that space, so they must all
 * be trained with it. The values are stored in the weights file's metadata
 * ("train.mean", "train.std") and dj_classifier_load (dmvjnd/classifier.h)
 * uses them.
 *
 * Files written (each atomically: a crash leaves the previous version):
 *   - checkpoint (cfg->checkpoint_path), after every epoch: weights,
 *     optimiser state, generator, epoch and step (dmvjnd/checkpoint.h), and
 *     the recipe as "train.*" metadata pairs (see dj_train_recipe);
 *   - CSV log (cfg->log_path), rewritten after every epoch with one more row
 *     (columns: DJ_TRAIN_CSV_HEADER). A fresh run starts a new log; a resumed
 *     run keeps the rows of the epochs the checkpoint holds and drops any
 *     later ones (written after the checkpoint by the interrupted run);
 *   - weights (cfg->out_path), at the end: dj_weights_save with the recipe,
 *     "train.wall_s" (training wall time, summed over resumed sessions),
 *     "test_accuracy"/"test_images" (final evaluation: records
 *     0..final_eval_limit-1 of the test split) and "test_accuracy_head"/
 *     "test_images_head" (the per-epoch evaluation slice, records
 *     0..eval_limit-1, after the last epoch). Accuracies are fractions in
 *     [0, 1] printed with %.6f.
 */
#ifndef DMVJND_TRAIN_H
#define DMVJND_TRAIN_H

#include <stddef.h>
#include <stdint.h>

#include "dmvjnd/checkpoint.h"
#include "dmvjnd/cifar10.h"
#include "dmvjnd/classifier.h"
#include "dmvjnd/graph.h"
#include "dmvjnd/models.h"
#include "dmvjnd/optim.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Columns of the CSV log, in order. lr_first / lr_last: the rates of the
 * epoch's first and last step; train_loss / train_acc: mean loss and
 * accuracy over the epoch's training batches (training mode, augmented);
 * test_acc: accuracy on test records 0..test_images-1 after the epoch
 * (empty when eval_limit is 0); images_per_s: training throughput of the
 * epoch; epoch_s: the epoch's wall time including evaluation; wall_s:
 * training wall time since the start of the run, resumed sessions summed. */
#define DJ_TRAIN_CSV_HEADER \
    "epoch,step,lr_first,lr_last,train_loss,train_acc,test_acc,test_images,images_per_s,epoch_s,wall_s"

typedef struct dj_train_config {
    const char *arch;         /* model name (dj_model_build), e.g. "resnet20"; required     */
    dj_model_builder build;   /* NULL: dj_model_build                                      */
    const char *data_dir;     /* CIFAR-10 folder; NULL: dj_cifar10_default_dir()           */
    int epochs;               /* >= 1                                                       */
    int batch;                /* >= 1                                                       */
    int drop_last;            /* 1: skip each epoch's last partial batch                   */
    dj_optim_config optim;    /* kind, momentum, nesterov, weight decay, betas, eps        */
    double lr;                /* base (peak) learning rate, finite and >= 0                 */
    const char *schedule;     /* dj_schedule_parse spec with milestones / warm-up lengths  */
                              /* in EPOCHS; NULL or "" = "constant"                         */
    int augment;              /* 1: random crop (pad 4) + horizontal flip (torchvision's)  */
    float mean[3], std[3];    /* input normalisation per channel (RGB)                     */
    uint64_t seed;            /* the one generator's seed                                  */
    int threads;              /* > 0: dj_set_num_threads(threads) first; 0: as set         */
    int train_limit;          /* train on the first N training images; 0 = all 50000      */
    int eval_limit;           /* after each epoch, evaluate test records 0..N-1; 0 = skip  */
    int final_eval_limit;     /* at the end, evaluate test records 0..N-1; 0 = skip        */
    int stop_after;           /* > 0: return after this epoch (checkpoint written, no      */
                              /* weights file): splits a run into sessions; 0 = run all    */
    const char *out_path;     /* final weights file; NULL = not written                    */
    const char *checkpoint_path; /* checkpoint after every epoch; NULL = none              */
    int resume;               /* 1: continue from checkpoint_path if that file exists      */
                              /* (it must hold the same recipe); a missing file starts a   */
                              /* fresh run, so an interrupted command can simply be rerun  */
    const char *log_path;     /* CSV log; NULL = none                                      */
} dj_train_config;

/* Defaults, a standard CIFAR ResNet recipe: resnet20, 30 epochs, batch 128,
 * SGD with Nesterov momentum 0.9, weight decay 5e-4, lr 0.1, cosine
 * schedule, augmentation on, mean = std = 0.5, seed 1, all threads, all
 * training images, eval_limit 1000, final_eval_limit 10000, no files. */
dj_train_config dj_train_defaults(void);

/* Progress inside an epoch, reported after every optimiser step. */
typedef struct dj_train_progress {
    int epoch, epochs;               /* current epoch (1-based) and total                  */
    int batch_index, batches;        /* steps done in this epoch (1-based) and per epoch    */
    int64_t step, total_steps;       /* optimiser steps done in the whole run, and total    */
    double loss;                     /* loss of this step                                   */
    double epoch_loss;               /* mean loss of the epoch so far                       */
    double lr;                       /* rate of this step                                   */
    double images_per_s;             /* training throughput of the epoch so far             */
    double eta_s;                    /* estimated seconds left for the whole run            */
} dj_train_progress;

/* What one epoch achieved (also the CSV row). */
typedef struct dj_epoch_stats {
    int epoch, epochs;
    int64_t step;                    /* optimiser steps done after this epoch               */
    double lr_first, lr_last;
    double train_loss, train_acc;
    double test_acc;                 /* NaN when eval_limit is 0                            */
    int test_images;
    double images_per_s, epoch_s, wall_s;
} dj_epoch_stats;

struct dj_train_result;

/* Any callback may be NULL. on_start is called once, after the data, the
 * model and (when resuming) the checkpoint are loaded, before the first
 * step: r->start_epoch says where the run continues (0 for a fresh run). */
typedef struct dj_train_callbacks {
    void (*on_start)(const struct dj_train_result *r, void *user);
    void (*on_step)(const dj_train_progress *p, void *user);
    void (*on_epoch)(const dj_epoch_stats *s, void *user);
    void *user;
} dj_train_callbacks;

typedef struct dj_train_result {
    int start_epoch;        /* epochs already done when this session started (resume) */
    int epochs_done;        /* epochs completed at the end of this session            */
    int64_t steps;          /* optimiser steps completed                              */
    int completed;          /* 1: all epochs done (weights written if out_path)       */
    int diverged;           /* 1: stopped by a NaN/Inf loss or parameter (DJ_ENUMERIC) */
    double final_loss;      /* mean training loss of the last epoch                  */
    double head_accuracy;   /* last per-epoch evaluation; NaN if none                 */
    int head_images;
    double test_accuracy;   /* final evaluation; NaN if none                          */
    int test_images;
    double wall_s;          /* training wall time, resumed sessions summed            */
} dj_train_result;

/* Run the job. cb and res may be NULL. Returns 0 or:
 *   DJ_EINVAL     a bad config field (named); --resume with a checkpoint whose
 *                 recipe differs in a field that changes the result (named,
 *                 with both values); a bad schedule spec
 *   DJ_ENOTFOUND, DJ_EIO  an output folder is missing or not writable: checked
 *                 BEFORE the data is loaded or anything is trained; the data
 *                 cannot be read
 *   DJ_EFORMAT    a malformed data set, checkpoint or CSV log to resume
 *   DJ_ENUMERIC   the training loss (or a parameter after an epoch) became NaN
 *                 or Inf: the run stops at once, res->diverged = 1, and the
 *                 checkpoint of the last good epoch is left as it was
 *   others        from the engine (DJ_ENOMEM, DJ_EBACKEND)
 * res is filled as far as the run got, also on failure. */
int dj_train_classifier(const dj_train_config *cfg, const dj_train_callbacks *cb, dj_train_result *res);

/* The recipe as "train.<field>" metadata pairs (arch, epochs, batch,
 * drop_last, optimizer, lr, momentum, dampening, nesterov, weight_decay,
 * beta1, beta2, eps, schedule, augment, mean, std, seed, train_images,
 * threads). Numbers are written exactly (%.17g). Strings point into `buf`
 * (buf_size bytes; 2048 suffice) and kv must hold DJ_TRAIN_RECIPE_MAX pairs.
 * train_images is the resolved count (train_limit or 50000) and threads
 * dj_get_num_threads() at the time of the call. Returns the number of pairs,
 * or DJ_EINVAL if buf is too small. */
#define DJ_TRAIN_RECIPE_MAX 24
int dj_train_recipe(const dj_train_config *cfg, int train_images, dj_kv *kv, char *buf, size_t buf_size);

/* ------------------------------------------------------------ evaluation */

typedef struct dj_eval_result {
    int images, correct;
    double accuracy;                              /* correct / images             */
    int class_images[DJ_CIFAR10_CLASSES];         /* images whose label is k       */
    int class_correct[DJ_CIFAR10_CLASSES];
    double class_accuracy[DJ_CIFAR10_CLASSES];    /* NaN for a class with no image */
} dj_eval_result;

/* Accuracy of g on every image of ds (normalised with mean/std, no
 * augmentation), in batches of `batch`, overall and per class. pred and conf
 * (ds->n entries each, may be NULL) receive each image's predicted label
 * and max softmax probability. The graph must have 10 outputs. */
int dj_evaluate(dj_graph *g, const dj_cifar10 *ds, const float mean[3], const float std[3], int batch,
                dj_eval_result *res, int32_t *pred, float *conf);

#ifdef __cplusplus
}
#endif

#endif
