/* CIFAR-10 reader, normalisation, augmentation and batches.
 *
 * The reader is tested on small generated folders (records_per_file = 20, so
 * a whole "train" split is 100 records) plus a few full-size checks done with
 * sparse files, which cost no disk. Where the real data set is (the default
 * folder, or $DMVJND_DATA), its published facts are checked too; else that
 * test is skipped. */
#include <dirent.h>
#include <omp.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "dmvjnd/dmvjnd.h"

enum { RPF = 20 }; /* records per generated file */

/* Pixel value of channel c at (y, x) of split record i: a hash, so a pixel
 * landing in the wrong place (or image) cannot match by accident. */
static uint8_t pix(int i, int c, int y, int x) {
    uint32_t h = (uint32_t)i * 2654435761u ^ (uint32_t)(c << 16 | y << 8 | x);
    h *= 2246822519u;
    return (uint8_t)(h >> 24);
}
static int lab(int i) { return (i * 3 + 1) % 10; }

static char tmpdir[4096];

static void path_in(char *out, size_t cap, const char *name) { snprintf(out, cap, "%s/%s", tmpdir, name); }

/* One .bin file of `n` records, split indices base..base+n-1. */
static void write_bin(const char *name, int base, int n) {
    char path[4200];
    path_in(path, sizeof path, name);
    FILE *f = fopen(path, "wb");
    if (!f) {
        perror(path);
        exit(2);
    }
    uint8_t rec[3073];
    for (int i = base; i < base + n; i++) {
        rec[0] = (uint8_t)lab(i);
        for (int c = 0; c < 3; c++)
            for (int y = 0; y < 32; y++)
                for (int x = 0; x < 32; x++) rec[1 + c * 1024 + y * 32 + x] = pix(i, c, y, x);
        fwrite(rec, 1, sizeof rec, f);
    }
    fclose(f);
}

static void write_text(const char *name, const char *text) {
    char path[4200];
    path_in(path, sizeof path, name);
    FILE *f = fopen(path, "wb");
    if (!f) {
        perror(path);
        exit(2);
    }
    fputs(text, f);
    fclose(f);
}

static const char *META = "airplane\nautomobile\nbird\ncat\ndeer\ndog\nfrog\nhorse\nship\ntruck\n\n";

/* A complete, valid folder with RPF records per file. */
static void write_good_folder(void) {
    char name[64];
    for (int k = 0; k < 5; k++) {
        snprintf(name, sizeof name, "data_batch_%d.bin", k + 1);
        write_bin(name, k * RPF, RPF);
    }
    write_bin("test_batch.bin", 0, RPF);
    write_text("batches.meta.txt", META);
}

static void remove_file(const char *name) {
    char path[4200];
    path_in(path, sizeof path, name);
    unlink(path);
}

static void clean_folder(void) {
    DIR *d = opendir(tmpdir);
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.') {
            char path[4400];
            snprintf(path, sizeof path, "%s/%s", tmpdir, e->d_name);
            if (unlink(path) != 0) rmdir(path);
        }
    closedir(d);
}

static const dj_cifar10_opts small = {0, 0, RPF};

/* Every pixel and label of ds against the generator, split offset included. */
static int matches_generator(const dj_cifar10 *ds) {
    for (int i = 0; i < ds->n; i++) {
        int g = ds->offset + i;
        if (ds->labels[i] != lab(g)) return 0;
        for (int y = 0; y < 32; y++)
            for (int x = 0; x < 32; x++)
                for (int c = 0; c < 3; c++)
                    if (ds->pixels[(((size_t)i * 32 + y) * 32 + x) * 3 + c] != pix(g, c, y, x)) return 0;
    }
    return 1;
}

