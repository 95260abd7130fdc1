/* safetensors reader/writer and the file helpers (atomic writes, writable
 * directory check). Files live in a mkdtemp directory removed at the end. */
#if !defined(_GNU_SOURCE) && !defined(_XOPEN_SOURCE)
#define _XOPEN_SOURCE 700
#endif

#include <dirent.h>
#include <float.h>
#include <ftw.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "dmvjnd/dmvjnd.h"
#include "dmvjnd/fileio.h"
#include "dmvjnd/safetensors.h"

static char tmpdir[] = "/tmp/dj_test_safetensors.XXXXXX";

/* <tmpdir>/<name>; a few rotating buffers so two paths can be live at once. */
static const char *tpath(const char *name) {
    static char bufs[4][512];
    static int next;
    char *b = bufs[next++ & 3];
    snprintf(b, 512, "%s/%s", tmpdir, name);
    return b;
}

static int write_raw(const char *path, const void *data, size_t n) {
    FILE *fp = fopen(path, "wb");
    if (!fp) return -1;
    size_t w = n ? fwrite(data, 1, n, fp) : 0;
    return (fclose(fp) == 0 && w == n) ? 0 : -1;
}

static void put_le64(unsigned char *b, uint64_t v) {
    for (int i = 0; i < 8; i++) b[i] = (unsigned char)(v >> (8 * i));
}

/* A file exactly as the specification describes it: 8-byte LE length of
 * `hdr`, the header bytes as given (no padding added), the data. */
static unsigned char *st_bytes(const char *hdr, const void *data, size_t dlen, size_t *n) {
    size_t hlen = strlen(hdr);
    *n = 8 + hlen + dlen;
    unsigned char *b = malloc(*n + 1);
    if (!b) return NULL;
    put_le64(b, hlen);
    memcpy(b + 8, hdr, hlen);
    if (dlen) memcpy(b + 8 + hlen, data, dlen);
    return b;
}

/* Write a hand-built file to <tmp>/bad.safetensors and open it. */
static int open_hdr(const char *hdr, const void *data, size_t dlen, dj_st_file **f) {
    size_t n;
    unsigned char *b = st_bytes(hdr, data, dlen, &n);
    if (!b || write_raw(tpath("bad.safetensors"), b, n) != 0) {
        free(b);
        return -100;
    }
    free(b);
    return dj_st_open(tpath("bad.safetensors"), 0, f);
}

/* Opening must fail with `code`, a message containing `substr`, a message
 * naming the file, and no file object. */
#define CHECK_OPEN_FAILS(hdr, data, dlen, code, substr)                                                                \
    do {                                                                                                               \
        dj_st_file *f_ = (dj_st_file *)&f_;                                                                            \
        CHECK_FAILS(open_hdr(hdr, data, dlen, &f_), code, substr);                                                     \
        CHECK(strstr(dj_last_error(), "bad.safetensors") != NULL);                                                     \
        CHECK(f_ == NULL);                                                                                             \
        if (f_ != (dj_st_file *)&f_) dj_st_close(f_);                                                                  \
    } while (0)

static const float four[4] = {1.0f, 2.0f, 3.0f, 4.0f};

/* Number of entries in tmpdir whose name starts with '.', other than . and ..
 * (temporary files of atomic writes are hidden files). */
static int hidden_files(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (e->d_name[0] == '.' && strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) n++;
    closedir(d);
    return n;
}

/* ------------------------------------------------------ round trips -- */

