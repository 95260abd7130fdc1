/* DenseNet-BC for CIFAR (Huang et al. 2017, Sec. 3-4): three dense blocks
 * of n = (depth - 4) / 6 bottleneck layers at 32x32, 16x16 and 8x8,
 * pre-activation order (BN-ReLU-conv) throughout:
 *
 *   features.conv0              conv 3x3, 3 -> 2k                (no BN: the
 *                               first dense layer's norm1 follows)
 *   features.denseblock{b}.denselayer{i}:
 *       input = concat(block input, outputs of layers 1..i-1)
 *       norm1 BN + ReLU, conv1 1x1 -> 4k, norm2 BN + ReLU, conv2 3x3 -> k
 *   features.transition{1,2}:   norm BN + ReLU, conv 1x1 -> floor(c/2)
 *                               (compression 0.5), avg pool 2/2
 *   features.norm5              BN + ReLU on the last block's output (8x8)
 *   global average pool, classifier: linear -> classes
 *
 * Names follow torchvision's DenseNet. The concatenations copy (strided
 * in-place views would send oneDNN to its reference kernels).
 *
 * The two transitions' 2x2 average pools give a stride of 4: an h x w input
 * (multiples of 4; dj_model_build_sized) has h/4 x w/4 last feature maps.
 * The parameters do not depend on the size. */
#include <stdio.h>

#include "dmvjnd/dmvjnd.h"
#include "dmvjnd/models.h"
#include "models/sized.h"

#define MAX_LAYERS 60 /* per block; dj_graph_concat takes up to 64 inputs */

int dj_model_densenet_bc_sized(dj_graph **out, int depth, int growth, int classes, int h, int w, dj_rng *rng) {
    *out = NULL;
    if (depth < 10 || (depth - 4) % 6 || (depth - 4) / 6 > MAX_LAYERS)
        return dj_error(DJ_EINVAL, "densenet: depth %d is not 6n+4 with 1 <= n <= %d (40, 52, 100, ...)", depth,
                        MAX_LAYERS);
    if (growth < 1 || classes < 1) return dj_error(DJ_EINVAL, "densenet: growth %d, classes %d", growth, classes);
    int n = (depth - 4) / 6;
    dj_graph *g;
    int rc = dj_graph_create(&g, h, w, 3), cur;
    if (rc) return dj_error(rc, "densenet: %s", dj_last_error());
    char name[96];
    int pieces[MAX_LAYERS + 1];
    int channels = 2 * growth;
    if ((cur = dj_graph_conv(g, 0, "features.conv0", channels, 3, 1, 1, 0)) < 0) goto fail;
    for (int b = 1; b <= 3; b++) {
        int np = 0;
        pieces[np++] = cur;
        for (int i = 1; i <= n; i++) {
            int x = np == 1 ? pieces[0] : dj_graph_concat(g, pieces, np);
            if ((cur = x) < 0) goto fail;
            snprintf(name, sizeof name, "features.denseblock%d.denselayer%d.norm1", b, i);
            if ((cur = dj_graph_bn(g, cur, name, 1)) < 0) goto fail;
            snprintf(name, sizeof name, "features.denseblock%d.denselayer%d.conv1", b, i);
            if ((cur = dj_graph_conv(g, cur, name, 4 * growth, 1, 1, 0, 0)) < 0) goto fail;
            snprintf(name, sizeof name, "features.denseblock%d.denselayer%d.norm2", b, i);
            if ((cur = dj_graph_bn(g, cur, name, 1)) < 0) goto fail;
            snprintf(name, sizeof name, "features.denseblock%d.denselayer%d.conv2", b, i);
            if ((cur = dj_graph_conv(g, cur, name, growth, 3, 1, 1, 0)) < 0) goto fail;
            pieces[np++] = cur;
        }
        if ((cur = dj_graph_concat(g, pieces, np)) < 0) goto fail;
        channels += n * growth;
        if (b < 3) {
            snprintf(name, sizeof name, "features.transition%d.norm", b);
            if ((cur = dj_graph_bn(g, cur, name, 1)) < 0) goto fail;
            channels /= 2;
            snprintf(name, sizeof name, "features.transition%d.conv", b);
            if ((cur = dj_graph_conv(g, cur, name, channels, 1, 1, 0, 0)) < 0) goto fail;
            if ((cur = dj_graph_avgpool(g, cur, 2, 2, 0)) < 0) goto fail;
        }
    }
    if ((cur = dj_graph_bn(g, cur, "features.norm5", 1)) < 0) goto fail;
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
    return dj_error(rc, "densenet: %s", dj_last_error());
}

int dj_model_densenet_bc_cifar(dj_graph **out, int depth, int growth, int classes, dj_rng *rng) {
    return dj_model_densenet_bc_sized(out, depth, growth, classes, 32, 32, rng);
}
