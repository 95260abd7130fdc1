/* The margin plane of the E-D's input (dmvjnd/jnd.h, section 2): the
 * smallest over the classifiers of p1 - p2, checked against a plain
 * double-precision softmax, and taken from a classifier graph's logits. */
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

int main(void) {
    dj_set_num_threads(2);
    RUN(test_against_softmax);
    RUN(test_edge_cases);
    RUN(test_minimum_over_classifiers);
    RUN(test_from_graph);
    return check_report("test_jnd_margin");
}
