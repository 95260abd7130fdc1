/* The compression measurement's summaries (BD-rate, savings) and its
 * reports: results.csv, report.md, report.json, the montage PNG.
 * dmvjnd/compress.h. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dmvjnd/budget.h"
#include "dmvjnd/compress.h"
#include "dmvjnd/dmvjnd.h"
#include "dmvjnd/image.h"
#include "dmvjnd/json.h"

static int cmp_rate(const void *a, const void *b) {
    const dj_rd_point *x = a, *y = b;
    return (x->rate > y->rate) - (x->rate < y->rate);
}

/* A method's (rate, quality) curve in rate order; quality = rca_mean, or
 * the extras' mean RCA. Returns the count. */
static int curve(const dj_compress_result *res, const char *method, int extra, dj_rd_point *out) {
    int n = 0;
    for (int p = 0; p < res->npoints; p++)
        if (!strcmp(res->points[p].method, method)) {
            out[n].rate = res->points[p].bpp;
            out[n].quality = extra ? res->points[p].extra_rca_mean : res->points[p].rca_mean;
            n++;
        }
    qsort(out, (size_t)n, sizeof *out, cmp_rate);
    return n;
}

static double bd(const dj_rd_point *a, int na, const dj_rd_point *t, int nt) {
    double v = NAN;
    if (na < 2 || nt < 2 || dj_bd_rate(a, na, t, nt, &v)) return NAN;
    return v;
}

static double rate_at(const dj_rd_point *c, int n, double r) {
    double v = NAN;
    if (n < 2 || dj_rd_rate_at(c, n, r, &v)) return NAN;
    return v;
}

int dj_compress_summarise(dj_compress_result *res) {
    free(res->summary);
    res->summary = NULL;
    res->nsummary = 0;
    res->plain_rate_at_99 = NAN;
    res->plain_q_99 = 0;
    res->plain_bpp_q_99 = NAN;
    dj_rd_point *a = malloc((size_t)(res->npoints + 1) * sizeof *a), *ax = malloc((size_t)(res->npoints + 1) * sizeof *a);
    dj_rd_point *t = malloc((size_t)(res->npoints + 1) * sizeof *t), *tx = malloc((size_t)(res->npoints + 1) * sizeof *t);
    res->summary = calloc((size_t)(res->npoints + 1), sizeof *res->summary);
    if (!a || !ax || !t || !tx || !res->summary) {
        free(a), free(ax), free(t), free(tx);
        return dj_error(DJ_ENOMEM, "compress summary: out of memory");
    }
    int na = curve(res, "plain", 0, a), nax = res->extras ? curve(res, "plain", 1, ax) : 0;
    if (na) {
        res->plain_rate_at_99 = rate_at(a, na, 0.99);
        for (int p = 0; p < res->npoints; p++) {
            const dj_compress_point *pt = &res->points[p];
            if (!strcmp(pt->method, "plain") && pt->rca_mean >= 0.99 && (!res->plain_q_99 || pt->quality < res->plain_q_99)) {
                res->plain_q_99 = pt->quality;
                res->plain_bpp_q_99 = pt->bpp;
            }
        }
    }
    for (int p = 0; p < res->npoints; p++) {
        const char *m = res->points[p].method;
        if (!strcmp(m, "plain") || !strcmp(m, "guard")) continue;
        int seen = 0;
        for (int s = 0; s < res->nsummary; s++) seen |= !strcmp(res->summary[s].method, m);
        if (seen) continue;
        dj_compress_summary *s = &res->summary[res->nsummary++];
        snprintf(s->method, sizeof s->method, "%s", m);
        int nt = curve(res, m, 0, t);
        s->bd_rate = na ? bd(a, na, t, nt) : NAN;
        s->bd_rate_extra = nax ? bd(ax, nax, tx, curve(res, m, 1, tx)) : NAN;
        double r[2] = {0.95, 0.98}, *out[2] = {&s->saving95, &s->saving98};
        for (int k = 0; k < 2; k++) {
            double rp = na ? rate_at(a, na, r[k]) : NAN, rt = rate_at(t, nt, r[k]);
            *out[k] = rp > 0 && rt > 0 ? 1 - rt / rp : NAN;
        }
    }
    free(a), free(ax), free(t), free(tx);
    return DJ_OK;
}

/* ------------------------------------------------------------ text */

typedef struct sbuf {
    char *s;
    size_t len, cap;
    int oom;
} sbuf;

