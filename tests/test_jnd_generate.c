/* Generation (src/jnd/generate.c) against independent computations: the
 * model-file path dj_jnd_generate (itself checked against PyTorch in
 * tests/torch/test_jnd_parity.sh), the stored bytes and labels recomputed
 * with plain loops and dj_classify_batch, odd image sizes against a
 * hand-padded image, and the error paths. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "dmvjnd/cam.h"
#include "dmvjnd/cifar10.h"
#include "dmvjnd/jnd_generate.h"
#include "dmvjnd/train.h"
#include "jnd_fixture.h"

static jnd_fixture fx;

/* 32x32 images: e, CAM and labels as dj_jnd_generate computes them with the
 * model file's own E-D; x_hat and "after" recomputed here. */
static void test_matches_reference(void) {
    enum { N = 6 };
    const size_t nb = 32 * 32 * 3;
    uint8_t *px = malloc(N * nb), *xh = malloc(N * nb), *ref8 = malloc(N * nb);
    float *e = malloc(N * nb * sizeof(float)), *cam = malloc(N * 32 * 32 * sizeof(float));
    float *cam_ref = malloc(N * 32 * 32 * sizeof(float));
    dj_jnd_image_result res[N];
    fixture_images(px, N, 32, 32, 3);
    dj_jnd_generator *g = NULL;
    CHECK_OK(dj_jnd_generator_create(&g, fx.model, NULL, 0));
    if (!g) return;
    CHECK(dj_jnd_generator_count(g) == 2);
    CHECK(!strcmp(dj_jnd_generator_tag(g, 0), "resnet20") && !strcmp(dj_jnd_generator_tag(g, 1), "alexnet"));
    CHECK(dj_jnd_generator_stride(g) == 8); /* lcm of E-D 8, resnet 4, alexnet 8 */
    CHECK_OK(dj_jnd_generator_run(g, px, N, 32, 32, xh, e, cam, res));

    /* reference: model file + classifiers through the training-side API */
    dj_jnd_model m;
    CHECK_OK(dj_jnd_model_load(fx.model, &m));
    dj_classifier cls[2];
    const char *paths[2] = {fx.cls[0], fx.cls[1]};
    CHECK_OK(dj_jnd_classifiers_load(cls, paths, 2, NULL, &m.norm));
    dj_graph *gs[2] = {cls[0].graph, cls[1].graph};
    dj_tensor x, er, xr;
    CHECK_OK(dj_tensor_alloc(&x, N, 32, 32, 3));
    CHECK_OK(dj_tensor_alloc(&er, N, 32, 32, 3));
    CHECK_OK(dj_tensor_alloc(&xr, N, 32, 32, 3));
    CHECK_OK(dj_normalize_u8(px, (size_t)N * 1024, m.norm.mean, m.norm.std, x.data));
    int32_t before[N * 2];
    CHECK_OK(dj_jnd_generate(&m, gs, 2, &x, &er, cam_ref, before));
    double e_err = 0, cam_err = 0, e_max = 0;
    for (size_t i = 0; i < N * nb; i++) {
        float ref = er.data[i] * m.norm.std[i % 3];
        e_err = fmax(e_err, fabs(e[i] - ref));
        e_max = fmax(e_max, fabs(ref));
    }
    for (size_t i = 0; i < N * 1024; i++) cam_err = fmax(cam_err, fabs(cam[i] - cam_ref[i]));
    printf("32x32: max |e - ref| %.2g (max |e| %.3g), max |cam - ref| %.2g\n", e_err, e_max, cam_err);
    CHECK(e_err <= 1e-6);
    CHECK(e_max > 0.02); /* e is not trivially zero */
    CHECK(cam_err <= 1e-6);
    /* x_hat: round(x + 255 e), clamped, in double */
    int changed = 0, flips = 0;
    for (size_t i = 0; i < N * nb; i++) {
        double v = nearbyint((double)px[i] + 255.0 * e[i]);
        ref8[i] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
        changed += ref8[i] != px[i];
    }
    CHECK(!memcmp(xh, ref8, N * nb));
    CHECK(changed > 100);
    /* after: the classifiers on the stored bytes */
    CHECK_OK(dj_normalize_u8(xh, (size_t)N * 1024, m.norm.mean, m.norm.std, xr.data));
    for (int k = 0; k < 2; k++) {
        int32_t pred[N];
        CHECK_OK(dj_classify_batch(gs[k], &xr, pred, NULL, NULL));
        for (int i = 0; i < N; i++) {
            CHECK(res[i].before[k] == before[i * 2 + k]);
            CHECK(res[i].after[k] == pred[i]);
            flips += res[i].before[k] != res[i].after[k];
        }
    }
    for (int i = 0; i < N; i++) {
        const uint8_t *a = px + i * nb, *b = xh + i * nb;
        double se = 0, sa = 0, sd = 0;
        for (size_t p = 0; p < nb; p++) {
            se += ((double)a[p] - b[p]) * ((double)a[p] - b[p]);
            sa += fabs(255.0 * e[i * nb + p]);
            sd += abs((int)a[p] - (int)b[p]);
        }
        CHECK_CLOSE(res[i].psnr, 10 * log10(255.0 * 255.0 / (se / nb)), 1e-9, 1e-12);
        CHECK_CLOSE(res[i].mean_abs_e, sa / nb, 1e-9, 1e-9);
        CHECK_CLOSE(res[i].mean_abs_diff, sd / nb, 1e-12, 1e-12);
        CHECK(res[i].kept == (res[i].before[0] == res[i].after[0]) + (res[i].before[1] == res[i].after[1]));
    }
    printf("32x32: %d of %d labels changed, %d bytes changed\n", flips, 2 * N, changed);
    /* margins: p1 - p2 of each classifier's softmax on x, and on x_hat the
     * probability of x's label less the largest other, from
     * dj_classify_batch's probabilities */
    {
        double worst = 0;
        int negative = 0;
        for (int k = 0; k < 2; k++) {
            float pr[N * 10], ph[N * 10];
            CHECK_OK(dj_classify_batch(gs[k], &x, NULL, NULL, pr));
            CHECK_OK(dj_classify_batch(gs[k], &xr, NULL, NULL, ph));
            for (int i = 0; i < N; i++) {
                const float *a = pr + i * 10, *b = ph + i * 10;
                const int y = res[i].before[k];
                double p1 = -1, p2 = -1, other = 0;
                for (int j = 0; j < 10; j++) {
                    if (a[j] > p1) p2 = p1, p1 = a[j];
                    else if (a[j] > p2) p2 = a[j];
                    if (j != y && b[j] > other) other = b[j];
                }
                CHECK(y >= 0 && y < 10);
                const double hat = y >= 0 && y < 10 ? b[y] - other : NAN;
                worst = fmax(worst, fmax(fabs(res[i].margin[k] - (p1 - p2)), fabs(res[i].hat_margin[k] - hat)));
                /* the log-probabilities of x: log of the same probabilities */
                CHECK(res[i].classes[k] == 10);
                for (int j = 0; j < 10; j++) worst = fmax(worst, fabs(exp(res[i].log_prob[k][j]) - a[j]));
                for (int j = 10; j < DJ_JND_RESULT_CLASSES; j++) CHECK(res[i].log_prob[k][j] == 0.0f);
                CHECK(res[i].margin[k] >= 0.0f && res[i].margin[k] <= 1.0f);
                CHECK(res[i].hat_margin[k] >= -1.0f && res[i].hat_margin[k] <= 1.0f);
                /* negative exactly when x_hat changed the label (0: a tie) */
                if (res[i].after[k] != res[i].before[k]) CHECK(res[i].hat_margin[k] <= 0.0f);
                else CHECK(res[i].hat_margin[k] >= 0.0f);
                negative += res[i].hat_margin[k] < 0;
            }
        }
        printf("32x32: margins and log-probabilities within %.2g of the softmax probabilities, %d negative on x_hat\n",
               worst, negative);
        CHECK(worst <= 1e-5);
        CHECK(negative == flips);
    }
    /* dj_jnd_generator_classify agrees with "after" */
    int32_t lab[N * 2];
    CHECK_OK(dj_jnd_generator_classify(g, xh, N, 32, 32, lab));
    for (int i = 0; i < N; i++)
        for (int k = 0; k < 2; k++) CHECK(lab[i * 2 + k] == res[i].after[k]);

    dj_tensor_free(&x);
    dj_tensor_free(&er);
    dj_tensor_free(&xr);
    dj_jnd_classifiers_free(cls, 2);
    dj_jnd_model_free(&m);
    dj_jnd_generator_destroy(g);
    free(px);
    free(xh);
    free(ref8);
    free(e);
    free(cam);
    free(cam_ref);
}

