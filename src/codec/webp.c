/* WebP encode (lossy, and lossless for guard's last resort) / decode in
 * memory with libwebp, and the header-free rate (the VP8 or VP8L frame data)
 * of a WebP file. */
#include <stdlib.h>
#include <string.h>

#include <webp/decode.h>
#include <webp/encode.h>

#include "codec/jpeg_internal.h"
#include "dmvjnd/codec.h"
#include "dmvjnd/dmvjnd.h"
#include "dmvjnd/image.h"

static const char *encode_error_name(WebPEncodingError e) {
    switch (e) {
    case VP8_ENC_ERROR_OUT_OF_MEMORY: return "out of memory";
    case VP8_ENC_ERROR_BITSTREAM_OUT_OF_MEMORY: return "out of memory for the bitstream";
    case VP8_ENC_ERROR_NULL_PARAMETER: return "NULL parameter";
    case VP8_ENC_ERROR_INVALID_CONFIGURATION: return "invalid configuration";
    case VP8_ENC_ERROR_BAD_DIMENSION: return "bad dimension";
    case VP8_ENC_ERROR_PARTITION0_OVERFLOW: return "partition 0 overflow (> 512 KiB)";
    case VP8_ENC_ERROR_PARTITION_OVERFLOW: return "partition overflow (> 16 MiB)";
    case VP8_ENC_ERROR_BAD_WRITE: return "write error";
    case VP8_ENC_ERROR_FILE_TOO_BIG: return "file too big (> 4 GiB)";
    case VP8_ENC_ERROR_USER_ABORT: return "aborted";
    default: return "unknown error";
    }
}

/* Lossy (quality 1..100) or lossless (lossless = 1, quality 100: the
 * effort/size trade-off libwebp's cwebp -lossless uses by default). */
static int encode(const uint8_t *rgb, int h, int w, int quality, int lossless, dj_coded *out) {
    if (!out) return dj_error(DJ_EINVAL, "webp encode: NULL output");
    memset(out, 0, sizeof *out);
    int rc = dj_codec_check_image("webp encode", rgb, h, w, quality);
    if (rc) return rc;

    WebPConfig config;
    if (!WebPConfigInit(&config)) return dj_error(DJ_EINTERNAL, "webp encode: libwebp version mismatch");
    config.lossless = lossless;
    config.quality = (float)quality;
    config.method = 4; /* libwebp's default: cwebp's -m 4 */
    if (!WebPValidateConfig(&config)) return dj_error(DJ_EINTERNAL, "webp encode: invalid libwebp configuration");

    WebPPicture pic;
    if (!WebPPictureInit(&pic)) return dj_error(DJ_EINTERNAL, "webp encode: libwebp version mismatch");
    pic.width = w;
    pic.height = h;
    pic.use_argb = lossless; /* lossy: converted to YUV 4:2:0 on import; lossless: ARGB kept */
    WebPMemoryWriter writer;
    WebPMemoryWriterInit(&writer);
    pic.writer = WebPMemoryWrite;
    pic.custom_ptr = &writer;
    if (!WebPPictureImportRGB(&pic, rgb, w * 3)) {
        WebPPictureFree(&pic);
        return dj_error(DJ_ENOMEM, "webp encode: cannot import a %dx%d picture", w, h);
    }
    int ok = WebPEncode(&config, &pic);
    WebPEncodingError err = pic.error_code;
    WebPPictureFree(&pic);
    if (!ok) {
        WebPMemoryWriterClear(&writer);
        return dj_error(err == VP8_ENC_ERROR_OUT_OF_MEMORY ? DJ_ENOMEM : DJ_EINTERNAL, "webp encode: libwebp: %s",
                        encode_error_name(err));
    }
    /* Copy into a malloc'ed buffer so that callers free every codec output
     * the same way (libwebp's buffer must go back through libwebp). */
    out->data = malloc(writer.size ? writer.size : 1);
    if (!out->data) {
        WebPMemoryWriterClear(&writer);
        return dj_error(DJ_ENOMEM, "webp encode: cannot allocate %zu bytes", writer.size);
    }
    memcpy(out->data, writer.mem, writer.size);
    out->size = writer.size;
    WebPMemoryWriterClear(&writer);
    rc = dj_webp_payload_bytes(out->data, out->size, &out->payload);
    if (rc) {
        dj_coded_free(out);
        return dj_error(DJ_EINTERNAL, "webp encode: own output unreadable: %s", dj_last_error());
    }
    return DJ_OK;
}

int dj_webp_encode(const uint8_t *rgb, int h, int w, int quality, dj_coded *out) {
    return encode(rgb, h, w, quality, 0, out);
}

int dj_webp_encode_lossless(const uint8_t *rgb, int h, int w, dj_coded *out) { return encode(rgb, h, w, 100, 1, out); }

static const char *status_name(VP8StatusCode s) {
    switch (s) {
    case VP8_STATUS_OUT_OF_MEMORY: return "out of memory";
    case VP8_STATUS_INVALID_PARAM: return "invalid parameter";
    case VP8_STATUS_BITSTREAM_ERROR: return "bitstream error";
    case VP8_STATUS_UNSUPPORTED_FEATURE: return "unsupported feature";
    case VP8_STATUS_NOT_ENOUGH_DATA: return "truncated data";
    default: return "decoding failed";
    }
}