static void test_roundtrip_with_metadata(void) {
    float w[16 * 3 * 3 * 3], b[16], scalar = -0.0f, special[8];
    uint32_t bits = 0x12345u;
    for (size_t i = 0; i < sizeof w / sizeof w[0]; i++) {
        bits = bits * 1664525u + 1013904223u; /* arbitrary bit patterns */
        w[i] = (float)(int32_t)bits / 3e9f;
    }
    for (int i = 0; i < 16; i++) b[i] = (float)i / 7.0f;
    uint32_t nan_payload = 0x7fc00123u;
    special[0] = FLT_MIN / 8; /* denormal */
    special[1] = FLT_MAX;
    special[2] = -FLT_MAX;
    special[3] = INFINITY;
    memcpy(&special[4], &nan_payload, 4);
    special[5] = -0.0f;
    special[6] = 1e-45f;
    special[7] = 0.1f;
    int64_t nbt = 123456789012345LL;

    dj_st_writer *wr;
    CHECK_OK(dj_st_writer_new(&wr));
    if (!wr) return;
    CHECK_OK(dj_st_writer_set_metadata(wr, "format", "pt"));
    CHECK_OK(dj_st_writer_set_metadata(wr, "note", "old"));
    CHECK_OK(dj_st_writer_set_metadata(wr, "epoch", "12"));
    CHECK_OK(dj_st_writer_set_metadata(wr, "note", "q\"uote\\ new\nline \xC2\xB5 \xF0\x9F\x98\x80"));
    CHECK_OK(dj_st_writer_add_f32(wr, "layer1.0.conv1.weight", 4, (int64_t[]){16, 3, 3, 3}, w));
    CHECK_OK(dj_st_writer_add_f32(wr, "layer1.0.conv1.bias", 1, (int64_t[]){16}, b));
    CHECK_OK(dj_st_writer_add_i64(wr, "bn.num_batches_tracked", 0, NULL, &nbt));
    CHECK_OK(dj_st_writer_add_f32(wr, "scalar", 0, NULL, &scalar));
    CHECK_OK(dj_st_writer_add_f32(wr, "empty", 2, (int64_t[]){0, 5}, NULL));
    CHECK_OK(dj_st_writer_add_f32(wr, "special", 2, (int64_t[]){2, 4}, special));
    const char *path = tpath("model.safetensors");
    CHECK_OK(dj_st_writer_write(wr, path));
    CHECK(hidden_files(tmpdir) == 0); /* no temporary file left behind */

    dj_st_file *f = NULL;
    CHECK_OK(dj_st_open(path, 0, &f));
    if (!f) {
        dj_st_writer_free(wr);
        return;
    }
    CHECK(strcmp(dj_st_path(f), path) == 0);
    CHECK(dj_st_count(f) == 6);
    /* Header order is insertion order. */
    const char *names[] = {"layer1.0.conv1.weight", "layer1.0.conv1.bias", "bn.num_batches_tracked",
                           "scalar", "empty", "special"};
    for (size_t i = 0; i < 6; i++) CHECK(dj_st_at(f, i) && strcmp(dj_st_at(f, i)->name, names[i]) == 0);
    CHECK(dj_st_at(f, 6) == NULL);

    const float *p;
    CHECK_OK(dj_st_get_f32(f, "layer1.0.conv1.weight", 4, (int64_t[]){16, 3, 3, 3}, &p));
    CHECK(p && memcmp(p, w, sizeof w) == 0);
    CHECK(((uintptr_t)p & 3) == 0);
    CHECK_OK(dj_st_get_f32(f, "layer1.0.conv1.bias", 1, (int64_t[]){16}, &p));
    CHECK(p && memcmp(p, b, sizeof b) == 0);
    CHECK_OK(dj_st_get_f32(f, "scalar", 0, NULL, &p));
    CHECK(p && memcmp(p, &scalar, 4) == 0); /* -0.0 keeps its sign bit */
    CHECK_OK(dj_st_get_f32(f, "special", 2, (int64_t[]){2, 4}, &p));
    CHECK(p && memcmp(p, special, sizeof special) == 0); /* NaN payload, denormals, Inf */
    const dj_st_tensor *t = dj_st_find(f, "empty");
    CHECK(t && t->ndim == 2 && t->shape[0] == 0 && t->shape[1] == 5 && t->count == 0 && t->nbytes == 0);
    t = dj_st_find(f, "scalar");
    CHECK(t && t->ndim == 0 && t->count == 1 && t->nbytes == 4 && strcmp(t->dtype, "F32") == 0 && t->dtype_bits == 32);
    int64_t got_nbt = 0;
    CHECK_OK(dj_st_read_i64(f, "bn.num_batches_tracked", 0, NULL, &got_nbt));
    CHECK(got_nbt == nbt);
    /* Any shape accepted with ndim < 0. */
    CHECK_OK(dj_st_get_f32(f, "layer1.0.conv1.bias", -1, NULL, &p));

    /* Metadata: values, order of first setting, escapes intact. */
    CHECK(dj_st_metadata_count(f) == 3);
    CHECK(dj_st_metadata(f, "format") && strcmp(dj_st_metadata(f, "format"), "pt") == 0);
    CHECK(dj_st_metadata(f, "note") &&
          strcmp(dj_st_metadata(f, "note"), "q\"uote\\ new\nline \xC2\xB5 \xF0\x9F\x98\x80") == 0);
    CHECK(dj_st_metadata(f, "missing") == NULL);
    const char *k, *v;
    CHECK_OK(dj_st_metadata_at(f, 1, &k, &v));
    CHECK(strcmp(k, "note") == 0);
    CHECK_OK(dj_st_metadata_at(f, 2, &k, &v));
    CHECK(strcmp(k, "epoch") == 0 && strcmp(v, "12") == 0);
    CHECK_FAILS(dj_st_metadata_at(f, 3, &k, &v), DJ_EINVAL, "out of range");
    /* The special tensor holds Inf and NaN. */
    CHECK_FAILS(dj_st_check_finite(f), DJ_ENUMERIC, "tensor 'special'");
    dj_st_close(f);

    /* Layout promises: 8 + N is a multiple of 8, I64 data first, each tensor
     * aligned to its element size, file size = 8 + N + data. */
    void *bytes;
    size_t size;
    CHECK_OK(dj_st_writer_encode(wr, &bytes, &size));
    if (bytes) {
        const unsigned char *u = bytes;
        uint64_t n = 0;
        for (int i = 7; i >= 0; i--) n = (n << 8) | u[i];
        CHECK((8 + n) % 8 == 0);
        size_t data = sizeof w + sizeof b + 8 + 4 + 0 + sizeof special;
        CHECK(size == 8 + n + data);
        char *hdr = calloc(1, (size_t)n + 1); /* the header is not NUL-terminated in the file */
        if (hdr) memcpy(hdr, u + 8, (size_t)n);
        CHECK(hdr && strstr(hdr, "\"bn.num_batches_tracked\":{\"dtype\":\"I64\",\"shape\":[],"
                                 "\"data_offsets\":[0,8]}") != NULL);
        free(hdr);
        CHECK(memcmp(u + 8 + n, &nbt, 8) == 0);
        /* The file on disk has the same bytes. */
        void *disk;
        size_t dsize;
        CHECK_OK(dj_read_file(path, 1 << 20, &disk, &dsize));
        CHECK(disk && dsize == size && memcmp(disk, bytes, size) == 0);
        dj_free(disk);
        dj_free(bytes);
    }
    dj_st_writer_free(wr);
}

/* A file assembled by hand exactly as the specification says parses, and
 * the writer produces exactly those bytes. */
