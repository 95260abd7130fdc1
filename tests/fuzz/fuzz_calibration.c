/*
 * libFuzzer harness for jnd-alloc's calibration file reader
 * (dj_compress_calibration_read, src/compress/alloc.c).
 *
 * Build and run: tests/fuzz/run.sh calibration
 *
 * The input is written to a file (under $TMPDIR, else /dev/shm, else /tmp)
 * and read. Properties: a failure leaves the struct zeroed and sets a
 * message naming the file; a success gives 1..DJ_JND_MAX_CLASSIFIERS
 * classifiers, a known codec, strength in (0, 1], kept in [0, 1], class
 * counts 0 or 2..DJ_JND_RESULT_CLASSES, finite weights within 1e6 (zero
 * past each classifier's feature count) and NUL-terminated tags, and writing what was read
 * and reading it back gives the same struct, field for field and bit for
 * bit.
 */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dmvjnd/compress.h"
#include "dmvjnd/dmvjnd.h"

#define REQUIRE(cond)                                                                                                  \
    do {                                                                                                               \
        if (!(cond)) __builtin_trap();                                                                                 \
    } while (0)

/* dj_compress_calibration_check (in alloc.c) asks the JND generator for its
 * classifiers; the harness never calls it, and linking the generator would
 * bring in the whole network stack. */
int dj_jnd_generator_count(const dj_jnd_generator *g) {
    (void)g;
    __builtin_trap();
}
const char *dj_jnd_generator_tag(const dj_jnd_generator *g, int k) {
    (void)g, (void)k;
    __builtin_trap();
}

static char in_path[512], out_path[512];

static void init_paths(void) {
    if (in_path[0]) return;
    const char *dir = getenv("TMPDIR");
    if (!dir || !*dir || access(dir, W_OK)) dir = access("/dev/shm", W_OK) ? "/tmp" : "/dev/shm";
    snprintf(in_path, sizeof in_path, "%s/fuzz_calibration_%d.json", dir, (int)getpid());
    snprintf(out_path, sizeof out_path, "%s/fuzz_calibration_%d.out.json", dir, (int)getpid());
}

static int zeroed(const dj_compress_calibration *c) {
    static const dj_compress_calibration z;
    return !memcmp(c, &z, sizeof z);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    init_paths();
    FILE *f = fopen(in_path, "wb");
    REQUIRE(f != NULL);
    REQUIRE(fwrite(data, 1, size, f) == size);
    REQUIRE(fclose(f) == 0);

    static dj_compress_calibration cal, again;
    memset(&cal, 0xa5, sizeof cal); /* whatever was there before */
    int rc = dj_compress_calibration_read(in_path, &cal);
    if (rc) {
        REQUIRE(rc == DJ_EFORMAT || rc == DJ_EIO || rc == DJ_ENOMEM);
        REQUIRE(zeroed(&cal));
        REQUIRE(strstr(dj_last_error(), in_path) != NULL);
        return 0;
    }
    REQUIRE(cal.classifiers >= 1 && cal.classifiers <= DJ_JND_MAX_CLASSIFIERS);
    REQUIRE(cal.codec == DJ_CODEC_JPEG || cal.codec == DJ_CODEC_WEBP);
    REQUIRE(cal.strength > 0 && cal.strength <= 1);
    REQUIRE(cal.kept >= 0 && cal.kept <= 1);
    REQUIRE(cal.images >= 0 && cal.samples >= 0);
    for (int k = 0; k < DJ_JND_MAX_CLASSIFIERS; k++) {
        REQUIRE(memchr(cal.tags[k], 0, sizeof cal.tags[k]) != NULL);
        REQUIRE(isfinite(cal.loss[k]) && cal.loss[k] >= 0);
        REQUIRE(cal.classes[k] == 0 || (cal.classes[k] >= 2 && cal.classes[k] <= DJ_JND_RESULT_CLASSES));
        for (int j = 0; j < DJ_ALLOC_MAX_FEATURES; j++) {
            REQUIRE(isfinite(cal.w[k][j]) && fabs(cal.w[k][j]) <= 1e6);
            if (k >= cal.classifiers || j >= dj_compress_alloc_count(cal.classes[k])) REQUIRE(cal.w[k][j] == 0);
        }
        if (k >= cal.classifiers) REQUIRE(cal.tags[k][0] == 0 && cal.loss[k] == 0 && cal.classes[k] == 0);
    }
    /* write + read: the same struct */
    REQUIRE(dj_compress_calibration_write(&cal, out_path) == DJ_OK);
    memset(&again, 0x5a, sizeof again);
    REQUIRE(dj_compress_calibration_read(out_path, &again) == DJ_OK);
    REQUIRE(again.codec == cal.codec && again.classifiers == cal.classifiers);
    REQUIRE(again.images == cal.images && again.samples == cal.samples);
    REQUIRE(!memcmp(&again.strength, &cal.strength, sizeof cal.strength));
    REQUIRE(!memcmp(&again.kept, &cal.kept, sizeof cal.kept));
    REQUIRE(!memcmp(again.tags, cal.tags, sizeof cal.tags));
    REQUIRE(!memcmp(again.loss, cal.loss, sizeof cal.loss));
    REQUIRE(!memcmp(again.classes, cal.classes, sizeof cal.classes));
    REQUIRE(!memcmp(again.w, cal.w, sizeof cal.w));
    return 0;
}
