/* dmvjnd cam: class activation maps (dmvjnd/cam.h) of one or more
 * classifiers, each for its own predicted class, and their mean, written as
 * grey PNG heat maps and optionally as raw floats in a safetensors file. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "commands.h"
#include "dmvjnd/cam.h"
#include "dmvjnd/dmvjnd.h"
#include "dmvjnd/fileio.h"
#include "dmvjnd/image.h"
#include "dmvjnd/safetensors.h"
#include "default_models.h"
#include "inputs.h"

enum { SIDE = DJ_CIFAR10_SIDE, HW = DJ_CIFAR10_SIDE * DJ_CIFAR10_SIDE };

/* Maps of model m for all images: cams[m][i*HW + p]; predictions and
 * confidences likewise [m][i]. */
static int run_cams(const cli_models *ms, const cli_images *im, int batch, float **cams, int32_t **pred,
                    float **conf) {
    dj_tensor x = {0};
    int b = batch < im->n ? batch : im->n;
    int rc = dj_tensor_alloc(&x, b, SIDE, SIDE, DJ_CIFAR10_CHANNELS);
    for (int m = 0; !rc && m < ms->n; m++)
        for (int start = 0; !rc && start < im->n; start += b) {
            int n = im->n - start < b ? im->n - start : b;
            dj_tensor xv = dj_tensor_view(x.data, n, SIDE, SIDE, DJ_CIFAR10_CHANNELS);
            if (!(rc = cli_images_batch(im, start, ms->m[m].mean, ms->m[m].std, &xv)))
                rc = dj_cam_compute(ms->m[m].graph, &xv, cams[m] + (size_t)start * HW, pred[m] + start,
                                    conf[m] + start);
            if (rc) rc = dj_error(rc, "%s: %s", ms->paths[m], dj_last_error());
        }
    dj_tensor_free(&x);
    return rc;
}

static int write_png(const char *dir, int index, const char *tag, const float *map, uint8_t *grey) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%d_%s.png", dir, index, tag);
    for (int p = 0; p < HW; p++) {
        float v = map[p] * 255.0f + 0.5f; /* round half up; maps are in [0, 1] */
        grey[p] = (uint8_t)(v <= 0 ? 0 : v >= 255 ? 255 : (int)v);
    }
    return dj_png_write_gray(path, grey, SIDE, SIDE);
}

