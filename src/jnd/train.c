/* Training the DMV-JND network: the step, the job (presets, per-epoch
 * metrics, CSV, checkpoints, resume, plots). See dmvjnd/jnd_train.h.
 *
 * Order of the random draws (one generator, serially), as in
 * src/train/classifier.c: E-D initialisation (fresh runs only; a resume
 * loads the weights and then the generator from the checkpoint), then per
 * epoch the permutation (dj_cifar10_epoch_order) and per batch one flip
 * draw per image (dj_augment_draw with pad 0: torchvision's
 * RandomHorizontalFlip). The E-D draws nothing (no dropout); evaluation
 * draws nothing. Checkpoints are written at epoch boundaries, so a resumed
 * run continues the same sequence: bit-identical with the same seed and
 * thread count. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dmvjnd/checkpoint.h"
#include "dmvjnd/dmvjnd.h"
#include "dmvjnd/fileio.h"
#include "dmvjnd/jnd_train.h"
#include "dmvjnd/models.h"
#include "dmvjnd/safetensors.h"
#include "train/csvlog.h"
#include "train/recipe.h"
#include "util/plot.h"
#include "util/timer.h"

enum { SIDE = DJ_CIFAR10_SIDE, HW = DJ_CIFAR10_SIDE * DJ_CIFAR10_SIDE, CH = DJ_CIFAR10_CHANNELS };
#define CSV_MAX_BYTES ((size_t)64 << 20)
#define ED_ARCH "jnd_ed"

/* ============================================================== the step */

struct dj_jnd_step {
    dj_graph *ed;
    dj_graph *cls[DJ_JND_MAX_CLASSIFIERS];
    int count, max_batch, in_ch; /* in_ch: the E-D's input channels (4, or 5 with the margin) */
    dj_jnd_step_config cfg;
    float *xc, *xhat, *dxhat, *dxk, *de, *dlogits, *probs;
    int32_t *lab;
    uint8_t *u8;
};

void dj_jnd_step_destroy(dj_jnd_step *s) {
    if (!s) return;
    dj_free(s->xc);
    dj_free(s->xhat);
    dj_free(s->dxhat);
    dj_free(s->dxk);
    dj_free(s->de);
    dj_free(s->dlogits);
    dj_free(s->probs);
    dj_free(s->lab);
    dj_free(s->u8);
    free(s);
}

int dj_jnd_step_create(dj_jnd_step **out, dj_graph *ed, dj_graph *const *cls, int count, int max_batch,
                       const dj_jnd_step_config *cfg) {
    if (!out || !ed || !cls || !cfg || count < 1 || count > DJ_JND_MAX_CLASSIFIERS || max_batch < 1)
        return dj_error(DJ_EINVAL, "jnd step: bad arguments (%d classifiers, batch %d)", count, max_batch);
    *out = NULL;
    int h, w, c;
    dj_graph_node_shape(ed, 0, &h, &w, &c);
    if (h != SIDE || w != SIDE || (c != DJ_JND_ED_IN_CHANNELS && c != DJ_JND_ED_IN_CHANNELS + 1))
        return dj_error(DJ_EINVAL, "jnd step: the E-D takes %dx%dx%d, not 32x32x4 or 32x32x5", h, w, c);
    if (!(isfinite(cfg->changed_weight) && cfg->changed_weight >= 0))
        return dj_error(DJ_EINVAL, "jnd step: changed_weight = %g must be finite and >= 0", cfg->changed_weight);
    const int in_ch = c;
    for (int k = 0; k < count; k++) {
        if (!cls[k] || !dj_graph_is_frozen(cls[k]))
            return dj_error(DJ_EINVAL, "jnd step: classifier %d is missing or not frozen", k + 1);
        int kk;
        dj_graph_node_shape(cls[k], 0, &h, &w, &c);
        dj_graph_node_shape(cls[k], dj_graph_output_node(cls[k]), NULL, NULL, &kk);
        if (h != SIDE || w != SIDE || c != CH || kk != DJ_CIFAR10_CLASSES)
            return dj_error(DJ_EINVAL, "jnd step: classifier %d takes %dx%dx%d with %d outputs", k + 1, h, w, c, kk);
    }
    dj_jnd_step *s = calloc(1, sizeof *s);
    if (!s) return dj_error(DJ_ENOMEM, "jnd step: out of memory");
    s->ed = ed;
    for (int k = 0; k < count; k++) s->cls[k] = cls[k];
    s->count = count;
    s->max_batch = max_batch;
    s->in_ch = in_ch;
    s->cfg = *cfg;
    size_t img = (size_t)max_batch * HW;
    s->xc = dj_malloc(img * in_ch * sizeof(float));
    s->xhat = dj_malloc(img * 3 * sizeof(float));
    s->dxhat = dj_malloc(img * 3 * sizeof(float));
    s->dxk = dj_malloc(img * 3 * sizeof(float));
    s->de = dj_malloc(img * 3 * sizeof(float));
    s->dlogits = dj_malloc((size_t)max_batch * DJ_CIFAR10_CLASSES * sizeof(float));
    s->probs = dj_malloc((size_t)max_batch * DJ_CIFAR10_CLASSES * sizeof(float));
    s->lab = dj_malloc((size_t)max_batch * sizeof(int32_t));
    s->u8 = dj_malloc(img * 3);
    if (!s->xc || !s->xhat || !s->dxhat || !s->dxk || !s->de || !s->dlogits || !s->probs || !s->lab || !s->u8) {
        dj_jnd_step_destroy(s);
        return dj_error(DJ_ENOMEM, "jnd step: out of memory");
    }
    *out = s;
    return DJ_OK;
}

static int check_batch(const dj_jnd_step *s, const dj_tensor *x, const dj_tensor *c, const float *margin,
                       const int32_t *labels) {
    if (!x || !c || !labels || !x->data || !c->data)
        return dj_error(DJ_EINVAL, "jnd step: NULL input");
    if (!margin != (s->in_ch == DJ_JND_ED_IN_CHANNELS))
        return dj_error(DJ_EINVAL, "jnd step: the E-D takes %d input channels, so the margin must be %s", s->in_ch,
                        margin ? "NULL" : "given");
    if (x->n < 1 || x->n > s->max_batch || x->h != SIDE || x->w != SIDE || x->c != CH || c->n != x->n ||
        c->h != SIDE || c->w != SIDE || c->c != 1)
        return dj_error(DJ_EINVAL, "jnd step: x %dx%dx%dx%d, c %dx%dx%dx%d; expected n x 32 x 32 x 3 and x 1, n <= %d",
                        x->n, x->h, x->w, x->c, c->n, c->h, c->w, c->c, s->max_batch);
    for (int i = 0; i < x->n * s->count; i++)
        if (labels[i] < 0 || labels[i] >= DJ_CIFAR10_CLASSES)
            return dj_error(DJ_EINVAL, "jnd step: label %d at %d is not a class", labels[i], i);
    return DJ_OK;
}

static void gather_labels(const dj_jnd_step *s, const int32_t *labels, int n, int k) {
    for (int i = 0; i < n; i++) s->lab[i] = labels[(size_t)i * s->count + k];
}

/* The label of one row of logits (the first of equal maxima). */
static int arg_max(const float *l) {
    int best = 0;
    for (int j = 1; j < DJ_CIFAR10_CLASSES; j++)
        if (l[j] > l[best]) best = j;
    return best;
}

static int count_correct(const dj_tensor *logits, const int32_t *lab) {
    int correct = 0;
    for (int i = 0; i < logits->n; i++) correct += arg_max(logits->data + (size_t)i * DJ_CIFAR10_CLASSES) == lab[i];
    return correct;
}

/* -log softmax(l)[label] of one image, from the logits in double (its
 * probability can underflow to 0 in float where the loss is large). */
static double cross_entropy(const float *l, int32_t label) {
    double m = l[arg_max(l)], s = 0;
    for (int j = 0; j < DJ_CIFAR10_CLASSES; j++) s += exp((double)l[j] - m);
    return m + log(s) - (double)l[label];
}

