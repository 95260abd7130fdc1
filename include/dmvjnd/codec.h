/*
 * Standard image codecs for rate measurements: baseline JPEG through
 * libjpeg-turbo, lossy WebP through libwebp, and JND-directed suppression of
 * quantised JPEG coefficients (a standard JPEG that spends fewer bits where a
 * per-pixel distortion budget allows it). docs/codec.md has the details.
 *
 * Memory: every buffer these functions return (dj_coded.data, decoded
 * pixels) is allocated with malloc: free pixels with free(), coded images
 * with dj_coded_free().
 *
 * Errors: 0 or a negative DJ_E* code with a message (dj_last_error()):
 * DJ_EINVAL for bad arguments (size, quality, NULL, a negative or NaN
 * budget), DJ_EFORMAT for malformed or unsupported data, DJ_ENOMEM.
 * On failure every output is left empty (NULL / 0).
 *
 * Threads: every call uses its own libjpeg / libwebp objects and the
 * library's per-thread error message, so calls on different images may run
 * in parallel (e.g. one image per OpenMP thread).
 */
#ifndef DMVJND_CODEC_H
#define DMVJND_CODEC_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* One coded image, malloc'ed; free with dj_coded_free. */
typedef struct dj_coded {
    uint8_t *data;  /* the whole standard file (JPEG or WebP)                          */
    size_t size;    /* bytes in data                                                    */
    size_t payload; /* header-free bytes: JPEG = entropy-coded bytes between the end of
                       the SOS header and the next non-RST marker (EOI), summed over
                       scans; WebP = the VP8 chunk's frame data after its 10-byte
                       key-frame header (lossy), or the VP8L chunk's data after its
                       5-byte header (lossless)                                       */
} dj_coded;

/* Free data and zero the struct (NULL or an empty struct is fine). */
void dj_coded_free(dj_coded *c);

/* Largest side the encoders accept (WebP's own limit is 16383). */
#define DJ_CODEC_MAX_SIDE 16383

/* Encode h x w interleaved 8-bit RGB (h*w*3 bytes) at quality 1..100.
 * JPEG: baseline, 4:4:4 (no chroma subsampling), JFIF YCbCr, optimised Huffman
 * tables, libjpeg's standard tables scaled by jpeg_set_quality(quality,
 * force_baseline = TRUE), JDCT_ISLOW. The output equals
 * `cjpeg -quality Q -baseline -sample 1x1 -optimize -dct int` of the same pixels.
 * WebP: lossy (VP8, YUV 4:2:0), WebPConfigInit defaults with quality = Q and
 * method 4 (libwebp's default speed/size trade-off), no alpha. */
int dj_jpeg_encode(const uint8_t *rgb, int h, int w, int quality, dj_coded *out);
int dj_webp_encode(const uint8_t *rgb, int h, int w, int quality, dj_coded *out);
/* Lossless WebP (VP8L, ARGB, libwebp's default effort: cwebp -lossless -q 100
 * -m 4): decodes to exactly rgb. Guard's last resort for WebP. */
int dj_webp_encode_lossless(const uint8_t *rgb, int h, int w, dj_coded *out);

/* Decode a standard file to 8-bit RGB: *rgb (malloc'ed, h*w*3), *h, *w.
 * JPEG: libjpeg defaults as djpeg uses them (JDCT_ISLOW, fancy upsampling),
 * so the pixels are bit-identical to `djpeg -ppm`; greyscale is replicated to
 * r = g = b. Unlike djpeg, corrupt-data warnings (premature end of data,
 * bad Huffman codes, extraneous bytes, bad progression) are errors. Images
 * larger than DJ_IMAGE_MAX_SIDE (16384) on either side, and images whose
 * header claims more blocks than their Huffman-coded data can hold, are
 * refused before the pixels are allocated.
 * WebP: libwebp's WebPDecodeRGBInto (fancy upsampling, as dwebp); lossy and
 * lossless, alpha dropped, animations refused. */
int dj_jpeg_decode(const uint8_t *data, size_t size, uint8_t **rgb, int *h, int *w);
int dj_webp_decode(const uint8_t *data, size_t size, uint8_t **rgb, int *h, int *w);

/* Header-free rates of a file in memory (the dj_coded.payload definitions).
 * JPEG: walks the markers; for each SOS counts the bytes from the end of its
 * header to the next marker other than RSTn (stuffed 0xFF00 pairs and RSTn
 * markers inside the scan count). DJ_EFORMAT if the marker structure is
 * broken or there is no scan.
 * WebP: the RIFF chunks must add up to the RIFF size; the payload is the
 * "VP8 " chunk's size minus the 10-byte key-frame header, or the "VP8L"
 * chunk's size minus its 5-byte header. DJ_EFORMAT for a broken container
 * or a file with neither chunk (or more than one). */
int dj_jpeg_payload_bytes(const uint8_t *data, size_t size, size_t *payload);
int dj_webp_payload_bytes(const uint8_t *data, size_t size, size_t *payload);

/* JND-directed coefficient suppression ("quantisation step = twice the JND"
 * made standard JPEG). Quantise at `quality` as dj_jpeg_encode does, then move
 * quantised DCT coefficients toward zero while every pixel and channel of the
 * decoded image stays within
 *     bound(p) = max(budget(p), |plain(p) - x(p)|)       (8-bit levels)
 * where plain is the decoded dj_jpeg_encode output at that quality.
 * budget: h*w*3 floats in 8-bit levels (already multiplied by any strength),
 * finite or +inf and >= 0; NULL = no suppression (the output is plain's).
 * The guarantee is checked with the real decoder on the written stream (what
 * dj_jpeg_decode and djpeg give): blocks that violate it are redone more
 * cautiously or restored to plain's coefficients until none does. The output
 * is never larger than plain in payload: if suppression would not save
 * payload bytes, plain is returned. Same JPEG format as dj_jpeg_encode
 * (baseline, 4:4:4, optimised Huffman tables). stats may be NULL. */
typedef struct dj_suppress_stats {
    long coefficients_changed; /* quantised coefficients that differ from plain's   */
    long blocks;               /* 8x8 pixel blocks (each with its 3 components)     */
    long blocks_restored;      /* blocks set back to plain's coefficients because
                                  the real decoder found a pixel past its bound    */
} dj_suppress_stats;
int dj_jpeg_encode_suppressed(const uint8_t *rgb, int h, int w, int quality, const float *budget, dj_coded *out,
                              dj_suppress_stats *stats);

#ifdef __cplusplus
}
#endif

#endif
