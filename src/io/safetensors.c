/* safetensors reader (whole file, validated up front) and atomic writer;
 * the rules are documented in dmvjnd/safetensors.h. */
#if !defined(_GNU_SOURCE) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200809L
#endif

#include "dmvjnd/safetensors.h"

#include <inttypes.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dmvjnd/core.h"
#include "dmvjnd/tensor.h"
#include "dmvjnd/fileio.h"
#include "dmvjnd/json.h"

/* Tensor bytes are used in place (reader) and written straight from memory
 * (writer), so the host must share the format's byte order. Every machine
 * this library targets (x86-64, AArch64 Linux) is little-endian. */
#if defined(__BYTE_ORDER__) && defined(__ORDER_LITTLE_ENDIAN__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "dmvjnd's safetensors code assumes a little-endian host"
#endif

/* A safetensors header nests 3 deep (root, entry, shape); a small limit keeps
 * a hostile header from costing stack. */
#define ST_JSON_DEPTH 16

/* Writer limits: more dims than this is certainly a caller bug. */
#define ST_MAX_NDIM 64

static const struct {
    const char *name;
    int bits;
} dtypes[] = {
    {"BOOL", 8},     {"U8", 8},   {"I8", 8},   {"F8_E5M2", 8}, {"F8_E4M3", 8},  {"F8_E8M0", 8},    {"I16", 16},
    {"U16", 16},     {"F16", 16}, {"BF16", 16}, {"I32", 32},    {"U32", 32},     {"F32", 32},       {"F64", 64},
    {"I64", 64},     {"U64", 64}, {"C64", 64}, {"F4", 4},      {"F6_E2M3", 6},  {"F6_E3M2", 6},
};

static int dtype_bits(const char *name) {
    for (size_t i = 0; i < sizeof dtypes / sizeof dtypes[0]; i++)
        if (strcmp(dtypes[i].name, name) == 0) return dtypes[i].bits;
    return 0;
}

/* "[16,3,3,3]"; truncated with "..." if it does not fit. */
static const char *fmt_shape(char *buf, size_t size, int ndim, const int64_t *shape) {
    size_t n = 0;
    buf[0] = '\0';
    n += (size_t)snprintf(buf, size, "[");
    for (int i = 0; i < ndim && n < size; i++)
        n += (size_t)snprintf(buf + n, size - n, "%s%" PRId64, i ? "," : "", shape[i]);
    if (n < size) n += (size_t)snprintf(buf + n, size - n, "]");
    if (n >= size && size > 4) memcpy(buf + size - 4, "...", 4);
    return buf;
}

/* ------------------------------------------------------------- reader -- */

struct dj_st_file {
    char *path;
    unsigned char *buf;   /* whole file, 64-byte aligned */
    size_t size;
    size_t data_start;    /* 8 + N */
    size_t data_len;
    dj_json *header;      /* names, dtypes and metadata point into it */
    size_t count;
    dj_st_tensor *tensors;        /* header order */
    const dj_st_tensor **by_name; /* sorted by name, for bsearch */
    int64_t *dims;                /* all shapes, concatenated */
    float **copies;               /* aligned copies of misaligned F32 data */
    size_t nmeta;
    const dj_json **meta;         /* metadata members (key + string value) */
};

void dj_st_close(dj_st_file *f) {
    if (!f) return;
    if (f->copies)
        for (size_t i = 0; i < f->count; i++) dj_free(f->copies[i]);
    free(f->copies);
    free(f->path);
    dj_free(f->buf);
    dj_json_free(f->header);
    free(f->tensors);
    free(f->by_name);
    free(f->dims);
    free(f->meta);
    free(f);
}

static int cmp_by_name(const void *a, const void *b) {
    const dj_st_tensor *x = *(const dj_st_tensor *const *)a, *y = *(const dj_st_tensor *const *)b;
    return strcmp(x->name, y->name);
}

typedef struct span {
    uint64_t begin, end;
    size_t index;
} span;

static int cmp_span(const void *a, const void *b) {
    const span *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return x->index < y->index ? -1 : x->index > y->index;
}

static int get_u64(const dj_json *v, uint64_t *out) {
    if (!v || v->type != DJ_JSON_NUMBER || !v->is_int || v->integer < 0) return 0;
    *out = (uint64_t)v->integer;
    return 1;
}