static int write_raw(const char *dir, const cli_models *ms, const cli_images *im, float **cams, const float *merged,
                     int32_t **pred, float **conf) {
    char path[4096];
    snprintf(path, sizeof path, "%s/cams.safetensors", dir);
    dj_st_writer *w = NULL;
    int64_t *idx = malloc((size_t)im->n * sizeof *idx + 1), *lab = malloc((size_t)im->n * sizeof *lab + 1);
    int64_t *preds = malloc((size_t)ms->n * im->n * sizeof *preds + 1);
    int rc = !idx || !lab || !preds ? dj_error(DJ_ENOMEM, "out of memory") : dj_st_writer_new(&w);
    if (rc) goto out;
    int64_t shape[3] = {im->n, SIDE, SIDE}, n1[1] = {im->n};
    char name[128];
    if ((rc = dj_st_writer_set_metadata(w, "format", "dmvjnd-cams")) ||
        (rc = dj_st_writer_set_metadata(w, "source", im->labels ? "cifar10" : "png")))
        goto out;
    if (im->labels) {
        char off[32];
        snprintf(off, sizeof off, "%d", im->offset);
        if ((rc = dj_st_writer_set_metadata(w, "split", im->split)) ||
            (rc = dj_st_writer_set_metadata(w, "offset", off)))
            goto out;
    } else {
        /* the files, one per line, in image order */
        size_t len = 1;
        for (int i = 0; i < im->n; i++) len += strlen(im->files[i]) + 1;
        char *files = malloc(len);
        if (!files) {
            rc = dj_error(DJ_ENOMEM, "out of memory");
            goto out;
        }
        files[0] = '\0';
        for (int i = 0; i < im->n; i++) {
            strcat(files, im->files[i]);
            if (i + 1 < im->n) strcat(files, "\n");
        }
        rc = dj_st_writer_set_metadata(w, "files", files);
        free(files);
        if (rc) goto out;
    }
    for (int m = 0; m < ms->n; m++) {
        snprintf(name, sizeof name, "model.%s", ms->tag[m]);
        if ((rc = dj_st_writer_set_metadata(w, name, ms->paths[m]))) goto out;
    }
    for (int i = 0; i < im->n; i++) {
        idx[i] = im->index[i];
        if (im->labels) lab[i] = im->labels[i];
    }
    if ((rc = dj_st_writer_add_i64(w, "index", 1, n1, idx))) goto out;
    if (im->labels && (rc = dj_st_writer_add_i64(w, "true_label", 1, n1, lab))) goto out;
    for (int m = 0; m < ms->n; m++) {
        snprintf(name, sizeof name, "cam.%s", ms->tag[m]);
        if ((rc = dj_st_writer_add_f32(w, name, 3, shape, cams[m]))) goto out;
        for (int i = 0; i < im->n; i++) preds[(size_t)m * im->n + i] = pred[m][i];
        snprintf(name, sizeof name, "label.%s", ms->tag[m]);
        if ((rc = dj_st_writer_add_i64(w, name, 1, n1, preds + (size_t)m * im->n))) goto out;
        snprintf(name, sizeof name, "confidence.%s", ms->tag[m]);
        if ((rc = dj_st_writer_add_f32(w, name, 1, n1, conf[m]))) goto out;
    }
    if ((rc = dj_st_writer_add_f32(w, "cam.merged", 3, shape, merged))) goto out;
    rc = dj_st_writer_write(w, path);
out:
    dj_st_writer_free(w);
    free(idx);
    free(lab);
    free(preds);
    return rc;
}

