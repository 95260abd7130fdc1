/* Winograd F(4x4, 3x3) (src/nn/winograd*.c), AVX2 and AVX-512 paths,
 * against oneDNN's direct kernel (dj_conv_* under the "direct" path) and
 * oneDNN's own Winograd (the backend, src/backend/dnnl.c, asked for
 * dnnl_convolution_winograd; it exists for avx512_core only and falls back to
 * the direct kernel elsewhere: the implementation name says which) on the
 * 3x3 stride-1 layers of ResNet-20, VGG-11-BN and AlexNet (CIFAR sizes):
 * forward, backward-data and backward-weights.
 *
 * Build (after `make lib`, from the repository root):
 *   cc -std=c11 -O3 -march=native -fopenmp -Iinclude -Isrc -D_GNU_SOURCE \
 *      bench/bench_winograd.c build/libdmvjnd.a -ldnnl -lpng -ljpeg -lwebp -lz -lm -o build/bench_winograd
 * Run:
 *   build/bench_winograd [reps=20] [threads=0 (all)] [batch=128] [layer=-1 (all)] [clock=wall|cpu]
 *
 * Each configuration is timed `reps` times, interleaved with the others (so
 * load from other jobs hits all alike) and the best time is reported, with
 * GFLOP/s-equivalent = direct-convolution FLOPs (2*9*cin*cout*oh*ow*n) / time.
 * The AVX-512 row is skipped on a CPU without AVX-512. clock=cpu times the
 * process's CPU time instead of wall time: with threads=1 on a machine shared
 * with other jobs it counts only this program's work (the wall time then
 * mostly measures the other jobs). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backend/dnnl_conv.h"
#include "dmvjnd/conv_path.h"
#include "dmvjnd/dmvjnd.h"
#include "nn/winograd.h"

static clockid_t clock_id = CLOCK_MONOTONIC;

static double now(void) {
    struct timespec ts;
    clock_gettime(clock_id, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void fill(float *p, size_t n, unsigned seed) {
    unsigned s = seed * 2654435761u + 1;
    for (size_t i = 0; i < n; i++) {
        s = s * 1664525u + 1013904223u;
        p[i] = (float)((s >> 8) & 0xffff) / 32768.f - 1.f;
    }
}

enum { ONEDNN, ONEDNN_WINO, AVX2, AVX512, NKIND };
static const char *kind_name[NKIND] = {"oneDNN direct", "oneDNN winograd", "winograd F4 avx2", "winograd F4 avx512"};
static const char *pass_name[3] = {"forward", "backward-data", "backward-weights"};

/* {h = w, cin, cout, model} */
static const struct {
    int hw, cin, cout;
    const char *net;
} layers[] = {
    {32, 16, 16, "resnet20"}, {16, 32, 32, "resnet20"}, {8, 64, 64, "resnet20"},  {32, 3, 48, "vgg11bn"}, {16, 48, 96, "vgg11bn"},
    {8, 96, 192, "vgg11bn"},  {8, 192, 192, "vgg11bn"}, {4, 192, 256, "vgg11bn"}, {4, 256, 256, "vgg11bn"},
    {16, 64, 128, "alexnet"}, {8, 128, 192, "alexnet"}, {8, 192, 128, "alexnet"}, {4, 128, 128, "alexnet"},
};