/* Validate one tensor entry and fill t (shape goes to dims). */
static int parse_entry(dj_st_file *f, const dj_json *m, dj_st_tensor *t, int64_t *dims, span *sp) {
    const char *p = f->path, *name = m->key;
    char sbuf[160];
    t->name = name;
    if (m->type != DJ_JSON_OBJECT)
        return dj_error(DJ_EFORMAT, "%s: tensor '%s' is a JSON %s, expected an object", p, name,
                        dj_json_type_name(m->type));
    /* A repeated field is ambiguous (Python's json keeps the last, we would
     * see the first): refuse it rather than disagree with other readers. */
    static const char *const fields[] = {"dtype", "shape", "data_offsets"};
    for (int k = 0; k < 3; k++) {
        int seen = 0;
        for (size_t i = 0; i < m->len; i++)
            seen += strcmp(m->items[i].key, fields[k]) == 0 && m->items[i].key_len == strlen(fields[k]);
        if (seen > 1) return dj_error(DJ_EFORMAT, "%s: tensor '%s' has '%s' more than once", p, name, fields[k]);
    }
    const dj_json *dt = dj_json_get(m, "dtype"), *sh = dj_json_get(m, "shape"), *of = dj_json_get(m, "data_offsets");
    if (!dt) return dj_error(DJ_EFORMAT, "%s: tensor '%s' has no 'dtype'", p, name);
    if (dt->type != DJ_JSON_STRING || strlen(dt->string) != dt->len)
        return dj_error(DJ_EFORMAT, "%s: tensor '%s' has a 'dtype' that is not a string", p, name);
    if (!sh) return dj_error(DJ_EFORMAT, "%s: tensor '%s' has no 'shape'", p, name);
    if (sh->type != DJ_JSON_ARRAY)
        return dj_error(DJ_EFORMAT, "%s: tensor '%s' has a 'shape' that is a %s, expected an array", p, name,
                        dj_json_type_name(sh->type));
    if (!of) return dj_error(DJ_EFORMAT, "%s: tensor '%s' has no 'data_offsets'", p, name);
    t->dtype = dt->string;
    t->dtype_bits = dtype_bits(dt->string);
    if (sh->len > (size_t)INT32_MAX) return dj_error(DJ_EFORMAT, "%s: tensor '%s' has too many dimensions", p, name);
    t->ndim = (int)sh->len;
    t->shape = dims;
    uint64_t count = 1;
    int overflow = 0;
    for (size_t i = 0; i < sh->len; i++) {
        const dj_json *d = &sh->items[i];
        uint64_t u;
        if (!get_u64(d, &u)) {
            if (d->type == DJ_JSON_NUMBER) {
                /* Quote the literal as written: "1e2" or "2.5" say more than
                 * their double values. */
                const char *lit = (const char *)f->buf + 8 + d->offset;
                int n = 0;
                while (n < 40 && lit[n] && strchr("-+.eE0123456789", lit[n])) n++;
                return dj_error(DJ_EFORMAT, "%s: tensor '%s': dimension %zu is %.*s, expected a non-negative integer",
                                p, name, i, n, lit);
            }
            return dj_error(DJ_EFORMAT, "%s: tensor '%s': dimension %zu is %s %s, expected a non-negative integer", p,
                            name, i, d->type == DJ_JSON_ARRAY || d->type == DJ_JSON_OBJECT ? "an" : "a",
                            dj_json_type_name(d->type));
        }
        dims[i] = (int64_t)u;
        /* Multiply in order, as the reference reader does, so a huge shape
         * is an overflow even if a later dimension is 0. */
        if (u != 0 && count > UINT64_MAX / u) overflow = 1;
        count *= u;
    }
    if (overflow || count > SIZE_MAX)
        return dj_error(DJ_EFORMAT, "%s: tensor '%s': shape %s overflows (more than 2^64 elements)", p, name,
                        fmt_shape(sbuf, sizeof sbuf, t->ndim, t->shape));
    t->count = (size_t)count;
    uint64_t begin, end;
    if (of->type != DJ_JSON_ARRAY || of->len != 2 || !get_u64(&of->items[0], &begin) || !get_u64(&of->items[1], &end))
        return dj_error(DJ_EFORMAT, "%s: tensor '%s': 'data_offsets' must be [begin, end] with non-negative integers",
                        p, name);
    if (begin > end)
        return dj_error(DJ_EFORMAT, "%s: tensor '%s' has data_offsets [%" PRIu64 ",%" PRIu64 "] with begin > end", p,
                        name, begin, end);
    if (end > f->data_len)
        return dj_error(DJ_EFORMAT,
                        "%s: tensor '%s' has data_offsets [%" PRIu64 ",%" PRIu64
                        "] outside the data buffer of %zu bytes (truncated file?)",
                        p, name, begin, end, f->data_len);
    if (t->dtype_bits) {
        uint64_t bits = (uint64_t)t->dtype_bits;
        if (count > UINT64_MAX / bits)
            return dj_error(DJ_EFORMAT, "%s: tensor '%s': shape %s overflows its byte size", p, name,
                            fmt_shape(sbuf, sizeof sbuf, t->ndim, t->shape));
        uint64_t need = (count * bits + 7) / 8;
        if (need != end - begin)
            return dj_error(DJ_EFORMAT,
                            "%s: tensor '%s' has %" PRIu64 " bytes of data, but shape %s of dtype %s needs %" PRIu64
                            " bytes",
                            p, name, end - begin, fmt_shape(sbuf, sizeof sbuf, t->ndim, t->shape), t->dtype, need);
    }
    t->raw = f->buf + f->data_start + begin;
    t->nbytes = (size_t)(end - begin);
    sp->begin = begin;
    sp->end = end;
    return DJ_OK;
}

