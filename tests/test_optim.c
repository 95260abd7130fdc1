/* Optimisers: SGD (momentum, dampening, Nesterov), Adam and AdamW against
 * straightforward double-precision reference loops, against PyTorch's numbers
 * (tests/data/optim_expected.h, from tools/torch/optim_reference.py), state
 * export/import, thread-count independence and argument checks. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "data/optim_expected.h"
#include "dmvjnd/dmvjnd.h"

/* ------------------------------------------------------------ test data */

static uint64_t lcg(uint64_t *s) {
    *s = *s * 6364136223846793005ULL + 1442695040888963407ULL;
    return *s >> 11;
}

/* Uniform in [lo, hi). */
static void fill(float *x, size_t n, float lo, float hi, uint64_t seed) {
    uint64_t s = seed * 2654435761ULL + 7;
    for (size_t i = 0; i < n; i++) x[i] = lo + (hi - lo) * (float)((double)lcg(&s) / 9007199254740992.0);
}

/* A little model: several tensors in ONE parameter allocation, gradients in
 * another with the same layout, decay on for some tensors only. */
#define MAX_TENSORS 4
typedef struct model {
    int count;
    size_t sizes[MAX_TENSORS];
    int decay[MAX_TENSORS];
    size_t total;
    float *w, *g;
    dj_param_ref refs[MAX_TENSORS];
} model;

static void model_init(model *m, int count, const size_t *sizes, const int *decay, uint64_t seed) {
    memset(m, 0, sizeof *m);
    m->count = count;
    for (int i = 0; i < count; i++) {
        m->sizes[i] = sizes[i];
        m->decay[i] = decay[i];
        m->total += sizes[i];
    }
    m->w = dj_malloc(m->total * sizeof(float));
    m->g = dj_malloc(m->total * sizeof(float));
    fill(m->w, m->total, -1.0f, 1.0f, seed);
    memset(m->g, 0, m->total * sizeof(float));
    size_t off = 0;
    for (int i = 0; i < count; i++) {
        m->refs[i] = (dj_param_ref){m->w + off, m->g + off, sizes[i], decay[i]};
        off += sizes[i];
    }
}

static void model_free(model *m) {
    dj_free(m->w);
    dj_free(m->g);
}

/* Gradient of step t: fixed per (seed, t), magnitudes spread over decades so
 * both of Adam's regimes (|m| >> eps and ~ eps) occur. */
static void make_grad(float *g, size_t n, uint64_t seed, int t) {
    fill(g, n, -1.0f, 1.0f, seed * 1000 + (uint64_t)t);
    for (size_t i = 0; i < n; i++) g[i] *= (float)pow(10.0, -(double)(i % 5));
}

/* ---------------------------------------------------- reference optimisers */

/* Textbook formulas in double, one element at a time; state kept per element. */
typedef struct ref_state {
    double *w, *a, *b; /* a: momentum buffer or m, b: v */
} ref_state;

static void ref_step(const dj_optim_config *c, const model *m, ref_state *r, const float *g, double lr, int t) {
    size_t off = 0;
    for (int k = 0; k < m->count; k++) {
        int decay = m->decay[k] && c->weight_decay != 0;
        for (size_t j = 0; j < m->sizes[k]; j++) {
            size_t i = off + j;
            double w = r->w[i], gi = g[i];
            if (c->kind == DJ_OPTIM_SGD) {
                if (decay) gi += c->weight_decay * w;
                double u = gi;
                if (c->momentum != 0) {
                    r->a[i] = t == 1 ? gi : c->momentum * r->a[i] + (1 - c->dampening) * gi;
                    u = c->nesterov ? gi + c->momentum * r->a[i] : r->a[i];
                }
                r->w[i] = w - lr * u;
            } else {
                if (decay && c->kind == DJ_OPTIM_ADAM) gi += c->weight_decay * w;
                if (decay && c->kind == DJ_OPTIM_ADAMW) w *= 1 - lr * c->weight_decay;
                r->a[i] = c->beta1 * r->a[i] + (1 - c->beta1) * gi;
                r->b[i] = c->beta2 * r->b[i] + (1 - c->beta2) * gi * gi;
                double mhat = r->a[i] / (1 - pow(c->beta1, t));
                double vhat = r->b[i] / (1 - pow(c->beta2, t));
                r->w[i] = w - lr * mhat / (sqrt(vhat) + c->eps);
            }
        }
        off += m->sizes[k];
    }
}

