/* Winograd convolution F(m x m, 3x3), m = 4 or 2, stride 1: see winograd.h.
 *
 * This file is the plan and the dispatch: the object and its tuning, the
 * workspaces, the shape checks, the filter cache of frozen layers, and the
 * OpenMP region that runs one SIMD kernel table (winograd_impl.h) per call.
 * The kernels themselves are in winograd_simd.h / winograd_simd_bwdw.h,
 * compiled for AVX2 (winograd_avx2.c) and AVX-512 (winograd_avx512.c); the
 * table is picked at creation from the process-wide path (nn/conv_path.c),
 * or forced per object by dj_wino_set_isa (tests, benchmarks). */
#include "nn/winograd.h"

#include <omp.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "dmvjnd/core.h"
#include "nn/conv_path.h"
#include "nn/winograd_impl.h"

/* ------------------------------------------------------------ the object */

static int round_up(int c, int to) { return (c + to - 1) / to * to; }

/* Tiles per block: V and M of one block (P * T * 2 * max(Cinp, Coutp)
 * floats) take ~112 KiB, a fifth of a Zen 3 core's 512 KiB L2 (measured
 * best on ResNet-20's layers: 24 tiles at 16 channels), in multiples of the
 * micro-kernel's rows, at least two row blocks so each U[p] is reused from L1. */
static int auto_tiles(const dj_wino *o) {
    int P = (o->m + 2) * (o->m + 2), rows = o->k->rows;
    int cp = o->cinp > o->coutp ? o->cinp : o->coutp;
    size_t per_tile = (size_t)P * 2 * (size_t)cp * sizeof(float);
    size_t t = (size_t)(112 * 1024) / per_tile;
    t -= t % (size_t)rows;
    if (t < (size_t)(2 * rows)) t = (size_t)(2 * rows);
    if (t > 96) t = 96;
    return (int)t;
}

static int tiles_per_block(const dj_wino *o) { return o->tb_req > 0 ? o->tb_req : auto_tiles(o); }

static void set_name(dj_wino *o) {
    snprintf(o->name, sizeof o->name, "dmvjnd:winograd_f%dx3_%s", o->m, o->k->isa);
}

static const dj_wino_kernels *kernels_of(dj_conv_path_id id) {
    return id == DJ_CONV_PATH_WINOGRAD_AVX512 ? &dj_wino_avx512_kernels : &dj_wino_avx2_kernels;
}

/* Frees what depends on the kernel table (padded channel counts). */
static void drop_buffers(dj_wino *o) {
    dj_free(o->uf);
    dj_free(o->ub);
    dj_free(o->ws);
    dj_free(o->wsw);
    o->uf = o->ub = o->ws = o->wsw = NULL;
    o->ws_thread = o->wsw_thread = 0;
    o->ws_threads = o->wsw_threads = 0;
    o->uf_m = o->ub_m = 0;
    o->uf_src = o->ub_src = NULL;
}

static void use_kernels(dj_wino *o, const dj_wino_kernels *k) {
    drop_buffers(o);
    o->k = k;
    o->cinp = round_up(o->cin, k->lanes);
    o->coutp = round_up(o->cout, k->lanes);
    set_name(o);
}

int dj_wino_create(dj_wino **out, int cin, int cout, int pad, int frozen) {
    if (!out) return dj_error(DJ_EINVAL, "dj_wino_create: out is NULL");
    *out = NULL;
    if (cin < 1 || cout < 1 || cin > (1 << 20) || cout > (1 << 20))
        return dj_error(DJ_EINVAL, "winograd conv: cin = %d, cout = %d, must be in [1, 2^20]", cin, cout);
    if (pad < 0 || pad > 2) return dj_error(DJ_EINVAL, "winograd conv: pad = %d, must be 0, 1 or 2", pad);
    dj_conv_path_id id;
    int rc = dj_conv_path_get(&id);
    if (rc != DJ_OK) return rc;
    /* "direct" concerns dj_conv's choice; an explicit Winograd object runs
     * the best SIMD path this CPU has. */
    if (id == DJ_CONV_PATH_DIRECT)
        id = dj_conv_path_cpu_has(DJ_CONV_PATH_WINOGRAD_AVX512) ? DJ_CONV_PATH_WINOGRAD_AVX512
                                                                 : DJ_CONV_PATH_WINOGRAD_AVX2;
    rc = dj_conv_path_require(id, "winograd conv");
    if (rc != DJ_OK) return rc;
    dj_wino *o = dj_calloc(sizeof *o);
    if (!o) return dj_error(DJ_ENOMEM, "cannot allocate a winograd convolution");
    o->cin = cin;
    o->cout = cout;
    o->pad = pad;
    o->frozen = frozen ? 1 : 0;
    o->m = 4;
    o->mw = 4;
    use_kernels(o, kernels_of(id));
    *out = o;
    return DJ_OK;
}

