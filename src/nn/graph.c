/*
 * Graph of layers: building, parameter layout, the activation arena, the
 * forward and backward passes (freezing, BN folding + ReLU fusion, is in
 * graph_freeze.c; the types both share are in graph_impl.h).
 *
 * Nodes are stored in build order, which is a topological order, so forward
 * walks them front to back and backward back to front. Each node's output
 * and output-gradient are views into one arena allocation. A node folded
 * into its producer when frozen ("skip") shares the producer's buffers.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dmvjnd/core.h"
#include "dmvjnd/graph.h"
#include "nn/graph_impl.h"
#include "util/timer.h"

static const char *kind_names[] = {"input",   "conv", "batchnorm", "activation", "maxpool", "avgpool",
                                   "gap",     "linear", "dropout", "add",        "concat"};

/* ------------------------------------------------------------- building */

static int add_node(dj_graph *g, int kind, const int *ins, int nin) {
    if (g->finalized) return dj_error(DJ_EINVAL, "graph: cannot add a %s node after finalize", kind_names[kind]);
    for (int i = 0; i < nin; i++)
        if (ins[i] < 0 || ins[i] >= g->num_nodes)
            return dj_error(DJ_EINVAL, "graph: %s node input %d does not exist (graph has %d nodes)",
                            kind_names[kind], ins[i], g->num_nodes);
    if (g->num_nodes == g->cap_nodes) {
        int cap = g->cap_nodes ? 2 * g->cap_nodes : 32;
        node *nn = realloc(g->nodes, (size_t)cap * sizeof *nn);
        if (!nn) return dj_error(DJ_ENOMEM, "graph: out of memory adding a node");
        g->nodes = nn;
        g->cap_nodes = cap;
    }
    node *n = &g->nodes[g->num_nodes];
    memset(n, 0, sizeof *n);
    n->kind = kind;
    n->p_w = n->p_b = n->p_rm = n->p_rv = -1;
    if (nin) {
        n->in = malloc((size_t)nin * sizeof(int));
        if (!n->in) return dj_error(DJ_ENOMEM, "graph: out of memory adding a node");
        memcpy(n->in, ins, (size_t)nin * sizeof(int));
        for (int i = 0; i < nin; i++) g->nodes[ins[i]].consumers++;
    }
    n->nin = nin;
    return g->num_nodes++;
}

static int add_param(dj_graph *g, const char *prefix, const char *suffix, int ndim, const int64_t *shape,
                     int trainable, int decay) {
    if (g->num_params == g->cap_params) {
        int cap = g->cap_params ? 2 * g->cap_params : 64;
        param_spec *np = realloc(g->params, (size_t)cap * sizeof *np);
        if (!np) return dj_error(DJ_ENOMEM, "graph: out of memory adding a parameter");
        g->params = np;
        g->cap_params = cap;
    }
    size_t len = strlen(prefix) + strlen(suffix) + 2;
    char *name = malloc(len);
    if (!name) return dj_error(DJ_ENOMEM, "graph: out of memory adding a parameter");
    snprintf(name, len, "%s.%s", prefix, suffix);
    for (int i = 0; i < g->num_params; i++)
        if (!strcmp(g->params[i].p.name, name)) {
            int rc = dj_error(DJ_EINVAL, "graph: parameter name '%s' is used twice", name);
            free(name);
            return rc;
        }
    param_spec *ps = &g->params[g->num_params];
    memset(ps, 0, sizeof *ps);
    ps->p.name = name;
    ps->p.ndim = ndim;
    ps->p.count = 1;
    for (int i = 0; i < ndim; i++) {
        ps->p.shape[i] = shape[i];
        ps->p.count *= (size_t)shape[i];
    }
    ps->p.trainable = trainable;
    ps->p.decay = decay;
    return g->num_params++;
}

int dj_graph_create(dj_graph **out, int in_h, int in_w, int in_c) {
    *out = NULL;
    if (in_h <= 0 || in_w <= 0 || in_c <= 0)
        return dj_error(DJ_EINVAL, "graph: input shape %dx%dx%d has an empty dimension", in_h, in_w, in_c);
    dj_graph *g = calloc(1, sizeof *g);
    if (!g) return dj_error(DJ_ENOMEM, "graph: out of memory");
    int id = add_node(g, N_INPUT, NULL, 0);
    if (id < 0) {
        free(g);
        return id;
    }
    g->nodes[0].h = in_h;
    g->nodes[0].w = in_w;
    g->nodes[0].c = in_c;
    *out = g;
    return DJ_OK;
}

