/* Class activation maps: dj_cam_compute against a brute-force weighted sum of
 * the last feature maps and a naive bilinear upsampling written here, the
 * interpolation's align_corners=False semantics on values PyTorch gives,
 * min-max normalisation, merging, frozen graphs and graphs without CAMs. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "dmvjnd/cam.h"
#include "dmvjnd/dmvjnd.h"
#include "dmvjnd/graph.h"
#include "dmvjnd/train.h"

enum { S = 8, K = 5, N = 6 };

/* conv(6) -> bn relu -> conv(12, stride 2) [-> bn relu] -> gap -> [dropout]
 * -> linear(5), on 8x8x3 inputs: feature maps 4x4x12, upsampled to 8x8. With
 * bn_last the feature maps come from a BN that freezing folds into conv2. */
static dj_graph *small_graph(int dropout, int bn_last, int *feat_node) {
    dj_rng rng;
    dj_rng_seed(&rng, 3);
    dj_graph *g;
    if (dj_graph_create(&g, S, S, 3)) return NULL;
    int x = dj_graph_conv(g, 0, "conv1", 6, 3, 1, 1, 1);
    x = dj_graph_bn(g, x, "bn1", 1);
    x = dj_graph_conv(g, x, "conv2", 12, 3, 2, 1, 1);
    if (bn_last) x = dj_graph_bn(g, x, "bn2", 1);
    *feat_node = x;
    x = dj_graph_gap(g, x);
    if (dropout) x = dj_graph_dropout(g, x, 0.5f);
    x = dj_graph_linear(g, x, "fc", K, 1);
    if (x < 0 || dj_graph_finalize(g, &rng)) {
        fprintf(stderr, "small_graph: %s\n", dj_last_error());
        dj_graph_destroy(g);
        return NULL;
    }
    /* non-trivial BN statistics so that freezing folds something */
    const dj_param *rm = dj_graph_find_param(g, "bn1.running_mean"), *rv = dj_graph_find_param(g, "bn1.running_var");
    const dj_param *ga = dj_graph_find_param(g, "bn1.weight"), *be = dj_graph_find_param(g, "bn1.bias");
    for (int c = 0; c < 6; c++) {
        rm->data[c] = 0.1f * (float)c - 0.2f;
        rv->data[c] = 0.5f + 0.3f * (float)c;
        ga->data[c] = 1.0f + 0.1f * (float)c;
        be->data[c] = 0.05f * (float)(c - 3);
    }
    return g;
}

static void fill_input(dj_tensor *x, uint64_t seed) {
    dj_rng r;
    dj_rng_seed(&r, seed);
    for (size_t i = 0; i < dj_tensor_numel(x); i++) x->data[i] = dj_rng_normal(&r);
}

/* Naive bilinear, align_corners=False, written from the definition in
 * double: each output pixel centre mapped back into the source grid. */
static double sample(const double *m, int h, int w, double sy, double sx) {
    if (sy < 0) sy = 0;
    if (sx < 0) sx = 0;
    int y0 = (int)floor(sy), x0 = (int)floor(sx);
    int y1 = y0 + 1 < h ? y0 + 1 : h - 1, x1 = x0 + 1 < w ? x0 + 1 : w - 1;
    double fy = sy - y0, fx = sx - x0;
    return (1 - fy) * ((1 - fx) * m[y0 * w + x0] + fx * m[y0 * w + x1]) +
           fy * ((1 - fx) * m[y1 * w + x0] + fx * m[y1 * w + x1]);
}

static void naive_upsample(const double *m, int h, int w, double *out, int oh, int ow) {
    for (int Y = 0; Y < oh; Y++)
        for (int X = 0; X < ow; X++)
            out[Y * ow + X] = sample(m, h, w, (Y + 0.5) * h / oh - 0.5, (X + 0.5) * w / ow - 0.5);
}

static void naive_minmax(double *m, int n) {
    double lo = m[0], hi = m[0];
    for (int i = 1; i < n; i++) {
        lo = fmin(lo, m[i]);
        hi = fmax(hi, m[i]);
    }
    for (int i = 0; i < n; i++) m[i] = hi > lo ? (m[i] - lo) / (hi - lo) : 0;
}

/* Brute force: forward, read the feature maps, weight by W[k], upsample,
 * normalise, all in double, for k = argmax of the logits. */
