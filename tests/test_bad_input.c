/* Bad input, one test per row of the table in docs/robustness.md: each row
 * feeds one kind of broken or hostile input to the library (the status code
 * and the message) and, where the CLI reads it, to the `dmvjnd` command (the
 * exit code and the message on stderr). The command is $BUILD/dmvjnd
 * (default build/dmvjnd), run with posix_spawn from the repository root.
 *
 * Rows that need CIFAR-10 (a training run that must get as far as its data)
 * are skipped, and say so, when the data set is not there. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#include "check.h"
#include "dmvjnd/checkpoint.h"
#include "dmvjnd/dmvjnd.h"
#include "dmvjnd/models.h"
#include "dmvjnd/train.h"

extern char **environ;

#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif
#ifndef UNDER_ASAN
#define UNDER_ASAN 0
#endif

static char tmpdir[] = "/tmp/dj_test_bad_input.XXXXXX";
static char dmvjnd_bin[4096];
static int have_data;

static const char *tp(const char *name) {
    static char buf[16][4200];
    static int k;
    char *b = buf[k++ % 16];
    snprintf(b, sizeof buf[0], "%s/%s", tmpdir, name);
    return b;
}

static void put(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) {
        fprintf(stderr, "cannot write %s\n", path);
        return;
    }
    if (n) fwrite(data, 1, n, f);
    fclose(f);
}

static void *slurp(const char *path, size_t *n) {
    void *d = NULL;
    if (dj_read_file(path, (size_t)1 << 30, &d, n)) return NULL;
    return d;
}

/* ------------------------------------------------------------ the CLI */

static char cli_err[16384], cli_out[16384];

static void read_into(const char *path, char *buf, size_t cap) {
    buf[0] = '\0';
    FILE *f = fopen(path, "rb");
    if (!f) return;
    size_t n = fread(buf, 1, cap - 1, f);
    buf[n] = '\0';
    fclose(f);
}

/* Runs `dmvjnd arg...` (NULL-terminated); returns its exit code (128 +
 * signal if killed); stdout and stderr land in cli_out and cli_err. */
static int cli(const char *arg, ...) {
    char *argv[64];
    int argc = 0;
    argv[argc++] = dmvjnd_bin;
    va_list ap;
    va_start(ap, arg);
    for (const char *a = arg; a && argc < 63; a = va_arg(ap, const char *)) argv[argc++] = (char *)a;
    va_end(ap);
    argv[argc] = NULL;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, tp("cli.out"), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_addopen(&fa, 2, tp("cli.err"), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    pid_t pid;
    int rc = posix_spawn(&pid, dmvjnd_bin, &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc) {
        fprintf(stderr, "cannot run %s: %s\n", dmvjnd_bin, strerror(rc));
        cli_err[0] = cli_out[0] = '\0';
        return -1;
    }
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    read_into(tp("cli.err"), cli_err, sizeof cli_err);
    read_into(tp("cli.out"), cli_out, sizeof cli_out);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* The last command exited with `code` and its stderr contains `substr`. */
#define CHECK_CLI(code, substr)                                                                                        \
    do {                                                                                                               \
        if (cli_rc_ != (code) || !strstr(cli_err, (substr))) {                                                        \
            fprintf(stderr, "%s:%d: dmvjnd exited %d, expected %d with \"%s\"; stderr:\n%s\n", __FILE__, __LINE__,    \
                    cli_rc_, (int)(code), (substr), cli_err);                                                          \
            check_failed_asserts++;                                                                                    \
        }                                                                                                              \
    } while (0)
#define CLI(...) (cli_rc_ = cli(__VA_ARGS__, (const char *)NULL))
static int cli_rc_;

/* ------------------------------------------------------ file builders */

static dj_graph *resnet;      /* resnet20, random weights */
static const char *good_w;    /* its weights file */
static const char *good_png;  /* a 32x32 RGB PNG */

static void put_le64(unsigned char *b, uint64_t v) {
    for (int i = 0; i < 8; i++) b[i] = (unsigned char)(v >> (8 * i));
}

/* A safetensors file from a header text and data bytes. */
static void put_st(const char *path, const char *hdr, const void *data, size_t dlen) {
    size_t hl = strlen(hdr);
    unsigned char *b = malloc(8 + hl + dlen + 1);
    put_le64(b, hl);
    memcpy(b + 8, hdr, hl);
    if (dlen) memcpy(b + 8 + hl, data, dlen);
    put(path, b, 8 + hl + dlen);
    free(b);
}

/* A copy of the weights file `src` at `dst` with one change: the tensor
 * `target` (NULL: the first F32 one) becomes I64 (mode 'd'), gets a NaN
 * (mode 'n') or +Inf (mode 'i') at index 5; or metadata key `key` is set to
 * `value` (mode 'm'; value NULL: removed). Returns 0 on success. */
static int rewrite(const char *src, const char *dst, int mode, const char *key, const char *value) {
    dj_st_file *f;
    if (dj_st_open(src, 0, &f)) return -1;
    dj_st_writer *w;
    if (dj_st_writer_new(&w)) {
        dj_st_close(f);
        return -1;
    }
    int rc = 0, done = 0;
    float *copy = NULL;
    int64_t *zeros = NULL;
    for (size_t i = 0; !rc && i < dj_st_metadata_count(f); i++) {
        const char *k, *v;
        dj_st_metadata_at(f, i, &k, &v);
        if (mode == 'm' && !strcmp(k, key)) {
            done = 1;
            if (!value) continue;
            v = value;
        }
        rc = dj_st_writer_set_metadata(w, k, v);
    }
    if (mode == 'm' && !done && value) rc = dj_st_writer_set_metadata(w, key, value);
    for (size_t i = 0; !rc && i < dj_st_count(f); i++) {
        const dj_st_tensor *t = dj_st_at(f, i);
        if (strcmp(t->dtype, "F32")) {
            rc = dj_st_writer_add_i64(w, t->name, t->ndim, t->shape, (const int64_t *)t->raw);
            continue;
        }
        int hit = mode != 'm' && !done && t->count > 5;
        if (hit && mode == 'd') {
            zeros = calloc(t->count, sizeof *zeros);
            rc = dj_st_writer_add_i64(w, t->name, t->ndim, t->shape, zeros);
        } else if (hit) {
            copy = malloc(t->count * sizeof *copy);
            memcpy(copy, t->f32, t->count * sizeof *copy);
            copy[5] = mode == 'n' ? NAN : INFINITY;
            rc = dj_st_writer_add_f32(w, t->name, t->ndim, t->shape, copy);
        } else {
            rc = dj_st_writer_add_f32(w, t->name, t->ndim, t->shape, t->f32);
        }
        done |= hit;
    }
    if (!rc) rc = dj_st_writer_write(w, dst);
    dj_st_writer_free(w);
    dj_st_close(f);
    free(copy);
    free(zeros);
    return rc;
}

static void truncate_copy(const char *src, const char *dst, size_t keep) {
    size_t n;
    void *d = slurp(src, &n);
    if (!d) return;
    put(dst, d, keep < n ? keep : n);
    dj_free(d);
}

/* PNG chunks by hand, so any IHDR can be written. */
static size_t png_chunk(unsigned char *out, const char *type, const void *data, uint32_t len) {
    unsigned char *p = out;
    p[0] = (unsigned char)(len >> 24), p[1] = (unsigned char)(len >> 16), p[2] = (unsigned char)(len >> 8),
    p[3] = (unsigned char)len;
    memcpy(p + 4, type, 4);
    if (len) memcpy(p + 8, data, len);
    uint32_t crc = (uint32_t)crc32(0L, p + 4, len + 4);
    p[8 + len] = (unsigned char)(crc >> 24), p[9 + len] = (unsigned char)(crc >> 16),
    p[10 + len] = (unsigned char)(crc >> 8), p[11 + len] = (unsigned char)crc;
    return 12 + (size_t)len;
}

/* Writes a PNG of w x h, colour type `color`, bit depth `depth`, whose raw
 * rows (filter byte 0 + packed samples) are `rows` (rowbytes each); plte
 * and trns are optional chunks. Returns the file size. */
static size_t put_png(const char *path, uint32_t w, uint32_t h, int depth, int color, const unsigned char *rows,
                      size_t rowbytes, const unsigned char *plte, uint32_t nplte, const unsigned char *trns,
                      uint32_t ntrns) {
    size_t raw_len = (size_t)h * (rowbytes + 1);
    unsigned char *raw = calloc(raw_len ? raw_len : 1, 1);
    for (uint32_t y = 0; rows && y < h; y++) memcpy(raw + y * (rowbytes + 1) + 1, rows + y * rowbytes, rowbytes);
    uLongf zlen = compressBound((uLong)raw_len);
    unsigned char *z = malloc(zlen);
    compress2(z, &zlen, raw, (uLong)raw_len, 9);
    unsigned char *file = malloc(1024 + zlen + nplte + ntrns);
    size_t n = 0;
    memcpy(file, "\x89PNG\r\n\x1a\n", 8);
    n = 8;
    unsigned char ihdr[13] = {(unsigned char)(w >> 24), (unsigned char)(w >> 16), (unsigned char)(w >> 8),
                              (unsigned char)w, (unsigned char)(h >> 24), (unsigned char)(h >> 16),
                              (unsigned char)(h >> 8), (unsigned char)h, (unsigned char)depth, (unsigned char)color,
                              0, 0, 0};
    n += png_chunk(file + n, "IHDR", ihdr, 13);
    if (plte) n += png_chunk(file + n, "PLTE", plte, nplte);
    if (trns) n += png_chunk(file + n, "tRNS", trns, ntrns);
    n += png_chunk(file + n, "IDAT", z, (uint32_t)zlen);
    n += png_chunk(file + n, "IEND", NULL, 0);
    put(path, file, n);
    free(raw);
    free(z);
    free(file);
    return n;
}

/* ------------------------------------------- memory-capped child process */

/* Runs fn(arg) in a child whose address space may grow by at most
 * `headroom` bytes: a giant allocation then fails (DJ_ENOMEM) instead of
 * succeeding quietly. Returns fn's status, or 1000 if the child died.
 * AddressSanitizer reserves terabytes of address space, so under it the
 * cap is left out and fn simply runs in the child. */
static int capped(int (*fn)(void *), void *arg, size_t headroom) {
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) return 1000;
    if (pid == 0) {
        if (!UNDER_ASAN) {
            long pages = 0, page = sysconf(_SC_PAGESIZE);
            FILE *f = fopen("/proc/self/statm", "r");
            if (f) {
                if (fscanf(f, "%ld", &pages) != 1) pages = 0;
                fclose(f);
            }
            struct rlimit rl = {(rlim_t)pages * (rlim_t)page + headroom, (rlim_t)pages * (rlim_t)page + headroom};
            if (pages > 0) setrlimit(RLIMIT_AS, &rl);
        }
        int rc = fn(arg);
        /* status codes are small negatives: pass them as 0..255 */
        _exit(rc <= 0 && rc > -100 ? -rc : 200);
    }
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) >= 100) return 1000;
    return -WEXITSTATUS(status);
}

