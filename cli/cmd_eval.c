/* dmvjnd eval: RCA, PSNR, the WGN and homogeneity tests of a trained
 * DMV-JND model on CIFAR-10, as a Markdown report, JSON and a montage.
 * A thin layer over dj_jnd_evaluate (dmvjnd/jnd_eval.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "args.h"
#include "commands.h"
#include "dmvjnd/dmvjnd.h"
#include "dmvjnd/fileio.h"
#include "dmvjnd/jnd_eval.h"
#include "default_models.h"
#include "inputs.h"
#include "util/progress.h"

typedef struct prog_ctx {
    dj_progress p;
    const char *split;
    int quiet;
} prog_ctx;

static void on_progress(int done, int total, double rate, double eta, void *user) {
    prog_ctx *c = user;
    if (c->quiet) return;
    char e[32];
    dj_format_duration(eta, e, sizeof e);
    dj_progress_update(&c->p, done == total, "eval (%s): %d/%d images  %.0f img/s  ETA %s", c->split, done, total,
                       rate, e);
}

static int eval_split(dj_jnd_generator *g, const char *dir, const char *split, int limit,
                      const dj_jnd_eval_config *cfg, dj_jnd_eval_stats *all, dj_jnd_eval_stats *sub, prog_ctx *pc) {
    dj_cifar10 ds = {0};
    dj_cifar10_opts o = {.limit = limit};
    int rc = dj_cifar10_load(&ds, dir, split, &o);
    if (rc) return rc;
    pc->split = split;
    rc = dj_jnd_evaluate(g, &ds, cfg, all, sub, on_progress, pc);
    dj_progress_clear(&pc->p);
    dj_cifar10_free(&ds);
    return rc;
}

static int write_text(const char *dir, const char *name, const char *text) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return dj_write_file_atomic(path, text, strlen(text));
}

int cmd_eval(int argc, char **argv) {
    const char **cls = NULL;
    int ncls = 0;
    int rc = cli_take_repeated("eval", &argc, argv, "classifier", 0, &cls, &ncls);
    if (rc) goto done;
    const char *model = NULL, *cifar = NULL, *split = "both", *out = NULL;
    int limit = 0, subset = 1000, json = 0, batch = 200, threads = 0, help = 0, no_wgn = 0, no_homo = 0;
    int montage = 8, quiet = 0, no_float = 0;
    double seed = 1, gain = 4;
    cli_opt opts[] = {
        {"model", OPT_STRING, &model, "trained DMV-JND model file (default: the shipped " DJ_MODEL_JND ")", 1, 0},
        {"classifier", OPT_STRING, NULL, "classifier weights file, repeated (default: the files the model names)",
         1, 0},
        {"cifar", OPT_STRING, &cifar, "CIFAR-10 folder (default: see docs/cli.md, Data)", 1, 0},
        {"split", OPT_STRING, &split, "train, test or both (default both)", 1, 0},
        {"limit", OPT_INT, &limit, "first N records of each split (default: all)", 0, 50000},
        {"subset", OPT_INT, &subset, "also report test records 0..N-1, the bit-exact ones (default 1000; 0: no)",
         0, 10000},
        {"out", OPT_STRING, &out, "output folder (created): report.md, report.json, montage.png", 1, 0},
        {"json", OPT_FLAG, &json, "print the JSON report on stdout", 0, 0},
        {"seed", OPT_FLOAT, &seed, "seed of the WGN test's noise (default 1)", 0, 9007199254740992.0},
        {"no-wgn", OPT_FLAG, &no_wgn, "skip the WGN test", 0, 0},
        {"no-homogeneity", OPT_FLAG, &no_homo, "skip the homogeneity test", 0, 0},
        {"no-float", OPT_FLAG, &no_float, "skip the RCA of the unclipped float x + e", 0, 0},
        {"montage", OPT_INT, &montage, "test images in the montage (default 8; 0: none)", 0, 64},
        {"e-gain", OPT_FLOAT, &gain, "contrast of e in the montage (default 4)", 0.01, 100},
        {"batch", OPT_INT, &batch, "images per pass (default 200)", 1, 10000},
        {"threads", OPT_INT, &threads, "threads (default: all cores)", 0, 1024},
        {"quiet", OPT_FLAG, &quiet, "no progress line", 0, 0},
    };
    rc = cli_parse("eval",
                   "Evaluates a DMV-JND model on CIFAR-10: RCA per classifier, PSNR, the WGN test and the "
                   "homogeneity test, on the stored 8-bit x + e. Writes report.md, report.json and montage.png.",
                   argc, argv, 1, opts, (int)(sizeof opts / sizeof *opts), &help);
    if (rc || help) goto done;
    rc = EXIT_USAGE;
    if (!out && !json) {
        fprintf(stderr, "dmvjnd eval: give --out DIR (report files), --json (stdout), or both\n");
        goto done;
    }
    int do_train = !strcmp(split, "train") || !strcmp(split, "both");
    int do_test = !strcmp(split, "test") || !strcmp(split, "both");
    if (!do_train && !do_test) {
        fprintf(stderr, "dmvjnd eval: --split must be train, test or both, not '%s'\n", split);
        goto done;
    }
    if (!model && (rc = cli_default_jnd_model("eval", &model))) goto done;
    dj_set_num_threads(threads);
    int st_rc = DJ_OK;
    if (out && (st_rc = cli_prepare_out_dir(out))) {
        rc = cli_fail("eval", st_rc);
        goto done;
    }
    dj_jnd_generator *g = NULL;
    if ((st_rc = dj_jnd_generator_create(&g, model, ncls ? cls : NULL, ncls))) {
        rc = cli_fail("eval", st_rc);
        goto done;
    }
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    dj_jnd_eval_config cfg = dj_jnd_eval_defaults();
    cfg.batch = batch;
    cfg.seed = (uint64_t)seed;
    cfg.wgn = !no_wgn;
    cfg.homogeneity = !no_homo;
    cfg.unclipped = !no_float;
    dj_jnd_eval_report rep = {.model_path = model, .gen = g, .seed = cfg.seed};
    prog_ctx pc = {.quiet = quiet};
    dj_progress_init(&pc.p, stderr, 30);
    if (do_train) {
        cfg.subset = 0;
        st_rc = eval_split(g, cifar, "train", limit, &cfg, &rep.train, NULL, &pc);
        rep.has_train = !st_rc;
    }
    if (!st_rc && do_test) {
        cfg.subset = subset;
        st_rc = eval_split(g, cifar, "test", limit, &cfg, &rep.test, &rep.test_subset, &pc);
        rep.has_test = !st_rc;
        rep.has_subset = !st_rc && subset > 0 && rep.test_subset.images > 0;
        rep.subset = subset;
    }
    char montage_path[4096];
    if (!st_rc && out && montage > 0) {
        dj_cifar10 ds = {0};
        dj_cifar10_opts o = {.limit = montage};
        st_rc = dj_cifar10_load(&ds, cifar, "test", &o);
        snprintf(montage_path, sizeof montage_path, "%s/montage.png", out);
        if (!st_rc) st_rc = dj_jnd_montage(g, ds.pixels, ds.n, 32, 32, 4, (float)gain, montage_path);
        if (!st_rc) rep.montage = "montage.png";
        dj_cifar10_free(&ds);
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    rep.seconds = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    char *js = NULL, *md = NULL;
    if (!st_rc) st_rc = dj_jnd_eval_json(&rep, &js);
    if (!st_rc) st_rc = dj_jnd_eval_markdown(&rep, &md);
    if (!st_rc && out) st_rc = write_text(out, "report.json", js);
    if (!st_rc && out) st_rc = write_text(out, "report.md", md);
    if (!st_rc) {
        if (json) {
            printf("%s\n", js);
        } else {
            const dj_jnd_eval_stats *s = rep.has_test ? &rep.test : &rep.train;
            printf("%s set: RCA %.2f%% (mean of %d classifiers), PSNR %.2f dB, WGN RCA %.2f%%; report: %s/report.md\n",
                   rep.has_test ? "test" : "training", 100 * s->rca_mean, s->classifiers, s->psnr_db,
                   100 * s->wgn_rca_mean, out);
        }
    }
    free(js);
    free(md);
    rc = st_rc ? cli_fail("eval", st_rc) : EXIT_OK;
    dj_jnd_generator_destroy(g);
done:
    free((void *)cls);
    return rc;
}
