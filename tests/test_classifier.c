/* dj_train_classifier and dj_evaluate on a tiny CNN and a few hundred
 * CIFAR-10 images: the loss goes down, the CSV log, checkpoint and weights
 * are written as documented, resuming is bit-identical to an uninterrupted
 * run, a diverging run stops with DJ_ENUMERIC leaving the last good
 * checkpoint, and unusable output paths fail before any training. Needs the
 * data set (scripts/get-cifar10.sh, or DMVJND_DATA). */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "dmvjnd/checkpoint.h"
#include "dmvjnd/dmvjnd.h"
#include "dmvjnd/fileio.h"
#include "dmvjnd/train.h"

static char tmpdir[256];

static const char *tmp(const char *name) {
    static char buf[8][512];
    static int k;
    char *b = buf[k++ % 8];
    snprintf(b, 512, "%s/%s", tmpdir, name);
    return b;
}

/* conv(8, s2) -> bn relu -> conv(16, s2) -> bn relu -> gap -> fc: trains in
 * milliseconds per batch. */
static int tiny_build(dj_graph **out, const char *arch, int classes, dj_rng *rng) {
    (void)arch;
    dj_graph *g;
    int rc = dj_graph_create(&g, 32, 32, 3);
    if (rc) return rc;
    int x = dj_graph_conv(g, 0, "conv1", 8, 3, 2, 1, 0);
    if (x >= 0) x = dj_graph_bn(g, x, "bn1", 1);
    if (x >= 0) x = dj_graph_conv(g, x, "conv2", 16, 3, 2, 1, 0);
    if (x >= 0) x = dj_graph_bn(g, x, "bn2", 1);
    if (x >= 0) x = dj_graph_gap(g, x);
    if (x >= 0) x = dj_graph_linear(g, x, "fc", classes, 1);
    if (x < 0 || (rc = dj_graph_finalize(g, rng))) {
        dj_graph_destroy(g);
        return x < 0 ? x : rc;
    }
    *out = g;
    return DJ_OK;
}

static dj_train_config tiny_config(void) {
    dj_train_config c = dj_train_defaults();
    c.arch = "tiny";
    c.build = tiny_build;
    c.epochs = 2;
    c.batch = 64;
    c.lr = 0.05;
    c.schedule = "cosine";
    c.train_limit = 256;
    c.eval_limit = 100;
    c.final_eval_limit = 200;
    c.seed = 7;
    return c;
}

static int data_available(void) {
    dj_cifar10 ds;
    dj_cifar10_opts o = {0, 1, 0};
    if (dj_cifar10_load(&ds, NULL, "test", &o)) {
        fprintf(stderr, "test_classifier: CIFAR-10 not found (%s); run scripts/get-cifar10.sh or set DMVJND_DATA\n",
                dj_last_error());
        return 0;
    }
    dj_cifar10_free(&ds);
    return 1;
}

static char *read_text(const char *path) {
    void *d;
    size_t n;
    if (dj_read_file(path, 1 << 20, &d, &n)) return NULL;
    char *s = malloc(n + 1);
    memcpy(s, d, n + 1);
    dj_free(d);
    return s;
}

static int count_lines(const char *s) {
    int n = 0;
    for (; s && *s; s++) n += *s == '\n';
    return n;
}

typedef struct counter {
    int steps, epochs, starts, start_epoch;
    double first_loss, last_epoch_loss[8];
} counter;

static void on_start(const dj_train_result *r, void *user) {
    counter *c = user;
    c->starts++;
    c->start_epoch = r->start_epoch;
}

static void on_step(const dj_train_progress *p, void *user) {
    counter *c = user;
    if (c->steps == 0) c->first_loss = p->loss;
    c->steps++;
}

static void on_epoch(const dj_epoch_stats *s, void *user) {
    counter *c = user;
    if (s->epoch < 8) c->last_epoch_loss[s->epoch] = s->train_loss;
    c->epochs++;
}

