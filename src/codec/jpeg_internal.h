/* libjpeg glue shared by src/codec/jpeg.c and src/codec/suppress.c: an error
 * manager that longjmps instead of exiting, a growable in-memory destination,
 * and the decoder that dj_jpeg_decode and the suppression check both use.
 *
 * The setjmp for libjpeg's errors sits in a small function whose state lives
 * in a caller-owned struct (as src/io/png.c does for libpng): no local of the
 * setjmp frame changes after setjmp, so nothing needs `volatile`. */
#ifndef DMVJND_CODEC_JPEG_INTERNAL_H
#define DMVJND_CODEC_JPEG_INTERNAL_H

#include <setjmp.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h> /* jpeglib.h needs FILE */

#include <jpeglib.h>
#include <jerror.h> /* the message codes (JWRN_*, JERR_*) */

typedef struct dj_jpeg_err {
    struct jpeg_error_mgr pub;
    jmp_buf jmp;
    int status;      /* DJ_E* of the first failure, 0 if none               */
    int fail_status; /* what libjpeg's own errors map to (DJ_EFORMAT when
                        decoding, DJ_EINTERNAL when encoding our pixels)     */
    char msg[JMSG_LENGTH_MAX + 64];
} dj_jpeg_err;

/* Install the error manager in a zeroed (not yet created) libjpeg object. */
struct jpeg_error_mgr *dj_jpeg_err_init(dj_jpeg_err *e, int fail_status);

/* Growable malloc'ed output buffer, reusable across compressions. */
typedef struct dj_jpeg_dest {
    struct jpeg_destination_mgr pub;
    uint8_t *data;
    size_t len, cap;
    dj_jpeg_err *err; /* where to record an allocation failure */
} dj_jpeg_dest;

void dj_jpeg_dest_attach(j_compress_ptr c, dj_jpeg_dest *d, dj_jpeg_err *err);

/* The parameters of dj_jpeg_encode (baseline, 4:4:4, optimised Huffman,
 * jpeg_set_quality(q, TRUE)) on a compressor whose input is RGB. */
void dj_jpeg_set_params(j_compress_ptr c, int quality);

/* Decoder state that can be reused for several streams. */
typedef struct dj_jpeg_decoder {
    struct jpeg_decompress_struct d;
    dj_jpeg_err err;
    int created;
    uint8_t *rgb; /* decoded pixels (malloc), grown as needed */
    size_t rgb_cap;
    int h, w;
} dj_jpeg_decoder;

/* Decode into dec->rgb / dec->h / dec->w. Returns 0 or DJ_E* with dec->err.msg
 * set (no path or prefix). */
int dj_jpeg_decoder_run(dj_jpeg_decoder *dec, const uint8_t *data, size_t size);
void dj_jpeg_decoder_free(dj_jpeg_decoder *dec);

int dj_codec_check_image(const char *what, const uint8_t *rgb, int h, int w, int quality);

#endif