static void brute_cams(dj_graph *g, int feat, const dj_tensor *x, double *cams, int32_t *labels) {
    const dj_tensor *logits;
    CHECK_OK(dj_graph_forward(g, x, 0, NULL, &logits));
    const dj_tensor *F = dj_graph_node_output(g, feat);
    const dj_param *W = dj_graph_find_param(g, "fc.weight");
    int h = F->h, w = F->w, C = F->c;
    double low[64];
    for (int i = 0; i < x->n; i++) {
        int k = 0;
        for (int j = 1; j < K; j++)
            if (logits->data[i * K + j] > logits->data[i * K + k]) k = j;
        labels[i] = k;
        for (int y = 0; y < h; y++)
            for (int xx = 0; xx < w; xx++) {
                double s = 0;
                for (int c = 0; c < C; c++)
                    s += (double)W->data[k * C + c] * F->data[(((size_t)i * h + y) * w + xx) * C + c];
                low[y * w + xx] = s;
            }
        naive_upsample(low, h, w, cams + i * S * S, S, S);
        naive_minmax(cams + i * S * S, S * S);
    }
}

static void test_cam_matches_brute_force(void) {
    for (int variant = 0; variant < 3; variant++) {
        int feat, dropout = variant == 1, bn_last = variant == 2;
        dj_graph *g = small_graph(dropout, bn_last, &feat);
        CHECK(g != NULL);
        if (!g) return;
        dj_cam_layout L;
        CHECK_OK(dj_cam_find(g, &L));
        CHECK(L.feature_node == feat && L.h == 4 && L.w == 4 && L.c == 12 && L.classes == K);
        dj_tensor x;
        CHECK_OK(dj_tensor_alloc(&x, N, S, S, 3));
        fill_input(&x, 11 + (uint64_t)variant);
        double want[N * S * S];
        int32_t want_labels[N], labels[N];
        float cams[N * S * S], conf[N];
        brute_cams(g, feat, &x, want, want_labels);
        CHECK_OK(dj_cam_compute(g, &x, cams, labels, conf));
        for (int i = 0; i < N; i++) CHECK(labels[i] == want_labels[i]);
        for (int i = 0; i < N * S * S; i++) {
            if (!(fabs(cams[i] - want[i]) <= 1e-5)) {
                fprintf(stderr, "cam[%d] = %.7f, brute force %.7f\n", i, cams[i], want[i]);
                CHECK(0);
                break;
            }
        }
        /* conf is the max softmax probability */
        float probs[N * K];
        int32_t pred[N];
        CHECK_OK(dj_classify_batch(g, &x, pred, NULL, probs));
        for (int i = 0; i < N; i++) {
            CHECK(pred[i] == labels[i]);
            CHECK_CLOSE(conf[i], probs[i * K + pred[i]], 1e-6, 0);
        }
        /* min-max: each map spans exactly [0, 1] */
        for (int i = 0; i < N; i++) {
            float lo = 1, hi = 0;
            for (int p = 0; p < S * S; p++) {
                lo = fminf(lo, cams[i * S * S + p]);
                hi = fmaxf(hi, cams[i * S * S + p]);
            }
            CHECK(lo == 0.0f && hi == 1.0f);
        }
        /* given classes: the map of class 0 for every image */
        int32_t zeros[N] = {0};
        float cams0[N * S * S];
        CHECK_OK(dj_cam_compute_for(g, &x, zeros, cams0, NULL, NULL));
        int same = 1;
        for (int i = 0; i < N; i++)
            if (labels[i] == 0) same &= !memcmp(cams0 + i * S * S, cams + i * S * S, sizeof(float) * S * S);
        CHECK(same);
        int32_t bad[N] = {0, 0, K, 0, 0, 0};
        CHECK_FAILS(dj_cam_compute_for(g, &x, bad, cams0, NULL, NULL), DJ_EINVAL, "class 5 of image 2");
        /* frozen graph: same maps up to BN-folding rounding, same labels */
        float cf[N * S * S];
        int32_t lf[N];
        CHECK_OK(dj_graph_freeze(g));
        CHECK_OK(dj_cam_compute(g, &x, cf, lf, NULL));
        for (int i = 0; i < N; i++) CHECK(lf[i] == labels[i]);
        CHECK(check_max_err(cf, cams, N * S * S, 1e-4, 0) <= 1);
        dj_tensor_free(&x);
        dj_graph_destroy(g);
    }
}

static void test_upsample_semantics(void) {
    /* torch.nn.functional.interpolate(torch.tensor([[[[0.,1.],[2.,3.]]]]),
     * size=(4,4), mode='bilinear', align_corners=False) */
    const float src[4] = {0, 1, 2, 3};
    const float want[16] = {0.00f, 0.25f, 0.75f, 1.00f, 0.50f, 0.75f, 1.25f, 1.50f,
                            1.50f, 1.75f, 2.25f, 2.50f, 2.00f, 2.25f, 2.75f, 3.00f};
    float out[16];
    dj_cam_upsample(src, 2, 2, out, 4, 4);
    CHECK(check_max_err(out, want, 16, 1e-7, 0) <= 1);
    /* 8x8 -> 32x32 (ResNet feature maps to CIFAR images) against the naive one */
    float m[64], up[1024];
    double md[64], upd[1024];
    dj_rng r;
    dj_rng_seed(&r, 5);
    for (int i = 0; i < 64; i++) md[i] = m[i] = dj_rng_normal(&r);
    dj_cam_upsample(m, 8, 8, up, 32, 32);
    naive_upsample(md, 8, 8, upd, 32, 32);
    double worst = 0;
    for (int i = 0; i < 1024; i++) worst = fmax(worst, fabs(up[i] - upd[i]));
    CHECK(worst < 1e-5);
    /* same size: identity */
    float same[64];
    dj_cam_upsample(m, 8, 8, same, 8, 8);
    CHECK(!memcmp(same, m, sizeof m));
    /* non-square and downsampling do not crash and stay within the range */
    float odd[15];
    dj_cam_upsample(m, 8, 8, odd, 3, 5);
    for (int i = 0; i < 15; i++) CHECK(isfinite(odd[i]));
}

