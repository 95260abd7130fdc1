/* PNG read (any PNG -> 8-bit RGB) and write (8-bit RGB or grey) with libpng;
 * conversion rules in include/dmvjnd/image.h.
 *
 * libpng reports errors by calling an error function that must not return;
 * it longjmps back to a setjmp. Each setjmp sits in a small inner function
 * (read_png, write_png) whose state all lives in a png_ctx owned by the
 * caller: no local of the setjmp frame is changed after setjmp, so nothing
 * needs `volatile` (C11 7.13.2.1), and the caller frees whatever the ctx
 * holds on every path. */
#include <errno.h>
#include <png.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "dmvjnd/core.h"
#include "dmvjnd/tensor.h"
#include "dmvjnd/image.h"
#include "dmvjnd/fileio.h"

int dj_image_alloc(dj_image *img, int h, int w) {
    img->h = img->w = 0;
    img->rgb = NULL;
    if (h < 1 || w < 1 || h > DJ_IMAGE_MAX_SIDE || w > DJ_IMAGE_MAX_SIDE)
        return dj_error(DJ_EINVAL, "image size %dx%d outside 1..%d per side", w, h, DJ_IMAGE_MAX_SIDE);
    img->rgb = dj_calloc((size_t)h * (size_t)w * 3);
    if (!img->rgb) return dj_error(DJ_ENOMEM, "cannot allocate a %dx%d image", w, h);
    img->h = h;
    img->w = w;
    return DJ_OK;
}

void dj_image_free(dj_image *img) {
    if (!img) return;
    dj_free(img->rgb);
    img->rgb = NULL;
    img->h = img->w = 0;
}

/* ---------------------------------------------------------- shared */

/* What failed, recorded before libpng longjmps. The first failure wins:
 * an I/O callback sets it and then calls png_error, whose handler must not
 * overwrite the more precise reason. */
typedef struct png_ctx {
    const char *path;
    FILE *fp;           /* read: the file                               */
    uint8_t *pixels;    /* read: h*w*3 (dj_malloc)                      */
    png_bytep *rows;    /* read: row pointers (malloc)                  */
    int h, w;           /* read: size of ctx->pixels                    */
    long long file_size; /* read: bytes in the file (-1: unknown)        */
    uint8_t *out;       /* write: encoded bytes so far (malloc)         */
    size_t out_len, out_cap;
    int status;         /* DJ_E* of the first failure, 0 if none        */
    char msg[256];      /* its reason, without the path                 */
} png_ctx;

static void fail(png_ctx *ctx, int status, const char *msg) {
    if (ctx->status) return;
    ctx->status = status;
    snprintf(ctx->msg, sizeof ctx->msg, "%s", msg);
}

static void on_png_error(png_structp png, png_const_charp msg) {
    png_ctx *ctx = png_get_error_ptr(png);
    /* libpng's own errors are about the content (bad CRC, bad IHDR, zlib
     * data errors), hence DJ_EFORMAT; our callbacks set other codes first. */
    fail(ctx, DJ_EFORMAT, msg);
    png_longjmp(png, 1);
}

static void on_png_warning(png_structp png, png_const_charp msg) {
    png_ctx *ctx = png_get_error_ptr(png);
    /* Warnings (unknown ancillary chunks, bad sRGB profiles, ...) do not
     * change the pixels we return; keep them out of the user's way. */
    dj_log(DJ_LOG_DEBUG, "%s: libpng: %s", ctx->path, msg);
}

/* ---------------------------------------------------------- read */

/* Our own read callback instead of png_init_io: libpng's default says only
 * "Read Error" for both a truncated file and a failing disk. */
static void read_cb(png_structp png, png_bytep data, size_t len) {
    png_ctx *ctx = png_get_io_ptr(png);
    size_t got = fread(data, 1, len, ctx->fp);
    if (got != len) {
        if (ferror(ctx->fp)) {
            char m[200];
            snprintf(m, sizeof m, "read error: %s", strerror(errno));
            fail(ctx, DJ_EIO, m);
        } else {
            fail(ctx, DJ_EFORMAT, "truncated PNG (unexpected end of file)");
        }
        png_error(png, ctx->msg);
    }
}