static int open_st(void *path) {
    dj_st_file *f;
    int rc = dj_st_open(path, 0, &f);
    if (!rc) dj_st_close(f);
    return rc;
}

static int read_png(void *path) {
    dj_image img;
    int rc = dj_png_read(path, &img);
    dj_image_free(&img);
    return rc;
}

/* ===================================================== weights files */

static void row_weights_missing(void) {
    dj_classifier c;
    CHECK_FAILS(dj_classifier_load(&c, tp("no-such.safetensors"), 1), DJ_EIO, "cannot open: No such file");
    CLI("classify", "--model", tp("no-such.safetensors"), "--png", good_png);
    CHECK_CLI(3, "no-such.safetensors: cannot open: No such file or directory");
}

static void row_weights_directory(void) {
    dj_classifier c;
    CHECK_FAILS(dj_classifier_load(&c, tmpdir, 1), DJ_EIO, "not a regular file");
    CLI("classify", "--model", tmpdir, "--png", good_png);
    CHECK_CLI(3, "not a regular file");
}

static void row_weights_empty(void) {
    put(tp("empty.safetensors"), "", 0);
    dj_classifier c;
    CHECK_FAILS(dj_classifier_load(&c, tp("empty.safetensors"), 1), DJ_EFORMAT, "file is 0 bytes, too short");
    CLI("classify", "--model", tp("empty.safetensors"), "--png", good_png);
    CHECK_CLI(3, "empty.safetensors: file is 0 bytes, too short for a safetensors file");
}

static void row_weights_truncated_data(void) {
    size_t n;
    void *d = slurp(good_w, &n);
    dj_free(d);
    truncate_copy(good_w, tp("cut.safetensors"), n / 2);
    dj_classifier c;
    CHECK_FAILS(dj_classifier_load(&c, tp("cut.safetensors"), 1), DJ_EFORMAT, "(truncated file?)");
    CLI("classify", "--model", tp("cut.safetensors"), "--png", good_png);
    CHECK_CLI(3, "outside the data buffer");
}

static void row_weights_truncated_header(void) {
    truncate_copy(good_w, tp("cut_hdr.safetensors"), 100);
    dj_classifier c;
    CHECK_FAILS(dj_classifier_load(&c, tp("cut_hdr.safetensors"), 1), DJ_EFORMAT, "exceeds the 92 bytes after it");
    CLI("classify", "--model", tp("cut_hdr.safetensors"), "--png", good_png);
    CHECK_CLI(3, "(truncated file?)");
}

