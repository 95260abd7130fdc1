/* The margin plane of the E-D's input (dmvjnd/jnd.h, section 2): the
 * smallest over the classifiers of p1 - p2, checked against a plain
 * double-precision softmax, and taken from a classifier graph's logits;
 * and the margin of a given label (dj_jnd_label_margin) on hand-worked
 * softmaxes and against long double; and the log-softmax
 * (dj_jnd_log_softmax) against long double and on extreme logits. */
#include <math.h>
#include <stdlib.h>

#include "check.h"
#include "dmvjnd/dmvjnd.h"
#include "dmvjnd/jnd.h"
#include "dmvjnd/models.h"
#include "dmvjnd/train.h"

/* p1 - p2 by the textbook formula, in long double. */
static double naive_gap(const float *z, int k) {
    long double p[64], sum = 0;
    for (int j = 0; j < k; j++) sum += p[j] = expl((long double)z[j]);
    long double a = -1, b = -1;
    for (int j = 0; j < k; j++) {
        long double v = p[j] / sum;
        if (v > a) {
            b = a;
            a = v;
        } else if (v > b) {
            b = v;
        }
    }
    return (double)(a - b);
}

static void test_against_softmax(void) {
    enum { N = 200, K = 10 };
    float z[N * K], m[N];
    dj_rng r;
    dj_rng_seed(&r, 7);
    for (int i = 0; i < N * K; i++) z[i] = 8.0f * (dj_rng_uniform(&r) - 0.5f) * (1 + i % 3);
    CHECK_OK(dj_jnd_margin_update(z, N, K, m, 1));
    double worst = 0;
    for (int i = 0; i < N; i++) worst = fmax(worst, fabs(m[i] - naive_gap(z + i * K, K)));
    printf("max |gap - softmax reference| over %d images: %.2g\n", N, worst);
    CHECK(worst <= 1e-6);
    for (int i = 0; i < N; i++) CHECK(m[i] >= 0.0f && m[i] <= 1.0f);
}

static void test_edge_cases(void) {
    /* a tie gives 0; one class far ahead gives ~1; huge logits do not
     * overflow (shifted by the largest); two classes */
    float tie[3] = {2.0f, 2.0f, -1.0f}, sure[3] = {50.0f, 0.0f, 0.0f}, huge[3] = {1000.0f, 999.0f, -1000.0f};
    float two[2] = {0.0f, logf(3.0f)}, m;
    CHECK_OK(dj_jnd_margin_update(tie, 1, 3, &m, 1));
    CHECK(m == 0.0f);
    CHECK_OK(dj_jnd_margin_update(sure, 1, 3, &m, 1));
    CHECK_CLOSE(m, 1.0, 1e-6, 0);
    CHECK_OK(dj_jnd_margin_update(huge, 1, 3, &m, 1));
    CHECK_CLOSE(m, (1.0 - exp(-1.0)) / (1.0 + exp(-1.0)), 1e-6, 0); /* as if {1, 0, -inf} */
    CHECK_OK(dj_jnd_margin_update(two, 1, 2, &m, 1));
    CHECK_CLOSE(m, 0.5, 1e-6, 0); /* p = 1/4, 3/4 */
    /* NaN or infinity: margin 0, the most careful value */
    float bad[3] = {1.0f, NAN, 0.0f}, inf[3] = {INFINITY, 0.0f, 0.0f};
    CHECK_OK(dj_jnd_margin_update(bad, 1, 3, &m, 1));
    CHECK(m == 0.0f);
    CHECK_OK(dj_jnd_margin_update(inf, 1, 3, &m, 1));
    CHECK(m == 0.0f);
    /* errors */
    CHECK_FAILS(dj_jnd_margin_update(two, 1, 1, &m, 1), DJ_EINVAL, "1 classes");
    CHECK_FAILS(dj_jnd_margin_update(NULL, 1, 2, &m, 1), DJ_EINVAL, "jnd margin");
}

static void test_minimum_over_classifiers(void) {
    /* image 0: classifier A unsure, B sure; image 1 the other way round */
    float a[2 * 3] = {1.0f, 0.9f, 0.0f, 9.0f, 0.0f, 0.0f};
    float b[2 * 3] = {9.0f, 0.0f, 0.0f, 1.0f, 0.5f, 0.0f};
    float m[2], ga[2], gb[2];
    CHECK_OK(dj_jnd_margin_update(a, 2, 3, ga, 1));
    CHECK_OK(dj_jnd_margin_update(b, 2, 3, gb, 1));
    CHECK_OK(dj_jnd_margin_update(a, 2, 3, m, 1));
    CHECK_OK(dj_jnd_margin_update(b, 2, 3, m, 0));
    CHECK(m[0] == ga[0] && m[1] == gb[1]);
    CHECK(ga[0] < gb[0] && gb[1] < ga[1]);
    /* first = 1 overwrites whatever was there */
    m[0] = -5.0f;
    CHECK_OK(dj_jnd_margin_update(b, 2, 3, m, 1));
    CHECK(m[0] == gb[0]);
}