static void test_layout_matches_spec(void) {
    const char *json = "{\"__metadata__\":{\"format\":\"pt\"},"
                       "\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                       "\"b\":{\"dtype\":\"F32\",\"shape\":[1,1],\"data_offsets\":[8,12]}}";
    char hdr[256];
    size_t len = strlen(json), padded = (len + 7) / 8 * 8;
    memcpy(hdr, json, len);
    memset(hdr + len, ' ', padded - len);
    hdr[padded] = '\0';
    float data[3] = {1.5f, -2.0f, 3.25f};
    size_t n;
    unsigned char *want = st_bytes(hdr, data, sizeof data, &n);
    if (!want) return;
    /* Little-endian floats: 1.5f is 0x3FC00000. */
    CHECK(want[8 + padded + 3] == 0x3F && want[8 + padded + 2] == 0xC0);

    dj_st_file *f = NULL;
    CHECK_OK(dj_st_open_memory(want, n, "hand.safetensors", 0, &f));
    const float *p;
    CHECK_OK(dj_st_get_f32(f, "a", 1, (int64_t[]){2}, &p));
    CHECK(p && p[0] == 1.5f && p[1] == -2.0f);
    CHECK_OK(dj_st_get_f32(f, "b", 2, (int64_t[]){1, 1}, &p));
    CHECK(p && p[0] == 3.25f);
    CHECK(f && strcmp(dj_st_metadata(f, "format"), "pt") == 0);
    dj_st_close(f);

    dj_st_writer *w;
    CHECK_OK(dj_st_writer_new(&w));
    CHECK_OK(dj_st_writer_set_metadata(w, "format", "pt"));
    CHECK_OK(dj_st_writer_add_f32(w, "a", 1, (int64_t[]){2}, data));
    CHECK_OK(dj_st_writer_add_f32(w, "b", 2, (int64_t[]){1, 1}, data + 2));
    void *got;
    size_t gsize;
    CHECK_OK(dj_st_writer_encode(w, &got, &gsize));
    CHECK(got && gsize == n && memcmp(got, want, n) == 0);
    if (got && (gsize != n || memcmp(got, want, n) != 0))
        fprintf(stderr, "writer header: %.*s\n", (int)(gsize > 8 ? gsize - 8 : 0), (char *)got + 8);
    dj_free(got);
    dj_st_writer_free(w);
    free(want);
}

/* The header length is not padded to 4: F32 data is misaligned in the
 * buffer and must come out through an aligned copy with the right values. */
static void test_misaligned_f32(void) {
    const char *hdr = "{\"x\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,12]}}"; /* 55 bytes */
    CHECK(strlen(hdr) % 4 != 0);
    float vals[3] = {0.5f, -1.25f, 1e30f};
    dj_st_file *f = NULL;
    CHECK_OK(open_hdr(hdr, vals, sizeof vals, &f));
    const float *p;
    CHECK_OK(dj_st_get_f32(f, "x", 1, (int64_t[]){3}, &p));
    CHECK(p && ((uintptr_t)p & 3) == 0 && memcmp(p, vals, sizeof vals) == 0);
    dj_st_close(f);
}

static void test_empty_header(void) {
    dj_st_file *f = NULL;
    CHECK_OK(open_hdr("{}      ", NULL, 0, &f));
    CHECK(f && dj_st_count(f) == 0 && dj_st_metadata_count(f) == 0);
    CHECK(dj_st_find(f, "x") == NULL);
    const float *p;
    CHECK_FAILS(dj_st_get_f32(f, "x", -1, NULL, &p), DJ_ENOTFOUND, "tensor 'x' is missing");
    dj_st_close(f);
    /* An empty writer writes a valid empty file. */
    dj_st_writer *w;
    CHECK_OK(dj_st_writer_new(&w));
    CHECK_OK(dj_st_writer_write(w, tpath("empty.safetensors")));
    CHECK_OK(dj_st_open(tpath("empty.safetensors"), 0, &f));
    CHECK(f && dj_st_count(f) == 0);
    dj_st_close(f);
    dj_st_writer_free(w);
}

/* --------------------------------------------------------- bad files -- */

static void test_missing_file(void) {
    dj_st_file *f = (dj_st_file *)&f;
    CHECK_FAILS(dj_st_open(tpath("nope.safetensors"), 0, &f), DJ_EIO, "nope.safetensors: cannot open");
    CHECK(f == NULL);
    CHECK_FAILS(dj_st_open(tmpdir, 0, &f), DJ_EIO, "not a regular file");
}

static void test_too_short(void) {
    CHECK(write_raw(tpath("bad.safetensors"), "\x10\0\0\0\0", 5) == 0);
    dj_st_file *f = NULL;
    CHECK_FAILS(dj_st_open(tpath("bad.safetensors"), 0, &f), DJ_EFORMAT, "bad.safetensors: file is 5 bytes, too short");
    CHECK_FAILS(dj_st_open_memory("", 0, "zero.safetensors", 0, &f), DJ_EFORMAT, "zero.safetensors: file is 0 bytes");
    CHECK(f == NULL);
}

static void test_header_length_exceeds_file(void) {
    unsigned char b[8 + 10] = {0};
    put_le64(b, 100);
    memcpy(b + 8, "{}        ", 10);
    CHECK(write_raw(tpath("bad.safetensors"), b, sizeof b) == 0);
    dj_st_file *f = NULL;
    CHECK_FAILS(dj_st_open(tpath("bad.safetensors"), 0, &f), DJ_EFORMAT,
                "header length 100 exceeds the 10 bytes after it");
    CHECK(strstr(dj_last_error(), "bad.safetensors"));
}

static void test_header_length_absurd(void) {
    unsigned char b[16] = {0};
    put_le64(b, (uint64_t)1 << 40);
    dj_st_file *f = NULL;
    CHECK(write_raw(tpath("bad.safetensors"), b, sizeof b) == 0);
    CHECK_FAILS(dj_st_open(tpath("bad.safetensors"), 0, &f), DJ_EFORMAT, "header length 1099511627776 is absurd");
    put_le64(b, UINT64_MAX);
    CHECK_FAILS(dj_st_open_memory(b, sizeof b, "m", 0, &f), DJ_EFORMAT, "is absurd");
    put_le64(b, DJ_ST_MAX_HEADER_BYTES + 1ull);
    CHECK_FAILS(dj_st_open_memory(b, sizeof b, "m", 0, &f), DJ_EFORMAT, "is absurd");
}

