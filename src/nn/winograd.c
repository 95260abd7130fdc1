/* Winograd convolution F(m x m, 3x3), m = 4 or 2, stride 1: see winograd.h.
 *
 * Data flow for one block of T tiles (one thread, everything in L1/L2):
 *   input transform   x (NHWC) -> V[t][p][c]   p < P = (m+2)^2, c < Cin8
 *   P small GEMMs     M[.][p][.] = V[.][p][.] (T x Cin8) * U[p] (Cin8 x Cout8)
 *   output transform  M[t][p][k] -> y (NHWC), + bias, + y_old, ReLU
 * (tile-major V and M: a tile's transforms read and write one contiguous
 * block with constant offsets; each GEMM row is a contiguous channel run.)
 * While the GEMMs run, the block's output pixels and the next block's input
 * patches are prefetched: a layer's x and y are far larger than the caches.
 * Channel counts are rounded up to multiples of 8 (Cin8, Cout8) inside the
 * Winograd domain: padded input lanes are loaded as zeros and the padded
 * rows/columns of U are zero, so the GEMM needs no edge cases along C or K.
 * U, the transformed filter, is computed at the start of each call (in the
 * same parallel region) unless the object is frozen and the weights are the
 * cached ones.
 *
 * Transform matrices are Lavin & Gray's (arXiv:1509.09308), interpolation
 * points 0, +-1, +-2 (F4) and 0, +-1 (F2). */
#include "nn/winograd.h"

#include <omp.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "dmvjnd/dmvjnd.h"

#if defined(__GNUC__)
#define WINO_INLINE static inline __attribute__((always_inline))
#else
#define WINO_INLINE static inline
#endif

/* ------------------------------------------------------- 8-lane vectors */

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define WINO_ISA "avx2"

typedef __m256 v8;
WINO_INLINE v8 v8_zero(void) { return _mm256_setzero_ps(); }
WINO_INLINE v8 v8_set1(float a) { return _mm256_set1_ps(a); }
WINO_INLINE v8 v8_bcast(const float *p) { return _mm256_broadcast_ss(p); }
WINO_INLINE v8 v8_load(const float *p) { return _mm256_loadu_ps(p); }
WINO_INLINE void v8_store(float *p, v8 a) { _mm256_storeu_ps(p, a); }
WINO_INLINE v8 v8_add(v8 a, v8 b) { return _mm256_add_ps(a, b); }
WINO_INLINE v8 v8_sub(v8 a, v8 b) { return _mm256_sub_ps(a, b); }
WINO_INLINE v8 v8_mul(v8 a, v8 b) { return _mm256_mul_ps(a, b); }
WINO_INLINE v8 v8_fma(v8 a, v8 b, v8 c) { return _mm256_fmadd_ps(a, b, c); }   /* a*b + c */
WINO_INLINE v8 v8_fnma(v8 a, v8 b, v8 c) { return _mm256_fnmadd_ps(a, b, c); } /* c - a*b */
WINO_INLINE v8 v8_relu(v8 a) { return _mm256_max_ps(a, _mm256_setzero_ps()); }

static const int32_t lane_tab[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};
WINO_INLINE __m256i lane_mask(int n) { return _mm256_loadu_si256((const __m256i *)(const void *)(lane_tab + 8 - n)); }
/* First n (< 8) lanes from p, zeros above; nothing past p + n is read. */
WINO_INLINE v8 v8_loadn(const float *p, int n) { return _mm256_maskload_ps(p, lane_mask(n)); }
WINO_INLINE void v8_storen(float *p, int n, v8 a) { _mm256_maskstore_ps(p, lane_mask(n), a); }

#else /* portable fallback: plain loops the compiler may vectorise */
#define WINO_ISA "generic"

typedef struct v8 {
    float f[8];
} v8;
#define V8_MAP(expr)                                                                                                   \
    v8 r_;                                                                                                             \
    for (int l_ = 0; l_ < 8; l_++) r_.f[l_] = (expr);                                                                  \
    return r_
WINO_INLINE v8 v8_zero(void) { V8_MAP(0.f); }
WINO_INLINE v8 v8_set1(float a) { V8_MAP(a); }
WINO_INLINE v8 v8_bcast(const float *p) { V8_MAP(*p); }
WINO_INLINE v8 v8_load(const float *p) { V8_MAP(p[l_]); }
WINO_INLINE void v8_store(float *p, v8 a) { memcpy(p, a.f, sizeof a.f); }
WINO_INLINE v8 v8_add(v8 a, v8 b) { V8_MAP(a.f[l_] + b.f[l_]); }
WINO_INLINE v8 v8_sub(v8 a, v8 b) { V8_MAP(a.f[l_] - b.f[l_]); }
WINO_INLINE v8 v8_mul(v8 a, v8 b) { V8_MAP(a.f[l_] * b.f[l_]); }
WINO_INLINE v8 v8_fma(v8 a, v8 b, v8 c) { V8_MAP(a.f[l_] * b.f[l_] + c.f[l_]); }
WINO_INLINE v8 v8_fnma(v8 a, v8 b, v8 c) { V8_MAP(c.f[l_] - a.f[l_] * b.f[l_]); }
WINO_INLINE v8 v8_relu(v8 a) { V8_MAP(a.f[l_] > 0.f ? a.f[l_] : 0.f); }
WINO_INLINE v8 v8_loadn(const float *p, int n) { V8_MAP(l_ < n ? p[l_] : 0.f); }
WINO_INLINE void v8_storen(float *p, int n, v8 a) { memcpy(p, a.f, (size_t)n * sizeof(float)); }
#endif

/* Loads/stores `lanes` (1..8) floats. */
WINO_INLINE v8 v8_ld(const float *p, int lanes) { return lanes == 8 ? v8_load(p) : v8_loadn(p, lanes); }
WINO_INLINE void v8_st(float *p, int lanes, v8 a) {
    if (lanes == 8)
        v8_store(p, a);
    else
        v8_storen(p, lanes, a);
}

/* ------------------------------------------------------------ the object */

#define MAXP 36 /* positions of F(4x4): 6x6 */

struct dj_wino {
    int cin, cout, pad, frozen;
    int m;      /* output tile: 2 or 4 */
    int tb_req; /* tiles per block asked by dj_wino_tune (0: automatic) */
    int cin8, cout8;
    /* Transformed filters, [P][Cin8][Cout8] forward and [P][Cout8][Cin8]
     * backward-data, allocated for MAXP positions on first use. *_m is the
     * tile size they hold (0: nothing valid), *_src the weights they came
     * from (frozen caching). */
    float *uf, *ub;
    int uf_m, ub_m;
    const float *uf_src, *ub_src;
    /* Per-thread workspace: V, M and the filter-transform scratch. */
    float *ws;
    size_t ws_thread; /* floats per thread */
    int ws_threads;
    /* Backward-weights: its own tile size (mw) and per-thread workspace
     * (V and dY blocks and the thread's [P][Cout8][Cin8] sums). */
    int mw;
    float *wsw;
    size_t wsw_thread;
    int wsw_threads;
    char name[48];
};

