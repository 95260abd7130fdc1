/* CIFAR-10 binary reader, normalisation, augmentation and batch building
 * (see include/dmvjnd/cifar10.h for the formats and the semantics). */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "dmvjnd/core.h"
#include "dmvjnd/cifar10.h"

#define SIDE DJ_CIFAR10_SIDE
#define PLANE (DJ_CIFAR10_SIDE * DJ_CIFAR10_SIDE)
#define IMG DJ_CIFAR10_IMAGE_BYTES
#define REC DJ_CIFAR10_RECORD_BYTES

/* Records read per fread: 3 MB of buffer instead of a whole 30 MB file. */
#define CHUNK_RECORDS 1024

/* ------------------------------------------------------------- paths */

const char *dj_cifar10_default_dir(void) {
    /* DMVJND_DATA may name the batches folder itself or the folder that
     * holds cifar-10-batches-bin/ (where the tarball unpacks); accept both,
     * since both readings of "the data folder" are natural. */
    static _Thread_local char buf[4096];
    const char *env = getenv("DMVJND_DATA");
    if (!env || !*env) return "data/cifar-10-batches-bin";
    struct stat st;
    int len = snprintf(buf, sizeof buf, "%s/cifar-10-batches-bin", env);
    if (len > 0 && (size_t)len < sizeof buf && stat(buf, &st) == 0 && S_ISDIR(st.st_mode)) return buf;
    return env;
}

static int join_path(char *out, size_t cap, const char *dir, const char *name) {
    size_t dl = strlen(dir);
    const char *sep = (dl > 0 && dir[dl - 1] == '/') ? "" : "/";
    int len = snprintf(out, cap, "%s%s%s", dir, sep, name);
    if (len < 0 || (size_t)len >= cap) return dj_error(DJ_EINVAL, "path %s%s%s is too long", dir, sep, name);
    return DJ_OK;
}

/* ------------------------------------------------------------- loading */

/* Label check and planar -> interleaved for `count` records in `buf`.
 * first_rec is the index within the file of buf's first record (for the
 * message). */
static int convert_records(const char *path, const uint8_t *buf, int count, int first_rec, uint8_t *pixels,
                           int32_t *labels) {
    /* Labels first and serially, so the first bad record is the one named. */
    for (int i = 0; i < count; i++) {
        uint8_t lab = buf[(size_t)i * REC];
        if (lab >= DJ_CIFAR10_CLASSES)
            return dj_error(DJ_EFORMAT, "%s: record %d has label byte %u, expected 0..9", path, first_rec + i,
                            (unsigned)lab);
        labels[i] = lab;
    }
#pragma omp parallel for schedule(static) if (count >= 64)
    for (int i = 0; i < count; i++) {
        const uint8_t *r = buf + (size_t)i * REC + 1, *g = r + PLANE, *b = g + PLANE;
        uint8_t *o = pixels + (size_t)i * IMG;
        for (int p = 0; p < PLANE; p++) {
            o[3 * p + 0] = r[p];
            o[3 * p + 1] = g[p];
            o[3 * p + 2] = b[p];
        }
    }
    return DJ_OK;
}

/* Reads records [first, first+count) of one .bin file that must hold exactly
 * rpf records. */
