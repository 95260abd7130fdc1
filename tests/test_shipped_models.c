/* The shipped classifiers (models/<name>.safetensors) score what models/README.md
 * says on CIFAR-10 test records 0-999 (the bit-exact ones here): every table
 * row of the README that names a classifier file and an "(N/1000)" figure is
 * checked by loading the file and classifying those records again.
 *
 * The count may differ by at most 2 images: the figure was measured by
 * `dmvjnd classify` with the default kernels, and another thread count or
 * CPU changes the order of floating-point sums, which can move an image that
 * sits on a decision boundary. A wrong file, a stale figure or a broken
 * kernel moves far more than 2. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "shipped.h"
#include "dmvjnd/cifar10.h"
#include "dmvjnd/dmvjnd.h"
#include "dmvjnd/train.h"

#define TOLERANCE 2

/* One README row: "| arch | `file.safetensors` | ... | 91.30% (913/1000) | ...". */
static int parse_row(const char *line, char *file, size_t fsize, int *count) {
    if (line[0] != '|') return 0;
    const char *a = strchr(line, '`');
    const char *b = a ? strstr(a + 1, ".safetensors`") : NULL;
    const char *c = strstr(line, "/1000)");
    if (!a || !b || !c) return 0;
    size_t n = (size_t)(b - a - 1) + strlen(".safetensors");
    if (n >= fsize) return 0;
    memcpy(file, a + 1, n);
    file[n] = '\0';
    const char *p = c;
    while (p > line && p[-1] >= '0' && p[-1] <= '9') p--;
    if (p == c || p[-1] != '(') return 0;
    *count = atoi(p);
    return 1;
}

static void test_readme_figures(void) {
    char *text = shipped_readme("test_shipped_models");
    CHECK(text != NULL);
    if (!text) return;
    dj_cifar10 ds;
    dj_cifar10_opts o = {0, 1000, 0};
    if (dj_cifar10_load(&ds, NULL, "test", &o) != 0) {
        fprintf(stderr, "test_shipped_models: CIFAR-10 not found (%s)\n", dj_last_error());
        free(text);
        SKIP("no CIFAR-10 (scripts/get-cifar10.sh or DMVJND_DATA)");
    }
    int rows = 0;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        char file[256], path[300];
        int expected;
        if (!parse_row(line, file, sizeof file, &expected)) continue;
        rows++;
        snprintf(path, sizeof path, "models/%s", file);
        dj_classifier c;
        if (dj_classifier_load(&c, path, 1) != 0) {
            fprintf(stderr, "test_shipped_models: %s\n", dj_last_error());
            CHECK(0);
            continue;
        }
        dj_eval_result r;
        CHECK_OK(dj_evaluate(c.graph, &ds, c.mean, c.std, 100, &r, NULL, NULL));
        printf("%s: %d/1000 correct on test records 0-999 (models/README.md: %d)\n", file, r.correct, expected);
        CHECK(abs(r.correct - expected) <= TOLERANCE);
        dj_classifier_free(&c);
    }
    printf("%d shipped classifier(s) checked\n", rows);
    CHECK(rows >= 1);
    dj_cifar10_free(&ds);
    free(text);
}

int main(void) {
    dj_set_num_threads(2);
    RUN(test_readme_figures);
    return check_report("test_shipped_models");
}
