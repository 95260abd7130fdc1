/* Helpers of the codec tests: test images, PSNR, files in a private temp
 * folder, and decoding with the command-line tools (djpeg, dwebp) through
 * a pipe. */
#ifndef DMVJND_TESTS_CODEC_UTIL_H
#define DMVJND_TESTS_CODEC_UTIL_H

#include <dirent.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static uint64_t cu_state = 88172645463325252ull;
static inline void cu_seed(uint64_t s) { cu_state = s * 0x9E3779B97F4A7C15ull + 1; }
static inline uint32_t cu_next(void) {
    cu_state ^= cu_state << 13;
    cu_state ^= cu_state >> 7;
    cu_state ^= cu_state << 17;
    return (uint32_t)(cu_state >> 11);
}
static inline double cu_uniform(void) { return (cu_next() & 0xFFFFFF) / 16777216.0; }

/* A natural-looking test image: smooth colour gradients, a few edges and
 * some noise (noise = 0: smooth only). malloc'ed h*w*3. */
static inline uint8_t *cu_image(int h, int w, double noise) {
    uint8_t *p = malloc((size_t)h * w * 3);
    double a[3], b[3], c[3], f = 0.05 + 0.3 * cu_uniform();
    for (int ch = 0; ch < 3; ch++) {
        a[ch] = 40 + 170 * cu_uniform();
        b[ch] = 80 * (cu_uniform() - 0.5);
        c[ch] = 60 * (cu_uniform() - 0.5);
    }
    int edge = (int)(w * cu_uniform());
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int ch = 0; ch < 3; ch++) {
                double v = a[ch] + b[ch] * sin(f * x + ch) + c[ch] * cos(f * 1.3 * y - ch) + (x > edge ? 40 : 0) +
                           noise * (cu_uniform() - 0.5);
                p[((size_t)y * w + x) * 3 + ch] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v + 0.5);
            }
    return p;
}

static inline double cu_psnr(const uint8_t *a, const uint8_t *b, size_t n) {
    double se = 0;
    for (size_t i = 0; i < n; i++) se += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
    return se == 0 ? 99.0 : 10 * log10(255.0 * 255.0 * n / se);
}

static char cu_dir[256];

static inline const char *cu_tmpdir(void) {
    if (!cu_dir[0]) {
        snprintf(cu_dir, sizeof cu_dir, "%s/dmvjnd-codec.XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
        if (!mkdtemp(cu_dir)) {
            perror("mkdtemp");
            exit(2);
        }
    }
    return cu_dir;
}

static inline void cu_cleanup(void) {
    if (!cu_dir[0]) return;
    DIR *d = opendir(cu_dir);
    struct dirent *e;
    char p[512];
    while (d && (e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        snprintf(p, sizeof p, "%s/%s", cu_dir, e->d_name);
        unlink(p);
    }
    if (d) closedir(d);
    rmdir(cu_dir);
}

static inline int cu_write(const char *name, const void *data, size_t n, char *path, size_t cap) {
    snprintf(path, cap, "%s/%s", cu_tmpdir(), name);
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    size_t put = fwrite(data, 1, n, f);
    return (fclose(f) || put != n) ? -1 : 0;
}

static inline int cu_have(const char *tool) {
    char cmd[256];
    snprintf(cmd, sizeof cmd, "command -v %s >/dev/null 2>&1", tool);
    return system(cmd) == 0;
}

/* Run `cmd`, read a binary PPM (P6) or PGM (P5, replicated to RGB) from its
 * stdout. Returns malloc'ed RGB or NULL; *stderr_bytes counts what the tool
 * wrote to stderr (its warnings) when not NULL. */
static inline uint8_t *cu_read_pnm_from(const char *cmd, int *h, int *w) {
    FILE *p = popen(cmd, "r");
    if (!p) return NULL;
    char magic[3] = {0};
    int maxv = 0;
    uint8_t *rgb = NULL;
    if (fscanf(p, "%2s %d %d %d", magic, w, h, &maxv) == 4 && maxv == 255 && fgetc(p) != EOF && *w > 0 && *h > 0) {
        int grey = !strcmp(magic, "P5");
        if (grey || !strcmp(magic, "P6")) {
            size_t n = (size_t)*h * *w;
            rgb = malloc(n * 3);
            if (grey) {
                uint8_t *g = malloc(n);
                if (fread(g, 1, n, p) == n)
                    for (size_t i = 0; i < n; i++) rgb[3 * i] = rgb[3 * i + 1] = rgb[3 * i + 2] = g[i];
                else {
                    free(rgb);
                    rgb = NULL;
                }
                free(g);
            } else if (fread(rgb, 1, n * 3, p) != n * 3) {
                free(rgb);
                rgb = NULL;
            }
        }
    }
    if (pclose(p) != 0) {
        free(rgb);
        rgb = NULL;
    }
    return rgb;
}

/* Write RGB as a binary PPM (for cjpeg / cwebp). */
static inline int cu_write_ppm(const char *name, const uint8_t *rgb, int h, int w, char *path, size_t cap) {
    snprintf(path, cap, "%s/%s", cu_tmpdir(), name);
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    fprintf(f, "P6\n%d %d\n255\n", w, h);
    size_t n = (size_t)h * w * 3, put = fwrite(rgb, 1, n, f);
    return (fclose(f) || put != n) ? -1 : 0;
}

static inline uint8_t *cu_read_file(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *d = malloc(len > 0 ? (size_t)len : 1);
    *n = fread(d, 1, (size_t)len, f);
    fclose(f);
    return d;
}

#endif
