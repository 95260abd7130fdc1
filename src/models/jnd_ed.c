/* The DMV-JND E-D autoencoder (Jin et al., Fig. 4, reconstructed as in
 * docs/method.md): convolution + max-pooling encoder, stride-2 transposed
 * convolution decoder, tanh output. Parameter names are the state_dict keys
 * of tools/torch/jnd.py's JndEd (two nn.Sequential, "enc" and "dec"):
 *
 *   enc: 0 conv  1 BN  2 LReLU  3 conv  4 BN  5 LReLU  6 pool  7 conv  8 BN
 *        9 LReLU  10 pool  11 conv  12 BN  13 LReLU  14 pool
 *   dec: 0 deconv  1 BN  2 LReLU  3 deconv  4 BN  5 LReLU  6 deconv  7 BN
 *        8 LReLU  9 conv  10 tanh
 */
#include <math.h>
#include <stdio.h>

#include "dmvjnd/dmvjnd.h"
#include "dmvjnd/jnd.h"
#include "dmvjnd/models.h"

/* Every builder call returns a node id or a negative error code. */
#define TRY(expr)                                                                                                     \
    do {                                                                                                              \
        cur = (expr);                                                                                                 \
        if (cur < 0) goto fail;                                                                                       \
    } while (0)

/* Widths at multiplier 1 (the public reading of Fig. 4). */
static const int base_widths[7] = {64, 128, 256, 64, 256, 128, 64};

dj_jnd_ed_config dj_jnd_ed_defaults(void) {
    dj_jnd_ed_config c;
    c.width = 1.0f;
    c.slope = 0.01f;
    c.margin_input = 0;
    return c;
}

int dj_jnd_ed_in_channels(const dj_jnd_ed_config *cfg) {
    return DJ_JND_ED_IN_CHANNELS + (cfg && cfg->margin_input ? 1 : 0);
}

int dj_jnd_ed_widths(const dj_jnd_ed_config *cfg, int widths[7]) {
    dj_jnd_ed_config c = cfg ? *cfg : dj_jnd_ed_defaults();
    if (!(c.width > 0.0f && c.width <= 16.0f))
        return dj_error(DJ_EINVAL, "jnd_ed: width multiplier %g must be in (0, 16]", c.width);
    if (!(c.slope >= 0.0f && isfinite(c.slope)))
        return dj_error(DJ_EINVAL, "jnd_ed: LeakyReLU slope %g must be a finite number >= 0", c.slope);
    if (c.margin_input != 0 && c.margin_input != 1)
        return dj_error(DJ_EINVAL, "jnd_ed: margin_input is %d, not 0 or 1", c.margin_input);
    for (int i = 0; i < 7; i++) {
        int v = (int)floor((double)base_widths[i] * c.width + 0.5);
        widths[i] = v < 1 ? 1 : v;
    }
    return DJ_OK;
}

/* Activation after each BN: LeakyReLU, or ReLU fused into the BN when the
 * slope is 0. */
static int bn_act(dj_graph *g, int in, const char *name, float slope) {
    int id = dj_graph_bn(g, in, name, slope == 0.0f);
    if (id < 0 || slope == 0.0f) return id;
    return dj_graph_act(g, id, DJ_ACT_LEAKY_RELU, slope);
}