/* Loads a weights/checkpoint file into a fresh tiny graph. */
static dj_graph *load_tiny(const char *path) {
    dj_graph *g = NULL;
    dj_rng r;
    dj_rng_seed(&r, 99);
    if (tiny_build(&g, "tiny", 10, &r)) return NULL;
    if (dj_weights_load(g, path, "tiny")) {
        fprintf(stderr, "load_tiny: %s\n", dj_last_error());
        dj_graph_destroy(g);
        return NULL;
    }
    return g;
}

static int same_params(const dj_graph *a, const dj_graph *b) {
    int n = dj_graph_num_params(a);
    if (n != dj_graph_num_params(b)) return 0;
    for (int i = 0; i < n; i++) {
        const dj_param *p = dj_graph_param(a, i), *q = dj_graph_param(b, i);
        if (p->count != q->count || memcmp(p->data, q->data, p->count * sizeof(float))) {
            fprintf(stderr, "same_params: '%s' differs\n", p->name);
            return 0;
        }
    }
    return 1;
}

static void test_short_run(void) {
    dj_train_config c = tiny_config();
    c.out_path = tmp("short.safetensors");
    c.checkpoint_path = tmp("short.ckpt");
    c.log_path = tmp("short.csv");
    counter cnt = {0};
    dj_train_callbacks cb = {.on_step = on_step, .on_epoch = on_epoch, .user = &cnt};
    dj_train_result r;
    CHECK_OK(dj_train_classifier(&c, &cb, &r));
    CHECK(r.completed == 1 && r.epochs_done == 2 && r.start_epoch == 0 && !r.diverged);
    CHECK(r.steps == 8); /* 256 / 64 per epoch */
    CHECK(cnt.steps == 8 && cnt.epochs == 2);
    /* the loss goes down: epoch 2's mean below the first batch's and epoch 1's */
    printf("short run: first loss %.4f, epoch losses %.4f %.4f, head acc %.3f (%d), test acc %.3f (%d)\n",
           cnt.first_loss, cnt.last_epoch_loss[1], cnt.last_epoch_loss[2], r.head_accuracy, r.head_images,
           r.test_accuracy, r.test_images);
    CHECK(cnt.last_epoch_loss[2] < cnt.last_epoch_loss[1]);
    CHECK(cnt.last_epoch_loss[2] < cnt.first_loss);
    CHECK(r.head_images == 100 && r.test_images == 200);
    CHECK(r.test_accuracy >= 0 && r.test_accuracy <= 1);

    /* CSV: header + one row per epoch */
    char *csv = read_text(c.log_path);
    CHECK(csv != NULL);
    if (csv) {
        CHECK(!strncmp(csv, DJ_TRAIN_CSV_HEADER "\n", strlen(DJ_TRAIN_CSV_HEADER) + 1));
        CHECK(count_lines(csv) == 3);
        const char *row1 = strchr(csv, '\n') + 1;
        CHECK(!strncmp(row1, "1,4,", 4));
        const char *row2 = strchr(row1, '\n') + 1;
        CHECK(!strncmp(row2, "2,8,", 4));
        /* 11 columns, test_images = 100 */
        int commas = 0;
        for (const char *s = row2; *s && *s != '\n'; s++) commas += *s == ',';
        CHECK(commas == 10);
        CHECK(strstr(row2, ",100,") != NULL);
    }
    free(csv);

    /* checkpoint at epoch 2 with the recipe; weights with accuracy metadata */
    char buf[128];
    CHECK_OK(dj_weights_read_meta(c.checkpoint_path, "epoch", buf, sizeof buf));
    CHECK(!strcmp(buf, "2"));
    CHECK_OK(dj_weights_read_meta(c.checkpoint_path, "train.batch", buf, sizeof buf));
    CHECK(!strcmp(buf, "64"));
    CHECK_OK(dj_weights_read_meta(c.out_path, "arch", buf, sizeof buf));
    CHECK(!strcmp(buf, "tiny"));
    CHECK_OK(dj_weights_read_meta(c.out_path, "format", buf, sizeof buf));
    CHECK(!strcmp(buf, DJ_WEIGHTS_FORMAT));
    CHECK_OK(dj_weights_read_meta(c.out_path, "train.mean", buf, sizeof buf));
    CHECK(!strcmp(buf, "0.5,0.5,0.5"));
    CHECK_OK(dj_weights_read_meta(c.out_path, "train.epochs", buf, sizeof buf));
    CHECK(!strcmp(buf, "2"));
    CHECK_OK(dj_weights_read_meta(c.out_path, "train.wall_s", buf, sizeof buf));
    CHECK_OK(dj_weights_read_meta(c.out_path, "test_images", buf, sizeof buf));
    CHECK(!strcmp(buf, "200"));
    CHECK_OK(dj_weights_read_meta(c.out_path, "test_images_head", buf, sizeof buf));
    CHECK(!strcmp(buf, "100"));
    CHECK_OK(dj_weights_read_meta(c.out_path, "test_accuracy", buf, sizeof buf));
    double acc = strtod(buf, NULL);
    CHECK_CLOSE(acc, r.test_accuracy, 1e-6, 0);

    /* The weights reproduce the reported accuracy with dj_evaluate, on the
     * training graph and on a frozen copy; predictions agree with it. */
    dj_graph *g = load_tiny(c.out_path);
    CHECK(g != NULL);
    if (g) {
        dj_cifar10 ds;
        dj_cifar10_opts o = {0, 200, 0};
        CHECK_OK(dj_cifar10_load(&ds, NULL, "test", &o));
        dj_eval_result er, ef;
        int32_t pred[200], predf[200];
        float conf[200], conff[200];
        CHECK_OK(dj_evaluate(g, &ds, c.mean, c.std, 64, &er, pred, conf));
        CHECK(er.images == 200);
        CHECK_CLOSE(er.accuracy, r.test_accuracy, 1e-9, 0);
        int correct = 0, sum_class = 0;
        for (int i = 0; i < 200; i++) {
            correct += pred[i] == ds.labels[i];
            CHECK(conf[i] >= 0.1f - 1e-6f && conf[i] <= 1.0f);
        }
        for (int k = 0; k < 10; k++) sum_class += er.class_correct[k];
        CHECK(correct == er.correct && sum_class == er.correct);
        CHECK_OK(dj_graph_freeze(g));
        CHECK_OK(dj_evaluate(g, &ds, c.mean, c.std, 37, &ef, predf, conff));
        int agree = 0;
        for (int i = 0; i < 200; i++) agree += pred[i] == predf[i];
        CHECK(agree >= 198); /* BN folding changes the rounding only */
        CHECK(check_max_err(conf, conff, 200, 1e-4, 1e-3) <= 1);
        dj_cifar10_free(&ds);
        dj_graph_destroy(g);
    }

    /* dj_classifier_load refuses the unknown arch "tiny" with a clear error */
    dj_classifier cl;
    CHECK_FAILS(dj_classifier_load(&cl, c.out_path, 1), DJ_EFORMAT, "unknown model 'tiny'");
}

