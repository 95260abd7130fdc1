/* Evaluating a DMV-JND model on CIFAR-10: RCA, PSNR, the WGN and the
 * homogeneity tests on stored 8-bit images. dmvjnd/jnd_eval.h. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dmvjnd/dmvjnd.h"
#include "dmvjnd/jnd_eval.h"

#define H DJ_CIFAR10_SIDE
#define NB ((size_t)H * H * 3) /* bytes per image */
#define STEPS DJ_JND_HOMOGENEITY_STEPS

dj_jnd_eval_config dj_jnd_eval_defaults(void) {
    dj_jnd_eval_config c = {.batch = 200, .seed = 1, .wgn = 1, .homogeneity = 1, .unclipped = 1, .subset = 0};
    return c;
}

/* Running sums over a set of images. */
typedef struct acc {
    int n;
    long kept[DJ_JND_MAX_CLASSIFIERS], all_kept;
    double psnr, abs_e, abs_diff;
    long wgn_kept[DJ_JND_MAX_CLASSIFIERS];
    double wgn_psnr;
    long float_kept[DJ_JND_MAX_CLASSIFIERS];
    double float_psnr;
    long homo_kept[STEPS][DJ_JND_MAX_CLASSIFIERS];
    double homo_psnr[STEPS];
} acc;

static double frac(long a, int n) { return n ? (double)a / n : NAN; }

/* rca[k] = kept[k] / n and their mean over the K classifiers. */
static double rcas(const long *kept, int n, int K, double *rca) {
    double mean = 0;
    for (int k = 0; k < K; k++) {
        rca[k] = frac(kept[k], n);
        mean += rca[k] / K;
    }
    return mean;
}

static void finish(const acc *a, int K, const dj_jnd_eval_config *cfg, dj_jnd_eval_stats *s) {
    memset(s, 0, sizeof *s);
    s->images = a->n;
    s->classifiers = K;
    s->wgn_rca_mean = s->wgn_psnr_db = s->float_rca_mean = s->float_psnr_db = NAN;
    for (int j = 0; j < STEPS; j++) s->homogeneity_rca_mean[j] = s->homogeneity_psnr_db[j] = NAN;
    s->rca_mean = rcas(a->kept, a->n, K, s->rca);
    s->all_kept = frac(a->all_kept, a->n);
    s->psnr_db = a->n ? a->psnr / a->n : NAN;
    s->mean_abs_e = a->n ? a->abs_e / a->n : NAN;
    s->mean_abs_diff = a->n ? a->abs_diff / a->n : NAN;
    if (cfg->wgn) {
        s->wgn_rca_mean = rcas(a->wgn_kept, a->n, K, s->wgn_rca);
        s->wgn_psnr_db = a->n ? a->wgn_psnr / a->n : NAN;
    }
    if (cfg->unclipped) {
        s->float_rca_mean = rcas(a->float_kept, a->n, K, s->float_rca);
        s->float_psnr_db = a->n ? a->float_psnr / a->n : NAN;
    }
    if (cfg->homogeneity)
        for (int j = 0; j < STEPS; j++) {
            s->homogeneity_rca_mean[j] = rcas(a->homo_kept[j], a->n, K, s->homogeneity_rca[j]);
            s->homogeneity_psnr_db[j] = a->n ? a->homo_psnr[j] / a->n : NAN;
        }
}

/* x + noise with the energy of the stored distortion d = x_hat - x, for
 * record r: z ~ N(0, 1) per byte from (seed, r), scaled so that
 * sum (s z)^2 = sum d^2 exactly. */
static void add_wgn(const uint8_t *x, const uint8_t *xh, uint64_t seed, int record, float *z, uint8_t *out) {
    double energy = 0, zz = 0;
    for (size_t p = 0; p < NB; p++) {
        double d = (double)xh[p] - x[p];
        energy += d * d;
    }
    dj_rng base, r;
    dj_rng_seed(&base, seed);
    r = dj_rng_fork(&base, (uint64_t)record);
    for (size_t p = 0; p < NB; p++) {
        z[p] = dj_rng_normal(&r);
        zz += (double)z[p] * z[p];
    }
    /* z in levels: dj_jnd_add_u8 adds 255 * scale * z */
    float scale = zz > 0 ? (float)(sqrt(energy / zz) / 255.0) : 0.f;
    dj_jnd_add_u8(x, z, NB, scale, out);
}

static void add_kept(long *kept, const int32_t *a, const int32_t *b, int K, int *all) {
    int n = 0;
    for (int k = 0; k < K; k++) {
        int same = a[k] == b[k];
        kept[k] += same;
        n += same;
    }
    if (all) *all = n == K;
}

