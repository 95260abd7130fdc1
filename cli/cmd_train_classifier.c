/* dmvjnd train-classifier: train a CIFAR-10 classifier (dj_train_classifier). */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "args.h"
#include "commands.h"
#include "dmvjnd/dmvjnd.h"
#include "dmvjnd/train.h"
#include "inputs.h"
#include "plot.h"
#include "progress.h"

typedef struct printer {
    dj_progress prog;
    int quiet;
    const char *checkpoint;
} printer;

static void on_start(const dj_train_result *r, void *user) {
    printer *pr = user;
    if (r->start_epoch > 0)
        printf("resuming from %s: %d epochs (%lld steps) done\n", pr->checkpoint, r->start_epoch,
               (long long)r->steps);
    fflush(stdout);
}

static void on_step(const dj_train_progress *p, void *user) {
    printer *pr = user;
    if (pr->quiet) return;
    char eta[32];
    dj_format_duration(p->eta_s, eta, sizeof eta);
    dj_progress_update(&pr->prog, 0, "epoch %d/%d  step %d/%d (%lld/%lld)  loss %.4f  lr %.4g  %.0f img/s  ETA %s",
                       p->epoch, p->epochs, p->batch_index, p->batches, (long long)p->step,
                       (long long)p->total_steps, p->epoch_loss, p->lr, p->images_per_s, eta);
}

static void on_epoch(const dj_epoch_stats *s, void *user) {
    printer *pr = user;
    dj_progress_clear(&pr->prog);
    char test[48] = "", took[32], wall[32];
    if (s->test_images > 0) snprintf(test, sizeof test, "  test %.2f%% (%d)", 100 * s->test_acc, s->test_images);
    dj_format_duration(s->epoch_s, took, sizeof took);
    dj_format_duration(s->wall_s, wall, sizeof wall);
    printf("epoch %3d/%d  loss %.4f  train %.2f%%%s  lr %.4g  %.0f img/s  %s (total %s)\n", s->epoch, s->epochs,
           s->train_loss, 100 * s->train_acc, test, s->lr_last, s->images_per_s, took, wall);
    fflush(stdout);
}

