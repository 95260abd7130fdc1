/* The graph's internal types (src/nn/graph.c and graph_freeze.c share them;
 * nothing outside src/nn/ includes this). */
#ifndef DMVJND_NN_GRAPH_IMPL_H
#define DMVJND_NN_GRAPH_IMPL_H

#include <stddef.h>
#include <stdint.h>

#include "dmvjnd/graph.h"

enum node_kind { N_INPUT, N_CONV, N_BN, N_ACT, N_MAXPOOL, N_AVGPOOL, N_GAP, N_LINEAR, N_DROPOUT, N_ADD, N_CONCAT };


typedef struct node {
    int kind;
    int *in;
    int nin;
    int h, w, c;       /* output shape of one image */
    int consumers;     /* how many nodes read this output */
    int p_w, p_b;      /* parameter indices (weight/gamma, bias/beta), -1 if none */
    int p_rm, p_rv;    /* BN running statistics */
    dj_conv *conv;
    dj_conv_desc cd;
    dj_pool_desc pd;
    int relu;          /* BN / add: fused ReLU */
    int act_kind;
    float slope, drop_p, momentum, eps;
    int in_features;   /* linear */
    /* frozen */
    int skip;          /* folded into its input node; shares its buffers */
    float *fw, *fb;    /* folded conv weights and bias */
    /* arena views for the current batch */
    dj_tensor y, dy;
    float *save_mean, *save_invstd;
    int32_t *argmax;
    uint8_t *mask;
} node;

typedef struct param_spec {
    dj_param p;
    size_t offset;
} param_spec;

struct dj_graph {
    node *nodes;
    int num_nodes, cap_nodes;
    param_spec *params;
    int num_params, cap_params;
    float *param_data, *grad_data;
    size_t param_total, trainable_total;
    int finalized, frozen;
    /* arena */
    void *arena;
    int arena_n;        /* batch capacity of the arena */
    int batch;          /* batch of the last forward */
    int last_train;     /* mode of the last forward */
    unsigned char *written; /* per node: gradient buffer holds a value */
    int profiling;
    double prof[2][16]; /* seconds per node kind: [0] forward, [1] backward */
    long prof_calls[2];
};

/* A parameter's values (NULL for index -1: the node has no such parameter). */
static inline float *pdata(dj_graph *g, int idx) { return idx >= 0 ? g->params[idx].p.data : NULL; }

/* The node whose buffers a (possibly folded) node uses. */
static inline int owner(const dj_graph *g, int id) {
    while (g->nodes[id].skip) id = g->nodes[id].in[0];
    return id;
}

#endif