/* Loss1 and RCA of the classifiers on xh; with backward, dxhat = dLoss1/dxh.
 * Loss1 = mean over classifiers and images of w * CE, w = 1 + changed_weight
 * where the classifier's label on xh is not its label on x, else 1 (Eq. 9
 * when changed_weight is 0). w is a step function of xh, constant almost
 * everywhere, so dLoss1/dxh is w times the cross-entropy's gradient. */
static int classifiers_pass(dj_jnd_step *s, const dj_tensor *xh, const int32_t *labels, int backward, double *loss1,
                            dj_jnd_step_stats *st) {
    int n = xh->n, rc;
    const double extra = s->cfg.changed_weight;
    double sum = 0;
    dj_tensor dl = dj_tensor_view(s->dlogits, n, 1, 1, DJ_CIFAR10_CLASSES);
    dj_tensor dx = dj_tensor_view(s->dxhat, n, SIDE, SIDE, CH), dk = dj_tensor_view(s->dxk, n, SIDE, SIDE, CH);
    size_t numel = dj_tensor_numel(&dx);
    for (int k = 0; k < s->count; k++) {
        const dj_tensor *logits;
        float l;
        gather_labels(s, labels, n, k);
        if ((rc = dj_graph_forward(s->cls[k], xh, 0, NULL, &logits))) return rc;
        if ((rc = dj_softmax_ce_forward(logits, s->lab, s->probs, &l))) return rc;
        st->correct[k] = count_correct(logits, s->lab);
        double extra_sum = 0; /* cross-entropy of the changed labels */
        for (int i = 0; extra > 0 && i < n; i++) {
            const float *li = logits->data + (size_t)i * DJ_CIFAR10_CLASSES;
            if (arg_max(li) != s->lab[i]) extra_sum += cross_entropy(li, s->lab[i]);
        }
        sum += l + extra * extra_sum / n;
        if (!backward) continue;
        if ((rc = dj_softmax_ce_backward(s->probs, s->lab, 1.0f / (float)s->count, &dl, 0))) return rc;
        for (int i = 0; extra > 0 && i < n; i++) {
            if (arg_max(logits->data + (size_t)i * DJ_CIFAR10_CLASSES) == s->lab[i]) continue;
            float *d = dl.data + (size_t)i * DJ_CIFAR10_CLASSES;
            for (int j = 0; j < DJ_CIFAR10_CLASSES; j++) d[j] *= (float)(1 + extra);
        }
        if ((rc = dj_graph_backward(s->cls[k], &dl, k == 0 ? &dx : &dk))) return rc;
        if (k > 0) {
            float *a = dx.data;
            const float *b = dk.data;
#pragma omp parallel for schedule(static) if (numel > 65536)
            for (size_t i = 0; i < numel; i++) a[i] += b[i];
        }
    }
    *loss1 = sum / s->count;
    return DJ_OK;
}

static int fill_common(dj_jnd_step *s, const dj_tensor *x, const dj_tensor *e, const dj_tensor *c,
                       const dj_tensor *xh, dj_jnd_step_stats *st) {
    dj_jnd_loss_values v;
    int rc = dj_jnd_losses(e, c, &s->cfg.loss, s->cfg.alpha, s->cfg.beta, &v, NULL, 0);
    if (rc) return rc;
    st->loss2 = v.loss2;
    st->loss3 = v.loss3;
    st->n_target = v.n;
    st->n0 = v.n0;
    st->loss = st->loss1 + (double)s->cfg.alpha * v.loss2 + (double)s->cfg.beta * v.loss3;
    if ((rc = dj_jnd_psnr(x, xh, &s->cfg.loss.norm, 1, NULL, &st->psnr))) return rc;
    return dj_jnd_mean_abs_255(e, &s->cfg.loss.norm, NULL, &st->mean_abs_e);
}

int dj_jnd_step_run(dj_jnd_step *s, const dj_tensor *x, const dj_tensor *c, const float *margin,
                    const int32_t *labels, dj_optim *opt, float lr, dj_rng *rng, dj_jnd_step_stats *st) {
    if (!s || !st) return dj_error(DJ_EINVAL, "jnd step: NULL argument");
    int rc = check_batch(s, x, c, margin, labels);
    if (rc) return rc;
    memset(st, 0, sizeof *st);
    int n = x->n;
    st->n = n;
    const dj_jnd_norm *clip = s->cfg.clip ? &s->cfg.loss.norm : NULL;
    dj_tensor xc = dj_tensor_view(s->xc, n, SIDE, SIDE, s->in_ch);
    dj_tensor xh = dj_tensor_view(s->xhat, n, SIDE, SIDE, CH), dx = dj_tensor_view(s->dxhat, n, SIDE, SIDE, CH);
    dj_tensor de = dj_tensor_view(s->de, n, SIDE, SIDE, CH);
    const dj_tensor *e;
    if ((rc = dj_jnd_stack(x, c, margin, &xc))) return rc;
    dj_graph_zero_grad(s->ed);
    if ((rc = dj_graph_forward(s->ed, &xc, 1, rng, &e))) return rc;
    if ((rc = dj_jnd_apply(x, e, clip, &xh))) return rc;
    if ((rc = classifiers_pass(s, &xh, labels, 1, &st->loss1, st))) return rc;
    if ((rc = fill_common(s, x, e, c, &xh, st))) return rc;
    if (!isfinite(st->loss))
        return dj_error(DJ_ENUMERIC, "jnd step: the loss is %g (Loss1 %g, Loss2 %g, Loss3 %g)", st->loss, st->loss1,
                        st->loss2, st->loss3);
    if ((rc = dj_jnd_apply_backward(x, e, clip, &dx, &de, 0))) return rc;
    if ((rc = dj_jnd_losses(e, c, &s->cfg.loss, s->cfg.alpha, s->cfg.beta, NULL, &de, 1))) return rc;
    if ((rc = dj_graph_backward(s->ed, &de, NULL))) return rc;
    if (opt && (rc = dj_optim_step(opt, lr))) return rc;
    return DJ_OK;
}

int dj_jnd_step_eval(dj_jnd_step *s, const dj_tensor *x, const dj_tensor *c, const float *margin,
                     const int32_t *labels, dj_jnd_step_stats *stored, dj_jnd_step_stats *as_float) {
    if (!s) return dj_error(DJ_EINVAL, "jnd step: NULL argument");
    int rc = check_batch(s, x, c, margin, labels);
    if (rc) return rc;
    int n = x->n;
    const dj_jnd_norm *nm = &s->cfg.loss.norm;
    dj_tensor xc = dj_tensor_view(s->xc, n, SIDE, SIDE, s->in_ch);
    dj_tensor xh = dj_tensor_view(s->xhat, n, SIDE, SIDE, CH);
    const dj_tensor *e;
    if ((rc = dj_jnd_stack(x, c, margin, &xc))) return rc;
    if ((rc = dj_graph_forward(s->ed, &xc, 0, NULL, &e))) return rc;
    if (as_float) {
        memset(as_float, 0, sizeof *as_float);
        as_float->n = n;
        if ((rc = dj_jnd_apply(x, e, s->cfg.clip ? nm : NULL, &xh))) return rc;
        if ((rc = classifiers_pass(s, &xh, labels, 0, &as_float->loss1, as_float))) return rc;
        if ((rc = fill_common(s, x, e, c, &xh, as_float))) return rc;
    }
    if (stored) {
        memset(stored, 0, sizeof *stored);
        stored->n = n;
        size_t npix = (size_t)n * HW;
        if ((rc = dj_jnd_apply(x, e, NULL, &xh))) return rc;
        /* The image a user stores: clamp, round to 8 bits (a NaN becomes 0
         * and is reported); then what a classifier reads back. */
        int bad = dj_denormalize_u8(xh.data, npix, nm->mean, nm->std, s->u8);
        if (bad && bad != DJ_ENUMERIC) return bad;
        if ((rc = dj_normalize_u8(s->u8, npix, nm->mean, nm->std, xh.data))) return rc;
        if ((rc = classifiers_pass(s, &xh, labels, 0, &stored->loss1, stored))) return rc;
        if ((rc = fill_common(s, x, e, c, &xh, stored))) return rc;
        if (bad) stored->loss = NAN;
    }
    return DJ_OK;
}

