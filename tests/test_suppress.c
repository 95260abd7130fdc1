/* JND-directed coefficient suppression (src/codec/suppress.c): the bound
 * holds for the real decoder and for djpeg on random images and budgets,
 * the rate never exceeds plain's, the limits (no budget, zero, infinite),
 * and the block independence the method relies on, checked with libjpeg
 * directly. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <jpeglib.h>

#include "check.h"
#include "codec_util.h"
#include "dmvjnd/codec.h"
#include "dmvjnd/dmvjnd.h"

/* ------------------------------------------------ libjpeg, independently */

typedef struct coefs {
    int nby, nbx;
    JCOEF *c; /* nby*nbx blocks x 3 components x 64, natural order */
    int samp; /* h_samp_factor * 10 + v_samp_factor of component 0 */
} coefs;

static int read_coefs(const uint8_t *data, size_t size, coefs *out) {
    struct jpeg_decompress_struct d;
    struct jpeg_error_mgr e;
    d.err = jpeg_std_error(&e);
    jpeg_create_decompress(&d);
    jpeg_mem_src(&d, data, (unsigned long)size);
    jpeg_read_header(&d, TRUE);
    jvirt_barray_ptr *arr = jpeg_read_coefficients(&d);
    out->nby = (int)d.comp_info[0].height_in_blocks;
    out->nbx = (int)d.comp_info[0].width_in_blocks;
    out->samp = d.comp_info[0].h_samp_factor * 10 + d.comp_info[0].v_samp_factor;
    out->c = calloc((size_t)out->nby * out->nbx * 192, sizeof(JCOEF));
    for (int c = 0; c < 3 && c < d.num_components; c++)
        for (int by = 0; by < (int)d.comp_info[c].height_in_blocks; by++) {
            JBLOCKARRAY row = (*d.mem->access_virt_barray)((j_common_ptr)&d, arr[c], (JDIMENSION)by, 1, FALSE);
            for (int bx = 0; bx < (int)d.comp_info[c].width_in_blocks; bx++)
                memcpy(out->c + ((size_t)by * out->nbx + bx) * 192 + c * 64, row[0][bx], 64 * sizeof(JCOEF));
        }
    jpeg_finish_decompress(&d);
    jpeg_destroy_decompress(&d);
    return 0;
}

/* Encode x with libjpeg at quality 75 (h_samp x v_samp luma sampling), then
 * add `delta` to a few coefficients of luma block (by, bx) and of every
 * chroma block covering the same pixels, and return both streams. */
static void encode_and_modify(const uint8_t *x, int h, int w, int hs, int vs, int by, int bx, uint8_t **a, unsigned long *na,
                              uint8_t **b, unsigned long *nb) {
    struct jpeg_compress_struct c;
    struct jpeg_error_mgr e;
    c.err = jpeg_std_error(&e);
    jpeg_create_compress(&c);
    *a = NULL;
    *na = 0;
    jpeg_mem_dest(&c, a, na);
    c.image_width = (JDIMENSION)w;
    c.image_height = (JDIMENSION)h;
    c.input_components = 3;
    c.in_color_space = JCS_RGB;
    jpeg_set_defaults(&c);
    jpeg_set_quality(&c, 75, TRUE);
    c.comp_info[0].h_samp_factor = hs;
    c.comp_info[0].v_samp_factor = vs;
    for (int i = 1; i < 3; i++) c.comp_info[i].h_samp_factor = c.comp_info[i].v_samp_factor = 1;
    jpeg_start_compress(&c, TRUE);
    while (c.next_scanline < c.image_height) {
        JSAMPROW row = (JSAMPROW)(x + (size_t)c.next_scanline * w * 3);
        jpeg_write_scanlines(&c, &row, 1);
    }
    jpeg_finish_compress(&c);
    jpeg_destroy_compress(&c);

    struct jpeg_decompress_struct d;
    d.err = jpeg_std_error(&e);
    jpeg_create_decompress(&d);
    jpeg_mem_src(&d, *a, *na);
    jpeg_read_header(&d, TRUE);
    jvirt_barray_ptr *arr = jpeg_read_coefficients(&d);
    for (int ci = 0; ci < 3; ci++) {
        int cy = ci ? by * 8 / (8 * vs) : by, cx = ci ? bx * 8 / (8 * hs) : bx;
        JBLOCKARRAY row = (*d.mem->access_virt_barray)((j_common_ptr)&d, arr[ci], (JDIMENSION)cy, 1, TRUE);
        row[0][cx][0] += 3;
        row[0][cx][1] -= 2;
        row[0][cx][9] += 2;
        row[0][cx][63] += 1;
    }
    jpeg_create_compress(&c);
    *b = NULL;
    *nb = 0;
    jpeg_mem_dest(&c, b, nb);
    jpeg_copy_critical_parameters(&d, &c);
    jpeg_write_coefficients(&c, arr);
    jpeg_finish_compress(&c);
    jpeg_destroy_compress(&c);
    jpeg_finish_decompress(&d);
    jpeg_destroy_decompress(&d);
}