/* The libpng part of dj_png_read; returns 0 or the DJ_E* of ctx. */
static int read_png(png_ctx *ctx, png_structp png, png_infop info, int sig_bytes) {
    if (setjmp(png_jmpbuf(png))) return ctx->status ? ctx->status : DJ_EFORMAT;
    png_set_read_fn(png, ctx, read_cb);
    png_set_sig_bytes(png, sig_bytes);
    png_read_info(png, info);

    png_uint_32 w, h;
    int depth, color, interlace;
    png_get_IHDR(png, info, &w, &h, &depth, &color, &interlace, NULL, NULL);
    if (w > DJ_IMAGE_MAX_SIDE || h > DJ_IMAGE_MAX_SIDE) {
        char m[160];
        snprintf(m, sizeof m, "%lux%lu pixels, larger than the limit of %d per side", (unsigned long)w,
                 (unsigned long)h, DJ_IMAGE_MAX_SIDE);
        fail(ctx, DJ_EFORMAT, m);
        png_error(png, ctx->msg);
    }
    /* No giant allocation for a header that lies: deflate compresses at
     * most 1032:1, so the h rows of (1 filter byte + rowbytes) need at least
     * 1/1032 of their size in the file. A 16384x16384 IHDR in a 100-byte
     * file is refused here instead of allocating 805 MB for its pixels. */
    unsigned long long raw = (unsigned long long)h * (png_get_rowbytes(png, info) + 1);
    if (ctx->file_size >= 0 && raw / 1032 > (unsigned long long)ctx->file_size) {
        char m[200];
        snprintf(m, sizeof m, "truncated PNG: %lux%lu pixels need at least %llu bytes of image data, the file has %lld",
                 (unsigned long)w, (unsigned long)h, raw / 1032, ctx->file_size);
        fail(ctx, DJ_EFORMAT, m);
        png_error(png, ctx->msg);
    }
    /* To 8-bit RGB. libpng applies these in its own fixed order, so the
     * call order here does not matter. png_set_expand: palette -> RGB,
     * grey < 8 bits -> 8 bits, tRNS -> alpha (then stripped below). */
    png_set_expand(png);
    png_set_strip_16(png);
    png_set_strip_alpha(png);
    if (!(color & PNG_COLOR_MASK_COLOR)) png_set_gray_to_rgb(png);
    png_set_interlace_handling(png); /* Adam7: png_read_image does the passes */
    png_read_update_info(png, info);
    if (png_get_channels(png, info) != 3 || png_get_bit_depth(png, info) != 8 ||
        png_get_rowbytes(png, info) != (size_t)w * 3) {
        fail(ctx, DJ_EINTERNAL, "libpng did not convert to 8-bit RGB");
        png_error(png, ctx->msg);
    }

    ctx->pixels = dj_malloc((size_t)h * w * 3);
    ctx->rows = malloc((size_t)h * sizeof *ctx->rows);
    if (!ctx->pixels || !ctx->rows) {
        fail(ctx, DJ_ENOMEM, "cannot allocate the pixels");
        png_error(png, ctx->msg);
    }
    for (png_uint_32 y = 0; y < h; y++) ctx->rows[y] = ctx->pixels + (size_t)y * w * 3;
    png_read_image(png, ctx->rows);
    /* Reads up to IEND, checking the CRCs of what follows the image data:
     * a file cut after its pixels is still reported as truncated. */
    png_read_end(png, NULL);
    ctx->h = (int)h;
    ctx->w = (int)w;
    return DJ_OK;
}

int dj_png_read(const char *path, dj_image *img) {
    if (!img) return dj_error(DJ_EINVAL, "png read: NULL image");
    img->h = img->w = 0;
    img->rgb = NULL;
    if (!path) return dj_error(DJ_EINVAL, "png read: NULL path");

    FILE *fp = fopen(path, "rb");
    if (!fp) return dj_error(DJ_EIO, "%s: cannot open: %s", path, strerror(errno));
    /* Check the signature ourselves: a text or JPEG file then gets a plain
     * "not a PNG file" instead of a libpng message about a bad signature. */
    unsigned char sig[8];
    size_t got = fread(sig, 1, sizeof sig, fp);
    if (got != sizeof sig || png_sig_cmp(sig, 0, sizeof sig) != 0) {
        int io = ferror(fp);
        int e = errno;
        fclose(fp);
        if (io) return dj_error(DJ_EIO, "%s: read error: %s", path, strerror(e));
        return dj_error(DJ_EFORMAT, "%s: not a PNG file (%s)", path,
                        got < sizeof sig ? "shorter than the 8-byte signature" : "no PNG signature");
    }

    png_ctx ctx;
    memset(&ctx, 0, sizeof ctx);
    ctx.path = path;
    ctx.fp = fp;
    struct stat st;
    ctx.file_size = fstat(fileno(fp), &st) == 0 && S_ISREG(st.st_mode) ? (long long)st.st_size : -1;
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &ctx, on_png_error, on_png_warning);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!png || !info) {
        png_destroy_read_struct(png ? &png : NULL, NULL, NULL);
        fclose(fp);
        return dj_error(DJ_ENOMEM, "%s: cannot allocate the PNG decoder", path);
    }
    int rc = read_png(&ctx, png, info, (int)sizeof sig);
    png_destroy_read_struct(&png, &info, NULL);
    free(ctx.rows);
    fclose(fp); /* read-only: a close error cannot lose data */
    if (rc != DJ_OK) {
        dj_free(ctx.pixels);
        return dj_error(rc, "%s: %s", path, ctx.msg);
    }
    img->h = ctx.h;
    img->w = ctx.w;
    img->rgb = ctx.pixels;
    return DJ_OK;
}