static void test_from_graph(void) {
    enum { N = 5 };
    dj_graph *g = NULL;
    dj_rng r;
    dj_rng_seed(&r, 3);
    CHECK_OK(dj_model_build(&g, "resnet20", 10, &r));
    if (!g) return;
    CHECK_OK(dj_graph_freeze(g));
    dj_tensor x;
    CHECK_OK(dj_tensor_alloc(&x, N, 32, 32, 3));
    for (size_t i = 0; i < dj_tensor_numel(&x); i++) x.data[i] = 2.0f * dj_rng_uniform(&r) - 1.0f;
    float probs[N * 10], m[N];
    int32_t pred[N];
    CHECK_OK(dj_classify_batch(g, &x, pred, NULL, probs));
    CHECK_OK(dj_jnd_margin_from_graph(g, N, m, 1));
    for (int i = 0; i < N; i++) {
        double a = -1, b = -1;
        for (int j = 0; j < 10; j++) {
            double v = probs[i * 10 + j];
            if (v > a) b = a, a = v;
            else if (v > b) b = v;
        }
        CHECK_CLOSE(m[i], a - b, 1e-5, 0);
    }
    CHECK_FAILS(dj_jnd_margin_from_graph(g, N + 1, m, 1), DJ_EINVAL, "no logits");
    CHECK_FAILS(dj_jnd_margin_from_graph(NULL, N, m, 1), DJ_EINVAL, "no logits");
    dj_tensor_free(&x);
    dj_graph_destroy(g);
}

/* The margin of a given label (dj_jnd_label_margin): p_label - max other p,
 * against hand-worked softmaxes and a long double reference. */
static double naive_label_margin(const float *z, int k, int y) {
    long double p[64], sum = 0, other = 0;
    for (int j = 0; j < k; j++) sum += p[j] = expl((long double)z[j]);
    for (int j = 0; j < k; j++)
        if (j != y && p[j] / sum > other) other = p[j] / sum;
    return (double)(p[y] / sum - other);
}

