/* Name -> builder table for every model dmvjnd knows. */
#include <string.h>

#include "dmvjnd/dmvjnd.h"
#include "dmvjnd/jnd.h"
#include "dmvjnd/models.h"

static const char *const names[] = {"alexnet",      "vgg11bn",      "resnet20", "resnet32", "resnet56",
                                    "densenet40bc", "densenet52bc", "jnd_ed",   "jnd_ed_half", NULL};

const char *const *dj_model_names(void) { return names; }

int dj_model_build(dj_graph **out, const char *name, int classes, dj_rng *rng) {
    *out = NULL;
    if (!strcmp(name, "alexnet")) return dj_model_alexnet_cifar(out, classes, rng);
    if (!strcmp(name, "vgg11bn")) return dj_model_vgg11bn_cifar(out, classes, rng);
    if (!strcmp(name, "resnet20")) return dj_model_resnet_cifar(out, 20, 16, classes, rng);
    if (!strcmp(name, "resnet32")) return dj_model_resnet_cifar(out, 32, 16, classes, rng);
    if (!strcmp(name, "resnet56")) return dj_model_resnet_cifar(out, 56, 16, classes, rng);
    if (!strcmp(name, "densenet40bc")) return dj_model_densenet_bc_cifar(out, 40, 12, classes, rng);
    if (!strcmp(name, "densenet52bc")) return dj_model_densenet_bc_cifar(out, 52, 12, classes, rng);
    if (!strcmp(name, "jnd_ed") || !strcmp(name, "jnd_ed_half")) { /* the E-D: not a classifier, classes unused */
        dj_jnd_ed_config ed = dj_jnd_ed_defaults();
        if (!strcmp(name, "jnd_ed_half")) ed.width = 0.5f;
        return dj_model_jnd_ed(out, &ed, 32, 32, rng);
    }
    return dj_error(DJ_EINVAL,
                    "unknown model '%s' (known: alexnet, vgg11bn, resnet20, resnet32, resnet56, densenet40bc, "
                    "densenet52bc, jnd_ed, jnd_ed_half)",
                    name);
}
