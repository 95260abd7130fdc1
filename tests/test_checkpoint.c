/* Weights files and training checkpoints: bit-exact round trips, every way a
 * file can fail to fit the graph (each must leave the graph untouched and
 * name the file and tensor), resuming training bit-identically, and the
 * ResNet-20 file layout the PyTorch twin loads.
 *
 * Files live in a mkdtemp directory removed at the end.
 *
 * `test_checkpoint --write-resnet20 FILE` only writes a ResNet-20 weights
 * file (seeded, 10 classes) and exits, for the PyTorch-side check:
 *   build/tests/test_checkpoint --write-resnet20 /tmp/r20.safetensors &&
 *   python3 tools/torch/check_weights.py /tmp/r20.safetensors --arch resnet20 */
#include <ftw.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "dmvjnd/checkpoint.h"
#include "dmvjnd/dmvjnd.h"
#include "dmvjnd/graph.h"
#include "dmvjnd/models.h"

static char tmpdir[] = "/tmp/dj_test_checkpoint.XXXXXX";

/* <tmpdir>/<name>; a few rotating buffers so several paths can be live. */
static const char *tpath(const char *name) {
    static char bufs[8][512];
    static int next;
    char *b = bufs[next++ & 7];
    snprintf(b, 512, "%s/%s", tmpdir, name);
    return b;
}

/* ------------------------------------------------------------ networks */

/* 4x4x3 -> conv 3x3 (no bias) -> BN+ReLU -> conv 1x1 (bias) -> GAP ->
 * dropout -> linear 3. Convs, a BN (buffers, num_batches_tracked), a
 * dropout that draws from the rng (so resuming must restore it). */
static dj_graph *tiny_net(uint64_t seed, int dropout) {
    dj_graph *g;
    dj_rng rng;
    dj_rng_seed(&rng, seed);
    if (dj_graph_create(&g, 4, 4, 3)) return NULL;
    int a = dj_graph_conv(g, 0, "c1", 4, 3, 1, 1, 0);
    a = dj_graph_bn(g, a, "b1", 1);
    a = dj_graph_conv(g, a, "c2", 5, 1, 1, 0, 1);
    a = dj_graph_gap(g, a);
    if (dropout) a = dj_graph_dropout(g, a, 0.25f);
    a = dj_graph_linear(g, a, "fc", 3, 1);
    if (a < 0 || dj_graph_finalize(g, &rng)) {
        fprintf(stderr, "tiny_net: %s\n", dj_last_error());
        dj_graph_destroy(g);
        return NULL;
    }
    return g;
}

/* Linear / BN only (1x1x8 input), optionally one layer deeper: the deeper
 * one's file has every tensor of the shallow one plus more. */
static dj_graph *lin_net(uint64_t seed, int deeper) {
    dj_graph *g;
    dj_rng rng;
    dj_rng_seed(&rng, seed);
    if (dj_graph_create(&g, 1, 1, 8)) return NULL;
    int a = dj_graph_linear(g, 0, "l1", 6, 1);
    a = dj_graph_bn(g, a, "bn", 1);
    if (deeper) a = dj_graph_linear(g, a, "l2", 6, 0);
    a = dj_graph_linear(g, a, "fc", 3, 1);
    if (a < 0 || dj_graph_finalize(g, &rng)) {
        fprintf(stderr, "lin_net: %s\n", dj_last_error());
        dj_graph_destroy(g);
        return NULL;
    }
    return g;
}

/* Give every parameter AND buffer a distinct value, so a round trip that
 * dropped or swapped the running statistics would show. */
static void scramble(dj_graph *g, uint64_t seed) {
    dj_rng rng;
    dj_rng_seed(&rng, seed);
    for (int i = 0; i < dj_graph_num_params(g); i++) {
        const dj_param *p = dj_graph_param(g, i);
        for (size_t j = 0; j < p->count; j++) p->data[j] = dj_rng_normal(&rng) + (strstr(p->name, "var") ? 2.0f : 0);
    }
}

/* All parameters and buffers, concatenated. */
static float *snapshot(const dj_graph *g, size_t *n) {
    size_t total = 0;
    for (int i = 0; i < dj_graph_num_params(g); i++) total += dj_graph_param(g, i)->count;
    float *s = malloc(total * sizeof(float) + 1);
    size_t off = 0;
    for (int i = 0; i < dj_graph_num_params(g); i++) {
        const dj_param *p = dj_graph_param(g, i);
        memcpy(s + off, p->data, p->count * sizeof(float));
        off += p->count;
    }
    *n = total;
    return s;
}

/* 1 if g's parameters equal the snapshot bit for bit. */
static int same_as(const dj_graph *g, const float *snap, size_t n) {
    size_t m;
    float *now = snapshot(g, &m);
    int same = m == n && memcmp(now, snap, n * sizeof(float)) == 0;
    free(now);
    return same;
}

static int same_params(const dj_graph *a, const dj_graph *b) {
    size_t n;
    float *s = snapshot(a, &n);
    int same = same_as(b, s, n);
    free(s);
    return same;
}

/* ----------------------------------------------------- file surgery */

/* Rewrite a valid file with one change, to make each kind of bad file. */
enum edit {
    E_NONE,
    E_DROP,      /* leave tensor `target` out                       */
    E_RESHAPE,   /* write `target` flattened to 1-D                 */
    E_NAN,       /* element 1 of `target` = NaN                     */
    E_INF,       /* element 0 of `target` = -Inf                    */
    E_AS_I64,    /* write `target` as I64 zeros of the same shape   */
    E_EXTRA,     /* add an F32 tensor named `target`               */
    E_SET_META,  /* metadata `target` = `value`                     */
    E_DROP_META, /* leave metadata `target` out                     */
    E_NBT_F32    /* write num_batches_tracked `target` as F32       */
};

