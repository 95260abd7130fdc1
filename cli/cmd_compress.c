/* dmvjnd compress: JND-guided JPEG/WebP coding for machines, measured end to
 * end (bits against the classifiers' relative accuracy), or one method at
 * one quality on PNG files. A thin layer over dj_compress_evaluate
 * (dmvjnd/compress.h). */
#include <errno.h>
#include <math.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "args.h"
#include "commands.h"
#include "default_models.h"
#include "dmvjnd/bench.h"
#include "dmvjnd/compress.h"
#include "dmvjnd/dmvjnd.h"
#include "dmvjnd/fileio.h"
#include "dmvjnd/image.h"
#include "inputs.h"
#include "progress.h"

extern char **environ;

#define CMD "compress"
#define MONTAGE_MAX 8

static const int default_grid[] = {10, 30, 50, 70, 85, 95, 98, 100};

/* Decoded images kept for the montage: the first few of every point. */
typedef struct kept_point {
    char method[DJ_COMPRESS_NAME_MAX];
    int quality;
    uint8_t *img[MONTAGE_MAX];
} kept_point;

typedef struct run_ctx {
    const char *out;
    int single;          /* single-image mode: DIR/<name>.<ext>          */
    int save_limit;      /* coded files written per point (-1: all)      */
    const char *ext;
    const char *const *names; /* per image: file stem                    */
    int montage, h, w;   /* images kept per point for the montage        */
    kept_point *kept;
    int nkept, capkept;
    dj_progress p;
    int quiet;
} run_ctx;

static int make_dir(const char *path) {
    if (mkdir(path, 0777) && errno != EEXIST)
        return dj_error(DJ_EIO, "%s: cannot create the folder: %s", path, strerror(errno));
    return DJ_OK;
}

static int on_coded(const dj_compress_point *pt, int image, int q, const dj_coded *c, const uint8_t *dec, int h,
                    int w, void *user) {
    run_ctx *r = user;
    char dir[4096], path[4200];
    int rc = DJ_OK;
    if (r->single) {
        snprintf(path, sizeof path, "%s/%s.%s", r->out, r->names[image], r->ext);
        return dj_write_file_atomic(path, c->data, c->size);
    }
    if (r->save_limit < 0 || image < r->save_limit) {
        if (pt->quality) snprintf(dir, sizeof dir, "%s/coded/%s-q%03d", r->out, pt->method, pt->quality);
        else snprintf(dir, sizeof dir, "%s/coded/%s", r->out, pt->method);
        if (image == 0) rc = make_dir(dir);
        snprintf(path, sizeof path, "%s/%s-q%03d.%s", dir, r->names[image], q, r->ext);
        if (!rc) rc = dj_write_file_atomic(path, c->data, c->size);
    }
    if (!rc && image < r->montage && h == r->h && w == r->w) {
        if (image == 0) {
            if (r->nkept == r->capkept) {
                int cap = r->capkept ? 2 * r->capkept : 64;
                kept_point *k = realloc(r->kept, (size_t)cap * sizeof *k);
                if (!k) return dj_error(DJ_ENOMEM, "out of memory");
                r->kept = k;
                r->capkept = cap;
            }
            kept_point *k = &r->kept[r->nkept++];
            memset(k, 0, sizeof *k);
            snprintf(k->method, sizeof k->method, "%s", pt->method);
            k->quality = pt->quality;
        }
        kept_point *k = &r->kept[r->nkept - 1];
        if ((k->img[image] = malloc((size_t)h * w * 3))) memcpy(k->img[image], dec, (size_t)h * w * 3);
    }
    return rc;
}

static void on_progress(const char *stage, long done, long total, double rate, double eta, void *user) {
    run_ctx *r = user;
    if (r->quiet) return;
    char e[32];
    dj_format_duration(eta, e, sizeof e);
    dj_progress_update(&r->p, 0, "compress: %s  %ld/%ld image steps  %.0f/s  ETA %s", stage, done, total, rate, e);
}

