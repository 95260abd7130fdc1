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
#include "dmvjnd/train_job.h"
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

/* ------------------------------------------------------------------ config */

/* The fields only this trainer has; the job checks the rest. */
static int check_config(const dj_train_config *c) {
    if (!c) return dj_error(DJ_EINVAL, "dj_train_classifier: NULL config");
    if (!c->arch || !*c->arch) return dj_error(DJ_EINVAL, "train: arch (the model name) is required");
    for (int i = 0; i < 3; i++) {
        if (!isfinite(c->mean[i])) return dj_error(DJ_EINVAL, "train: mean[%d] = %g is not finite", i, c->mean[i]);
        if (!(isfinite(c->std[i]) && c->std[i] > 0))
            return dj_error(DJ_EINVAL, "train: std[%d] = %g must be finite and > 0", i, c->std[i]);
    }
    return DJ_OK;
}

static dj_train_job_spec job_spec(const dj_train_config *c) {
    dj_train_job_spec s = {.key_prefix = "train.", .arch = c->arch};
    DJ_TRAIN_JOB_SPEC_FROM(&s, c);
    s.eval_limits[0] = c->eval_limit;
    s.eval_limits[1] = c->final_eval_limit;
    s.eval_names[0] = "eval_limit";
    s.eval_names[1] = "final_eval_limit";
    const char *paths[3] = {c->out_path, c->checkpoint_path, c->log_path};
    const char *what[3] = {"weights file", "checkpoint", "CSV log"};
    for (int i = 0; i < 3; i++) {
        s.outputs[i] = paths[i];
        s.output_names[i] = what[i];
    }
    return s;
}

/* ------------------------------------------------------------ the recipe */


int dj_train_recipe(const dj_train_config *cfg, int train_images, dj_kv *kv, char *buf, size_t buf_size) {
    dj_recipe r = {kv, 0, DJ_TRAIN_RECIPE_MAX, buf, buf_size, 0, 0};
    const dj_train_job_spec spec = job_spec(cfg);
    dj_recipe_add(&r, "train.arch", "%s", cfg->arch ? cfg->arch : "");
    dj_train_job_recipe_common(&r, &spec, &cfg->optim);
    dj_recipe_add(&r, "train.augment", "%d", cfg->augment ? 1 : 0);
    dj_recipe_add(&r, "train.mean", "%.9g,%.9g,%.9g", cfg->mean[0], cfg->mean[1], cfg->mean[2]);
    dj_recipe_add(&r, "train.std", "%.9g,%.9g,%.9g", cfg->std[0], cfg->std[1], cfg->std[2]);
    dj_recipe_add(&r, "train.seed", "%llu", (unsigned long long)cfg->seed);
    dj_recipe_add(&r, "train.train_images", "%d", train_images);
    dj_recipe_add(&r, "train.threads", "%d", dj_get_num_threads());
    if (r.overflow) return dj_error(DJ_EINVAL, "dj_train_recipe: buffer of %zu bytes is too small", buf_size);
    return r.n;
}

/* ---------------------------------------------------------------- trainer */

typedef struct trainer {
    const dj_train_config *cfg;
    const dj_train_callbacks *cb;
    dj_train_result *res;
    dj_train_job job;
    dj_cifar10 train, test;
    dj_graph *g;
    dj_epoch_stats st; /* the epoch in progress */
    long seen, correct;
    double loss_sum;
    /* batch buffers */
    dj_tensor x, dlogits;
    int32_t *labels;
    float *probs;
} trainer;

/* Accuracy on test records 0..limit-1 (limit <= t->test.n). */
static int eval_head(trainer *t, int limit, double *acc) {
    dj_cifar10 view = t->test;
    view.n = limit;
    dj_eval_result er;
    int rc = dj_evaluate(t->g, &view, t->cfg->mean, t->cfg->std, t->cfg->batch, &er, NULL, NULL);
    if (rc) return rc;
    *acc = er.accuracy;
    return DJ_OK;
}

static void report_step(trainer *t, float loss) {
    dj_train_progress p;
    DJ_TRAIN_JOB_PROGRESS_TO(&p, &t->job, (double)t->seen);
    p.loss = loss;
    p.epoch_loss = t->loss_sum / (double)t->seen;
    t->cb->on_step(&p, t->cb->user);
}

/* The batch buffers, then the caller's on_start. */
static int start(dj_train_job *j, void *user) {
    trainer *t = user;
    int B = t->cfg->batch;
    t->labels = malloc((size_t)B * sizeof *t->labels);
    t->probs = malloc((size_t)B * DJ_CIFAR10_CLASSES * sizeof *t->probs);
    if (!t->labels || !t->probs) return dj_error(DJ_ENOMEM, "train: out of memory");
    int rc = dj_tensor_alloc(&t->x, B, DJ_CIFAR10_SIDE, DJ_CIFAR10_SIDE, DJ_CIFAR10_CHANNELS);
    if (!rc) rc = dj_tensor_alloc(&t->dlogits, B, 1, 1, DJ_CIFAR10_CLASSES);
    if (rc) return rc;
    DJ_TRAIN_JOB_RESULT_TO(t->res, &t->job);
    if (t->cb && t->cb->on_start) t->cb->on_start(t->res, t->cb->user);
    return DJ_OK;
}