int cmd_train_classifier(int argc, char **argv) {
    dj_train_config cfg = dj_train_defaults();
    const char *optim = "sgd", *schedule = NULL, *plots = NULL;
    double momentum = -1, wd = -1, lr = cfg.lr;
    int nesterov = 0, no_augment = 0, seed = (int)cfg.seed, quiet = 0, help = 0;
    double log_every = 30;
    cfg.out_path = NULL;
    cli_opt opts[] = {
        {"arch", OPT_STRING, &cfg.arch, "model: resnet20, resnet32, resnet56, ... (default resnet20)", 1, 0},
        {"data", OPT_STRING, &cfg.data_dir, "CIFAR-10 folder (default $DMVJND_DATA or data/cifar-10-batches-bin)",
         1, 0},
        {"epochs", OPT_INT, &cfg.epochs, "epochs (default 30)", 1, 100000},
        {"batch", OPT_INT, &cfg.batch, "batch size (default 128)", 1, 50000},
        {"drop-last", OPT_FLAG, &cfg.drop_last, "skip each epoch's last partial batch", 0, 0},
        {"optim", OPT_STRING, &optim, "sgd, adam or adamw (default sgd)", 1, 0},
        {"lr", OPT_FLOAT, &lr, "base (peak) learning rate (default 0.1)", 0, 1e6},
        {"momentum", OPT_FLOAT, &momentum, "SGD momentum (default 0.9)", 0, 1},
        {"nesterov", OPT_FLAG, &nesterov, "SGD with Nesterov momentum", 0, 0},
        {"wd", OPT_FLOAT, &wd, "weight decay (default: sgd 5e-4, adam 0, adamw 0.01)", 0, 1},
        {"schedule", OPT_STRING, &schedule,
         "lr schedule, lengths in epochs: constant, cosine[:MIN], step:E1,E2[:GAMMA], onecycle[:PCT], "
         "each optionally +warmup:E[:START] (default cosine)",
         1, 0},
        {"no-augment", OPT_FLAG, &no_augment, "no random crop and flip", 0, 0},
        {"seed", OPT_INT, &seed, "random seed (default 1)", 0, 2147483647},
        {"threads", OPT_INT, &cfg.threads, "threads (default: all cores)", 0, 1024},
        {"train-limit", OPT_INT, &cfg.train_limit, "train on the first N training images (default all)", 0, 50000},
        {"eval-limit", OPT_INT, &cfg.eval_limit, "test images (records 0..N-1) evaluated each epoch (default 1000)",
         0, 10000},
        {"final-eval-limit", OPT_INT, &cfg.final_eval_limit, "test images evaluated at the end (default 10000)", 0,
         10000},
        {"out", OPT_STRING, &cfg.out_path, "final weights file (.safetensors)", 1, 0},
        {"checkpoint", OPT_STRING, &cfg.checkpoint_path, "checkpoint written after every epoch", 1, 0},
        {"resume", OPT_FLAG, &cfg.resume, "continue from --checkpoint if it exists (same recipe)", 0, 0},
        {"stop-after", OPT_INT, &cfg.stop_after, "stop after this epoch (checkpoint kept; finish with --resume)", 0,
         100000},
        {"log", OPT_STRING, &cfg.log_path, "CSV log, one row per epoch", 1, 0},
        {"plots", OPT_STRING, &plots,
         "folder for loss.png, accuracy.png, lr.png and plots.json, drawn from the CSV log after training by "
         "tools/plot_training.py (python3-matplotlib; without it a warning); the log goes there as train.csv "
         "without --log",
         1, 0},
        {"log-every", OPT_FLOAT, &log_every, "seconds between progress lines when stderr is not a terminal "
                                             "(default 30)", 0.1, 1e6},
        {"quiet", OPT_FLAG, &quiet, "no progress line (epoch lines only)", 0, 0},
    };
    int rc = cli_parse("train-classifier",
                       "Trains a CIFAR-10 classifier and writes its weights, with per-epoch checkpoints and CSV log.",
                       argc, argv, 1, opts, (int)(sizeof opts / sizeof *opts), &help);
    if (rc || help) return rc;
    if (!cfg.out_path && !cfg.checkpoint_path) {
        fprintf(stderr, "dmvjnd train-classifier: give --out FILE (and/or --checkpoint FILE): nothing would be "
                        "saved\n");
        return EXIT_USAGE;
    }
    if (cfg.resume && !cfg.checkpoint_path) {
        fprintf(stderr, "dmvjnd train-classifier: --resume needs --checkpoint FILE\n");
        return EXIT_USAGE;
    }
    int kind;
    if (dj_optim_kind_from_name(optim, &kind)) {
        fprintf(stderr, "dmvjnd train-classifier: --optim must be sgd, adam or adamw, not '%s'\n", optim);
        return EXIT_USAGE;
    }
    cfg.optim = dj_optim_defaults(kind);
    if (kind == DJ_OPTIM_SGD) {
        cfg.optim.momentum = momentum >= 0 ? momentum : 0.9;
        cfg.optim.nesterov = nesterov;
        cfg.optim.weight_decay = wd >= 0 ? wd : 5e-4;
        if (nesterov && !(cfg.optim.momentum > 0)) {
            fprintf(stderr, "dmvjnd train-classifier: --nesterov needs --momentum > 0\n");
            return EXIT_USAGE;
        }
    } else {
        if (momentum >= 0 || nesterov) {
            fprintf(stderr, "dmvjnd train-classifier: --momentum and --nesterov are for --optim sgd\n");
            return EXIT_USAGE;
        }
        if (wd >= 0) cfg.optim.weight_decay = wd;
    }
    cfg.lr = lr;
    if (schedule) cfg.schedule = schedule;
    cfg.augment = !no_augment;
    cfg.seed = (uint64_t)seed;
    char plot_log[4096];
    if (plots) { /* created if missing, like every output folder */
        int st_dir = cli_prepare_out_dir(plots);
        if (st_dir) {
            fprintf(stderr, "dmvjnd train-classifier: %s\n", dj_last_error());
            return cli_exit_code(st_dir);
        }
        if (!cfg.log_path) { /* the figures are drawn from the log */
            snprintf(plot_log, sizeof plot_log, "%s/train.csv", plots);
            cfg.log_path = plot_log;
        }
    }

    printer pr;
    dj_progress_init(&pr.prog, stderr, log_every);
    pr.quiet = quiet;
    pr.checkpoint = cfg.checkpoint_path;
    dj_train_callbacks cb = {on_start, on_step, on_epoch, &pr};
    dj_train_result res;
    printf("train-classifier: %s, %d epochs, batch %d, %s lr %g (%s), %s, seed %d\n", cfg.arch, cfg.epochs,
           cfg.batch, optim, cfg.lr, cfg.schedule, cfg.augment ? "crop+flip" : "no augmentation", seed);
    fflush(stdout);
    int st = dj_train_classifier(&cfg, &cb, &res);
    dj_progress_clear(&pr.prog);
    if (plots && res.epochs_done > 0 && cli_plot_training(cfg.log_path, plots)) printf("plots: %s\n", plots);
    if (st) {
        int code = res.diverged ? EXIT_FAILURE_GENERIC : cli_exit_code(st);
        fprintf(stderr, "dmvjnd train-classifier: %s\n", dj_last_error()[0] ? dj_last_error() : dj_strerror(st));
        return code;
    }
    if (!res.completed) {
        printf("stopped after epoch %d of %d; checkpoint %s (continue with --resume)\n", res.epochs_done, cfg.epochs,
               cfg.checkpoint_path);
        return EXIT_OK;
    }
    char wall[32];
    dj_format_duration(res.wall_s, wall, sizeof wall);
    if (res.test_images > 0)
        printf("final: test accuracy %.2f%% on test records 0-%d", 100 * res.test_accuracy, res.test_images - 1);
    else
        printf("final: no test evaluation");
    if (res.head_images > 0 && res.head_images != res.test_images)
        printf(", %.2f%% on records 0-%d", 100 * res.head_accuracy, res.head_images - 1);
    printf("; %d epochs in %s\n", res.epochs_done, wall);
    if (cfg.out_path) printf("weights: %s\n", cfg.out_path);
    return EXIT_OK;
}