static int cmp_key(const void *a, const void *b) {
    return strcmp((*(const dj_json *const *)a)->key, (*(const dj_json *const *)b)->key);
}

static int parse_metadata(dj_st_file *f, const dj_json *m) {
    if (m->type != DJ_JSON_OBJECT)
        return dj_error(DJ_EFORMAT, "%s: '__metadata__' is a JSON %s, expected an object of strings", f->path,
                        dj_json_type_name(m->type));
    f->meta = malloc((m->len ? m->len : 1) * sizeof *f->meta);
    if (!f->meta) return dj_error(DJ_ENOMEM, "%s: out of memory", f->path);
    for (size_t i = 0; i < m->len; i++) {
        const dj_json *kv = &m->items[i];
        if (strlen(kv->key) != kv->key_len)
            return dj_error(DJ_EFORMAT, "%s: a metadata key contains a NUL character", f->path);
        if (kv->type != DJ_JSON_STRING)
            return dj_error(DJ_EFORMAT, "%s: metadata '%s' is a JSON %s, expected a string", f->path, kv->key,
                            dj_json_type_name(kv->type));
        if (strlen(kv->string) != kv->len)
            return dj_error(DJ_EFORMAT, "%s: metadata '%s' contains a NUL character", f->path, kv->key);
        f->meta[f->nmeta++] = kv;
    }
    /* Duplicate keys: sorted copy, so a hostile header with many keys costs
     * n log n, not n^2. */
    const dj_json **sorted = malloc((f->nmeta ? f->nmeta : 1) * sizeof *sorted);
    if (!sorted) return dj_error(DJ_ENOMEM, "%s: out of memory", f->path);
    if (f->nmeta) memcpy(sorted, f->meta, f->nmeta * sizeof *sorted);
    qsort(sorted, f->nmeta, sizeof *sorted, cmp_key);
    for (size_t i = 1; i < f->nmeta; i++)
        if (strcmp(sorted[i - 1]->key, sorted[i]->key) == 0) {
            int st = dj_error(DJ_EFORMAT, "%s: metadata key '%s' appears more than once", f->path, sorted[i]->key);
            free(sorted);
            return st;
        }
    free(sorted);
    return DJ_OK;
}

