/* Generating the DMV-JND of 8-bit images with a trained model: padding,
 * CAM, E-D, storing x + e, labels before and after. dmvjnd/jnd_generate.h. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dmvjnd/cam.h"
#include "dmvjnd/weights.h"
#include "dmvjnd/cifar10.h"
#include "dmvjnd/dmvjnd.h"
#include "dmvjnd/image.h"
#include "dmvjnd/jnd_generate.h"
#include "dmvjnd/models.h"

struct dj_jnd_generator {
    dj_jnd_model model;
    char *model_path;
    int count, stride;
    char *paths[DJ_JND_MAX_CLASSIFIERS];
    char tags[DJ_JND_MAX_CLASSIFIERS][DJ_CLASSIFIER_TAG_SIZE];
    /* Graphs for the current padded size ph x pw (0 x 0: none yet). The
     * model's own E-D is used when the size is the model's. */
    int ph, pw;
    dj_graph *ed; /* owned unless == model.ed */
    dj_classifier cls[DJ_JND_MAX_CLASSIFIERS];
    /* Every call runs in passes of at most `batch` images through buffers
     * made once for that many images of ph x pw (ws_batch: their capacity;
     * 0: none yet), so a stream of calls allocates nothing after the first
     * and every graph sees the same few batch sizes (its arena and oneDNN's
     * primitives are made once per batch size). */
    int batch, ws_batch;
    dj_tensor x, xc;                     /* normalised padded images; E-D input   */
    float *maps[DJ_JND_MAX_CLASSIFIERS]; /* each classifier's CAM, batch*ph*pw   */
    float *c, *ep, *margin;              /* merged CAM; cropped e; margin input  */
    float *log_probs;                    /* log-softmax on x, classifier-major,
                                            batch*DJ_JND_RESULT_CLASSES each     */
    int classes[DJ_JND_MAX_CLASSIFIERS]; /* each classifier's, from its logits   */
    float *margins, *hat_margins;        /* p1 - p2 on x; own label's on x_hat:
                                            classifier-major, count*batch each */
    uint8_t *xh;                         /* stored x + e                         */
    int32_t *before, *after, *tmp;       /* labels: batch*count, ..., batch      */
};

static int gcd(int a, int b) { return b ? gcd(b, a % b) : a; }