static void test_resume_bit_identical(void) {
    /* A: two epochs straight. */
    dj_train_config a = tiny_config();
    a.out_path = tmp("a.safetensors");
    a.checkpoint_path = tmp("a.ckpt");
    a.log_path = tmp("a.csv");
    dj_train_result ra, rb1, rb2;
    CHECK_OK(dj_train_classifier(&a, NULL, &ra));
    /* B: one epoch, stop; then resume for the second. */
    dj_train_config b = tiny_config();
    b.out_path = tmp("b.safetensors");
    b.checkpoint_path = tmp("b.ckpt");
    b.log_path = tmp("b.csv");
    b.stop_after = 1;
    CHECK_OK(dj_train_classifier(&b, NULL, &rb1));
    CHECK(rb1.epochs_done == 1 && !rb1.completed);
    CHECK(access(b.out_path, F_OK) != 0); /* no weights before the end */
    /* A changed recipe is refused, naming the field. */
    dj_train_config bad = b;
    bad.stop_after = 0;
    bad.resume = 1;
    bad.batch = 32;
    CHECK_FAILS(dj_train_classifier(&bad, NULL, NULL), DJ_EINVAL, "train.batch = 64");
    bad = b;
    bad.stop_after = 0;
    bad.resume = 1;
    bad.lr = 0.1;
    CHECK_FAILS(dj_train_classifier(&bad, NULL, NULL), DJ_EINVAL, "train.lr");
    /* A stale row after the checkpoint is dropped on resume. */
    {
        char *csv = read_text(b.log_path);
        CHECK(csv && count_lines(csv) == 2);
        size_t n = csv ? strlen(csv) : 0;
        char *more = malloc(n + 64);
        snprintf(more, n + 64, "%s2,99,0,0,0,0,,0,0,0,0\n", csv ? csv : "");
        CHECK_OK(dj_write_file_atomic(b.log_path, more, strlen(more)));
        free(more);
        free(csv);
    }
    b.stop_after = 0;
    b.resume = 1;
    counter cnt = {0};
    dj_train_callbacks cb = {on_start, on_step, on_epoch, &cnt};
    CHECK_OK(dj_train_classifier(&b, &cb, &rb2));
    CHECK(rb2.start_epoch == 1 && rb2.epochs_done == 2 && rb2.completed);
    CHECK(cnt.starts == 1 && cnt.start_epoch == 1 && cnt.steps == 4 && cnt.epochs == 1);
    CHECK(rb2.steps == ra.steps);
    CHECK(rb2.final_loss == ra.final_loss);
    CHECK(rb2.test_accuracy == ra.test_accuracy);
    dj_graph *ga = load_tiny(a.out_path), *gb = load_tiny(b.out_path);
    CHECK(ga && gb && same_params(ga, gb));
    dj_graph_destroy(ga);
    dj_graph_destroy(gb);
    /* The logs agree except for the timing columns. */
    char *ca = read_text(a.log_path), *cbt = read_text(b.log_path);
    CHECK(ca && cbt && count_lines(ca) == 3 && count_lines(cbt) == 3);
    if (ca && cbt) {
        /* compare the first 8 columns of each row */
        char *la = ca, *lb = cbt;
        for (int row = 0; row < 3; row++) {
            int cols = 0;
            size_t k = 0;
            while (la[k] && la[k] == lb[k] && la[k] != '\n' && cols < 8) cols += la[k++] == ',';
            CHECK(cols == 8 || (row == 0 && la[k] == '\n'));
            la = strchr(la, '\n') + 1;
            lb = strchr(lb, '\n') + 1;
        }
    }
    free(ca);
    free(cbt);
    /* Resuming a finished checkpoint just writes the weights again. */
    dj_train_result r3;
    CHECK_OK(dj_train_classifier(&b, NULL, &r3));
    CHECK(r3.start_epoch == 2 && r3.completed && r3.steps == ra.steps);
    CHECK(r3.test_accuracy == ra.test_accuracy && r3.head_accuracy == ra.head_accuracy);
}

