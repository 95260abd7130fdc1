/* The DMV-JND losses (Jin et al., Sec. IV-B) and the distortion helpers.
 *
 * Notation, per image, with e (H x W x 3) the E-D's output, c (H x W) the
 * merged CAM map, k_ch the unit factor (1 for DJ_JND_UNIT_NORMALIZED,
 * std[ch] for DJ_JND_UNIT_PIXEL01) and u = k * e:
 *
 *   I  = 1/(HW) sum_p c_p                                   (Eq. 10)
 *   N  = 1 - I                                              (Eq. 11)
 *   N0 = 1/(3HW) sum_p sum_ch |u_p,ch|                      (Eq. 12; the
 *        paper's |e(h, w)| of a 3-channel e read as the channel mean)
 *   Loss2 = ln(N^2 + N0^2 + q) - ln(2 N N0 + q)             (Eq. 13)
 *   v_p = exp(c_p) / sum_r exp(c_r)                         (Eq. 14)
 *   Loss3 = sum_p v_p * 1/3 sum_ch |u_p,ch|                 (Eq. 15 with
 *        the channel-mean magnitude of e)
 *
 * Gradients w.r.t. e (c is a constant: it comes from frozen networks), with
 * s = sign(e) and sign(0) = 0 (torch.abs's subgradient):
 *   dLoss2/de_p,ch = [2 N0 / (N^2 + N0^2 + q) - 2 N / (2 N N0 + q)] * k_ch s / (3HW)
 *   dLoss3/de_p,ch = v_p * k_ch s / 3
 * The batch losses are the means over the n images, so each image's
 * gradient is divided by n.
 *
 * Sums run in double; each image is independent (OpenMP over images), and
 * the batch means are summed serially in image order, so results do not
 * depend on the thread count.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "dmvjnd/dmvjnd.h"
#include "dmvjnd/jnd.h"

dj_jnd_norm dj_jnd_norm_paper(void) {
    dj_jnd_norm n;
    for (int i = 0; i < 3; i++) {
        n.mean[i] = 0.5f;
        n.std[i] = 0.5f;
    }
    return n;
}

dj_jnd_loss_config dj_jnd_loss_defaults(void) {
    dj_jnd_loss_config c;
    c.e_unit = DJ_JND_UNIT_NORMALIZED;
    c.norm = dj_jnd_norm_paper();
    c.q = 1e-10;
    return c;
}

static int check_norm(const char *fn, const dj_jnd_norm *nm) {
    for (int i = 0; i < 3; i++)
        if (!(nm->std[i] > 0.0f && isfinite(nm->std[i]) && isfinite(nm->mean[i])))
            return dj_error(DJ_EINVAL, "%s: normalisation channel %d: mean %g, std %g (std must be > 0, finite)", fn,
                            i, nm->mean[i], nm->std[i]);
    return DJ_OK;
}

static int check_tensor(const char *fn, const char *what, const dj_tensor *t, int c) {
    if (!t || !t->data) return dj_error(DJ_EINVAL, "%s: %s is NULL", fn, what);
    if (t->n < 1 || t->h < 1 || t->w < 1 || t->c != c)
        return dj_error(DJ_EINVAL, "%s: %s is %dx%dx%dx%d, want N x H x W x %d", fn, what, t->n, t->h, t->w, t->c, c);
    return DJ_OK;
}

static int same_nhw(const char *fn, const char *what, const dj_tensor *a, const dj_tensor *ref) {
    if (a->n != ref->n || a->h != ref->h || a->w != ref->w)
        return dj_error(DJ_EINVAL, "%s: %s is %dx%dx%dx%d, e is %dx%dx%dx%d (N, H, W must match)", fn, what, a->n,
                        a->h, a->w, a->c, ref->n, ref->h, ref->w, ref->c);
    return DJ_OK;
}

/* ------------------------------------------------------------------ losses */

static inline float signf_(float v) { return (float)((v > 0.0f) - (v < 0.0f)); }

/* The one implementation behind the three public loss functions.
 * g2, g3: gradient weights of Loss2 and Loss3 (the batch-mean losses);
 * per2, per3: per-image values (may be NULL); out: batch means. */
