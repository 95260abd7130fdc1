/* Softmax cross-entropy: hand-computed loss, stability with huge logits,
 * gradient against finite differences, accum and scale, errors. */
#include <stdlib.h>

#include "check.h"
#include "dmvjnd/dmvjnd.h"
#include "gradcheck.h"

static void test_hand_computed(void) {
    float z[3] = {1, 2, 3}, p[3], loss;
    int32_t label = 2;
    dj_tensor t = dj_tensor_view(z, 1, 1, 1, 3);
    CHECK_OK(dj_softmax_ce_forward(&t, &label, p, &loss));
    double lse = log(exp(1.0) + exp(2.0) + exp(3.0));
    CHECK_CLOSE(loss, lse - 3, 1e-7, 1e-6);
    for (int j = 0; j < 3; j++) CHECK_CLOSE(p[j], exp(j + 1.0 - lse), 1e-7, 1e-6);

    /* batch of two: the mean of the two losses */
    float z2[6] = {1, 2, 3, 0, 0, 0}, p2[6];
    int32_t labels[2] = {0, 1};
    dj_tensor t2 = dj_tensor_view(z2, 2, 1, 1, 3);
    CHECK_OK(dj_softmax_ce_forward(&t2, labels, p2, &loss));
    CHECK_CLOSE(loss, ((lse - 1) + log(3.0)) / 2, 1e-7, 1e-6);
}

/* Logits around 1000 overflow a naive exp; the result must be finite and right. */
static void test_huge_logits(void) {
    float z[4] = {1000, 999, -1000, 1000}, p[4], loss;
    int32_t label = 1;
    dj_tensor t = dj_tensor_view(z, 1, 1, 1, 4);
    CHECK_OK(dj_softmax_ce_forward(&t, &label, p, &loss));
    CHECK(isfinite(loss));
    /* log(2 e^1000 + e^999) - 999 = 1 + log(2 + 1/e) */
    CHECK_CLOSE(loss, 1 + log(2 + exp(-1.0)), 1e-6, 1e-6);
    for (int j = 0; j < 4; j++) CHECK(isfinite(p[j]));
    CHECK(p[2] == 0.0f);
    float z2[2] = {-1e30f, 1e30f}, p2[2];
    int32_t l2 = 0;
    dj_tensor t2 = dj_tensor_view(z2, 1, 1, 1, 2);
    CHECK_OK(dj_softmax_ce_forward(&t2, &l2, p2, &loss));
    CHECK(isfinite(loss) && loss > 1e29f);
    CHECK(p2[1] == 1.0f && p2[0] == 0.0f);
    /* all very negative: exp underflows unless the max is subtracted */
    float z3[3] = {-1000, -1001, -1002}, p3[3];
    dj_tensor t3 = dj_tensor_view(z3, 1, 1, 1, 3);
    CHECK_OK(dj_softmax_ce_forward(&t3, &l2, p3, &loss));
    CHECK_CLOSE(loss, log(1 + exp(-1.0) + exp(-2.0)), 1e-6, 1e-6);
    CHECK_CLOSE(p3[0], 1 / (1 + exp(-1.0) + exp(-2.0)), 1e-7, 1e-6);
}

typedef struct {
    dj_tensor z;
    int32_t *labels;
    float *p;
} ce_ctx;

static double ce_loss(void *pc) {
    ce_ctx *c = pc;
    float loss;
    dj_softmax_ce_forward(&c->z, c->labels, c->p, &loss);
    return loss;
}

static void check_gradient(int n, int k, int checks) {
    ce_ctx c;
    CHECK_OK(dj_tensor_alloc(&c.z, n, 1, 1, k));
    c.labels = malloc(n * sizeof *c.labels);
    c.p = malloc((size_t)n * k * sizeof *c.p);
    gc_fill(c.z.data, (size_t)n * k, -3, 3, 5);
    for (int i = 0; i < n; i++) c.labels[i] = (i * 7 + 3) % k;
    ce_loss(&c);
    /* probabilities of each row sum to 1 */
    for (int i = 0; i < n; i++) {
        double s = 0;
        for (int j = 0; j < k; j++) s += c.p[i * k + j];
        CHECK_CLOSE(s, 1, 1e-6, 0);
    }
    dj_tensor dz;
    CHECK_OK(dj_tensor_alloc(&dz, n, 1, 1, k));
    CHECK_OK(dj_softmax_ce_backward(c.p, c.labels, 1.0f, &dz, 0));
    /* the loss is a float mean, so its FD noise is ~1e-7 / (2 eps) */
    CHECK(gc_check("softmax ce dlogits", ce_loss, &c, c.z.data, dz.data, (size_t)n * k, 1e-2f, 2e-4, 1e-2, checks) <=
          1);
    ce_loss(&c); /* probs back at the unperturbed logits */
    /* exact form; scale multiplies; accum semantics */
    size_t nk = (size_t)n * k;
    float *d0 = malloc(nk * sizeof *d0);
    memcpy(d0, dz.data, nk * sizeof *d0);
    int bad = 0;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < k; j++)
            bad += !(fabs(d0[i * k + j] - (c.p[i * k + j] - (j == c.labels[i])) / n) <= 1e-7);
    for (size_t i = 0; i < nk; i++) dz.data[i] = NAN;
    CHECK_OK(dj_softmax_ce_backward(c.p, c.labels, 0.5f, &dz, 0));
    for (size_t i = 0; i < nk; i++) bad += !(fabsf(dz.data[i] - 0.5f * d0[i]) <= 1e-7f);
    CHECK_OK(dj_softmax_ce_backward(c.p, c.labels, 0.5f, &dz, 1));
    for (size_t i = 0; i < nk; i++) bad += !(fabsf(dz.data[i] - d0[i]) <= 1e-7f);
    CHECK(bad == 0);
    if (bad) fprintf(stderr, "  n = %d, k = %d: %d mismatches\n", n, k, bad);
    free(d0), free(c.labels), free(c.p);
    dj_tensor_free(&c.z), dj_tensor_free(&dz);
}

static void test_gradient(void) {
    check_gradient(3, 10, 500);
    check_gradient(5, 7, 500);
    check_gradient(1, 1, 500);    /* one class: loss 0, gradient 0 */
    check_gradient(512, 100, 20); /* threaded */
}

static void test_errors(void) {
    float z[6] = {0}, p[6], loss;
    int32_t labels[2] = {0, 3};
    dj_tensor t = dj_tensor_view(z, 2, 1, 1, 3);
    CHECK_FAILS(dj_softmax_ce_forward(&t, labels, p, &loss), DJ_EINVAL, "label 3 of sample 1 is outside [0, 3)");
    labels[1] = -1;
    CHECK_FAILS(dj_softmax_ce_backward(p, labels, 1, &t, 0), DJ_EINVAL, "label -1 of sample 1");
    labels[1] = 1;
    dj_tensor bad = dj_tensor_view(z, 1, 2, 1, 3);
    CHECK_FAILS(dj_softmax_ce_forward(&bad, labels, p, &loss), DJ_EINVAL, "logits must be n x 1 x 1 x k");
    CHECK_FAILS(dj_softmax_ce_forward(&t, NULL, p, &loss), DJ_EINVAL, "labels and probs are required");
    CHECK_FAILS(dj_softmax_ce_forward(&t, labels, p, NULL), DJ_EINVAL, "loss is NULL");
    CHECK_OK(dj_softmax_ce_backward(p, labels, 1, NULL, 0));
}

int main(void) {
    RUN(test_hand_computed);
    RUN(test_huge_logits);
    RUN(test_gradient);
    RUN(test_errors);
    return check_report("test_softmax_ce");
}
