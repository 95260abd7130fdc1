/*
 * libFuzzer harness for the safetensors reader (and through it the JSON
 * parser), with a write/re-read round trip of whatever it accepts.
 *
 * Build and run (needs clang and libclang-rt-*-dev):
 *   clang -std=c11 -g -O1 -fsanitize=fuzzer,address,undefined -Iinclude -Isrc -D_GNU_SOURCE \
 *       tests/fuzz/fuzz_safetensors.c src/io/safetensors.c src/io/json.c src/util/fileio.c \
 *       src/core/error.c src/core/tensor.c -lm -o /tmp/fuzz_safetensors
 *   mkdir -p /tmp/fuzz_st_corpus
 *   /tmp/fuzz_safetensors -dict=tests/fuzz/safetensors.dict -max_total_time=120 \
 *       /tmp/fuzz_st_corpus tests/fuzz/corpus/safetensors
 * (The first corpus directory receives new inputs; keep the seeds clean.)
 *
 * Properties checked beyond "no crash, no leak, no UB":
 *   - every accepted tensor lies inside the input and lookups by name find it;
 *   - F32 data is 4-byte aligned and equals the input bytes;
 *   - re-encoding the accepted F32/I64 tensors and metadata gives a file that
 *     opens again with identical names, shapes, bytes and metadata.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dmvjnd/dmvjnd.h"
#include "dmvjnd/safetensors.h"

#define REQUIRE(cond)                                                                                                  \
    do {                                                                                                               \
        if (!(cond)) __builtin_trap();                                                                                 \
    } while (0)

static void quiet(int level, const char *msg, void *user) {
    (void)level;
    (void)msg;
    (void)user;
}

static void roundtrip(const dj_st_file *f) {
    dj_st_writer *w;
    if (dj_st_writer_new(&w)) return;
    size_t n = dj_st_count(f);
    for (size_t i = 0; i < n; i++) {
        const dj_st_tensor *t = dj_st_at(f, i);
        int st = 0;
        if (strcmp(t->dtype, "F32") == 0) st = dj_st_writer_add_f32(w, t->name, t->ndim, t->shape, t->f32);
        else if (strcmp(t->dtype, "I64") == 0)
            st = dj_st_writer_add_i64(w, t->name, t->ndim, t->shape, (const int64_t *)t->raw);
        /* I64 data is only memcpy'd by the writer, so raw's alignment does
         * not matter. The reader accepts names the writer refuses (empty):
         * skip the round trip for those. */
        if (st) {
            dj_st_writer_free(w);
            return;
        }
    }
    for (size_t i = 0; i < dj_st_metadata_count(f); i++) {
        const char *k, *v;
        REQUIRE(dj_st_metadata_at(f, i, &k, &v) == 0);
        REQUIRE(dj_st_writer_set_metadata(w, k, v) == 0);
    }
    void *bytes;
    size_t size;
    REQUIRE(dj_st_writer_encode(w, &bytes, &size) == 0);
    dj_st_file *g;
    REQUIRE(dj_st_open_memory(bytes, size, "re-encoded", 0, &g) == 0);
    REQUIRE(dj_st_metadata_count(g) == dj_st_metadata_count(f));
    for (size_t i = 0; i < dj_st_metadata_count(f); i++) {
        const char *k, *v, *k2, *v2;
        dj_st_metadata_at(f, i, &k, &v);
        dj_st_metadata_at(g, i, &k2, &v2);
        REQUIRE(strcmp(k, k2) == 0 && strcmp(v, v2) == 0);
    }
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        const dj_st_tensor *t = dj_st_at(f, i);
        if (strcmp(t->dtype, "F32") != 0 && strcmp(t->dtype, "I64") != 0) continue;
        const dj_st_tensor *u = dj_st_at(g, m++);
        REQUIRE(u && strcmp(u->name, t->name) == 0 && strcmp(u->dtype, t->dtype) == 0);
        REQUIRE(u->ndim == t->ndim && u->nbytes == t->nbytes);
        REQUIRE(t->ndim == 0 || memcmp(u->shape, t->shape, (size_t)t->ndim * sizeof *t->shape) == 0);
        REQUIRE(t->nbytes == 0 || memcmp(u->raw, t->raw, t->nbytes) == 0);
    }
    REQUIRE(m == dj_st_count(g));
    dj_st_close(g);
    dj_free(bytes);
    dj_st_writer_free(w);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static int init;
    if (!init) {
        dj_set_log(quiet, NULL, DJ_LOG_ERROR);
        init = 1;
    }
    dj_st_file *f;
    /* The last byte picks whether the finite check runs on open; it is
     * still part of the input, so the corpus stays valid files. */
    int flags = size && (data[size - 1] & 1) ? DJ_ST_CHECK_FINITE : 0;
    int st = dj_st_open_memory(data, size, "fuzz.safetensors", flags, &f);
    if (st) {
        REQUIRE(st < 0 && f == NULL && dj_last_error()[0]);
        return 0;
    }
    size_t n = dj_st_count(f);
    for (size_t i = 0; i < n; i++) {
        const dj_st_tensor *t = dj_st_at(f, i);
        REQUIRE(t && t->name && t->dtype && t->ndim >= 0);
        REQUIRE(dj_st_find(f, t->name) == t);
        const uint8_t *raw = t->raw;
        REQUIRE(t->nbytes <= size && (t->nbytes == 0 || raw != NULL));
        if (t->dtype_bits) REQUIRE(t->nbytes == (t->count * (size_t)t->dtype_bits + 7) / 8);
        if (strcmp(t->dtype, "F32") == 0) {
            const float *p;
            REQUIRE(dj_st_get_f32(f, t->name, t->ndim, t->shape, &p) == 0 && p == t->f32);
            REQUIRE(((uintptr_t)p & 3) == 0 && t->nbytes == t->count * 4);
            REQUIRE(t->nbytes == 0 || memcmp(p, raw, t->nbytes) == 0);
        } else {
            const float *p;
            REQUIRE(dj_st_get_f32(f, t->name, -1, NULL, &p) == DJ_EFORMAT);
        }
        if (strcmp(t->dtype, "I64") == 0 && t->count <= 4096) {
            int64_t buf[4096];
            REQUIRE(dj_st_read_i64(f, t->name, -1, NULL, buf) == 0);
        }
    }
    int fin = dj_st_check_finite(f);
    REQUIRE(fin == 0 || fin == DJ_ENUMERIC);
    if (flags) REQUIRE(fin == 0);
    for (size_t i = 0; i < dj_st_metadata_count(f); i++) {
        const char *k, *v;
        REQUIRE(dj_st_metadata_at(f, i, &k, &v) == 0 && dj_st_metadata(f, k) != NULL);
    }
    roundtrip(f);
    dj_st_close(f);
    return 0;
}