static int rewrite(const char *src, const char *dst, int edit, const char *target, const char *value) {
    dj_st_file *f = NULL;
    dj_st_writer *w = NULL;
    int rc = dj_st_open(src, 0, &f);
    if (rc) return rc;
    if ((rc = dj_st_writer_new(&w))) goto out;
    for (size_t i = 0; i < dj_st_metadata_count(f); i++) {
        const char *k, *v;
        dj_st_metadata_at(f, i, &k, &v);
        if ((edit == E_SET_META || edit == E_DROP_META) && !strcmp(k, target)) {
            if (edit == E_DROP_META) continue;
            v = value;
        }
        dj_st_writer_set_metadata(w, k, v);
    }
    if (edit == E_SET_META && !dj_st_metadata(f, target)) dj_st_writer_set_metadata(w, target, value);
    /* Buffers the writer borrows until the write; one big enough pool. */
    void *keep[4096];
    int nkeep = 0;
    for (size_t i = 0; i < dj_st_count(f); i++) {
        const dj_st_tensor *t = dj_st_at(f, i);
        if (nkeep == (int)(sizeof keep / sizeof keep[0])) {
            rc = -100; /* only small test files are rewritten */
            break;
        }
        int hit = !strcmp(t->name, target ? target : "");
        if (hit && edit == E_DROP) continue;
        int64_t flat = (int64_t)t->count;
        if (!strcmp(t->dtype, "I64")) {
            int64_t *d = malloc(t->nbytes + 8);
            memcpy(d, t->raw, t->nbytes);
            keep[nkeep++] = d;
            if (hit && edit == E_NBT_F32) {
                static const float zero = 0;
                rc = dj_st_writer_add_f32(w, t->name, t->ndim, t->shape, &zero);
            } else {
                rc = dj_st_writer_add_i64(w, t->name, t->ndim, t->shape, d);
            }
        } else if (hit && edit == E_AS_I64) {
            int64_t *d = calloc(t->count + 1, sizeof(int64_t));
            keep[nkeep++] = d;
            rc = dj_st_writer_add_i64(w, t->name, t->ndim, t->shape, d);
        } else {
            float *d = malloc(t->count * sizeof(float) + 4);
            memcpy(d, t->f32, t->count * sizeof(float));
            keep[nkeep++] = d;
            if (hit && edit == E_NAN) d[t->count > 1 ? 1 : 0] = NAN;
            if (hit && edit == E_INF) d[0] = -INFINITY;
            rc = dj_st_writer_add_f32(w, t->name, hit && edit == E_RESHAPE ? 1 : t->ndim,
                                      hit && edit == E_RESHAPE ? &flat : t->shape, d);
        }
        if (rc) break;
    }
    if (!rc && edit == E_EXTRA) {
        static const float extra[6] = {1, 2, 3, 4, 5, 6};
        int64_t shape[2] = {2, 3};
        rc = dj_st_writer_add_f32(w, target, 2, shape, extra);
    }
    if (!rc) rc = dj_st_writer_write(w, dst);
    for (int i = 0; i < nkeep; i++) free(keep[i]);
out:
    dj_st_writer_free(w);
    dj_st_close(f);
    return rc;
}

/* Copy the first `keep` bytes of a (small) file to dst. */
static int truncate_copy(const char *src, const char *dst, size_t keep) {
    FILE *in = fopen(src, "rb");
    if (!in) return -1;
    unsigned char buf[1 << 16];
    size_t n = fread(buf, 1, sizeof buf, in);
    fclose(in);
    if (keep > n) return -1;
    FILE *out = fopen(dst, "wb");
    if (!out) return -1;
    size_t w = keep ? fwrite(buf, 1, keep, out) : 0;
    return fclose(out) == 0 && w == keep ? 0 : -1;
}

static long file_size(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fclose(f);
    return n;
}

/* Loading `path` into a fresh scrambled tiny net must fail with `code` and
 * `substr`, name the file, and change nothing. */
static void expect_load_fails(const char *path, const char *arch, int code, const char *substr) {
    dj_graph *g = tiny_net(5, 0);
    if (!g) {
        CHECK(0);
        return;
    }
    scramble(g, 77);
    size_t n;
    float *before = snapshot(g, &n);
    CHECK_FAILS(dj_weights_load(path, g, arch), code, substr);
    const char *base = strrchr(path, '/');
    CHECK(strstr(dj_last_error(), base ? base + 1 : path) != NULL);
    CHECK(same_as(g, before, n));
    free(before);
    dj_graph_destroy(g);
}

/* ---------------------------------------------------------- weights tests */

