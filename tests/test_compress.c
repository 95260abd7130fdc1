/* dmvjnd/compress.h: method dispatch, allocation, summaries, and the
 * `dmvjnd compress` command checked end to end against independent tools:
 * djpeg/dwebp decode the files it wrote (rate and PSNR recomputed here),
 * `dmvjnd classify` relabels the decoded images (RCA recomputed here).
 * The command is $BUILD/dmvjnd (default build/dmvjnd), run from the
 * repository root. Checks that need CIFAR-10 or a tool print SKIP without
 * them. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "cli_run.h"
#include "compress/compress_impl.h"
#include "dmvjnd/budget.h"
#include "dmvjnd/cifar10.h"
#include "dmvjnd/codec.h"
#include "dmvjnd/compress.h"
#include "dmvjnd/dmvjnd.h"
#include "dmvjnd/fileio.h"
#include "dmvjnd/image.h"
#include "dmvjnd/jnd_generate.h"
#include "dmvjnd/model_find.h"
#include "dmvjnd/json.h"

static char tmpdir[] = "/tmp/dj_test_compress.XXXXXX";
static char bin[4096];
static int have_data;
static char jnd_model[4096];

/* A textured test image: gradients, a disc and a checkerboard corner. */
static void test_image(uint8_t *rgb, int h, int w) {
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            uint8_t *p = rgb + ((size_t)y * w + x) * 3;
            int disc = (x - w / 2) * (x - w / 2) + (y - h / 2) * (y - h / 2) < h * w / 10;
            p[0] = (uint8_t)(x * 255 / w);
            p[1] = (uint8_t)(disc ? 220 : y * 255 / h);
            p[2] = (uint8_t)((x / 4 + y / 4) % 2 ? 200 : 40);
        }
}

/* ------------------------------------------------------------ library */

static void test_method_table(void) {
    const dj_compress_method *m;
    CHECK_OK(dj_compress_method_find("plain", DJ_CODEC_WEBP, &m));
    CHECK(m && m->use == DJ_USE_PLAIN);
    CHECK_OK(dj_compress_method_find("hvs-rate", DJ_CODEC_JPEG, &m));
    CHECK(m && m->use == DJ_USE_RATE && m->budget == DJ_BUDGET_HVS);
    CHECK_FAILS(dj_compress_method_find("jnd-quant", DJ_CODEC_WEBP, &m), DJ_EINVAL, "needs --codec jpeg");
    CHECK_FAILS(dj_compress_method_find("jnd-fast", DJ_CODEC_JPEG, &m), DJ_EINVAL, "unknown method 'jnd-fast'");
    int codec = -1;
    CHECK_FAILS(dj_compress_codec_parse("avif", &codec), DJ_EINVAL, "unknown codec 'avif'");
    dj_compress_config cfg = dj_compress_defaults();
    cfg.strength = 0;
    CHECK_FAILS(dj_compress_config_check(&cfg), DJ_EINVAL, "strength");
}

/* plain is the codec's own output, byte for byte; a quant method with a
 * zero budget may not move anything away from it. */