static char *dup_str(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

static void drop_workspace(dj_jnd_generator *g) {
    dj_tensor_free(&g->x);
    dj_tensor_free(&g->xc);
    for (int k = 0; k < DJ_JND_MAX_CLASSIFIERS; k++) {
        free(g->maps[k]);
        g->maps[k] = NULL;
    }
    free(g->c);
    free(g->ep);
    free(g->margin);
    free(g->margins);
    free(g->hat_margins);
    free(g->log_probs);
    free(g->xh);
    free(g->before);
    free(g->after);
    free(g->tmp);
    g->c = g->ep = g->margin = g->margins = g->hat_margins = g->log_probs = NULL;
    g->xh = NULL;
    g->before = g->after = g->tmp = NULL;
    g->ws_batch = 0;
}

static void drop_graphs(dj_jnd_generator *g) {
    drop_workspace(g);
    if (g->ed && g->ed != g->model.ed) dj_graph_destroy(g->ed);
    g->ed = NULL;
    for (int k = 0; k < g->count; k++) dj_classifier_free(&g->cls[k]);
    g->ph = g->pw = 0;
}

/* Buffers for g->batch images of the current padded size (graphs built). */
static int ensure_workspace(dj_jnd_generator *g) {
    if (g->ws_batch == g->batch) return DJ_OK;
    drop_workspace(g);
    const size_t B = (size_t)g->batch, PHW = (size_t)g->ph * g->pw, K = (size_t)g->count;
    int rc = dj_tensor_alloc(&g->x, g->batch, g->ph, g->pw, 3);
    if (!rc) rc = dj_tensor_alloc(&g->xc, g->batch, g->ph, g->pw, dj_jnd_ed_in_channels(&g->model.ed_cfg));
    if (rc) {
        drop_workspace(g);
        return rc;
    }
    int ok = 1;
    for (size_t k = 0; k < K; k++) ok &= (g->maps[k] = malloc(B * PHW * sizeof(float))) != NULL;
    ok &= (g->c = malloc(B * PHW * sizeof *g->c)) != NULL;
    ok &= (g->ep = malloc(B * PHW * 3 * sizeof *g->ep)) != NULL;
    ok &= (g->margin = malloc(B * sizeof *g->margin)) != NULL;
    ok &= (g->margins = malloc(B * K * sizeof *g->margins)) != NULL;
    ok &= (g->hat_margins = malloc(B * K * sizeof *g->hat_margins)) != NULL;
    ok &= (g->log_probs = malloc(B * K * DJ_JND_RESULT_CLASSES * sizeof *g->log_probs)) != NULL;
    ok &= (g->xh = malloc(B * PHW * 3)) != NULL;
    ok &= (g->before = malloc(B * K * sizeof *g->before)) != NULL;
    ok &= (g->after = malloc(B * K * sizeof *g->after)) != NULL;
    ok &= (g->tmp = malloc(B * sizeof *g->tmp)) != NULL;
    if (!ok) {
        drop_workspace(g);
        return dj_error(DJ_ENOMEM, "jnd generator: out of memory for %d images of %dx%d", g->batch, g->ph, g->pw);
    }
    g->ws_batch = g->batch;
    return DJ_OK;
}

void dj_jnd_generator_destroy(dj_jnd_generator *g) {
    if (!g) return;
    drop_graphs(g);
    dj_jnd_model_free(&g->model);
    free(g->model_path);
    for (int k = 0; k < g->count; k++) free(g->paths[k]);
    free(g);
}

/* Graphs for ph x pw inputs: the E-D (built at that size, the model file's
 * weights, frozen) and every classifier (dj_classifier_load_sized). */
static int ensure_size(dj_jnd_generator *g, int ph, int pw) {
    if (g->ph == ph && g->pw == pw) return ensure_workspace(g);
    drop_graphs(g);
    int rc = DJ_OK;
    if (ph == g->model.h && pw == g->model.w) {
        g->ed = g->model.ed;
    } else {
        dj_rng rng;
        dj_rng_seed(&rng, 0);
        rc = dj_model_jnd_ed(&g->ed, &g->model.ed_cfg, ph, pw, &rng);
        if (!rc) rc = dj_weights_load(g->model_path, g->ed, "jnd_ed");
        if (!rc) rc = dj_graph_freeze(g->ed);
    }
    for (int k = 0; k < g->count && !rc; k++) {
        rc = dj_classifier_load_sized(g->paths[k], 1, ph, pw, &g->cls[k]);
        if (!rc) {
            dj_cam_layout L;
            if (dj_cam_find(g->cls[k].graph, &L))
                rc = dj_error(DJ_EINVAL, "%s: %s", g->paths[k], dj_last_error());
        }
    }
    if (rc) {
        drop_graphs(g);
        return rc;
    }
    g->ph = ph;
    g->pw = pw;
    return ensure_workspace(g);
}

int dj_jnd_generator_create(dj_jnd_generator **out, const char *model_path, const char *const *classifiers,
                            int count) {
    if (!out || !model_path) return dj_error(DJ_EINVAL, "jnd generator: NULL argument");
    *out = NULL;
    dj_jnd_generator *g = calloc(1, sizeof *g);
    if (!g) return dj_error(DJ_ENOMEM, "jnd generator: out of memory");
    int rc = dj_jnd_model_load(model_path, &g->model);
    if (rc) {
        free(g);
        return rc;
    }
    if (!(g->model_path = dup_str(model_path))) rc = dj_error(DJ_ENOMEM, "jnd generator: out of memory");
    const char *const *names = classifiers ? classifiers : (const char *const *)g->model.classifiers;
    int n = classifiers ? count : g->model.nclassifiers;
    if (!rc && (n < 1 || n > DJ_JND_MAX_CLASSIFIERS))
        rc = dj_error(DJ_EINVAL, "jnd generator: %d classifiers (1..%d)", n, DJ_JND_MAX_CLASSIFIERS);
    for (int k = 0; !rc && k < n; k++) {
        if (!names[k] || !*names[k]) rc = dj_error(DJ_EINVAL, "jnd generator: classifier %d has an empty path", k + 1);
        else if (!(g->paths[k] = dup_str(names[k]))) rc = dj_error(DJ_ENOMEM, "jnd generator: out of memory");
        else g->count = k + 1;
    }
    /* Load at 32x32 once, through the JND training's loader: it checks the
     * shape, the CAM and the normalisation against the model's. */
    dj_classifier tmp[DJ_JND_MAX_CLASSIFIERS];
    int loaded = 0;
    if (!rc) rc = dj_jnd_classifiers_load(tmp, (const char *const *)g->paths, g->count, NULL, &g->model.norm);
    if (!rc) loaded = 1;
    int stride = DJ_JND_ED_MULTIPLE;
    for (int k = 0; !rc && k < g->count; k++) {
        int s = 0;
        if (dj_model_stride(tmp[k].arch, &s) || s < 1) {
            rc = dj_error(DJ_EINVAL, "%s: no stride known for architecture '%s'", g->paths[k], tmp[k].arch);
            break;
        }
        stride = stride / gcd(stride, s) * s;
    }
    if (!rc) dj_classifier_tags(tmp, g->count, g->tags);
    if (loaded) dj_jnd_classifiers_free(tmp, g->count);
    g->stride = stride;
    g->batch = DJ_JND_GENERATOR_BATCH;
    if (rc) {
        dj_jnd_generator_destroy(g);
        return rc;
    }
    *out = g;
    return DJ_OK;
}

const dj_jnd_model *dj_jnd_generator_model(const dj_jnd_generator *g) { return g ? &g->model : NULL; }
int dj_jnd_generator_count(const dj_jnd_generator *g) { return g ? g->count : 0; }
const char *dj_jnd_generator_tag(const dj_jnd_generator *g, int k) {
    return g && k >= 0 && k < g->count ? g->tags[k] : "";
}
const char *dj_jnd_generator_path(const dj_jnd_generator *g, int k) {
    return g && k >= 0 && k < g->count ? g->paths[k] : "";
}
int dj_jnd_generator_stride(const dj_jnd_generator *g) { return g ? g->stride : 0; }

int dj_jnd_generator_set_batch(dj_jnd_generator *g, int batch) {
    if (!g) return dj_error(DJ_EINVAL, "jnd generator: NULL generator");
    if (batch < 1 || batch > 100000) return dj_error(DJ_EINVAL, "jnd generator: batch %d is not in 1..100000", batch);
    if (batch != g->batch) drop_workspace(g); /* made again at the next call */
    g->batch = batch;
    return DJ_OK;
}

int dj_jnd_generator_batch(const dj_jnd_generator *g) { return g ? g->batch : 0; }

/* ------------------------------------------------------------ pixel helpers */

/* Loops over pixels run on every thread once there is enough work to pay
 * for waking them (each element is computed alone, so the result does not
 * depend on the thread count). */
#define PAR_MIN 32768

static uint8_t to_u8(float v) {
    if (!(v > 0.f)) return 0; /* also NaN */
    if (v >= 255.f) return 255;
    return (uint8_t)lrintf(v);
}

void dj_jnd_e_to_u8(const float *e, size_t n, float gain, uint8_t *out) {
    for (size_t i = 0; i < n; i++) out[i] = to_u8(128.f + gain * 255.f * e[i]);
}

void dj_jnd_add_u8(const uint8_t *x, const float *e, size_t n, float scale, uint8_t *out) {
    const long long N = (long long)n;
#pragma omp parallel for schedule(static) if (n > PAR_MIN)
    for (long long i = 0; i < N; i++) out[i] = to_u8((float)x[i] + 255.f * scale * e[i]);
}

double dj_psnr_u8(const uint8_t *a, const uint8_t *b, size_t n) {
    double se = 0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)a[i] - b[i];
        se += d * d;
    }
    if (n == 0 || se == 0) return DJ_JND_PSNR_MAX;
    double p = 10.0 * log10(255.0 * 255.0 / (se / (double)n));
    return p > DJ_JND_PSNR_MAX ? DJ_JND_PSNR_MAX : p;
}