static void test_weights_roundtrip(void) {
    dj_graph *a = tiny_net(1, 1), *b = tiny_net(2, 1);
    if (!a || !b) goto out;
    scramble(a, 11);
    CHECK(!same_params(a, b));
    dj_kv meta[2] = {{"recipe", "adam lr=1e-3 bs=128"}, {"accuracy", "0.9134"}};
    const char *p = tpath("tiny.safetensors");
    CHECK_OK(dj_weights_save(p, a, "tinynet", meta, 2));
    CHECK_OK(dj_weights_load(p, b, "tinynet"));
    CHECK(same_params(a, b));
    /* No expected arch: judged by the tensors alone. */
    scramble(b, 12);
    CHECK_OK(dj_weights_load(p, b, NULL));
    CHECK(same_params(a, b));

    char buf[64];
    CHECK_OK(dj_weights_read_meta(p, "format", buf, sizeof buf));
    CHECK(!strcmp(buf, "dmvjnd-weights"));
    CHECK_OK(dj_weights_read_meta(p, "format_version", buf, sizeof buf));
    CHECK(!strcmp(buf, "1"));
    CHECK_OK(dj_weights_read_meta(p, "arch", buf, sizeof buf));
    CHECK(!strcmp(buf, "tinynet"));
    CHECK_OK(dj_weights_read_meta(p, "dmvjnd_version", buf, sizeof buf));
    CHECK(!strcmp(buf, DJ_VERSION_STRING));
    CHECK_OK(dj_weights_read_meta(p, "recipe", buf, sizeof buf));
    CHECK(!strcmp(buf, "adam lr=1e-3 bs=128"));
    CHECK_FAILS(dj_weights_read_meta(p, "nope", buf, sizeof buf), DJ_ENOTFOUND, "nope");
    CHECK_FAILS(dj_weights_read_meta(p, "recipe", buf, 5), DJ_EINVAL, "recipe");
    CHECK_FAILS(dj_weights_read_meta(tpath("absent.safetensors"), "arch", buf, sizeof buf), DJ_EIO,
                "absent.safetensors");

    /* Layout: every parameter as F32 under its own name and shape, plus one
     * I64 scalar num_batches_tracked per BN, nothing else. */
    dj_st_file *f = NULL;
    CHECK_OK(dj_st_open(p, 0, &f));
    if (f) {
        CHECK(dj_st_count(f) == (size_t)dj_graph_num_params(a) + 1);
        for (int i = 0; i < dj_graph_num_params(a); i++) {
            const dj_param *q = dj_graph_param(a, i);
            const dj_st_tensor *t = dj_st_find(f, q->name);
            CHECK(t && !strcmp(t->dtype, "F32") && t->ndim == q->ndim);
            for (int d = 0; t && d < q->ndim; d++) CHECK(t->shape[d] == q->shape[d]);
        }
        const dj_st_tensor *t = dj_st_find(f, "b1.num_batches_tracked");
        CHECK(t && !strcmp(t->dtype, "I64") && t->ndim == 0 && t->count == 1);
        int64_t v = -1;
        CHECK_OK(dj_st_read_i64(f, "b1.num_batches_tracked", 0, NULL, &v));
        CHECK(v == 0);
        /* a file already open loads too */
        scramble(b, 13);
        CHECK_OK(dj_weights_load_file(f, b, "tinynet"));
        CHECK(same_params(a, b));
        dj_st_close(f);
    }
out:
    dj_graph_destroy(a);
    dj_graph_destroy(b);
}

/* Linear/BN-only graphs (no oneDNN convolution involved). */
static void test_weights_linear_only(void) {
    dj_graph *a = lin_net(1, 0), *b = lin_net(2, 0);
    if (!a || !b) goto out;
    scramble(a, 3);
    const char *p = tpath("lin.safetensors");
    CHECK_OK(dj_weights_save(p, a, "linnet", NULL, 0));
    CHECK_OK(dj_weights_load(p, b, "linnet"));
    CHECK(same_params(a, b));
out:
    dj_graph_destroy(a);
    dj_graph_destroy(b);
}

static void test_save_arguments(void) {
    dj_graph *g = tiny_net(1, 0);
    if (!g) return;
    const char *p = tpath("args.safetensors");
    CHECK_FAILS(dj_weights_save(p, g, NULL, NULL, 0), DJ_EINVAL, "arch");
    CHECK_FAILS(dj_weights_save(p, g, "", NULL, 0), DJ_EINVAL, "arch");
    dj_kv bad[1] = {{"arch", "resnet56"}};
    CHECK_FAILS(dj_weights_save(p, g, "tinynet", bad, 1), DJ_EINVAL, "reserved");
    dj_kv bad2[1] = {{"rng", "0"}};
    CHECK_FAILS(dj_weights_save(p, g, "tinynet", bad2, 1), DJ_EINVAL, "reserved");
    dj_kv nul[1] = {{"k", NULL}};
    CHECK_FAILS(dj_weights_save(p, g, "tinynet", nul, 1), DJ_EINVAL, "NULL");
    CHECK_FAILS(dj_weights_save(p, g, "tinynet", NULL, 1), DJ_EINVAL, "metadata");
    CHECK(access(p, F_OK) != 0); /* nothing written by a refused save */
    CHECK_FAILS(dj_weights_save(tpath("no/such/dir/w.safetensors"), g, "tinynet", NULL, 0), DJ_EIO, "");
    dj_graph_destroy(g);
}

static void test_missing_tensor(void) {
    dj_graph *g = tiny_net(1, 0);
    if (!g) return;
    const char *ok = tpath("ok.safetensors"), *bad = tpath("missing.safetensors");
    CHECK_OK(dj_weights_save(ok, g, "tinynet", NULL, 0));
    CHECK_OK(rewrite(ok, bad, E_DROP, "b1.running_var", NULL));
    expect_load_fails(bad, "tinynet", DJ_ENOTFOUND, "tensor 'b1.running_var' is missing");
    CHECK_OK(rewrite(ok, bad, E_DROP, "fc.bias", NULL));
    expect_load_fails(bad, "tinynet", DJ_ENOTFOUND, "'fc.bias'");
    /* num_batches_tracked is optional (dmvjnd never needs it) */
    CHECK_OK(rewrite(ok, bad, E_DROP, "b1.num_batches_tracked", NULL));
    dj_graph *h = tiny_net(9, 0);
    CHECK_OK(dj_weights_load(bad, h, "tinynet"));
    CHECK(same_params(g, h));
    dj_graph_destroy(h);
    dj_graph_destroy(g);
}

static void test_misshaped_tensor(void) {
    dj_graph *g = tiny_net(1, 0);
    if (!g) return;
    const char *ok = tpath("ok.safetensors"), *bad = tpath("shape.safetensors");
    CHECK_OK(dj_weights_save(ok, g, "tinynet", NULL, 0));
    CHECK_OK(rewrite(ok, bad, E_RESHAPE, "c1.weight", NULL));
    expect_load_fails(bad, "tinynet", DJ_EINVAL, "tensor 'c1.weight' has shape [108], expected [4,3,3,3]");
    dj_graph_destroy(g);
}

static void test_wrong_dtype(void) {
    dj_graph *g = tiny_net(1, 0);
    if (!g) return;
    const char *ok = tpath("ok.safetensors"), *bad = tpath("dtype.safetensors");
    CHECK_OK(dj_weights_save(ok, g, "tinynet", NULL, 0));
    CHECK_OK(rewrite(ok, bad, E_AS_I64, "fc.weight", NULL));
    expect_load_fails(bad, "tinynet", DJ_EFORMAT, "tensor 'fc.weight' has dtype I64, expected F32");
    CHECK_OK(rewrite(ok, bad, E_NBT_F32, "b1.num_batches_tracked", NULL));
    expect_load_fails(bad, "tinynet", DJ_EFORMAT, "'b1.num_batches_tracked' is F32");
    dj_graph_destroy(g);
}