static void test_plain_and_zero_budget(void) {
    const int h = 40, w = 24;
    uint8_t rgb[40 * 24 * 3];
    float zero[40 * 24 * 3] = {0};
    test_image(rgb, h, w);
    dj_compress_config cfg = dj_compress_defaults();
    const dj_compress_method *plain, *quant;
    CHECK_OK(dj_compress_method_find("plain", DJ_CODEC_JPEG, &plain));
    CHECK_OK(dj_compress_method_find("jnd-quant", DJ_CODEC_JPEG, &quant));
    const int qs[4] = {10, 55, 90, 100};
    for (int k = 0; k < 4; k++) {
        const int q = qs[k];
        dj_coded a = {0}, b = {0}, c = {0};
        CHECK_OK(dj_compress_code(&cfg, plain, rgb, h, w, q, NULL, &a));
        CHECK_OK(dj_jpeg_encode(rgb, h, w, q, &b));
        CHECK(a.size == b.size && a.size > 0 && !memcmp(a.data, b.data, a.size));
        CHECK_OK(dj_compress_code(&cfg, quant, rgb, h, w, q, zero, &c));
        if (q < 100) {
            CHECK(c.size == b.size && c.size > 0 && !memcmp(c.data, b.data, c.size));
        } else {
            /* at 100 plain's own rounding error (about 1 level) is room the
             * suppression may use: the contract is bound = max(budget, plain
             * error) per value and never more payload than plain */
            uint8_t *dp = NULL, *dc = NULL;
            int hh, ww, over = 0;
            CHECK_OK(dj_jpeg_decode(b.data, b.size, &dp, &hh, &ww));
            CHECK_OK(dj_jpeg_decode(c.data, c.size, &dc, &hh, &ww));
            for (int i = 0; dp && dc && i < h * w * 3; i++) over += abs(dc[i] - rgb[i]) > abs(dp[i] - rgb[i]);
            CHECK(dp && dc && over == 0);
            CHECK(c.payload <= b.payload);
            free(dp), free(dc);
        }
        dj_coded_free(&a), dj_coded_free(&b), dj_coded_free(&c);
    }
    cfg.codec = DJ_CODEC_WEBP;
    dj_coded a = {0}, b = {0};
    CHECK_OK(dj_compress_code(&cfg, plain, rgb, h, w, 60, NULL, &a));
    CHECK_OK(dj_webp_encode(rgb, h, w, 60, &b));
    CHECK(a.size == b.size && a.size > 0 && !memcmp(a.data, b.data, a.size));
    dj_coded_free(&a), dj_coded_free(&b);
    CHECK_FAILS(dj_compress_code(&cfg, quant, rgb, h, w, 60, zero, &a), DJ_EINVAL, "needs --codec jpeg");
    CHECK_FAILS(dj_compress_code(&cfg, plain, rgb, h, w, 101, NULL, &a), DJ_EINVAL, "outside 1..100");
}

/* Error feedback: 0 rounds is plain coding; one round codes
 * y = x + (x - decoded(x)) clipped, exactly; each round is another file
 * that decodes near x (the same size, within a few levels of plain's error). */
static double sse_of(int codec, const dj_coded *c, const uint8_t *x, size_t n) {
    uint8_t *d = NULL;
    int h = 0, w = 0;
    double s = -1;
    if (dj_compress_decode(codec, c, &d, &h, &w) == DJ_OK)
        for (size_t p = s = 0; p < n; p++) s += ((double)d[p] - x[p]) * ((double)d[p] - x[p]);
    free(d);
    return s;
}

static void test_feedback(void) {
    const int h = 40, w = 24;
    const size_t n = (size_t)h * w * 3;
    uint8_t rgb[40 * 24 * 3], y[40 * 24 * 3];
    test_image(rgb, h, w);
    for (int codec = DJ_CODEC_JPEG; codec <= DJ_CODEC_WEBP; codec++) {
        const int q = codec == DJ_CODEC_JPEG ? 100 : 90;
        dj_coded plain = {0}, f0 = {0}, f1 = {0}, f4 = {0}, ref = {0};
        CHECK_OK(codec == DJ_CODEC_JPEG ? dj_jpeg_encode(rgb, h, w, q, &plain) : dj_webp_encode(rgb, h, w, q, &plain));
        CHECK_OK(dj_compress_code_feedback(codec, rgb, h, w, q, 0, &f0));
        CHECK(f0.size == plain.size && !memcmp(f0.data, plain.data, plain.size));
        uint8_t *d = NULL;
        int dh, dw;
        CHECK_OK(dj_compress_decode(codec, &plain, &d, &dh, &dw));
        for (size_t p = 0; d && p < n; p++) {
            int v = 2 * rgb[p] - d[p];
            y[p] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
        }
        CHECK_OK(codec == DJ_CODEC_JPEG ? dj_jpeg_encode(y, h, w, q, &ref) : dj_webp_encode(y, h, w, q, &ref));
        CHECK_OK(dj_compress_code_feedback(codec, rgb, h, w, q, 1, &f1));
        CHECK(f1.size == ref.size && f1.size > 0 && !memcmp(f1.data, ref.data, ref.size));
        CHECK_OK(dj_compress_code_feedback(codec, rgb, h, w, q, 4, &f4));
        double s0 = sse_of(codec, &plain, rgb, n), s4 = sse_of(codec, &f4, rgb, n);
        CHECK(s0 > 0 && s4 > 0 && s4 < 4 * s0); /* measured: 2.4x (JPEG q100) and 0.9x (WebP q90) */
        CHECK(f4.size != plain.size || memcmp(f4.data, plain.data, plain.size));
        free(d);
        dj_coded_free(&plain), dj_coded_free(&f0), dj_coded_free(&f1), dj_coded_free(&f4), dj_coded_free(&ref);
    }
    dj_coded c = {0};
    CHECK_FAILS(dj_compress_code_feedback(DJ_CODEC_JPEG, rgb, h, w, 100, DJ_COMPRESS_MAX_FEEDBACK + 1, &c), DJ_EINVAL,
                "rounds");
    CHECK_FAILS(dj_compress_code_feedback(DJ_CODEC_JPEG, rgb, h, w, 0, 1, &c), DJ_EINVAL, "outside 1..100");
    CHECK(c.data == NULL && c.size == 0);
}

