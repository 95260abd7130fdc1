/* Training the DMV-JND network (dmvjnd/jnd_train.h) with two tiny
 * classifiers trained here in a second: the required behaviour (mean |e|
 * grows while the training RCA stays >= 95%), the labels + CAM cache
 * (saved, reused when it matches, rebuilt when a classifier file changes,
 * equal to a fresh computation), a bit-identical resume, the CSV columns,
 * plots, the model file and generation, and the gradient of the whole loss
 * through the frozen classifiers against finite differences. Needs the
 * CIFAR-10 data (scripts/get-cifar10.sh, or DMVJND_DATA). */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "dmvjnd/cam.h"
#include "dmvjnd/checkpoint.h"
#include "dmvjnd/dmvjnd.h"
#include "dmvjnd/fileio.h"
#include "dmvjnd/image.h"
#include "dmvjnd/jnd_train.h"
#include "dmvjnd/models.h"
#include "gradcheck.h"

static char tmpdir[256];

static const char *tmp(const char *name) {
    static char buf[16][512];
    static int k;
    char *b = buf[k++ % 16];
    snprintf(b, 512, "%s/%s", tmpdir, name);
    return b;
}

/* conv3x3(w) bn relu, maxpool -> conv(2w) bn relu, maxpool -> conv(4w) bn
 * relu -> gap -> fc; "tiny" has w = 8, "tiny2" w = 12. 8x8 feature maps, so
 * CAMs exist. */
static int tiny_build(dj_graph **out, const char *arch, int classes, dj_rng *rng) {
    int w = !strcmp(arch, "tiny2") ? 12 : 8;
    dj_graph *g;
    int rc = dj_graph_create(&g, 32, 32, 3);
    if (rc) return rc;
    int x = dj_graph_conv(g, 0, "conv1", w, 3, 1, 1, 0);
    if (x >= 0) x = dj_graph_bn(g, x, "bn1", 1);
    if (x >= 0) x = dj_graph_maxpool(g, x, 2, 2, 0);
    if (x >= 0) x = dj_graph_conv(g, x, "conv2", 2 * w, 3, 1, 1, 0);
    if (x >= 0) x = dj_graph_bn(g, x, "bn2", 1);
    if (x >= 0) x = dj_graph_maxpool(g, x, 2, 2, 0);
    if (x >= 0) x = dj_graph_conv(g, x, "conv3", 4 * w, 3, 1, 1, 0);
    if (x >= 0) x = dj_graph_bn(g, x, "bn3", 1);
    if (x >= 0) x = dj_graph_gap(g, x);
    if (x >= 0) x = dj_graph_linear(g, x, "fc", classes, 1);
    if (x < 0 || (rc = dj_graph_finalize(g, rng))) {
        dj_graph_destroy(g);
        return x < 0 ? x : rc;
    }
    *out = g;
    return DJ_OK;
}

static const char *cls_paths[2];

static int make_classifiers(void) {
    const char *arch[2] = {"tiny", "tiny2"};
    for (int k = 0; k < 2; k++) {
        dj_train_config c = dj_train_defaults();
        c.arch = arch[k];
        c.build = tiny_build;
        /* Fitted to the 256 images the JND runs train on (no augmentation,
         * 60 short epochs): weak classifiers (~35% test accuracy) with small
         * margins would make any JND flip labels; these are confident on
         * those images, as real classifiers are on theirs. */
        c.epochs = 60;
        c.batch = 64;
        c.lr = 0.05;
        c.augment = 0;
        c.train_limit = 256;
        c.eval_limit = 0;
        c.final_eval_limit = 0;
        c.seed = 11 + (uint64_t)k;
        cls_paths[k] = strdup(tmp(k ? "tiny2.safetensors" : "tiny.safetensors"));
        c.out_path = cls_paths[k];
        int rc = dj_train_classifier(&c, NULL, NULL);
        if (rc) {
            fprintf(stderr, "make_classifiers: %s\n", dj_last_error());
            return rc;
        }
    }
    return DJ_OK;
}