static void test_header_not_json(void) {
    CHECK_OPEN_FAILS("{\"a\":", NULL, 0, DJ_EFORMAT, "bad.safetensors: header: invalid JSON at byte 5");
    CHECK_OPEN_FAILS("{\"a\":1,}", NULL, 0, DJ_EFORMAT, "invalid JSON at byte 7");
    CHECK_OPEN_FAILS("{}\x01", NULL, 0, DJ_EFORMAT, "invalid JSON");
    /* NUL padding is not whitespace. */
    dj_st_file *f = NULL;
    unsigned char b[8 + 8];
    put_le64(b, 8);
    memcpy(b + 8, "{}\0\0\0\0\0\0", 8);
    CHECK_FAILS(dj_st_open_memory(b, sizeof b, "nul.safetensors", 0, &f), DJ_EFORMAT, "byte 0x00 after the JSON value");
    /* Invalid UTF-8 in a name. */
    CHECK_OPEN_FAILS("{\"\xFF\":1}", NULL, 0, DJ_EFORMAT, "invalid UTF-8");
}

static void test_header_not_object(void) {
    CHECK_OPEN_FAILS("[1,2]   ", NULL, 0, DJ_EFORMAT, "header is a JSON array, expected an object");
    CHECK_OPEN_FAILS("\"x\"", NULL, 0, DJ_EFORMAT, "header is a JSON string");
}

static void test_entry_not_object(void) {
    CHECK_OPEN_FAILS("{\"w\":[1]}", NULL, 0, DJ_EFORMAT, "tensor 'w' is a JSON array, expected an object");
}

static void test_entry_missing_dtype(void) {
    CHECK_OPEN_FAILS("{\"w\":{\"shape\":[1],\"data_offsets\":[0,4]}}", four, 4, DJ_EFORMAT, "tensor 'w' has no 'dtype'");
    CHECK_OPEN_FAILS("{\"w\":{\"dtype\":32,\"shape\":[1],\"data_offsets\":[0,4]}}", four, 4, DJ_EFORMAT,
                     "'dtype' that is not a string");
}

static void test_entry_missing_shape(void) {
    CHECK_OPEN_FAILS("{\"w\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", four, 4, DJ_EFORMAT,
                     "tensor 'w' has no 'shape'");
    CHECK_OPEN_FAILS("{\"w\":{\"dtype\":\"F32\",\"shape\":1,\"data_offsets\":[0,4]}}", four, 4, DJ_EFORMAT,
                     "'shape' that is a number, expected an array");
}

static void test_entry_missing_offsets(void) {
    CHECK_OPEN_FAILS("{\"w\":{\"dtype\":\"F32\",\"shape\":[1]}}", four, 4, DJ_EFORMAT, "tensor 'w' has no 'data_offsets'");
    CHECK_OPEN_FAILS("{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0]}}", four, 4, DJ_EFORMAT,
                     "'data_offsets' must be [begin, end]");
    CHECK_OPEN_FAILS("{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4,8]}}", four, 4, DJ_EFORMAT,
                     "'data_offsets' must be [begin, end]");
    CHECK_OPEN_FAILS("{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[-4,4]}}", four, 4, DJ_EFORMAT,
                     "'data_offsets' must be [begin, end]");
    CHECK_OPEN_FAILS("{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4.0]}}", four, 4, DJ_EFORMAT,
                     "'data_offsets' must be [begin, end]");
}

static void test_negative_dim(void) {
    CHECK_OPEN_FAILS("{\"w\":{\"dtype\":\"F32\",\"shape\":[1,-1],\"data_offsets\":[0,4]}}", four, 4, DJ_EFORMAT,
                     "tensor 'w': dimension 1 is -1, expected a non-negative integer");
}

static void test_non_integer_dim(void) {
    CHECK_OPEN_FAILS("{\"w\":{\"dtype\":\"F32\",\"shape\":[2.5],\"data_offsets\":[0,4]}}", four, 4, DJ_EFORMAT,
                     "dimension 0 is 2.5, expected a non-negative integer");
    CHECK_OPEN_FAILS("{\"w\":{\"dtype\":\"F32\",\"shape\":[\"1\"],\"data_offsets\":[0,4]}}", four, 4, DJ_EFORMAT,
                     "dimension 0 is a string");
    CHECK_OPEN_FAILS("{\"w\":{\"dtype\":\"F32\",\"shape\":[1e0],\"data_offsets\":[0,4]}}", four, 4, DJ_EFORMAT,
                     "dimension 0 is 1e0, expected a non-negative integer");
    CHECK_OPEN_FAILS("{\"w\":{\"dtype\":\"F32\",\"shape\":[99999999999999999999],\"data_offsets\":[0,4]}}", four, 4,
                     DJ_EFORMAT, "dimension 0 is 99999999999999999999,");
    CHECK_OPEN_FAILS("{\"w\":{\"dtype\":\"F32\",\"shape\":[[1]],\"data_offsets\":[0,4]}}", four, 4, DJ_EFORMAT,
                     "dimension 0 is an array");
}

static void test_shape_overflow(void) {
    CHECK_OPEN_FAILS("{\"w\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,2],\"data_offsets\":[0,4]}}", four, 4,
                     DJ_EFORMAT, "tensor 'w': shape [4294967296,4294967296,2] overflows");
    /* Elements fit in 64 bits, bytes do not. */
    CHECK_OPEN_FAILS("{\"w\":{\"dtype\":\"F32\",\"shape\":[4611686018427387904],\"data_offsets\":[0,4]}}", four, 4,
                     DJ_EFORMAT, "overflows its byte size");
}