/* The prefilter never moves a value further than s*b from x (checked on
 * its input to the codec: the codec's output equals coding that input). */
static void test_prefilter_within_budget(void) {
    const int h = 16, w = 16;
    uint8_t rgb[16 * 16 * 3], t[16 * 16 * 3], y[16 * 16 * 3];
    float b[16 * 16 * 3];
    test_image(rgb, h, w);
    for (int i = 0; i < h * w * 3; i++) b[i] = (float)(i % 7);
    CHECK_OK(dj_smooth_target(rgb, h, w, 1.5f, t));
    dj_prefilter(rgb, t, b, 0.5f, (size_t)h * w * 3, y);
    int bad = 0, moved = 0;
    for (int i = 0; i < h * w * 3; i++) {
        bad += abs((int)y[i] - (int)rgb[i]) > 0.5 * b[i] + 1e-6;
        moved += y[i] != rgb[i];
    }
    CHECK(bad == 0);
    CHECK(moved > 0);
}

static void test_ladder_and_pick(void) {
    dj_compress_config cfg = dj_compress_defaults();
    int grid[3] = {98, 33, 50}, lad[DJ_COMPRESS_MAX_LADDER];
    int n = dj_compress_ladder(&cfg, grid, 3, lad);
    CHECK(n == 22); /* 5..100 step 5 (20) + 33 + 98 */
    CHECK(lad[0] == 5 && lad[6] == 33 && lad[7] == 35 && lad[n - 2] == 98 && lad[n - 1] == 100);
    uint8_t pass[DJ_COMPRESS_MAX_LADDER] = {0};
    CHECK(dj_compress_rate_pick(lad, n, pass, 50) == 50); /* none passes: q itself */
    pass[9] = 1;                                          /* lad[9] = 45 */
    CHECK(lad[9] == 45);
    CHECK(dj_compress_rate_pick(lad, n, pass, 50) == 45);
    CHECK(dj_compress_rate_pick(lad, n, pass, 40) == 40); /* never above q */
    pass[2] = 1;
    CHECK(dj_compress_rate_pick(lad, n, pass, 50) == 15);
    /* never above q, for every q and a scattered pattern */
    for (int l = 0; l < n; l++) pass[l] = (uint8_t)(l % 3 == 1);
    int above = 0;
    for (int q = 1; q <= 100; q++) above += dj_compress_rate_pick(lad, n, pass, q) > q;
    CHECK(above == 0);
}

/* Hand-computed: x = 100 everywhere, budget 2 levels, s = 0.5 -> 1 level. */
static void test_criterion(void) {
    uint8_t x[20], d[20];
    float b[20];
    for (int i = 0; i < 20; i++) x[i] = 100, d[i] = 101, b[i] = 2.f;
    dj_compress_config cfg = dj_compress_defaults();
    cfg.strength = 0.5;
    CHECK(dj_compress_criterion_ok(&cfg, x, d, b, 20) == 1); /* |1| <= 1 everywhere */
    d[3] = 103;                                              /* one of 20 over: 5% */
    CHECK(dj_compress_criterion_ok(&cfg, x, d, b, 20) == 1);
    d[4] = 90;                                               /* two: 10% > tau */
    CHECK(dj_compress_criterion_ok(&cfg, x, d, b, 20) == 0);
    cfg.criterion = DJ_CRIT_MEAN; /* excess (2 + 9) / 20 = 0.55 levels */
    cfg.tau = 0.55;
    CHECK(dj_compress_criterion_ok(&cfg, x, d, b, 20) == 1);
    cfg.tau = 0.54;
    CHECK(dj_compress_criterion_ok(&cfg, x, d, b, 20) == 0);
}

