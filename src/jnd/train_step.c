/* One training step of the DMV-JND E-D (paper Sec. IV, Fig. 3), read top to
 * bottom: dj_jnd_step_run at the end calls, in order,
 *
 *   1. ed_forward          xc = [x, c (, margin)];  e = E-D(xc);  x_hat = x + e (clamped when clip)
 *   2. loss1_forward       logits_k = S_k(x_hat) for the frozen classifiers;
 *                          Loss1 = mean_k CE(logits_k, l_k) (Eq. 9; changed labels weighted)
 *   3. loss23_forward      Loss2 (magnitude, Eq. 13), Loss3 (spatial, Eq. 15) from e and c;
 *                          Loss = Loss1 + alpha Loss2 + beta Loss3 (Eq. 7); PSNR, mean |e|
 *   4. loss1_backward      dLoss1/dx_hat = sum_k S_k's backward of dCE_k/dlogits_k
 *   5. ed_backward         de = dx_hat/de (clip mask) + dLoss2,3/de; the E-D's backward
 *   6. update              one optimiser step of the E-D's weights
 *
 * The classifiers are frozen (BN folded): their backward gives d/dx_hat
 * only. dj_jnd_step_eval runs 1-3 in inference mode. API: dmvjnd/jnd_train.h. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "dmvjnd/dmvjnd.h"
#include "dmvjnd/jnd_train.h"

enum { SIDE = DJ_CIFAR10_SIDE, HW = DJ_CIFAR10_SIDE * DJ_CIFAR10_SIDE, CH = DJ_CIFAR10_CHANNELS,
       K10 = DJ_CIFAR10_CLASSES };

/* ================================================================ buffers */

struct dj_jnd_step {
    dj_graph *ed;
    dj_graph *cls[DJ_JND_MAX_CLASSIFIERS];
    int count, max_batch, in_ch; /* in_ch: the E-D's input channels (4, or 5 with the margin) */
    dj_jnd_step_config cfg;
    /* activations and gradients of the batch in progress */
    float *xc;      /* n x 32 x 32 x in_ch: the E-D's input              */
    const dj_tensor *e; /* the E-D's output (its graph owns it)           */
    float *xhat;    /* n x 32 x 32 x 3: x + e, clamped when clip         */
    const dj_tensor *logits[DJ_JND_MAX_CLASSIFIERS]; /* classifier k's (its graph owns them) */
    float *probs;   /* count x n x 10: softmax of each classifier          */
    int32_t *lab;   /* count x n: classifier k's labels on x               */
    float *dlogits; /* n x 10                                              */
    float *dxhat;   /* n x 32 x 32 x 3: dLoss1/dx_hat                      */
    float *dxk;     /* n x 32 x 32 x 3: one classifier's part of it        */
    float *de;      /* n x 32 x 32 x 3: dLoss/de                           */
    uint8_t *u8;    /* n x 32 x 32 x 3: the stored 8-bit x_hat (eval)      */
};

void dj_jnd_step_destroy(dj_jnd_step *s) {
    if (!s) return;
    dj_free(s->xc);
    dj_free(s->xhat);
    dj_free(s->probs);
    dj_free(s->lab);
    dj_free(s->dlogits);
    dj_free(s->dxhat);
    dj_free(s->dxk);
    dj_free(s->de);
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
        if (h != SIDE || w != SIDE || c != CH || kk != K10)
            return dj_error(DJ_EINVAL, "jnd step: classifier %d takes %dx%dx%d with %d outputs", k + 1, h, w, c, kk);
        /* each keeps its activations from loss1_forward to loss1_backward */
        for (int i = 0; i < k; i++)
            if (cls[i] == cls[k])
                return dj_error(DJ_EINVAL, "jnd step: classifiers %d and %d are the same graph; each needs its own",
                                i + 1, k + 1);
    }
    dj_jnd_step *s = calloc(1, sizeof *s);
    if (!s) return dj_error(DJ_ENOMEM, "jnd step: out of memory");
    s->ed = ed;
    for (int k = 0; k < count; k++) s->cls[k] = cls[k];
    s->count = count;
    s->max_batch = max_batch;
    s->in_ch = in_ch;
    s->cfg = *cfg;
    size_t img = (size_t)max_batch * HW, b = (size_t)max_batch;
    s->xc = dj_malloc(img * in_ch * sizeof(float));
    s->xhat = dj_malloc(img * CH * sizeof(float));
    s->probs = dj_malloc(count * b * K10 * sizeof(float));
    s->lab = dj_malloc(count * b * sizeof(int32_t));
    s->dlogits = dj_malloc(b * K10 * sizeof(float));
    s->dxhat = dj_malloc(img * CH * sizeof(float));
    s->dxk = dj_malloc(img * CH * sizeof(float));
    s->de = dj_malloc(img * CH * sizeof(float));
    s->u8 = dj_malloc(img * CH);
    if (!s->xc || !s->xhat || !s->probs || !s->lab || !s->dlogits || !s->dxhat || !s->dxk || !s->de || !s->u8) {
        dj_jnd_step_destroy(s);
        return dj_error(DJ_ENOMEM, "jnd step: out of memory");
    }
    *out = s;
    return DJ_OK;
}

