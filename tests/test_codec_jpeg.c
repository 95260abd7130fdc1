/* JPEG encode / decode / payload (src/codec/jpeg.c) against libjpeg-turbo's
 * own tools (djpeg, cjpeg) and a hand-made marker stream; bad input. */
#include <stdint.h>
#include <stdlib.h>

#include "check.h"
#include "codec_util.h"
#include "dmvjnd/codec.h"
#include "dmvjnd/dmvjnd.h"

/* Higher quality: more bytes (file and payload) and a higher PSNR. */
static void test_quality_monotone(void) {
    cu_seed(1);
    int h = 40, w = 56;
    uint8_t *x = cu_image(h, w, 30);
    static const int qs[] = {5, 20, 40, 60, 80, 95, 100};
    size_t prev_size = 0, prev_pay = 0;
    double prev_psnr = 0;
    for (int i = 0; i < (int)(sizeof qs / sizeof qs[0]); i++) {
        dj_coded c;
        CHECK_OK(dj_jpeg_encode(x, h, w, qs[i], &c));
        uint8_t *y;
        int hh, ww;
        CHECK_OK(dj_jpeg_decode(c.data, c.size, &y, &hh, &ww));
        CHECK(hh == h && ww == w);
        double p = cu_psnr(x, y, (size_t)h * w * 3);
        CHECK(c.size > prev_size && c.payload > prev_pay && p > prev_psnr);
        CHECK(c.payload < c.size);
        prev_size = c.size;
        prev_pay = c.payload;
        prev_psnr = p;
        free(y);
        dj_coded_free(&c);
    }
    CHECK(prev_psnr > 40); /* quality 100 */
    free(x);
}

/* Our decoder gives djpeg's pixels bit for bit: our own 4:4:4 files of odd
 * sizes, and cjpeg's 4:2:0, progressive, restart-marker and greyscale files
 * (fancy upsampling at work). */
static void compare_with_djpeg(const uint8_t *data, size_t size, const char *name) {
    char path[512], cmd[700];
    CHECK(cu_write(name, data, size, path, sizeof path) == 0);
    snprintf(cmd, sizeof cmd, "djpeg -ppm '%s' 2>/dev/null", path);
    int th, tw, h, w;
    uint8_t *ref = cu_read_pnm_from(cmd, &th, &tw), *ours = NULL;
    CHECK(ref != NULL);
    CHECK_OK(dj_jpeg_decode(data, size, &ours, &h, &w));
    if (ref && ours) {
        CHECK(h == th && w == tw);
        if (h == th && w == tw) CHECK(memcmp(ref, ours, (size_t)h * w * 3) == 0);
    }
    free(ref);
    free(ours);
}

static void test_decoder_equals_djpeg(void) {
    if (!cu_have("djpeg")) SKIP("djpeg not installed");
    cu_seed(2);
    static const int sizes[][2] = {{1, 1}, {7, 13}, {17, 33}, {32, 32}, {64, 48}};
    for (int s = 0; s < 5; s++)
        for (int q = 10; q <= 100; q += 45) {
            int h = sizes[s][0], w = sizes[s][1];
            uint8_t *x = cu_image(h, w, 40);
            dj_coded c;
            CHECK_OK(dj_jpeg_encode(x, h, w, q, &c));
            compare_with_djpeg(c.data, c.size, "own.jpg");
            dj_coded_free(&c);
            free(x);
        }
    if (!cu_have("cjpeg")) {
        printf("SKIP test_decoder_equals_djpeg (cjpeg files): cjpeg not installed\n");
        return;
    }
    static const char *variants[] = {"-sample 2x2", "-sample 2x1 -progressive", "-restart 1B -sample 2x2",
                                     "-grayscale", "-dct float -quality 30"};
    uint8_t *x = cu_image(37, 45, 40);
    char ppm[512], jpg[600], cmd[1400];
    CHECK(cu_write_ppm("in.ppm", x, 37, 45, ppm, sizeof ppm) == 0);
    snprintf(jpg, sizeof jpg, "%s/cjpeg.jpg", cu_tmpdir());
    for (int v = 0; v < 5; v++) {
        snprintf(cmd, sizeof cmd, "cjpeg %s -outfile '%s' '%s'", variants[v], jpg, ppm);
        CHECK(system(cmd) == 0);
        size_t n = 0;
        uint8_t *d = cu_read_file(jpg, &n);
        CHECK(d != NULL);
        if (d) compare_with_djpeg(d, n, "cjpeg2.jpg");
        free(d);
    }
    free(x);
}

/* dj_jpeg_encode is cjpeg with -baseline -sample 1x1 -optimize -dct int: the same file,
 * byte for byte. */
