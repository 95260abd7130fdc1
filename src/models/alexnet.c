/* AlexNet-style CIFAR-10 network (Krizhevsky et al. 2012, in the usual
 * 32x32 adaptation: five convolutions, three max pools, no large fully
 * connected layers) with batch normalisation after every convolution and
 * global average pooling + one linear layer for class activation maps.
 *
 *   features.0   conv 5x5  3->64  (32x32)  + features.1 BN + ReLU
 *                max pool 3/2 pad 1 -> 16x16          (overlapping, as AlexNet)
 *   features.4   conv 3x3  64->128 (16x16) + features.5 BN + ReLU
 *                max pool 3/2 pad 1 -> 8x8
 *   features.8   conv 3x3 128->192 (8x8)   + features.9 BN + ReLU
 *   features.11  conv 3x3 192->128 (8x8)   + features.12 BN + ReLU
 *                max pool 3/2 pad 1 -> 4x4
 *   features.15  conv 3x3 128->128 (4x4)   + features.16 BN + ReLU
 *   global average pool, classifier: linear 128 -> classes
 *
 * AlexNet's third pool sits after conv5, in front of the classifier; here
 * it moves in front of conv5 so that global average pooling directly
 * follows the last conv + BN + ReLU (CAM = weighted sum of conv5's maps,
 * at 4x4). docs/models.md has the parameter and FLOP counts.
 *
 * Other input sizes (dj_model_build_sized): the three stride-2 pools give
 * a stride of 8, so an h x w input (multiples of 8) has h/8 x w/8 last
 * feature maps; the parameters are the same at every size. */
#include "dmvjnd/models.h"
#include "models/plain.h"
#include "models/sized.h"

int dj_model_alexnet_sized(dj_graph **out, int classes, int h, int w, dj_rng *rng) {
    static const dj_plain_layer layers[] = {
        {64, 5, 0, 0},  {0, 3, 2, 1}, /* conv1, pool1 */
        {128, 3, 0, 0}, {0, 3, 2, 1}, /* conv2, pool2 */
        {192, 3, 0, 0},               /* conv3 */
        {128, 3, 0, 0}, {0, 3, 2, 1}, /* conv4, pool3 */
        {128, 3, 0, 0},               /* conv5 */
    };
    return dj_model_plain_cnn(out, "alexnet", layers, (int)(sizeof layers / sizeof *layers), classes, h, w, rng);
}

int dj_model_alexnet_cifar(dj_graph **out, int classes, dj_rng *rng) {
    return dj_model_alexnet_sized(out, classes, 32, 32, rng);
}
