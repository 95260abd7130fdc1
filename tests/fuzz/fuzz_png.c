/*
 * libFuzzer harness for the PNG reader (src/io/png.c, over libpng), with a
 * write/re-read round trip of what it accepts.
 *
 * dj_png_read takes a path: each input is written to a file in a private
 * folder under /dev/shm (or $TMPDIR), removed at exit.
 *
 * Mutated PNGs almost always have broken chunk CRCs, which libpng refuses
 * before looking at the chunk, so for most inputs (size not a multiple of 8)
 * the harness first recomputes the CRC of every complete chunk; the other
 * inputs are read as they are, which keeps the CRC error paths covered.
 *
 * Properties checked beyond "no crash, no leak, no UB":
 *   - a failure leaves the image empty and the message names the file;
 *   - a success gives 1..DJ_IMAGE_MAX_SIDE pixels per side and the pixels;
 *   - a decoded image of up to 64x64 pixels written with dj_png_write_rgb
 *     reads back with identical pixels (and grey images written with
 *     dj_png_write_gray come back with r = g = b).
 */
#include <dirent.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "dmvjnd/dmvjnd.h"
#include "dmvjnd/image.h"

#define REQUIRE(cond)                                                                                                  \
    do {                                                                                                               \
        if (!(cond)) __builtin_trap();                                                                                 \
    } while (0)

static char dir[256], in_path[300], out_path[300];

static void cleanup(void) {
    if (!dir[0]) return;
    DIR *d = opendir(dir);
    struct dirent *e;
    char p[512];
    while (d && (e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        unlink(p);
    }
    if (d) closedir(d);
    rmdir(dir);
}

static void quiet(int level, const char *msg, void *user) {
    (void)level;
    (void)msg;
    (void)user;
}

static void init(void) {
    struct stat st;
    const char *base = stat("/dev/shm", &st) == 0 && S_ISDIR(st.st_mode) && access("/dev/shm", W_OK) == 0
                           ? "/dev/shm"
                           : (getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    snprintf(dir, sizeof dir, "%s/fuzz-png.XXXXXX", base);
    if (!mkdtemp(dir)) abort();
    snprintf(in_path, sizeof in_path, "%s/in.png", dir);
    snprintf(out_path, sizeof out_path, "%s/out.png", dir);
    atexit(cleanup);
    dj_set_log(quiet, NULL, DJ_LOG_ERROR);
}

static uint32_t be32(const uint8_t *p) { return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]; }

/* Recompute the CRC of every complete chunk after the 8-byte signature. */
static void fix_crcs(uint8_t *b, size_t n) {
    size_t off = 8;
    while (off + 12 <= n) {
        uint32_t len = be32(b + off);
        if (len > n - off - 12) break;
        uint32_t crc = (uint32_t)crc32(0L, b + off + 4, (uInt)(len + 4));
        uint8_t *c = b + off + 8 + len;
        c[0] = (uint8_t)(crc >> 24);
        c[1] = (uint8_t)(crc >> 16);
        c[2] = (uint8_t)(crc >> 8);
        c[3] = (uint8_t)crc;
        off += 12 + (size_t)len;
    }
}

static void put_file(const char *path, const uint8_t *data, size_t n) {
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    REQUIRE(fd >= 0);
    size_t off = 0;
    while (off < n) {
        ssize_t w = write(fd, data + off, n - off);
        REQUIRE(w > 0);
        off += (size_t)w;
    }
    close(fd);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!dir[0]) init();
    uint8_t *copy = malloc(size ? size : 1);
    REQUIRE(copy);
    if (size) memcpy(copy, data, size);
    if (size % 8) fix_crcs(copy, size);
    put_file(in_path, copy, size);
    free(copy);

    dj_image img;
    memset(&img, 0x5a, sizeof img);
    int rc = dj_png_read(in_path, &img);
    if (rc) {
        REQUIRE(rc < 0 && img.h == 0 && img.w == 0 && img.rgb == NULL);
        REQUIRE(strstr(dj_last_error(), in_path) != NULL);
        return 0;
    }
    REQUIRE(img.h >= 1 && img.w >= 1 && img.h <= DJ_IMAGE_MAX_SIDE && img.w <= DJ_IMAGE_MAX_SIDE && img.rgb);
    size_t npix = (size_t)img.h * (size_t)img.w;
    volatile uint8_t sink = 0;
    for (size_t i = 0; i < npix * 3; i += 4093) sink ^= img.rgb[i]; /* touch: ASan checks the extent */
    sink ^= img.rgb[npix * 3 - 1];
    (void)sink;
    if (npix <= 64 * 64) {
        dj_image back;
        REQUIRE(dj_png_write_rgb(out_path, img.rgb, img.h, img.w) == 0);
        REQUIRE(dj_png_read(out_path, &back) == 0);
        REQUIRE(back.h == img.h && back.w == img.w && memcmp(back.rgb, img.rgb, npix * 3) == 0);
        dj_image_free(&back);
        /* The red plane as grey. */
        uint8_t *grey = malloc(npix);
        REQUIRE(grey);
        for (size_t i = 0; i < npix; i++) grey[i] = img.rgb[3 * i];
        REQUIRE(dj_png_write_gray(out_path, grey, img.h, img.w) == 0);
        REQUIRE(dj_png_read(out_path, &back) == 0);
        REQUIRE(back.h == img.h && back.w == img.w);
        for (size_t i = 0; i < npix; i++)
            REQUIRE(back.rgb[3 * i] == grey[i] && back.rgb[3 * i + 1] == grey[i] && back.rgb[3 * i + 2] == grey[i]);
        dj_image_free(&back);
        free(grey);
    }
    dj_image_free(&img);
    REQUIRE(img.rgb == NULL && img.h == 0);
    return 0;
}