static void test_offsets_outside_buffer(void) {
    CHECK_OPEN_FAILS("{\"w\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", four, 8, DJ_EFORMAT,
                     "tensor 'w' has data_offsets [0,16] outside the data buffer of 8 bytes");
    CHECK_OPEN_FAILS("{\"w\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[18446744073709551615,"
                     "18446744073709551615]}}",
                     NULL, 0, DJ_EFORMAT, "'data_offsets' must be"); /* > INT64_MAX is not an accepted integer */
}

static void test_begin_after_end(void) {
    CHECK_OPEN_FAILS("{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,0]}}", four, 8, DJ_EFORMAT,
                     "tensor 'w' has data_offsets [8,0] with begin > end");
}

static void test_byte_size_mismatch(void) {
    CHECK_OPEN_FAILS("{\"w\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", four, 8, DJ_EFORMAT,
                     "tensor 'w' has 8 bytes of data, but shape [3] of dtype F32 needs 12 bytes");
    CHECK_OPEN_FAILS("{\"n\":{\"dtype\":\"I64\",\"shape\":[],\"data_offsets\":[0,4]}}", four, 4, DJ_EFORMAT,
                     "shape [] of dtype I64 needs 8 bytes");
}

static void test_overlapping_tensors(void) {
    CHECK_OPEN_FAILS("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                     "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
                     four, 12, DJ_EFORMAT, "tensors 'a' [0,8) and 'b' [4,12) overlap");
    /* The same range twice is an overlap too (aliasing). */
    CHECK_OPEN_FAILS("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                     "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}",
                     four, 8, DJ_EFORMAT, "overlap");
}

static void test_hole_in_buffer(void) {
    CHECK_OPEN_FAILS("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                     "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}",
                     four, 12, DJ_EFORMAT, "bytes [4,8) of the data buffer belong to no tensor");
    CHECK_OPEN_FAILS("{\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", four, 8, DJ_EFORMAT,
                     "bytes [0,4) of the data buffer belong to no tensor");
}

static void test_trailing_bytes(void) {
    CHECK_OPEN_FAILS("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", four, 16, DJ_EFORMAT,
                     "12 trailing bytes after the last tensor");
    CHECK_OPEN_FAILS("{}", four, 4, DJ_EFORMAT, "4 trailing bytes");
}

static void test_duplicate_names(void) {
    CHECK_OPEN_FAILS("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                     "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
                     four, 8, DJ_EFORMAT, "tensor 'a' appears more than once");
    CHECK_OPEN_FAILS("{\"__metadata__\":{},\"__metadata__\":{}}", NULL, 0, DJ_EFORMAT,
                     "'__metadata__' appears more than once");
    CHECK_OPEN_FAILS("{\"__metadata__\":{\"k\":\"1\",\"j\":\"3\",\"k\":\"2\"}}", NULL, 0, DJ_EFORMAT,
                     "metadata key 'k' appears more than once");
    /* A field given twice is ambiguous (Python's json would take the last). */
    CHECK_OPEN_FAILS("{\"w\":{\"dtype\":\"F16\",\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", four, 4,
                     DJ_EFORMAT, "tensor 'w' has 'dtype' more than once");
}

static void test_bad_metadata(void) {
    CHECK_OPEN_FAILS("{\"__metadata__\":{\"epoch\":12}}", NULL, 0, DJ_EFORMAT,
                     "metadata 'epoch' is a JSON number, expected a string");
    CHECK_OPEN_FAILS("{\"__metadata__\":[]}", NULL, 0, DJ_EFORMAT, "'__metadata__' is a JSON array");
    CHECK_OPEN_FAILS("{\"__metadata__\":{\"k\":\"a\\u0000b\"}}", NULL, 0, DJ_EFORMAT, "contains a NUL character");
    CHECK_OPEN_FAILS("{\"a\\u0000b\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[0,0]}}", NULL, 0, DJ_EFORMAT,
                     "contains a NUL character");
}

static void test_non_finite(void) {
    float x[4] = {1.0f, 2.0f, NAN, 4.0f}, y[2] = {1.0f, -INFINITY};
    dj_st_writer *w;
    CHECK_OK(dj_st_writer_new(&w));
    CHECK_OK(dj_st_writer_add_f32(w, "ok", 1, (int64_t[]){2}, four));
    CHECK_OK(dj_st_writer_add_f32(w, "layer2.weight", 2, (int64_t[]){2, 2}, x));
    CHECK_OK(dj_st_writer_write(w, tpath("nan.safetensors")));
    dj_st_writer_free(w);
    dj_st_file *f = NULL;
    CHECK_FAILS(dj_st_open(tpath("nan.safetensors"), DJ_ST_CHECK_FINITE, &f), DJ_ENUMERIC,
                "nan.safetensors: tensor 'layer2.weight' has a non-finite value (nan) at index 2");
    CHECK(f == NULL);
    /* Without the flag it opens; the check is available separately. */
    CHECK_OK(dj_st_open(tpath("nan.safetensors"), 0, &f));
    CHECK_FAILS(dj_st_check_finite(f), DJ_ENUMERIC, "tensor 'layer2.weight' has a non-finite value (nan) at index 2");
    dj_st_close(f);

    CHECK_OK(dj_st_writer_new(&w));
    CHECK_OK(dj_st_writer_add_f32(w, "y", 1, (int64_t[]){2}, y));
    CHECK_OK(dj_st_writer_write(w, tpath("inf.safetensors")));
    dj_st_writer_free(w);
    CHECK_FAILS(dj_st_open(tpath("inf.safetensors"), DJ_ST_CHECK_FINITE, &f), DJ_ENUMERIC,
                "tensor 'y' has a non-finite value (-inf) at index 1");
    /* A finite file passes the flag. */
    CHECK_OK(dj_st_writer_new(&w));
    CHECK_OK(dj_st_writer_add_f32(w, "z", 1, (int64_t[]){4}, four));
    CHECK_OK(dj_st_writer_write(w, tpath("fin.safetensors")));
    dj_st_writer_free(w);
    CHECK_OK(dj_st_open(tpath("fin.safetensors"), DJ_ST_CHECK_FINITE, &f));
    CHECK_OK(dj_st_check_finite(f));
    dj_st_close(f);
}