/* Normalised n x ph x pw x 3 tensor of n h x w images (8-bit, or floats on
 * the [0, 1] scale when f32 is not NULL), the last row and column
 * replicated into the padding. The 8-bit form is computed exactly as
 * dj_normalize_u8 (torchvision's ToTensor + Normalize), and an 8-bit value
 * v given as the float v / 255.f gives the same bits. */
static void pad_normalize_any(const uint8_t *rgb, const float *f32, int n, int h, int w, int ph, int pw,
                              const dj_jnd_norm *nm, float *x) {
    const long long rows = (long long)n * ph;
#pragma omp parallel for schedule(static) if (rows * pw * 3 > PAR_MIN)
    for (long long r = 0; r < rows; r++) {
        const int i = (int)(r / ph), y = (int)(r % ph);
        size_t row = ((size_t)i * h + (y < h ? y : h - 1)) * w * 3;
        float *dst = x + (size_t)r * pw * 3;
        for (int xx = 0; xx < pw; xx++) {
            size_t p = row + (size_t)(xx < w ? xx : w - 1) * 3;
            for (int c = 0; c < 3; c++) {
                float v = f32 ? f32[p + c] : (float)rgb[p + c] / 255.f;
                dst[xx * 3 + c] = (v - nm->mean[c]) / nm->std[c];
            }
        }
    }
}

