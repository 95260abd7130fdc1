/* dmvjnd train: train the DMV-JND network (dj_jnd_train, dmvjnd/jnd_train.h). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "commands.h"
#include "dmvjnd/bench.h"
#include "dmvjnd/dmvjnd.h"
#include "dmvjnd/jnd_train.h"
#include "inputs.h"
#include "plot.h"
#include "progress.h"

typedef struct printer {
    dj_progress prog;
    int quiet;
    const char *checkpoint;
    const dj_jnd_train_result *res;
} printer;

static void on_cache(const dj_jnd_cache_progress *p, void *user) {
    printer *pr = user;
    if (pr->quiet) return;
    char eta[32];
    dj_format_duration(p->eta_s, eta, sizeof eta);
    dj_progress_update(&pr->prog, p->done == p->total, "cache (%s): labels and CAM maps %d/%d  %.0f img/s  ETA %s",
                       p->split, p->done, p->total, p->images_per_s, eta);
}

static void on_start(const dj_jnd_train_result *r, void *user) {
    printer *pr = user;
    dj_progress_clear(&pr->prog);
    if (r->cache_path[0])
        printf("cache %s: train %s, test %s\n", r->cache_path, r->cache_reused & 1 ? "reused" : "computed",
               r->cache_reused & 2 ? "reused" : "computed");
    if (r->start_epoch > 0)
        printf("resuming from %s: %d epochs (%lld steps) done\n", pr->checkpoint, r->start_epoch,
               (long long)r->steps);
    fflush(stdout);
}

static void on_step(const dj_jnd_train_progress *p, void *user) {
    printer *pr = user;
    if (pr->quiet) return;
    char eta[32];
    dj_format_duration(p->eta_s, eta, sizeof eta);
    dj_progress_update(&pr->prog, 0,
                       "epoch %d/%d  step %d/%d  loss %.4f (L1 %.4f L2 %.4f L3 %.4f)  RCA %.2f%%  PSNR %.2f dB  "
                       "lr %.3g  %.1f img/s  ETA %s",
                       p->epoch, p->epochs, p->batch_index, p->batches, p->loss, p->loss1, p->loss2, p->loss3,
                       100 * p->rca, p->psnr, p->lr, p->images_per_s, eta);
}

static void on_epoch(const dj_jnd_epoch_stats *s, void *user) {
    printer *pr = user;
    dj_progress_clear(&pr->prog);
    char took[32], wall[32], test[160] = "";
    dj_format_duration(s->epoch_s, took, sizeof took);
    dj_format_duration(s->wall_s, wall, sizeof wall);
    if (s->test.images > 0)
        snprintf(test, sizeof test, " | test RCA %.2f%% (float %.2f%%) PSNR %.2f dB", 100 * s->test.rca_mean,
                 100 * s->test_float.rca_mean, s->test.psnr);
    printf("epoch %3d/%d  loss %.4f (L1 %.4f L2 %.4f L3 %.4f)  RCA %.2f%% [", s->epoch, s->epochs, s->train.loss,
           s->train.loss1, s->train.loss2, s->train.loss3, 100 * s->train.rca_mean);
    for (int k = 0; k < s->classifiers; k++)
        printf("%s%s %.1f", k ? " " : "", pr->res->tags[k], 100 * s->train.rca[k]);
    printf("]  PSNR %.2f dB  |e| %.1f%s  %.1f img/s  %s (total %s)\n", s->train.psnr, s->train.mean_abs_e, test,
           s->images_per_s, took, wall);
    fflush(stdout);
}

/* "a,b,c" -> up to max strings (pointers into a copy). */
static int split_list(char *s, const char **out, int max) {
    int n = 0;
    for (char *tok = strtok(s, ","); tok; tok = strtok(NULL, ",")) {
        if (n >= max) return -1;
        out[n++] = tok;
    }
    return n;
}