static void test_nan_guard(void) {
    /* lr 0.05 for epoch 1, then x1e31: the second epoch diverges. */
    dj_train_config c = tiny_config();
    c.epochs = 3;
    c.schedule = "step:1:1e31";
    c.out_path = tmp("nan.safetensors");
    c.checkpoint_path = tmp("nan.ckpt");
    c.log_path = tmp("nan.csv");
    dj_train_result r;
    CHECK_FAILS(dj_train_classifier(&c, NULL, &r), DJ_ENUMERIC, "diverged in epoch 2");
    CHECK(strstr(dj_last_error(), "holds epoch 1") != NULL);
    CHECK(r.diverged == 1 && r.epochs_done == 1 && !r.completed);
    CHECK(access(c.out_path, F_OK) != 0);
    /* the checkpoint of epoch 1 is intact and loads */
    dj_graph *g = NULL;
    dj_rng rng;
    dj_rng_seed(&rng, 1);
    CHECK_OK(tiny_build(&g, "tiny", 10, &rng));
    dj_optim *opt = NULL;
    CHECK_OK(dj_graph_make_optim(g, &c.optim, &opt));
    int64_t epoch = -1, step = -1;
    CHECK_OK(dj_checkpoint_load(c.checkpoint_path, g, "tiny", opt, &rng, &epoch, &step));
    CHECK(epoch == 1 && step == 4);
    dj_optim_destroy(opt);
    dj_graph_destroy(g);
    char *csv = read_text(c.log_path);
    CHECK(csv && count_lines(csv) == 2);
    free(csv);
}

