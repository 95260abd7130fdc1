/* dmvjnd bench: training-step and inference throughput of a model. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "commands.h"
#include "default_models.h"
#include "dmvjnd/bench.h"
#include "dmvjnd/cifar10.h"
#include "dmvjnd/conv_path.h"
#include "dmvjnd/dmvjnd.h"
#include "dmvjnd/graph.h"
#include "dmvjnd/jnd_generate.h"
#include "dmvjnd/rng.h"

/* --jnd: images/s of the JND training step (E-D + four frozen classifiers). */
static int bench_jnd(dj_bench_config *cfg, float width, const char *cls, int json, int threads) {
    const char *paths[8];
    int n = 0;
    char *list = cls ? strdup(cls) : NULL;
    for (char *t = list ? strtok(list, ",") : NULL; t; t = strtok(NULL, ",")) {
        if (n == 8) {
            fprintf(stderr, "dmvjnd bench: --jnd-classifiers takes at most 8 files\n");
            free(list);
            return EXIT_USAGE;
        }
        paths[n++] = t;
    }
    cfg->jnd_width = width;
    cfg->jnd_classifiers = paths;
    cfg->jnd_nclassifiers = n;
    dj_set_num_threads(threads);
    dj_bench_result r;
    int st = dj_bench_run(cfg, &r);
    free(list);
    if (st) return cli_fail("bench", st);
    if (json)
        printf("{\"model\": \"jnd\", \"batch\": %d, \"threads\": %d, \"conv_path\": \"%s\", \"jnd_width\": %g, "
               "\"classifiers\": %d, \"ed_params\": %.0f, \"ed_mflop_per_img\": %.2f, \"jnd_train_img_per_s\": %.1f}\n",
               cfg->batch, r.threads, dj_conv_path_name(), width, r.jnd_classifiers, r.jnd_ed_params, r.jnd_ed_mflop, r.jnd_img_per_s);
    else
        printf("JND training step (E-D width %g: %.3f M parameters, %.1f MFLOP/image; %d frozen %s classifiers; "
               "batch %d, %d threads):\n  %8.1f images/s (median of %d runs, range %.1f-%.1f)\n",
               width, r.jnd_ed_params / 1e6, r.jnd_ed_mflop, r.jnd_classifiers, n ? "loaded" : "freshly initialised",
               cfg->batch, r.threads, r.jnd_img_per_s, cfg->runs, r.jnd_min, r.jnd_max);
    return EXIT_OK;
}

/* --jnd generate: images/s of dj_jnd_generator_run (what a codec calls) on
 * the first `images` CIFAR-10 test images, or on random images when the
 * data set is not there. */
static int bench_jnd_generate(const dj_bench_config *cfg, const char *model, const char *cifar, int images,
                              int json, int threads) {
    dj_set_num_threads(threads);
    dj_cifar10 ds = {0};
    dj_cifar10_opts o = {.limit = images};
    int have_data = dj_cifar10_load(&ds, cifar, "test", &o) == 0 && ds.n == images;
    uint8_t *synth = NULL;
    const uint8_t *rgb = have_data ? ds.pixels : NULL;
    if (!have_data) {
        dj_rng rng;
        dj_rng_seed(&rng, 1);
        if (!(synth = malloc((size_t)images * 32 * 32 * 3))) {
            dj_cifar10_free(&ds);
            return cli_fail("bench", dj_error(DJ_ENOMEM, "bench: out of memory"));
        }
        for (size_t i = 0; i < (size_t)images * 32 * 32 * 3; i++) synth[i] = (uint8_t)dj_rng_below(&rng, 256);
        rgb = synth;
    }
    dj_jnd_generator *g = NULL;
    double med = 0, lo = 0, hi = 0;
    int st = dj_jnd_generator_create(&g, model, NULL, 0);
    if (!st) st = dj_jnd_generator_set_batch(g, cfg->batch);
    if (!st) st = dj_bench_jnd_generate(g, rgb, images, 32, 32, cfg->runs, &med, &lo, &hi);
    int K = dj_jnd_generator_count(g);
    dj_jnd_generator_destroy(g);
    dj_cifar10_free(&ds);
    free(synth);
    if (st) return cli_fail("bench", st);
    const char *data = have_data ? "cifar10-test" : "synthetic";
    if (json)
        printf("{\"model\": \"jnd-generate\", \"jnd_model\": \"%s\", \"classifiers\": %d, \"data\": \"%s\", "
               "\"images\": %d, \"batch\": %d, \"threads\": %d, \"runs\": %d, \"jnd_generate_img_per_s\": %.1f, "
               "\"min\": %.1f, \"max\": %.1f, \"peak_rss_bytes\": %zu}\n",
               model, K, data, images, cfg->batch, dj_get_num_threads(), cfg->runs, med, lo, hi, dj_peak_rss_bytes());
    else
        printf("JND generation (%s, %d classifiers; %d %s images, batch %d, %d threads):\n  %8.1f images/s "
               "(median of %d runs, range %.1f-%.1f)\n",
               model, K, images, data, cfg->batch, dj_get_num_threads(), med, cfg->runs, lo, hi);
    return EXIT_OK;
}