/* Runs `steps` steps of cfg on a model of the given tensors, both with
 * dj_optim and with ref_step, and compares weights and state. */
static void compare_with_reference(const dj_optim_config *cfg, int count, const size_t *sizes, const int *decay,
                                   int steps, double rtol) {
    model m;
    model_init(&m, count, sizes, decay, 11);
    ref_state r;
    r.w = calloc(m.total, sizeof(double));
    r.a = calloc(m.total, sizeof(double));
    r.b = calloc(m.total, sizeof(double));
    for (size_t i = 0; i < m.total; i++) r.w[i] = m.w[i];

    dj_optim *o = NULL;
    CHECK_OK(dj_optim_create(&o, cfg, m.refs, (size_t)count));
    if (!o) goto out;
    for (int t = 1; t <= steps; t++) {
        float lr = (cfg->kind == DJ_OPTIM_SGD ? 0.05f : 0.01f) * (float)(1.0 + 0.5 * sin(t)); /* lr varies */
        make_grad(m.g, m.total, 5, t);
        CHECK_OK(dj_optim_step(o, lr));
        ref_step(cfg, &m, &r, m.g, lr, t);
    }
    CHECK(dj_optim_step_count(o) == steps);

    float *wr = malloc(m.total * sizeof(float));
    for (size_t i = 0; i < m.total; i++) wr[i] = (float)r.w[i];
    double e = check_max_err(m.w, wr, m.total, 1e-6, rtol);
    if (!(e <= 1))
        fprintf(stderr, "  %s mom=%g damp=%g nesterov=%d wd=%g: weights off by %.3g of tolerance\n",
                dj_optim_kind_name(cfg->kind), cfg->momentum, cfg->dampening, cfg->nesterov, cfg->weight_decay, e);
    CHECK(e <= 1);

    float *state;
    size_t n;
    dj_optim_state(o, &state, &n);
    int slots = dj_optim_state_slots(o);
    CHECK(n == (size_t)slots * m.total);
    for (int s = 0; s < slots; s++) {
        const double *src = s == 0 ? r.a : r.b;
        for (size_t i = 0; i < m.total; i++) wr[i] = (float)src[i];
        /* v can be ~1e-10 for tiny gradients: absolute floor scaled to it */
        double es = check_max_err(state + s * m.total, wr, m.total, s == 0 ? 1e-7 : 1e-12, rtol);
        if (!(es <= 1)) fprintf(stderr, "  state slot %d off by %.3g of tolerance\n", s, es);
        CHECK(es <= 1);
    }
    free(wr);
out:
    dj_optim_destroy(o);
    model_free(&m);
    free(r.w);
    free(r.a);
    free(r.b);
}

static const size_t small_sizes[3] = {5, 17, 100};
static const int small_decay[3] = {1, 0, 1};

static void test_sgd_vs_reference(void) {
    /* momentum, dampening, nesterov, weight decay */
    const double grid[][4] = {{0, 0, 0, 0},      {0, 0, 0, 1e-2},   {0.9, 0, 0, 0},   {0.9, 0, 0, 5e-4},
                              {0.9, 0.1, 0, 1e-2}, {0.9, 0, 1, 0},  {0.9, 0, 1, 1e-2}, {0.5, 0, 1, 1e-1}};
    for (size_t i = 0; i < sizeof grid / sizeof grid[0]; i++) {
        dj_optim_config c = dj_optim_defaults(DJ_OPTIM_SGD);
        c.momentum = grid[i][0];
        c.dampening = grid[i][1];
        c.nesterov = (int)grid[i][2];
        c.weight_decay = grid[i][3];
        compare_with_reference(&c, 3, small_sizes, small_decay, 7, 1e-5);
    }
}