static int check_batch(const dj_jnd_step *s, const dj_tensor *x, const dj_tensor *c, const float *margin,
                       const int32_t *labels) {
    if (!x || !c || !labels || !x->data || !c->data) return dj_error(DJ_EINVAL, "jnd step: NULL input");
    if (!margin != (s->in_ch == DJ_JND_ED_IN_CHANNELS))
        return dj_error(DJ_EINVAL, "jnd step: the E-D takes %d input channels, so the margin must be %s", s->in_ch,
                        margin ? "NULL" : "given");
    if (x->n < 1 || x->n > s->max_batch || x->h != SIDE || x->w != SIDE || x->c != CH || c->n != x->n ||
        c->h != SIDE || c->w != SIDE || c->c != 1)
        return dj_error(DJ_EINVAL, "jnd step: x %dx%dx%dx%d, c %dx%dx%dx%d; expected n x 32 x 32 x 3 and x 1, n <= %d",
                        x->n, x->h, x->w, x->c, c->n, c->h, c->w, c->c, s->max_batch);
    for (int i = 0; i < x->n * s->count; i++)
        if (labels[i] < 0 || labels[i] >= K10)
            return dj_error(DJ_EINVAL, "jnd step: label %d at %d is not a class", labels[i], i);
    return DJ_OK;
}

/* The label of one row of logits (the first of equal maxima). */
static int arg_max(const float *l) {
    int best = 0;
    for (int j = 1; j < K10; j++)
        if (l[j] > l[best]) best = j;
    return best;
}

/* -log softmax(l)[label] of one image, from the logits in double (its
 * probability can underflow to 0 in float where the loss is large). */
static double cross_entropy(const float *l, int32_t label) {
    double m = l[arg_max(l)], s = 0;
    for (int j = 0; j < K10; j++) s += exp((double)l[j] - m);
    return m + log(s) - (double)l[label];
}

/* ===================================================== 1. the E-D forward */

/* e = E-D([x, c (, margin)]) in training or inference mode. */
static int ed_forward(dj_jnd_step *s, const dj_tensor *x, const dj_tensor *c, const float *margin, int training,
                      dj_rng *rng) {
    dj_tensor xc = dj_tensor_view(s->xc, x->n, SIDE, SIDE, s->in_ch);
    int rc = dj_jnd_stack(x, c, margin, &xc);
    if (rc) return rc;
    if (training) dj_graph_zero_grad(s->ed);
    return dj_graph_forward(s->ed, &xc, training, training ? rng : NULL, &s->e);
}

/* x_hat = x + e, clamped to the valid range when clip is on. */
static dj_tensor make_xhat(dj_jnd_step *s, const dj_tensor *x, const dj_jnd_norm *clip, int *rc) {
    dj_tensor xh = dj_tensor_view(s->xhat, x->n, SIDE, SIDE, CH);
    *rc = dj_jnd_apply(x, s->e, clip, &xh);
    return xh;
}

/* ============================================================= 2. Loss1 */

/* Loss1 and RCA of the classifiers on xh. Loss1 = mean over classifiers and
 * images of w * CE, w = 1 + changed_weight where the classifier's label on
 * xh is not its label on x, else 1 (Eq. 9 when changed_weight is 0).
 * Keeps every classifier's logits and softmax for loss1_backward. */
