/* dmvjnd generate: the JND image e and the stored x + e of CIFAR-10 records
 * or PNG files of any size, with each classifier's label before and after.
 * A thin layer over dj_jnd_generator_run (dmvjnd/jnd_generate.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "commands.h"
#include "dmvjnd/dmvjnd.h"
#include "dmvjnd/fileio.h"
#include "dmvjnd/image.h"
#include "dmvjnd/jnd_generate.h"
#include "default_models.h"
#include "inputs.h"
#include "io/json.h"

/* One image's name in the output folder: "test-00017" for a CIFAR record,
 * the PNG's file name without its folder and ".png" otherwise. */
static void image_name(const char *png, const char *split, int record, char *buf, size_t size) {
    if (!png) {
        snprintf(buf, size, "%s-%05d", split, record);
        return;
    }
    const char *base = strrchr(png, '/');
    base = base ? base + 1 : png;
    size_t len = strlen(base);
    if (len > 4 && !strcmp(base + len - 4, ".png")) len -= 4;
    snprintf(buf, size, "%.*s", (int)len, base);
}

typedef struct out_files {
    const char *dir;
    float gain;
    FILE *csv;
    dj_jw json;
    int json_on;
    const dj_jnd_generator *g;
    int keep_labels;      /* --keep-labels: e backed off where a label changed */
    int images, all_kept, kept_total;
    int net_kept_total;   /* labels the network's own e kept (before backing off) */
    int backed_off;       /* images whose e was scaled down (or dropped)          */
    double psnr_sum;
} out_files;

/* --keep-labels: counts what the network's e did, then backs it off where it
 * changed a label (dj_jnd_generator_keep_labels). Without it, scale stays 1. */
static int keep_labels(dj_jnd_generator *g, out_files *o, const uint8_t *rgb, int n, int h, int w, uint8_t *xh,
                       float *e, dj_jnd_image_result *res, float *scale) {
    for (int i = 0; i < n; i++) {
        o->net_kept_total += res[i].kept;
        scale[i] = 1.f;
    }
    if (!o->keep_labels) return DJ_OK;
    int rc = dj_jnd_generator_keep_labels(g, rgb, n, h, w, xh, e, res, scale);
    for (int i = 0; !rc && i < n; i++) o->backed_off += scale[i] < 1.f;
    return rc;
}

static int write_one(out_files *o, const char *name, const char *source, const uint8_t *xh, const float *e, int h,
                     int w, const dj_jnd_image_result *r, float scale) {
    char path[4096];
    size_t n = (size_t)h * w * 3;
    uint8_t *ev = malloc(n);
    if (!ev) return dj_error(DJ_ENOMEM, "generate: out of memory");
    dj_jnd_e_to_u8(e, n, o->gain, ev);
    snprintf(path, sizeof path, "%s/%s_e.png", o->dir, name);
    int rc = dj_png_write_rgb(path, ev, h, w);
    free(ev);
    if (rc) return rc;
    snprintf(path, sizeof path, "%s/%s_jnd.png", o->dir, name);
    if ((rc = dj_png_write_rgb(path, xh, h, w))) return rc;
    const int K = dj_jnd_generator_count(o->g);
    fprintf(o->csv, "%s,%s,%d,%d", name, source, h, w);
    for (int k = 0; k < K; k++) fprintf(o->csv, ",%d,%d,%d", r->before[k], r->after[k], r->before[k] == r->after[k]);
    fprintf(o->csv, ",%d,%.4f,%.4f,%.4f", r->kept, r->psnr, r->mean_abs_e, r->mean_abs_diff);
    if (o->keep_labels) fprintf(o->csv, ",%.6f", scale);
    fputc('\n', o->csv);
    if (o->json_on) {
        dj_jw *j = &o->json;
        dj_jw_begin_object(j);
        dj_jw_key(j, "image");
        dj_jw_string(j, name);
        dj_jw_key(j, "source");
        dj_jw_string(j, source);
        dj_jw_key(j, "height");
        dj_jw_int(j, h);
        dj_jw_key(j, "width");
        dj_jw_int(j, w);
        dj_jw_key(j, "classifiers");
        dj_jw_begin_object(j);
        for (int k = 0; k < K; k++) {
            dj_jw_key(j, dj_jnd_generator_tag(o->g, k));
            dj_jw_begin_object(j);
            dj_jw_key(j, "before");
            dj_jw_int(j, r->before[k]);
            dj_jw_key(j, "after");
            dj_jw_int(j, r->after[k]);
            dj_jw_key(j, "kept");
            dj_jw_bool(j, r->before[k] == r->after[k]);
            dj_jw_end_object(j);
        }
        dj_jw_end_object(j);
        dj_jw_key(j, "kept_all");
        dj_jw_bool(j, r->kept == K);
        dj_jw_key(j, "psnr_db");
        dj_jw_double(j, r->psnr);
        dj_jw_key(j, "mean_abs_e");
        dj_jw_double(j, r->mean_abs_e);
        dj_jw_key(j, "mean_abs_diff");
        dj_jw_double(j, r->mean_abs_diff);
        if (o->keep_labels) {
            dj_jw_key(j, "scale");
            dj_jw_double(j, scale);
        }
        dj_jw_end_object(j);
    }
    o->images++;
    o->all_kept += r->kept == K;
    o->kept_total += r->kept;
    o->psnr_sum += r->psnr;
    return DJ_OK;
}

