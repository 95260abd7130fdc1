/*
 * Freezing a graph for inference: every batch norm that follows a conv is
 * folded into the conv's weights and bias, ReLUs are fused into the conv that
 * feeds them, and the conv primitives are recreated as frozen (no backward
 * data kept). Folded nodes are marked "skip" and share their producer's
 * buffers, so the arena is laid out again on the next forward.
 */
#include <math.h>
#include <string.h>

#include "dmvjnd/core.h"
#include "dmvjnd/graph.h"
#include "nn/graph_impl.h"

/* Recreate a conv node's primitive as frozen with folded bias and optional
 * fused ReLU. */
static int refreeze_conv(node *n, int relu) {
    dj_conv_desc d = n->cd;
    d.bias = 1;
    d.frozen = 1;
    d.post_relu = relu;
    dj_conv *c;
    int rc = dj_conv_create(&c, &d);
    if (rc) return rc;
    dj_conv_destroy(n->conv);
    n->conv = c;
    n->cd = d;
    return DJ_OK;
}

int dj_graph_freeze(dj_graph *g) {
    if (!g->finalized) return dj_error(DJ_EINVAL, "graph: freeze before finalize");
    if (g->frozen) return DJ_OK;
    /* Folded copies of every conv's weights (BN folded where one follows). */
    for (int i = 1; i < g->num_nodes; i++) {
        node *n = &g->nodes[i];
        if (n->kind != N_CONV) continue;
        const dj_param *w = &g->params[n->p_w].p;
        n->fw = dj_malloc(w->count * sizeof(float));
        n->fb = dj_calloc((size_t)n->c * sizeof(float));
        if (!n->fw || !n->fb) return dj_error(DJ_ENOMEM, "graph: out of memory freezing");
        memcpy(n->fw, w->data, w->count * sizeof(float));
        if (n->p_b >= 0) memcpy(n->fb, pdata(g, n->p_b), (size_t)n->c * sizeof(float));
    }
    for (int i = 1; i < g->num_nodes; i++) {
        node *n = &g->nodes[i];
        int src = n->nin ? n->in[0] : -1;
        if (n->kind == N_BN && g->nodes[src].kind == N_CONV && g->nodes[src].consumers == 1 &&
            !g->nodes[src].skip) {
            node *c = &g->nodes[src];
            const float *gamma = pdata(g, n->p_w), *beta = pdata(g, n->p_b);
            const float *rm = pdata(g, n->p_rm), *rv = pdata(g, n->p_rv);
            int cout = c->cd.cout, cin = c->cd.cin, kk = c->cd.k * c->cd.k;
            for (int o = 0; o < cout; o++) {
                float s = gamma[o] / sqrtf(rv[o] + n->eps);
                c->fb[o] = beta[o] + (c->fb[o] - rm[o]) * s;
                for (int ci = 0; ci < cin; ci++) {
                    /* OIHW for conv, IOHW for transposed conv. */
                    float *wp = c->cd.transposed ? c->fw + ((size_t)ci * cout + o) * kk
                                                 : c->fw + ((size_t)o * cin + ci) * kk;
                    for (int j = 0; j < kk; j++) wp[j] *= s;
                }
            }
            c->relu = n->relu;
            n->skip = 1;
        } else if (n->kind == N_ACT && n->act_kind == DJ_ACT_RELU) {
            /* Fuse into a conv (possibly through a folded BN) whose output
             * only this node reads. */
            int o = owner(g, src);
            node *c = &g->nodes[o];
            int single = g->nodes[src].consumers == 1 && (src == o || c->consumers == 1);
            if (c->kind == N_CONV && single && !c->relu) {
                c->relu = 1;
                n->skip = 1;
            }
        }
    }
    for (int i = 1; i < g->num_nodes; i++) {
        node *n = &g->nodes[i];
        if (n->kind != N_CONV) continue;
        int rc = refreeze_conv(n, n->relu);
        if (rc) return dj_error(rc, "graph: freezing node %d: %s", i, dj_last_error());
    }
    g->frozen = 1;
    g->arena_n = 0; /* aliases changed: lay the arena out again */
    dj_free(g->arena);
    g->arena = NULL;
    g->batch = 0;
    return DJ_OK;
}
