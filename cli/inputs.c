/* Inputs and output folders of the CLI commands; see inputs.h. */
#include "inputs.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "args.h"
#include "dmvjnd/cifar10.h"
#include "dmvjnd/dmvjnd.h"
#include "dmvjnd/fileio.h"
#include "dmvjnd/image.h"

const char *const cli_class_names[10] = {"airplane", "automobile", "bird",  "cat",  "deer",
                                         "dog",      "frog",       "horse", "ship", "truck"};

static int push(const char ***vals, int *n, const char *v) {
    const char **t = realloc((void *)*vals, (size_t)(*n + 1) * sizeof *t);
    if (!t) return -1;
    t[(*n)++] = v;
    *vals = t;
    return 0;
}

int cli_take_repeated(const char *cmd, int *argc, char **argv, const char *name, int multi, const char ***vals,
                      int *n) {
    size_t len = strlen(name);
    int out = 1;
    for (int i = 1; i < *argc; i++) {
        const char *a = argv[i];
        if (strncmp(a, "--", 2) || strncmp(a + 2, name, len) || (a[2 + len] != '\0' && a[2 + len] != '=')) {
            argv[out++] = argv[i];
            continue;
        }
        int got = 0;
        if (a[2 + len] == '=') {
            if (push(vals, n, a + 3 + len)) goto nomem;
            got = 1;
        }
        while ((!got || (multi && !a[2 + len])) && i + 1 < *argc && strncmp(argv[i + 1], "--", 2)) {
            if (push(vals, n, argv[++i])) goto nomem;
            got++;
            if (!multi) break;
        }
        if (!got) {
            fprintf(stderr, "dmvjnd %s: --%s needs a value%s\n", cmd, name, multi ? " (one or more files)" : "");
            return EXIT_USAGE;
        }
    }
    *argc = out;
    return EXIT_OK;
nomem:
    fprintf(stderr, "dmvjnd %s: out of memory\n", cmd);
    return EXIT_INTERNAL;
}

int cli_images_load_cifar(cli_images *im, const char *dir, const char *split, int offset, int limit) {
    memset(im, 0, sizeof *im);
    dj_cifar10 ds;
    dj_cifar10_opts o = {offset, limit, 0};
    int rc = dj_cifar10_load(&ds, dir, split, &o);
    if (rc) return rc;
    im->n = ds.n;
    im->pixels = ds.pixels;
    im->labels = ds.labels;
    im->index = malloc((size_t)(ds.n > 0 ? ds.n : 1) * sizeof *im->index);
    if (!im->index) {
        dj_cifar10_free(&ds);
        memset(im, 0, sizeof *im);
        return dj_error(DJ_ENOMEM, "out of memory");
    }
    for (int i = 0; i < ds.n; i++) im->index[i] = offset + i;
    snprintf(im->split, sizeof im->split, "%s", split);
    im->offset = offset;
    return DJ_OK;
}

int cli_images_load_png(cli_images *im, const char *const *files, int count) {
    memset(im, 0, sizeof *im);
    const size_t per = DJ_CIFAR10_IMAGE_BYTES;
    im->pixels = dj_malloc((size_t)(count > 0 ? count : 1) * per);
    im->index = malloc((size_t)(count > 0 ? count : 1) * sizeof *im->index);
    if (!im->pixels || !im->index) {
        cli_images_free(im);
        return dj_error(DJ_ENOMEM, "out of memory");
    }
    for (int i = 0; i < count; i++) {
        dj_image img;
        int rc = dj_png_read(files[i], &img);
        if (rc) {
            cli_images_free(im);
            return rc;
        }
        if (img.h != DJ_CIFAR10_SIDE || img.w != DJ_CIFAR10_SIDE) {
            int h = img.h, w = img.w;
            dj_image_free(&img);
            cli_images_free(im);
            return dj_error(DJ_EFORMAT,
                            "%s: the image is %dx%d pixels (width x height); the classifiers take 32x32 RGB images "
                            "only (resize or crop it first)",
                            files[i], w, h);
        }
        memcpy(im->pixels + (size_t)i * per, img.rgb, per);
        dj_image_free(&img);
        im->index[i] = i;
    }
    im->n = count;
    im->files = (const char **)files;
    return DJ_OK;
}

void cli_images_free(cli_images *im) {
    if (!im) return;
    dj_free(im->pixels);
    free(im->labels);
    free(im->index);
    memset(im, 0, sizeof *im);
}

int cli_images_batch(const cli_images *im, int start, const float mean[3], const float std[3], dj_tensor *x) {
    if (start < 0 || start + x->n > im->n) return dj_error(DJ_EINTERNAL, "image batch out of range");
    const size_t per = DJ_CIFAR10_IMAGE_BYTES;
    return dj_normalize_u8(im->pixels + (size_t)start * per, (size_t)x->n * DJ_CIFAR10_SIDE * DJ_CIFAR10_SIDE, mean,
                           std, x->data);
}

int cli_models_load(cli_models *ms, const char *const *paths, int count) {
    memset(ms, 0, sizeof *ms);
    ms->m = calloc((size_t)count, sizeof *ms->m);
    ms->tag = calloc((size_t)count, sizeof *ms->tag);
    if (!ms->m || !ms->tag) {
        cli_models_free(ms);
        return dj_error(DJ_ENOMEM, "out of memory");
    }
    ms->paths = (const char **)paths;
    for (int i = 0; i < count; i++) {
        int rc = dj_classifier_load(paths[i], 1, &ms->m[i]);
        if (rc) {
            cli_models_free(ms);
            return rc;
        }
        ms->n = i + 1;
    }
    dj_classifier_tags(ms->m, ms->n, ms->tag);
    return DJ_OK;
}

void cli_models_free(cli_models *ms) {
    if (!ms) return;
    for (int i = 0; i < ms->n; i++) dj_classifier_free(&ms->m[i]);
    free(ms->m);
    free(ms->tag);
    memset(ms, 0, sizeof *ms);
}

int cli_prepare_out_dir(const char *dir) {
    if (mkdir(dir, 0777) != 0 && errno != EEXIST)
        return dj_error(errno == ENOENT ? DJ_ENOTFOUND : DJ_EIO, "%s: cannot create the output folder: %s", dir,
                        strerror(errno));
    int rc = dj_check_writable_dir(dir);
    if (rc) return dj_error(rc, "output folder %s: %s", dir, dj_last_error());
    return DJ_OK;
}
