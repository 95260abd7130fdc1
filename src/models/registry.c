/* Name -> builder table for every model dmvjnd knows. */
#include <string.h>

#include "dmvjnd/dmvjnd.h"
#include "dmvjnd/models.h"

static const char *const names[] = {"resnet20", "resnet32", "resnet56", NULL};

const char *const *dj_model_names(void) { return names; }

int dj_model_build(dj_graph **out, const char *name, int classes, dj_rng *rng) {
    *out = NULL;
    if (!strcmp(name, "resnet20")) return dj_model_resnet_cifar(out, 20, 16, classes, rng);
    if (!strcmp(name, "resnet32")) return dj_model_resnet_cifar(out, 32, 16, classes, rng);
    if (!strcmp(name, "resnet56")) return dj_model_resnet_cifar(out, 56, 16, classes, rng);
    return dj_error(DJ_EINVAL, "unknown model '%s' (known: resnet20, resnet32, resnet56)", name);
}
