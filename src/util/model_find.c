/* Finding a shipped model file by name in the folders dmvjnd/model_find.h
 * lists; the installed folder comes from the build (model_dir.h, which the
 * Makefile writes from PREFIX). */
#include "dmvjnd/model_find.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dmvjnd/core.h"
#ifndef DJ_MODEL_DIR
#include "model_dir.h" /* DJ_MODEL_DIR, generated into $(BUILD)/gen by the Makefile */
#endif

const char *const dj_model_classifier_names[DJ_MODEL_CLASSIFIERS] = {DJ_MODEL_ALEXNET, DJ_MODEL_VGG11BN,
                                                                     DJ_MODEL_RESNET20, DJ_MODEL_DENSENET40BC};

const char *dj_model_dir_installed(void) { return DJ_MODEL_DIR; }

static int is_file(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* Appends "dir" to the searched list (for the error message) and tries
 * dir/name; 1 when found (path set). */
static int try_dir(const char *dir, const char *name, char *path, size_t cap, char *searched, size_t scap) {
    size_t used = strlen(searched);
    if (used + 1 < scap) snprintf(searched + used, scap - used, "%s%s", used ? ", " : "", dir);
    char buf[4096];
    if ((size_t)snprintf(buf, sizeof buf, "%s/%s", dir, name) >= sizeof buf || !is_file(buf)) return 0;
    if (strlen(buf) >= cap) return -1;
    memcpy(path, buf, strlen(buf) + 1);
    return 1;
}

int dj_model_find(const char *file_name, char *path, size_t cap) {
    if (!file_name || !*file_name || !path || !cap) return dj_error(DJ_EINVAL, "model find: NULL or empty argument");
    if (strchr(file_name, '/'))
        return dj_error(DJ_EINVAL, "model find: '%s' is a path; give a shipped model's file name", file_name);
    char searched[2048] = "";
    int found = 0;
    const char *env = getenv("DMVJND_MODELS");
    if (env && *env) found = try_dir(env, file_name, path, cap, searched, sizeof searched);
    if (!found) found = try_dir(DJ_MODEL_DIR, file_name, path, cap, searched, sizeof searched);
    /* Beside the running program: an install tree moved as a whole keeps
     * its share/ folder one level above bin/; a source tree's build/dmvjnd
     * and build/tests/test_x find models/ one or two levels up. */
    char exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (!found && n > 0) {
        exe[n] = '\0';
        char *slash = strrchr(exe, '/');
        if (slash) *slash = '\0'; /* exe = the program's folder */
        char dir[4200], canon[PATH_MAX];
        for (int i = 0; !found && i < 4; i++) {
            if (i == 0) snprintf(dir, sizeof dir, "%s/../share/dmvjnd/models", exe);
            else snprintf(dir, sizeof dir, "%s/%.*smodels", exe, 3 * (i - 1), "../../");
            /* Canonical, so messages and recorded paths read models/..., not build/../models. */
            if (realpath(dir, canon)) found = try_dir(canon, file_name, path, cap, searched, sizeof searched);
        }
    }
    if (!found) found = try_dir("models", file_name, path, cap, searched, sizeof searched);
    if (found < 0) return dj_error(DJ_EIO, "%s: its path is longer than %zu bytes", file_name, cap - 1);
    if (!found)
        return dj_error(DJ_ENOTFOUND, "%s: not found in %s%s (set DMVJND_MODELS to the folder that holds it, or name "
                                      "the file)",
                        file_name, env && *env ? "" : "$DMVJND_MODELS (unset), ", searched);
    return DJ_OK;
}
