/* Model files found from anywhere: dj_model_find's search order, and a JND
 * model file's classifiers named relative to its own folder and checked
 * against their recorded size and hash (src/util/model_find.c,
 * src/jnd/jnd_model.c). tests/test_install.sh checks the same through an
 * installed dmvjnd. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "jnd_fixture.h"
#include "dmvjnd/dmvjnd.h"
#include "dmvjnd/fileio.h"
#include "dmvjnd/jnd_generate.h"
#include "dmvjnd/model_find.h"
#include "dmvjnd/safetensors.h"

static jnd_fixture fx;

static int copy_file(const char *from, const char *to) {
    void *data = NULL;
    size_t n = 0;
    if (dj_read_file(from, (size_t)1 << 30, &data, &n)) return -1;
    FILE *f = fopen(to, "wb");
    int rc = !f || fwrite(data, 1, n, f) != n;
    if (f && fclose(f)) rc = 1;
    dj_free(data);
    return rc ? -1 : 0;
}

static const char *ends_with(const char *s, const char *tail) {
    size_t a = strlen(s), b = strlen(tail);
    return a >= b && !strcmp(s + a - b, tail) ? s + a - b : NULL;
}

/* The model file stores plain names and "size:hash" pairs; loading turns
 * the names into the files beside the model. */
static void test_names_and_hashes(void) {
    dj_st_file *f = NULL;
    CHECK_OK(dj_st_open(fx.model, 0, &f));
    if (!f) return;
    const char *names = dj_st_metadata(f, "jnd.classifiers"), *hashes = dj_st_metadata(f, "jnd.classifier_hashes");
    CHECK(names && !strcmp(names, "resnet20.safetensors,alexnet.safetensors"));
    /* each "size:hash": the file's size and its FNV-1a hash, computed here
     * from the published constants */
    for (int k = 0; k < 2 && hashes; k++) {
        unsigned long long size = 0, hash = 0;
        const char *item = k ? strchr(hashes, ',') + 1 : hashes;
        CHECK(sscanf(item, "%llu:%16llx", &size, &hash) == 2);
        void *data = NULL;
        size_t n = 0;
        CHECK_OK(dj_read_file(fx.cls[k], (size_t)1 << 30, &data, &n));
        unsigned long long h = 0xcbf29ce484222325ULL;
        for (size_t i = 0; i < n; i++) h = (h ^ ((const unsigned char *)data)[i]) * 0x100000001b3ULL;
        dj_free(data);
        CHECK(size == n && hash == h);
    }
    dj_st_close(f);
    dj_jnd_model m;
    CHECK_OK(dj_jnd_model_load(fx.model, &m));
    CHECK(m.nclassifiers == 2 && !strcmp(m.classifiers[0], fx.cls[0]) && !strcmp(m.classifiers[1], fx.cls[1]));
    dj_jnd_model_free(&m);
}

/* A copy of the folder elsewhere uses its own classifiers; one replaced by
 * another file is refused by name; a missing one is reported by name. */
static void test_moved_folder(void) {
    char dir[300], model[340], cls0[340], cls1[340];
    snprintf(dir, sizeof dir, "%s/moved", fx.dir);
    CHECK(mkdir(dir, 0700) == 0);
    snprintf(model, sizeof model, "%s/jnd.safetensors", dir);
    snprintf(cls0, sizeof cls0, "%s/resnet20.safetensors", dir);
    snprintf(cls1, sizeof cls1, "%s/alexnet.safetensors", dir);
    CHECK(copy_file(fx.model, model) == 0 && copy_file(fx.cls[0], cls0) == 0 && copy_file(fx.cls[1], cls1) == 0);
    dj_jnd_model m;
    CHECK_OK(dj_jnd_model_load(model, &m));
    CHECK(!strcmp(m.classifiers[0], cls0) && !strcmp(m.classifiers[1], cls1));
    dj_jnd_model_free(&m);
    dj_jnd_generator *g = NULL;
    CHECK_OK(dj_jnd_generator_create(&g, model, NULL, 0));
    dj_jnd_generator_destroy(g);

    /* other bytes under the same name (the first classifier's file) */
    CHECK(copy_file(fx.cls[0], cls1) == 0);
    CHECK_FAILS(dj_jnd_model_load(model, &m), DJ_EFORMAT,
                "moved/alexnet.safetensors: does not match the classifier the JND model was trained with");
    /* the generator refuses it too, naming the file */
    g = NULL;
    CHECK(dj_jnd_generator_create(&g, model, NULL, 0) != 0 && strstr(dj_last_error(), "moved/alexnet.safetensors"));
    CHECK(g == NULL);

    CHECK(unlink(cls1) == 0);
    CHECK_OK(dj_jnd_model_load(model, &m)); /* the model itself loads... */
    dj_jnd_model_free(&m);
    CHECK_FAILS(dj_jnd_generator_create(&g, model, NULL, 0), DJ_EIO, "moved/alexnet.safetensors: cannot open");
    /* ...and works with classifiers given instead */
    const char *given[2] = {fx.cls[0], fx.cls[1]};
    g = NULL;
    CHECK_OK(dj_jnd_generator_create(&g, model, given, 2));
    dj_jnd_generator_destroy(g);
}