/* An odd-sized image (37x21) is padded to 40x24 by repeating its last row
 * and column, and cropped back: its e, CAM and x_hat equal the crop of the
 * results on that padded image built by hand (which needs no padding). */
static void test_odd_size(void) {
    const int h = 21, w = 37, ph = 24, pw = 40;
    uint8_t *px = malloc((size_t)h * w * 3), *pad = malloc((size_t)ph * pw * 3);
    uint8_t *xh = malloc((size_t)h * w * 3), *xhp = malloc((size_t)ph * pw * 3);
    float *e = malloc((size_t)h * w * 3 * sizeof(float)), *ep = malloc((size_t)ph * pw * 3 * sizeof(float));
    float *cam = malloc((size_t)h * w * sizeof(float)), *camp = malloc((size_t)ph * pw * sizeof(float));
    fixture_images(px, 1, h, w, 9);
    for (int y = 0; y < ph; y++)
        for (int x = 0; x < pw; x++)
            memcpy(pad + ((size_t)y * pw + x) * 3, px + ((size_t)(y < h ? y : h - 1) * w + (x < w ? x : w - 1)) * 3,
                   3);
    dj_jnd_generator *g = NULL;
    CHECK_OK(dj_jnd_generator_create(&g, fx.model, NULL, 0));
    if (!g) return;
    dj_jnd_image_result r, rp;
    CHECK_OK(dj_jnd_generator_run(g, px, 1, h, w, xh, e, cam, &r));
    CHECK_OK(dj_jnd_generator_run(g, pad, 1, ph, pw, xhp, ep, camp, &rp));
    double de = 0, dc = 0;
    int dx = 0;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            dc = fmax(dc, fabs(cam[y * w + x] - camp[y * pw + x]));
            for (int c = 0; c < 3; c++) {
                de = fmax(de, fabs(e[(y * w + x) * 3 + c] - ep[(y * pw + x) * 3 + c]));
                dx += xh[(y * w + x) * 3 + c] != xhp[(y * pw + x) * 3 + c];
            }
        }
    printf("37x21: max |e - e(padded)| %.2g, max |cam - cam(padded)| %.2g, %d bytes differ\n", de, dc, dx);
    CHECK(de <= 1e-6 && dc <= 1e-6 && dx == 0);
    for (int k = 0; k < 2; k++) CHECK(r.before[k] == rp.before[k]);
    /* the same generator goes back to 32x32 (graphs rebuilt for the size) */
    uint8_t img[32 * 32 * 3];
    fixture_images(img, 1, 32, 32, 3);
    CHECK_OK(dj_jnd_generator_run(g, img, 1, 32, 32, NULL, NULL, NULL, &r));
    /* a 1x1 image works (padded to 8x8) */
    uint8_t one[3] = {10, 200, 30};
    CHECK_OK(dj_jnd_generator_run(g, one, 1, 1, 1, xh, e, NULL, &r));
    dj_jnd_generator_destroy(g);
    free(px);
    free(pad);
    free(xh);
    free(xhp);
    free(e);
    free(ep);
    free(cam);
    free(camp);
}