static void row_weights_header_length_absurd(void) {
    unsigned char b[16] = {0};
    put_le64(b, (uint64_t)1 << 60);
    put(tp("absurd.safetensors"), b, sizeof b);
    CHECK_FAILS(open_st((void *)tp("absurd.safetensors")), DJ_EFORMAT, "is absurd");
    /* and nothing of that size is allocated */
    CHECK(capped(open_st, (void *)tp("absurd.safetensors"), 64 << 20) == DJ_EFORMAT);
    CLI("classify", "--model", tp("absurd.safetensors"), "--png", good_png);
    CHECK_CLI(3, "header length 1152921504606846976 is absurd");
}

static void row_weights_not_json(void) {
    put_st(tp("notjson.safetensors"), "{not json", NULL, 0);
    CHECK_FAILS(open_st((void *)tp("notjson.safetensors")), DJ_EFORMAT, "invalid JSON at byte 1");
    CLI("classify", "--model", tp("notjson.safetensors"), "--png", good_png);
    CHECK_CLI(3, "header: invalid JSON");
}

static void row_weights_offsets_outside(void) {
    float z[4] = {0};
    put_st(tp("lie_off.safetensors"), "{\"a\":{\"dtype\":\"F32\",\"shape\":[250],\"data_offsets\":[0,1000]}}", z,
           sizeof z);
    CHECK_FAILS(open_st((void *)tp("lie_off.safetensors")), DJ_EFORMAT,
                "tensor 'a' has data_offsets [0,1000] outside the data buffer of 16 bytes");
    CLI("classify", "--model", tp("lie_off.safetensors"), "--png", good_png);
    CHECK_CLI(3, "outside the data buffer");
}

static void row_weights_size_mismatch(void) {
    float z[2] = {0};
    put_st(tp("lie_size.safetensors"), "{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,8]}}", z,
           sizeof z);
    CHECK_FAILS(open_st((void *)tp("lie_size.safetensors")), DJ_EFORMAT,
                "tensor 'a' has 8 bytes of data, but shape [4] of dtype F32 needs 16 bytes");
    CLI("classify", "--model", tp("lie_size.safetensors"), "--png", good_png);
    CHECK_CLI(3, "needs 16 bytes");
}

static void row_weights_overlap(void) {
    float z[3] = {0};
    put_st(tp("overlap.safetensors"),
           "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
           "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
           z, sizeof z);
    CHECK_FAILS(open_st((void *)tp("overlap.safetensors")), DJ_EFORMAT, "tensors 'a' [0,8) and 'b' [4,12) overlap");
    CLI("classify", "--model", tp("overlap.safetensors"), "--png", good_png);
    CHECK_CLI(3, "overlap");
}

static void row_weights_hole(void) {
    float z[4] = {0};
    put_st(tp("hole.safetensors"),
           "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
           "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}",
           z, sizeof z);
    CHECK_FAILS(open_st((void *)tp("hole.safetensors")), DJ_EFORMAT, "bytes [4,8) of the data buffer belong to no tensor");
    put_st(tp("trailing.safetensors"), "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", z, sizeof z);
    CHECK_FAILS(open_st((void *)tp("trailing.safetensors")), DJ_EFORMAT, "12 trailing bytes after the last tensor");
    CLI("classify", "--model", tp("hole.safetensors"), "--png", good_png);
    CHECK_CLI(3, "belong to no tensor");
}

static void row_weights_huge_dims(void) {
    float z[4] = {0};
    put_st(tp("huge.safetensors"),
           "{\"a\":{\"dtype\":\"F32\",\"shape\":[1099511627776,1048576],\"data_offsets\":[0,16]}}", z, sizeof z);
    CHECK_FAILS(open_st((void *)tp("huge.safetensors")), DJ_EFORMAT,
                "shape [1099511627776,1048576] overflows its byte size");
    put_st(tp("huge2.safetensors"), "{\"a\":{\"dtype\":\"F32\",\"shape\":[65536,65536,1024],\"data_offsets\":[0,16]}}",
           z, sizeof z);
    CHECK_FAILS(open_st((void *)tp("huge2.safetensors")), DJ_EFORMAT, "needs 17592186044416 bytes");
    CHECK(capped(open_st, (void *)tp("huge2.safetensors"), 64 << 20) == DJ_EFORMAT);
    put_st(tp("huge3.safetensors"), "{\"a\":{\"dtype\":\"F32\",\"shape\":[18446744073709551616],\"data_offsets\":[0,16]}}",
           z, sizeof z);
    CHECK_FAILS(open_st((void *)tp("huge3.safetensors")), DJ_EFORMAT, "expected a non-negative integer");
    CLI("classify", "--model", tp("huge2.safetensors"), "--png", good_png);
    CHECK_CLI(3, "needs 17592186044416 bytes");
}

static void row_weights_wrong_dtype(void) {
    CHECK_OK(rewrite(good_w, tp("dtype.safetensors"), 'd', NULL, NULL));
    dj_classifier c;
    CHECK_FAILS(dj_classifier_load(&c, tp("dtype.safetensors"), 1), DJ_EFORMAT, "has dtype I64, expected F32");
    CLI("classify", "--model", tp("dtype.safetensors"), "--png", good_png);
    CHECK_CLI(3, "has dtype I64, expected F32");
    float z[2] = {0};
    put_st(tp("unknown_dtype.safetensors"), "{\"a\":{\"dtype\":\"Q7\",\"shape\":[2],\"data_offsets\":[0,8]}}", z, 8);
    dj_st_file *f;
    CHECK_OK(dj_st_open(tp("unknown_dtype.safetensors"), 0, &f)); /* listed, not converted */
    const float *p;
    CHECK_FAILS(dj_st_get_f32(f, "a", -1, NULL, &p), DJ_EFORMAT, "has dtype Q7, expected F32");
    dj_st_close(f);
}

static void row_weights_nan_inf(void) {
    CHECK_OK(rewrite(good_w, tp("nan.safetensors"), 'n', NULL, NULL));
    CHECK_OK(rewrite(good_w, tp("inf.safetensors"), 'i', NULL, NULL));
    dj_classifier c;
    CHECK_FAILS(dj_classifier_load(&c, tp("nan.safetensors"), 1), DJ_ENUMERIC, "has a non-finite value (nan) at index 5");
    CHECK_FAILS(dj_weights_load(resnet, tp("inf.safetensors"), "resnet20"), DJ_ENUMERIC, "non-finite value (inf)");
    CLI("classify", "--model", tp("nan.safetensors"), "--png", good_png);
    CHECK_CLI(3, "has a non-finite value (nan) at index 5");
    CLI("classify", "--model", tp("inf.safetensors"), "--png", good_png);
    CHECK_CLI(3, "non-finite value (inf)");
}