/* One epoch over the job's permutation: per batch the augmented images, the
 * forward pass, softmax cross-entropy, backward and the optimiser step. */
static int train_epoch(dj_train_job *j, void *user) {
    trainer *t = user;
    const dj_train_config *cfg = t->cfg;
    int N = t->train.n, B = cfg->batch;
    dj_augment aug = DJ_AUGMENT_CIFAR10;
    t->seen = t->correct = 0;
    t->loss_sum = 0;
    for (int b = 0; b < j->steps_per_epoch; b++) {
        int n = N - b * B < B ? N - b * B : B;
        dj_tensor x = dj_tensor_view(t->x.data, n, DJ_CIFAR10_SIDE, DJ_CIFAR10_SIDE, DJ_CIFAR10_CHANNELS);
        dj_tensor dl = dj_tensor_view(t->dlogits.data, n, 1, 1, DJ_CIFAR10_CLASSES);
        int rc = dj_cifar10_batch(&t->train, j->order + (size_t)b * B, n, cfg->augment ? &aug : NULL, &j->rng,
                                  cfg->mean, cfg->std, &x, t->labels);
        if (rc) return rc;
        double lr = dj_train_job_lr(j);
        const dj_tensor *logits;
        float loss;
        dj_graph_zero_grad(t->g);
        if ((rc = dj_graph_forward(t->g, &x, 1, &j->rng, &logits))) return rc;
        if ((rc = dj_softmax_ce_forward(logits, t->labels, t->probs, &loss))) return rc;
        if (!isfinite(loss)) {
            char what[64];
            snprintf(what, sizeof what, "the loss is %g", (double)loss);
            return dj_train_job_diverged(j, what, lr);
        }
        for (int i = 0; i < n; i++) {
            const float *l = logits->data + (size_t)i * DJ_CIFAR10_CLASSES;
            int best = 0;
            for (int k = 1; k < DJ_CIFAR10_CLASSES; k++)
                if (l[k] > l[best]) best = k;
            t->correct += best == t->labels[i];
        }
        if ((rc = dj_softmax_ce_backward(t->probs, t->labels, 1.0f, &dl, 0))) return rc;
        if ((rc = dj_graph_backward(t->g, &dl, NULL))) return rc;
        if ((rc = dj_optim_step(j->opt, (float)lr))) return rc;
        dj_train_job_step_done(j);
        t->loss_sum += (double)loss * n;
        t->seen += n;
        if (t->cb && t->cb->on_step) report_step(t, loss);
    }
    return DJ_OK;
}

/* Evaluation uses the training graph in inference mode and draws nothing. */
static int evaluate_epoch(dj_train_job *j, void *user) {
    trainer *t = user;
    t->st.test_acc = NAN;
    t->st.test_images = 0;
    if (t->cfg->eval_limit <= 0) return DJ_OK;
    t->st.test_images = t->cfg->eval_limit;
    return eval_head(t, t->cfg->eval_limit, &t->st.test_acc);
}

static int finish_epoch(dj_train_job *j, char *row, size_t size, void *user) {
    trainer *t = user;
    dj_epoch_stats *st = &t->st;
    const dj_train_job_epoch *e = &j->epoch;
    DJ_TRAIN_JOB_EPOCH_TO(st, e);
    st->train_loss = t->seen ? t->loss_sum / (double)t->seen : NAN;
    st->train_acc = t->seen ? (double)t->correct / (double)t->seen : NAN;
    st->images_per_s = e->train_s > 0 ? (double)t->seen / e->train_s : 0;
    dj_train_result *res = t->res;
    res->epochs_done = e->epoch;
    res->steps = e->step;
    res->final_loss = st->train_loss;
    res->head_accuracy = st->test_acc;
    res->head_images = st->test_images;
    char acc[32] = "";
    if (st->test_images > 0) snprintf(acc, sizeof acc, "%.6f", st->test_acc);
    snprintf(row, size, "%d,%lld,%.8g,%.8g,%.6f,%.6f,%s,%d,%.1f,%.3f,%.3f", st->epoch, (long long)st->step,
             st->lr_first, st->lr_last, st->train_loss, st->train_acc, acc, st->test_images, st->images_per_s,
             st->epoch_s, st->wall_s);
    return DJ_OK;
}