/* ----------------------------------------------------------- lookups -- */

static dj_st_file *conv_file(void) {
    static float w[16 * 3 * 3 * 3];
    dj_st_writer *wr;
    dj_st_file *f = NULL;
    CHECK_OK(dj_st_writer_new(&wr));
    CHECK_OK(dj_st_writer_add_f32(wr, "x", 4, (int64_t[]){16, 3, 3, 3}, w));
    CHECK_OK(dj_st_writer_write(wr, tpath("model.safetensors")));
    dj_st_writer_free(wr);
    CHECK_OK(dj_st_open(tpath("model.safetensors"), 0, &f));
    return f;
}

static void test_missing_tensor(void) {
    dj_st_file *f = conv_file();
    const float *p = four;
    CHECK_FAILS(dj_st_get_f32(f, "layer1.0.conv1.weight", 4, (int64_t[]){16, 3, 3, 3}, &p), DJ_ENOTFOUND,
                "model.safetensors: tensor 'layer1.0.conv1.weight' is missing");
    CHECK(p == NULL);
    dj_st_close(f);
}

static void test_shape_mismatch(void) {
    dj_st_file *f = conv_file();
    const float *p;
    CHECK_FAILS(dj_st_get_f32(f, "x", 4, (int64_t[]){16, 3, 3, 4}, &p), DJ_EINVAL,
                "model.safetensors: tensor 'x' has shape [16,3,3,3], expected [16,3,3,4]");
    CHECK_FAILS(dj_st_get_f32(f, "x", 2, (int64_t[]){16, 27}, &p), DJ_EINVAL,
                "tensor 'x' has shape [16,3,3,3], expected [16,27]");
    CHECK_FAILS(dj_st_get_f32(f, "x", 0, NULL, &p), DJ_EINVAL, "expected []");
    CHECK_OK(dj_st_get_f32(f, "x", 4, (int64_t[]){16, 3, 3, 3}, &p));
    dj_st_close(f);
}

static void test_wrong_dtype(void) {
    unsigned char half[4] = {0x00, 0x3C, 0x00, 0x40}; /* F16 1.0, 2.0 */
    dj_st_file *f = NULL;
    CHECK_OK(open_hdr("{\"x\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[0,4]}}", half, 4, &f));
    const float *p;
    CHECK_FAILS(dj_st_get_f32(f, "x", 1, (int64_t[]){2}, &p), DJ_EFORMAT,
                "bad.safetensors: tensor 'x' has dtype F16, expected F32");
    const dj_st_tensor *t = dj_st_find(f, "x");
    CHECK(t && t->f32 == NULL && t->dtype_bits == 16 && t->nbytes == 4 && memcmp(t->raw, half, 4) == 0);
    int64_t i;
    CHECK_FAILS(dj_st_read_i64(f, "x", 1, (int64_t[]){2}, &i), DJ_EFORMAT, "has dtype F16, expected I64");
    dj_st_close(f);
}

/* A PyTorch state_dict: BatchNorm's num_batches_tracked is an I64 scalar,
 * and some other dtype the library does not know; both must not stop the
 * F32 tensors from loading. */
static void test_i64_and_unknown_skipped(void) {
    unsigned char data[8 + 8 + 3];
    int64_t nbt = 391;
    float wv[2] = {0.25f, 4.0f};
    memcpy(data, &nbt, 8);
    memcpy(data + 8, wv, 8);
    memcpy(data + 16, "abc", 3);
    const char *hdr = "{\"bn1.num_batches_tracked\":{\"dtype\":\"I64\",\"shape\":[],\"data_offsets\":[0,8]},"
                      "\"bn1.weight\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16],\"extra\":1},"
                      "\"future\":{\"dtype\":\"Q7_NEW\",\"shape\":[5],\"data_offsets\":[16,19]}}";
    dj_st_file *f = NULL;
    CHECK_OK(open_hdr(hdr, data, sizeof data, &f));
    if (!f) return;
    CHECK(dj_st_count(f) == 3);
    const float *p;
    CHECK_OK(dj_st_get_f32(f, "bn1.weight", 1, (int64_t[]){2}, &p));
    CHECK(p && p[0] == 0.25f && p[1] == 4.0f);
    CHECK_FAILS(dj_st_get_f32(f, "bn1.num_batches_tracked", 0, NULL, &p), DJ_EFORMAT,
                "tensor 'bn1.num_batches_tracked' has dtype I64, expected F32");
    int64_t got = 0;
    CHECK_OK(dj_st_read_i64(f, "bn1.num_batches_tracked", 0, NULL, &got));
    CHECK(got == 391);
    const dj_st_tensor *t = dj_st_find(f, "future");
    CHECK(t && t->dtype_bits == 0 && t->count == 5 && t->nbytes == 3 && t->f32 == NULL);
    CHECK_FAILS(dj_st_get_f32(f, "future", -1, NULL, &p), DJ_EFORMAT, "has dtype Q7_NEW, expected F32");
    CHECK_OK(dj_st_check_finite(f)); /* only F32 tensors are checked */
    dj_st_close(f);
}

