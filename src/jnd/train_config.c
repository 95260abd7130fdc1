/* The JND training job's configuration: presets, the checks of the fields
 * only JND training has, the job spec, the recipe checkpoints and model
 * files carry, and where the labels + CAM cache goes. See
 * dmvjnd/jnd_train.h. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "dmvjnd/dmvjnd.h"
#include "dmvjnd/jnd_train.h"
#include "jnd/train_internal.h"

/* ============================================================== presets */

static const char *const default_classifiers[] = {
    "models/alexnet_v1.0.safetensors", "models/vgg11bn_v1.0.safetensors", "models/resnet20_v1.0.safetensors",
    "models/densenet40bc_v1.0.safetensors", NULL};

const char *const *dj_jnd_default_classifiers(void) { return default_classifiers; }

int dj_jnd_train_preset(dj_jnd_train_config *c, const char *name) {
    if (!c) return dj_error(DJ_EINVAL, "jnd preset: NULL config");
    int paper = name && !strcmp(name, "paper"), fast = name && !strcmp(name, "fast");
    if (!paper && !fast) return dj_error(DJ_EINVAL, "unknown preset '%s' (paper or fast)", name ? name : "(null)");
    memset(c, 0, sizeof *c);
    c->classifiers = default_classifiers;
    c->nclassifiers = 4;
    c->ed = dj_jnd_ed_defaults();
    c->e_init = 1.0f;
    c->alpha = c->beta = 1.0f;
    c->e_unit = DJ_JND_UNIT_NORMALIZED;
    c->clip = 1;
    c->norm = dj_jnd_norm_paper();
    c->epochs = 200;
    c->batch = 50;
    c->optim = dj_optim_defaults(DJ_OPTIM_ADAM);
    c->optim.weight_decay = 1e-3;
    c->lr = 1e-5;
    c->schedule = "constant";
    c->flip_p = 0.5f;
    c->seed = 1;
    c->eval_limit = 1000;
    if (fast) {
        /* docs/method.md, "Presets": half-width E-D, a 30x larger peak
         * rate with a one-epoch warm-up and cosine decay, Loss2's weight
         * lowered and Loss3's lowered less (session 3's GPU sweep: ~19-20 dB
         * is where alpha 0.1 puts beta 0.5-1, and lr 3e-4 kept more labels
         * than 1e-3 at the same PSNR), the E-D's last layer started near
         * e = 0, 8 epochs of the whole training set (~1.2-1.5 h on 2 idle
         * cores, cache included). */
        c->ed.width = 0.5f;
        c->e_init = 0.1f;
        c->alpha = 0.1f;
        c->beta = 0.7f;
        c->lr = 3e-4;
        c->schedule = "cosine+warmup:1:0.1";
        c->epochs = 8;
    }
    return DJ_OK;
}

/* ============================================================== checks */

int dj_jnd_train_check(const dj_jnd_train_config *c) {
    if (!c) return dj_error(DJ_EINVAL, "dj_jnd_train: NULL config");
    if (c->nclassifiers < 1 || c->nclassifiers > DJ_JND_MAX_CLASSIFIERS || !c->classifiers)
        return dj_error(DJ_EINVAL, "train: %d classifiers; 1..%d are needed", c->nclassifiers, DJ_JND_MAX_CLASSIFIERS);
    if (!isfinite(c->alpha) || !isfinite(c->beta) || c->alpha < 0 || c->beta < 0)
        return dj_error(DJ_EINVAL, "train: alpha = %g and beta = %g must be finite and >= 0", c->alpha, c->beta);
    if (!(isfinite(c->changed_weight) && c->changed_weight >= 0))
        return dj_error(DJ_EINVAL, "train: changed_weight = %g must be finite and >= 0", c->changed_weight);
    if (!(c->flip_p >= 0 && c->flip_p <= 1)) return dj_error(DJ_EINVAL, "train: flip = %g must be in [0, 1]", c->flip_p);
    if (!(isfinite(c->e_init) && c->e_init >= 0))
        return dj_error(DJ_EINVAL, "train: e_init = %g must be finite and >= 0", c->e_init);
    if (c->e_unit != DJ_JND_UNIT_NORMALIZED && c->e_unit != DJ_JND_UNIT_PIXEL01)
        return dj_error(DJ_EINVAL, "train: unknown e_unit %d", c->e_unit);
    for (int i = 0; i < 3; i++)
        if (!isfinite(c->norm.mean[i]) || !(isfinite(c->norm.std[i]) && c->norm.std[i] > 0))
            return dj_error(DJ_EINVAL, "train: normalisation mean/std[%d] must be finite (std > 0)", i);
    return DJ_OK;
}

