/* Convolution and transposed convolution: the public dj_conv_* API.
 *
 * This file checks descriptors and tensor shapes and says precisely what is
 * wrong; the oneDNN work (primitives, layouts, caches) lives in
 * src/backend/dnnl.c behind src/backend/dnnl_conv.h. Convolutions with
 * desc.winograd on 3x3 stride-1 pad-1 layers run forward, backward-data and
 * backward-weights on the library's own Winograd kernel (src/nn/winograd.c). */
#include <limits.h>
#include <stdint.h>

#include "backend/dnnl_conv.h"
#include "dmvjnd/core.h"
#include "dmvjnd/tensor.h"
#include "nn/conv_path.h"
#include "nn/winograd.h"

struct dj_conv {
    dj_conv_desc d;
    dj_bconv *impl;         /* oneDNN: the passes the Winograd kernel does not run */
    dj_wino *wino;          /* src/nn/winograd.c, or NULL                          */
    int wino_fwd, wino_bwd; /* forward / backward-data run on `wino`               */
    int wino_bww;           /* backward-weights runs on `wino`                     */
};

/* The layers src/nn/winograd.c takes (see nn.h, dj_conv_desc.winograd).
 * Each pass needs >= 8 input channels (cin forward, cout backward-data):
 * with fewer, padding to 8 (AVX2) or 16 (AVX-512) SIMD lanes wastes most
 * of the Winograd work and oneDNN's direct kernel is faster (measured 3-4 ->
 * 16 channels: 0.5x; VGG-11-BN's 3 -> 48 forward: 0.6x AVX2, 0.5x AVX-512).
 * The path "direct" (include/dmvjnd/conv_path.h) turns the kernel off. */
static int use_own_winograd(const dj_conv_desc *d, dj_conv_path_id path) {
    return path != DJ_CONV_PATH_DIRECT && d->winograd && !d->transposed && d->k == 3 && d->stride == 1 &&
           d->pad == 1;
}

/* Bounds far above any real network; they keep every size computation
 * (output shape, weight count) far from int overflow. */
#define MAX_CHANNELS (1 << 20)
#define MAX_GEOM 4096

static const char *kind(const dj_conv_desc *d) { return d->transposed ? "transposed conv" : "conv"; }

static int check_range(const dj_conv_desc *d, const char *name, int v, int lo, int hi) {
    if (v < lo || v > hi)
        return dj_error(DJ_EINVAL, "%s descriptor: %s = %d, must be in [%d, %d]", kind(d), name, v, lo, hi);
    return DJ_OK;
}

static int check_desc(const dj_conv_desc *d) {
    if (!d) return dj_error(DJ_EINVAL, "conv descriptor is NULL");
    int rc = check_range(d, "cin", d->cin, 1, MAX_CHANNELS);
    if (rc == DJ_OK) rc = check_range(d, "cout", d->cout, 1, MAX_CHANNELS);
    if (rc == DJ_OK) rc = check_range(d, "kernel size k", d->k, 1, MAX_GEOM);
    if (rc == DJ_OK) rc = check_range(d, "stride", d->stride, 1, MAX_GEOM);
    if (rc == DJ_OK) rc = check_range(d, "pad", d->pad, 0, MAX_GEOM);
    if (rc != DJ_OK) return rc;
    if (!d->transposed && d->out_pad != 0)
        return dj_error(DJ_EINVAL, "conv descriptor: out_pad = %d, but out_pad is only for transposed convolutions",
                        d->out_pad);
    /* PyTorch's rule: output_padding must be smaller than the stride. */
    if (d->transposed && (d->out_pad < 0 || d->out_pad >= d->stride))
        return dj_error(DJ_EINVAL, "transposed conv descriptor: out_pad = %d, must be >= 0 and < stride = %d",
                        d->out_pad, d->stride);
    return DJ_OK;
}

static long long out_size(const dj_conv_desc *d, int in) {
    if (d->transposed) return (long long)(in - 1) * d->stride - 2LL * d->pad + d->k + d->out_pad;
    long long span = (long long)in + 2LL * d->pad - d->k;
    return span < 0 ? 0 : span / d->stride + 1; /* C division truncates: test the sign first */
}