/* Changing one block's coefficients in a 4:4:4 baseline file changes the
 * decoded pixels of that 8x8 block only (decoded with the library's decoder,
 * djpeg's settings). In 4:2:0 (luma 2x2) the same change leaks into the
 * neighbouring blocks through fancy upsampling: the check can fail. */
static long pixels_changed_outside(int hs, int vs, int by, int bx, long *inside) {
    int h = 40, w = 48;
    uint8_t *x = cu_image(h, w, 30);
    uint8_t *a, *b, *pa, *pb;
    unsigned long na, nb;
    encode_and_modify(x, h, w, hs, vs, by, bx, &a, &na, &b, &nb);
    int hh, ww;
    long outside = 0;
    *inside = 0;
    CHECK_OK(dj_jpeg_decode(a, na, &pa, &hh, &ww));
    CHECK_OK(dj_jpeg_decode(b, nb, &pb, &hh, &ww));
    for (int y = 0; y < h; y++)
        for (int xx = 0; xx < w; xx++)
            for (int ch = 0; ch < 3; ch++) {
                size_t o = ((size_t)y * w + xx) * 3 + ch;
                int in = y / 8 == by && xx / 8 == bx;
                if (pa[o] != pb[o]) {
                    if (in) (*inside)++;
                    else outside++;
                }
            }
    free(a);
    free(b);
    free(pa);
    free(pb);
    free(x);
    return outside;
}

static void test_blocks_independent(void) {
    cu_seed(21);
    long inside;
    for (int by = 0; by < 5; by++)
        for (int bx = 0; bx < 6; bx++) {
            CHECK(pixels_changed_outside(1, 1, by, bx, &inside) == 0);
            CHECK(inside > 0);
        }
    CHECK(pixels_changed_outside(2, 2, 2, 2, &inside) > 0);
}

/* ------------------------------------------------ the suppression */

static uint8_t *decode(const dj_coded *c, int h, int w) {
    uint8_t *y = NULL;
    int hh, ww;
    CHECK_OK(dj_jpeg_decode(c->data, c->size, &y, &hh, &ww));
    CHECK(hh == h && ww == w);
    return y;
}

static void test_no_budget_is_plain(void) {
    cu_seed(22);
    uint8_t *x = cu_image(32, 32, 30);
    dj_coded p, s;
    dj_suppress_stats st;
    CHECK_OK(dj_jpeg_encode(x, 32, 32, 75, &p));
    CHECK_OK(dj_jpeg_encode_suppressed(x, 32, 32, 75, NULL, &s, &st));
    CHECK(s.size == p.size && memcmp(s.data, p.data, p.size) == 0 && s.payload == p.payload);
    CHECK(st.blocks == 16 && st.coefficients_changed == 0 && st.blocks_restored == 0);
    dj_coded_free(&s);
    CHECK_OK(dj_jpeg_encode_suppressed(x, 32, 32, 75, NULL, &s, NULL));
    CHECK(s.size == p.size);
    dj_coded_free(&s);
    dj_coded_free(&p);
    free(x);
}

/* A zero budget still allows every pixel plain's own error: suppression may
 * move a pixel within it, never past it. */
static void test_zero_budget(void) {
    for (int seed = 0; seed < 20; seed++) {
        cu_seed(100 + seed);
        int h = 32, w = 32;
        uint8_t *x = cu_image(h, w, 40);
        float *bud = calloc((size_t)h * w * 3, sizeof *bud);
        dj_coded p, s;
        CHECK_OK(dj_jpeg_encode(x, h, w, 50, &p));
        CHECK_OK(dj_jpeg_encode_suppressed(x, h, w, 50, bud, &s, NULL));
        uint8_t *dp = decode(&p, h, w), *ds = decode(&s, h, w);
        long past = 0;
        for (int i = 0; i < h * w * 3; i++) past += abs(ds[i] - x[i]) > abs(dp[i] - x[i]);
        CHECK(past == 0);
        CHECK(s.payload <= p.payload);
        free(dp);
        free(ds);
        free(bud);
        dj_coded_free(&p);
        dj_coded_free(&s);
        free(x);
    }
}