/* Guard with a fake classifier: image i keeps its label iff q >= need[i]. */
static const int guard_need[5] = {1, 33, 60, 100, 101};
static int fake_labels(void *user, int n, const int *idx, const int *q, int32_t *labels) {
    int *calls = user;
    ++*calls;
    for (int j = 0; j < n; j++) labels[j] = q[j] >= guard_need[idx[j]] ? 7 : 3;
    return DJ_OK;
}

static void test_guard_search(void) {
    dj_compress_config cfg = dj_compress_defaults();
    int lad[DJ_COMPRESS_MAX_LADDER], n = dj_compress_ladder(&cfg, NULL, 0, lad);
    int32_t ref[5] = {7, 7, 7, 7, 7};
    int q[5], calls = 0;
    uint8_t fb[5];
    for (int s = 0; s < n; s += 7) {
        int start[5] = {s, s, s, s, s};
        CHECK_OK(dj_compress_guard(5, 1, fake_labels, &calls, lad, n, n, start, ref, 1, q, fb));
        CHECK(q[0] == 5 && q[1] == 35 && q[2] == 60 && q[3] == 100 && q[4] == 100);
        CHECK(fb[0] == 0 && fb[1] == 0 && fb[2] == 0 && fb[3] == 0 && fb[4] == 1);
    }
    CHECK(calls > 0 && calls <= 3 * (n + 2));
}

/* Guard when keeping is not monotone in quality: image i keeps its label
 * only at the candidates in guard_only[i] (0-terminated). The ladder is 5..100
 * in steps of 5, then three error-feedback candidates 101..103. */
static const int guard_only[4][4] = {{20, 0}, {102, 103, 0}, {0}, {45, 50, 80, 0}};
static int only_labels(void *user, int n, const int *idx, const int *q, int32_t *labels) {
    int *calls = user;
    ++*calls;
    for (int j = 0; j < n; j++) {
        labels[j] = 3;
        for (const int *o = guard_only[idx[j]]; *o; o++)
            if (*o == q[j]) labels[j] = 7;
    }
    return DJ_OK;
}

static void test_guard_phases(void) {
    dj_compress_config cfg = dj_compress_defaults();
    int lad[DJ_COMPRESS_MAX_LADDER], np = dj_compress_ladder(&cfg, NULL, 0, lad), nl = np;
    for (int r = 1; r <= 3; r++) lad[nl++] = 100 + r;
    int32_t ref[4] = {7, 7, 7, 7};
    int start[4] = {10, 10, 10, 7}, q[4], calls = 0; /* q 55 for the first three, 40 for the last */
    uint8_t fb[4];
    CHECK_OK(dj_compress_guard(4, 1, only_labels, &calls, lad, np, nl, start, ref, 1, q, fb));
    CHECK(q[0] == 20 && fb[0] == 0);  /* nothing from 55 up: the first below it that keeps */
    CHECK(q[1] == 102 && fb[1] == 0); /* no plain rung: the first extra that keeps */
    CHECK(q[2] == 100 && fb[2] == 1); /* nothing keeps: plain 100, counted */
    CHECK(q[3] == 45 && fb[3] == 0);  /* up from 40 to 45, the first that keeps */
    CHECK(calls <= nl + 2);
    /* without extras the second image falls back too */
    CHECK_OK(dj_compress_guard(4, 1, only_labels, &calls, lad, np, np, start, ref, 1, q, fb));
    CHECK(q[1] == 100 && fb[1] == 1 && q[0] == 20);
    CHECK(dj_compress_guard(4, 1, only_labels, &calls, lad, 0, np, start, ref, 1, q, fb) == DJ_EINVAL);
}