static void test_writer_validation(void) {
    dj_st_writer *w;
    CHECK_OK(dj_st_writer_new(&w));
    CHECK_OK(dj_st_writer_add_f32(w, "a", 1, (int64_t[]){4}, four));
    CHECK_FAILS(dj_st_writer_add_f32(w, "a", 1, (int64_t[]){4}, four), DJ_EINVAL, "tensor 'a' added twice");
    /* The failed add poisons the writer: no checkpoint silently lacking it. */
    CHECK_FAILS(dj_st_writer_write(w, tpath("never.safetensors")), DJ_EINVAL,
                "not written because an earlier call failed: safetensors writer: tensor 'a' added twice");
    CHECK(access(tpath("never.safetensors"), F_OK) != 0);
    void *bytes;
    size_t size;
    CHECK_FAILS(dj_st_writer_encode(w, &bytes, &size), DJ_EINVAL, "earlier call failed");
    dj_st_writer_free(w);

    CHECK_OK(dj_st_writer_new(&w));
    CHECK_FAILS(dj_st_writer_add_f32(w, "n", 2, (int64_t[]){2, -2}, four), DJ_EINVAL, "negative dimension -2");
    CHECK_FAILS(dj_st_writer_add_f32(w, "__metadata__", 1, (int64_t[]){4}, four), DJ_EINVAL, "reserved");
    CHECK_FAILS(dj_st_writer_add_f32(w, "", 1, (int64_t[]){4}, four), DJ_EINVAL, "empty tensor name");
    CHECK_FAILS(dj_st_writer_add_f32(w, "d", 1, (int64_t[]){4}, NULL), DJ_EINVAL, "tensor 'd' has NULL data");
    CHECK_FAILS(dj_st_writer_add_f32(w, "bad\xFF", 1, (int64_t[]){4}, four), DJ_EINVAL, "not valid UTF-8");
    CHECK_FAILS(dj_st_writer_add_f32(w, "nd", -1, NULL, four), DJ_EINVAL, "invalid ndim -1");
    CHECK_FAILS(dj_st_writer_add_f32(w, "big", 3, (int64_t[]){INT64_MAX, INT64_MAX, 2}, four), DJ_EINVAL, "too large");
    CHECK_FAILS(dj_st_writer_set_metadata(w, "k", "\xC3"), DJ_EINVAL, "metadata 'k' is not valid UTF-8");
    dj_st_writer_free(w);
}

/* ---------------------------------------------------- atomic writing -- */

static dj_st_writer *small_writer(const float *data, int64_t n) {
    dj_st_writer *w = NULL;
    CHECK_OK(dj_st_writer_new(&w));
    CHECK_OK(dj_st_writer_add_f32(w, "v", 1, &n, data));
    return w;
}

/* A write that fails half-way (file size limit: write() gets EFBIG, as on a
 * full disk) must leave the previous checkpoint intact and no temp file. */
static void test_atomic_failure_keeps_old_file(void) {
    const char *path = tpath("ckpt.safetensors");
    dj_st_writer *w = small_writer(four, 4);
    CHECK_OK(dj_st_writer_write(w, path));
    dj_st_writer_free(w);

    size_t n = 64 * 1024;
    float *big = calloc(n, sizeof *big);
    if (!big) return;
    w = small_writer(big, (int64_t)n);
    struct rlimit old, lim;
    getrlimit(RLIMIT_FSIZE, &old);
    lim = old;
    lim.rlim_cur = 4096;
    void (*prev)(int) = signal(SIGXFSZ, SIG_IGN); /* else the process is killed */
    CHECK(setrlimit(RLIMIT_FSIZE, &lim) == 0);
    int st = dj_st_writer_write(w, path);
    setrlimit(RLIMIT_FSIZE, &old);
    signal(SIGXFSZ, prev);
    CHECK(st == DJ_EIO);
    CHECK(strstr(dj_last_error(), "ckpt.safetensors: write failed") != NULL);
    if (st != DJ_EIO) fprintf(stderr, "got %d: %s\n", st, dj_last_error());
    dj_st_writer_free(w);
    free(big);

    dj_st_file *f = NULL;
    const float *p;
    CHECK_OK(dj_st_open(path, 0, &f));
    CHECK_OK(dj_st_get_f32(f, "v", 1, (int64_t[]){4}, &p));
    CHECK(p && memcmp(p, four, sizeof four) == 0);
    dj_st_close(f);
    CHECK(hidden_files(tmpdir) == 0);
}

static void test_atomic_success_replaces_and_cleans(void) {
    const char *path = tpath("ckpt2.safetensors");
    float a[2] = {1, 2}, b[3] = {3, 4, 5};
    dj_st_writer *w = small_writer(a, 2);
    CHECK_OK(dj_st_writer_write(w, path));
    dj_st_writer_free(w);
    w = small_writer(b, 3);
    CHECK_OK(dj_st_writer_write(w, path));
    dj_st_writer_free(w);
    CHECK(hidden_files(tmpdir) == 0);
    dj_st_file *f = NULL;
    const float *p;
    CHECK_OK(dj_st_open(path, 0, &f));
    CHECK_OK(dj_st_get_f32(f, "v", 1, (int64_t[]){3}, &p));
    CHECK(p && p[2] == 5);
    dj_st_close(f);
}

static void test_atomic_missing_directory(void) {
    dj_st_writer *w = small_writer(four, 4);
    CHECK_FAILS(dj_st_writer_write(w, tpath("no/such/dir/x.safetensors")), DJ_EIO, "cannot create a temporary file");
    CHECK(strstr(dj_last_error(), "No such file or directory") != NULL);
    dj_st_writer_free(w);
}