/* dj_jnd_generator_keep_labels: images whose labels all stayed are left
 * byte for byte; the others get the largest k/9 of e that keeps every
 * label, checked by classifying again here, and the next fraction up is
 * checked to change one (so the fraction is the largest). */
static void test_keep_labels(void) {
    enum { N = 24, K = 2 };
    const size_t nb = 32 * 32 * 3;
    uint8_t *px = malloc(N * nb), *xh = malloc(N * nb), *xh0 = malloc(N * nb), *tmp8 = malloc(nb);
    float *e = malloc(N * nb * sizeof(float)), *e0 = malloc(N * nb * sizeof(float)), *tmpe = malloc(nb * sizeof(float));
    dj_jnd_image_result res[N], res0[N];
    float scale[N];
    fixture_images(px, N, 32, 32, 11);
    dj_jnd_generator *g = NULL;
    CHECK_OK(dj_jnd_generator_create(&g, fx.model, NULL, 0));
    if (!g) return;
    CHECK_OK(dj_jnd_generator_run(g, px, N, 32, 32, xh, e, NULL, res));
    memcpy(xh0, xh, N * nb);
    memcpy(e0, e, N * nb * sizeof(float));
    memcpy(res0, res, sizeof res);
    CHECK_OK(dj_jnd_generator_keep_labels(g, px, N, 32, 32, xh, e, res, scale));
    int changed = 0, partial = 0, dropped = 0;
    for (int i = 0; i < N; i++) {
        const size_t o = (size_t)i * nb;
        int32_t lab[K];
        CHECK(res[i].kept == K);
        /* every label kept: the margins on x_hat are not negative, and
         * those on x are what generation measured */
        for (int c = 0; c < K; c++) {
            CHECK(res[i].hat_margin[c] >= 0.0f && res[i].hat_margin[c] <= 1.0f);
            CHECK(res[i].margin[c] == res0[i].margin[c]);
        }
        if (res0[i].kept == K) {
            CHECK(!memcmp(res[i].hat_margin, res0[i].hat_margin, sizeof res[i].hat_margin));
            CHECK(scale[i] == 1.f && !memcmp(xh + o, xh0 + o, nb) && !memcmp(e + o, e0 + o, nb * sizeof(float)));
            CHECK(res[i].psnr == res0[i].psnr);
            continue;
        }
        changed++;
        int k = (int)lrintf(scale[i] * 9.f);
        CHECK(k >= 0 && k <= 8 && fabsf(scale[i] - (float)k / 9.f) < 1e-7f);
        /* e is the fraction of the network's e, x_hat = x + e byte for byte */
        const float s = (float)k / 9.f;
        int e_ok = 1;
        for (size_t p = 0; p < nb; p++) e_ok &= e[o + p] == s * e0[o + p];
        CHECK(e_ok);
        dj_jnd_add_u8(px + o, e + o, nb, 1.f, tmp8);
        CHECK(!memcmp(tmp8, xh + o, nb));
        CHECK_CLOSE(res[i].psnr, dj_psnr_u8(px + o, xh + o, nb), 1e-12, 0);
        /* every label kept, as classified again */
        CHECK_OK(dj_jnd_generator_classify(g, xh + o, 1, 32, 32, lab));
        for (int c = 0; c < K; c++) CHECK(lab[c] == res0[i].before[c] && res[i].after[c] == res0[i].before[c]);
        /* the next fraction up changes a label */
        const float up = (float)(k + 1) / 9.f;
        for (size_t p = 0; p < nb; p++) tmpe[p] = up * e0[o + p];
        dj_jnd_add_u8(px + o, tmpe, nb, 1.f, tmp8);
        CHECK_OK(dj_jnd_generator_classify(g, tmp8, 1, 32, 32, lab));
        CHECK(lab[0] != res0[i].before[0] || lab[1] != res0[i].before[1]);
        /* no distortion left: x_hat = x, so the margin of x's label on
         * x_hat is its margin on x */
        if (k == 0)
            for (int c = 0; c < K; c++) CHECK_CLOSE(res[i].hat_margin[c], res[i].margin[c], 1e-6, 0);
        partial += k > 0;
        dropped += k == 0;
    }
    printf("keep labels: %d of %d images had a label changed: %d kept a fraction of e, %d none\n", changed, N,
           partial, dropped);
    CHECK(changed > 0); /* the fixture's large e changes labels: the path above ran */
    /* NULL scale is allowed; e, x_hat and res are required */
    CHECK_OK(dj_jnd_generator_keep_labels(g, px, N, 32, 32, xh, e, res, NULL));
    CHECK_FAILS(dj_jnd_generator_keep_labels(g, px, N, 32, 32, xh, NULL, res, scale), DJ_EINVAL, "required");
    dj_jnd_generator_destroy(g);
    free(px);
    free(xh);
    free(xh0);
    free(tmp8);
    free(e);
    free(e0);
    free(tmpe);
}