static void test_label_margin(void) {
    const double e2 = exp(2.0);
    float z3[3] = {2.0f, 0.0f, 0.0f}, two[2] = {0.0f, logf(3.0f)}, tie[3] = {1.0f, 1.0f, 0.0f}, m[4];
    int32_t y;
    /* own label winning: (e^2 - 1) / (e^2 + 2); losing: the negative */
    y = 0;
    CHECK_OK(dj_jnd_label_margin(z3, 1, 3, &y, 1, m));
    CHECK_CLOSE(m[0], (e2 - 1) / (e2 + 2), 1e-7, 0);
    y = 1;
    CHECK_OK(dj_jnd_label_margin(z3, 1, 3, &y, 1, m));
    CHECK_CLOSE(m[0], (1 - e2) / (e2 + 2), 1e-7, 0);
    CHECK(m[0] < 0);
    y = 2;
    CHECK_OK(dj_jnd_label_margin(z3, 1, 3, &y, 1, m));
    CHECK_CLOSE(m[0], (1 - e2) / (e2 + 2), 1e-7, 0);
    /* two classes, p = 1/4, 3/4 */
    y = 1;
    CHECK_OK(dj_jnd_label_margin(two, 1, 2, &y, 1, m));
    CHECK_CLOSE(m[0], 0.5, 1e-7, 0);
    y = 0;
    CHECK_OK(dj_jnd_label_margin(two, 1, 2, &y, 1, m));
    CHECK_CLOSE(m[0], -0.5, 1e-7, 0);
    /* a tie for the top: 0 for either of the two, negative for the third */
    y = 0;
    CHECK_OK(dj_jnd_label_margin(tie, 1, 3, &y, 1, m));
    CHECK(m[0] == 0.0f);
    y = 1;
    CHECK_OK(dj_jnd_label_margin(tie, 1, 3, &y, 1, m));
    CHECK(m[0] == 0.0f);
    y = 2;
    CHECK_OK(dj_jnd_label_margin(tie, 1, 3, &y, 1, m));
    CHECK_CLOSE(m[0], (1 - exp(1.0)) / (2 * exp(1.0) + 1), 1e-7, 0);
    /* sure either way: about 1 and -1, never outside [-1, 1]; huge logits
     * do not overflow (shifted by the largest) */
    float sure[3] = {60.0f, 0.0f, 0.0f}, huge[3] = {1000.0f, 999.0f, -1000.0f};
    y = 0;
    CHECK_OK(dj_jnd_label_margin(sure, 1, 3, &y, 1, m));
    CHECK(m[0] <= 1.0f && m[0] > 0.999999f);
    y = 2;
    CHECK_OK(dj_jnd_label_margin(sure, 1, 3, &y, 1, m));
    CHECK(m[0] >= -1.0f && m[0] < -0.999999f);
    y = 1;
    CHECK_OK(dj_jnd_label_margin(huge, 1, 3, &y, 1, m));
    CHECK_CLOSE(m[0], -(1 - exp(-1.0)) / (1 + exp(-1.0)), 1e-7, 0);
    /* a label outside 0..classes-1, NaN or infinite logits: -1 */
    int32_t bad[3] = {-1, 3, 1 << 30};
    for (int i = 0; i < 3; i++) {
        CHECK_OK(dj_jnd_label_margin(z3, 1, 3, &bad[i], 1, m));
        CHECK(m[0] == -1.0f);
    }
    float nan3[3] = {1.0f, NAN, 0.0f}, inf3[3] = {INFINITY, 0.0f, 0.0f}, ninf3[3] = {0.0f, -INFINITY, 0.0f};
    y = 0;
    CHECK_OK(dj_jnd_label_margin(nan3, 1, 3, &y, 1, m));
    CHECK(m[0] == -1.0f);
    CHECK_OK(dj_jnd_label_margin(inf3, 1, 3, &y, 1, m));
    CHECK(m[0] == -1.0f);
    CHECK_OK(dj_jnd_label_margin(ninf3, 1, 3, &y, 1, m));
    CHECK(m[0] == -1.0f);
    /* stride: image i's label is labels[i * stride] (e.g. one classifier's
     * column of an image-major n x K label table); the others are not read
     * as labels. Image 1 has NaN logits: only it gets -1. */
    float zs[4 * 3] = {2.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 2.0f, 1.0f, NAN, 0.0f};
    int32_t ls[4 * 3] = {0, 7, 7, 2, 7, 7, 2, -9, -9, 0, -9, -9};
    float ms[4] = {9, 9, 9, 9};
    CHECK_OK(dj_jnd_label_margin(zs, 3, 3, ls, 3, ms));
    CHECK_CLOSE(ms[0], (e2 - 1) / (e2 + 2), 1e-7, 0);
    CHECK_CLOSE(ms[1], 0.0, 1e-7, 0); /* uniform: 1/3 - 1/3 */
    CHECK_CLOSE(ms[2], (e2 - 1) / (e2 + 2), 1e-7, 0);
    CHECK(ms[3] == 9); /* n = 3: the fourth is not written */
    CHECK_OK(dj_jnd_label_margin(zs + 3, 3, 3, ls + 3, 3, ms)); /* from image 1 on */
    CHECK_CLOSE(ms[0], 0.0, 1e-7, 0);
    CHECK_CLOSE(ms[1], (e2 - 1) / (e2 + 2), 1e-7, 0);
    CHECK(ms[2] == -1.0f);
    /* random logits and labels against long double; with the argmax as the
     * label it is dj_jnd_margin_update's p1 - p2 */
    enum { N = 300, K = 10 };
    float z[N * K], lm[N], gap[N], top[N];
    int32_t lab[N], arg[N];
    dj_rng r;
    dj_rng_seed(&r, 23);
    for (int i = 0; i < N * K; i++) z[i] = 12.0f * (dj_rng_uniform(&r) - 0.5f);
    for (int i = 0; i < N; i++) {
        lab[i] = (int32_t)dj_rng_below(&r, K);
        arg[i] = 0;
        for (int j = 1; j < K; j++)
            if (z[i * K + j] > z[i * K + arg[i]]) arg[i] = j;
    }
    CHECK_OK(dj_jnd_label_margin(z, N, K, lab, 1, lm));
    CHECK_OK(dj_jnd_label_margin(z, N, K, arg, 1, top));
    CHECK_OK(dj_jnd_margin_update(z, N, K, gap, 1));
    double worst = 0;
    int negative = 0;
    for (int i = 0; i < N; i++) {
        worst = fmax(worst, fabs(lm[i] - naive_label_margin(z + i * K, K, lab[i])));
        CHECK(lm[i] >= -1.0f && lm[i] <= 1.0f);
        CHECK((lm[i] < 0) == (lab[i] != arg[i]) || lm[i] == 0);
        negative += lm[i] < 0;
        CHECK_CLOSE(top[i], gap[i], 1e-6, 0);
    }
    printf("label margin: max |margin - long double reference| over %d images: %.2g (%d negative)\n", N, worst,
           negative);
    CHECK(worst <= 1e-6);
    CHECK(negative > N / 2); /* random labels mostly lose */
    /* errors; n = 0 writes nothing */
    CHECK_FAILS(dj_jnd_label_margin(z, 1, 1, lab, 1, lm), DJ_EINVAL, "1 classes");
    CHECK_FAILS(dj_jnd_label_margin(NULL, 1, 3, lab, 1, lm), DJ_EINVAL, "jnd label margin");
    CHECK_FAILS(dj_jnd_label_margin(z, 1, 3, NULL, 1, lm), DJ_EINVAL, "jnd label margin");
    CHECK_FAILS(dj_jnd_label_margin(z, -1, 3, lab, 1, lm), DJ_EINVAL, "-1 images");
    CHECK_OK(dj_jnd_label_margin(z, 0, 3, lab, 1, lm));
}