static int round_up(int v, int m) { return (v + m - 1) / m * m; }

static int check_images(const dj_jnd_generator *g, const void *rgb, int n, int h, int w, const char *fn) {
    if (!g || !rgb) return dj_error(DJ_EINVAL, "%s: NULL argument", fn);
    if (n < 1 || h < 1 || w < 1 || h > DJ_IMAGE_MAX_SIDE || w > DJ_IMAGE_MAX_SIDE)
        return dj_error(DJ_EINVAL, "%s: %d images of %dx%d", fn, n, h, w);
    return DJ_OK;
}

/* Classifier k's logits of its last forward, checked to hold n images. */
static int last_logits(const dj_jnd_generator *g, int k, int n, const dj_tensor **z) {
    const dj_graph *gr = g->cls[k].graph;
    *z = dj_graph_node_output(gr, dj_graph_output_node(gr));
    if (!*z || !(*z)->data || (*z)->n < n || (*z)->h != 1 || (*z)->w != 1)
        return dj_error(DJ_EINTERNAL, "jnd generator: classifier %d kept no logits", k);
    return DJ_OK;
}

/* Labels of every classifier on the normalised padded batch x; with own
 * (x->n * count labels) also each classifier's margin of its label in own,
 * into hat (count * batch, classifier-major). */
static int classify_padded(dj_jnd_generator *g, const dj_tensor *x, int32_t *labels, const int32_t *own,
                           float *hat) {
    for (int k = 0; k < g->count; k++) {
        int rc = dj_classify_batch(g->cls[k].graph, x, g->tmp, NULL, NULL);
        if (rc) return rc;
        for (int i = 0; i < x->n; i++) labels[(size_t)i * g->count + k] = g->tmp[i];
        if (own) {
            const dj_tensor *z = NULL;
            if ((rc = last_logits(g, k, x->n, &z))) return rc;
            rc = dj_jnd_label_margin(z->data, x->n, z->c, own + k, (size_t)g->count, hat + (size_t)k * g->batch);
            if (rc) return rc;
        }
    }
    return DJ_OK;
}

/* Labels of n images (rgb or f32); with own (n * count labels, image-major)
 * also each classifier's margin of own's label, into hat (n * count,
 * image-major). */