static void test_encoder_equals_cjpeg(void) {
    if (!cu_have("cjpeg")) SKIP("cjpeg not installed");
    cu_seed(3);
    static const int qs[] = {1, 50, 75, 100};
    for (int i = 0; i < 4; i++) {
        int h = 19 + i * 7, w = 23 + i * 5;
        uint8_t *x = cu_image(h, w, 20);
        char ppm[512], jpg[600], cmd[1400];
        CHECK(cu_write_ppm("enc.ppm", x, h, w, ppm, sizeof ppm) == 0);
        snprintf(jpg, sizeof jpg, "%s/enc.jpg", cu_tmpdir());
        snprintf(cmd, sizeof cmd, "cjpeg -quality %d -baseline -sample 1x1 -optimize -dct int -outfile '%s' '%s'", qs[i], jpg,
                 ppm);
        CHECK(system(cmd) == 0);
        size_t n = 0;
        uint8_t *ref = cu_read_file(jpg, &n);
        dj_coded c;
        CHECK_OK(dj_jpeg_encode(x, h, w, qs[i], &c));
        CHECK(ref && c.size == n && memcmp(c.data, ref, n) == 0);
        free(ref);
        dj_coded_free(&c);
        free(x);
    }
}

/* Independent count: every SOS (FF DA) outside segments, its data up to the
 * first FF followed by neither 00 nor D0..D7. */
static size_t walk_payload(const uint8_t *d, size_t n, int *scans) {
    size_t total = 0, i = 2;
    *scans = 0;
    while (i + 4 <= n) {
        if (d[i] != 0xFF) return (size_t)-1;
        int m = d[i + 1];
        if (m == 0xD9) break;
        size_t len = (size_t)d[i + 2] << 8 | d[i + 3];
        size_t j = i + 2 + len;
        if (m == 0xDA) {
            size_t k = j;
            while (k + 1 < n && !(d[k] == 0xFF && d[k + 1] != 0x00 && (d[k + 1] < 0xD0 || d[k + 1] > 0xD7))) k++;
            total += k - j;
            (*scans)++;
            j = k;
        }
        i = j;
    }
    return total;
}

static void test_payload(void) {
    /* Hand-made stream: SOI, APP0 (len 6), SOS (len 8), 9 data bytes with a
     * stuffed FF00 and an RST3, a fill byte, EOI. Payload = 9. */
    static const uint8_t hand[] = {0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x06, 'J',  'F',  'I',  'F',  0xFF, 0xDA, 0x00,
                                   0x08, 0x01, 0x01, 0x00, 0x00, 0x3F, 0x00, 0x12, 0xFF, 0x00, 0x34, 0xFF, 0xD3,
                                   0x56, 0x78, 0x9A, 0xFF, 0xFF, 0xD9};
    size_t p = 0;
    CHECK_OK(dj_jpeg_payload_bytes(hand, sizeof hand, &p));
    CHECK(p == 9);
    int scans;
    CHECK(walk_payload(hand, sizeof hand, &scans) == 9 && scans == 1);
    /* Real files: our 4:4:4 baseline and cjpeg's progressive (several scans). */
    cu_seed(4);
    uint8_t *x = cu_image(32, 32, 30);
    dj_coded c;
    CHECK_OK(dj_jpeg_encode(x, 32, 32, 75, &c));
    CHECK(c.payload == walk_payload(c.data, c.size, &scans) && scans == 1);
    CHECK(c.payload > 0 && c.payload < c.size);
    /* Single scan: everything after the SOS header except the EOI. */
    size_t sos = 0;
    for (size_t i = 2; i + 1 < c.size; i++)
        if (c.data[i] == 0xFF && c.data[i + 1] == 0xDA) {
            sos = i;
            break;
        }
    CHECK(sos && c.payload == c.size - 2 - (sos + 2 + ((size_t)c.data[sos + 2] << 8 | c.data[sos + 3])));
    if (cu_have("cjpeg")) {
        char ppm[512], jpg[600], cmd[1400];
        CHECK(cu_write_ppm("pay.ppm", x, 32, 32, ppm, sizeof ppm) == 0);
        snprintf(jpg, sizeof jpg, "%s/prog.jpg", cu_tmpdir());
        snprintf(cmd, sizeof cmd, "cjpeg -progressive -restart 1B -outfile '%s' '%s'", jpg, ppm);
        CHECK(system(cmd) == 0);
        size_t n = 0;
        uint8_t *d = cu_read_file(jpg, &n);
        CHECK_OK(dj_jpeg_payload_bytes(d, n, &p));
        CHECK(p == walk_payload(d, n, &scans) && scans > 5 && p < n);
        free(d);
    } else {
        printf("SKIP test_payload (progressive file): cjpeg not installed\n");
    }
    /* Broken marker structures. */
    uint8_t bad[sizeof hand];
    memcpy(bad, hand, sizeof hand);
    bad[5] = 0x40; /* APP0 length past the end */
    CHECK_FAILS(dj_jpeg_payload_bytes(bad, sizeof bad, &p), DJ_EFORMAT, "bad length");
    CHECK_FAILS(dj_jpeg_payload_bytes(hand, sizeof hand - 3, &p), DJ_EFORMAT, "runs to the end");
    CHECK_FAILS(dj_jpeg_payload_bytes(hand, 10, &p), DJ_EFORMAT, "ends before EOI");
    CHECK_FAILS(dj_jpeg_payload_bytes((const uint8_t *)"GIF89a", 6, &p), DJ_EFORMAT, "not a JPEG");
    dj_coded_free(&c);
    free(x);
}

