/*
 * CIFAR-10, official "binary version" (Krizhevsky 2009).
 *
 * The folder (usually `cifar-10-batches-bin/`, see scripts/get-cifar10.sh)
 * holds data_batch_1.bin .. data_batch_5.bin (training), test_batch.bin and
 * batches.meta.txt. Each .bin is 10000 records of 3073 bytes: one label byte
 * (0..9) then 3072 pixel bytes as three 32x32 planes, red, green, blue, each
 * row-major from the top-left pixel.
 *
 * In memory a loaded split is uint8 NHWC (pixel (y, x), channel c of image i
 * at ((i*32 + y)*32 + x)*3 + c), the layout the networks take. Pixels stay
 * uint8 until a batch is built, so the whole training set costs 150 MB and
 * augmentation works in pixel space like torchvision does.
 *
 * Typical training loop:
 *
 *   dj_cifar10 train;
 *   dj_cifar10_load(&train, dj_cifar10_default_dir(), "train", NULL);
 *   dj_augment aug = DJ_AUGMENT_CIFAR10;            // crop pad 4 + flip 0.5
 *   const float mean[3] = {0.5f, 0.5f, 0.5f}, std[3] = {0.5f, 0.5f, 0.5f};
 *   dj_cifar10_epoch_order(&rng, order, train.n);    // one shuffle per epoch
 *   for (int b = 0; b < train.n; b += B) {
 *       int n = min(B, train.n - b);
 *       dj_tensor x = dj_tensor_view(buf, n, 32, 32, 3);
 *       dj_cifar10_batch(&train, order + b, n, &aug, &rng, mean, std, &x, labels);
 *       ...
 *   }
 */
#ifndef DMVJND_CIFAR10_H
#define DMVJND_CIFAR10_H

#include <stddef.h>
#include <stdint.h>

#include "dmvjnd/rng.h"
#include "dmvjnd/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

enum {
    DJ_CIFAR10_SIDE = 32,                /* images are 32x32                  */
    DJ_CIFAR10_CHANNELS = 3,             /* RGB                               */
    DJ_CIFAR10_CLASSES = 10,             /* labels 0..9                       */
    DJ_CIFAR10_IMAGE_BYTES = 3072,       /* 32*32*3                           */
    DJ_CIFAR10_RECORD_BYTES = 3073,      /* label byte + image                */
    DJ_CIFAR10_RECORDS_PER_FILE = 10000, /* every official .bin file          */
    DJ_CIFAR10_TRAIN_FILES = 5,          /* data_batch_1..5.bin               */
    DJ_CIFAR10_NAME_MAX = 32             /* class name buffer, NUL included   */
};

/* A loaded split (or a slice of one). Free with dj_cifar10_free. */
typedef struct dj_cifar10 {
    int n;           /* number of images held                                */
    int offset;      /* index within the split of image 0 (opts->offset)     */
    uint8_t *pixels; /* n*32*32*3, NHWC: ((i*32 + y)*32 + x)*3 + c           */
    int32_t *labels; /* n labels in 0..9 (the line of batches.meta.txt)      */
} dj_cifar10;

/* Load options; NULL means all zero = the whole split, official file sizes. */
typedef struct dj_cifar10_opts {
    int offset; /* first record of the split to load (train: 0..49999 across the
                   five files in order; test: 0..9999)                         */
    int limit;  /* load at most this many records; 0 = up to the end          */
    /* Records each .bin must hold; 0 = 10000 (the official files). Any other
     * value is for tests, which then need not write 6 x 30 MB files. The size
     * of each file is checked against it exactly either way.               */
    int records_per_file;
} dj_cifar10_opts;

/* Folder used when a caller has none: $DMVJND_DATA if set and non-empty,
 * else "data/cifar-10-batches-bin" (relative to the working directory,
 * where scripts/get-cifar10.sh unpacks it). If $DMVJND_DATA holds a
 * cifar-10-batches-bin/ folder, that folder is returned instead, so the
 * variable may name either the batches folder or its parent. The string
 * stays valid until the next call in the same thread. */
const char *dj_cifar10_default_dir(void);

/* Load split "train" (data_batch_1..5.bin in order, 50000 records) or "test"
 * (test_batch.bin, 10000 records) from `dir` (NULL = default dir). Only the
 * files that hold the requested records are opened. Errors (ds is left
 * empty, nothing leaks):
 *   DJ_EINVAL   unknown split, negative offset/limit, offset past the end
 *   DJ_EIO      "<dir>/data_batch_3.bin: cannot open: No such file or directory",
 *               read errors
 *   DJ_EFORMAT  "<file>: 30729999 bytes, expected 30730000 (10000 records of
 *               3073 bytes)"; "<file>: record 17 has label byte 12, expected 0..9"
 *   DJ_ENOMEM */
