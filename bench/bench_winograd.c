/* Winograd (src/nn/winograd.c) against oneDNN's direct kernel (dj_conv_*) on
 * ResNet-20's 3x3 stride-1 layers, batch 128, forward and backward-data.
 *
 * Build (after `make lib`, from the repository root):
 *   cc -std=c11 -O3 -march=native -fopenmp -Iinclude -Isrc -D_GNU_SOURCE \
 *      bench/bench_winograd.c build/libdmvjnd.a -ldnnl -lpng -lz -lm -o build/bench_winograd
 * Run:
 *   build/bench_winograd [reps=40] [threads=0 (all)] [tiles_per_block=0 (auto)] [batch=128] [layer=-1 (all)]
 *
 * Each configuration is timed `reps` times, interleaved with the others (so
 * load from other jobs hits all alike) and the best time is reported, with
 * GFLOP/s-equivalent = direct-convolution FLOPs (2*9*cin*cout*oh*ow*n) / time.
 * The post-op columns time the fused residual sum + ReLU of frozen nets. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dmvjnd/dmvjnd.h"
#include "nn/winograd.h"

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void fill(float *p, size_t n, unsigned seed) {
    unsigned s = seed * 2654435761u + 1;
    for (size_t i = 0; i < n; i++) {
        s = s * 1664525u + 1013904223u;
        p[i] = (float)((s >> 8) & 0xffff) / 32768.f - 1.f;
    }
}

enum { ONEDNN, WINO2, WINO4, NKIND };
static const char *kind_name[NKIND] = {"oneDNN direct", "winograd F(2x2,3x3)", "winograd F(4x4,3x3)"};

int main(int argc, char **argv) {
    int reps = argc > 1 ? atoi(argv[1]) : 40;
    int threads = argc > 2 ? atoi(argv[2]) : 0;
    int tb = argc > 3 ? atoi(argv[3]) : 0;
    int batch = argc > 4 ? atoi(argv[4]) : 128;
    int only = argc > 5 ? atoi(argv[5]) : -1;
    dj_set_num_threads(threads);
    printf("threads %d, batch %d, best of %d, tiles/block %s\n", dj_get_num_threads(), batch, reps,
           tb ? argv[3] : "auto");
    static const int layers[][3] = {{32, 16, 16}, {16, 32, 32}, {8, 64, 64}, {32, 3, 16}};
    for (int l = 0; l < 4; l++) {
        if (only >= 0 && l != only) continue;
        int hw = layers[l][0], cin = layers[l][1], cout = layers[l][2];
        dj_tensor x, y, dy, dx;
        if (dj_tensor_alloc(&x, batch, hw, hw, cin) || dj_tensor_alloc(&y, batch, hw, hw, cout) ||
            dj_tensor_alloc(&dy, batch, hw, hw, cout) || dj_tensor_alloc(&dx, batch, hw, hw, cin)) {
            fprintf(stderr, "out of memory\n");
            return 1;
        }
        size_t nw = (size_t)cout * cin * 9;
        float *w = malloc(nw * sizeof(float)), *b = malloc((size_t)cout * sizeof(float));
        fill(x.data, dj_tensor_numel(&x), 1);
        fill(dy.data, dj_tensor_numel(&dy), 2);
        fill(w, nw, 3);
        fill(b, (size_t)cout, 4);
        for (size_t i = 0; i < nw; i++) w[i] *= 0.2f;
        dj_conv_desc d = {.cin = cin, .cout = cout, .k = 3, .stride = 1, .pad = 1, .bias = 1};
        dj_conv_desc dp = d;
        dp.post_sum = dp.post_relu = 1;
        dj_conv *c = NULL, *cp = NULL;
        dj_wino *o[NKIND] = {NULL};
        if (dj_conv_create(&c, &d) || dj_conv_create(&cp, &dp)) {
            fprintf(stderr, "%s\n", dj_last_error());
            return 1;
        }
        for (int k = WINO2; k <= WINO4; k++) {
            dj_wino_create(&o[k], cin, cout, 1, 0);
            dj_wino_tune(o[k], k == WINO2 ? 2 : 4, tb);
        }
        /* best[kind][pass]: pass 0 forward, 1 backward-data, 2 forward + sum + relu */
        double best[NKIND][3];
        for (int k = 0; k < NKIND; k++)
            for (int p = 0; p < 3; p++) best[k][p] = 1e30;
        for (int r = 0; r < reps + 2; r++) /* 2 warm-up rounds */
            for (int k = 0; k < NKIND; k++)
                for (int p = 0; p < 3; p++) {
                    double t0 = now();
                    int rc;
                    if (k == ONEDNN)
                        rc = p == 0   ? dj_conv_forward(c, &x, w, b, &y)
                             : p == 1 ? dj_conv_backward_data(c, &dy, w, &dx, 0)
                                      : dj_conv_forward(cp, &x, w, b, &y);
                    else
                        rc = p == 1 ? dj_wino_backward_data(o[k], &dy, w, &dx, 0)
                                    : dj_wino_forward(o[k], &x, w, b, &y, p == 2, p == 2);
                    double t = now() - t0;
                    if (rc) {
                        fprintf(stderr, "%s\n", dj_last_error());
                        return 1;
                    }
                    if (p == 2) fill(y.data, 64, 5); /* keep the residual input bounded */
                    if (r >= 2 && t < best[k][p]) best[k][p] = t;
                }
        double flop = 2.0 * 9 * cin * cout * (double)hw * hw * batch;
        printf("\n%dx%d %d->%d, n %d (%.0f MFLOP direct; %s fwd / %s bwd-data)\n", hw, hw, cin, cout, batch,
               flop * 1e-6, dj_conv_impl_name(c, 0), dj_conv_impl_name(c, 1));
        printf("  %-22s %22s %22s %22s\n", "", "forward", "backward-data", "fwd+sum+relu");
        for (int k = 0; k < NKIND; k++) {
            printf("  %-22s", kind_name[k]);
            for (int p = 0; p < 3; p++)
                printf("   %7.3f ms %5.1f GF/s", best[k][p] * 1e3, flop / best[k][p] * 1e-9);
            if (k != ONEDNN)
                printf("   speedup %.2fx / %.2fx / %.2fx", best[ONEDNN][0] / best[k][0], best[ONEDNN][1] / best[k][1],
                       best[ONEDNN][2] / best[k][2]);
            printf("\n");
        }
        for (int k = WINO2; k <= WINO4; k++) dj_wino_destroy(o[k]);
        dj_conv_destroy(c);
        dj_conv_destroy(cp);
        dj_tensor_free(&x);
        dj_tensor_free(&y);
        dj_tensor_free(&dy);
        dj_tensor_free(&dx);
        free(w);
        free(b);
    }
    return 0;
}
