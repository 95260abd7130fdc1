/* Evaluating a DMV-JND model on CIFAR-10: RCA, PSNR, the WGN, shaped-noise
 * and homogeneity tests on stored 8-bit images. dmvjnd/jnd_eval.h.
 *
 * Each batch is one pass: the generator gives labels, CAM, e and x_hat
 * once; every other image tested is built from them, per image in
 * parallel, into one stack of float images (an 8-bit value v as v / 255.f,
 * which the generator normalises to the same bits as the byte), and the
 * whole stack goes through the classifiers in one call. */
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dmvjnd/budget.h"
#include "dmvjnd/dmvjnd.h"
#include "dmvjnd/jnd_eval.h"

#define H DJ_CIFAR10_SIDE
#define HW ((size_t)H * H)
#define NB (HW * 3) /* bytes per image */
#define STEPS DJ_JND_HOMOGENEITY_STEPS

dj_jnd_eval_config dj_jnd_eval_defaults(void) {
    dj_jnd_eval_config c = {
        .batch = 200, .seed = 1, .wgn = 1, .homogeneity = 1, .unclipped = 1, .subset = 0, .shaped = 1};
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
    long hvs_kept[DJ_JND_MAX_CLASSIFIERS], cam_kept[DJ_JND_MAX_CLASSIFIERS];
    double hvs_psnr, cam_psnr;
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
    s->hvs_rca_mean = s->hvs_psnr_db = s->camshaped_rca_mean = s->camshaped_psnr_db = NAN;
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
    if (cfg->shaped) {
        s->hvs_rca_mean = rcas(a->hvs_kept, a->n, K, s->hvs_rca);
        s->hvs_psnr_db = a->n ? a->hvs_psnr / a->n : NAN;
    }
    if (cfg->shaped) {
        s->camshaped_rca_mean = rcas(a->cam_kept, a->n, K, s->camshaped_rca);
        s->camshaped_psnr_db = a->n ? a->cam_psnr / a->n : NAN;
    }
}

/* ------------------------------------------------------------ noise tests */

void dj_jnd_wgn_u8(const uint8_t *x, const uint8_t *xh, size_t n, uint64_t seed, int record, float *z, uint8_t *out) {
    double energy = 0, zz = 0;
    for (size_t p = 0; p < n; p++) {
        double d = (double)xh[p] - x[p];
        energy += d * d;
    }
    dj_rng base, r;
    dj_rng_seed(&base, seed);
    r = dj_rng_fork(&base, (uint64_t)record);
    for (size_t p = 0; p < n; p++) {
        z[p] = dj_rng_normal(&r);
        zz += (double)z[p] * z[p];
    }
    /* z in levels: dj_jnd_add_u8 adds 255 * scale * z (one image: serial) */
    float scale = zz > 0 ? (float)(sqrt(energy / zz) / 255.0) : 0.f;
    for (size_t p = 0; p < n; p++) {
        float v = (float)x[p] + 255.f * scale * z[p];
        out[p] = !(v > 0.f) ? 0 : v >= 255.f ? 255 : (uint8_t)lrintf(v);
    }
}

/* Sum of squared 8-bit differences of clamp(round(x + s z)) from x. */
static double shaped_se(const uint8_t *x, const float *z, size_t n, double s, uint8_t *out) {
    double se = 0;
    for (size_t p = 0; p < n; p++) {
        float v = (float)x[p] + (float)s * z[p];
        uint8_t b = !(v > 0.f) ? 0 : v >= 255.f ? 255 : (uint8_t)lrintf(v);
        if (out) out[p] = b;
        double d = (double)b - x[p];
        se += d * d;
    }
    return se;
}

static double psnr_of_se(double se, size_t n) {
    if (se <= 0) return DJ_JND_PSNR_MAX;
    double p = 10.0 * log10(255.0 * 255.0 / (se / (double)n));
    return p > DJ_JND_PSNR_MAX ? DJ_JND_PSNR_MAX : p;
}