static void test_adam_vs_reference(void) {
    for (int kind = DJ_OPTIM_ADAM; kind <= DJ_OPTIM_ADAMW; kind++) {
        const double wds[] = {0, 1e-3, 1e-1};
        for (int i = 0; i < 3; i++) {
            dj_optim_config c = dj_optim_defaults(kind);
            c.weight_decay = wds[i];
            compare_with_reference(&c, 3, small_sizes, small_decay, 7, 1e-5);
        }
        dj_optim_config c = dj_optim_defaults(kind);
        c.beta1 = 0.5;
        c.beta2 = 0.9;
        c.eps = 1e-3; /* eps comparable to sqrt(v) for the small gradients */
        c.weight_decay = 1e-2;
        compare_with_reference(&c, 3, small_sizes, small_decay, 7, 1e-5);
    }
}

/* ------------------------------------------------------------ PyTorch */

static void test_torch_parity(void) {
    float w[OPTX_N], g[OPTX_N];
    dj_param_ref refs[OPTX_TENSORS];
    size_t off = 0;
    for (int k = 0; k < OPTX_TENSORS; k++) {
        refs[k] = (dj_param_ref){w + off, g + off, optx_sizes[k], optx_decay[k]};
        off += optx_sizes[k];
    }
    CHECK(off == OPTX_N);
    for (int ci = 0; ci < OPTX_CASES; ci++) {
        const optx_case *x = &optx_cases[ci];
        dj_optim_config c = dj_optim_defaults(x->kind);
        c.weight_decay = x->weight_decay;
        c.momentum = x->momentum;
        c.dampening = x->dampening;
        c.nesterov = x->nesterov;
        if (x->kind != DJ_OPTIM_SGD) {
            c.beta1 = x->beta1;
            c.beta2 = x->beta2;
            c.eps = x->eps;
        }
        memcpy(w, optx_w0, sizeof w);
        dj_optim *o = NULL;
        CHECK_OK(dj_optim_create(&o, &c, refs, OPTX_TENSORS));
        if (!o) continue;
        for (int t = 0; t < OPTX_STEPS; t++) {
            memcpy(g, optx_grad[t], sizeof g);
            CHECK_OK(dj_optim_step(o, x->lr[t]));
        }
        /* 1e-6 relative: PyTorch's vectorised kernels use fused multiply-adds
         * where dmvjnd rounds twice, an ulp or two of difference. */
        double e = check_max_err(w, x->w, OPTX_N, 1e-30, 1e-6);
        float *state;
        size_t n;
        dj_optim_state(o, &state, &n);
        CHECK(dj_optim_state_slots(o) == x->slots);
        CHECK(n == (size_t)x->slots * OPTX_N);
        double es = n == (size_t)x->slots * OPTX_N ? check_max_err(state, x->state, n, 1e-30, 1e-6) : 1e9;
        if (!(e <= 1) || !(es <= 1))
            fprintf(stderr, "  torch case %s: weights %.3g, state %.3g of tolerance\n", x->name, e, es);
        CHECK(e <= 1);
        CHECK(es <= 1);
        dj_optim_destroy(o);
    }
}

/* ------------------------------------------------------ checkpointing */

/* 3 steps, save state + step count + weights, 2 more steps; then a fresh
 * optimiser restored from the save takes the same 2 steps: bit-identical. */