int dj_wino_set_isa(dj_wino *o, int avx512) {
    if (!o) return dj_error(DJ_EINVAL, "dj_wino_set_isa: object is NULL");
    dj_conv_path_id id = avx512 ? DJ_CONV_PATH_WINOGRAD_AVX512 : DJ_CONV_PATH_WINOGRAD_AVX2;
    int rc = dj_conv_path_require(id, "dj_wino_set_isa");
    if (rc != DJ_OK) return rc;
    use_kernels(o, kernels_of(id));
    return DJ_OK;
}

void dj_wino_destroy(dj_wino *o) {
    if (!o) return;
    drop_buffers(o);
    dj_free(o);
}

int dj_wino_tune(dj_wino *o, int m, int tiles_per_block_) {
    if (!o) return dj_error(DJ_EINVAL, "dj_wino_tune: object is NULL");
    if (m != 0 && m != 2 && m != 4) return dj_error(DJ_EINVAL, "dj_wino_tune: m = %d, must be 2 or 4", m);
    if (tiles_per_block_ < 0 || tiles_per_block_ > 4096)
        return dj_error(DJ_EINVAL, "dj_wino_tune: tiles_per_block = %d, must be in [0, 4096]", tiles_per_block_);
    if (m) o->m = m;
    o->tb_req = tiles_per_block_;
    set_name(o);
    return DJ_OK;
}

int dj_wino_tile_size(const dj_wino *o) { return o ? o->m : 0; }

void dj_wino_weights_changed(dj_wino *o) {
    if (!o) return;
    o->uf_m = o->ub_m = 0;
    o->uf_src = o->ub_src = NULL;
}

const char *dj_wino_impl_name(const dj_wino *o) { return o ? o->name : ""; }

/* A per-thread workspace (*buf: *have_threads slices of *have_per floats)
 * with room for `threads` slices of `per` floats; grows only. */
static int grow_ws(float **buf, size_t *have_per, int *have_threads, size_t per, int threads) {
    if (*buf && threads <= *have_threads && per <= *have_per) return DJ_OK;
    if (per < *have_per) per = *have_per;
    if (threads < *have_threads) threads = *have_threads;
    dj_free(*buf);
    *buf = dj_malloc(per * (size_t)threads * sizeof(float));
    if (!*buf) {
        *have_per = 0;
        *have_threads = 0;
        return dj_error(DJ_ENOMEM, "cannot allocate %zu bytes of winograd workspace",
                        per * (size_t)threads * sizeof(float));
    }
    *have_per = per;
    *have_threads = threads;
    return DJ_OK;
}

/* Forward / backward-data workspace for the current thread count, tile
 * size and block: V, M and the filter-transform scratch. */
static int ws_reserve(dj_wino *o, int threads, int tb) {
    int P = (o->m + 2) * (o->m + 2);
    size_t cp = (size_t)(o->cinp > o->coutp ? o->cinp : o->coutp);
    size_t per = dj_wino_round16((size_t)P * (size_t)tb * cp) * 2 + dj_wino_round16(9 * cp);
    return grow_ws(&o->ws, &o->ws_thread, &o->ws_threads, per, threads);
}


/* ---------------------------------------------------------------- driver */

