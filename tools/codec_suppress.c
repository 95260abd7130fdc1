/*
 * Payload of plain vs JND-suppressed JPEG on CIFAR-10 test images with a
 * uniform budget, and the time per image.
 *
 *   build/tools/codec_suppress [N [BUDGET [QUALITY [REPEATS]]]]
 *
 * Defaults: the first 200 test images, budget 20 levels everywhere,
 * quality 75, 1 repeat. Reads $DMVJND_DATA (or the library's default
 * folder). Prints the summed payload and file bytes of both, the
 * suppression statistics, the largest |decoded - x| of both, and the mean
 * CPU time per image of dj_jpeg_encode and of dj_jpeg_encode_suppressed
 * (alternating, REPEATS rounds).
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "dmvjnd/cifar10.h"
#include "dmvjnd/codec.h"
#include "dmvjnd/dmvjnd.h"

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t); /* CPU time: the machine may be shared */
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

static int max_err(const dj_coded *c, const uint8_t *x) {
    uint8_t *rgb;
    int h, w, m = -1;
    if (dj_jpeg_decode(c->data, c->size, &rgb, &h, &w)) return -1;
    m = 0;
    for (int i = 0; i < h * w * 3; i++) {
        int e = abs((int)rgb[i] - (int)x[i]);
        if (e > m) m = e;
    }
    free(rgb);
    return m;
}

int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 200;
    float budget_level = argc > 2 ? (float)atof(argv[2]) : 20.0f;
    int quality = argc > 3 ? atoi(argv[3]) : 75;
    int repeats = argc > 4 ? atoi(argv[4]) : 1;
    dj_cifar10 ds;
    dj_cifar10_opts opts = {0};
    opts.limit = n;
    if (dj_cifar10_load(&ds, NULL, "test", &opts)) {
        fprintf(stderr, "codec_suppress: %s\n", dj_last_error());
        return 3;
    }
    float budget[3072];
    for (int i = 0; i < 3072; i++) budget[i] = budget_level;
    size_t pay_plain = 0, pay_sup = 0, size_plain = 0, size_sup = 0;
    long changed = 0, blocks = 0, restored = 0;
    int worst_plain = 0, worst_sup = 0, beyond = 0;
    double t_plain = 0, t_sup = 0;
    for (int r = 0; r < repeats; r++) {
        for (int i = 0; i < ds.n; i++) {
            const uint8_t *x = ds.pixels + (size_t)i * 3072;
            dj_coded p, s;
            dj_suppress_stats st;
            double t0 = now();
            int rc = dj_jpeg_encode(x, 32, 32, quality, &p);
            double t1 = now();
            rc = rc ? rc : dj_jpeg_encode_suppressed(x, 32, 32, quality, budget, &s, &st);
            double t2 = now();
            if (rc) {
                fprintf(stderr, "codec_suppress: image %d: %s\n", i, dj_last_error());
                return 4;
            }
            t_plain += t1 - t0;
            t_sup += t2 - t1;
            if (r == 0) {
                pay_plain += p.payload;
                pay_sup += s.payload;
                size_plain += p.size;
                size_sup += s.size;
                changed += st.coefficients_changed;
                blocks += st.blocks;
                restored += st.blocks_restored;
                int ep = max_err(&p, x), es = max_err(&s, x);
                if (ep > worst_plain) worst_plain = ep;
                if (es > worst_sup) worst_sup = es;
                if (es > (ep > budget_level ? ep : (int)budget_level)) beyond++;
            }
            dj_coded_free(&p);
            dj_coded_free(&s);
        }
    }
    printf("images %d, quality %d, budget %g levels\n", ds.n, quality, (double)budget_level);
    printf("payload bytes: plain %zu, suppressed %zu (%.2f%% saved)\n", pay_plain, pay_sup,
           100.0 * (1.0 - (double)pay_sup / (double)pay_plain));
    printf("file bytes:    plain %zu, suppressed %zu (%.2f%% saved)\n", size_plain, size_sup,
           100.0 * (1.0 - (double)size_sup / (double)size_plain));
    printf("coefficients changed %ld, blocks %ld, restored %ld\n", changed, blocks, restored);
    printf("max |decoded - x|: plain %d, suppressed %d; images with a pixel past max(budget, plain's worst): %d\n",
           worst_plain, worst_sup, beyond);
    printf("CPU time per image: dj_jpeg_encode %.1f us, dj_jpeg_encode_suppressed %.1f us (%d rounds)\n",
           1e6 * t_plain / (ds.n * (double)repeats), 1e6 * t_sup / (ds.n * (double)repeats), repeats);
    dj_cifar10_free(&ds);
    return 0;
}