/* ============================================================== presets */

static const char *const default_classifiers[] = {"models/alexnet_v1.0.safetensors", "models/vgg11bn_v1.0.safetensors",
                                                  "models/resnet20_v1.0.safetensors", "models/densenet40bc_v1.0.safetensors",
                                                  NULL};

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

/* ============================================================== recipe */

#define RECIPE_MAX 40


/* Keys reported, not compared, on resume. */
static int recipe_key_informational(const char *key) {
    return !strcmp(key, "jnd.train.threads") || !strcmp(key, "jnd.train.classifier_files") ||
           !strcmp(key, "jnd.train.eval_images");
}

/* ============================================================== CSV */

int dj_jnd_csv_header(char *buf, size_t size, const char tags[][32], int count) {
    if (!buf || count < 1 || count > DJ_JND_MAX_CLASSIFIERS) return dj_error(DJ_EINVAL, "jnd csv header: bad args");
    size_t len = 0;
#define ADD(...)                                                                                                      \
    do {                                                                                                              \
        int m_ = snprintf(buf + len, len < size ? size - len : 0, __VA_ARGS__);                                       \
        if (m_ < 0) return dj_error(DJ_EINTERNAL, "jnd csv header");                                                  \
        len += (size_t)m_;                                                                                            \
    } while (0)
    ADD("epoch,step,lr_first,lr_last");
    const char *sp[2] = {"train", "test"};
    for (int s = 0; s < 2; s++) {
        ADD(",%s_loss,%s_loss1,%s_loss2,%s_loss3", sp[s], sp[s], sp[s], sp[s]);
        for (int k = 0; k < count; k++) ADD(",%s_rca_%s", sp[s], tags[k]);
        ADD(",%s_rca_mean,%s_psnr,%s_mean_abs_e,%s_n,%s_n0", sp[s], sp[s], sp[s], sp[s], sp[s]);
    }
    ADD(",test_float_rca_mean,test_float_psnr,test_images,images_per_s,epoch_s,wall_s");
#undef ADD
    if (len >= size) return dj_error(DJ_EINVAL, "jnd csv header: buffer of %zu bytes is too small", size);
    return DJ_OK;
}

/* The rows of an existing log for epochs <= keep_epochs (a resumed run). */
/* ============================================================== plots */

typedef struct csv_table {
    int ncols, nrows;
    char **names;
    double *v; /* nrows x ncols, NaN for empty */
} csv_table;

static void table_free(csv_table *t) {
    for (int i = 0; i < t->ncols; i++) free(t->names[i]);
    free(t->names);
    free(t->v);
    memset(t, 0, sizeof *t);
}

static int table_parse(csv_table *t, const char *text) {
    memset(t, 0, sizeof *t);
    const char *nl = strchr(text, '\n');
    if (!nl) return dj_error(DJ_EFORMAT, "CSV: no header line");
    int ncols = 1;
    for (const char *p = text; p < nl; p++) ncols += *p == ',';
    int nrows = 0;
    for (const char *p = nl + 1; *p; p++) nrows += *p == '\n';
    t->names = calloc((size_t)ncols, sizeof *t->names);
    t->v = malloc(((size_t)nrows * ncols + 1) * sizeof *t->v);
    if (!t->names || !t->v) {
        table_free(t);
        return dj_error(DJ_ENOMEM, "CSV: out of memory");
    }
    t->ncols = ncols;
    const char *p = text;
    for (int i = 0; i < ncols; i++) {
        size_t len = strcspn(p, ",\n\r");
        if (!(t->names[i] = malloc(len + 1))) {
            table_free(t);
            return dj_error(DJ_ENOMEM, "CSV: out of memory");
        }
        memcpy(t->names[i], p, len);
        t->names[i][len] = '\0';
        p += len;
        if (*p == ',') p++;
    }
    p = nl + 1;
    for (int r = 0; r < nrows && *p; r++) {
        for (int i = 0; i < ncols; i++) {
            char *end;
            double d = strtod(p, &end);
            t->v[(size_t)r * ncols + i] = end == p ? NAN : d;
            p = end;
            while (*p && *p != ',' && *p != '\n') p++;
            if (*p == ',') p++;
        }
        while (*p && *p != '\n') p++;
        if (*p == '\n') p++;
        t->nrows = r + 1;
    }
    return DJ_OK;
}

static int table_col(const csv_table *t, const char *name) {
    for (int i = 0; i < t->ncols; i++)
        if (!strcmp(t->names[i], name)) return i;
    return -1;
}

typedef struct plot_data {
    const csv_table *t;
    double *cols; /* column-major copy: ncols x nrows */
} plot_data;

static const double *col_of(const plot_data *d, const char *name) {
    int c = table_col(d->t, name);
    return c < 0 ? NULL : d->cols + (size_t)c * d->t->nrows;
}

/* Adds a series if the column exists and holds a finite value. */
static void add_series(dj_plot_panel *p, const plot_data *d, const char *col, const char *label, int color,
                       int dashed) {
    const double *y = col_of(d, col), *x = col_of(d, "epoch");
    if (!y || !x || p->nseries >= DJ_PLOT_MAX_SERIES) return;
    int any = 0;
    for (int i = 0; i < d->t->nrows; i++) any |= isfinite(y[i]);
    if (!any) return;
    dj_plot_series *s = &p->series[p->nseries++];
    s->label = label;
    s->x = x;
    s->y = y;
    s->n = d->t->nrows;
    dj_plot_color(color, s->rgb);
    s->dashed = dashed;
}

static int plot_text(const char *csv_text, const char *dir) {
    csv_table t;
    int rc = table_parse(&t, csv_text);
    if (rc) return rc;
    plot_data d = {&t, malloc(((size_t)t.ncols * t.nrows + 1) * sizeof(double))};
    if (!d.cols) {
        table_free(&t);
        return dj_error(DJ_ENOMEM, "plots: out of memory");
    }
    for (int c = 0; c < t.ncols; c++)
        for (int r = 0; r < t.nrows; r++) d.cols[(size_t)c * t.nrows + r] = t.v[(size_t)r * t.ncols + c];
    /* RCA columns in percent */
    for (int c = 0; c < t.ncols; c++)
        if (strstr(t.names[c], "_rca_"))
            for (int r = 0; r < t.nrows; r++) d.cols[(size_t)c * t.nrows + r] *= 100;
    char path[4096];
    /* rca.png: (a) mean, (b) per classifier (paper Fig. 5) */
    dj_plot_panel rca[2];
    memset(rca, 0, sizeof rca);
    rca[0].title = "(a) RCA, mean of the classifiers";
    rca[1].title = "(b) RCA per classifier";
    for (int i = 0; i < 2; i++) {
        rca[i].xlabel = "epoch";
        rca[i].ylabel = "RCA (%)";
    }
    add_series(&rca[0], &d, "train_rca_mean", "train", 0, 0);
    add_series(&rca[0], &d, "test_rca_mean", "test (8-bit x_hat)", 1, 1);
    add_series(&rca[0], &d, "test_float_rca_mean", "test (float x_hat)", 2, 1);
    static char labels[2 * DJ_JND_MAX_CLASSIFIERS][48];
    int k = 0;
    for (int c = 0; c < t.ncols && k < DJ_JND_MAX_CLASSIFIERS; c++) {
        if (strncmp(t.names[c], "train_rca_", 10) || !strcmp(t.names[c], "train_rca_mean")) continue;
        const char *tag = t.names[c] + 10;
        char test_col[64];
        snprintf(labels[2 * k], sizeof labels[0], "%s train", tag);
        snprintf(labels[2 * k + 1], sizeof labels[0], "%s test", tag);
        snprintf(test_col, sizeof test_col, "test_rca_%s", tag);
        add_series(&rca[1], &d, t.names[c], labels[2 * k], k, 0);
        add_series(&rca[1], &d, test_col, labels[2 * k + 1], k, 1);
        k++;
    }
    snprintf(path, sizeof path, "%s/rca.png", dir);
    rc = dj_plot_write_png(path, rca, 2, 2, 560, 400);
    /* loss.png: Loss, Loss1..3 (paper Fig. 6) */
    if (!rc) {
        dj_plot_panel lp[4];
        memset(lp, 0, sizeof lp);
        const char *titles[4] = {"(a) Loss", "(b) Loss1 (cross-entropy)", "(c) Loss2 (magnitude)",
                                 "(d) Loss3 (spatial distribution)"};
        const char *tr[4] = {"train_loss", "train_loss1", "train_loss2", "train_loss3"};
        const char *te[4] = {"test_loss", "test_loss1", "test_loss2", "test_loss3"};
        for (int i = 0; i < 4; i++) {
            lp[i].title = titles[i];
            lp[i].xlabel = "epoch";
            lp[i].ylabel = "loss";
            add_series(&lp[i], &d, tr[i], "train", 0, 0);
            add_series(&lp[i], &d, te[i], "test (8-bit)", 1, 1);
        }
        snprintf(path, sizeof path, "%s/loss.png", dir);
        rc = dj_plot_write_png(path, lp, 4, 2, 560, 400);
    }
    /* psnr.png (paper Fig. 7) and mean |e| */
    if (!rc) {
        dj_plot_panel pp[2];
        memset(pp, 0, sizeof pp);
        pp[0].title = "PSNR of x_hat (8-bit) vs x";
        pp[0].xlabel = "epoch";
        pp[0].ylabel = "PSNR (dB)";
        add_series(&pp[0], &d, "train_psnr", "train", 0, 0);
        add_series(&pp[0], &d, "test_psnr", "test", 1, 1);
        pp[1].title = "mean |e| (8-bit levels)";
        pp[1].xlabel = "epoch";
        pp[1].ylabel = "levels";
        add_series(&pp[1], &d, "train_mean_abs_e", "train", 0, 0);
        add_series(&pp[1], &d, "test_mean_abs_e", "test", 1, 1);
        snprintf(path, sizeof path, "%s/psnr.png", dir);
        rc = dj_plot_write_png(path, pp, 2, 2, 560, 400);
    }
    free(d.cols);
    table_free(&t);
    return rc;
}