void dj_graph_destroy(dj_graph *g) {
    if (!g) return;
    for (int i = 0; i < g->num_nodes; i++) {
        free(g->nodes[i].in);
        dj_conv_destroy(g->nodes[i].conv);
        dj_free(g->nodes[i].fw);
        dj_free(g->nodes[i].fb);
    }
    for (int i = 0; i < g->num_params; i++) free((char *)g->params[i].p.name);
    free(g->nodes);
    free(g->params);
    dj_free(g->param_data);
    dj_free(g->grad_data);
    dj_free(g->arena);
    free(g->written);
    free(g);
}

/* On by default: about 2x oneDNN's direct kernel on AVX2 (docs/results.md).
 * Its extra rounding (~5e-6 relative per layer) is harmless for training, but
 * it moves the odd activation across a ReLU kink, so exact gradient parity
 * tests pin the direct kernel (tools/torch/check_jnd.py explains). */
static int default_winograd = 1;
void dj_graph_set_default_winograd(int on) { default_winograd = on != 0; }
int dj_graph_default_winograd(void) { return default_winograd; }

static int conv_like(dj_graph *g, int in, const char *name, int cout, int k, int stride, int pad, int out_pad,
                     int bias, int transposed) {
    if (in < 0 || in >= g->num_nodes) return dj_error(DJ_EINVAL, "graph: %s: input node %d does not exist", name, in);
    node src = g->nodes[in];
    dj_conv_desc d = {0};
    d.cin = src.c;
    d.cout = cout;
    d.k = k;
    d.stride = stride;
    d.pad = pad;
    d.bias = bias;
    d.transposed = transposed;
    d.out_pad = out_pad;
    d.winograd = default_winograd; /* conv.c takes it where the shape allows */
    int oh, ow;
    int rc = dj_conv_out_shape(&d, src.h, src.w, &oh, &ow);
    if (rc) return dj_error(rc, "graph: %s: %s", name, dj_last_error());
    dj_conv *conv;
    rc = dj_conv_create(&conv, &d);
    if (rc) return dj_error(rc, "graph: %s: %s", name, dj_last_error());
    int id = add_node(g, N_CONV, &in, 1);
    if (id < 0) {
        dj_conv_destroy(conv);
        return id;
    }
    node *n = &g->nodes[id];
    n->conv = conv;
    n->cd = d;
    n->h = oh;
    n->w = ow;
    n->c = cout;
    int64_t ws[4] = {transposed ? src.c : cout, transposed ? cout : src.c, k, k};
    if ((n->p_w = add_param(g, name, "weight", 4, ws, 1, 1)) < 0) return n->p_w;
    if (bias) {
        int64_t bs[1] = {cout};
        if ((g->nodes[id].p_b = add_param(g, name, "bias", 1, bs, 1, 1)) < 0) return g->nodes[id].p_b;
    }
    return id;
}

int dj_graph_conv(dj_graph *g, int in, const char *name, int cout, int k, int stride, int pad, int bias) {
    return conv_like(g, in, name, cout, k, stride, pad, 0, bias, 0);
}

int dj_graph_deconv(dj_graph *g, int in, const char *name, int cout, int k, int stride, int pad, int out_pad,
                    int bias) {
    return conv_like(g, in, name, cout, k, stride, pad, out_pad, bias, 1);
}

static int same_shape_node(dj_graph *g, int kind, int in) {
    int id = add_node(g, kind, &in, 1);
    if (id < 0) return id;
    node *n = &g->nodes[id];
    n->h = g->nodes[in].h;
    n->w = g->nodes[in].w;
    n->c = g->nodes[in].c;
    return id;
}

int dj_graph_bn(dj_graph *g, int in, const char *name, int relu) {
    int id = same_shape_node(g, N_BN, in);
    if (id < 0) return id;
    int64_t s[1] = {g->nodes[id].c};
    g->nodes[id].relu = relu;
    g->nodes[id].momentum = 0.1f;
    g->nodes[id].eps = 1e-5f;
    int p;
    if ((p = add_param(g, name, "weight", 1, s, 1, 1)) < 0) return p;
    g->nodes[id].p_w = p;
    if ((p = add_param(g, name, "bias", 1, s, 1, 1)) < 0) return p;
    g->nodes[id].p_b = p;
    if ((p = add_param(g, name, "running_mean", 1, s, 0, 0)) < 0) return p;
    g->nodes[id].p_rm = p;
    if ((p = add_param(g, name, "running_var", 1, s, 0, 0)) < 0) return p;
    g->nodes[id].p_rv = p;
    return id;
}

