/* Evaluation (src/jnd/evaluate.c, report.c, montage.c): RCA, PSNR and the
 * homogeneity test against figures recomputed here from the generator's
 * outputs, the WGN test's energy and determinism, the subset figures, the
 * JSON and Markdown reports, and the montage's size. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "dmvjnd/bench.h"
#include "dmvjnd/budget.h"
#include "dmvjnd/image.h"
#include "dmvjnd/jnd_eval.h"
#include "dmvjnd/train.h"
#include "dmvjnd/json.h"
#include "jnd_fixture.h"

static jnd_fixture fx;
enum { N = 10, SUB = 4 };
#define NB ((size_t)32 * 32 * 3)

static dj_cifar10 make_ds(uint8_t *px, int n, int offset) {
    dj_cifar10 ds = {.n = n, .offset = offset, .pixels = px, .labels = NULL};
    return ds;
}

/* Images in 60..190, so that e (|255 e| < ~50 levels here) is rarely clamped
 * and the WGN of equal energy stays at about the same PSNR. */
static void midrange(uint8_t *px, size_t n) {
    for (size_t i = 0; i < n; i++) px[i] = (uint8_t)(60 + px[i] / 2);
}

static void test_figures(void) {
    uint8_t *px = malloc(N * NB), *xh = malloc(N * NB), *alt = malloc(N * NB);
    float *e = malloc(N * NB * sizeof(float));
    fixture_images(px, N, 32, 32, 5);
    midrange(px, N * NB);
    dj_jnd_generator *g = NULL;
    CHECK_OK(dj_jnd_generator_create(&g, fx.model, NULL, 0));
    if (!g) return;
    dj_cifar10 ds = make_ds(px, N, 0);
    dj_jnd_eval_config cfg = dj_jnd_eval_defaults();
    cfg.batch = 3; /* batches of 3, 3, 3, 1 */
    cfg.subset = SUB;
    dj_jnd_eval_stats all, sub;
    CHECK_OK(dj_jnd_evaluate(g, &ds, &cfg, &all, &sub, NULL, NULL));
    CHECK(all.images == N && sub.images == SUB && all.classifiers == 2);

    /* reference: one generator call over all images */
    dj_jnd_image_result res[N];
    CHECK_OK(dj_jnd_generator_run(g, px, N, 32, 32, xh, e, NULL, res));
    double psnr = 0, rca[2] = {0, 0}, kept_all = 0;
    for (int i = 0; i < N; i++) {
        psnr += res[i].psnr / N;
        for (int k = 0; k < 2; k++) rca[k] += (res[i].before[k] == res[i].after[k]) / (double)N;
        kept_all += (res[i].kept == 2) / (double)N;
    }
    CHECK_CLOSE(all.psnr_db, psnr, 1e-9, 1e-12);
    CHECK_CLOSE(all.rca[0], rca[0], 1e-12, 0);
    CHECK_CLOSE(all.rca[1], rca[1], 1e-12, 0);
    CHECK_CLOSE(all.rca_mean, (rca[0] + rca[1]) / 2, 1e-12, 0);
    CHECK_CLOSE(all.all_kept, kept_all, 1e-12, 0);
    printf("RCA %.3f %.3f, PSNR %.2f dB, WGN RCA %.3f at %.2f dB\n", all.rca[0], all.rca[1], all.psnr_db,
           all.wgn_rca_mean, all.wgn_psnr_db);
    /* unclipped float x + e: normalised here, through the classifiers
     * loaded on their own */
    {
        dj_classifier cls[2];
        const char *paths[2] = {fx.cls[0], fx.cls[1]};
        CHECK_OK(dj_jnd_classifiers_load(cls, paths, 2, NULL, NULL));
        dj_tensor xf;
        CHECK_OK(dj_tensor_alloc(&xf, N, 32, 32, 3));
        double fr = 0, fp = 0;
        for (size_t p = 0; p < N * NB; p++) xf.data[p] = ((float)px[p] / 255.f + e[p] - 0.5f) / 0.5f;
        for (int k = 0; k < 2; k++) {
            int32_t pred[N];
            CHECK_OK(dj_classify_batch(cls[k].graph, &xf, pred, NULL, NULL));
            for (int i = 0; i < N; i++) fr += (pred[i] == res[i].before[k]) / (2.0 * N);
        }
        for (int i = 0; i < N; i++) {
            double se = 0;
            for (size_t p = 0; p < NB; p++) se += 255.0 * e[i * NB + p] * 255.0 * e[i * NB + p];
            fp += 10 * log10(255.0 * 255.0 * NB / se) / N;
        }
        CHECK_CLOSE(all.float_rca_mean, fr, 1e-12, 0);
        CHECK_CLOSE(all.float_psnr_db, fp, 1e-9, 1e-12);
        printf("unclipped float: RCA %.3f at %.2f dB\n", all.float_rca_mean, all.float_psnr_db);
        dj_tensor_free(&xf);
        dj_jnd_classifiers_free(cls, 2);
    }
    /* homogeneity at k = 4: x + (4/9) e, rounded, classified */
    dj_jnd_add_u8(px, e, N * NB, 4.f / 9.f, alt);
    int32_t lab[N * 2];
    CHECK_OK(dj_jnd_generator_classify(g, alt, N, 32, 32, lab));
    double h4 = 0, p4 = 0;
    for (int i = 0; i < N; i++) {
        for (int k = 0; k < 2; k++) h4 += (lab[i * 2 + k] == res[i].before[k]) / (2.0 * N);
        p4 += dj_psnr_u8(px + i * NB, alt + i * NB, NB) / N;
    }
    CHECK_CLOSE(all.homogeneity_rca_mean[3], h4, 1e-12, 0);
    CHECK_CLOSE(all.homogeneity_psnr_db[3], p4, 1e-9, 1e-12);
    /* PSNR grows as e shrinks: 20 log10(9/k) above the full e's, up to rounding */
    for (int j = 0; j < DJ_JND_HOMOGENEITY_STEPS; j++)
        CHECK(all.homogeneity_psnr_db[j] > all.psnr_db + 20 * log10(9.0 / (j + 1)) - 0.6);
    /* WGN of the same energy as the stored distortion: the same PSNR up to
     * the noise's own rounding and clamping */
    CHECK(fabs(all.wgn_psnr_db - all.psnr_db) < 0.3);

    /* the subset figures are those of the first SUB images alone, WGN
     * included (noise drawn per record, not per batch) */
    dj_cifar10 first = make_ds(px, SUB, 0);
    dj_jnd_eval_stats alone;
    cfg.batch = 200;
    cfg.subset = 0;
    CHECK_OK(dj_jnd_evaluate(g, &first, &cfg, &alone, NULL, NULL, NULL));
    CHECK(!memcmp(&alone, &sub, sizeof alone));
    /* records are records: the same images at offset 100 draw other noise */
    dj_cifar10 moved = make_ds(px, SUB, 100);
    dj_jnd_eval_stats other;
    CHECK_OK(dj_jnd_evaluate(g, &moved, &cfg, &other, NULL, NULL, NULL));
    CHECK(other.rca_mean == alone.rca_mean && other.psnr_db == alone.psnr_db);
    CHECK(other.wgn_psnr_db != alone.wgn_psnr_db);
    /* switched off: NaN */
    cfg.wgn = cfg.homogeneity = cfg.unclipped = 0;
    CHECK_OK(dj_jnd_evaluate(g, &first, &cfg, &other, NULL, NULL, NULL));
    CHECK(isnan(other.wgn_rca_mean) && isnan(other.homogeneity_rca_mean[0]) && isnan(other.float_rca_mean) &&
          other.rca_mean == alone.rca_mean);

    /* reports */
    dj_jnd_eval_report rep = {.model_path = fx.model, .gen = g, .has_test = 1, .has_subset = 1, .subset = SUB,
                              .test = all, .test_subset = sub, .seed = 1, .seconds = 1.5, .montage = "montage.png",
                              .peak_rss_bytes = dj_peak_rss_bytes()};
    CHECK(rep.peak_rss_bytes > 1000000); /* this process holds more than a megabyte */
    char *js = NULL, *md = NULL;
    CHECK_OK(dj_jnd_eval_json(&rep, &js));
    CHECK_OK(dj_jnd_eval_markdown(&rep, &md));
    dj_json *root = NULL;
    CHECK_OK(dj_json_parse(js, strlen(js), "report", DJ_JSON_DEFAULT_DEPTH, &root));
    if (root) {
        const dj_json *t = dj_json_get(root, "test");
        CHECK(t && dj_json_get(t, "rca_mean") && dj_json_get(t, "psnr_db") && dj_json_get(t, "wgn_rca_mean"));
        const dj_json *per = t ? dj_json_get(t, "rca_per_classifier") : NULL;
        CHECK(per && dj_json_get(per, "resnet20") && dj_json_get(per, "alexnet"));
        if (per && dj_json_get(per, "alexnet")) CHECK(dj_json_get(per, "alexnet")->number == all.rca[1]);
        const dj_json *hom = t ? dj_json_get(t, "homogeneity_rca") : NULL;
        CHECK(hom && hom->type == DJ_JSON_ARRAY && hom->len == 8);
        CHECK(dj_json_get(root, "test_subset") && !dj_json_get(root, "train"));
        const dj_json *rss = dj_json_get(root, "peak_rss_bytes");
        CHECK(rss && rss->number == (double)rep.peak_rss_bytes);
        dj_json_free(root);
    }
    CHECK(md && strstr(md, "## Test set (10 images)") && strstr(md, "Homogeneity") && strstr(md, "resnet20"));
    free(js);
    free(md);
    dj_jnd_generator_destroy(g);
    free(px);
    free(xh);
    free(alt);
    free(e);
}