/* x | plain near RCA 0.95 | the JND method with the fewest bits at no lower RCA. */
static int write_montage(const run_ctx *r, const dj_compress_result *res, const dj_compress_images *im) {
    const dj_compress_point *pl = NULL, *best = NULL;
    for (int p = 0; p < res->npoints; p++)
        if (!strcmp(res->points[p].method, "plain") &&
            (!pl || fabs(res->points[p].rca_mean - 0.95) < fabs(pl->rca_mean - 0.95)))
            pl = &res->points[p];
    if (!pl) return DJ_OK;
    for (int p = 0; p < res->npoints; p++) {
        const dj_compress_point *pt = &res->points[p];
        if (strncmp(pt->method, "jnd-", 4) || pt->rca_mean < pl->rca_mean - 0.005) continue;
        if (!best || pt->bpp < best->bpp) best = pt;
    }
    const uint8_t *a[MONTAGE_MAX] = {0}, *b[MONTAGE_MAX] = {0};
    for (int k = 0; k < r->nkept; k++) {
        if (!strcmp(r->kept[k].method, pl->method) && r->kept[k].quality == pl->quality) memcpy(a, r->kept[k].img, sizeof a);
        if (best && !strcmp(r->kept[k].method, best->method) && r->kept[k].quality == best->quality)
            memcpy(b, r->kept[k].img, sizeof b);
    }
    int rows = r->montage < im->n ? r->montage : im->n, cols = best ? 3 : 2;
    const uint8_t *panels[MONTAGE_MAX * 3];
    for (int i = 0; i < rows; i++) {
        panels[i * cols] = im->rgb[i];
        panels[i * cols + 1] = a[i];
        if (best) panels[i * cols + 2] = b[i];
    }
    char path[4200];
    snprintf(path, sizeof path, "%s/montage.png", r->out);
    int zoom = r->h <= 64 && r->w <= 64 ? 4 : 1;
    if (!r->quiet) {
        fprintf(stderr, "montage.png: original | plain q%d (%.4f bpp, RCA %.3f) | ", pl->quality, pl->bpp, pl->rca_mean);
        if (best) fprintf(stderr, "%s q%d (%.4f bpp, RCA %.3f)\n", best->method, best->quality, best->bpp, best->rca_mean);
        else fprintf(stderr, "(no JND method at that RCA)\n");
    }
    return dj_compress_montage_write(path, panels, rows, cols, r->h, r->w, zoom);
}

/* tools/plot_compress.py next to the working directory or to the binary. */
static void plot(const char *out, int quiet) {
    char script[4200] = "tools/plot_compress.py", exe[4096];
    if (access(script, R_OK)) {
        ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
        if (n > 0) {
            exe[n] = '\0';
            char *s = strrchr(exe, '/');
            if (s) *s = '\0';
            snprintf(script, sizeof script, "%s/../tools/plot_compress.py", exe);
        }
    }
    char csv[4200], png[4200];
    snprintf(csv, sizeof csv, "%s/results.csv", out);
    snprintf(png, sizeof png, "%s/rate_accuracy.png", out);
    /* the system Python first: that is where python3-matplotlib installs */
    const char *py = getenv("DMVJND_PYTHON");
    if (!py || !*py) py = access("/usr/bin/python3", X_OK) ? "python3" : "/usr/bin/python3";
    char *argv[] = {(char *)py, script, csv, png, NULL};
    pid_t pid;
    int st = -1;
    if (!access(script, R_OK) && !posix_spawnp(&pid, py, NULL, NULL, argv, environ)) waitpid(pid, &st, 0);
    if (st != 0) fprintf(stderr, "dmvjnd compress: warning: no rate_accuracy.png (needs python3 with matplotlib and %s)\n", script);
    else if (!quiet) fprintf(stderr, "rate_accuracy.png written\n");
}

static int write_text(const char *dir, const char *name, const char *text) {
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return dj_write_file_atomic(path, text, strlen(text));
}

/* jnd-alloc's calibration: --calibration FILE, or the one beside the model
 * (dj_compress_calibration_path). When jnd-alloc is only in the default
 * method list and the model has none beside it, jnd-alloc is left out with
 * a note; asked for by name, a missing or bad file is an error. */