int dj_graph_act(dj_graph *g, int in, int kind, float slope) {
    if (kind != DJ_ACT_RELU && kind != DJ_ACT_LEAKY_RELU && kind != DJ_ACT_TANH)
        return dj_error(DJ_EINVAL, "graph: unknown activation kind %d", kind);
    if (kind == DJ_ACT_LEAKY_RELU && !(slope > 0))
        return dj_error(DJ_EINVAL, "graph: LeakyReLU slope must be > 0, got %g", slope);
    int id = same_shape_node(g, N_ACT, in);
    if (id < 0) return id;
    g->nodes[id].act_kind = kind;
    g->nodes[id].slope = slope;
    return id;
}

static int pool_node(dj_graph *g, int kind, int in, int k, int stride, int pad) {
    if (in < 0 || in >= g->num_nodes) return dj_error(DJ_EINVAL, "graph: pool input node %d does not exist", in);
    dj_pool_desc d = {k, stride, pad};
    int oh, ow;
    int rc = dj_pool_out_shape(&d, g->nodes[in].h, g->nodes[in].w, &oh, &ow);
    if (rc) return rc;
    int id = add_node(g, kind, &in, 1);
    if (id < 0) return id;
    node *n = &g->nodes[id];
    n->pd = d;
    n->h = oh;
    n->w = ow;
    n->c = g->nodes[in].c;
    return id;
}

int dj_graph_maxpool(dj_graph *g, int in, int k, int stride, int pad) {
    return pool_node(g, N_MAXPOOL, in, k, stride, pad);
}

int dj_graph_avgpool(dj_graph *g, int in, int k, int stride, int pad) {
    return pool_node(g, N_AVGPOOL, in, k, stride, pad);
}

int dj_graph_gap(dj_graph *g, int in) {
    int id = same_shape_node(g, N_GAP, in);
    if (id < 0) return id;
    g->nodes[id].h = g->nodes[id].w = 1;
    return id;
}

int dj_graph_linear(dj_graph *g, int in, const char *name, int out, int bias) {
    if (out <= 0) return dj_error(DJ_EINVAL, "graph: %s: linear layer with %d outputs", name, out);
    int id = same_shape_node(g, N_LINEAR, in);
    if (id < 0) return id;
    node *n = &g->nodes[id];
    n->in_features = n->h * n->w * n->c;
    n->h = n->w = 1;
    n->c = out;
    int64_t ws[2] = {out, n->in_features};
    int p;
    if ((p = add_param(g, name, "weight", 2, ws, 1, 1)) < 0) return p;
    g->nodes[id].p_w = p;
    if (bias) {
        int64_t bs[1] = {out};
        if ((p = add_param(g, name, "bias", 1, bs, 1, 1)) < 0) return p;
        g->nodes[id].p_b = p;
    }
    return id;
}

int dj_graph_dropout(dj_graph *g, int in, float p) {
    if (!(p >= 0 && p < 1)) return dj_error(DJ_EINVAL, "graph: dropout probability %g is not in [0, 1)", p);
    int id = same_shape_node(g, N_DROPOUT, in);
    if (id < 0) return id;
    g->nodes[id].drop_p = p;
    return id;
}

int dj_graph_add(dj_graph *g, int a, int b, int relu) {
    if (a < 0 || a >= g->num_nodes || b < 0 || b >= g->num_nodes)
        return dj_error(DJ_EINVAL, "graph: add: input node does not exist");
    node *na = &g->nodes[a], *nb = &g->nodes[b];
    if (na->h != nb->h || na->w != nb->w || na->c != nb->c)
        return dj_error(DJ_EINVAL, "graph: add: shapes %dx%dx%d and %dx%dx%d differ", na->h, na->w, na->c, nb->h,
                        nb->w, nb->c);
    int ins[2] = {a, b};
    int id = add_node(g, N_ADD, ins, 2);
    if (id < 0) return id;
    node *n = &g->nodes[id];
    n->h = g->nodes[a].h;
    n->w = g->nodes[a].w;
    n->c = g->nodes[a].c;
    n->relu = relu;
    return id;
}

