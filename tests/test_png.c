/* PNG read/write: round trips, every colour type / bit depth converted to
 * 8-bit RGB (test files written with libpng directly), and the errors. */
#include <dirent.h>
#include <png.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "check.h"
#include "dmvjnd/dmvjnd.h"

static char tmpdir[4096];

static void tpath(char *out, size_t cap, const char *name) { snprintf(out, cap, "%s/%s", tmpdir, name); }

/* A PNG written by libpng with any IHDR. `data` holds the rows as libpng
 * expects them (packed sub-byte samples, 16-bit big-endian). */
typedef struct raw_png {
    int w, h, depth, color, interlace;
    const uint8_t *data;
    const png_color *palette;
    int npalette;
    const uint8_t *trans; /* palette alpha, npalette entries */
    const png_color_16 *trans_color;
} raw_png;

static int write_raw(const char *path, const raw_png *p) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        fclose(f);
        return -1;
    }
    png_init_io(png, f);
    png_set_IHDR(png, info, (png_uint_32)p->w, (png_uint_32)p->h, p->depth, p->color, p->interlace,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    if (p->palette) png_set_PLTE(png, info, p->palette, p->npalette);
    if (p->trans || p->trans_color) png_set_tRNS(png, info, p->trans, p->trans ? p->npalette : 0, p->trans_color);
    png_write_info(png, info);
    int channels = p->color == PNG_COLOR_TYPE_RGB ? 3
                   : p->color == PNG_COLOR_TYPE_RGB_ALPHA ? 4
                   : p->color == PNG_COLOR_TYPE_GRAY_ALPHA ? 2
                                                            : 1;
    size_t rowbytes = ((size_t)p->w * channels * p->depth + 7) / 8;
    int passes = p->interlace ? png_set_interlace_handling(png) : 1;
    for (int pass = 0; pass < passes; pass++)
        for (int y = 0; y < p->h; y++) png_write_row(png, p->data + y * rowbytes);
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    return fclose(f);
}

static size_t file_size(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 ? (size_t)st.st_size : 0;
}

static uint8_t *slurp(const char *path, size_t *n) {
    *n = file_size(path);
    uint8_t *b = malloc(*n ? *n : 1);
    FILE *f = fopen(path, "rb");
    if (f) {
        if (fread(b, 1, *n, f) != *n) *n = 0;
        fclose(f);
    }
    return b;
}

static void spit(const char *path, const void *b, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) return;
    fwrite(b, 1, n, f);
    fclose(f);
}

/* Number of directory entries other than . and .. (temp-file leak check). */
static int count_entries(void) {
    DIR *d = opendir(tmpdir);
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) n++;
    if (d) closedir(d);
    return n;
}

static void test_rgb_roundtrip(void) {
    char path[4200];
    tpath(path, sizeof path, "rgb.png");
    enum { H = 17, W = 23 };
    uint8_t px[H * W * 3];
    for (int i = 0; i < H * W * 3; i++) px[i] = (uint8_t)(i * 37 + i / 7);
    CHECK_OK(dj_png_write_rgb(path, px, H, W));
    dj_image img;
    CHECK_OK(dj_png_read(path, &img));
    CHECK(img.h == H && img.w == W && img.rgb && memcmp(img.rgb, px, sizeof px) == 0);
    dj_image_free(&img);
    CHECK(img.rgb == NULL && img.h == 0);

    /* Overwriting an existing file replaces it. */
    uint8_t one[3] = {1, 2, 3};
    CHECK_OK(dj_png_write_rgb(path, one, 1, 1));
    CHECK_OK(dj_png_read(path, &img));
    CHECK(img.h == 1 && img.w == 1 && memcmp(img.rgb, one, 3) == 0);
    dj_image_free(&img);

    /* Written by someone else's libpng code (same bytes, interlaced too). */
    raw_png r = {W, H, 8, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_ADAM7, px, NULL, 0, NULL, NULL};
    tpath(path, sizeof path, "adam7.png");
    CHECK(write_raw(path, &r) == 0);
    CHECK_OK(dj_png_read(path, &img));
    CHECK(img.h == H && img.w == W && memcmp(img.rgb, px, sizeof px) == 0);
    dj_image_free(&img);
}