static void row_weights_wrong_arch(void) {
    CHECK_OK(rewrite(good_w, tp("arch32.safetensors"), 'm', "arch", "resnet32"));
    CHECK_OK(rewrite(good_w, tp("archx.safetensors"), 'm', "arch", "nosuchnet"));
    CHECK_OK(rewrite(good_w, tp("noarch.safetensors"), 'm', "arch", NULL));
    dj_classifier c;
    CHECK_FAILS(dj_classifier_load(&c, tp("arch32.safetensors"), 1), DJ_ENOTFOUND, "is missing");
    CHECK_FAILS(dj_classifier_load(&c, tp("archx.safetensors"), 1), DJ_EFORMAT, "unknown model 'nosuchnet'");
    CHECK_FAILS(dj_classifier_load(&c, tp("noarch.safetensors"), 1), DJ_EFORMAT, "no 'arch' metadata");
    CHECK_FAILS(dj_weights_load(resnet, tp("arch32.safetensors"), "resnet20"), DJ_EFORMAT, "resnet32");
    CLI("classify", "--model", tp("arch32.safetensors"), "--png", good_png);
    CHECK_CLI(3, "is missing");
    CLI("classify", "--model", tp("archx.safetensors"), "--png", good_png);
    CHECK_CLI(3, "unknown model 'nosuchnet'");
}

/* ===================================================== PNG images */

static void row_png_missing_empty_not_png(void) {
    dj_image img;
    CHECK_FAILS(dj_png_read(tp("no-such.png"), &img), DJ_EIO, "no-such.png: cannot open: No such file");
    put(tp("empty.png"), "", 0);
    CHECK_FAILS(dj_png_read(tp("empty.png"), &img), DJ_EFORMAT, "not a PNG file (shorter than the 8-byte signature)");
    put(tp("text.png"), "hello, this is text\n", 20);
    CHECK_FAILS(dj_png_read(tp("text.png"), &img), DJ_EFORMAT, "not a PNG file (no PNG signature)");
    CLI("classify", "--model", good_w, "--png", tp("no-such.png"));
    CHECK_CLI(3, "no-such.png: cannot open: No such file or directory");
    CLI("classify", "--model", good_w, "--png", tp("text.png"));
    CHECK_CLI(3, "text.png: not a PNG file (no PNG signature)");
}

static void row_png_truncated_corrupt(void) {
    size_t n;
    void *d = slurp(good_png, &n);
    if (!d) {
        CHECK(0);
        return;
    }
    put(tp("trunc.png"), d, n - 20);
    unsigned char *b = (unsigned char *)d;
    b[20] ^= 0x40; /* inside IHDR: its CRC no longer matches */
    put(tp("crc.png"), b, n);
    dj_free(d);
    dj_image img;
    CHECK_FAILS(dj_png_read(tp("trunc.png"), &img), DJ_EFORMAT, "truncated PNG (unexpected end of file)");
    CHECK_FAILS(dj_png_read(tp("crc.png"), &img), DJ_EFORMAT, "CRC error");
    CHECK(img.rgb == NULL && img.h == 0);
    CLI("classify", "--model", good_w, "--png", tp("trunc.png"));
    CHECK_CLI(3, "trunc.png: truncated PNG");
    CLI("classify", "--model", good_w, "--png", tp("crc.png"));
    CHECK_CLI(3, "crc.png: IHDR: CRC error");
}

static void row_png_huge_dims(void) {
    /* A 16384x16384 RGB IHDR (805 MB of pixels) in a file of a few hundred
     * bytes: refused before the pixels are allocated. */
    unsigned char row[64] = {0};
    put_png(tp("huge.png"), 16384, 16384, 8, 2, NULL, 0, NULL, 0, NULL, 0);
    (void)row;
    dj_image img;
    CHECK_FAILS(dj_png_read(tp("huge.png"), &img), DJ_EFORMAT, "16384x16384 pixels need at least");
    CHECK(capped(read_png, (void *)tp("huge.png"), 64 << 20) == DJ_EFORMAT);
    put_png(tp("toobig.png"), 20000, 1, 8, 0, NULL, 0, NULL, 0, NULL, 0);
    CHECK_FAILS(dj_png_read(tp("toobig.png"), &img), DJ_EFORMAT, "larger than the limit of 16384 per side");
    CLI("classify", "--model", good_w, "--png", tp("huge.png"));
    CHECK_CLI(3, "huge.png: truncated PNG: 16384x16384 pixels need at least");
}

static void row_png_wrong_size(void) {
    unsigned char px[16 * 16 * 3] = {0};
    CHECK_OK(dj_png_write_rgb(tp("small.png"), px, 16, 16));
    dj_image img;
    CHECK_OK(dj_png_read(tp("small.png"), &img)); /* the library reads any size */
    CHECK(img.h == 16 && img.w == 16);
    dj_image_free(&img);
    CLI("classify", "--model", good_w, "--png", tp("small.png"));
    CHECK_CLI(3, "small.png: the image is 16x16 pixels (width x height); the classifiers take 32x32 RGB images only");
    CLI("cam", "--model", good_w, "--png", tp("small.png"), "--out", tp("maps"));
    CHECK_CLI(3, "the image is 16x16 pixels");
}

/* Grey, palette, 16-bit and alpha PNGs are converted to 8-bit RGB (alpha
 * dropped) by the reader, and classify takes them. */