static void test_atomic_target_is_directory(void) {
    const char *dir = tpath("adir");
    CHECK(mkdir(dir, 0755) == 0);
    dj_st_writer *w = small_writer(four, 4);
    CHECK_FAILS(dj_st_writer_write(w, dir), DJ_EIO, "cannot replace it with the new file");
    dj_st_writer_free(w);
    struct stat st;
    CHECK(stat(dir, &st) == 0 && S_ISDIR(st.st_mode));
    CHECK(hidden_files(tmpdir) == 0);
    CHECK_FAILS(dj_write_file_atomic(tpath("adir/"), "x", 1), DJ_EINVAL, "names a directory");
    rmdir(dir);
}

static void test_atomic_abort_and_helpers(void) {
    const char *path = tpath("text.txt");
    CHECK_OK(dj_write_file_atomic(path, "old", 3));
    dj_atomic_file *af;
    CHECK_OK(dj_atomic_open(path, &af));
    CHECK(af && strcmp(dj_atomic_path(af), path) == 0);
    CHECK(hidden_files(tmpdir) == 1); /* the temporary file exists meanwhile */
    CHECK_OK(dj_atomic_write(af, "new content", 11));
    dj_atomic_abort(af);
    CHECK(hidden_files(tmpdir) == 0);
    void *data;
    size_t size;
    CHECK_OK(dj_read_file(path, 100, &data, &size));
    CHECK(size == 3 && memcmp(data, "old", 4) == 0); /* NUL-terminated */
    dj_free(data);

    CHECK_OK(dj_write_file_atomic(path, "new content", 11));
    CHECK_OK(dj_read_file(path, 100, &data, &size));
    CHECK(size == 11 && strcmp(data, "new content") == 0);
    dj_free(data);
    /* New files get ordinary permissions (0666 minus umask), not mkstemp's 0600. */
    struct stat st;
    mode_t mask = umask(022);
    umask(mask);
    CHECK(stat(path, &st) == 0 && (st.st_mode & 0777) == (0666 & ~mask));

    CHECK_FAILS(dj_read_file(path, 10, &data, &size), DJ_EFORMAT, "text.txt: file is 11 bytes, more than the limit of 10");
    CHECK(data == NULL);
    CHECK_OK(dj_write_file_atomic(path, "", 0));
    CHECK_OK(dj_read_file(path, 0, &data, &size));
    CHECK(size == 0 && ((char *)data)[0] == '\0');
    dj_free(data);
}

/* Tests run as root, where permission bits do not block writes; the failing
 * cases use paths that cannot hold files for anyone. */
static void test_check_writable_dir(void) {
    CHECK_OK(dj_check_writable_dir(tmpdir));
    CHECK(hidden_files(tmpdir) == 0); /* the probe file is removed */
    CHECK_FAILS(dj_check_writable_dir(tpath("missing")), DJ_ENOTFOUND, "missing' does not exist");
    CHECK(write_raw(tpath("plain"), "x", 1) == 0);
    CHECK_FAILS(dj_check_writable_dir(tpath("plain")), DJ_EINVAL, "plain' is not a directory");
    CHECK_FAILS(dj_check_writable_dir(tpath("plain/sub")), DJ_ENOTFOUND, "does not exist");
    CHECK_FAILS(dj_check_writable_parent(tpath("missing/model.safetensors")), DJ_ENOTFOUND, "missing' does not exist");
    CHECK_OK(dj_check_writable_parent(tpath("model.safetensors")));
    /* /proc holds no regular files, even for root. */
    struct stat st;
    if (stat("/proc/self", &st) == 0) CHECK_FAILS(dj_check_writable_dir("/proc"), DJ_EIO, "'/proc' is not writable");
    if (geteuid() != 0) {
        CHECK(mkdir(tpath("ro"), 0555) == 0);
        CHECK_FAILS(dj_check_writable_dir(tpath("ro")), DJ_EIO, "is not writable");
        rmdir(tpath("ro"));
    }
}

/* ---------------------------------------------------------------------- */

static int rm_entry(const char *path, const struct stat *sb, int type, struct FTW *ftw) {
    (void)sb;
    (void)type;
    (void)ftw;
    return remove(path);
}

int main(void) {
    dj_set_log(NULL, NULL, DJ_LOG_ERROR);
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    RUN(test_roundtrip_with_metadata);
    RUN(test_layout_matches_spec);
    RUN(test_misaligned_f32);
    RUN(test_empty_header);
    RUN(test_missing_file);
    RUN(test_too_short);
    RUN(test_header_length_exceeds_file);
    RUN(test_header_length_absurd);
    RUN(test_header_not_json);
    RUN(test_header_not_object);
    RUN(test_entry_not_object);
    RUN(test_entry_missing_dtype);
    RUN(test_entry_missing_shape);
    RUN(test_entry_missing_offsets);
    RUN(test_negative_dim);
    RUN(test_non_integer_dim);
    RUN(test_shape_overflow);
    RUN(test_offsets_outside_buffer);
    RUN(test_begin_after_end);
    RUN(test_byte_size_mismatch);
    RUN(test_overlapping_tensors);
    RUN(test_hole_in_buffer);
    RUN(test_trailing_bytes);
    RUN(test_duplicate_names);
    RUN(test_bad_metadata);
    RUN(test_non_finite);
    RUN(test_missing_tensor);
    RUN(test_shape_mismatch);
    RUN(test_wrong_dtype);
    RUN(test_i64_and_unknown_skipped);
    RUN(test_writer_validation);
    RUN(test_atomic_failure_keeps_old_file);
    RUN(test_atomic_success_replaces_and_cleans);
    RUN(test_atomic_missing_directory);
    RUN(test_atomic_target_is_directory);
    RUN(test_atomic_abort_and_helpers);
    RUN(test_check_writable_dir);
    nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    return check_report("test_safetensors");
}
