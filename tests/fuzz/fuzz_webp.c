/*
 * libFuzzer harness for the WebP decoder and payload parser
 * (src/codec/webp.c, over libwebp), with a lossy re-encode of what it
 * accepts.
 *
 * Properties checked beyond "no crash, no leak, no UB":
 *   - a failure returns DJ_EFORMAT (or DJ_ENOMEM), leaves the outputs empty
 *     and sets a message that starts with "webp decode:";
 *   - a success gives 1..DJ_IMAGE_MAX_SIDE pixels per side and the pixels;
 *   - dj_webp_payload_bytes either fails with DJ_EFORMAT or gives a payload
 *     smaller than the input;
 *   - a decoded image of up to 64x64 pixels re-encodes (quality from the
 *     input), decodes to the same size, and has a payload below its size.
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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static int init;
    if (!init) {
        dj_set_log(quiet, NULL, DJ_LOG_ERROR);
        init = 1;
    }
    size_t payload = 1;
    int prc = dj_webp_payload_bytes(data, size, &payload);
    REQUIRE(prc == 0 ? payload < size : (prc == DJ_EFORMAT && payload == 0));

    uint8_t *rgb = (uint8_t *)1;
    int h = -1, w = -1;
    int rc = dj_webp_decode(data, size, &rgb, &h, &w);
    if (rc) {
        REQUIRE((rc == DJ_EFORMAT || rc == DJ_ENOMEM) && rgb == NULL && h == 0 && w == 0);
        REQUIRE(strncmp(dj_last_error(), "webp decode: ", 13) == 0 && dj_last_error()[13]);
        return 0;
    }
    REQUIRE(h >= 1 && w >= 1 && h <= DJ_IMAGE_MAX_SIDE && w <= DJ_IMAGE_MAX_SIDE && rgb);
    size_t n = (size_t)h * (size_t)w * 3;
    volatile uint8_t sink = 0;
    for (size_t i = 0; i < n; i += 4093) sink ^= rgb[i];
    sink ^= rgb[n - 1];
    (void)sink;
    if (h <= 64 && w <= 64) {
        dj_coded c;
        REQUIRE(dj_webp_encode(rgb, h, w, 1 + data[size / 2] % 100, &c) == 0);
        REQUIRE(c.payload > 0 && c.payload < c.size);
        uint8_t *back;
        int hh, ww;
        REQUIRE(dj_webp_decode(c.data, c.size, &back, &hh, &ww) == 0 && hh == h && ww == w);
        free(back);
        dj_coded_free(&c);
    }
    free(rgb);
    return 0;
}
