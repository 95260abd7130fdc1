/* Winograd backward-weights kernel: the SIMD template behind
 * winograd_avx2.c and winograd_avx512.c, included after winograd_simd.h
 * (whose macros, transforms and GEMM micro-kernel it uses), and the kernel
 * table of the compilation: WINO_TABLE, named "WINO_ISA". */
#ifndef DMVJND_NN_WINOGRAD_SIMD_BWDW_H
#define DMVJND_NN_WINOGRAD_SIMD_BWDW_H

#include <string.h>

#include "nn/winograd_simd.h"

/* ------------------------------------------------------ backward-weights */

/* dL/dg of a tile is G^T [(A dY A^T) . (B^T d B)] G (the transpose of the
 * forward Y = A^T [(G g G^T) . (B^T d B)] A): per block of tiles, the input
 * patches go through the forward's input transform (V, [t][p][Cinp]) and
 * the m x m output gradients through A . A^T (Z, [t][p][Coutp]); per
 * position p the thread's sums S[p] (Coutp x Cinp) gain Z[.][p]^T V[.][p]
 * (a GEMM whose reduction runs over the block's tiles). At the end the
 * threads' sums are added and mapped back to 3 x 3 by G^T . G. */

/* A y for F(4x4): 4 -> 6 (A^T is at6's matrix). */
WINO_INLINE void a6(const vf *y, vf *z) {
    const vf two = vf_set1(2.f), four = vf_set1(4.f), eight = vf_set1(8.f);
    vf e = vf_add(y[0], y[2]), o = vf_add(y[1], y[3]);
    vf e4 = vf_fma(four, y[2], y[0]), o8 = vf_fma(eight, y[3], vf_mul(two, y[1]));
    z[0] = y[0];
    z[1] = vf_add(e, o);
    z[2] = vf_sub(e, o);
    z[3] = vf_add(e4, o8);
    z[4] = vf_sub(e4, o8);
    z[5] = y[3];
}

/* A y for F(2x2): 2 -> 4. */
WINO_INLINE void a4(const vf *y, vf *z) {
    z[0] = y[0];
    z[1] = vf_add(y[0], y[1]);
    z[2] = vf_sub(y[0], y[1]);
    z[3] = vf_sub(vf_zero(), y[1]);
}

/* G^T v: A -> 3 (G as in gt()). */
WINO_INLINE void gtt(const int A, const vf *v, vf *r) {
    vf s12 = vf_add(v[1], v[2]), d21 = vf_sub(v[2], v[1]);
    if (A == 6) {
        vf s34 = vf_add(v[3], v[4]), d34 = vf_sub(v[3], v[4]);
        r[0] = vf_fma(vf_set1(1.f / 24), s34, vf_fnma(vf_set1(1.f / 6), s12, vf_mul(vf_set1(0.25f), v[0])));
        r[1] = vf_fma(vf_set1(1.f / 12), d34, vf_mul(vf_set1(1.f / 6), d21));
        r[2] = vf_add(vf_mul(vf_set1(1.f / 6), vf_sub(s34, s12)), v[5]);
    } else {
        vf h = vf_mul(vf_set1(0.5f), s12);
        r[0] = vf_add(v[0], h);
        r[1] = vf_mul(vf_set1(-0.5f), d21);
        r[2] = vf_add(h, v[3]);
    }
}

/* Z = A dY A^T of one tile, all channel groups: dy points at the tile's
 * top-left output pixel (rows ys floats apart, pixels c apart), rows x cols
 * of the m x m tile inside the image (the rest count as 0). Writes position
 * p, channel ch to z[p * round_lanes(c) + ch], padded lanes 0. */