/* BD-rate and savings on curves with a known answer: test = 0.8 x plain. */
static void test_summarise(void) {
    dj_compress_point pts[8] = {0};
    const double rate[4] = {0.5, 1, 2, 4}, rca[4] = {0.6, 0.8, 0.96, 0.99};
    for (int i = 0; i < 4; i++) {
        snprintf(pts[i].method, sizeof pts[i].method, "plain");
        snprintf(pts[4 + i].method, sizeof pts[4 + i].method, "jnd-quant");
        pts[i].bpp = rate[i], pts[4 + i].bpp = 0.8 * rate[i];
        pts[i].rca_mean = pts[4 + i].rca_mean = rca[i];
        pts[i].quality = pts[4 + i].quality = 20 * (i + 1);
    }
    dj_compress_result res = {0};
    res.points = pts;
    res.npoints = 8;
    CHECK_OK(dj_compress_summarise(&res));
    CHECK(res.nsummary == 1);
    CHECK_CLOSE(res.summary[0].bd_rate, -0.2, 1e-9, 0);
    CHECK_CLOSE(res.summary[0].saving95, 0.2, 1e-9, 0);
    CHECK_CLOSE(res.summary[0].saving98, 0.2, 1e-9, 0);
    CHECK(res.plain_q_99 == 80 && res.plain_bpp_q_99 == 4);
    free(res.summary);
}

/* ------------------------------------------------------------ the CLI */

static void test_cli_bad_input(void) {
    char a[8192], png[4200], bad[4200], big[4200];
    snprintf(png, sizeof png, "%s/ok.png", tmpdir);
    snprintf(bad, sizeof bad, "%s/bad.png", tmpdir);
    snprintf(big, sizeof big, "%s/wide.png", tmpdir);
    uint8_t rgb[32 * 32 * 3];
    test_image(rgb, 32, 32);
    CHECK_OK(dj_png_write_rgb(png, rgb, 32, 32));
    FILE *f = fopen(bad, "wb");
    if (f) fputs("\x89PNG\r\n\x1a\n this is not a PNG body", f), fclose(f);
    uint8_t *wide = calloc((size_t)16384 * 3, 1);
    CHECK_OK(dj_png_write_rgb(big, wide, 1, 16384));
    free(wide);
#define RUNX(code, needle, ...)                                                                        \
    do {                                                                                               \
        snprintf(a, sizeof a, __VA_ARGS__);                                                            \
        CHECK(cli_exits(bin, tmpdir, code, needle, a));                                                \
    } while (0)
    RUNX(2, "unknown codec 'avif'", "compress --png %s --codec avif --out %s/o", png, tmpdir);
    RUNX(2, "unknown method 'jnd-magic'", "compress --png %s --methods plain,jnd-magic --out %s/o", png, tmpdir);
    RUNX(2, "needs --codec jpeg", "compress --png %s --codec webp --methods plain,hvs-quant --out %s/o", png, tmpdir);
    RUNX(2, "--qualities takes integers 1..100", "compress --png %s --qualities 0,50 --out %s/o", png, tmpdir);
    RUNX(2, "--qualities takes integers 1..100", "compress --png %s --qualities 50,101 --out %s/o", png, tmpdir);
    RUNX(2, "--quality 101 is out of range", "compress --png %s --method plain --quality 101 --out %s/o", png, tmpdir);
    RUNX(2, "--strength must be in (0, 1]", "compress --png %s --strength 0 --out %s/o", png, tmpdir);
    RUNX(2, "--strength 1.5 is out of range", "compress --png %s --strength 1.5 --out %s/o", png, tmpdir);
    RUNX(3, "cannot open", "compress --png %s/missing.png --out %s/o", tmpdir, tmpdir);
    RUNX(3, "bad.png", "compress --png %s --out %s/o", bad, tmpdir);
    RUNX(3, "WebP takes at most 16383", "compress --png %s --codec webp --out %s/o", big, tmpdir);
    RUNX(3, "cannot create the output folder", "compress --png %s --out %s/ok.png/sub", png, tmpdir);
#undef RUNX
}

