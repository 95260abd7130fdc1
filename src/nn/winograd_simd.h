/* Winograd F(m x m, 3x3) kernels, m = 4 or 2: the SIMD template behind
 * winograd_avx2.c (8 lanes) and winograd_avx512.c (16 lanes). See
 * winograd.h for the algorithm and winograd_impl.h for the structures.
 *
 * Written once, compiled once per instruction set: the including file
 * defines, before including this header,
 *   vf, VL     the vector type and its lanes (8 or 16)
 *   MR         micro-kernel rows (6 or 12; 2 MR accumulators + 3 registers
 *              must fit the register file: 16 for AVX2, 32 for AVX-512)
 *   vf_zero, vf_set1, vf_bcast, vf_load, vf_store, vf_add, vf_sub, vf_mul,
 *   vf_fma (a*b + c), vf_fnma (c - a*b), vf_relu, vf_loadn / vf_storen
 *   (the first n < VL lanes, nothing past them touched)
 *   WINO_INLINE
 *   WINO_ISA, WINO_TABLE   the name of the instruction set ("avx2") and of
 *              the dj_wino_kernels table winograd_simd_bwdw.h defines
 * and compiles it for its instruction set (target pragma). Everything here
 * is static: each compilation is private to its file.
 *
 * Data flow for one block of T tiles (one thread, everything in L1/L2):
 *   input transform   x (NHWC) -> V[t][p][c]   p < P = (m+2)^2, c < Cinp
 *   P small GEMMs     M[.][p][.] = V[.][p][.] (T x Cinp) * U[p] (Cinp x Coutp)
 *   output transform  M[t][p][k] -> y (NHWC), + bias, + y_old, ReLU
 * (tile-major V and M: a tile's transforms read and write one contiguous
 * block with constant offsets; each GEMM row is a contiguous channel run.)
 * While the GEMMs run, the block's output pixels and the next block's input
 * patches are prefetched: a layer's x and y are far larger than the caches.
 * Channel counts are rounded up to multiples of VL (Cinp, Coutp) inside the
 * Winograd domain: padded input lanes are loaded as zeros and the padded
 * rows/columns of U are zero, so the GEMM needs no edge cases along C or K.
 *
 * Transform matrices are Lavin & Gray's (arXiv:1509.09308), interpolation
 * points 0, +-1, +-2 (F4) and 0, +-1 (F2). */
#ifndef DMVJND_NN_WINOGRAD_SIMD_H
#define DMVJND_NN_WINOGRAD_SIMD_H

#include <stddef.h>
#include <stdint.h>

#include "nn/winograd_impl.h"

static inline int round_lanes(int c) { return (c + VL - 1) / VL * VL; }

/* Loads/stores `lanes` (1..VL) floats. */
WINO_INLINE vf vf_ld(const float *p, int lanes) { return lanes == VL ? vf_load(p) : vf_loadn(p, lanes); }
WINO_INLINE void vf_st(float *p, int lanes, vf a) {
    if (lanes == VL)
        vf_store(p, a);
    else
        vf_storen(p, lanes, a);
}

/* ------------------------------------------------------------ transforms */

/* B^T d for F(4x4, 3x3) (6 points). */
WINO_INLINE void bt6(const vf *d, vf *r) {
    const vf four = vf_set1(4.f), five = vf_set1(5.f), two = vf_set1(2.f);
    vf t1 = vf_fnma(four, d[2], d[4]); /* d4 - 4 d2 */
    vf t2 = vf_fnma(four, d[1], d[3]); /* d3 - 4 d1 */
    vf t3 = vf_sub(d[4], d[2]);
    vf t4 = vf_sub(d[3], d[1]);
    r[0] = vf_fma(four, d[0], vf_fnma(five, d[2], d[4]));
    r[1] = vf_add(t1, t2);
    r[2] = vf_sub(t1, t2);
    r[3] = vf_fma(two, t4, t3);
    r[4] = vf_fnma(two, t4, t3);
    r[5] = vf_fma(four, d[1], vf_fnma(five, d[3], d[5]));
}

