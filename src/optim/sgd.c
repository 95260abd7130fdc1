/* SGD with momentum, dampening, Nesterov and coupled weight decay, as
 * torch.optim.SGD in PyTorch 1.13 (_single_tensor_sgd):
 *
 *   d_p = d_p.add(param, alpha=weight_decay)
 *   buf = clone(d_p)                      (first step)
 *   buf.mul_(momentum).add_(d_p, alpha=1 - dampening)   (later)
 *   d_p = d_p.add(buf, alpha=momentum) if nesterov else buf
 *   param.add_(d_p, alpha=-lr)
 *
 * Each scalar is rounded to float once, as PyTorch's kernels do, and the
 * element-wise operations run in the same order, so results match PyTorch's
 * up to its use of fused multiply-adds in vectorised code (an ulp or so).
 *
 * The three loop variants (no momentum / first step / later steps) are kept
 * separate so each is a plain loop the compiler vectorises; the remaining
 * per-tensor flags (decay, nesterov) become selects. */
#include "optim/optim_impl.h"

void dj_sgd_step(dj_optim *o, float lr) {
    const dj_optim_config *c = &o->cfg;
    const float neg_lr = -lr;
    const float wd = (float)c->weight_decay;
    const float mom = (float)c->momentum;
    const float damp1 = (float)(1.0 - c->dampening);
    const int nesterov = c->nesterov;
    const int first = o->step == 0; /* PyTorch: momentum_buffer is None */
    size_t off = 0;

    for (size_t k = 0; k < o->count; k++) {
        const dj_param_ref *p = &o->params[k];
        float *restrict w = p->w;
        const float *restrict g = p->g;
        const size_t n = p->n;
        /* PyTorch skips the add when weight_decay == 0; do the same rather
         * than add 0*w (which would turn an infinite w into NaN). */
        const int use_wd = p->decay && c->weight_decay != 0;

        if (o->slots == 0) {
#pragma omp parallel for simd schedule(static) if (n > DJ_OPTIM_PARALLEL_MIN)
            for (size_t i = 0; i < n; i++) {
                float d = use_wd ? g[i] + wd * w[i] : g[i];
                w[i] = w[i] + neg_lr * d;
            }
            continue;
        }

        float *restrict buf = o->state + off;
        off += n;
        if (first) {
#pragma omp parallel for simd schedule(static) if (n > DJ_OPTIM_PARALLEL_MIN)
            for (size_t i = 0; i < n; i++) {
                float d = use_wd ? g[i] + wd * w[i] : g[i];
                buf[i] = d; /* no dampening on the first step, as PyTorch */
                float u = nesterov ? d + mom * d : d;
                w[i] = w[i] + neg_lr * u;
            }
        } else {
#pragma omp parallel for simd schedule(static) if (n > DJ_OPTIM_PARALLEL_MIN)
            for (size_t i = 0; i < n; i++) {
                float d = use_wd ? g[i] + wd * w[i] : g[i];
                float b = buf[i] * mom + damp1 * d;
                buf[i] = b;
                float u = nesterov ? d + mom * b : b;
                w[i] = w[i] + neg_lr * u;
            }
        }
    }
}