static int classify_any(dj_jnd_generator *g, const uint8_t *rgb, const float *f32, int n, int h, int w,
                        int32_t *labels, const int32_t *own, float *hat) {
    int rc = check_images(g, rgb ? (const void *)rgb : (const void *)f32, n, h, w, "jnd classify");
    if (rc) return rc;
    if (!labels) return dj_error(DJ_EINVAL, "jnd classify: NULL labels");
    const int ph = round_up(h, g->stride), pw = round_up(w, g->stride);
    if ((rc = ensure_size(g, ph, pw))) return rc;
    const size_t img = (size_t)h * w * 3;
    for (int s = 0; !rc && s < n; s += g->batch) {
        const int m = n - s < g->batch ? n - s : g->batch;
        dj_tensor x = dj_tensor_view(g->x.data, m, ph, pw, 3);
        pad_normalize_any(rgb ? rgb + (size_t)s * img : NULL, f32 ? f32 + (size_t)s * img : NULL, m, h, w, ph, pw,
                          &g->model.norm, x.data);
        rc = classify_padded(g, &x, labels + (size_t)s * g->count, own ? own + (size_t)s * g->count : NULL,
                             own ? g->hat_margins : NULL);
        for (int i = 0; !rc && own && i < m; i++)
            for (int k = 0; k < g->count; k++)
                hat[(size_t)(s + i) * g->count + k] = g->hat_margins[(size_t)k * g->batch + i];
    }
    return rc;
}

int dj_jnd_generator_classify(dj_jnd_generator *g, const uint8_t *rgb, int n, int h, int w, int32_t *labels) {
    return classify_any(g, rgb, NULL, n, h, w, labels, NULL, NULL);
}

int dj_jnd_generator_classify_f32(dj_jnd_generator *g, const float *pix, int n, int h, int w, int32_t *labels) {
    return classify_any(g, NULL, pix, n, h, w, labels, NULL, NULL);
}

/* Classifier k's log-softmax on the n images of its last forward (on x),
 * the first DJ_JND_RESULT_CLASSES classes, and its class count. */
static int keep_log_probs(dj_jnd_generator *g, int k, int n) {
    const dj_tensor *z = NULL;
    int rc = last_logits(g, k, n, &z);
    if (rc) return rc;
    float *out = g->log_probs + (size_t)k * g->batch * DJ_JND_RESULT_CLASSES;
    const int keep = z->c < DJ_JND_RESULT_CLASSES ? z->c : DJ_JND_RESULT_CLASSES;
    memset(out, 0, (size_t)n * DJ_JND_RESULT_CLASSES * sizeof *out);
    g->classes[k] = z->c;
    for (int i = 0; !rc && i < n; i++)
        rc = dj_jnd_log_softmax(z->data + (size_t)i * z->c, 1, z->c, keep, out + (size_t)i * DJ_JND_RESULT_CLASSES);
    return rc;
}

/* PSNR, mean |e| and mean |x_hat - x| of one image of n bytes. */
static void image_stats(const uint8_t *x, const uint8_t *xh, const float *e, size_t n, dj_jnd_image_result *r) {
    double se = 0, sd = 0;
    for (size_t p = 0; p < n; p++) {
        se += fabs(255.0 * e[p]);
        sd += abs((int)x[p] - (int)xh[p]);
    }
    r->mean_abs_e = se / (double)n;
    r->mean_abs_diff = sd / (double)n;
    r->psnr = dj_psnr_u8(x, xh, n);
}

/* One pass of dj_jnd_generator_run over n <= g->batch images, through the
 * workspace; outputs (each may be NULL) start at this pass's first image. */
