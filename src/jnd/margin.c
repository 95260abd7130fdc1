/* The margin plane of the E-D's input; see dmvjnd/jnd.h, section 2. */
#include <math.h>

#include "dmvjnd/dmvjnd.h"
#include "dmvjnd/jnd.h"

/* The index of the largest logit, which every softmax here is shifted by
 * so nothing overflows; -1 when a logit is not finite. */
static int top_logit(const float *z, int classes) {
    int top = 0;
    for (int j = 0; j < classes; j++) {
        if (!isfinite(z[j])) return -1;
        if (z[j] > z[top]) top = j;
    }
    return top;
}

/* p_y - max over j != y of p_j for the softmax of z; y < 0 means the
 * largest (then it is p1 - p2). NAN for non-finite logits. */
static double softmax_gap(const float *z, int classes, int y) {
    const int top = top_logit(z, classes);
    if (top < 0) return NAN;
    if (y < 0) y = top;
    double sum = 0.0, other = 0.0;
    for (int j = 0; j < classes; j++) {
        double v = exp((double)z[j] - z[top]);
        sum += v;
        if (j != y && v > other) other = v;
    }
    return (exp((double)z[y] - z[top]) - other) / sum;
}

int dj_jnd_margin_update(const float *logits, int n, int classes, float *margin, int first) {
    if (!logits || !margin || n < 0 || classes < 2)
        return dj_error(DJ_EINVAL, "jnd margin: bad arguments (%d images, %d classes)", n, classes);
    for (int i = 0; i < n; i++) {
        const double g = softmax_gap(logits + (size_t)i * classes, classes, -1);
        const float gap = isnan(g) ? 0.0f : (float)g; /* non-finite logits: the most careful margin */
        if (first || gap < margin[i]) margin[i] = gap;
    }
    return DJ_OK;
}

int dj_jnd_margin_from_graph(const dj_graph *g, int n, float *margin, int first) {
    const dj_tensor *z = g ? dj_graph_node_output(g, dj_graph_output_node(g)) : NULL;
    if (!z || !z->data || z->n < n || z->h != 1 || z->w != 1)
        return dj_error(DJ_EINVAL, "jnd margin: the classifier has no logits for %d images", n);
    return dj_jnd_margin_update(z->data, n, z->c, margin, first);
}

int dj_jnd_label_margin(const float *logits, int n, int classes, const int32_t *labels, size_t stride,
                        float *margin) {
    if (!logits || !labels || !margin || n < 0 || classes < 2)
        return dj_error(DJ_EINVAL, "jnd label margin: bad arguments (%d images, %d classes)", n, classes);
    for (int i = 0; i < n; i++) {
        const int32_t y = labels[(size_t)i * stride];
        const double g = y >= 0 && y < classes ? softmax_gap(logits + (size_t)i * classes, classes, y) : NAN;
        margin[i] = isnan(g) ? -1.0f : (float)g; /* a bad label or logits: the most careful */
    }
    return DJ_OK;
}

int dj_jnd_log_softmax(const float *logits, int n, int classes, int keep, float *out) {
    if (!logits || !out || n < 0 || classes < 2 || keep < 0 || keep > classes)
        return dj_error(DJ_EINVAL, "jnd log-softmax: bad arguments (%d images, %d classes, %d kept)", n, classes,
                        keep);
    for (int i = 0; i < n; i++) {
        const float *z = logits + (size_t)i * classes;
        const int top = top_logit(z, classes);
        double sum = 0.0;
        for (int j = 0; top >= 0 && j < classes; j++) sum += exp((double)z[j] - z[top]);
        for (int j = 0; j < keep; j++)
            out[(size_t)i * keep + j] = top >= 0 ? (float)((double)z[j] - z[top] - log(sum)) : (float)-log(classes);
    }
    return DJ_OK;
}