/* Validate f->buf[0..size) and build the index. */
static int parse_file(dj_st_file *f, int flags) {
    const char *p = f->path;
    if (f->size < 8)
        return dj_error(DJ_EFORMAT, "%s: file is %zu bytes, too short for a safetensors file (needs at least 8)", p,
                        f->size);
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--) n = (n << 8) | f->buf[i];
    /* Absurd first: a random or foreign file usually fails here. */
    if (n > DJ_ST_MAX_HEADER_BYTES)
        return dj_error(DJ_EFORMAT, "%s: header length %" PRIu64 " is absurd (limit %u bytes); not a safetensors file?",
                        p, n, DJ_ST_MAX_HEADER_BYTES);
    if (n > f->size - 8)
        return dj_error(DJ_EFORMAT, "%s: header length %" PRIu64 " exceeds the %zu bytes after it (truncated file?)", p,
                        n, f->size - 8);
    f->data_start = 8 + (size_t)n;
    f->data_len = f->size - f->data_start;

    size_t plen = strlen(p);
    char *what = malloc(plen + sizeof ": header");
    if (!what) return dj_error(DJ_ENOMEM, "%s: out of memory", p);
    memcpy(what, p, plen);
    memcpy(what + plen, ": header", sizeof ": header");
    int st = dj_json_parse((const char *)f->buf + 8, (size_t)n, what, ST_JSON_DEPTH, &f->header);
    free(what);
    if (st) return st;
    const dj_json *root = f->header;
    if (root->type != DJ_JSON_OBJECT)
        return dj_error(DJ_EFORMAT, "%s: header is a JSON %s, expected an object", p, dj_json_type_name(root->type));

    /* Count tensors and the dims they need (shape arrays are checked in
     * parse_entry; here non-arrays just count 0). */
    size_t ndims = 0;
    const dj_json *meta = NULL;
    for (size_t i = 0; i < root->len; i++) {
        const dj_json *m = &root->items[i];
        if (strcmp(m->key, "__metadata__") == 0 && m->key_len == sizeof "__metadata__" - 1) {
            if (meta) return dj_error(DJ_EFORMAT, "%s: '__metadata__' appears more than once", p);
            meta = m;
            continue;
        }
        if (strlen(m->key) != m->key_len)
            return dj_error(DJ_EFORMAT, "%s: the tensor name at header byte %zu contains a NUL character", p,
                            m->offset);
        f->count++;
        const dj_json *sh = dj_json_get(m, "shape");
        if (sh && sh->type == DJ_JSON_ARRAY) ndims += sh->len;
    }
    if (meta && (st = parse_metadata(f, meta))) return st;

    size_t cnt = f->count ? f->count : 1;
    f->tensors = calloc(cnt, sizeof *f->tensors);
    f->by_name = calloc(cnt, sizeof *f->by_name);
    f->copies = calloc(cnt, sizeof *f->copies);
    f->dims = calloc(ndims ? ndims : 1, sizeof *f->dims);
    span *spans = calloc(cnt, sizeof *spans);
    if (!f->tensors || !f->by_name || !f->copies || !f->dims || !spans) {
        free(spans);
        return dj_error(DJ_ENOMEM, "%s: out of memory for %zu tensors", p, f->count);
    }
    size_t k = 0, d = 0;
    for (size_t i = 0; i < root->len; i++) {
        const dj_json *m = &root->items[i];
        if (m == meta) continue;
        if ((st = parse_entry(f, m, &f->tensors[k], f->dims + d, &spans[k]))) {
            free(spans);
            return st;
        }
        spans[k].index = k;
        f->by_name[k] = &f->tensors[k];
        d += (size_t)f->tensors[k].ndim;
        k++;
    }

    qsort(f->by_name, f->count, sizeof *f->by_name, cmp_by_name);
    for (size_t i = 1; i < f->count; i++)
        if (strcmp(f->by_name[i - 1]->name, f->by_name[i]->name) == 0) {
            free(spans);
            return dj_error(DJ_EFORMAT, "%s: tensor '%s' appears more than once in the header", p, f->by_name[i]->name);
        }

    /* The specification requires the buffer to be fully indexed: tensors
     * tile [0, data_len) exactly. Overlaps would let one tensor alias
     * another; holes and trailing bytes hide data no reader sees. */
    qsort(spans, f->count, sizeof *spans, cmp_span);
    uint64_t pos = 0;
    for (size_t i = 0; i < f->count; i++) {
        const span *s = &spans[i];
        if (s->begin > pos) {
            st = dj_error(DJ_EFORMAT,
                          "%s: bytes [%" PRIu64 ",%" PRIu64
                          ") of the data buffer belong to no tensor (the format requires the buffer to be fully "
                          "indexed)",
                          p, pos, s->begin);
            break;
        }
        if (s->begin < pos) {
            const span *prev = &spans[i - 1]; /* pos > 0 implies i > 0 */
            st = dj_error(DJ_EFORMAT,
                          "%s: tensors '%s' [%" PRIu64 ",%" PRIu64 ") and '%s' [%" PRIu64 ",%" PRIu64 ") overlap", p,
                          f->tensors[prev->index].name, prev->begin, prev->end, f->tensors[s->index].name, s->begin,
                          s->end);
            break;
        }
        pos = s->end;
    }
    free(spans);
    if (st) return st;
    if (pos != f->data_len)
        return dj_error(DJ_EFORMAT,
                        "%s: %" PRIu64 " trailing bytes after the last tensor (the format requires the buffer to be "
                        "fully indexed)",
                        p, (uint64_t)f->data_len - pos);

    /* F32 data is used in place when it is 4-byte aligned (always, for files
     * whose writer padded the header and aligned the tensors); otherwise a
     * copy avoids misaligned float loads, which are undefined behaviour. */
    for (size_t i = 0; i < f->count; i++) {
        dj_st_tensor *t = &f->tensors[i];
        if (strcmp(t->dtype, "F32") != 0) continue;
        if (((uintptr_t)t->raw & (sizeof(float) - 1)) == 0) {
            t->f32 = (const float *)t->raw;
        } else {
            f->copies[i] = dj_malloc(t->nbytes);
            if (!f->copies[i]) return dj_error(DJ_ENOMEM, "%s: out of memory copying tensor '%s'", p, t->name);
            memcpy(f->copies[i], t->raw, t->nbytes);
            t->f32 = f->copies[i];
        }
    }
    if (flags & DJ_ST_CHECK_FINITE) return dj_st_check_finite(f);
    return DJ_OK;
}

