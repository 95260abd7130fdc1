/* Random numbers: xoshiro256** seeded through splitmix64 (see rng.h).
 *
 * Everything here is a pure function of the 256-bit state, so a run that
 * saves dj_rng_to_hex() and restores it with dj_rng_from_hex() continues the
 * exact same sequence. Nothing depends on the platform's rand() or on libm
 * beyond log/cos/sqrt in dj_rng_normal. */
#include <math.h>
#include <stdio.h>

#include "dmvjnd/core.h"
#include "dmvjnd/rng.h"

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

/* splitmix64 (Vigna): advances *x by the golden-ratio increment and returns a
 * well-mixed word. Used to expand a 64-bit seed into the 256-bit state because
 * xoshiro must not start from a state with long runs of zero bits. */
static inline uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* The all-zero state is the one fixed point of xoshiro (it outputs 0
 * forever). splitmix64 never yields four zero words in a row in practice,
 * but the guard costs nothing and makes the invariant unconditional. */
static void ensure_nonzero(dj_rng *r) {
    if ((r->s[0] | r->s[1] | r->s[2] | r->s[3]) == 0) r->s[0] = 0x9e3779b97f4a7c15ull;
}

void dj_rng_seed(dj_rng *r, uint64_t seed) {
    uint64_t x = seed;
    for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&x);
    ensure_nonzero(r);
}

uint64_t dj_rng_u64(dj_rng *r) {
    uint64_t *s = r->s;
    const uint64_t result = rotl(s[1] * 5, 7) * 9;
    const uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

float dj_rng_uniform(dj_rng *r) {
    /* The top 24 bits (the best ones of xoshiro) times 2^-24: every value is
     * an exact float and 1.0f is never produced, which (float)(u64 * 2^-64)
     * could do by rounding up. */
    return (float)(dj_rng_u64(r) >> 40) * 0x1.0p-24f;
}

uint32_t dj_rng_below(dj_rng *r, uint32_t n) {
    if (n <= 1) return 0; /* n == 0 is a caller bug; 0 is the only safe answer */
    /* Lemire's multiply-shift with rejection ("Fast random integer generation
     * in an interval", 2019): x*n/2^32 is exact for uniform x except that
     * (2^32 mod n) low products map one extra x to some results; rejecting
     * low words below that threshold removes the bias. The division happens
     * only on the rare path. */
    uint64_t m = (dj_rng_u64(r) >> 32) * (uint64_t)n;
    uint32_t low = (uint32_t)m;
    if (low < n) {
        uint32_t threshold = (uint32_t)(-n) % n; /* = 2^32 mod n */
        while (low < threshold) {
            m = (dj_rng_u64(r) >> 32) * (uint64_t)n;
            low = (uint32_t)m;
        }
    }
    return (uint32_t)(m >> 32);
}

float dj_rng_normal(dj_rng *r) {
    /* Box-Muller, cosine branch only: using one output per call (instead of
     * caching the sine partner) keeps the generator's whole state in s[], so
     * the hex checkpoint is complete. u1 is taken in (0, 1] so log never sees
     * 0. Computed in double; the float result is then correctly rounded. */
    double u1 = 1.0 - (double)dj_rng_uniform(r);
    double u2 = (double)dj_rng_uniform(r);
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586476925 * u2));
}

void dj_rng_shuffle(dj_rng *r, int32_t *idx, int n) {
    /* Fisher-Yates from the end: position i takes a uniform pick among the
     * i+1 not yet placed, so every permutation has probability 1/n!. */
    for (int i = n - 1; i > 0; i--) {
        uint32_t j = dj_rng_below(r, (uint32_t)i + 1);
        int32_t t = idx[i];
        idx[i] = idx[j];
        idx[j] = t;
    }
}

dj_rng dj_rng_fork(const dj_rng *r, uint64_t stream) {
    /* Hash the whole parent state together with the stream number into a
     * 64-bit key, then seed the child from the key like dj_rng_seed does.
     * Each absorption step is a bijective mix, so any change of a state word
     * or of `stream` changes the key unpredictably; different streams of one
     * parent (and the parent's own sequence) are therefore unrelated. The
     * parent is read only, so forking N workers is order-independent. */
    uint64_t key = stream ^ 0x6a09e667f3bcc909ull; /* sqrt(2) digits: not a seed users pick */
    for (int i = 0; i < 4; i++) {
        uint64_t x = key ^ r->s[i];
        key = splitmix64(&x);
    }
    dj_rng child;
    dj_rng_seed(&child, key);
    return child;
}

void dj_rng_to_hex(const dj_rng *r, char *buf) {
    /* s[0] first, each word big-endian: the text reads like four %016x words. */
    static const char digits[] = "0123456789abcdef";
    for (int i = 0; i < 4; i++)
        for (int k = 0; k < 16; k++) buf[i * 16 + k] = digits[(r->s[i] >> (60 - 4 * k)) & 15];
    buf[64] = '\0';
}

static int hex_value(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

int dj_rng_from_hex(dj_rng *r, const char *hex) {
    if (!hex) return dj_error(DJ_EFORMAT, "rng state: NULL string, expected 64 hex digits");
    uint64_t s[4] = {0, 0, 0, 0};
    for (int i = 0; i < 64; i++) {
        if (hex[i] == '\0')
            return dj_error(DJ_EFORMAT, "rng state \"%.80s\": %d hex digits, expected 64", hex, i);
        int v = hex_value(hex[i]);
        if (v < 0)
            return dj_error(DJ_EFORMAT, "rng state \"%.80s\": character %d is not a hex digit", hex, i);
        s[i / 16] = (s[i / 16] << 4) | (uint64_t)v;
    }
    /* Strict: trailing text means the field was not what we think it is. */
    if (hex[64] != '\0')
        return dj_error(DJ_EFORMAT, "rng state \"%.80s\": more than 64 hex digits", hex);
    if ((s[0] | s[1] | s[2] | s[3]) == 0)
        return dj_error(DJ_EFORMAT, "rng state is all zero, which xoshiro256** cannot leave");
    for (int i = 0; i < 4; i++) r->s[i] = s[i];
    return DJ_OK;
}