static void test_gray_roundtrip(void) {
    char path[4200];
    tpath(path, sizeof path, "gray.png");
    enum { H = 9, W = 5 };
    uint8_t g[H * W];
    for (int i = 0; i < H * W; i++) g[i] = (uint8_t)(i * 255 / (H * W - 1));
    CHECK_OK(dj_png_write_gray(path, g, H, W));
    /* Really a grey PNG on disk: colour type byte of IHDR is 0. */
    size_t n;
    uint8_t *bytes = slurp(path, &n);
    CHECK(n > 33 && bytes[25] == PNG_COLOR_TYPE_GRAY && bytes[24] == 8);
    free(bytes);
    dj_image img;
    CHECK_OK(dj_png_read(path, &img));
    CHECK(img.h == H && img.w == W);
    int ok = img.rgb != NULL;
    for (int i = 0; ok && i < H * W; i++) ok = img.rgb[3 * i] == g[i] && img.rgb[3 * i + 1] == g[i] && img.rgb[3 * i + 2] == g[i];
    CHECK(ok);
    dj_image_free(&img);
}

/* Reads `path` and compares with the expected RGB bytes. */
static int reads_as(const char *path, int h, int w, const uint8_t *want) {
    dj_image img;
    int rc = dj_png_read(path, &img);
    if (rc) {
        fprintf(stderr, "%s: %s\n", path, dj_last_error());
        return 0;
    }
    int ok = img.h == h && img.w == w && memcmp(img.rgb, want, (size_t)h * w * 3) == 0;
    if (!ok)
        for (int i = 0; i < h * w * 3 && i < 12; i++) fprintf(stderr, "  byte %d: %u want %u\n", i, img.rgb[i], want[i]);
    dj_image_free(&img);
    return ok;
}

static void test_sixteen_bit(void) {
    char path[4200];
    /* 2x2 RGB16: sample s is stored big-endian; we keep s >> 8. */
    uint16_t s[12] = {0x0000, 0x00ff, 0x0100, 0x1234, 0x7f80, 0x80ff, 0xfeff, 0xff00, 0xffff, 0x0180, 0xab01, 0x5555};
    uint8_t data[24], want[12];
    for (int i = 0; i < 12; i++) {
        data[2 * i] = (uint8_t)(s[i] >> 8);
        data[2 * i + 1] = (uint8_t)s[i];
        want[i] = (uint8_t)(s[i] >> 8);
    }
    raw_png r = {2, 2, 16, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE, data, NULL, 0, NULL, NULL};
    tpath(path, sizeof path, "rgb16.png");
    CHECK(write_raw(path, &r) == 0);
    CHECK(reads_as(path, 2, 2, want));

    /* Grey 16-bit, 3x1 (first three samples). */
    uint8_t gwant[9];
    for (int i = 0; i < 3; i++) gwant[3 * i] = gwant[3 * i + 1] = gwant[3 * i + 2] = (uint8_t)(s[3 + i] >> 8);
    r = (raw_png){3, 1, 16, PNG_COLOR_TYPE_GRAY, PNG_INTERLACE_NONE, data + 6, NULL, 0, NULL, NULL};
    tpath(path, sizeof path, "gray16.png");
    CHECK(write_raw(path, &r) == 0);
    CHECK(reads_as(path, 1, 3, gwant));

    /* RGBA 16-bit, 3x1: alpha dropped, colour's high bytes kept. */
    r = (raw_png){3, 1, 16, PNG_COLOR_TYPE_RGB_ALPHA, PNG_INTERLACE_NONE, data, NULL, 0, NULL, NULL};
    uint8_t awant[9] = {want[0], want[1], want[2], want[4], want[5], want[6], want[8], want[9], want[10]};
    tpath(path, sizeof path, "rgba16.png");
    CHECK(write_raw(path, &r) == 0);
    CHECK(reads_as(path, 1, 3, awant));
}