static int read_batch_file(const char *path, int rpf, int first, int count, uint8_t *buf, uint8_t *pixels,
                           int32_t *labels) {
    FILE *f = fopen(path, "rb");
    if (!f) return dj_error(DJ_EIO, "%s: cannot open: %s", path, strerror(errno));
    int rc = DJ_OK;
    struct stat st;
    long long expect = (long long)rpf * REC;
    if (fstat(fileno(f), &st) != 0) {
        rc = dj_error(DJ_EIO, "%s: cannot stat: %s", path, strerror(errno));
    } else if (!S_ISREG(st.st_mode)) {
        rc = dj_error(DJ_EIO, "%s: not a regular file", path);
    } else if ((long long)st.st_size != expect) {
        /* One message for truncated, padded and wrong-kind files alike: the
         * size says which it is, and a partial file is never worth reading. */
        rc = dj_error(DJ_EFORMAT, "%s: %lld bytes, expected %lld (%d records of %d bytes)", path,
                      (long long)st.st_size, expect, rpf, REC);
    } else if (fseeko(f, (off_t)first * REC, SEEK_SET) != 0) {
        rc = dj_error(DJ_EIO, "%s: cannot seek to record %d: %s", path, first, strerror(errno));
    }
    for (int done = 0; rc == DJ_OK && done < count;) {
        int k = count - done < CHUNK_RECORDS ? count - done : CHUNK_RECORDS;
        size_t got = fread(buf, REC, (size_t)k, f);
        if (got != (size_t)k) {
            if (ferror(f))
                rc = dj_error(DJ_EIO, "%s: read error at record %d: %s", path, first + done + (int)got,
                              strerror(errno));
            else /* the file shrank between fstat and fread */
                rc = dj_error(DJ_EFORMAT, "%s: unexpected end of file at record %d", path, first + done + (int)got);
            break;
        }
        rc = convert_records(path, buf, k, first + done, pixels + (size_t)done * IMG, labels + done);
        done += k;
    }
    fclose(f); /* read-only: nothing to lose if close fails */
    return rc;
}

void dj_cifar10_free(dj_cifar10 *ds) {
    if (!ds) return;
    dj_free(ds->pixels);
    free(ds->labels);
    memset(ds, 0, sizeof *ds);
}

int dj_cifar10_load(dj_cifar10 *ds, const char *dir, const char *split, const dj_cifar10_opts *opts) {
    if (!ds) return dj_error(DJ_EINVAL, "cifar10 load: NULL dataset");
    memset(ds, 0, sizeof *ds);
    static const dj_cifar10_opts defaults = {0, 0, 0};
    if (!opts) opts = &defaults;
    if (!dir) dir = dj_cifar10_default_dir();
    if (!split) return dj_error(DJ_EINVAL, "cifar10 load: NULL split (expected \"train\" or \"test\")");

    int train = strcmp(split, "train") == 0;
    if (!train && strcmp(split, "test") != 0)
        return dj_error(DJ_EINVAL, "cifar10 load: unknown split \"%s\" (expected \"train\" or \"test\")", split);
    int nfiles = train ? DJ_CIFAR10_TRAIN_FILES : 1;
    int rpf = opts->records_per_file ? opts->records_per_file : DJ_CIFAR10_RECORDS_PER_FILE;
    if (rpf < 0 || rpf > INT_MAX / DJ_CIFAR10_TRAIN_FILES)
        return dj_error(DJ_EINVAL, "cifar10 load: records_per_file %d out of range", rpf);
    int total = nfiles * rpf;
    if (opts->offset < 0 || opts->limit < 0)
        return dj_error(DJ_EINVAL, "cifar10 load: negative offset %d or limit %d", opts->offset, opts->limit);
    if (opts->offset >= total)
        return dj_error(DJ_EINVAL, "cifar10 load: offset %d is past the end of split %s (%d records)", opts->offset,
                        split, total);
    int n = total - opts->offset;
    if (opts->limit > 0 && opts->limit < n) n = opts->limit;

    uint8_t *pixels = dj_malloc((size_t)n * IMG);
    int32_t *labels = malloc((size_t)n * sizeof *labels);
    int chunk = n < CHUNK_RECORDS ? n : CHUNK_RECORDS;
    uint8_t *buf = malloc((size_t)chunk * REC);
    int rc = DJ_OK;
    if (!pixels || !labels || !buf) rc = dj_error(DJ_ENOMEM, "cifar10 load: cannot allocate %d images", n);

    int lo = opts->offset, hi = opts->offset + n; /* split record range */
    for (int fi = 0; rc == DJ_OK && fi < nfiles; fi++) {
        int f0 = fi * rpf, f1 = f0 + rpf; /* this file's split range */
        int a = lo > f0 ? lo : f0, b = hi < f1 ? hi : f1;
        if (a >= b) continue; /* not needed: not even opened */
        char name[32], path[4096];
        if (train) snprintf(name, sizeof name, "data_batch_%d.bin", fi + 1);
        else snprintf(name, sizeof name, "test_batch.bin");
        rc = join_path(path, sizeof path, dir, name);
        if (rc == DJ_OK)
            rc = read_batch_file(path, rpf, a - f0, b - a, buf, pixels + (size_t)(a - lo) * IMG, labels + (a - lo));
    }
    free(buf);
    if (rc != DJ_OK) {
        dj_free(pixels);
        free(labels);
        return rc;
    }
    ds->n = n;
    ds->offset = opts->offset;
    ds->pixels = pixels;
    ds->labels = labels;
    return DJ_OK;
}

