/* The compression methods: the table, the budgets of one image, and coding
 * one image with one method. dmvjnd/compress.h. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "compress/compress_impl.h"
#include "dmvjnd/budget.h"
#include "dmvjnd/codec.h"
#include "dmvjnd/compress.h"
#include "dmvjnd/dmvjnd.h"

static const dj_compress_method methods[] = {
    {"plain", DJ_BUDGET_NONE, DJ_USE_PLAIN, "the codec at quality q"},
    {"jnd-prefilter", DJ_BUDGET_JND, DJ_USE_PREFILTER, "x moved toward a cheaper target within s*b_jnd, coded at q"},
    {"hvs-prefilter", DJ_BUDGET_HVS, DJ_USE_PREFILTER, "the same within s*b_hvs (NAMM)"},
    {"flat-prefilter", DJ_BUDGET_FLAT, DJ_USE_PREFILTER, "the same within a uniform budget of the jnd mean"},
    {"jnd-quant", DJ_BUDGET_JND, DJ_USE_QUANT, "JPEG coefficients moved toward zero within s*b_jnd at q"},
    {"hvs-quant", DJ_BUDGET_HVS, DJ_USE_QUANT, "the same within s*b_hvs"},
    {"flat-quant", DJ_BUDGET_FLAT, DJ_USE_QUANT, "the same within the uniform budget"},
    {"jnd-rate", DJ_BUDGET_JND, DJ_USE_RATE, "coarsest quality <= q meeting the criterion on s*b_jnd, + quant"},
    {"hvs-rate", DJ_BUDGET_HVS, DJ_USE_RATE, "the same on s*b_hvs"},
    {"flat-rate", DJ_BUDGET_FLAT, DJ_USE_RATE, "the same on the uniform budget"},
    {"jnd-alloc", DJ_BUDGET_JND, DJ_USE_ALLOC, "per-image plain quality from the calibrated keep prediction (margins, class probabilities)"},
    {"guard", DJ_BUDGET_JND, DJ_USE_GUARD, "coarsest plain quality keeping the four classifiers' labels (known machines)"},
};

int dj_compress_method_count(void) { return (int)(sizeof methods / sizeof *methods); }

const dj_compress_method *dj_compress_method_at(int i) {
    return i >= 0 && i < dj_compress_method_count() ? &methods[i] : NULL;
}

int dj_compress_method_find(const char *name, int codec, const dj_compress_method **m) {
    *m = NULL;
    for (int i = 0; i < dj_compress_method_count(); i++)
        if (name && !strcmp(name, methods[i].name)) {
            if (methods[i].use == DJ_USE_QUANT && codec != DJ_CODEC_JPEG)
                return dj_error(DJ_EINVAL,
                                "method '%s' moves JPEG DCT coefficients and needs --codec jpeg; WebP has no "
                                "such step (use the prefilter or rate methods)",
                                name);
            *m = &methods[i];
            return DJ_OK;
        }
    return dj_error(DJ_EINVAL,
                    "unknown method '%s' (plain, jnd|hvs|flat-prefilter, jnd|hvs|flat-quant, "
                    "jnd|hvs|flat-rate, jnd-alloc, guard)",
                    name ? name : "(null)");
}

int dj_compress_codec_parse(const char *name, int *codec) {
    if (name && !strcmp(name, "jpeg")) *codec = DJ_CODEC_JPEG;
    else if (name && !strcmp(name, "webp")) *codec = DJ_CODEC_WEBP;
    else return dj_error(DJ_EINVAL, "unknown codec '%s' (jpeg or webp)", name ? name : "(null)");
    return DJ_OK;
}

const char *dj_compress_codec_name(int codec) { return codec == DJ_CODEC_WEBP ? "webp" : "jpeg"; }
const char *dj_compress_codec_ext(int codec) { return codec == DJ_CODEC_WEBP ? "webp" : "jpg"; }

dj_compress_config dj_compress_defaults(void) {
    dj_compress_config c = {0};
    c.codec = DJ_CODEC_JPEG;
    c.strength = 1.0;
    c.hvs_native = 0;
    c.target = DJ_TARGET_CODEC;
    c.target_div = 4.0;
    c.smooth_sigma = 1.0;
    c.criterion = DJ_CRIT_SHARE;
    c.tau = 0.05;
    c.ladder_step = 5;
    c.guard_all = 0;
    c.guard_feedback = 16;
    c.guard_lossless = 1;
    c.batch = 500;
    return c;
}

int dj_compress_config_check(const dj_compress_config *c) {
    if (c->codec != DJ_CODEC_JPEG && c->codec != DJ_CODEC_WEBP)
        return dj_error(DJ_EINVAL, "compress: unknown codec %d", c->codec);
    if (!(c->strength > 0 && c->strength <= 1))
        return dj_error(DJ_EINVAL, "compress: strength %g is outside (0, 1]", c->strength);
    if (c->target != DJ_TARGET_CODEC && c->target != DJ_TARGET_SMOOTH)
        return dj_error(DJ_EINVAL, "compress: unknown prefilter target %d", c->target);
    if (!(c->target_div >= 1 && c->target_div <= 100))
        return dj_error(DJ_EINVAL, "compress: target divisor %g is outside [1, 100]", c->target_div);
    if (!(c->smooth_sigma > 0 && c->smooth_sigma <= 20))
        return dj_error(DJ_EINVAL, "compress: smoothing sigma %g is outside (0, 20]", c->smooth_sigma);
    if (c->criterion != DJ_CRIT_SHARE && c->criterion != DJ_CRIT_MEAN)
        return dj_error(DJ_EINVAL, "compress: unknown allocation criterion %d", c->criterion);
    if (!(c->tau >= 0 && c->tau <= 255))
        return dj_error(DJ_EINVAL, "compress: criterion threshold %g is outside [0, 255]", c->tau);
    if (c->guard_feedback < 0 || c->guard_feedback > DJ_COMPRESS_MAX_FEEDBACK)
        return dj_error(DJ_EINVAL, "compress: guard feedback %d is outside 0..%d", c->guard_feedback,
                        DJ_COMPRESS_MAX_FEEDBACK);
    if (c->ladder_step < 1 || c->ladder_step > 100)
        return dj_error(DJ_EINVAL, "compress: ladder step %d is outside 1..100", c->ladder_step);
    if (c->batch < 1) return dj_error(DJ_EINVAL, "compress: batch %d must be positive", c->batch);
    return DJ_OK;
}

int dj_compress_budgets(const dj_compress_config *cfg, const uint8_t *rgb, int h, int w, const float *e, float *jnd,
                        float *hvs, float *flat) {
    if (!cfg || !rgb || !e || h < 1 || w < 1) return dj_error(DJ_EINVAL, "compress budgets: bad arguments");
    const size_t n = (size_t)h * w * 3;
    float *own = jnd ? NULL : malloc(n * sizeof *own);
    float *jb = jnd ? jnd : own;
    if (!jb) return dj_error(DJ_ENOMEM, "compress budgets: out of memory");
    dj_budget_from_e(e, n, jb);
    int rc = DJ_OK;
    if (hvs) {
        float *map = malloc((size_t)h * w * sizeof *map);
        rc = map ? dj_hvs_jnd_namm(rgb, h, w, map) : dj_error(DJ_ENOMEM, "compress budgets: out of memory");
        if (!rc) dj_budget_from_map(map, h, w, hvs);
        free(map);
        if (!rc && !cfg->hvs_native) {
            /* matched: the same energy as the jnd budget, so the two compare
             * in where they put the budget, not in how much there is */
            double mean = 0;
            for (size_t i = 0; i < n; i++) mean += jb[i];
            dj_budget_scale_to_mean(hvs, n, mean / (double)n);
        }
    }
    if (!rc && flat) dj_budget_flat_like(jb, n, flat);
    free(own);
    return rc;
}