static void test_load_good(void) {
    write_good_folder();
    dj_cifar10 ds;
    CHECK_OK(dj_cifar10_load(&ds, tmpdir, "train", &small));
    CHECK(ds.n == 5 * RPF && ds.offset == 0);
    CHECK(matches_generator(&ds));
    /* Planar -> interleaved by hand on known values: byte 1 + c*1024 + y*32 + x
     * of record 23 (file 2, record 3) is channel c of pixel (y, x). */
    CHECK(ds.pixels[((23 * 32 + 1) * 32 + 2) * 3 + 0] == pix(23, 0, 1, 2));
    CHECK(ds.pixels[((23 * 32 + 1) * 32 + 2) * 3 + 1] == pix(23, 1, 1, 2));
    CHECK(ds.pixels[((23 * 32 + 31) * 32 + 31) * 3 + 2] == pix(23, 2, 31, 31));
    CHECK(ds.labels[23] == lab(23));
    dj_cifar10_free(&ds);
    CHECK(ds.pixels == NULL && ds.labels == NULL && ds.n == 0);
    dj_cifar10_free(&ds); /* twice is harmless */

    CHECK_OK(dj_cifar10_load(&ds, tmpdir, "test", &small));
    CHECK(ds.n == RPF && matches_generator(&ds));
    dj_cifar10_free(&ds);

    /* A trailing slash on the folder is fine. */
    char slash[4200];
    snprintf(slash, sizeof slash, "%s/", tmpdir);
    CHECK_OK(dj_cifar10_load(&ds, slash, "test", &small));
    CHECK(ds.n == RPF);
    dj_cifar10_free(&ds);
}

static void test_offset_limit(void) {
    write_good_folder();
    dj_cifar10 ds;
    /* Across the boundary between data_batch_1 and data_batch_2. */
    dj_cifar10_opts o = {RPF - 2, 5, RPF};
    CHECK_OK(dj_cifar10_load(&ds, tmpdir, "train", &o));
    CHECK(ds.n == 5 && ds.offset == RPF - 2 && matches_generator(&ds));
    dj_cifar10_free(&ds);
    /* limit 0 = to the end; a limit past the end is clamped. */
    o = (dj_cifar10_opts){2 * RPF + 1, 0, RPF};
    CHECK_OK(dj_cifar10_load(&ds, tmpdir, "train", &o));
    CHECK(ds.n == 3 * RPF - 1 && matches_generator(&ds));
    dj_cifar10_free(&ds);
    o = (dj_cifar10_opts){5 * RPF - 3, 1000, RPF};
    CHECK_OK(dj_cifar10_load(&ds, tmpdir, "train", &o));
    CHECK(ds.n == 3 && matches_generator(&ds));
    dj_cifar10_free(&ds);

    o = (dj_cifar10_opts){5 * RPF, 0, RPF};
    CHECK_FAILS(dj_cifar10_load(&ds, tmpdir, "train", &o), DJ_EINVAL, "offset 100 is past the end of split train");
    CHECK(ds.n == 0 && ds.pixels == NULL);
    o = (dj_cifar10_opts){-1, 0, RPF};
    CHECK_FAILS(dj_cifar10_load(&ds, tmpdir, "train", &o), DJ_EINVAL, "negative offset");
    CHECK_FAILS(dj_cifar10_load(&ds, tmpdir, "valid", &small), DJ_EINVAL, "unknown split \"valid\"");

    /* Only the files holding the requested records are opened. */
    remove_file("data_batch_5.bin");
    o = (dj_cifar10_opts){0, 2 * RPF, RPF};
    CHECK_OK(dj_cifar10_load(&ds, tmpdir, "train", &o));
    CHECK(ds.n == 2 * RPF && matches_generator(&ds));
    dj_cifar10_free(&ds);
    CHECK_FAILS(dj_cifar10_load(&ds, tmpdir, "train", &small), DJ_EIO, "data_batch_5.bin: cannot open");
    CHECK(ds.n == 0 && ds.pixels == NULL && ds.labels == NULL);
}

