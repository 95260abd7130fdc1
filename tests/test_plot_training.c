/* tools/plot_training.py against the CSV the JND trainer writes: a log with
 * dj_jnd_csv_header's columns and known values is plotted, then
 *   - plots.json must hold every value of the plotted columns (RCA in
 *     percent), with axis labels that name their units;
 *   - the PNG must have the series' colour at the pixel of each data point
 *     (the markers), and the background where no curve is;
 *   - a malformed CSV is refused with exit status 3.
 * Skipped (with a note) where python3 or matplotlib is missing. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "dmvjnd/dmvjnd.h"
#include "dmvjnd/fileio.h"
#include "dmvjnd/image.h"
#include "dmvjnd/jnd_train.h"
#include "dmvjnd/json.h"

#define PYTHON "/usr/bin/python3"
#define SCRIPT "tools/plot_training.py"
#define EPOCHS 4

static char dir[256];
static int have_matplotlib;

static const char *path_in(const char *name) {
    static char buf[4][512];
    static int k;
    char *b = buf[k++ % 4];
    snprintf(b, 512, "%s/%s", dir, name);
    return b;
}

/* Known, well separated values per epoch e = 1..EPOCHS. */
static double train_rca_mean(int e) { return 0.50 + 0.10 * e; }
static double test_rca_mean(int e) { return 0.45 - 0.05 * e; }
static double train_psnr(int e) { return 20.0 + 2.0 * e; }

/* A JND log with the trainer's own header (2 classifiers). */
static void write_log(const char *path) {
    char header[4096];
    const char tags[2][32] = {"alexnet", "resnet20"};
    CHECK_OK(dj_jnd_csv_header(header, sizeof header, tags, 2));
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    if (!f) return;
    fprintf(f, "%s\n", header);
    for (int e = 1; e <= EPOCHS; e++) {
        /* epoch,step,lr_first,lr_last, then train and test blocks */
        fprintf(f, "%d,%d,0.001,0.001", e, 10 * e);
        double rca_mean[2] = {train_rca_mean(e), test_rca_mean(e)};
        double psnr[2] = {train_psnr(e), 40.0 - e};
        for (int s = 0; s < 2; s++) {
            fprintf(f, ",%.6f,%.6f,%.6f,%.6f", 3.0 - 0.5 * e + s, 1.0 + 0.1 * e + s, 2.0 - 0.2 * e, 0.5 + 0.05 * e);
            fprintf(f, ",%.6f,%.6f", rca_mean[s] - 0.02, rca_mean[s] + 0.02);
            fprintf(f, ",%.6f,%.4f,%.4f,%.6f,%.6f", rca_mean[s], psnr[s], 3.0 + e + s, 100.0, 50.0);
        }
        fprintf(f, ",%.6f,%.4f,%d,%.1f,%.3f,%.3f\n", 0.05 + 0.01 * e, 35.0 + e, 64, 1000.0, 1.0, 1.0 * e);
    }
    fclose(f);
}

static int run_script(const char *csv, const char *out) {
    char cmd[2048];
    snprintf(cmd, sizeof cmd, PYTHON " " SCRIPT " '%s' '%s' 2>/dev/null", csv, out);
    int st = system(cmd);
    return st == -1 ? -1 : WEXITSTATUS(st);
}

static dj_json *load_json(const char *path) {
    void *text;
    size_t size;
    dj_json *root = NULL;
    if (dj_read_file(path, 1 << 24, &text, &size)) return NULL;
    if (dj_json_parse(text, size, path, 0, &root)) root = NULL;
    dj_free(text);
    return root;
}

/* The series of panel `panel` of figure `fig` whose CSV column is `column`. */
static const dj_json *find_series(const dj_json *root, const char *fig, int panel, const char *column) {
    const dj_json *figs = dj_json_get(root, "figures");
    const dj_json *panels = dj_json_get(figs, fig);
    if (!panels || panels->type != DJ_JSON_ARRAY || (size_t)panel >= panels->len) return NULL;
    const dj_json *ser = dj_json_get(&panels->items[panel], "series");
    for (size_t i = 0; ser && i < ser->len; i++) {
        const dj_json *c = dj_json_get(&ser->items[i], "column");
        if (c && c->type == DJ_JSON_STRING && !strcmp(c->string, column)) return &ser->items[i];
    }
    return NULL;
}

static const char *panel_label(const dj_json *root, const char *fig, int panel, const char *axis) {
    const dj_json *panels = dj_json_get(dj_json_get(root, "figures"), fig);
    if (!panels || (size_t)panel >= panels->len) return "";
    const dj_json *l = dj_json_get(&panels->items[panel], axis);
    return l && l->type == DJ_JSON_STRING ? l->string : "";
}

/* Values: y[i] == scale * f(i + 1) for every epoch. */
static void check_values(const dj_json *s, double (*f)(int), double scale) {
    const dj_json *y = dj_json_get(s, "y"), *x = dj_json_get(s, "x");
    CHECK(y && x && y->len == EPOCHS && x->len == EPOCHS);
    for (size_t i = 0; y && x && i < y->len && i < EPOCHS; i++) {
        CHECK_CLOSE(x->items[i].number, (double)(i + 1), 1e-12, 0);
        CHECK_CLOSE(y->items[i].number, scale * f((int)i + 1), 1e-4, 0);
    }
}