static int run_pass(dj_jnd_generator *g, const uint8_t *rgb, int n, int h, int w, uint8_t *x_hat, float *e,
                    float *cam, dj_jnd_image_result *res) {
    const int ph = g->ph, pw = g->pw, K = g->count;
    const size_t PHW = (size_t)ph * pw, HW = (size_t)h * w, N = (size_t)n;
    float *margin = g->model.ed_cfg.margin_input ? g->margin : NULL;
    dj_tensor x = dj_tensor_view(g->x.data, n, ph, pw, 3);
    dj_tensor xc = dj_tensor_view(g->xc.data, n, ph, pw, g->xc.c);
    /* the caller's buffers when given, so nothing is copied afterwards */
    float *ep = e ? e : g->ep;
    uint8_t *xh = x_hat ? x_hat : g->xh;
    int rc = DJ_OK;

    /* 1-2: labels and merged CAM of the padded x */
    pad_normalize_any(rgb, NULL, n, h, w, ph, pw, &g->model.norm, x.data);
    for (int k = 0; k < K && !rc; k++) {
        rc = dj_cam_compute(g->cls[k].graph, &x, g->maps[k], g->tmp, NULL);
        if (!rc && margin) rc = dj_jnd_margin_from_graph(g->cls[k].graph, n, margin, k == 0);
        if (!rc) rc = dj_jnd_margin_from_graph(g->cls[k].graph, n, g->margins + (size_t)k * g->batch, 1);
        if (!rc) rc = keep_log_probs(g, k, n);
        for (int i = 0; !rc && i < n; i++) g->before[(size_t)i * K + k] = g->tmp[i];
    }
    if (!rc) rc = dj_cam_merge((const float *const *)g->maps, K, N * PHW, g->c);
    /* 3: e = E-D([x, c]), cropped, on the pixel scale */
    if (!rc) {
        dj_tensor ct = dj_tensor_view(g->c, n, ph, pw, 1);
        rc = dj_jnd_stack(&x, &ct, margin, &xc);
    }
    const dj_tensor *eo = NULL;
    if (!rc) rc = dj_graph_forward(g->ed, &xc, 0, NULL, &eo);
    if (rc) return rc;
    const float s0 = g->model.norm.std[0], s1 = g->model.norm.std[1], s2 = g->model.norm.std[2];
    const long long rows = (long long)n * h;
#pragma omp parallel for schedule(static) if (rows * w * 3 > PAR_MIN)
    for (long long r = 0; r < rows; r++) {
        const int i = (int)(r / h), y = (int)(r % h);
        const float *src = eo->data + ((size_t)i * ph + y) * pw * 3;
        float *dst = ep + (size_t)r * w * 3;
        for (int xx = 0; xx < w; xx++) {
            dst[xx * 3 + 0] = src[xx * 3 + 0] * s0;
            dst[xx * 3 + 1] = src[xx * 3 + 1] * s1;
            dst[xx * 3 + 2] = src[xx * 3 + 2] * s2;
        }
    }
    /* 4: the stored image; 5: labels after */
    dj_jnd_add_u8(rgb, ep, N * HW * 3, 1.f, xh);
    pad_normalize_any(xh, NULL, n, h, w, ph, pw, &g->model.norm, x.data);
    if ((rc = classify_padded(g, &x, g->after, g->before, g->hat_margins))) return rc;

#pragma omp parallel for schedule(static) if (N * HW * 3 > PAR_MIN)
    for (int i = 0; i < n; i++) {
        if (res) {
            dj_jnd_image_result *r = &res[i];
            memset(r, 0, sizeof *r);
            size_t o = (size_t)i * HW * 3;
            image_stats(rgb + o, xh + o, ep + o, HW * 3, r);
            for (int k = 0; k < K; k++) {
                r->before[k] = g->before[(size_t)i * K + k];
                r->after[k] = g->after[(size_t)i * K + k];
                r->margin[k] = g->margins[(size_t)k * g->batch + i];
                r->hat_margin[k] = g->hat_margins[(size_t)k * g->batch + i];
                r->classes[k] = g->classes[k];
                memcpy(r->log_prob[k], g->log_probs + ((size_t)k * g->batch + i) * DJ_JND_RESULT_CLASSES,
                       sizeof r->log_prob[k]);
                r->kept += r->before[k] == r->after[k];
            }
        }
        if (cam)
            for (int y = 0; y < h; y++)
                memcpy(cam + ((size_t)i * h + y) * w, g->c + ((size_t)i * ph + y) * pw, (size_t)w * sizeof(float));
    }
    return DJ_OK;
}

int dj_jnd_generator_run(dj_jnd_generator *g, const uint8_t *rgb, int n, int h, int w, uint8_t *x_hat, float *e,
                         float *cam, dj_jnd_image_result *res) {
    int rc = check_images(g, rgb, n, h, w, "jnd generate");
    if (rc) return rc;
    if ((rc = ensure_size(g, round_up(h, g->stride), round_up(w, g->stride)))) return rc;
    const size_t HW = (size_t)h * w;
    for (int s = 0; !rc && s < n; s += g->batch) {
        const int m = n - s < g->batch ? n - s : g->batch;
        const size_t o = (size_t)s * HW;
        rc = run_pass(g, rgb + o * 3, m, h, w, x_hat ? x_hat + o * 3 : NULL, e ? e + o * 3 : NULL,
                      cam ? cam + o : NULL, res ? res + s : NULL);
    }
    return rc;
}