int cmd_bench(int argc, char **argv) {
    /* `--jnd generate` times generation; a bare --jnd the training step. */
    int jnd_generate = 0;
    for (int i = 1; i + 1 < argc; i++)
        if (!strcmp(argv[i], "--jnd") && !strcmp(argv[i + 1], "generate")) {
            jnd_generate = 1;
            for (int j = i + 1; j + 1 < argc; j++) argv[j] = argv[j + 1];
            argc--;
            break;
        }
    dj_bench_config cfg = dj_bench_defaults();
    const char *mode = "both";
    int json = 0, threads = 0, help = 0;
    double jnd_width = 1;
    const char *jnd_cls = NULL, *jnd_model = NULL, *cifar = NULL;
    int images = 500;
    cfg.batch = 0; /* set below: the generator's default, or 128 */
    cli_opt opts[] = {
        {"model", OPT_STRING, &cfg.model, "model to benchmark (default resnet20)", 1, 0},
        {"batch", OPT_INT, &cfg.batch, "batch size (default 128; --jnd generate: 100)", 1, 4096},
        {"mode", OPT_STRING, &mode, "train, infer or both (default both)", 1, 0},
        {"warmup", OPT_INT, &cfg.warmup, "untimed steps first (default 3)", 0, 1000},
        {"runs", OPT_INT, &cfg.runs, "timed runs, median reported (default 5)", 1, 64},
        {"steps", OPT_INT, &cfg.steps, "steps per timed run (default 5)", 1, 100000},
        {"threads", OPT_INT, &threads, "threads (default: all cores)", 0, 1024},
        {"json", OPT_FLAG, &json, "print one JSON object", 0, 0},
        {"profile", OPT_FLAG, &cfg.profile, "print time per layer kind of the training step", 0, 0},
        {"jnd", OPT_FLAG, &cfg.jnd,
         "the DMV-JND training step instead (same as --model jnd); `--jnd generate`: JND generation", 0, 0},
        {"jnd-width", OPT_FLOAT, &jnd_width, "E-D width multiplier of the JND step (default 1)", 0.01, 16},
        {"jnd-classifiers", OPT_STRING, &jnd_cls,
         "classifier weights files of the JND step, comma separated (default: 4 freshly initialised)", 1, 0},
        {"jnd-model", OPT_STRING, &jnd_model,
         "--jnd generate: the DMV-JND model (default: the shipped one; its classifiers are the files it names)",
         1, 0},
        {"images", OPT_INT, &images, "--jnd generate: CIFAR-10 test images per run (default 500)", 1, 10000},
        {"cifar", OPT_STRING, &cifar, "--jnd generate: CIFAR-10 folder (default folder; random images if absent)", 1,
         0},
    };
    int rc = cli_parse("bench", "Measures images/s of a training step and of inference on synthetic data.", argc,
                       argv, 1, opts, (int)(sizeof opts / sizeof *opts), &help);
    if (rc || help) return rc;
    if (jnd_generate) {
        if (!cfg.batch) cfg.batch = DJ_JND_GENERATOR_BATCH;
        if (cfg.runs == dj_bench_defaults().runs) cfg.runs = 3;
        if (!jnd_model && (rc = cli_default_jnd_model("bench", &jnd_model))) return rc;
        return bench_jnd_generate(&cfg, jnd_model, cifar, images, json, threads);
    }
    if (!cfg.batch) cfg.batch = dj_bench_defaults().batch;
    if (!strcmp(cfg.model, "jnd")) cfg.jnd = 1;
    if (cfg.jnd) return bench_jnd(&cfg, (float)jnd_width, jnd_cls, json, threads);
    cfg.train = mode[0] == 'b' || mode[0] == 't';
    cfg.infer = mode[0] == 'b' || mode[0] == 'i';
    if (!cfg.train && !cfg.infer) {
        fprintf(stderr, "dmvjnd bench: --mode must be train, infer or both\n");
        return EXIT_USAGE;
    }
    dj_set_num_threads(threads);
    dj_bench_result r;
    int st = dj_bench_run(&cfg, &r);
    if (st) return cli_fail("bench", st);
    if (json) {
        printf("{\"model\": \"%s\", \"batch\": %d, \"threads\": %d, \"conv_path\": \"%s\", \"params\": %.0f, "
               "\"mflop_per_img\": %.2f",
               cfg.model, cfg.batch, r.threads, dj_conv_path_name(), r.params, r.mflop);
        if (cfg.train) printf(", \"train_img_per_s\": %.1f", r.train_img_per_s);
        if (cfg.infer)
            printf(", \"infer_img_per_s\": %.1f, \"frozen_fwd_bwd_img_per_s\": %.1f, "
                   "\"frozen_backward_over_forward\": %.3f",
                   r.infer_img_per_s, r.frozen_img_per_s, r.backward_over_forward);
        printf("}\n");
    } else {
        printf("model %s: %.3f M parameters, %.1f MFLOP/image forward; batch %d, %d threads, conv path %s\n",
               cfg.model, r.params / 1e6, r.mflop, cfg.batch, r.threads, dj_conv_path_name());
        if (cfg.train)
            printf("train: %8.1f images/s (median of %d runs, range %.1f-%.1f)\n", r.train_img_per_s, cfg.runs,
                   r.train_min, r.train_max);
        if (cfg.infer) {
            printf("infer: %8.1f images/s (median of %d runs, range %.1f-%.1f)\n", r.infer_img_per_s, cfg.runs,
                   r.infer_min, r.infer_max);
            printf("frozen forward + backward to the input: %.1f images/s (backward costs %.2fx the forward)\n",
                   r.frozen_img_per_s, r.backward_over_forward);
        }
        if (cfg.profile && cfg.train) printf("\ntraining step by layer kind (includes warm-up):\n%s", r.profile_text);
        if (cfg.profile && cfg.infer)
            printf("\ninference by layer kind (includes warm-up):\n%s\n"
                   "frozen forward + backward to the input by layer kind (includes warm-up):\n%s",
                   r.infer_profile_text, r.frozen_profile_text);
    }
    return EXIT_OK;
}
