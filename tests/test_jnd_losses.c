/* The DMV-JND losses (Loss2, Loss3) against hand-computed values, their
 * gradients against central finite differences, the unit setting, and the
 * distortion helpers: x + e with clipping, PSNR, mean |e|. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "dmvjnd/dmvjnd.h"
#include "dmvjnd/jnd.h"
#include "gradcheck.h"

/* One 2x2 image.
 *   c = [0, 0.5, 1, 0.5]                  -> I = 0.5, N = 0.5
 *   e per pixel (3 channels):
 *     p0 = ( 0.3, -0.3,  0.3)   mean |e| = 0.3
 *     p1 = ( 0.1,  0.2, -0.3)   mean |e| = 0.2
 *     p2 = (-0.6,  0.0,  0.0)   mean |e| = 0.2
 *     p3 = ( 0.4,  0.4, -0.4)   mean |e| = 0.4
 *   N0 = (0.3 + 0.2 + 0.2 + 0.4) / 4 = 0.275
 *   Loss2 = ln((0.25 + 0.075625) / (2 * 0.5 * 0.275)) = ln(0.325625 / 0.275)
 *         = ln(1.184090909) = 0.168975315
 *   v = (1, e^0.5, e, e^0.5) / (1 + 2 e^0.5 + e)
 *     = (0.142536957, 0.235003712, 0.387455619, 0.235003712)
 *   Loss3 = 0.3 v0 + 0.2 v1 + 0.2 v2 + 0.4 v3 = 0.261254438
 * In DJ_JND_UNIT_PIXEL01 with std 0.5 every |e| halves: N0 = 0.1375,
 *   Loss2 = ln((0.25 + 0.01890625) / 0.1375) = 0.670738889, Loss3 = 0.130627219. */
static const float C1[4] = {0.0f, 0.5f, 1.0f, 0.5f};
static const float E1[12] = {0.3f, -0.3f, 0.3f, 0.1f, 0.2f, -0.3f, -0.6f, 0.0f, 0.0f, 0.4f, 0.4f, -0.4f};

static void test_hand_values(void) {
    float e[12], c[4];
    memcpy(e, E1, sizeof e);
    memcpy(c, C1, sizeof c);
    dj_tensor te = dj_tensor_view(e, 1, 2, 2, 3), tc = dj_tensor_view(c, 1, 2, 2, 1);
    dj_jnd_loss_config cfg = dj_jnd_loss_defaults();
    double l2, l3;
    float p2, p3;
    CHECK_OK(dj_jnd_loss2(&te, &tc, &cfg, &l2, &p2, 1.0f, NULL, 0));
    CHECK_OK(dj_jnd_loss3(&te, &tc, &cfg, &l3, &p3, 1.0f, NULL, 0));
    CHECK_CLOSE(l2, log(0.325625 / 0.275), 1e-7, 1e-6);
    CHECK_CLOSE(l2, 0.168975315, 1e-7, 1e-6);
    CHECK_CLOSE(l3, 0.261254438, 1e-8, 0);
    CHECK_CLOSE(p2, 0.168975315, 1e-7, 0);
    CHECK_CLOSE(p3, 0.261254438, 1e-7, 0);
    dj_jnd_loss_values v;
    CHECK_OK(dj_jnd_losses(&te, &tc, &cfg, 1.0f, 1.0f, &v, NULL, 0));
    CHECK_CLOSE(v.loss2, 0.168975315, 1e-7, 1e-6);
    CHECK_CLOSE(v.loss3, 0.261254438, 1e-8, 0);
    CHECK_CLOSE(v.n, 0.5, 1e-9, 0);
    CHECK_CLOSE(v.n0, 0.275, 1e-8, 0);

    /* the unit setting scales |e| (so N0 and Loss3) by std */
    cfg.e_unit = DJ_JND_UNIT_PIXEL01;
    CHECK_OK(dj_jnd_losses(&te, &tc, &cfg, 1.0f, 1.0f, &v, NULL, 0));
    CHECK_CLOSE(v.n0, 0.1375, 1e-8, 0);
    CHECK_CLOSE(v.loss2, 0.670738889, 1e-7, 1e-6);
    CHECK_CLOSE(v.loss3, 0.261254438 / 2, 1e-8, 0);
    /* per-channel std: only channel 0 scaled by 0.25 */
    cfg.norm.std[0] = 0.25f;
    cfg.norm.std[1] = cfg.norm.std[2] = 1.0f;
    CHECK_OK(dj_jnd_losses(&te, &tc, &cfg, 1.0f, 1.0f, &v, NULL, 0));
    double n0 = (0.25 * (0.3 + 0.1 + 0.6 + 0.4) + (0.3 + 0.2 + 0.0 + 0.4) + (0.3 + 0.3 + 0.0 + 0.4)) / 12;
    CHECK_CLOSE(v.n0, n0, 1e-8, 0);
}