static void test_extra_tensor(void) {
    dj_graph *g = tiny_net(1, 0);
    if (!g) return;
    const char *ok = tpath("ok.safetensors"), *bad = tpath("extra.safetensors");
    CHECK_OK(dj_weights_save(ok, g, "tinynet", NULL, 0));
    CHECK_OK(rewrite(ok, bad, E_EXTRA, "foo.weight", NULL));
    expect_load_fails(bad, "tinynet", DJ_EFORMAT, "tensor 'foo.weight' is not a parameter of tinynet");
    expect_load_fails(bad, NULL, DJ_EFORMAT, "tensor 'foo.weight' is not a parameter");
    /* a counter of a BN layer the graph does not have is extra too */
    CHECK_OK(rewrite(ok, bad, E_EXTRA, "b9.num_batches_tracked", NULL));
    expect_load_fails(bad, "tinynet", DJ_EFORMAT, "'b9.num_batches_tracked' is not a parameter");
    dj_graph_destroy(g);

    /* A deeper model has every tensor of the shallow one, plus some. */
    dj_graph *deep = lin_net(1, 1), *shallow = lin_net(2, 0);
    if (deep && shallow) {
        const char *p = tpath("deep.safetensors");
        CHECK_OK(dj_weights_save(p, deep, "linnet", NULL, 0)); /* same arch name on purpose */
        size_t n;
        float *before = snapshot(shallow, &n);
        CHECK_FAILS(dj_weights_load(p, shallow, "linnet"), DJ_EFORMAT,
                    "tensor 'l2.weight' is not a parameter of linnet");
        CHECK(same_as(shallow, before, n));
        free(before);
    }
    dj_graph_destroy(deep);
    dj_graph_destroy(shallow);
}

/* resnet32 weights offered to a resnet20: refused by name, or (no
 * expected arch) by the extra blocks; either way nothing changes. */
static void test_resnet_depth_mismatch(void) {
    dj_rng rng;
    dj_rng_seed(&rng, 3);
    dj_graph *r20 = NULL, *r32 = NULL;
    CHECK_OK(dj_model_build(&r20, "resnet20", 10, &rng));
    CHECK_OK(dj_model_build(&r32, "resnet32", 10, &rng));
    if (r20 && r32) {
        const char *p = tpath("r32.safetensors");
        CHECK_OK(dj_weights_save(p, r32, "resnet32", NULL, 0));
        size_t n;
        float *before = snapshot(r20, &n);
        CHECK_FAILS(dj_weights_load(p, r20, "resnet20"), DJ_EFORMAT, "'resnet32' model, expected 'resnet20'");
        CHECK_FAILS(dj_weights_load(p, r20, NULL), DJ_EFORMAT, "tensor 'layer1.3.conv1.weight' is not a parameter");
        CHECK(same_as(r20, before, n));
        free(before);
    }
    dj_graph_destroy(r20);
    dj_graph_destroy(r32);
}

static void test_non_finite(void) {
    dj_graph *g = tiny_net(1, 0);
    if (!g) return;
    const char *ok = tpath("ok.safetensors"), *bad = tpath("nan.safetensors");
    CHECK_OK(dj_weights_save(ok, g, "tinynet", NULL, 0));
    CHECK_OK(rewrite(ok, bad, E_NAN, "c2.weight", NULL));
    expect_load_fails(bad, "tinynet", DJ_ENUMERIC, "tensor 'c2.weight' has a non-finite value");
    CHECK_OK(rewrite(ok, bad, E_INF, "b1.running_var", NULL));
    expect_load_fails(bad, "tinynet", DJ_ENUMERIC, "'b1.running_var'");
    /* also through a file opened without the finiteness check */
    dj_st_file *f = NULL;
    CHECK_OK(dj_st_open(bad, 0, &f));
    if (f) {
        dj_graph *h = tiny_net(2, 0);
        size_t n;
        float *before = snapshot(h, &n);
        CHECK_FAILS(dj_weights_load_file(f, h, "tinynet"), DJ_ENUMERIC, "'b1.running_var'");
        CHECK(same_as(h, before, n));
        free(before);
        dj_graph_destroy(h);
        dj_st_close(f);
    }
    dj_graph_destroy(g);
}

static void test_arch_and_format_metadata(void) {
    dj_graph *g = tiny_net(1, 0);
    if (!g) return;
    const char *ok = tpath("ok.safetensors"), *bad = tpath("meta.safetensors");
    CHECK_OK(dj_weights_save(ok, g, "tinynet", NULL, 0));
    expect_load_fails(ok, "resnet20", DJ_EFORMAT, "holds a 'tinynet' model, expected 'resnet20'");
    /* Newer format version: refuse rather than misread. */
    CHECK_OK(rewrite(ok, bad, E_SET_META, "format_version", "2"));
    expect_load_fails(bad, "tinynet", DJ_EFORMAT, "format_version 2 is newer");
    CHECK_OK(rewrite(ok, bad, E_SET_META, "format_version", "1x"));
    expect_load_fails(bad, "tinynet", DJ_EFORMAT, "format_version '1x'");
    CHECK_OK(rewrite(ok, bad, E_DROP_META, "format_version", NULL));
    expect_load_fails(bad, "tinynet", DJ_EFORMAT, "format_version");
    /* A foreign file (no arch, another format) is judged by its tensors. */
    CHECK_OK(rewrite(ok, bad, E_DROP_META, "arch", NULL));
    dj_graph *h = tiny_net(2, 0);
    CHECK_OK(dj_weights_load(bad, h, "tinynet"));
    CHECK(same_params(g, h));
    CHECK_OK(rewrite(ok, bad, E_SET_META, "format", "pt"));
    scramble(h, 5);
    CHECK_OK(dj_weights_load(bad, h, "tinynet"));
    CHECK(same_params(g, h));
    dj_graph_destroy(h);
    dj_graph_destroy(g);
}