static void test_log_softmax(void) {
    enum { N = 100, K = 10 };
    float z[N * K], out[N * K], part[N * 4];
    dj_rng r;
    dj_rng_seed(&r, 13);
    for (int i = 0; i < N * K; i++) z[i] = 30.0f * (dj_rng_uniform(&r) - 0.5f);
    CHECK_OK(dj_jnd_log_softmax(z, N, K, K, out));
    CHECK_OK(dj_jnd_log_softmax(z, N, K, 4, part)); /* the first 4 of each */
    double worst = 0;
    for (int i = 0; i < N; i++) {
        long double sum = 0;
        for (int j = 0; j < K; j++) sum += expl((long double)z[i * K + j]);
        for (int j = 0; j < K; j++) {
            const double want = (double)((long double)z[i * K + j] - logl(sum));
            worst = fmax(worst, fabs(out[i * K + j] - want));
            if (j < 4) CHECK(part[i * 4 + j] == out[i * K + j]);
        }
    }
    printf("max |log-softmax - long double| over %d images: %.2g\n", N, worst);
    CHECK(worst <= 2e-6);
    /* no overflow: logits 1000 and 0 give 0 and -1000; equal logits log(1/3) */
    const float big[3] = {1000.0f, 0.0f, 1000.0f}, same[3] = {5.0f, 5.0f, 5.0f};
    float o[3];
    CHECK_OK(dj_jnd_log_softmax(big, 1, 3, 3, o));
    CHECK_CLOSE(o[0], -log(2.0), 1e-6, 0);
    CHECK_CLOSE(o[1], -1000.0 - log(2.0), 1e-3, 0);
    CHECK_OK(dj_jnd_log_softmax(same, 1, 3, 3, o));
    for (int j = 0; j < 3; j++) CHECK_CLOSE(o[j], -log(3.0), 1e-6, 0);
    /* non-finite logits: no confidence, log(1/classes) everywhere */
    const float bad[3] = {1.0f, NAN, 2.0f}, inf[3] = {INFINITY, 0.0f, 0.0f};
    CHECK_OK(dj_jnd_log_softmax(bad, 1, 3, 3, o));
    for (int j = 0; j < 3; j++) CHECK_CLOSE(o[j], -log(3.0), 1e-6, 0);
    CHECK_OK(dj_jnd_log_softmax(inf, 1, 3, 2, o));
    for (int j = 0; j < 2; j++) CHECK_CLOSE(o[j], -log(3.0), 1e-6, 0);
    /* bad arguments */
    CHECK_FAILS(dj_jnd_log_softmax(z, 1, 1, 1, o), DJ_EINVAL, "bad arguments");
    CHECK_FAILS(dj_jnd_log_softmax(z, 1, 3, 4, o), DJ_EINVAL, "bad arguments");
    CHECK_FAILS(dj_jnd_log_softmax(z, 1, 3, -1, o), DJ_EINVAL, "bad arguments");
    CHECK_FAILS(dj_jnd_log_softmax(NULL, 1, 3, 3, o), DJ_EINVAL, "bad arguments");
    CHECK_OK(dj_jnd_log_softmax(z, 0, 3, 3, o));
}

int main(void) {
    dj_set_num_threads(2);
    RUN(test_against_softmax);
    RUN(test_edge_cases);
    RUN(test_minimum_over_classifiers);
    RUN(test_from_graph);
    RUN(test_label_margin);
    RUN(test_log_softmax);
    return check_report("test_jnd_margin");
}