static void test_unwritable_outputs(void) {
    counter cnt = {0};
    dj_train_callbacks cb = {.on_step = on_step, .on_epoch = on_epoch, .user = &cnt};
    dj_train_config c = tiny_config();
    c.out_path = "/nonexistent-dmvjnd-dir/x.safetensors";
    CHECK_FAILS(dj_train_classifier(&c, &cb, NULL), DJ_ENOTFOUND, "weights file '/nonexistent-dmvjnd-dir/x");
    c = tiny_config();
    c.checkpoint_path = tmp("no/such/dir/ck");
    CHECK_FAILS(dj_train_classifier(&c, &cb, NULL), DJ_ENOTFOUND, "checkpoint");
    c = tiny_config();
    c.log_path = tmp("short.csv/x.csv"); /* a path component is a file */
    CHECK(dj_train_classifier(&c, &cb, NULL) < 0);
    CHECK(strstr(dj_last_error(), "CSV log") != NULL);
    CHECK(cnt.steps == 0 && cnt.epochs == 0);
    /* config errors */
    c = tiny_config();
    c.batch = 0;
    CHECK_FAILS(dj_train_classifier(&c, NULL, NULL), DJ_EINVAL, "batch");
    c = tiny_config();
    c.resume = 1;
    CHECK_FAILS(dj_train_classifier(&c, NULL, NULL), DJ_EINVAL, "checkpoint path");
    c = tiny_config();
    c.out_path = c.log_path = tmp("same");
    CHECK_FAILS(dj_train_classifier(&c, NULL, NULL), DJ_EINVAL, "same file");
    c = tiny_config();
    c.schedule = "cosine:oops";
    CHECK_FAILS(dj_train_classifier(&c, NULL, NULL), DJ_EINVAL, "cosine:oops");
    c = tiny_config();
    c.arch = "nonet";
    c.build = NULL;
    CHECK_FAILS(dj_train_classifier(&c, NULL, NULL), DJ_EINVAL, "unknown model 'nonet'");
}

static void test_recipe(void) {
    dj_train_config c = dj_train_defaults();
    dj_kv kv[DJ_TRAIN_RECIPE_MAX];
    char buf[2048];
    int n = dj_train_recipe(&c, 50000, kv, buf, sizeof buf);
    CHECK(n > 10 && n <= DJ_TRAIN_RECIPE_MAX);
    int found = 0;
    for (int i = 0; i < n; i++) {
        if (!strcmp(kv[i].key, "train.lr")) found += !strcmp(kv[i].value, "0.10000000000000001");
        if (!strcmp(kv[i].key, "train.nesterov")) found += !strcmp(kv[i].value, "1");
        if (!strcmp(kv[i].key, "train.schedule")) found += !strcmp(kv[i].value, "cosine");
    }
    CHECK(found == 3);
    CHECK_FAILS(dj_train_recipe(&c, 50000, kv, buf, 40), DJ_EINVAL, "too small");
}

int main(void) {
    dj_set_num_threads(0);
    snprintf(tmpdir, sizeof tmpdir, "/tmp/dmvjnd_test_classifier_%d", (int)getpid());
    mkdir(tmpdir, 0700);
    RUN(test_recipe);
    if (!data_available()) {
        const char *needs_data[] = {"test_unwritable_outputs", "test_short_run", "test_resume_bit_identical",
                                    "test_nan_guard"};
        for (int i = 0; i < 4; i++) check_skip(needs_data[i], 0, "no CIFAR-10");
    } else {
        RUN(test_unwritable_outputs);
        RUN(test_short_run);
        RUN(test_resume_bit_identical);
        RUN(test_nan_guard);
    }
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd)) fprintf(stderr, "could not remove %s\n", tmpdir);
    return check_report("test_classifier");
}