/* Loss2 is zero exactly when N0 = N; Loss2 >= 0 otherwise; a batch gives the
 * mean of its images. */
static void test_loss2_zero_and_batch(void) {
    float e[2 * 4 * 3], c[2 * 4];
    /* image 0: c = 0.2 everywhere -> N = 0.8; |e| = 0.8 everywhere */
    for (int i = 0; i < 12; i++) e[i] = (i % 2) ? 0.8f : -0.8f;
    for (int i = 0; i < 4; i++) c[i] = 0.2f;
    /* image 1: the hand-computed one */
    memcpy(e + 12, E1, sizeof E1);
    memcpy(c + 4, C1, sizeof C1);
    dj_tensor te = dj_tensor_view(e, 2, 2, 2, 3), tc = dj_tensor_view(c, 2, 2, 2, 1);
    double l2, l3;
    float per2[2], per3[2];
    CHECK_OK(dj_jnd_loss2(&te, &tc, NULL, &l2, per2, 1.0f, NULL, 0));
    CHECK_OK(dj_jnd_loss3(&te, &tc, NULL, &l3, per3, 1.0f, NULL, 0));
    CHECK_CLOSE(per2[0], 0.0, 1e-7, 0);
    CHECK_CLOSE(per2[1], 0.168975315, 1e-7, 0);
    CHECK_CLOSE(l2, 0.168975315 / 2, 1e-7, 0);
    /* image 0: uniform v, |e| = 0.8 -> Loss3 = 0.8 */
    CHECK_CLOSE(per3[0], 0.8, 1e-7, 0);
    CHECK_CLOSE(l3, (0.8 + 0.261254438) / 2, 1e-7, 0);
    /* e = 0 and c = 1 (N = N0 = 0): q keeps it finite, ln(q) - ln(q) = 0 */
    float z[12] = {0}, ones[4] = {1, 1, 1, 1}, de[12];
    dj_tensor tz = dj_tensor_view(z, 1, 2, 2, 3), to = dj_tensor_view(ones, 1, 2, 2, 1);
    dj_tensor tde = dj_tensor_view(de, 1, 2, 2, 3);
    CHECK_OK(dj_jnd_loss2(&tz, &to, NULL, &l2, NULL, 1.0f, &tde, 0));
    CHECK(l2 == 0.0);
    for (int i = 0; i < 12; i++) CHECK(de[i] == 0.0f); /* sign(0) = 0 */
}

typedef struct lctx {
    dj_tensor e, c;
    dj_jnd_loss_config cfg;
    float a, b;
} lctx;

static double loss_of(void *p) {
    lctx *x = p;
    dj_jnd_loss_values v;
    if (dj_jnd_losses(&x->e, &x->c, &x->cfg, x->a, x->b, &v, NULL, 0)) return NAN;
    return x->a * v.loss2 + x->b * v.loss3;
}

/* e uniform in +-[0.05, 0.95]: no perturbation crosses |e|'s kink at 0. */
static void fill_away_from_zero(float *e, size_t n, uint64_t seed) {
    gc_fill(e, n, 0.05f, 0.95f, seed);
    float *s = malloc(n * sizeof(float));
    gc_fill(s, n, -1, 1, seed + 1);
    for (size_t i = 0; i < n; i++)
        if (s[i] < 0) e[i] = -e[i];
    free(s);
}