static void roundtrip(const dj_optim_config *c) {
    static const size_t sizes[3] = {33, 7, 40000}; /* one above the threads threshold */
    static const int decay[3] = {1, 0, 1};
    model m;
    model_init(&m, 3, sizes, decay, 3);
    dj_optim *o = NULL, *o2 = NULL;
    float *w_saved = malloc(m.total * sizeof(float)), *w_final = malloc(m.total * sizeof(float));
    float *st_saved = NULL;
    CHECK_OK(dj_optim_create(&o, c, m.refs, 3));
    if (!o) goto out;
    for (int t = 1; t <= 5; t++) {
        if (t == 4) {
            float *st;
            size_t n;
            dj_optim_state(o, &st, &n);
            st_saved = malloc(n * sizeof(float) + 1); /* n is 0 for plain SGD */
            if (n) memcpy(st_saved, st, n * sizeof(float));
            memcpy(w_saved, m.w, m.total * sizeof(float));
            CHECK(dj_optim_step_count(o) == 3);
        }
        make_grad(m.g, m.total, 9, t);
        CHECK_OK(dj_optim_step(o, 0.01f * (float)t));
    }
    memcpy(w_final, m.w, m.total * sizeof(float));

    /* "Load the checkpoint": weights, then the state into a new optimiser. */
    memcpy(m.w, w_saved, m.total * sizeof(float));
    CHECK_OK(dj_optim_create(&o2, c, m.refs, 3));
    if (!o2) goto out;
    float *st2;
    size_t n2;
    dj_optim_state(o2, &st2, &n2);
    CHECK(n2 == (size_t)dj_optim_state_slots(o2) * m.total);
    if (n2) memcpy(st2, st_saved, n2 * sizeof(float));
    CHECK_OK(dj_optim_set_step_count(o2, 3));
    for (int t = 4; t <= 5; t++) {
        make_grad(m.g, m.total, 9, t);
        CHECK_OK(dj_optim_step(o2, 0.01f * (float)t));
    }
    CHECK(memcmp(m.w, w_final, m.total * sizeof(float)) == 0);
    CHECK(dj_optim_step_count(o2) == 5);
out:
    dj_optim_destroy(o);
    dj_optim_destroy(o2);
    free(w_saved);
    free(w_final);
    free(st_saved);
    model_free(&m);
}

static void test_state_roundtrip(void) {
    dj_optim_config c = dj_optim_defaults(DJ_OPTIM_SGD);
    c.momentum = 0.9;
    c.nesterov = 1;
    c.weight_decay = 5e-4;
    roundtrip(&c);
    c.nesterov = 0;
    c.dampening = 0.2;
    roundtrip(&c);
    c = dj_optim_defaults(DJ_OPTIM_SGD); /* stateless: step count only */
    roundtrip(&c);
    c = dj_optim_defaults(DJ_OPTIM_ADAM);
    c.weight_decay = 1e-3;
    roundtrip(&c);
    c = dj_optim_defaults(DJ_OPTIM_ADAMW);
    roundtrip(&c);
}

/* Restoring a step count of 0 with zero state is a fresh optimiser (the SGD
 * momentum buffer is re-initialised from the gradient), as is reset. */
static void test_reset(void) {
    static const size_t sizes[2] = {10, 20};
    static const int decay[2] = {1, 0};
    dj_optim_config c = dj_optim_defaults(DJ_OPTIM_SGD);
    c.momentum = 0.9;
    c.weight_decay = 1e-2;
    for (int kind = 0; kind < 2; kind++) {
        if (kind == 1) c = dj_optim_defaults(DJ_OPTIM_ADAMW);
        model m;
        model_init(&m, 2, sizes, decay, 4);
        float w0[30], w1[30];
        memcpy(w0, m.w, sizeof w0);
        dj_optim *o = NULL;
        CHECK_OK(dj_optim_create(&o, &c, m.refs, 2));
        if (!o) continue;
        make_grad(m.g, m.total, 2, 1);
        CHECK_OK(dj_optim_step(o, 0.1f));
        memcpy(w1, m.w, sizeof w1);
        CHECK_OK(dj_optim_step(o, 0.1f));
        dj_optim_reset(o);
        CHECK(dj_optim_step_count(o) == 0);
        float *st;
        size_t n;
        dj_optim_state(o, &st, &n);
        int zero = 1;
        for (size_t i = 0; i < n; i++) zero &= st[i] == 0.0f;
        CHECK(zero);
        memcpy(m.w, w0, sizeof w0);
        CHECK_OK(dj_optim_step(o, 0.1f));
        CHECK(memcmp(m.w, w1, sizeof w1) == 0);
        dj_optim_destroy(o);
        model_free(&m);
    }
}

/* ------------------------------------------------------------ threads */

/* Large tensors go through the OpenMP path; every element is independent, so
 * 1 and 2 threads give identical bits, and both match the reference. */