static dj_jnd_train_config tiny_config(void) {
    dj_jnd_train_config c;
    CHECK_OK(dj_jnd_train_preset(&c, "paper"));
    c.classifiers = cls_paths;
    c.nclassifiers = 2;
    c.classifier_build = tiny_build;
    c.ed.width = 0.25f;
    c.e_init = 0.01f; /* warm start: e ~ 0, x_hat ~ x, every label kept */
    c.alpha = 0.1f;
    c.beta = 1.0f;
    c.lr = 3e-5;
    c.schedule = "constant";
    c.epochs = 3;
    c.batch = 32;
    c.train_limit = 256;
    c.eval_limit = 64;
    c.seed = 5;
    c.no_cache_file = 1;
    return c;
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

static int data_available(void) {
    dj_cifar10 ds;
    dj_cifar10_opts o = {0, 1, 0};
    if (dj_cifar10_load(&ds, NULL, "test", &o)) {
        fprintf(stderr, "test_jnd_train: CIFAR-10 not found (%s); run scripts/get-cifar10.sh or set DMVJND_DATA\n",
                dj_last_error());
        return 0;
    }
    dj_cifar10_free(&ds);
    return 1;
}

/* The margin plane by the textbook route: each classifier's softmax
 * probabilities (dj_classify_batch), the gap between the two largest, the
 * smallest over the classifiers. x->n <= 64 images. */
static void reference_margins(dj_graph *const *g, int count, const dj_tensor *x, float *margin) {
    float pr[64 * 10];
    for (int i = 0; i < x->n; i++) margin[i] = 1;
    for (int k = 0; k < count; k++) {
        CHECK_OK(dj_classify_batch(g[k], x, NULL, NULL, pr));
        for (int i = 0; i < x->n; i++) {
            float a = -1, b = -1;
            for (int j = 0; j < 10; j++) {
                float v = pr[i * 10 + j];
                if (v > a) b = a, a = v;
                else if (v > b) b = v;
            }
            margin[i] = fminf(margin[i], a - b);
        }
    }
}

/* ------------------------------------------------------------ presets */

static void test_presets(void) {
    dj_jnd_train_config p, f;
    CHECK_OK(dj_jnd_train_preset(&p, "paper"));
    CHECK(p.optim.kind == DJ_OPTIM_ADAM && p.optim.weight_decay == 1e-3 && p.lr == 1e-5 && p.batch == 50);
    CHECK(p.flip_p == 0.5f && p.alpha == 1 && p.beta == 1 && p.ed.width == 1 && p.clip == 1 && p.epochs == 200);
    CHECK(p.e_unit == DJ_JND_UNIT_NORMALIZED && p.e_init == 1 && p.nclassifiers == 4);
    CHECK(p.norm.mean[0] == 0.5f && p.norm.std[2] == 0.5f);
    CHECK(!strcmp(p.classifiers[0], "models/alexnet_v1.0.safetensors"));
    CHECK_OK(dj_jnd_train_preset(&f, "fast"));
    CHECK(f.ed.width == 0.5f && f.lr > p.lr && f.epochs < p.epochs && f.batch == 50);
    CHECK(f.alpha == 0.1f && f.beta == 0.7f && f.lr == 3e-4 && f.epochs == 8); /* docs/method.md, Presets */
    CHECK_FAILS(dj_jnd_train_preset(&f, "slow"), DJ_EINVAL, "unknown preset 'slow'");
    int u;
    CHECK_OK(dj_jnd_unit_from_name("pixel01", &u));
    CHECK(u == DJ_JND_UNIT_PIXEL01 && !strcmp(dj_jnd_unit_name(u), "pixel01"));
    CHECK_FAILS(dj_jnd_unit_from_name("bits", &u), DJ_EINVAL, "bits");
}

/* ------------------------------------------------------------ cache */

static void test_make_batch(void) {
    dj_cifar10 ds;
    dj_cifar10_opts o = {0, 4, 0};
    CHECK_OK(dj_cifar10_load(&ds, NULL, "train", &o));
    dj_tensor a, b;
    CHECK_OK(dj_tensor_alloc(&a, 4, 32, 32, 3));
    CHECK_OK(dj_tensor_alloc(&b, 4, 32, 32, 3));
    int32_t idx[4] = {3, 1, 2, 0};
    uint8_t fl[4] = {1, 0, 1, 0};
    dj_jnd_norm nm = dj_jnd_norm_paper();
    CHECK_OK(dj_jnd_make_batch(&ds, idx, NULL, 4, &nm, &a));
    CHECK_OK(dj_jnd_make_batch(&ds, idx, fl, 4, &nm, &b));
    /* unflipped = dj_cifar10_batch without augmentation, bit for bit */
    dj_tensor r;
    CHECK_OK(dj_tensor_alloc(&r, 4, 32, 32, 3));
    CHECK_OK(dj_cifar10_batch(&ds, idx, 4, NULL, NULL, nm.mean, nm.std, &r, NULL));
    CHECK(!memcmp(a.data, r.data, dj_tensor_numel(&a) * sizeof(float)));
    int mirrored = 1;
    for (int i = 0; i < 4; i++)
        for (int y = 0; y < 32; y++)
            for (int x = 0; x < 32; x++)
                for (int c = 0; c < 3; c++) {
                    int sx = fl[i] ? 31 - x : x;
                    mirrored &= b.data[((i * 32 + y) * 32 + x) * 3 + c] == a.data[((i * 32 + y) * 32 + sx) * 3 + c];
                }
    CHECK(mirrored);
    int32_t bad = 4;
    CHECK_FAILS(dj_jnd_make_batch(&ds, &bad, NULL, 1, &nm, &(dj_tensor){a.data, 1, 32, 32, 3}), DJ_EINVAL,
                "index 4");
    dj_tensor_free(&a);
    dj_tensor_free(&b);
    dj_tensor_free(&r);
    dj_cifar10_free(&ds);
}

static void test_cache(void) {
    dj_classifier cls[2];
    dj_jnd_norm nm = dj_jnd_norm_paper();
    CHECK_OK(dj_jnd_classifiers_load(cls, cls_paths, 2, tiny_build, &nm));
    dj_cifar10 tr, te;
    dj_cifar10_opts o = {0, 40, 0}, ot = {0, 12, 0};
    CHECK_OK(dj_cifar10_load(&tr, NULL, "train", &o));
    CHECK_OK(dj_cifar10_load(&te, NULL, "test", &ot));
    dj_jnd_cache_request req = {cls_paths, cls, 2, nm, &tr, &te, 16};
    const char *path = tmp("cache.safetensors");
    dj_jnd_cache c1, c2;
    int reused = -1;
    CHECK_OK(dj_jnd_cache_get(&c1, path, &req, NULL, NULL, &reused));
    CHECK(reused == 0 && access(path, F_OK) == 0);
    CHECK(c1.train.n == 40 && c1.train.flips == 2 && c1.test.n == 12 && c1.test.flips == 1);
    CHECK_OK(dj_jnd_cache_get(&c2, path, &req, NULL, NULL, &reused));
    CHECK(reused == 3);
    CHECK(!memcmp(c1.train.cam, c2.train.cam, 40 * 2 * 1024 * sizeof(uint16_t)));
    CHECK(!memcmp(c1.train.labels, c2.train.labels, 40 * 2 * 2 * sizeof(int32_t)));
    CHECK(!memcmp(c1.test.cam, c2.test.cam, 12 * 1024 * sizeof(uint16_t)));
    CHECK(!memcmp(c1.train.margin, c2.train.margin, 40 * 2 * sizeof(float)));
    CHECK(!memcmp(c1.test.margin, c2.test.margin, 12 * sizeof(float)));
    dj_jnd_cache_free(&c2);

    /* The cached maps are the merged CAMs of the flipped images, to 16 bits. */
    {
        dj_tensor x;
        CHECK_OK(dj_tensor_alloc(&x, 40, 32, 32, 3));
        int32_t idx[40], lab[2][40];
        uint8_t fl[40];
        for (int i = 0; i < 40; i++) idx[i] = i, fl[i] = 1;
        CHECK_OK(dj_jnd_make_batch(&tr, idx, fl, 40, &nm, &x));
        float *m0 = malloc(40 * 1024 * sizeof(float)), *m1 = malloc(40 * 1024 * sizeof(float)),
              *mm = malloc(40 * 1024 * sizeof(float)), one[1024];
        CHECK_OK(dj_cam_compute(cls[0].graph, &x, m0, lab[0], NULL));
        CHECK_OK(dj_cam_compute(cls[1].graph, &x, m1, lab[1], NULL));
        const float *ms[2] = {m0, m1};
        CHECK_OK(dj_cam_merge(ms, 2, 40 * 1024, mm));
        double worst = 0;
        int labels_ok = 1;
        for (int i = 0; i < 40; i++) {
            dj_jnd_cache_cam(&c1.train, i, 1, one);
            for (int p = 0; p < 1024; p++) {
                double d = fabs(one[p] - mm[i * 1024 + p]);
                if (d > worst) worst = d;
            }
            labels_ok &= c1.train.labels[(i * 2 + 1) * 2 + 0] == lab[0][i];
            labels_ok &= c1.train.labels[(i * 2 + 1) * 2 + 1] == lab[1][i];
        }
        CHECK(worst <= 0.5 / 65535 + 1e-7);
        CHECK(labels_ok);
        /* margins: the smaller p1 - p2 of the two classifiers */
        double mworst = 0;
        float ref[40];
        dj_graph *gs[2] = {cls[0].graph, cls[1].graph};
        reference_margins(gs, 2, &x, ref);
        for (int i = 0; i < 40; i++) mworst = fmax(mworst, fabs(c1.train.margin[i * 2 + 1] - ref[i]));
        CHECK(mworst <= 1e-5);
        free(m0);
        free(m1);
        free(mm);
        dj_tensor_free(&x);
    }

    /* Another test slice: the train split is reused, the test one rebuilt. */
    dj_cifar10 te2;
    dj_cifar10_opts ot2 = {0, 20, 0};
    CHECK_OK(dj_cifar10_load(&te2, NULL, "test", &ot2));
    req.test = &te2;
    CHECK_OK(dj_jnd_cache_get(&c2, path, &req, NULL, NULL, &reused));
    CHECK(reused == 1 && c2.test.n == 20);
    CHECK(!memcmp(c1.test.cam, c2.test.cam, 12 * 1024 * sizeof(uint16_t))); /* same first 12 images */
    dj_jnd_cache_free(&c2);
    req.test = &te;

    /* A classifier file that changes (retrained: one weight moved) rebuilds it. */
    {
        dj_graph *g = NULL;
        dj_rng r;
        dj_rng_seed(&r, 1);
        CHECK_OK(tiny_build(&g, "tiny2", 10, &r));
        CHECK_OK(dj_weights_load(g, cls_paths[1], "tiny2"));
        const dj_param *p = dj_graph_find_param(g, "fc.bias");
        p->data[0] += 0.25f;
        char *copy = strdup(tmp("tiny2-changed.safetensors"));
        CHECK_OK(dj_weights_save(g, copy, "tiny2", NULL, 0));
        dj_graph_destroy(g);
        dj_classifier cls2[2];
        const char *paths2[2] = {cls_paths[0], copy};
        CHECK_OK(dj_jnd_classifiers_load(cls2, paths2, 2, tiny_build, &nm));
        dj_jnd_cache_request req2 = {paths2, cls2, 2, nm, &tr, &te, 16};
        CHECK_OK(dj_jnd_cache_get(&c2, path, &req2, NULL, NULL, &reused));
        CHECK(reused == 0);
        dj_jnd_cache_free(&c2);
        /* and the file now holds the new key: reused with the new classifier */
        CHECK_OK(dj_jnd_cache_get(&c2, path, &req2, NULL, NULL, &reused));
        CHECK(reused == 3);
        dj_jnd_cache_free(&c2);
        dj_jnd_classifiers_free(cls2, 2);
        free(copy);
    }
    /* A file that is not a cache is replaced, with a warning. */
    CHECK_OK(dj_write_file_atomic(tmp("junk.safetensors"), "not a cache", 11));
    CHECK_OK(dj_jnd_cache_get(&c2, tmp("junk.safetensors"), &req, NULL, NULL, &reused));
    CHECK(reused == 0);
    dj_jnd_cache_free(&c2);

    /* A classifier trained with another normalisation is refused. */
    {
        dj_jnd_norm other = nm;
        other.mean[0] = 0.4914f;
        dj_classifier cx[1];
        CHECK_FAILS(dj_jnd_classifiers_load(cx, cls_paths, 1, tiny_build, &other), DJ_EINVAL, "normalisation");
    }
    dj_jnd_cache_free(&c1);
    dj_jnd_classifiers_free(cls, 2);
    dj_cifar10_free(&tr);
    dj_cifar10_free(&te);
    dj_cifar10_free(&te2);
}

/* ------------------------------------------------------------ training */

typedef struct watch {
    int steps, epochs, starts, start_epoch, cache_calls;
    double first_mae, first_rca;
    dj_jnd_epoch_stats last[8];
} watch;

static void on_cache(const dj_jnd_cache_progress *p, void *user) {
    watch *w = user;
    w->cache_calls++;
    CHECK(p->done > 0 && p->done <= p->total);
}

static void on_start(const dj_jnd_train_result *r, void *user) {
    watch *w = user;
    w->starts++;
    w->start_epoch = r->start_epoch;
}

static void on_step(const dj_jnd_train_progress *p, void *user) {
    watch *w = user;
    if (w->steps == 0) {
        w->first_mae = p->mean_abs_e;
        w->first_rca = p->rca;
    }
    w->steps++;
}

static void on_epoch(const dj_jnd_epoch_stats *s, void *user) {
    watch *w = user;
    if (s->epoch < 8) w->last[s->epoch] = *s;
    w->epochs++;
    printf("  epoch %d: loss %.4f (L1 %.4f L2 %.4f L3 %.4f) rca %.4f/%.4f psnr %.2f mean|e| %.2f | test rca %.4f "
           "(float %.4f) psnr %.2f\n",
           s->epoch, s->train.loss, s->train.loss1, s->train.loss2, s->train.loss3, s->train.rca[0], s->train.rca[1],
           s->train.psnr, s->train.mean_abs_e, s->test.rca_mean, s->test_float.rca_mean, s->test.psnr);
}

/* The required behaviour: a short run on 256 images makes the JND
 * larger than in its first batch while the classifiers keep labelling the
 * distorted images as the originals (training RCA >= 95%). */
static void test_short_run(void) {
    dj_jnd_train_config c = tiny_config();
    c.out_path = tmp("jnd.safetensors");
    c.checkpoint_path = tmp("jnd.ckpt");
    c.log_path = tmp("jnd.csv");
    c.plot_dir = tmpdir;
    c.no_cache_file = 0;
    watch w = {0};
    dj_jnd_train_callbacks cb = {on_cache, on_start, on_step, on_epoch, &w};
    dj_jnd_train_result r;
    CHECK_OK(dj_jnd_train(&c, &cb, &r));
    CHECK(r.completed && r.epochs_done == 3 && r.steps == 24 && !r.diverged);
    CHECK(w.steps == 24 && w.epochs == 3 && w.starts == 1 && w.cache_calls > 0);
    CHECK(!strcmp(r.tags[0], "tiny") && !strcmp(r.tags[1], "tiny2"));
    CHECK(!strcmp(r.cache_path, tmp("jnd-cache.safetensors")) && access(r.cache_path, F_OK) == 0);
    const dj_jnd_epoch_stats *last = &w.last[3];
    printf("short run: first batch mean|e| %.3f rca %.3f; last epoch mean|e| %.3f, train rca %.4f, test rca %.4f, "
           "psnr %.2f dB\n",
           w.first_mae, w.first_rca, last->train.mean_abs_e, last->train.rca_mean, last->test.rca_mean,
           last->train.psnr);
    CHECK(last->train.mean_abs_e > 2 * w.first_mae);
    CHECK(last->train.rca_mean >= 0.95);
    CHECK(last->test.images == 64 && last->test.rca_mean >= 0 && last->test.rca_mean <= 1);
    CHECK(isfinite(last->test.psnr) && last->test.psnr < DJ_JND_PSNR_MAX);

    /* CSV: header with every column, one row per epoch */
    char header[4096];
    CHECK_OK(dj_jnd_csv_header(header, sizeof header, (const char(*)[32])r.tags, 2));
    const char *cols[] = {"epoch",          "train_loss",     "train_loss1",    "train_loss2",    "train_loss3",
                          "train_rca_tiny", "train_rca_tiny2", "train_rca_mean", "train_psnr",    "test_loss",
                          "test_rca_tiny",  "test_rca_tiny2", "test_rca_mean",  "test_psnr",     "test_float_rca_mean",
                          "images_per_s",   "wall_s"};
    for (size_t i = 0; i < sizeof cols / sizeof *cols; i++) CHECK(strstr(header, cols[i]) != NULL);
    char *csv = read_text(c.log_path);
    CHECK(csv && !strncmp(csv, header, strlen(header)) && count_lines(csv) == 4);
    if (csv) {
        int hc = 0, rc = 0;
        for (const char *s = csv; *s != '\n'; s++) hc += *s == ',';
        const char *row3 = strchr(strchr(strchr(csv, '\n') + 1, '\n') + 1, '\n') + 1;
        CHECK(!strncmp(row3, "3,24,", 5));
        for (const char *s = row3; *s && *s != '\n'; s++) rc += *s == ',';
        CHECK(hc == rc && hc == 31);
    }
    free(csv);
    /* plots */
    const char *pngs[3] = {"rca.png", "loss.png", "psnr.png"};
    for (int i = 0; i < 3; i++) {
        dj_image im = {0};
        CHECK_OK(dj_png_read(tmp(pngs[i]), &im));
        CHECK(im.w >= 560 && im.h >= 400);
        dj_image_free(&im);
    }
    CHECK_OK(dj_jnd_plot_csv(c.log_path, tmpdir));

    /* the model file: settings, and generation equals the E-D's own pass */
    dj_jnd_model m;
    CHECK_OK(dj_jnd_model_load(c.out_path, &m));
    CHECK(m.ed_cfg.width == 0.25f && m.clip == 1 && m.e_unit == DJ_JND_UNIT_NORMALIZED && m.h == 32);
    CHECK(m.alpha == 0.1f && m.beta == 1.0f && m.nclassifiers == 2 && !strcmp(m.classifiers[1], cls_paths[1]));
    CHECK(m.norm.mean[0] == 0.5f && m.norm.std[1] == 0.5f && dj_graph_is_frozen(m.ed));
    char buf[64];
    CHECK_OK(dj_weights_read_meta(c.out_path, "jnd.final.test_rca_mean", buf, sizeof buf));
    CHECK_CLOSE(strtod(buf, NULL), last->test.rca_mean, 1e-6, 0);
    CHECK_OK(dj_weights_read_meta(c.out_path, "jnd.train.alpha", buf, sizeof buf));
    {
        dj_classifier cls[2];
        dj_jnd_norm nm = dj_jnd_norm_paper();
        CHECK_OK(dj_jnd_classifiers_load(cls, cls_paths, 2, tiny_build, &nm));
        dj_graph *g[2] = {cls[0].graph, cls[1].graph};
        dj_cifar10 te;
        dj_cifar10_opts o = {0, 8, 0};
        CHECK_OK(dj_cifar10_load(&te, NULL, "test", &o));
        dj_tensor x, e, xh, xc;
        CHECK_OK(dj_tensor_alloc(&x, 8, 32, 32, 3));
        CHECK_OK(dj_tensor_alloc(&e, 8, 32, 32, 3));
        CHECK_OK(dj_tensor_alloc(&xh, 8, 32, 32, 3));
        CHECK_OK(dj_tensor_alloc(&xc, 8, 32, 32, 4));
        int32_t idx[8] = {0, 1, 2, 3, 4, 5, 6, 7}, labels[16];
        float cam[8 * 1024];
        CHECK_OK(dj_jnd_make_batch(&te, idx, NULL, 8, &nm, &x));
        CHECK_OK(dj_jnd_generate(&m, g, 2, &x, &e, cam, labels));
        CHECK_OK(dj_jnd_apply(&x, &e, m.clip ? &m.norm : NULL, &xh));
        /* reference: the training graph (checkpoint) in inference mode */
        dj_graph *ed = NULL;
        dj_rng rng;
        dj_rng_seed(&rng, 1);
        dj_jnd_ed_config ec = m.ed_cfg;
        CHECK_OK(dj_model_jnd_ed(&ed, &ec, 32, 32, &rng));
        CHECK_OK(dj_weights_load(ed, c.out_path, "jnd_ed"));
        dj_tensor cv = dj_tensor_view(cam, 8, 32, 32, 1);
        CHECK_OK(dj_jnd_stack(&x, &cv, NULL, &xc));
        const dj_tensor *ref;
        CHECK_OK(dj_graph_forward(ed, &xc, 0, NULL, &ref));
        CHECK(check_max_err(e.data, ref->data, dj_tensor_numel(&e), 1e-4, 1e-3) <= 1);
        int32_t pred[8];
        CHECK_OK(dj_classify_batch(g[1], &x, pred, NULL, NULL));
        int same = 1;
        for (int i = 0; i < 8; i++) same &= pred[i] == labels[i * 2 + 1];
        CHECK(same);
        dj_graph_destroy(ed);
        dj_tensor_free(&x);
        dj_tensor_free(&e);
        dj_tensor_free(&xh);
        dj_tensor_free(&xc);
        dj_cifar10_free(&te);
        dj_jnd_classifiers_free(cls, 2);
    }
    dj_jnd_model_free(&m);
    CHECK_FAILS(dj_jnd_model_load(cls_paths[0], &m), DJ_EFORMAT, "not a DMV-JND model");

    /* a second run reuses the cache file */
    dj_jnd_train_config c2 = c;
    c2.epochs = 1;
    c2.out_path = NULL;
    c2.checkpoint_path = NULL;
    c2.log_path = NULL;
    c2.plot_dir = NULL;
    c2.cache_path = r.cache_path;
    dj_jnd_train_result r2;
    CHECK_OK(dj_jnd_train(&c2, NULL, &r2));
    CHECK(r2.cache_reused == 3);
}

/* --init and the margin input: an E-D with the margin plane starts from the
 * short run's model (4 input channels): with lr 0 its weights stay the
 * file's, enc.0's fifth input channel 0. The model file says x,cam,margin,
 * and dj_jnd_generate feeds it the margins: its e equals the E-D's own pass
 * on [x, c, margin] with the margins from the classifiers' probabilities. */
static void test_margin_init(void) {
    dj_jnd_train_config c = tiny_config();
    c.ed.margin_input = 1;
    c.init_path = tmp("jnd.safetensors"); /* test_short_run's */
    c.lr = 0;
    c.epochs = 1;
    c.out_path = tmp("jnd-margin.safetensors");
    dj_jnd_train_result r;
    CHECK_OK(dj_jnd_train(&c, NULL, &r));
    dj_st_file *src = NULL, *dst = NULL;
    CHECK_OK(dj_st_open(c.init_path, 0, &src));
    CHECK_OK(dj_st_open(c.out_path, 0, &dst));
    if (src && dst) {
        CHECK(!strcmp(dj_st_metadata(dst, "jnd.input"), "x,cam,margin"));
        CHECK(!strcmp(dj_st_metadata(dst, "jnd.train.init"), c.init_path));
        const dj_st_tensor *a = dj_st_find(src, "enc.0.weight"), *b = dj_st_find(dst, "enc.0.weight");
        CHECK(a && b && a->shape[1] == 4 && b->shape[1] == 5 && a->shape[0] == b->shape[0]);
        int same = 1, zero = 1;
        for (int64_t o = 0; a && b && o < a->shape[0]; o++)
            for (int q = 0; q < 9; q++) {
                for (int ch = 0; ch < 4; ch++) same &= a->f32[(o * 4 + ch) * 9 + q] == b->f32[(o * 5 + ch) * 9 + q];
                zero &= b->f32[(o * 5 + 4) * 9 + q] == 0.0f;
            }
        CHECK(same && zero);
        const dj_st_tensor *a9 = dj_st_find(src, "dec.9.weight"), *b9 = dj_st_find(dst, "dec.9.weight");
        CHECK(a9 && b9 && a9->count == b9->count && !memcmp(a9->f32, b9->f32, a9->count * sizeof(float)));
    }
    dj_st_close(src);
    dj_st_close(dst);

    dj_jnd_model m;
    CHECK_OK(dj_jnd_model_load(c.out_path, &m));
    CHECK(m.ed_cfg.margin_input == 1);
    dj_classifier cls[2];
    dj_jnd_norm nm = dj_jnd_norm_paper();
    CHECK_OK(dj_jnd_classifiers_load(cls, cls_paths, 2, tiny_build, &nm));
    dj_graph *g[2] = {cls[0].graph, cls[1].graph};
    dj_cifar10 te;
    dj_cifar10_opts o = {0, 8, 0};
    CHECK_OK(dj_cifar10_load(&te, NULL, "test", &o));
    dj_tensor x, e, xc;
    CHECK_OK(dj_tensor_alloc(&x, 8, 32, 32, 3));
    CHECK_OK(dj_tensor_alloc(&e, 8, 32, 32, 3));
    CHECK_OK(dj_tensor_alloc(&xc, 8, 32, 32, 5));
    int32_t idx[8] = {0, 1, 2, 3, 4, 5, 6, 7};
    float cam[8 * 1024], margin[8];
    CHECK_OK(dj_jnd_make_batch(&te, idx, NULL, 8, &nm, &x));
    CHECK_OK(dj_jnd_generate(&m, g, 2, &x, &e, cam, NULL));
    reference_margins(g, 2, &x, margin);
    dj_tensor cv = dj_tensor_view(cam, 8, 32, 32, 1);
    CHECK_OK(dj_jnd_stack(&x, &cv, margin, &xc));
    const dj_tensor *ref;
    CHECK_OK(dj_graph_forward(m.ed, &xc, 0, NULL, &ref));
    CHECK(check_max_err(e.data, ref->data, dj_tensor_numel(&e), 1e-5, 1e-4) <= 1);
    /* the margin plane matters: another margin gives another e */
    for (int i = 0; i < 8; i++) margin[i] = 1 - margin[i];
    CHECK_OK(dj_jnd_stack(&x, &cv, margin, &xc));
    CHECK_OK(dj_graph_forward(m.ed, &xc, 0, NULL, &ref));
    double diff = 0;
    for (size_t i = 0; i < dj_tensor_numel(&e); i++) diff = fmax(diff, fabs(e.data[i] - ref->data[i]));
    CHECK(diff == 0); /* enc.0's margin weights are still 0 (lr 0): no effect yet */
    dj_tensor_free(&x);
    dj_tensor_free(&e);
    dj_tensor_free(&xc);
    dj_cifar10_free(&te);
    dj_jnd_classifiers_free(cls, 2);
    dj_jnd_model_free(&m);

    /* a model of another width is refused, naming the file */
    dj_jnd_train_config bad = tiny_config();
    bad.ed.width = 0.5f;
    bad.init_path = tmp("jnd.safetensors");
    bad.out_path = tmp("jnd-bad.safetensors");
    CHECK_FAILS(dj_jnd_train(&bad, NULL, &r), DJ_EINVAL, "--init: the model has E-D width 0.25");
    bad.ed.width = 0.25f;
    bad.init_path = cls_paths[0];
    CHECK_FAILS(dj_jnd_train(&bad, NULL, &r), DJ_EFORMAT, "needs a DMV-JND model file");
    bad.init_path = tmp("missing.safetensors");
    CHECK_FAILS(dj_jnd_train(&bad, NULL, &r), DJ_EIO, "missing.safetensors");
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

static dj_graph *load_ed(const char *path) {
    dj_graph *g = NULL;
    dj_rng r;
    dj_rng_seed(&r, 3);
    dj_jnd_ed_config ec = dj_jnd_ed_defaults();
    ec.width = 0.25f;
    if (dj_model_jnd_ed(&g, &ec, 32, 32, &r)) return NULL;
    if (dj_weights_load(g, path, "jnd_ed")) {
        fprintf(stderr, "load_ed: %s\n", dj_last_error());
        dj_graph_destroy(g);
        return NULL;
    }
    return g;
}

/* Replaces every occurrence of `from` in the file by `to` (same length);
 * returns the count, -1 on an I/O error. */
static int rename_in_file(const char *path, const char *from, const char *to) {
    void *data;
    size_t size, len = strlen(from);
    if (dj_read_file(path, 64u << 20, &data, &size)) return -1;
    char *buf = data;
    int count = 0;
    for (size_t i = 0; i + len <= size; i++)
        if (!memcmp(buf + i, from, len)) {
            memcpy(buf + i, to, len);
            count++;
        }
    int rc = dj_write_file_atomic(path, buf, size);
    dj_free(data);
    return rc ? -1 : count;
}

static void test_resume(void) {
    dj_jnd_train_config a = tiny_config();
    a.epochs = 2;
    a.out_path = tmp("a.safetensors");
    a.checkpoint_path = tmp("a.ckpt");
    a.log_path = tmp("a.csv");
    dj_jnd_train_result ra, rb1, rb2;
    CHECK_OK(dj_jnd_train(&a, NULL, &ra));
    dj_jnd_train_config b = a;
    b.out_path = tmp("b.safetensors");
    b.checkpoint_path = tmp("b.ckpt");
    b.log_path = tmp("b.csv");
    b.stop_after = 1;
    CHECK_OK(dj_jnd_train(&b, NULL, &rb1));
    CHECK(rb1.epochs_done == 1 && !rb1.completed && access(b.out_path, F_OK) != 0);
    /* a changed recipe is refused, naming the field */
    dj_jnd_train_config bad = b;
    bad.stop_after = 0;
    bad.resume = 1;
    bad.beta = 2;
    CHECK_FAILS(dj_jnd_train(&bad, NULL, NULL), DJ_EINVAL, "jnd.train.beta");
    /* a checkpoint written before jnd.train.changed_weight existed (the key
     * renamed in place, same length) resumes a run with the value every such
     * run had, 0, and refuses another */
    CHECK(rename_in_file(b.checkpoint_path, "\"jnd.train.changed_weight\"", "\"jnd.train.changed_weighX\"") == 1);
    bad = b;
    bad.stop_after = 0;
    bad.resume = 1;
    bad.changed_weight = 1;
    CHECK_FAILS(dj_jnd_train(&bad, NULL, NULL), DJ_EINVAL, "jnd.train.changed_weight = 0, this run asks for 1");
    b.stop_after = 0;
    b.resume = 1;
    watch w = {0};
    dj_jnd_train_callbacks cb = {NULL, on_start, on_step, NULL, &w};
    CHECK_OK(dj_jnd_train(&b, &cb, &rb2));
    CHECK(rb2.start_epoch == 1 && rb2.completed && rb2.steps == ra.steps && w.steps == 8 && w.start_epoch == 1);
    CHECK(rb2.last.train.loss == ra.last.train.loss && rb2.last.test.rca_mean == ra.last.test.rca_mean);
    dj_graph *ga = load_ed(a.out_path), *gb = load_ed(b.out_path);
    CHECK(ga && gb && same_params(ga, gb));
    dj_graph_destroy(ga);
    dj_graph_destroy(gb);
    char *ca = read_text(a.log_path), *cbt = read_text(b.log_path);
    CHECK(ca && cbt && count_lines(ca) == 3 && count_lines(cbt) == 3);
    if (ca && cbt) {
        /* rows agree up to the timing columns (the last 3) */
        char *la = strchr(ca, '\n') + 1, *lb = strchr(cbt, '\n') + 1;
        for (int row = 0; row < 2; row++) {
            char *ea = strchr(la, '\n'), *eb = strchr(lb, '\n');
            for (int k = 0; k < 3; k++) {
                while (ea > la && *--ea != ',') {
                }
                while (eb > lb && *--eb != ',') {
                }
            }
            CHECK(ea - la == eb - lb && !memcmp(la, lb, (size_t)(ea - la)));
            la = strchr(la, '\n') + 1;
            lb = strchr(lb, '\n') + 1;
        }
    }
    free(ca);
    free(cbt);
}

static void test_errors(void) {
    dj_jnd_train_config c = tiny_config();
    c.out_path = "/nonexistent-dmvjnd-dir/x.safetensors";
    CHECK_FAILS(dj_jnd_train(&c, NULL, NULL), DJ_ENOTFOUND, "model file");
    c = tiny_config();
    c.nclassifiers = 0;
    CHECK_FAILS(dj_jnd_train(&c, NULL, NULL), DJ_EINVAL, "classifiers");
    c = tiny_config();
    c.resume = 1;
    CHECK_FAILS(dj_jnd_train(&c, NULL, NULL), DJ_EINVAL, "checkpoint path");
    c = tiny_config();
    const char *missing[1] = {"/nonexistent-dmvjnd-dir/c.safetensors"};
    c.classifiers = missing;
    c.nclassifiers = 1;
    CHECK(dj_jnd_train(&c, NULL, NULL) < 0 && strstr(dj_last_error(), "nonexistent-dmvjnd-dir/c.safetensors"));
    c = tiny_config();
    c.changed_weight = -1;
    CHECK_FAILS(dj_jnd_train(&c, NULL, NULL), DJ_EINVAL, "changed_weight = -1");
    c.changed_weight = NAN;
    CHECK_FAILS(dj_jnd_train(&c, NULL, NULL), DJ_EINVAL, "changed_weight = nan");
    c = tiny_config();
    c.schedule = "cosine:oops";
    CHECK_FAILS(dj_jnd_train(&c, NULL, NULL), DJ_EINVAL, "cosine:oops");
    /* NaN guard: a huge rate after epoch 1 */
    c = tiny_config();
    c.epochs = 3;
    c.lr = 1e-3;
    c.schedule = "step:1:1e30";
    c.checkpoint_path = tmp("nan.ckpt");
    dj_jnd_train_result r;
    CHECK_FAILS(dj_jnd_train(&c, NULL, &r), DJ_ENUMERIC, "diverged in epoch 2");
    CHECK(r.diverged && r.epochs_done == 1);
}

/* ------------------------------------------------------------ gradient */

typedef struct gctx {
    dj_jnd_step *s;
    dj_tensor x, c;
    int32_t labels[8];
    dj_rng rng;
} gctx;

static double jnd_loss(void *p) {
    gctx *g = p;
    dj_jnd_step_stats st;
    if (dj_jnd_step_run(g->s, &g->x, &g->c, NULL, g->labels, NULL, 0, &g->rng, &st)) return NAN;
    return st.loss;
}

/* Directional check (tests/test_jnd_ed.c explains why element-wise central
 * differences do not work on the whole E-D in float32): along random unit
 * directions v of a parameter tensor, (L(w + hv) - L(w - hv)) / 2h vs
 * <dL/dw, v>, within 0.1 sqrt(sum g^2 v^2) + 2e-4; plus element-wise on the
 * output layer's bias, where the loss is smooth. L is the whole JND loss
 * (Loss1 through two frozen classifiers, alpha Loss2 + beta Loss3, clipped
 * x_hat), so this checks the chain E-D -> clip -> classifiers' d/dx ->
 * losses. */
static double dir_check(const char *what, float *w, const float *g, size_t n, gctx *ctx) {
    float *keep = malloc(n * sizeof(float)), *v = malloc(n * sizeof(float));
    memcpy(keep, w, n * sizeof(float));
    const double h = 3e-4;
    double worst = 0;
    for (int d = 0; d < 4; d++) {
        gc_fill(v, n, -1, 1, 200 + (uint64_t)d);
        double norm = 0, ana = 0, s = 0;
        for (size_t i = 0; i < n; i++) norm += (double)v[i] * v[i];
        norm = sqrt(norm);
        for (size_t i = 0; i < n; i++) {
            v[i] = (float)(v[i] / norm);
            ana += (double)g[i] * v[i];
            s += (double)g[i] * g[i] * v[i] * v[i];
        }
        for (size_t i = 0; i < n; i++) w[i] = keep[i] + (float)h * v[i];
        double lp = jnd_loss(ctx);
        for (size_t i = 0; i < n; i++) w[i] = keep[i] - (float)h * v[i];
        double lm = jnd_loss(ctx);
        memcpy(w, keep, n * sizeof(float));
        double num = (lp - lm) / (2 * h), e = fabs(num - ana) / (0.1 * sqrt(s) + 2e-4);
        if (!(e <= worst)) worst = e;
        if (!(e <= 1))
            fprintf(stderr, "dir_check %s: direction %d: analytic %.7g numeric %.7g (err %.3g)\n", what, d, ana, num,
                    e);
    }
    free(keep);
    free(v);
    return worst;
}

/* For the changed-label weight: x_hat as the step makes it (the E-D in
 * training mode, clipped per clip), each of the two classifiers' labels on
 * it; labels[i*2+k] = that label for images 0 and 1 (kept), the next label
 * for images 2 and 3 (changed). Returns the expected Loss1, the mean over
 * classifiers and images of w * CE with w = weight on the changed labels,
 * the cross-entropy in long double. */
static double labels_half_changed(dj_graph *ed, dj_graph *const *cls, const dj_tensor *x, const dj_tensor *c,
                                  const dj_jnd_norm *clip, double weight, int32_t *labels) {
    dj_tensor xc = {0}, xh = {0};
    const dj_tensor *e, *logits;
    long double sum = 0;
    CHECK_OK(dj_tensor_alloc(&xc, 4, 32, 32, 4));
    CHECK_OK(dj_tensor_alloc(&xh, 4, 32, 32, 3));
    CHECK_OK(dj_jnd_stack(x, c, NULL, &xc));
    CHECK_OK(dj_graph_forward(ed, &xc, 1, NULL, &e));
    CHECK_OK(dj_jnd_apply(x, e, clip, &xh));
    for (int k = 0; k < 2; k++) {
        CHECK_OK(dj_graph_forward(cls[k], &xh, 0, NULL, &logits));
        for (int i = 0; i < 4; i++) {
            const float *l = logits->data + (size_t)i * 10;
            int best = 0;
            for (int j = 1; j < 10; j++)
                if (l[j] > l[best]) best = j;
            int label = i < 2 ? best : (best + 1) % 10;
            long double z = 0;
            for (int j = 0; j < 10; j++) z += expl((long double)l[j]);
            long double ce = logl(z) - l[label];
            sum += (i < 2 ? 1 : weight) * ce;
            labels[i * 2 + k] = label;
        }
    }
    dj_tensor_free(&xc);
    dj_tensor_free(&xh);
    return (double)(sum / 8);
}

static void test_gradient(void) {
    dj_rng rng;
    dj_rng_seed(&rng, 21);
    dj_graph *cls[2] = {NULL, NULL}, *ed = NULL;
    CHECK_OK(tiny_build(&cls[0], "tiny", 10, &rng));
    CHECK_OK(tiny_build(&cls[1], "tiny2", 10, &rng));
    /* sharper classifiers than a fresh initialisation: larger logits, a
     * Loss1 gradient well above the finite differences' noise */
    for (int k = 0; k < 2; k++) {
        const dj_param *p = cls[k] ? dj_graph_find_param(cls[k], "fc.weight") : NULL;
        for (size_t i = 0; p && i < p->count; i++) p->data[i] *= 6;
    }
    CHECK_OK(dj_graph_freeze(cls[0]));
    CHECK_OK(dj_graph_freeze(cls[1]));
    dj_jnd_ed_config ec = dj_jnd_ed_defaults();
    ec.width = 0.125f;
    CHECK_OK(dj_model_jnd_ed(&ed, &ec, 32, 32, &rng));
    /* Loss1 alone (the path through the classifiers), then the whole loss;
     * unclipped and clipped; the last run weighs the changed labels 3.5x
     * (Loss1 alone, unclipped; half the labels kept and half changed, so
     * both weights are checked). */
    for (int run = 0; run < 5; run++) {
        int clip = run & 1, whole = (run >> 1) & 1, changed = run == 4;
        gctx g;
        memset(&g, 0, sizeof g);
        dj_jnd_step_config sc;
        memset(&sc, 0, sizeof sc);
        sc.alpha = whole ? 0.7f : 0.0f;
        sc.beta = whole ? 1.3f : 0.0f;
        sc.loss = dj_jnd_loss_defaults();
        sc.clip = clip;
        if (changed) {
            sc.changed_weight = -0.5f;
            CHECK_FAILS(dj_jnd_step_create(&g.s, ed, cls, 2, 4, &sc), DJ_EINVAL, "changed_weight = -0.5");
            sc.changed_weight = 2.5f;
        }
        CHECK_OK(dj_jnd_step_create(&g.s, ed, cls, 2, 4, &sc));
        CHECK_OK(dj_tensor_alloc(&g.x, 4, 32, 32, 3));
        CHECK_OK(dj_tensor_alloc(&g.c, 4, 32, 32, 1));
        gc_fill(g.x.data, dj_tensor_numel(&g.x), -0.95f, 0.95f, 31);
        gc_fill(g.c.data, dj_tensor_numel(&g.c), 0, 1, 32);
        for (int i = 0; i < 8; i++) g.labels[i] = (int32_t)((i * 7 + 3) % 10);
        double want_loss1 = NAN;
        if (changed) want_loss1 = labels_half_changed(ed, cls, &g.x, &g.c, clip ? &sc.loss.norm : NULL, 3.5, g.labels);
        dj_jnd_step_stats st;
        CHECK_OK(dj_jnd_step_run(g.s, &g.x, &g.c, NULL, g.labels, NULL, 0, &g.rng, &st));
        CHECK(isfinite(st.loss) && st.loss1 > 0 && st.loss2 >= 0 && st.loss3 > 0);
        if (changed) {
            CHECK_CLOSE(st.loss1, want_loss1, 1e-5, 1e-5);
            CHECK(st.correct[0] == 2 && st.correct[1] == 2);
        }
        CHECK_CLOSE(st.loss, st.loss1 + (double)sc.alpha * st.loss2 + (double)sc.beta * st.loss3, 1e-12, 1e-12);
        const char *names[3] = {"dec.9.bias", "dec.9.weight", "enc.0.weight"};
        for (int k = 0; k < 3; k++) {
            const dj_param *p = dj_graph_find_param(ed, names[k]);
            CHECK(p != NULL);
            if (!p) continue;
            /* fresh analytic gradient at the current weights */
            CHECK_OK(dj_jnd_step_run(g.s, &g.x, &g.c, NULL, g.labels, NULL, 0, &g.rng, &st));
            float *gr = malloc(p->count * sizeof(float));
            memcpy(gr, p->grad, p->count * sizeof(float));
            double any = 0;
            for (size_t i = 0; i < p->count; i++) any += fabs(gr[i]);
            CHECK(any > 0);
            CHECK(dir_check(names[k], p->data, gr, p->count, &g) <= 1);
            if (k == 0) CHECK(gc_check(names[k], jnd_loss, &g, p->data, gr, p->count, 4e-3f, 5e-4, 2e-2, 3) <= 1);
            free(gr);
        }
        dj_jnd_step_destroy(g.s);
        dj_tensor_free(&g.x);
        dj_tensor_free(&g.c);
    }
    dj_graph_destroy(ed);
    dj_graph_destroy(cls[0]);
    dj_graph_destroy(cls[1]);
}

static double t_last;
#include "util/timer.h"
#define RUNT(t)                                                                                                       \
    do {                                                                                                              \
        RUN(t);                                                                                                       \
        double now_ = dj_now();                                                                                       \
        printf("%s: %.1f s\n", #t, now_ - t_last);                                                                    \
        t_last = now_;                                                                                                \
    } while (0)

int main(void) {
    t_last = dj_now();
    dj_set_num_threads(0);
    snprintf(tmpdir, sizeof tmpdir, "/tmp/dmvjnd_test_jnd_train_%d", (int)getpid());
    mkdir(tmpdir, 0700);
    RUNT(test_presets);
    RUNT(test_gradient);
    if (!data_available()) {
        const char *needs_data[] = {"test_make_batch", "test_cache",  "test_short_run",
                                    "test_margin_init", "test_resume", "test_errors"};
        for (int i = 0; i < 6; i++) check_skip(needs_data[i], 0, "no CIFAR-10");
    } else if (make_classifiers()) {
        check_failed_asserts++;
        check_tests_failed++;
    } else {
        RUNT(test_make_batch);
        RUNT(test_cache);
        RUNT(test_short_run);
        RUNT(test_margin_init);
        RUNT(test_resume);
        RUNT(test_errors);
    }
    free((void *)cls_paths[0]);
    free((void *)cls_paths[1]);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (getenv("KEEP_TMP") == NULL && system(cmd)) fprintf(stderr, "could not remove %s\n", tmpdir);
    return check_report("test_jnd_train");
}
