/* A trained classifier for inference: loading it from its weights file,
 * its predictions, unique tags. See dmvjnd/classifier.h. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dmvjnd/cifar10.h"
#include "dmvjnd/classifier.h"
#include "dmvjnd/dmvjnd.h"
#include "dmvjnd/models.h"
#include "dmvjnd/safetensors.h"
#include "dmvjnd/weights.h"

int dj_classify_batch(dj_graph *g, const dj_tensor *x, int32_t *pred, float *conf, float *probs) {
    if (!g || !x || !x->data) return dj_error(DJ_EINVAL, "dj_classify_batch: NULL graph or input");
    const dj_tensor *logits;
    int rc = dj_graph_forward(g, x, 0, NULL, &logits);
    if (rc) return rc;
    if (logits->h != 1 || logits->w != 1 || logits->c < 1)
        return dj_error(DJ_EINVAL, "dj_classify_batch: the network's output is %dx%dx%d per image, not a vector",
                        logits->h, logits->w, logits->c);
    int k = logits->c;
    for (int i = 0; i < logits->n; i++) {
        const float *l = logits->data + (size_t)i * k;
        int best = 0;
        for (int j = 1; j < k; j++)
            if (l[j] > l[best]) best = j;
        /* softmax with the max subtracted, in double: p_best = 1 / sum exp(l - max) */
        double sum = 0;
        for (int j = 0; j < k; j++) sum += exp((double)l[j] - (double)l[best]);
        if (pred) pred[i] = best;
        if (conf) conf[i] = (float)(1.0 / sum);
        if (probs)
            for (int j = 0; j < k; j++) probs[(size_t)i * k + j] = (float)(exp((double)l[j] - (double)l[best]) / sum);
    }
    return DJ_OK;
}

int dj_classifier_load(const char *path, int freeze, dj_classifier *c) {
    return dj_classifier_load_sized(path, freeze, DJ_CIFAR10_SIDE, DJ_CIFAR10_SIDE, c);
}

int dj_classifier_load_sized(const char *path, int freeze, int h, int w, dj_classifier *c) {
    return dj_classifier_load_with(path, freeze, h, w, NULL, c);
}

int dj_classifier_load_with(const char *path, int freeze, int h, int w, dj_model_builder build, dj_classifier *c) {
    if (!c || !path) return dj_error(DJ_EINVAL, "dj_classifier_load: NULL argument");
    if (build && (h != DJ_CIFAR10_SIDE || w != DJ_CIFAR10_SIDE))
        return dj_error(DJ_EINVAL, "%s: a caller's builder builds 32x32 classifiers only, not %dx%d", path, h, w);
    memset(c, 0, sizeof *c);
    dj_st_file *f = NULL;
    int rc = dj_st_open(path, DJ_ST_CHECK_FINITE, &f);
    if (rc) return rc;
    const char *arch = dj_st_metadata(f, "arch");
    const char *mean = dj_st_metadata(f, "train.mean"), *sd = dj_st_metadata(f, "train.std");
    const char *acc = dj_st_metadata(f, "test_accuracy");
    if (!arch || !*arch) {
        rc = dj_error(DJ_EFORMAT, "%s: no 'arch' metadata, so the architecture is unknown (a dmvjnd weights file "
                                  "names it; a PyTorch export needs it added to __metadata__)",
                      path);
        goto fail;
    }
    if (strlen(arch) >= sizeof c->arch) {
        rc = dj_error(DJ_EFORMAT, "%s: 'arch' metadata is %zu bytes long", path, strlen(arch));
        goto fail;
    }
    strcpy(c->arch, arch);
    for (int i = 0; i < 3; i++) c->mean[i] = c->std[i] = 0.5f;
    if (mean && dj_meta_parse_float3(mean, c->mean)) {
        rc = dj_error(DJ_EFORMAT, "%s: metadata train.mean = '%.60s' is not three numbers a,b,c", path, mean);
        goto fail;
    }
    if (sd && (dj_meta_parse_float3(sd, c->std) || !(c->std[0] > 0 && c->std[1] > 0 && c->std[2] > 0))) {
        rc = dj_error(DJ_EFORMAT, "%s: metadata train.std = '%.60s' is not three positive numbers a,b,c", path, sd);
        goto fail;
    }
    c->test_accuracy = acc ? strtod(acc, NULL) : NAN;
    dj_rng rng;
    dj_rng_seed(&rng, 0);
    /* An architecture this library does not know is the file's fault
     * (DJ_EFORMAT); once it is known, a failure to build is the caller's
     * size (DJ_EINVAL) or the machine's (DJ_ENOMEM), so that code is kept. */
    int stride;
    if (build) {
        if ((rc = build(&c->graph, arch, DJ_CIFAR10_CLASSES, &rng))) {
            rc = dj_error(DJ_EFORMAT, "%s: %s", path, dj_last_error());
            goto fail;
        }
    } else if (dj_model_stride(arch, &stride)) {
        rc = dj_error(DJ_EFORMAT, "%s: %s", path, dj_last_error());
        goto fail;
    } else if ((rc = dj_model_build_sized(&c->graph, arch, DJ_CIFAR10_CLASSES, h, w, &rng))) {
        rc = dj_error(rc, "%s: %s", path, dj_last_error());
        goto fail;
    }
    if ((rc = dj_weights_load_file(f, c->graph, arch))) goto fail;
    if (freeze && (rc = dj_graph_freeze(c->graph))) goto fail;
    dj_st_close(f);
    return DJ_OK;
fail:
    dj_st_close(f);
    dj_graph_destroy(c->graph);
    memset(c, 0, sizeof *c);
    return rc;
}

void dj_classifier_free(dj_classifier *c) {
    if (!c) return;
    dj_graph_destroy(c->graph);
    memset(c, 0, sizeof *c);
}

/* An arch as a tag: lowercase a-z 0-9, runs of others as one '_', <= 20. */
static void tag_base(const char *arch, char base[24]) {
    size_t len = 0;
    for (const char *s = arch; *s && len < 20; s++) {
        char ch = *s;
        if (ch >= 'A' && ch <= 'Z') ch = (char)(ch - 'A' + 'a');
        if ((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9'))
            base[len++] = ch;
        else if (len && base[len - 1] != '_')
            base[len++] = '_';
    }
    if (!len) base[len++] = 'c';
    base[len] = '\0';
}

void dj_classifier_tags(const dj_classifier *c, int n, char (*tags)[DJ_CLASSIFIER_TAG_SIZE]) {
    for (int k = 0; k < n; k++) {
        char base[24], other[24];
        tag_base(c[k].arch, base);
        int dup = 1;
        for (int i = 0; i < k; i++) {
            tag_base(c[i].arch, other);
            dup += !strcmp(other, base);
        }
        if (dup > 1)
            snprintf(tags[k], DJ_CLASSIFIER_TAG_SIZE, "%.20s_%d", base, dup);
        else
            snprintf(tags[k], DJ_CLASSIFIER_TAG_SIZE, "%.20s", base);
    }
}
