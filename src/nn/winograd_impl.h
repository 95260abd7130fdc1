/* Winograd convolution: what winograd.c (plan, workspace, dispatch) shares
 * with the SIMD kernel files winograd_avx2.c and winograd_avx512.c (internal).
 *
 * The kernels exist once, as the templates winograd_simd.h (transforms,
 * GEMM, forward / backward-data thread) and winograd_simd_bwdw.h
 * (backward-weights thread), compiled twice: for 8-lane AVX2 and for 16-lane
 * AVX-512. Each compilation exports one dj_wino_kernels table; winograd.c
 * picks a table at run time from the CPU (nn/conv_path.h), so a binary built
 * without AVX-512 flags still carries the AVX-512 path and never runs it on a
 * CPU without it. */
#ifndef DMVJND_NN_WINOGRAD_IMPL_H
#define DMVJND_NN_WINOGRAD_IMPL_H

#include <stddef.h>

#include "nn/winograd.h"

#define DJ_WINO_MAXP 36 /* positions of F(4x4): 6x6 */

typedef struct dj_wino_job dj_wino_job;
typedef struct dj_wino_wjob dj_wino_wjob;

/* One thread's share of a pass: thread tid of nth, blocks of tb tiles. */
typedef void (*dj_wino_thread_fn)(const dj_wino *o, const dj_wino_job *jb, int tb, int tid, int nth);
typedef void (*dj_wino_wthread_fn)(const dj_wino *o, const dj_wino_wjob *jb, int tb, int tid, int nth);

typedef struct dj_wino_kernels {
    const char *isa; /* "avx2", "avx512" (implementation names) */
    int lanes;       /* SIMD lanes: channel counts are padded to a multiple */
    int rows;        /* micro-kernel rows: tile blocks are multiples of it */
    /* Index 0: F(2x2, 3x3), 1: F(4x4, 3x3). */
    dj_wino_thread_fn run[2];
    dj_wino_wthread_fn run_w[2];
} dj_wino_kernels;

extern const dj_wino_kernels dj_wino_avx2_kernels;
extern const dj_wino_kernels dj_wino_avx512_kernels;

struct dj_wino {
    const dj_wino_kernels *k;
    int cin, cout, pad, frozen;
    int m;      /* output tile: 2 or 4 */
    int tb_req; /* tiles per block asked by dj_wino_tune (0: automatic) */
    int cinp, coutp; /* channel counts rounded up to k->lanes */
    /* Transformed filters, [P][Cinp][Coutp] forward and [P][Coutp][Cinp]
     * backward-data, allocated for DJ_WINO_MAXP positions on first use. *_m
     * is the tile size they hold (0: nothing valid), *_src the weights they
     * came from (frozen caching). */
    float *uf, *ub;
    int uf_m, ub_m;
    const float *uf_src, *ub_src;
    /* Per-thread workspace: V, M and the filter-transform scratch. */
    float *ws;
    size_t ws_thread; /* floats per thread */
    int ws_threads;
    /* Backward-weights: its own tile size (mw) and per-thread workspace
     * (V and dY blocks and the thread's [P][Coutp][Cinp] sums). */
    int mw;
    float *wsw;
    size_t wsw_thread;
    int wsw_threads;
    char name[48];
};

/* Forward / backward-data: the convolution of x with the filter whose
 * transform is u (computed first when `transform`). */
struct dj_wino_job {
    const float *x; /* kernel input, n x h x w x ci */
    int n, h, w, ci;
    float *y; /* kernel output, n x oh x ow x co */
    int oh, ow, co;
    const float *bias;
    int pad, acc, relu;
    /* Filter: transform wt into u unless u is already valid. */
    const float *wt;
    int backward, transform;
    float *u;
};

struct dj_wino_wjob {
    const float *x, *dy;
    int n, h, w, oh, ow;
    float *dw, *db;
};

static inline size_t dj_wino_round16(size_t n) { return (n + 15) & ~(size_t)15; }

#endif