/* A model saved in a sub-folder names its classifiers "../x"; loading from
 * another current folder still finds them. */
static void test_relative_save(void) {
    char sub[300], model[340], cwd[1024];
    snprintf(sub, sizeof sub, "%s/sub", fx.dir);
    CHECK(mkdir(sub, 0700) == 0);
    snprintf(model, sizeof model, "%s/jnd.safetensors", sub);
    dj_jnd_model m;
    CHECK_OK(dj_jnd_model_load(fx.model, &m));
    const char *paths[2] = {fx.cls[0], fx.cls[1]};
    dj_jnd_model_info info = {.ed_cfg = m.ed_cfg, .h = 32, .w = 32, .e_unit = m.e_unit, .clip = m.clip,
                              .alpha = m.alpha, .beta = m.beta, .norm = m.norm, .classifiers = paths,
                              .nclassifiers = 2};
    CHECK_OK(dj_jnd_model_save(m.ed, model, &info, NULL, 0));
    dj_jnd_model_free(&m);
    char names[256];
    CHECK_OK(dj_weights_read_meta(model, "jnd.classifiers", names, sizeof names));
    CHECK(!strcmp(names, "../resnet20.safetensors,../alexnet.safetensors"));
    CHECK(getcwd(cwd, sizeof cwd) != NULL);
    CHECK(chdir(sub) == 0);
    CHECK_OK(dj_jnd_model_load("jnd.safetensors", &m));
    CHECK(m.nclassifiers == 2 && !strcmp(m.classifiers[1], "../alexnet.safetensors"));
    dj_jnd_model_free(&m);
    CHECK(chdir(cwd) == 0);
}

/* $DMVJND_MODELS first; the source tree's models/ from the program's
 * folder; errors name the file and the folders. */
static void test_model_find(void) {
    char path[4096], want[400];
    snprintf(want, sizeof want, "%s/resnet20.safetensors", fx.dir);
    CHECK(setenv("DMVJND_MODELS", fx.dir, 1) == 0);
    CHECK_OK(dj_model_find("resnet20.safetensors", path, sizeof path));
    CHECK(!strcmp(path, want));
    CHECK(unsetenv("DMVJND_MODELS") == 0);
    /* the tree's models/, two folders above build/tests/test_model_find */
    CHECK_OK(dj_model_find(DJ_MODEL_JND, path, sizeof path));
    CHECK(ends_with(path, "/models/" DJ_MODEL_JND) != NULL);
    for (int k = 0; k < DJ_MODEL_CLASSIFIERS; k++) CHECK_OK(dj_model_find(dj_model_classifier_names[k], path, 4096));
    CHECK_FAILS(dj_model_find("no_such_v0.1.safetensors", path, sizeof path), DJ_ENOTFOUND,
                "no_such_v0.1.safetensors: not found in $DMVJND_MODELS (unset), ");
    CHECK(strstr(dj_last_error(), dj_model_dir_installed()) != NULL);
    CHECK_FAILS(dj_model_find("models/" DJ_MODEL_JND, path, sizeof path), DJ_EINVAL, "is a path");
    CHECK_FAILS(dj_model_find(DJ_MODEL_JND, path, 8), DJ_EIO, "longer than 7 bytes");
    CHECK(!strcmp(dj_model_dir_installed() + strlen(dj_model_dir_installed()) - strlen("/share/dmvjnd/models"),
                  "/share/dmvjnd/models"));
}

int main(void) {
    (void)fixture_images; /* the fixture's images are for the generation tests */
    dj_set_num_threads(1);
    if (fixture_make(&fx, "model_find", 1.0f)) {
        fprintf(stderr, "test_model_find: cannot make the fixture: %s\n", dj_last_error());
        printf("test_model_find: 0 passed, 1 failed, 0 skipped\n");
        return 1;
    }
    RUN(test_names_and_hashes);
    RUN(test_moved_folder);
    RUN(test_relative_save);
    RUN(test_model_find);
    fixture_remove(&fx);
    return check_report("test_model_find");
}
