/*
 * libFuzzer harness for the CIFAR-10 binary reader (src/io/cifar10.c):
 * dj_cifar10_load on a folder of fuzzed .bin files, dj_cifar10_class_names
 * on a fuzzed batches.meta.txt, and batch building / augmentation on
 * whatever loads.
 *
 * Input layout (tests/fuzz/corpus/cifar10 holds examples):
 *   byte 0      flags: bit 0 split (0 test, 1 train); bit 1 "exact": the
 *               harness sizes every .bin to exactly records_per_file records
 *               (repeating the payload), so the fuzzer reaches the record
 *               parser instead of the size check; bit 2 write
 *               batches.meta.txt; bit 3 remove one .bin file (byte 5 picks)
 *   byte 1      records_per_file - 1, taken modulo 8 (1..8 records)
 *   byte 2      offset (modulo the split's size + 2, so "past the end" too)
 *   byte 3      limit (0 = to the end)
 *   byte 4      length L of the batches.meta.txt text that follows
 *   byte 5      seed of the batch / augmentation draws
 *   bytes 6..   L bytes of batches.meta.txt, then the payload of the .bin
 *               files (train: split into 5 equal parts, one per file)
 *
 * The files live in a private folder under $TMPDIR (or /dev/shm when it
 * exists), removed at exit.
 *
 * Properties checked beyond "no crash, no leak, no UB":
 *   - a failed load leaves the dataset empty and names the problem;
 *   - a successful load has the requested number of images, labels 0..9, and
 *     pixels equal to the planar records of the files, interleaved;
 *   - class names, when read, are 10 NUL-terminated names without trailing
 *     whitespace;
 *   - a batch of random indices with crop + flip normalises every pixel to a
 *     value of the lookup table (finite).
 */
#include <dirent.h>
#include <fcntl.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dmvjnd/cifar10.h"
#include "dmvjnd/dmvjnd.h"

#define REQUIRE(cond)                                                                                                  \
    do {                                                                                                               \
        if (!(cond)) __builtin_trap();                                                                                 \
    } while (0)

enum { REC = DJ_CIFAR10_RECORD_BYTES, IMG = DJ_CIFAR10_IMAGE_BYTES, PLANE = 1024, MAX_RPF = 8 };

static char dir[256];