static void put(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(sbuf *b, const char *fmt, ...) {
    if (b->oom) return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->s ? b->s + b->len : NULL, b->s ? b->cap - b->len : 0, fmt, ap);
        va_end(ap);
        if (n < 0) {
            b->oom = 1;
            return;
        }
        if (b->s && b->len + (size_t)n < b->cap) {
            b->len += (size_t)n;
            return;
        }
        size_t cap = (b->cap ? b->cap * 2 : 4096) + (size_t)n;
        char *s = realloc(b->s, cap);
        if (!s) {
            b->oom = 1;
            return;
        }
        b->s = s;
        b->cap = cap;
    }
}

static int finish(sbuf *b, char **text) {
    if (b->oom || !b->s) {
        free(b->s);
        return dj_error(DJ_ENOMEM, "compress report: out of memory");
    }
    *text = b->s;
    return DJ_OK;
}

/* A number for CSV/Markdown: empty / "-" when NaN. */
static void num(sbuf *b, const char *fmt, double v, const char *nan) {
    if (isnan(v)) put(b, "%s", nan);
    else put(b, fmt, v);
}

int dj_compress_csv(const dj_compress_result *res, char **text) {
    sbuf b = {0};
    put(&b, "codec,strength,method,quality,images,bpp,file_bpp,rca_mean");
    for (int k = 0; k < res->classifiers; k++) put(&b, ",rca_%s", res->tags[k]);
    put(&b, ",accuracy,psnr_db,psnr_mse_db,mean_q,fallback,feedback,lossless");
    if (res->extras) {
        put(&b, ",extra_rca_mean");
        for (int k = 0; k < res->extras; k++) put(&b, ",extra_rca_%s", res->tags[res->classifiers + k]);
    }
    put(&b, "\n");
    for (int p = 0; p < res->npoints; p++) {
        const dj_compress_point *pt = &res->points[p];
        put(&b, "%s,%g,%s,%d,%d,%.6f,%.6f,%.6f", dj_compress_codec_name(res->codec), res->strength, pt->method,
            pt->quality, pt->images, pt->bpp, pt->file_bpp, pt->rca_mean);
        for (int k = 0; k < res->classifiers; k++) put(&b, ",%.6f", pt->rca[k]);
        put(&b, ",");
        num(&b, "%.6f", pt->accuracy, "");
        put(&b, ",%.4f,%.4f,%.3f,%d,%d,%d", pt->psnr_db, pt->psnr_mse_db, pt->mean_q, pt->fallback, pt->feedback,
            pt->lossless);
        if (res->extras) {
            put(&b, ",%.6f", pt->extra_rca_mean);
            for (int k = 0; k < res->extras; k++) put(&b, ",%.6f", pt->extra_rca[k]);
        }
        put(&b, "\n");
    }
    return finish(&b, text);
}

static void pct(sbuf *b, double v) { num(b, "%+.1f%%", 100 * v, "n/a"); }

