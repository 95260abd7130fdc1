/* Baseline JPEG encode / decode in memory with libjpeg-turbo, and the
 * header-free rate (entropy-coded bytes) of a JPEG file. */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "codec/jpeg_internal.h"
#include "dmvjnd/codec.h"
#include "dmvjnd/dmvjnd.h"
#include "dmvjnd/image.h"

void dj_coded_free(dj_coded *c) {
    if (!c) return;
    free(c->data);
    c->data = NULL;
    c->size = c->payload = 0;
}

int dj_codec_check_image(const char *what, const uint8_t *rgb, int h, int w, int quality) {
    if (!rgb) return dj_error(DJ_EINVAL, "%s: NULL pixels", what);
    if (h < 1 || w < 1 || h > DJ_CODEC_MAX_SIDE || w > DJ_CODEC_MAX_SIDE)
        return dj_error(DJ_EINVAL, "%s: image size %dx%d outside 1..%d per side", what, w, h, DJ_CODEC_MAX_SIDE);
    if (quality < 1 || quality > 100) return dj_error(DJ_EINVAL, "%s: quality %d outside 1..100", what, quality);
    return DJ_OK;
}

/* ---------------------------------------------------------- errors */

/* Warnings that mean the data is corrupt (libjpeg would go on and output
 * grey or garbage blocks). We stop there: a rate measurement on a broken file
 * means nothing, and a truncated file claiming a huge image would otherwise
 * be decoded in full from nothing. */
static int is_corrupt_data_warning(int code) {
    switch (code) {
    case JWRN_JPEG_EOF:
    case JWRN_HIT_MARKER:
    case JWRN_EXTRANEOUS_DATA:
    case JWRN_MUST_RESYNC:
    case JWRN_NOT_SEQUENTIAL:
    case JWRN_HUFF_BAD_CODE:
    case JWRN_ARITH_BAD_CODE:
    case JWRN_BOGUS_PROGRESSION:
    case JWRN_TOO_MUCH_DATA: return 1;
    default: return 0;
    }
}

static void on_error_exit(j_common_ptr c) {
    dj_jpeg_err *e = (dj_jpeg_err *)c->err;
    if (!e->status) {
        e->status = e->pub.msg_code == JERR_OUT_OF_MEMORY ? DJ_ENOMEM : e->fail_status;
        (*c->err->format_message)(c, e->msg);
    }
    longjmp(e->jmp, 1);
}

static void on_emit_message(j_common_ptr c, int level) {
    dj_jpeg_err *e = (dj_jpeg_err *)c->err;
    if (level >= 0) return; /* trace messages */
    e->pub.num_warnings++;
    if (!is_corrupt_data_warning(e->pub.msg_code)) return; /* e.g. an unknown JFIF revision */
    if (!e->status) {
        char m[JMSG_LENGTH_MAX];
        (*c->err->format_message)(c, m);
        e->status = DJ_EFORMAT;
        snprintf(e->msg, sizeof e->msg, "%s", m);
    }
    longjmp(e->jmp, 1);
}

static void on_output_message(j_common_ptr c) { (void)c; }

struct jpeg_error_mgr *dj_jpeg_err_init(dj_jpeg_err *e, int fail_status) {
    struct jpeg_error_mgr *p = jpeg_std_error(&e->pub);
    p->error_exit = on_error_exit;
    p->emit_message = on_emit_message;
    p->output_message = on_output_message;
    e->status = 0;
    e->fail_status = fail_status;
    e->msg[0] = '\0';
    return p;
}

/* ---------------------------------------------------------- destination */

/* Our own destination instead of jpeg_mem_dest: after an error in the middle
 * of a compression, jpeg_mem_dest's buffer pointer may refer to memory it has
 * already freed, and its buffer cannot be reused between compressions. */
static void fail_nomem(j_compress_ptr c, dj_jpeg_dest *d) {
    if (!d->err->status) {
        d->err->status = DJ_ENOMEM;
        snprintf(d->err->msg, sizeof d->err->msg, "cannot grow the JPEG output buffer");
    }
    longjmp(d->err->jmp, 1);
    (void)c;
}

static void dest_init(j_compress_ptr c) {
    dj_jpeg_dest *d = (dj_jpeg_dest *)c->dest;
    if (d->cap < 4096) {
        uint8_t *p = realloc(d->data, 4096);
        if (!p) fail_nomem(c, d);
        d->data = p;
        d->cap = 4096;
    }
    d->len = 0;
    d->pub.next_output_byte = d->data;
    d->pub.free_in_buffer = d->cap;
}