/* The batched evaluation equals a per-image path built here from the
 * public pieces: the generator one image at a time (passes of 1), each
 * tested image made alone (dj_jnd_wgn_u8, dj_jnd_shaped_noise_u8,
 * dj_jnd_add_u8, x + e in float) and classified alone. Every figure. */
static void test_batched_equals_per_image(void) {
    enum { M = 7, K = 2 };
    uint8_t *px = malloc(M * NB), *xh = malloc(NB), *alt = malloc(NB);
    float *e = malloc(NB * sizeof(float)), *z = malloc(NB * sizeof(float)), *fl = malloc(NB * sizeof(float));
    float cam[32 * 32], amp[32 * 32];
    fixture_images(px, M, 32, 32, 17);
    midrange(px, M * NB);
    dj_jnd_generator *g = NULL;
    CHECK_OK(dj_jnd_generator_create(&g, fx.model, NULL, 0));
    if (!g) return;
    dj_cifar10 ds = make_ds(px, M, 40);
    dj_jnd_eval_config cfg = dj_jnd_eval_defaults();
    cfg.batch = 3;
    cfg.seed = 7;
    dj_jnd_eval_stats st;
    CHECK_OK(dj_jnd_evaluate(g, &ds, &cfg, &st, NULL, NULL, NULL));

    CHECK_OK(dj_jnd_generator_set_batch(g, 1));
    double rca[K] = {0}, psnr = 0, wgn[K] = {0}, wgn_p = 0, fr[K] = {0}, fp = 0, hom[8] = {0}, hom_p[8] = {0};
    double hvs[K] = {0}, hvs_p = 0, cr[K] = {0}, cp = 0;
    int32_t lab[K];
    for (int i = 0; i < M; i++) {
        const uint8_t *x = px + (size_t)i * NB;
        const int record = 40 + i;
        dj_jnd_image_result r;
        CHECK_OK(dj_jnd_generator_run(g, x, 1, 32, 32, xh, e, cam, &r));
        psnr += r.psnr / M;
        for (int k = 0; k < K; k++) rca[k] += (r.before[k] == r.after[k]) / (double)M;
        dj_jnd_wgn_u8(x, xh, NB, 7, record, z, alt);
        CHECK_OK(dj_jnd_generator_classify(g, alt, 1, 32, 32, lab));
        for (int k = 0; k < K; k++) wgn[k] += (lab[k] == r.before[k]) / (double)M;
        wgn_p += dj_psnr_u8(x, alt, NB) / M;
        double se = 0;
        for (size_t p = 0; p < NB; p++) {
            fl[p] = (float)x[p] / 255.f + e[p];
            se += 255.0 * e[p] * 255.0 * e[p];
        }
        CHECK_OK(dj_jnd_generator_classify_f32(g, fl, 1, 32, 32, lab));
        for (int k = 0; k < K; k++) fr[k] += (lab[k] == r.before[k]) / (double)M;
        fp += 10 * log10(255.0 * 255.0 * NB / se) / M;
        for (int j = 0; j < 8; j++) {
            dj_jnd_add_u8(x, e, NB, (float)(j + 1) / 9.f, alt);
            CHECK_OK(dj_jnd_generator_classify(g, alt, 1, 32, 32, lab));
            for (int k = 0; k < K; k++) hom[j] += (lab[k] == r.before[k]) / (double)(M * K);
            hom_p[j] += dj_psnr_u8(x, alt, NB) / M;
        }
        CHECK_OK(dj_hvs_jnd_namm(x, 32, 32, amp));
        hvs_p += dj_jnd_shaped_noise_u8(x, xh, amp, 32, 32, 7, 1, record, z, alt) / M;
        CHECK_OK(dj_jnd_generator_classify(g, alt, 1, 32, 32, lab));
        for (int k = 0; k < K; k++) hvs[k] += (lab[k] == r.before[k]) / (double)M;
        for (int p = 0; p < 32 * 32; p++) amp[p] = 1.f - cam[p];
        double reached = dj_jnd_shaped_noise_u8(x, xh, amp, 32, 32, 7, 2, record, z, alt);
        CHECK_CLOSE(reached, dj_psnr_u8(x, alt, NB), 1e-12, 0); /* what it returns is what it wrote */
        cp += reached / M;
        CHECK_OK(dj_jnd_generator_classify(g, alt, 1, 32, 32, lab));
        for (int k = 0; k < K; k++) cr[k] += (lab[k] == r.before[k]) / (double)M;
    }
    for (int k = 0; k < K; k++) {
        CHECK_CLOSE(st.rca[k], rca[k], 1e-12, 0);
        CHECK_CLOSE(st.wgn_rca[k], wgn[k], 1e-12, 0);
        CHECK_CLOSE(st.float_rca[k], fr[k], 1e-12, 0);
        CHECK_CLOSE(st.camshaped_rca[k], cr[k], 1e-12, 0);
        CHECK_CLOSE(st.hvs_rca[k], hvs[k], 1e-12, 0);
    }
    CHECK_CLOSE(st.psnr_db, psnr, 1e-9, 0);
    CHECK_CLOSE(st.wgn_psnr_db, wgn_p, 1e-9, 0);
    CHECK_CLOSE(st.float_psnr_db, fp, 1e-9, 0);
    CHECK_CLOSE(st.camshaped_psnr_db, cp, 1e-9, 0);
    CHECK_CLOSE(st.hvs_psnr_db, hvs_p, 1e-9, 0);
    CHECK(fabs(st.hvs_psnr_db - st.psnr_db) < 0.01);
    for (int j = 0; j < 8; j++) {
        CHECK_CLOSE(st.homogeneity_rca_mean[j], hom[j], 1e-12, 0);
        CHECK_CLOSE(st.homogeneity_psnr_db[j], hom_p[j], 1e-9, 0);
    }
    /* the shaped noise sits at the stored image's PSNR */
    CHECK(fabs(st.camshaped_psnr_db - st.psnr_db) < 0.01);
    printf("per image = batched: RCA %.3f, WGN %.3f, CAM-shaped %.3f, HVS-shaped %.3f; PSNR %.3f, CAM-shaped %.3f dB\n",
           st.rca_mean, st.wgn_rca_mean, st.camshaped_rca_mean, st.hvs_rca_mean, st.psnr_db, st.camshaped_psnr_db);
    dj_jnd_generator_destroy(g);
    free(px);
    free(xh);
    free(alt);
    free(e);
    free(z);
    free(fl);
}

