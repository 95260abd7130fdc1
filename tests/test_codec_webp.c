/* WebP encode / decode / payload (src/codec/webp.c) against dwebp and an
 * independent RIFF walk; bad input. */
#include <stdint.h>
#include <stdlib.h>
#include <webp/encode.h>

#include "check.h"
#include "codec_util.h"
#include "dmvjnd/codec.h"
#include "dmvjnd/dmvjnd.h"

static uint32_t rd32(const uint8_t *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24; }

/* Higher quality: more bytes and a higher PSNR (qualities far enough apart
 * that libwebp's rate control is monotone on this image). */
static void test_quality_monotone(void) {
    cu_seed(11);
    int h = 48, w = 64;
    uint8_t *x = cu_image(h, w, 30);
    static const int qs[] = {5, 30, 60, 85, 100};
    size_t prev_size = 0, prev_pay = 0;
    double prev_psnr = 0;
    for (int i = 0; i < 5; i++) {
        dj_coded c;
        CHECK_OK(dj_webp_encode(x, h, w, qs[i], &c));
        uint8_t *y;
        int hh, ww;
        CHECK_OK(dj_webp_decode(c.data, c.size, &y, &hh, &ww));
        CHECK(hh == h && ww == w);
        double p = cu_psnr(x, y, (size_t)h * w * 3);
        CHECK(c.size > prev_size && c.payload > prev_pay && p > prev_psnr);
        prev_size = c.size;
        prev_pay = c.payload;
        prev_psnr = p;
        free(y);
        dj_coded_free(&c);
    }
    /* 31.1 dB measured: independent noise in R, G, B is mostly chroma, which
     * 4:2:0 cannot keep even at quality 100. */
    CHECK(prev_psnr > 30);
    free(x);
}

/* Our decode equals dwebp -ppm exactly: both are libwebp's decoder with its
 * default options (fancy upsampling, no dithering), so no tolerance is
 * needed; lossless files too. */
static void test_decoder_equals_dwebp(void) {
    if (!cu_have("dwebp")) SKIP("dwebp not installed");
    cu_seed(12);
    static const int sizes[][2] = {{1, 1}, {7, 13}, {17, 33}, {32, 32}, {50, 41}};
    for (int s = 0; s < 5; s++)
        for (int q = 5; q <= 100; q += 45) {
            int h = sizes[s][0], w = sizes[s][1];
            uint8_t *x = cu_image(h, w, 40);
            dj_coded c;
            CHECK_OK(dj_webp_encode(x, h, w, q, &c));
            uint8_t *lossless = NULL;
            size_t nl = WebPEncodeLosslessRGB(x, w, h, w * 3, &lossless);
            CHECK(nl > 0);
            for (int v = 0; v < 2; v++) {
                const uint8_t *d = v ? lossless : c.data;
                size_t n = v ? nl : c.size;
                char path[512], cmd[700];
                CHECK(cu_write("t.webp", d, n, path, sizeof path) == 0);
                snprintf(cmd, sizeof cmd, "dwebp -quiet '%s' -ppm -o -", path);
                int th = 0, tw = 0, hh, ww;
                uint8_t *ref = cu_read_pnm_from(cmd, &th, &tw), *ours = NULL;
                CHECK(ref != NULL);
                CHECK_OK(dj_webp_decode(d, n, &ours, &hh, &ww));
                CHECK(hh == h && ww == w && th == h && tw == w);
                if (ref && ours && th == h && tw == w) CHECK(memcmp(ref, ours, (size_t)h * w * 3) == 0);
                if (v && ours) CHECK(memcmp(ours, x, (size_t)h * w * 3) == 0); /* lossless */
                free(ref);
                free(ours);
            }
            WebPFree(lossless);
            dj_coded_free(&c);
            free(x);
        }
}

/* The container adds up: RIFF size + 8 = file size, the chunks tile the
 * file, and the payload is the VP8 chunk less its 10-byte frame header. */