static boolean dest_empty(j_compress_ptr c) {
    dj_jpeg_dest *d = (dj_jpeg_dest *)c->dest;
    size_t used = d->cap; /* libjpeg calls this when the buffer is full */
    if (d->cap > SIZE_MAX / 2) fail_nomem(c, d);
    uint8_t *p = realloc(d->data, d->cap * 2);
    if (!p) fail_nomem(c, d);
    d->data = p;
    d->cap *= 2;
    d->pub.next_output_byte = d->data + used;
    d->pub.free_in_buffer = d->cap - used;
    return TRUE;
}

static void dest_term(j_compress_ptr c) {
    dj_jpeg_dest *d = (dj_jpeg_dest *)c->dest;
    d->len = d->cap - d->pub.free_in_buffer;
}

void dj_jpeg_dest_attach(j_compress_ptr c, dj_jpeg_dest *d, dj_jpeg_err *err) {
    d->pub.init_destination = dest_init;
    d->pub.empty_output_buffer = dest_empty;
    d->pub.term_destination = dest_term;
    d->err = err;
    c->dest = &d->pub;
}

/* ---------------------------------------------------------- encode */

void dj_jpeg_set_params(j_compress_ptr c, int quality) {
    jpeg_set_defaults(c);                 /* JFIF YCbCr, Huffman, JDCT_ISLOW */
    jpeg_set_quality(c, quality, TRUE);   /* standard tables, baseline (8-bit) values */
    for (int i = 0; i < c->num_components; i++) {
        /* 4:4:4: every 8x8 block holds its own pixels in all three
         * components, which the suppression relies on. */
        c->comp_info[i].h_samp_factor = 1;
        c->comp_info[i].v_samp_factor = 1;
    }
    c->optimize_coding = TRUE;
    c->dct_method = JDCT_ISLOW;
}

typedef struct enc_ctx {
    struct jpeg_compress_struct c;
    dj_jpeg_err err;
    dj_jpeg_dest dest;
} enc_ctx;

static int encode_inner(enc_ctx *x, const uint8_t *rgb, int h, int w, int quality) {
    if (setjmp(x->err.jmp)) return x->err.status;
    jpeg_create_compress(&x->c);
    dj_jpeg_dest_attach(&x->c, &x->dest, &x->err);
    x->c.image_width = (JDIMENSION)w;
    x->c.image_height = (JDIMENSION)h;
    x->c.input_components = 3;
    x->c.in_color_space = JCS_RGB;
    dj_jpeg_set_params(&x->c, quality);
    jpeg_start_compress(&x->c, TRUE);
    while (x->c.next_scanline < x->c.image_height) {
        JSAMPROW row = (JSAMPROW)(rgb + (size_t)x->c.next_scanline * (size_t)w * 3);
        jpeg_write_scanlines(&x->c, &row, 1);
    }
    jpeg_finish_compress(&x->c);
    return DJ_OK;
}

int dj_jpeg_encode(const uint8_t *rgb, int h, int w, int quality, dj_coded *out) {
    if (!out) return dj_error(DJ_EINVAL, "jpeg encode: NULL output");
    memset(out, 0, sizeof *out);
    int rc = dj_codec_check_image("jpeg encode", rgb, h, w, quality);
    if (rc) return rc;
    enc_ctx *x = calloc(1, sizeof *x);
    if (!x) return dj_error(DJ_ENOMEM, "jpeg encode: cannot allocate the encoder");
    x->c.err = dj_jpeg_err_init(&x->err, DJ_EINTERNAL);
    rc = encode_inner(x, rgb, h, w, quality);
    jpeg_destroy_compress(&x->c);
    if (rc) {
        rc = dj_error(rc, "jpeg encode: libjpeg: %s", x->err.msg);
        free(x->dest.data);
        free(x);
        return rc;
    }
    out->data = x->dest.data;
    out->size = x->dest.len;
    free(x);
    rc = dj_jpeg_payload_bytes(out->data, out->size, &out->payload);
    if (rc) {
        dj_coded_free(out);
        return dj_error(DJ_EINTERNAL, "jpeg encode: own output unreadable: %s", dj_last_error());
    }
    return DJ_OK;
}

