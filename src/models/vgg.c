/* VGG-11 with batch normalisation (Simonyan & Zisserman 2015, config "A";
 * BN after every convolution, as torchvision's vgg11_bn), adapted to 32x32
 * CIFAR-10 images:
 *   - widths reduced to 48-96-192-256 (VGG-11: 64-128-256-512), so that the
 *     four JND classifiers together stay within the compute budget;
 *   - the last two max pools removed, so the last feature maps are 4x4
 *     (with all five pools they would be 1x1 and a class activation map
 *     would have no spatial extent);
 *   - the three large fully connected layers replaced by global average
 *     pooling + one linear layer (CAM).
 *
 *   conv3x3 48 (32x32), pool, conv 96 (16x16), pool, conv 192, conv 192
 *   (8x8), pool, conv 256 x 4 (4x4), GAP, linear 256 -> classes.
 *
 * Names as torchvision's VGG: features.<i> (conv, BN), classifier.
 *
 * Other input sizes (dj_model_build_sized): the three remaining 2x2 pools
 * give a stride of 8, so an h x w input (multiples of 8) has h/8 x w/8 last
 * feature maps; the parameters are the same at every size. */
#include "dmvjnd/models.h"
#include "models/plain.h"
#include "models/sized.h"

int dj_model_vgg11bn_sized(dj_graph **out, int classes, int h, int w, dj_rng *rng) {
    static const dj_plain_layer layers[] = {
        {48, 3, 0, 0},  {0, 2, 2, 0},                 /* stage 1, 32x32 */
        {96, 3, 0, 0},  {0, 2, 2, 0},                 /* stage 2, 16x16 */
        {192, 3, 0, 0}, {192, 3, 0, 0}, {0, 2, 2, 0}, /* stage 3, 8x8 */
        {256, 3, 0, 0}, {256, 3, 0, 0},               /* stage 4, 4x4 (pool 4 removed) */
        {256, 3, 0, 0}, {256, 3, 0, 0},               /* stage 5, 4x4 (pool 5 removed) */
    };
    return dj_model_plain_cnn(out, "vgg11bn", layers, (int)(sizeof layers / sizeof *layers), classes, h, w, rng);
}

int dj_model_vgg11bn_cifar(dj_graph **out, int classes, dj_rng *rng) {
    return dj_model_vgg11bn_sized(out, classes, 32, 32, rng);
}
