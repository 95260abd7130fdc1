/* Per-image quality allocation: the rate methods' JND criterion (no
 * classifier) and guard's label check (the known classifiers), and the
 * classifiers themselves. dmvjnd/compress.h. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "compress/compress_impl.h"
#include "dmvjnd/codec.h"
#include "dmvjnd/compress.h"
#include "dmvjnd/dmvjnd.h"

static int cmp_int(const void *a, const void *b) { return *(const int *)a - *(const int *)b; }

int dj_compress_ladder(const dj_compress_config *cfg, const int *grid, int ngrid, int *ladder) {
    int n = 0;
    for (int q = cfg->ladder_step; q <= 100 && n < DJ_COMPRESS_MAX_LADDER; q += cfg->ladder_step) ladder[n++] = q;
    if (n && ladder[n - 1] != 100 && n < DJ_COMPRESS_MAX_LADDER) ladder[n++] = 100;
    for (int g = 0; g < ngrid && n < DJ_COMPRESS_MAX_LADDER; g++) ladder[n++] = grid[g];
    qsort(ladder, (size_t)n, sizeof *ladder, cmp_int);
    int u = 0;
    for (int i = 0; i < n; i++)
        if (!u || ladder[i] != ladder[u - 1]) ladder[u++] = ladder[i];
    return u;
}

/* The criterion is the open question of this allocation (which share of a
 * budget may a codec exceed before the classifiers notice?), so it is one
 * small function with a config value. */
int dj_compress_criterion_ok(const dj_compress_config *cfg, const uint8_t *x, const uint8_t *decoded,
                             const float *budget, size_t n) {
    const double s = cfg->strength;
    if (cfg->criterion == DJ_CRIT_MEAN) {
        double over = 0;
        for (size_t i = 0; i < n; i++) {
            double d = fabs((double)decoded[i] - (double)x[i]) - s * budget[i];
            if (d > 0) over += d;
        }
        return over <= cfg->tau * (double)n;
    }
    size_t over = 0;
    for (size_t i = 0; i < n; i++) over += fabs((double)decoded[i] - (double)x[i]) > s * budget[i];
    return (double)over <= cfg->tau * (double)n;
}

int dj_compress_rate_ladder(const dj_compress_config *cfg, const uint8_t *rgb, int h, int w, const float *budget,
                            const int *ladder, int nl, uint8_t *pass) {
    const dj_compress_method *plain = dj_compress_method_at(0);
    int rc = DJ_OK;
    for (int l = 0; l < nl && !rc; l++) {
        dj_coded c = {0};
        uint8_t *dec = NULL;
        int dh = 0, dw = 0;
        rc = dj_compress_code(cfg, plain, rgb, h, w, ladder[l], NULL, &c);
        if (!rc) rc = dj_compress_decode(cfg->codec, &c, &dec, &dh, &dw);
        if (!rc && (dh != h || dw != w)) rc = dj_error(DJ_EINTERNAL, "compress: the decoded size differs");
        if (!rc) pass[l] = (uint8_t)dj_compress_criterion_ok(cfg, rgb, dec, budget, (size_t)h * w * 3);
        free(dec);
        dj_coded_free(&c);
    }
    return rc;
}

int dj_compress_rate_pick(const int *ladder, int nl, const uint8_t *pass, int q) {
    for (int l = 0; l < nl && ladder[l] <= q; l++)
        if (pass[l]) return ladder[l];
    return q;
}

/* ------------------------------------------------------------ machines */

int dj_compress_machines_count(const dj_compress_machines *m) {
    return dj_jnd_generator_count(m->gen) + m->nextra;
}