int dj_compress_markdown(const dj_compress_result *res, const char *command, char **text) {
    sbuf b = {0};
    put(&b, "# JND-guided %s compression for machines\n\n", res->codec == DJ_CODEC_WEBP ? "WebP" : "JPEG");
    if (command) put(&b, "Command: `%s`\n\n", command);
    put(&b, "%d images, strength s = %g. Mean budget before s: jnd %.2f levels", res->images, res->strength,
        res->mean_jnd_budget);
    if (!isnan(res->mean_hvs_budget)) put(&b, ", hvs %.2f levels", res->mean_hvs_budget);
    put(&b, ".\nbpp = 8 x entropy-coded bytes (no headers) / pixels; file bpp counts whole files. RCA: share of "
            "decoded images a classifier labels as it labelled the original (mean of the %d: %s",
        res->classifiers, res->tags[0]);
    for (int k = 1; k < res->classifiers; k++) put(&b, ", %s", res->tags[k]);
    put(&b, "). PSNR: mean of per-image dB.\n\n## BD-rate and bits saved against plain\n\n");
    put(&b, "BD-rate on (bpp, mean RCA), PCHIP, over the RCA range both cover: negative = fewer bits. Saved at "
            "RCA r: 1 - bpp_method(r) / bpp_plain(r) (positive = fewer bits; n/a = r outside a curve).\n\n");
    put(&b, "| method | BD-rate | saved at RCA 0.95 | saved at RCA 0.98 |%s\n", res->extras ? " BD-rate, extra classifiers |" : "");
    put(&b, "|---|---:|---:|---:|%s\n", res->extras ? "---:|" : "");
    for (int s = 0; s < res->nsummary; s++) {
        const dj_compress_summary *m = &res->summary[s];
        put(&b, "| %s | ", m->method);
        pct(&b, m->bd_rate);
        put(&b, " | ");
        pct(&b, m->saving95);
        put(&b, " | ");
        pct(&b, m->saving98);
        put(&b, " |");
        if (res->extras) {
            put(&b, " ");
            pct(&b, m->bd_rate_extra);
            put(&b, " |");
        }
        put(&b, "\n");
    }
    for (int p = 0; p < res->npoints; p++) {
        const dj_compress_point *pt = &res->points[p];
        if (strcmp(pt->method, "guard")) continue;
        put(&b, "\n## guard (the known classifiers check every image)\n\n%.4f bpp at RCA %.4f (mean quality %.1f; "
                "%d image(s) coded at 100 with error feedback and %d lossless because no plain quality kept their "
                "labels; %d kept them with no candidate and were coded at 100). Plain needs ",
            pt->bpp, pt->rca_mean, pt->mean_q, pt->feedback, pt->lossless, pt->fallback);
        num(&b, "%.4f bpp", res->plain_rate_at_99, "(out of range)");
        put(&b, " for RCA 0.99 (interpolated); the lowest grid quality with RCA >= 0.99 is ");
        if (res->plain_q_99) put(&b, "q %d at %.4f bpp.\n", res->plain_q_99, res->plain_bpp_q_99);
        else put(&b, "none.\n");
    }
    put(&b, "\n## Points\n\n| method | q | bpp | file bpp | RCA mean |");
    for (int k = 0; k < res->classifiers; k++) put(&b, " %s |", res->tags[k]);
    put(&b, " accuracy | PSNR dB | mean q |%s\n|---|---:|---:|---:|---:|", res->extras ? " extra RCA |" : "");
    for (int k = 0; k < res->classifiers + 3 + (res->extras ? 1 : 0); k++) put(&b, "---:|");
    put(&b, "\n");
    for (int p = 0; p < res->npoints; p++) {
        const dj_compress_point *pt = &res->points[p];
        put(&b, "| %s | %d | %.4f | %.4f | %.4f |", pt->method, pt->quality, pt->bpp, pt->file_bpp, pt->rca_mean);
        for (int k = 0; k < res->classifiers; k++) put(&b, " %.4f |", pt->rca[k]);
        put(&b, " ");
        num(&b, "%.4f", pt->accuracy, "-");
        put(&b, " | %.2f | %.1f |", pt->psnr_db, pt->mean_q);
        if (res->extras) put(&b, " %.4f |", pt->extra_rca_mean);
        put(&b, "\n");
    }
    if (res->extras) {
        put(&b, "\nExtra classifiers (the JND was not trained against them): ");
        for (int k = 0; k < res->extras; k++) put(&b, "%s%s", k ? ", " : "", res->tags[res->classifiers + k]);
        put(&b, "; per classifier RCA in results.csv.\n");
    }
    return finish(&b, text);
}

static void jnum(dj_jw *j, double v) {
    if (isnan(v)) dj_jw_null(j);
    else dj_jw_double(j, v);
}