/* Takes ownership of buf (from dj_malloc). */
static int open_buffer(unsigned char *buf, size_t size, const char *name, int flags, dj_st_file **out) {
    dj_st_file *f = calloc(1, sizeof *f);
    char *path = strdup(name);
    if (!f || !path) {
        free(f);
        free(path);
        dj_free(buf);
        return dj_error(DJ_ENOMEM, "%s: out of memory", name);
    }
    f->path = path;
    f->buf = buf;
    f->size = size;
    int st = parse_file(f, flags);
    if (st) {
        dj_st_close(f);
        return st;
    }
    *out = f;
    return DJ_OK;
}

int dj_st_open(const char *path, int flags, dj_st_file **out) {
    if (!out) return dj_error(DJ_EINVAL, "dj_st_open: NULL out");
    *out = NULL;
    if (!path) return dj_error(DJ_EINVAL, "dj_st_open: NULL path");
    void *buf;
    size_t size;
    int st = dj_read_file(path, DJ_ST_MAX_FILE_BYTES, &buf, &size);
    if (st) return st;
    return open_buffer(buf, size, path, flags, out);
}

int dj_st_open_memory(const void *bytes, size_t size, const char *name, int flags, dj_st_file **out) {
    if (!out) return dj_error(DJ_EINVAL, "dj_st_open_memory: NULL out");
    *out = NULL;
    if (!name) name = "<memory>";
    if (!bytes && size) return dj_error(DJ_EINVAL, "%s: NULL bytes", name);
    if (size > DJ_ST_MAX_FILE_BYTES)
        return dj_error(DJ_EFORMAT, "%s: %zu bytes, more than the limit of %zu", name, size, DJ_ST_MAX_FILE_BYTES);
    /* A private 64-byte aligned copy: tensor data is then aligned exactly as
     * it would be when read from a file. */
    unsigned char *buf = dj_malloc(size + 1);
    if (!buf) return dj_error(DJ_ENOMEM, "%s: cannot allocate %zu bytes", name, size + 1);
    if (size) memcpy(buf, bytes, size);
    buf[size] = 0;
    return open_buffer(buf, size, name, flags, out);
}

const char *dj_st_path(const dj_st_file *f) { return f ? f->path : NULL; }
size_t dj_st_count(const dj_st_file *f) { return f ? f->count : 0; }

const dj_st_tensor *dj_st_at(const dj_st_file *f, size_t i) {
    return f && i < f->count ? &f->tensors[i] : NULL;
}

const dj_st_tensor *dj_st_find(const dj_st_file *f, const char *name) {
    if (!f || !name || !f->count) return NULL;
    dj_st_tensor key;
    key.name = name;
    const dj_st_tensor *kp = &key;
    const dj_st_tensor **hit = bsearch(&kp, f->by_name, f->count, sizeof *f->by_name, cmp_by_name);
    return hit ? *hit : NULL;
}

/* Shared by the typed getters: presence, dtype, shape. */
static int lookup(const dj_st_file *f, const char *name, const char *dtype, int ndim, const int64_t *shape,
                  const dj_st_tensor **out) {
    if (!f || !name) return dj_error(DJ_EINVAL, "safetensors lookup: NULL file or name");
    const dj_st_tensor *t = dj_st_find(f, name);
    if (!t) return dj_error(DJ_ENOTFOUND, "%s: tensor '%s' is missing", f->path, name);
    if (strcmp(t->dtype, dtype) != 0)
        return dj_error(DJ_EFORMAT, "%s: tensor '%s' has dtype %s, expected %s", f->path, name, t->dtype, dtype);
    if (ndim >= 0) {
        if (ndim > 0 && !shape) return dj_error(DJ_EINVAL, "safetensors lookup of '%s': NULL shape", name);
        int same = ndim == t->ndim;
        for (int i = 0; same && i < ndim; i++) same = shape[i] == t->shape[i];
        if (!same) {
            char have[160], want[160];
            return dj_error(DJ_EINVAL, "%s: tensor '%s' has shape %s, expected %s", f->path, name,
                            fmt_shape(have, sizeof have, t->ndim, t->shape), fmt_shape(want, sizeof want, ndim, shape));
        }
    }
    *out = t;
    return DJ_OK;
}

int dj_st_get_f32(const dj_st_file *f, const char *name, int ndim, const int64_t *shape, const float **data) {
    const dj_st_tensor *t = NULL;
    if (!data) return dj_error(DJ_EINVAL, "dj_st_get_f32: NULL data pointer");
    *data = NULL;
    int st = lookup(f, name, "F32", ndim, shape, &t);
    if (st) return st;
    *data = t->f32;
    return DJ_OK;
}

int dj_st_read_i64(const dj_st_file *f, const char *name, int ndim, const int64_t *shape, int64_t *out) {
    const dj_st_tensor *t = NULL;
    int st = lookup(f, name, "I64", ndim, shape, &t);
    if (st) return st;
    if (t->nbytes && !out) return dj_error(DJ_EINVAL, "dj_st_read_i64: NULL output for tensor '%s'", name);
    if (t->nbytes) memcpy(out, t->raw, t->nbytes); /* raw may be misaligned */
    return DJ_OK;
}