static void test_pixel_helpers(void) {
    float e[5] = {0.f, 0.5f / 255, -1.f, 1.f, 10.f / 255};
    uint8_t out[5], x[5] = {0, 100, 100, 100, 250};
    dj_jnd_e_to_u8(e, 5, 1.f, out);
    CHECK(out[0] == 128 && out[1] == 128 && out[2] == 0 && out[3] == 255 && out[4] == 138); /* .5 to even */
    dj_jnd_e_to_u8(e, 5, 4.f, out);
    CHECK(out[1] == 130 && out[4] == 168);
    dj_jnd_add_u8(x, e, 5, 1.f, out);
    CHECK(out[0] == 0 && out[1] == 100 && out[2] == 0 && out[3] == 255 && out[4] == 255);
    dj_jnd_add_u8(x, e, 5, 0.5f, out);
    CHECK(out[2] == 0 && out[3] == 228 && out[4] == 255);
    uint8_t a[4] = {0, 0, 0, 0}, b[4] = {0, 0, 0, 2};
    CHECK_CLOSE(dj_psnr_u8(a, b, 4), 10 * log10(255.0 * 255.0 / 1.0), 1e-12, 0);
    CHECK(dj_psnr_u8(a, a, 4) == DJ_JND_PSNR_MAX);
}