int dj_cifar10_class_names(const char *dir, char names[DJ_CIFAR10_CLASSES][DJ_CIFAR10_NAME_MAX]) {
    if (!dir) dir = dj_cifar10_default_dir();
    char path[4096];
    int rc = join_path(path, sizeof path, dir, "batches.meta.txt");
    if (rc) return rc;
    FILE *f = fopen(path, "rb");
    if (!f) return dj_error(DJ_EIO, "%s: cannot open: %s", path, strerror(errno));

    /* The official file is 10 short lines plus blank ones; reading it as a
     * whole (capped) keeps line handling trivial and bounds memory. */
    enum { CAP = 1 << 16 };
    char *text = malloc(CAP + 1);
    if (!text) {
        fclose(f);
        return dj_error(DJ_ENOMEM, "%s: cannot allocate a read buffer", path);
    }
    size_t len = fread(text, 1, CAP + 1, f);
    int err = ferror(f);
    fclose(f);
    if (err) rc = dj_error(DJ_EIO, "%s: read error", path);
    else if (len > CAP) rc = dj_error(DJ_EFORMAT, "%s: larger than %d bytes, not a class list", path, CAP);
    text[len > CAP ? CAP : len] = '\0';

    int count = 0, line = 0;
    for (char *p = text; rc == DJ_OK && count < DJ_CIFAR10_CLASSES && p < text + len;) {
        char *end = memchr(p, '\n', (size_t)(text + len - p));
        if (!end) end = text + len;
        line++;
        char *q = end;
        while (q > p && (q[-1] == ' ' || q[-1] == '\t' || q[-1] == '\r')) q--;
        size_t nl = (size_t)(q - p);
        if (nl > 0) {
            if (memchr(p, '\0', nl))
                rc = dj_error(DJ_EFORMAT, "%s: line %d contains a NUL byte, not a text file", path, line);
            else if (nl >= DJ_CIFAR10_NAME_MAX)
                rc = dj_error(DJ_EFORMAT, "%s: line %d: class name of %zu bytes, longer than %d", path, line, nl,
                              DJ_CIFAR10_NAME_MAX - 1);
            else {
                memcpy(names[count], p, nl);
                names[count][nl] = '\0';
                count++;
            }
        }
        p = end + 1;
    }
    free(text);
    if (rc == DJ_OK && count < DJ_CIFAR10_CLASSES)
        rc = dj_error(DJ_EFORMAT, "%s: %d class names, expected %d", path, count, DJ_CIFAR10_CLASSES);
    return rc;
}

/* ------------------------------------------------------- normalisation */

static int check_norm(const float mean[3], const float std[3]) {
    for (int c = 0; c < 3; c++) {
        if (!isfinite(mean[c])) return dj_error(DJ_EINVAL, "normalisation: mean[%d] = %g is not finite", c, mean[c]);
        if (!(std[c] > 0) || !isfinite(std[c]))
            return dj_error(DJ_EINVAL, "normalisation: std[%d] = %g, expected a positive finite number", c, std[c]);
    }
    return DJ_OK;
}

/* A 3 x 256 table of exactly torchvision's float ops: (v / 255 - m) / s. */
static void build_lut(const float mean[3], const float std[3], float lut[3][256]) {
    for (int c = 0; c < 3; c++)
        for (int v = 0; v < 256; v++) lut[c][v] = ((float)v / 255.0f - mean[c]) / std[c];
}