WINO_INLINE void dy_tile_c(const int A, const float *dy, ptrdiff_t ys, const int c, int rows, int cols, float *z) {
    const int m = A - 2;
    const size_t pstride = (size_t)round_lanes(c);
    for (int g = 0; g * VL < c; g++) {
        int lanes = c - g * VL < VL ? c - g * VL : VL;
        vf t[4][6]; /* t[i][b]: row i of dY, A applied along the row */
        for (int i = 0; i < m; i++) {
            vf y[4];
            for (int j = 0; j < m; j++)
                y[j] = i < rows && j < cols ? vf_ld(dy + i * ys + (ptrdiff_t)j * c + g * VL, lanes) : vf_zero();
            if (A == 6)
                a6(y, t[i]);
            else
                a4(y, t[i]);
        }
        for (int b = 0; b < A; b++) {
            vf col[4], r[6];
            for (int i = 0; i < m; i++) col[i] = t[i][b];
            if (A == 6)
                a6(col, r);
            else
                a4(col, r);
            for (int a = 0; a < A; a++) vf_store(z + (size_t)(a * A + b) * pstride + g * VL, r[a]);
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

/* s[R x VL NV] += sum_t a[t * as + r] * b[t * bs + 0 .. VL NV - 1] over nt
 * tiles; rows of s ldc floats apart. R <= MR, NV = 1 or 2. */
WINO_INLINE void ukern_w(const int R, const int NV, int nt, const float *a, size_t as, const float *b, size_t bs,
                         float *s, size_t ldc) {
    UK_EACH(UK_DECL)
#define UW_LOAD(r)                                                                                                     \
    if (R > r) {                                                                                                       \
        c##r##_0 = vf_load(s + r * ldc);                                                                               \
        if (NV == 2) c##r##_1 = vf_load(s + r * ldc + VL);                                                             \
    }
    UK_EACH(UW_LOAD)
#undef UW_LOAD
#define UW_ROW(r)                                                                                                      \
    if (R > r) {                                                                                                       \
        vf av = vf_bcast(a + r);                                                                                       \
        c##r##_0 = vf_fma(av, b0, c##r##_0);                                                                           \
        if (NV == 2) c##r##_1 = vf_fma(av, b1, c##r##_1);                                                              \
    }
    for (int t = 0; t < nt; t++, a += as, b += bs) {
        vf b0 = vf_load(b);
        vf b1 = NV == 2 ? vf_load(b + VL) : b0;
        UK_EACH(UW_ROW)
    }
#undef UW_ROW
#define UW_STORE(r)                                                                                                    \
    if (R > r) {                                                                                                       \
        vf_store(s + r * ldc, c##r##_0);                                                                               \
        if (NV == 2) vf_store(s + r * ldc + VL, c##r##_1);                                                             \
    }
    UK_EACH(UW_STORE)
#undef UW_STORE
}

static void ukern_w_n2v(int rows, int nt, const float *a, size_t as, const float *b, size_t bs, float *s,
                        size_t ldc) {
    UK_CASES(ukern_w, 2, nt, a, as, b, bs, s, ldc)
}

static void ukern_w_n1v(int rows, int nt, const float *a, size_t as, const float *b, size_t bs, float *s,
                        size_t ldc) {
    UK_CASES(ukern_w, 1, nt, a, as, b, bs, s, ldc)
}

/* S[cop x cip] += Z^T V over nt tiles: z rows (output channels) contiguous,
 * tiles zs apart; v likewise with vs. */
static void gemm_w(int nt, int cop, int cip, const float *z, size_t zs, const float *v, size_t vs, float *s) {
    for (int j = 0; j < cip; j += 2 * VL) {
        int wide = cip - j >= 2 * VL;
        for (int r = 0; r < cop; r += MR) {
            int rows = cop - r < MR ? cop - r : MR;
            float *sr = s + (size_t)r * cip + j;
            const float *zr = z + r, *vj = v + j;
            if (wide && rows == MR)
                ukern_w(MR, 2, nt, zr, zs, vj, vs, sr, cip);
            else if (wide)
                ukern_w_n2v(rows, nt, zr, zs, vj, vs, sr, cip);
            else
                ukern_w_n1v(rows, nt, zr, zs, vj, vs, sr, cip);
        }
    }
}


WINO_INLINE void run_thread_w(const int A, const dj_wino *o, const dj_wino_wjob *jb, int tb, int tid, int nth) {
    const int m = A - 2, P = A * A;
    const int ci = o->cin, co = o->cout, cip = o->cinp, cop = o->coutp;
    float *ws = o->wsw + (size_t)tid * o->wsw_thread;
    float *V = ws, *Z = V + dj_wino_round16((size_t)P * tb * cip), *S = Z + dj_wino_round16((size_t)P * tb * cop);
    float *bsum = S + dj_wino_round16((size_t)P * cop * cip);
    memset(S, 0, (size_t)P * cop * cip * sizeof(float));
    memset(bsum, 0, (size_t)cop * sizeof(float));

    const int th = (jb->oh + m - 1) / m, tw = (jb->ow + m - 1) / m;
    const long long per_img = (long long)th * tw, total = per_img * jb->n;
    const long long t0 = total * tid / nth, t1 = total * (tid + 1) / nth;
    const size_t vts = (size_t)cip * P, zts = (size_t)cop * P;
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
            gemm_w(nb, cop, cip, Z + (size_t)p * cop, zts, V + (size_t)p * cip, vts, S + (size_t)p * cop * cip);
    }
#pragma omp barrier
    /* Sum the threads' S and map each (co, VL input channels) back to 3 x 3. */
    const int groups = cip / VL;
    const size_t s_off = (size_t)(S - ws);
#pragma omp for schedule(static)
    for (int q = 0; q < co * groups; q++) {
        int oc = q / groups, g = q % groups;
        vf sp[DJ_WINO_MAXP];
        for (int p = 0; p < P; p++) {
            size_t off = s_off + ((size_t)p * cop + oc) * cip + (size_t)g * VL;
            vf acc = vf_load(o->wsw + off);
            for (int t = 1; t < nth; t++) acc = vf_add(acc, vf_load(o->wsw + (size_t)t * o->wsw_thread + off));
            sp[p] = acc;
        }
        vf tk[3][6]; /* tk[ky][b] = sum_a G[a][ky] S[a][b] */
        for (int b = 0; b < A; b++) {
            vf col[6], r[3];
            for (int a = 0; a < A; a++) col[a] = sp[a * A + b];
            gtt(A, col, r);
            for (int k = 0; k < 3; k++) tk[k][b] = r[k];
        }
        float out[9][VL];
        for (int ky = 0; ky < 3; ky++) {
            vf r[3];
            gtt(A, tk[ky], r);
            for (int kx = 0; kx < 3; kx++) vf_store(out[ky * 3 + kx], r[kx]);
        }
        int lanes = ci - g * VL < VL ? ci - g * VL : VL;
        for (int l = 0; l < lanes; l++) {
            float *d = jb->dw + ((size_t)oc * ci + (size_t)g * VL + l) * 9;
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

static void run_thread_w_f4(const dj_wino *o, const dj_wino_wjob *jb, int tb, int tid, int nth) {
    run_thread_w(6, o, jb, tb, tid, nth);
}
static void run_thread_w_f2(const dj_wino *o, const dj_wino_wjob *jb, int tb, int tid, int nth) {
    run_thread_w(4, o, jb, tb, tid, nth);
}

const dj_wino_kernels WINO_TABLE = {
    .isa = WINO_ISA,
    .lanes = VL,
    .rows = MR,
    .run = {run_thread_f2, run_thread_f4},
    .run_w = {run_thread_w_f2, run_thread_w_f4},
};

#endif
