/*
 * libFuzzer harness for the JPEG decoder (src/codec/jpeg.c, over
 * libjpeg-turbo), with the encoder and the coefficient suppression run on
 * what it accepts.
 *
 * Properties checked beyond "no crash, no leak, no UB":
 *   - a failure returns DJ_EFORMAT (or DJ_ENOMEM), leaves the outputs empty
 *     and sets a message that starts with "jpeg decode:";
 *   - a success gives 1..DJ_IMAGE_MAX_SIDE pixels per side and the pixels;
 *   - a decoded image of up to 48x48 pixels is encoded at a quality taken
 *     from the input, decodes again to the same size, and its payload is
 *     below its size; then it is suppressed with a budget taken from the
 *     input bytes, and every pixel of the result's decode lies within
 *     max(budget, |plain - x|) with a payload no larger than plain's.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dmvjnd/codec.h"
#include "dmvjnd/dmvjnd.h"
#include "dmvjnd/image.h"

#define REQUIRE(cond)                                                                                                  \
    do {                                                                                                               \
        if (!(cond)) __builtin_trap();                                                                                 \
    } while (0)

static void quiet(int level, const char *msg, void *user) {
    (void)level;
    (void)msg;
    (void)user;
}

static void round_trip(const uint8_t *x, int h, int w, const uint8_t *data, size_t size) {
    int quality = 1 + data[size / 2] % 100;
    dj_coded plain, sup;
    REQUIRE(dj_jpeg_encode(x, h, w, quality, &plain) == 0);
    REQUIRE(plain.payload > 0 && plain.payload < plain.size);
    uint8_t *dp;
    int hh, ww;
    REQUIRE(dj_jpeg_decode(plain.data, plain.size, &dp, &hh, &ww) == 0 && hh == h && ww == w);

    size_t n = (size_t)h * w * 3;
    float *budget = malloc(n * sizeof *budget);
    REQUIRE(budget);
    for (size_t i = 0; i < n; i++) budget[i] = (float)(data[i % size] % 48) * 0.5f;
    dj_suppress_stats st;
    REQUIRE(dj_jpeg_encode_suppressed(x, h, w, quality, budget, &sup, &st) == 0);
    REQUIRE(sup.payload <= plain.payload && st.blocks_restored <= st.blocks);
    uint8_t *ds;
    REQUIRE(dj_jpeg_decode(sup.data, sup.size, &ds, &hh, &ww) == 0 && hh == h && ww == w);
    for (size_t i = 0; i < n; i++) {
        int bound = abs((int)dp[i] - (int)x[i]);
        if ((int)budget[i] > bound) bound = (int)budget[i];
        REQUIRE(abs((int)ds[i] - (int)x[i]) <= bound);
    }
    free(ds);
    free(dp);
    free(budget);
    dj_coded_free(&sup);
    dj_coded_free(&plain);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static int init;
    if (!init) {
        dj_set_log(quiet, NULL, DJ_LOG_ERROR);
        init = 1;
    }
    uint8_t *rgb = (uint8_t *)1;
    int h = -1, w = -1;
    int rc = dj_jpeg_decode(data, size, &rgb, &h, &w);
    if (rc) {
        REQUIRE((rc == DJ_EFORMAT || rc == DJ_ENOMEM) && rgb == NULL && h == 0 && w == 0);
        REQUIRE(strncmp(dj_last_error(), "jpeg decode: ", 13) == 0 && dj_last_error()[13]);
        return 0;
    }
    REQUIRE(h >= 1 && w >= 1 && h <= DJ_IMAGE_MAX_SIDE && w <= DJ_IMAGE_MAX_SIDE && rgb);
    size_t n = (size_t)h * (size_t)w * 3;
    volatile uint8_t sink = 0;
    for (size_t i = 0; i < n; i += 4093) sink ^= rgb[i]; /* touch: ASan checks the extent */
    sink ^= rgb[n - 1];
    (void)sink;
    if (h <= 48 && w <= 48) round_trip(rgb, h, w, data, size);
    free(rgb);
    return 0;
}
