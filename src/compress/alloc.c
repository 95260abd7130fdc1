/* jnd-alloc's predictor: its features, the logistic fit, the per-image pick
 * and the calibration file. dmvjnd/compress.h, section "jnd-alloc". */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dmvjnd/compress.h"
#include "dmvjnd/dmvjnd.h"
#include "dmvjnd/fileio.h"
#include "dmvjnd/json.h"

#define ALLOC_FORMAT "dmvjnd-alloc-calibration"
#define ALLOC_VERSION 2
#define FIT_STEPS 50
#define FIT_L2 1e-3
#define CAL_MAX_BYTES (1 << 20)

void dj_compress_alloc_distortion(const uint8_t *x, const uint8_t *decoded, const float *budget, const float *cam,
                                  int h, int w, size_t payload, double d[DJ_ALLOC_DISTORTION]) {
    const size_t hw = (size_t)h * w;
    double se = 0, cse = 0;
    size_t over = 0;
    for (size_t p = 0; p < hw; p++) {
        double px = 0;
        for (int ch = 0; ch < 3; ch++) {
            const size_t v = p * 3 + ch;
            const double df = (double)decoded[v] - (double)x[v];
            px += df * df;
            over += budget && fabs(df) > budget[v];
        }
        se += px;
        cse += px / 3 * (cam ? cam[p] : 1.0);
    }
    d[0] = hw ? se / (3.0 * hw) : 0;
    d[1] = hw ? cse / hw : 0;
    d[2] = hw ? (double)over / (3.0 * hw) : 0;
    d[3] = hw ? 8.0 * (double)payload / hw : 0;
}

/* log of a margin, clamped: a margin of 0 (a tie, or non-finite logits) is
 * as near the boundary as the features can say. */
static double log_margin(float m) { return log(isfinite(m) ? fmin(fmax(m, 1e-4), 1.0) : 1e-4); }

/* A margin on x_hat, in [-1, 1]; non-finite is the most careful, -1. */
static double hat_margin(float m) { return isfinite(m) ? fmin(fmax(m, -1.0), 1.0) : -1.0; }

/* A log-probability, clamped to [-12, 0]: below e^-12 a class is not a
 * contender, and the clamp keeps one odd logit from dominating the fit. */
static double log_prob(float lp) { return isfinite(lp) ? fmin(fmax(lp, -12.0), 0.0) : -12.0; }

int dj_compress_alloc_classes(int classes) { return classes >= 2 && classes <= DJ_JND_RESULT_CLASSES ? classes : 0; }

int dj_compress_alloc_count(int classes) { return DJ_ALLOC_BASE_FEATURES + 3 * dj_compress_alloc_classes(classes); }

void dj_compress_alloc_features(const double d[DJ_ALLOC_DISTORTION], const dj_jnd_image_result *r, int K, int k,
                                double phi[DJ_ALLOC_MAX_FEATURES]) {
    const double f[DJ_ALLOC_DISTORTION] = {log(d[0] + 1e-3), log(d[1] + 1e-3), d[2], log(fmax(d[3], 1e-3))};
    double lmin = 0, hmin = 0;
    for (int j = 0; j < K; j++) {
        lmin = j ? fmin(lmin, log_margin(r->margin[j])) : log_margin(r->margin[j]);
        hmin = j ? fmin(hmin, hat_margin(r->hat_margin[j])) : hat_margin(r->hat_margin[j]);
    }
    const double lk = log_margin(r->margin[k]), hk = hat_margin(r->hat_margin[k]);
    phi[0] = 1;
    for (int j = 0; j < DJ_ALLOC_DISTORTION; j++) phi[1 + j] = f[j];
    phi[5] = lk;
    phi[6] = lmin;
    for (int j = 0; j < DJ_ALLOC_DISTORTION; j++) phi[7 + j] = f[j] * lk;
    phi[11] = hk;
    phi[12] = hmin;
    for (int j = 0; j < DJ_ALLOC_DISTORTION; j++) phi[13 + j] = f[j] * hk;
    const int C = dj_compress_alloc_classes(r->classes[k]), label = r->before[k];
    double *cls = phi + DJ_ALLOC_BASE_FEATURES;
    for (int j = 0; j < C; j++) {
        const int is = j == label;
        cls[j] = log_prob(r->log_prob[k][j]);
        cls[C + j] = is ? f[0] : 0;
        cls[2 * C + j] = is ? f[3] : 0;
    }
}

static double sigmoid(double z) { return z >= 0 ? 1 / (1 + exp(-z)) : exp(z) / (1 + exp(z)); }