int dj_st_check_finite(const dj_st_file *f) {
    if (!f) return dj_error(DJ_EINVAL, "dj_st_check_finite: NULL file");
    for (size_t i = 0; i < f->count; i++) {
        const dj_st_tensor *t = &f->tensors[i];
        if (!t->f32 || dj_all_finite(t->f32, t->count)) continue;
        size_t j = 0;
        while (j < t->count && isfinite(t->f32[j])) j++;
        return dj_error(DJ_ENUMERIC, "%s: tensor '%s' has a non-finite value (%g) at index %zu", f->path, t->name,
                        (double)t->f32[j < t->count ? j : 0], j);
    }
    return DJ_OK;
}

const char *dj_st_metadata(const dj_st_file *f, const char *key) {
    if (!f || !key) return NULL;
    for (size_t i = 0; i < f->nmeta; i++)
        if (strcmp(f->meta[i]->key, key) == 0) return f->meta[i]->string;
    return NULL;
}

size_t dj_st_metadata_count(const dj_st_file *f) { return f ? f->nmeta : 0; }

int dj_st_metadata_at(const dj_st_file *f, size_t i, const char **key, const char **value) {
    if (!f || i >= f->nmeta) return dj_error(DJ_EINVAL, "metadata index %zu out of range", i);
    if (key) *key = f->meta[i]->key;
    if (value) *value = f->meta[i]->string;
    return DJ_OK;
}

/* ------------------------------------------------------------- writer -- */

typedef struct st_entry {
    char *name;
    const char *dtype; /* "F32" or "I64" */
    int elem;          /* bytes per element */
    int ndim;
    int64_t *shape;
    size_t nbytes;
    const void *data;
} st_entry;

struct dj_st_writer {
    st_entry *e;
    size_t n, cap;
    char **mkey, **mval;
    size_t nmeta, mcap;
    int failed;        /* status of the first failed add (sticky) */
    char failmsg[256];
};

int dj_st_writer_new(dj_st_writer **out) {
    *out = calloc(1, sizeof **out);
    return *out ? DJ_OK : dj_error(DJ_ENOMEM, "out of memory for a safetensors writer");
}

void dj_st_writer_free(dj_st_writer *w) {
    if (!w) return;
    for (size_t i = 0; i < w->n; i++) {
        free(w->e[i].name);
        free(w->e[i].shape);
    }
    for (size_t i = 0; i < w->nmeta; i++) {
        free(w->mkey[i]);
        free(w->mval[i]);
    }
    free(w->e);
    free(w->mkey);
    free(w->mval);
    free(w);
}

static int writer_fail(dj_st_writer *w, int status) {
    if (!w->failed) {
        w->failed = status;
        snprintf(w->failmsg, sizeof w->failmsg, "%s", dj_last_error());
    }
    return status;
}

static int writer_add(dj_st_writer *w, const char *name, const char *dtype, int elem, int ndim, const int64_t *shape,
                      const void *data) {
    if (!w) return dj_error(DJ_EINVAL, "safetensors writer: NULL writer");
    if (!name || !*name) return writer_fail(w, dj_error(DJ_EINVAL, "safetensors writer: empty tensor name"));
    if (strcmp(name, "__metadata__") == 0)
        return writer_fail(w, dj_error(DJ_EINVAL, "safetensors writer: '__metadata__' is reserved, not a tensor name"));
    if (!dj_utf8_valid(name, strlen(name)))
        return writer_fail(w, dj_error(DJ_EINVAL, "safetensors writer: tensor name '%s' is not valid UTF-8", name));
    if (ndim < 0 || ndim > ST_MAX_NDIM || (ndim > 0 && !shape))
        return writer_fail(w, dj_error(DJ_EINVAL, "safetensors writer: tensor '%s' has invalid ndim %d", name, ndim));
    uint64_t count = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0)
            return writer_fail(
                w, dj_error(DJ_EINVAL, "safetensors writer: tensor '%s' has negative dimension %" PRId64, name, shape[i]));
        uint64_t u = (uint64_t)shape[i];
        if (u != 0 && count > UINT64_MAX / u / (uint64_t)elem)
            return writer_fail(w, dj_error(DJ_EINVAL, "safetensors writer: tensor '%s' is too large", name));
        count *= u;
    }
    if (count * (uint64_t)elem > (uint64_t)SIZE_MAX / 2)
        return writer_fail(w, dj_error(DJ_EINVAL, "safetensors writer: tensor '%s' is too large", name));
    if (count && !data) return writer_fail(w, dj_error(DJ_EINVAL, "safetensors writer: tensor '%s' has NULL data", name));
    for (size_t i = 0; i < w->n; i++)
        if (strcmp(w->e[i].name, name) == 0)
            return writer_fail(w, dj_error(DJ_EINVAL, "safetensors writer: tensor '%s' added twice", name));
    if (w->n == w->cap) {
        size_t cap = w->cap ? w->cap * 2 : 16;
        st_entry *e = realloc(w->e, cap * sizeof *e);
        if (!e) return writer_fail(w, dj_error(DJ_ENOMEM, "safetensors writer: out of memory"));
        w->e = e;
        w->cap = cap;
    }
    st_entry *e = &w->e[w->n];
    memset(e, 0, sizeof *e);
    e->name = strdup(name);
    e->shape = malloc((ndim ? (size_t)ndim : 1) * sizeof *e->shape);
    if (!e->name || !e->shape) {
        free(e->name);
        free(e->shape);
        return writer_fail(w, dj_error(DJ_ENOMEM, "safetensors writer: out of memory"));
    }
    if (ndim) memcpy(e->shape, shape, (size_t)ndim * sizeof *shape);
    e->dtype = dtype;
    e->elem = elem;
    e->ndim = ndim;
    e->nbytes = (size_t)(count * (uint64_t)elem);
    e->data = data;
    w->n++;
    return DJ_OK;
}

