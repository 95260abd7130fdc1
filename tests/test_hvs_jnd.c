/* NAMM human-vision JND (Yang et al. 2005) and its Canny edge map: a
 * hand-computed edge image, flat images against the luminance-adaptation
 * curve, a pseudo-random image against an independent numpy implementation
 * (tests/data/budget_ref.py), mirror/transpose symmetry, contrast
 * monotonicity, 1x1 and 1xN sizes, and argument errors. */
#include <stdint.h>
#include <stdlib.h>

#include "check.h"
#include "dmvjnd/budget.h"
#include "dmvjnd/cifar10.h"
#include "dmvjnd/dmvjnd.h"
#include "data/namm_ref.h"

static uint8_t *gray_image(int h, int w, const int *cols) {
    uint8_t *p = malloc((size_t)h * w * 3);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int c = 0; c < 3; c++) p[((size_t)y * w + x) * 3 + c] = (uint8_t)cols[x];
    return p;
}

/* The same generator as tests/data/budget_ref.py. */
static void lcg_image(uint8_t *p, size_t n, uint32_t seed) {
    uint64_t s = seed;
    for (size_t i = 0; i < n; i++) {
        s = (s * 1103515245u + 12345u) % (1u << 31);
        p[i] = (uint8_t)((s >> 16) & 255);
    }
}

static double lum_adapt(double bg) { return bg <= 127 ? 17 * (1 - sqrt(bg / 127)) + 3 : 3.0 / 128 * (bg - 127) + 3; }

/* An 8x8 image whose columns are 50 50 50 125 200 200 200 200 (every row the
 * same), worked by hand:
 *  - bg: the 5x5 weights summed down each column are 5 8 6 8 5 (/32), border
 *    replicated: col 1 = (27*50 + 5*125)/32 = 61.71875, col 2 = (5*50+8*50+
 *    6*50+8*125+5*200)/32 = 92.1875, col 3 = (250+400+750+1600+1000)/32 = 125,
 *    col 4 = (250+1000+1200+1600+1000)/32 = 157.8125, col 5 = (625+5400)/32 =
 *    188.28125; cols 0, 6, 7 see one value only: 50, 200, 200.
 *  - G: rows are equal, so the vertical operator gives 0 and the horizontal one
 *    (column weights 1 3 8 3 1 = 16) gives |I[c-1] - I[c+1]|:
 *    col 2: |50-125| = 75, col 3: 150, col 4: 75, else 0. The diagonal operators give
 *    |800-2900|/16 = 112.5 at col 3, |800-1775|/16 = 60.9375 at cols 2 and 4 (less
 *    than the horizontal one), and |800-875|/16 = 4.6875 at cols 1 and 5, where
 *    the horizontal one gives 0. So G = 0 4.6875 75 150 75 4.6875 0 0.
 *  - Canny: the smoothed profile is antisymmetric about col 3, the gradient
 *    horizontal, its magnitude largest at col 3 alone: the edge map is col 3.
 *  - W: 0.1 on col 3, 1 elsewhere, smoothed by the 7-tap Gaussian of sigma 0.8
 *    g[k] = exp(-k^2/1.28)/S, S = 1 + 2(e^-0.78125 + e^-3.125 + e^-7.03125):
 *    W[c] = 1 - 0.9 g[|c-3|] (g[4] = 0: outside the 7 taps). */
static void test_hand_edge(void) {
    static const int cols[8] = {50, 50, 50, 125, 200, 200, 200, 200};
    static const double bg[8] = {50, 61.71875, 92.1875, 125, 157.8125, 188.28125, 200, 200};
    static const double G[8] = {0, 4.6875, 75, 150, 75, 4.6875, 0, 0};
    double e[5], S = 0;
    for (int k = 0; k < 5; k++) e[k] = k < 4 ? exp(-k * k / 1.28) : 0;
    S = e[0] + 2 * (e[1] + e[2] + e[3]);
    uint8_t *img = gray_image(8, 8, cols);
    float out[64];
    uint8_t edges[64];
    float luma[64];
    for (int i = 0; i < 64; i++) luma[i] = img[3 * i];
    CHECK_OK(dj_canny_edges(luma, 8, 8, edges));
    for (int i = 0; i < 64; i++) CHECK(edges[i] == (i % 8 == 3));
    CHECK_OK(dj_hvs_jnd_namm(img, 8, 8, out));
    for (int y = 0; y < 8; y++)
        for (int x = 0; x < 8; x++) {
            int d = abs(x - 3);
            double W = 1 - 0.9 * e[d] / S;
            double tl = lum_adapt(bg[x]), tt = 0.117 * G[x] * W;
            double want = tl + tt - 0.3 * (tl < tt ? tl : tt);
            CHECK_CLOSE(out[y * 8 + x], want, 1e-4, 1e-5);
        }
    /* The same numbers from the numpy reference, tests/data/budget_ref.py. */
    static const float ref[8] = {9.333251f, 8.525319f, 10.833243f, 11.867478f, 9.577434f, 4.812615f, 4.710938f, 4.710938f};
    for (int x = 0; x < 8; x++) CHECK_CLOSE(out[5 * 8 + x], ref[x], 1e-4, 1e-5);
    free(img);
}

