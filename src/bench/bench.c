/* dj_bench_run: images/s of a training step and of inference, as the median
 * of several timed runs after warm-up (the first steps build primitives and
 * fill caches). */
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "dmvjnd/bench.h"
#include "dmvjnd/dmvjnd.h"
#include "dmvjnd/graph.h"
#include "dmvjnd/jnd_train.h"
#include "dmvjnd/models.h"
#include "util/timer.h"

dj_bench_config dj_bench_defaults(void) {
    dj_bench_config c = {"resnet20", 128, 3, 5, 5, 1, 1, 0, 0, 0.0f, NULL, 0};
    return c;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

typedef struct bench_state {
    dj_graph *g;
    dj_optim *opt;
    dj_tensor x, dx, dlogits;
    int32_t *labels;
    float *probs;
    dj_rng rng;
    dj_jnd_step *jnd; /* cfg->jnd: the JND step, its c and labels */
    dj_tensor jc;
    int32_t *jlabels;
    /* frozen_step's forward and backward seconds in the current timed run:
     * the backward / forward ratio comes from the same steps, not from two
     * timings minutes apart (single timings here move by +-20%). */
    double run_fwd_s, run_bwd_s;
    double ratios[64];
    int nratios; /* timed runs of the last time_runs */
} bench_state;

static int train_step(bench_state *s) {
    const dj_tensor *logits;
    float loss;
    dj_graph_zero_grad(s->g);
    int rc = dj_graph_forward(s->g, &s->x, 1, &s->rng, &logits);
    if (!rc) rc = dj_softmax_ce_forward(logits, s->labels, s->probs, &loss);
    if (!rc) rc = dj_softmax_ce_backward(s->probs, s->labels, 1.0f, &s->dlogits, 0);
    if (!rc) rc = dj_graph_backward(s->g, &s->dlogits, NULL);
    if (!rc) rc = dj_optim_step(s->opt, 0.01f);
    return rc;
}

static int infer_step(bench_state *s) { return dj_graph_forward(s->g, &s->x, 0, NULL, NULL); }

static int frozen_step(bench_state *s) {
    double t0 = dj_now();
    int rc = dj_graph_forward(s->g, &s->x, 0, NULL, NULL);
    double t1 = dj_now();
    if (!rc) rc = dj_graph_backward(s->g, &s->dlogits, &s->dx);
    s->run_fwd_s += t1 - t0;
    s->run_bwd_s += dj_now() - t1;
    return rc;
}

static int jnd_step(bench_state *s) {
    dj_jnd_step_stats st;
    return dj_jnd_step_run(s->jnd, &s->x, &s->jc, NULL, s->jlabels, s->opt, 1e-5f, &s->rng, &st);
}

/* Times cfg->runs runs of cfg->steps calls of step(); fills img/s stats. */
static int time_runs(const dj_bench_config *cfg, bench_state *s, int (*step)(bench_state *), double *med,
                     double *lo, double *hi) {
    double rates[64];
    int runs = cfg->runs < 64 ? cfg->runs : 64;
    for (int i = 0; i < cfg->warmup; i++) {
        int rc = step(s);
        if (rc) return rc;
    }
    for (int r = 0; r < runs; r++) {
        s->run_fwd_s = s->run_bwd_s = 0;
        double t0 = dj_now();
        for (int i = 0; i < cfg->steps; i++) {
            int rc = step(s);
            if (rc) return rc;
        }
        rates[r] = (double)cfg->batch * cfg->steps / (dj_now() - t0);
        s->ratios[r] = s->run_fwd_s > 0 ? s->run_bwd_s / s->run_fwd_s : 0;
    }
    s->nratios = runs;
    *lo = *hi = rates[0];
    for (int r = 1; r < runs; r++) {
        if (rates[r] < *lo) *lo = rates[r];
        if (rates[r] > *hi) *hi = rates[r];
    }
    *med = median(rates, runs);
    return DJ_OK;
}

/* SGD with the classifiers' training settings (momentum 0.9, weight decay
 * 5e-4) over the graph's trainable parameters. */
static int make_optim(dj_graph *g, dj_optim **opt) {
    dj_optim_config oc = dj_optim_defaults(DJ_OPTIM_SGD);
    oc.momentum = 0.9;
    oc.weight_decay = 5e-4;
    return dj_graph_make_optim(g, &oc, opt);
}

/* The JND training step: E-D + Adam (the paper's lr 1e-5, weight decay
 * 1e-3) through frozen classifiers, on synthetic x, c and labels. */
static int jnd_bench(const dj_bench_config *cfg, dj_bench_result *res) {
    static const char *const fresh[4] = {"alexnet", "vgg11bn", "resnet20", "densenet40bc"};
    dj_classifier cls[DJ_JND_MAX_CLASSIFIERS];
    dj_graph *g[DJ_JND_MAX_CLASSIFIERS] = {0};
    int K = cfg->jnd_nclassifiers > 0 ? cfg->jnd_nclassifiers : 4, loaded = 0, rc = DJ_OK;
    if (K > DJ_JND_MAX_CLASSIFIERS) return dj_error(DJ_EINVAL, "bench: %d classifiers (at most %d)", K,
                                                    DJ_JND_MAX_CLASSIFIERS);
    bench_state s;
    memset(&s, 0, sizeof s);
    dj_rng_seed(&s.rng, 1);
    if (cfg->jnd_nclassifiers > 0) {
        if ((rc = dj_jnd_classifiers_load(cls, cfg->jnd_classifiers, K, NULL, NULL))) return rc;
        loaded = 1;
        for (int k = 0; k < K; k++) g[k] = cls[k].graph;
    } else {
        for (int k = 0; !rc && k < K; k++)
            if (!(rc = dj_model_build(&g[k], fresh[k], 10, &s.rng))) rc = dj_graph_freeze(g[k]);
    }
    dj_jnd_ed_config ec = dj_jnd_ed_defaults();
    if (cfg->jnd_width > 0) ec.width = cfg->jnd_width;
    dj_optim_config oc = dj_optim_defaults(DJ_OPTIM_ADAM);
    oc.weight_decay = 1e-3;
    dj_jnd_step_config sc = {1.0f, 1.0f, dj_jnd_loss_defaults(), 1, 0.0f};
    if (!rc) rc = dj_model_jnd_ed(&s.g, &ec, 32, 32, &s.rng);
    if (!rc) rc = dj_graph_make_optim(s.g, &oc, &s.opt);
    if (!rc) rc = dj_jnd_step_create(&s.jnd, s.g, g, K, cfg->batch, &sc);
    if (!rc) rc = dj_tensor_alloc(&s.x, cfg->batch, 32, 32, 3);
    if (!rc) rc = dj_tensor_alloc(&s.jc, cfg->batch, 32, 32, 1);
    if (!rc && !(s.jlabels = malloc((size_t)cfg->batch * K * sizeof *s.jlabels)))
        rc = dj_error(DJ_ENOMEM, "bench: out of memory");
    if (!rc) {
        for (size_t i = 0; i < dj_tensor_numel(&s.x); i++) s.x.data[i] = 2 * dj_rng_uniform(&s.rng) - 1;
        for (size_t i = 0; i < dj_tensor_numel(&s.jc); i++) s.jc.data[i] = dj_rng_uniform(&s.rng);
        for (int i = 0; i < cfg->batch * K; i++) s.jlabels[i] = (int32_t)dj_rng_below(&s.rng, 10);
        res->jnd_ed_params = (double)dj_graph_trainable_count(s.g);
        res->jnd_ed_mflop = dj_graph_flops(s.g) / 1e6;
        res->jnd_classifiers = K;
        res->threads = dj_get_num_threads();
        rc = time_runs(cfg, &s, jnd_step, &res->jnd_img_per_s, &res->jnd_min, &res->jnd_max);
    }
    dj_jnd_step_destroy(s.jnd);
    dj_optim_destroy(s.opt);
    dj_graph_destroy(s.g);
    dj_tensor_free(&s.x);
    dj_tensor_free(&s.jc);
    free(s.jlabels);
    if (loaded)
        dj_jnd_classifiers_free(cls, K);
    else
        for (int k = 0; k < K; k++) dj_graph_destroy(g[k]);
    return rc;
}

int dj_bench_run(const dj_bench_config *cfg, dj_bench_result *res) {
    memset(res, 0, sizeof *res);
    if (cfg->batch < 1 || cfg->runs < 1 || cfg->steps < 1 || cfg->warmup < 0)
        return dj_error(DJ_EINVAL, "bench: batch, runs and steps must be >= 1");
    if (cfg->jnd) return jnd_bench(cfg, res);
    bench_state s;
    memset(&s, 0, sizeof s);
    dj_rng_seed(&s.rng, 1);
    int rc = dj_model_build(&s.g, cfg->model, 10, &s.rng);
    if (rc) return rc;
    int h, w, c;
    dj_graph_node_shape(s.g, 0, &h, &w, &c);
    s.labels = malloc((size_t)cfg->batch * sizeof(int32_t));
    s.probs = malloc((size_t)cfg->batch * 10 * sizeof(float));
    rc = !s.labels || !s.probs ? dj_error(DJ_ENOMEM, "bench: out of memory") : DJ_OK;
    if (!rc) rc = dj_tensor_alloc(&s.x, cfg->batch, h, w, c);
    if (!rc) rc = dj_tensor_alloc(&s.dlogits, cfg->batch, 1, 1, 10);
    if (!rc) rc = dj_tensor_alloc(&s.dx, cfg->batch, h, w, c);
    if (rc) goto done;
    for (size_t i = 0; i < dj_tensor_numel(&s.x); i++) s.x.data[i] = dj_rng_normal(&s.rng);
    for (int i = 0; i < cfg->batch; i++) s.labels[i] = (int32_t)dj_rng_below(&s.rng, 10);
    res->params = (double)dj_graph_trainable_count(s.g);
    res->mflop = dj_graph_flops(s.g) / 1e6;
    res->threads = dj_get_num_threads();
    if (cfg->train) {
        if ((rc = make_optim(s.g, &s.opt))) goto done;
        dj_graph_set_profiling(s.g, cfg->profile);
        rc = time_runs(cfg, &s, train_step, &res->train_img_per_s, &res->train_min, &res->train_max);
        if (rc) goto done;
        if (cfg->profile) dj_graph_profile_report(s.g, res->profile_text, sizeof res->profile_text);
    }
    if (cfg->infer) {
        if ((rc = dj_graph_freeze(s.g))) goto done;
        dj_graph_set_profiling(s.g, cfg->profile);
        rc = time_runs(cfg, &s, infer_step, &res->infer_img_per_s, &res->infer_min, &res->infer_max);
        if (!rc && cfg->profile) dj_graph_profile_report(s.g, res->infer_profile_text, sizeof res->infer_profile_text);
        if (rc) goto done;
        for (size_t i = 0; i < dj_tensor_numel(&s.dlogits); i++) s.dlogits.data[i] = dj_rng_normal(&s.rng);
        double lo, hi;
        dj_graph_set_profiling(s.g, cfg->profile); /* restart: the frozen step's forward and backward */
        rc = time_runs(cfg, &s, frozen_step, &res->frozen_img_per_s, &lo, &hi);
        if (!rc) res->backward_over_forward = median(s.ratios, s.nratios);
        if (!rc && cfg->profile)
            dj_graph_profile_report(s.g, res->frozen_profile_text, sizeof res->frozen_profile_text);
    }
done:
    dj_optim_destroy(s.opt);
    dj_graph_destroy(s.g);
    dj_tensor_free(&s.x);
    dj_tensor_free(&s.dlogits);
    dj_tensor_free(&s.dx);
    free(s.labels);
    free(s.probs);
    return rc;
}

/* ------------------------------------------------------- JND generation */

int dj_bench_jnd_generate(dj_jnd_generator *g, const uint8_t *rgb, int n, int h, int w, int runs, double *med,
                          double *lo, double *hi) {
    if (!g || !rgb || !med || !lo || !hi) return dj_error(DJ_EINVAL, "bench jnd generate: NULL argument");
    if (n < 1 || runs < 1 || runs > 64) return dj_error(DJ_EINVAL, "bench jnd generate: %d images, %d runs", n, runs);
    const size_t px = (size_t)n * h * w * 3;
    uint8_t *xh = malloc(px);
    float *e = malloc(px * sizeof *e);
    dj_jnd_image_result *res = malloc((size_t)n * sizeof *res);
    int rc = xh && e && res ? DJ_OK : dj_error(DJ_ENOMEM, "bench jnd generate: out of memory");
    const int first = n < dj_jnd_generator_batch(g) ? n : dj_jnd_generator_batch(g);
    if (!rc) rc = dj_jnd_generator_run(g, rgb, first, h, w, xh, e, NULL, res); /* warm-up */
    double rates[64];
    for (int r = 0; !rc && r < runs; r++) {
        double t0 = dj_now();
        rc = dj_jnd_generator_run(g, rgb, n, h, w, xh, e, NULL, res);
        rates[r] = (double)n / (dj_now() - t0);
    }
    if (!rc) {
        *lo = *hi = rates[0];
        for (int r = 1; r < runs; r++) {
            if (rates[r] < *lo) *lo = rates[r];
            if (rates[r] > *hi) *hi = rates[r];
        }
        *med = median(rates, runs);
    }
    free(xh);
    free(e);
    free(res);
    return rc;
}

size_t dj_peak_rss_bytes(void) {
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0 || ru.ru_maxrss < 0) return 0;
    return (size_t)ru.ru_maxrss * 1024; /* Linux reports kilobytes */
}