static int load_calibration(const char *model, const char *path, int codec, int named, const char **mnames, int *nm,
                            dj_compress_calibration *cal) {
    memset(cal, 0, sizeof *cal);
    int idx = -1;
    for (int j = 0; j < *nm; j++)
        if (!strcmp(mnames[j], "jnd-alloc")) idx = j;
    if (idx < 0) return EXIT_OK;
    char beside[4200];
    if (!path) {
        int st = dj_compress_calibration_path(model, codec, beside, sizeof beside);
        if (st) return cli_fail(CMD, st);
        path = beside;
        if (!named && access(path, F_OK)) {
            fprintf(stderr,
                    "dmvjnd compress: note: jnd-alloc left out: no calibration %s (fit one with --calibrate FILE on "
                    "training images)\n",
                    path);
            memmove(&mnames[idx], &mnames[idx + 1], (size_t)(*nm - idx - 1) * sizeof *mnames);
            (*nm)--;
            return EXIT_OK;
        }
    }
    int st = dj_compress_calibration_read(path, cal);
    return st ? cli_fail(CMD, st) : EXIT_OK;
}

/* "10,20,30" -> ints in 1..100; EXIT_USAGE with a message otherwise. */
static int parse_grid(const char *s, int *q, int *n) {
    *n = 0;
    for (const char *p = s; *p;) {
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p || v < 1 || v > 100 || *n == DJ_COMPRESS_MAX_LADDER / 2 || (*end && *end != ',')) {
            fprintf(stderr, "dmvjnd compress: --qualities takes integers 1..100 separated by commas, not '%s'\n", s);
            return EXIT_USAGE;
        }
        q[(*n)++] = (int)v;
        p = *end ? end + 1 : end;
    }
    if (!*n) fprintf(stderr, "dmvjnd compress: --qualities is empty\n");
    return *n ? EXIT_OK : EXIT_USAGE;
}