static inline void normalize_pixels(const uint8_t *src, size_t npix, const float lut[3][256], float *dst) {
    for (size_t p = 0; p < npix; p++) {
        dst[3 * p + 0] = lut[0][src[3 * p + 0]];
        dst[3 * p + 1] = lut[1][src[3 * p + 1]];
        dst[3 * p + 2] = lut[2][src[3 * p + 2]];
    }
}

int dj_normalize_u8(const uint8_t *src, size_t npix, const float mean[3], const float std[3], float *dst) {
    int rc = check_norm(mean, std);
    if (rc) return rc;
    float lut[3][256];
    build_lut(mean, std, lut);
    const size_t block = 4096;
    size_t nblocks = (npix + block - 1) / block;
#pragma omp parallel for schedule(static) if (nblocks > 16)
    for (size_t b = 0; b < nblocks; b++) {
        size_t p0 = b * block, cnt = npix - p0 < block ? npix - p0 : block;
        normalize_pixels(src + 3 * p0, cnt, (const float(*)[256])lut, dst + 3 * p0);
    }
    return DJ_OK;
}

int dj_denormalize_u8(const float *src, size_t npix, const float mean[3], const float std[3], uint8_t *dst) {
    int rc = check_norm(mean, std);
    if (rc) return rc;
    int nan = 0;
#pragma omp parallel for schedule(static) reduction(| : nan) if (npix > 65536)
    for (size_t i = 0; i < 3 * npix; i++) {
        int c = (int)(i % 3);
        float v = (src[i] * std[c] + mean[c]) * 255.0f;
        if (v != v) { /* NaN: a defined pixel, reported below */
            nan = 1;
            dst[i] = 0;
        } else {
            v = floorf(v + 0.5f);
            dst[i] = (uint8_t)(v < 0.0f ? 0.0f : v > 255.0f ? 255.0f : v);
        }
    }
    if (nan) return dj_error(DJ_ENUMERIC, "denormalise: NaN input (written as 0)");
    return DJ_OK;
}

/* ------------------------------------------------------- augmentation */

dj_augment_op dj_augment_draw(const dj_augment *aug, dj_rng *r) {
    dj_augment_op op = {0, 0, 0};
    if (!aug) return op;
    op.dy = op.dx = aug->pad > 0 ? aug->pad : 0; /* centre = no shift */
    if (aug->pad > 0) {
        /* Same order as torchvision's RandomCrop.get_params: top, then left. */
        op.dy = (int)dj_rng_below(r, 2u * (uint32_t)aug->pad + 1);
        op.dx = (int)dj_rng_below(r, 2u * (uint32_t)aug->pad + 1);
    }
    if (aug->flip_p > 0) op.flip = dj_rng_uniform(r) < aug->flip_p;
    return op;
}

static int op_valid(int h, int w, int c, int pad, dj_augment_op op) {
    return h > 0 && w > 0 && c > 0 && pad >= 0 && op.dy >= 0 && op.dy <= 2 * pad && op.dx >= 0 &&
           op.dx <= 2 * pad;
}

/* No argument checks: callers validated op against pad. */
static void augment_apply(const uint8_t *src, int h, int w, int c, int pad, dj_augment_op op, uint8_t *dst) {
    /* Output (y, x) of crop-then-flip reads padded (y + dy, xs + dx) with
     * xs = flip ? w-1-x : x, i.e. source (y + dy - pad, xs + dx - pad);
     * anything outside the source is the zero padding. */
    for (int y = 0; y < h; y++) {
        int sy = y + op.dy - pad;
        uint8_t *drow = dst + (size_t)y * w * c;
        if (sy < 0 || sy >= h) {
            memset(drow, 0, (size_t)w * c);
            continue;
        }
        const uint8_t *srow = src + (size_t)sy * w * c;
        if (!op.flip) {
            /* Unflipped rows are a shifted copy: memcpy the overlap. */
            int x0 = pad - op.dx, x1 = w + pad - op.dx; /* sx = 0 at x0, sx = w at x1 */
            if (x0 < 0) x0 = 0;
            if (x0 > w) x0 = w; /* pad > w: the window may miss the image */
            if (x1 > w) x1 = w;
            if (x1 < x0) x1 = x0;
            memset(drow, 0, (size_t)x0 * c);
            memcpy(drow + (size_t)x0 * c, srow + (size_t)(x0 + op.dx - pad) * c, (size_t)(x1 - x0) * c);
            memset(drow + (size_t)x1 * c, 0, (size_t)(w - x1) * c);
        } else {
            for (int x = 0; x < w; x++) {
                int sx = (w - 1 - x) + op.dx - pad;
                uint8_t *d = drow + (size_t)x * c;
                if (sx < 0 || sx >= w) memset(d, 0, (size_t)c);
                else memcpy(d, srow + (size_t)sx * c, (size_t)c);
            }
        }
    }
}