int dj_compress_decode(int codec, const dj_coded *c, uint8_t **rgb, int *h, int *w) {
    return codec == DJ_CODEC_WEBP ? dj_webp_decode(c->data, c->size, rgb, h, w)
                                  : dj_jpeg_decode(c->data, c->size, rgb, h, w);
}

static int encode_plain(int codec, const uint8_t *rgb, int h, int w, int q, dj_coded *out) {
    return codec == DJ_CODEC_WEBP ? dj_webp_encode(rgb, h, w, q, out) : dj_jpeg_encode(rgb, h, w, q, out);
}

float *dj_compress_scaled_budget(const float *b, size_t n, double s) {
    float *sb = malloc(n * sizeof *sb);
    if (sb)
        for (size_t i = 0; i < n; i++) sb[i] = (float)(s * b[i]);
    return sb;
}

/* The prefilter's target T: the codec's own decoded image at a much lower
 * quality (what the coarser codec keeps; moving toward it drops what only
 * finer qualities spend bits on) or a Gaussian-smoothed x. */
static int prefilter_target(const dj_compress_config *cfg, const uint8_t *rgb, int h, int w, int q, uint8_t *t) {
    if (cfg->target == DJ_TARGET_SMOOTH) return dj_smooth_target(rgb, h, w, (float)cfg->smooth_sigma, t);
    int qt = (int)floor(q / cfg->target_div);
    if (qt < 1) qt = 1;
    dj_coded c = {0};
    uint8_t *dec = NULL;
    int dh = 0, dw = 0;
    int rc = encode_plain(cfg->codec, rgb, h, w, qt, &c);
    if (!rc) rc = dj_compress_decode(cfg->codec, &c, &dec, &dh, &dw);
    if (!rc && (dh != h || dw != w))
        rc = dj_error(DJ_EINTERNAL, "compress: decoded %dx%d, coded %dx%d", dw, dh, w, h);
    if (!rc) memcpy(t, dec, (size_t)h * w * 3);
    free(dec);
    dj_coded_free(&c);
    return rc;
}