static int loss1_forward(dj_jnd_step *s, const dj_tensor *xh, const int32_t *labels, dj_jnd_step_stats *st) {
    const int n = xh->n;
    const double extra = s->cfg.changed_weight;
    double sum = 0;
    for (int k = 0; k < s->count; k++) {
        int32_t *lab = s->lab + (size_t)k * n;
        float *probs = s->probs + (size_t)k * n * K10, l;
        for (int i = 0; i < n; i++) lab[i] = labels[(size_t)i * s->count + k];
        int rc = dj_graph_forward(s->cls[k], xh, 0, NULL, &s->logits[k]);
        if (!rc) rc = dj_softmax_ce_forward(s->logits[k], lab, probs, &l);
        if (rc) return rc;
        double extra_sum = 0; /* cross-entropy of the changed labels */
        int correct = 0;
        for (int i = 0; i < n; i++) {
            const float *li = s->logits[k]->data + (size_t)i * K10;
            int same = arg_max(li) == lab[i];
            correct += same;
            if (extra > 0 && !same) extra_sum += cross_entropy(li, lab[i]);
        }
        st->correct[k] = correct;
        sum += l + extra * extra_sum / n;
    }
    st->loss1 = sum / s->count;
    return DJ_OK;
}

/* ============================================== 3. Loss2, Loss3, the total */

static int loss23_forward(dj_jnd_step *s, const dj_tensor *x, const dj_tensor *c, const dj_tensor *xh,
                          dj_jnd_step_stats *st) {
    dj_jnd_loss_values v;
    int rc = dj_jnd_losses(s->e, c, &s->cfg.loss, s->cfg.alpha, s->cfg.beta, &v, NULL, 0);
    if (rc) return rc;
    st->loss2 = v.loss2;
    st->loss3 = v.loss3;
    st->n_target = v.n;
    st->n0 = v.n0;
    st->loss = st->loss1 + (double)s->cfg.alpha * v.loss2 + (double)s->cfg.beta * v.loss3;
    if ((rc = dj_jnd_psnr(x, xh, &s->cfg.loss.norm, 1, NULL, &st->psnr))) return rc;
    return dj_jnd_mean_abs_255(s->e, &s->cfg.loss.norm, NULL, &st->mean_abs_e);
}

/* ============================================== 4. Loss1's backward: d/dx_hat */

/* w is a step function of x_hat, constant almost everywhere, so dLoss1/dx_hat
 * is w times the cross-entropy's gradient, summed over the classifiers
 * (each scaled by 1/count: the mean). */
static int loss1_backward(dj_jnd_step *s, int n) {
    const double extra = s->cfg.changed_weight;
    dj_tensor dl = dj_tensor_view(s->dlogits, n, 1, 1, K10);
    dj_tensor dx = dj_tensor_view(s->dxhat, n, SIDE, SIDE, CH), dk = dj_tensor_view(s->dxk, n, SIDE, SIDE, CH);
    size_t numel = dj_tensor_numel(&dx);
    for (int k = 0; k < s->count; k++) {
        const int32_t *lab = s->lab + (size_t)k * n;
        int rc = dj_softmax_ce_backward(s->probs + (size_t)k * n * K10, lab, 1.0f / (float)s->count, &dl, 0);
        if (rc) return rc;
        for (int i = 0; extra > 0 && i < n; i++) {
            if (arg_max(s->logits[k]->data + (size_t)i * K10) == lab[i]) continue;
            float *d = dl.data + (size_t)i * K10;
            for (int j = 0; j < K10; j++) d[j] *= (float)(1 + extra);
        }
        if ((rc = dj_graph_backward(s->cls[k], &dl, k == 0 ? &dx : &dk))) return rc;
        if (k > 0) {
            float *a = dx.data;
            const float *b = dk.data;
#pragma omp parallel for schedule(static) if (numel > 65536)
            for (size_t i = 0; i < numel; i++) a[i] += b[i];
        }
    }
    return DJ_OK;
}

/* ============================================== 5. the E-D's backward */

/* de = dLoss1/dx_hat * dx_hat/de (0 where clip clamped) + dLoss2,3/de, then
 * the E-D's backward fills its parameter gradients. */