static int hexval(char c) { return c <= '9' ? c - '0' : (c | 32) - 'a' + 10; }

/* The PNG has the series' colour at each point's pixel (the marker's
 * centre), within an antialiasing tolerance. */
static void check_pixels(const dj_image *im, const dj_json *s) {
    const dj_json *px = dj_json_get(s, "pixels"), *col = dj_json_get(s, "color");
    CHECK(px && col && col->type == DJ_JSON_STRING && strlen(col->string) == 7 && px->len == EPOCHS);
    if (!px || !col || strlen(col->string) != 7) return;
    int rgb[3];
    for (int c = 0; c < 3; c++) rgb[c] = 16 * hexval(col->string[1 + 2 * c]) + hexval(col->string[2 + 2 * c]);
    for (size_t i = 0; i < px->len; i++) {
        int x = (int)lround(px->items[i].items[0].number), y = (int)lround(px->items[i].items[1].number);
        CHECK(x >= 0 && x < im->w && y >= 0 && y < im->h);
        if (x < 0 || x >= im->w || y < 0 || y >= im->h) continue;
        const uint8_t *p = im->rgb + ((size_t)y * im->w + x) * 3;
        int off = abs(p[0] - rgb[0]) + abs(p[1] - rgb[1]) + abs(p[2] - rgb[2]);
        if (off > 60) printf("  %s point %zu at (%d, %d): pixel %d,%d,%d, series %s\n", dj_json_get(s, "column")->string,
                             i, x, y, p[0], p[1], p[2], col->string);
        CHECK(off <= 60);
    }
}

static void test_plots(void) {
    if (!have_matplotlib) SKIP(PYTHON " with matplotlib not found");
    const char *csv = path_in("train.csv");
    write_log(csv);
    CHECK(run_script(csv, dir) == 0);
    dj_json *root = load_json(path_in("plots.json"));
    CHECK(root != NULL);
    if (!root) return;
    /* the values plotted are the CSV's, RCA in percent */
    const dj_json *tr = find_series(root, "rca.png", 0, "train_rca_mean");
    const dj_json *te = find_series(root, "rca.png", 0, "test_rca_mean");
    const dj_json *ps = find_series(root, "psnr.png", 0, "train_psnr");
    CHECK(tr && te && ps);
    if (tr) check_values(tr, train_rca_mean, 100);
    if (te) check_values(te, test_rca_mean, 100);
    if (ps) check_values(ps, train_psnr, 1);
    CHECK(find_series(root, "rca.png", 1, "train_rca_resnet20") != NULL);
    CHECK(find_series(root, "loss.png", 3, "test_loss3") != NULL);
    /* axes name their units */
    CHECK(!strcmp(panel_label(root, "rca.png", 0, "ylabel"), "RCA (%)"));
    CHECK(!strcmp(panel_label(root, "psnr.png", 0, "ylabel"), "PSNR (dB)"));
    CHECK(strstr(panel_label(root, "psnr.png", 1, "ylabel"), "8-bit levels") != NULL);
    CHECK(!strcmp(panel_label(root, "rca.png", 0, "xlabel"), "epoch"));
    /* the curves are drawn where the CSV says */
    dj_image im = {0};
    CHECK_OK(dj_png_read(path_in("rca.png"), &im));
    CHECK(im.w == 1120 && im.h == 400);
    if (tr) check_pixels(&im, tr);
    if (te) check_pixels(&im, te);
    /* ... and nowhere else: the top-left corner is the white background */
    if (im.rgb) CHECK(im.rgb[0] == 255 && im.rgb[1] == 255 && im.rgb[2] == 255);
    dj_image_free(&im);
    dj_image ip = {0};
    CHECK_OK(dj_png_read(path_in("psnr.png"), &ip));
    if (ps) check_pixels(&ip, ps);
    dj_image_free(&ip);
    dj_json_free(root);
}

static void test_bad_csv(void) {
    if (!have_matplotlib) SKIP(PYTHON " with matplotlib not found");
    const char *bad = path_in("bad.csv");
    FILE *f = fopen(bad, "w");
    CHECK(f != NULL);
    if (!f) return;
    fprintf(f, "epoch,train_loss\n1,abc\n");
    fclose(f);
    CHECK(run_script(bad, dir) == 3);
    CHECK(run_script(path_in("missing.csv"), dir) == 3);
}

int main(void) {
    have_matplotlib = system(PYTHON " -c 'import matplotlib' 2>/dev/null") == 0;
    snprintf(dir, sizeof dir, "/tmp/dmvjnd-plot-XXXXXX");
    if (!mkdtemp(dir)) return 1;
    RUN(test_plots);
    RUN(test_bad_csv);
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) printf("note: could not remove %s\n", dir);
    return check_report("test_plot_training");
}
