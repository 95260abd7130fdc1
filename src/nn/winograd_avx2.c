/* The Winograd kernels (winograd_simd.h, winograd_simd_bwdw.h) for AVX2 +
 * FMA: 8 lanes, 6 x 16 GEMM micro-kernel (12 of the 16 ymm registers
 * accumulate). Compiled for AVX2 whatever the build's flags, so the table
 * exists on every x86-64 build; winograd.c calls it only on a CPU with AVX2
 * and FMA (nn/conv_path.c). */
/* Headers first, outside the target region below. */
#include <immintrin.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "nn/winograd_impl.h"

#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2,fma"))), apply_to = function)
#elif defined(__GNUC__)
#pragma GCC push_options
#pragma GCC target("avx2,fma")
#endif


#define WINO_INLINE static inline __attribute__((always_inline))
#define VL 8
#define MR 6

typedef __m256 vf;
WINO_INLINE vf vf_zero(void) { return _mm256_setzero_ps(); }
WINO_INLINE vf vf_set1(float a) { return _mm256_set1_ps(a); }
WINO_INLINE vf vf_bcast(const float *p) { return _mm256_broadcast_ss(p); }
WINO_INLINE vf vf_load(const float *p) { return _mm256_loadu_ps(p); }
WINO_INLINE void vf_store(float *p, vf a) { _mm256_storeu_ps(p, a); }
WINO_INLINE vf vf_add(vf a, vf b) { return _mm256_add_ps(a, b); }
WINO_INLINE vf vf_sub(vf a, vf b) { return _mm256_sub_ps(a, b); }
WINO_INLINE vf vf_mul(vf a, vf b) { return _mm256_mul_ps(a, b); }
WINO_INLINE vf vf_fma(vf a, vf b, vf c) { return _mm256_fmadd_ps(a, b, c); }   /* a*b + c */
WINO_INLINE vf vf_fnma(vf a, vf b, vf c) { return _mm256_fnmadd_ps(a, b, c); } /* c - a*b */
WINO_INLINE vf vf_relu(vf a) { return _mm256_max_ps(a, _mm256_setzero_ps()); }

static const int32_t lane_tab[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};
WINO_INLINE __m256i lane_mask(int n) { return _mm256_loadu_si256((const __m256i *)(const void *)(lane_tab + 8 - n)); }
/* First n (< 8) lanes from p, zeros above; nothing past p + n is read. */
WINO_INLINE vf vf_loadn(const float *p, int n) { return _mm256_maskload_ps(p, lane_mask(n)); }
WINO_INLINE void vf_storen(float *p, int n, vf a) { _mm256_maskstore_ps(p, lane_mask(n), a); }

#define WINO_ISA "avx2"
#define WINO_TABLE dj_wino_avx2_kernels
#include "nn/winograd_simd.h"
#include "nn/winograd_simd_bwdw.h"


#if defined(__clang__)
#pragma clang attribute pop
#elif defined(__GNUC__)
#pragma GCC pop_options
#endif