static int run(dj_wino *o, dj_wino_job *jb) {
    int tb = tiles_per_block(o);
    int threads = omp_get_max_threads();
    if (threads < 1) threads = 1;
    int rc = ws_reserve(o, threads, tb);
    if (rc != DJ_OK) return rc;
    dj_wino_thread_fn fn = o->k->run[o->m == 4];
#pragma omp parallel num_threads(threads)
    fn(o, jb, tb, omp_get_thread_num(), omp_get_num_threads());
    return DJ_OK;
}

/* Makes *u hold room for the transformed filter and says whether it must be
 * recomputed: always, unless the object is frozen and *u holds these
 * weights' transform for the current tile size. */
static int prepare_filter(dj_wino *o, float **u, int u_m, const float *u_src, const float *w, int *transform) {
    if (!*u) {
        *u = dj_malloc((size_t)DJ_WINO_MAXP * o->cinp * o->coutp * sizeof(float));
        if (!*u)
            return dj_error(DJ_ENOMEM, "cannot allocate %zu bytes for winograd filters",
                            (size_t)DJ_WINO_MAXP * o->cinp * o->coutp * sizeof(float));
    }
    *transform = !(o->frozen && u_m == o->m && u_src == w);
    return DJ_OK;
}

static int check_pair(const dj_wino *o, const char *fn, const dj_tensor *in, int cin, const char *in_name,
                      const dj_tensor *out, int cout, const char *out_name) {
    if (!in || !out || !in->data || !out->data) return dj_error(DJ_EINVAL, "%s: a tensor is NULL or empty", fn);
    if (in->n < 1 || in->h < 1 || in->w < 1 || in->c != cin)
        return dj_error(DJ_EINVAL, "%s: %s is %dx%dx%dx%d, needs %d channels", fn, in_name, in->n, in->h, in->w, in->c,
                        cin);
    int oh = in->h + 2 * o->pad - 2, ow = in->w + 2 * o->pad - 2;
    if (oh < 1 || ow < 1)
        return dj_error(DJ_EINVAL, "%s: %s %dx%d gives an empty output with pad %d", fn, in_name, in->h, in->w,
                        o->pad);
    if (out->n != in->n || out->h != oh || out->w != ow || out->c != cout)
        return dj_error(DJ_EINVAL, "%s: %s is %dx%dx%dx%d, needs %dx%dx%dx%d", fn, out_name, out->n, out->h, out->w,
                        out->c, in->n, oh, ow, cout);
    uintptr_t a = (uintptr_t)in->data, b = (uintptr_t)out->data;
    if (a < b + dj_tensor_numel(out) * sizeof(float) && b < a + dj_tensor_numel(in) * sizeof(float))
        return dj_error(DJ_EINVAL, "%s: %s and %s overlap in memory", fn, in_name, out_name);
    return DJ_OK;
}

int dj_wino_forward(dj_wino *o, const dj_tensor *x, const float *w, const float *b, dj_tensor *y, int accumulate,
                    int relu) {
    static const char fn[] = "dj_wino_forward";
    if (!o || !w) return dj_error(DJ_EINVAL, "%s: object or weights NULL", fn);
    int rc = check_pair(o, fn, x, o->cin, "x", y, o->cout, "y");
    if (rc != DJ_OK) return rc;
    dj_wino_job jb = {.x = x->data, .n = x->n, .h = x->h, .w = x->w, .ci = o->cin, .y = y->data, .oh = y->h, .ow = y->w,
              .co = o->cout, .bias = b, .pad = o->pad, .acc = accumulate ? 1 : 0, .relu = relu ? 1 : 0, .wt = w,
              .backward = 0};
    rc = prepare_filter(o, &o->uf, o->uf_m, o->uf_src, w, &jb.transform);
    if (rc != DJ_OK) return rc;
    jb.u = o->uf;
    rc = run(o, &jb);
    o->uf_m = rc == DJ_OK ? o->m : 0;
    o->uf_src = w;
    return rc;
}

