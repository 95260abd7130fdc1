/* He et al.'s CIFAR ResNet ("Deep residual learning", Sec. 4.2) with
 * PyTorch-style parameter names:
 *   conv1, bn1, layer{1,2,3}.{i}.{conv1,bn1,conv2,bn2,shortcut.0,shortcut.1}, fc
 *
 * Stages 2 and 3 start with a stride-2 block, so the network's stride is 4:
 * an h x w input (multiples of 4; dj_model_build_sized) has h/4 x w/4 last
 * feature maps (8x8 at 32x32). The parameters do not depend on the size. */
#include <stdio.h>

#include "dmvjnd/dmvjnd.h"
#include "dmvjnd/models.h"
#include "models/sized.h"

/* Every builder call returns a node id or a negative error code. */
#define TRY(expr)                                                                                                     \
    do {                                                                                                              \
        cur = (expr);                                                                                                 \
        if (cur < 0) goto fail;                                                                                       \
    } while (0)

static int basic_block(dj_graph *g, int in, const char *prefix, int cin, int cout, int stride) {
    char name[96];
    int cur, branch, shortcut = in;
    snprintf(name, sizeof name, "%s.conv1", prefix);
    TRY(dj_graph_conv(g, in, name, cout, 3, stride, 1, 0));
    snprintf(name, sizeof name, "%s.bn1", prefix);
    TRY(dj_graph_bn(g, cur, name, 1));
    snprintf(name, sizeof name, "%s.conv2", prefix);
    TRY(dj_graph_conv(g, cur, name, cout, 3, 1, 1, 0));
    snprintf(name, sizeof name, "%s.bn2", prefix);
    TRY(dj_graph_bn(g, cur, name, 0));
    branch = cur;
    if (stride != 1 || cin != cout) {
        snprintf(name, sizeof name, "%s.shortcut.0", prefix);
        TRY(dj_graph_conv(g, in, name, cout, 1, stride, 0, 0));
        snprintf(name, sizeof name, "%s.shortcut.1", prefix);
        TRY(dj_graph_bn(g, cur, name, 0));
        shortcut = cur;
    }
    return dj_graph_add(g, branch, shortcut, 1);
fail:
    return cur;
}

int dj_model_resnet_sized(dj_graph **out, int depth, int width, int classes, int h, int w, dj_rng *rng) {
    *out = NULL;
    if (depth < 8 || (depth - 2) % 6)
        return dj_error(DJ_EINVAL, "resnet: depth %d is not 6n+2 (20, 32, 44, 56, 110)", depth);
    if (width < 1 || classes < 1) return dj_error(DJ_EINVAL, "resnet: width %d, classes %d", width, classes);
    dj_graph *g;
    int rc = dj_graph_create(&g, h, w, 3), cur = 0;
    if (rc) return rc;
    int blocks = (depth - 2) / 6;
    TRY(dj_graph_conv(g, 0, "conv1", width, 3, 1, 1, 0));
    TRY(dj_graph_bn(g, cur, "bn1", 1));
    int cin = width;
    for (int stage = 0; stage < 3; stage++) {
        int cout = width << stage;
        for (int b = 0; b < blocks; b++) {
            char prefix[32];
            snprintf(prefix, sizeof prefix, "layer%d.%d", stage + 1, b);
            TRY(basic_block(g, cur, prefix, cin, cout, stage > 0 && b == 0 ? 2 : 1));
            cin = cout;
        }
    }
    TRY(dj_graph_gap(g, cur));
    TRY(dj_graph_linear(g, cur, "fc", classes, 1));
    if ((rc = dj_graph_finalize(g, rng))) goto fail_rc;
    dj_graph_init_kaiming(g, rng);
    *out = g;
    return DJ_OK;
fail:
    rc = cur;
fail_rc:
    dj_graph_destroy(g);
    return rc;
}

int dj_model_resnet_cifar(dj_graph **out, int depth, int width, int classes, dj_rng *rng) {
    return dj_model_resnet_sized(out, depth, width, classes, 32, 32, rng);
}