static void row_png_converted(void) {
    enum { S = 32 };
    static unsigned char grey8[S * S], grey1[S * S / 8], pal4[S * S / 2], rgb16[S * S * 6], rgba8[S * S * 4];
    for (int i = 0; i < S * S; i++) {
        grey8[i] = (unsigned char)(i * 7);
        rgba8[4 * i] = (unsigned char)i, rgba8[4 * i + 1] = 2, rgba8[4 * i + 2] = 3, rgba8[4 * i + 3] = 0;
        for (int c = 0; c < 3; c++) rgb16[6 * i + 2 * c] = (unsigned char)(i + c), rgb16[6 * i + 2 * c + 1] = 0xff;
    }
    for (int i = 0; i < S * S / 8; i++) grey1[i] = 0xa5;
    for (int i = 0; i < S * S / 2; i++) pal4[i] = 0x12;
    const unsigned char plte[9] = {255, 0, 0, 0, 255, 0, 0, 0, 255}, trns[3] = {0, 128, 255};
    put_png(tp("grey8.png"), S, S, 8, 0, grey8, S, NULL, 0, NULL, 0);
    put_png(tp("grey1.png"), S, S, 1, 0, grey1, S / 8, NULL, 0, NULL, 0);
    put_png(tp("pal4.png"), S, S, 4, 3, pal4, S / 2, plte, 9, trns, 3);
    put_png(tp("rgb16.png"), S, S, 16, 2, rgb16, S * 6, NULL, 0, NULL, 0);
    put_png(tp("rgba8.png"), S, S, 8, 6, rgba8, S * 4, NULL, 0, NULL, 0);
    dj_image img;
    CHECK_OK(dj_png_read(tp("grey8.png"), &img));
    CHECK(img.h == S && img.w == S && img.rgb[3 * 5] == 35 && img.rgb[3 * 5 + 1] == 35 && img.rgb[3 * 5 + 2] == 35);
    dj_image_free(&img);
    CHECK_OK(dj_png_read(tp("grey1.png"), &img)); /* 1 -> 255, 0 -> 0, bits 10100101 */
    CHECK(img.rgb[0] == 255 && img.rgb[3] == 0 && img.rgb[6] == 255 && img.rgb[3 * 7 + 1] == 255);
    dj_image_free(&img);
    CHECK_OK(dj_png_read(tp("pal4.png"), &img)); /* indices 1, 2: green, blue; tRNS dropped */
    CHECK(img.rgb[0] == 0 && img.rgb[1] == 255 && img.rgb[2] == 0 && img.rgb[3] == 0 && img.rgb[5] == 255);
    dj_image_free(&img);
    CHECK_OK(dj_png_read(tp("rgb16.png"), &img)); /* high byte kept */
    CHECK(img.rgb[3 * 9] == 9 && img.rgb[3 * 9 + 1] == 10 && img.rgb[3 * 9 + 2] == 11);
    dj_image_free(&img);
    CHECK_OK(dj_png_read(tp("rgba8.png"), &img)); /* alpha 0 dropped, colour kept */
    CHECK(img.rgb[3 * 9] == 9 && img.rgb[3 * 9 + 1] == 2 && img.rgb[3 * 9 + 2] == 3);
    dj_image_free(&img);
    CLI("classify", "--model", good_w, "--png", tp("grey8.png"), tp("grey1.png"), tp("pal4.png"), tp("rgb16.png"),
        tp("rgba8.png"));
    CHECK_CLI(0, "");
    CHECK(strstr(cli_out, "grey1.png: resnet20=") && strstr(cli_out, "rgba8.png: resnet20="));
}

/* ===================================================== CIFAR-10 */

static void write_cifar(const char *dir, const char *name, int records, int bad_label_at) {
    char path[4400];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    size_t n = (size_t)records * DJ_CIFAR10_RECORD_BYTES;
    unsigned char *b = calloc(n ? n : 1, 1);
    for (int r = 0; r < records; r++) b[(size_t)r * DJ_CIFAR10_RECORD_BYTES] = (unsigned char)(r % 10);
    if (bad_label_at >= 0) b[(size_t)bad_label_at * DJ_CIFAR10_RECORD_BYTES] = 12;
    put(path, b, n);
    free(b);
}

static void row_cifar_missing(void) {
    dj_cifar10 ds;
    CHECK_FAILS(dj_cifar10_load(&ds, tp("no-such-dir"), "test", NULL), DJ_EIO,
                "no-such-dir/test_batch.bin: cannot open: No such file or directory");
    CHECK(ds.n == 0 && ds.pixels == NULL);
    CLI("classify", "--model", good_w, "--cifar", tp("no-such-dir"));
    CHECK_CLI(3, "test_batch.bin: cannot open: No such file or directory");
    CLI("train-classifier", "--data", tp("no-such-dir"), "--out", tp("w.safetensors"), "--quiet");
    CHECK_CLI(3, "data_batch_1.bin: cannot open: No such file or directory");
}

static void row_cifar_truncated(void) {
    mkdir(tp("cifar_cut"), 0755);
    write_cifar(tp("cifar_cut"), "test_batch.bin", 100, -1); /* 100 records, not 10000 */
    dj_cifar10 ds;
    CHECK_FAILS(dj_cifar10_load(&ds, tp("cifar_cut"), "test", NULL), DJ_EFORMAT,
                "test_batch.bin: 307300 bytes, expected 30730000 (10000 records of 3073 bytes)");
    CLI("classify", "--model", good_w, "--cifar", tp("cifar_cut"), "--limit", "10");
    CHECK_CLI(3, "307300 bytes, expected 30730000");
}

static void row_cifar_bad_label(void) {
    mkdir(tp("cifar_lab"), 0755);
    write_cifar(tp("cifar_lab"), "test_batch.bin", 4, 2);
    dj_cifar10 ds;
    dj_cifar10_opts o = {0, 0, 4};
    CHECK_FAILS(dj_cifar10_load(&ds, tp("cifar_lab"), "test", &o), DJ_EFORMAT, "record 2 has label byte 12, expected 0..9");
    o.limit = 2; /* records 0..1 are fine and only they are read */
    CHECK_OK(dj_cifar10_load(&ds, tp("cifar_lab"), "test", &o));
    CHECK(ds.n == 2);
    dj_cifar10_free(&ds);
}

static void row_cifar_meta(void) {
    mkdir(tp("cifar_meta"), 0755);
    put(tp("cifar_meta/batches.meta.txt"), "cat\ndog\n", 8);
    char names[10][DJ_CIFAR10_NAME_MAX];
    CHECK_FAILS(dj_cifar10_class_names(tp("cifar_meta"), names), DJ_EFORMAT, "2 class names, expected 10");
}

static void row_cifar_wrong_shape(void) {
    /* A batch tensor of the wrong image size or channel count. */
    dj_cifar10 ds = {0};
    static uint8_t px[2 * DJ_CIFAR10_IMAGE_BYTES];
    int32_t labels[2] = {1, 2}, idx[2] = {0, 1};
    ds.n = 2, ds.pixels = px, ds.labels = labels;
    static float buf[2 * 32 * 32 * 3];
    dj_tensor grey = dj_tensor_view(buf, 2, 32, 32, 1), small = dj_tensor_view(buf, 2, 16, 16, 3);
    const float half[3] = {0.5f, 0.5f, 0.5f};
    CHECK_FAILS(dj_cifar10_batch(&ds, idx, 2, NULL, NULL, half, half, &grey, NULL), DJ_EINVAL,
                "tensor is 2x32x32x1, expected 2x32x32x3");
    CHECK_FAILS(dj_cifar10_batch(&ds, idx, 2, NULL, NULL, half, half, &small, NULL), DJ_EINVAL,
                "tensor is 2x16x16x3, expected 2x32x32x3");
    idx[1] = 7;
    dj_tensor x = dj_tensor_view(buf, 2, 32, 32, 3);
    CHECK_FAILS(dj_cifar10_batch(&ds, idx, 2, NULL, NULL, half, half, &x, NULL), DJ_EINVAL, "index 7 at position 1");
}