static void gradcheck_unit(int unit, float a, float b) {
    lctx x;
    CHECK_OK(dj_tensor_alloc(&x.e, 3, 4, 5, 3));
    CHECK_OK(dj_tensor_alloc(&x.c, 3, 4, 5, 1));
    fill_away_from_zero(x.e.data, dj_tensor_numel(&x.e), 11 + unit);
    gc_fill(x.c.data, dj_tensor_numel(&x.c), 0, 1, 12 + unit);
    x.cfg = dj_jnd_loss_defaults();
    x.cfg.e_unit = unit;
    x.cfg.norm.std[1] = 0.3f; /* per-channel factors are exercised too */
    x.a = a;
    x.b = b;
    dj_tensor de;
    CHECK_OK(dj_tensor_alloc(&de, 3, 4, 5, 3));
    dj_jnd_loss_values v;
    CHECK_OK(dj_jnd_losses(&x.e, &x.c, &x.cfg, a, b, &v, &de, 0));
    CHECK(gc_check("jnd losses de", loss_of, &x, x.e.data, de.data, dj_tensor_numel(&de), 1e-3f, 1e-6, 1e-3, 180) <= 1);

    /* accumulate: de = 1 + grad */
    float *g = malloc(dj_tensor_numel(&de) * sizeof(float));
    memcpy(g, de.data, dj_tensor_numel(&de) * sizeof(float));
    for (size_t i = 0; i < dj_tensor_numel(&de); i++) de.data[i] = 1.0f;
    CHECK_OK(dj_jnd_losses(&x.e, &x.c, &x.cfg, a, b, &v, &de, 1));
    for (size_t i = 0; i < dj_tensor_numel(&de); i++) CHECK_CLOSE(de.data[i], 1.0f + g[i], 1e-7, 0);

    /* the single-loss functions give the two parts: a*d2 + b*d3 */
    dj_tensor d2;
    CHECK_OK(dj_tensor_alloc(&d2, 3, 4, 5, 3));
    CHECK_OK(dj_jnd_loss2(&x.e, &x.c, &x.cfg, NULL, NULL, a, &d2, 0));
    CHECK_OK(dj_jnd_loss3(&x.e, &x.c, &x.cfg, NULL, NULL, b, &d2, 1));
    CHECK(check_max_err(d2.data, g, dj_tensor_numel(&d2), 1e-9, 1e-5) <= 1);
    free(g);
    dj_tensor_free(&d2);
    dj_tensor_free(&de);
    dj_tensor_free(&x.e);
    dj_tensor_free(&x.c);
}

static void test_gradients(void) {
    gradcheck_unit(DJ_JND_UNIT_NORMALIZED, 1.0f, 1.0f);
    gradcheck_unit(DJ_JND_UNIT_PIXEL01, 0.7f, 1.3f);
    gradcheck_unit(DJ_JND_UNIT_NORMALIZED, 0.0f, 2.0f); /* Loss3 alone */
    gradcheck_unit(DJ_JND_UNIT_PIXEL01, 2.0f, 0.0f);    /* Loss2 alone */
}

static void test_loss_errors(void) {
    float e[12] = {0}, c[4] = {0}, c8[8] = {0};
    dj_tensor te = dj_tensor_view(e, 1, 2, 2, 3), tc = dj_tensor_view(c, 1, 2, 2, 1);
    dj_tensor bad_c = dj_tensor_view(c8, 1, 2, 4, 1), bad_e = dj_tensor_view(e, 1, 2, 2, 1);
    CHECK_FAILS(dj_jnd_losses(&te, &bad_c, NULL, 1, 1, NULL, NULL, 0), DJ_EINVAL, "must match");
    CHECK_FAILS(dj_jnd_losses(&bad_e, &tc, NULL, 1, 1, NULL, NULL, 0), DJ_EINVAL, "want N x H x W x 3");
    dj_tensor two_c = dj_tensor_view(c8, 1, 2, 2, 2);
    CHECK_FAILS(dj_jnd_loss2(&te, &two_c, NULL, NULL, NULL, 1, NULL, 0), DJ_EINVAL, "want N x H x W x 1");
    dj_jnd_loss_config cfg = dj_jnd_loss_defaults();
    cfg.e_unit = 7;
    CHECK_FAILS(dj_jnd_loss3(&te, &tc, &cfg, NULL, NULL, 1, NULL, 0), DJ_EINVAL, "e_unit");
    cfg = dj_jnd_loss_defaults();
    cfg.e_unit = DJ_JND_UNIT_PIXEL01;
    cfg.norm.std[2] = 0;
    CHECK_FAILS(dj_jnd_loss3(&te, &tc, &cfg, NULL, NULL, 1, NULL, 0), DJ_EINVAL, "std");
}