int dj_conv_out_shape(const dj_conv_desc *d, int h, int w, int *oh, int *ow) {
    int rc = check_desc(d);
    if (rc != DJ_OK) return rc;
    if (h < 1 || w < 1) return dj_error(DJ_EINVAL, "%s: input size %dx%d has an empty dimension", kind(d), h, w);
    long long ohl = out_size(d, h), owl = out_size(d, w);
    if (ohl < 1 || owl < 1)
        return dj_error(DJ_EINVAL, "%s: input %dx%d gives an empty output (%lldx%lld) with k %d, stride %d, pad %d",
                        kind(d), h, w, ohl, owl, d->k, d->stride, d->pad);
    if (ohl > INT_MAX || owl > INT_MAX)
        return dj_error(DJ_EINVAL, "%s: input %dx%d gives a too large output (%lldx%lld)", kind(d), h, w, ohl, owl);
    if (oh) *oh = (int)ohl;
    if (ow) *ow = (int)owl;
    return DJ_OK;
}

size_t dj_conv_weight_count(const dj_conv_desc *d) {
    if (!d) return 0;
    return (size_t)d->cout * (size_t)d->cin * (size_t)d->k * (size_t)d->k;
}

int dj_conv_create(dj_conv **out, const dj_conv_desc *d) {
    if (!out) return dj_error(DJ_EINVAL, "dj_conv_create: out is NULL");
    *out = NULL;
    int rc = check_desc(d);
    if (rc != DJ_OK) return rc;
    dj_conv *c = dj_calloc(sizeof *c);
    if (!c) return dj_error(DJ_ENOMEM, "cannot allocate a convolution");
    c->d = *d;
    dj_conv_desc bd = *d;
    /* The process-wide path (include/dmvjnd/conv_path.h): "direct" keeps
     * every pass of every layer on oneDNN's direct kernel. */
    dj_conv_path_id path;
    rc = dj_conv_path_get(&path);
    if (rc != DJ_OK) {
        dj_free(c);
        return rc;
    }
    if (path == DJ_CONV_PATH_DIRECT) bd.winograd = 0;
    if (use_own_winograd(d, path)) {
        c->wino_fwd = d->cin >= 8;
        c->wino_bwd = d->cout >= 8;
        c->wino_bww = d->cin >= 8 && d->cout >= 8 && !d->frozen;
        if (c->wino_fwd || c->wino_bwd || c->wino_bww) {
            rc = dj_wino_create(&c->wino, d->cin, d->cout, d->pad, d->frozen);
            if (rc != DJ_OK) {
                dj_free(c);
                return rc;
            }
        }
        bd.winograd = 0; /* the other passes on oneDNN's direct kernel */
    }
    rc = dj_bconv_create(&c->impl, &bd);
    if (rc != DJ_OK) {
        dj_wino_destroy(c->wino);
        dj_free(c);
        return rc;
    }
    *out = c;
    return DJ_OK;
}

void dj_conv_destroy(dj_conv *c) {
    if (!c) return;
    dj_bconv_destroy(c->impl);
    dj_wino_destroy(c->wino);
    dj_free(c);
}

const dj_conv_desc *dj_conv_get_desc(const dj_conv *c) { return c ? &c->d : NULL; }

static int check_tensor(const char *fn, const char *name, const dj_tensor *t) {
    if (!t) return dj_error(DJ_EINVAL, "%s: %s is NULL", fn, name);
    if (!t->data) return dj_error(DJ_EINVAL, "%s: %s has no data", fn, name);
    if (t->n < 1 || t->h < 1 || t->w < 1 || t->c < 1)
        return dj_error(DJ_EINVAL, "%s: %s shape %dx%dx%dx%d has an empty dimension", fn, name, t->n, t->h, t->w, t->c);
    return DJ_OK;
}

/* The input-side tensor `in` (x or dx) must have cin channels, and `out`
 * (y or dy) must be its convolution output: same batch, output size, cout. */
static int check_pair(const dj_conv *c, const char *fn, const char *in_name, const dj_tensor *in, const char *out_name,
                      const dj_tensor *out) {
    const dj_conv_desc *d = &c->d;
    int rc = check_tensor(fn, in_name, in);
    if (rc == DJ_OK) rc = check_tensor(fn, out_name, out);
    if (rc != DJ_OK) return rc;
    if (in->c != d->cin)
        return dj_error(DJ_EINVAL, "%s: %s has %d channels but the %s has cin = %d", fn, in_name, in->c, kind(d),
                        d->cin);
    int oh, ow;
    rc = dj_conv_out_shape(d, in->h, in->w, &oh, &ow);
    if (rc != DJ_OK) return rc;
    if (out->n != in->n || out->h != oh || out->w != ow || out->c != d->cout)
        return dj_error(DJ_EINVAL, "%s: %s is %dx%dx%dx%d (NHWC) but %s %dx%dx%dx%d needs %dx%dx%dx%d", fn, out_name,
                        out->n, out->h, out->w, out->c, in_name, in->n, in->h, in->w, in->c, in->n, oh, ow, d->cout);
    const char *a = (const char *)in->data, *b = (const char *)out->data;
    size_t na = dj_tensor_numel(in) * sizeof(float), nb = dj_tensor_numel(out) * sizeof(float);
    if ((uintptr_t)a < (uintptr_t)b + nb && (uintptr_t)b < (uintptr_t)a + na)
        return dj_error(DJ_EINVAL, "%s: %s and %s overlap in memory (a convolution cannot run in place)", fn, in_name,
                        out_name);
    return DJ_OK;
}

