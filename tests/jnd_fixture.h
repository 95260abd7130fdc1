/* A small DMV-JND model on disk for the generation and evaluation tests:
 * two registered classifiers (resnet20, alexnet) with random weights and
 * random batch-norm statistics, and a random E-D whose output layer is
 * scaled so that e is large enough to change some labels. Nothing is
 * trained: these tests check the plumbing against independent
 * computations, not the quality of a JND. */
#ifndef DMVJND_TESTS_JND_FIXTURE_H
#define DMVJND_TESTS_JND_FIXTURE_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dmvjnd/dmvjnd.h"
#include "dmvjnd/checkpoint.h"
#include "dmvjnd/jnd_train.h"
#include "dmvjnd/models.h"

typedef struct jnd_fixture {
    char dir[256];
    char cls[2][320];
    char model[320];
} jnd_fixture;

/* Running means/variances away from 0/1 so that folding them matters. */
static void fixture_randomise_bn(dj_graph *g, dj_rng *r) {
    for (int i = 0; i < dj_graph_num_params(g); i++) {
        const dj_param *p = dj_graph_param(g, i);
        int is_var = strstr(p->name, "running_var") != NULL, is_mean = strstr(p->name, "running_mean") != NULL;
        for (size_t j = 0; (is_var || is_mean) && j < p->count; j++)
            p->data[j] = is_var ? 0.5f + dj_rng_uniform(r) : 0.2f * (dj_rng_uniform(r) - 0.5f);
    }
}

/* e_scale multiplies the E-D's last convolution (dec.9) weights and bias. */
static int fixture_make(jnd_fixture *f, const char *tag, float e_scale) {
    snprintf(f->dir, sizeof f->dir, "/tmp/dmvjnd_%s_%d", tag, (int)getpid());
    if (mkdir(f->dir, 0700) != 0) return -1;
    static const char *const arch[2] = {"resnet20", "alexnet"};
    char dir[sizeof f->dir]; /* a copy: snprintf into f from f->dir would alias (-Wrestrict) */
    memcpy(dir, f->dir, sizeof dir);
    dj_rng r;
    dj_rng_seed(&r, 42);
    for (int k = 0; k < 2; k++) {
        dj_graph *g = NULL;
        snprintf(f->cls[k], sizeof f->cls[k], "%s/%s.safetensors", dir, arch[k]);
        if (dj_model_build(&g, arch[k], 10, &r)) return -1;
        fixture_randomise_bn(g, &r);
        int rc = dj_weights_save(f->cls[k], g, arch[k], NULL, 0);
        dj_graph_destroy(g);
        if (rc) return -1;
    }
    dj_jnd_ed_config cfg = dj_jnd_ed_defaults();
    cfg.width = 0.25f;
    dj_graph *ed = NULL;
    if (dj_model_jnd_ed(&ed, &cfg, 32, 32, &r)) return -1;
    fixture_randomise_bn(ed, &r);
    for (int i = 0; i < dj_graph_num_params(ed); i++) {
        const dj_param *p = dj_graph_param(ed, i);
        if (!strncmp(p->name, "dec.9.", 6))
            for (size_t j = 0; j < p->count; j++) p->data[j] *= e_scale;
    }
    const char *paths[2] = {f->cls[0], f->cls[1]};
    dj_jnd_model_info info = {.ed_cfg = cfg, .h = 32, .w = 32, .e_unit = DJ_JND_UNIT_NORMALIZED, .clip = 1,
                              .alpha = 1, .beta = 1, .norm = dj_jnd_norm_paper(), .classifiers = paths,
                              .nclassifiers = 2};
    snprintf(f->model, sizeof f->model, "%s/jnd.safetensors", dir);
    int rc = dj_jnd_model_save(f->model, ed, &info, NULL, 0);
    dj_graph_destroy(ed);
    return rc ? -1 : 0;
}

static void fixture_remove(jnd_fixture *f) {
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->dir);
    if (getenv("KEEP_TMP") == NULL && system(cmd)) fprintf(stderr, "could not remove %s\n", f->dir);
}

/* Pseudo-random smooth-ish 8-bit images (n x h x w x 3). */
static void fixture_images(uint8_t *px, int n, int h, int w, uint64_t seed) {
    dj_rng r;
    dj_rng_seed(&r, seed);
    for (int i = 0; i < n; i++) {
        float a = dj_rng_uniform(&r) * 6, b = dj_rng_uniform(&r) * 6, c0 = dj_rng_uniform(&r) * 200;
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
                for (int c = 0; c < 3; c++) {
                    float v = c0 + 40 * sinf(a * x / w + b * y / h + c) + 30 * dj_rng_uniform(&r);
                    px[(((size_t)i * h + y) * w + x) * 3 + c] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
                }
    }
}

#endif