int dj_webp_decode(const uint8_t *data, size_t size, uint8_t **rgb, int *h, int *w) {
    if (!rgb || !h || !w) return dj_error(DJ_EINVAL, "webp decode: NULL output");
    *rgb = NULL;
    *h = *w = 0;
    if (!data && size) return dj_error(DJ_EINVAL, "webp decode: NULL data");
    if (size < 12 || memcmp(data, "RIFF", 4) || memcmp(data + 8, "WEBP", 4))
        return dj_error(DJ_EFORMAT, "webp decode: not a WebP file (%s)",
                        size < 12 ? "shorter than the 12-byte RIFF header" : "no RIFF/WEBP signature");
    WebPBitstreamFeatures f;
    VP8StatusCode st = WebPGetFeatures(data, size, &f);
    if (st != VP8_STATUS_OK) return dj_error(DJ_EFORMAT, "webp decode: bad header: %s", status_name(st));
    if (f.has_animation) return dj_error(DJ_EFORMAT, "webp decode: animated WebP is not supported");
    if (f.width < 1 || f.height < 1 || f.width > DJ_IMAGE_MAX_SIDE || f.height > DJ_IMAGE_MAX_SIDE)
        return dj_error(DJ_EFORMAT, "webp decode: %dx%d pixels outside 1..%d per side", f.width, f.height,
                        DJ_IMAGE_MAX_SIDE);
    size_t n = (size_t)f.width * (size_t)f.height * 3;
    uint8_t *px = malloc(n);
    if (!px) return dj_error(DJ_ENOMEM, "webp decode: cannot allocate %dx%d pixels", f.width, f.height);
    /* WebPDecodeRGBInto uses libwebp's default options, as dwebp does:
     * fancy upsampling, in-loop filter, no dithering. */
    if (!WebPDecodeRGBInto(data, size, px, n, f.width * 3)) {
        free(px);
        /* WebPDecodeRGBInto says only "failed"; WebPDecode gives the reason. */
        WebPDecoderConfig cfg;
        const char *why = "decoding failed";
        if (WebPInitDecoderConfig(&cfg)) {
            cfg.output.colorspace = MODE_RGB;
            st = WebPDecode(data, size, &cfg);
            if (st != VP8_STATUS_OK) why = status_name(st);
            WebPFreeDecBuffer(&cfg.output);
        }
        return dj_error(DJ_EFORMAT, "webp decode: %s", why);
    }
    *rgb = px;
    *h = f.height;
    *w = f.width;
    return DJ_OK;
}

static uint32_t le32(const uint8_t *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24; }

int dj_webp_payload_bytes(const uint8_t *data, size_t size, size_t *payload) {
    if (!payload) return dj_error(DJ_EINVAL, "webp payload: NULL output");
    *payload = 0;
    if (!data || size < 12 || memcmp(data, "RIFF", 4) || memcmp(data + 8, "WEBP", 4))
        return dj_error(DJ_EFORMAT, "webp payload: not a WebP file (no RIFF/WEBP header)");
    uint32_t riff = le32(data + 4);
    if ((size_t)riff + 8 != size)
        return dj_error(DJ_EFORMAT, "webp payload: RIFF size %u + 8 differs from the file size %zu", riff, size);
    size_t pos = 12, vp8 = 0;
    int found = 0;
    while (pos < size) {
        if (size - pos < 8) return dj_error(DJ_EFORMAT, "webp payload: truncated chunk header at byte %zu", pos);
        uint32_t len = le32(data + pos + 4);
        size_t padded = (size_t)len + (len & 1);
        if (padded > size - pos - 8)
            return dj_error(DJ_EFORMAT, "webp payload: chunk '%.4s' at byte %zu runs past the end", data + pos, pos);
        if (!memcmp(data + pos, "VP8 ", 4)) {
            if (found) return dj_error(DJ_EFORMAT, "webp payload: more than one VP8 chunk");
            /* 3-byte frame tag, 3-byte start code, 2 x 2 bytes of size. */
            if (len < 10) return dj_error(DJ_EFORMAT, "webp payload: VP8 chunk of %u bytes is too short", len);
            const uint8_t *fr = data + pos + 8;
            if (fr[0] & 1) return dj_error(DJ_EFORMAT, "webp payload: VP8 frame is not a key frame");
            if (fr[3] != 0x9d || fr[4] != 0x01 || fr[5] != 0x2a)
                return dj_error(DJ_EFORMAT, "webp payload: VP8 frame has no start code");
            vp8 = (size_t)len - 10;
            found = 1;
        } else if (!memcmp(data + pos, "VP8L", 4)) {
            if (found) return dj_error(DJ_EFORMAT, "webp payload: more than one VP8/VP8L chunk");
            /* 1-byte signature 0x2f, then 14-bit width-1, height-1, alpha, version in 4 bytes. */
            if (len < 5) return dj_error(DJ_EFORMAT, "webp payload: VP8L chunk of %u bytes is too short", len);
            if (data[pos + 8] != 0x2f) return dj_error(DJ_EFORMAT, "webp payload: VP8L chunk has no signature");
            vp8 = (size_t)len - 5;
            found = 1;
        }
        pos += 8 + padded;
    }
    if (!found) return dj_error(DJ_EFORMAT, "webp payload: no VP8 or VP8L chunk");
    *payload = vp8;
    return DJ_OK;
}