static int round8(int c) { return (c + 7) & ~7; }
static size_t round16(size_t n) { return (n + 15) & ~(size_t)15; }

/* Tiles per block: V and M of one block (P * T * 2 * max(Cin8, Cout8)
 * floats) take ~112 KiB, a fifth of a Zen 3 core's 512 KiB L2 (measured
 * best on ResNet-20's layers: 24 tiles at 16 channels), in multiples of the
 * micro-kernel's 6 rows, at least 12 so each U[p] is reused from L1. */
static int auto_tiles(const dj_wino *o) {
    int P = (o->m + 2) * (o->m + 2);
    int c8 = o->cin8 > o->cout8 ? o->cin8 : o->cout8;
    size_t per_tile = (size_t)P * 2 * (size_t)c8 * sizeof(float);
    size_t t = (size_t)(112 * 1024) / per_tile;
    t -= t % 6;
    if (t < 12) t = 12;
    if (t > 96) t = 96;
    return (int)t;
}

static int tiles_per_block(const dj_wino *o) { return o->tb_req > 0 ? o->tb_req : auto_tiles(o); }

static void set_name(dj_wino *o) {
    snprintf(o->name, sizeof o->name, "dmvjnd:winograd_f%dx3_%s", o->m, WINO_ISA);
}

int dj_wino_create(dj_wino **out, int cin, int cout, int pad, int frozen) {
    if (!out) return dj_error(DJ_EINVAL, "dj_wino_create: out is NULL");
    *out = NULL;
    if (cin < 1 || cout < 1 || cin > (1 << 20) || cout > (1 << 20))
        return dj_error(DJ_EINVAL, "winograd conv: cin = %d, cout = %d, must be in [1, 2^20]", cin, cout);
    if (pad < 0 || pad > 2) return dj_error(DJ_EINVAL, "winograd conv: pad = %d, must be 0, 1 or 2", pad);
    dj_wino *o = dj_calloc(sizeof *o);
    if (!o) return dj_error(DJ_ENOMEM, "cannot allocate a winograd convolution");
    o->cin = cin;
    o->cout = cout;
    o->pad = pad;
    o->frozen = frozen ? 1 : 0;
    o->m = 4;
    o->mw = 4;
    o->cin8 = round8(cin);
    o->cout8 = round8(cout);
    set_name(o);
    *out = o;
    return DJ_OK;
}

void dj_wino_destroy(dj_wino *o) {
    if (!o) return;
    dj_free(o->uf);
    dj_free(o->ub);
    dj_free(o->ws);
    dj_free(o->wsw);
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
    size_t c8 = (size_t)(o->cin8 > o->cout8 ? o->cin8 : o->cout8);
    size_t per = round16((size_t)P * (size_t)tb * c8) * 2 + round16(9 * c8);
    return grow_ws(&o->ws, &o->ws_thread, &o->ws_threads, per, threads);
}

/* ------------------------------------------------------------ transforms */

/* B^T d for F(4x4, 3x3) (6 points). */
WINO_INLINE void bt6(const v8 *d, v8 *r) {
    const v8 four = v8_set1(4.f), five = v8_set1(5.f), two = v8_set1(2.f);
    v8 t1 = v8_fnma(four, d[2], d[4]); /* d4 - 4 d2 */
    v8 t2 = v8_fnma(four, d[1], d[3]); /* d3 - 4 d1 */
    v8 t3 = v8_sub(d[4], d[2]);
    v8 t4 = v8_sub(d[3], d[1]);
    r[0] = v8_fma(four, d[0], v8_fnma(five, d[2], d[4]));
    r[1] = v8_add(t1, t2);
    r[2] = v8_sub(t1, t2);
    r[3] = v8_fma(two, t4, t3);
    r[4] = v8_fnma(two, t4, t3);
    r[5] = v8_fma(four, d[1], v8_fnma(five, d[3], d[5]));
}

/* A^T m for F(4x4, 3x3): 6 -> 4. */
WINO_INLINE void at6(const v8 *m, v8 *r) {
    v8 s12 = v8_add(m[1], m[2]), d12 = v8_sub(m[1], m[2]);
    v8 s34 = v8_add(m[3], m[4]), d34 = v8_sub(m[3], m[4]);
    r[0] = v8_add(v8_add(m[0], s12), s34);
    r[1] = v8_fma(v8_set1(2.f), d34, d12);
    r[2] = v8_fma(v8_set1(4.f), s34, s12);
    r[3] = v8_add(v8_fma(v8_set1(8.f), d34, d12), m[5]);
}

/* B^T d for F(2x2, 3x3) (4 points). */
WINO_INLINE void bt4(const v8 *d, v8 *r) {
    r[0] = v8_sub(d[0], d[2]);
    r[1] = v8_add(d[1], d[2]);
    r[2] = v8_sub(d[2], d[1]);
    r[3] = v8_sub(d[1], d[3]);
}

/* A^T m for F(2x2, 3x3): 4 -> 2. */
WINO_INLINE void at4(const v8 *m, v8 *r) {
    r[0] = v8_add(v8_add(m[0], m[1]), m[2]);
    r[1] = v8_sub(v8_sub(m[1], m[2]), m[3]);
}

/* G g: 3 -> A (6 or 4). */
WINO_INLINE void gt(const int A, const v8 *g, v8 *r) {
    if (A == 6) {
        v8 s = v8_add(g[0], g[2]);
        v8 u = v8_fma(v8_set1(1.f / 24), g[0], v8_mul(v8_set1(1.f / 6), g[2]));
        v8 h = v8_mul(v8_set1(1.f / 12), g[1]);
        r[0] = v8_mul(v8_set1(0.25f), g[0]);
        r[1] = v8_mul(v8_set1(-1.f / 6), v8_add(s, g[1]));
        r[2] = v8_mul(v8_set1(-1.f / 6), v8_sub(s, g[1]));
        r[3] = v8_add(u, h);
        r[4] = v8_sub(u, h);
        r[5] = g[2];
    } else {
        v8 s = v8_add(g[0], g[2]);
        r[0] = g[0];
        r[1] = v8_mul(v8_set1(0.5f), v8_add(s, g[1]));
        r[2] = v8_mul(v8_set1(0.5f), v8_sub(s, g[1]));
        r[3] = g[2];
    }
}

/* Input transform of one 8-channel group of one tile whose A x A patch is
 * all inside: element (i, j) at src[i * rs + j * cs]. Writes position p to
 * v[p * pstride]. */
