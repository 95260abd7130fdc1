/* model_meta: rewrites the metadata of a safetensors model file and leaves
 * every tensor as it is (the names, dtypes, shapes and bytes are copied, and
 * checked equal in the written file before it counts as done).
 *
 *     model_meta IN                    print the metadata, one key=value a line
 *     model_meta IN OUT [EDIT]...      write OUT with the edits, in order:
 *         --set KEY=VALUE              set (or add) KEY
 *         --del KEY                    remove KEY
 *         --hash-classifiers           set jnd.classifier_hashes to the size
 *                                      and FNV-1a hash of each file that
 *                                      jnd.classifiers names, resolved from
 *                                      OUT's folder (as dj_jnd_model_load does)
 *
 * The shipped models were renamed to their versioned names with it; the
 * commands are in models/README.md. IN and OUT may be the same file (OUT is
 * written atomically). Exit status 0 on success, 1 on any error. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dmvjnd/dmvjnd.h"
#include "dmvjnd/jnd_train.h"
#include "dmvjnd/safetensors.h"

#define MAX_META 256

static int fail(const char *what) {
    fprintf(stderr, "model_meta: %s\n", what ? what : dj_last_error());
    return 1;
}

/* Metadata as key/value pairs (owned copies), in file order. */
typedef struct {
    char *key[MAX_META], *val[MAX_META];
    int n;
} meta_list;

static int meta_set(meta_list *m, const char *key, const char *val) {
    for (int i = 0; i < m->n; i++)
        if (!strcmp(m->key[i], key)) {
            free(m->val[i]);
            m->val[i] = strdup(val);
            return m->val[i] ? 0 : -1;
        }
    if (m->n == MAX_META) return -1;
    m->key[m->n] = strdup(key);
    m->val[m->n] = strdup(val);
    return m->key[m->n] && m->val[m->n++] ? 0 : -1;
}

static void meta_del(meta_list *m, const char *key) {
    for (int i = 0; i < m->n; i++)
        if (!strcmp(m->key[i], key)) {
            free(m->key[i]);
            free(m->val[i]);
            memmove(m->key + i, m->key + i + 1, (size_t)(m->n - i - 1) * sizeof *m->key);
            memmove(m->val + i, m->val + i + 1, (size_t)(m->n - i - 1) * sizeof *m->val);
            m->n--;
            return;
        }
}

static const char *meta_get(const meta_list *m, const char *key) {
    for (int i = 0; i < m->n; i++)
        if (!strcmp(m->key[i], key)) return m->val[i];
    return NULL;
}

/* jnd.classifier_hashes from the files jnd.classifiers names, each taken
 * relative to the folder of out (absolute names as they are). */
static int hash_classifiers(meta_list *m, const char *out) {
    const char *names = meta_get(m, "jnd.classifiers");
    if (!names) return fail("--hash-classifiers: the file has no jnd.classifiers");
    const char *slash = strrchr(out, '/');
    int dl = slash ? (int)(slash - out) + 1 : 0;
    char hashes[1024] = "", path[4096];
    for (const char *s = names; *s;) {
        int len = (int)strcspn(s, ",");
        if (s[0] == '/') snprintf(path, sizeof path, "%.*s", len, s);
        else snprintf(path, sizeof path, "%.*s%.*s", dl, out, len, s);
        uint64_t h, size;
        if (dj_file_fnv1a64(path, &h, &size)) return fail(NULL);
        size_t used = strlen(hashes);
        snprintf(hashes + used, sizeof hashes - used, "%s%llu:%016llx", used ? "," : "", (unsigned long long)size,
                 (unsigned long long)h);
        printf("%s: %llu bytes, fnv1a64 %016llx\n", path, (unsigned long long)size, (unsigned long long)h);
        s += len;
        if (*s == ',') s++;
    }
    return meta_set(m, "jnd.classifier_hashes", hashes) ? fail("out of memory") : 0;
}

/* Every tensor of a is in b with the same dtype, shape and bytes, and b has
 * no other. */