static int jnd_losses(const char *fn, const dj_tensor *e, const dj_tensor *c, const dj_jnd_loss_config *cfg_in,
                      float g2, float g3, float *per2, float *per3, dj_jnd_loss_values *out, dj_tensor *de,
                      int accum) {
    int rc;
    if ((rc = check_tensor(fn, "e", e, 3)) || (rc = check_tensor(fn, "c", c, 1)) || (rc = same_nhw(fn, "c", c, e)))
        return rc;
    if (de && ((rc = check_tensor(fn, "de", de, 3)) || (rc = same_nhw(fn, "de", de, e)))) return rc;
    dj_jnd_loss_config cfg = cfg_in ? *cfg_in : dj_jnd_loss_defaults();
    if (cfg.e_unit != DJ_JND_UNIT_NORMALIZED && cfg.e_unit != DJ_JND_UNIT_PIXEL01)
        return dj_error(DJ_EINVAL, "%s: unknown e_unit %d", fn, cfg.e_unit);
    if (cfg.e_unit == DJ_JND_UNIT_PIXEL01 && (rc = check_norm(fn, &cfg.norm))) return rc;
    if (!(cfg.q > 0.0 && isfinite(cfg.q))) return dj_error(DJ_EINVAL, "%s: q = %g must be > 0", fn, cfg.q);
    if (de && !(isfinite(g2) && isfinite(g3))) return dj_error(DJ_EINVAL, "%s: non-finite loss weight", fn);

    const int n = e->n;
    const size_t hw = (size_t)e->h * e->w;
    float k[3] = {1.0f, 1.0f, 1.0f};
    if (cfg.e_unit == DJ_JND_UNIT_PIXEL01)
        for (int i = 0; i < 3; i++) k[i] = cfg.norm.std[i];
    const double q = cfg.q;
    double *img = malloc((size_t)n * 4 * sizeof(double)); /* loss2, loss3, N, N0 per image */
    if (!img) return dj_error(DJ_ENOMEM, "%s: out of memory", fn);

#pragma omp parallel for schedule(static) if ((size_t)n * hw > 16384)
    for (int i = 0; i < n; i++) {
        const float *ei = e->data + (size_t)i * hw * 3;
        const float *ci = c->data + (size_t)i * hw;
        /* I and the softmax's max and normaliser */
        double csum = 0, cmax = -INFINITY;
        for (size_t p = 0; p < hw; p++) {
            csum += ci[p];
            if (ci[p] > cmax) cmax = ci[p];
        }
        double z = 0;
        for (size_t p = 0; p < hw; p++) z += exp((double)ci[p] - cmax);
        /* N0 and Loss3 */
        double abs_sum = 0, l3 = 0;
        for (size_t p = 0; p < hw; p++) {
            double m = fabs((double)k[0] * ei[3 * p]) + fabs((double)k[1] * ei[3 * p + 1]) +
                       fabs((double)k[2] * ei[3 * p + 2]);
            abs_sum += m;
            l3 += exp((double)ci[p] - cmax) * m;
        }
        double N = 1.0 - csum / (double)hw;
        double N0 = abs_sum / (3.0 * (double)hw);
        double a2 = N * N + N0 * N0 + q, b2 = 2.0 * N * N0 + q;
        img[4 * i + 0] = log(a2) - log(b2);
        img[4 * i + 1] = l3 / (3.0 * z);
        img[4 * i + 2] = N;
        img[4 * i + 3] = N0;
        if (!de) continue;
        /* dLoss/de = g2/n * dL2/dN0 * k s / (3HW) + g3/n * v_p * k s / 3 */
        double d2 = (double)g2 / n * (2.0 * N0 / a2 - 2.0 * N / b2) / (3.0 * (double)hw);
        double d3 = (double)g3 / n / (3.0 * z);
        float *di = de->data + (size_t)i * hw * 3;
        for (size_t p = 0; p < hw; p++) {
            double w = d2 + d3 * exp((double)ci[p] - cmax);
            for (int ch = 0; ch < 3; ch++) {
                float gval = (float)(w * k[ch]) * signf_(ei[3 * p + ch]);
                di[3 * p + ch] = accum ? di[3 * p + ch] + gval : gval;
            }
        }
    }

    dj_jnd_loss_values v = {0, 0, 0, 0};
    for (int i = 0; i < n; i++) {
        v.loss2 += img[4 * i + 0];
        v.loss3 += img[4 * i + 1];
        v.n += img[4 * i + 2];
        v.n0 += img[4 * i + 3];
        if (per2) per2[i] = (float)img[4 * i + 0];
        if (per3) per3[i] = (float)img[4 * i + 1];
    }
    v.loss2 /= n;
    v.loss3 /= n;
    v.n /= n;
    v.n0 /= n;
    if (out) *out = v;
    free(img);
    return DJ_OK;
}