int dj_conv_forward(dj_conv *c, const dj_tensor *x, const float *w, const float *b, dj_tensor *y) {
    static const char fn[] = "dj_conv_forward";
    if (!c) return dj_error(DJ_EINVAL, "%s: conv is NULL", fn);
    int rc = check_pair(c, fn, "x", x, "y", y);
    if (rc != DJ_OK) return rc;
    if (!w) return dj_error(DJ_EINVAL, "%s: weights w are NULL", fn);
    if (c->d.bias && !b) return dj_error(DJ_EINVAL, "%s: the %s has a bias but b is NULL", fn, kind(&c->d));
    if (!c->d.bias && b)
        return dj_error(DJ_EINVAL, "%s: b is given but the %s was created without bias", fn, kind(&c->d));
    if (c->wino_fwd) return dj_wino_forward(c->wino, x, w, b, y, c->d.post_sum, c->d.post_relu);
    return dj_bconv_forward(c->impl, x, w, b, y);
}

/* Backward passes are of the convolution alone (plus bias), without the
 * fused post-ops: a fused sum passes the gradient through unchanged (the
 * caller routes dy to the residual too), and for a fused ReLU the caller
 * masks dy with y > 0 first (as the graph does for frozen networks). */
static int check_backward(const dj_conv *c, const char *fn) {
    if (!c) return dj_error(DJ_EINVAL, "%s: conv is NULL", fn);
    return DJ_OK;
}

int dj_conv_backward_data(dj_conv *c, const dj_tensor *dy, const float *w, dj_tensor *dx, int accum) {
    static const char fn[] = "dj_conv_backward_data";
    int rc = check_backward(c, fn);
    if (rc != DJ_OK) return rc;
    if (!dx) return DJ_OK; /* input gradient not wanted */
    rc = check_pair(c, fn, "dx", dx, "dy", dy);
    if (rc != DJ_OK) return rc;
    if (!w) return dj_error(DJ_EINVAL, "%s: weights w are NULL", fn);
    if (c->wino_bwd) return dj_wino_backward_data(c->wino, dy, w, dx, accum ? 1 : 0);
    return dj_bconv_backward_data(c->impl, dy, w, dx, accum ? 1 : 0);
}

int dj_conv_backward_weights(dj_conv *c, const dj_tensor *x, const dj_tensor *dy, float *dw, float *db) {
    static const char fn[] = "dj_conv_backward_weights";
    int rc = check_backward(c, fn);
    if (rc != DJ_OK) return rc;
    if (c->d.frozen) return dj_error(DJ_EINVAL, "%s: the %s is frozen (its weights get no gradient)", fn, kind(&c->d));
    if (!c->d.bias && db)
        return dj_error(DJ_EINVAL, "%s: db is given but the %s was created without bias", fn, kind(&c->d));
    rc = check_pair(c, fn, "x", x, "dy", dy);
    if (rc != DJ_OK) return rc;
    if (!dw && !db) return DJ_OK; /* nothing wanted */
    if (c->wino_bww && dw) return dj_wino_backward_weights(c->wino, x, dy, dw, db);
    return dj_bconv_backward_weights(c->impl, x, dy, dw, db);
}

void dj_conv_weights_changed(dj_conv *c) {
    if (!c) return;
    dj_bconv_weights_changed(c->impl);
    dj_wino_weights_changed(c->wino);
}

const char *dj_conv_impl_name(const dj_conv *c, int pass) {
    if (!c) return "";
    if ((pass == DJ_CONV_PASS_FWD && c->wino_fwd) || (pass == DJ_CONV_PASS_BWD_DATA && c->wino_bwd) ||
        (pass == DJ_CONV_PASS_BWD_WEIGHTS && c->wino_bww))
        return dj_wino_impl_name(c->wino);
    return dj_bconv_impl_name(c->impl, pass);
}