dj_train_job_spec dj_jnd_train_job_spec(const dj_jnd_train_config *c, const char *cache_path) {
    /* keys reported, not compared, on resume (the thread count always is) */
    static const char *const informational[] = {"jnd.train.classifier_files", "jnd.train.eval_images", NULL};
    /* keys added after checkpoints were first written, with the value every
     * run before them had */
    static const dj_kv added[] = {
        {"jnd.train.input", "x,cam"}, {"jnd.train.init", "none"}, {"jnd.train.changed_weight", "0"}};
    dj_train_job_spec s = {.key_prefix = "jnd.train.", .arch = DJ_JND_ED_ARCH};
    DJ_TRAIN_JOB_SPEC_FROM(&s, c);
    s.eval_limits[0] = c->eval_limit;
    s.eval_names[0] = "eval_limit";
    const char *paths[4] = {c->out_path, c->checkpoint_path, c->log_path, cache_path && *cache_path ? cache_path : NULL};
    const char *what[4] = {"model file", "checkpoint", "CSV log", "cache file"};
    for (int i = 0; i < 4; i++) {
        s.outputs[i] = paths[i];
        s.output_names[i] = what[i];
    }
    s.informational_keys = informational;
    s.added_keys = added;
    s.nadded_keys = (int)(sizeof added / sizeof added[0]);
    return s;
}


/* The cache file: given, or next to the outputs, or none. */
void dj_jnd_train_cache_path(const dj_jnd_train_config *c, char *buf, size_t size) {
    buf[0] = '\0';
    if (c->no_cache_file) return;
    if (c->cache_path) {
        snprintf(buf, size, "%s", c->cache_path);
        return;
    }
    const char *ref = c->out_path ? c->out_path : c->checkpoint_path;
    if (!ref) return;
    const char *slash = strrchr(ref, '/');
    if (slash)
        snprintf(buf, size, "%.*s/jnd-cache.safetensors", (int)(slash - ref), ref);
    else
        snprintf(buf, size, "jnd-cache.safetensors");
}

/* ============================================================== recipe */

int dj_jnd_train_recipe(const dj_jnd_train_config *cfg, int train_images, dj_kv *kv, int max, char *buf,
                        size_t size) {
    dj_recipe r = {kv, 0, max, buf, size, 0, 0};
    char files[4096] = "", hashes[1024] = "";
    size_t fl = 0, hl = 0;
    for (int k = 0; k < cfg->nclassifiers; k++) {
        uint64_t h, sz;
        int rc = dj_file_fnv1a64(cfg->classifiers[k], &h, &sz);
        if (rc) return rc;
        fl += (size_t)snprintf(files + fl, fl < sizeof files ? sizeof files - fl : 0, "%s%s", k ? "," : "",
                               cfg->classifiers[k]);
        hl += (size_t)snprintf(hashes + hl, hl < sizeof hashes ? sizeof hashes - hl : 0, "%s%llu:%016llx",
                               k ? "," : "", (unsigned long long)sz, (unsigned long long)h);
    }
    const dj_train_job_spec spec = dj_jnd_train_job_spec(cfg, NULL);
    dj_recipe_add(&r, "jnd.train.classifier_files", "%s", files);
    dj_recipe_add(&r, "jnd.train.classifier_hashes", "%s", hashes);
    dj_recipe_add(&r, "jnd.train.width", "%.9g", cfg->ed.width);
    dj_recipe_add(&r, "jnd.train.slope", "%.9g", cfg->ed.slope);
    dj_recipe_add(&r, "jnd.train.input", "%s", cfg->ed.margin_input ? "x,cam,margin" : "x,cam");
    dj_recipe_add(&r, "jnd.train.e_init", "%.9g", cfg->e_init);
    dj_recipe_add(&r, "jnd.train.init", "%s", cfg->init_path ? cfg->init_path : "none");
    dj_recipe_add(&r, "jnd.train.alpha", "%.9g", cfg->alpha);
    dj_recipe_add(&r, "jnd.train.beta", "%.9g", cfg->beta);
    dj_recipe_add(&r, "jnd.train.changed_weight", "%.9g", cfg->changed_weight);
    dj_recipe_add(&r, "jnd.train.e_unit", "%s", dj_jnd_unit_name(cfg->e_unit));
    dj_recipe_add(&r, "jnd.train.clip", "%d", cfg->clip ? 1 : 0);
    dj_recipe_add(&r, "jnd.train.mean", "%.9g,%.9g,%.9g", cfg->norm.mean[0], cfg->norm.mean[1], cfg->norm.mean[2]);
    dj_recipe_add(&r, "jnd.train.std", "%.9g,%.9g,%.9g", cfg->norm.std[0], cfg->norm.std[1], cfg->norm.std[2]);
    dj_train_job_recipe_common(&r, &spec, &cfg->optim);
    dj_recipe_add(&r, "jnd.train.flip", "%.9g", cfg->flip_p);
    dj_recipe_add(&r, "jnd.train.seed", "%llu", (unsigned long long)cfg->seed);
    dj_recipe_add(&r, "jnd.train.train_images", "%d", train_images);
    dj_recipe_add(&r, "jnd.train.eval_images", "%d", cfg->eval_limit);
    dj_recipe_add(&r, "jnd.train.threads", "%d", dj_get_num_threads());
    if (r.overflow) return dj_error(DJ_EINVAL, "jnd train: the recipe does not fit (classifier paths too long?)");
    return r.n;
}