WINO_INLINE void in_group_any(const int A, const float *src, ptrdiff_t rs, ptrdiff_t cs, float *v, size_t pstride) {
    v8 t[6][6];
    for (int i = 0; i < A; i++) {
        v8 d[6];
        for (int j = 0; j < A; j++) d[j] = v8_load(src + i * rs + j * cs);
        if (A == 6)
            bt6(d, t[i]);
        else
            bt4(d, t[i]);
    }
    for (int j = 0; j < A; j++) {
        v8 col[6], r[6];
        for (int i = 0; i < A; i++) col[i] = t[i][j];
        if (A == 6)
            bt6(col, r);
        else
            bt4(col, r);
        for (int i = 0; i < A; i++) v8_store(v + (size_t)(i * A + j) * pstride, r[i]);
    }
}

/* in_group for F(4x4): the row pass is computed per pair of columns that
 * share subexpressions, straight from the loads, so the 6 x 6 intermediate
 * never goes through memory (loads are cheaper than stores here). */
WINO_INLINE void in_group6(const float *src, ptrdiff_t rs, ptrdiff_t cs, float *v, size_t pstride) {
    const v8 four = v8_set1(4.f), five = v8_set1(5.f), two = v8_set1(2.f);
#define L(i, j) v8_load(src + (i) * rs + (j) * cs)
#define ST(j, r)                                                                                                       \
    for (int a = 0; a < 6; a++) v8_store(v + (size_t)(a * 6 + (j)) * pstride, r[a])
    {
        v8 t0[6], t5[6], r[6];
        for (int i = 0; i < 6; i++) {
            t0[i] = v8_fma(four, L(i, 0), v8_fnma(five, L(i, 2), L(i, 4)));
            t5[i] = v8_fma(four, L(i, 1), v8_fnma(five, L(i, 3), L(i, 5)));
        }
        bt6(t0, r);
        ST(0, r);
        bt6(t5, r);
        ST(5, r);
    }
    {
        v8 t1[6], t2[6], r[6];
        for (int i = 0; i < 6; i++) {
            v8 a = v8_fnma(four, L(i, 2), L(i, 4)), b = v8_fnma(four, L(i, 1), L(i, 3));
            t1[i] = v8_add(a, b);
            t2[i] = v8_sub(a, b);
        }
        bt6(t1, r);
        ST(1, r);
        bt6(t2, r);
        ST(2, r);
    }
    {
        v8 t3[6], t4[6], r[6];
        for (int i = 0; i < 6; i++) {
            v8 a = v8_sub(L(i, 4), L(i, 2)), b = v8_sub(L(i, 3), L(i, 1));
            t3[i] = v8_fma(two, b, a);
            t4[i] = v8_fnma(two, b, a);
        }
        bt6(t3, r);
        ST(3, r);
        bt6(t4, r);
        ST(4, r);
    }
#undef L
#undef ST
}

/* out_group for F(4x4): row pass per pair of output columns sharing
 * subexpressions, straight from the loads; out[i][j] = result + b. */
WINO_INLINE void out_group6(const float *mv, size_t pstride, v8 b, v8 out[4][4]) {
    const v8 two = v8_set1(2.f), four = v8_set1(4.f), eight = v8_set1(8.f);
#define L(i, j) v8_load(mv + (size_t)((i) * 6 + (j)) * pstride)
    {
        v8 u0[6], u2[6], r[4];
        for (int k = 0; k < 6; k++) {
            v8 s12 = v8_add(L(k, 1), L(k, 2)), s34 = v8_add(L(k, 3), L(k, 4));
            u0[k] = v8_add(v8_add(L(k, 0), s12), s34);
            u2[k] = v8_fma(four, s34, s12);
        }
        at6(u0, r);
        for (int i = 0; i < 4; i++) out[i][0] = v8_add(r[i], b);
        at6(u2, r);
        for (int i = 0; i < 4; i++) out[i][2] = v8_add(r[i], b);
    }
    {
        v8 u1[6], u3[6], r[4];
        for (int k = 0; k < 6; k++) {
            v8 d12 = v8_sub(L(k, 1), L(k, 2)), d34 = v8_sub(L(k, 3), L(k, 4));
            u1[k] = v8_fma(two, d34, d12);
            u3[k] = v8_add(v8_fma(eight, d34, d12), L(k, 5));
        }
        at6(u1, r);
        for (int i = 0; i < 4; i++) out[i][1] = v8_add(r[i], b);
        at6(u3, r);
        for (int i = 0; i < 4; i++) out[i][3] = v8_add(r[i], b);
    }
#undef L
}

/* Output transform of one 8-channel group of one tile: reads position p
 * from mv[p * pstride], writes the m x m results plus b to out[i][j]. */
WINO_INLINE void out_group_any(const int A, const float *mv, size_t pstride, v8 b, v8 out[4][4]) {
    const int m = A - 2;
    v8 s[4][6];
    for (int j = 0; j < A; j++) {
        v8 col[6], r[4];
        for (int i = 0; i < A; i++) col[i] = v8_load(mv + (size_t)(i * A + j) * pstride);
        if (A == 6)
            at6(col, r);
        else
            at4(col, r);
        for (int i = 0; i < m; i++) s[i][j] = r[i];
    }
    for (int i = 0; i < m; i++) {
        v8 r[4];
        if (A == 6)
            at6(s[i], r);
        else
            at4(s[i], r);
        for (int j = 0; j < m; j++) out[i][j] = v8_add(r[j], b);
    }
}

WINO_INLINE void in_group(const int A, const float *src, ptrdiff_t rs, ptrdiff_t cs, float *v, size_t pstride) {
    if (A == 6)
        in_group6(src, rs, cs, v, pstride);
    else
        in_group_any(A, src, rs, cs, v, pstride);
}

WINO_INLINE void out_group(const int A, const float *mv, size_t pstride, v8 b, v8 out[4][4]) {
    if (A == 6)
        out_group6(mv, pstride, b, out);
    else
        out_group_any(A, mv, pstride, b, out);
}

/* Input transform of one tile, all channel groups. img: the tile's image
 * (h x w x c), (iy0, ix0): input position of the patch's top-left corner.
 * Patches reaching outside the image (and channel groups with fewer than 8
 * channels) are first copied into a zero-padded local patch. Writes
 * position p, channel ch to v[p * round8(c) + ch]. */