static int run_cifar(dj_jnd_generator *g, out_files *o, const char *dir, const char *split, int offset, int limit,
                     int batch) {
    cli_images im;
    int rc = cli_images_load_cifar(&im, dir, split, offset, limit);
    if (rc) return rc;
    const size_t nb = 32 * 32 * 3;
    uint8_t *xh = malloc((size_t)batch * nb);
    float *e = malloc((size_t)batch * nb * sizeof *e);
    dj_jnd_image_result *res = malloc((size_t)batch * sizeof *res);
    float *scale = malloc((size_t)batch * sizeof *scale);
    if (!xh || !e || !res || !scale) rc = dj_error(DJ_ENOMEM, "generate: out of memory");
    for (int s = 0; !rc && s < im.n; s += batch) {
        int n = im.n - s < batch ? im.n - s : batch;
        const uint8_t *x = im.pixels + (size_t)s * nb;
        if ((rc = dj_jnd_generator_run(g, x, n, 32, 32, xh, e, NULL, res))) break;
        if ((rc = keep_labels(g, o, x, n, 32, 32, xh, e, res, scale))) break;
        for (int i = 0; i < n && !rc; i++) {
            char name[64], source[64];
            image_name(NULL, split, im.index[s + i], name, sizeof name);
            snprintf(source, sizeof source, "cifar10:%s:%d", split, im.index[s + i]);
            rc = write_one(o, name, source, xh + (size_t)i * nb, e + (size_t)i * nb, 32, 32, &res[i], scale[i]);
        }
    }
    free(xh);
    free(e);
    free(res);
    free(scale);
    cli_images_free(&im);
    return rc;
}

static int run_png(dj_jnd_generator *g, out_files *o, const char *const *files, int count) {
    int rc = DJ_OK;
    for (int f = 0; f < count && !rc; f++) {
        dj_image img = {0};
        if ((rc = dj_png_read(files[f], &img))) break;
        size_t n = (size_t)img.h * img.w * 3;
        uint8_t *xh = malloc(n);
        float *e = malloc(n * sizeof *e);
        dj_jnd_image_result r;
        float scale = 1.f;
        if (!xh || !e) rc = dj_error(DJ_ENOMEM, "generate: out of memory");
        if (!rc) rc = dj_jnd_generator_run(g, img.rgb, 1, img.h, img.w, xh, e, NULL, &r);
        if (!rc) rc = keep_labels(g, o, img.rgb, 1, img.h, img.w, xh, e, &r, &scale);
        if (rc) rc = dj_error(rc, "%s: %s", files[f], dj_last_error());
        char name[1024];
        image_name(files[f], "", f, name, sizeof name);
        if (!rc) rc = write_one(o, name, files[f], xh, e, img.h, img.w, &r, scale);
        free(xh);
        free(e);
        dj_image_free(&img);
    }
    return rc;
}