static void test_payload(void) {
    cu_seed(13);
    uint8_t *x = cu_image(32, 32, 30);
    dj_coded c;
    CHECK_OK(dj_webp_encode(x, 32, 32, 75, &c));
    CHECK(c.size >= 30 && !memcmp(c.data, "RIFF", 4) && !memcmp(c.data + 8, "WEBP", 4));
    CHECK(rd32(c.data + 4) + 8 == c.size);
    size_t pos = 12, vp8 = 0;
    int chunks = 0;
    while (pos + 8 <= c.size) {
        uint32_t len = rd32(c.data + pos + 4);
        if (!memcmp(c.data + pos, "VP8 ", 4)) vp8 = len;
        pos += 8 + len + (len & 1);
        chunks++;
    }
    CHECK(pos == c.size && chunks == 1); /* simple lossy format: one VP8 chunk */
    CHECK(vp8 + 20 == c.size && c.payload == vp8 - 10 && c.payload < c.size);
    /* The frame header's 14-bit width and height. */
    const uint8_t *fr = c.data + 20;
    CHECK((fr[6] | (fr[7] & 0x3F) << 8) == 32 && (fr[8] | (fr[9] & 0x3F) << 8) == 32);
    size_t p;
    CHECK_OK(dj_webp_payload_bytes(c.data, c.size, &p));
    CHECK(p == c.payload);
    /* Lossless: the VP8L chunk after its 5-byte header, for libwebp's own file and ours; ours decodes exactly. */
    uint8_t *lossless = NULL;
    size_t nl = WebPEncodeLosslessRGB(x, 32, 32, 96, &lossless);
    CHECK(nl > 25 && !memcmp(lossless + 12, "VP8L", 4));
    CHECK_OK(dj_webp_payload_bytes(lossless, nl, &p));
    CHECK(nl > 25 && p == (size_t)(lossless[16] | lossless[17] << 8 | lossless[18] << 16) - 5);
    WebPFree(lossless);
    dj_coded ll = {0};
    CHECK_OK(dj_webp_encode_lossless(x, 32, 32, &ll));
    /* RIFF 12 + chunk header 8 + VP8L header 5, + a pad byte for an odd chunk */
    CHECK(ll.size > 25 && !memcmp(ll.data + 12, "VP8L", 4) && ll.payload + 25 <= ll.size && ll.size <= ll.payload + 26);
    uint8_t *back = NULL;
    int bh = 0, bw = 0;
    CHECK_OK(dj_webp_decode(ll.data, ll.size, &back, &bh, &bw));
    CHECK(back && bh == 32 && bw == 32 && !memcmp(back, x, 32 * 32 * 3));
    free(back);
    dj_coded_free(&ll);
    CHECK_FAILS(dj_webp_payload_bytes(c.data, c.size - 1, &p), DJ_EFORMAT, "differs from the file size");
    uint8_t *g = malloc(c.size);
    memcpy(g, c.data, c.size);
    g[16] ^= 0x40; /* VP8 chunk length past the end */
    CHECK_FAILS(dj_webp_payload_bytes(g, c.size, &p), DJ_EFORMAT, "runs past the end");
    free(g);
    dj_coded_free(&c);
    free(x);
}

static void test_bad_input(void) {
    cu_seed(14);
    uint8_t *x = cu_image(32, 32, 30);
    dj_coded c;
    CHECK_FAILS(dj_webp_encode(x, 32, 32, 0, &c), DJ_EINVAL, "quality 0 outside 1..100");
    CHECK_FAILS(dj_webp_encode(x, 32, 32, 101, &c), DJ_EINVAL, "quality 101");
    CHECK_FAILS(dj_webp_encode(x, 0, 32, 75, &c), DJ_EINVAL, "image size");
    CHECK_FAILS(dj_webp_encode(x, 32, 16384, 75, &c), DJ_EINVAL, "image size");
    CHECK_FAILS(dj_webp_encode(NULL, 32, 32, 75, &c), DJ_EINVAL, "NULL pixels");
    CHECK(c.data == NULL && c.size == 0);
    CHECK_OK(dj_webp_encode(x, 32, 32, 75, &c));
    uint8_t *y = (uint8_t *)1;
    int h = 3, w = 3;
    CHECK_FAILS(dj_webp_decode(c.data, 0, &y, &h, &w), DJ_EFORMAT, "shorter than the 12-byte RIFF header");
    CHECK(y == NULL && h == 0 && w == 0);
    CHECK_FAILS(dj_webp_decode((const uint8_t *)"RIFF\0\0\0\0WEBQ", 12, &y, &h, &w), DJ_EFORMAT, "no RIFF/WEBP");
    int refused = 0;
    for (size_t n = 0; n < c.size; n++) {
        int rc = dj_webp_decode(c.data, n, &y, &h, &w);
        refused += rc == DJ_EFORMAT && y == NULL && dj_last_error()[0];
    }
    CHECK(refused == (int)c.size);
    /* Random bytes inside a valid container never crash. */
    uint8_t *g = malloc(c.size);
    for (int t = 0; t < 200; t++) {
        memcpy(g, c.data, c.size);
        for (int k = 0; k < 4; k++) g[20 + cu_next() % (c.size - 20)] = (uint8_t)cu_next();
        int rc = dj_webp_decode(g, c.size, &y, &h, &w);
        CHECK(rc == DJ_EFORMAT || (rc == 0 && y && h == 32 && w == 32));
        free(y);
    }
    free(g);
    dj_coded_free(&c);
    free(x);
}

int main(void) {
    RUN(test_quality_monotone);
    RUN(test_decoder_equals_dwebp);
    RUN(test_payload);
    RUN(test_bad_input);
    cu_cleanup();
    return check_report("test_codec_webp");
}
