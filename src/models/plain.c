/* A plain CNN from a layer list (see plain.h): conv-BN-ReLU blocks and max
 * pools, then global average pooling directly on the last conv block's
 * output (so class activation maps are Zhou et al.'s weighted sum of those
 * feature maps) and one linear layer. */
#include <stdio.h>

#include "dmvjnd/dmvjnd.h"
#include "models/plain.h"

int dj_model_plain_cnn(dj_graph **out, const char *what, const dj_plain_layer *layers, int count, int classes,
                       int h, int w, dj_rng *rng) {
    *out = NULL;
    if (classes < 1) return dj_error(DJ_EINVAL, "%s: %d classes", what, classes);
    if (count < 1 || layers[count - 1].cout <= 0)
        return dj_error(DJ_EINVAL, "%s: the last layer must be a convolution (global average pooling follows it)",
                        what);
    dj_graph *g;
    int rc = dj_graph_create(&g, h, w, 3), cur = 0;
    if (rc) return dj_error(rc, "%s: %s", what, dj_last_error());
    int idx = 0; /* index in the PyTorch twin's nn.Sequential */
    for (int i = 0; i < count; i++) {
        const dj_plain_layer *l = &layers[i];
        char name[32];
        if (l->cout > 0) {
            snprintf(name, sizeof name, "features.%d", idx);
            if ((cur = dj_graph_conv(g, cur, name, l->cout, l->k, 1, l->k / 2, 0)) < 0) goto fail;
            snprintf(name, sizeof name, "features.%d", idx + 1);
            if ((cur = dj_graph_bn(g, cur, name, 1)) < 0) goto fail;
            idx += 3; /* Conv2d, BatchNorm2d, ReLU */
        } else {
            if ((cur = dj_graph_maxpool(g, cur, l->k, l->stride, l->pad)) < 0) goto fail;
            idx += 1;
        }
    }
    if ((cur = dj_graph_gap(g, cur)) < 0) goto fail;
    if ((cur = dj_graph_linear(g, cur, "classifier", classes, 1)) < 0) goto fail;
    if ((rc = dj_graph_finalize(g, rng))) goto fail_rc;
    dj_graph_init_kaiming(g, rng);
    *out = g;
    return DJ_OK;
fail:
    rc = cur;
fail_rc:
    dj_graph_destroy(g);
    return dj_error(rc, "%s: %s", what, dj_last_error());
}