/* ---------------------------------------------------------- decode */

/* Smallest Huffman-coded size of `blocks` blocks: every block of a
 * sequential scan, and of a progressive file's DC scan, spends at least one
 * Huffman code (>= 1 bit) on its DC difference. Arithmetic coding can go
 * far below one bit per block; we allow 1/8 bit. */
static int check_claimed_size(j_decompress_ptr d, size_t size, char *msg, size_t cap) {
    unsigned long long blocks = 0;
    for (int i = 0; i < d->num_components; i++)
        blocks += (unsigned long long)d->comp_info[i].width_in_blocks * d->comp_info[i].height_in_blocks;
    unsigned long long bits_per_block_x8 = d->arith_code ? 1 : 8; /* eighths of a bit */
    if ((unsigned long long)size * 64 < blocks * bits_per_block_x8) {
        snprintf(msg, cap, "truncated JPEG: a %ux%u image has %llu blocks, more than %zu bytes can hold",
                 d->image_width, d->image_height, blocks, size);
        return DJ_EFORMAT;
    }
    return DJ_OK;
}

static int decode_inner(dj_jpeg_decoder *dec, const uint8_t *data, size_t size) {
    if (setjmp(dec->err.jmp)) return dec->err.status;
    if (!dec->created) {
        jpeg_create_decompress(&dec->d);
        dec->created = 1;
        /* Progressive files keep all coefficients in memory; with no backing
         * store, libjpeg-turbo fails cleanly past this limit. */
        dec->d.mem->max_memory_to_use = 512L * 1024 * 1024;
    }
    jpeg_mem_src(&dec->d, data, (unsigned long)size);
    jpeg_read_header(&dec->d, TRUE);
    if (dec->d.image_width > DJ_IMAGE_MAX_SIDE || dec->d.image_height > DJ_IMAGE_MAX_SIDE) {
        dec->err.status = DJ_EFORMAT;
        snprintf(dec->err.msg, sizeof dec->err.msg, "%ux%u pixels, larger than the limit of %d per side",
                 dec->d.image_width, dec->d.image_height, DJ_IMAGE_MAX_SIDE);
        return DJ_EFORMAT;
    }
    int rc = check_claimed_size(&dec->d, size, dec->err.msg, sizeof dec->err.msg);
    if (rc) return dec->err.status = rc;
    dec->d.out_color_space = JCS_RGB; /* greyscale is replicated; CMYK is refused by libjpeg */
    dec->d.dct_method = JDCT_ISLOW;   /* djpeg's defaults */
    dec->d.do_fancy_upsampling = TRUE;
    jpeg_start_decompress(&dec->d);
    if (dec->d.output_components != 3) {
        dec->err.status = DJ_EFORMAT;
        snprintf(dec->err.msg, sizeof dec->err.msg, "libjpeg gives %d components instead of RGB",
                 dec->d.output_components);
        return DJ_EFORMAT;
    }
    size_t w = dec->d.output_width, h = dec->d.output_height;
    if (h * w * 3 > dec->rgb_cap) {
        free(dec->rgb);
        dec->rgb_cap = 0;
        dec->rgb = malloc(h * w * 3);
        if (!dec->rgb) {
            dec->err.status = DJ_ENOMEM;
            snprintf(dec->err.msg, sizeof dec->err.msg, "cannot allocate %zux%zu pixels", w, h);
            return DJ_ENOMEM;
        }
        dec->rgb_cap = h * w * 3;
    }
    while (dec->d.output_scanline < dec->d.output_height) {
        JSAMPROW row = dec->rgb + (size_t)dec->d.output_scanline * w * 3;
        jpeg_read_scanlines(&dec->d, &row, 1);
    }
    jpeg_finish_decompress(&dec->d); /* reads up to EOI: a file cut after its pixels is refused too */
    dec->h = (int)h;
    dec->w = (int)w;
    return DJ_OK;
}

int dj_jpeg_decoder_run(dj_jpeg_decoder *dec, const uint8_t *data, size_t size) {
    if (!dec->created) dec->d.err = dj_jpeg_err_init(&dec->err, DJ_EFORMAT);
    dec->err.status = 0;
    dec->err.msg[0] = '\0';
    dec->h = dec->w = 0;
    int rc = decode_inner(dec, data, size);
    if (rc && dec->created) jpeg_abort_decompress(&dec->d); /* ready for the next stream */
    return rc;
}

