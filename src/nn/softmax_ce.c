/* Softmax + mean cross-entropy over a batch of logit rows
 * (torch.nn.CrossEntropyLoss with reduction = "mean", no weights). */
#include <math.h>

#include "dmvjnd/core.h"
#include "dmvjnd/nn.h"

#define CE_SERIAL 16384 /* below this many logits threading costs more */

static int ce_check(const char *fn, const char *tn, const dj_tensor *t, const int32_t *labels, const float *probs) {
    if (!t || !t->data) return dj_error(DJ_EINVAL, "%s: %s is NULL", fn, tn);
    if (t->n <= 0 || t->c <= 0)
        return dj_error(DJ_EINVAL, "%s: %s has an empty shape %dx%dx%dx%d", fn, tn, t->n, t->h, t->w, t->c);
    if (t->h != 1 || t->w != 1)
        return dj_error(DJ_EINVAL, "%s: %s must be n x 1 x 1 x k, not %dx%dx%dx%d", fn, tn, t->n, t->h, t->w, t->c);
    if (!labels || !probs) return dj_error(DJ_EINVAL, "%s: labels and probs are required", fn);
    for (int i = 0; i < t->n; i++)
        if (labels[i] < 0 || labels[i] >= t->c)
            return dj_error(DJ_EINVAL, "%s: label %d of sample %d is outside [0, %d)", fn, (int)labels[i], i, t->c);
    return DJ_OK;
}

/* probs row = softmax(z); returns -log softmax(z)[label] = log(sum exp(z - m)) + m - z[label],
 * which stays finite however large the logits are (m = max z). */
static double softmax_row(const float *z, int k, int label, float *p) {
    float m = z[0];
    for (int j = 1; j < k; j++) m = z[j] > m ? z[j] : m;
    double sum = 0.0;
    for (int j = 0; j < k; j++) {
        p[j] = expf(z[j] - m);
        sum += p[j];
    }
    float inv = (float)(1.0 / sum);
    for (int j = 0; j < k; j++) p[j] *= inv;
    return log(sum) + (double)m - (double)z[label];
}

int dj_softmax_ce_forward(const dj_tensor *logits, const int32_t *labels, float *probs, float *loss) {
    static const char fn[] = "softmax cross-entropy";
    int st = ce_check(fn, "logits", logits, labels, probs);
    if (st) return st;
    if (!loss) return dj_error(DJ_EINVAL, "%s: loss is NULL", fn);
    int n = logits->n, k = logits->c;
    double total = 0.0;
#pragma omp parallel for schedule(static) reduction(+ : total) if ((size_t)n * k > CE_SERIAL)
    for (int i = 0; i < n; i++)
        total += softmax_row(logits->data + (size_t)i * k, k, labels[i], probs + (size_t)i * k);
    *loss = (float)(total / n);
    return DJ_OK;
}

int dj_softmax_ce_backward(const float *probs, const int32_t *labels, float scale, dj_tensor *dlogits, int accum) {
    static const char fn[] = "softmax cross-entropy backward";
    if (!dlogits) return DJ_OK; /* gradient not needed */
    int st = ce_check(fn, "dlogits", dlogits, labels, probs);
    if (st) return st;
    int n = dlogits->n, k = dlogits->c;
    float s = scale / (float)n;
#pragma omp parallel for schedule(static) if ((size_t)n * k > CE_SERIAL)
    for (int i = 0; i < n; i++) {
        const float *p = probs + (size_t)i * k;
        float *g = dlogits->data + (size_t)i * k;
        if (accum) {
            for (int j = 0; j < k; j++) g[j] += s * p[j];
        } else {
            for (int j = 0; j < k; j++) g[j] = s * p[j];
        }
        g[labels[i]] -= s;
    }
    return DJ_OK;
}
