/* Distortion budgets b (8-bit levels per pixel and channel) and the budgeted
 * pre-filter that spends them: each value moves toward a target that is
 * cheaper to code (a smoothed image), never further than s*b.
 *
 * The budget comes from the paper's rule (Sec. III-D): a quantiser of step
 * 2b errs by at most b, so b = |e| on the 8-bit scale is what the machine
 * tolerates. Flat and rescaled budgets are the controls: the same total
 * distortion, spent without regard to where the JND says it is safe. */
#include <math.h>
#include <stdlib.h>

#include "dmvjnd/budget.h"
#include "dmvjnd/dmvjnd.h"

void dj_budget_from_e(const float *e, size_t n, float *budget) {
    for (size_t i = 0; i < n; i++) budget[i] = 255.0f * fabsf(e[i]);
}

void dj_budget_from_map(const float *map, int h, int w, float *budget) {
    size_t n = (size_t)(h > 0 ? h : 0) * (size_t)(w > 0 ? w : 0);
    for (size_t i = 0; i < n; i++) budget[3 * i] = budget[3 * i + 1] = budget[3 * i + 2] = map[i];
}

/* Mean in double: a float running sum loses the last digits past ~1e7 values. */
static double mean_of(const float *v, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += v[i];
    return n ? s / (double)n : 0.0;
}

void dj_budget_flat_like(const float *like, size_t n, float *budget) {
    float m = (float)mean_of(like, n);
    for (size_t i = 0; i < n; i++) budget[i] = m;
}

double dj_budget_scale_to_mean(float *budget, size_t n, double target_mean) {
    double m = mean_of(budget, n);
    if (!(m > 0)) return 0.0;
    double f = target_mean / m;
    for (size_t i = 0; i < n; i++) budget[i] = (float)(budget[i] * f);
    return f;
}

void dj_prefilter(const uint8_t *x, const uint8_t *target, const float *budget, float s, size_t n, uint8_t *out) {
    for (size_t i = 0; i < n; i++) {
        float lim = s * budget[i];
        if (!(lim > 0)) lim = 0; /* negative or NaN budget: no move */
        float want = (float)target[i] - (float)x[i];
        /* Rounded toward zero, so that the budget is never exceeded: when it
         * does not bind, want is already an integer. */
        float m = truncf(want > lim ? lim : want < -lim ? -lim : want);
        float v = (float)x[i] + m;
        out[i] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
    }
}

int dj_smooth_target(const uint8_t *rgb, int h, int w, float sigma, uint8_t *out) {
    if (!rgb || !out) return dj_error(DJ_EINVAL, "smooth target: NULL image or output");
    if (h < 1 || w < 1) return dj_error(DJ_EINVAL, "smooth target: empty image %dx%d", h, w);
    if (!(sigma > 0 && sigma <= 64)) return dj_error(DJ_EINVAL, "smooth target: sigma %g not in (0, 64]", sigma);
    int r = (int)ceil(3.0 * sigma);
    size_t n = (size_t)h * w * 3;
    float *k = malloc((size_t)(2 * r + 1) * sizeof *k);
    float *tmp = malloc(n * sizeof *tmp);
    if (!k || !tmp) {
        free(k);
        free(tmp);
        return dj_error(DJ_ENOMEM, "smooth target: no memory for a %dx%d image", h, w);
    }
    double sum = 0;
    for (int i = -r; i <= r; i++) sum += k[i + r] = (float)exp(-(double)i * i / (2.0 * sigma * sigma));
    for (int i = 0; i <= 2 * r; i++) k[i] = (float)(k[i] / sum);
    /* Rows, then columns, replicate border, each channel on its own. */
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int c = 0; c < 3; c++) {
                double s = 0;
                for (int i = -r; i <= r; i++) {
                    int xx = x + i < 0 ? 0 : x + i >= w ? w - 1 : x + i;
                    s += (double)k[i + r] * rgb[((size_t)y * w + xx) * 3 + c];
                }
                tmp[((size_t)y * w + x) * 3 + c] = (float)s;
            }
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int c = 0; c < 3; c++) {
                double s = 0;
                for (int i = -r; i <= r; i++) {
                    int yy = y + i < 0 ? 0 : y + i >= h ? h - 1 : y + i;
                    s += (double)k[i + r] * tmp[((size_t)yy * w + x) * 3 + c];
                }
                double v = floor(s + 0.5);
                out[((size_t)y * w + x) * 3 + c] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
            }
    free(k);
    free(tmp);
    return DJ_OK;
}
