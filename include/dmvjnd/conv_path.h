/* Which kernel runs the 3x3 stride-1 convolutions (process-wide).
 *
 * Paths, by name:
 *   "winograd"         the fastest Winograd path this CPU runs (the default):
 *                      winograd-avx512 where the CPU has AVX-512 (F, BW,
 *                      VL, DQ), else winograd-avx2 where it has AVX2 + FMA,
 *                      else direct
 *   "winograd-avx2"    the library's Winograd kernel, 8 lanes (AVX2 + FMA)
 *   "winograd-avx512"  the same kernel, 16 lanes (AVX-512)
 *   "direct"           oneDNN's direct kernel for every convolution
 * The kernel is chosen at run time from the CPU, never from the build's
 * compiler flags: a binary carries both SIMD paths and runs only the ones
 * the CPU has.
 *
 * The choice is process-wide: it is a property of the machine and the run,
 * and every convolution of a network must run the same kernels (their
 * rounding differs, ~1e-6 relative) so results do not depend on when a
 * layer was created. The environment variable DMVJND_CONV (same names) is
 * read once, when the path is first needed; dj_conv_set_path overrides it.
 * Set the path before creating convolutions: layers already created keep
 * theirs. Not to be called while other threads create convolutions. CLI:
 * `dmvjnd --conv NAME <command>`. */
#ifndef DMVJND_CONV_PATH_H
#define DMVJND_CONV_PATH_H

/* Selects a path by name. DJ_EINVAL for an unknown name, or for a forced
 * path this CPU cannot run (the message names the missing CPU feature):
 * never a silent fallback. */
int dj_conv_set_path(const char *name);

/* 0 when the path in use is valid; DJ_EINVAL (with the message) when
 * DMVJND_CONV names an unknown path or one this CPU cannot run. */
int dj_conv_path_check(void);

/* The path in use: "winograd-avx512", "winograd-avx2" or "direct" ("winograd"
 * resolved for this CPU), or "invalid" when dj_conv_path_check fails. */
const char *dj_conv_path_name(void);

#endif