/* x_hat = x + e, clipped to [-1, 1] (paper normalisation); the gradient
 * passes where lo <= x + e <= hi (boundary included) and is 0 outside. */
static void test_apply_clip(void) {
    float x[6] = {0.9f, -0.9f, 0.2f, 0.5f, -0.25f, 0.0f};
    float e[6] = {0.3f, -0.3f, 0.5f, 0.5f, -0.75f, -1.5f};
    float xh[6], de[6], dxh[6] = {1, 2, 3, 4, 5, 6};
    dj_tensor tx = dj_tensor_view(x, 1, 1, 2, 3), te = dj_tensor_view(e, 1, 1, 2, 3);
    dj_tensor txh = dj_tensor_view(xh, 1, 1, 2, 3), tde = dj_tensor_view(de, 1, 1, 2, 3);
    dj_tensor tdxh = dj_tensor_view(dxh, 1, 1, 2, 3);
    dj_jnd_norm nm = dj_jnd_norm_paper();
    CHECK_OK(dj_jnd_apply(&tx, &te, &nm, &txh));
    const float want[6] = {1.0f, -1.0f, 0.7f, 1.0f, -1.0f, -1.0f};
    for (int i = 0; i < 6; i++) CHECK_CLOSE(xh[i], want[i], 1e-7, 0);
    CHECK_OK(dj_jnd_apply_backward(&tx, &te, &nm, &tdxh, &tde, 0));
    /* 0.9+0.3 > 1: 0; -1.2: 0; 0.7: 3; 0.5+0.5 = 1 exactly (boundary): 4;
     * -0.25-0.75 = -1 exactly: 5; -1.5: 0 */
    const float wantg[6] = {0, 0, 3, 4, 5, 0};
    for (int i = 0; i < 6; i++) CHECK(de[i] == wantg[i]);
    /* accumulate */
    CHECK_OK(dj_jnd_apply_backward(&tx, &te, &nm, &tdxh, &tde, 1));
    for (int i = 0; i < 6; i++) CHECK(de[i] == 2 * wantg[i]);
    /* no clipping: plain sum, gradient 1 */
    CHECK_OK(dj_jnd_apply(&tx, &te, NULL, &txh));
    for (int i = 0; i < 6; i++) CHECK(xh[i] == x[i] + e[i]);
    CHECK_OK(dj_jnd_apply_backward(&tx, &te, NULL, &tdxh, &tde, 0));
    for (int i = 0; i < 6; i++) CHECK(de[i] == dxh[i]);
    /* another normalisation: channel 0 range [-0.5/0.25, 0.5/0.25] = [-2, 2] */
    nm.mean[0] = 0.5f;
    nm.std[0] = 0.25f;
    float x2[3] = {1.9f, 0.9f, 0.9f}, e2[3] = {0.3f, 0.3f, 0.0f}, xh2[3];
    dj_tensor tx2 = dj_tensor_view(x2, 1, 1, 1, 3), te2 = dj_tensor_view(e2, 1, 1, 1, 3);
    dj_tensor txh2 = dj_tensor_view(xh2, 1, 1, 1, 3);
    CHECK_OK(dj_jnd_apply(&tx2, &te2, &nm, &txh2));
    CHECK_CLOSE(xh2[0], 2.0f, 1e-7, 0);
    CHECK_CLOSE(xh2[1], 1.0f, 1e-7, 0);
    CHECK_CLOSE(xh2[2], 0.9f, 1e-7, 0);
    /* in place (x_hat = e) */
    CHECK_OK(dj_jnd_apply(&tx2, &te2, &nm, &te2));
    CHECK_CLOSE(e2[0], 2.0f, 1e-7, 0);
    dj_tensor bad = dj_tensor_view(x, 1, 2, 1, 3);
    CHECK_FAILS(dj_jnd_apply(&tx, &bad, NULL, &txh), DJ_EINVAL, "jnd_apply");
}