/* A^T m for F(4x4, 3x3): 6 -> 4. */
WINO_INLINE void at6(const vf *m, vf *r) {
    vf s12 = vf_add(m[1], m[2]), d12 = vf_sub(m[1], m[2]);
    vf s34 = vf_add(m[3], m[4]), d34 = vf_sub(m[3], m[4]);
    r[0] = vf_add(vf_add(m[0], s12), s34);
    r[1] = vf_fma(vf_set1(2.f), d34, d12);
    r[2] = vf_fma(vf_set1(4.f), s34, s12);
    r[3] = vf_add(vf_fma(vf_set1(8.f), d34, d12), m[5]);
}

/* B^T d for F(2x2, 3x3) (4 points). */
WINO_INLINE void bt4(const vf *d, vf *r) {
    r[0] = vf_sub(d[0], d[2]);
    r[1] = vf_add(d[1], d[2]);
    r[2] = vf_sub(d[2], d[1]);
    r[3] = vf_sub(d[1], d[3]);
}

/* A^T m for F(2x2, 3x3): 4 -> 2. */
WINO_INLINE void at4(const vf *m, vf *r) {
    r[0] = vf_add(vf_add(m[0], m[1]), m[2]);
    r[1] = vf_sub(vf_sub(m[1], m[2]), m[3]);
}

/* G g: 3 -> A (6 or 4). */
WINO_INLINE void gt(const int A, const vf *g, vf *r) {
    if (A == 6) {
        vf s = vf_add(g[0], g[2]);
        vf u = vf_fma(vf_set1(1.f / 24), g[0], vf_mul(vf_set1(1.f / 6), g[2]));
        vf h = vf_mul(vf_set1(1.f / 12), g[1]);
        r[0] = vf_mul(vf_set1(0.25f), g[0]);
        r[1] = vf_mul(vf_set1(-1.f / 6), vf_add(s, g[1]));
        r[2] = vf_mul(vf_set1(-1.f / 6), vf_sub(s, g[1]));
        r[3] = vf_add(u, h);
        r[4] = vf_sub(u, h);
        r[5] = g[2];
    } else {
        vf s = vf_add(g[0], g[2]);
        r[0] = g[0];
        r[1] = vf_mul(vf_set1(0.5f), vf_add(s, g[1]));
        r[2] = vf_mul(vf_set1(0.5f), vf_sub(s, g[1]));
        r[3] = g[2];
    }
}

/* Input transform of one VL-channel group of one tile whose A x A patch is
 * all inside: element (i, j) at src[i * rs + j * cs]. Writes position p to
 * v[p * pstride]. */
WINO_INLINE void in_group_any(const int A, const float *src, ptrdiff_t rs, ptrdiff_t cs, float *v, size_t pstride) {
    vf t[6][6];
    for (int i = 0; i < A; i++) {
        vf d[6];
        for (int j = 0; j < A; j++) d[j] = vf_load(src + i * rs + j * cs);
        if (A == 6)
            bt6(d, t[i]);
        else
            bt4(d, t[i]);
    }
    for (int j = 0; j < A; j++) {
        vf col[6], r[6];
        for (int i = 0; i < A; i++) col[i] = t[i][j];
        if (A == 6)
            bt6(col, r);
        else
            bt4(col, r);
        for (int i = 0; i < A; i++) vf_store(v + (size_t)(i * A + j) * pstride, r[i]);
    }
}

/* in_group for F(4x4): the row pass is computed per pair of columns that
 * share subexpressions, straight from the loads, so the 6 x 6 intermediate
 * never goes through memory (loads are cheaper than stores here). */
