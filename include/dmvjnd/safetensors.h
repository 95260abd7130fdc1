/*
 * safetensors files: weights and checkpoints.
 *
 * Format (https://github.com/huggingface/safetensors):
 *   8 bytes   N, unsigned 64-bit little-endian: length of the header
 *   N bytes   UTF-8 JSON object: {"__metadata__": {str: str},
 *             "<name>": {"dtype": "F32", "shape": [d0, ...], "data_offsets": [begin, end]}, ...}
 *   rest      the byte buffer; offsets are relative to its start. Tensors are
 *             contiguous, row-major, little-endian.
 *
 * Reading (dj_st_open) loads the whole file and validates all of it before
 * returning, so later lookups cannot meet a corrupt entry. It is strict:
 *   - the header length must fit in the file and be at most
 *     DJ_ST_MAX_HEADER_BYTES; the file at most DJ_ST_MAX_FILE_BYTES (both are
 *     checked before any allocation of that size);
 *   - the header must be strict JSON (see src/io/json.h) and an object;
 *     only JSON whitespace may follow it (writers pad with spaces);
 *   - "__metadata__", if present, must map strings to strings;
 *   - every other member is a tensor with a string "dtype", a "shape" array
 *     of non-negative integers whose product does not overflow, and
 *     "data_offsets" [begin, end] with begin <= end <= buffer length; other
 *     members of a tensor entry are ignored (forward compatibility);
 *   - for a known dtype, end - begin must equal product(shape) * dtype size;
 *   - tensor names and metadata keys must be unique, and no tensor entry
 *     may give a field twice (other readers would take the last one, this
 *     parser the first: ambiguity is refused); names must not contain NUL;
 *   - the tensors must cover the byte buffer exactly: no overlaps, no holes,
 *     no trailing bytes, as the format's specification requires. (Files
 *     written by the reference implementation always satisfy this.)
 *   Every failure is DJ_EFORMAT with a message that starts with the path and
 *   names the tensor and the problem (DJ_EIO: cannot read; DJ_ENOMEM).
 *
 * dtypes: only F32 tensors are exposed as floats. Entries of any other dtype
 * (I64 num_batches_tracked of PyTorch state_dicts, F16, BF16, even dtypes
 * this library does not know) are validated and listed but not converted;
 * asking for one as F32 is an error. I64 can be copied out with dj_st_read_i64.
 *
 * Writing (dj_st_writer) collects tensors (F32 and I64) and metadata, checks
 * them, and writes the file atomically (see dmvjnd/fileio.h): an existing
 * file is replaced only by a complete new one. Layout of written files:
 *   - header members: "__metadata__" first (if any metadata was set, keys in
 *     the order first set), then tensors in the order they were added;
 *   - compact JSON, padded with spaces so that 8 + N is a multiple of 8;
 *   - data: 8-byte dtypes (I64) first, then F32, each group in the order
 *     added, so every tensor starts at an offset that is a multiple of its
 *     element size (the reference implementation also aligns this way);
 *     since 8 + N is a multiple of 8, absolute file offsets are aligned too.
 *
 * Host byte order must be little-endian (checked at compile time).
 */
#ifndef DMVJND_SAFETENSORS_H
#define DMVJND_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Largest header accepted (the reference implementation's limit). */
#define DJ_ST_MAX_HEADER_BYTES 100000000u
/* Largest file dj_st_open reads (it reads the whole file into memory). */
#define DJ_ST_MAX_FILE_BYTES ((size_t)1 << 34)

/* One tensor entry of an open file. Pointers stay valid until dj_st_close. */
typedef struct dj_st_tensor {
    const char *name;
    const char *dtype;     /* as written in the file: "F32", "I64", "F16", ... */
    int dtype_bits;        /* bits per element, 0 if the dtype is unknown      */
    int ndim;              /* 0 for a scalar                                   */
    const int64_t *shape;  /* ndim dimensions                                  */
    size_t count;          /* product of shape (1 for a scalar)                */
    const float *f32;      /* the data if dtype is F32 (4-byte aligned), else NULL */
    const void *raw;       /* the tensor's bytes in the file (any alignment)   */
    size_t nbytes;         /* end - begin                                      */
} dj_st_tensor;

/* An open file is immutable: lookups from several threads are safe. */
typedef struct dj_st_file dj_st_file;