static void row_cifar_offset_past_end(void) {
    dj_cifar10 ds;
    dj_cifar10_opts o = {20000, 0, 0};
    CHECK_FAILS(dj_cifar10_load(&ds, tp("cifar_cut"), "test", &o), DJ_EINVAL, "offset 20000 is past the end");
    CLI("classify", "--model", good_w, "--cifar", tp("cifar_cut"), "--offset", "20000");
    CHECK_CLI(2, "offset 20000 is past the end of split test");
}

/* ===================================================== the command line */

static void row_cli_usage(void) {
    CLI("--version");
    CHECK_CLI(0, "");
    CHECK(strstr(cli_out, "dmvjnd " DJ_VERSION_STRING));
    CLI("classify", "--help");
    CHECK_CLI(0, "");
    CHECK(strstr(cli_out, "usage: dmvjnd classify"));
    cli_rc_ = cli(NULL);
    CHECK_CLI(2, "usage: dmvjnd [--conv winograd|direct] <command>");
    CLI("frobnicate");
    CHECK_CLI(2, "dmvjnd: unknown command 'frobnicate'");
    CLI("--conv", "fft", "bench");
    CHECK_CLI(2, "dmvjnd: --conv takes 'winograd' or 'direct'");
}

static void row_cli_unknown_option(void) {
    CLI("train-classifier", "--epoch", "3", "--out", tp("w.safetensors"));
    CHECK_CLI(2, "dmvjnd train-classifier: unknown option '--epoch' (see dmvjnd train-classifier --help)");
    CLI("classify", "-model", good_w);
    CHECK_CLI(2, "unexpected argument '-model' (options start with --; see --help)");
    CLI("bench", "--json=yes");
    CHECK_CLI(2, "--json takes no value");
}

static void row_cli_missing_value(void) {
    CLI("train-classifier", "--out");
    CHECK_CLI(2, "--out needs a value");
    CLI("classify", "--model", good_w, "--png");
    CHECK_CLI(2, "--png needs a value (one or more files)");
}

static void row_cli_bad_numbers(void) {
    CLI("train-classifier", "--epochs", "ten", "--out", tp("w.safetensors"));
    CHECK_CLI(2, "--epochs expects a number, got 'ten'");
    CLI("train-classifier", "--epochs", "2.5", "--out", tp("w.safetensors"));
    CHECK_CLI(2, "--epochs expects an integer, got '2.5'");
    CLI("train-classifier", "--lr", "nan", "--out", tp("w.safetensors"));
    CHECK_CLI(2, "--lr expects a number, got 'nan'");
    CLI("train-classifier", "--lr", "1e999", "--out", tp("w.safetensors"));
    CHECK_CLI(2, "--lr expects a number, got '1e999'");
    CLI("bench", "--batch", "12abc");
    CHECK_CLI(2, "--batch expects a number, got '12abc'");
}

static void row_cli_out_of_range(void) {
    CLI("train-classifier", "--epochs", "0", "--out", tp("w.safetensors"));
    CHECK_CLI(2, "--epochs 0 is out of range [1, 100000]");
    CLI("train-classifier", "--lr", "-0.1", "--out", tp("w.safetensors"));
    CHECK_CLI(2, "--lr -0.1 is out of range [0, 1e+06]");
    CLI("train-classifier", "--lr", "inf", "--out", tp("w.safetensors"));
    CHECK_CLI(2, "--lr inf is out of range");
    CLI("train-classifier", "--epochs", "3e30", "--out", tp("w.safetensors")); /* found by fuzz_cli */
    CHECK_CLI(2, "--epochs 3e30 is out of range [1, 100000]");
    CLI("bench", "--batch", "5000");
    CHECK_CLI(2, "--batch 5000 is out of range [1, 4096]");
    CLI("classify", "--model", good_w, "--cifar", tp("cifar_cut"), "--threads", "-1");
    CHECK_CLI(2, "--threads -1 is out of range [0, 1024]");
}

/* A schedule whose rate is not a number at some step (found by fuzz_cli):
 * refused by dj_schedule_check, which train-classifier runs before training. */
static void row_schedule_overflow(void) {
    dj_schedule s = dj_schedule_defaults(DJ_SCHED_STEP, 0.1, 30 * 391);
    s.n_milestones = 2, s.milestones[0] = 3910, s.milestones[1] = 7820, s.gamma = 1e284;
    CHECK_FAILS(dj_schedule_check(&s), DJ_EINVAL, "the rate after the last milestone, 0.1 * 1e+284^2, is not finite");
    CHECK_FAILS(dj_schedule_parse(&s, "step:10,20:1e284+warmup:2", 0.1, 30 * 391, 391), DJ_EINVAL,
                "learning-rate schedule \"step:10,20:1e284+warmup:2\": the rate after the last milestone");
    CHECK_FAILS(dj_schedule_parse(&s, "onecycle:0.3:1e-300:1e-300", 0.1, 30 * 391, 391), DJ_EINVAL,
                "onecycle's final rate 0.1 / 1e-300 / 1e-300 is not finite");
    CHECK_OK(dj_schedule_parse(&s, "step:10,20:1e100", 0.1, 30 * 391, 391)); /* large, but a number */
    CHECK(isfinite(dj_schedule_lr(&s, 8000)) && dj_schedule_lr(&s, 8000) > 1e198);
}

static void row_cli_bad_combinations(void) {
    CLI("train-classifier", "--epochs", "1");
    CHECK_CLI(2, "give --out FILE (and/or --checkpoint FILE): nothing would be saved");
    CLI("train-classifier", "--resume", "--out", tp("w.safetensors"));
    CHECK_CLI(2, "--resume needs --checkpoint FILE");
    CLI("train-classifier", "--optim", "rmsprop", "--out", tp("w.safetensors"));
    CHECK_CLI(2, "--optim must be sgd, adam or adamw, not 'rmsprop'");
    CLI("train-classifier", "--optim", "adam", "--nesterov", "--out", tp("w.safetensors"));
    CHECK_CLI(2, "--momentum and --nesterov are for --optim sgd");
    CLI("train-classifier", "--out", tp("same"), "--checkpoint", tp("same"));
    CHECK_CLI(2, "are the same file");
    CLI("classify", "--model", good_w, "--png", good_png, "--json", "--csv");
    CHECK_CLI(2, "--json and --csv exclude each other");
    CLI("classify", "--model", good_w, "--png", good_png, "--cifar", tmpdir);
    CHECK_CLI(2, "give either --cifar DIR [--split S] or --png FILE...");
    CLI("classify", "--model", good_w, "--split", "validation");
    CHECK_CLI(2, "--split must be test or train, not 'validation'");
    CLI("cam", "--model", good_w, "--png", good_png);
    CHECK_CLI(2, "give --out DIR");
    CLI("bench", "--mode", "fast");
    CHECK_CLI(2, "--mode must be train, infer or both");
    CLI("generate", "--model", good_w, "--png", good_png);
    CHECK_CLI(2, "--out DIR is required");
    CLI("generate", "--model", good_w, "--out", tp("gen"));
    CHECK_CLI(2, "give either --cifar DIR [--split S] or --png FILE...");
    CLI("eval", "--model", good_w);
    CHECK_CLI(2, "give --out DIR (report files), --json (stdout), or both");
    CLI("eval", "--model", good_w, "--json", "--split", "validation");
    CHECK_CLI(2, "--split must be train, test or both, not 'validation'");
}

