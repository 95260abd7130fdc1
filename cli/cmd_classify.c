/* dmvjnd classify: labels and confidences of one or more classifiers on a
 * CIFAR-10 slice or on 32x32 PNG files. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "commands.h"
#include "dmvjnd/dmvjnd.h"
#include "dmvjnd/train.h"
#include "default_models.h"
#include "inputs.h"
#include "io/json.h"

enum { NCLS = DJ_CIFAR10_CLASSES };

typedef struct model_stats {
    int correct, class_images[NCLS], class_correct[NCLS];
} model_stats;

static double frac(int a, int b) { return b ? (double)a / b : NAN; }

/* Runs every model on every image: pred/conf[m * n + i]. */
static int run_models(const cli_models *ms, const cli_images *im, int batch, int32_t *pred, float *conf) {
    dj_tensor x = {0};
    int b = batch < im->n ? batch : im->n;
    int rc = dj_tensor_alloc(&x, b, DJ_CIFAR10_SIDE, DJ_CIFAR10_SIDE, DJ_CIFAR10_CHANNELS);
    for (int m = 0; !rc && m < ms->n; m++)
        for (int start = 0; !rc && start < im->n; start += b) {
            int n = im->n - start < b ? im->n - start : b;
            dj_tensor xv = dj_tensor_view(x.data, n, DJ_CIFAR10_SIDE, DJ_CIFAR10_SIDE, DJ_CIFAR10_CHANNELS);
            if (!(rc = cli_images_batch(im, start, ms->m[m].mean, ms->m[m].std, &xv)))
                rc = dj_classify_batch(ms->m[m].graph, &xv, pred + (size_t)m * im->n + start,
                                       conf + (size_t)m * im->n + start, NULL);
        }
    dj_tensor_free(&x);
    return rc;
}

static void source_name(const cli_images *im, int i, char *buf, size_t size) {
    if (im->files)
        snprintf(buf, size, "%s", im->files[i]);
    else
        snprintf(buf, size, "%s:%d", im->split, im->index[i]);
}

static void print_csv(const cli_models *ms, const cli_images *im, const int32_t *pred, const float *conf) {
    printf("index,source,true_label,model,arch,pred,pred_class,confidence\n");
    char src[1024];
    for (int i = 0; i < im->n; i++) {
        source_name(im, i, src, sizeof src);
        /* quote the source only when needed (a file name with a comma or quote) */
        int quote = strpbrk(src, ",\"\n") != NULL;
        for (int m = 0; m < ms->n; m++) {
            size_t k = (size_t)m * im->n + i;
            printf("%d,", im->index[i]);
            if (quote) {
                putchar('"');
                for (const char *c = src; *c; c++) {
                    if (*c == '"') putchar('"');
                    putchar(*c);
                }
                putchar('"');
            } else {
                fputs(src, stdout);
            }
            if (im->labels)
                printf(",%d", im->labels[i]);
            else
                printf(",");
            printf(",%s,%s,%d,%s,%.6f\n", ms->tag[m], ms->m[m].arch, pred[k], cli_class_names[pred[k]], conf[k]);
        }
    }
}

static void print_text(const cli_models *ms, const cli_images *im, const int32_t *pred, const float *conf,
                       const model_stats *st, int all_correct) {
    if (!im->labels) {
        for (int i = 0; i < im->n; i++) {
            printf("%s:", im->files[i]);
            for (int m = 0; m < ms->n; m++) {
                size_t k = (size_t)m * im->n + i;
                printf("%s %s=%s (%.3f)", m ? "," : "", ms->tag[m], cli_class_names[pred[k]], conf[k]);
            }
            printf("\n");
        }
        return;
    }
    printf("CIFAR-10 %s records %d-%d (%d images)\n", im->split, im->offset, im->offset + im->n - 1, im->n);
    for (int m = 0; m < ms->n; m++)
        printf("  %-12s accuracy %6.2f%% (%d/%d)  %s\n", ms->tag[m], 100 * frac(st[m].correct, im->n), st[m].correct,
               im->n, ms->paths[m]);
    if (ms->n > 1) printf("  %-12s accuracy %6.2f%% (%d/%d)\n", "all correct", 100 * frac(all_correct, im->n),
                          all_correct, im->n);
    printf("\n  %-12s", "class");
    for (int m = 0; m < ms->n; m++) printf(" %12s", ms->tag[m]);
    printf("\n");
    for (int c = 0; c < NCLS; c++) {
        printf("  %-12s", cli_class_names[c]);
        for (int m = 0; m < ms->n; m++) {
            if (st[m].class_images[c])
                printf(" %11.2f%%", 100 * frac(st[m].class_correct[c], st[m].class_images[c]));
            else
                printf(" %12s", "-");
        }
        printf("\n");
    }
}