int dj_compress_json(const dj_compress_result *res, double wall_s, size_t peak_rss, char **text) {
    dj_jw j;
    dj_jw_init(&j, 2);
    dj_jw_begin_object(&j);
    dj_jw_key(&j, "codec");
    dj_jw_string(&j, dj_compress_codec_name(res->codec));
    dj_jw_key(&j, "strength");
    dj_jw_double(&j, res->strength);
    dj_jw_key(&j, "images");
    dj_jw_int(&j, res->images);
    dj_jw_key(&j, "mean_jnd_budget");
    jnum(&j, res->mean_jnd_budget);
    dj_jw_key(&j, "mean_hvs_budget");
    jnum(&j, res->mean_hvs_budget);
    dj_jw_key(&j, "classifiers");
    dj_jw_begin_array(&j);
    for (int k = 0; k < res->classifiers; k++) dj_jw_string(&j, res->tags[k]);
    dj_jw_end_array(&j);
    dj_jw_key(&j, "extra_classifiers");
    dj_jw_begin_array(&j);
    for (int k = 0; k < res->extras; k++) dj_jw_string(&j, res->tags[res->classifiers + k]);
    dj_jw_end_array(&j);
    dj_jw_key(&j, "points");
    dj_jw_begin_array(&j);
    for (int p = 0; p < res->npoints; p++) {
        const dj_compress_point *pt = &res->points[p];
        dj_jw_begin_object(&j);
        dj_jw_key(&j, "method");
        dj_jw_string(&j, pt->method);
        dj_jw_key(&j, "quality");
        dj_jw_int(&j, pt->quality);
        dj_jw_key(&j, "images");
        dj_jw_int(&j, pt->images);
        dj_jw_key(&j, "bpp");
        jnum(&j, pt->bpp);
        dj_jw_key(&j, "file_bpp");
        jnum(&j, pt->file_bpp);
        dj_jw_key(&j, "rca_mean");
        jnum(&j, pt->rca_mean);
        dj_jw_key(&j, "rca");
        dj_jw_begin_object(&j);
        for (int k = 0; k < res->classifiers; k++) {
            dj_jw_key(&j, res->tags[k]);
            jnum(&j, pt->rca[k]);
        }
        dj_jw_end_object(&j);
        dj_jw_key(&j, "accuracy");
        jnum(&j, pt->accuracy);
        dj_jw_key(&j, "psnr_db");
        jnum(&j, pt->psnr_db);
        dj_jw_key(&j, "psnr_mse_db");
        jnum(&j, pt->psnr_mse_db);
        dj_jw_key(&j, "mean_quality");
        jnum(&j, pt->mean_q);
        dj_jw_key(&j, "fallback");
        dj_jw_int(&j, pt->fallback);
        dj_jw_key(&j, "feedback");
        dj_jw_int(&j, pt->feedback);
        dj_jw_key(&j, "lossless");
        dj_jw_int(&j, pt->lossless);
        if (res->extras) {
            dj_jw_key(&j, "extra_rca_mean");
            jnum(&j, pt->extra_rca_mean);
            dj_jw_key(&j, "extra_rca");
            dj_jw_begin_object(&j);
            for (int k = 0; k < res->extras; k++) {
                dj_jw_key(&j, res->tags[res->classifiers + k]);
                jnum(&j, pt->extra_rca[k]);
            }
            dj_jw_end_object(&j);
        }
        dj_jw_end_object(&j);
    }
    dj_jw_end_array(&j);
    const char *keys[3] = {"bd_rate", "saving_at_rca", "bd_rate_extra"};
    for (int w = 0; w < 3; w++) {
        if (w == 2 && !res->extras) continue;
        dj_jw_key(&j, keys[w]);
        dj_jw_begin_object(&j);
        for (int s = 0; s < res->nsummary; s++) {
            const dj_compress_summary *m = &res->summary[s];
            dj_jw_key(&j, m->method);
            if (w == 1) {
                dj_jw_begin_object(&j);
                dj_jw_key(&j, "0.95");
                jnum(&j, m->saving95);
                dj_jw_key(&j, "0.98");
                jnum(&j, m->saving98);
                dj_jw_end_object(&j);
            } else {
                jnum(&j, w == 0 ? m->bd_rate : m->bd_rate_extra);
            }
        }
        dj_jw_end_object(&j);
    }
    dj_jw_key(&j, "plain_bpp_at_rca_0.99");
    jnum(&j, res->plain_rate_at_99);
    dj_jw_key(&j, "plain_quality_rca_0.99");
    if (res->plain_q_99) dj_jw_int(&j, res->plain_q_99);
    else dj_jw_null(&j);
    dj_jw_key(&j, "plain_bpp_quality_rca_0.99");
    jnum(&j, res->plain_bpp_q_99);
    dj_jw_key(&j, "jnd_seconds");
    dj_jw_double(&j, res->gen_seconds);
    dj_jw_key(&j, "code_seconds");
    dj_jw_double(&j, res->code_seconds);
    dj_jw_key(&j, "peak_rss_bytes");
    dj_jw_uint(&j, peak_rss);
    dj_jw_key(&j, "wall_s");
    dj_jw_double(&j, wall_s);
    dj_jw_end_object(&j);
    return dj_jw_finish(&j, text, NULL);
}

int dj_compress_montage_write(const char *path, const uint8_t *const *panels, int rows, int cols, int h, int w,
                              int zoom) {
    const int gap = 2;
    if (!path || !panels || rows < 1 || cols < 1 || h < 1 || w < 1 || zoom < 1 || zoom > 16)
        return dj_error(DJ_EINVAL, "compress montage: bad arguments");
    const long W = (long)cols * w * zoom + (cols + 1) * gap, H = (long)rows * h * zoom + (rows + 1) * gap;
    if (W > DJ_IMAGE_MAX_SIDE || H > DJ_IMAGE_MAX_SIDE)
        return dj_error(DJ_EINVAL, "compress montage: %ldx%ld pixels is too large", W, H);
    uint8_t *out = malloc((size_t)W * H * 3);
    if (!out) return dj_error(DJ_ENOMEM, "compress montage: out of memory");
    memset(out, 255, (size_t)W * H * 3);
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < cols; c++) {
            const uint8_t *src = panels[(size_t)r * cols + c];
            if (!src) continue;
            long ox = gap + (long)c * (w * zoom + gap), oy = gap + (long)r * (h * zoom + gap);
            for (int y = 0; y < h * zoom; y++)
                for (int x = 0; x < w * zoom; x++)
                    memcpy(out + ((size_t)(oy + y) * W + ox + x) * 3, src + ((size_t)(y / zoom) * w + x / zoom) * 3, 3);
        }
    int rc = dj_png_write_rgb(path, out, (int)H, (int)W);
    free(out);
    return rc;
}