int dj_compress_code(const dj_compress_config *cfg, const dj_compress_method *m, const uint8_t *rgb, int h, int w,
                     int quality, const float *budget, dj_coded *out) {
    memset(out, 0, sizeof *out);
    if (!cfg || !m || !rgb || h < 1 || w < 1) return dj_error(DJ_EINVAL, "compress: bad arguments");
    if (quality < 1 || quality > 100) return dj_error(DJ_EINVAL, "compress: quality %d is outside 1..100", quality);
    if (m->use != DJ_USE_PLAIN && !budget) return dj_error(DJ_EINVAL, "compress: method %s needs a budget", m->name);
    if (m->use == DJ_USE_QUANT && cfg->codec != DJ_CODEC_JPEG) {
        const dj_compress_method *dummy;
        return dj_compress_method_find(m->name, cfg->codec, &dummy);
    }
    const size_t n = (size_t)h * w * 3;
    int rc = DJ_OK;
    switch (m->use) {
    case DJ_USE_PLAIN:
    case DJ_USE_ALLOC: /* plain coding at the quality it allocated */
    case DJ_USE_GUARD: /* plain coding: suppression would spend the label margin guard searches for */
        return encode_plain(cfg->codec, rgb, h, w, quality, out);
    case DJ_USE_PREFILTER: {
        uint8_t *t = malloc(n), *y = malloc(n);
        rc = t && y ? prefilter_target(cfg, rgb, h, w, quality, t) : dj_error(DJ_ENOMEM, "compress: out of memory");
        if (!rc) dj_prefilter(rgb, t, budget, (float)cfg->strength, n, y);
        if (!rc) rc = encode_plain(cfg->codec, y, h, w, quality, out);
        free(t);
        free(y);
        return rc;
    }
    case DJ_USE_QUANT:
    case DJ_USE_RATE: {
        if (cfg->codec != DJ_CODEC_JPEG) return encode_plain(cfg->codec, rgb, h, w, quality, out);
        float *sb = dj_compress_scaled_budget(budget, n, cfg->strength);
        if (!sb) return dj_error(DJ_ENOMEM, "compress: out of memory");
        dj_suppress_stats st;
        rc = dj_jpeg_encode_suppressed(rgb, h, w, quality, sb, out, &st);
        free(sb);
        return rc;
    }
    default: return dj_error(DJ_EINTERNAL, "compress: method %s has no coding", m->name);
    }
}

int dj_compress_code_feedback(int codec, const uint8_t *rgb, int h, int w, int quality, int rounds, dj_coded *out) {
    memset(out, 0, sizeof *out);
    if (!rgb || h < 1 || w < 1) return dj_error(DJ_EINVAL, "compress feedback: bad arguments");
    if (quality < 1 || quality > 100) return dj_error(DJ_EINVAL, "compress: quality %d is outside 1..100", quality);
    if (rounds < 0 || rounds > DJ_COMPRESS_MAX_FEEDBACK)
        return dj_error(DJ_EINVAL, "compress feedback: %d rounds is outside 0..%d", rounds, DJ_COMPRESS_MAX_FEEDBACK);
    const size_t n = (size_t)h * w * 3;
    float *y = malloc(n * sizeof *y);
    uint8_t *yq = malloc(n);
    int rc = y && yq ? DJ_OK : dj_error(DJ_ENOMEM, "compress: out of memory");
    for (size_t p = 0; !rc && p < n; p++) y[p] = rgb[p], yq[p] = rgb[p];
    if (!rc) rc = encode_plain(codec, yq, h, w, quality, out);
    for (int r = 0; !rc && r < rounds; r++) {
        uint8_t *d = NULL;
        int dh = 0, dw = 0;
        rc = dj_compress_decode(codec, out, &d, &dh, &dw);
        if (!rc && (dh != h || dw != w))
            rc = dj_error(DJ_EINTERNAL, "compress feedback: decoded %dx%d, coded %dx%d", dw, dh, w, h);
        for (size_t p = 0; !rc && p < n; p++) {
            /* y may leave [0, 255] (the error of a clipped value keeps adding up); bounded so it cannot run away */
            y[p] = fminf(fmaxf(y[p] + (float)rgb[p] - (float)d[p], -255.f), 510.f);
            yq[p] = (uint8_t)lrintf(fminf(fmaxf(y[p], 0.f), 255.f));
        }
        free(d);
        dj_coded_free(out);
        if (!rc) rc = encode_plain(codec, yq, h, w, quality, out);
    }
    if (rc) dj_coded_free(out);
    free(y);
    free(yq);
    return rc;
}