int dj_jnd_loss2(const dj_tensor *e, const dj_tensor *c, const dj_jnd_loss_config *cfg, double *loss,
                 float *per_image, float scale, dj_tensor *de, int accum) {
    dj_jnd_loss_values v;
    int rc = jnd_losses("jnd_loss2", e, c, cfg, scale, 0.0f, per_image, NULL, &v, de, accum);
    if (!rc && loss) *loss = v.loss2;
    return rc;
}

int dj_jnd_loss3(const dj_tensor *e, const dj_tensor *c, const dj_jnd_loss_config *cfg, double *loss,
                 float *per_image, float scale, dj_tensor *de, int accum) {
    dj_jnd_loss_values v;
    int rc = jnd_losses("jnd_loss3", e, c, cfg, 0.0f, scale, NULL, per_image, &v, de, accum);
    if (!rc && loss) *loss = v.loss3;
    return rc;
}

int dj_jnd_losses(const dj_tensor *e, const dj_tensor *c, const dj_jnd_loss_config *cfg, float a, float b,
                  dj_jnd_loss_values *out, dj_tensor *de, int accum) {
    return jnd_losses("jnd_losses", e, c, cfg, a, b, NULL, NULL, out, de, accum);
}

/* ------------------------------------------------ distortion and metrics */

/* Valid range of channel ch in normalised units: the image of [0, 1]. */
static void clip_range(const dj_jnd_norm *nm, int ch, float *lo, float *hi) {
    *lo = (0.0f - nm->mean[ch]) / nm->std[ch];
    *hi = (1.0f - nm->mean[ch]) / nm->std[ch];
}

static int check_pair(const char *fn, const char *an, const dj_tensor *a, const char *bn, const dj_tensor *b) {
    int rc;
    if ((rc = check_tensor(fn, an, a, 3)) || (rc = check_tensor(fn, bn, b, 3))) return rc;
    if (a->n != b->n || a->h != b->h || a->w != b->w)
        return dj_error(DJ_EINVAL, "%s: %s is %dx%dx%dx3, %s is %dx%dx%dx3", fn, an, a->n, a->h, a->w, bn, b->n, b->h,
                        b->w);
    return DJ_OK;
}

int dj_jnd_apply(const dj_tensor *x, const dj_tensor *e, const dj_jnd_norm *clip, dj_tensor *x_hat) {
    int rc;
    if ((rc = check_pair("jnd_apply", "x", x, "e", e)) || (rc = check_pair("jnd_apply", "x_hat", x_hat, "e", e)))
        return rc;
    if (clip && (rc = check_norm("jnd_apply", clip))) return rc;
    float lo[3] = {-INFINITY, -INFINITY, -INFINITY}, hi[3] = {INFINITY, INFINITY, INFINITY};
    if (clip)
        for (int ch = 0; ch < 3; ch++) clip_range(clip, ch, &lo[ch], &hi[ch]);
    size_t total = dj_tensor_numel(e);
#pragma omp parallel for schedule(static) if (total > 65536)
    for (size_t i = 0; i < total; i++) {
        int ch = (int)(i % 3);
        float v = x->data[i] + e->data[i];
        x_hat->data[i] = v < lo[ch] ? lo[ch] : v > hi[ch] ? hi[ch] : v;
    }
    return DJ_OK;
}