/* Flags of dj_st_open. */
enum {
    /* Also fail with DJ_ENUMERIC if an F32 tensor holds NaN or Inf
     * (same check as dj_st_check_finite). */
    DJ_ST_CHECK_FINITE = 1
};

/* Read and validate `path`. On success *out is the file; close it with
 * dj_st_close. Errors: DJ_EIO, DJ_EFORMAT, DJ_ENUMERIC (with
 * DJ_ST_CHECK_FINITE), DJ_ENOMEM, DJ_EINVAL; *out is NULL then. */
int dj_st_open(const char *path, int flags, dj_st_file **out);

/* Same as dj_st_open on bytes already in memory (copied; the caller keeps
 * `bytes`). `name` stands for the path in messages. */
int dj_st_open_memory(const void *bytes, size_t size, const char *name, int flags, dj_st_file **out);

void dj_st_close(dj_st_file *f);

/* Path (or name) the file was opened with. */
const char *dj_st_path(const dj_st_file *f);

/* Tensors in header order. */
size_t dj_st_count(const dj_st_file *f);
const dj_st_tensor *dj_st_at(const dj_st_file *f, size_t i);

/* Tensor by name, or NULL (no error is recorded: absence may be expected). */
const dj_st_tensor *dj_st_find(const dj_st_file *f, const char *name);

/* The F32 data of tensor `name`, checked against an expected shape.
 * ndim < 0 accepts any shape (then `shape` may be NULL).
 * Errors (message starts with the path):
 *   DJ_ENOTFOUND  "model.safetensors: tensor 'layer1.0.conv1.weight' is missing"
 *   DJ_EFORMAT    "...: tensor 'x' has dtype F16, expected F32"
 *   DJ_EINVAL     "...: tensor 'x' has shape [16,3,3,3], expected [16,3,3,4]" */
int dj_st_get_f32(const dj_st_file *f, const char *name, int ndim, const int64_t *shape, const float **data);

/* Copy the I64 tensor `name` (checked like dj_st_get_f32) into out[count]. */
int dj_st_read_i64(const dj_st_file *f, const char *name, int ndim, const int64_t *shape, int64_t *out);

/* DJ_ENUMERIC if any F32 tensor holds NaN or Inf; the message names the
 * tensor, the first bad index and the value. */
int dj_st_check_finite(const dj_st_file *f);

/* Metadata value for `key`, or NULL. Order is the header's. */
const char *dj_st_metadata(const dj_st_file *f, const char *key);
size_t dj_st_metadata_count(const dj_st_file *f);
/* i-th metadata pair; returns 0, or DJ_EINVAL if i is out of range. */
int dj_st_metadata_at(const dj_st_file *f, size_t i, const char **key, const char **value);

/* A metadata value "a,b,c" (e.g. a normalisation's mean) -> three finite
 * floats. DJ_EFORMAT for anything else (the caller names the file). */
int dj_meta_parse_float3(const char *s, float v[3]);

/* ---- writing ---- */

typedef struct dj_st_writer dj_st_writer;

int dj_st_writer_new(dj_st_writer **out);
void dj_st_writer_free(dj_st_writer *w);

/* Add a tensor. The name and shape are copied; `data` (count elements, may
 * be NULL if count is 0) is borrowed and must stay valid until the last
 * dj_st_writer_write/encode. Errors (DJ_EINVAL): empty name, the reserved
 * name "__metadata__", a name added before, a name that is not valid UTF-8,
 * ndim < 0 or > 64, a negative dimension, a byte size that overflows, NULL
 * data. A failed add makes the writer refuse to write (the caller must not
 * end up with a checkpoint that silently lacks a tensor). */
int dj_st_writer_add_f32(dj_st_writer *w, const char *name, int ndim, const int64_t *shape, const float *data);
int dj_st_writer_add_i64(dj_st_writer *w, const char *name, int ndim, const int64_t *shape, const int64_t *data);

/* Set metadata key -> value (both copied, valid UTF-8; a key set again gets
 * the new value in its original position). */
int dj_st_writer_set_metadata(dj_st_writer *w, const char *key, const char *value);

/* Write atomically to `path`. DJ_EIO if the file cannot be written; the
 * previous file at `path`, if any, is then unchanged. */
int dj_st_writer_write(const dj_st_writer *w, const char *path);

/* The complete file as bytes in memory: *bytes (free with dj_free), *size. */
int dj_st_writer_encode(const dj_st_writer *w, void **bytes, size_t *size);

#ifdef __cplusplus
}
#endif

#endif