/* Shaped noise: the PSNR asked for (within 0.01 dB), the shape of the map
 * (|noise| correlates with it), and the same noise for the same seed and
 * record only. */
static void test_shaped_noise(void) {
    uint8_t *x = malloc(NB), *xh = malloc(NB), *out = malloc(NB), *out2 = malloc(NB);
    float *z = malloc(NB * sizeof(float)), amp[32 * 32];
    fixture_images(x, 1, 32, 32, 9);
    midrange(x, NB);
    for (int y = 0; y < 32; y++)
        for (int xx = 0; xx < 32; xx++) amp[y * 32 + xx] = 0.05f + (float)xx / 31.f; /* grows to the right */
    const double targets[3] = {4, 9, 20}; /* levels of the stored distortion: ~36, ~29, ~22 dB */
    for (int t = 0; t < 3; t++) {
        dj_rng r;
        dj_rng_seed(&r, (uint64_t)t + 3);
        for (size_t p = 0; p < NB; p++) {
            int v = x[p] + (int)lrint(targets[t] * dj_rng_normal(&r));
            xh[p] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
        }
        double want = dj_psnr_u8(x, xh, NB);
        double got = dj_jnd_shaped_noise_u8(x, xh, amp, 32, 32, 5, 1, 123, z, out);
        CHECK_CLOSE(got, dj_psnr_u8(x, out, NB), 1e-12, 0);
        CHECK(fabs(got - want) < 0.01);
        /* correlation of |out - x| (mean over the channels) with the map */
        double sa = 0, sb = 0, saa = 0, sbb = 0, sab = 0;
        for (int p = 0; p < 1024; p++) {
            double d = (abs(out[3 * p] - x[3 * p]) + abs(out[3 * p + 1] - x[3 * p + 1]) +
                        abs(out[3 * p + 2] - x[3 * p + 2])) / 3.0;
            sa += d;
            sb += amp[p];
            saa += d * d;
            sbb += (double)amp[p] * amp[p];
            sab += d * amp[p];
        }
        double corr = (sab - sa * sb / 1024) / sqrt((saa - sa * sa / 1024) * (sbb - sb * sb / 1024));
        printf("shaped noise: target %.3f dB, reached %.3f dB, correlation with the map %.3f\n", want, got, corr);
        CHECK(corr > 0.8);
        /* deterministic in (seed, stream, record) */
        dj_jnd_shaped_noise_u8(x, xh, amp, 32, 32, 5, 1, 123, z, out2);
        CHECK(!memcmp(out, out2, NB));
        dj_jnd_shaped_noise_u8(x, xh, amp, 32, 32, 6, 1, 123, z, out2);
        CHECK(memcmp(out, out2, NB) != 0);
        dj_jnd_shaped_noise_u8(x, xh, amp, 32, 32, 5, 2, 123, z, out2);
        CHECK(memcmp(out, out2, NB) != 0);
        dj_jnd_shaped_noise_u8(x, xh, amp, 32, 32, 5, 1, 124, z, out2);
        CHECK(memcmp(out, out2, NB) != 0);
    }
    /* no distortion: no noise */
    CHECK(dj_jnd_shaped_noise_u8(x, x, amp, 32, 32, 5, 1, 0, z, out) == DJ_JND_PSNR_MAX);
    CHECK(!memcmp(out, x, NB));
    free(x);
    free(xh);
    free(out);
    free(out2);
    free(z);
}