static void test_errors(void) {
    dj_jnd_generator *g = NULL;
    char path[400];
    snprintf(path, sizeof path, "%s/missing.safetensors", fx.dir);
    CHECK_FAILS(dj_jnd_generator_create(&g, path, NULL, 0), DJ_EIO, "missing.safetensors");
    CHECK(g == NULL);
    /* a classifier file as the model */
    CHECK_FAILS(dj_jnd_generator_create(&g, fx.cls[0], NULL, 0), DJ_EFORMAT, "not a DMV-JND model");
    /* the model as a classifier */
    const char *bad[1] = {fx.model};
    CHECK(dj_jnd_generator_create(&g, fx.model, bad, 1) != 0 && strstr(dj_last_error(), "jnd.safetensors"));
    CHECK(g == NULL);
    /* another classifier set works */
    const char *one[1] = {fx.cls[1]};
    CHECK_OK(dj_jnd_generator_create(&g, fx.model, one, 1));
    CHECK(dj_jnd_generator_count(g) == 1 && !strcmp(dj_jnd_generator_tag(g, 0), "alexnet"));
    uint8_t px[3] = {0};
    CHECK_FAILS(dj_jnd_generator_run(g, px, 0, 1, 1, NULL, NULL, NULL, NULL), DJ_EINVAL, "0 images");
    CHECK_FAILS(dj_jnd_generator_run(g, NULL, 1, 1, 1, NULL, NULL, NULL, NULL), DJ_EINVAL, "NULL");
    CHECK_FAILS(dj_jnd_generator_classify(g, px, 1, 1, 1, NULL), DJ_EINVAL, "NULL labels");
    dj_jnd_generator_destroy(g);
    dj_jnd_generator_destroy(NULL);
}

/* A margin-input model (dmvjnd/jnd.h, the margin plane): the generator
 * computes the margins itself; its e equals dj_jnd_generate's (checked
 * against the E-D's own pass in test_jnd_train), also on an odd size, and
 * the margin plane changes e (its enc.0 weights are not 0 here). */