static void test_bad_files(void) {
    dj_cifar10 ds;
    char expect[4400];

    /* Missing file: DJ_EIO, the path and the system's reason. */
    write_good_folder();
    remove_file("data_batch_3.bin");
    snprintf(expect, sizeof expect, "%s/data_batch_3.bin: cannot open: No such file or directory", tmpdir);
    CHECK_FAILS(dj_cifar10_load(&ds, tmpdir, "train", &small), DJ_EIO, expect);

    /* Truncated by one byte. */
    write_good_folder();
    char path[4200];
    path_in(path, sizeof path, "data_batch_2.bin");
    CHECK(truncate(path, (off_t)RPF * 3073 - 1) == 0);
    snprintf(expect, sizeof expect, "%s: 61459 bytes, expected 61460 (20 records of 3073 bytes)", path);
    CHECK_FAILS(dj_cifar10_load(&ds, tmpdir, "train", &small), DJ_EFORMAT, expect);

    /* One byte too many is wrong too. */
    write_good_folder();
    path_in(path, sizeof path, "test_batch.bin");
    CHECK(truncate(path, (off_t)RPF * 3073 + 1) == 0);
    CHECK_FAILS(dj_cifar10_load(&ds, tmpdir, "test", &small), DJ_EFORMAT,
                "test_batch.bin: 61461 bytes, expected 61460");

    /* Default options insist on the official 10000 records: a small file is
     * refused, and so is a full-size file one byte short (sparse: no disk). */
    write_good_folder();
    CHECK_FAILS(dj_cifar10_load(&ds, tmpdir, "test", NULL), DJ_EFORMAT,
                "test_batch.bin: 61460 bytes, expected 30730000 (10000 records of 3073 bytes)");
    CHECK(truncate(path, 30729999) == 0);
    snprintf(expect, sizeof expect, "%s: 30729999 bytes, expected 30730000 (10000 records of 3073 bytes)", path);
    CHECK_FAILS(dj_cifar10_load(&ds, tmpdir, "test", NULL), DJ_EFORMAT, expect);
    /* ... and a full-size sparse file (all labels 0, all pixels 0) loads. */
    CHECK(truncate(path, 30730000) == 0);
    dj_cifar10_opts tail = {9990, 0, 0};
    CHECK_OK(dj_cifar10_load(&ds, tmpdir, "test", &tail));
    CHECK(ds.n == 10 && ds.offset == 9990 && ds.labels[9] == 0 && ds.pixels[10 * 3072 - 1] == 0);
    dj_cifar10_free(&ds);

    /* Label byte out of range: the record (index within the file) and value. */
    write_good_folder();
    path_in(path, sizeof path, "data_batch_4.bin");
    FILE *f = fopen(path, "r+b");
    CHECK(f != NULL);
    if (f) {
        fseek(f, 7L * 3073, SEEK_SET);
        fputc(10, f);
        fseek(f, 12L * 3073, SEEK_SET);
        fputc(255, f);
        fclose(f);
    }
    snprintf(expect, sizeof expect, "%s: record 7 has label byte 10, expected 0..9", path);
    CHECK_FAILS(dj_cifar10_load(&ds, tmpdir, "train", &small), DJ_EFORMAT, expect);
    dj_cifar10_opts after = {3 * RPF + 8, 0, RPF};
    CHECK_FAILS(dj_cifar10_load(&ds, tmpdir, "train", &after), DJ_EFORMAT, "record 12 has label byte 255");
    /* Records before the bad ones still load. */
    dj_cifar10_opts before = {3 * RPF, 7, RPF};
    CHECK_OK(dj_cifar10_load(&ds, tmpdir, "train", &before));
    CHECK(ds.n == 7 && matches_generator(&ds));
    dj_cifar10_free(&ds);

    /* A folder where a file should be. */
    write_good_folder();
    remove_file("test_batch.bin");
    path_in(path, sizeof path, "test_batch.bin");
    CHECK(mkdir(path, 0700) == 0);
    CHECK_FAILS(dj_cifar10_load(&ds, tmpdir, "test", &small), DJ_EIO, "test_batch.bin: not a regular file");
    rmdir(path);

    /* A missing folder. */
    CHECK_FAILS(dj_cifar10_load(&ds, "/nonexistent-dmvjnd-folder", "test", &small), DJ_EIO,
                "/nonexistent-dmvjnd-folder/test_batch.bin: cannot open: No such file or directory");
    CHECK(ds.n == 0 && ds.pixels == NULL);
}