static int print_json(const cli_models *ms, const cli_images *im, const int32_t *pred, const float *conf,
                      const model_stats *st, int all_correct) {
    dj_jw w;
    dj_jw_init(&w, 0);
    dj_jw_begin_object(&w);
    dj_jw_key(&w, "source");
    dj_jw_string(&w, im->labels ? "cifar10" : "png");
    if (im->labels) {
        dj_jw_key(&w, "split");
        dj_jw_string(&w, im->split);
        dj_jw_key(&w, "offset");
        dj_jw_int(&w, im->offset);
    }
    dj_jw_key(&w, "images");
    dj_jw_int(&w, im->n);
    if (im->labels) {
        /* top level: the model's numbers with one model, their mean with several */
        double acc = 0, pc[NCLS] = {0};
        for (int m = 0; m < ms->n; m++) {
            acc += frac(st[m].correct, im->n) / ms->n;
            for (int c = 0; c < NCLS; c++) pc[c] += frac(st[m].class_correct[c], st[m].class_images[c]) / ms->n;
        }
        dj_jw_key(&w, "accuracy");
        dj_jw_double(&w, acc);
        dj_jw_key(&w, "per_class");
        dj_jw_begin_array(&w);
        for (int c = 0; c < NCLS; c++) dj_jw_double(&w, pc[c]);
        dj_jw_end_array(&w);
        dj_jw_key(&w, "class_images");
        dj_jw_begin_array(&w);
        for (int c = 0; c < NCLS; c++) dj_jw_int(&w, st[0].class_images[c]);
        dj_jw_end_array(&w);
        dj_jw_key(&w, "all_correct");
        dj_jw_double(&w, frac(all_correct, im->n));
    }
    dj_jw_key(&w, "classes");
    dj_jw_begin_array(&w);
    for (int c = 0; c < NCLS; c++) dj_jw_string(&w, cli_class_names[c]);
    dj_jw_end_array(&w);
    dj_jw_key(&w, "models");
    dj_jw_begin_array(&w);
    for (int m = 0; m < ms->n; m++) {
        dj_jw_begin_object(&w);
        dj_jw_key(&w, "model");
        dj_jw_string(&w, ms->paths[m]);
        dj_jw_key(&w, "arch");
        dj_jw_string(&w, ms->m[m].arch);
        dj_jw_key(&w, "tag");
        dj_jw_string(&w, ms->tag[m]);
        if (im->labels) {
            dj_jw_key(&w, "accuracy");
            dj_jw_double(&w, frac(st[m].correct, im->n));
            dj_jw_key(&w, "correct");
            dj_jw_int(&w, st[m].correct);
            dj_jw_key(&w, "per_class");
            dj_jw_begin_array(&w);
            for (int c = 0; c < NCLS; c++) dj_jw_double(&w, frac(st[m].class_correct[c], st[m].class_images[c]));
            dj_jw_end_array(&w);
        }
        dj_jw_end_object(&w);
    }
    dj_jw_end_array(&w);
    if (!im->labels) {
        dj_jw_key(&w, "results");
        dj_jw_begin_array(&w);
        for (int i = 0; i < im->n; i++) {
            dj_jw_begin_object(&w);
            dj_jw_key(&w, "file");
            dj_jw_string(&w, im->files[i]);
            dj_jw_key(&w, "predictions");
            dj_jw_begin_array(&w);
            for (int m = 0; m < ms->n; m++) {
                size_t k = (size_t)m * im->n + i;
                dj_jw_begin_object(&w);
                dj_jw_key(&w, "model");
                dj_jw_string(&w, ms->tag[m]);
                dj_jw_key(&w, "label");
                dj_jw_int(&w, pred[k]);
                dj_jw_key(&w, "class");
                dj_jw_string(&w, cli_class_names[pred[k]]);
                dj_jw_key(&w, "confidence");
                dj_jw_double(&w, conf[k]);
                dj_jw_end_object(&w);
            }
            dj_jw_end_array(&w);
            dj_jw_end_object(&w);
        }
        dj_jw_end_array(&w);
    }
    dj_jw_end_object(&w);
    char *text;
    int rc = dj_jw_finish(&w, &text, NULL);
    if (rc) return rc;
    printf("%s\n", text);
    free(text);
    return DJ_OK;
}