double dj_jnd_shaped_noise_u8(const uint8_t *x, const uint8_t *xh, const float *amp, int h, int w, uint64_t seed,
                              uint64_t stream, int record, float *z, uint8_t *out) {
    const size_t px = (size_t)h * w, n = px * 3;
    double target = 0, zz = 0;
    for (size_t p = 0; p < n; p++) {
        double d = (double)xh[p] - x[p];
        target += d * d;
    }
    dj_rng base, kind, r;
    dj_rng_seed(&base, seed);
    kind = dj_rng_fork(&base, stream << 32); /* never a record's WGN stream */
    r = dj_rng_fork(&kind, (uint64_t)record);
    uint64_t bits = 0;
    for (size_t p = 0; p < n; p++) {
        if (p % 64 == 0) bits = dj_rng_u64(&r);
        float a = amp[p / 3] > 0.f ? amp[p / 3] : 0.f;
        z[p] = (bits >> (p % 64)) & 1 ? a : -a;
        zz += (double)z[p] * z[p];
    }
    if (target <= 0 || zz <= 0) {
        memcpy(out, x, n);
        return dj_psnr_u8(x, out, n);
    }
    /* The squared error grows with s (in steps, as bytes round to the next
     * level; clamping slows it down). Start at the energy match, bracket the
     * target, then bisect for the smallest s reaching it; keep whichever
     * side of the step lands closer in dB. */
    double lo = 0, hi = sqrt(target / zz), se_lo = 0, se_hi = shaped_se(x, z, n, hi, NULL);
    for (int i = 0; i < 60 && se_hi < target; i++) {
        lo = hi;
        se_lo = se_hi;
        hi *= 2;
        se_hi = shaped_se(x, z, n, hi, NULL);
    }
    const double want = psnr_of_se(target, n);
    for (int i = 0; i < 60 && se_hi > target; i++) {
        if (fabs(psnr_of_se(se_hi, n) - want) < 1e-4) break;
        double mid = 0.5 * (lo + hi), se = shaped_se(x, z, n, mid, NULL);
        if (se < target) {
            lo = mid;
            se_lo = se;
        } else {
            hi = mid;
            se_hi = se;
        }
    }
    double s = fabs(psnr_of_se(se_lo, n) - want) < fabs(psnr_of_se(se_hi, n) - want) ? lo : hi;
    return psnr_of_se(shaped_se(x, z, n, s, out), n);
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

/* The images of the stack, in this order, those the config asks for. */
enum { V_FLOAT, V_WGN, V_HVS, V_CAM, V_HOMO, V_COUNT = V_HOMO + STEPS };

static void u8_to_unit(const uint8_t *b, size_t n, float *f) {
    for (size_t p = 0; p < n; p++) f[p] = (float)b[p] / 255.f;
}

int dj_jnd_evaluate(dj_jnd_generator *g, const dj_cifar10 *ds, const dj_jnd_eval_config *cfg_in,
                    dj_jnd_eval_stats *all, dj_jnd_eval_stats *sub, dj_jnd_eval_progress_fn progress, void *user) {
    if (!g || !ds || !ds->pixels || !all) return dj_error(DJ_EINVAL, "jnd evaluate: NULL argument");
    if (ds->n < 1) return dj_error(DJ_EINVAL, "jnd evaluate: no images");
    dj_jnd_eval_config cfg = cfg_in ? *cfg_in : dj_jnd_eval_defaults();
    const int B = cfg.batch > 0 ? cfg.batch : 200, K = dj_jnd_generator_count(g);
    /* slot[v]: position of variant v in the stack, -1 when not asked for */
    int slot[V_COUNT], V = 0;
    for (int v = 0; v < V_COUNT; v++) {
        int on = v == V_FLOAT ? cfg.unclipped
                 : v == V_WGN ? cfg.wgn
                 : v == V_HVS ? cfg.shaped
                 : v == V_CAM ? cfg.shaped
                 : cfg.homogeneity;
        slot[v] = on ? V++ : -1;
    }
    const int T = omp_get_max_threads();
    acc *A = calloc(2, sizeof *A); /* [0] all, [1] subset */
    float *e = malloc((size_t)B * NB * sizeof *e), *cam = malloc((size_t)B * HW * sizeof *cam);
    float *stack = V ? malloc((size_t)V * B * NB * sizeof *stack) : NULL;
    double *psnr = V ? malloc((size_t)V * B * sizeof *psnr) : NULL;
    float *zs = malloc((size_t)T * NB * sizeof *zs), *amps = malloc((size_t)T * HW * sizeof *amps);
    uint8_t *xh = malloc((size_t)B * NB), *alts = malloc((size_t)T * NB);
    int32_t *lab = V ? malloc((size_t)V * B * K * sizeof *lab) : NULL;
    dj_jnd_image_result *res = malloc((size_t)B * sizeof *res);
    int rc = A && e && cam && zs && amps && xh && alts && res && (!V || (stack && psnr && lab))
                 ? DJ_OK
                 : dj_error(DJ_ENOMEM, "jnd evaluate: out of memory");
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int start = 0; !rc && start < ds->n; start += B) {
        const int n = ds->n - start < B ? ds->n - start : B;
        const uint8_t *x = ds->pixels + (size_t)start * NB;
        if ((rc = dj_jnd_generator_run(g, x, n, H, H, xh, e, cfg.shaped ? cam : NULL, res))) break;
        /* the stack: image i of variant v at stack[(slot[v]*n + i) * NB] */
        int failed = DJ_OK;
#pragma omp parallel for schedule(dynamic, 1) reduction(min : failed)
        for (int i = 0; i < n; i++) {
            const int t = omp_get_thread_num(), record = ds->offset + start + i;
            const uint8_t *xi = x + (size_t)i * NB, *hi = xh + (size_t)i * NB;
            const float *ei = e + (size_t)i * NB;
            float *z = zs + (size_t)t * NB, *amp = amps + (size_t)t * HW;
            uint8_t *alt = alts + (size_t)t * NB;
#define AT(v) (stack + ((size_t)slot[v] * n + i) * NB)
#define PSNR_AT(v) psnr[(size_t)slot[v] * n + i]
            if (slot[V_FLOAT] >= 0) {
                float *f = AT(V_FLOAT);
                double se = 0;
                for (size_t p = 0; p < NB; p++) {
                    f[p] = (float)xi[p] / 255.f + ei[p];
                    double d = 255.0 * ei[p];
                    se += d * d;
                }
                double ps = se > 0 ? 10.0 * log10(255.0 * 255.0 / (se / (double)NB)) : DJ_JND_PSNR_MAX;
                PSNR_AT(V_FLOAT) = ps > DJ_JND_PSNR_MAX ? DJ_JND_PSNR_MAX : ps;
            }
            if (slot[V_WGN] >= 0) {
                dj_jnd_wgn_u8(xi, hi, NB, cfg.seed, record, z, alt);
                PSNR_AT(V_WGN) = dj_psnr_u8(xi, alt, NB);
                u8_to_unit(alt, NB, AT(V_WGN));
            }
            if (slot[V_HVS] >= 0) {
                int hr = dj_hvs_jnd_namm(xi, H, H, amp);
                if (hr) {
                    failed = hr;
                    memset(amp, 0, HW * sizeof *amp); /* no noise; the batch fails below */
                }
                PSNR_AT(V_HVS) = dj_jnd_shaped_noise_u8(xi, hi, amp, H, H, cfg.seed, 1, record, z, alt);
                u8_to_unit(alt, NB, AT(V_HVS));
            }
            if (slot[V_CAM] >= 0) {
                const float *c = cam + (size_t)i * HW;
                for (size_t p = 0; p < HW; p++) amp[p] = 1.f - c[p];
                PSNR_AT(V_CAM) = dj_jnd_shaped_noise_u8(xi, hi, amp, H, H, cfg.seed, 2, record, z, alt);
                u8_to_unit(alt, NB, AT(V_CAM));
            }
            for (int j = 0; slot[V_HOMO] >= 0 && j < STEPS; j++) {
                const float s = (float)(j + 1) / 9.f;
                for (size_t p = 0; p < NB; p++) {
                    float v = (float)xi[p] + 255.f * s * ei[p];
                    alt[p] = !(v > 0.f) ? 0 : v >= 255.f ? 255 : (uint8_t)lrintf(v);
                }
                PSNR_AT(V_HOMO + j) = dj_psnr_u8(xi, alt, NB);
                u8_to_unit(alt, NB, AT(V_HOMO + j));
            }
#undef AT
#undef PSNR_AT
        }
        if (failed) {
            rc = dj_error(failed, "jnd evaluate: the human-vision JND map failed: %s", dj_last_error());
            break;
        }
        if (V && (rc = dj_jnd_generator_classify_f32(g, stack, V * n, H, H, lab))) break;
        for (int i = 0; i < n; i++) {
            const int record = ds->offset + start + i;
            for (int s = 0; s < 2; s++) {
                if (s == 1 && !(record < cfg.subset)) continue;
                acc *a = &A[s];
                int all_kept;
                a->n++;
                add_kept(a->kept, res[i].before, res[i].after, K, &all_kept);
                a->all_kept += all_kept;
                a->psnr += res[i].psnr;
                a->abs_e += res[i].mean_abs_e;
                a->abs_diff += res[i].mean_abs_diff;
#define LAB(v) (lab + ((size_t)slot[v] * n + i) * K)
#define PSNR_AT(v) psnr[(size_t)slot[v] * n + i]
                if (slot[V_WGN] >= 0) {
                    add_kept(a->wgn_kept, res[i].before, LAB(V_WGN), K, NULL);
                    a->wgn_psnr += PSNR_AT(V_WGN);
                }
                if (slot[V_FLOAT] >= 0) {
                    add_kept(a->float_kept, res[i].before, LAB(V_FLOAT), K, NULL);
                    a->float_psnr += PSNR_AT(V_FLOAT);
                }
                for (int j = 0; slot[V_HOMO] >= 0 && j < STEPS; j++) {
                    add_kept(a->homo_kept[j], res[i].before, LAB(V_HOMO + j), K, NULL);
                    a->homo_psnr[j] += PSNR_AT(V_HOMO + j);
                }
                if (slot[V_HVS] >= 0) {
                    add_kept(a->hvs_kept, res[i].before, LAB(V_HVS), K, NULL);
                    a->hvs_psnr += PSNR_AT(V_HVS);
                }
                if (slot[V_CAM] >= 0) {
                    add_kept(a->cam_kept, res[i].before, LAB(V_CAM), K, NULL);
                    a->cam_psnr += PSNR_AT(V_CAM);
                }
#undef LAB
#undef PSNR_AT
            }
        }
        if (progress) {
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
    free(cam);
    free(stack);
    free(psnr);
    free(zs);
    free(amps);
    free(xh);
    free(alts);
    free(lab);
    free(res);
    return rc;
}