static double dot(const double *a, const double *b, int n) {
    double s = 0;
    for (int i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

double dj_compress_alloc_predict(const dj_compress_calibration *cal, const double d[DJ_ALLOC_DISTORTION],
                                 const dj_jnd_image_result *r) {
    double p = 0, phi[DJ_ALLOC_MAX_FEATURES];
    for (int k = 0; k < cal->classifiers; k++) {
        dj_compress_alloc_features(d, r, cal->classifiers, k, phi);
        p += sigmoid(dot(cal->w[k], phi, dj_compress_alloc_count(cal->classes[k])));
    }
    return cal->classifiers ? p / cal->classifiers : 0;
}

double dj_compress_alloc_lambda(int quality) { return pow(10.0, -quality / 40.0); }

int dj_compress_alloc_pick(const double *p, const double *bpp, int n, double lambda) {
    int best = 0;
    for (int l = 1; l < n; l++) {
        const double a = p[l] - lambda * bpp[l], b = p[best] - lambda * bpp[best];
        if (a > b || (a == b && bpp[l] < bpp[best])) best = l;
    }
    return best;
}

/* Solve H x = g in place (x -> g) for a symmetric positive definite H (n x n),
 * by Cholesky; H is overwritten. DJ_ENUMERIC when H is not positive definite. */
static int cholesky_solve(double *H, double *g, int n) {
    for (int j = 0; j < n; j++) {
        double s = H[j * n + j];
        for (int k = 0; k < j; k++) s -= H[j * n + k] * H[j * n + k];
        if (!(s > 0)) return DJ_ENUMERIC;
        const double l = sqrt(s);
        H[j * n + j] = l;
        for (int i = j + 1; i < n; i++) {
            double t = H[i * n + j];
            for (int k = 0; k < j; k++) t -= H[i * n + k] * H[j * n + k];
            H[i * n + j] = t / l;
        }
    }
    for (int i = 0; i < n; i++) { /* L y = g */
        for (int k = 0; k < i; k++) g[i] -= H[i * n + k] * g[k];
        g[i] /= H[i * n + i];
    }
    for (int i = n - 1; i >= 0; i--) { /* L^T x = y */
        for (int k = i + 1; k < n; k++) g[i] -= H[k * n + i] * g[k];
        g[i] /= H[i * n + i];
    }
    return DJ_OK;
}

/* Newton's method for classifier k's weights (F features of n samples in
 * phi): the mean log loss + (l2/2)|w|^2 is convex, so it converges from 0
 * in a few steps; FIT_STEPS leaves no doubt. */
static int fit_one(long n, int F, const double *phi, const uint8_t *kept, int K, int k, double *wk, double *loss) {
    double *g = malloc((size_t)F * sizeof *g), *H = malloc((size_t)F * F * sizeof *H);
    int rc = g && H ? DJ_OK : dj_error(DJ_ENOMEM, "alloc fit: out of memory");
    if (!rc) memset(wk, 0, (size_t)F * sizeof *wk);
    for (int it = 0; !rc && it < FIT_STEPS; it++) {
        memset(g, 0, (size_t)F * sizeof *g);
        memset(H, 0, (size_t)F * F * sizeof *H);
        for (long i = 0; i < n; i++) {
            const double *x = phi + i * F, p = sigmoid(dot(wk, x, F)), r = p - (kept[i * K + k] != 0),
                         v = p * (1 - p);
            for (int a = 0; a < F; a++) {
                if (x[a] == 0) continue; /* the class indicators are mostly 0 */
                g[a] += r * x[a];
                const double vx = v * x[a];
                for (int b = 0; b <= a; b++) H[a * F + b] += vx * x[b];
            }
        }
        for (int a = 0; a < F; a++) {
            g[a] = g[a] / n + FIT_L2 * wk[a];
            for (int b = 0; b <= a; b++) H[a * F + b] = H[b * F + a] = H[a * F + b] / n + (a == b ? FIT_L2 : 0);
        }
        if (cholesky_solve(H, g, F)) rc = dj_error(DJ_ENUMERIC, "alloc fit: classifier %d: singular Hessian", k);
        for (int a = 0; !rc && a < F; a++) wk[a] -= g[a];
    }
    double l = 0;
    for (long i = 0; !rc && i < n; i++) {
        const double p = sigmoid(dot(wk, phi + i * F, F));
        l -= log(fmax(kept[i * K + k] ? p : 1 - p, 1e-300));
    }
    *loss = l / n;
    free(g);
    free(H);
    return rc;
}

int dj_compress_alloc_fit(long n, int K, const double *d, const dj_jnd_image_result *const *img,
                          const uint8_t *kept, dj_compress_calibration *cal) {
    if (!d || !img || !kept || !cal || K < 1 || K > DJ_JND_MAX_CLASSIFIERS)
        return dj_error(DJ_EINVAL, "alloc fit: bad arguments");
    if (n < 2) return dj_error(DJ_EINVAL, "alloc fit: %ld samples; at least 2 are needed", n);
    for (long i = 0; i < n; i++) {
        if (!img[i]) return dj_error(DJ_EINVAL, "alloc fit: sample %ld has no JND result", i);
        for (int k = 0; k < K; k++)
            if (img[i]->classes[k] != img[0]->classes[k])
                return dj_error(DJ_EINVAL, "alloc fit: classifier %d has %d classes on sample %ld, %d on sample 0", k,
                                img[i]->classes[k], i, img[0]->classes[k]);
        for (int j = 0; j < DJ_ALLOC_DISTORTION; j++)
            if (!isfinite(d[i * DJ_ALLOC_DISTORTION + j]) || d[i * DJ_ALLOC_DISTORTION + j] < 0)
                return dj_error(DJ_EINVAL, "alloc fit: sample %ld has a bad distortion term %g", i,
                                d[i * DJ_ALLOC_DISTORTION + j]);
    }
    double *phi = malloc((size_t)n * DJ_ALLOC_MAX_FEATURES * sizeof *phi);
    if (!phi) return dj_error(DJ_ENOMEM, "alloc fit: out of memory for %ld samples", n);
    long kept_n = 0;
    for (long i = 0; i < n * K; i++) kept_n += kept[i] != 0;
    cal->classifiers = K;
    cal->samples = n;
    cal->kept = (double)kept_n / ((double)n * K);
    int rc = DJ_OK;
    for (int k = 0; !rc && k < K; k++) {
        cal->classes[k] = dj_compress_alloc_classes(img[0]->classes[k]);
        const int F = dj_compress_alloc_count(cal->classes[k]);
        double full[DJ_ALLOC_MAX_FEATURES];
        for (long i = 0; i < n; i++) {
            dj_compress_alloc_features(d + i * DJ_ALLOC_DISTORTION, img[i], K, k, full);
            memcpy(phi + i * F, full, (size_t)F * sizeof *phi);
        }
        rc = fit_one(n, F, phi, kept, K, k, cal->w[k], &cal->loss[k]);
    }
    free(phi);
    return rc;
}

/* ------------------------------------------------------------ the file */

/* Feature f's name for a classifier with C_k = C, as the file lists them. */
static void feature_name(int C, int f, char *out, size_t cap) {
    static const char *base[DJ_ALLOC_BASE_FEATURES] = {
        "1",      "log_mse",      "log_cmse",      "over",      "log_bpp",      "lm_k",
        "lm_min", "log_mse*lm_k", "log_cmse*lm_k", "over*lm_k", "log_bpp*lm_k", "hm_k",
        "hm_min", "log_mse*hm_k", "log_cmse*hm_k", "over*hm_k", "log_bpp*hm_k"};
    if (f < DJ_ALLOC_BASE_FEATURES) snprintf(out, cap, "%s", base[f]);
    else {
        static const char *prefix[3] = {"log_p", "log_mse*label", "log_bpp*label"};
        f -= DJ_ALLOC_BASE_FEATURES;
        snprintf(out, cap, "%s%d", prefix[f / C], f % C);
    }
}

int dj_compress_calibration_write(const dj_compress_calibration *cal, const char *path) {
    dj_jw w;
    dj_jw_init(&w, 2);
    dj_jw_begin_object(&w);
    dj_jw_key(&w, "format"), dj_jw_string(&w, ALLOC_FORMAT);
    dj_jw_key(&w, "version"), dj_jw_int(&w, ALLOC_VERSION);
    dj_jw_key(&w, "codec"), dj_jw_string(&w, dj_compress_codec_name(cal->codec));
    dj_jw_key(&w, "strength"), dj_jw_double(&w, cal->strength);
    dj_jw_key(&w, "images"), dj_jw_int(&w, cal->images);
    dj_jw_key(&w, "samples"), dj_jw_int(&w, cal->samples);
    dj_jw_key(&w, "kept"), dj_jw_double(&w, cal->kept);
    dj_jw_key(&w, "classifiers"), dj_jw_begin_array(&w);
    for (int k = 0; k < cal->classifiers; k++) {
        const int C = dj_compress_alloc_classes(cal->classes[k]), F = dj_compress_alloc_count(C);
        char name[32];
        dj_jw_begin_object(&w);
        dj_jw_key(&w, "tag"), dj_jw_string(&w, cal->tags[k]);
        dj_jw_key(&w, "classes"), dj_jw_int(&w, C);
        dj_jw_key(&w, "loss"), dj_jw_double(&w, cal->loss[k]);
        dj_jw_key(&w, "features"), dj_jw_begin_array(&w);
        for (int f = 0; f < F; f++) feature_name(C, f, name, sizeof name), dj_jw_string(&w, name);
        dj_jw_end_array(&w);
        dj_jw_key(&w, "w"), dj_jw_begin_array(&w);
        for (int f = 0; f < F; f++) dj_jw_double(&w, cal->w[k][f]);
        dj_jw_end_array(&w);
        dj_jw_end_object(&w);
    }
    dj_jw_end_array(&w);
    dj_jw_end_object(&w);
    char *text = NULL;
    size_t len = 0;
    int rc = dj_jw_finish(&w, &text, &len);
    if (!rc) rc = dj_write_file_atomic(path, text, len);
    free(text);
    return rc;
}

/* The number at key in obj, finite and within [lo, hi]. */
static int get_number(const char *path, const dj_json *obj, const char *key, double lo, double hi, double *out) {
    const dj_json *v = dj_json_get(obj, key);
    if (!v) return dj_error(DJ_EFORMAT, "%s: no \"%s\"", path, key);
    if (v->type != DJ_JSON_NUMBER || !(v->number >= lo && v->number <= hi))
        return dj_error(DJ_EFORMAT, "%s: \"%s\" must be a number in [%g, %g]", path, key, lo, hi);
    *out = v->number;
    return DJ_OK;
}

static int get_string(const char *path, const dj_json *obj, const char *key, const char **out) {
    const dj_json *v = dj_json_get(obj, key);
    if (!v || v->type != DJ_JSON_STRING) return dj_error(DJ_EFORMAT, "%s: \"%s\" must be a string", path, key);
    *out = v->string;
    return DJ_OK;
}

static int read_tree(const char *path, const dj_json *root, dj_compress_calibration *cal) {
    const char *s = NULL;
    double v = 0;
    if (root->type != DJ_JSON_OBJECT) return dj_error(DJ_EFORMAT, "%s: not a JSON object", path);
    int rc = get_string(path, root, "format", &s);
    if (!rc && strcmp(s, ALLOC_FORMAT))
        rc = dj_error(DJ_EFORMAT, "%s: format \"%s\", not \"%s\"", path, s, ALLOC_FORMAT);
    if (!rc) rc = get_number(path, root, "version", 1, 1e9, &v);
    if (!rc && v != ALLOC_VERSION)
        rc = dj_error(DJ_EFORMAT, "%s: version %g; this build reads version %d (fit a new one with dmvjnd compress "
                      "--calibrate)", path, v, ALLOC_VERSION);
    if (!rc) rc = get_string(path, root, "codec", &s);
    if (!rc && dj_compress_codec_parse(s, &cal->codec))
        rc = dj_error(DJ_EFORMAT, "%s: codec \"%s\" is neither jpeg nor webp", path, s);
    if (!rc) rc = get_number(path, root, "strength", 1e-9, 1, &cal->strength);
    if (!rc && !(rc = get_number(path, root, "images", 0, 2147483647.0, &v))) cal->images = (int)v;
    if (!rc && !(rc = get_number(path, root, "samples", 0, 9e15, &v))) cal->samples = (long)v;
    if (!rc) rc = get_number(path, root, "kept", 0, 1, &cal->kept);
    const dj_json *cs = rc ? NULL : dj_json_get(root, "classifiers");
    if (!rc && (!cs || cs->type != DJ_JSON_ARRAY || cs->len < 1 || cs->len > DJ_JND_MAX_CLASSIFIERS))
        rc = dj_error(DJ_EFORMAT, "%s: \"classifiers\" must be an array of 1..%d objects", path,
                      DJ_JND_MAX_CLASSIFIERS);
    for (size_t k = 0; !rc && k < cs->len; k++) {
        const dj_json *c = &cs->items[k], *wv = dj_json_get(c, "w");
        if (c->type != DJ_JSON_OBJECT) {
            rc = dj_error(DJ_EFORMAT, "%s: classifiers[%zu] is not an object", path, k);
            break;
        }
        if (!(rc = get_string(path, c, "tag", &s))) {
            if (strlen(s) >= sizeof cal->tags[k])
                rc = dj_error(DJ_EFORMAT, "%s: classifiers[%zu]: tag longer than %zu bytes", path, k,
                              sizeof cal->tags[k] - 1);
            else snprintf(cal->tags[k], sizeof cal->tags[k], "%s", s);
        }
        if (!rc && !(rc = get_number(path, c, "classes", 0, DJ_JND_RESULT_CLASSES, &v))) {
            cal->classes[k] = (int)v;
            if (v != cal->classes[k] || v == 1)
                rc = dj_error(DJ_EFORMAT, "%s: classifiers[%zu].classes must be 0 or a whole number in 2..%d", path,
                              k, DJ_JND_RESULT_CLASSES);
        }
        if (!rc) rc = get_number(path, c, "loss", 0, 1e300, &cal->loss[k]);
        const int F = rc ? 0 : dj_compress_alloc_count(cal->classes[k]);
        /* the names are this build's features in this build's order, or the
         * weights would be applied to the wrong terms */
        const dj_json *fs = rc ? NULL : dj_json_get(c, "features");
        if (!rc && (!fs || fs->type != DJ_JSON_ARRAY || (int)fs->len != F))
            rc = dj_error(DJ_EFORMAT, "%s: classifiers[%zu].features must list %d names", path, k, F);
        for (int f = 0; !rc && f < F; f++) {
            char name[32];
            feature_name(cal->classes[k], f, name, sizeof name);
            if (fs->items[f].type != DJ_JSON_STRING || strcmp(fs->items[f].string, name))
                rc = dj_error(DJ_EFORMAT, "%s: classifiers[%zu].features[%d] is not \"%s\"", path, k, f, name);
        }
        if (!rc && (!wv || wv->type != DJ_JSON_ARRAY || (int)wv->len != F))
            rc = dj_error(DJ_EFORMAT, "%s: classifiers[%zu].w must hold %d numbers", path, k, F);
        for (int f = 0; !rc && f < F; f++) {
            const dj_json *x = &wv->items[f];
            if (x->type != DJ_JSON_NUMBER || !isfinite(x->number) || fabs(x->number) > 1e6)
                rc = dj_error(DJ_EFORMAT, "%s: classifiers[%zu].w[%d] is not a finite weight", path, k, f);
            else cal->w[k][f] = x->number;
        }
    }
    if (!rc) cal->classifiers = (int)cs->len;
    return rc;
}

int dj_compress_calibration_read(const char *path, dj_compress_calibration *cal) {
    memset(cal, 0, sizeof *cal);
    void *data = NULL;
    size_t size = 0;
    dj_json *root = NULL;
    int rc = dj_read_file(path, CAL_MAX_BYTES, &data, &size);
    if (!rc) rc = dj_json_parse(data, size, path, 8, &root);
    if (!rc) rc = read_tree(path, root, cal);
    dj_json_free(root);
    dj_free(data);
    if (rc) memset(cal, 0, sizeof *cal);
    return rc;
}

int dj_compress_calibration_path(const char *model_path, int codec, char *out, size_t cap) {
    if (!model_path || !out) return dj_error(DJ_EINVAL, "calibration path: bad arguments");
    size_t n = strlen(model_path);
    const char *ext = ".safetensors";
    if (n >= strlen(ext) && !strcmp(model_path + n - strlen(ext), ext)) n -= strlen(ext);
    int len = snprintf(out, cap, "%.*s.alloc-%s.json", (int)n, model_path, dj_compress_codec_name(codec));
    if (len < 0 || (size_t)len >= cap) return dj_error(DJ_EINVAL, "calibration path: %s: too long", model_path);
    return DJ_OK;
}

int dj_compress_calibration_check(const dj_compress_calibration *cal, int codec, const dj_jnd_generator *gen,
                                  double strength) {
    if (!cal) return dj_error(DJ_EINVAL, "jnd-alloc needs a calibration (dmvjnd compress --calibrate)");
    if (cal->codec != codec)
        return dj_error(DJ_EINVAL, "jnd-alloc: the calibration was fitted for %s, not %s",
                        dj_compress_codec_name(cal->codec), dj_compress_codec_name(codec));
    const int K = dj_jnd_generator_count(gen);
    if (cal->classifiers != K)
        return dj_error(DJ_EINVAL, "jnd-alloc: the calibration was fitted for %d classifiers, the model has %d",
                        cal->classifiers, K);
    for (int k = 0; k < K; k++)
        if (strcmp(cal->tags[k], dj_jnd_generator_tag(gen, k)))
            return dj_error(DJ_EINVAL, "jnd-alloc: the calibration's classifier %d is %s, the model's is %s", k,
                            cal->tags[k], dj_jnd_generator_tag(gen, k));
    if (fabs(cal->strength - strength) > 1e-9)
        return dj_error(DJ_EINVAL, "jnd-alloc: the calibration was fitted at strength %g, not %g", cal->strength,
                        strength);
    return DJ_OK;
}