static void test_palette(void) {
    char path[4200];
    static const png_color pal[4] = {{10, 20, 30}, {200, 0, 0}, {0, 255, 1}, {7, 8, 9}};
    /* 5x2 at 2 bits per index: row bytes 2 (indices packed MSB first). */
    static const int idx[10] = {0, 1, 2, 3, 2, 3, 3, 1, 0, 0};
    uint8_t data[4] = {0}, want[30];
    for (int y = 0; y < 2; y++)
        for (int x = 0; x < 5; x++) {
            int i = idx[y * 5 + x];
            data[y * 2 + x / 4] |= (uint8_t)(i << (6 - 2 * (x % 4)));
            want[(y * 5 + x) * 3 + 0] = pal[i].red;
            want[(y * 5 + x) * 3 + 1] = pal[i].green;
            want[(y * 5 + x) * 3 + 2] = pal[i].blue;
        }
    raw_png r = {5, 2, 2, PNG_COLOR_TYPE_PALETTE, PNG_INTERLACE_NONE, data, pal, 4, NULL, NULL};
    tpath(path, sizeof path, "pal.png");
    CHECK(write_raw(path, &r) == 0);
    CHECK(reads_as(path, 2, 5, want));

    /* With transparency (tRNS): alpha dropped, palette colours unchanged. */
    static const uint8_t alpha[4] = {0, 128, 255, 3};
    r.trans = alpha;
    tpath(path, sizeof path, "pal_trns.png");
    CHECK(write_raw(path, &r) == 0);
    CHECK(reads_as(path, 2, 5, want));
}

static void test_gray_alpha_and_low_depth(void) {
    char path[4200];
    /* Grey + alpha, 8-bit, 3x1: (g, a) -> (g, g, g) whatever a is. */
    static const uint8_t ga[6] = {0, 255, 100, 0, 250, 128};
    static const uint8_t gaw[9] = {0, 0, 0, 100, 100, 100, 250, 250, 250};
    raw_png r = {3, 1, 8, PNG_COLOR_TYPE_GRAY_ALPHA, PNG_INTERLACE_NONE, ga, NULL, 0, NULL, NULL};
    tpath(path, sizeof path, "ga.png");
    CHECK(write_raw(path, &r) == 0);
    CHECK(reads_as(path, 1, 3, gaw));

    /* RGBA 8-bit, 2x1: alpha dropped (not composited: a = 0 keeps colour). */
    static const uint8_t rgba[8] = {10, 20, 30, 0, 40, 50, 60, 77};
    static const uint8_t rgbaw[6] = {10, 20, 30, 40, 50, 60};
    r = (raw_png){2, 1, 8, PNG_COLOR_TYPE_RGB_ALPHA, PNG_INTERLACE_NONE, rgba, NULL, 0, NULL, NULL};
    tpath(path, sizeof path, "rgba.png");
    CHECK(write_raw(path, &r) == 0);
    CHECK(reads_as(path, 1, 2, rgbaw));

    /* 1-bit grey: 0 -> 0, 1 -> 255. 10x1, bits 1011001110. */
    static const uint8_t bits[2] = {0xB3, 0x80};
    static const int b[10] = {1, 0, 1, 1, 0, 0, 1, 1, 1, 0};
    uint8_t bw[30];
    for (int i = 0; i < 30; i++) bw[i] = b[i / 3] ? 255 : 0;
    r = (raw_png){10, 1, 1, PNG_COLOR_TYPE_GRAY, PNG_INTERLACE_NONE, bits, NULL, 0, NULL, NULL};
    tpath(path, sizeof path, "g1.png");
    CHECK(write_raw(path, &r) == 0);
    CHECK(reads_as(path, 1, 10, bw));

    /* 4-bit grey: v -> 17 v. 3x1: 0x5, 0xF, 0x0 packed as 5F 00. With a
     * tRNS grey key, which is alpha too and is dropped. */
    static const uint8_t nib[2] = {0x5F, 0x00};
    static const uint8_t nw[9] = {85, 85, 85, 255, 255, 255, 0, 0, 0};
    png_color_16 key = {0, 0, 0, 0, 0xF};
    r = (raw_png){3, 1, 4, PNG_COLOR_TYPE_GRAY, PNG_INTERLACE_NONE, nib, NULL, 0, NULL, &key};
    tpath(path, sizeof path, "g4.png");
    CHECK(write_raw(path, &r) == 0);
    CHECK(reads_as(path, 1, 3, nw));
}