int main(int argc, char **argv) {
    int reps = argc > 1 ? atoi(argv[1]) : 20;
    int threads = argc > 2 ? atoi(argv[2]) : 0;
    int batch = argc > 3 ? atoi(argv[3]) : 128;
    int only = argc > 4 ? atoi(argv[4]) : -1;
    if (argc > 5 && !strcmp(argv[5], "cpu")) clock_id = CLOCK_PROCESS_CPUTIME_ID;
    dj_set_num_threads(threads);
    if (dj_conv_set_path("direct")) { /* dj_conv_* below: oneDNN's direct kernel */
        fprintf(stderr, "%s\n", dj_last_error());
        return 1;
    }
    printf("threads %d, batch %d, best of %d, %s time\n", dj_get_num_threads(), batch, reps,
           clock_id == CLOCK_MONOTONIC ? "wall" : "CPU");
    for (int l = 0; l < (int)(sizeof layers / sizeof *layers); l++) {
        if (only >= 0 && l != only) continue;
        int hw = layers[l].hw, cin = layers[l].cin, cout = layers[l].cout;
        dj_tensor x, y, dy, dx;
        if (dj_tensor_alloc(&x, batch, hw, hw, cin) || dj_tensor_alloc(&y, batch, hw, hw, cout) ||
            dj_tensor_alloc(&dy, batch, hw, hw, cout) || dj_tensor_alloc(&dx, batch, hw, hw, cin)) {
            fprintf(stderr, "out of memory\n");
            return 1;
        }
        size_t nw = (size_t)cout * cin * 9;
        float *w = malloc(nw * sizeof(float)), *b = malloc((size_t)cout * sizeof(float));
        float *dw = calloc(nw, sizeof(float)), *db = calloc((size_t)cout, sizeof(float));
        fill(x.data, dj_tensor_numel(&x), 1);
        fill(dy.data, dj_tensor_numel(&dy), 2);
        fill(w, nw, 3);
        fill(b, (size_t)cout, 4);
        for (size_t i = 0; i < nw; i++) w[i] *= 0.2f;
        dj_conv_desc d = {.cin = cin, .cout = cout, .k = 3, .stride = 1, .pad = 1, .bias = 1};
        dj_conv_desc dw_desc = d;
        dw_desc.winograd = 1;
        dj_conv *c = NULL;
        dj_bconv *cw = NULL;
        dj_wino *o[NKIND] = {NULL};
        if (dj_conv_create(&c, &d) || dj_bconv_create(&cw, &dw_desc)) {
            fprintf(stderr, "%s\n", dj_last_error());
            return 1;
        }
        int have[NKIND] = {1, 1, 0, 0};
        for (int k = AVX2; k <= AVX512; k++)
            have[k] = dj_wino_create(&o[k], cin, cout, 1, 0) == 0 && dj_wino_set_isa(o[k], k == AVX512) == 0;
        double best[NKIND][3];
        for (int k = 0; k < NKIND; k++)
            for (int p = 0; p < 3; p++) best[k][p] = 1e30;
        for (int r = 0; r < reps + 2; r++) /* 2 warm-up rounds */
            for (int k = 0; k < NKIND; k++)
                for (int p = 0; p < 3 && have[k]; p++) {
                    double t0 = now();
                    int rc;
                    if (k == ONEDNN)
                        rc = p == 0   ? dj_conv_forward(c, &x, w, b, &y)
                             : p == 1 ? dj_conv_backward_data(c, &dy, w, &dx, 0)
                                      : dj_conv_backward_weights(c, &x, &dy, dw, db);
                    else if (k == ONEDNN_WINO)
                        rc = p == 0   ? dj_bconv_forward(cw, &x, w, b, &y)
                             : p == 1 ? dj_bconv_backward_data(cw, &dy, w, &dx, 0)
                                      : dj_bconv_backward_weights(cw, &x, &dy, dw, db);
                    else
                        rc = p == 0   ? dj_wino_forward(o[k], &x, w, b, &y, 0, 0)
                             : p == 1 ? dj_wino_backward_data(o[k], &dy, w, &dx, 0)
                                      : dj_wino_backward_weights(o[k], &x, &dy, dw, db);
                    double t = now() - t0;
                    if (rc) {
                        fprintf(stderr, "%s\n", dj_last_error());
                        return 1;
                    }
                    if (r >= 2 && t < best[k][p]) best[k][p] = t;
                }
        double flop = 2.0 * 9 * cin * cout * (double)hw * hw * batch;
        printf("\n%s %dx%d %d->%d, n %d (%.0f MFLOP direct; oneDNN %s; oneDNN asked for Winograd: %s / %s / %s)\n",
               layers[l].net, hw, hw, cin, cout, batch, flop * 1e-6, dj_conv_impl_name(c, 0),
               dj_bconv_impl_name(cw, 0), dj_bconv_impl_name(cw, 1), dj_bconv_impl_name(cw, 2));
        printf("  %-20s %22s %22s %22s\n", "", pass_name[0], pass_name[1], pass_name[2]);
        for (int k = 0; k < NKIND; k++) {
            if (!have[k]) {
                printf("  %-20s   SKIP: %s\n", kind_name[k], dj_last_error());
                continue;
            }
            printf("  %-20s", kind_name[k]);
            for (int p = 0; p < 3; p++) printf("   %7.3f ms %5.0f GF/s", best[k][p] * 1e3, flop / best[k][p] * 1e-9);
            if (k != ONEDNN)
                printf("   vs oneDNN %.2fx / %.2fx / %.2fx", best[ONEDNN][0] / best[k][0],
                       best[ONEDNN][1] / best[k][1], best[ONEDNN][2] / best[k][2]);
            printf("\n");
        }
        for (int k = AVX2; k <= AVX512; k++) dj_wino_destroy(o[k]);
        dj_conv_destroy(c);
        dj_bconv_destroy(cw);
        dj_tensor_free(&x);
        dj_tensor_free(&y);
        dj_tensor_free(&dy);
        dj_tensor_free(&dx);
        free(w);
        free(b);
        free(dw);
        free(db);
    }
    return 0;
}