/* A flat image has no gradient (T_t = 0), so JND = T_l(bg) with bg = the
 * value: the Chou & Li curve, 20 at black, 3 at 127, 3 + 3/128 at 128, 6 at
 * white. */
static void test_flat(void) {
    static const int vals[] = {0, 64, 127, 128, 255};
    static const double want[] = {20.0, 0, 3.0, 3.0 + 3.0 / 128, 6.0};
    for (int k = 0; k < 5; k++) {
        int cols[7];
        for (int x = 0; x < 7; x++) cols[x] = vals[k];
        uint8_t *img = gray_image(5, 7, cols);
        float out[35];
        CHECK_OK(dj_hvs_jnd_namm(img, 5, 7, out));
        double w = k == 1 ? 17 * (1 - sqrt(64.0 / 127)) + 3 : want[k];
        for (int i = 0; i < 35; i++) CHECK_CLOSE(out[i], w, 1e-5, 1e-6);
        free(img);
    }
    /* The curve at 64 by hand: sqrt(64/127) = 0.7098852, 17 * 0.2901148 + 3 = 7.931951. */
    CHECK_CLOSE(lum_adapt(64), 7.931951, 1e-6, 0);
    /* Colour: luma, not a channel. (0, 255, 0) has Y = 0.587*255 = 149.685. */
    uint8_t green[3 * 9];
    for (int i = 0; i < 9; i++) green[3 * i] = 0, green[3 * i + 1] = 255, green[3 * i + 2] = 0;
    float out[9];
    CHECK_OK(dj_hvs_jnd_namm(green, 3, 3, out));
    for (int i = 0; i < 9; i++) CHECK_CLOSE(out[i], 3.0 / 128 * (149.685 - 127) + 3, 1e-4, 0);
}

/* A pseudo-random 6x7 image (seed 7) against the numpy reference of
 * tests/data/budget_ref.py (2-D kernels, iterative hysteresis, float64). */
static void test_random_vs_numpy(void) {
    static const unsigned char ref_edges[42] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                                                0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0};
    static const float ref_jnd[42] = {
        12.433678f, 11.836221f, 14.160632f, 10.750083f, 10.745178f, 5.890212f, 6.156240f, 9.226158f, 9.845518f,
        9.127483f,  8.846563f,  7.704121f,  5.658767f,  6.789964f,  7.238095f, 5.482140f, 5.730331f, 6.099483f,
        5.536389f,  6.263735f,  7.264302f,  4.138872f,  4.388260f,  4.328458f, 5.468410f, 6.312444f, 7.325432f,
        7.252314f,  7.715889f,  7.087118f,  6.713304f,  4.959966f,  5.868816f, 6.498740f, 11.452794f, 10.555639f,
        10.337983f, 9.212832f,  8.264262f,  8.354896f,  9.483455f,  11.466199f};
    uint8_t img[6 * 7 * 3];
    lcg_image(img, sizeof img, 7);
    float luma[42], out[42];
    uint8_t edges[42];
    for (int i = 0; i < 42; i++) luma[i] = (float)(0.299 * img[3 * i] + 0.587 * img[3 * i + 1] + 0.114 * img[3 * i + 2]);
    CHECK_OK(dj_canny_edges(luma, 6, 7, edges));
    for (int i = 0; i < 42; i++) CHECK(edges[i] == ref_edges[i]);
    CHECK_OK(dj_hvs_jnd_namm(img, 6, 7, out));
    for (int i = 0; i < 42; i++) CHECK_CLOSE(out[i], ref_jnd[i], 2e-4, 1e-5);
}

/* Smoothed noise has edges of every orientation and strength, so the edge
 * maps exercise the diagonal directions, both thresholds and the hysteresis
 * joins; compared with the numpy reference (every decision there is at least
 * 5e-5 of the largest magnitude and 0.02 degrees away from flipping). */