/* An unlimited budget removes every AC coefficient (DC is never touched):
 * checked on the coefficients libjpeg reads back. */
static void test_infinite_budget(void) {
    cu_seed(23);
    int h = 29, w = 37;
    uint8_t *x = cu_image(h, w, 40);
    float *bud = malloc((size_t)h * w * 3 * sizeof *bud);
    for (int i = 0; i < h * w * 3; i++) bud[i] = i % 2 ? INFINITY : 1e9f;
    dj_coded p, s;
    dj_suppress_stats st;
    CHECK_OK(dj_jpeg_encode(x, h, w, 90, &p));
    CHECK_OK(dj_jpeg_encode_suppressed(x, h, w, 90, bud, &s, &st));
    coefs cp, cs;
    read_coefs(p.data, p.size, &cp);
    read_coefs(s.data, s.size, &cs);
    long nz_ac = 0, left_ac = 0, dc_diff = 0;
    for (long i = 0; i < (long)cp.nby * cp.nbx * 192; i++) {
        if (i % 64) {
            nz_ac += cp.c[i] != 0;
            left_ac += cs.c[i] != 0;
        } else {
            dc_diff += cp.c[i] != cs.c[i];
        }
    }
    CHECK(cp.samp == 11 && cs.samp == 11 && st.blocks == 20);
    CHECK(left_ac == 0 && dc_diff == 0 && st.coefficients_changed == nz_ac && nz_ac > 100);
    CHECK(s.payload * 4 < p.payload); /* measured: ~10x fewer bytes */
    free(cp.c);
    free(cs.c);
    free(bud);
    dj_coded_free(&p);
    dj_coded_free(&s);
    free(x);
}

/* Random images, sizes, qualities and budgets: every decoded pixel within
 * max(budget, |plain - x|), by our decoder and by djpeg (same pixels, no
 * warning); payload never above plain's. */
static void test_bound_random(void) {
    int djpeg = cu_have("djpeg");
    if (!djpeg) printf("SKIP test_bound_random (djpeg part): djpeg not installed\n");
    long blocks = 0, restored = 0, saved = 0, plain_total = 0, djpeg_runs = 0;
    for (int seed = 0; seed < 120; seed++) {
        cu_seed(1000 + seed);
        int h = 1 + (int)(cu_next() % 40), w = 1 + (int)(cu_next() % 40), q = 10 + (int)(cu_next() % 86);
        uint8_t *x = cu_image(h, w, 60 * cu_uniform());
        size_t n = (size_t)h * w * 3;
        float *bud = malloc(n * sizeof *bud);
        int kind = seed % 4;
        float scale = (float)(40 * cu_uniform());
        for (size_t i = 0; i < n; i++) {
            size_t px = i / 3;
            int by = (int)(px / w) / 8, bx = (int)(px % w) / 8;
            bud[i] = kind == 0   ? scale
                     : kind == 1 ? (float)(scale * cu_uniform())
                     : kind == 2 ? ((by + bx) % 2 ? scale : 0.0f)        /* a checkerboard of blocks */
                                 : (float)(scale * (1 + sin(0.3 * px))); /* smooth */
        }
        dj_coded p, s;
        dj_suppress_stats st;
        CHECK_OK(dj_jpeg_encode(x, h, w, q, &p));
        CHECK_OK(dj_jpeg_encode_suppressed(x, h, w, q, bud, &s, &st));
        uint8_t *dp = decode(&p, h, w), *ds = decode(&s, h, w);
        long past = 0;
        for (size_t i = 0; i < n; i++) {
            int bound = abs(dp[i] - x[i]);
            if ((int)bud[i] > bound) bound = (int)bud[i];
            past += abs(ds[i] - x[i]) > bound;
        }
        CHECK(past == 0);
        CHECK(s.payload <= p.payload);
        CHECK(st.blocks == (long)((h + 7) / 8) * ((w + 7) / 8) && st.blocks_restored <= st.blocks);
        blocks += st.blocks;
        restored += st.blocks_restored;
        saved += (long)p.payload - (long)s.payload;
        plain_total += (long)p.payload;
        if (djpeg && seed % 4 == 0) {
            char path[512], cmd[1200];
            CHECK(cu_write("s.jpg", s.data, s.size, path, sizeof path) == 0);
            snprintf(cmd, sizeof cmd, "djpeg -ppm '%s' 2>'%s.err'", path, path);
            int th, tw;
            uint8_t *ref = cu_read_pnm_from(cmd, &th, &tw);
            CHECK(ref && th == h && tw == w && memcmp(ref, ds, n) == 0);
            char errp[600];
            snprintf(errp, sizeof errp, "%s.err", path);
            size_t ne = 1;
            uint8_t *err = cu_read_file(errp, &ne);
            CHECK(err && ne == 0); /* no warning from djpeg */
            free(err);
            free(ref);
            djpeg_runs++;
        }
        free(dp);
        free(ds);
        free(bud);
        dj_coded_free(&p);
        dj_coded_free(&s);
        free(x);
    }
    printf("suppress random: %ld of %ld blocks restored, %ld of %ld payload bytes saved, %ld djpeg checks\n",
           restored, blocks, saved, plain_total, djpeg_runs);
    CHECK(saved > plain_total / 20);    /* budgets up to 40 levels save bytes */
    CHECK(restored * 10 <= blocks);     /* the predictor is right for most blocks */
}