WINO_INLINE void in_tile_c(const int A, const float *img, int h, int w, const int c, int iy0, int ix0, float *v) {
    const size_t pstride = (size_t)round8(c);
    const ptrdiff_t rs = (ptrdiff_t)w * c;
    int g = 0;
    if (iy0 >= 0 && ix0 >= 0 && iy0 + A <= h && ix0 + A <= w) {
        const float *src = img + iy0 * rs + (ptrdiff_t)ix0 * c;
        for (; g < c / 8; g++) in_group(A, src + g * 8, rs, c, v + g * 8, pstride);
        if (g * 8 == c) return;
    }
    /* Border tiles and the channel tail: clip the patch to the image. */
    int i0 = iy0 < 0 ? -iy0 : 0, i1 = h - iy0 < A ? h - iy0 : A;
    int j0 = ix0 < 0 ? -ix0 : 0, j1 = w - ix0 < A ? w - ix0 : A;
    float patch[6 * 6 * 8];
    for (; g * 8 < c; g++) {
        int lanes = c - g * 8 < 8 ? c - g * 8 : 8;
        for (int i = 0; i < A; i++) {
            float *pr = patch + i * A * 8;
            int j = 0;
            if (i >= i0 && i < i1) {
                /* the first pixel inside: forming a pointer before the
                 * image's start would be undefined behaviour */
                const float *row = img + (iy0 + i) * rs + (ptrdiff_t)(ix0 + j0) * c + g * 8;
                for (; j < j0; j++) v8_store(pr + j * 8, v8_zero());
                if (lanes == 8)
                    for (; j < j1; j++) v8_store(pr + j * 8, v8_load(row + (ptrdiff_t)(j - j0) * c));
                else
                    for (; j < j1; j++) v8_store(pr + j * 8, v8_loadn(row + (ptrdiff_t)(j - j0) * c, lanes));
            }
            for (; j < A; j++) v8_store(pr + j * 8, v8_zero());
        }
        in_group(A, patch, A * 8, 8, v + g * 8, pstride);
    }
}

/* in_tile_c with constant strides for common channel counts. */
WINO_INLINE void in_tile(const int A, const float *img, int h, int w, int c, int iy0, int ix0, float *v) {
    switch (c) {
    case 16: in_tile_c(A, img, h, w, 16, iy0, ix0, v); break;
    case 32: in_tile_c(A, img, h, w, 32, iy0, ix0, v); break;
    case 64: in_tile_c(A, img, h, w, 64, iy0, ix0, v); break;
    default: in_tile_c(A, img, h, w, c, iy0, ix0, v); break;
    }
}

/* Stores an m x m block of 8 full lanes at y (rows ys apart, pixels c
 * apart), adding the old contents (acc) and clamping (relu). */
WINO_INLINE void store_full(const int m, const int acc, const int relu, v8 out[4][4], float *y, ptrdiff_t ys,
                            ptrdiff_t c) {
    for (int i = 0; i < m; i++)
        for (int j = 0; j < m; j++) {
            float *p = y + i * ys + j * c;
            v8 val = out[i][j];
            if (acc) val = v8_add(val, v8_load(p));
            if (relu) val = v8_relu(val);
            v8_store(p, val);
        }
}

/* Output transform of one tile, all channel groups; position p, channel ch
 * at mv[p * round8(c) + ch]. y points at the tile's top-left output pixel,
 * row stride ys floats; rows x cols of the m x m tile are inside the image. */
WINO_INLINE void out_tile_c(const int A, const float *mv, const int c, const float *bias, float *y, ptrdiff_t ys,
                            int rows, int cols, int acc, int relu) {
    const int m = A - 2;
    int whole = rows == m && cols == m;
    for (int g = 0; g * 8 < c; g++) {
        int lanes = c - g * 8 < 8 ? c - g * 8 : 8;
        v8 b = bias ? v8_ld(bias + g * 8, lanes) : v8_zero();
        v8 out[4][4];
        out_group(A, mv + g * 8, (size_t)round8(c), b, out);
        float *yg = y + g * 8;
        if (whole && lanes == 8) {
            if (acc && relu)
                store_full(m, 1, 1, out, yg, ys, c);
            else if (acc)
                store_full(m, 1, 0, out, yg, ys, c);
            else if (relu)
                store_full(m, 0, 1, out, yg, ys, c);
            else
                store_full(m, 0, 0, out, yg, ys, c);
            continue;
        }
        for (int i = 0; i < rows; i++)
            for (int j = 0; j < cols; j++) {
                float *p = yg + i * ys + j * c;
                v8 val = out[i][j];
                if (acc) val = v8_add(val, v8_ld(p, lanes));
                if (relu) val = v8_relu(val);
                v8_st(p, lanes, val);
            }
    }
}

/* out_tile_c with constant strides for common channel counts. */
WINO_INLINE void out_tile(const int A, const float *mv, int c, const float *bias, float *y, ptrdiff_t ys, int rows,
                          int cols, int acc, int relu) {
    switch (c) {
    case 16: out_tile_c(A, mv, 16, bias, y, ys, rows, cols, acc, relu); break;
    case 32: out_tile_c(A, mv, 32, bias, y, ys, rows, cols, acc, relu); break;
    case 64: out_tile_c(A, mv, 64, bias, y, ys, rows, cols, acc, relu); break;
    default: out_tile_c(A, mv, c, bias, y, ys, rows, cols, acc, relu); break;
    }
}

/* Filter transform of reduction channel i (all output channels): the
 * kernel convolves with g_{i,o}[ky][kx] = w[o][i][ky][kx] (forward) or
 * w[i][o][2-ky][2-kx] (backward-data: w is cout x cin and the kernel's
 * input channels are the conv's outputs). Writes U[p][i][o] for o < no8,
 * zeros for padded o; tmp holds 9 * no8 floats. */
WINO_INLINE void filter_row(const int A, const float *w, int cin, int cout, int backward, int i, float *u,
                            size_t pstride, int no8, float *tmp) {
    int ni = backward ? cout : cin, no = backward ? cin : cout;
    for (int e = 0; e < 9; e++)
        for (int o = 0; o < no8; o++) {
            float val = 0.f;
            if (i < ni && o < no)
                val = backward ? w[((size_t)i * cin + o) * 9 + 8 - e] : w[((size_t)o * cin + i) * 9 + e];
            tmp[(size_t)e * no8 + o] = val;
        }
    for (int og = 0; og < no8; og += 8) {
        v8 gg[3][6]; /* G g along ky, for each kx: gg[kx][a] */
        for (int kx = 0; kx < 3; kx++) {
            v8 col[3];
            for (int ky = 0; ky < 3; ky++) col[ky] = v8_load(tmp + (size_t)(ky * 3 + kx) * no8 + og);
            gt(A, col, gg[kx]);
        }
        for (int a = 0; a < A; a++) {
            v8 row[3] = {gg[0][a], gg[1][a], gg[2][a]}, r[6];
            gt(A, row, r);
            for (int b = 0; b < A; b++) v8_store(u + (size_t)(a * A + b) * pstride + og, r[b]);
        }
    }
}

/* ------------------------------------------------------------------ GEMM */

/* c[R x 8 NV] = a[R x kc] * b[kc x 8 NV]; rows of a, b, c are lda, ldb,
 * ldc floats apart. R <= 6, NV = 1 or 2: at most 12 accumulators. */