static void test_meta(void) {
    write_good_folder();
    char names[10][DJ_CIFAR10_NAME_MAX];
    CHECK_OK(dj_cifar10_class_names(tmpdir, names));
    CHECK(strcmp(names[0], "airplane") == 0 && strcmp(names[6], "frog") == 0 && strcmp(names[9], "truck") == 0);

    /* CRLF, blank lines and trailing blanks are tolerated; extra lines ignored. */
    write_text("batches.meta.txt", "\r\na\r\nb \n\nc\td\nd\ne\nf\ng\nh\ni\nj\nextra\n");
    CHECK_OK(dj_cifar10_class_names(tmpdir, names));
    CHECK(strcmp(names[0], "a") == 0 && strcmp(names[1], "b") == 0 && strcmp(names[2], "c\td") == 0 &&
          strcmp(names[9], "j") == 0);
    /* No final newline. */
    write_text("batches.meta.txt", "a\nb\nc\nd\ne\nf\ng\nh\ni\nlast");
    CHECK_OK(dj_cifar10_class_names(tmpdir, names));
    CHECK(strcmp(names[9], "last") == 0);

    write_text("batches.meta.txt", "airplane\nautomobile\nbird\ncat\ndeer\ndog\nfrog\n\n");
    CHECK_FAILS(dj_cifar10_class_names(tmpdir, names), DJ_EFORMAT, "batches.meta.txt: 7 class names, expected 10");
    write_text("batches.meta.txt", "");
    CHECK_FAILS(dj_cifar10_class_names(tmpdir, names), DJ_EFORMAT, "0 class names, expected 10");
    write_text("batches.meta.txt", "a\nb\nthis-name-is-much-longer-than-thirty-one-bytes\n");
    CHECK_FAILS(dj_cifar10_class_names(tmpdir, names), DJ_EFORMAT, "line 3: class name of 46 bytes");
    remove_file("batches.meta.txt");
    char expect[4400];
    snprintf(expect, sizeof expect, "%s/batches.meta.txt: cannot open: No such file or directory", tmpdir);
    CHECK_FAILS(dj_cifar10_class_names(tmpdir, names), DJ_EIO, expect);
}

static const float HALF[3] = {0.5f, 0.5f, 0.5f};
static const float MEAN[3] = {0.4914f, 0.4822f, 0.4465f}, STD[3] = {0.2470f, 0.2435f, 0.2616f};

static void test_normalize(void) {
    uint8_t px[256 * 3], back[256 * 3];
    float y[256 * 3];
    for (int v = 0; v < 256; v++)
        for (int c = 0; c < 3; c++) px[v * 3 + c] = (uint8_t)((v + 85 * c) & 255);
    const float *means[2] = {HALF, MEAN}, *stds[2] = {HALF, STD};
    for (int k = 0; k < 2; k++) {
        CHECK_OK(dj_normalize_u8(px, 256, means[k], stds[k], y));
        int exact = 1;
        for (int i = 0; i < 256 * 3; i++) {
            /* torchvision: x.float().div(255), then sub_(mean).div_(std) */
            float want = ((float)px[i] / 255.0f - means[k][i % 3]) / stds[k][i % 3];
            exact &= y[i] == want;
        }
        CHECK(exact);
        CHECK_OK(dj_denormalize_u8(y, 256, means[k], stds[k], back));
        CHECK(memcmp(px, back, sizeof px) == 0);
    }
    CHECK(y[0] == (0.0f / 255.0f - MEAN[0]) / STD[0]);
    CHECK_OK(dj_normalize_u8(px, 1, HALF, HALF, y));
    CHECK(y[0] == -1.0f); /* black is -1 under mean = std = 0.5 */

    /* Large input takes the parallel path; same values. */
    enum { NP = 100000 };
    uint8_t *big = malloc(NP * 3);
    float *fy = malloc(NP * 3 * sizeof(float));
    for (int i = 0; i < NP * 3; i++) big[i] = (uint8_t)(i * 7 + i / 3);
    CHECK_OK(dj_normalize_u8(big, NP, MEAN, STD, fy));
    int ok = 1;
    for (int i = 0; i < NP * 3; i++) ok &= fy[i] == ((float)big[i] / 255.0f - MEAN[i % 3]) / STD[i % 3];
    CHECK(ok);
    free(big);
    free(fy);

    /* Clamping, rounding and NaN in the inverse. */
    float out[6] = {-5.0f, 5.0f, 0.0f, NAN, -1.0f + 1.2f / 255.0f, 1.0f};
    uint8_t o[6];
    CHECK_FAILS(dj_denormalize_u8(out, 2, HALF, HALF, o), DJ_ENUMERIC, "NaN");
    CHECK(o[0] == 0 && o[1] == 255 && o[2] == 128 && o[3] == 0 && o[4] == 1 && o[5] == 255);

    const float bad_std[3] = {0.5f, 0.0f, 0.5f}, nan_mean[3] = {0.5f, NAN, 0.5f};
    CHECK_FAILS(dj_normalize_u8(px, 1, HALF, bad_std, y), DJ_EINVAL, "std[1]");
    CHECK_FAILS(dj_normalize_u8(px, 1, nan_mean, HALF, y), DJ_EINVAL, "mean[1]");
    CHECK_FAILS(dj_denormalize_u8(y, 1, HALF, bad_std, o), DJ_EINVAL, "std[1]");
}