WINO_INLINE void in_group6(const float *src, ptrdiff_t rs, ptrdiff_t cs, float *v, size_t pstride) {
    const vf four = vf_set1(4.f), five = vf_set1(5.f), two = vf_set1(2.f);
#define L(i, j) vf_load(src + (i) * rs + (j) * cs)
#define ST(j, r)                                                                                                       \
    for (int a = 0; a < 6; a++) vf_store(v + (size_t)(a * 6 + (j)) * pstride, r[a])
    {
        vf t0[6], t5[6], r[6];
        for (int i = 0; i < 6; i++) {
            t0[i] = vf_fma(four, L(i, 0), vf_fnma(five, L(i, 2), L(i, 4)));
            t5[i] = vf_fma(four, L(i, 1), vf_fnma(five, L(i, 3), L(i, 5)));
        }
        bt6(t0, r);
        ST(0, r);
        bt6(t5, r);
        ST(5, r);
    }
    {
        vf t1[6], t2[6], r[6];
        for (int i = 0; i < 6; i++) {
            vf a = vf_fnma(four, L(i, 2), L(i, 4)), b = vf_fnma(four, L(i, 1), L(i, 3));
            t1[i] = vf_add(a, b);
            t2[i] = vf_sub(a, b);
        }
        bt6(t1, r);
        ST(1, r);
        bt6(t2, r);
        ST(2, r);
    }
    {
        vf t3[6], t4[6], r[6];
        for (int i = 0; i < 6; i++) {
            vf a = vf_sub(L(i, 4), L(i, 2)), b = vf_sub(L(i, 3), L(i, 1));
            t3[i] = vf_fma(two, b, a);
            t4[i] = vf_fnma(two, b, a);
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
WINO_INLINE void out_group6(const float *mv, size_t pstride, vf b, vf out[4][4]) {
    const vf two = vf_set1(2.f), four = vf_set1(4.f), eight = vf_set1(8.f);
#define L(i, j) vf_load(mv + (size_t)((i) * 6 + (j)) * pstride)
    {
        vf u0[6], u2[6], r[4];
        for (int k = 0; k < 6; k++) {
            vf s12 = vf_add(L(k, 1), L(k, 2)), s34 = vf_add(L(k, 3), L(k, 4));
            u0[k] = vf_add(vf_add(L(k, 0), s12), s34);
            u2[k] = vf_fma(four, s34, s12);
        }
        at6(u0, r);
        for (int i = 0; i < 4; i++) out[i][0] = vf_add(r[i], b);
        at6(u2, r);
        for (int i = 0; i < 4; i++) out[i][2] = vf_add(r[i], b);
    }
    {
        vf u1[6], u3[6], r[4];
        for (int k = 0; k < 6; k++) {
            vf d12 = vf_sub(L(k, 1), L(k, 2)), d34 = vf_sub(L(k, 3), L(k, 4));
            u1[k] = vf_fma(two, d34, d12);
            u3[k] = vf_add(vf_fma(eight, d34, d12), L(k, 5));
        }
        at6(u1, r);
        for (int i = 0; i < 4; i++) out[i][1] = vf_add(r[i], b);
        at6(u3, r);
        for (int i = 0; i < 4; i++) out[i][3] = vf_add(r[i], b);
    }
#undef L
}

/* Output transform of one VL-channel group of one tile: reads position p
 * from mv[p * pstride], writes the m x m results plus b to out[i][j]. */
WINO_INLINE void out_group_any(const int A, const float *mv, size_t pstride, vf b, vf out[4][4]) {
    const int m = A - 2;
    vf s[4][6];
    for (int j = 0; j < A; j++) {
        vf col[6], r[4];
        for (int i = 0; i < A; i++) col[i] = vf_load(mv + (size_t)(i * A + j) * pstride);
        if (A == 6)
            at6(col, r);
        else
            at4(col, r);
        for (int i = 0; i < m; i++) s[i][j] = r[i];
    }
    for (int i = 0; i < m; i++) {
        vf r[4];
        if (A == 6)
            at6(s[i], r);
        else
            at4(s[i], r);
        for (int j = 0; j < m; j++) out[i][j] = vf_add(r[j], b);
    }
}

WINO_INLINE void in_group(const int A, const float *src, ptrdiff_t rs, ptrdiff_t cs, float *v, size_t pstride) {
    if (A == 6)
        in_group6(src, rs, cs, v, pstride);
    else
        in_group_any(A, src, rs, cs, v, pstride);
}

WINO_INLINE void out_group(const int A, const float *mv, size_t pstride, vf b, vf out[4][4]) {
    if (A == 6)
        out_group6(mv, pstride, b, out);
    else
        out_group_any(A, mv, pstride, b, out);
}

/* Input transform of one tile, all channel groups. img: the tile's image
 * (h x w x c), (iy0, ix0): input position of the patch's top-left corner.
 * Patches reaching outside the image (and channel groups with fewer than 8
 * channels) are first copied into a zero-padded local patch. Writes
 * position p, channel ch to v[p * round_lanes(c) + ch]. */
WINO_INLINE void in_tile_c(const int A, const float *img, int h, int w, const int c, int iy0, int ix0, float *v) {
    const size_t pstride = (size_t)round_lanes(c);
    const ptrdiff_t rs = (ptrdiff_t)w * c;
    int g = 0;
    if (iy0 >= 0 && ix0 >= 0 && iy0 + A <= h && ix0 + A <= w) {
        const float *src = img + iy0 * rs + (ptrdiff_t)ix0 * c;
        for (; g < c / VL; g++) in_group(A, src + g * VL, rs, c, v + g * VL, pstride);
        if (g * VL == c) return;
    }
    /* Border tiles and the channel tail: clip the patch to the image. */
    int i0 = iy0 < 0 ? -iy0 : 0, i1 = h - iy0 < A ? h - iy0 : A;
    int j0 = ix0 < 0 ? -ix0 : 0, j1 = w - ix0 < A ? w - ix0 : A;
    float patch[6 * 6 * VL];
    for (; g * VL < c; g++) {
        int lanes = c - g * VL < VL ? c - g * VL : VL;
        for (int i = 0; i < A; i++) {
            float *pr = patch + i * A * VL;
            int j = 0;
            if (i >= i0 && i < i1) {
                /* the first pixel inside: forming a pointer before the
                 * image's start would be undefined behaviour */
                const float *row = img + (iy0 + i) * rs + (ptrdiff_t)(ix0 + j0) * c + g * VL;
                for (; j < j0; j++) vf_store(pr + j * VL, vf_zero());
                if (lanes == VL)
                    for (; j < j1; j++) vf_store(pr + j * VL, vf_load(row + (ptrdiff_t)(j - j0) * c));
                else
                    for (; j < j1; j++) vf_store(pr + j * VL, vf_loadn(row + (ptrdiff_t)(j - j0) * c, lanes));
            }
            for (; j < A; j++) vf_store(pr + j * VL, vf_zero());
        }
        in_group(A, patch, A * VL, VL, v + g * VL, pstride);
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

/* Stores an m x m block of VL full lanes at y (rows ys apart, pixels c
 * apart), adding the old contents (acc) and clamping (relu). */
WINO_INLINE void store_full(const int m, const int acc, const int relu, vf out[4][4], float *y, ptrdiff_t ys,
                            ptrdiff_t c) {
    for (int i = 0; i < m; i++)
        for (int j = 0; j < m; j++) {
            float *p = y + i * ys + j * c;
            vf val = out[i][j];
            if (acc) val = vf_add(val, vf_load(p));
            if (relu) val = vf_relu(val);
            vf_store(p, val);
        }
}

/* Output transform of one tile, all channel groups; position p, channel ch
 * at mv[p * round_lanes(c) + ch]. y points at the tile's top-left output pixel,
 * row stride ys floats; rows x cols of the m x m tile are inside the image. */
WINO_INLINE void out_tile_c(const int A, const float *mv, const int c, const float *bias, float *y, ptrdiff_t ys,
                            int rows, int cols, int acc, int relu) {
    const int m = A - 2;
    int whole = rows == m && cols == m;
    for (int g = 0; g * VL < c; g++) {
        int lanes = c - g * VL < VL ? c - g * VL : VL;
        vf b = bias ? vf_ld(bias + g * VL, lanes) : vf_zero();
        vf out[4][4];
        out_group(A, mv + g * VL, (size_t)round_lanes(c), b, out);
        float *yg = y + g * VL;
        if (whole && lanes == VL) {
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
                vf val = out[i][j];
                if (acc) val = vf_add(val, vf_ld(p, lanes));
                if (relu) val = vf_relu(val);
                vf_st(p, lanes, val);
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
 * input channels are the conv's outputs). Writes U[p][i][o] for o < nop,
 * zeros for padded o; tmp holds 9 * nop floats. */
WINO_INLINE void filter_row(const int A, const float *w, int cin, int cout, int backward, int i, float *u,
                            size_t pstride, int nop, float *tmp) {
    int ni = backward ? cout : cin, no = backward ? cin : cout;
    for (int e = 0; e < 9; e++)
        for (int o = 0; o < nop; o++) {
            float val = 0.f;
            if (i < ni && o < no)
                val = backward ? w[((size_t)i * cin + o) * 9 + 8 - e] : w[((size_t)o * cin + i) * 9 + e];
            tmp[(size_t)e * nop + o] = val;
        }
    for (int og = 0; og < nop; og += VL) {
        vf gg[3][6]; /* G g along ky, for each kx: gg[kx][a] */
        for (int kx = 0; kx < 3; kx++) {
            vf col[3];
            for (int ky = 0; ky < 3; ky++) col[ky] = vf_load(tmp + (size_t)(ky * 3 + kx) * nop + og);
            gt(A, col, gg[kx]);
        }
        for (int a = 0; a < A; a++) {
            vf row[3] = {gg[0][a], gg[1][a], gg[2][a]}, r[6];
            gt(A, row, r);
            for (int b = 0; b < A; b++) vf_store(u + (size_t)(a * A + b) * pstride + og, r[b]);
        }
    }
}

/* ------------------------------------------------------------------ GEMM */

/* The micro-kernels keep R x NV accumulators in named variables (GCC keeps
 * an array of vectors in memory): c<r>_<v> for rows r < 12, vectors v < 2,
 * those with r >= R compiled away. */
#define UK_EACH(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11)
#define UK_DECL(r) vf c##r##_0 = vf_zero(), c##r##_1 = vf_zero();

/* c[R x VL NV] = a[R x kc] * b[kc x VL NV]; rows of a, b, c are lda, ldb,
 * ldc floats apart. R <= MR, NV = 1 or 2: at most 2 MR accumulators. */
WINO_INLINE void ukern(const int R, const int NV, int kc, const float *a, size_t lda, const float *b, size_t ldb,
                       float *c, size_t ldc) {
    UK_EACH(UK_DECL)
#define UK_ROW(r)                                                                                                      \
    if (R > r) {                                                                                                       \
        vf av = vf_bcast(a + (size_t)r * lda + k);                                                                     \
        c##r##_0 = vf_fma(av, b0, c##r##_0);                                                                           \
        if (NV == 2) c##r##_1 = vf_fma(av, b1, c##r##_1);                                                              \
    }
    for (int k = 0; k < kc; k++, b += ldb) {
        vf b0 = vf_load(b);
        vf b1 = NV == 2 ? vf_load(b + VL) : b0;
        UK_EACH(UK_ROW)
    }
#undef UK_ROW
#define UK_STORE(r)                                                                                                    \
    if (R > r) {                                                                                                       \
        vf_store(c + r * ldc, c##r##_0);                                                                               \
        if (NV == 2) vf_store(c + r * ldc + VL, c##r##_1);                                                             \
    }
    UK_EACH(UK_STORE)
#undef UK_STORE
}

/* FN(rows, NV_, args) with a run-time row count 1..MR; FN is ukern or
 * ukern_w. */
#define UK_CASE(FN, R_, NV_, ...)                                                                                      \
    case R_: FN(R_, NV_, __VA_ARGS__); break;
#if MR == 12
#define UK_CASES_ABOVE6(FN, NV_, ...)                                                                                  \
    UK_CASE(FN, 12, NV_, __VA_ARGS__) UK_CASE(FN, 11, NV_, __VA_ARGS__) UK_CASE(FN, 10, NV_, __VA_ARGS__)            \
    UK_CASE(FN, 9, NV_, __VA_ARGS__) UK_CASE(FN, 8, NV_, __VA_ARGS__) UK_CASE(FN, 7, NV_, __VA_ARGS__)
#elif MR == 6
#define UK_CASES_ABOVE6(FN, NV_, ...)
#else
#error "winograd_simd.h: MR must be 6 or 12"
#endif
#define UK_CASES(FN, NV_, ...)                                                                                         \
    switch (rows) {                                                                                                    \
        UK_CASES_ABOVE6(FN, NV_, __VA_ARGS__)                                                                          \
        UK_CASE(FN, 6, NV_, __VA_ARGS__) UK_CASE(FN, 5, NV_, __VA_ARGS__) UK_CASE(FN, 4, NV_, __VA_ARGS__)            \
        UK_CASE(FN, 3, NV_, __VA_ARGS__) UK_CASE(FN, 2, NV_, __VA_ARGS__)                                              \
    default: FN(1, NV_, __VA_ARGS__); break;                                                                           \
    }

static void ukern_n2v(int rows, int kc, const float *a, size_t lda, const float *b, size_t ldb, float *c, size_t ldc) {
    UK_CASES(ukern, 2, kc, a, lda, b, ldb, c, ldc)
}

static void ukern_n1v(int rows, int kc, const float *a, size_t lda, const float *b, size_t ldb, float *c, size_t ldc) {
    UK_CASES(ukern, 1, kc, a, lda, b, ldb, c, ldc)
}

/* c[nt x nc] = a[nt x kc] * b[kc x nc], kc and nc multiples of VL. Column
 * blocks outside, row blocks inside, so a 2 VL-column slice of b stays in
 * L1 (or L2 for the widest layers). */
static void gemm(int nt, int kc, int nc, const float *a, size_t lda, const float *b, size_t ldb, float *c,
                 size_t ldc) {
    for (int j = 0; j < nc; j += 2 * VL) {
        int wide = nc - j >= 2 * VL;
        int r = 0;
        if (wide) /* the common case inline: full MR x 2 VL blocks */
            for (; r + MR <= nt; r += MR)
                ukern(MR, 2, kc, a + (size_t)r * lda, lda, b + j, ldb, c + (size_t)r * ldc + j, ldc);
        for (; r < nt; r += MR) {
            int rows = nt - r < MR ? nt - r : MR;
            const float *ar = a + (size_t)r * lda;
            float *cr = c + (size_t)r * ldc + j;
            if (wide)
                ukern_n2v(rows, kc, ar, lda, b + j, ldb, cr, ldc);
            else
                ukern_n1v(rows, kc, ar, lda, b + j, ldb, cr, ldc);
        }
    }
}

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
static void prefetch_in(const dj_wino_job *jb, int A, int m, const cursor *c) {
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
static void prefetch_out(const dj_wino_job *jb, int m, const cursor *c) {
    int oy0 = c->ty * m, ox0 = c->tx * m;
    int rows = jb->oh - oy0 < m ? jb->oh - oy0 : m, cols = jb->ow - ox0 < m ? jb->ow - ox0 : m;
    size_t bytes = (size_t)cols * jb->co * sizeof(float);
    for (int i = 0; i < rows; i++)
        prefetch_span((const char *)(jb->y + (((size_t)c->img * jb->oh + oy0 + i) * jb->ow + ox0) * jb->co), bytes, 1);
}

WINO_INLINE void run_thread(const int A, const dj_wino *o, const dj_wino_job *jb, int tb, int tid, int nth) {
    const int m = A - 2, P = A * A;
    const int cip = round_lanes(jb->ci), cop = round_lanes(jb->co);
    float *ws = o->ws + (size_t)tid * o->ws_thread;
    size_t cpmax = (size_t)(o->cinp > o->coutp ? o->cinp : o->coutp);
    float *V = ws, *M = ws + dj_wino_round16((size_t)P * (size_t)tb * cpmax), *tmp = M + dj_wino_round16((size_t)P * tb * cpmax);

    if (jb->transform) {
        /* Transformed filter: rows i of U[p] (cip x cop), split between threads. */
        size_t upstride = (size_t)cip * cop;
#pragma omp for schedule(static)
        for (int i = 0; i < cip; i++)
            filter_row(A, jb->wt, o->cin, o->cout, jb->backward, i, jb->u + (size_t)i * cop, upstride, cop, tmp);
        /* implicit barrier: U is complete before any thread uses it */
    }

    const int th = (jb->oh + m - 1) / m, tw = (jb->ow + m - 1) / m;
    const long long per_img = (long long)th * tw, total = per_img * jb->n;
    const long long t0 = total * tid / nth, t1 = total * (tid + 1) / nth;
    /* V and M: [tile][position][channel] */
    const size_t vts = (size_t)cip * P, mts = (size_t)cop * P;
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
            gemm(nb, cip, cop, V + (size_t)p * cip, vts, jb->u + (size_t)p * cip * cop, cop, M + (size_t)p * cop, mts);
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

static void run_thread_f4(const dj_wino *o, const dj_wino_job *jb, int tb, int tid, int nth) {
    run_thread(6, o, jb, tb, tid, nth);
}
static void run_thread_f2(const dj_wino *o, const dj_wino_job *jb, int tb, int tid, int nth) {
    run_thread(4, o, jb, tb, tid, nth);
}

#endif