int dj_graph_concat(dj_graph *g, const int *ins, int count) {
    if (count < 1) return dj_error(DJ_EINVAL, "graph: concat of %d inputs", count);
    int c = 0;
    for (int i = 0; i < count; i++) {
        if (ins[i] < 0 || ins[i] >= g->num_nodes)
            return dj_error(DJ_EINVAL, "graph: concat: input node %d does not exist", ins[i]);
        node *s = &g->nodes[ins[i]];
        if (s->h != g->nodes[ins[0]].h || s->w != g->nodes[ins[0]].w)
            return dj_error(DJ_EINVAL, "graph: concat: input %d is %dx%d, input 0 is %dx%d", i, s->h, s->w,
                            g->nodes[ins[0]].h, g->nodes[ins[0]].w);
        c += s->c;
    }
    int id = add_node(g, N_CONCAT, ins, count);
    if (id < 0) return id;
    node *n = &g->nodes[id];
    n->h = g->nodes[ins[0]].h;
    n->w = g->nodes[ins[0]].w;
    n->c = c;
    return id;
}

/* ------------------------------------------------------- initialisation */

/* fan_in as torch.nn.init computes it from the weight tensor's dims. */
static size_t fan_in_of(const dj_param *p) {
    size_t f = (size_t)p->shape[1];
    for (int i = 2; i < p->ndim; i++) f *= (size_t)p->shape[i];
    return f;
}

/* PyTorch's default for conv and linear layers: kaiming_uniform(a=sqrt(5))
 * on the weight, i.e. U(-1/sqrt(fan_in), 1/sqrt(fan_in)), same bound for the
 * bias. BN: gamma 1, beta 0, running mean 0, running var 1. */
static void init_default(dj_graph *g, dj_rng *rng) {
    for (int i = 0; i < g->num_nodes; i++) {
        node *n = &g->nodes[i];
        if (n->kind == N_CONV || n->kind == N_LINEAR) {
            dj_param *w = &g->params[n->p_w].p;
            float bound = 1.0f / sqrtf((float)fan_in_of(w));
            for (size_t j = 0; j < w->count; j++) w->data[j] = (2 * dj_rng_uniform(rng) - 1) * bound;
            if (n->p_b >= 0) {
                dj_param *b = &g->params[n->p_b].p;
                for (size_t j = 0; j < b->count; j++) b->data[j] = (2 * dj_rng_uniform(rng) - 1) * bound;
            }
        } else if (n->kind == N_BN) {
            for (int j = 0; j < n->c; j++) {
                g->params[n->p_w].p.data[j] = 1;
                g->params[n->p_b].p.data[j] = 0;
                g->params[n->p_rm].p.data[j] = 0;
                g->params[n->p_rv].p.data[j] = 1;
            }
        }
    }
}

void dj_graph_init_kaiming(dj_graph *g, dj_rng *rng) {
    for (int i = 0; i < g->num_nodes; i++) {
        node *n = &g->nodes[i];
        if (n->kind != N_CONV) continue;
        dj_param *w = &g->params[n->p_w].p;
        /* fan_out = dim0 * receptive field, torch's rule (for a transposed
         * conv weight IOHW, dim0 is the input channel count, as in torch). */
        float std = sqrtf(2.0f / (float)((size_t)w->shape[0] * (size_t)w->shape[2] * (size_t)w->shape[3]));
        for (size_t j = 0; j < w->count; j++) w->data[j] = std * dj_rng_normal(rng);
        if (n->p_b >= 0) memset(g->params[n->p_b].p.data, 0, g->params[n->p_b].p.count * sizeof(float));
    }
}

int dj_graph_finalize(dj_graph *g, dj_rng *rng) {
    if (g->finalized) return dj_error(DJ_EINVAL, "graph: finalize called twice");
    if (g->num_nodes < 2) return dj_error(DJ_EINVAL, "graph: no layers");
    size_t total = 0, trainable = 0;
    for (int i = 0; i < g->num_params; i++) {
        /* 16-float alignment keeps every tensor on its own cache lines. */
        total = (total + 15) & ~(size_t)15;
        g->params[i].offset = total;
        total += g->params[i].p.count;
        if (g->params[i].p.trainable) trainable += g->params[i].p.count;
    }
    g->param_data = dj_calloc((total ? total : 1) * sizeof(float));
    g->grad_data = dj_calloc((total ? total : 1) * sizeof(float));
    g->written = calloc((size_t)g->num_nodes, 1);
    if (!g->param_data || !g->grad_data || !g->written) return dj_error(DJ_ENOMEM, "graph: cannot allocate parameters");
    for (int i = 0; i < g->num_params; i++) {
        g->params[i].p.data = g->param_data + g->params[i].offset;
        g->params[i].p.grad = g->params[i].p.trainable ? g->grad_data + g->params[i].offset : NULL;
    }
    g->param_total = total;
    g->trainable_total = trainable;
    g->finalized = 1;
    dj_rng local;
    if (!rng) {
        dj_rng_seed(&local, 0);
        rng = &local;
    }
    init_default(g, rng);
    return DJ_OK;
}