int cmd_train(int argc, char **argv) {
    const char *preset = "paper", *classifiers = NULL, *optim = NULL, *schedule = NULL, *e_unit = NULL;
    const char *mean = NULL, *stdv = NULL, *data = NULL, *out = NULL, *ckpt = NULL, *log = NULL, *plots = NULL;
    const char *cache = NULL, *input = NULL, *init = NULL;
    double alpha = NAN, beta = NAN, changed_weight = NAN, lr = NAN, wd = NAN, width = NAN, slope = NAN, flip = NAN;
    double e_init = NAN;
    int batch = -1, epochs = -1, train_limit = -1, eval_limit = -1, seed = -1, threads = 0, no_clip = 0, clip = 0;
    int resume = 0, stop_after = 0, drop_last = 0, quiet = 0, no_cache_file = 0, help = 0;
    double log_every = 30;
    cli_opt opts[] = {
        {"preset", OPT_STRING, &preset, "paper (Sec. V-A; default) or fast (~1.2 h on 2 cores; docs/method.md)", 1, 0},
        {"classifiers", OPT_STRING, &classifiers,
         "weights files, comma separated (default models/alexnet,vgg11bn,resnet20,densenet40bc .safetensors)", 1, 0},
        {"data", OPT_STRING, &data, "CIFAR-10 folder (default $DMVJND_DATA or data/cifar-10-batches-bin)", 1, 0},
        {"alpha", OPT_FLOAT, &alpha, "weight of Loss2, Eq. 7 (paper 1, fast 0.1)", 0, 1e6},
        {"beta", OPT_FLOAT, &beta, "weight of Loss3, Eq. 7 (paper 1, fast 0.7)", 0, 1e6},
        {"changed-weight", OPT_FLOAT, &changed_weight,
         "Loss1's extra weight on the labels x + e changes: their cross-entropy counts 1 + N times (default 0, "
         "the paper's Eq. 9; docs/method.md)",
         0, 1e6},
        {"optim", OPT_STRING, &optim, "adam (coupled L2 decay, paper), adamw or sgd", 1, 0},
        {"lr", OPT_FLOAT, &lr, "peak learning rate (paper 1e-5, fast 3e-4)", 0, 1e3},
        {"wd", OPT_FLOAT, &wd, "weight decay (default 1e-3)", 0, 1},
        {"schedule", OPT_STRING, &schedule,
         "lr schedule, lengths in epochs (paper constant, fast cosine+warmup:1:0.1; grammar as train-classifier)", 1,
         0},
        {"batch", OPT_INT, &batch, "batch size (default 50)", 1, 50000},
        {"epochs", OPT_INT, &epochs, "epochs (paper 200, fast 8)", 1, 100000},
        {"drop-last", OPT_FLAG, &drop_last, "skip each epoch's last partial batch", 0, 0},
        {"width", OPT_FLOAT, &width, "E-D width multiplier (paper 1, fast 0.5)", 0.01, 16},
        {"slope", OPT_FLOAT, &slope, "E-D LeakyReLU slope (default 0.01; 0 = ReLU)", 0, 1},
        {"e-init", OPT_FLOAT, &e_init, "scale of the E-D's last layer at initialisation (paper 1, fast 0.1)", 0, 100},
        {"input", OPT_STRING, &input,
         "the E-D's input: x,cam (the paper's; default) or x,cam,margin (adds the classifiers' confidence; "
         "docs/method.md)",
         1, 0},
        {"init", OPT_STRING, &init,
         "start the E-D from this model file's weights (fine-tuning; same width and slope; an x,cam model can "
         "start an x,cam,margin one)",
         1, 0},
        {"e-unit", OPT_STRING, &e_unit, "unit of |e| in Loss2/Loss3: normalized (default) or pixel01", 1, 0},
        {"no-clip", OPT_FLAG, &no_clip, "do not clamp x_hat = x + e to the valid range (default: clamp)", 0, 0},
        {"clip", OPT_FLAG, &clip, "clamp x_hat to the valid range (the default)", 0, 0},
        {"flip", OPT_FLOAT, &flip, "horizontal flip probability (default 0.5)", 0, 1},
        {"mean", OPT_STRING, &mean, "normalisation mean r,g,b (default 0.5,0.5,0.5)", 1, 0},
        {"std", OPT_STRING, &stdv, "normalisation std r,g,b (default 0.5,0.5,0.5)", 1, 0},
        {"train-limit", OPT_INT, &train_limit, "train on the first N training images (default all 50000)", 0, 50000},
        {"eval-limit", OPT_INT, &eval_limit, "test records 0..N-1 evaluated each epoch (default 1000)", 0, 10000},
        {"seed", OPT_INT, &seed, "random seed (default 1)", 0, 2147483647},
        {"threads", OPT_INT, &threads, "threads (default: all cores)", 0, 1024},
        {"out", OPT_STRING, &out, "the trained model file (.safetensors)", 1, 0},
        {"checkpoint", OPT_STRING, &ckpt, "checkpoint written after every epoch", 1, 0},
        {"resume", OPT_FLAG, &resume, "continue from --checkpoint if it exists (same recipe)", 0, 0},
        {"stop-after", OPT_INT, &stop_after, "stop after this epoch (checkpoint kept; finish with --resume)", 0,
         100000},
        {"log", OPT_STRING, &log, "CSV log, one row per epoch", 1, 0},
        {"plots", OPT_STRING, &plots,
         "folder for rca.png, loss.png, psnr.png and plots.json, drawn from the CSV log after training by "
         "tools/plot_training.py (python3-matplotlib; without it a warning); the log goes there as train.csv "
         "without --log",
         1, 0},
        {"cache", OPT_STRING, &cache, "labels + CAM cache file (default jnd-cache.safetensors next to --out)", 1, 0},
        {"no-cache-file", OPT_FLAG, &no_cache_file, "compute the cache in memory, never read or write a file", 0, 0},
        {"log-every", OPT_FLOAT, &log_every, "seconds between progress lines when stderr is not a terminal (30)",
         0.1, 1e6},
        {"quiet", OPT_FLAG, &quiet, "no progress line (epoch lines only)", 0, 0},
    };
    int rc = cli_parse("train",
                       "Trains the DMV-JND network (E-D autoencoder) against frozen classifiers; per-epoch CSV, "
                       "plots, checkpoints.",
                       argc, argv, 1, opts, (int)(sizeof opts / sizeof *opts), &help);
    if (rc || help) return rc;
    dj_jnd_train_config cfg;
    if (dj_jnd_train_preset(&cfg, preset)) {
        fprintf(stderr, "dmvjnd train: --preset must be paper or fast, not '%s'\n", preset);
        return EXIT_USAGE;
    }
    if (!out && !ckpt) {
        fprintf(stderr, "dmvjnd train: give --out FILE (and/or --checkpoint FILE): nothing would be saved\n");
        return EXIT_USAGE;
    }
    if (resume && !ckpt) {
        fprintf(stderr, "dmvjnd train: --resume needs --checkpoint FILE\n");
        return EXIT_USAGE;
    }
    if (clip && no_clip) {
        fprintf(stderr, "dmvjnd train: --clip and --no-clip contradict each other\n");
        return EXIT_USAGE;
    }
    char *list = NULL;
    const char *paths[DJ_JND_MAX_CLASSIFIERS];
    if (classifiers) {
        list = strdup(classifiers);
        int n = list ? split_list(list, paths, DJ_JND_MAX_CLASSIFIERS) : -1;
        if (n < 1) {
            fprintf(stderr, "dmvjnd train: --classifiers needs 1 to %d comma-separated files\n",
                    DJ_JND_MAX_CLASSIFIERS);
            free(list);
            return EXIT_USAGE;
        }
        cfg.classifiers = paths;
        cfg.nclassifiers = n;
    }
    rc = EXIT_USAGE;
    if (optim) {
        int kind;
        if (dj_optim_kind_from_name(optim, &kind)) {
            fprintf(stderr, "dmvjnd train: --optim must be adam, adamw or sgd, not '%s'\n", optim);
            goto done;
        }
        cfg.optim = dj_optim_defaults(kind);
        cfg.optim.weight_decay = 1e-3;
        if (kind == DJ_OPTIM_SGD) cfg.optim.momentum = 0.9;
    }
    if (!isnan(wd)) cfg.optim.weight_decay = wd;
    if (e_unit && dj_jnd_unit_from_name(e_unit, &cfg.e_unit)) {
        fprintf(stderr, "dmvjnd train: --e-unit must be normalized or pixel01, not '%s'\n", e_unit);
        goto done;
    }
    if ((mean && dj_meta_parse_float3(mean, cfg.norm.mean)) || (stdv && dj_meta_parse_float3(stdv, cfg.norm.std))) {
        fprintf(stderr, "dmvjnd train: --mean and --std take three numbers r,g,b\n");
        goto done;
    }
    if (!isnan(alpha)) cfg.alpha = (float)alpha;
    if (!isnan(beta)) cfg.beta = (float)beta;
    if (!isnan(changed_weight)) cfg.changed_weight = (float)changed_weight;
    if (!isnan(lr)) cfg.lr = lr;
    if (!isnan(width)) cfg.ed.width = (float)width;
    if (!isnan(slope)) cfg.ed.slope = (float)slope;
    if (input) {
        if (strcmp(input, "x,cam") && strcmp(input, "x,cam,margin")) {
            fprintf(stderr, "dmvjnd train: --input must be x,cam or x,cam,margin, not '%s'\n", input);
            goto done;
        }
        cfg.ed.margin_input = !strcmp(input, "x,cam,margin");
    }
    if (init) cfg.init_path = init;
    if (!isnan(flip)) cfg.flip_p = (float)flip;
    if (!isnan(e_init)) cfg.e_init = (float)e_init;
    if (schedule) cfg.schedule = schedule;
    if (batch > 0) cfg.batch = batch;
    if (epochs > 0) cfg.epochs = epochs;
    if (train_limit >= 0) cfg.train_limit = train_limit;
    if (eval_limit >= 0) cfg.eval_limit = eval_limit;
    if (seed >= 0) cfg.seed = (uint64_t)seed;
    if (no_clip) cfg.clip = 0;
    cfg.drop_last = drop_last;
    cfg.threads = threads;
    cfg.data_dir = data;
    cfg.out_path = out;
    cfg.checkpoint_path = ckpt;
    cfg.resume = resume;
    cfg.stop_after = stop_after;
    char plot_log[4096];
    if (plots) { /* like every --out folder: created if missing (one level) */
        int st_dir = cli_prepare_out_dir(plots);
        if (st_dir) {
            rc = cli_exit_code(st_dir);
            fprintf(stderr, "dmvjnd train: %s\n", dj_last_error());
            goto done;
        }
        if (!log) { /* the figures are drawn from the log */
            snprintf(plot_log, sizeof plot_log, "%s/train.csv", plots);
            log = plot_log;
        }
    }
    cfg.log_path = log;
    cfg.cache_path = cache;
    cfg.no_cache_file = no_cache_file;

    printer pr;
    dj_progress_init(&pr.prog, stderr, log_every);
    pr.quiet = quiet;
    pr.checkpoint = ckpt;
    dj_jnd_train_result res;
    pr.res = &res;
    dj_jnd_train_callbacks cb = {on_cache, on_start, on_step, on_epoch, &pr};
    printf("train: preset %s; %d classifiers; E-D width %g, input %s; alpha %g beta %g changed-weight %g; %s lr %g "
           "(%s) wd %g; batch %d, %d epochs, flip %g; e unit %s, %s; seed %llu\n",
           preset, cfg.nclassifiers, cfg.ed.width, cfg.ed.margin_input ? "x,cam,margin" : "x,cam", cfg.alpha,
           cfg.beta, cfg.changed_weight, dj_optim_kind_name(cfg.optim.kind), cfg.lr,
           cfg.schedule, cfg.optim.weight_decay, cfg.batch, cfg.epochs, cfg.flip_p, dj_jnd_unit_name(cfg.e_unit),
           cfg.clip ? "x_hat clipped" : "x_hat not clipped", (unsigned long long)cfg.seed);
    fflush(stdout);
    int st = dj_jnd_train(&cfg, &cb, &res);
    dj_progress_clear(&pr.prog);
    if (plots && res.epochs_done > 0 && cli_plot_training(log, plots)) printf("plots: %s\n", plots);
    if (st) {
        rc = res.diverged ? EXIT_FAILURE_GENERIC : cli_exit_code(st);
        fprintf(stderr, "dmvjnd train: %s\n", dj_last_error()[0] ? dj_last_error() : dj_strerror(st));
        goto done;
    }
    rc = EXIT_OK;
    if (!res.completed) {
        printf("stopped after epoch %d of %d; checkpoint %s (continue with --resume)\n", res.epochs_done, cfg.epochs,
               ckpt);
        goto done;
    }
    char wall[32];
    dj_format_duration(res.wall_s, wall, sizeof wall);
    printf("final: train RCA %.2f%%, PSNR %.2f dB", 100 * res.last.train.rca_mean, res.last.train.psnr);
    if (res.last.test.images > 0)
        printf("; test RCA %.2f%% on records 0-%d, PSNR %.2f dB, mean |e| %.1f levels", 100 * res.last.test.rca_mean,
               res.last.test.images - 1, res.last.test.psnr, res.last.test.mean_abs_e);
    printf("; %d epochs in %s; peak memory %.0f MiB\n", res.epochs_done, wall,
           (double)dj_peak_rss_bytes() / (1024.0 * 1024.0));
    if (out) printf("model: %s\n", out);
done:
    free(list);
    return rc;
}