/* Naive reference: build the zero-padded image, cut the window, then mirror. */
static void ref_augment(const uint8_t *src, int h, int w, int c, int pad, dj_augment_op op, uint8_t *dst) {
    int ph = h + 2 * pad, pw = w + 2 * pad;
    uint8_t *padded = calloc((size_t)ph * pw * c, 1);
    uint8_t *crop = malloc((size_t)h * w * c);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int k = 0; k < c; k++) padded[((y + pad) * pw + x + pad) * c + k] = src[(y * w + x) * c + k];
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int k = 0; k < c; k++) crop[(y * w + x) * c + k] = padded[((y + op.dy) * pw + x + op.dx) * c + k];
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int k = 0; k < c; k++)
                dst[(y * w + x) * c + k] = crop[(y * w + (op.flip ? w - 1 - x : x)) * c + k];
    free(padded);
    free(crop);
}

static void test_augment_apply(void) {
    static const int shapes[][4] = {{32, 32, 3, 4}, {5, 7, 1, 2}, {6, 4, 2, 0}, {3, 3, 3, 5}};
    dj_rng r;
    dj_rng_seed(&r, 1);
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int h = shapes[s][0], w = shapes[s][1], c = shapes[s][2], pad = shapes[s][3];
        size_t nb = (size_t)h * w * c;
        uint8_t *src = malloc(nb), *got = malloc(nb), *want = malloc(nb);
        for (size_t i = 0; i < nb; i++) src[i] = (uint8_t)(1 + dj_rng_below(&r, 255)); /* never 0 */
        int bad = 0;
        for (int dy = 0; dy <= 2 * pad; dy++)
            for (int dx = 0; dx <= 2 * pad; dx++)
                for (int flip = 0; flip < 2; flip++) {
                    dj_augment_op op = {dy, dx, flip};
                    memset(got, 0xAB, nb);
                    CHECK_OK(dj_augment_apply(src, h, w, c, pad, op, got));
                    ref_augment(src, h, w, c, pad, op, want);
                    bad += memcmp(got, want, nb) != 0;
                }
        CHECK(bad == 0);
        free(src);
        free(got);
        free(want);
    }
    /* Spot checks on a 32x32 image with the documented semantics. */
    uint8_t img[3072], out[3072];
    for (int i = 0; i < 3072; i++) img[i] = (uint8_t)(i % 251 + 1);
    dj_augment_op centre = {4, 4, 0}, flip = {4, 4, 1}, corner = {0, 0, 0};
    CHECK_OK(dj_augment_apply(img, 32, 32, 3, 4, centre, out));
    CHECK(memcmp(img, out, sizeof img) == 0); /* centred window = identity */
    CHECK_OK(dj_augment_apply(img, 32, 32, 3, 4, flip, out));
    CHECK(memcmp(out, img + 31 * 3, 3) == 0 && memcmp(out + 31 * 3, img, 3) == 0);
    CHECK_OK(dj_augment_apply(img, 32, 32, 3, 4, corner, out));
    CHECK(out[0] == 0 && out[(3 * 32 + 3) * 3] == 0);   /* inside the 4-pixel border */
    CHECK(out[(4 * 32 + 4) * 3 + 1] == img[1]);          /* first source pixel at (4, 4) */

    dj_augment_op bad = {9, 0, 0};
    CHECK_FAILS(dj_augment_apply(img, 32, 32, 3, 4, bad, out), DJ_EINVAL, "dy 9");
    bad = (dj_augment_op){0, -1, 0};
    CHECK_FAILS(dj_augment_apply(img, 32, 32, 3, 4, bad, out), DJ_EINVAL, "dx -1");
}