static void test_bad_files(void) {
    char good[4200], path[4200];
    tpath(good, sizeof good, "good.png");
    enum { H = 40, W = 40 };
    uint8_t px[H * W * 3];
    for (int i = 0; i < H * W * 3; i++) px[i] = (uint8_t)((i * 2654435761u) >> 24); /* poorly compressible */
    CHECK_OK(dj_png_write_rgb(good, px, H, W));
    size_t n;
    uint8_t *bytes = slurp(good, &n);
    CHECK(n > 100);
    dj_image img = {7, 7, (uint8_t *)px};

    /* Truncated in the middle of the image data. */
    tpath(path, sizeof path, "half.png");
    spit(path, bytes, n / 2);
    CHECK_FAILS(dj_png_read(path, &img), DJ_EFORMAT, path);
    CHECK_FAILS(dj_png_read(path, &img), DJ_EFORMAT, "truncated");
    CHECK(img.rgb == NULL && img.h == 0 && img.w == 0);
    /* Only the IEND chunk missing. */
    tpath(path, sizeof path, "noiend.png");
    spit(path, bytes, n - 12);
    CHECK_FAILS(dj_png_read(path, &img), DJ_EFORMAT, "noiend.png: truncated");
    /* Signature only; less than a signature; empty. */
    tpath(path, sizeof path, "sig.png");
    spit(path, bytes, 8);
    CHECK_FAILS(dj_png_read(path, &img), DJ_EFORMAT, "sig.png: truncated");
    spit(path, bytes, 5);
    CHECK_FAILS(dj_png_read(path, &img), DJ_EFORMAT, "sig.png: not a PNG file (shorter than the 8-byte signature)");
    spit(path, bytes, 0);
    CHECK_FAILS(dj_png_read(path, &img), DJ_EFORMAT, "sig.png: not a PNG file");

    /* A text file. */
    tpath(path, sizeof path, "notes.txt");
    const char *text = "this is not an image, just some text\n";
    spit(path, text, strlen(text));
    CHECK_FAILS(dj_png_read(path, &img), DJ_EFORMAT, "notes.txt: not a PNG file (no PNG signature)");

    /* A wrong CRC on the IDAT chunk (our writer puts IDAT right after the
     * 8-byte signature and the 25-byte IHDR chunk, so it starts at 33). */
    uint32_t len = (uint32_t)bytes[33] << 24 | bytes[34] << 16 | bytes[35] << 8 | bytes[36];
    CHECK(memcmp(bytes + 37, "IDAT", 4) == 0 && 45 + len <= n);
    tpath(path, sizeof path, "crc.png");
    bytes[41 + len] ^= 0x55;
    spit(path, bytes, n);
    CHECK_FAILS(dj_png_read(path, &img), DJ_EFORMAT, "crc.png: IDAT: CRC error");
    bytes[41 + len] ^= 0x55;

    /* A corrupt zlib stream with a correct CRC. */
    tpath(path, sizeof path, "zlib.png");
    uint8_t *z = malloc(n);
    memcpy(z, bytes, n);
    memset(z + 41 + 2, 0xFF, 16); /* after the 2-byte zlib header */
    uint32_t crc = (uint32_t)crc32(0, z + 37, 4 + len);
    z[41 + len] = (uint8_t)(crc >> 24), z[42 + len] = (uint8_t)(crc >> 16), z[43 + len] = (uint8_t)(crc >> 8),
              z[44 + len] = (uint8_t)crc;
    spit(path, z, n);
    CHECK_FAILS(dj_png_read(path, &img), DJ_EFORMAT, "zlib.png: ");

    /* Absurd size in IHDR (CRC fixed): refused before allocating. */
    memcpy(z, bytes, n);
    const uint32_t big = 100000;
    for (int k = 0; k < 2; k++) {
        z[16 + 4 * k] = (uint8_t)(big >> 24), z[17 + 4 * k] = (uint8_t)(big >> 16);
        z[18 + 4 * k] = (uint8_t)(big >> 8), z[19 + 4 * k] = (uint8_t)big;
    }
    crc = (uint32_t)crc32(0, z + 12, 17);
    z[29] = (uint8_t)(crc >> 24), z[30] = (uint8_t)(crc >> 16), z[31] = (uint8_t)(crc >> 8), z[32] = (uint8_t)crc;
    tpath(path, sizeof path, "huge.png");
    spit(path, z, n);
    CHECK_FAILS(dj_png_read(path, &img), DJ_EFORMAT, "huge.png: 100000x100000 pixels, larger than the limit of 16384");
    free(z);
    free(bytes);

    /* Just over and just at the limit, as real files. */
    uint8_t *row = calloc(16385, 3);
    raw_png r = {16385, 1, 8, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE, row, NULL, 0, NULL, NULL};
    tpath(path, sizeof path, "wide.png");
    CHECK(write_raw(path, &r) == 0);
    CHECK_FAILS(dj_png_read(path, &img), DJ_EFORMAT, "wide.png: 16385x1 pixels");
    r.w = 16384;
    CHECK(write_raw(path, &r) == 0);
    CHECK_OK(dj_png_read(path, &img));
    CHECK(img.w == 16384 && img.h == 1);
    dj_image_free(&img);
    free(row);

    /* Missing file and a directory. */
    tpath(path, sizeof path, "missing.png");
    char expect[4400];
    snprintf(expect, sizeof expect, "%s: cannot open: No such file or directory", path);
    CHECK_FAILS(dj_png_read(path, &img), DJ_EIO, expect);
    CHECK_FAILS(dj_png_read(tmpdir, &img), DJ_EIO, tmpdir);
}

