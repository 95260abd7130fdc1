/* Adam (coupled L2 decay) and AdamW (decoupled decay), as torch.optim.Adam
 * and torch.optim.AdamW in PyTorch 1.13 (_single_tensor_adam[w], no amsgrad):
 *
 *   AdamW only:  param.mul_(1 - lr * weight_decay)
 *   Adam only:   grad = grad.add(param, alpha=weight_decay)
 *   exp_avg.mul_(beta1).add_(grad, alpha=1 - beta1)
 *   exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
 *   step_size = lr / (1 - beta1**t)
 *   denom = (exp_avg_sq.sqrt() / sqrt(1 - beta2**t)).add_(eps)
 *   param.addcdiv_(exp_avg, denom, value=-step_size)
 *
 * The per-step scalars are computed in double (they are Python floats in
 * PyTorch) and rounded to float once; the element-wise work is in float in
 * the same order as PyTorch's kernels ((value*t1)*t2 for addcmul,
 * (value*t1)/t2 for addcdiv), so results agree with PyTorch to an ulp or two.
 *
 * The loop vectorises only when sqrtf may be inlined, i.e. with
 * -fno-math-errno: otherwise the compiler keeps a scalar call path that sets
 * errno for negative arguments (which cannot occur here: v >= 0). That is
 * also why the loop has no `simd` clause: with math-errno clang would warn
 * that it cannot honour it. The compiler's own vectoriser does the job when
 * allowed (it versions the loop for aliasing, a negligible check). */
#include <math.h>

#include "optim/optim_impl.h"

void dj_adam_step(dj_optim *o, float lr) {
    const dj_optim_config *c = &o->cfg;
    const double t = (double)(o->step + 1);
    const double bc1 = 1.0 - pow(c->beta1, t);
    const double bc2 = 1.0 - pow(c->beta2, t);
    const float neg_step = (float)(-((double)lr / bc1));
    const float bc2_sqrt = (float)sqrt(bc2);
    const float eps = (float)c->eps;
    const float b1 = (float)c->beta1, c1 = (float)(1.0 - c->beta1);
    const float b2 = (float)c->beta2, c2 = (float)(1.0 - c->beta2);
    const int adamw = c->kind == DJ_OPTIM_ADAMW;
    const float wd = (float)c->weight_decay;                         /* Adam */
    const float shrink = (float)(1.0 - (double)lr * c->weight_decay); /* AdamW */
    float *m_all = o->state, *v_all = o->state + o->numel;
    size_t off = 0;

    for (size_t k = 0; k < o->count; k++) {
        const dj_param_ref *p = &o->params[k];
        float *restrict w = p->w;
        const float *restrict g = p->g;
        float *restrict m = m_all + off;
        float *restrict v = v_all + off;
        const size_t n = p->n;
        off += n;
        /* PyTorch skips the decay when weight_decay == 0 (0*inf would be NaN). */
        const int use_wd = p->decay && c->weight_decay != 0;
        const int l2 = use_wd && !adamw, decoupled = use_wd && adamw;

#pragma omp parallel for schedule(static) if (n > DJ_OPTIM_PARALLEL_MIN)
        for (size_t i = 0; i < n; i++) {
            float wi = w[i];
            float d = l2 ? g[i] + wd * wi : g[i];
            float mi = m[i] * b1 + c1 * d;
            float vi = v[i] * b2 + c2 * d * d;
            m[i] = mi;
            v[i] = vi;
            float den = sqrtf(vi) / bc2_sqrt + eps;
            if (decoupled) wi = wi * shrink;
            w[i] = wi + neg_step * mi / den;
        }
    }
}