static void test_truncated_file(void) {
    dj_graph *g = tiny_net(1, 0);
    if (!g) return;
    const char *ok = tpath("ok.safetensors"), *bad = tpath("trunc.safetensors");
    CHECK_OK(dj_weights_save(ok, g, "tinynet", NULL, 0));
    long size = file_size(ok);
    CHECK(size > 64);
    size_t cuts[] = {0, 5, 8, 40, (size_t)size / 2, (size_t)size - 4, (size_t)size - 1};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        CHECK(truncate_copy(ok, bad, cuts[i]) == 0);
        expect_load_fails(bad, "tinynet", DJ_EFORMAT, "trunc.safetensors");
    }
    expect_load_fails(tpath("absent.safetensors"), "tinynet", DJ_EIO, "absent.safetensors");
    dj_graph_destroy(g);
}

static void test_frozen_graph(void) {
    dj_graph *g = tiny_net(1, 0), *h = tiny_net(2, 0);
    if (!g || !h) goto out;
    const char *p = tpath("frozen.safetensors");
    CHECK_OK(dj_graph_freeze(g));
    CHECK_OK(dj_weights_save(p, g, "tinynet", NULL, 0)); /* originals, unfolded */
    CHECK_OK(dj_graph_freeze(h));
    size_t n;
    float *before = snapshot(h, &n);
    CHECK_FAILS(dj_weights_load(p, h, "tinynet"), DJ_EINVAL, "frozen");
    CHECK(same_as(h, before, n));
    free(before);
    dj_graph *u = tiny_net(3, 0);
    CHECK_OK(dj_weights_load(p, u, "tinynet"));
    CHECK(same_params(g, u));
    dj_graph_destroy(u);
out:
    dj_graph_destroy(g);
    dj_graph_destroy(h);
}

/* ------------------------------------------------------- checkpoint tests */

typedef struct trainer {
    dj_graph *g;
    dj_optim *o;
    dj_rng rng;
    dj_tensor x, r;
} trainer;

static int trainer_init(trainer *t, uint64_t net_seed, uint64_t rng_seed, const dj_optim_config *cfg) {
    memset(t, 0, sizeof *t);
    t->g = tiny_net(net_seed, 1);
    if (!t->g) return -1;
    if (dj_graph_make_optim(t->g, cfg, &t->o)) return -1;
    dj_rng_seed(&t->rng, rng_seed);
    /* Fixed data: the same batch and loss weights in every trainer. */
    if (dj_tensor_alloc(&t->x, 6, 4, 4, 3) || dj_tensor_alloc(&t->r, 6, 1, 1, 3)) return -1;
    dj_rng d;
    dj_rng_seed(&d, 1234);
    for (size_t i = 0; i < dj_tensor_numel(&t->x); i++) t->x.data[i] = dj_rng_normal(&d);
    for (size_t i = 0; i < dj_tensor_numel(&t->r); i++) t->r.data[i] = dj_rng_normal(&d);
    return 0;
}

static void trainer_free(trainer *t) {
    dj_optim_destroy(t->o);
    dj_graph_destroy(t->g);
    dj_tensor_free(&t->x);
    dj_tensor_free(&t->r);
}

/* One step of loss = sum(out * r): dL/dout = r. Dropout draws from the
 * trainer's rng, BN updates its running statistics. */
static int train_step(trainer *t, int k) {
    const dj_tensor *y;
    dj_graph_zero_grad(t->g);
    int rc = dj_graph_forward(t->g, &t->x, 1, &t->rng, &y);
    if (!rc) rc = dj_graph_backward(t->g, &t->r, NULL);
    if (!rc) rc = dj_optim_step(t->o, 0.01f / (float)k);
    if (rc) fprintf(stderr, "train_step: %s\n", dj_last_error());
    return rc;
}

static void resume_case(const dj_optim_config *cfg, const char *file) {
    trainer a, b;
    int ia = trainer_init(&a, 1, 42, cfg), ib = trainer_init(&b, 99, 7, cfg);
    CHECK(ia == 0 && ib == 0);
    if (ia || ib) goto out;
    const char *p = tpath(file);
    dj_kv meta[1] = {{"recipe", "tiny lr=0.01/k"}};
    for (int k = 1; k <= 3; k++) CHECK_OK(train_step(&a, k));
    CHECK_OK(dj_checkpoint_save(p, a.g, "tinynet", a.o, &a.rng, 1, 3, meta, 1));
    size_t nsaved;
    float *saved = snapshot(a.g, &nsaved);
    dj_rng rng_saved = a.rng;
    for (int k = 4; k <= 5; k++) CHECK_OK(train_step(&a, k));

    int64_t epoch = -1, step = -1;
    CHECK_OK(dj_checkpoint_load(p, b.g, "tinynet", b.o, &b.rng, &epoch, &step));
    CHECK(epoch == 1 && step == 3);
    CHECK(dj_optim_step_count(b.o) == 3);
    CHECK(memcmp(&b.rng, &rng_saved, sizeof rng_saved) == 0);
    CHECK(same_as(b.g, saved, nsaved));
    for (int k = 4; k <= 5; k++) CHECK_OK(train_step(&b, k));
    /* The resumed run is the uninterrupted one, bit for bit. */
    CHECK(same_params(a.g, b.g));
    CHECK(memcmp(&a.rng, &b.rng, sizeof a.rng) == 0);
    float *sa, *sb;
    size_t na, nb;
    dj_optim_state(a.o, &sa, &na);
    dj_optim_state(b.o, &sb, &nb);
    CHECK(na == nb && (na == 0 || memcmp(sa, sb, na * sizeof(float)) == 0));
    CHECK(dj_optim_step_count(b.o) == 5);

    /* Metadata of the checkpoint. */
    char buf[80], hex[65];
    CHECK_OK(dj_weights_read_meta(p, "format", buf, sizeof buf));
    CHECK(!strcmp(buf, "dmvjnd-checkpoint"));
    CHECK_OK(dj_weights_read_meta(p, "optim", buf, sizeof buf));
    CHECK(!strcmp(buf, dj_optim_kind_name(cfg->kind)));
    CHECK_OK(dj_weights_read_meta(p, "optim_step", buf, sizeof buf));
    CHECK(!strcmp(buf, "3"));
    CHECK_OK(dj_weights_read_meta(p, "rng", buf, sizeof buf));
    dj_rng_to_hex(&rng_saved, hex);
    CHECK(!strcmp(buf, hex));
    CHECK_OK(dj_weights_read_meta(p, "recipe", buf, sizeof buf));
    CHECK(!strcmp(buf, "tiny lr=0.01/k"));

    /* A checkpoint is a weights file too (optimiser tensors ignored). */
    dj_graph *w = tiny_net(5, 1);
    CHECK_OK(dj_weights_load(p, w, "tinynet"));
    CHECK(same_as(w, saved, nsaved));
    dj_graph_destroy(w);
    free(saved);
out:
    trainer_free(&a);
    trainer_free(&b);
}