static void cleanup(void) {
    if (!dir[0]) return;
    DIR *d = opendir(dir);
    struct dirent *e;
    char p[512];
    while (d && (e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        unlink(p);
    }
    if (d) closedir(d);
    rmdir(dir);
}

static void quiet(int level, const char *msg, void *user) {
    (void)level;
    (void)msg;
    (void)user;
}

static void init(void) {
    struct stat st;
    const char *base = stat("/dev/shm", &st) == 0 && S_ISDIR(st.st_mode) && access("/dev/shm", W_OK) == 0
                           ? "/dev/shm"
                           : (getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    snprintf(dir, sizeof dir, "%s/fuzz-cifar10.XXXXXX", base);
    if (!mkdtemp(dir)) abort();
    atexit(cleanup);
    dj_set_log(quiet, NULL, DJ_LOG_ERROR);
}

static void put_file(const char *name, const uint8_t *data, size_t n) {
    char p[512];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    REQUIRE(fd >= 0);
    size_t off = 0;
    while (off < n) {
        ssize_t w = write(fd, data + off, n - off);
        REQUIRE(w > 0);
        off += (size_t)w;
    }
    close(fd);
}

static void del_file(const char *name) {
    char p[512];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    unlink(p);
}

/* The bytes file `fi` gets (also what the loaded pixels must equal). */
static uint8_t filebuf[5][MAX_RPF * REC];
static size_t filelen[5];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!dir[0]) init();
    if (size < 6) return 0;
    int flags = data[0], train = flags & 1, exact = flags & 2, meta = flags & 4, drop = flags & 8;
    int rpf = 1 + data[1] % MAX_RPF;
    int nfiles = train ? DJ_CIFAR10_TRAIN_FILES : 1;
    int total = nfiles * rpf;
    int offset = data[2] % (total + 2);
    int limit = data[3] % (total + 2);
    size_t mlen = data[4];
    uint64_t seed = data[5];
    const uint8_t *p = data + 6;
    size_t left = size - 6;
    if (mlen > left) mlen = left;
    const uint8_t *mtext = p;
    p += mlen;
    left -= mlen;

    /* The .bin files. */
    for (int fi = 0; fi < nfiles; fi++) {
        size_t part = left / (size_t)nfiles;
        const uint8_t *src = p + part * (size_t)fi;
        if (fi == nfiles - 1) part = left - part * (size_t)(nfiles - 1);
        if (part > sizeof filebuf[fi]) part = sizeof filebuf[fi];
        if (exact) {
            filelen[fi] = (size_t)rpf * REC;
            if (!part) memset(filebuf[fi], 0, filelen[fi]);
            for (size_t k = 0; part && k < filelen[fi]; k += part)
                memcpy(filebuf[fi] + k, src, filelen[fi] - k < part ? filelen[fi] - k : part);
        } else {
            filelen[fi] = part;
            if (part) memcpy(filebuf[fi], src, part);
        }
        char name[32];
        if (train) snprintf(name, sizeof name, "data_batch_%d.bin", fi + 1);
        else snprintf(name, sizeof name, "test_batch.bin");
        put_file(name, filebuf[fi], filelen[fi]);
    }
    if (drop) {
        char name[32];
        if (train) snprintf(name, sizeof name, "data_batch_%d.bin", 1 + (int)(seed % 5));
        else snprintf(name, sizeof name, "test_batch.bin");
        del_file(name);
    }

    dj_cifar10 ds;
    dj_cifar10_opts o = {offset, limit, rpf};
    int rc = dj_cifar10_load(&ds, dir, train ? "train" : "test", &o);
    if (rc) {
        REQUIRE(rc < 0 && ds.n == 0 && ds.pixels == NULL && ds.labels == NULL && dj_last_error()[0]);
    } else {
        int want = total - offset;
        if (limit > 0 && limit < want) want = limit;
        REQUIRE(ds.n == want && ds.offset == offset && ds.pixels && ds.labels);
        for (int i = 0; i < ds.n; i++) {
            int rec = offset + i, fi = rec / rpf, r = rec % rpf;
            const uint8_t *in = filebuf[fi] + (size_t)r * REC;
            REQUIRE(filelen[fi] == (size_t)rpf * REC);
            REQUIRE(ds.labels[i] >= 0 && ds.labels[i] <= 9 && ds.labels[i] == in[0]);
            const uint8_t *px = ds.pixels + (size_t)i * IMG;
            for (int q = 0; q < PLANE; q++)
                for (int c = 0; c < 3; c++) REQUIRE(px[3 * q + c] == in[1 + c * PLANE + q]);
        }
        /* A batch with augmentation over random indices. */
        dj_rng rng;
        dj_rng_seed(&rng, seed);
        int n = 1 + (int)(seed % 4);
        int32_t idx[4], labels[4];
        for (int k = 0; k < n; k++) idx[k] = (int32_t)dj_rng_below(&rng, (uint32_t)ds.n);
        static float xbuf[4 * IMG];
        dj_tensor x = dj_tensor_view(xbuf, n, 32, 32, 3);
        dj_augment aug = {(int)(seed % 6), (seed & 8) ? 0.5f : 0.0f};
        const float half[3] = {0.5f, 0.5f, 0.5f};
        REQUIRE(dj_cifar10_batch(&ds, idx, n, &aug, &rng, half, half, &x, labels) == 0);
        for (int k = 0; k < n; k++) REQUIRE(labels[k] == ds.labels[idx[k]]);
        for (size_t k = 0; k < (size_t)n * IMG; k++) REQUIRE(xbuf[k] >= -1.0f && xbuf[k] <= 1.0f);
        /* An index out of range is refused, not read. */
        idx[0] = ds.n;
        REQUIRE(dj_cifar10_batch(&ds, idx, n, NULL, NULL, half, half, &x, labels) == DJ_EINVAL);
        dj_cifar10_free(&ds);
        REQUIRE(ds.pixels == NULL && ds.n == 0);
    }

    /* The class names. */
    if (meta) put_file("batches.meta.txt", mtext, mlen);
    else del_file("batches.meta.txt");
    char names[DJ_CIFAR10_CLASSES][DJ_CIFAR10_NAME_MAX];
    memset(names, 0x55, sizeof names);
    rc = dj_cifar10_class_names(dir, names);
    if (rc) {
        REQUIRE(rc < 0 && dj_last_error()[0]);
    } else {
        REQUIRE(meta);
        for (int c = 0; c < DJ_CIFAR10_CLASSES; c++) {
            size_t l = strnlen(names[c], DJ_CIFAR10_NAME_MAX);
            REQUIRE(l > 0 && l < DJ_CIFAR10_NAME_MAX);
            char last = names[c][l - 1];
            REQUIRE(last != ' ' && last != '\t' && last != '\r' && last != '\n');
            REQUIRE(memchr(names[c], '\n', l) == NULL);
        }
    }
    return 0;
}