int dj_jnd_evaluate(dj_jnd_generator *g, const dj_cifar10 *ds, const dj_jnd_eval_config *cfg_in,
                    dj_jnd_eval_stats *all, dj_jnd_eval_stats *sub, dj_jnd_eval_progress_fn progress, void *user) {
    if (!g || !ds || !ds->pixels || !all) return dj_error(DJ_EINVAL, "jnd evaluate: NULL argument");
    if (ds->n < 1) return dj_error(DJ_EINVAL, "jnd evaluate: no images");
    dj_jnd_eval_config cfg = cfg_in ? *cfg_in : dj_jnd_eval_defaults();
    const int B = cfg.batch > 0 ? cfg.batch : 200, K = dj_jnd_generator_count(g);
    acc *A = calloc(2, sizeof *A); /* [0] all, [1] subset */
    float *e = malloc((size_t)B * NB * sizeof *e), *z = malloc(NB * sizeof *z);
    float *fl = cfg.unclipped ? malloc((size_t)B * NB * sizeof *fl) : NULL;
    uint8_t *xh = malloc((size_t)B * NB), *alt = malloc((size_t)B * NB);
    int32_t *lab = malloc((size_t)B * K * sizeof *lab);
    dj_jnd_image_result *res = malloc((size_t)B * sizeof *res);
    int rc = A && e && z && xh && alt && lab && res && (fl || !cfg.unclipped) ? DJ_OK : dj_error(DJ_ENOMEM, "jnd evaluate: out of memory");
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int start = 0; !rc && start < ds->n; start += B) {
        const int n = ds->n - start < B ? ds->n - start : B;
        const uint8_t *x = ds->pixels + (size_t)start * NB;
        if ((rc = dj_jnd_generator_run(g, x, n, H, H, xh, e, NULL, res))) break;
        for (int i = 0; i < n; i++) {
            int record = ds->offset + start + i, all_kept;
            for (int s = 0; s < 2; s++) {
                if (s == 1 && !(record < cfg.subset)) continue;
                acc *a = &A[s];
                a->n++;
                add_kept(a->kept, res[i].before, res[i].after, K, &all_kept);
                a->all_kept += all_kept;
                a->psnr += res[i].psnr;
                a->abs_e += res[i].mean_abs_e;
                a->abs_diff += res[i].mean_abs_diff;
            }
        }
        if (cfg.wgn) {
            for (int i = 0; i < n; i++)
                add_wgn(x + (size_t)i * NB, xh + (size_t)i * NB, cfg.seed, ds->offset + start + i, z,
                        alt + (size_t)i * NB);
            if ((rc = dj_jnd_generator_classify(g, alt, n, H, H, lab))) break;
            for (int i = 0; i < n; i++) {
                int record = ds->offset + start + i;
                double p = dj_psnr_u8(x + (size_t)i * NB, alt + (size_t)i * NB, NB);
                for (int s = 0; s < 2; s++) {
                    if (s == 1 && !(record < cfg.subset)) continue;
                    add_kept(A[s].wgn_kept, res[i].before, lab + (size_t)i * K, K, NULL);
                    A[s].wgn_psnr += p;
                }
            }
        }
        if (cfg.unclipped && !rc) {
            for (size_t p = 0; p < (size_t)n * NB; p++) fl[p] = (float)x[p] / 255.f + e[p];
            if ((rc = dj_jnd_generator_classify_f32(g, fl, n, H, H, lab))) break;
            for (int i = 0; i < n; i++) {
                int record = ds->offset + start + i;
                double se = 0;
                for (size_t p = 0; p < NB; p++) {
                    double d = 255.0 * e[(size_t)i * NB + p];
                    se += d * d;
                }
                double ps = se > 0 ? 10.0 * log10(255.0 * 255.0 / (se / (double)NB)) : DJ_JND_PSNR_MAX;
                if (ps > DJ_JND_PSNR_MAX) ps = DJ_JND_PSNR_MAX;
                for (int s = 0; s < 2; s++) {
                    if (s == 1 && !(record < cfg.subset)) continue;
                    add_kept(A[s].float_kept, res[i].before, lab + (size_t)i * K, K, NULL);
                    A[s].float_psnr += ps;
                }
            }
        }
        for (int j = 0; cfg.homogeneity && j < STEPS; j++) {
            dj_jnd_add_u8(x, e, (size_t)n * NB, (float)(j + 1) / 9.f, alt);
            if ((rc = dj_jnd_generator_classify(g, alt, n, H, H, lab))) break;
            for (int i = 0; i < n; i++) {
                int record = ds->offset + start + i;
                double p = dj_psnr_u8(x + (size_t)i * NB, alt + (size_t)i * NB, NB);
                for (int s = 0; s < 2; s++) {
                    if (s == 1 && !(record < cfg.subset)) continue;
                    add_kept(A[s].homo_kept[j], res[i].before, lab + (size_t)i * K, K, NULL);
                    A[s].homo_psnr[j] += p;
                }
            }
        }
        if (!rc && progress) {
            clock_gettime(CLOCK_MONOTONIC, &t1);
            double dt = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
            int done = start + n;
            double rate = dt > 0 ? done / dt : 0;
            progress(done, ds->n, rate, rate > 0 ? (ds->n - done) / rate : 0, user);
        }
    }
    if (!rc) {
        finish(&A[0], K, &cfg, all);
        if (sub) finish(&A[1], K, &cfg, sub);
    }
    free(A);
    free(e);
    free(fl);
    free(z);
    free(xh);
    free(alt);
    free(lab);
    free(res);
    return rc;
}