static void check_noise(const unsigned char *img, const unsigned char *ref_edges, const float *ref_jnd) {
    float luma[256], out[256];
    uint8_t edges[256], rgb[256 * 3];
    for (int i = 0; i < 256; i++) {
        luma[i] = img[i];
        rgb[3 * i] = rgb[3 * i + 1] = rgb[3 * i + 2] = img[i];
    }
    CHECK_OK(dj_canny_edges(luma, 16, 16, edges));
    int bad = 0, n_edges = 0;
    for (int i = 0; i < 256; i++) bad += edges[i] != ref_edges[i], n_edges += edges[i];
    CHECK(bad == 0);
    CHECK(n_edges > 30);
    CHECK_OK(dj_hvs_jnd_namm(rgb, 16, 16, out));
    CHECK(check_max_err(out, ref_jnd, 256, 2e-4, 1e-5) <= 1);
}

static void test_noise_vs_numpy(void) {
    check_noise(noise11_img, noise11_edges, noise11_jnd);
    check_noise(noise12_img, noise12_edges, noise12_jnd);
}

/* Every operator is symmetric under a left-right mirror and a transpose (the
 * diagonal operators swap or change sign, |.| is taken), so the map must
 * follow: catches row/column mix-ups on a non-square image. */
static void test_symmetry(void) {
    enum { H = 9, W = 13 };
    uint8_t img[H * W * 3], mir[H * W * 3], tr[W * H * 3];
    lcg_image(img, sizeof img, 1234);
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++)
            for (int c = 0; c < 3; c++) {
                mir[(y * W + (W - 1 - x)) * 3 + c] = img[(y * W + x) * 3 + c];
                tr[(x * H + y) * 3 + c] = img[(y * W + x) * 3 + c];
            }
    float a[H * W], b[H * W], t[W * H];
    CHECK_OK(dj_hvs_jnd_namm(img, H, W, a));
    CHECK_OK(dj_hvs_jnd_namm(mir, H, W, b));
    CHECK_OK(dj_hvs_jnd_namm(tr, W, H, t));
    int bad_m = 0, bad_t = 0;
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            bad_m += fabsf(a[y * W + x] - b[y * W + (W - 1 - x)]) > 1e-3f;
            bad_t += fabsf(a[y * W + x] - t[x * H + y]) > 1e-3f;
        }
    CHECK(bad_m == 0);
    CHECK(bad_t == 0);
}

/* More contrast, more masking: x = 127 + a*P for a fixed +-1 pattern P. The
 * edge map is the same for every a (thresholds are relative), G grows as a,
 * bg moves away from 127 where T_l is smallest, and JND increases in both. */
static void test_contrast_monotone(void) {
    enum { H = 8, W = 8 };
    uint8_t pat[H * W * 3];
    lcg_image(pat, sizeof pat, 99);
    float prev[H * W];
    for (int a = 0; a <= 120; a += 20) {
        uint8_t img[H * W * 3];
        for (int i = 0; i < H * W; i++) {
            int v = 127 + ((pat[3 * i] & 1) ? a : -a);
            img[3 * i] = img[3 * i + 1] = img[3 * i + 2] = (uint8_t)v;
        }
        float out[H * W];
        CHECK_OK(dj_hvs_jnd_namm(img, H, W, out));
        if (a == 0)
            for (int i = 0; i < H * W; i++) CHECK_CLOSE(out[i], 3.0, 1e-5, 0);
        else
            for (int i = 0; i < H * W; i++) CHECK(out[i] >= prev[i] - 1e-4f);
        for (int i = 0; i < H * W; i++) prev[i] = out[i];
    }
}

/* Border replication: a 1x1 image is flat; 1xN equals the transpose of Nx1;
 * the left column of the hand image sees only 50 (bg = 50, G = 0). */
static void test_sizes(void) {
    uint8_t one[3] = {64, 64, 64};
    float o1;
    CHECK_OK(dj_hvs_jnd_namm(one, 1, 1, &o1));
    CHECK_CLOSE(o1, lum_adapt(64), 1e-5, 1e-6);
    uint8_t row[11 * 3];
    lcg_image(row, sizeof row, 5);
    float r[11], c[11];
    CHECK_OK(dj_hvs_jnd_namm(row, 1, 11, r));
    CHECK_OK(dj_hvs_jnd_namm(row, 11, 1, c));
    for (int i = 0; i < 11; i++) CHECK_CLOSE(r[i], c[i], 1e-4, 1e-5);
    for (int i = 0; i < 11; i++) CHECK(r[i] >= 3.0f && r[i] < 60.0f);
    /* 3x5 odd size: runs, finite, at least the smallest T_l (3) less the overlap. */
    uint8_t odd[3 * 5 * 3];
    lcg_image(odd, sizeof odd, 6);
    float o[15];
    CHECK_OK(dj_hvs_jnd_namm(odd, 3, 5, o));
    for (int i = 0; i < 15; i++) CHECK(isfinite(o[i]) && o[i] >= 3.0f * 0.7f);
}

