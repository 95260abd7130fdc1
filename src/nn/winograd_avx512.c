/* The Winograd kernels (winograd_simd.h, winograd_simd_bwdw.h) for
 * AVX-512 (F, BW, VL, DQ): 16 lanes, 12 x 32 GEMM micro-kernel (24 of the
 * 32 zmm registers accumulate), masked loads and stores for channel tails.
 * Compiled for AVX-512 whatever the build's flags, so the table exists on
 * every x86-64 build; winograd.c calls it only on a CPU with AVX-512
 * (nn/conv_path.c). */
/* Headers first, outside the target region below. */
#include <immintrin.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "nn/winograd_impl.h"

#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx2,fma"))),              \
                             apply_to = function)
#elif defined(__GNUC__)
#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,avx2,fma")
#endif


#define WINO_INLINE static inline __attribute__((always_inline))
#define VL 16
#define MR 12

typedef __m512 vf;
WINO_INLINE vf vf_zero(void) { return _mm512_setzero_ps(); }
WINO_INLINE vf vf_set1(float a) { return _mm512_set1_ps(a); }
WINO_INLINE vf vf_bcast(const float *p) { return _mm512_set1_ps(*p); }
WINO_INLINE vf vf_load(const float *p) { return _mm512_loadu_ps(p); }
WINO_INLINE void vf_store(float *p, vf a) { _mm512_storeu_ps(p, a); }
WINO_INLINE vf vf_add(vf a, vf b) { return _mm512_add_ps(a, b); }
WINO_INLINE vf vf_sub(vf a, vf b) { return _mm512_sub_ps(a, b); }
WINO_INLINE vf vf_mul(vf a, vf b) { return _mm512_mul_ps(a, b); }
WINO_INLINE vf vf_fma(vf a, vf b, vf c) { return _mm512_fmadd_ps(a, b, c); }   /* a*b + c */
WINO_INLINE vf vf_fnma(vf a, vf b, vf c) { return _mm512_fnmadd_ps(a, b, c); } /* c - a*b */
WINO_INLINE vf vf_relu(vf a) { return _mm512_max_ps(a, _mm512_setzero_ps()); }

/* First n (< 16) lanes from p, zeros above; masked-off lanes are neither
 * read nor written (no fault past p + n). */
WINO_INLINE __mmask16 lane_mask(int n) { return (__mmask16)((1u << n) - 1u); }
WINO_INLINE vf vf_loadn(const float *p, int n) { return _mm512_maskz_loadu_ps(lane_mask(n), p); }
WINO_INLINE void vf_storen(float *p, int n, vf a) { _mm512_mask_storeu_ps(p, lane_mask(n), a); }

#define WINO_ISA "avx512"
#define WINO_TABLE dj_wino_avx512_kernels
#include "nn/winograd_simd.h"
#include "nn/winograd_simd_bwdw.h"


#if defined(__clang__)
#pragma clang attribute pop
#elif defined(__GNUC__)
#pragma GCC pop_options
#endif