static void test_margin_model(void) {
    enum { N = 4 };
    dj_jnd_ed_config cfg = dj_jnd_ed_defaults();
    cfg.width = 0.25f;
    cfg.margin_input = 1;
    dj_rng r;
    dj_rng_seed(&r, 9);
    dj_graph *ed = NULL;
    CHECK_OK(dj_model_jnd_ed(&ed, &cfg, 32, 32, &r));
    if (!ed) return;
    for (int i = 0; i < dj_graph_num_params(ed); i++) {
        const dj_param *p = dj_graph_param(ed, i);
        if (!strncmp(p->name, "dec.9.", 6))
            for (size_t j = 0; j < p->count; j++) p->data[j] *= 8.f;
    }
    const dj_param *w0 = dj_graph_find_param(ed, "enc.0.weight");
    for (int64_t o = 0; o < w0->shape[0]; o++) /* a strong margin channel */
        for (int q = 0; q < 9; q++) w0->data[(o * 5 + 4) * 9 + q] = 2.0f * (dj_rng_uniform(&r) - 0.5f);
    const char *paths[2] = {fx.cls[0], fx.cls[1]};
    dj_jnd_model_info info = {.ed_cfg = cfg, .h = 32, .w = 32, .e_unit = DJ_JND_UNIT_NORMALIZED, .clip = 1,
                              .alpha = 1, .beta = 1, .norm = dj_jnd_norm_paper(), .classifiers = paths,
                              .nclassifiers = 2};
    char path[400];
    snprintf(path, sizeof path, "%s/jnd-margin.safetensors", fx.dir);
    CHECK_OK(dj_jnd_model_save(path, ed, &info, NULL, 0));
    dj_graph_destroy(ed);

    const size_t nb = 32 * 32 * 3;
    uint8_t *px = malloc(N * nb), *xh = malloc(N * nb);
    float *e = malloc(N * nb * sizeof(float));
    dj_jnd_image_result res[N];
    fixture_images(px, N, 32, 32, 5);
    dj_jnd_generator *g = NULL;
    CHECK_OK(dj_jnd_generator_create(&g, path, NULL, 0));
    if (g) CHECK_OK(dj_jnd_generator_run(g, px, N, 32, 32, xh, e, NULL, res));
    dj_jnd_model m;
    CHECK_OK(dj_jnd_model_load(path, &m));
    CHECK(m.ed_cfg.margin_input == 1);
    dj_classifier cls[2];
    CHECK_OK(dj_jnd_classifiers_load(cls, paths, 2, NULL, &m.norm));
    dj_graph *gs[2] = {cls[0].graph, cls[1].graph};
    dj_tensor x, er;
    CHECK_OK(dj_tensor_alloc(&x, N, 32, 32, 3));
    CHECK_OK(dj_tensor_alloc(&er, N, 32, 32, 3));
    CHECK_OK(dj_normalize_u8(px, (size_t)N * 1024, m.norm.mean, m.norm.std, x.data));
    float cam[N * 1024];
    CHECK_OK(dj_jnd_generate(&m, gs, 2, &x, &er, cam, NULL));
    double err = 0, emax = 0;
    for (size_t i = 0; i < N * nb; i++) {
        err = fmax(err, fabs(e[i] - er.data[i] * m.norm.std[i % 3]));
        emax = fmax(emax, fabs(e[i]));
    }
    printf("margin model: max |e - dj_jnd_generate| %.2g (max |e| %.3g)\n", err, emax);
    CHECK(err <= 1e-6 && emax > 0.02);
    /* with other margins (1: the random classifiers' own are near 0) e differs */
    dj_tensor xc;
    CHECK_OK(dj_tensor_alloc(&xc, N, 32, 32, 5));
    float ones[N] = {1, 1, 1, 1};
    dj_tensor cv = dj_tensor_view(cam, N, 32, 32, 1);
    CHECK_OK(dj_jnd_stack(&x, &cv, ones, &xc));
    const dj_tensor *e0;
    CHECK_OK(dj_graph_forward(m.ed, &xc, 0, NULL, &e0));
    double d0 = 0;
    for (size_t i = 0; i < N * nb; i++) d0 = fmax(d0, fabs(e0->data[i] - er.data[i]));
    CHECK(d0 > 1e-3);
    dj_tensor_free(&xc);
    /* an odd size goes through the padded path and its own E-D graph */
    uint8_t *po = malloc(21 * 37 * 3), *xo = malloc(21 * 37 * 3);
    fixture_images(po, 1, 21, 37, 6);
    dj_jnd_image_result ro;
    if (g) CHECK_OK(dj_jnd_generator_run(g, po, 1, 21, 37, xo, NULL, NULL, &ro));
    CHECK(isfinite(ro.psnr) && ro.psnr > 0);
    free(po);
    free(xo);
    dj_tensor_free(&x);
    dj_tensor_free(&er);
    dj_jnd_classifiers_free(cls, 2);
    dj_jnd_model_free(&m);
    dj_jnd_generator_destroy(g);
    free(px);
    free(xh);
    free(e);
}