static void test_resume_adam(void) {
    dj_optim_config c = dj_optim_defaults(DJ_OPTIM_ADAM);
    c.weight_decay = 1e-4;
    resume_case(&c, "adam.ckpt");
}

static void test_resume_sgd_momentum(void) {
    dj_optim_config c = dj_optim_defaults(DJ_OPTIM_SGD);
    c.momentum = 0.9;
    c.nesterov = 1;
    c.weight_decay = 5e-4;
    resume_case(&c, "sgd.ckpt");
}

static void test_resume_plain_sgd(void) {
    dj_optim_config c = dj_optim_defaults(DJ_OPTIM_SGD); /* no state at all */
    resume_case(&c, "plain.ckpt");
}

/* Everything a failed checkpoint load must leave alone. */
typedef struct ckpt_state {
    float *params, *optim;
    size_t np, no;
    int64_t optim_step;
    dj_rng rng;
} ckpt_state;

static void ckpt_capture(trainer *t, ckpt_state *s) {
    s->params = snapshot(t->g, &s->np);
    float *st;
    dj_optim_state(t->o, &st, &s->no);
    s->optim = malloc(s->no * sizeof(float) + 1);
    if (s->no) memcpy(s->optim, st, s->no * sizeof(float));
    s->optim_step = dj_optim_step_count(t->o);
    s->rng = t->rng;
}

static int ckpt_unchanged(trainer *t, const ckpt_state *s) {
    float *st;
    size_t n;
    dj_optim_state(t->o, &st, &n);
    return same_as(t->g, s->params, s->np) && n == s->no && (!n || !memcmp(st, s->optim, n * sizeof(float))) &&
           dj_optim_step_count(t->o) == s->optim_step && !memcmp(&t->rng, &s->rng, sizeof s->rng);
}

/* Loading `path` into a trainer that has taken 2 steps of its own must
 * fail with `code`/`substr` and leave everything (epoch/step too) as it was. */
static void expect_ckpt_fails(const char *path, const dj_optim_config *cfg, const char *arch, int code,
                              const char *substr) {
    trainer t;
    if (trainer_init(&t, 8, 9, cfg)) {
        CHECK(0);
        trainer_free(&t);
        return;
    }
    train_step(&t, 1);
    train_step(&t, 2);
    ckpt_state s;
    ckpt_capture(&t, &s);
    int64_t epoch = -5, step = -6;
    CHECK_FAILS(dj_checkpoint_load(path, t.g, arch, t.o, &t.rng, &epoch, &step), code, substr);
    CHECK(epoch == -5 && step == -6);
    CHECK(ckpt_unchanged(&t, &s));
    free(s.params);
    free(s.optim);
    trainer_free(&t);
}