int dj_st_writer_add_f32(dj_st_writer *w, const char *name, int ndim, const int64_t *shape, const float *data) {
    return writer_add(w, name, "F32", 4, ndim, shape, data);
}

int dj_st_writer_add_i64(dj_st_writer *w, const char *name, int ndim, const int64_t *shape, const int64_t *data) {
    return writer_add(w, name, "I64", 8, ndim, shape, data);
}

int dj_st_writer_set_metadata(dj_st_writer *w, const char *key, const char *value) {
    if (!w) return dj_error(DJ_EINVAL, "safetensors writer: NULL writer");
    if (!key || !value) return writer_fail(w, dj_error(DJ_EINVAL, "safetensors writer: NULL metadata key or value"));
    if (!dj_utf8_valid(key, strlen(key)) || !dj_utf8_valid(value, strlen(value)))
        return writer_fail(w, dj_error(DJ_EINVAL, "safetensors writer: metadata '%s' is not valid UTF-8", key));
    char *v = strdup(value);
    if (!v) return writer_fail(w, dj_error(DJ_ENOMEM, "safetensors writer: out of memory"));
    for (size_t i = 0; i < w->nmeta; i++)
        if (strcmp(w->mkey[i], key) == 0) {
            free(w->mval[i]);
            w->mval[i] = v;
            return DJ_OK;
        }
    if (w->nmeta == w->mcap) {
        size_t cap = w->mcap ? w->mcap * 2 : 8;
        char **k = realloc(w->mkey, cap * sizeof *k);
        if (k) w->mkey = k;
        char **vv = k ? realloc(w->mval, cap * sizeof *vv) : NULL;
        if (vv) w->mval = vv;
        if (!k || !vv) {
            free(v);
            return writer_fail(w, dj_error(DJ_ENOMEM, "safetensors writer: out of memory"));
        }
        w->mcap = cap;
    }
    char *k = strdup(key);
    if (!k) {
        free(v);
        return writer_fail(w, dj_error(DJ_ENOMEM, "safetensors writer: out of memory"));
    }
    w->mkey[w->nmeta] = k;
    w->mval[w->nmeta] = v;
    w->nmeta++;
    return DJ_OK;
}

/* Assign offsets (8-byte dtypes first, then 4-byte, see the header) and
 * build the padded header. `order` receives entry indices in data order,
 * begin[i] entry i's offset (both have w->n slots; kept outside the writer
 * so that writing does not modify it). */
