/* The margin plane of the E-D's input; see dmvjnd/jnd.h, section 2. */
#include <math.h>

#include "dmvjnd/dmvjnd.h"
#include "dmvjnd/jnd.h"

int dj_jnd_margin_update(const float *logits, int n, int classes, float *margin, int first) {
    if (!logits || !margin || n < 0 || classes < 2)
        return dj_error(DJ_EINVAL, "jnd margin: bad arguments (%d images, %d classes)", n, classes);
    for (int i = 0; i < n; i++) {
        const float *z = logits + (size_t)i * classes;
        /* p1 - p2 = (exp(z1 - z1) - exp(z2 - z1)) / sum_j exp(zj - z1):
         * shifted by the largest logit, so nothing overflows. */
        int top = 0, ok = 1;
        for (int j = 0; j < classes; j++) {
            if (!isfinite(z[j])) ok = 0;
            if (z[j] > z[top]) top = j;
        }
        float gap = 0.0f;
        if (ok) {
            double sum = 0.0, second = 0.0;
            for (int j = 0; j < classes; j++) {
                double v = exp((double)z[j] - z[top]);
                sum += v;
                if (j != top && v > second) second = v;
            }
            gap = (float)((1.0 - second) / sum);
        }
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
        const float *z = logits + (size_t)i * classes;
        const int32_t y = labels[(size_t)i * stride];
        int top = 0, ok = y >= 0 && y < classes;
        for (int j = 0; j < classes; j++) {
            if (!isfinite(z[j])) ok = 0;
            if (z[j] > z[top]) top = j;
        }
        if (!ok) {
            margin[i] = -1.0f;
            continue;
        }
        /* softmax shifted by the largest logit, as dj_jnd_margin_update */
        double sum = 0.0, other = 0.0;
        for (int j = 0; j < classes; j++) {
            double v = exp((double)z[j] - z[top]);
            sum += v;
            if (j != y && v > other) other = v;
        }
        margin[i] = (float)((exp((double)z[y] - z[top]) - other) / sum);
    }
    return DJ_OK;
}