static void test_checkpoint_errors(void) {
    dj_optim_config adam = dj_optim_defaults(DJ_OPTIM_ADAM), adamw = dj_optim_defaults(DJ_OPTIM_ADAMW);
    dj_optim_config sgd = dj_optim_defaults(DJ_OPTIM_SGD), sgdm = sgd;
    sgdm.momentum = 0.9;
    trainer a;
    if (trainer_init(&a, 1, 42, &adam)) {
        CHECK(0);
        trainer_free(&a);
        return;
    }
    for (int k = 1; k <= 3; k++) train_step(&a, k);
    const char *ok = tpath("ok.ckpt"), *bad = tpath("bad.ckpt");
    CHECK_OK(dj_checkpoint_save(ok, a.g, "tinynet", a.o, &a.rng, 2, 3, NULL, 0));

    expect_ckpt_fails(ok, &adam, "resnet20", DJ_EFORMAT, "holds a 'tinynet' model, expected 'resnet20'");
    expect_ckpt_fails(ok, &adamw, "tinynet", DJ_EFORMAT, "saved with optimiser 'adam', this run uses 'adamw'");
    expect_ckpt_fails(ok, &sgdm, "tinynet", DJ_EFORMAT, "optimiser 'adam'");
    /* a weights file is not a checkpoint */
    CHECK_OK(dj_weights_save(tpath("w.safetensors"), a.g, "tinynet", NULL, 0));
    expect_ckpt_fails(tpath("w.safetensors"), &adam, "tinynet", DJ_EFORMAT, "a weights file, not a checkpoint");
    /* damaged state */
    CHECK_OK(rewrite(ok, bad, E_DROP, "optim.exp_avg_sq.c2.bias", NULL));
    expect_ckpt_fails(bad, &adam, "tinynet", DJ_ENOTFOUND, "tensor 'optim.exp_avg_sq.c2.bias' is missing");
    CHECK_OK(rewrite(ok, bad, E_RESHAPE, "optim.exp_avg.c1.weight", NULL));
    expect_ckpt_fails(bad, &adam, "tinynet", DJ_EINVAL, "'optim.exp_avg.c1.weight' has shape [108]");
    CHECK_OK(rewrite(ok, bad, E_NAN, "optim.exp_avg.fc.weight", NULL));
    expect_ckpt_fails(bad, &adam, "tinynet", DJ_ENUMERIC, "'optim.exp_avg.fc.weight'");
    CHECK_OK(rewrite(ok, bad, E_EXTRA, "optim.exp_avg.b1.running_mean", NULL));
    expect_ckpt_fails(bad, &adam, "tinynet", DJ_EFORMAT, "'optim.exp_avg.b1.running_mean' is not state");
    /* damaged weights: same checks as weights files */
    CHECK_OK(rewrite(ok, bad, E_DROP, "fc.weight", NULL));
    expect_ckpt_fails(bad, &adam, "tinynet", DJ_ENOTFOUND, "'fc.weight' is missing");
    CHECK_OK(rewrite(ok, bad, E_EXTRA, "fc2.weight", NULL));
    expect_ckpt_fails(bad, &adam, "tinynet", DJ_EFORMAT, "'fc2.weight' is not a parameter of tinynet");
    /* damaged metadata */
    CHECK_OK(rewrite(ok, bad, E_DROP_META, "arch", NULL));
    expect_ckpt_fails(bad, &adam, "tinynet", DJ_EFORMAT, "no 'arch'");
    CHECK_OK(rewrite(ok, bad, E_SET_META, "step", "-3"));
    expect_ckpt_fails(bad, &adam, "tinynet", DJ_EFORMAT, "step = '-3'");
    CHECK_OK(rewrite(ok, bad, E_SET_META, "epoch", "99999999999999999999"));
    expect_ckpt_fails(bad, &adam, "tinynet", DJ_EFORMAT, "epoch");
    CHECK_OK(rewrite(ok, bad, E_DROP_META, "optim_step", NULL));
    expect_ckpt_fails(bad, &adam, "tinynet", DJ_EFORMAT, "'optim_step'");
    CHECK_OK(rewrite(ok, bad, E_SET_META, "rng", "xyz"));
    expect_ckpt_fails(bad, &adam, "tinynet", DJ_EFORMAT, "bad.ckpt: rng state");
    CHECK_OK(rewrite(ok, bad, E_DROP_META, "optim", NULL));
    expect_ckpt_fails(bad, &adam, "tinynet", DJ_EFORMAT, "'optim'");
    /* truncated */
    long size = file_size(ok);
    size_t cuts[] = {0, 7, 100, (size_t)size / 2, (size_t)size - 1};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        CHECK(truncate_copy(ok, bad, cuts[i]) == 0);
        expect_ckpt_fails(bad, &adam, "tinynet", DJ_EFORMAT, "bad.ckpt");
    }
    expect_ckpt_fails(tpath("absent.ckpt"), &adam, "tinynet", DJ_EIO, "absent.ckpt");

    /* SGD with and without momentum do not mix, in either direction. */
    trainer s0, s1;
    if (!trainer_init(&s0, 1, 1, &sgd) && !trainer_init(&s1, 1, 1, &sgdm)) {
        train_step(&s0, 1);
        train_step(&s1, 1);
        CHECK_OK(dj_checkpoint_save(tpath("s0.ckpt"), s0.g, "tinynet", s0.o, &s0.rng, 0, 1, NULL, 0));
        CHECK_OK(dj_checkpoint_save(tpath("s1.ckpt"), s1.g, "tinynet", s1.o, &s1.rng, 0, 1, NULL, 0));
        expect_ckpt_fails(tpath("s0.ckpt"), &sgdm, "tinynet", DJ_EFORMAT, "no 'momentum_buffer' state");
        expect_ckpt_fails(tpath("s1.ckpt"), &sgd, "tinynet", DJ_EFORMAT, "is not state of this sgd optimiser");
    } else {
        CHECK(0);
    }
    trainer_free(&s0);
    trainer_free(&s1);
    trainer_free(&a);
}

/* The optimiser must be laid out over the graph's trainable parameters in
 * order: one built from another list is refused by save and load. */
static void test_checkpoint_layout_check(void) {
    dj_graph *g = tiny_net(1, 0), *h = tiny_net(2, 0);
    dj_optim *wrong = NULL, *other = NULL, *right = NULL;
    if (!g || !h) goto out;
    dj_optim_config c = dj_optim_defaults(DJ_OPTIM_ADAM);
    /* Trainable params in reverse order. */
    dj_param_ref refs[16];
    size_t k = 0;
    for (int i = dj_graph_num_params(g) - 1; i >= 0; i--) {
        const dj_param *p = dj_graph_param(g, i);
        if (!p->trainable) continue;
        refs[k].w = p->data;
        refs[k].g = p->grad;
        refs[k].n = p->count;
        refs[k].decay = p->decay;
        k++;
    }
    CHECK_OK(dj_optim_create(&wrong, &c, refs, k));
    CHECK_OK(dj_optim_create(&other, &c, refs, k - 1)); /* a subset */
    CHECK_OK(dj_graph_make_optim(h, &c, &right));        /* another graph's */
    const char *p = tpath("layout.ckpt");
    CHECK_FAILS(dj_checkpoint_save(p, g, "tinynet", wrong, NULL, 0, 0, NULL, 0), DJ_EINVAL, "dj_graph_make_optim");
    CHECK_FAILS(dj_checkpoint_save(p, g, "tinynet", other, NULL, 0, 0, NULL, 0), DJ_EINVAL, "dj_graph_make_optim");
    CHECK_FAILS(dj_checkpoint_save(p, g, "tinynet", right, NULL, 0, 0, NULL, 0), DJ_EINVAL, "dj_graph_make_optim");
    CHECK_FAILS(dj_checkpoint_save(p, g, "tinynet", NULL, NULL, 0, 0, NULL, 0), DJ_EINVAL, "optimiser");
    CHECK(access(p, F_OK) != 0);
    /* rng NULL: no "rng" written; loading without an rng is then fine,
     * loading into one is not. */
    CHECK_OK(dj_checkpoint_save(p, h, "tinynet", right, NULL, 0, 0, NULL, 0));
    CHECK_FAILS(dj_checkpoint_load(p, g, "tinynet", wrong, NULL, NULL, NULL), DJ_EINVAL, "dj_graph_make_optim");
    CHECK_OK(dj_checkpoint_load(p, h, "tinynet", right, NULL, NULL, NULL));
    dj_rng r;
    dj_rng_seed(&r, 1);
    CHECK_FAILS(dj_checkpoint_load(p, h, "tinynet", right, &r, NULL, NULL), DJ_EFORMAT, "'rng'");
    CHECK_FAILS(dj_checkpoint_save(p, h, "tinynet", right, NULL, -1, 0, NULL, 0), DJ_EINVAL, "epoch");
    /* frozen graphs cannot be resumed into */
    CHECK_OK(dj_graph_freeze(h));
    CHECK_FAILS(dj_checkpoint_load(p, h, "tinynet", right, NULL, NULL, NULL), DJ_EINVAL, "frozen");
out:
    dj_optim_destroy(wrong);
    dj_optim_destroy(other);
    dj_optim_destroy(right);
    dj_graph_destroy(g);
    dj_graph_destroy(h);
}