static int build_header(const dj_st_writer *w, size_t *order, uint64_t *begin, char **text, size_t *hlen,
                        uint64_t *data_len) {
    if (w->failed)
        return dj_error(w->failed, "safetensors writer: not written because an earlier call failed: %s", w->failmsg);
    uint64_t pos = 0;
    size_t k = 0;
    for (int elem = 8; elem >= 4; elem -= 4)
        for (size_t i = 0; i < w->n; i++) {
            if (w->e[i].elem != elem) continue;
            begin[i] = pos;
            pos += w->e[i].nbytes;
            order[k++] = i;
        }
    dj_jw jw;
    dj_jw_init(&jw, 0);
    dj_jw_begin_object(&jw);
    if (w->nmeta) {
        dj_jw_key(&jw, "__metadata__");
        dj_jw_begin_object(&jw);
        for (size_t i = 0; i < w->nmeta; i++) {
            dj_jw_key(&jw, w->mkey[i]);
            dj_jw_string(&jw, w->mval[i]);
        }
        dj_jw_end_object(&jw);
    }
    for (size_t i = 0; i < w->n; i++) {
        const st_entry *e = &w->e[i];
        dj_jw_key(&jw, e->name);
        dj_jw_begin_object(&jw);
        dj_jw_key(&jw, "dtype");
        dj_jw_string(&jw, e->dtype);
        dj_jw_key(&jw, "shape");
        dj_jw_begin_array(&jw);
        for (int d = 0; d < e->ndim; d++) dj_jw_int(&jw, e->shape[d]);
        dj_jw_end_array(&jw);
        dj_jw_key(&jw, "data_offsets");
        dj_jw_begin_array(&jw);
        dj_jw_uint(&jw, begin[i]);
        dj_jw_uint(&jw, begin[i] + e->nbytes);
        dj_jw_end_array(&jw);
        dj_jw_end_object(&jw);
    }
    dj_jw_end_object(&jw);
    char *json;
    size_t len;
    int st = dj_jw_finish(&jw, &json, &len);
    if (st) return st;
    /* Pad with spaces so the data starts 8-byte aligned in the file. */
    size_t padded = (len + 7) & ~(size_t)7;
    if (padded > DJ_ST_MAX_HEADER_BYTES) {
        free(json);
        return dj_error(DJ_EINVAL, "safetensors writer: header of %zu bytes exceeds the format's limit", padded);
    }
    char *t = realloc(json, padded + 1);
    if (!t) {
        free(json);
        return dj_error(DJ_ENOMEM, "safetensors writer: out of memory");
    }
    memset(t + len, ' ', padded - len);
    t[padded] = '\0';
    *text = t;
    *hlen = padded;
    *data_len = pos;
    return DJ_OK;
}

static void put_le64(unsigned char *b, uint64_t v) {
    for (int i = 0; i < 8; i++) b[i] = (unsigned char)(v >> (8 * i));
}

int dj_st_writer_encode(const dj_st_writer *w, void **bytes, size_t *size) {
    *bytes = NULL;
    *size = 0;
    if (!w) return dj_error(DJ_EINVAL, "safetensors writer: NULL writer");
    size_t slots = w->n ? w->n : 1;
    size_t *order = malloc(slots * sizeof *order);
    uint64_t *begin = malloc(slots * sizeof *begin);
    if (!order || !begin) {
        free(order);
        free(begin);
        return dj_error(DJ_ENOMEM, "safetensors writer: out of memory");
    }
    char *hdr;
    size_t hlen;
    uint64_t dlen;
    int st = build_header(w, order, begin, &hdr, &hlen, &dlen);
    if (st) {
        free(order);
        free(begin);
        return st;
    }
    size_t total = 8 + hlen + (size_t)dlen;
    unsigned char *out = dj_malloc(total);
    if (!out) {
        free(order);
        free(begin);
        free(hdr);
        return dj_error(DJ_ENOMEM, "safetensors writer: cannot allocate %zu bytes", total);
    }
    put_le64(out, hlen);
    memcpy(out + 8, hdr, hlen);
    for (size_t k = 0; k < w->n; k++) {
        const st_entry *e = &w->e[order[k]];
        if (e->nbytes) memcpy(out + 8 + hlen + begin[order[k]], e->data, e->nbytes);
    }
    free(order);
    free(begin);
    free(hdr);
    *bytes = out;
    *size = total;
    return DJ_OK;
}

int dj_st_writer_write(const dj_st_writer *w, const char *path) {
    if (!w || !path) return dj_error(DJ_EINVAL, "safetensors writer: NULL writer or path");
    size_t slots = w->n ? w->n : 1;
    size_t *order = malloc(slots * sizeof *order);
    uint64_t *begin = malloc(slots * sizeof *begin);
    if (!order || !begin) {
        free(order);
        free(begin);
        return dj_error(DJ_ENOMEM, "safetensors writer: out of memory");
    }
    char *hdr;
    size_t hlen;
    uint64_t dlen;
    /* Everything is validated before the temporary file exists. */
    int st = build_header(w, order, begin, &hdr, &hlen, &dlen);
    if (st) {
        free(order);
        free(begin);
        return st;
    }
    dj_atomic_file *af;
    st = dj_atomic_open(path, &af);
    if (!st) {
        unsigned char len8[8];
        put_le64(len8, hlen);
        dj_atomic_write(af, len8, 8);
        dj_atomic_write(af, hdr, hlen);
        /* Streamed tensor by tensor from the caller's memory: no second copy
         * of a large checkpoint. Write errors are sticky; commit reports. */
        for (size_t k = 0; k < w->n; k++) {
            const st_entry *e = &w->e[order[k]];
            if (e->nbytes) dj_atomic_write(af, e->data, e->nbytes);
        }
        st = dj_atomic_commit(af);
    }
    free(order);
    free(begin);
    free(hdr);
    return st;
}
