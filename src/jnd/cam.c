/* Class activation maps (Zhou et al. 2016); see dmvjnd/cam.h. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "dmvjnd/cam.h"
#include "dmvjnd/dmvjnd.h"
#include "dmvjnd/classifier.h"

static int kind_is(const dj_graph *g, int node, const char *kind) {
    const char *k = dj_graph_node_kind(g, node);
    return k && !strcmp(k, kind);
}

int dj_cam_find(const dj_graph *g, dj_cam_layout *L) {
    if (!g || !L) return dj_error(DJ_EINVAL, "cam: NULL graph or layout");
    memset(L, 0, sizeof *L);
    int out = dj_graph_output_node(g);
    if (!kind_is(g, out, "linear"))
        return dj_error(DJ_EINVAL, "cam: the network ends in a '%s' layer, not a linear one after global average "
                                   "pooling, so it has no class activation maps",
                        dj_graph_node_kind(g, out));
    int pool = dj_graph_node_input(g, out);
    while (pool > 0 && kind_is(g, pool, "dropout")) pool = dj_graph_node_input(g, pool);
    if (pool <= 0 || !kind_is(g, pool, "gap"))
        return dj_error(DJ_EINVAL, "cam: the linear output layer reads a '%s' layer, not global average pooling, so "
                                   "the network has no class activation maps",
                        pool >= 0 ? dj_graph_node_kind(g, pool) : "missing");
    int feat = dj_graph_node_input(g, pool);
    const dj_param *w = dj_graph_node_param(g, out, 0);
    int c, k;
    dj_graph_node_shape(g, feat, &L->h, &L->w, &c);
    dj_graph_node_shape(g, out, NULL, NULL, &k);
    if (!w || w->ndim != 2 || w->shape[0] != k || w->shape[1] != c)
        return dj_error(DJ_EINTERNAL, "cam: the linear layer's weight is not %d x %d", k, c);
    L->feature_node = feat;
    L->pool_node = pool;
    L->linear_node = out;
    L->c = c;
    L->classes = k;
    L->weight = w->data;
    return DJ_OK;
}

void dj_cam_upsample(const float *src, int h, int w, float *dst, int oh, int ow) {
    /* torch's upsample_bilinear2d, align_corners=False: scale = in / out,
     * source = (dst + 0.5) * scale - 0.5 clamped at 0; the second neighbour
     * is the first one at the last row/column. */
    const float sh = (float)h / (float)oh, sw = (float)w / (float)ow;
    for (int Y = 0; Y < oh; Y++) {
        float ry = sh * ((float)Y + 0.5f) - 0.5f;
        if (ry < 0) ry = 0;
        int y0 = (int)ry, dy = y0 < h - 1 ? 1 : 0;
        float ly1 = ry - (float)y0, ly0 = 1.0f - ly1;
        for (int X = 0; X < ow; X++) {
            float rx = sw * ((float)X + 0.5f) - 0.5f;
            if (rx < 0) rx = 0;
            int x0 = (int)rx, dx = x0 < w - 1 ? 1 : 0;
            float lx1 = rx - (float)x0, lx0 = 1.0f - lx1;
            const float *r0 = src + (size_t)y0 * w + x0, *r1 = src + (size_t)(y0 + dy) * w + x0;
            dst[(size_t)Y * ow + X] = ly0 * (lx0 * r0[0] + lx1 * r0[dx]) + ly1 * (lx0 * r1[0] + lx1 * r1[dx]);
        }
    }
}

void dj_cam_normalize(float *map, size_t n) {
    if (!n) return;
    float lo = map[0];
    for (size_t i = 1; i < n; i++)
        if (map[i] < lo) lo = map[i];
    float hi = 0;
    for (size_t i = 0; i < n; i++) {
        map[i] -= lo;
        if (map[i] > hi) hi = map[i];
    }
    if (!(hi > 0)) {
        memset(map, 0, n * sizeof *map);
        return;
    }
    for (size_t i = 0; i < n; i++) map[i] /= hi;
}

int dj_cam_merge(const float *const *cams, int count, size_t n, float *out) {
    if (!cams || !out || count < 1) return dj_error(DJ_EINVAL, "cam merge: %d maps (need at least one)", count);
    for (int k = 0; k < count; k++)
        if (!cams[k]) return dj_error(DJ_EINVAL, "cam merge: map %d is NULL", k);
    const long long N = (long long)n;
#pragma omp parallel for schedule(static) if (n > 32768)
    for (long long i = 0; i < N; i++) {
        float s = 0;
        for (int k = 0; k < count; k++) s += cams[k][i];
        out[i] = s / (float)count;
    }
    return DJ_OK;
}

static int cam_run(dj_graph *g, const dj_tensor *x, const int32_t *classes, float *cams, int32_t *labels,
                   float *conf) {
    if (!g || !x || !x->data || !cams) return dj_error(DJ_EINVAL, "cam: NULL argument");
    dj_cam_layout L;
    int rc = dj_cam_find(g, &L);
    if (rc) return rc;
    int32_t *pred = labels ? labels : malloc((size_t)(x->n > 0 ? x->n : 1) * sizeof *pred);
    /* every image's low-resolution map, so the images can go in parallel */
    float *low = malloc((size_t)(x->n > 0 ? x->n : 1) * L.h * L.w * sizeof *low);
    if (!pred || !low) {
        rc = dj_error(DJ_ENOMEM, "cam: out of memory");
        goto out;
    }
    if ((rc = dj_classify_batch(g, x, pred, conf, NULL))) goto out;
    const dj_tensor *F = dj_graph_node_output(g, L.feature_node);
    if (!F || F->n != x->n || F->h != L.h || F->w != L.w || F->c != L.c) {
        rc = dj_error(DJ_EINTERNAL, "cam: feature maps of node %d are not available", L.feature_node);
        goto out;
    }
    for (int i = 0; i < x->n; i++) {
        int k = classes ? classes[i] : pred[i];
        if (k < 0 || k >= L.classes) {
            rc = dj_error(DJ_EINVAL, "cam: class %d of image %d is not in 0..%d", k, i, L.classes - 1);
            goto out;
        }
    }
    const size_t hw = (size_t)L.h * L.w, HW = (size_t)x->h * x->w;
    /* Each image's map is computed alone (same sums in the same order
     * whatever the thread count). */
#pragma omp parallel for schedule(static) if ((size_t)x->n * (hw * L.c + HW) > 32768)
    for (int i = 0; i < x->n; i++) {
        const int k = classes ? classes[i] : pred[i];
        const float *wk = L.weight + (size_t)k * L.c;
        const float *f = F->data + (size_t)i * hw * L.c;
        float *lo = low + (size_t)i * hw;
        for (size_t p = 0; p < hw; p++) {
            float s = 0;
            for (int c = 0; c < L.c; c++) s += wk[c] * f[p * L.c + c];
            lo[p] = s;
        }
        float *dst = cams + (size_t)i * HW;
        dj_cam_upsample(lo, L.h, L.w, dst, x->h, x->w);
        dj_cam_normalize(dst, HW);
    }
out:
    if (pred != labels) free(pred);
    free(low);
    return rc;
}

int dj_cam_compute(dj_graph *g, const dj_tensor *x, float *cams, int32_t *labels, float *conf) {
    return cam_run(g, x, NULL, cams, labels, conf);
}

int dj_cam_compute_for(dj_graph *g, const dj_tensor *x, const int32_t *classes, float *cams, int32_t *labels,
                       float *conf) {
    if (!classes) return dj_error(DJ_EINVAL, "cam: NULL classes");
    return cam_run(g, x, classes, cams, labels, conf);
}