/* ------------------------------------------------------------ accessors */

int dj_graph_num_params(const dj_graph *g) { return g->num_params; }
const dj_param *dj_graph_param(const dj_graph *g, int i) {
    return i >= 0 && i < g->num_params ? &g->params[i].p : NULL;
}
const dj_param *dj_graph_find_param(const dj_graph *g, const char *name) {
    for (int i = 0; i < g->num_params; i++)
        if (!strcmp(g->params[i].p.name, name)) return &g->params[i].p;
    return NULL;
}
size_t dj_graph_trainable_count(const dj_graph *g) { return g->trainable_total; }
void dj_graph_zero_grad(dj_graph *g) {
    if (g->grad_data) memset(g->grad_data, 0, g->param_total * sizeof(float));
}
int dj_graph_is_frozen(const dj_graph *g) { return g->frozen; }
int dj_graph_num_nodes(const dj_graph *g) { return g->num_nodes; }
int dj_graph_output_node(const dj_graph *g) { return g->num_nodes - 1; }
void dj_graph_node_shape(const dj_graph *g, int id, int *h, int *w, int *c) {
    const node *n = &g->nodes[id];
    if (h) *h = n->h;
    if (w) *w = n->w;
    if (c) *c = n->c;
}
const dj_tensor *dj_graph_node_output(const dj_graph *g, int id) {
    if (id < 0 || id >= g->num_nodes || !g->batch) return NULL;
    return &g->nodes[id].y;
}
int dj_graph_node_input(const dj_graph *g, int id) {
    if (id <= 0 || id >= g->num_nodes) return -1;
    return g->nodes[id].in[0];
}

double dj_graph_flops(const dj_graph *g) {
    double f = 0;
    for (int i = 0; i < g->num_nodes; i++) {
        const node *n = &g->nodes[i];
        if (n->kind == N_CONV) {
            const node *s = &g->nodes[n->in[0]];
            double spatial = n->cd.transposed ? (double)s->h * s->w : (double)n->h * n->w;
            f += 2.0 * n->cd.cin * n->cd.cout * n->cd.k * n->cd.k * spatial;
        } else if (n->kind == N_LINEAR) {
            f += 2.0 * n->in_features * n->c;
        }
    }
    return f;
}

/* ---------------------------------------------------------------- arena */

static size_t align16(size_t n) { return (n + 15) & ~(size_t)15; }

/* Lays out (or re-lays out) the views for batch n. The arena grows to the
 * largest batch seen and is never shrunk, so alternating batch sizes (a
 * smaller last batch of an epoch) allocate nothing. */
static int arena_layout(dj_graph *g, int batch) {
    int grow = batch > g->arena_n;
    size_t floats = 0;
    for (int pass = 0; pass < 2; pass++) {
        char *base = (char *)g->arena;
        size_t off = 0; /* in floats */
        int nb = grow ? batch : g->arena_n;
        for (int i = 0; i < g->num_nodes; i++) {
            node *n = &g->nodes[i];
            size_t per = (size_t)n->h * n->w * n->c;
            size_t cap = align16(per * (size_t)nb);
            if (n->skip) continue; /* aliased below */
            float *y = pass ? (float *)(base) + off : NULL;
            off += cap;
            float *dy = pass ? (float *)(base) + off : NULL;
            off += cap;
            if (pass) {
                n->y = dj_tensor_view(y, batch, n->h, n->w, n->c);
                n->dy = dj_tensor_view(dy, batch, n->h, n->w, n->c);
            }
            if (n->kind == N_BN) {
                if (pass) {
                    n->save_mean = (float *)base + off;
                    n->save_invstd = (float *)base + off + align16((size_t)n->c);
                }
                off += 2 * align16((size_t)n->c);
            } else if (n->kind == N_MAXPOOL) {
                if (pass) n->argmax = (int32_t *)((float *)base + off);
                off += cap; /* int32 = float size */
            } else if (n->kind == N_DROPOUT) {
                if (pass) n->mask = (uint8_t *)((float *)base + off);
                off += align16((per * (size_t)nb + 3) / 4);
            }
        }
        if (!pass) {
            floats = off;
            if (grow) {
                dj_free(g->arena);
                g->arena = dj_malloc(floats * sizeof(float));
                if (!g->arena) {
                    g->arena_n = 0;
                    return dj_error(DJ_ENOMEM, "graph: cannot allocate %.1f MB of activations for batch %d",
                                    floats * 4.0 / 1e6, batch);
                }
                g->arena_n = batch;
            }
        }
    }
    for (int i = 0; i < g->num_nodes; i++) {
        node *n = &g->nodes[i];
        if (!n->skip) continue;
        node *src = &g->nodes[n->in[0]];
        n->y = src->y;
        n->dy = src->dy;
    }
    g->batch = batch;
    return DJ_OK;
}

