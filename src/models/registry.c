/* Name -> builder table for every model dmvjnd knows, with each model's
 * stride (what input sides must be multiples of). */
#include <string.h>

#include "dmvjnd/dmvjnd.h"
#include "dmvjnd/jnd.h"
#include "dmvjnd/models.h"
#include "models/sized.h"

static int build_alexnet(dj_graph **out, int classes, int h, int w, dj_rng *rng) {
    return dj_model_alexnet_sized(out, classes, h, w, rng);
}
static int build_vgg11bn(dj_graph **out, int classes, int h, int w, dj_rng *rng) {
    return dj_model_vgg11bn_sized(out, classes, h, w, rng);
}
static int build_resnet20(dj_graph **out, int classes, int h, int w, dj_rng *rng) {
    return dj_model_resnet_sized(out, 20, 16, classes, h, w, rng);
}
static int build_resnet32(dj_graph **out, int classes, int h, int w, dj_rng *rng) {
    return dj_model_resnet_sized(out, 32, 16, classes, h, w, rng);
}
static int build_resnet56(dj_graph **out, int classes, int h, int w, dj_rng *rng) {
    return dj_model_resnet_sized(out, 56, 16, classes, h, w, rng);
}
static int build_densenet40bc(dj_graph **out, int classes, int h, int w, dj_rng *rng) {
    return dj_model_densenet_bc_sized(out, 40, 12, classes, h, w, rng);
}
static int build_densenet52bc(dj_graph **out, int classes, int h, int w, dj_rng *rng) {
    return dj_model_densenet_bc_sized(out, 52, 12, classes, h, w, rng);
}
/* The E-D is not a classifier: classes is unused. */
static int build_jnd_ed(dj_graph **out, int classes, int h, int w, dj_rng *rng) {
    dj_jnd_ed_config ed = dj_jnd_ed_defaults();
    return dj_model_jnd_ed(out, &ed, h, w, rng);
}
static int build_jnd_ed_half(dj_graph **out, int classes, int h, int w, dj_rng *rng) {
    dj_jnd_ed_config ed = dj_jnd_ed_defaults();
    ed.width = 0.5f;
    return dj_model_jnd_ed(out, &ed, h, w, rng);
}

/* Strides are the products of the downsampling layers' strides, kept here
 * rather than derived from a built graph so that a size can be checked (and
 * reported) before anything is allocated; tests/test_models.c checks each
 * against the feature maps of a built graph (h/stride x w/stride). `why`
 * goes into the error message so the user sees where the number comes from. */
typedef struct model_entry {
    const char *name;
    int stride;
    const char *why;
    int (*build)(dj_graph **out, int classes, int h, int w, dj_rng *rng);
} model_entry;

static const model_entry models[] = {
    {"alexnet", 8, "three stride-2 max pools", build_alexnet},
    {"vgg11bn", 8, "three 2x2 max pools", build_vgg11bn},
    {"resnet20", 4, "two stride-2 stages", build_resnet20},
    {"resnet32", 4, "two stride-2 stages", build_resnet32},
    {"resnet56", 4, "two stride-2 stages", build_resnet56},
    {"densenet40bc", 4, "two 2x2 average pools", build_densenet40bc},
    {"densenet52bc", 4, "two 2x2 average pools", build_densenet52bc},
    {"jnd_ed", DJ_JND_ED_MULTIPLE, "three 2x2 max pools", build_jnd_ed},
    {"jnd_ed_half", DJ_JND_ED_MULTIPLE, "three 2x2 max pools", build_jnd_ed_half},
};
#define MODEL_COUNT ((int)(sizeof models / sizeof *models))

/* The same names, in the same order (dj_model_names returns a plain array). */
static const char *const names[] = {"alexnet",      "vgg11bn",      "resnet20", "resnet32", "resnet56",
                                    "densenet40bc", "densenet52bc", "jnd_ed",   "jnd_ed_half", NULL};
_Static_assert(sizeof names / sizeof *names == sizeof models / sizeof *models + 1,
               "names[] and models[] must list the same models");

const char *const *dj_model_names(void) { return names; }

static const model_entry *find(const char *name) {
    for (int i = 0; name && i < MODEL_COUNT; i++)
        if (!strcmp(models[i].name, name)) return &models[i];
    return NULL;
}

static int unknown(const char *name) {
    return dj_error(DJ_EINVAL,
                    "unknown model '%s' (known: alexnet, vgg11bn, resnet20, resnet32, resnet56, densenet40bc, "
                    "densenet52bc, jnd_ed, jnd_ed_half)",
                    name ? name : "(null)");
}

int dj_model_stride(const char *name, int *stride) {
    const model_entry *m = find(name);
    if (!m) return unknown(name);
    if (!stride) return dj_error(DJ_EINVAL, "dj_model_stride: NULL stride");
    *stride = m->stride;
    return DJ_OK;
}

int dj_model_build_sized(dj_graph **out, const char *name, int classes, int h, int w, dj_rng *rng) {
    *out = NULL;
    const model_entry *m = find(name);
    if (!m) return unknown(name);
    /* Checked here, before building: a non-multiple would still build (the
     * pools and strided convs round), but its feature maps would no longer
     * be h/stride x w/stride, so CAM pixels would not map back to input
     * pixels by one scale factor. */
    if (h < m->stride || w < m->stride || h % m->stride || w % m->stride)
        return dj_error(DJ_EINVAL,
                        "%s: input %dx%d: height and width must be positive multiples of %d (%s); pad or crop the "
                        "image",
                        m->name, h, w, m->stride, m->why);
    return m->build(out, classes, h, w, rng);
}

int dj_model_build(dj_graph **out, const char *name, int classes, dj_rng *rng) {
    return dj_model_build_sized(out, name, classes, 32, 32, rng);
}