/* PSNR on the 0..255 scale: identical images -> DJ_JND_PSNR_MAX; an error
 * of one 8-bit level everywhere (2/255 in [-1, 1] units) -> MSE 1 ->
 * 10 log10(255^2) = 48.1308 dB; mean over images. */
static void test_psnr(void) {
    const int n = 2, h = 4, w = 4;
    dj_tensor x, xh;
    CHECK_OK(dj_tensor_alloc(&x, n, h, w, 3));
    CHECK_OK(dj_tensor_alloc(&xh, n, h, w, 3));
    size_t total = dj_tensor_numel(&x);
    /* x: 8-bit pixels 10..245 mapped to [-1, 1] as the data loader does */
    for (size_t i = 0; i < total; i++) x.data[i] = ((float)(10 + (i * 37) % 236) / 255.0f - 0.5f) / 0.5f;
    float per[2];
    double mean;
    CHECK_OK(dj_jnd_psnr(&x, &x, NULL, 0, per, &mean));
    CHECK(per[0] == (float)DJ_JND_PSNR_MAX && mean == DJ_JND_PSNR_MAX);
    /* image 0: +1 level; image 1: -1 level except exactly equal nowhere */
    for (size_t i = 0; i < total; i++) xh.data[i] = x.data[i] + (i < total / 2 ? 2.0f : -2.0f) / 255.0f;
    CHECK_OK(dj_jnd_psnr(&x, &xh, NULL, 0, per, &mean));
    CHECK_CLOSE(per[0], 48.1308036, 1e-4, 0);
    CHECK_CLOSE(per[1], 48.1308036, 1e-4, 0);
    CHECK_CLOSE(mean, 48.1308036, 1e-4, 0);
    CHECK_OK(dj_jnd_psnr(&x, &xh, NULL, 1, per, &mean)); /* 8-bit: exactly one level */
    CHECK_CLOSE(mean, 48.1308036, 1e-6, 0);
    /* image 1 identical: the mean of 48.13 and 100 */
    memcpy(xh.data + total / 2, x.data + total / 2, total / 2 * sizeof(float));
    CHECK_OK(dj_jnd_psnr(&x, &xh, NULL, 0, per, &mean));
    CHECK(per[1] == (float)DJ_JND_PSNR_MAX);
    CHECK_CLOSE(mean, (48.1308036 + DJ_JND_PSNR_MAX) / 2, 1e-4, 0);
    /* 8-bit quantisation: a sub-level error rounds away */
    for (size_t i = 0; i < total; i++) xh.data[i] = x.data[i] + 0.6f / 255.0f; /* 0.3 level */
    CHECK_OK(dj_jnd_psnr(&x, &xh, NULL, 1, NULL, &mean));
    CHECK(mean == DJ_JND_PSNR_MAX);
    /* an RMS error of 85 levels: 10 log10(255^2 / 85^2) = 9.542 dB (the paper's 9.56 dB scale) */
    for (size_t i = 0; i < total; i++) xh.data[i] = x.data[i] + ((i % 2) ? 170.0f : -170.0f) / 255.0f;
    CHECK_OK(dj_jnd_psnr(&x, &xh, NULL, 0, NULL, &mean));
    CHECK_CLOSE(mean, 20 * log10(3.0), 1e-4, 0);
    /* mean |e| in 8-bit levels: e = 2/255 (normalised) is one level */
    for (size_t i = 0; i < total; i++) xh.data[i] = (i % 3 ? 2.0f : -2.0f) / 255.0f;
    CHECK_OK(dj_jnd_mean_abs_255(&xh, NULL, per, &mean));
    CHECK_CLOSE(per[0], 1.0, 1e-6, 0);
    CHECK_CLOSE(mean, 1.0, 1e-6, 0);
    x.data[0] = NAN;
    CHECK_OK(dj_jnd_psnr(&x, &xh, NULL, 0, per, NULL));
    CHECK(isnan(per[0]));
    dj_tensor_free(&x);
    dj_tensor_free(&xh);
}

int main(void) {
    dj_set_num_threads(2);
    RUN(test_hand_values);
    RUN(test_loss2_zero_and_batch);
    RUN(test_gradients);
    RUN(test_loss_errors);
    RUN(test_apply_clip);
    RUN(test_psnr);
    return check_report("test_jnd_losses");
}