/* --------------------------------------------------------------- forward */

static float *pgrad(dj_graph *g, int idx) { return idx >= 0 ? g->params[idx].p.grad : NULL; }

static int forward_node(dj_graph *g, node *n, int train, dj_rng *rng) {
    const dj_tensor *x = n->nin ? &g->nodes[n->in[0]].y : NULL;
    switch (n->kind) {
    case N_CONV:
        if (g->frozen) return dj_conv_forward(n->conv, x, n->fw, n->fb, &n->y);
        return dj_conv_forward(n->conv, x, pdata(g, n->p_w), pdata(g, n->p_b), &n->y);
    case N_BN:
        if (train)
            return dj_bn_forward_train(x, pdata(g, n->p_w), pdata(g, n->p_b), pdata(g, n->p_rm), pdata(g, n->p_rv),
                                       n->momentum, n->eps, n->relu, &n->y, n->save_mean, n->save_invstd);
        return dj_bn_forward_infer(x, pdata(g, n->p_w), pdata(g, n->p_b), pdata(g, n->p_rm), pdata(g, n->p_rv),
                                   n->eps, n->relu, &n->y);
    case N_ACT: return dj_act_forward(n->act_kind, n->slope, x->data, n->y.data, dj_tensor_numel(x));
    case N_MAXPOOL: return dj_maxpool_forward(&n->pd, x, &n->y, n->argmax);
    case N_AVGPOOL: return dj_avgpool_forward(&n->pd, x, &n->y);
    case N_GAP: return dj_gap_forward(x, &n->y);
    case N_LINEAR: return dj_linear_forward(x, pdata(g, n->p_w), pdata(g, n->p_b), &n->y);
    case N_DROPOUT:
        if (train && n->drop_p > 0) {
            if (!rng) return dj_error(DJ_EINVAL, "graph: dropout in training needs a random generator");
            return dj_dropout_forward(n->drop_p, rng, x, &n->y, n->mask);
        }
        dj_accumulate(n->y.data, x->data, dj_tensor_numel(x), 0);
        return DJ_OK;
    case N_ADD: return dj_add_relu_forward(x, &g->nodes[n->in[1]].y, n->relu, &n->y);
    case N_CONCAT: {
        const dj_tensor *xs[64];
        if (n->nin > 64) return dj_error(DJ_EINVAL, "graph: concat of more than 64 inputs");
        for (int i = 0; i < n->nin; i++) xs[i] = &g->nodes[n->in[i]].y;
        return dj_concat_forward(xs, n->nin, &n->y);
    }
    default: return dj_error(DJ_EINTERNAL, "graph: unknown node kind %d", n->kind);
    }
}

int dj_graph_forward(dj_graph *g, const dj_tensor *x, int train, dj_rng *rng, const dj_tensor **out) {
    if (!g->finalized) return dj_error(DJ_EINVAL, "graph: forward before finalize");
    if (g->frozen && train) return dj_error(DJ_EINVAL, "graph: a frozen graph runs in inference mode only");
    node *in = &g->nodes[0];
    if (x->n <= 0 || x->h != in->h || x->w != in->w || x->c != in->c)
        return dj_error(DJ_EINVAL, "graph: input is %dx%dx%dx%d, the network takes Nx%dx%dx%d", x->n, x->h, x->w,
                        x->c, in->h, in->w, in->c);
    int rc = arena_layout(g, x->n);
    if (rc) return rc;
    memcpy(in->y.data, x->data, dj_tensor_numel(x) * sizeof(float));
    for (int i = 1; i < g->num_nodes; i++) {
        node *n = &g->nodes[i];
        if (n->skip) continue;
        double t0 = g->profiling ? dj_now() : 0;
        rc = forward_node(g, n, train, rng);
        if (g->profiling) g->prof[0][n->kind] += dj_now() - t0;
        if (rc) return dj_error(rc, "graph: node %d (%s): %s", i, kind_names[n->kind], dj_last_error());
    }
    g->last_train = train;
    g->prof_calls[0]++;
    if (out) *out = &g->nodes[g->num_nodes - 1].y;
    return DJ_OK;
}