static void test_bad_input(void) {
    cu_seed(5);
    uint8_t *x = cu_image(32, 32, 30);
    dj_coded c;
    CHECK_FAILS(dj_jpeg_encode(x, 32, 32, 0, &c), DJ_EINVAL, "quality 0 outside 1..100");
    CHECK(c.data == NULL && c.size == 0);
    CHECK_FAILS(dj_jpeg_encode(x, 32, 32, 101, &c), DJ_EINVAL, "quality 101");
    CHECK_FAILS(dj_jpeg_encode(x, 0, 32, 75, &c), DJ_EINVAL, "image size 32x0");
    CHECK_FAILS(dj_jpeg_encode(x, 32, -1, 75, &c), DJ_EINVAL, "image size");
    CHECK_FAILS(dj_jpeg_encode(NULL, 32, 32, 75, &c), DJ_EINVAL, "NULL pixels");
    CHECK_FAILS(dj_jpeg_encode(x, 32, 32, 75, NULL), DJ_EINVAL, "NULL output");

    CHECK_OK(dj_jpeg_encode(x, 32, 32, 75, &c));
    uint8_t *y = (uint8_t *)1;
    int h = 7, w = 7;
    CHECK_FAILS(dj_jpeg_decode(c.data, 0, &y, &h, &w), DJ_EFORMAT, "shorter than 4 bytes");
    CHECK(y == NULL && h == 0 && w == 0);
    CHECK_FAILS(dj_jpeg_decode((const uint8_t *)"\x89PNG\r\n\x1a\n", 8, &y, &h, &w), DJ_EFORMAT, "no SOI");
    /* Every proper prefix is refused (truncated data is an error, unlike
     * djpeg's warning), with a message and nothing allocated. */
    int refused = 0;
    for (size_t n = 0; n < c.size; n++) {
        int rc = dj_jpeg_decode(c.data, n, &y, &h, &w);
        refused += rc == DJ_EFORMAT && y == NULL && h == 0 && dj_last_error()[0];
    }
    CHECK(refused == (int)c.size);
    CHECK_FAILS(dj_jpeg_decode(c.data, c.size - 2, &y, &h, &w), DJ_EFORMAT, "Premature end of JPEG file");
    /* Garbage in the entropy-coded data. */
    uint8_t *g = malloc(c.size);
    memcpy(g, c.data, c.size);
    size_t sos = c.size - c.payload - 2;
    for (size_t i = sos; i < c.size - 2; i++) g[i] = 0xFF;
    CHECK_FAILS(dj_jpeg_decode(g, c.size, &y, &h, &w), DJ_EFORMAT, "jpeg decode:");
    /* A header that claims a huge image: refused before any allocation. */
    memcpy(g, c.data, c.size);
    size_t sof = 0;
    for (size_t i = 2; i + 8 < c.size; i++)
        if (g[i] == 0xFF && g[i + 1] == 0xC0) {
            sof = i;
            break;
        }
    CHECK(sof > 0);
    g[sof + 5] = 0x3E; /* height 16000 */
    g[sof + 6] = 0x80;
    CHECK_FAILS(dj_jpeg_decode(g, c.size, &y, &h, &w), DJ_EFORMAT, "more than");
    g[sof + 5] = 0x4E; /* height 20000 */
    CHECK_FAILS(dj_jpeg_decode(g, c.size, &y, &h, &w), DJ_EFORMAT, "larger than the limit");
    free(g);
    /* Random bytes after a SOI never crash (each either decodes or fails). */
    uint8_t junk[600];
    for (int t = 0; t < 200; t++) {
        for (size_t i = 0; i < sizeof junk; i++) junk[i] = (uint8_t)cu_next();
        junk[0] = 0xFF;
        junk[1] = 0xD8;
        int rc = dj_jpeg_decode(junk, sizeof junk, &y, &h, &w);
        CHECK(rc == DJ_EFORMAT || (rc == 0 && y && h > 0));
        free(y);
    }
    dj_coded_free(&c);
    free(x);
}

int main(void) {
    RUN(test_quality_monotone);
    RUN(test_decoder_equals_djpeg);
    RUN(test_encoder_equals_cjpeg);
    RUN(test_payload);
    RUN(test_bad_input);
    cu_cleanup();
    return check_report("test_codec_jpeg");
}
