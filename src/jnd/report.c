/* The evaluation report of `dmvjnd eval`, as JSON and as Markdown.
 * dmvjnd/jnd_eval.h. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dmvjnd/dmvjnd.h"
#include "dmvjnd/jnd_eval.h"
#include "dmvjnd/json.h"

#define STEPS DJ_JND_HOMOGENEITY_STEPS

static void json_per_classifier(dj_jw *w, const dj_jnd_eval_report *r, const double *v) {
    dj_jw_begin_object(w);
    for (int k = 0; k < dj_jnd_generator_count(r->gen); k++) {
        dj_jw_key(w, dj_jnd_generator_tag(r->gen, k));
        dj_jw_double(w, v[k]);
    }
    dj_jw_end_object(w);
}

static void json_stats(dj_jw *w, const dj_jnd_eval_report *r, const char *key, const dj_jnd_eval_stats *s) {
    dj_jw_key(w, key);
    dj_jw_begin_object(w);
    dj_jw_key(w, "images");
    dj_jw_int(w, s->images);
    dj_jw_key(w, "rca_mean");
    dj_jw_double(w, s->rca_mean);
    dj_jw_key(w, "rca_per_classifier");
    json_per_classifier(w, r, s->rca);
    dj_jw_key(w, "all_kept");
    dj_jw_double(w, s->all_kept);
    dj_jw_key(w, "psnr_db");
    dj_jw_double(w, s->psnr_db);
    dj_jw_key(w, "mean_abs_e");
    dj_jw_double(w, s->mean_abs_e);
    dj_jw_key(w, "mean_abs_diff");
    dj_jw_double(w, s->mean_abs_diff);
    dj_jw_key(w, "wgn_rca_mean");
    dj_jw_double(w, s->wgn_rca_mean);
    dj_jw_key(w, "wgn_rca_per_classifier");
    json_per_classifier(w, r, s->wgn_rca);
    dj_jw_key(w, "wgn_psnr_db");
    dj_jw_double(w, s->wgn_psnr_db);
    dj_jw_key(w, "float_rca_mean");
    dj_jw_double(w, s->float_rca_mean);
    dj_jw_key(w, "float_rca_per_classifier");
    json_per_classifier(w, r, s->float_rca);
    dj_jw_key(w, "float_psnr_db");
    dj_jw_double(w, s->float_psnr_db);
    if (!isnan(s->hvs_rca_mean)) {
        dj_jw_key(w, "hvs_noise_rca_mean");
        dj_jw_double(w, s->hvs_rca_mean);
        dj_jw_key(w, "hvs_noise_rca_per_classifier");
        json_per_classifier(w, r, s->hvs_rca);
        dj_jw_key(w, "hvs_noise_psnr_db");
        dj_jw_double(w, s->hvs_psnr_db);
    }
    if (!isnan(s->camshaped_rca_mean)) {
        dj_jw_key(w, "cam_noise_rca_mean");
        dj_jw_double(w, s->camshaped_rca_mean);
        dj_jw_key(w, "cam_noise_rca_per_classifier");
        json_per_classifier(w, r, s->camshaped_rca);
        dj_jw_key(w, "cam_noise_psnr_db");
        dj_jw_double(w, s->camshaped_psnr_db);
    }
    dj_jw_key(w, "homogeneity_rca");
    dj_jw_begin_array(w);
    for (int j = 0; j < STEPS; j++) dj_jw_double(w, s->homogeneity_rca_mean[j]);
    dj_jw_end_array(w);
    dj_jw_key(w, "homogeneity_psnr_db");
    dj_jw_begin_array(w);
    for (int j = 0; j < STEPS; j++) dj_jw_double(w, s->homogeneity_psnr_db[j]);
    dj_jw_end_array(w);
    dj_jw_end_object(w);
}

int dj_jnd_eval_json(const dj_jnd_eval_report *r, char **text) {
    if (!r || !r->gen || !text) return dj_error(DJ_EINVAL, "jnd eval json: NULL argument");
    dj_jw w;
    dj_jw_init(&w, 2);
    dj_jw_begin_object(&w);
    dj_jw_key(&w, "model");
    dj_jw_string(&w, r->model_path ? r->model_path : "");
    dj_jw_key(&w, "classifiers");
    dj_jw_begin_array(&w);
    for (int k = 0; k < dj_jnd_generator_count(r->gen); k++) {
        dj_jw_begin_object(&w);
        dj_jw_key(&w, "tag");
        dj_jw_string(&w, dj_jnd_generator_tag(r->gen, k));
        dj_jw_key(&w, "file");
        dj_jw_string(&w, dj_jnd_generator_path(r->gen, k));
        dj_jw_end_object(&w);
    }
    dj_jw_end_array(&w);
    dj_jw_key(&w, "wgn_seed");
    dj_jw_uint(&w, r->seed);
    if (r->has_train) json_stats(&w, r, "train", &r->train);
    if (r->has_test) json_stats(&w, r, "test", &r->test);
    if (r->has_subset) {
        json_stats(&w, r, "test_subset", &r->test_subset);
        dj_jw_key(&w, "test_subset_records");
        dj_jw_int(&w, r->subset);
    }
    if (r->montage) {
        dj_jw_key(&w, "montage");
        dj_jw_string(&w, r->montage);
    }
    dj_jw_key(&w, "seconds");
    dj_jw_double(&w, r->seconds);
    if (r->peak_rss_bytes) {
        dj_jw_key(&w, "peak_rss_bytes");
        dj_jw_uint(&w, (uint64_t)r->peak_rss_bytes);
    }
    dj_jw_end_object(&w);
    return dj_jw_finish(&w, text, NULL);
}

/* ------------------------------------------------------------- Markdown */