static void test_write_errors(void) {
    char path[4200];
    uint8_t px[12] = {0};
    int before = count_entries();
    tpath(path, sizeof path, "no/such/dir/x.png");
    CHECK_FAILS(dj_png_write_rgb(path, px, 2, 2), DJ_EIO, "no/such/dir/x.png");
    tpath(path, sizeof path, "bad.png");
    CHECK_FAILS(dj_png_write_rgb(path, px, 0, 2), DJ_EINVAL, "bad.png: image size 2x0");
    CHECK_FAILS(dj_png_write_gray(path, px, 1, 16385), DJ_EINVAL, "16385x1");
    CHECK_FAILS(dj_png_write_gray(path, NULL, 1, 1), DJ_EINVAL, "NULL pixels");
    CHECK_FAILS(dj_png_write_rgb("", px, 1, 1), DJ_EINVAL, "empty path");
    CHECK(count_entries() == before); /* nothing created, no temp file left */
    tpath(path, sizeof path, "ok.png");
    CHECK_OK(dj_png_write_gray(path, px, 3, 4));
    CHECK(count_entries() == before + 1); /* the file itself, no temp file */

    dj_image img;
    CHECK_OK(dj_image_alloc(&img, 3, 5));
    CHECK(img.h == 3 && img.w == 5 && img.rgb && img.rgb[44] == 0);
    dj_image_free(&img);
    dj_image_free(&img);
    CHECK_FAILS(dj_image_alloc(&img, 0, 5), DJ_EINVAL, "image size");
    CHECK(img.rgb == NULL);
}

static void remove_all(void) {
    DIR *d = opendir(tmpdir);
    struct dirent *e;
    while (d && (e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
            char p[4400];
            snprintf(p, sizeof p, "%s/%s", tmpdir, e->d_name);
            unlink(p);
        }
    if (d) closedir(d);
    rmdir(tmpdir);
}

int main(void) {
    const char *t = getenv("TMPDIR");
    snprintf(tmpdir, sizeof tmpdir, "%s/dj_png_XXXXXX", t && *t ? t : "/tmp");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 2;
    }
    RUN(test_rgb_roundtrip);
    RUN(test_gray_roundtrip);
    RUN(test_sixteen_bit);
    RUN(test_palette);
    RUN(test_gray_alpha_and_low_depth);
    RUN(test_bad_files);
    RUN(test_write_errors);
    remove_all();
    return check_report("test_png");
}