static void test_augment_draw(void) {
    dj_augment aug = DJ_AUGMENT_CIFAR10;
    dj_rng r, m;
    dj_rng_seed(&r, 5);
    m = r;
    long cnt_dy[9] = {0}, cnt_dx[9] = {0}, flips = 0;
    const int N = 90000;
    int order_ok = 1;
    for (int i = 0; i < N; i++) {
        dj_augment_op op = dj_augment_draw(&aug, &r);
        /* Documented draw order: dy, dx, then the flip. */
        int dy = (int)dj_rng_below(&m, 9), dx = (int)dj_rng_below(&m, 9), fl = dj_rng_uniform(&m) < 0.5f;
        order_ok &= op.dy == dy && op.dx == dx && op.flip == fl;
        if (op.dy < 0 || op.dy > 8 || op.dx < 0 || op.dx > 8) {
            CHECK(0);
            break;
        }
        cnt_dy[op.dy]++;
        cnt_dx[op.dx]++;
        flips += op.flip;
    }
    CHECK(order_ok);
    double e = N / 9.0, c1 = 0, c2 = 0;
    for (int k = 0; k < 9; k++) {
        c1 += (cnt_dy[k] - e) * (cnt_dy[k] - e) / e;
        c2 += (cnt_dx[k] - e) * (cnt_dx[k] - e) / e;
    }
    CHECK(c1 < 26.1 && c2 < 26.1); /* 8 dof, p = 0.001 */
    CHECK_CLOSE((double)flips / N, 0.5, 0.01, 0);

    /* No augmentation draws nothing and is the identity op. */
    dj_augment none = {0, 0.0f};
    dj_rng before = r;
    dj_augment_op op = dj_augment_draw(&none, &r);
    CHECK(op.dy == 0 && op.dx == 0 && op.flip == 0);
    CHECK(memcmp(&before, &r, sizeof r) == 0);
    dj_augment always = {0, 1.0f};
    op = dj_augment_draw(&always, &r);
    CHECK(op.flip == 1);
}

static void make_fake_dataset(dj_cifar10 *ds, int n) {
    ds->n = n;
    ds->offset = 0;
    ds->pixels = malloc((size_t)n * 3072);
    ds->labels = malloc((size_t)n * sizeof(int32_t));
    for (int i = 0; i < n; i++) {
        ds->labels[i] = lab(i);
        for (int p = 0; p < 3072; p++) ds->pixels[(size_t)i * 3072 + p] = pix(i, p % 3, p / 96, (p / 3) % 32);
    }
}