/* -------------------------------------------------------------- backward */


/* dy = dy * (y > 0): the ReLU fused into a node's forward. */
static void relu_mask(dj_tensor *dy, const dj_tensor *y) {
    size_t n = dj_tensor_numel(dy);
    float *d = dy->data;
    const float *v = y->data;
#pragma omp parallel for schedule(static) if (n > 65536)
    for (size_t i = 0; i < n; i++) d[i] = v[i] > 0 ? d[i] : 0;
}

static int backward_node(dj_graph *g, int id, int want_dx) {
    node *n = &g->nodes[id];
    /* Where each input's gradient goes, and whether to add to it. */
    dj_tensor *dx[64];
    int acc[64];
    if (n->nin > 64) return dj_error(DJ_EINVAL, "graph: node with more than 64 inputs");
    int any = 0;
    for (int i = 0; i < n->nin; i++) {
        int src = owner(g, n->in[i]);
        int needed = src != 0 || want_dx;
        dx[i] = needed ? &g->nodes[n->in[i]].dy : NULL;
        acc[i] = needed ? g->written[src] : 0;
        if (needed) {
            g->written[src] = 1;
            any = 1;
        }
    }
    const dj_tensor *x = n->nin ? &g->nodes[n->in[0]].y : NULL;
    size_t numel = dj_tensor_numel(&n->y);
    switch (n->kind) {
    case N_CONV: {
        if (g->frozen) {
            if (n->cd.post_relu) relu_mask(&n->dy, &n->y);
        } else {
            int rc = dj_conv_backward_weights(n->conv, x, &n->dy, pgrad(g, n->p_w), pgrad(g, n->p_b));
            if (rc) return rc;
        }
        return dx[0] ? dj_conv_backward_data(n->conv, &n->dy, g->frozen ? n->fw : pdata(g, n->p_w), dx[0], acc[0])
                     : DJ_OK;
    }
    case N_BN:
        if (g->frozen)
            return dx[0] ? dj_bn_backward_infer(&n->y, &n->dy, pdata(g, n->p_w), pdata(g, n->p_rv), n->eps, n->relu,
                                                dx[0], acc[0])
                         : DJ_OK;
        return dj_bn_backward(x, &n->y, &n->dy, pdata(g, n->p_w), n->save_mean, n->save_invstd, n->relu, dx[0],
                              acc[0], pgrad(g, n->p_w), pgrad(g, n->p_b));
    case N_ACT:
        return dx[0] ? dj_act_backward(n->act_kind, n->slope, n->y.data, n->dy.data, dx[0]->data, numel, acc[0])
                     : DJ_OK;
    case N_MAXPOOL: return dx[0] ? dj_maxpool_backward(&n->pd, &n->dy, n->argmax, dx[0], acc[0]) : DJ_OK;
    case N_AVGPOOL: return dx[0] ? dj_avgpool_backward(&n->pd, &n->dy, dx[0], acc[0]) : DJ_OK;
    case N_GAP: return dx[0] ? dj_gap_backward(&n->dy, dx[0], acc[0]) : DJ_OK;
    case N_LINEAR:
        if (g->frozen) return dx[0] ? dj_linear_backward(x, pdata(g, n->p_w), &n->dy, dx[0], acc[0], NULL, NULL) : 0;
        return dj_linear_backward(x, pdata(g, n->p_w), &n->dy, dx[0], acc[0], pgrad(g, n->p_w), pgrad(g, n->p_b));
    case N_DROPOUT:
        if (!dx[0]) return DJ_OK;
        if (g->last_train && n->drop_p > 0) return dj_dropout_backward(n->drop_p, n->mask, &n->dy, dx[0], acc[0]);
        dj_accumulate(dx[0]->data, n->dy.data, numel, acc[0]);
        return DJ_OK;
    case N_ADD:
        if (dx[0] && dx[0] == dx[1]) { /* y = x + x */
            int rc = dj_add_relu_backward(&n->y, &n->dy, n->relu, dx[0], acc[0], NULL, 0);
            return rc ? rc : dj_add_relu_backward(&n->y, &n->dy, n->relu, dx[0], 1, NULL, 0);
        }
        return dj_add_relu_backward(&n->y, &n->dy, n->relu, dx[0], acc[0], dx[1], acc[1]);
    case N_CONCAT: {
        /* An input that needs no gradient still tells concat its width:
         * a view with data NULL (dj_concat_backward skips it). */
        dj_tensor skipped[64];
        for (int i = 0; i < n->nin; i++)
            if (!dx[i]) {
                skipped[i] = g->nodes[n->in[i]].y;
                skipped[i].data = NULL;
                dx[i] = &skipped[i];
            }
        return any ? dj_concat_backward(&n->dy, dx, n->nin, acc) : DJ_OK;
    }
    default: return dj_error(DJ_EINTERNAL, "graph: unknown node kind %d", n->kind);
    }
}