static void test_errors(void) {
    uint8_t img[12] = {0};
    float out[4];
    CHECK_FAILS(dj_hvs_jnd_namm(NULL, 2, 2, out), DJ_EINVAL, "NULL");
    CHECK_FAILS(dj_hvs_jnd_namm(img, 2, 2, NULL), DJ_EINVAL, "NULL");
    CHECK_FAILS(dj_hvs_jnd_namm(img, 0, 2, out), DJ_EINVAL, "empty image 0x2");
    CHECK_FAILS(dj_hvs_jnd_namm(img, 2, -1, out), DJ_EINVAL, "empty image");
    uint8_t e[4];
    CHECK_FAILS(dj_canny_edges(NULL, 2, 2, e), DJ_EINVAL, "canny");
    /* A flat plane has no edges at all (the largest magnitude is 0). */
    float flat[4] = {7, 7, 7, 7};
    e[0] = e[1] = e[2] = e[3] = 9;
    CHECK_OK(dj_canny_edges(flat, 2, 2, e));
    CHECK(e[0] == 0 && e[1] == 0 && e[2] == 0 && e[3] == 0);
}

/* On real images (CIFAR-10 test records 0..199, bit-exact ones, from the
 * default data folder or $DMVJND_DATA; skipped without them): the mean JND
 * in levels and the PSNR of x + JND with a random sign per value (rounded,
 * clamped), printed for the record. Human JND
 * profiles are reported to tolerate noise at roughly 25-35 dB PSNR; the
 * checks only guard against a broken map. */
static void test_cifar_figures(void) {
    dj_cifar10 ds;
    dj_cifar10_opts o = {0, 200, 0};
    if (dj_cifar10_load(&ds, dj_cifar10_default_dir(), "test", &o)) {
        fprintf(stderr, "test_hvs_jnd: %s\n", dj_last_error());
        SKIP("no CIFAR-10 (scripts/get-cifar10.sh or DMVJND_DATA)");
    }
    dj_rng r;
    dj_rng_seed(&r, 2005);
    float jnd[1024];
    double jsum = 0, jmin = 1e9, jmax = 0, sse = 0, psnr_sum = 0;
    for (int i = 0; i < ds.n; i++) {
        const uint8_t *x = ds.pixels + (size_t)i * 3072;
        CHECK_OK(dj_hvs_jnd_namm(x, 32, 32, jnd));
        double isse = 0;
        for (int p = 0; p < 1024; p++) {
            jsum += jnd[p];
            if (jnd[p] < jmin) jmin = jnd[p];
            if (jnd[p] > jmax) jmax = jnd[p];
            for (int c = 0; c < 3; c++) {
                double v = x[3 * p + c] + ((dj_rng_u64(&r) >> 63) ? jnd[p] : -jnd[p]);
                v = floor(v + 0.5);
                v = v < 0 ? 0 : v > 255 ? 255 : v;
                isse += (v - x[3 * p + c]) * (v - x[3 * p + c]);
            }
        }
        sse += isse;
        psnr_sum += 10 * log10(255.0 * 255.0 / (isse / 3072));
    }
    double mean_j = jsum / (1024.0 * ds.n), psnr = 10 * log10(255.0 * 255.0 / (sse / (3072.0 * ds.n)));
    printf("test_hvs_jnd: CIFAR-10 test 0..%d: NAMM JND mean %.3f levels (min %.3f, max %.3f); "
           "x +- JND (random sign per value): PSNR %.2f dB over the set, mean per image %.2f dB\n",
           ds.n - 1, mean_j, jmin, jmax, psnr, psnr_sum / ds.n);
    CHECK(mean_j > 3 && mean_j < 30);
    CHECK(jmin >= 3 * 0.7 && jmax < 100);
    CHECK(psnr > 15 && psnr < 45);
    dj_cifar10_free(&ds);
}

int main(void) {
    RUN(test_hand_edge);
    RUN(test_flat);
    RUN(test_random_vs_numpy);
    RUN(test_noise_vs_numpy);
    RUN(test_symmetry);
    RUN(test_contrast_monotone);
    RUN(test_sizes);
    RUN(test_errors);
    RUN(test_cifar_figures);
    return check_report("test_hvs_jnd");
}