int dj_jnd_apply_backward(const dj_tensor *x, const dj_tensor *e, const dj_jnd_norm *clip, const dj_tensor *dx_hat,
                          dj_tensor *de, int accum) {
    int rc;
    const char *fn = "jnd_apply_backward";
    if ((rc = check_pair(fn, "x", x, "e", e)) || (rc = check_pair(fn, "dx_hat", dx_hat, "e", e)) ||
        (rc = check_pair(fn, "de", de, "e", e)))
        return rc;
    if (clip && (rc = check_norm(fn, clip))) return rc;
    float lo[3] = {-INFINITY, -INFINITY, -INFINITY}, hi[3] = {INFINITY, INFINITY, INFINITY};
    if (clip)
        for (int ch = 0; ch < 3; ch++) clip_range(clip, ch, &lo[ch], &hi[ch]);
    size_t total = dj_tensor_numel(e);
#pragma omp parallel for schedule(static) if (total > 65536)
    for (size_t i = 0; i < total; i++) {
        int ch = (int)(i % 3);
        float v = x->data[i] + e->data[i]; /* the forward's value, bit for bit */
        float g = (v >= lo[ch] && v <= hi[ch]) ? dx_hat->data[i] : 0.0f;
        de->data[i] = accum ? de->data[i] + g : g;
    }
    return DJ_OK;
}

/* 8-bit pixel of a normalised value, as dj_denormalize_u8 computes it. */
static inline float to_u8(float v, float mean, float std) {
    float p = floorf((v * std + mean) * 255.0f + 0.5f);
    return p < 0.0f ? 0.0f : p > 255.0f ? 255.0f : p;
}

int dj_jnd_psnr(const dj_tensor *x, const dj_tensor *x_hat, const dj_jnd_norm *norm, int quantize, float *per_image,
                double *mean) {
    int rc;
    if ((rc = check_pair("jnd_psnr", "x", x, "x_hat", x_hat))) return rc;
    dj_jnd_norm nm = norm ? *norm : dj_jnd_norm_paper();
    if ((rc = check_norm("jnd_psnr", &nm))) return rc;
    const size_t per = (size_t)x->h * x->w * 3;
    double total = 0;
    for (int i = 0; i < x->n; i++) {
        const float *a = x->data + (size_t)i * per, *b = x_hat->data + (size_t)i * per;
        double se = 0;
        for (size_t j = 0; j < per; j++) {
            int ch = (int)(j % 3);
            double d;
            if (quantize)
                d = (double)to_u8(b[j], nm.mean[ch], nm.std[ch]) - (double)to_u8(a[j], nm.mean[ch], nm.std[ch]);
            else
                d = ((double)b[j] - (double)a[j]) * nm.std[ch] * 255.0;
            se += d * d;
        }
        double mse = se / (double)per;
        double psnr = DJ_JND_PSNR_MAX;
        if (isnan(mse))
            psnr = NAN; /* a NaN in the input is reported, not hidden */
        else if (mse > 0)
            psnr = fmin(10.0 * log10(255.0 * 255.0 / mse), DJ_JND_PSNR_MAX);
        if (per_image) per_image[i] = (float)psnr;
        total += psnr;
    }
    if (mean) *mean = total / x->n;
    return DJ_OK;
}

int dj_jnd_mean_abs_255(const dj_tensor *e, const dj_jnd_norm *norm, float *per_image, double *mean) {
    int rc;
    if ((rc = check_tensor("jnd_mean_abs_255", "e", e, 3))) return rc;
    dj_jnd_norm nm = norm ? *norm : dj_jnd_norm_paper();
    if ((rc = check_norm("jnd_mean_abs_255", &nm))) return rc;
    const size_t per = (size_t)e->h * e->w * 3;
    double total = 0;
    for (int i = 0; i < e->n; i++) {
        const float *a = e->data + (size_t)i * per;
        double s = 0;
        for (size_t j = 0; j < per; j++) s += fabs((double)a[j] * nm.std[j % 3]);
        double m = s * 255.0 / (double)per;
        if (per_image) per_image[i] = (float)m;
        total += m;
    }
    if (mean) *mean = total / e->n;
    return DJ_OK;
}
