/* dmvjnd bench: training-step and inference throughput of a model. */
#include <stdio.h>

#include "args.h"
#include "commands.h"
#include "dmvjnd/bench.h"
#include "dmvjnd/dmvjnd.h"

int cmd_bench(int argc, char **argv) {
    dj_bench_config cfg = dj_bench_defaults();
    const char *mode = "both";
    int json = 0, threads = 0, help = 0;
    cli_opt opts[] = {
        {"model", OPT_STRING, &cfg.model, "model to benchmark (default resnet20)", 1, 0},
        {"batch", OPT_INT, &cfg.batch, "batch size (default 128)", 1, 4096},
        {"mode", OPT_STRING, &mode, "train, infer or both (default both)", 1, 0},
        {"warmup", OPT_INT, &cfg.warmup, "untimed steps first (default 3)", 0, 1000},
        {"runs", OPT_INT, &cfg.runs, "timed runs, median reported (default 5)", 1, 64},
        {"steps", OPT_INT, &cfg.steps, "steps per timed run (default 5)", 1, 100000},
        {"threads", OPT_INT, &threads, "threads (default: all cores)", 0, 1024},
        {"json", OPT_FLAG, &json, "print one JSON object", 0, 0},
        {"profile", OPT_FLAG, &cfg.profile, "print time per layer kind of the training step", 0, 0},
    };
    int rc = cli_parse("bench", "Measures images/s of a training step and of inference on synthetic data.", argc,
                       argv, 1, opts, (int)(sizeof opts / sizeof *opts), &help);
    if (rc || help) return rc;
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
        printf("{\"model\": \"%s\", \"batch\": %d, \"threads\": %d, \"params\": %.0f, \"mflop_per_img\": %.2f",
               cfg.model, cfg.batch, r.threads, r.params, r.mflop);
        if (cfg.train) printf(", \"train_img_per_s\": %.1f", r.train_img_per_s);
        if (cfg.infer)
            printf(", \"infer_img_per_s\": %.1f, \"frozen_fwd_bwd_img_per_s\": %.1f, "
                   "\"frozen_backward_over_forward\": %.3f",
                   r.infer_img_per_s, r.frozen_img_per_s, r.backward_over_forward);
        printf("}\n");
    } else {
        printf("model %s: %.3f M parameters, %.1f MFLOP/image forward; batch %d, %d threads\n", cfg.model,
               r.params / 1e6, r.mflop, cfg.batch, r.threads);
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
        if (cfg.profile && cfg.infer) printf("\ninference by layer kind (includes warm-up):\n%s", r.infer_profile_text);
    }
    return EXIT_OK;
}