int cmd_compress(int argc, char **argv) {
    const char **pngs = NULL, **cls = NULL;
    int npng = 0, ncls = 0;
    int rc = cli_take_repeated(CMD, &argc, argv, "png", 1, &pngs, &npng);
    if (!rc) rc = cli_take_repeated(CMD, &argc, argv, "classifier", 0, &cls, &ncls);
    if (rc) return rc;
    const char *model = NULL, *cifar = NULL, *split = NULL, *out = NULL, *codec_s = "jpeg";
    const char *methods_s = NULL, *grid_s = NULL, *method1 = NULL, *hvs_scale = "matched", *target = "codec";
    const char *criterion = "share", *calibrate = NULL, *calibration = NULL;
    int offset = 0, limit = 1000, json = 0, batch = 500, threads = 0, help = 0, quality1 = 0, save_all = 0;
    int guard_all = 0, montage = 6, quiet = 0, no_plot = 0, ladder_step = 5, guard_feedback = 16,
        no_guard_lossless = 0;
    double strength = 1.0, tau = -1, sigma = 1.0;
    cli_opt opts[] = {
        {"model", OPT_STRING, &model, "DMV-JND model file (default: the shipped jnd_v1.0.safetensors)", 1, 0},
        {"cifar", OPT_STRING, &cifar, "CIFAR-10 folder (default folder when only --split is given)", 1, 0},
        {"split", OPT_STRING, &split, "test or train (default test)", 1, 0},
        {"offset", OPT_INT, &offset, "first record (default 0)", 0, 49999},
        {"limit", OPT_INT, &limit, "number of records (default 1000)", 1, 50000},
        {"png", OPT_STRING, NULL, "PNG files of any size (one or more after --png)", 1, 0},
        {"codec", OPT_STRING, &codec_s, "jpeg or webp (default jpeg)", 1, 0},
        {"methods", OPT_STRING, &methods_s, "comma-separated methods (default: all the codec can use)", 1, 0},
        {"qualities", OPT_STRING, &grid_s, "comma-separated grid (default 10,30,50,70,85,95,98,100)", 1, 0},
        {"method", OPT_STRING, &method1, "single-image mode with --png: code each file with this method", 1, 0},
        {"quality", OPT_INT, &quality1, "single-image mode: the quality 1..100", 1, 100},
        {"strength", OPT_FLOAT, &strength, "s in (0, 1]: budgets applied as s*b (default 1)", 0, 1},
        {"classifier", OPT_STRING, NULL, "extra classifier (32x32) the JND was not trained against, repeated", 1, 0},
        {"guard-all", OPT_FLAG, &guard_all, "guard keeps the extra classifiers' labels too", 0, 0},
        {"guard-feedback", OPT_INT, &guard_feedback,
         "guard's last resort for images no plain quality keeps: up to N rounds of error feedback at 100 "
         "(default 16)",
         0,
         DJ_COMPRESS_MAX_FEEDBACK},
        {"no-guard-lossless", OPT_FLAG, &no_guard_lossless,
         "WebP: no lossless WebP as guard's very last candidate (then an image nothing keeps is coded at 100)", 0, 0},
        {"hvs-scale", OPT_STRING, &hvs_scale, "matched (hvs budget scaled to the jnd mean, default) or native", 1, 0},
        {"prefilter-target", OPT_STRING, &target, "codec (decoded at q/4, default) or smooth (Gaussian)", 1, 0},
        {"sigma", OPT_FLOAT, &sigma, "Gaussian sigma of the smooth target (default 1)", 0.01, 20},
        {"criterion", OPT_STRING, &criterion, "rate allocation criterion: share (default) or mean", 1, 0},
        {"tau", OPT_FLOAT, &tau, "criterion threshold (share: 0.05 default; mean: levels)", 0, 255},
        {"ladder-step", OPT_INT, &ladder_step, "quality ladder step of rate and guard (default 5)", 1, 50},
        {"calibration", OPT_STRING, &calibration,
         "jnd-alloc's calibration (default: MODEL.alloc-CODEC.json beside the model)", 1, 0},
        {"calibrate", OPT_STRING, &calibrate,
         "fit jnd-alloc's calibration on the given images (training images: --split train) and write it to FILE; "
         "nothing else is coded",
         1, 0},
        {"out", OPT_STRING, &out, "output folder (created)", 1, 0},
        {"save-all", OPT_FLAG, &save_all, "CIFAR: write every coded file (default: the first 100 per point)", 0, 0},
        {"montage", OPT_INT, &montage, "images in montage.png (default 6; 0: none)", 0, MONTAGE_MAX},
        {"no-plot", OPT_FLAG, &no_plot, "do not draw rate_accuracy.png", 0, 0},
        {"json", OPT_FLAG, &json, "print the JSON report on stdout", 0, 0},
        {"batch", OPT_INT, &batch, "images per generator/classifier call (default 500)", 1, 10000},
        {"threads", OPT_INT, &threads, "threads (default: all cores)", 0, 1024},
        {"quiet", OPT_FLAG, &quiet, "no progress line", 0, 0},
    };
    rc = cli_parse(CMD,
                   "Codes images with JPEG or WebP guided by the DMV-JND (and, for comparison, a human-vision JND "
                   "and a flat budget) and measures bits against the classifiers' relative accuracy (RCA).",
                   argc, argv, 1, opts, (int)(sizeof opts / sizeof *opts), &help);
    if (rc || help) goto done;
    rc = EXIT_USAGE;
    dj_compress_config cfg = dj_compress_defaults();
    int grid[DJ_COMPRESS_MAX_LADDER], ngrid = 0;
    const char **mnames = NULL;
    int nm = 0;
    char *mbuf = NULL;
    if (dj_compress_codec_parse(codec_s, &cfg.codec)) {
        fprintf(stderr, "dmvjnd compress: %s\n", dj_last_error());
        goto done;
    }
    if (!(strength > 0)) {
        fprintf(stderr, "dmvjnd compress: --strength must be in (0, 1], not %g\n", strength);
        goto done;
    }
    if (!out && !calibrate) {
        fprintf(stderr, "dmvjnd compress: --out DIR is required\n");
        goto done;
    }
    if ((cifar || split) == (npng > 0)) {
        fprintf(stderr, "dmvjnd compress: give either --cifar DIR [--split S] or --png FILE...\n");
        goto done;
    }
    if (calibrate && (out || method1 || methods_s || grid_s || ncls)) {
        fprintf(stderr, "dmvjnd compress: --calibrate FILE fits and writes the calibration only (no --out, --method, "
                        "--methods, --qualities or --classifier)\n");
        goto done;
    }
    if ((method1 != NULL) != (quality1 != 0) || (method1 && !npng)) {
        fprintf(stderr, "dmvjnd compress: single-image mode takes --png FILE... --method M --quality Q together\n");
        goto done;
    }
    if (!split) split = "test";
    if (strcmp(split, "test") && strcmp(split, "train")) {
        fprintf(stderr, "dmvjnd compress: --split must be test or train, not '%s'\n", split);
        goto done;
    }
    if (!strcmp(hvs_scale, "native")) cfg.hvs_native = 1;
    else if (strcmp(hvs_scale, "matched")) {
        fprintf(stderr, "dmvjnd compress: --hvs-scale is matched or native, not '%s'\n", hvs_scale);
        goto done;
    }
    if (!strcmp(target, "smooth")) cfg.target = DJ_TARGET_SMOOTH;
    else if (strcmp(target, "codec")) {
        fprintf(stderr, "dmvjnd compress: --prefilter-target is codec or smooth, not '%s'\n", target);
        goto done;
    }
    if (!strcmp(criterion, "mean")) cfg.criterion = DJ_CRIT_MEAN, cfg.tau = 1.0;
    else if (strcmp(criterion, "share")) {
        fprintf(stderr, "dmvjnd compress: --criterion is share or mean, not '%s'\n", criterion);
        goto done;
    }
    if (tau >= 0) cfg.tau = tau;
    if (cfg.criterion == DJ_CRIT_SHARE && cfg.tau > 1) {
        fprintf(stderr, "dmvjnd compress: --tau is a share in [0, 1] for the share criterion\n");
        goto done;
    }
    cfg.strength = strength;
    cfg.smooth_sigma = sigma;
    cfg.guard_all = guard_all;
    cfg.guard_feedback = guard_feedback;
    cfg.guard_lossless = !no_guard_lossless;
    cfg.ladder_step = ladder_step;
    cfg.batch = batch;
    if (method1) {
        grid[ngrid++] = quality1;
        mnames = malloc(sizeof *mnames);
        if (mnames) mnames[nm++] = method1;
    } else if (grid_s ? (rc = parse_grid(grid_s, grid, &ngrid)) : 0) {
        goto done;
    } else {
        if (!grid_s)
            for (size_t g = 0; g < sizeof default_grid / sizeof *default_grid; g++) grid[ngrid++] = default_grid[g];
        mnames = malloc((size_t)(dj_compress_method_count() + 64) * sizeof *mnames);
        if (methods_s && mnames && (mbuf = strdup(methods_s))) {
            for (char *t = strtok(mbuf, ","); t && nm < 64; t = strtok(NULL, ",")) mnames[nm++] = t;
        } else if (mnames) {
            const dj_compress_method *m;
            for (int i = 0; i < dj_compress_method_count(); i++)
                if (!dj_compress_method_find(dj_compress_method_at(i)->name, cfg.codec, &m)) mnames[nm++] = m->name;
        }
    }
    rc = EXIT_USAGE;
    for (int j = 0; j < nm; j++) {
        const dj_compress_method *m;
        if (dj_compress_method_find(mnames[j], cfg.codec, &m)) {
            fprintf(stderr, "dmvjnd compress: %s\n", dj_last_error());
            goto done_m;
        }
    }
    if (!nm) {
        fprintf(stderr, "dmvjnd compress: no methods\n");
        goto done_m;
    }
    if (ncls > DJ_COMPRESS_MAX_EXTRA) {
        fprintf(stderr, "dmvjnd compress: at most %d --classifier files\n", DJ_COMPRESS_MAX_EXTRA);
        goto done_m;
    }
    dj_set_num_threads(threads);
    if (!model && (rc = cli_default_jnd_model(CMD, &model))) goto done_m;
    rc = EXIT_USAGE;
    dj_compress_calibration cal;
    if (!calibrate && (rc = load_calibration(model, calibration, cfg.codec, methods_s || method1, mnames, &nm, &cal)))
        goto done_m;
    cfg.calibration = &cal;
    rc = EXIT_USAGE;
    double t0 = dj_progress_now();
    int st = calibrate ? dj_check_writable_parent(calibrate) : cli_prepare_out_dir(out);
    if (st) {
        rc = cli_fail(CMD, st);
        goto done_m;
    }
    /* the images */
    int N = npng ? npng : 0;
    cli_images ci = {0};
    dj_image *imgs = NULL;
    const uint8_t **rgbs = NULL;
    int *hs = NULL, *ws = NULL;
    char (*names)[256] = NULL;
    const char **namep = NULL;
    if (!npng) {
        if (!(st = cli_images_load_cifar(&ci, cifar, split, offset, limit))) N = ci.n;
    }
    imgs = calloc((size_t)(N > 0 ? N : 1), sizeof *imgs);
    rgbs = calloc((size_t)(N > 0 ? N : 1), sizeof *rgbs);
    hs = calloc((size_t)(N > 0 ? N : 1), sizeof *hs);
    ws = calloc((size_t)(N > 0 ? N : 1), sizeof *ws);
    names = calloc((size_t)(N > 0 ? N : 1), sizeof *names);
    namep = calloc((size_t)(N > 0 ? N : 1), sizeof *namep);
    if (!st && (!imgs || !rgbs || !hs || !ws || !names || !namep)) st = dj_error(DJ_ENOMEM, "out of memory");
    for (int i = 0; !st && i < N; i++) {
        namep[i] = names[i];
        if (npng) {
            if ((st = dj_png_read(pngs[i], &imgs[i]))) break;
            if (cfg.codec == DJ_CODEC_WEBP && (imgs[i].h > 16383 || imgs[i].w > 16383))
                st = dj_error(DJ_EFORMAT, "%s: %dx%d pixels; WebP takes at most 16383 a side", pngs[i], imgs[i].w,
                              imgs[i].h);
            rgbs[i] = imgs[i].rgb, hs[i] = imgs[i].h, ws[i] = imgs[i].w;
            const char *base = strrchr(pngs[i], '/');
            base = base ? base + 1 : pngs[i];
            size_t len = strlen(base);
            if (len > 4 && !strcmp(base + len - 4, ".png")) len -= 4;
            snprintf(names[i], sizeof names[i], "%.*s", (int)(len < 200 ? len : 200), base);
        } else {
            rgbs[i] = ci.pixels + (size_t)i * 3072, hs[i] = ws[i] = 32;
            snprintf(names[i], sizeof names[i], "%s-%05d", split, ci.index[i]);
        }
    }
    dj_compress_machines mach = {0};
    dj_classifier *extra = ncls ? calloc((size_t)ncls, sizeof *extra) : NULL;
    if (!st && ncls && !extra) st = dj_error(DJ_ENOMEM, "out of memory");
    for (int k = 0; !st && k < ncls; k++) {
        if (!(st = dj_classifier_load(cls[k], 1, &extra[k]))) mach.nextra = k + 1;
    }
    mach.extra = extra;
    for (int i = 0; !st && ncls && i < N; i++)
        if (hs[i] != 32 || ws[i] != 32)
            st = dj_error(DJ_EFORMAT, "%s: %dx%d pixels; --classifier takes 32x32 images only", pngs[i], ws[i], hs[i]);
    if (!st) st = dj_jnd_generator_create(&mach.gen, model, NULL, 0);
    dj_compress_images im = {N, rgbs, hs, ws, npng ? NULL : ci.labels};
    run_ctx rcx = {.out = out, .single = method1 != NULL, .save_limit = save_all || npng ? -1 : 100,
                   .ext = dj_compress_codec_ext(cfg.codec), .names = namep, .quiet = quiet || method1,
                   .montage = method1 || !N ? 0 : montage, .h = N ? hs[0] : 0, .w = N ? ws[0] : 0};
    dj_progress_init(&rcx.p, stderr, 30);
    char coded_dir[4200];
    snprintf(coded_dir, sizeof coded_dir, "%s/coded", out ? out : ".");
    if (!st && !method1 && !calibrate) st = make_dir(coded_dir);
    dj_compress_result res = {0};
    if (!st && calibrate) {
        st = dj_compress_calibrate(&cfg, &mach, &im, on_progress, &rcx, &cal);
        if (!st) st = dj_compress_calibration_write(&cal, calibrate);
        dj_progress_clear(&rcx.p);
        if (!st)
            printf("%s, %d images, %ld codings: labels kept %.4f; log loss", codec_s, N, cal.samples, cal.kept);
        for (int k = 0; !st && k < cal.classifiers; k++) printf(" %s %.4f", cal.tags[k], cal.loss[k]);
        if (!st) printf(" -> %s (%.0f s)\n", calibrate, dj_progress_now() - t0);
    } else if (!st)
        st = dj_compress_evaluate(&cfg, &mach, &im, mnames, nm, grid, ngrid, on_coded, on_progress, &rcx, &res);
    dj_progress_clear(&rcx.p);
    char *csv = NULL, *md = NULL, *js = NULL;
    if (calibrate) {
        /* reported above */
    } else if (!st && method1) {
        const dj_compress_point *pt = &res.points[0];
        printf("%d file(s) -> %s: %s q%d, %.4f bpp (%.4f with headers), RCA %.4f, PSNR %.2f dB\n", N, out,
               pt->method, quality1, pt->bpp, pt->file_bpp, pt->rca_mean, pt->psnr_db);
    } else if (!st) {
        char cmdline[4096] = "dmvjnd compress";
        for (int i = 1; i < argc; i++) {
            size_t l = strlen(cmdline);
            snprintf(cmdline + l, sizeof cmdline - l, " %s", argv[i]);
        }
        if (!(st = dj_compress_csv(&res, &csv)) && !(st = dj_compress_markdown(&res, npng ? NULL : cmdline, &md)))
            st = dj_compress_json(&res, dj_progress_now() - t0, dj_peak_rss_bytes(), &js);
        if (!st) st = write_text(out, "results.csv", csv);
        if (!st) st = write_text(out, "report.md", md);
        if (!st) st = write_text(out, "report.json", js);
        if (!st && rcx.montage && rcx.nkept) st = write_montage(&rcx, &res, &im);
        if (!st && !no_plot) plot(out, quiet);
        if (!st && json) printf("%s\n", js);
        else if (!st) {
            printf("%d images, %s, s = %g -> %s/report.md\n", N, codec_s, strength, out);
            for (int s = 0; s < res.nsummary; s++)
                printf("  %-15s BD-rate %+7.2f%%  saved at RCA 0.95 %+7.2f%%  at 0.98 %+7.2f%%\n", res.summary[s].method,
                       100 * res.summary[s].bd_rate, 100 * res.summary[s].saving95, 100 * res.summary[s].saving98);
        }
    }
    rc = st ? cli_fail(CMD, st) : EXIT_OK;
    free(csv), free(md), free(js);
    dj_compress_result_free(&res);
    for (int k = 0; k < rcx.nkept; k++)
        for (int i = 0; i < MONTAGE_MAX; i++) free(rcx.kept[k].img[i]);
    free(rcx.kept);
    dj_jnd_generator_destroy(mach.gen);
    for (int k = 0; k < mach.nextra; k++) dj_classifier_free(&extra[k]);
    free(extra);
    for (int i = 0; imgs && i < N; i++) dj_image_free(&imgs[i]);
    free(imgs), free(rgbs), free(hs), free(ws), free(names), free(namep);
    cli_images_free(&ci);
done_m:
    free(mnames);
    free(mbuf);
done:
    free((void *)pngs);
    free((void *)cls);
    return rc;
}
