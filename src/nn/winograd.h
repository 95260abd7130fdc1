/* Winograd convolution for 3x3 kernels, stride 1 (internal API).
 *
 * The library's own kernel, used by src/nn/conv.c for convolutions created
 * with dj_conv_desc.winograd on 3x3 stride-1 pad-1 layers (oneDNN 2.6.3 has
 * no Winograd for AVX2 machines). Activations NHWC float32, weights OIHW
 * (PyTorch), any h, w (partial edge tiles) and any channel counts.
 *
 * Algorithm F(m x m, 3x3), m = 4 by default (6x6 input tiles, 36 Winograd
 * positions, 4x fewer multiplications than direct convolution) or m = 2
 * (4x4 tiles, 16 positions, 2.25x fewer). Per block of tiles: input
 * transform -> one small GEMM [tiles x Cin] x [Cin x Cout] per position
 * (SIMD micro-kernel) -> output transform with bias,
 * residual sum and ReLU, written straight to NHWC. Tile blocks are split
 * between OpenMP threads; the workspace lives in the object (allocated on the
 * first call, grown only if the thread count grows).
 *
 * Backward-data of a 3x3 stride-1 conv with padding p is the same kernel on
 * dy with the filter transposed in (out, in), rotated 180 degrees and padding
 * 2 - p. Backward-weights uses the transpose of the forward's algebra: per
 * tile, dL/dg = G^T [(A dY A^T) . (B^T d B)] G, the products summed over the
 * tiles by one GEMM per position (reduction over tiles) into per-thread
 * sums that are added at the end.
 *
 * Accuracy (tests/test_winograd.c, fp32): the largest error relative to the
 * largest |output| is ~5e-6 for F(4x4) and ~5e-7 for F(2x2) against a
 * double-precision direct convolution, and the same against oneDNN's direct
 * kernel on ResNet-20's layers.
 *
 * SIMD paths, chosen at run time from the CPU (never from the compiler
 * flags): 8-lane AVX2 + FMA (winograd_avx2.c) and 16-lane AVX-512
 * (winograd_avx512.c), one template for both (winograd_simd.h). An object
 * takes the process-wide path (include/dmvjnd/conv_path.h) when created;
 * dj_wino_set_isa forces one. There is no portable path: on a CPU with
 * neither, dj_conv runs oneDNN's direct kernel and dj_wino_create fails.
 *
 * Speed (bench/bench_winograd.c, AVX2 Zen 3, batch 128): F(4x4) runs
 * ResNet-20's 16/32/64-channel layers 2-3x faster than oneDNN's direct
 * kernel, forward, backward-data and backward-weights; F(2x2) is slower than
 * F(4x4) on all of them. Layers with fewer than 8 input channels are faster
 * on oneDNN. */
#ifndef DMVJND_NN_WINOGRAD_H
#define DMVJND_NN_WINOGRAD_H

#include "dmvjnd/tensor.h"

typedef struct dj_wino dj_wino;

/* cin, cout >= 1; pad in [0, 2]. frozen = 1: the transformed filters are
 * cached between calls (keyed by the weight pointer) until
 * dj_wino_weights_changed(); otherwise they are recomputed on every call. */
int dj_wino_create(dj_wino **out, int cin, int cout, int pad, int frozen);
void dj_wino_destroy(dj_wino *o);

/* Runs this object on the AVX-512 (avx512 = 1) or AVX2 (0) kernels; drops
 * its cached filters and workspaces. DJ_EINVAL, naming the missing CPU
 * feature, when the CPU lacks the instruction set. */
int dj_wino_set_isa(dj_wino *o, int avx512);

/* Tuning for tests and benchmarks: m = 2 or 4 (0 keeps the current),
 * tiles_per_block > 0 (0: automatic from the channel counts). */
int dj_wino_tune(dj_wino *o, int m, int tiles_per_block);
int dj_wino_tile_size(const dj_wino *o); /* m */

/* y = relu?(conv(x, w) + b + (accumulate ? y_old : 0)). x: n x h x w x cin,
 * y: n x (h + 2 pad - 2) x (w + 2 pad - 2) x cout, w: cout x cin x 3 x 3,
 * b: cout floats or NULL. x and y must not overlap. */
int dj_wino_forward(dj_wino *o, const dj_tensor *x, const float *w, const float *b, dj_tensor *y, int accumulate,
                    int relu);

/* dx (+)= dL/dx of the convolution above given dy = dL/dy (no bias, no
 * post-ops). dy: n x oh x ow x cout, dx: n x h x w x cin. */
int dj_wino_backward_data(dj_wino *o, const dj_tensor *dy, const float *w, dj_tensor *dx, int accumulate);

/* dw += dL/dw, db += dL/db (db may be NULL) of the convolution above, given
 * its input x and dy = dL/dy. Runs on its own tile size (default 4; see
 * dj_wino_tune_weights). */
int dj_wino_backward_weights(dj_wino *o, const dj_tensor *x, const dj_tensor *dy, float *dw, float *db);

/* Tile size m (2 or 4) of dj_wino_backward_weights. */
int dj_wino_tune_weights(dj_wino *o, int m);

/* Frozen objects: the weights behind the cached pointer changed. */
void dj_wino_weights_changed(dj_wino *o);

/* Implementation name for diagnostics, e.g. "dmvjnd:winograd_f4x3_avx512". */
const char *dj_wino_impl_name(const dj_wino *o);

#endif