void dj_jpeg_decoder_free(dj_jpeg_decoder *dec) {
    if (dec->created) jpeg_destroy_decompress(&dec->d);
    dec->created = 0;
    free(dec->rgb);
    dec->rgb = NULL;
    dec->rgb_cap = 0;
}

int dj_jpeg_decode(const uint8_t *data, size_t size, uint8_t **rgb, int *h, int *w) {
    if (!rgb || !h || !w) return dj_error(DJ_EINVAL, "jpeg decode: NULL output");
    *rgb = NULL;
    *h = *w = 0;
    if (!data && size) return dj_error(DJ_EINVAL, "jpeg decode: NULL data");
    if (size < 4 || data[0] != 0xFF || data[1] != 0xD8)
        return dj_error(DJ_EFORMAT, "jpeg decode: not a JPEG file (%s)",
                        size < 4 ? "shorter than 4 bytes" : "no SOI marker");
    if (size > ULONG_MAX) return dj_error(DJ_EINVAL, "jpeg decode: %zu bytes is too large", size);
    dj_jpeg_decoder *dec = calloc(1, sizeof *dec);
    if (!dec) return dj_error(DJ_ENOMEM, "jpeg decode: cannot allocate the decoder");
    int rc = dj_jpeg_decoder_run(dec, data, size);
    if (rc) {
        rc = dj_error(rc, "jpeg decode: %s", dec->err.msg);
    } else {
        *rgb = dec->rgb;
        *h = dec->h;
        *w = dec->w;
        dec->rgb = NULL;
    }
    dj_jpeg_decoder_free(dec);
    free(dec);
    return rc;
}

/* ---------------------------------------------------------- payload */

int dj_jpeg_payload_bytes(const uint8_t *data, size_t size, size_t *payload) {
    if (!payload) return dj_error(DJ_EINVAL, "jpeg payload: NULL output");
    *payload = 0;
    if (!data || size < 4 || data[0] != 0xFF || data[1] != 0xD8)
        return dj_error(DJ_EFORMAT, "jpeg payload: not a JPEG file (no SOI marker)");
    size_t pos = 2, total = 0;
    int scans = 0;
    for (;;) {
        if (pos >= size) return dj_error(DJ_EFORMAT, "jpeg payload: the file ends before EOI");
        if (data[pos] != 0xFF)
            return dj_error(DJ_EFORMAT, "jpeg payload: byte %zu is 0x%02x, not a marker", pos, data[pos]);
        while (pos < size && data[pos] == 0xFF) pos++; /* fill bytes */
        if (pos >= size) return dj_error(DJ_EFORMAT, "jpeg payload: the file ends before EOI");
        int m = data[pos++];
        if (m == 0xD9) break; /* EOI */
        if (m == 0x01 || (m >= 0xD0 && m <= 0xD7)) continue; /* TEM, RSTn: no length */
        if (m == 0x00 || m == 0xD8)
            return dj_error(DJ_EFORMAT, "jpeg payload: unexpected marker 0xff%02x at byte %zu", m, pos - 2);
        if (size - pos < 2) return dj_error(DJ_EFORMAT, "jpeg payload: truncated marker 0xff%02x", m);
        size_t len = (size_t)data[pos] << 8 | data[pos + 1];
        if (len < 2 || len > size - pos)
            return dj_error(DJ_EFORMAT, "jpeg payload: marker 0xff%02x at byte %zu has a bad length %zu", m,
                            pos - 2, len);
        pos += len;
        if (m != 0xDA) continue;
        /* Entropy-coded data: up to the first 0xFF that starts a marker
         * other than RSTn (0xFF00 is a stuffed 0xFF data byte). */
        size_t start = pos;
        while (pos < size) {
            if (data[pos] == 0xFF) {
                if (pos + 1 >= size) break;
                int nb = data[pos + 1];
                if (nb == 0x00 || (nb >= 0xD0 && nb <= 0xD7)) {
                    pos += 2;
                    continue;
                }
                break;
            }
            pos++;
        }
        if (pos >= size) return dj_error(DJ_EFORMAT, "jpeg payload: scan %d runs to the end of the file", scans + 1);
        total += pos - start;
        scans++;
    }
    if (!scans) return dj_error(DJ_EFORMAT, "jpeg payload: no scan (SOS) before EOI");
    *payload = total;
    return DJ_OK;
}