int dj_wino_backward_data(dj_wino *o, const dj_tensor *dy, const float *w, dj_tensor *dx, int accumulate) {
    static const char fn[] = "dj_wino_backward_data";
    if (!o || !w) return dj_error(DJ_EINVAL, "%s: object or weights NULL", fn);
    int rc = check_pair(o, fn, dx, o->cin, "dx", dy, o->cout, "dy");
    if (rc != DJ_OK) return rc;
    /* dx = conv(dy, w rotated and transposed) with padding 2 - pad. */
    dj_wino_job jb = {.x = dy->data, .n = dy->n, .h = dy->h, .w = dy->w, .ci = o->cout, .y = dx->data, .oh = dx->h,
              .ow = dx->w, .co = o->cin, .bias = NULL, .pad = 2 - o->pad, .acc = accumulate ? 1 : 0, .relu = 0,
              .wt = w, .backward = 1};
    rc = prepare_filter(o, &o->ub, o->ub_m, o->ub_src, w, &jb.transform);
    if (rc != DJ_OK) return rc;
    jb.u = o->ub;
    rc = run(o, &jb);
    o->ub_m = rc == DJ_OK ? o->m : 0;
    o->ub_src = w;
    return rc;
}


/* ------------------------------------------------------ backward-weights */

/* Tiles per block of backward-weights: V and Z of a block take ~192 KiB
 * (they are read back once per position while hot), at least 16 tiles so
 * that each pass over the sums S[p] does some work, at most 96. Every block
 * reads and writes all of the thread's sums S (P x Coutp x Cinp floats: 9.4
 * MB at 256 x 256 channels, far beyond L2), so wide layers take blocks of
 * one tile per 64 KiB of S, up to 128 (measured on VGG-11-BN's 4x4 256 ->
 * 256 layer, one thread, batch 128: 14.8 ms at 24 tiles, 11.4 at 96, 10.0
 * at 128, 10.3 at 256). */
static int tiles_w(const dj_wino *o, int A) {
    size_t per_tile = (size_t)A * A * (size_t)(o->cinp + o->coutp) * sizeof(float);
    size_t t = (size_t)(192 * 1024) / per_tile;
    if (t < 16) t = 16;
    if (t > 96) t = 96;
    size_t s_bytes = (size_t)A * A * (size_t)o->cinp * (size_t)o->coutp * sizeof(float);
    size_t for_s = s_bytes / (64 * 1024);
    if (for_s > 128) for_s = 128;
    if (t < for_s) t = for_s;
    return (int)t;
}

static size_t wsw_floats(const dj_wino *o, int A, int tb) {
    size_t P = (size_t)A * A;
    return dj_wino_round16(P * (size_t)tb * (size_t)o->cinp) + dj_wino_round16(P * (size_t)tb * (size_t)o->coutp) +
           dj_wino_round16(P * (size_t)o->coutp * (size_t)o->cinp) + dj_wino_round16((size_t)o->coutp);
}


int dj_wino_backward_weights(dj_wino *o, const dj_tensor *x, const dj_tensor *dy, float *dw, float *db) {
    static const char fn[] = "dj_wino_backward_weights";
    if (!o || !dw) return dj_error(DJ_EINVAL, "%s: object or dw NULL", fn);
    int rc = check_pair(o, fn, x, o->cin, "x", dy, o->cout, "dy");
    if (rc != DJ_OK) return rc;
    const int A = o->mw + 2;
    int tb = tiles_w(o, A);
    int threads = omp_get_max_threads();
    if (threads < 1) threads = 1;
    rc = grow_ws(&o->wsw, &o->wsw_thread, &o->wsw_threads, wsw_floats(o, A, tb), threads);
    if (rc != DJ_OK) return rc;
    dj_wino_wjob jb = {.x = x->data, .dy = dy->data, .n = x->n, .h = x->h, .w = x->w, .oh = dy->h, .ow = dy->w, .dw = dw,
               .db = db};
    dj_wino_wthread_fn fn_ = o->k->run_w[o->mw == 4];
#pragma omp parallel num_threads(threads)
    fn_(o, &jb, tb, omp_get_thread_num(), omp_get_num_threads());
    return DJ_OK;
}

int dj_wino_tune_weights(dj_wino *o, int m) {
    if (!o) return dj_error(DJ_EINVAL, "dj_wino_tune_weights: object is NULL");
    if (m != 2 && m != 4) return dj_error(DJ_EINVAL, "dj_wino_tune_weights: m = %d, must be 2 or 4", m);
    o->mw = m;
    return DJ_OK;
}
