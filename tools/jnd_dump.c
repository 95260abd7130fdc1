/* jnd_dump: writes what tools/torch/check_jnd.py compares against the
 * PyTorch twin of the E-D and the losses (tools/torch/jnd.py).
 *
 *     jnd_dump OUTDIR [--width W] [--slope S] [--n N] [--size H W] [--seed S]
 *
 * Defaults: width 1, slope 0.01 (dj_jnd_ed_defaults), 4 images of 32x32,
 * seed 1. Builds the E-D with the seed, gives every batch norm a random
 * affine transform (gamma in [0.5, 1.5], beta in [-0.25, 0.25]) so those
 * parameters matter, draws x (uniform in [-1, 1], n x H x W x 3) and c
 * (uniform in [0, 1], n x H x W x 1), stacks them and then:
 *   1. forward in training mode (batch statistics) -> e;
 *   2. the losses of e, c with the default config (e in normalised units)
 *      and with DJ_JND_UNIT_PIXEL01, each with its gradient de for
 *      alpha = beta = 1;
 *   3. backward of de (the default unit's) -> the input gradient and every
 *      parameter gradient;
 *   4. x_hat = clip(x + e), PSNR (float and 8-bit) and mean |e| in levels;
 *   5. forward in inference mode (running statistics updated by step 1).
 * Writes
 *     OUTDIR/jnd_ed.weights.safetensors  dj_weights_save, BEFORE step 1
 *                                        (arch "jnd_ed"; metadata width,
 *                                        slope)
 *     OUTDIR/jnd_ed.io.safetensors       x, c, xc, e, de, de_pix01, dxc,
 *                                        x_hat, e_eval (NHWC), per-image
 *                                        loss2/loss3 for both units, the
 *                                        batch values as 1-element tensors
 *                                        (loss2, loss3, n, n0, ..., psnr,
 *                                        psnr_u8, mean_abs_255),
 *                                        "grad.<param>" and
 *                                        "after.<buffer>" (running
 *                                        statistics after step 1)
 * and prints one summary line. Exit status 0 on success. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dmvjnd/checkpoint.h"
#include "dmvjnd/dmvjnd.h"
#include "dmvjnd/graph.h"
#include "dmvjnd/jnd.h"
#include "dmvjnd/models.h"
#include "dmvjnd/safetensors.h"

static void fill_uniform(dj_rng *rng, float *x, size_t n, float lo, float hi) {
    for (size_t i = 0; i < n; i++) x[i] = lo + (hi - lo) * dj_rng_uniform(rng);
}

/* Random BN affine parameters (they start at gamma 1, beta 0). */
static void randomise_bn(dj_graph *g, dj_rng *rng) {
    for (int i = 0; i < dj_graph_num_params(g); i++) {
        const dj_param *p = dj_graph_param(g, i);
        size_t len = strlen(p->name);
        char buddy[256];
        for (int k = 0; k < 2; k++) {
            const char *suffix = k ? ".bias" : ".weight";
            size_t sl = strlen(suffix);
            if (len <= sl || strcmp(p->name + len - sl, suffix) || len >= sizeof buddy) continue;
            snprintf(buddy, sizeof buddy, "%.*s.running_mean", (int)(len - sl), p->name);
            if (dj_graph_find_param(g, buddy)) fill_uniform(rng, p->data, p->count, k ? -0.25f : 0.5f, k ? 0.25f : 1.5f);
        }
    }
}

static float *copy_of(const float *src, size_t n) {
    float *c = malloc(n * sizeof(float));
    if (c) memcpy(c, src, n * sizeof(float));
    return c;
}

/* Scalars kept alive until the writer is done. */
#define MAX_SCALARS 32
static float scalars[MAX_SCALARS];
static int nscalars;

static int add_scalar(dj_st_writer *w, const char *name, double v) {
    if (nscalars == MAX_SCALARS) return dj_error(DJ_EINTERNAL, "jnd_dump: too many scalars");
    scalars[nscalars] = (float)v;
    int64_t shape[1] = {1};
    return dj_st_writer_add_f32(w, name, 1, shape, &scalars[nscalars++]);
}

static int add_nhwc(dj_st_writer *w, const char *name, const dj_tensor *t) {
    int64_t shape[4] = {t->n, t->h, t->w, t->c};
    return dj_st_writer_add_f32(w, name, 4, shape, t->data);
}