/* ---------------------------------------------------------- write */

/* Encoded bytes go to a memory buffer, written out atomically at the end, so
 * a failed encode never touches the file system. */
static void write_cb(png_structp png, png_bytep data, size_t len) {
    png_ctx *ctx = png_get_io_ptr(png);
    if (len > ctx->out_cap - ctx->out_len) {
        size_t cap = ctx->out_cap ? ctx->out_cap : 4096;
        while (cap - ctx->out_len < len) {
            if (cap > SIZE_MAX / 2) {
                fail(ctx, DJ_ENOMEM, "encoded PNG too large");
                png_error(png, ctx->msg);
            }
            cap *= 2;
        }
        uint8_t *p = realloc(ctx->out, cap);
        if (!p) {
            fail(ctx, DJ_ENOMEM, "cannot grow the PNG buffer");
            png_error(png, ctx->msg);
        }
        ctx->out = p;
        ctx->out_cap = cap;
    }
    memcpy(ctx->out + ctx->out_len, data, len);
    ctx->out_len += len;
}

static void flush_cb(png_structp png) { (void)png; }

/* The libpng part of png_write: encodes into ctx->out. */
static int write_png(png_ctx *ctx, png_structp png, png_infop info, const uint8_t *data, int h, int w,
                     int channels) {
    if (setjmp(png_jmpbuf(png))) return ctx->status ? ctx->status : DJ_EINTERNAL;
    png_set_write_fn(png, ctx, write_cb, flush_cb);
    png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, 8, channels == 3 ? PNG_COLOR_TYPE_RGB : PNG_COLOR_TYPE_GRAY,
                 PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    for (int y = 0; y < h; y++) png_write_row(png, data + (size_t)y * w * channels);
    png_write_end(png, NULL);
    return DJ_OK;
}

static int png_write(const char *path, const uint8_t *data, int h, int w, int channels) {
    if (!path || !*path) return dj_error(DJ_EINVAL, "png write: empty path");
    if (!data) return dj_error(DJ_EINVAL, "%s: png write: NULL pixels", path);
    if (h < 1 || w < 1 || h > DJ_IMAGE_MAX_SIDE || w > DJ_IMAGE_MAX_SIDE)
        return dj_error(DJ_EINVAL, "%s: image size %dx%d outside 1..%d per side", path, w, h, DJ_IMAGE_MAX_SIDE);

    png_ctx ctx;
    memset(&ctx, 0, sizeof ctx);
    ctx.path = path;
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &ctx, on_png_error, on_png_warning);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!png || !info) {
        png_destroy_write_struct(png ? &png : NULL, NULL);
        return dj_error(DJ_ENOMEM, "%s: cannot allocate the PNG encoder", path);
    }
    int rc = write_png(&ctx, png, info, data, h, w, channels);
    png_destroy_write_struct(&png, &info);
    if (rc == DJ_OK) rc = dj_write_file_atomic(path, ctx.out, ctx.out_len); /* its message names the path */
    else rc = dj_error(rc, "%s: %s", path, ctx.msg);
    free(ctx.out);
    return rc;
}

int dj_png_write_rgb(const char *path, const uint8_t *rgb, int h, int w) { return png_write(path, rgb, h, w, 3); }

int dj_png_write_gray(const char *path, const uint8_t *gray, int h, int w) { return png_write(path, gray, h, w, 1); }