static int epoch_done(dj_train_job *j, void *user) {
    trainer *t = user;
    if (t->cb && t->cb->on_epoch) t->cb->on_epoch(&t->st, t->cb->user);
    return DJ_OK;
}

/* The final evaluations and the weights file with the recipe and results. */
static int save(dj_train_job *j, void *user) {
    trainer *t = user;
    const dj_train_config *cfg = t->cfg;
    dj_train_result *res = t->res;
    int rc;
    if (cfg->eval_limit > 0 && !(res->head_images > 0)) {
        if ((rc = eval_head(t, cfg->eval_limit, &res->head_accuracy))) return rc;
        res->head_images = cfg->eval_limit;
    }
    if (cfg->final_eval_limit > 0) {
        if ((rc = eval_head(t, cfg->final_eval_limit, &res->test_accuracy))) return rc;
        res->test_images = cfg->final_eval_limit;
    }
    res->wall_s = dj_train_job_wall(j);
    if (!cfg->out_path) return DJ_OK;
    dj_kv meta[DJ_TRAIN_JOB_MAX_RECIPE + 8];
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
    return dj_weights_save(cfg->out_path, j->g, cfg->arch, meta, n);
}

static int load_data(trainer *t) {
    const dj_train_config *cfg = t->cfg;
    dj_cifar10_opts o = {0, cfg->train_limit, 0};
    int rc = dj_cifar10_load(&t->train, cfg->data_dir, "train", &o);
    if (rc) return rc;
    int test_n = cfg->eval_limit > cfg->final_eval_limit ? cfg->eval_limit : cfg->final_eval_limit;
    if (test_n > 0) {
        dj_cifar10_opts o2 = {0, test_n, 0};
        if ((rc = dj_cifar10_load(&t->test, cfg->data_dir, "test", &o2))) return rc;
        if (t->test.n < test_n)
            return dj_error(DJ_EFORMAT, "train: the test split has %d records, %d requested", t->test.n, test_n);
    }
    return DJ_OK;
}

static int build_model(trainer *t) {
    const dj_train_config *cfg = t->cfg;
    int rc = cfg->build ? cfg->build(&t->g, cfg->arch, DJ_CIFAR10_CLASSES, &t->job.rng)
                        : dj_model_build(&t->g, cfg->arch, DJ_CIFAR10_CLASSES, &t->job.rng);
    if (rc) return rc;
    int h, w, c, k;
    dj_graph_node_shape(t->g, 0, &h, &w, &c);
    dj_graph_node_shape(t->g, dj_graph_output_node(t->g), NULL, NULL, &k);
    if (h != DJ_CIFAR10_SIDE || w != DJ_CIFAR10_SIDE || c != DJ_CIFAR10_CHANNELS || k != DJ_CIFAR10_CLASSES)
        return dj_error(DJ_EINVAL, "train: model '%s' takes %dx%dx%d images and has %d outputs; CIFAR-10 needs "
                                   "32x32x3 and 10",
                        cfg->arch, h, w, c, k);
    return DJ_OK;
}

int dj_train_classifier(const dj_train_config *cfg, const dj_train_callbacks *cb, dj_train_result *res) {
    dj_train_result local;
    if (!res) res = &local;
    *res = (dj_train_result){.final_loss = NAN, .head_accuracy = NAN, .test_accuracy = NAN};
    int rc = check_config(cfg);
    if (rc) return rc;
    static const dj_train_job_ops ops = {start, train_epoch, evaluate_epoch, finish_epoch, epoch_done, save};
    trainer t = {.cfg = cfg, .cb = cb, .res = res};
    dj_train_job *j = &t.job;
    dj_train_job_spec spec = job_spec(cfg);
    dj_kv recipe[DJ_TRAIN_RECIPE_MAX];
    char recipe_buf[4096];
    int nrecipe = 0;
    if ((rc = dj_train_job_init(j, &spec))) goto out;
    if ((rc = load_data(&t))) goto out;
    if ((rc = dj_train_job_plan(j, t.train.n))) goto out;
    if ((rc = build_model(&t))) goto out;
    if ((rc = nrecipe = dj_train_recipe(cfg, t.train.n, recipe, recipe_buf, sizeof recipe_buf)) < 0) goto out;
    if ((rc = dj_train_job_attach(j, t.g, &cfg->optim, recipe, nrecipe, DJ_TRAIN_CSV_HEADER))) goto out;
    rc = dj_train_job_run(j, &ops, &t);
out:
    DJ_TRAIN_JOB_RESULT_TO(res, j);
    dj_train_job_free(j);
    dj_tensor_free(&t.x);
    dj_tensor_free(&t.dlogits);
    free(t.labels);
    free(t.probs);
    dj_graph_destroy(t.g);
    dj_cifar10_free(&t.train);
    dj_cifar10_free(&t.test);
    return rc;
}