int dj_jnd_plot_csv(const char *csv_path, const char *dir) {
    void *data;
    size_t size;
    int rc = dj_read_file(csv_path, CSV_MAX_BYTES, &data, &size);
    if (rc) return rc;
    rc = plot_text(data, dir);
    dj_free(data);
    return rc;
}

/* ============================================================== the job */

typedef struct job {
    const dj_jnd_train_config *cfg;
    const dj_jnd_train_callbacks *cb;
    dj_jnd_train_result *res;
    dj_cifar10 train, test;
    dj_classifier cls[DJ_JND_MAX_CLASSIFIERS];
    dj_graph *cg[DJ_JND_MAX_CLASSIFIERS];
    int K;
    dj_jnd_cache cache;
    dj_graph *ed;
    dj_optim *opt;
    dj_jnd_step *step_ctx;
    dj_schedule sched;
    dj_rng rng;
    dj_kv recipe[RECIPE_MAX];
    int nrecipe;
    char recipe_buf[8192];
    char header[4096];
    int steps_per_epoch;
    int64_t step, total_steps, step_start;
    double wall_before, t_start, t_loop; /* t_loop: first step of this session (ETA) */
    csvlog csv;
    /* batch buffers */
    dj_tensor x, c;
    int32_t *order, *idx, *labels;
    float *margin;
    uint8_t *flips;
} job;

static double job_wall(const job *j) { return j->wall_before + (dj_now() - j->t_start); }

static int check_config(const dj_jnd_train_config *c) {
    if (!c) return dj_error(DJ_EINVAL, "dj_jnd_train: NULL config");
    if (c->nclassifiers < 1 || c->nclassifiers > DJ_JND_MAX_CLASSIFIERS || !c->classifiers)
        return dj_error(DJ_EINVAL, "train: %d classifiers; 1..%d are needed", c->nclassifiers, DJ_JND_MAX_CLASSIFIERS);
    if (c->epochs < 1) return dj_error(DJ_EINVAL, "train: epochs = %d must be >= 1", c->epochs);
    if (c->batch < 1) return dj_error(DJ_EINVAL, "train: batch = %d must be >= 1", c->batch);
    if (!isfinite(c->lr) || c->lr < 0) return dj_error(DJ_EINVAL, "train: lr = %g must be finite and >= 0", c->lr);
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
    if (c->threads < 0) return dj_error(DJ_EINVAL, "train: threads = %d must be >= 0", c->threads);
    if (c->train_limit < 0 || c->train_limit > 50000)
        return dj_error(DJ_EINVAL, "train: train_limit = %d must be in 0..50000", c->train_limit);
    if (c->eval_limit < 0 || c->eval_limit > 10000)
        return dj_error(DJ_EINVAL, "train: eval_limit = %d must be in 0..10000", c->eval_limit);
    if (c->stop_after < 0) return dj_error(DJ_EINVAL, "train: stop_after = %d must be >= 0", c->stop_after);
    if (c->resume && !c->checkpoint_path)
        return dj_error(DJ_EINVAL, "train: resume needs a checkpoint path (the file to resume from)");
    const char *paths[4] = {c->out_path, c->checkpoint_path, c->log_path, c->cache_path};
    const char *what[4] = {"model file", "checkpoint", "CSV log", "cache file"};
    for (int i = 0; i < 4; i++)
        for (int j = i + 1; j < 4; j++)
            if (paths[i] && paths[j] && !strcmp(paths[i], paths[j]))
                return dj_error(DJ_EINVAL, "train: the %s and the %s are the same file '%s'", what[i], what[j],
                                paths[i]);
    return DJ_OK;
}

static int check_outputs(const dj_jnd_train_config *c, const char *cache_path) {
    const char *paths[4] = {c->out_path, c->checkpoint_path, c->log_path, cache_path};
    const char *what[4] = {"model file", "checkpoint", "CSV log", "cache file"};
    for (int i = 0; i < 4; i++) {
        if (!paths[i]) continue;
        if (!*paths[i]) return dj_error(DJ_EINVAL, "train: the %s path is empty", what[i]);
        int rc = dj_check_writable_parent(paths[i]);
        if (rc) return dj_error(rc, "cannot write the %s '%s': %s", what[i], paths[i], dj_last_error());
    }
    if (c->plot_dir) {
        int rc = dj_check_writable_dir(c->plot_dir);
        if (rc) return dj_error(rc, "cannot write the plots into '%s': %s", c->plot_dir, dj_last_error());
    }
    return DJ_OK;
}

