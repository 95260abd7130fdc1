/*
 * libFuzzer harness for the strict JSON parser and writer (src/io/json.c).
 *
 * Build and run:
 *   clang -std=c11 -g -O1 -fsanitize=fuzzer,address,undefined -Iinclude -Isrc -D_GNU_SOURCE \
 *       tests/fuzz/fuzz_json.c src/io/json.c src/core/error.c -lm -o /tmp/fuzz_json
 *   mkdir -p /tmp/fuzz_json_corpus
 *   /tmp/fuzz_json -max_total_time=120 /tmp/fuzz_json_corpus tests/fuzz/corpus/json
 *
 * Properties: whatever parses can be written (compact and pretty), what is
 * written parses again, and writing is idempotent: write(parse(write(x)))
 * equals write(x), byte for byte.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dmvjnd/dmvjnd.h"
#include "dmvjnd/json.h"

#define REQUIRE(cond)                                                                                                  \
    do {                                                                                                               \
        if (!(cond)) __builtin_trap();                                                                                 \
    } while (0)

static char *emit(const dj_json *v, int indent, size_t *len) {
    dj_jw w;
    dj_jw_init(&w, indent);
    dj_jw_value(&w, v);
    char *text;
    REQUIRE(dj_jw_finish(&w, &text, len) == 0);
    return text;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    dj_json *v;
    /* Small depth on odd sizes to exercise the limit, default otherwise. */
    int depth = size & 1 ? 4 : 0;
    if (dj_json_parse((const char *)data, size, "fuzz", depth, &v)) {
        REQUIRE(v == NULL);
        return 0;
    }
    size_t len1, len2, lenp;
    char *text1 = emit(v, 0, &len1);
    char *pretty = emit(v, 2, &lenp);
    dj_json *v2, *vp;
    REQUIRE(dj_json_parse(text1, len1, "again", DJ_JSON_MAX_DEPTH, &v2) == 0);
    REQUIRE(dj_json_parse(pretty, lenp, "pretty", DJ_JSON_MAX_DEPTH, &vp) == 0);
    char *text2 = emit(v2, 0, &len2);
    REQUIRE(len1 == len2 && memcmp(text1, text2, len1) == 0);
    char *text3 = emit(vp, 0, &len2);
    REQUIRE(len1 == len2 && memcmp(text1, text3, len1) == 0);
    free(text1);
    free(text2);
    free(text3);
    free(pretty);
    dj_json_free(v);
    dj_json_free(v2);
    dj_json_free(vp);
    return 0;
}