/* Single-image mode: a PNG of any size coded with one method. */
static void test_cli_single(void) {
    char a[8192], png[4200], coded[4200];
    snprintf(png, sizeof png, "%s/odd.png", tmpdir);
    uint8_t rgb[24 * 40 * 3];
    test_image(rgb, 24, 40);
    CHECK_OK(dj_png_write_rgb(png, rgb, 24, 40));
    snprintf(a, sizeof a, "compress --png %s --method jnd-quant --quality 50 --out %s/single", png, tmpdir);
    CHECK(cli_exits(bin, tmpdir, 0, "jnd-quant q50", a));
    snprintf(coded, sizeof coded, "%s/single/odd.jpg", tmpdir);
    void *data = NULL;
    size_t size = 0;
    CHECK_OK(dj_read_file(coded, 1 << 20, &data, &size));
    uint8_t *dec = NULL;
    int h = 0, w = 0;
    CHECK_OK(dj_jpeg_decode(data, size, &dec, &h, &w));
    CHECK(h == 24 && w == 40);
    free(dec);
    free(data);
}


/* ------------------------------------------------ CIFAR-10, end to end */

/* Header-free bytes of a baseline JPEG, counted here (not by the codec):
 * from the end of the SOS header to the EOI marker. */
static long jpeg_scan_bytes(const uint8_t *d, size_t n) {
    for (size_t i = 2; i + 4 < n;) {
        if (d[i] != 0xFF) return -1;
        int marker = d[i + 1];
        size_t len = (size_t)d[i + 2] << 8 | d[i + 3];
        if (marker == 0xDA) {
            size_t start = i + 2 + len;
            if (n < 2 || d[n - 2] != 0xFF || d[n - 1] != 0xD9 || start > n - 2) return -1;
            return (long)(n - 2 - start);
        }
        i += 2 + len;
    }
    return -1;
}

/* Decode with djpeg into rgb (32x32); 0 on success. */
static int djpeg(const char *file, uint8_t *rgb) {
    char cmd[8800], ppm[4200];
    snprintf(ppm, sizeof ppm, "%s/dec.ppm", tmpdir);
    snprintf(cmd, sizeof cmd, "djpeg -ppm -outfile %s %s", ppm, file);
    if (system(cmd)) return -1;
    FILE *f = fopen(ppm, "rb");
    int w = 0, h = 0, mx = 0, ok = f && fscanf(f, "P6 %d %d %d", &w, &h, &mx) == 3 && w == 32 && h == 32 && mx == 255 &&
                                 fgetc(f) != EOF && fread(rgb, 1, 3072, f) == 3072;
    if (f) fclose(f);
    return ok ? 0 : -1;
}

static const dj_json *point(const dj_json *pts, const char *method, int q) {
    for (size_t i = 0; pts && i < pts->len; i++) {
        const dj_json *p = &pts->items[i];
        if (!strcmp(dj_json_get(p, "method")->string, method) && dj_json_get(p, "quality")->integer == q) return p;
    }
    return NULL;
}

static double num(const dj_json *o, const char *k) {
    const dj_json *v = o ? dj_json_get(o, k) : NULL;
    return v && v->type == DJ_JSON_NUMBER ? v->number : NAN;
}

/* Every file of one point: rate and PSNR recomputed with djpeg; the coded
 * quality in each name never above the grid quality; decoded PNGs kept for
 * the RCA check. */
static void check_point(const dj_json *pts, const dj_cifar10 *ds, const char *method, int q, int write_png) {
    const dj_json *p = point(pts, method, q);
    CHECK(p != NULL);
    if (!p) return;
    double payload = 0, size = 0, psnr = 0;
    int found = 0;
    for (int i = 0; i < ds->n; i++) {
        char file[4300];
        int got = 0;
        for (int cq = 1; cq <= q && !got; cq++) { /* the name holds the quality the image was coded at */
            snprintf(file, sizeof file, "%s/c/coded/%s-q%03d/test-%05d-q%03d.jpg", tmpdir, method, q, i, cq);
            got = access(file, R_OK) == 0;
        }
        if (!got) continue;
        found++;
        void *data = NULL;
        size_t n = 0;
        uint8_t rgb[3072];
        if (dj_read_file(file, 1 << 20, &data, &n) || djpeg(file, rgb)) {
            free(data);
            CHECK(!"cannot read or djpeg a coded file");
            continue;
        }
        long scan = jpeg_scan_bytes(data, n);
        CHECK(scan > 0);
        payload += (double)scan;
        size += (double)n;
        psnr += dj_psnr_u8(ds->pixels + (size_t)i * 3072, rgb, 3072);
        if (write_png) {
            char png[4300];
            snprintf(png, sizeof png, "%s/dec-%02d.png", tmpdir, i);
            CHECK_OK(dj_png_write_rgb(png, rgb, 32, 32));
        }
        free(data);
    }
    CHECK(found == ds->n); /* every image has its file, at a quality <= q */
    CHECK_CLOSE(8 * payload / (ds->n * 1024.0), num(p, "bpp"), 1e-9, 1e-9);
    CHECK_CLOSE(8 * size / (ds->n * 1024.0), num(p, "file_bpp"), 1e-9, 1e-9);
    CHECK_CLOSE(psnr / ds->n, num(p, "psnr_db"), 1e-6, 1e-9);
}