static void test_montage(void) {
    uint8_t px[3 * NB];
    fixture_images(px, 3, 32, 32, 8);
    dj_jnd_generator *g = NULL;
    CHECK_OK(dj_jnd_generator_create(&g, fx.model, NULL, 0));
    if (!g) return;
    char path[400];
    snprintf(path, sizeof path, "%s/montage.png", fx.dir);
    CHECK_OK(dj_jnd_montage(g, px, 3, 32, 32, 2, 4.f, path));
    dj_image img = {0};
    CHECK_OK(dj_png_read(path, &img));
    CHECK(img.h == 3 * 64 + 4 * 2 && img.w == 4 * 64 + 5 * 2);
    /* panel 3 (x) of row 0 is the image, zoomed: top-left pixel */
    if (img.rgb) CHECK(!memcmp(img.rgb + ((size_t)2 * img.w + 2 + 2 * (64 + 2)) * 3, px, 3));
    dj_image_free(&img);
    CHECK_FAILS(dj_jnd_montage(g, px, 3, 32, 32, 0, 4.f, path), DJ_EINVAL, "zoom 0");
    dj_jnd_generator_destroy(g);
}

int main(void) {
    dj_set_num_threads(2);
    if (fixture_make(&fx, "test_jnd_eval", 3.f)) {
        fprintf(stderr, "cannot make the test model: %s\n", dj_last_error());
        return 1;
    }
    RUN(test_figures);
    RUN(test_batched_equals_per_image);
    RUN(test_shaped_noise);
    RUN(test_montage);
    fixture_remove(&fx);
    return check_report("test_jnd_eval");
}
