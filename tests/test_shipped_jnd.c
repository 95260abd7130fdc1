/* The shipped DMV-JND model (models/jnd_v1.0.safetensors) keeps as many labels
 * and distorts as much as models/README.md says, on CIFAR-10 test records
 * 0-999 (the bit-exact ones here): the README's row that names the model
 * file carries "(N/M labels kept)" (N kept labels out of M = 1000 images x
 * the model's classifiers, on the stored 8-bit x + e) and the mean PSNR
 * "P dB" right after it; both are measured again here with
 * dj_jnd_evaluate.
 *
 * Tolerances: another thread count or CPU changes the order of
 * floating-point sums, which can move an image that sits on a decision
 * boundary or a pixel that rounds to the next level, so the count may differ
 * by 8 labels (0.2%) and the PSNR by 0.05 dB. A wrong or retrained file, a
 * stale figure or a broken kernel moves far more. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "shipped.h"
#include "dmvjnd/cifar10.h"
#include "dmvjnd/dmvjnd.h"
#include "dmvjnd/jnd_eval.h"
#include "dmvjnd/jnd_generate.h"

#define MODEL "jnd_v1.0.safetensors"
#define KEPT_TOLERANCE 8
#define PSNR_TOLERANCE 0.05

/* "| ... | `jnd_v1.0.safetensors` | ... 97.45% (3898/4000 labels kept) at 19.52 dB ..." */
static int parse_row(const char *line, int *kept, int *total, double *psnr) {
    if (line[0] != '|' || !strstr(line, "`" MODEL "`")) return 0;
    const char *k = strstr(line, " labels kept)");
    if (!k) return 0;
    const char *p = k;
    while (p > line && p[-1] != '(') p--;
    if (p == line || sscanf(p, "%d/%d", kept, total) != 2) return 0;
    const char *db = strstr(k, " dB");
    if (!db) return 0;
    const char *q = db;
    while (q > k && ((q[-1] >= '0' && q[-1] <= '9') || q[-1] == '.')) q--;
    if (q == db) return 0;
    *psnr = atof(q);
    return 1;
}

static void test_readme_figures(void) {
    char *text = shipped_readme("test_shipped_jnd");
    CHECK(text != NULL);
    if (!text) return;
    int kept = -1, total = 0, rows = 0;
    double psnr = 0;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n"))
        if (parse_row(line, &kept, &total, &psnr)) rows++;
    free(text);
    CHECK(rows == 1); /* exactly one row states the shipped model's figures */
    if (rows != 1) return;

    dj_cifar10 ds;
    dj_cifar10_opts o = {0, 1000, 0};
    if (dj_cifar10_load(&ds, NULL, "test", &o) != 0) {
        fprintf(stderr, "test_shipped_jnd: CIFAR-10 not found (%s)\n", dj_last_error());
        SKIP("no CIFAR-10 (scripts/get-cifar10.sh or DMVJND_DATA)");
    }
    dj_jnd_generator *g = NULL;
    if (dj_jnd_generator_create(&g, "models/" MODEL, NULL, 0) != 0) {
        fprintf(stderr, "test_shipped_jnd: %s\n", dj_last_error());
        CHECK(0);
        dj_cifar10_free(&ds);
        return;
    }
    int K = dj_jnd_generator_count(g);
    CHECK(total == 1000 * K);
    dj_jnd_eval_config cfg = dj_jnd_eval_defaults();
    cfg.wgn = cfg.homogeneity = cfg.unclipped = 0;
    dj_jnd_eval_stats st;
    CHECK_OK(dj_jnd_evaluate(g, &ds, &cfg, &st, NULL, NULL, NULL));
    int got = (int)lround(st.rca_mean * st.images * K);
    printf("%s: %d/%d labels kept, PSNR %.2f dB on test records 0-999 (models/README.md: %d/%d, %.2f dB)\n", MODEL,
           got, st.images * K, st.psnr_db, kept, total, psnr);
    CHECK(st.images == 1000);
    CHECK(abs(got - kept) <= KEPT_TOLERANCE);
    CHECK(fabs(st.psnr_db - psnr) <= PSNR_TOLERANCE);
    dj_jnd_generator_destroy(g);
    dj_cifar10_free(&ds);
}

int main(void) {
    dj_set_num_threads(2);
    RUN(test_readme_figures);
    return check_report("test_shipped_jnd");
}