int dj_model_jnd_ed(dj_graph **out, const dj_jnd_ed_config *cfg, int h, int w, dj_rng *rng) {
    *out = NULL;
    dj_jnd_ed_config c = cfg ? *cfg : dj_jnd_ed_defaults();
    int wd[7];
    int rc = dj_jnd_ed_widths(&c, wd), cur = 0;
    if (rc) return rc;
    if (h < DJ_JND_ED_MULTIPLE || w < DJ_JND_ED_MULTIPLE || h % DJ_JND_ED_MULTIPLE || w % DJ_JND_ED_MULTIPLE)
        return dj_error(DJ_EINVAL,
                        "jnd_ed: input %dx%d: height and width must be positive multiples of %d (three 2x2 max "
                        "pools; pad the image)",
                        h, w, DJ_JND_ED_MULTIPLE);
    dj_graph *g;
    if ((rc = dj_graph_create(&g, h, w, dj_jnd_ed_in_channels(&c)))) return rc;

    /* encoder */
    TRY(dj_graph_conv(g, 0, "enc.0", wd[0], 3, 1, 1, 0));
    TRY(bn_act(g, cur, "enc.1", c.slope));
    TRY(dj_graph_conv(g, cur, "enc.3", wd[1], 3, 1, 1, 0));
    TRY(bn_act(g, cur, "enc.4", c.slope));
    TRY(dj_graph_maxpool(g, cur, 2, 2, 0));
    TRY(dj_graph_conv(g, cur, "enc.7", wd[2], 3, 1, 1, 0));
    TRY(bn_act(g, cur, "enc.8", c.slope));
    TRY(dj_graph_maxpool(g, cur, 2, 2, 0));
    TRY(dj_graph_conv(g, cur, "enc.11", wd[3], 3, 1, 1, 0));
    TRY(bn_act(g, cur, "enc.12", c.slope));
    TRY(dj_graph_maxpool(g, cur, 2, 2, 0));
    /* decoder */
    TRY(dj_graph_deconv(g, cur, "dec.0", wd[4], 2, 2, 0, 0, 0));
    TRY(bn_act(g, cur, "dec.1", c.slope));
    TRY(dj_graph_deconv(g, cur, "dec.3", wd[5], 2, 2, 0, 0, 0));
    TRY(bn_act(g, cur, "dec.4", c.slope));
    TRY(dj_graph_deconv(g, cur, "dec.6", wd[6], 2, 2, 0, 0, 0));
    TRY(bn_act(g, cur, "dec.7", c.slope));
    TRY(dj_graph_conv(g, cur, "dec.9", DJ_JND_ED_OUT_CHANNELS, 3, 1, 1, 1));
    TRY(dj_graph_act(g, cur, DJ_ACT_TANH, 0.0f));

    /* PyTorch's default initialisation (done by finalize), as the twin's
     * freshly constructed modules have it. */
    if ((rc = dj_graph_finalize(g, rng))) goto fail_rc;
    *out = g;
    return DJ_OK;
fail:
    rc = cur;
fail_rc:
    dj_graph_destroy(g);
    return rc;
}

int dj_jnd_stack(const dj_tensor *x, const dj_tensor *c, const float *margin, dj_tensor *xc) {
    if (!x || !c || !xc || !x->data || !c->data || !xc->data) return dj_error(DJ_EINVAL, "jnd_stack: NULL tensor");
    const int C = DJ_JND_ED_IN_CHANNELS + (margin ? 1 : 0);
    if (x->c != 3 || c->c != 1 || xc->c != C || c->n != x->n || c->h != x->h || c->w != x->w || xc->n != x->n ||
        xc->h != x->h || xc->w != x->w)
        return dj_error(DJ_EINVAL,
                        "jnd_stack: x %dx%dx%dx%d, c %dx%dx%dx%d, xc %dx%dx%dx%d (want N x H x W x 3, N x H x W x 1, "
                        "N x H x W x %d)",
                        x->n, x->h, x->w, x->c, c->n, c->h, c->w, c->c, xc->n, xc->h, xc->w, xc->c, C);
    const size_t hw = (size_t)x->h * x->w;
    for (int i = 0; i < x->n; i++)
        for (size_t q = 0; q < hw; q++) {
            size_t p = (size_t)i * hw + q;
            float *dst = xc->data + p * C;
            dst[0] = x->data[p * 3 + 0];
            dst[1] = x->data[p * 3 + 1];
            dst[2] = x->data[p * 3 + 2];
            dst[3] = c->data[p];
            if (margin) dst[4] = margin[i];
        }
    return DJ_OK;
}