static int same_tensors(const dj_st_file *a, const dj_st_file *b) {
    if (dj_st_count(a) != dj_st_count(b)) return 0;
    for (size_t i = 0; i < dj_st_count(a); i++) {
        const dj_st_tensor *ta = dj_st_at(a, i), *tb = dj_st_find(b, ta->name);
        if (!tb || strcmp(ta->dtype, tb->dtype) || ta->ndim != tb->ndim || ta->nbytes != tb->nbytes ||
            memcmp(ta->shape, tb->shape, (size_t)ta->ndim * sizeof *ta->shape) ||
            memcmp(ta->raw, tb->raw, ta->nbytes))
            return 0;
    }
    return 1;
}

int main(int argc, char **argv) {
    if (argc < 2 || argv[1][0] == '-') {
        fprintf(stderr, "usage: model_meta IN [OUT [--set KEY=VALUE | --del KEY | --hash-classifiers]...]\n");
        return 1;
    }
    dj_st_file *in = NULL;
    if (dj_st_open(argv[1], 0, &in)) return fail(NULL);
    meta_list m = {0};
    for (size_t i = 0; i < dj_st_metadata_count(in); i++) {
        const char *k, *v;
        if (dj_st_metadata_at(in, i, &k, &v) || meta_set(&m, k, v)) return fail("cannot read the metadata");
    }
    if (argc == 2) {
        for (int i = 0; i < m.n; i++) {
            printf("%s=%s\n", m.key[i], m.val[i]);
            free(m.key[i]);
            free(m.val[i]);
        }
        dj_st_close(in);
        return 0;
    }
    const char *out = argv[2];
    for (int a = 3; a < argc; a++) {
        if (!strcmp(argv[a], "--set") && a + 1 < argc) {
            char *eq = strchr(argv[++a], '=');
            if (!eq) return fail("--set takes KEY=VALUE");
            *eq = '\0';
            if (meta_set(&m, argv[a], eq + 1)) return fail("too many metadata keys");
        } else if (!strcmp(argv[a], "--del") && a + 1 < argc) {
            meta_del(&m, argv[++a]);
        } else if (!strcmp(argv[a], "--hash-classifiers")) {
            if (hash_classifiers(&m, out)) return 1;
        } else {
            fprintf(stderr, "model_meta: unknown or incomplete option '%s'\n", argv[a]);
            return 1;
        }
    }
    dj_st_writer *w = NULL;
    int rc = dj_st_writer_new(&w);
    /* The writer keeps pointers to the data until it writes: aligned
     * copies of I64 tensors live until then. */
    int64_t **i64 = calloc(dj_st_count(in) + 1, sizeof *i64);
    if (!i64) return fail("out of memory");
    for (size_t i = 0; !rc && i < dj_st_count(in); i++) {
        const dj_st_tensor *t = dj_st_at(in, i);
        if (!strcmp(t->dtype, "F32"))
            rc = dj_st_writer_add_f32(w, t->name, t->ndim, t->shape, t->f32);
        else if (!strcmp(t->dtype, "I64")) {
            if (!(i64[i] = malloc(t->nbytes + 1))) return fail("out of memory");
            memcpy(i64[i], t->raw, t->nbytes); /* raw may be unaligned */
            rc = dj_st_writer_add_i64(w, t->name, t->ndim, t->shape, i64[i]);
        } else {
            fprintf(stderr, "model_meta: %s: tensor %s has dtype %s, which this tool does not copy\n", argv[1],
                    t->name, t->dtype);
            return 1;
        }
    }
    for (int i = 0; !rc && i < m.n; i++) rc = dj_st_writer_set_metadata(w, m.key[i], m.val[i]);
    if (!rc) rc = dj_st_writer_write(w, out);
    dj_st_writer_free(w);
    for (size_t i = 0; i < dj_st_count(in); i++) free(i64[i]);
    free(i64);
    if (rc) return fail(NULL);
    dj_st_file *check = NULL;
    if (dj_st_open(out, 0, &check)) return fail(NULL);
    int same = same_tensors(in, check);
    size_t count = dj_st_count(in);
    dj_st_close(check);
    dj_st_close(in);
    int nmeta = m.n;
    for (int i = 0; i < m.n; i++) free(m.key[i]), free(m.val[i]);
    if (!same) {
        fprintf(stderr, "model_meta: %s: the tensors written differ from %s's\n", out, argv[1]);
        return 1;
    }
    printf("%s: %zu tensors as in %s, %d metadata keys\n", out, count, argv[1], nmeta);
    return 0;
}