/* The cache file: given, or next to the outputs, or none. */
static void resolve_cache_path(const dj_jnd_train_config *c, char *buf, size_t size) {
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

static void make_tags(job *j) {
    char base[DJ_JND_MAX_CLASSIFIERS][24];
    for (int k = 0; k < j->K; k++) {
        size_t n = 0;
        for (const char *s = j->cls[k].arch; *s && n < 20; s++) {
            char ch = *s;
            if (ch >= 'A' && ch <= 'Z') ch = (char)(ch - 'A' + 'a');
            if ((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9'))
                base[k][n++] = ch;
            else if (n && base[k][n - 1] != '_')
                base[k][n++] = '_';
        }
        if (!n) base[k][n++] = 'c';
        base[k][n] = '\0';
        int dup = 1;
        for (int i = 0; i < k; i++) dup += !strcmp(base[i], base[k]);
        if (dup > 1)
            snprintf(j->res->tags[k], sizeof j->res->tags[k], "%.20s_%d", base[k], dup);
        else
            snprintf(j->res->tags[k], sizeof j->res->tags[k], "%.20s", base[k]);
    }
    j->res->classifiers = j->K;
}

static int build_recipe(job *j) {
    const dj_jnd_train_config *cfg = j->cfg;
    recipe_buf r = {j->recipe, 0, RECIPE_MAX, j->recipe_buf, sizeof j->recipe_buf, 0, 0};
    char files[4096] = "", hashes[1024] = "";
    size_t fl = 0, hl = 0;
    for (int k = 0; k < j->K; k++) {
        uint64_t h, sz;
        int rc = dj_file_fnv1a64(cfg->classifiers[k], &h, &sz);
        if (rc) return rc;
        fl += (size_t)snprintf(files + fl, fl < sizeof files ? sizeof files - fl : 0, "%s%s", k ? "," : "",
                               cfg->classifiers[k]);
        hl += (size_t)snprintf(hashes + hl, hl < sizeof hashes ? sizeof hashes - hl : 0, "%s%llu:%016llx",
                               k ? "," : "", (unsigned long long)sz, (unsigned long long)h);
    }
    const dj_optim_config *o = &cfg->optim;
    recipe_add(&r, "jnd.train.classifier_files", "%s", files);
    recipe_add(&r, "jnd.train.classifier_hashes", "%s", hashes);
    recipe_add(&r, "jnd.train.width", "%.9g", cfg->ed.width);
    recipe_add(&r, "jnd.train.slope", "%.9g", cfg->ed.slope);
    recipe_add(&r, "jnd.train.input", "%s", cfg->ed.margin_input ? "x,cam,margin" : "x,cam");
    recipe_add(&r, "jnd.train.e_init", "%.9g", cfg->e_init);
    recipe_add(&r, "jnd.train.init", "%s", cfg->init_path ? cfg->init_path : "none");
    recipe_add(&r, "jnd.train.alpha", "%.9g", cfg->alpha);
    recipe_add(&r, "jnd.train.beta", "%.9g", cfg->beta);
    recipe_add(&r, "jnd.train.changed_weight", "%.9g", cfg->changed_weight);
    recipe_add(&r, "jnd.train.e_unit", "%s", dj_jnd_unit_name(cfg->e_unit));
    recipe_add(&r, "jnd.train.clip", "%d", cfg->clip ? 1 : 0);
    recipe_add(&r, "jnd.train.mean", "%.9g,%.9g,%.9g", cfg->norm.mean[0], cfg->norm.mean[1], cfg->norm.mean[2]);
    recipe_add(&r, "jnd.train.std", "%.9g,%.9g,%.9g", cfg->norm.std[0], cfg->norm.std[1], cfg->norm.std[2]);
    recipe_add(&r, "jnd.train.epochs", "%d", cfg->epochs);
    recipe_add(&r, "jnd.train.batch", "%d", cfg->batch);
    recipe_add(&r, "jnd.train.drop_last", "%d", cfg->drop_last ? 1 : 0);
    recipe_add(&r, "jnd.train.optimizer", "%s", dj_optim_kind_name(o->kind));
    recipe_add(&r, "jnd.train.lr", "%.17g", cfg->lr);
    if (o->kind == DJ_OPTIM_SGD) {
        recipe_add(&r, "jnd.train.momentum", "%.17g", o->momentum);
        recipe_add(&r, "jnd.train.dampening", "%.17g", o->dampening);
        recipe_add(&r, "jnd.train.nesterov", "%d", o->nesterov ? 1 : 0);
    } else {
        recipe_add(&r, "jnd.train.beta1", "%.17g", o->beta1);
        recipe_add(&r, "jnd.train.beta2", "%.17g", o->beta2);
        recipe_add(&r, "jnd.train.eps", "%.17g", o->eps);
    }
    recipe_add(&r, "jnd.train.weight_decay", "%.17g", o->weight_decay);
    recipe_add(&r, "jnd.train.schedule", "%s", cfg->schedule && *cfg->schedule ? cfg->schedule : "constant");
    recipe_add(&r, "jnd.train.flip", "%.9g", cfg->flip_p);
    recipe_add(&r, "jnd.train.seed", "%llu", (unsigned long long)cfg->seed);
    recipe_add(&r, "jnd.train.train_images", "%d", j->train.n);
    recipe_add(&r, "jnd.train.eval_images", "%d", cfg->eval_limit);
    recipe_add(&r, "jnd.train.threads", "%d", dj_get_num_threads());
    if (r.overflow) return dj_error(DJ_EINVAL, "jnd train: the recipe does not fit (classifier paths too long?)");
    j->nrecipe = r.n;
    return DJ_OK;
}

/* Recipe keys added after checkpoints were first written, with the value
 * every run before them had: a checkpoint without the key resumes a run that
 * asks for that value. */
static const char *value_before_key_existed(const char *key) {
    static const dj_kv later[] = {
        {"jnd.train.input", "x,cam"}, {"jnd.train.init", "none"}, {"jnd.train.changed_weight", "0"}};
    for (size_t i = 0; i < sizeof later / sizeof later[0]; i++)
        if (!strcmp(key, later[i].key)) return later[i].value;
    return NULL;
}

static int check_resume_recipe(const dj_st_file *f, const dj_kv *kv, int n) {
    const char *path = dj_st_path(f);
    for (int i = 0; i < n; i++) {
        const char *have = dj_st_metadata(f, kv[i].key);
        if (!have) have = value_before_key_existed(kv[i].key);
        if (recipe_key_informational(kv[i].key)) {
            if (have && strcmp(have, kv[i].value) && !strcmp(kv[i].key, "jnd.train.threads"))
                dj_log(DJ_LOG_WARN,
                       "%s: the checkpoint was trained with %s = %s, this run has %s: it resumes, but the final "
                       "weights will not be bit-identical to an uninterrupted run",
                       path, kv[i].key, have, kv[i].value);
            continue;
        }
        if (!have)
            return dj_error(DJ_EINVAL,
                            "%s: cannot resume: the checkpoint has no '%s' (not written by a JND training run); "
                            "train without resume, or with another checkpoint file",
                            path, kv[i].key);
        if (strcmp(have, kv[i].value))
            return dj_error(DJ_EINVAL,
                            "%s: cannot resume: the checkpoint was trained with %s = %s, this run asks for %s "
                            "(resume with the same recipe, or start a new run without resume)",
                            path, kv[i].key, have, kv[i].value);
    }
    return DJ_OK;
}

static int diverged(job *j, int epoch, const char *what, double lr) {
    j->res->diverged = 1;
    char where[512];
    if (j->cfg->checkpoint_path && epoch > 1)
        snprintf(where, sizeof where, "the checkpoint '%s' holds epoch %d, the last good one", j->cfg->checkpoint_path,
                 epoch - 1);
    else
        snprintf(where, sizeof where, "no checkpoint of a good epoch was written");
    return dj_error(DJ_ENUMERIC,
                    "training diverged in epoch %d at step %lld (learning rate %g): %s; stopped, %s (try a "
                    "smaller learning rate or a warm-up)",
                    epoch, (long long)j->step, lr, what, where);
}

static int params_finite(const dj_graph *g, const char **bad) {
    int n = dj_graph_num_params(g);
    for (int i = 0; i < n; i++) {
        const dj_param *p = dj_graph_param(g, i);
        if (!dj_all_finite(p->data, p->count)) {
            *bad = p->name;
            return 0;
        }
    }
    return 1;
}

/* Weighted sums of step stats. */
typedef struct acc {
    double n, loss, loss1, loss2, loss3, nt, n0, psnr, mae;
    double correct[DJ_JND_MAX_CLASSIFIERS];
} acc;

static void acc_add(acc *a, const dj_jnd_step_stats *s, int K) {
    double n = s->n;
    a->n += n;
    a->loss += s->loss * n;
    a->loss1 += s->loss1 * n;
    a->loss2 += s->loss2 * n;
    a->loss3 += s->loss3 * n;
    a->nt += s->n_target * n;
    a->n0 += s->n0 * n;
    a->psnr += s->psnr * n;
    a->mae += s->mean_abs_e * n;
    for (int k = 0; k < K; k++) a->correct[k] += s->correct[k];
}

static void acc_metrics(const acc *a, int K, dj_jnd_metrics *m) {
    memset(m, 0, sizeof *m);
    m->images = (int)a->n;
    double d = a->n > 0 ? a->n : NAN;
    m->loss = a->loss / d;
    m->loss1 = a->loss1 / d;
    m->loss2 = a->loss2 / d;
    m->loss3 = a->loss3 / d;
    m->n_target = a->nt / d;
    m->n0 = a->n0 / d;
    m->psnr = a->psnr / d;
    m->mean_abs_e = a->mae / d;
    m->rca_mean = 0;
    for (int k = 0; k < K; k++) {
        m->rca[k] = a->correct[k] / d;
        m->rca_mean += m->rca[k] / K;
    }
}

/* x, c, margins and labels of a batch of `n` images idx[] with flips fl[]
 * (NULL: none). */
static int fill_batch(job *j, const dj_cifar10 *ds, const dj_jnd_cache_split *cs, const int32_t *idx,
                      const uint8_t *fl, int n, dj_tensor *x, dj_tensor *c) {
    *x = dj_tensor_view(j->x.data, n, SIDE, SIDE, CH);
    *c = dj_tensor_view(j->c.data, n, SIDE, SIDE, 1);
    int rc = dj_jnd_make_batch(ds, idx, fl, n, &j->cfg->norm, x);
    if (rc) return rc;
    for (int i = 0; i < n; i++) {
        int f = fl ? fl[i] : 0;
        dj_jnd_cache_cam(cs, idx[i], f, c->data + (size_t)i * HW);
        j->margin[i] = cs->margin[(size_t)idx[i] * cs->flips + f];
        const int32_t *l = cs->labels + ((size_t)idx[i] * cs->flips + f) * j->K;
        for (int k = 0; k < j->K; k++) j->labels[(size_t)i * j->K + k] = l[k];
    }
    return DJ_OK;
}

static int evaluate(job *j, dj_jnd_metrics *stored, dj_jnd_metrics *as_float) {
    int N = j->cfg->eval_limit, B = j->cfg->batch;
    acc a, b;
    memset(&a, 0, sizeof a);
    memset(&b, 0, sizeof b);
    for (int start = 0; start < N; start += B) {
        int n = N - start < B ? N - start : B;
        for (int i = 0; i < n; i++) j->idx[i] = start + i;
        dj_tensor x, c;
        int rc = fill_batch(j, &j->test, &j->cache.test, j->idx, NULL, n, &x, &c);
        dj_jnd_step_stats s1, s2;
        const float *margin = j->cfg->ed.margin_input ? j->margin : NULL;
        if (!rc) rc = dj_jnd_step_eval(j->step_ctx, &x, &c, margin, j->labels, &s1, &s2);
        if (rc) return rc;
        acc_add(&a, &s1, j->K);
        acc_add(&b, &s2, j->K);
    }
    acc_metrics(&a, j->K, stored);
    acc_metrics(&b, j->K, as_float);
    return DJ_OK;
}

static int run_epoch(job *j, int epoch, dj_jnd_epoch_stats *st) {
    const dj_jnd_train_config *cfg = j->cfg;
    int N = j->train.n, B = cfg->batch, K = j->K;
    dj_augment aug = {0, cfg->flip_p};
    double t0 = dj_now();
    acc a;
    memset(&a, 0, sizeof a);
    memset(st, 0, sizeof *st);
    st->epoch = epoch;
    st->epochs = cfg->epochs;
    st->classifiers = K;
    dj_cifar10_epoch_order(&j->rng, j->order, N);
    for (int b = 0; b < j->steps_per_epoch; b++) {
        int n = N - b * B < B ? N - b * B : B;
        const int32_t *idx = j->order + (size_t)b * B;
        for (int i = 0; i < n; i++) j->flips[i] = cfg->flip_p > 0 ? (uint8_t)dj_augment_draw(&aug, &j->rng).flip : 0;
        dj_tensor x, c;
        int rc = fill_batch(j, &j->train, &j->cache.train, idx, j->flips, n, &x, &c);
        if (rc) return rc;
        double lr = dj_schedule_lr(&j->sched, j->step);
        if (b == 0) st->lr_first = lr;
        st->lr_last = lr;
        dj_jnd_step_stats s;
        rc = dj_jnd_step_run(j->step_ctx, &x, &c, cfg->ed.margin_input ? j->margin : NULL, j->labels, j->opt,
                             (float)lr, &j->rng, &s);
        if (rc == DJ_ENUMERIC) {
            char what[256];
            snprintf(what, sizeof what, "%s", dj_last_error());
            return diverged(j, epoch, what, lr);
        }
        if (rc) return rc;
        j->step++;
        acc_add(&a, &s, K);
        if (j->cb && j->cb->on_step) {
            dj_jnd_train_progress p;
            dj_jnd_metrics m;
            acc_metrics(&a, K, &m);
            double now = dj_now();
            p.epoch = epoch;
            p.epochs = cfg->epochs;
            p.batch_index = b + 1;
            p.batches = j->steps_per_epoch;
            p.step = j->step;
            p.total_steps = j->total_steps;
            p.loss = m.loss;
            p.loss1 = m.loss1;
            p.loss2 = m.loss2;
            p.loss3 = m.loss3;
            p.rca = m.rca_mean;
            p.psnr = m.psnr;
            p.mean_abs_e = m.mean_abs_e;
            p.lr = lr;
            p.images_per_s = now > t0 ? a.n / (now - t0) : 0;
            int64_t done = j->step - j->step_start;
            p.eta_s = done > 0 ? (now - j->t_loop) / (double)done * (double)(j->total_steps - j->step) : NAN;
            j->cb->on_step(&p, j->cb->user);
        }
    }
    double t_train = dj_now() - t0;
    st->step = j->step;
    acc_metrics(&a, K, &st->train);
    st->images_per_s = t_train > 0 ? a.n / t_train : 0;
    const char *bad;
    if (!params_finite(j->ed, &bad)) {
        char what[160];
        snprintf(what, sizeof what, "parameter '%s' is no longer finite", bad);
        return diverged(j, epoch, what, st->lr_last);
    }
    for (int k = 0; k < DJ_JND_MAX_CLASSIFIERS; k++) st->test.rca[k] = st->test_float.rca[k] = NAN;
    if (cfg->eval_limit > 0) {
        int rc = evaluate(j, &st->test, &st->test_float);
        if (rc) return rc;
    } else {
        dj_jnd_metrics *m[2] = {&st->test, &st->test_float};
        for (int i = 0; i < 2; i++) {
            m[i]->loss = m[i]->loss1 = m[i]->loss2 = m[i]->loss3 = m[i]->n_target = m[i]->n0 = NAN;
            m[i]->rca_mean = m[i]->psnr = m[i]->mean_abs_e = NAN;
        }
    }
    st->epoch_s = dj_now() - t0;
    st->wall_s = job_wall(j);
    return DJ_OK;
}

static int csv_row(job *j, const dj_jnd_epoch_stats *st) {
    char row[4096];
    size_t len = 0;
#define ADD(...)                                                                                                      \
    do {                                                                                                              \
        int m_ = snprintf(row + len, len < sizeof row ? sizeof row - len : 0, __VA_ARGS__);                           \
        if (m_ > 0) len += (size_t)m_;                                                                                \
    } while (0)
    ADD("%d,%lld,%.8g,%.8g", st->epoch, (long long)st->step, st->lr_first, st->lr_last);
    const dj_jnd_metrics *ms[2] = {&st->train, &st->test};
    for (int s = 0; s < 2; s++) {
        const dj_jnd_metrics *m = ms[s];
        if (m->images > 0) {
            ADD(",%.6f,%.6f,%.6f,%.6f", m->loss, m->loss1, m->loss2, m->loss3);
            for (int k = 0; k < j->K; k++) ADD(",%.6f", m->rca[k]);
            ADD(",%.6f,%.4f,%.4f,%.6f,%.6f", m->rca_mean, m->psnr, m->mean_abs_e, m->n_target, m->n0);
        } else {
            ADD(",,,,");
            for (int k = 0; k < j->K; k++) ADD(",");
            ADD(",,,,,");
        }
    }
    if (st->test.images > 0)
        ADD(",%.6f,%.4f", st->test_float.rca_mean, st->test_float.psnr);
    else
        ADD(",,");
    ADD(",%d,%.1f,%.3f,%.3f", st->test.images, st->images_per_s, st->epoch_s, st->wall_s);
#undef ADD
    if (len >= sizeof row) return dj_error(DJ_EINTERNAL, "jnd csv row too long");
    return csvlog_write_row(&j->csv, row, j->cfg->log_path);
}

static int save_checkpoint(job *j, int epochs_done) {
    char wall[32];
    snprintf(wall, sizeof wall, "%.3f", job_wall(j));
    dj_kv meta[RECIPE_MAX + 1];
    memcpy(meta, j->recipe, (size_t)j->nrecipe * sizeof *meta);
    meta[j->nrecipe] = (dj_kv){"jnd.train.elapsed_s", wall};
    return dj_checkpoint_save(j->cfg->checkpoint_path, j->ed, ED_ARCH, j->opt, &j->rng, epochs_done, j->step, meta,
                              j->nrecipe + 1);
}

/* --init: start the E-D from a trained model file's weights (fine-tuning),
 * tensor by tensor by name. A model without the margin input can start one
 * with it: enc.0.weight gains a fifth input channel of zero weights, so the
 * new E-D starts out computing exactly what the old one did. */
static int init_from_model(job *j) {
    const char *path = j->cfg->init_path;
    dj_st_file *f = NULL;
    int rc = dj_st_open(path, DJ_ST_CHECK_FINITE, &f);
    if (rc) return rc;
    const char *arch = dj_st_metadata(f, "arch");
    const char *w = dj_st_metadata(f, "jnd.width"), *sl = dj_st_metadata(f, "jnd.slope");
    if (!arch || strcmp(arch, "jnd_ed")) {
        rc = dj_error(DJ_EFORMAT, "%s: --init needs a DMV-JND model file (arch '%s', expected 'jnd_ed')", path,
                      arch ? arch : "(none)");
        goto out;
    }
    if (!w || !sl || (float)strtod(w, NULL) != j->cfg->ed.width || (float)strtod(sl, NULL) != j->cfg->ed.slope) {
        rc = dj_error(DJ_EINVAL, "%s: --init: the model has E-D width %s and slope %s, this run %g and %g", path,
                      w ? w : "?", sl ? sl : "?", j->cfg->ed.width, j->cfg->ed.slope);
        goto out;
    }
    int n = dj_graph_num_params(j->ed);
    for (int i = 0; i < n && !rc; i++) {
        const dj_param *q = dj_graph_param(j->ed, i);
        const dj_st_tensor *t = dj_st_find(f, q->name);
        int same = t && t->f32 && t->ndim == q->ndim;
        for (int d = 0; same && d < q->ndim; d++) same = t->shape[d] == q->shape[d];
        if (same) {
            memcpy(q->data, t->f32, q->count * sizeof(float));
            continue;
        }
        /* [O, 4, kh, kw] into [O, 5, kh, kw]: the margin channel starts at 0 */
        if (t && t->f32 && !strcmp(q->name, "enc.0.weight") && q->ndim == 4 && t->ndim == 4 &&
            t->shape[0] == q->shape[0] && t->shape[1] == DJ_JND_ED_IN_CHANNELS &&
            q->shape[1] == DJ_JND_ED_IN_CHANNELS + 1 && t->shape[2] == q->shape[2] && t->shape[3] == q->shape[3]) {
            size_t k = (size_t)q->shape[2] * q->shape[3];
            for (int64_t o = 0; o < q->shape[0]; o++) {
                memcpy(q->data + (size_t)o * 5 * k, t->f32 + (size_t)o * 4 * k, 4 * k * sizeof(float));
                memset(q->data + ((size_t)o * 5 + 4) * k, 0, k * sizeof(float));
            }
            continue;
        }
        rc = dj_error(DJ_EFORMAT, "%s: --init: tensor '%s' is %s in the file, the E-D's is %lldx%lldx%lldx%lld", path,
                      q->name, t ? "of another shape or type" : "missing", (long long)q->shape[0],
                      (long long)(q->ndim > 1 ? q->shape[1] : 1), (long long)(q->ndim > 2 ? q->shape[2] : 1),
                      (long long)(q->ndim > 3 ? q->shape[3] : 1));
    }
out:
    dj_st_close(f);
    return rc;
}

static int maybe_resume(job *j) {
    const dj_jnd_train_config *cfg = j->cfg;
    if (!cfg->resume || access(cfg->checkpoint_path, F_OK) != 0) return DJ_OK;
    dj_st_file *f = NULL;
    int rc = dj_st_open(cfg->checkpoint_path, 0, &f);
    if (rc) return rc;
    rc = check_resume_recipe(f, j->recipe, j->nrecipe);
    const char *el = dj_st_metadata(f, "jnd.train.elapsed_s");
    double wall = el ? strtod(el, NULL) : 0;
    dj_st_close(f);
    if (rc) return rc;
    int64_t epoch = 0, step = 0;
    if ((rc = dj_checkpoint_load(cfg->checkpoint_path, j->ed, ED_ARCH, j->opt, &j->rng, &epoch, &step))) return rc;
    if (epoch > cfg->epochs || step != epoch * j->steps_per_epoch)
        return dj_error(DJ_EFORMAT,
                        "%s: cannot resume: the checkpoint is at epoch %lld, step %lld, which this recipe (%d epochs "
                        "of %d steps) cannot have reached",
                        cfg->checkpoint_path, (long long)epoch, (long long)step, cfg->epochs, j->steps_per_epoch);
    j->res->start_epoch = (int)epoch;
    j->step = step;
    j->wall_before = isfinite(wall) && wall > 0 ? wall : 0;
    return DJ_OK;
}

static int write_model(job *j) {
    const dj_jnd_train_config *cfg = j->cfg;
    const dj_jnd_epoch_stats *st = &j->res->last;
    dj_kv extra[RECIPE_MAX + 12];
    int n = j->nrecipe;
    memcpy(extra, j->recipe, (size_t)n * sizeof *extra);
    char v[8][32];
    snprintf(v[0], 32, "%.3f", j->res->wall_s);
    extra[n++] = (dj_kv){"jnd.final.wall_s", v[0]};
    snprintf(v[1], 32, "%d", st->epoch);
    extra[n++] = (dj_kv){"jnd.final.epoch", v[1]};
    if (st->train.images > 0) {
        snprintf(v[2], 32, "%.6f", st->train.rca_mean);
        extra[n++] = (dj_kv){"jnd.final.train_rca_mean", v[2]};
        snprintf(v[3], 32, "%.4f", st->train.psnr);
        extra[n++] = (dj_kv){"jnd.final.train_psnr", v[3]};
    }
    if (st->test.images > 0) {
        snprintf(v[4], 32, "%.6f", st->test.rca_mean);
        extra[n++] = (dj_kv){"jnd.final.test_rca_mean", v[4]};
        snprintf(v[5], 32, "%.4f", st->test.psnr);
        extra[n++] = (dj_kv){"jnd.final.test_psnr", v[5]};
        snprintf(v[6], 32, "%d", st->test.images);
        extra[n++] = (dj_kv){"jnd.final.test_images", v[6]};
        snprintf(v[7], 32, "%.4f", st->test.mean_abs_e);
        extra[n++] = (dj_kv){"jnd.final.test_mean_abs_e", v[7]};
    }
    dj_jnd_model_info info;
    memset(&info, 0, sizeof info);
    info.ed_cfg = cfg->ed;
    info.h = info.w = SIDE;
    info.e_unit = cfg->e_unit;
    info.clip = cfg->clip;
    info.alpha = cfg->alpha;
    info.beta = cfg->beta;
    info.norm = cfg->norm;
    info.classifiers = cfg->classifiers;
    info.nclassifiers = cfg->nclassifiers;
    return dj_jnd_model_save(j->ed, cfg->out_path, &info, extra, n);
}

typedef struct cache_relay {
    const dj_jnd_train_callbacks *cb;
} cache_relay;

static void relay_cache(const dj_jnd_cache_progress *p, void *user) {
    const cache_relay *r = user;
    if (r->cb && r->cb->on_cache) r->cb->on_cache(p, r->cb->user);
}

/* After the last epoch (or a resume of a finished run): the test metrics of
 * the final weights, for the model file. */
static int final_eval(job *j) {
    dj_jnd_epoch_stats *st = &j->res->last;
    if (st->epoch == j->cfg->epochs && (st->test.images > 0 || j->cfg->eval_limit == 0)) return DJ_OK;
    st->epoch = j->cfg->epochs;
    st->epochs = j->cfg->epochs;
    st->classifiers = j->K;
    st->step = j->step;
    if (j->cfg->eval_limit > 0) return evaluate(j, &st->test, &st->test_float);
    return DJ_OK;
}

int dj_jnd_train(const dj_jnd_train_config *cfg, const dj_jnd_train_callbacks *cb, dj_jnd_train_result *res) {
    dj_jnd_train_result local;
    if (!res) res = &local;
    memset(res, 0, sizeof *res);
    int rc = check_config(cfg);
    if (rc) return rc;
    if (cfg->threads > 0) dj_set_num_threads(cfg->threads);
    char cache_path[1024];
    resolve_cache_path(cfg, cache_path, sizeof cache_path);
    if ((rc = check_outputs(cfg, cache_path[0] ? cache_path : NULL))) return rc;

    job *j = calloc(1, sizeof *j);
    if (!j) return dj_error(DJ_ENOMEM, "train: out of memory");
    j->cfg = cfg;
    j->cb = cb;
    j->res = res;
    j->t_start = dj_now();
    j->K = cfg->nclassifiers;
    snprintf(res->cache_path, sizeof res->cache_path, "%s", cache_path);

    /* data */
    dj_cifar10_opts o = {0, cfg->train_limit, 0};
    if ((rc = dj_cifar10_load(&j->train, cfg->data_dir, "train", &o))) goto out;
    if (cfg->eval_limit > 0) {
        dj_cifar10_opts t = {0, cfg->eval_limit, 0};
        if ((rc = dj_cifar10_load(&j->test, cfg->data_dir, "test", &t))) goto out;
    }
    int N = j->train.n, B = cfg->batch;
    j->steps_per_epoch = cfg->drop_last ? N / B : (N + B - 1) / B;
    if (j->steps_per_epoch < 1) {
        rc = dj_error(DJ_EINVAL, "train: %d training images make no full batch of %d (drop_last)", N, B);
        goto out;
    }
    j->total_steps = (int64_t)cfg->epochs * j->steps_per_epoch;
    const char *spec = cfg->schedule && *cfg->schedule ? cfg->schedule : "constant";
    if ((rc = dj_schedule_parse(&j->sched, spec, cfg->lr, j->total_steps, j->steps_per_epoch))) goto out;
    if ((rc = dj_schedule_check(&j->sched))) goto out;

    /* classifiers and their cache */
    if ((rc = dj_jnd_classifiers_load(j->cls, cfg->classifiers, j->K, cfg->classifier_build, &cfg->norm))) goto out;
    for (int k = 0; k < j->K; k++) j->cg[k] = j->cls[k].graph;
    make_tags(j);
    if ((rc = dj_jnd_csv_header(j->header, sizeof j->header, (const char(*)[32])res->tags, j->K))) goto out;
    if ((rc = build_recipe(j))) goto out;
    {
        dj_jnd_cache_request req;
        req.classifier_paths = cfg->classifiers;
        req.cls = j->cls;
        req.count = j->K;
        req.norm = cfg->norm;
        req.train = &j->train;
        req.test = cfg->eval_limit > 0 ? &j->test : NULL;
        req.batch = B;
        cache_relay relay = {cb};
        /* a cache file to write (not there yet) must fit before minutes of
         * computing: 16-bit maps and 32-bit labels per image and flip */
        if (cache_path[0] && access(cache_path, F_OK) != 0) {
            uint64_t per = (uint64_t)SIDE * SIDE * 2u + (uint64_t)j->K * 4u + 4u;
            uint64_t n = 2u * (uint64_t)j->train.n + (cfg->eval_limit > 0 ? (uint64_t)j->test.n : 0u);
            if ((rc = dj_check_free_space(cache_path, n * per + (1u << 20)))) goto out;
        }
        if ((rc = dj_jnd_cache_get(&j->cache, cache_path[0] ? cache_path : NULL, &req, relay_cache, &relay,
                                   &res->cache_reused)))
            goto out;
    }

    /* the E-D and its optimiser */
    dj_rng_seed(&j->rng, cfg->seed);
    if ((rc = dj_model_jnd_ed(&j->ed, &cfg->ed, SIDE, SIDE, &j->rng))) goto out;
    if (cfg->e_init != 1.0f) {
        const char *names[2] = {"dec.9.weight", "dec.9.bias"};
        for (int i = 0; i < 2; i++) {
            const dj_param *p = dj_graph_find_param(j->ed, names[i]);
            if (!p) {
                rc = dj_error(DJ_EINTERNAL, "train: the E-D has no '%s'", names[i]);
                goto out;
            }
            for (size_t q = 0; q < p->count; q++) p->data[q] *= cfg->e_init;
        }
    }
    if (cfg->init_path && (rc = init_from_model(j))) goto out;
    if ((rc = dj_check_training_space(j->ed, cfg->out_path, cfg->checkpoint_path))) goto out;
    if ((rc = dj_graph_make_optim(j->ed, &cfg->optim, &j->opt))) goto out;
    {
        dj_jnd_step_config sc;
        sc.alpha = cfg->alpha;
        sc.beta = cfg->beta;
        sc.changed_weight = cfg->changed_weight;
        sc.loss = dj_jnd_loss_defaults();
        sc.loss.e_unit = cfg->e_unit;
        sc.loss.norm = cfg->norm;
        sc.clip = cfg->clip;
        if ((rc = dj_jnd_step_create(&j->step_ctx, j->ed, j->cg, j->K, B, &sc))) goto out;
    }
    if ((rc = maybe_resume(j))) goto out;
    j->step_start = j->step;
    res->steps = j->step;
    res->epochs_done = res->start_epoch;
    if ((rc = csvlog_start(&j->csv, j->header, cfg->log_path, res->start_epoch))) goto out;

    j->order = malloc((size_t)N * sizeof *j->order);
    j->idx = malloc((size_t)B * sizeof *j->idx);
    j->labels = malloc((size_t)B * j->K * sizeof *j->labels);
    j->flips = malloc((size_t)B);
    j->margin = malloc((size_t)B * sizeof *j->margin);
    if (!j->order || !j->idx || !j->labels || !j->flips || !j->margin) {
        rc = dj_error(DJ_ENOMEM, "train: out of memory");
        goto out;
    }
    if ((rc = dj_tensor_alloc(&j->x, B, SIDE, SIDE, CH)) || (rc = dj_tensor_alloc(&j->c, B, SIDE, SIDE, 1))) goto out;
    if (cb && cb->on_start) cb->on_start(res, cb->user);
    j->t_loop = dj_now();

    for (int e = res->start_epoch; e < cfg->epochs; e++) {
        if (cfg->stop_after > 0 && e >= cfg->stop_after) break;
        dj_jnd_epoch_stats st;
        if ((rc = run_epoch(j, e + 1, &st))) goto out;
        res->epochs_done = e + 1;
        res->steps = j->step;
        res->last = st;
        if ((rc = csv_row(j, &st))) goto out;
        if (cfg->checkpoint_path && (rc = save_checkpoint(j, e + 1))) goto out;
        if (cfg->plot_dir && (rc = plot_text(j->csv.text, cfg->plot_dir))) goto out;
        if (cb && cb->on_epoch) cb->on_epoch(&st, cb->user);
    }
    res->completed = res->epochs_done == cfg->epochs;
    res->wall_s = job_wall(j);
    if (res->completed && cfg->out_path) {
        if ((rc = final_eval(j))) goto out;
        rc = write_model(j);
    }
out:
    res->wall_s = job_wall(j);
    dj_jnd_step_destroy(j->step_ctx);
    dj_tensor_free(&j->x);
    dj_tensor_free(&j->c);
    free(j->order);
    free(j->idx);
    free(j->labels);
    free(j->flips);
    free(j->margin);
    csvlog_free(&j->csv);
    dj_optim_destroy(j->opt);
    dj_graph_destroy(j->ed);
    dj_jnd_cache_free(&j->cache);
    dj_jnd_classifiers_free(j->cls, j->K);
    dj_cifar10_free(&j->train);
    dj_cifar10_free(&j->test);
    free(j);
    return rc;
}