/* Passes of any size give the same result: 11 images in one pass, in
 * passes of 4 (4, 4, 3) and one at a time, and a second call through the
 * same buffers. x_hat bytes and labels identical, e within 1e-5. */
static void test_batch_sizes(void) {
    enum { N = 11 };
    const size_t nb = 32 * 32 * 3;
    uint8_t *px = malloc(N * nb), *xh[3];
    float *e[3], *cam[3];
    dj_jnd_image_result res[3][N];
    fixture_images(px, N, 32, 32, 21);
    dj_jnd_generator *g = NULL;
    CHECK_OK(dj_jnd_generator_create(&g, fx.model, NULL, 0));
    if (!g) return;
    CHECK(dj_jnd_generator_batch(g) == DJ_JND_GENERATOR_BATCH);
    const int sizes[3] = {N, 4, 1};
    for (int t = 0; t < 3; t++) {
        xh[t] = malloc(N * nb);
        e[t] = malloc(N * nb * sizeof(float));
        cam[t] = malloc(N * 1024 * sizeof(float));
        CHECK_OK(dj_jnd_generator_set_batch(g, sizes[t]));
        CHECK(dj_jnd_generator_batch(g) == sizes[t]);
        CHECK_OK(dj_jnd_generator_run(g, px, N, 32, 32, xh[t], e[t], cam[t], res[t]));
    }
    double e_err = 0, cam_err = 0;
    for (int t = 1; t < 3; t++) {
        CHECK(!memcmp(xh[t], xh[0], N * nb));
        for (size_t i = 0; i < N * nb; i++) e_err = fmax(e_err, fabs(e[t][i] - e[0][i]));
        for (size_t i = 0; i < N * 1024; i++) cam_err = fmax(cam_err, fabs(cam[t][i] - cam[0][i]));
        for (int i = 0; i < N; i++) {
            CHECK(!memcmp(res[t][i].before, res[0][i].before, sizeof res[0][i].before));
            CHECK(!memcmp(res[t][i].after, res[0][i].after, sizeof res[0][i].after));
            CHECK(res[t][i].psnr == res[0][i].psnr);
            for (int k = 0; k < 2; k++) {
                CHECK_CLOSE(res[t][i].margin[k], res[0][i].margin[k], 1e-5, 0);
                CHECK_CLOSE(res[t][i].hat_margin[k], res[0][i].hat_margin[k], 1e-5, 0);
            }
        }
    }
    printf("passes of %d, 4, 1: max |e difference| %.2g, max |cam difference| %.2g\n", N, e_err, cam_err);
    CHECK(e_err <= 1e-5 && cam_err <= 1e-5);
    /* the same buffers again (pass size 1): the same bytes */
    uint8_t *again = malloc(N * nb);
    CHECK_OK(dj_jnd_generator_run(g, px, N, 32, 32, again, NULL, NULL, NULL));
    CHECK(!memcmp(again, xh[2], N * nb));
    /* classification in passes too: the after labels */
    int32_t lab[N * 2];
    CHECK_OK(dj_jnd_generator_set_batch(g, 3));
    CHECK_OK(dj_jnd_generator_classify(g, xh[0], N, 32, 32, lab));
    for (int i = 0; i < N; i++) CHECK(lab[i * 2] == res[0][i].after[0] && lab[i * 2 + 1] == res[0][i].after[1]);
    CHECK_FAILS(dj_jnd_generator_set_batch(g, 0), DJ_EINVAL, "batch 0");
    dj_jnd_generator_destroy(g);
    for (int t = 0; t < 3; t++) {
        free(xh[t]);
        free(e[t]);
        free(cam[t]);
    }
    free(again);
    free(px);
}

int main(void) {
    dj_set_num_threads(2);
    if (fixture_make(&fx, "test_jnd_generate", 8.f)) {
        fprintf(stderr, "cannot make the test model: %s\n", dj_last_error());
        return 1;
    }
    RUN(test_matches_reference);
    RUN(test_batch_sizes);
    RUN(test_odd_size);
    RUN(test_keep_labels);
    RUN(test_pixel_helpers);
    RUN(test_errors);
    RUN(test_margin_model);
    fixture_remove(&fx);
    return check_report("test_jnd_generate");
}
