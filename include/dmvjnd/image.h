/*
 * 8-bit RGB images and PNG files (libpng).
 *
 * A dj_image is what a network input is made from and what a perturbed input
 * is written back as: h x w pixels, 3 interleaved bytes each (r, g, b), rows
 * top to bottom, no padding: byte ((y*w + x)*3 + c).
 *
 * Reading accepts every PNG colour type and bit depth and returns 8-bit RGB,
 * converting much like Pillow's Image.convert("RGB"):
 *   - grey (1, 2, 4, 8 bits) is scaled to 0..255 and replicated to r = g = b;
 *   - palette images are looked up in the palette;
 *   - 16-bit samples keep their high byte (value >> 8: libpng's
 *     png_set_strip_16; Pillow does the same for 16-bit RGB);
 *   - alpha (an alpha channel or a tRNS chunk) is DROPPED: the stored colour
 *     is kept, not composited onto any background;
 *   - gamma, colour-profile and other ancillary chunks are ignored: the
 *     stored sample values are returned unchanged.
 * Files larger than DJ_IMAGE_MAX_SIDE on either side are refused before any
 * pixel memory is allocated.
 */
#ifndef DMVJND_IMAGE_H
#define DMVJND_IMAGE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define DJ_IMAGE_MAX_SIDE 16384

typedef struct dj_image {
    int h, w;
    uint8_t *rgb; /* h*w*3 bytes, interleaved RGB; owned, free with dj_image_free */
} dj_image;

/* Allocate an h x w image (zeroed). DJ_EINVAL unless 1 <= h, w <= DJ_IMAGE_MAX_SIDE. */
int dj_image_alloc(dj_image *img, int h, int w);
/* Free the pixels and zero the struct (NULL or an empty image is fine). */
void dj_image_free(dj_image *img);

/* Read a PNG into *img (allocated here; on failure img is left empty).
 * Errors, each message naming the file:
 *   DJ_EIO      cannot open or read ("<path>: cannot open: No such file or directory")
 *   DJ_EFORMAT  not a PNG, truncated, corrupt (bad CRC, bad zlib data), or
 *               larger than DJ_IMAGE_MAX_SIDE per side
 *   DJ_ENOMEM */
int dj_png_read(const char *path, dj_image *img);

/* Write h x w 8-bit RGB (rgb: h*w*3 bytes) or 8-bit grey (gray: h*w bytes)
 * as a PNG. The file is encoded in memory and then written atomically
 * (dj_write_file_atomic: temp file, fsync, rename), so `path` is either the
 * old file or the complete new one, never a partial PNG.
 * DJ_EINVAL for a bad size or NULL data, DJ_EIO for write failures. */
int dj_png_write_rgb(const char *path, const uint8_t *rgb, int h, int w);
int dj_png_write_gray(const char *path, const uint8_t *gray, int h, int w);

/* PSNR of two 8-bit images of n bytes: 10 log10(255^2 / MSE) in dB, 100
 * when they are equal (DJ_JND_PSNR_MAX of dmvjnd/jnd.h). */
double dj_psnr_u8(const uint8_t *a, const uint8_t *b, size_t n);

#ifdef __cplusplus
}
#endif

#endif