int cmd_classify(int argc, char **argv) {
    const char **models = NULL, **pngs = NULL;
    int nmodels = 0, npng = 0;
    int rc = cli_take_repeated("classify", &argc, argv, "model", 0, &models, &nmodels);
    if (!rc) rc = cli_take_repeated("classify", &argc, argv, "png", 1, &pngs, &npng);
    if (rc) goto done;
    const char *cifar = NULL, *split = NULL;
    int offset = 0, limit = 0, json = 0, csv = 0, batch = 100, threads = 0, help = 0;
    cli_opt opts[] = {
        {"model", OPT_STRING, NULL, "weights file (repeat for several classifiers; default: the four shipped ones)", 1, 0},
        {"cifar", OPT_STRING, &cifar, "CIFAR-10 folder to classify (default folder when only --split is given)", 1,
         0},
        {"split", OPT_STRING, &split, "test or train (default test)", 1, 0},
        {"offset", OPT_INT, &offset, "first record of the split (default 0)", 0, 49999},
        {"limit", OPT_INT, &limit, "number of records (default: to the end)", 0, 50000},
        {"png", OPT_STRING, NULL, "32x32 PNG files to classify (one or more after --png)", 1, 0},
        {"json", OPT_FLAG, &json, "print one JSON object", 0, 0},
        {"csv", OPT_FLAG, &csv, "print one CSV row per image and model", 0, 0},
        {"batch", OPT_INT, &batch, "images per forward pass (default 100)", 1, 10000},
        {"threads", OPT_INT, &threads, "threads (default: all cores)", 0, 1024},
    };
    rc = cli_parse("classify",
                   "Prints the labels and confidences of classifiers (weights files) on CIFAR-10 records or PNG "
                   "images, and their accuracy on CIFAR-10.",
                   argc, argv, 1, opts, (int)(sizeof opts / sizeof *opts), &help);
    if (rc || help) goto done;
    rc = EXIT_USAGE;
    if ((cifar || split) == (npng > 0)) {
        fprintf(stderr, "dmvjnd classify: give either --cifar DIR [--split S] or --png FILE...\n");
        goto done;
    }
    if (npng && (offset || limit)) {
        fprintf(stderr, "dmvjnd classify: --offset and --limit are for --cifar\n");
        goto done;
    }
    if (json && csv) {
        fprintf(stderr, "dmvjnd classify: --json and --csv exclude each other\n");
        goto done;
    }
    if (!split) split = "test";
    if (strcmp(split, "test") && strcmp(split, "train")) {
        fprintf(stderr, "dmvjnd classify: --split must be test or train, not '%s'\n", split);
        goto done;
    }
    if (!nmodels && (rc = cli_default_classifiers("classify", &models, &nmodels))) goto done;
    dj_set_num_threads(threads);

    cli_models ms;
    cli_images im;
    int32_t *pred = NULL;
    float *conf = NULL;
    model_stats *st = NULL;
    int st_rc = cli_models_load(&ms, models, nmodels);
    if (st_rc) {
        rc = cli_fail("classify", st_rc);
        goto done;
    }
    st_rc = npng ? cli_images_load_png(&im, pngs, npng) : cli_images_load_cifar(&im, cifar, split, offset, limit);
    if (st_rc) {
        rc = cli_fail("classify", st_rc);
        cli_models_free(&ms);
        goto done;
    }
    pred = malloc((size_t)ms.n * im.n * sizeof *pred + 1);
    conf = malloc((size_t)ms.n * im.n * sizeof *conf + 1);
    st = calloc((size_t)ms.n, sizeof *st);
    if (!pred || !conf || !st) st_rc = dj_error(DJ_ENOMEM, "out of memory");
    if (!st_rc) st_rc = run_models(&ms, &im, batch, pred, conf);
    int all_correct = 0;
    if (!st_rc && im.labels) {
        for (int i = 0; i < im.n; i++) {
            int all = 1;
            for (int m = 0; m < ms.n; m++) {
                int ok = pred[(size_t)m * im.n + i] == im.labels[i];
                st[m].correct += ok;
                st[m].class_images[im.labels[i]]++;
                st[m].class_correct[im.labels[i]] += ok;
                all &= ok;
            }
            all_correct += all;
        }
    }
    if (!st_rc) {
        if (json)
            st_rc = print_json(&ms, &im, pred, conf, st, all_correct);
        else if (csv)
            print_csv(&ms, &im, pred, conf);
        else
            print_text(&ms, &im, pred, conf, st, all_correct);
    }
    rc = st_rc ? cli_fail("classify", st_rc) : EXIT_OK;
    free(pred);
    free(conf);
    free(st);
    cli_images_free(&im);
    cli_models_free(&ms);
done:
    free((void *)models);
    free((void *)pngs);
    return rc;
}