int dj_graph_backward(dj_graph *g, const dj_tensor *dout, dj_tensor *dx) {
    if (!g->batch) return dj_error(DJ_EINVAL, "graph: backward before forward");
    if (!g->frozen && !g->last_train)
        return dj_error(DJ_EINVAL, "graph: backward needs a training-mode forward (or a frozen graph)");
    node *out = &g->nodes[g->num_nodes - 1];
    if (dout->n != g->batch || dout->h != out->h || dout->w != out->w || dout->c != out->c)
        return dj_error(DJ_EINVAL, "graph: output gradient is %dx%dx%dx%d, output is %dx%dx%dx%d", dout->n, dout->h,
                        dout->w, dout->c, g->batch, out->h, out->w, out->c);
    if (dx && (dx->n != g->batch || dx->h != g->nodes[0].h || dx->w != g->nodes[0].w || dx->c != g->nodes[0].c))
        return dj_error(DJ_EINVAL, "graph: input gradient tensor is %dx%dx%dx%d, input is %dx%dx%dx%d", dx->n, dx->h,
                        dx->w, dx->c, g->batch, g->nodes[0].h, g->nodes[0].w, g->nodes[0].c);
    memset(g->written, 0, (size_t)g->num_nodes);
    int last = owner(g, g->num_nodes - 1);
    memcpy(g->nodes[last].dy.data, dout->data, dj_tensor_numel(dout) * sizeof(float));
    g->written[last] = 1;
    for (int i = g->num_nodes - 1; i >= 1; i--) {
        node *n = &g->nodes[i];
        if (n->skip || !g->written[owner(g, i)]) continue; /* no gradient reaches it */
        double t0 = g->profiling ? dj_now() : 0;
        int rc = backward_node(g, i, dx != NULL);
        if (g->profiling) g->prof[1][n->kind] += dj_now() - t0;
        if (rc) return dj_error(rc, "graph: backward of node %d (%s): %s", i, kind_names[n->kind], dj_last_error());
    }
    g->prof_calls[1]++;
    if (dx) {
        if (g->written[0])
            memcpy(dx->data, g->nodes[0].dy.data, dj_tensor_numel(dx) * sizeof(float));
        else
            memset(dx->data, 0, dj_tensor_numel(dx) * sizeof(float));
    }
    return DJ_OK;
}

/* -------------------------------------------------------------- profile */

void dj_graph_set_profiling(dj_graph *g, int on) {
    g->profiling = on;
    memset(g->prof, 0, sizeof g->prof);
    memset(g->prof_calls, 0, sizeof g->prof_calls);
}

int dj_graph_profile_report(const dj_graph *g, char *buf, size_t size) {
    size_t used = 0;
    double total = 0;
    for (int p = 0; p < 2; p++)
        for (int k = 0; k < 16; k++) total += g->prof[p][k];
    used += (size_t)snprintf(buf, size, "%-12s %12s %12s %7s\n", "layer kind", "forward ms", "backward ms", "share");
    for (int k = 0; k <= N_CONCAT && used < size; k++) {
        double f = g->prof[0][k], b = g->prof[1][k];
        if (f == 0 && b == 0) continue;
        double fc = g->prof_calls[0] ? 1e3 * f / g->prof_calls[0] : 0;
        double bc = g->prof_calls[1] ? 1e3 * b / g->prof_calls[1] : 0;
        used += (size_t)snprintf(buf + used, size - used, "%-12s %12.3f %12.3f %6.1f%%\n", kind_names[k], fc, bc,
                                 total > 0 ? 100 * (f + b) / total : 0);
    }
    return DJ_OK;
}

/* ------------------------------------------------ node kinds and params */

const char *dj_graph_node_kind(const dj_graph *g, int id) {
    if (!g || id < 0 || id >= g->num_nodes) return NULL;
    return kind_names[g->nodes[id].kind];
}

const dj_param *dj_graph_node_param(const dj_graph *g, int id, int which) {
    if (!g || id < 0 || id >= g->num_nodes || (which != 0 && which != 1)) return NULL;
    int p = which ? g->nodes[id].p_b : g->nodes[id].p_w;
    return p >= 0 ? &g->params[p].p : NULL;
}