static void test_threads(void) {
    static const size_t sizes[2] = {100003, 50};
    static const int decay[2] = {1, 0};
    int saved = dj_get_num_threads();
    for (int kind = 0; kind < 3; kind++) {
        dj_optim_config c = dj_optim_defaults(kind);
        c.weight_decay = 1e-2;
        if (kind == DJ_OPTIM_SGD) {
            c.momentum = 0.9;
            c.nesterov = 1;
        }
        float *result[2] = {NULL, NULL};
        for (int threads = 1; threads <= 2; threads++) {
            dj_set_num_threads(threads);
            model m;
            model_init(&m, 2, sizes, decay, 8);
            dj_optim *o = NULL;
            CHECK_OK(dj_optim_create(&o, &c, m.refs, 2));
            for (int t = 1; o && t <= 3; t++) {
                make_grad(m.g, m.total, 6, t);
                CHECK_OK(dj_optim_step(o, 0.01f));
            }
            result[threads - 1] = malloc(m.total * sizeof(float));
            memcpy(result[threads - 1], m.w, m.total * sizeof(float));
            dj_optim_destroy(o);
            model_free(&m);
        }
        CHECK(memcmp(result[0], result[1], (sizes[0] + sizes[1]) * sizeof(float)) == 0);
        free(result[0]);
        free(result[1]);
        compare_with_reference(&c, 2, sizes, decay, 3, 1e-5);
    }
    dj_set_num_threads(saved);
}

/* ---------------------------------------------------------- API details */