/* ------------------------------------------------------------ keep labels */

int dj_jnd_generator_keep_labels(dj_jnd_generator *g, const uint8_t *rgb, int n, int h, int w, uint8_t *x_hat,
                                 float *e, dj_jnd_image_result *res, float *scale) {
    static const char fn[] = "jnd keep labels";
    int rc = check_images(g, rgb, n, h, w, fn);
    if (rc) return rc;
    if (!x_hat || !e || !res) return dj_error(DJ_EINVAL, "%s: x_hat, e and res are required", fn);
    const int K = g->count;
    const size_t B = (size_t)h * w * 3; /* bytes of one image */
    int m = 0;
    for (int i = 0; i < n; i++) {
        if (scale) scale[i] = 1.f;
        m += res[i].kept < K;
    }
    if (m == 0) return DJ_OK;
    /* Buffers for the m changed images only (usually a few percent). */
    int *todo = malloc((size_t)m * sizeof *todo);
    uint8_t *xk = malloc((size_t)m * B);
    float *ek = malloc((size_t)m * B * sizeof *ek);
    int32_t *labels = malloc((size_t)m * K * sizeof *labels), *own = malloc((size_t)m * K * sizeof *own);
    float *hat = malloc((size_t)m * K * sizeof *hat);
    if (!todo || !xk || !ek || !labels || !own || !hat) {
        rc = dj_error(DJ_ENOMEM, "%s: out of memory", fn);
        goto out;
    }
    m = 0;
    for (int i = 0; i < n; i++)
        if (res[i].kept < K) todo[m++] = i;
    /* The largest fraction k/9 of e whose stored image keeps every label:
     * the homogeneity test's fractions, tried from the top, each on the
     * images still changed; k = 0 (no distortion) settles the rest without
     * asking the classifiers. The scaled e is formed first and then added
     * at scale 1, so that x_hat = x + e holds for the e returned, byte for
     * byte. */
    for (int k = DJ_JND_KEEP_LABELS_STEPS; k >= 0 && m > 0; k--) {
        const float s = (float)k / (DJ_JND_KEEP_LABELS_STEPS + 1);
        for (int j = 0; j < m; j++) {
            const size_t o = (size_t)todo[j] * B;
            for (size_t p = 0; p < B; p++) ek[(size_t)j * B + p] = k ? s * e[o + p] : 0.f;
            dj_jnd_add_u8(rgb + o, ek + (size_t)j * B, B, 1.f, xk + (size_t)j * B);
        }
        for (int j = 0; j < m; j++)
            for (int c = 0; c < K; c++) own[(size_t)j * K + c] = res[todo[j]].before[c];
        if (k && (rc = classify_any(g, xk, NULL, m, h, w, labels, own, hat))) break;
        int left = 0;
        for (int j = 0; j < m; j++) {
            const int i = todo[j];
            int kept = K;
            if (k) {
                kept = 0;
                for (int c = 0; c < K; c++) kept += labels[(size_t)j * K + c] == res[i].before[c];
            }
            if (kept < K) {
                todo[left++] = i;
                continue;
            }
            const size_t o = (size_t)i * B;
            memcpy(e + o, ek + (size_t)j * B, B * sizeof *e);
            memcpy(x_hat + o, xk + (size_t)j * B, B);
            /* x's labels on the new x_hat, and their margins there (x_hat = x
             * when k = 0: the margins on x) */
            for (int c = 0; c < K; c++) {
                res[i].after[c] = res[i].before[c];
                res[i].hat_margin[c] = k ? hat[(size_t)j * K + c] : res[i].margin[c];
            }
            res[i].kept = K;
            image_stats(rgb + o, x_hat + o, e + o, B, &res[i]);
            if (scale) scale[i] = s;
        }
        m = left;
    }
out:
    free(todo);
    free(xk);
    free(ek);
    free(labels);
    free(own);
    free(hat);
    return rc;
}