int cmd_generate(int argc, char **argv) {
    const char **pngs = NULL, **cls = NULL;
    int npng = 0, ncls = 0;
    int rc = cli_take_repeated("generate", &argc, argv, "png", 1, &pngs, &npng);
    if (!rc) rc = cli_take_repeated("generate", &argc, argv, "classifier", 0, &cls, &ncls);
    if (rc) goto done;
    const char *model = NULL, *cifar = NULL, *split = NULL, *out = NULL;
    int offset = 0, limit = 0, json = 0, batch = 100, threads = 0, help = 0, keep = 0;
    double gain = 1.0;
    cli_opt opts[] = {
        {"model", OPT_STRING, &model, "trained DMV-JND model file (default: the shipped " DJ_MODEL_JND ")", 1, 0},
        {"classifier", OPT_STRING, NULL, "classifier weights file, repeated (default: the files the model names)",
         1, 0},
        {"cifar", OPT_STRING, &cifar, "CIFAR-10 folder (default folder when only --split is given)", 1, 0},
        {"split", OPT_STRING, &split, "test or train (default test)", 1, 0},
        {"offset", OPT_INT, &offset, "first record of the split (default 0)", 0, 49999},
        {"limit", OPT_INT, &limit, "number of records (default: to the end)", 0, 50000},
        {"png", OPT_STRING, NULL, "PNG files of any size (one or more after --png)", 1, 0},
        {"out", OPT_STRING, &out, "output folder (created): NAME_e.png, NAME_jnd.png, results.csv", 1, 0},
        {"e-gain", OPT_FLOAT, &gain, "contrast of the e images: 128 + gain*255*e (default 1: exact levels)", 0.01,
         100},
        {"keep-labels", OPT_FLAG, &keep,
         "where e changes a label, scale it down to the largest k/9 that keeps them all (0 if none)", 0, 0},
        {"json", OPT_FLAG, &json, "print one JSON object with a row per image", 0, 0},
        {"batch", OPT_INT, &batch, "CIFAR images per pass (default 100)", 1, 10000},
        {"threads", OPT_INT, &threads, "threads (default: all cores)", 0, 1024},
    };
    rc = cli_parse("generate",
                   "Generates the DMV-JND e of each image and the distorted image x + e (clipped, rounded to 8 "
                   "bits), and checks every classifier's label before and after.",
                   argc, argv, 1, opts, (int)(sizeof opts / sizeof *opts), &help);
    if (rc || help) goto done;
    rc = EXIT_USAGE;
    if (!out) {
        fprintf(stderr, "dmvjnd generate: --out DIR is required\n");
        goto done;
    }
    if ((cifar || split) == (npng > 0)) {
        fprintf(stderr, "dmvjnd generate: give either --cifar DIR [--split S] or --png FILE...\n");
        goto done;
    }
    if (npng && (offset || limit)) {
        fprintf(stderr, "dmvjnd generate: --offset and --limit are for --cifar\n");
        goto done;
    }
    if (!split) split = "test";
    if (strcmp(split, "test") && strcmp(split, "train")) {
        fprintf(stderr, "dmvjnd generate: --split must be test or train, not '%s'\n", split);
        goto done;
    }
    if (!model && (rc = cli_default_jnd_model("generate", &model))) goto done;
    dj_set_num_threads(threads);
    int st_rc = cli_prepare_out_dir(out);
    if (st_rc) {
        rc = cli_fail("generate", st_rc);
        goto done;
    }
    dj_jnd_generator *g = NULL;
    if ((st_rc = dj_jnd_generator_create(&g, model, ncls ? cls : NULL, ncls))) {
        rc = cli_fail("generate", st_rc);
        goto done;
    }
    out_files o = {.dir = out, .gain = (float)gain, .g = g, .json_on = json, .keep_labels = keep};
    char csv_path[4096];
    snprintf(csv_path, sizeof csv_path, "%s/results.csv", out);
    char *csv_buf = NULL;
    size_t csv_len = 0;
    o.csv = open_memstream(&csv_buf, &csv_len);
    if (!o.csv) st_rc = dj_error(DJ_ENOMEM, "generate: out of memory");
    if (!st_rc) {
        const int K = dj_jnd_generator_count(g);
        fprintf(o.csv, "image,source,height,width");
        for (int k = 0; k < K; k++) {
            const char *t = dj_jnd_generator_tag(g, k);
            fprintf(o.csv, ",%s_before,%s_after,%s_kept", t, t, t);
        }
        fprintf(o.csv, ",kept,psnr_db,mean_abs_e,mean_abs_diff%s\n", keep ? ",scale" : "");
        if (json) {
            dj_jw_init(&o.json, 2);
            dj_jw_begin_object(&o.json);
            dj_jw_key(&o.json, "model");
            dj_jw_string(&o.json, model);
            dj_jw_key(&o.json, "images");
            dj_jw_begin_array(&o.json);
        }
        st_rc = npng ? run_png(g, &o, pngs, npng) : run_cifar(g, &o, cifar, split, offset, limit, batch);
    }
    if (o.csv) fclose(o.csv);
    /* results.csv holds the rows of every image written, also after a failure */
    if (csv_buf && o.images > 0) {
        int wrc = dj_write_file_atomic(csv_path, csv_buf, csv_len);
        if (!st_rc) st_rc = wrc;
    }
    free(csv_buf);
    const int K = dj_jnd_generator_count(g);
    if (json) {
        dj_jw_end_array(&o.json);
        dj_jw_key(&o.json, "kept_all");
        dj_jw_double(&o.json, o.images ? (double)o.all_kept / o.images : 0);
        dj_jw_key(&o.json, "rca_mean");
        dj_jw_double(&o.json, o.images ? (double)o.kept_total / ((double)o.images * K) : 0);
        dj_jw_key(&o.json, "psnr_db");
        dj_jw_double(&o.json, o.images ? o.psnr_sum / o.images : 0);
        if (keep) {
            dj_jw_key(&o.json, "network_rca_mean"); /* the network's own e, before backing off */
            dj_jw_double(&o.json, o.images ? (double)o.net_kept_total / ((double)o.images * K) : 0);
            dj_jw_key(&o.json, "backed_off");
            dj_jw_int(&o.json, o.backed_off);
        }
        dj_jw_end_object(&o.json);
        char *text = NULL;
        if (!st_rc && !dj_jw_finish(&o.json, &text, NULL)) printf("%s\n", text);
        else dj_jw_free(&o.json);
        free(text);
    } else if (o.images) {
        printf("%d image(s) -> %s: every label kept on %d (%.2f%%), labels kept %.2f%%, mean PSNR %.2f dB\n",
               o.images, out, o.all_kept, 100.0 * o.all_kept / o.images,
               100.0 * o.kept_total / ((double)o.images * K), o.psnr_sum / o.images);
        if (keep)
            printf("--keep-labels: the network's e kept %.2f%% of the labels; e scaled down on %d image(s)\n",
                   100.0 * o.net_kept_total / ((double)o.images * K), o.backed_off);
    }
    rc = st_rc ? cli_fail("generate", st_rc) : EXIT_OK;
    dj_jnd_generator_destroy(g);
done:
    free((void *)pngs);
    free((void *)cls);
    return rc;
}