int dj_augment_apply(const uint8_t *src, int h, int w, int c, int pad, dj_augment_op op, uint8_t *dst) {
    if (!op_valid(h, w, c, pad, op))
        return dj_error(DJ_EINVAL, "augment: op (dy %d, dx %d) invalid for a %dx%dx%d image with pad %d", op.dy, op.dx,
                        h, w, c, pad);
    augment_apply(src, h, w, c, pad, op, dst);
    return DJ_OK;
}

/* ------------------------------------------------------- batches */

void dj_cifar10_epoch_order(dj_rng *r, int32_t *order, int n) {
    for (int i = 0; i < n; i++) order[i] = i;
    dj_rng_shuffle(r, order, n);
}

int dj_cifar10_batch(const dj_cifar10 *ds, const int32_t *idx, int n, const dj_augment *aug, dj_rng *r,
                     const float mean[3], const float std[3], dj_tensor *x, int32_t *labels) {
    if (!ds || !x || (n > 0 && !idx)) return dj_error(DJ_EINVAL, "cifar10 batch: NULL argument");
    if (n <= 0) return dj_error(DJ_EINVAL, "cifar10 batch: batch size %d, expected > 0", n);
    if (x->n != n || x->h != SIDE || x->w != SIDE || x->c != 3 || !x->data)
        return dj_error(DJ_EINVAL, "cifar10 batch: tensor is %dx%dx%dx%d, expected %dx32x32x3", x->n, x->h, x->w, x->c,
                        n);
    for (int k = 0; k < n; k++)
        if (idx[k] < 0 || idx[k] >= ds->n)
            return dj_error(DJ_EINVAL, "cifar10 batch: index %d at position %d outside 0..%d", idx[k], k, ds->n - 1);
    int rc = check_norm(mean, std);
    if (rc) return rc;
    int augmenting = aug && (aug->pad > 0 || aug->flip_p > 0);
    if (augmenting && aug->pad < 0) return dj_error(DJ_EINVAL, "cifar10 batch: negative pad %d", aug->pad);
    if (augmenting && aug->pad > SIDE) return dj_error(DJ_EINVAL, "cifar10 batch: pad %d > 32", aug->pad);
    if (augmenting && !r) return dj_error(DJ_EINVAL, "cifar10 batch: augmentation needs a dj_rng");

    /* All draws first, serially in batch order: the batch is then a function
     * of the rng state alone, whatever the thread count or schedule. */
    dj_augment_op *ops = NULL;
    if (augmenting) {
        ops = malloc((size_t)n * sizeof *ops);
        if (!ops) return dj_error(DJ_ENOMEM, "cifar10 batch: cannot allocate %d ops", n);
        for (int k = 0; k < n; k++) ops[k] = dj_augment_draw(aug, r);
    }
    float lut[3][256];
    build_lut(mean, std, lut);
    const float(*clut)[256] = (const float(*)[256])lut;

#pragma omp parallel for schedule(static) if (n >= 8)
    for (int k = 0; k < n; k++) {
        const uint8_t *src = ds->pixels + (size_t)idx[k] * IMG;
        uint8_t tmp[IMG];
        if (ops) {
            augment_apply(src, SIDE, SIDE, 3, aug->pad, ops[k], tmp);
            src = tmp;
        }
        normalize_pixels(src, PLANE, clut, x->data + (size_t)k * IMG);
    }
    if (labels)
        for (int k = 0; k < n; k++) labels[k] = ds->labels[idx[k]];
    free(ops);
    return DJ_OK;
}