int cmd_cam(int argc, char **argv) {
    const char **models = NULL, **pngs = NULL;
    int nmodels = 0, npng = 0;
    int rc = cli_take_repeated("cam", &argc, argv, "model", 0, &models, &nmodels);
    if (!rc) rc = cli_take_repeated("cam", &argc, argv, "png", 1, &pngs, &npng);
    if (rc) goto done;
    const char *cifar = NULL, *split = NULL, *out = NULL;
    int offset = 0, limit = 100, raw = 0, quiet = 0, batch = 100, threads = 0, help = 0;
    cli_opt opts[] = {
        {"model", OPT_STRING, NULL, "weights file (repeat for several classifiers; default: the four shipped ones)", 1, 0},
        {"cifar", OPT_STRING, &cifar, "CIFAR-10 folder (default folder when only --split is given)", 1, 0},
        {"split", OPT_STRING, &split, "test or train (default test)", 1, 0},
        {"offset", OPT_INT, &offset, "first record of the split (default 0)", 0, 49999},
        {"limit", OPT_INT, &limit, "number of records (default 100; 0 = to the end)", 0, 50000},
        {"png", OPT_STRING, NULL, "32x32 PNG files (one or more after --png)", 1, 0},
        {"out", OPT_STRING, &out, "output folder (created if missing)", 1, 0},
        {"raw", OPT_FLAG, &raw, "also write the float maps to <out>/cams.safetensors", 0, 0},
        {"quiet", OPT_FLAG, &quiet, "print only the summary line", 0, 0},
        {"batch", OPT_INT, &batch, "images per forward pass (default 100)", 1, 10000},
        {"threads", OPT_INT, &threads, "threads (default: all cores)", 0, 1024},
    };
    rc = cli_parse("cam",
                   "Writes the class activation map of each classifier for its own predicted class, and their mean "
                   "(the merged map), as 32x32 grey PNGs <index>_<arch>.png and <index>_merged.png.",
                   argc, argv, 1, opts, (int)(sizeof opts / sizeof *opts), &help);
    if (rc || help) goto done;
    rc = EXIT_USAGE;
    if ((cifar || split) == (npng > 0)) {
        fprintf(stderr, "dmvjnd cam: give either --cifar DIR [--split S] or --png FILE...\n");
        goto done;
    }
    if (!out) {
        fprintf(stderr, "dmvjnd cam: give --out DIR (the folder for the maps)\n");
        goto done;
    }
    if (!split) split = "test";
    if (strcmp(split, "test") && strcmp(split, "train")) {
        fprintf(stderr, "dmvjnd cam: --split must be test or train, not '%s'\n", split);
        goto done;
    }
    if (!nmodels && (rc = cli_default_classifiers("cam", &models, &nmodels))) goto done;
    dj_set_num_threads(threads);

    cli_models ms;
    cli_images im;
    memset(&im, 0, sizeof im);
    float **cams = NULL, **conf = NULL, *merged = NULL;
    int32_t **pred = NULL;
    uint8_t grey[HW];
    int st = cli_prepare_out_dir(out);
    if (st) {
        rc = cli_fail("cam", st);
        goto done;
    }
    if ((st = cli_models_load(&ms, models, nmodels))) {
        rc = cli_fail("cam", st);
        goto done;
    }
    if (npng) {
        st = cli_images_load_png(&im, pngs, npng);
    } else {
        st = cli_images_load_cifar(&im, cifar, split, offset, limit);
    }
    if (st) goto fail;
    cams = calloc((size_t)ms.n, sizeof *cams);
    conf = calloc((size_t)ms.n, sizeof *conf);
    pred = calloc((size_t)ms.n, sizeof *pred);
    merged = malloc((size_t)im.n * HW * sizeof *merged + 1);
    if (!cams || !conf || !pred || !merged) {
        st = dj_error(DJ_ENOMEM, "out of memory");
        goto fail;
    }
    for (int m = 0; m < ms.n; m++) {
        cams[m] = malloc((size_t)im.n * HW * sizeof **cams + 1);
        conf[m] = malloc((size_t)im.n * sizeof **conf + 1);
        pred[m] = malloc((size_t)im.n * sizeof **pred + 1);
        if (!cams[m] || !conf[m] || !pred[m]) {
            st = dj_error(DJ_ENOMEM, "out of memory for the maps of %d images", im.n);
            goto fail;
        }
    }
    if ((st = run_cams(&ms, &im, batch, cams, pred, conf))) goto fail;
    if ((st = dj_cam_merge((const float *const *)cams, ms.n, (size_t)im.n * HW, merged))) goto fail;
    for (int i = 0; i < im.n; i++) {
        for (int m = 0; m < ms.n; m++)
            if ((st = write_png(out, im.index[i], ms.tag[m], cams[m] + (size_t)i * HW, grey))) goto fail;
        if ((st = write_png(out, im.index[i], "merged", merged + (size_t)i * HW, grey))) goto fail;
        if (quiet) continue;
        if (im.files)
            printf("%d %s:", im.index[i], im.files[i]);
        else
            printf("%d %s (%s):", im.index[i], im.split, cli_class_names[im.labels[i]]);
        for (int m = 0; m < ms.n; m++)
            printf("%s %s=%s (%.3f)", m ? "," : "", ms.tag[m], cli_class_names[pred[m][i]], conf[m][i]);
        printf("\n");
    }
    if (raw && (st = write_raw(out, &ms, &im, cams, merged, pred, conf))) goto fail;
    printf("wrote %d x %d maps to %s/ (<index>_<model>.png, <index>_merged.png%s)\n", im.n, ms.n + 1, out,
           raw ? ", cams.safetensors" : "");
fail:
    rc = st ? cli_fail("cam", st) : EXIT_OK;
    for (int m = 0; m < ms.n; m++) {
        if (cams) free(cams[m]);
        if (conf) free(conf[m]);
        if (pred) free(pred[m]);
    }
    free(cams);
    free(conf);
    free(pred);
    free(merged);
    cli_images_free(&im);
    cli_models_free(&ms);
done:
    free((void *)models);
    free((void *)pngs);
    return rc;
}