static void test_config_and_errors(void) {
    dj_optim_config c = dj_optim_defaults(DJ_OPTIM_ADAM);
    CHECK(c.beta1 == 0.9 && c.beta2 == 0.999 && c.eps == 1e-8 && c.weight_decay == 0);
    CHECK(dj_optim_defaults(DJ_OPTIM_ADAMW).weight_decay == 1e-2);
    c = dj_optim_defaults(DJ_OPTIM_SGD);
    CHECK(c.momentum == 0 && c.dampening == 0 && !c.nesterov && c.weight_decay == 0);

    int kind = -1;
    CHECK_OK(dj_optim_kind_from_name("adamw", &kind));
    CHECK(kind == DJ_OPTIM_ADAMW);
    CHECK_FAILS(dj_optim_kind_from_name("rmsprop", &kind), DJ_EINVAL, "rmsprop");
    CHECK(strcmp(dj_optim_kind_name(DJ_OPTIM_SGD), "sgd") == 0);

    float w[4] = {1, 2, 3, 4}, g[4] = {0};
    dj_param_ref ref = {w, g, 4, 1};
    dj_optim *o = NULL;

    c = dj_optim_defaults(DJ_OPTIM_SGD);
    c.nesterov = 1;
    CHECK_FAILS(dj_optim_create(&o, &c, &ref, 1), DJ_EINVAL, "nesterov");
    c.momentum = 0.9;
    c.dampening = 0.1;
    CHECK_FAILS(dj_optim_create(&o, &c, &ref, 1), DJ_EINVAL, "nesterov");
    c = dj_optim_defaults(DJ_OPTIM_SGD);
    c.momentum = -1;
    CHECK_FAILS(dj_optim_create(&o, &c, &ref, 1), DJ_EINVAL, "momentum");
    c = dj_optim_defaults(DJ_OPTIM_ADAM);
    c.beta2 = 1.0;
    CHECK_FAILS(dj_optim_create(&o, &c, &ref, 1), DJ_EINVAL, "beta2");
    c = dj_optim_defaults(DJ_OPTIM_ADAM);
    c.weight_decay = NAN;
    CHECK_FAILS(dj_optim_create(&o, &c, &ref, 1), DJ_EINVAL, "weight_decay");
    c = dj_optim_defaults(DJ_OPTIM_ADAM);
    c.eps = -1;
    CHECK_FAILS(dj_optim_create(&o, &c, &ref, 1), DJ_EINVAL, "eps");
    c.eps = 1e-8;
    c.kind = 7;
    CHECK_FAILS(dj_optim_create(&o, &c, &ref, 1), DJ_EINVAL, "kind");
    c.kind = DJ_OPTIM_ADAM;
    dj_param_ref bad_ref = {w, NULL, 4, 1};
    CHECK_FAILS(dj_optim_create(&o, &c, &bad_ref, 1), DJ_EINVAL, "param 0");
    bad_ref = (dj_param_ref){w, g, 0, 1};
    CHECK_FAILS(dj_optim_create(&o, &c, &bad_ref, 1), DJ_EINVAL, "n = 0");
    CHECK(o == NULL);

    /* Valid optimiser: lr checks, slot names, step count. */
    CHECK_OK(dj_optim_create(&o, &c, &ref, 1));
    if (o) {
        CHECK(dj_optim_numel(o) == 4);
        CHECK(dj_optim_state_slots(o) == 2);
        CHECK(strcmp(dj_optim_state_slot_name(o, 0), "exp_avg") == 0);
        CHECK(strcmp(dj_optim_state_slot_name(o, 1), "exp_avg_sq") == 0);
        CHECK(dj_optim_state_slot_name(o, 2) == NULL);
        CHECK(dj_optim_get_config(o)->kind == DJ_OPTIM_ADAM);
        CHECK_FAILS(dj_optim_step(o, -0.1f), DJ_EINVAL, "learning rate");
        CHECK_FAILS(dj_optim_step(o, NAN), DJ_EINVAL, "learning rate");
        CHECK(dj_optim_step_count(o) == 0 && w[0] == 1); /* failed steps change nothing */
        CHECK_FAILS(dj_optim_set_step_count(o, -1), DJ_EINVAL, "step");
        CHECK_OK(dj_optim_step(o, 0.1f)); /* zero gradient, no decay: w stays */
        CHECK(w[0] == 1 && w[3] == 4 && dj_optim_step_count(o) == 1);
        dj_optim_destroy(o);
        o = NULL;
    }

    /* Plain SGD has no state; SGD with momentum has one slot. */
    c = dj_optim_defaults(DJ_OPTIM_SGD);
    CHECK_OK(dj_optim_create(&o, &c, &ref, 1));
    if (o) {
        float *st = w;
        size_t n = 99;
        dj_optim_state(o, &st, &n);
        CHECK(st == NULL && n == 0 && dj_optim_state_slots(o) == 0);
        CHECK(dj_optim_state_slot_name(o, 0) == NULL);
        dj_optim_destroy(o);
        o = NULL;
    }
    c.momentum = 0.9;
    CHECK_OK(dj_optim_create(&o, &c, &ref, 1));
    if (o) {
        CHECK(dj_optim_state_slots(o) == 1 && strcmp(dj_optim_state_slot_name(o, 0), "momentum_buffer") == 0);
        dj_optim_destroy(o);
        o = NULL;
    }

    /* Nothing to train is allowed: step only counts. */
    CHECK_OK(dj_optim_create(&o, &c, NULL, 0));
    if (o) {
        CHECK_OK(dj_optim_step(o, 0.1f));
        CHECK(dj_optim_step_count(o) == 1 && dj_optim_numel(o) == 0);
        dj_optim_destroy(o);
    }
    dj_optim_destroy(NULL);
}

/* The caller's ref array may be freed after create. */
static void test_refs_copied(void) {
    float w[3] = {1, 1, 1}, g[3] = {1, 2, 3};
    dj_param_ref *refs = malloc(sizeof *refs);
    *refs = (dj_param_ref){w, g, 3, 0};
    dj_optim_config c = dj_optim_defaults(DJ_OPTIM_SGD);
    dj_optim *o = NULL;
    CHECK_OK(dj_optim_create(&o, &c, refs, 1));
    memset(refs, 0xff, sizeof *refs);
    free(refs);
    if (!o) return;
    CHECK_OK(dj_optim_step(o, 0.5f));
    CHECK(w[0] == 0.5f && w[1] == 0.0f && w[2] == -0.5f);
    dj_optim_destroy(o);
}

int main(void) {
    RUN(test_sgd_vs_reference);
    RUN(test_adam_vs_reference);
    RUN(test_torch_parity);
    RUN(test_state_roundtrip);
    RUN(test_reset);
    RUN(test_threads);
    RUN(test_config_and_errors);
    RUN(test_refs_copied);
    return check_report("test_optim");
}