WINO_INLINE void ukern(const int R, const int NV, int kc, const float *a, size_t lda, const float *b, size_t ldb,
                       float *c, size_t ldc) {
    /* Named accumulators: GCC keeps an array of vectors in memory here. */
    v8 c00 = v8_zero(), c01 = v8_zero(), c10 = v8_zero(), c11 = v8_zero(), c20 = v8_zero(), c21 = v8_zero();
    v8 c30 = v8_zero(), c31 = v8_zero(), c40 = v8_zero(), c41 = v8_zero(), c50 = v8_zero(), c51 = v8_zero();
    const float *a0 = a, *a1 = a + lda, *a2 = a + 2 * lda, *a3 = a + 3 * lda, *a4 = a + 4 * lda, *a5 = a + 5 * lda;
#define UK_ROW(r)                                                                                                      \
    if (R > r) {                                                                                                       \
        v8 av = v8_bcast(a##r + k);                                                                                    \
        c##r##0 = v8_fma(av, b0, c##r##0);                                                                             \
        if (NV == 2) c##r##1 = v8_fma(av, b1, c##r##1);                                                                \
    }
    for (int k = 0; k < kc; k++, b += ldb) {
        v8 b0 = v8_load(b);
        v8 b1 = NV == 2 ? v8_load(b + 8) : b0;
        UK_ROW(0)
        UK_ROW(1)
        UK_ROW(2)
        UK_ROW(3)
        UK_ROW(4)
        UK_ROW(5)
    }
#undef UK_ROW
#define UK_STORE(r)                                                                                                    \
    if (R > r) {                                                                                                       \
        v8_store(c + r * ldc, c##r##0);                                                                                \
        if (NV == 2) v8_store(c + r * ldc + 8, c##r##1);                                                               \
    }
    UK_STORE(0)
    UK_STORE(1)
    UK_STORE(2)
    UK_STORE(3)
    UK_STORE(4)
    UK_STORE(5)
#undef UK_STORE
}

#define UKERN_ARGS kc, a, lda, b, ldb, c, ldc
#define UKERN_CASES(NV)                                                                                                \
    switch (rows) {                                                                                                    \
    case 6: ukern(6, NV, UKERN_ARGS); break;                                                                           \
    case 5: ukern(5, NV, UKERN_ARGS); break;                                                                           \
    case 4: ukern(4, NV, UKERN_ARGS); break;                                                                           \
    case 3: ukern(3, NV, UKERN_ARGS); break;                                                                           \
    case 2: ukern(2, NV, UKERN_ARGS); break;                                                                           \
    default: ukern(1, NV, UKERN_ARGS); break;                                                                          \
    }

static void ukern_n16(int rows, int kc, const float *a, size_t lda, const float *b, size_t ldb, float *c, size_t ldc) {
    UKERN_CASES(2)
}

static void ukern_n8(int rows, int kc, const float *a, size_t lda, const float *b, size_t ldb, float *c, size_t ldc) {
    UKERN_CASES(1)
}

/* c[nt x nc] = a[nt x kc] * b[kc x nc], kc and nc multiples of 8. Column
 * blocks outside, row blocks inside, so a 16-column slice of b stays in L1. */
static void gemm(int nt, int kc, int nc, const float *a, size_t lda, const float *b, size_t ldb, float *c,
                 size_t ldc) {
    for (int j = 0; j < nc; j += 16) {
        int wide = nc - j >= 16;
        int r = 0;
        if (wide) /* the common case inline: full 6 x 16 blocks */
            for (; r + 6 <= nt; r += 6) ukern(6, 2, kc, a + (size_t)r * lda, lda, b + j, ldb, c + (size_t)r * ldc + j, ldc);
        for (; r < nt; r += 6) {
            int rows = nt - r < 6 ? nt - r : 6;
            const float *ar = a + (size_t)r * lda;
            float *cr = c + (size_t)r * ldc + j;
            if (wide)
                ukern_n16(rows, kc, ar, lda, b + j, ldb, cr, ldc);
            else
                ukern_n8(rows, kc, ar, lda, b + j, ldb, cr, ldc);
        }
    }
}

/* ---------------------------------------------------------------- driver */


typedef struct job {
    const float *x; /* kernel input, n x h x w x ci */
    int n, h, w, ci;
    float *y; /* kernel output, n x oh x ow x co */
    int oh, ow, co;
    const float *bias;
    int pad, acc, relu;
    /* Filter: transform w into u unless u is already valid. */
    const float *wt;
    int backward, transform;
    float *u;
} job;

/* Position of a tile: image, tile row, tile column. */
typedef struct cursor {
    long long img;
    int ty, tx;
} cursor;

static inline cursor cur_at(long long t, long long per_img, int tw) {
    cursor c;
    c.img = t / per_img;
    int rem = (int)(t % per_img);
    c.ty = rem / tw;
    c.tx = rem % tw;
    return c;
}

static inline void cur_next(cursor *c, int th, int tw) {
    if (++c->tx == tw) {
        c->tx = 0;
        if (++c->ty == th) {
            c->ty = 0;
            c->img++;
        }
    }
}

static inline void prefetch_span(const char *p, size_t bytes, int write) {
    const char *end = p + bytes;
    p = (const char *)((uintptr_t)p & ~(uintptr_t)63);
    if (write)
        for (; p < end; p += 64) __builtin_prefetch(p, 1, 3);
    else
        for (; p < end; p += 64) __builtin_prefetch(p, 0, 3);
}

/* Prefetches the input patch of a tile; for all but a row's first tile only
 * the columns the previous tile did not read. */
static void prefetch_in(const job *jb, int A, int m, const cursor *c) {
    int iy0 = c->ty * m - jb->pad, ix0 = c->tx * m - jb->pad;
    int j0 = c->tx ? ix0 + A - m : ix0, j1 = ix0 + A;
    if (j0 < 0) j0 = 0;
    if (j1 > jb->w) j1 = jb->w;
    if (j1 <= j0) return;
    size_t bytes = (size_t)(j1 - j0) * jb->ci * sizeof(float);
    for (int i = iy0 < 0 ? -iy0 : 0; i < A && iy0 + i < jb->h; i++)
        prefetch_span((const char *)(jb->x + (((size_t)c->img * jb->h + iy0 + i) * jb->w + j0) * jb->ci), bytes, 0);
}

/* Prefetches the output pixels of a tile for writing. */
static void prefetch_out(const job *jb, int m, const cursor *c) {
    int oy0 = c->ty * m, ox0 = c->tx * m;
    int rows = jb->oh - oy0 < m ? jb->oh - oy0 : m, cols = jb->ow - ox0 < m ? jb->ow - ox0 : m;
    size_t bytes = (size_t)cols * jb->co * sizeof(float);
    for (int i = 0; i < rows; i++)
        prefetch_span((const char *)(jb->y + (((size_t)c->img * jb->oh + oy0 + i) * jb->ow + ox0) * jb->co), bytes, 1);
}

WINO_INLINE void run_thread(const int A, const dj_wino *o, const job *jb, int tb, int tid, int nth) {
    const int m = A - 2, P = A * A;
    const int ci8 = round8(jb->ci), co8 = round8(jb->co);
    float *ws = o->ws + (size_t)tid * o->ws_thread;
    size_t c8max = (size_t)(o->cin8 > o->cout8 ? o->cin8 : o->cout8);
    float *V = ws, *M = ws + round16((size_t)P * (size_t)tb * c8max), *tmp = M + round16((size_t)P * tb * c8max);

    if (jb->transform) {
        /* Transformed filter: rows i of U[p] (ci8 x co8), split between threads. */
        size_t upstride = (size_t)ci8 * co8;
#pragma omp for schedule(static)
        for (int i = 0; i < ci8; i++)
            filter_row(A, jb->wt, o->cin, o->cout, jb->backward, i, jb->u + (size_t)i * co8, upstride, co8, tmp);
        /* implicit barrier: U is complete before any thread uses it */
    }

    const int th = (jb->oh + m - 1) / m, tw = (jb->ow + m - 1) / m;
    const long long per_img = (long long)th * tw, total = per_img * jb->n;
    const long long t0 = total * tid / nth, t1 = total * (tid + 1) / nth;
    /* V and M: [tile][position][channel] */
    const size_t vts = (size_t)ci8 * P, mts = (size_t)co8 * P;
    const size_t in_img = (size_t)jb->h * jb->w * jb->ci, out_img = (size_t)jb->oh * jb->ow * jb->co;
    const ptrdiff_t ys = (ptrdiff_t)jb->ow * jb->co;

    for (long long b0 = t0; b0 < t1; b0 += tb) {
        int nb = (int)(t1 - b0 < tb ? t1 - b0 : tb);
        /* Input transform. */
        const cursor first = cur_at(b0, per_img, tw);
        cursor c = first;
        for (int r = 0; r < nb; r++, cur_next(&c, th, tw))
            in_tile(A, jb->x + (size_t)c.img * in_img, jb->h, jb->w, jb->ci, c.ty * m - jb->pad, c.tx * m - jb->pad,
                    V + (size_t)r * vts);
        /* One GEMM per position. Meanwhile, prefetch this block's output
         * pixels and the next block's input patches: the GEMMs leave the
         * load ports partly idle, and x and y are far larger than L2. */
        int nnext = (int)(t1 - b0 - nb < tb ? t1 - b0 - nb : tb);
        cursor pin = c, pout = first;
        int done_in = 0, done_out = 0;
        for (int p = 0; p < P; p++) {
            gemm(nb, ci8, co8, V + (size_t)p * ci8, vts, jb->u + (size_t)p * ci8 * co8, co8, M + (size_t)p * co8, mts);
            for (; done_out < nb * (p + 1) / P; done_out++, cur_next(&pout, th, tw)) prefetch_out(jb, m, &pout);
            for (; done_in < nnext * (p + 1) / P; done_in++, cur_next(&pin, th, tw)) prefetch_in(jb, A, m, &pin);
        }
        /* Output transform. */
        c = first;
        for (int r = 0; r < nb; r++, cur_next(&c, th, tw)) {
            int oy = c.ty * m, ox = c.tx * m;
            int rows = jb->oh - oy < m ? jb->oh - oy : m, cols = jb->ow - ox < m ? jb->ow - ox : m;
            float *yp = jb->y + (size_t)c.img * out_img + ((size_t)oy * jb->ow + ox) * jb->co;
            out_tile(A, M + (size_t)r * mts, jb->co, jb->bias, yp, ys, rows, cols, jb->acc, jb->relu);
        }
    }
}

static void run_thread_f4(const dj_wino *o, const job *jb, int tb, int tid, int nth) {
    run_thread(6, o, jb, tb, tid, nth);
}
static void run_thread_f2(const dj_wino *o, const job *jb, int tb, int tid, int nth) {
    run_thread(4, o, jb, tb, tid, nth);
}

static int run(dj_wino *o, job *jb) {
    int tb = tiles_per_block(o);
    int threads = omp_get_max_threads();
    if (threads < 1) threads = 1;
    int rc = ws_reserve(o, threads, tb);
    if (rc != DJ_OK) return rc;
    void (*fn)(const dj_wino *, const job *, int, int, int) = o->m == 4 ? run_thread_f4 : run_thread_f2;
#pragma omp parallel num_threads(threads)
    fn(o, jb, tb, omp_get_thread_num(), omp_get_num_threads());
    return DJ_OK;
}

/* Makes *u hold room for the transformed filter and says whether it must be
 * recomputed: always, unless the object is frozen and *u holds these
 * weights' transform for the current tile size. */
static int prepare_filter(dj_wino *o, float **u, int u_m, const float *u_src, const float *w, int *transform) {
    if (!*u) {
        *u = dj_malloc((size_t)MAXP * o->cin8 * o->cout8 * sizeof(float));
        if (!*u)
            return dj_error(DJ_ENOMEM, "cannot allocate %zu bytes for winograd filters",
                            (size_t)MAXP * o->cin8 * o->cout8 * sizeof(float));
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
    job jb = {.x = x->data, .n = x->n, .h = x->h, .w = x->w, .ci = o->cin, .y = y->data, .oh = y->h, .ow = y->w,
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
    job jb = {.x = dy->data, .n = dy->n, .h = dy->h, .w = dy->w, .ci = o->cout, .y = dx->data, .oh = dx->h,
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

/* dL/dg of a tile is G^T [(A dY A^T) . (B^T d B)] G (the transpose of the
 * forward Y = A^T [(G g G^T) . (B^T d B)] A): per block of tiles, the input
 * patches go through the forward's input transform (V, [t][p][Cin8]) and
 * the m x m output gradients through A . A^T (Z, [t][p][Cout8]); per
 * position p the thread's sums S[p] (Cout8 x Cin8) gain Z[.][p]^T V[.][p]
 * (a GEMM whose reduction runs over the block's tiles). At the end the
 * threads' sums are added and mapped back to 3 x 3 by G^T . G. */

/* A y for F(4x4): 4 -> 6 (A^T is at6's matrix). */
WINO_INLINE void a6(const v8 *y, v8 *z) {
    const v8 two = v8_set1(2.f), four = v8_set1(4.f), eight = v8_set1(8.f);
    v8 e = v8_add(y[0], y[2]), o = v8_add(y[1], y[3]);
    v8 e4 = v8_fma(four, y[2], y[0]), o8 = v8_fma(eight, y[3], v8_mul(two, y[1]));
    z[0] = y[0];
    z[1] = v8_add(e, o);
    z[2] = v8_sub(e, o);
    z[3] = v8_add(e4, o8);
    z[4] = v8_sub(e4, o8);
    z[5] = y[3];
}

/* A y for F(2x2): 2 -> 4. */
WINO_INLINE void a4(const v8 *y, v8 *z) {
    z[0] = y[0];
    z[1] = v8_add(y[0], y[1]);
    z[2] = v8_sub(y[0], y[1]);
    z[3] = v8_sub(v8_zero(), y[1]);
}

/* G^T v: A -> 3 (G as in gt()). */
WINO_INLINE void gtt(const int A, const v8 *v, v8 *r) {
    v8 s12 = v8_add(v[1], v[2]), d21 = v8_sub(v[2], v[1]);
    if (A == 6) {
        v8 s34 = v8_add(v[3], v[4]), d34 = v8_sub(v[3], v[4]);
        r[0] = v8_fma(v8_set1(1.f / 24), s34, v8_fnma(v8_set1(1.f / 6), s12, v8_mul(v8_set1(0.25f), v[0])));
        r[1] = v8_fma(v8_set1(1.f / 12), d34, v8_mul(v8_set1(1.f / 6), d21));
        r[2] = v8_add(v8_mul(v8_set1(1.f / 6), v8_sub(s34, s12)), v[5]);
    } else {
        v8 h = v8_mul(v8_set1(0.5f), s12);
        r[0] = v8_add(v[0], h);
        r[1] = v8_mul(v8_set1(-0.5f), d21);
        r[2] = v8_add(h, v[3]);
    }
}

/* Z = A dY A^T of one tile, all channel groups: dy points at the tile's
 * top-left output pixel (rows ys floats apart, pixels c apart), rows x cols
 * of the m x m tile inside the image (the rest count as 0). Writes position
 * p, channel ch to z[p * round8(c) + ch], padded lanes 0. */
WINO_INLINE void dy_tile_c(const int A, const float *dy, ptrdiff_t ys, const int c, int rows, int cols, float *z) {
    const int m = A - 2;
    const size_t pstride = (size_t)round8(c);
    for (int g = 0; g * 8 < c; g++) {
        int lanes = c - g * 8 < 8 ? c - g * 8 : 8;
        v8 t[4][6]; /* t[i][b]: row i of dY, A applied along the row */
        for (int i = 0; i < m; i++) {
            v8 y[4];
            for (int j = 0; j < m; j++)
                y[j] = i < rows && j < cols ? v8_ld(dy + i * ys + (ptrdiff_t)j * c + g * 8, lanes) : v8_zero();
            if (A == 6)
                a6(y, t[i]);
            else
                a4(y, t[i]);
        }
        for (int b = 0; b < A; b++) {
            v8 col[4], r[6];
            for (int i = 0; i < m; i++) col[i] = t[i][b];
            if (A == 6)
                a6(col, r);
            else
                a4(col, r);
            for (int a = 0; a < A; a++) v8_store(z + (size_t)(a * A + b) * pstride + g * 8, r[a]);
        }
    }
}

WINO_INLINE void dy_tile(const int A, const float *dy, ptrdiff_t ys, int c, int rows, int cols, float *z) {
    switch (c) {
    case 16: dy_tile_c(A, dy, ys, 16, rows, cols, z); break;
    case 32: dy_tile_c(A, dy, ys, 32, rows, cols, z); break;
    case 64: dy_tile_c(A, dy, ys, 64, rows, cols, z); break;
    default: dy_tile_c(A, dy, ys, c, rows, cols, z); break;
    }
}

/* s[R x 8 NV] += sum_t a[t * as + r] * b[t * bs + 0 .. 8 NV - 1] over nt
 * tiles; rows of s ldc floats apart. R <= 6, NV = 1 or 2. */
WINO_INLINE void ukern_w(const int R, const int NV, int nt, const float *a, size_t as, const float *b, size_t bs,
                         float *s, size_t ldc) {
    v8 c00 = v8_zero(), c01 = v8_zero(), c10 = v8_zero(), c11 = v8_zero(), c20 = v8_zero(), c21 = v8_zero();
    v8 c30 = v8_zero(), c31 = v8_zero(), c40 = v8_zero(), c41 = v8_zero(), c50 = v8_zero(), c51 = v8_zero();
#define UW_LOAD(r)                                                                                                     \
    if (R > r) {                                                                                                       \
        c##r##0 = v8_load(s + r * ldc);                                                                                \
        if (NV == 2) c##r##1 = v8_load(s + r * ldc + 8);                                                               \
    }
    UW_LOAD(0)
    UW_LOAD(1)
    UW_LOAD(2)
    UW_LOAD(3)
    UW_LOAD(4)
    UW_LOAD(5)
#undef UW_LOAD
#define UW_ROW(r)                                                                                                      \
    if (R > r) {                                                                                                       \
        v8 av = v8_bcast(a + r);                                                                                       \
        c##r##0 = v8_fma(av, b0, c##r##0);                                                                             \
        if (NV == 2) c##r##1 = v8_fma(av, b1, c##r##1);                                                                \
    }
    for (int t = 0; t < nt; t++, a += as, b += bs) {
        v8 b0 = v8_load(b);
        v8 b1 = NV == 2 ? v8_load(b + 8) : b0;
        UW_ROW(0)
        UW_ROW(1)
        UW_ROW(2)
        UW_ROW(3)
        UW_ROW(4)
        UW_ROW(5)
    }
#undef UW_ROW
#define UW_STORE(r)                                                                                                    \
    if (R > r) {                                                                                                       \
        v8_store(s + r * ldc, c##r##0);                                                                                \
        if (NV == 2) v8_store(s + r * ldc + 8, c##r##1);                                                               \
    }
    UW_STORE(0)
    UW_STORE(1)
    UW_STORE(2)
    UW_STORE(3)
    UW_STORE(4)
    UW_STORE(5)
#undef UW_STORE
}

/* S[co8 x ci8] += Z^T V over nt tiles: z rows (output channels) contiguous,
 * tiles zs apart; v likewise with vs. */
static void gemm_w(int nt, int co8, int ci8, const float *z, size_t zs, const float *v, size_t vs, float *s) {
    for (int j = 0; j < ci8; j += 16) {
        int wide = ci8 - j >= 16;
        for (int r = 0; r < co8; r += 6) {
            int rows = co8 - r < 6 ? co8 - r : 6;
            float *sr = s + (size_t)r * ci8 + j;
            const float *zr = z + r, *vj = v + j;
            if (wide && rows == 6)
                ukern_w(6, 2, nt, zr, zs, vj, vs, sr, ci8);
            else if (wide)
                switch (rows) {
                case 5: ukern_w(5, 2, nt, zr, zs, vj, vs, sr, ci8); break;
                case 4: ukern_w(4, 2, nt, zr, zs, vj, vs, sr, ci8); break;
                case 3: ukern_w(3, 2, nt, zr, zs, vj, vs, sr, ci8); break;
                case 2: ukern_w(2, 2, nt, zr, zs, vj, vs, sr, ci8); break;
                default: ukern_w(1, 2, nt, zr, zs, vj, vs, sr, ci8); break;
                }
            else
                switch (rows) {
                case 6: ukern_w(6, 1, nt, zr, zs, vj, vs, sr, ci8); break;
                case 5: ukern_w(5, 1, nt, zr, zs, vj, vs, sr, ci8); break;
                case 4: ukern_w(4, 1, nt, zr, zs, vj, vs, sr, ci8); break;
                case 3: ukern_w(3, 1, nt, zr, zs, vj, vs, sr, ci8); break;
                case 2: ukern_w(2, 1, nt, zr, zs, vj, vs, sr, ci8); break;
                default: ukern_w(1, 1, nt, zr, zs, vj, vs, sr, ci8); break;
                }
        }
    }
}

typedef struct wjob {
    const float *x, *dy;
    int n, h, w, oh, ow;
    float *dw, *db;
} wjob;

/* Tiles per block of backward-weights: V and Z of a block take ~192 KiB
 * (they are read back once per position while hot), at least 16 tiles so
 * that each pass over the sums S[p] does some work, at most 96. */
static int tiles_w(const dj_wino *o, int A) {
    size_t per_tile = (size_t)A * A * (size_t)(o->cin8 + o->cout8) * sizeof(float);
    size_t t = (size_t)(192 * 1024) / per_tile;
    if (t < 16) t = 16;
    if (t > 96) t = 96;
    return (int)t;
}

static size_t wsw_floats(const dj_wino *o, int A, int tb) {
    size_t P = (size_t)A * A;
    return round16(P * (size_t)tb * (size_t)o->cin8) + round16(P * (size_t)tb * (size_t)o->cout8) +
           round16(P * (size_t)o->cout8 * (size_t)o->cin8) + round16((size_t)o->cout8);
}

WINO_INLINE void run_thread_w(const int A, const dj_wino *o, const wjob *jb, int tb, int tid, int nth) {
    const int m = A - 2, P = A * A;
    const int ci = o->cin, co = o->cout, ci8 = o->cin8, co8 = o->cout8;
    float *ws = o->wsw + (size_t)tid * o->wsw_thread;
    float *V = ws, *Z = V + round16((size_t)P * tb * ci8), *S = Z + round16((size_t)P * tb * co8);
    float *bsum = S + round16((size_t)P * co8 * ci8);
    memset(S, 0, (size_t)P * co8 * ci8 * sizeof(float));
    memset(bsum, 0, (size_t)co8 * sizeof(float));

    const int th = (jb->oh + m - 1) / m, tw = (jb->ow + m - 1) / m;
    const long long per_img = (long long)th * tw, total = per_img * jb->n;
    const long long t0 = total * tid / nth, t1 = total * (tid + 1) / nth;
    const size_t vts = (size_t)ci8 * P, zts = (size_t)co8 * P;
    const size_t in_img = (size_t)jb->h * jb->w * ci, out_img = (size_t)jb->oh * jb->ow * co;
    const ptrdiff_t ys = (ptrdiff_t)jb->ow * co;

    for (long long b0 = t0; b0 < t1; b0 += tb) {
        int nb = (int)(t1 - b0 < tb ? t1 - b0 : tb);
        cursor c = cur_at(b0, per_img, tw);
        for (int r = 0; r < nb; r++, cur_next(&c, th, tw)) {
            int oy = c.ty * m, ox = c.tx * m;
            int rows = jb->oh - oy < m ? jb->oh - oy : m, cols = jb->ow - ox < m ? jb->ow - ox : m;
            const float *dyp = jb->dy + (size_t)c.img * out_img + ((size_t)oy * jb->ow + ox) * co;
            in_tile(A, jb->x + (size_t)c.img * in_img, jb->h, jb->w, ci, oy - o->pad, ox - o->pad, V + (size_t)r * vts);
            dy_tile(A, dyp, ys, co, rows, cols, Z + (size_t)r * zts);
            if (jb->db) /* bias gradient: the sum of dY over the tile's pixels */
                for (int i = 0; i < rows; i++)
                    for (int j = 0; j < cols; j++) {
                        const float *px = dyp + i * ys + (ptrdiff_t)j * co;
                        for (int k = 0; k < co; k++) bsum[k] += px[k];
                    }
        }
        for (int p = 0; p < P; p++)
            gemm_w(nb, co8, ci8, Z + (size_t)p * co8, zts, V + (size_t)p * ci8, vts, S + (size_t)p * co8 * ci8);
    }
#pragma omp barrier
    /* Sum the threads' S and map each (co, 8 input channels) back to 3 x 3. */
    const int groups = ci8 / 8;
    const size_t s_off = (size_t)(S - ws);
#pragma omp for schedule(static)
    for (int q = 0; q < co * groups; q++) {
        int oc = q / groups, g = q % groups;
        v8 sp[MAXP];
        for (int p = 0; p < P; p++) {
            size_t off = s_off + ((size_t)p * co8 + oc) * ci8 + (size_t)g * 8;
            v8 acc = v8_load(o->wsw + off);
            for (int t = 1; t < nth; t++) acc = v8_add(acc, v8_load(o->wsw + (size_t)t * o->wsw_thread + off));
            sp[p] = acc;
        }
        v8 tk[3][6]; /* tk[ky][b] = sum_a G[a][ky] S[a][b] */
        for (int b = 0; b < A; b++) {
            v8 col[6], r[3];
            for (int a = 0; a < A; a++) col[a] = sp[a * A + b];
            gtt(A, col, r);
            for (int k = 0; k < 3; k++) tk[k][b] = r[k];
        }
        float out[9][8];
        for (int ky = 0; ky < 3; ky++) {
            v8 r[3];
            gtt(A, tk[ky], r);
            for (int kx = 0; kx < 3; kx++) v8_store(out[ky * 3 + kx], r[kx]);
        }
        int lanes = ci - g * 8 < 8 ? ci - g * 8 : 8;
        for (int l = 0; l < lanes; l++) {
            float *d = jb->dw + ((size_t)oc * ci + (size_t)g * 8 + l) * 9;
            for (int e = 0; e < 9; e++) d[e] += out[e][l];
        }
    }
    if (jb->db) {
#pragma omp single
        for (int t = 0; t < nth; t++) {
            const float *bs = o->wsw + (size_t)t * o->wsw_thread + (bsum - ws);
            for (int k = 0; k < co; k++) jb->db[k] += bs[k];
        }
    }
}

static void run_thread_w_f4(const dj_wino *o, const wjob *jb, int tb, int tid, int nth) {
    run_thread_w(6, o, jb, tb, tid, nth);
}
static void run_thread_w_f2(const dj_wino *o, const wjob *jb, int tb, int tid, int nth) {
    run_thread_w(4, o, jb, tb, tid, nth);
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
    wjob jb = {.x = x->data, .dy = dy->data, .n = x->n, .h = x->h, .w = x->w, .oh = dy->h, .ow = dy->w, .dw = dw,
               .db = db};
    void (*fn_)(const dj_wino *, const wjob *, int, int, int) = o->mw == 4 ? run_thread_w_f4 : run_thread_w_f2;
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