static void test_normalize_and_merge(void) {
    float a[6] = {2, 4, 3, 2, 6, 5};
    dj_cam_normalize(a, 6);
    const float wa[6] = {0, 0.5f, 0.25f, 0, 1, 0.75f};
    CHECK(!memcmp(a, wa, sizeof a));
    float flat[5] = {3, 3, 3, 3, 3};
    dj_cam_normalize(flat, 5);
    for (int i = 0; i < 5; i++) CHECK(flat[i] == 0.0f);
    float neg[3] = {-5, -1, -3};
    dj_cam_normalize(neg, 3);
    CHECK(neg[0] == 0.0f && neg[1] == 1.0f && neg[2] == 0.5f);

    float m1[4] = {0, 1, 0.5f, 0.25f}, m2[4] = {1, 1, 0, 0.25f}, m3[4] = {0.5f, 0, 1, 0.25f};
    const float *maps[3] = {m1, m2, m3};
    float out[4];
    CHECK_OK(dj_cam_merge(maps, 3, 4, out));
    CHECK_CLOSE(out[0], 0.5, 1e-7, 0);
    CHECK_CLOSE(out[1], 2.0 / 3, 1e-7, 0);
    CHECK_CLOSE(out[2], 0.5, 1e-7, 0);
    CHECK_CLOSE(out[3], 0.25, 1e-7, 0);
    CHECK_OK(dj_cam_merge(maps, 1, 4, out));
    CHECK(!memcmp(out, m1, sizeof out));
    CHECK_OK(dj_cam_merge(maps, 3, 4, m1)); /* in place into the first map */
    CHECK_CLOSE(m1[1], 2.0 / 3, 1e-7, 0);
    CHECK_FAILS(dj_cam_merge(maps, 0, 4, out), DJ_EINVAL, "0 maps");
}

static void test_zero_weights_give_zero_maps(void) {
    int feat;
    dj_graph *g = small_graph(0, 0, &feat);
    CHECK(g != NULL);
    if (!g) return;
    const dj_param *w = dj_graph_find_param(g, "fc.weight");
    memset(w->data, 0, w->count * sizeof(float));
    dj_tensor x;
    CHECK_OK(dj_tensor_alloc(&x, 2, S, S, 3));
    fill_input(&x, 4);
    float cams[2 * S * S];
    CHECK_OK(dj_cam_compute(g, &x, cams, NULL, NULL));
    for (int i = 0; i < 2 * S * S; i++) CHECK(cams[i] == 0.0f);
    dj_tensor_free(&x);
    dj_graph_destroy(g);
}

static void test_graphs_without_cam(void) {
    dj_rng rng;
    dj_rng_seed(&rng, 1);
    dj_graph *g;
    dj_cam_layout L;
    /* conv -> linear: no pooling */
    CHECK_OK(dj_graph_create(&g, S, S, 3));
    int x = dj_graph_conv(g, 0, "conv1", 4, 3, 1, 1, 0);
    x = dj_graph_linear(g, x, "fc", K, 1);
    CHECK_OK(dj_graph_finalize(g, &rng));
    CHECK_FAILS(dj_cam_find(g, &L), DJ_EINVAL, "reads a 'conv' layer");
    dj_graph_destroy(g);
    /* ends in a gap */
    CHECK_OK(dj_graph_create(&g, S, S, 3));
    x = dj_graph_conv(g, 0, "conv1", 4, 3, 1, 1, 0);
    x = dj_graph_gap(g, x);
    CHECK_OK(dj_graph_finalize(g, &rng));
    CHECK_FAILS(dj_cam_find(g, &L), DJ_EINVAL, "ends in a 'gap' layer");
    dj_graph_destroy(g);
}

int main(void) {
    dj_set_num_threads(0);
    RUN(test_upsample_semantics);
    RUN(test_normalize_and_merge);
    RUN(test_cam_matches_brute_force);
    RUN(test_zero_weights_give_zero_maps);
    RUN(test_graphs_without_cam);
    return check_report("test_cam");
}