static void test_batch(void) {
    dj_cifar10 ds;
    make_fake_dataset(&ds, 300);
    enum { B = 64 };
    int32_t order[300], labels[B];
    dj_rng r;
    dj_rng_seed(&r, 42);
    dj_cifar10_epoch_order(&r, order, 300);
    char seen[300] = {0};
    int perm = 1;
    for (int i = 0; i < 300; i++) {
        perm &= order[i] >= 0 && order[i] < 300 && !seen[order[i]];
        if (order[i] >= 0 && order[i] < 300) seen[order[i]] = 1;
    }
    CHECK(perm);

    float *a = malloc(B * 3072 * sizeof(float)), *b = malloc(B * 3072 * sizeof(float));
    dj_tensor xa = dj_tensor_view(a, B, 32, 32, 3), xb = dj_tensor_view(b, B, 32, 32, 3);
    dj_augment aug = DJ_AUGMENT_CIFAR10;

    /* Against the documented recipe done by hand: draws in batch order,
     * augment in pixel space, then normalise. */
    dj_rng r1, r2;
    dj_rng_seed(&r1, 9);
    r2 = r1;
    CHECK_OK(dj_cifar10_batch(&ds, order, B, &aug, &r1, HALF, HALF, &xa, labels));
    int ok = 1, lab_ok = 1;
    uint8_t tmp[3072];
    for (int k = 0; k < B; k++) {
        dj_augment_op op = dj_augment_draw(&aug, &r2);
        dj_augment_apply(ds.pixels + (size_t)order[k] * 3072, 32, 32, 3, 4, op, tmp);
        dj_normalize_u8(tmp, 1024, HALF, HALF, b + (size_t)k * 3072);
        lab_ok &= labels[k] == ds.labels[order[k]];
    }
    ok = memcmp(a, b, B * 3072 * sizeof(float)) == 0;
    CHECK(ok && lab_ok);
    CHECK(memcmp(&r1, &r2, sizeof r1) == 0); /* the batch consumed exactly its draws */

    /* Padding is black in pixel space: -1 after mean = std = 0.5. */
    int found = 0;
    dj_rng_seed(&r2, 9);
    for (int k = 0; k < B && !found; k++) {
        dj_augment_op op = dj_augment_draw(&aug, &r2);
        if (op.dy == 0) { /* top 4 rows come from the padding */
            found = 1;
            for (int i = 0; i < 4 * 32 * 3; i++) CHECK(a[(size_t)k * 3072 + i] == -1.0f);
        }
    }
    CHECK(found);

    /* Same seed -> same batch, whatever the thread count; other seed differs. */
    int threads = omp_get_max_threads();
    omp_set_num_threads(1);
    dj_rng_seed(&r1, 9);
    CHECK_OK(dj_cifar10_batch(&ds, order, B, &aug, &r1, HALF, HALF, &xb, NULL));
    CHECK(memcmp(a, b, B * 3072 * sizeof(float)) == 0);
    omp_set_num_threads(4);
    dj_rng_seed(&r1, 9);
    CHECK_OK(dj_cifar10_batch(&ds, order, B, &aug, &r1, HALF, HALF, &xb, NULL));
    CHECK(memcmp(a, b, B * 3072 * sizeof(float)) == 0);
    omp_set_num_threads(threads);
    dj_rng_seed(&r1, 10);
    CHECK_OK(dj_cifar10_batch(&ds, order, B, &aug, &r1, HALF, HALF, &xb, NULL));
    CHECK(memcmp(a, b, B * 3072 * sizeof(float)) != 0);

    /* Without augmentation: plain normalised images, no rng needed. */
    CHECK_OK(dj_cifar10_batch(&ds, order + 3, 2, NULL, NULL, MEAN, STD, &(dj_tensor){b, 2, 32, 32, 3}, labels));
    float want[3072];
    dj_normalize_u8(ds.pixels + (size_t)order[4] * 3072, 1024, MEAN, STD, want);
    CHECK(memcmp(b + 3072, want, sizeof want) == 0);
    CHECK(labels[0] == ds.labels[order[3]] && labels[1] == ds.labels[order[4]]);

    /* Errors. */
    int32_t badidx[2] = {0, 300};
    dj_tensor x2 = dj_tensor_view(b, 2, 32, 32, 3);
    CHECK_FAILS(dj_cifar10_batch(&ds, badidx, 2, NULL, NULL, HALF, HALF, &x2, NULL), DJ_EINVAL,
                "index 300 at position 1 outside 0..299");
    CHECK_FAILS(dj_cifar10_batch(&ds, order, 3, NULL, NULL, HALF, HALF, &x2, NULL), DJ_EINVAL,
                "tensor is 2x32x32x3, expected 3x32x32x3");
    CHECK_FAILS(dj_cifar10_batch(&ds, order, 2, &aug, NULL, HALF, HALF, &x2, NULL), DJ_EINVAL, "needs a dj_rng");

    free(a);
    free(b);
    dj_cifar10_free(&ds);
}