/* `dmvjnd classify --csv`: pred of model m on image i -> pred[m*n + i]. */
static int classify_csv(const char *models, const char *pngs, int n, int nm, int *pred) {
    char cmd[1 << 15];
    snprintf(cmd, sizeof cmd, "%s classify %s --png %s --csv", bin, models, pngs);
    FILE *f = popen(cmd, "r");
    if (!f) return -1;
    char line[8192];
    int rows = 0;
    while (fgets(line, sizeof line, f)) {
        int idx, label, pr;
        char src[4096], tag[128], arch[128];
        if (sscanf(line, "%d,%4095[^,],%d,%127[^,],%127[^,],%d", &idx, src, &label, tag, arch, &pr) != 6 &&
            sscanf(line, "%d,%4095[^,],,%127[^,],%127[^,],%d", &idx, src, tag, arch, &pr) != 5)
            continue;
        int m = rows % nm; /* rows: image-major, then model */
        if (idx >= 0 && idx < n) pred[m * n + idx] = pr;
        rows++;
    }
    return pclose(f) == 0 && rows == n * nm ? 0 : -1;
}

static void test_cli_cifar(void) {
    if (!have_data) SKIP("CIFAR-10 not found (set DMVJND_DATA)");
    if (system("command -v djpeg > /dev/null")) SKIP("djpeg is not installed");
    enum { N = 20 };
    dj_jnd_generator *gen = NULL;
    CHECK_OK(dj_jnd_generator_create(&gen, jnd_model, NULL, 0));
    if (!gen) return;
    const int K = dj_jnd_generator_count(gen);
    /* the last of the four again as an "extra" classifier: its extra RCA
     * must equal its own RCA at every point */
    char a[8192];
    snprintf(a, sizeof a,
             "compress --split test --limit %d --codec jpeg --methods plain,jnd-quant,jnd-rate,guard "
             "--qualities 30,90 --out %s/c --save-all --montage 2 --no-plot --json --threads 1 --classifier %s",
             N, tmpdir, dj_jnd_generator_path(gen, K - 1));
    int rc = cli_run(bin, tmpdir, a);
    CHECK(rc == 0);
    if (rc) {
        fprintf(stderr, "%s\n", cli_out);
        dj_jnd_generator_destroy(gen);
        return;
    }
    const char *js = strchr(cli_out, '{');
    dj_json *root = NULL;
    CHECK_OK(dj_json_parse(js ? js : "", js ? strlen(js) : 0, "compress --json", 0, &root));
    if (!root) {
        dj_jnd_generator_destroy(gen);
        return;
    }
    const dj_json *pts = dj_json_get(root, "points");
    int compared = 0;
    for (size_t i = 0; pts && i < pts->len; i++) {
        const dj_json *rca = dj_json_get(&pts->items[i], "rca"), *ex = dj_json_get(&pts->items[i], "extra_rca");
        const dj_json *x = ex && ex->len == 1 ? &ex->items[0] : NULL;
        CHECK(x && !strcmp(x->key, dj_jnd_generator_tag(gen, K - 1)));
        if (x) CHECK_CLOSE(x->number, num(rca, dj_jnd_generator_tag(gen, K - 1)), 0, 0);
        compared += x != NULL;
    }
    CHECK(compared == 7); /* plain, jnd-quant, jnd-rate at 2 qualities, and guard */
    dj_cifar10 ds;
    dj_cifar10_opts o = {0, N, 0};
    CHECK_OK(dj_cifar10_load(&ds, NULL, "test", &o));
    for (int i = 0; i < N; i++) {
        char png[4300];
        snprintf(png, sizeof png, "%s/orig-%02d.png", tmpdir, i);
        CHECK_OK(dj_png_write_rgb(png, ds.pixels + (size_t)i * 3072, 32, 32));
    }
    check_point(pts, &ds, "plain", 30, 1);
    check_point(pts, &ds, "jnd-quant", 90, 0);
    check_point(pts, &ds, "jnd-rate", 90, 0);
    const dj_json *r90 = point(pts, "jnd-rate", 90), *r30 = point(pts, "jnd-rate", 30);
    CHECK(num(r90, "mean_quality") <= 90 && num(r30, "mean_quality") <= 30);
    /* guard checks its own labels: RCA 1 with the four unless it fell back */
    const dj_json *g = point(pts, "guard", 0);
    CHECK(g != NULL);
    if (g) {
        double fb = num(g, "fallback");
        CHECK(num(g, "rca_mean") >= 1 - fb / N - 1e-12);
        if (fb == 0) CHECK(num(g, "rca_mean") == 1.0);
    }
    /* RCA of plain q30 re-checked with `dmvjnd classify` on the djpeg output */
    {
        char models[8192] = "", orig[1 << 14] = "", dec[1 << 14] = "";
        for (int k = 0; k < K; k++) {
            size_t l = strlen(models);
            snprintf(models + l, sizeof models - l, " --model %s", dj_jnd_generator_path(gen, k));
        }
        for (int i = 0; i < N; i++) {
            size_t l = strlen(orig), m = strlen(dec);
            snprintf(orig + l, sizeof orig - l, " %s/orig-%02d.png", tmpdir, i);
            snprintf(dec + m, sizeof dec - m, " %s/dec-%02d.png", tmpdir, i);
        }
        int po[8 * N], pd[8 * N];
        CHECK(classify_csv(models, orig, N, K, po) == 0);
        CHECK(classify_csv(models, dec, N, K, pd) == 0);
        const dj_json *p = point(pts, "plain", 30), *rca = p ? dj_json_get(p, "rca") : NULL;
        double mean = 0;
        for (int k = 0; k < K; k++) {
            int kept = 0;
            for (int i = 0; i < N; i++) kept += po[k * N + i] == pd[k * N + i];
            CHECK_CLOSE((double)kept / N, num(rca, dj_jnd_generator_tag(gen, k)), 1e-12, 0);
            mean += (double)kept / N / K;
        }
        CHECK_CLOSE(mean, num(p, "rca_mean"), 1e-12, 0);
    }
    dj_jnd_generator_destroy(gen);
    char path[4300];
    snprintf(path, sizeof path, "%s/c/montage.png", tmpdir);
    CHECK(access(path, R_OK) == 0);
    const char *files[3] = {"results.csv", "report.md", "report.json"};
    for (int k = 0; k < 3; k++) {
        snprintf(path, sizeof path, "%s/c/%s", tmpdir, files[k]);
        CHECK(access(path, R_OK) == 0);
    }
    dj_cifar10_free(&ds);
    dj_json_free(root);
}

int main(void) {
    const char *b = getenv("BUILD");
    snprintf(bin, sizeof bin, "%s/dmvjnd", b && *b ? b : "build");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    char dir[4200];
    snprintf(dir, sizeof dir, "%s/test_batch.bin", dj_cifar10_default_dir());
    have_data = access(dir, R_OK) == 0;
    RUN(test_method_table);
    RUN(test_plain_and_zero_budget);
    RUN(test_prefilter_within_budget);
    RUN(test_ladder_and_pick);
    RUN(test_criterion);
    RUN(test_guard_search);
    RUN(test_guard_phases);
    RUN(test_feedback);
    RUN(test_summarise);
    if (access(bin, X_OK) == 0 && dj_model_find(DJ_MODEL_JND, jnd_model, sizeof jnd_model) == 0) {
        RUN(test_cli_bad_input);
        RUN(test_cli_single);
        RUN(test_cli_cifar);
    } else {
        printf("SKIP CLI checks: %s or the shipped %s missing\n", bin, DJ_MODEL_JND);
    }
    char cmd[4300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    if (system(cmd)) fprintf(stderr, "could not remove %s\n", tmpdir);
    return check_report("test_compress");
}