typedef struct sbuf {
    char *p;
    size_t len, cap;
    int bad;
} sbuf;

static void put(sbuf *b, const char *fmt, ...) {
    if (b->bad) return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->p ? b->p + b->len : NULL, b->p ? b->cap - b->len : 0, fmt, ap);
        va_end(ap);
        if (n < 0) {
            b->bad = 1;
            return;
        }
        if (b->p && b->len + (size_t)n < b->cap) {
            b->len += (size_t)n;
            return;
        }
        size_t cap = (b->cap ? b->cap * 2 : 4096) + (size_t)n;
        char *q = realloc(b->p, cap);
        if (!q) {
            b->bad = 1;
            return;
        }
        b->p = q;
        b->cap = cap;
    }
}

static void pct(sbuf *b, double v) {
    if (isnan(v)) put(b, " - |");
    else put(b, " %.2f%% |", 100.0 * v);
}

static void md_stats(sbuf *b, const dj_jnd_eval_report *r, const char *title, const dj_jnd_eval_stats *s) {
    const int K = dj_jnd_generator_count(r->gen);
    put(b, "\n## %s (%d images)\n\n", title, s->images);
    put(b, "| | ");
    for (int k = 0; k < K; k++) put(b, "%s | ", dj_jnd_generator_tag(r->gen, k));
    put(b, "mean | PSNR (dB) |\n|---|");
    for (int k = 0; k <= K + 1; k++) put(b, "---|");
    put(b, "\n| RCA, x + e (stored 8-bit) |");
    for (int k = 0; k < K; k++) pct(b, s->rca[k]);
    pct(b, s->rca_mean);
    put(b, " %.2f |\n", s->psnr_db);
    if (!isnan(s->wgn_rca_mean)) {
        put(b, "| RCA, x + WGN of the same energy |");
        for (int k = 0; k < K; k++) pct(b, s->wgn_rca[k]);
        pct(b, s->wgn_rca_mean);
        put(b, " %.2f |\n", s->wgn_psnr_db);
    }
    if (!isnan(s->hvs_rca_mean)) {
        put(b, "| RCA, x + noise shaped by the human-vision JND (NAMM), same PSNR as x + e |");
        for (int k = 0; k < K; k++) pct(b, s->hvs_rca[k]);
        pct(b, s->hvs_rca_mean);
        put(b, " %.2f |\n", s->hvs_psnr_db);
    }
    if (!isnan(s->camshaped_rca_mean)) {
        put(b, "| RCA, x + noise shaped by 1 - CAM, same PSNR as x + e |");
        for (int k = 0; k < K; k++) pct(b, s->camshaped_rca[k]);
        pct(b, s->camshaped_rca_mean);
        put(b, " %.2f |\n", s->camshaped_psnr_db);
    }
    if (!isnan(s->float_rca_mean)) {
        put(b, "| RCA, x + e in float, not clamped or rounded |");
        for (int k = 0; k < K; k++) pct(b, s->float_rca[k]);
        pct(b, s->float_rca_mean);
        put(b, " %.2f |\n", s->float_psnr_db);
    }
    put(b, "\nEvery classifier kept its label on %.2f%% of the images; mean |e| %.2f levels, mean |x_hat - x| "
           "%.2f levels (8-bit).\n",
        100.0 * s->all_kept, s->mean_abs_e, s->mean_abs_diff);
    if (!isnan(s->homogeneity_rca_mean[0])) {
        put(b, "\nHomogeneity test, x + (k/9) e:\n\n| k/9 |");
        for (int j = 0; j < STEPS; j++) put(b, " %d/9 |", j + 1);
        put(b, " 9/9 |\n|---|");
        for (int j = 0; j <= STEPS; j++) put(b, "---|");
        put(b, "\n| RCA (mean) |");
        for (int j = 0; j < STEPS; j++) pct(b, s->homogeneity_rca_mean[j]);
        pct(b, s->rca_mean);
        put(b, "\n| PSNR (dB) |");
        for (int j = 0; j < STEPS; j++) put(b, " %.2f |", s->homogeneity_psnr_db[j]);
        put(b, " %.2f |\n", s->psnr_db);
    }
}