/* Published facts about the real files (README of the data set). */
static void test_real_data(void) {
    const char *dir = dj_cifar10_default_dir();
    dj_cifar10 probe;
    dj_cifar10_opts one = {0, 1, 0};
    if (dj_cifar10_load(&probe, dir, "test", &one)) {
        fprintf(stderr, "test_cifar10: %s\n", dj_last_error());
        SKIP("no CIFAR-10 (scripts/get-cifar10.sh or DMVJND_DATA)");
    }
    dj_cifar10_free(&probe);
    printf("test_cifar10: real data in %s\n", dir);
    dj_cifar10 train, test;
    CHECK_OK(dj_cifar10_load(&train, dir, "train", NULL));
    CHECK_OK(dj_cifar10_load(&test, dir, "test", NULL));
    if (train.n == 50000 && test.n == 10000) {
        static const int tl[10] = {6, 9, 9, 4, 1, 1, 2, 7, 8, 3}, sl[10] = {3, 8, 8, 0, 6, 6, 1, 6, 3, 1};
        static const uint8_t red0[5] = {59, 43, 50, 68, 98}, tred0[4] = {158, 159, 165, 166};
        for (int i = 0; i < 10; i++) CHECK(train.labels[i] == tl[i] && test.labels[i] == sl[i]);
        for (int x = 0; x < 5; x++) CHECK(train.pixels[x * 3] == red0[x]);  /* red, top row */
        for (int x = 0; x < 4; x++) CHECK(test.pixels[x * 3] == tred0[x]);
        /* Last bytes of the first record: blue of pixels (31, 29..31). */
        CHECK(train.pixels[3072 - 7] == 140 && train.pixels[3072 - 4] == 84 && train.pixels[3072 - 1] == 72);
        int counts[10] = {0}, all[10] = {0};
        static const int b1[10] = {1005, 974, 1032, 1016, 999, 937, 1030, 1001, 1025, 981};
        for (int i = 0; i < 50000; i++) {
            if (i < 10000) counts[train.labels[i]]++;
            all[train.labels[i]]++;
        }
        for (int k = 0; k < 10; k++) CHECK(counts[k] == b1[k] && all[k] == 5000);

        /* A slice across a file boundary equals the full load. */
        dj_cifar10 part;
        dj_cifar10_opts o = {29998, 4, 0};
        CHECK_OK(dj_cifar10_load(&part, dir, "train", &o));
        CHECK(part.n == 4 && memcmp(part.pixels, train.pixels + (size_t)29998 * 3072, 4 * 3072) == 0 &&
              memcmp(part.labels, train.labels + 29998, 4 * sizeof(int32_t)) == 0);
        dj_cifar10_free(&part);
    }
    char names[10][DJ_CIFAR10_NAME_MAX];
    CHECK_OK(dj_cifar10_class_names(dir, names));
    CHECK(strcmp(names[0], "airplane") == 0 && strcmp(names[3], "cat") == 0 && strcmp(names[9], "truck") == 0);
    dj_cifar10_free(&train);
    dj_cifar10_free(&test);
}

int main(void) {
    const char *t = getenv("TMPDIR");
    snprintf(tmpdir, sizeof tmpdir, "%s/dj_cifar10_XXXXXX", t && *t ? t : "/tmp");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 2;
    }
    RUN(test_load_good);
    RUN(test_offset_limit);
    RUN(test_bad_files);
    RUN(test_meta);
    RUN(test_normalize);
    RUN(test_augment_apply);
    RUN(test_augment_draw);
    RUN(test_batch);
    RUN(test_real_data);
    clean_folder();
    rmdir(tmpdir);
    return check_report("test_cifar10");
}