int dj_compress_classify(const dj_compress_machines *m, const uint8_t *rgb, int n, int h, int w, int32_t *labels) {
    const int K0 = dj_jnd_generator_count(m->gen), K = K0 + m->nextra;
    if (n < 1) return DJ_OK;
    if (m->nextra && (h != 32 || w != 32))
        return dj_error(DJ_EINVAL, "compress: the extra classifiers take 32x32 images, not %dx%d", w, h);
    int32_t *lab = malloc((size_t)n * (K0 > 1 ? K0 : 1) * sizeof *lab);
    int32_t *pred = malloc((size_t)n * sizeof *pred);
    if (!lab || !pred) {
        free(lab);
        free(pred);
        return dj_error(DJ_ENOMEM, "compress: out of memory");
    }
    int rc = dj_jnd_generator_classify(m->gen, rgb, n, h, w, lab);
    for (int i = 0; !rc && i < n; i++)
        for (int k = 0; k < K0; k++) labels[(size_t)i * K + k] = lab[(size_t)i * K0 + k];
    dj_tensor x = {0};
    if (!rc && m->nextra) rc = dj_tensor_alloc(&x, n, h, w, 3);
    for (int k = 0; !rc && k < m->nextra; k++) {
        const dj_classifier *c = &m->extra[k];
        if (!(rc = dj_normalize_u8(rgb, (size_t)n * h * w, c->mean, c->std, x.data)))
            rc = dj_classify_batch(c->graph, &x, pred, NULL, NULL);
        for (int i = 0; !rc && i < n; i++) labels[(size_t)i * K + K0 + k] = pred[i];
    }
    dj_tensor_free(&x);
    free(lab);
    free(pred);
    return rc;
}

/* ------------------------------------------------------------ guard */

/* A start index within the plain rungs [0, nplain). */
static int clamp_start(int s, int nplain) { return s < 0 ? 0 : s >= nplain ? nplain - 1 : s; }

int dj_compress_guard(int n, int K, dj_compress_labels_fn labels_of, void *user, const int *ladder, int nplain,
                      int nl, const int *start, const int32_t *ref, int check, int *q, uint8_t *fallback) {
    enum { UP = 1, DOWN = -1, BELOW = -2, EXTRA = 2 }; /* dir: where the search goes next */
    const size_t N = (size_t)(n > 0 ? n : 1);
    int *cur = malloc(N * sizeof *cur); /* ladder index to test next, -1: done */
    int *dir = calloc(N, sizeof *dir);  /* 0: first test */
    int *todo = malloc(N * sizeof *todo), *tq = malloc(N * sizeof *tq);
    int32_t *lab = malloc(N * K * sizeof *lab);
    int rc = cur && dir && todo && tq && lab ? DJ_OK : dj_error(DJ_ENOMEM, "compress guard: out of memory");
    if (!rc && (nplain < 1 || nplain > nl))
        rc = dj_error(DJ_EINVAL, "compress guard: %d plain rungs of %d", nplain, nl);
    for (int i = 0; !rc && i < n; i++) {
        cur[i] = clamp_start(start[i], nplain);
        q[i] = 100;
        fallback[i] = 0;
    }
    for (int round = 0; !rc && round <= nl + 1; round++) {
        int nt = 0;
        for (int i = 0; i < n; i++)
            if (cur[i] >= 0) todo[nt] = i, tq[nt++] = ladder[cur[i]];
        if (!nt) break;
        if ((rc = labels_of(user, nt, todo, tq, lab))) break;
        for (int j = 0; j < nt; j++) {
            int i = todo[j], kept = 1;
            for (int k = 0; k < check; k++) kept &= lab[(size_t)j * K + k] == ref[(size_t)i * K + k];
            if (dir[i] == 0) dir[i] = kept ? DOWN : UP;
            if (kept) q[i] = ladder[cur[i]];
            int next = -1; /* the ladder index to test next; -1 when the search is over */
            if (dir[i] == DOWN) { /* walking down from a rung that kept them: the last that keeps */
                next = kept ? cur[i] - 1 : -1;
            } else if (kept) { /* every other phase takes the first rung that keeps them */
                next = -1;
            } else if (dir[i] == UP && cur[i] + 1 < nplain) {
                next = cur[i] + 1;
            } else if (dir[i] == UP || dir[i] == BELOW) {
                /* nothing from the start up kept them: the rungs below it, finest first, then the extras */
                int s0 = clamp_start(start[i], nplain);
                if (dir[i] == UP && s0 > 0) dir[i] = BELOW, next = s0 - 1;
                else if (dir[i] == BELOW && cur[i] > 0) next = cur[i] - 1;
                else if (nplain < nl) dir[i] = EXTRA, next = nplain;
            } else if (dir[i] == EXTRA && cur[i] + 1 < nl) {
                next = cur[i] + 1;
            }
            if (next < 0 && !kept && dir[i] != DOWN) q[i] = 100, fallback[i] = 1;
            cur[i] = next;
        }
    }
    free(cur), free(dir), free(todo), free(tq), free(lab);
    return rc;
}