/* generate / eval refuse a model file that is missing or is not a JND model. */
static void row_cli_jnd_model(void) {
    CLI("generate", "--model", tp("no-such-jnd.safetensors"), "--png", good_png, "--out", tp("gen"));
    CHECK_CLI(3, "no-such-jnd.safetensors: cannot open: No such file or directory");
    CLI("eval", "--model", good_w, "--json", "--limit", "1");
    CHECK_CLI(3, "not a DMV-JND model file (arch 'resnet20', expected 'jnd_ed')");
}

/* ===================================================== output files */

/* A folder that cannot be written even by root: /sys is read-only. */
static const char *unwritable_dir(void) {
    static char d[4200];
    snprintf(d, sizeof d, "%s/ro", tmpdir);
    mkdir(d, 0555);
    chmod(d, 0555);
    char probe[4300];
    snprintf(probe, sizeof probe, "%s/probe", d);
    int fd = open(probe, O_WRONLY | O_CREAT, 0644);
    if (fd < 0) return d;
    close(fd);
    unlink(probe); /* root: permission bits do not stop it */
    return "/sys";
}

static void row_out_dir_missing_or_unwritable(void) {
    /* Refused before the data is loaded: the --data folder does not exist,
     * and the message is about the output. */
    CLI("train-classifier", "--data", tp("no-such-dir"), "--out", tp("no-such-dir/w.safetensors"));
    CHECK_CLI(3, "cannot write the weights file");
    CHECK(strstr(cli_err, "no-such-dir' does not exist"));
    char out[4400], log[4400];
    snprintf(out, sizeof out, "%s/w.safetensors", unwritable_dir());
    snprintf(log, sizeof log, "%s/run.csv", unwritable_dir());
    CLI("train-classifier", "--data", tp("no-such-dir"), "--out", out);
    CHECK_CLI(3, "is not writable");
    CLI("train-classifier", "--data", tp("no-such-dir"), "--checkpoint", tp("ok.ckpt"), "--log", log);
    CHECK_CLI(3, "cannot write the CSV log");
    char under_file[4400];
    snprintf(under_file, sizeof under_file, "%s/x.csv", good_w); /* a component of the path is a file */
    CLI("train-classifier", "--data", tp("no-such-dir"), "--out", tp("w.safetensors"), "--log", under_file);
    CHECK_CLI(2, "is not a directory"); /* DJ_EINVAL: the argument names a file as a folder */
    CLI("cam", "--model", good_w, "--png", good_png, "--out", tp("no-such-dir/maps"));
    CHECK_CLI(3, "cannot create the output folder");
    CHECK_FAILS(dj_check_writable_parent(out), DJ_EIO, "is not writable");
}

/* Temporary files of atomic writes (".<name>.<pid>.<n>.tmp") in tmpdir. */
static int count_temp_files(void) {
    DIR *d = opendir(tmpdir);
    struct dirent *e;
    int n = 0;
    while (d && (e = readdir(d))) {
        size_t l = strlen(e->d_name);
        n += e->d_name[0] == '.' && l > 4 && !strcmp(e->d_name + l - 4, ".tmp");
    }
    if (d) closedir(d);
    return n;
}

/* A full disk while writing: simulated with RLIMIT_FSIZE (writes past the
 * limit fail with EFBIG, SIGXFSZ ignored). The old file must survive. */
static void row_disk_full(void) {
    struct rlimit old;
    getrlimit(RLIMIT_FSIZE, &old);
    void (*oldsig)(int) = signal(SIGXFSZ, SIG_IGN);
    const char *path = tp("full.safetensors");
    CHECK_OK(dj_weights_save(resnet, path, "resnet20", NULL, 0));
    size_t n0;
    void *before = slurp(path, &n0);
    struct rlimit lim = {64 << 10, old.rlim_max};
    setrlimit(RLIMIT_FSIZE, &lim);
    int rc = dj_weights_save(resnet, path, "resnet20", NULL, 0);
    setrlimit(RLIMIT_FSIZE, &old);
    CHECK(rc == DJ_EIO && strstr(dj_last_error(), "full.safetensors: write failed: File too large"));
    if (rc != DJ_EIO) fprintf(stderr, "  got %d: %s\n", rc, dj_last_error());
    size_t n1;
    void *after = slurp(path, &n1);
    CHECK(before && after && n0 == n1 && memcmp(before, after, n0) == 0); /* untouched */
    dj_free(before);
    dj_free(after);
    CHECK(count_temp_files() == 0); /* no temporary file left behind */
    signal(SIGXFSZ, oldsig);
}

/* ===================================================== training runs */

static const char *data_dir(void) { return dj_cifar10_default_dir(); }

/* The tiny recipe of the training rows: resnet20 on 64 images. */
#define TINY "--arch", "resnet20", "--train-limit", "64", "--batch", "32", "--eval-limit", "0", "--final-eval-limit", \
             "0", "--seed", "5", "--threads", "1", "--quiet", "--data", data_dir()

static void row_train_nan_loss(void) {
    if (!have_data) {
        SKIP("no CIFAR-10");
    }
    /* epoch 1 at lr 0.01, then x 1e12: the loss overflows in epoch 2 */
    CLI("train-classifier", TINY, "--epochs", "3", "--lr", "0.01", "--schedule", "step:1:1e12", "--checkpoint",
        tp("nan.ckpt"), "--out", tp("nan_w.safetensors"), "--log", tp("nan.csv"));
    CHECK_CLI(1, "training diverged in epoch 2");
    CHECK(strstr(cli_err, "the checkpoint '") && strstr(cli_err, "nan.ckpt' holds epoch 1, the last good one"));
    char epoch[16] = "";
    CHECK_OK(dj_weights_read_meta(tp("nan.ckpt"), "epoch", epoch, sizeof epoch));
    CHECK(!strcmp(epoch, "1"));
    dj_st_file *f;
    CHECK_OK(dj_st_open(tp("nan.ckpt"), DJ_ST_CHECK_FINITE, &f)); /* intact and finite */
    if (f) dj_st_close(f);
    CHECK(access(tp("nan_w.safetensors"), F_OK) != 0); /* no weights file */
}

