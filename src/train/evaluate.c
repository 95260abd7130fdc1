/* A classifier's accuracy on a CIFAR-10 slice, overall and per class. See
 * dmvjnd/train.h. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dmvjnd/dmvjnd.h"
#include "dmvjnd/classifier.h"
#include "dmvjnd/train.h"

int dj_evaluate(dj_graph *g, const dj_cifar10 *ds, const float mean[3], const float std[3], int batch,
                dj_eval_result *res, int32_t *pred, float *conf) {
    if (!g || !ds || !res) return dj_error(DJ_EINVAL, "dj_evaluate: NULL argument");
    memset(res, 0, sizeof *res);
    if (batch < 1) return dj_error(DJ_EINVAL, "dj_evaluate: batch %d must be >= 1", batch);
    if (ds->n < 0 || (ds->n > 0 && (!ds->pixels || !ds->labels)))
        return dj_error(DJ_EINVAL, "dj_evaluate: empty or malformed data set");
    int out_c;
    dj_graph_node_shape(g, dj_graph_output_node(g), NULL, NULL, &out_c);
    if (out_c != DJ_CIFAR10_CLASSES)
        return dj_error(DJ_EINVAL, "dj_evaluate: the network has %d outputs, CIFAR-10 has %d classes", out_c,
                        DJ_CIFAR10_CLASSES);
    int h, w, c;
    dj_graph_node_shape(g, 0, &h, &w, &c);
    if (h != DJ_CIFAR10_SIDE || w != DJ_CIFAR10_SIDE || c != DJ_CIFAR10_CHANNELS)
        return dj_error(DJ_EINVAL, "dj_evaluate: the network takes %dx%dx%d images, CIFAR-10 has 32x32x3", h, w, c);
    int b = batch < ds->n ? batch : (ds->n > 0 ? ds->n : 1);
    dj_tensor x = {0};
    int32_t *idx = malloc((size_t)b * sizeof *idx), *labels = malloc((size_t)b * sizeof *labels),
            *p = malloc((size_t)b * sizeof *p);
    int rc = !idx || !labels || !p ? dj_error(DJ_ENOMEM, "dj_evaluate: out of memory") : DJ_OK;
    if (!rc) rc = dj_tensor_alloc(&x, b, DJ_CIFAR10_SIDE, DJ_CIFAR10_SIDE, DJ_CIFAR10_CHANNELS);
    for (int start = 0; !rc && start < ds->n; start += b) {
        int n = ds->n - start < b ? ds->n - start : b;
        for (int i = 0; i < n; i++) idx[i] = start + i;
        dj_tensor xv = dj_tensor_view(x.data, n, DJ_CIFAR10_SIDE, DJ_CIFAR10_SIDE, DJ_CIFAR10_CHANNELS);
        if ((rc = dj_cifar10_batch(ds, idx, n, NULL, NULL, mean, std, &xv, labels))) break;
        if ((rc = dj_classify_batch(g, &xv, p, conf ? conf + start : NULL, NULL))) break;
        for (int i = 0; i < n; i++) {
            int ok = p[i] == labels[i];
            res->correct += ok;
            res->class_images[labels[i]]++;
            res->class_correct[labels[i]] += ok;
            if (pred) pred[start + i] = p[i];
        }
        res->images += n;
    }
    res->accuracy = res->images ? (double)res->correct / res->images : NAN;
    for (int k = 0; k < DJ_CIFAR10_CLASSES; k++)
        res->class_accuracy[k] = res->class_images[k] ? (double)res->class_correct[k] / res->class_images[k] : NAN;
    dj_tensor_free(&x);
    free(idx);
    free(labels);
    free(p);
    return rc;
}