int main(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
        fprintf(stderr, "usage: jnd_dump OUTDIR [--width W] [--slope S] [--n N] [--size H W] [--seed S] [--conv direct|winograd]\n");
        return 2;
    }
    const char *dir = argv[1];
    dj_jnd_ed_config cfg = dj_jnd_ed_defaults();
    int n = 4, h = 32, wd = 32;
    unsigned long long seed = 1;
    int winograd = 0; /* exact parity wants the direct kernel (check_jnd.py says why) */
    for (int i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "--width") && i + 1 < argc)
            cfg.width = strtof(argv[++i], NULL);
        else if (!strcmp(argv[i], "--slope") && i + 1 < argc)
            cfg.slope = strtof(argv[++i], NULL);
        else if (!strcmp(argv[i], "--n") && i + 1 < argc)
            n = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--size") && i + 2 < argc) {
            h = atoi(argv[++i]);
            wd = atoi(argv[++i]);
        } else if (!strcmp(argv[i], "--seed") && i + 1 < argc)
            seed = strtoull(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--conv") && i + 1 < argc)
            winograd = !strcmp(argv[++i], "winograd");
        else {
            fprintf(stderr, "jnd_dump: unknown or incomplete option '%s'\n", argv[i]);
            return 2;
        }
    }
    if (n < 1) {
        fprintf(stderr, "jnd_dump: --n must be >= 1\n");
        return 2;
    }

    dj_graph_set_default_winograd(winograd);
    dj_graph *g = NULL;
    dj_rng rng, data;
    dj_rng_seed(&rng, seed);
    dj_rng_seed(&data, seed + 1000);
    dj_tensor x = {0}, c = {0}, xc = {0}, de = {0}, depix = {0}, dxc = {0}, xhat = {0};
    float *e = NULL, *e_eval = NULL, *after = NULL, *grads = NULL;
    float *l2 = NULL, *l3 = NULL, *l2p = NULL, *l3p = NULL;
    dj_st_writer *w = NULL;
    int rc = dj_model_jnd_ed(&g, &cfg, h, wd, &rng);
    if (rc) goto done;
    randomise_bn(g, &data);

    char path[4096], sw[32], ss[32];
    snprintf(sw, sizeof sw, "%g", cfg.width);
    snprintf(ss, sizeof ss, "%g", cfg.slope);
    dj_kv meta[3] = {{"width", sw}, {"slope", ss}, {"purpose", "parity test of the E-D and the JND losses"}};
    snprintf(path, sizeof path, "%s/jnd_ed.weights.safetensors", dir);
    if ((rc = dj_weights_save(path, g, "jnd_ed", meta, 3))) goto done;

    if ((rc = dj_tensor_alloc(&x, n, h, wd, 3)) || (rc = dj_tensor_alloc(&c, n, h, wd, 1)) ||
        (rc = dj_tensor_alloc(&xc, n, h, wd, 4)) || (rc = dj_tensor_alloc(&de, n, h, wd, 3)) ||
        (rc = dj_tensor_alloc(&depix, n, h, wd, 3)) || (rc = dj_tensor_alloc(&dxc, n, h, wd, 4)) ||
        (rc = dj_tensor_alloc(&xhat, n, h, wd, 3)))
        goto done;
    fill_uniform(&data, x.data, dj_tensor_numel(&x), -1, 1);
    fill_uniform(&data, c.data, dj_tensor_numel(&c), 0, 1);
    if ((rc = dj_jnd_stack(&x, &c, NULL, &xc))) goto done;

    /* 1. training forward */
    const dj_tensor *y;
    dj_graph_zero_grad(g);
    if ((rc = dj_graph_forward(g, &xc, 1, NULL, &y))) goto done;
    size_t ne = dj_tensor_numel(y);
    if (!(e = copy_of(y->data, ne))) goto oom;
    dj_tensor te = dj_tensor_view(e, n, h, wd, 3);

    /* 2. losses, both units */
    dj_jnd_loss_config lc = dj_jnd_loss_defaults(), lp = lc;
    lp.e_unit = DJ_JND_UNIT_PIXEL01;
    l2 = malloc(n * sizeof(float));
    l3 = malloc(n * sizeof(float));
    l2p = malloc(n * sizeof(float));
    l3p = malloc(n * sizeof(float));
    if (!l2 || !l3 || !l2p || !l3p) goto oom;
    dj_jnd_loss_values v, vp;
    if ((rc = dj_jnd_losses(&te, &c, &lc, 1.0f, 1.0f, &v, &de, 0)) ||
        (rc = dj_jnd_losses(&te, &c, &lp, 1.0f, 1.0f, &vp, &depix, 0)) ||
        (rc = dj_jnd_loss2(&te, &c, &lc, NULL, l2, 1.0f, NULL, 0)) ||
        (rc = dj_jnd_loss3(&te, &c, &lc, NULL, l3, 1.0f, NULL, 0)) ||
        (rc = dj_jnd_loss2(&te, &c, &lp, NULL, l2p, 1.0f, NULL, 0)) ||
        (rc = dj_jnd_loss3(&te, &c, &lp, NULL, l3p, 1.0f, NULL, 0)))
        goto done;

    /* 3. backward */
    if ((rc = dj_graph_backward(g, &de, &dxc))) goto done;

    /* 4. distortion and metrics */
    dj_jnd_norm nm = dj_jnd_norm_paper();
    double psnr, psnr_u8, mabs;
    if ((rc = dj_jnd_apply(&x, &te, &nm, &xhat)) || (rc = dj_jnd_psnr(&x, &xhat, &nm, 0, NULL, &psnr)) ||
        (rc = dj_jnd_psnr(&x, &xhat, &nm, 1, NULL, &psnr_u8)) || (rc = dj_jnd_mean_abs_255(&te, &nm, NULL, &mabs)))
        goto done;

    /* copies of the gradients and of the running statistics before step 5 */
    size_t total = 0;
    for (int i = 0; i < dj_graph_num_params(g); i++) total += dj_graph_param(g, i)->count;
    if (!(grads = calloc(total, sizeof(float))) || !(after = calloc(total, sizeof(float)))) goto oom;

    if ((rc = dj_st_writer_new(&w))) goto done;
    size_t off = 0;
    for (int i = 0; i < dj_graph_num_params(g) && !rc; i++) {
        const dj_param *p = dj_graph_param(g, i);
        char name[300];
        if (p->trainable) {
            memcpy(grads + off, p->grad, p->count * sizeof(float));
            snprintf(name, sizeof name, "grad.%s", p->name);
            rc = dj_st_writer_add_f32(w, name, p->ndim, p->shape, grads + off);
        } else {
            memcpy(after + off, p->data, p->count * sizeof(float));
            snprintf(name, sizeof name, "after.%s", p->name);
            rc = dj_st_writer_add_f32(w, name, p->ndim, p->shape, after + off);
        }
        off += p->count;
    }
    if (rc) goto done;

    /* 5. inference forward */
    if ((rc = dj_graph_forward(g, &xc, 0, NULL, &y))) goto done;
    if (!(e_eval = copy_of(y->data, ne))) goto oom;
    dj_tensor tev = dj_tensor_view(e_eval, n, h, wd, 3);

    int64_t sn[1] = {n};
    if ((rc = add_nhwc(w, "x", &x)) || (rc = add_nhwc(w, "c", &c)) || (rc = add_nhwc(w, "xc", &xc)) ||
        (rc = add_nhwc(w, "e", &te)) || (rc = add_nhwc(w, "de", &de)) || (rc = add_nhwc(w, "de_pix01", &depix)) ||
        (rc = add_nhwc(w, "dxc", &dxc)) || (rc = add_nhwc(w, "x_hat", &xhat)) || (rc = add_nhwc(w, "e_eval", &tev)) ||
        (rc = dj_st_writer_add_f32(w, "loss2_per_image", 1, sn, l2)) ||
        (rc = dj_st_writer_add_f32(w, "loss3_per_image", 1, sn, l3)) ||
        (rc = dj_st_writer_add_f32(w, "loss2_pix01_per_image", 1, sn, l2p)) ||
        (rc = dj_st_writer_add_f32(w, "loss3_pix01_per_image", 1, sn, l3p)) || (rc = add_scalar(w, "loss2", v.loss2)) ||
        (rc = add_scalar(w, "loss3", v.loss3)) || (rc = add_scalar(w, "n", v.n)) || (rc = add_scalar(w, "n0", v.n0)) ||
        (rc = add_scalar(w, "loss2_pix01", vp.loss2)) || (rc = add_scalar(w, "loss3_pix01", vp.loss3)) ||
        (rc = add_scalar(w, "n0_pix01", vp.n0)) || (rc = add_scalar(w, "psnr", psnr)) ||
        (rc = add_scalar(w, "psnr_u8", psnr_u8)) || (rc = add_scalar(w, "mean_abs_255", mabs)) ||
        (rc = dj_st_writer_set_metadata(w, "width", sw)) || (rc = dj_st_writer_set_metadata(w, "slope", ss)))
        goto done;
    snprintf(path, sizeof path, "%s/jnd_ed.io.safetensors", dir);
    if ((rc = dj_st_writer_write(w, path))) goto done;
    printf("jnd_dump: width %s slope %s, %d x %dx%d, %zu trainable params, %.1f MFLOP/img; loss2 %.6f loss3 %.6f "
           "(N %.4f, N0 %.4f), PSNR %.2f dB (8-bit %.2f), mean |e| %.2f levels\n",
           sw, ss, n, h, wd, dj_graph_trainable_count(g), dj_graph_flops(g) / 1e6, v.loss2, v.loss3, v.n, v.n0, psnr,
           psnr_u8, mabs);
    goto done;
oom:
    rc = dj_error(DJ_ENOMEM, "jnd_dump: out of memory");
done:
    if (rc) fprintf(stderr, "jnd_dump: %s\n", dj_last_error());
    dj_st_writer_free(w);
    dj_tensor_free(&x);
    dj_tensor_free(&c);
    dj_tensor_free(&xc);
    dj_tensor_free(&de);
    dj_tensor_free(&depix);
    dj_tensor_free(&dxc);
    dj_tensor_free(&xhat);
    free(e);
    free(e_eval);
    free(grads);
    free(after);
    free(l2);
    free(l3);
    free(l2p);
    free(l3p);
    dj_graph_destroy(g);
    return rc ? 1 : 0;
}