int dj_jnd_eval_markdown(const dj_jnd_eval_report *r, char **text) {
    if (!r || !r->gen || !text) return dj_error(DJ_EINVAL, "jnd eval markdown: NULL argument");
    sbuf b = {0};
    put(&b, "# DMV-JND evaluation: %s\n\n", r->model_path ? r->model_path : "");
    put(&b, "dmvjnd %s. Every figure is measured on the images a user would store: x + e clamped and rounded to "
            "8 bits. RCA = share of images a classifier labels as it labelled the original (paper Eq. 16-17); "
            "PSNR = mean of per-image PSNR. WGN: white Gaussian noise with the energy of each image's stored "
            "distortion (seed %llu). Shaped noise: a random sign per byte times, per pixel, the human-vision JND "
            "(NAMM, Yang et al. 2005) or 1 - c (c the classifiers' merged CAM), scaled per image to the PSNR of "
            "its stored x + e. Classifiers:\n\n",
        dj_version(), (unsigned long long)r->seed);
    for (int k = 0; k < dj_jnd_generator_count(r->gen); k++)
        put(&b, "- %s: `%s`\n", dj_jnd_generator_tag(r->gen, k), dj_jnd_generator_path(r->gen, k));
    if (r->has_train) md_stats(&b, r, "Training set", &r->train);
    if (r->has_test) md_stats(&b, r, "Test set", &r->test);
    if (r->has_subset) {
        char t[96];
        snprintf(t, sizeof t, "Test records 0-%d (bit-exact CIFAR-10)", r->subset - 1);
        md_stats(&b, r, t, &r->test_subset);
    }
    if (r->montage) put(&b, "\n## Examples\n\nCAM | e (mid-gray = no change) | x | x + e: `%s`\n", r->montage);
    put(&b, "\nEvaluation took %.1f s", r->seconds);
    if (r->peak_rss_bytes) put(&b, "; peak memory %.0f MiB", (double)r->peak_rss_bytes / (1024.0 * 1024.0));
    put(&b, ".\n");
    if (b.bad) {
        free(b.p);
        return dj_error(DJ_ENOMEM, "jnd eval markdown: out of memory");
    }
    *text = b.p;
    return DJ_OK;
}
