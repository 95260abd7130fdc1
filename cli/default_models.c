/* --model's default: the shipped models; see default_models.h. */
#include "default_models.h"

#include <stdlib.h>

#include "args.h"
#include "dmvjnd/dmvjnd.h"
#include "dmvjnd/model_find.h"

#define PATH_CAP 4096

int cli_default_jnd_model(const char *cmd, const char **path) {
    static char buf[PATH_CAP];
    int st = dj_model_find(DJ_MODEL_JND, buf, sizeof buf);
    if (st) return cli_fail(cmd, st);
    *path = buf;
    return 0;
}

int cli_default_classifiers(const char *cmd, const char ***paths, int *n) {
    static char buf[DJ_MODEL_CLASSIFIERS][PATH_CAP];
    const char **p = malloc(DJ_MODEL_CLASSIFIERS * sizeof *p);
    if (!p) return cli_fail(cmd, dj_error(DJ_ENOMEM, "out of memory"));
    for (int k = 0; k < DJ_MODEL_CLASSIFIERS; k++) {
        int st = dj_model_find(dj_model_classifier_names[k], buf[k], sizeof buf[k]);
        if (st) {
            free(p);
            return cli_fail(cmd, st);
        }
        p[k] = buf[k];
    }
    *paths = p;
    *n = DJ_MODEL_CLASSIFIERS;
    return 0;
}