int dj_cifar10_load(dj_cifar10 *ds, const char *dir, const char *split, const dj_cifar10_opts *opts);
void dj_cifar10_free(dj_cifar10 *ds);

/* Class names from <dir>/batches.meta.txt: the first 10 non-empty lines,
 * trailing whitespace (and CR) removed. DJ_EIO if the file cannot be read,
 * DJ_EFORMAT if it has fewer than 10 names or a name longer than 31 bytes. */
int dj_cifar10_class_names(const char *dir, char names[DJ_CIFAR10_CLASSES][DJ_CIFAR10_NAME_MAX]);

/* ------------------------------------------------------- normalisation */

/* dst[p*3 + c] = (src[p*3 + c] / 255 - mean[c]) / std[c] for npix RGB pixels,
 * computed in float in exactly that order, so it equals torchvision's
 * ToTensor() + Normalize(mean, std) bit for bit. DJ_EINVAL if a std is not
 * a positive finite number or a mean is not finite. */
int dj_normalize_u8(const uint8_t *src, size_t npix, const float mean[3], const float std[3], float *dst);

/* Inverse: dst = round(255 * (src*std + mean)), clamped to 0..255 (NaN -> 0;
 * returns DJ_ENUMERIC after converting if any src value was NaN). For
 * writing (perturbed) network inputs back out as images. */
int dj_denormalize_u8(const float *src, size_t npix, const float mean[3], const float std[3], uint8_t *dst);

/* ------------------------------------------------------- augmentation */

/* Training augmentation, torchvision semantics:
 *   RandomCrop(32, padding=pad): the image is padded with `pad` pixels of
 *     value 0 on each side and a 32x32 window is cut at a uniform offset
 *     (dy, dx) in [0, 2*pad]^2. The padding is applied to the uint8 pixels,
 *     i.e. BEFORE normalisation, exactly as torchvision does when RandomCrop
 *     precedes ToTensor/Normalize: a padded pixel is black, and after
 *     normalisation it becomes (0 - mean[c]) / std[c] (-1 for mean = std =
 *     0.5), not 0.
 *   RandomHorizontalFlip(p = flip_p), applied after the crop.
 * Random numbers come from a dj_rng, per image in this order: dy, dx (only
 * if pad > 0), then the flip draw (only if flip_p > 0). */
typedef struct dj_augment {
    int pad;      /* zero padding of the random crop; 0 = no crop   */
    float flip_p; /* probability of a horizontal flip; 0 = never    */
} dj_augment;

#define DJ_AUGMENT_CIFAR10 ((dj_augment){4, 0.5f})

/* What was drawn for one image. */
typedef struct dj_augment_op {
    int dy, dx; /* window origin in the padded image, 0..2*pad (pad = no shift) */
    int flip;   /* 1: mirror left-right                                         */
} dj_augment_op;

/* Draw one image's op from r. */
dj_augment_op dj_augment_draw(const dj_augment *aug, dj_rng *r);

/* dst = window (dy, dx) of src zero-padded by `pad`, mirrored if op.flip.
 * src and dst are h x w x c uint8 interleaved and must not overlap.
 * dy, dx must lie in [0, 2*pad] (DJ_EINVAL otherwise). */
int dj_augment_apply(const uint8_t *src, int h, int w, int c, int pad, dj_augment_op op, uint8_t *dst);

/* ------------------------------------------------------- batches */

/* order[i] = a uniformly random permutation of 0..n-1 (identity, then
 * dj_rng_shuffle): the epoch order. */
void dj_cifar10_epoch_order(dj_rng *r, int32_t *order, int n);

/* Build one batch: image k of x (x->n must equal n, 32x32x3) is image
 * idx[k] of ds, augmented with `aug` (NULL = none) and normalised with
 * mean/std; labels[k] = its label (labels may be NULL). All random numbers
 * are drawn from r first, serially in batch order, and the images are then
 * built in parallel with OpenMP, so the batch depends on the seed only, not
 * on the thread count. r may be NULL when aug is NULL or draws nothing.
 * DJ_EINVAL for an index outside 0..ds->n-1 or a wrong tensor shape. */
int dj_cifar10_batch(const dj_cifar10 *ds, const int32_t *idx, int n, const dj_augment *aug, dj_rng *r,
                     const float mean[3], const float std[3], dj_tensor *x, int32_t *labels);

#ifdef __cplusplus
}
#endif

#endif