static int ed_backward(dj_jnd_step *s, const dj_tensor *x, const dj_tensor *c) {
    const int n = x->n;
    const dj_jnd_norm *clip = s->cfg.clip ? &s->cfg.loss.norm : NULL;
    dj_tensor dx = dj_tensor_view(s->dxhat, n, SIDE, SIDE, CH), de = dj_tensor_view(s->de, n, SIDE, SIDE, CH);
    int rc = dj_jnd_apply_backward(x, s->e, clip, &dx, &de, 0);
    if (!rc) rc = dj_jnd_losses(s->e, c, &s->cfg.loss, s->cfg.alpha, s->cfg.beta, NULL, &de, 1);
    if (!rc) rc = dj_graph_backward(s->ed, &de, NULL);
    return rc;
}

/* ============================================================ the step */

int dj_jnd_step_run(dj_jnd_step *s, const dj_tensor *x, const dj_tensor *c, const float *margin,
                    const int32_t *labels, dj_optim *opt, float lr, dj_rng *rng, dj_jnd_step_stats *st) {
    if (!s || !st) return dj_error(DJ_EINVAL, "jnd step: NULL argument");
    int rc = check_batch(s, x, c, margin, labels);
    if (rc) return rc;
    memset(st, 0, sizeof *st);
    st->n = x->n;
    const dj_jnd_norm *clip = s->cfg.clip ? &s->cfg.loss.norm : NULL;
    /* 1 */
    if ((rc = ed_forward(s, x, c, margin, 1, rng))) return rc;
    dj_tensor xh = make_xhat(s, x, clip, &rc);
    if (rc) return rc;
    /* 2, 3 */
    if ((rc = loss1_forward(s, &xh, labels, st))) return rc;
    if ((rc = loss23_forward(s, x, c, &xh, st))) return rc;
    if (!isfinite(st->loss))
        return dj_error(DJ_ENUMERIC, "jnd step: the loss is %g (Loss1 %g, Loss2 %g, Loss3 %g)", st->loss, st->loss1,
                        st->loss2, st->loss3);
    /* 4, 5 */
    if ((rc = loss1_backward(s, x->n))) return rc;
    if ((rc = ed_backward(s, x, c))) return rc;
    /* 6 */
    if (opt && (rc = dj_optim_step(opt, lr))) return rc;
    return DJ_OK;
}

/* ============================================================ evaluation */

int dj_jnd_step_eval(dj_jnd_step *s, const dj_tensor *x, const dj_tensor *c, const float *margin,
                     const int32_t *labels, dj_jnd_step_stats *stored, dj_jnd_step_stats *as_float) {
    if (!s) return dj_error(DJ_EINVAL, "jnd step: NULL argument");
    int rc = check_batch(s, x, c, margin, labels);
    if (rc) return rc;
    const int n = x->n;
    const dj_jnd_norm *nm = &s->cfg.loss.norm;
    if ((rc = ed_forward(s, x, c, margin, 0, NULL))) return rc;
    if (as_float) {
        memset(as_float, 0, sizeof *as_float);
        as_float->n = n;
        dj_tensor xh = make_xhat(s, x, s->cfg.clip ? nm : NULL, &rc);
        if (!rc) rc = loss1_forward(s, &xh, labels, as_float);
        if (!rc) rc = loss23_forward(s, x, c, &xh, as_float);
        if (rc) return rc;
    }
    if (stored) {
        memset(stored, 0, sizeof *stored);
        stored->n = n;
        size_t npix = (size_t)n * HW;
        dj_tensor xh = make_xhat(s, x, NULL, &rc);
        if (rc) return rc;
        /* The image a user stores: clamp, round to 8 bits (a NaN becomes 0
         * and is reported); then what a classifier reads back. */
        int bad = dj_denormalize_u8(xh.data, npix, nm->mean, nm->std, s->u8);
        if (bad && bad != DJ_ENUMERIC) return bad;
        if ((rc = dj_normalize_u8(s->u8, npix, nm->mean, nm->std, xh.data))) return rc;
        if ((rc = loss1_forward(s, &xh, labels, stored))) return rc;
        if ((rc = loss23_forward(s, x, c, &xh, stored))) return rc;
        if (bad) stored->loss = NAN;
    }
    return DJ_OK;
}