static void row_train_bad_resume(void) {
    if (!have_data) {
        SKIP("no CIFAR-10");
    }
    CLI("train-classifier", TINY, "--epochs", "2", "--stop-after", "1", "--checkpoint", tp("r.ckpt"));
    CHECK_CLI(0, "");
    /* another batch size */
    CLI("train-classifier", "--arch", "resnet20", "--train-limit", "64", "--batch", "16", "--eval-limit", "0",
        "--final-eval-limit", "0", "--seed", "5", "--threads", "1", "--quiet", "--data", data_dir(), "--epochs", "2",
        "--checkpoint", tp("r.ckpt"), "--resume");
    CHECK_CLI(2, "cannot resume: the checkpoint was trained with train.batch = 32, this run asks for 16");
    /* a torn checkpoint */
    size_t n;
    void *d = slurp(tp("r.ckpt"), &n);
    dj_free(d);
    truncate_copy(tp("r.ckpt"), tp("torn.ckpt"), n - 1000);
    CLI("train-classifier", TINY, "--epochs", "2", "--checkpoint", tp("torn.ckpt"), "--resume");
    CHECK_CLI(3, "torn.ckpt: tensor");
    CHECK(strstr(cli_err, "(truncated file?)"));
    /* a bad schedule */
    CLI("train-classifier", TINY, "--epochs", "2", "--schedule", "cosine:-1", "--out", tp("s.safetensors"));
    CHECK_CLI(2, "");
    CHECK(strstr(cli_err, "cosine:-1") || strstr(cli_err, "min_lr"));
}

/* A disk too full for a run's outputs is refused before the run starts:
 * the check itself (a real file system cannot be filled here), and that
 * train-classifier's outputs pass it on this one. */
static void row_disk_too_full_upfront(void) {
    CHECK_OK(dj_check_free_space(tp("w.safetensors"), 1));
    CHECK_FAILS(dj_check_free_space(tp("w.safetensors"), UINT64_MAX / 2), DJ_EIO, "w.safetensors': only ");
    CHECK(strstr(dj_last_error(), "MB free on its file system, and this run writes about"));
    CHECK_OK(dj_check_training_space(resnet, tp("w.safetensors"), tp("w.ckpt")));
}

static void row_train_disk_full(void) {
    if (!have_data) {
        SKIP("no CIFAR-10");
    }
    /* Epoch 1's checkpoint is written; epoch 2's hits the full disk. */
    CLI("train-classifier", TINY, "--epochs", "2", "--stop-after", "1", "--checkpoint", tp("full.ckpt"));
    CHECK_CLI(0, "");
    size_t n0;
    void *before = slurp(tp("full.ckpt"), &n0);
    struct rlimit old;
    getrlimit(RLIMIT_FSIZE, &old);
    void (*oldsig)(int) = signal(SIGXFSZ, SIG_IGN); /* inherited: the command gets EFBIG */
    struct rlimit lim = {(rlim_t)(n0 / 2), old.rlim_max};
    setrlimit(RLIMIT_FSIZE, &lim);
    CLI("train-classifier", TINY, "--epochs", "2", "--checkpoint", tp("full.ckpt"), "--resume");
    setrlimit(RLIMIT_FSIZE, &old);
    signal(SIGXFSZ, oldsig);
    CHECK_CLI(3, "full.ckpt: write failed: File too large");
    size_t n1;
    void *after = slurp(tp("full.ckpt"), &n1);
    CHECK(before && after && n0 == n1 && memcmp(before, after, n0) == 0); /* epoch 1's, intact */
    dj_free(before);
    dj_free(after);
}

/* ===================================================== main */

int main(void) {
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    const char *build = getenv("BUILD");
    snprintf(dmvjnd_bin, sizeof dmvjnd_bin, "%s/dmvjnd", build && *build ? build : "build");
    if (access(dmvjnd_bin, X_OK) != 0) {
        fprintf(stderr, "test_bad_input: %s not found (run from the repository root after make)\n", dmvjnd_bin);
        printf("test_bad_input: 0 passed, 1 failed\n");
        return 1;
    }
    dj_cifar10 probe;
    dj_cifar10_opts one = {0, 1, 0};
    have_data = dj_cifar10_load(&probe, NULL, "test", &one) == 0;
    if (have_data) dj_cifar10_free(&probe);
    else fprintf(stderr, "test_bad_input: CIFAR-10 not found (%s); the training rows are skipped\n", dj_last_error());

    dj_rng rng;
    dj_rng_seed(&rng, 1);
    if (dj_model_build(&resnet, "resnet20", 10, &rng)) {
        fprintf(stderr, "cannot build resnet20: %s\n", dj_last_error());
        return 1;
    }
    good_w = strdup(tp("good.safetensors"));
    good_png = strdup(tp("good.png"));
    static unsigned char px[32 * 32 * 3];
    for (int i = 0; i < 32 * 32 * 3; i++) px[i] = (unsigned char)(i * 13);
    if (dj_weights_save(resnet, good_w, "resnet20", NULL, 0) || dj_png_write_rgb(good_png, px, 32, 32)) {
        fprintf(stderr, "cannot write the good files: %s\n", dj_last_error());
        return 1;
    }

    RUN(row_weights_missing);
    RUN(row_weights_directory);
    RUN(row_weights_empty);
    RUN(row_weights_truncated_data);
    RUN(row_weights_truncated_header);
    RUN(row_weights_header_length_absurd);
    RUN(row_weights_not_json);
    RUN(row_weights_offsets_outside);
    RUN(row_weights_size_mismatch);
    RUN(row_weights_overlap);
    RUN(row_weights_hole);
    RUN(row_weights_huge_dims);
    RUN(row_weights_wrong_dtype);
    RUN(row_weights_nan_inf);
    RUN(row_weights_wrong_arch);
    RUN(row_png_missing_empty_not_png);
    RUN(row_png_truncated_corrupt);
    RUN(row_png_huge_dims);
    RUN(row_png_wrong_size);
    RUN(row_png_converted);
    RUN(row_cifar_missing);
    RUN(row_cifar_truncated);
    RUN(row_cifar_bad_label);
    RUN(row_cifar_meta);
    RUN(row_cifar_wrong_shape);
    RUN(row_cifar_offset_past_end);
    RUN(row_cli_usage);
    RUN(row_cli_unknown_option);
    RUN(row_cli_missing_value);
    RUN(row_cli_bad_numbers);
    RUN(row_cli_out_of_range);
    RUN(row_cli_bad_combinations);
    RUN(row_cli_jnd_model);
    RUN(row_schedule_overflow);
    RUN(row_out_dir_missing_or_unwritable);
    RUN(row_disk_full);
    RUN(row_train_nan_loss);
    RUN(row_train_bad_resume);
    RUN(row_disk_too_full_upfront);
    RUN(row_train_disk_full);

    dj_graph_destroy(resnet);
    free((void *)good_w);
    free((void *)good_png);
    char cmd[4200];
    chmod(tp("ro"), 0755);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
    return check_report("test_bad_input");
}