/* Calls on different images in parallel give the serial results byte for
 * byte (no shared state). */
static void test_parallel_equals_serial(void) {
    enum { N = 16 };
    uint8_t *x[N];
    float *bud = malloc(32 * 32 * 3 * sizeof *bud);
    for (int i = 0; i < 32 * 32 * 3; i++) bud[i] = 15;
    dj_coded serial[N], par[N];
    for (int i = 0; i < N; i++) {
        cu_seed(500 + i);
        x[i] = cu_image(32, 32, 40);
        CHECK_OK(dj_jpeg_encode_suppressed(x[i], 32, 32, 60, bud, &serial[i], NULL));
    }
    int fails = 0;
#pragma omp parallel for num_threads(4) reduction(+ : fails)
    for (int i = 0; i < N; i++) fails += dj_jpeg_encode_suppressed(x[i], 32, 32, 60, bud, &par[i], NULL) != 0;
    CHECK(fails == 0);
    for (int i = 0; i < N; i++) {
        CHECK(par[i].size == serial[i].size && memcmp(par[i].data, serial[i].data, par[i].size) == 0);
        dj_coded_free(&par[i]);
        dj_coded_free(&serial[i]);
        free(x[i]);
    }
    free(bud);
}

static void test_bad_input(void) {
    cu_seed(24);
    uint8_t *x = cu_image(16, 16, 10);
    float bud[768];
    for (int i = 0; i < 768; i++) bud[i] = 5;
    dj_coded s;
    bud[100] = -1;
    CHECK_FAILS(dj_jpeg_encode_suppressed(x, 16, 16, 75, bud, &s, NULL), DJ_EINVAL, "budget[100] = -1");
    CHECK(s.data == NULL && s.size == 0);
    bud[100] = NAN;
    CHECK_FAILS(dj_jpeg_encode_suppressed(x, 16, 16, 75, bud, &s, NULL), DJ_EINVAL, "budget[100] = nan");
    bud[100] = 5;
    CHECK_FAILS(dj_jpeg_encode_suppressed(x, 16, 16, 0, bud, &s, NULL), DJ_EINVAL, "quality 0");
    CHECK_FAILS(dj_jpeg_encode_suppressed(x, 16, 16, 101, bud, &s, NULL), DJ_EINVAL, "quality 101");
    CHECK_FAILS(dj_jpeg_encode_suppressed(x, 0, 16, 75, bud, &s, NULL), DJ_EINVAL, "image size");
    CHECK_FAILS(dj_jpeg_encode_suppressed(NULL, 16, 16, 75, bud, &s, NULL), DJ_EINVAL, "NULL pixels");
    CHECK_FAILS(dj_jpeg_encode_suppressed(x, 16, 16, 75, bud, NULL, NULL), DJ_EINVAL, "NULL output");
    free(x);
}

int main(void) {
    RUN(test_blocks_independent);
    RUN(test_no_budget_is_plain);
    RUN(test_zero_budget);
    RUN(test_infinite_budget);
    RUN(test_bound_random);
    RUN(test_parallel_equals_serial);
    RUN(test_bad_input);
    cu_cleanup();
    return check_report("test_suppress");
}
