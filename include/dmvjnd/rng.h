/*
 * Random numbers: one seeded generator per job, so that a run is reproducible
 * and its state can be checkpointed and restored exactly.
 *
 * The generator is xoshiro256** (Blackman & Vigna), seeded through splitmix64.
 */
#ifndef DMVJND_RNG_H
#define DMVJND_RNG_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct dj_rng {
    uint64_t s[4];
} dj_rng;

void dj_rng_seed(dj_rng *r, uint64_t seed);
uint64_t dj_rng_u64(dj_rng *r);
/* Uniform in [0, 1) with 24 random bits (exactly representable as float). */
float dj_rng_uniform(dj_rng *r);
/* Uniform integer in [0, n), unbiased. n > 0. */
uint32_t dj_rng_below(dj_rng *r, uint32_t n);
/* Standard normal (Box-Muller; consumes two uniforms per call). */
float dj_rng_normal(dj_rng *r);
/* Fisher-Yates shuffle of idx[0..n). */
void dj_rng_shuffle(dj_rng *r, int32_t *idx, int n);
/* Independent stream for a worker or purpose: derived from the state of r
 * and `stream` without advancing r. */
dj_rng dj_rng_fork(const dj_rng *r, uint64_t stream);

/* Text form of the state (64 hex digits) for checkpoint metadata.
 * buf must hold at least 65 bytes. dj_rng_from_hex returns 0 or DJ_EFORMAT. */
void dj_rng_to_hex(const dj_rng *r, char *buf);
int dj_rng_from_hex(dj_rng *r, const char *hex);

#ifdef __cplusplus
}
#endif

#endif