/* dj_graph_make_optim: trainable params only, in order, with decay flags. */
static void test_make_optim(void) {
    dj_graph *g = tiny_net(1, 0);
    if (!g) return;
    dj_optim *o = NULL;
    dj_optim_config c = dj_optim_defaults(DJ_OPTIM_SGD);
    c.momentum = 0.9;
    CHECK_OK(dj_graph_make_optim(g, &c, &o));
    CHECK(o && dj_optim_numel(o) == dj_graph_trainable_count(g));
    dj_optim_destroy(o);
    c.momentum = -1;
    CHECK_FAILS(dj_graph_make_optim(g, &c, &o), DJ_EINVAL, "momentum");
    CHECK(o == NULL);
    dj_graph_destroy(g);
}

/* ResNet-20: names, shapes and the BN counters PyTorch's strict
 * load_state_dict needs (tools/torch/check_weights.py checks the rest). */
static int write_resnet20(const char *path) {
    dj_rng rng;
    dj_rng_seed(&rng, 2024);
    dj_graph *g = NULL;
    int rc = dj_model_build(&g, "resnet20", 10, &rng);
    dj_kv meta[1] = {{"note", "test_checkpoint --write-resnet20"}};
    if (!rc) rc = dj_weights_save(path, g, "resnet20", meta, 1);
    dj_graph_destroy(g);
    return rc;
}

static void test_resnet20_file(void) {
    const char *p = tpath("resnet20.safetensors");
    CHECK_OK(write_resnet20(p));
    dj_st_file *f = NULL;
    CHECK_OK(dj_st_open(p, DJ_ST_CHECK_FINITE, &f));
    if (!f) return;
    /* 21 convs (conv1, 2 x 9 in the blocks, 2 strided shortcuts), each
     * followed by a BN (4 tensors + num_batches_tracked), then fc. */
    int convs = 0, bns = 0, nbt = 0;
    for (size_t i = 0; i < dj_st_count(f); i++) {
        const dj_st_tensor *t = dj_st_at(f, i);
        size_t len = strlen(t->name);
        if (t->ndim == 4) convs++;
        if (len > 13 && !strcmp(t->name + len - 13, ".running_mean")) bns++;
        if (len > 20 && !strcmp(t->name + len - 20, ".num_batches_tracked")) nbt++;
    }
    CHECK(convs == 21); /* conv1, 2 x 9 block convs, 2 shortcut convs */
    CHECK(bns == 21 && nbt == 21);
    CHECK(dj_st_count(f) == (size_t)(21 + 21 * 5 + 2));
    const dj_st_tensor *t = dj_st_find(f, "layer2.0.shortcut.0.weight");
    CHECK(t && t->ndim == 4 && t->shape[0] == 32 && t->shape[1] == 16 && t->shape[2] == 1);
    t = dj_st_find(f, "fc.weight");
    CHECK(t && t->ndim == 2 && t->shape[0] == 10 && t->shape[1] == 64);
    CHECK(dj_st_find(f, "layer3.2.bn2.num_batches_tracked") != NULL);
    dj_st_close(f);
    dj_rng rng;
    dj_rng_seed(&rng, 1);
    dj_graph *g = NULL;
    CHECK_OK(dj_model_build(&g, "resnet20", 10, &rng));
    if (g) CHECK_OK(dj_weights_load(p, g, "resnet20"));
    dj_graph_destroy(g);
}

static int rm_entry(const char *path, const struct stat *sb, int type, struct FTW *ftw) {
    (void)sb;
    (void)type;
    (void)ftw;
    return remove(path);
}

int main(int argc, char **argv) {
    dj_set_log(NULL, NULL, DJ_LOG_ERROR);
    if (argc == 3 && !strcmp(argv[1], "--write-resnet20")) {
        int rc = write_resnet20(argv[2]);
        if (rc) fprintf(stderr, "%s\n", dj_last_error());
        return rc ? 1 : 0;
    }
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    RUN(test_weights_roundtrip);
    RUN(test_weights_linear_only);
    RUN(test_save_arguments);
    RUN(test_missing_tensor);
    RUN(test_misshaped_tensor);
    RUN(test_wrong_dtype);
    RUN(test_extra_tensor);
    RUN(test_resnet_depth_mismatch);
    RUN(test_non_finite);
    RUN(test_arch_and_format_metadata);
    RUN(test_truncated_file);
    RUN(test_frozen_graph);
    RUN(test_make_optim);
    RUN(test_resume_adam);
    RUN(test_resume_sgd_momentum);
    RUN(test_resume_plain_sgd);
    RUN(test_checkpoint_errors);
    RUN(test_checkpoint_layout_check);
    RUN(test_resnet20_file);
    nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    return check_report("test_checkpoint");
}
