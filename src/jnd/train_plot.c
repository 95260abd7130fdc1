/* Trend plots of a JND training's CSV log (the paper's Fig. 5-7). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dmvjnd/dmvjnd.h"
#include "dmvjnd/fileio.h"
#include "dmvjnd/jnd_train.h"
#include "jnd/train_internal.h"
#include "util/plot.h"

#define CSV_MAX_BYTES ((size_t)64 << 20)

/* ============================================================== plots */

typedef struct csv_table {
    int ncols, nrows;
    char **names;
    double *v; /* nrows x ncols, NaN for empty */
} csv_table;

static void table_free(csv_table *t) {
    for (int i = 0; i < t->ncols; i++) free(t->names[i]);
    free(t->names);
    free(t->v);
    memset(t, 0, sizeof *t);
}

static int table_parse(csv_table *t, const char *text) {
    memset(t, 0, sizeof *t);
    const char *nl = strchr(text, '\n');
    if (!nl) return dj_error(DJ_EFORMAT, "CSV: no header line");
    int ncols = 1;
    for (const char *p = text; p < nl; p++) ncols += *p == ',';
    int nrows = 0;
    for (const char *p = nl + 1; *p; p++) nrows += *p == '\n';
    t->names = calloc((size_t)ncols, sizeof *t->names);
    t->v = malloc(((size_t)nrows * ncols + 1) * sizeof *t->v);
    if (!t->names || !t->v) {
        table_free(t);
        return dj_error(DJ_ENOMEM, "CSV: out of memory");
    }
    t->ncols = ncols;
    const char *p = text;
    for (int i = 0; i < ncols; i++) {
        size_t len = strcspn(p, ",\n\r");
        if (!(t->names[i] = malloc(len + 1))) {
            table_free(t);
            return dj_error(DJ_ENOMEM, "CSV: out of memory");
        }
        memcpy(t->names[i], p, len);
        t->names[i][len] = '\0';
        p += len;
        if (*p == ',') p++;
    }
    p = nl + 1;
    for (int r = 0; r < nrows && *p; r++) {
        for (int i = 0; i < ncols; i++) {
            char *end;
            double d = strtod(p, &end);
            t->v[(size_t)r * ncols + i] = end == p ? NAN : d;
            p = end;
            while (*p && *p != ',' && *p != '\n') p++;
            if (*p == ',') p++;
        }
        while (*p && *p != '\n') p++;
        if (*p == '\n') p++;
        t->nrows = r + 1;
    }
    return DJ_OK;
}

static int table_col(const csv_table *t, const char *name) {
    for (int i = 0; i < t->ncols; i++)
        if (!strcmp(t->names[i], name)) return i;
    return -1;
}

typedef struct plot_data {
    const csv_table *t;
    double *cols; /* column-major copy: ncols x nrows */
} plot_data;

static const double *col_of(const plot_data *d, const char *name) {
    int c = table_col(d->t, name);
    return c < 0 ? NULL : d->cols + (size_t)c * d->t->nrows;
}

/* Adds a series if the column exists and holds a finite value. */
static void add_series(dj_plot_panel *p, const plot_data *d, const char *col, const char *label, int color,
                       int dashed) {
    const double *y = col_of(d, col), *x = col_of(d, "epoch");
    if (!y || !x || p->nseries >= DJ_PLOT_MAX_SERIES) return;
    int any = 0;
    for (int i = 0; i < d->t->nrows; i++) any |= isfinite(y[i]);
    if (!any) return;
    dj_plot_series *s = &p->series[p->nseries++];
    s->label = label;
    s->x = x;
    s->y = y;
    s->n = d->t->nrows;
    dj_plot_color(color, s->rgb);
    s->dashed = dashed;
}

int dj_jnd_plot_text(const char *csv_text, const char *dir) {
    csv_table t;
    int rc = table_parse(&t, csv_text);
    if (rc) return rc;
    plot_data d = {&t, malloc(((size_t)t.ncols * t.nrows + 1) * sizeof(double))};
    if (!d.cols) {
        table_free(&t);
        return dj_error(DJ_ENOMEM, "plots: out of memory");
    }
    for (int c = 0; c < t.ncols; c++)
        for (int r = 0; r < t.nrows; r++) d.cols[(size_t)c * t.nrows + r] = t.v[(size_t)r * t.ncols + c];
    /* RCA columns in percent */
    for (int c = 0; c < t.ncols; c++)
        if (strstr(t.names[c], "_rca_"))
            for (int r = 0; r < t.nrows; r++) d.cols[(size_t)c * t.nrows + r] *= 100;
    char path[4096];
    /* rca.png: (a) mean, (b) per classifier (paper Fig. 5) */
    dj_plot_panel rca[2];
    memset(rca, 0, sizeof rca);
    rca[0].title = "(a) RCA, mean of the classifiers";
    rca[1].title = "(b) RCA per classifier";
    for (int i = 0; i < 2; i++) {
        rca[i].xlabel = "epoch";
        rca[i].ylabel = "RCA (%)";
    }
    add_series(&rca[0], &d, "train_rca_mean", "train", 0, 0);
    add_series(&rca[0], &d, "test_rca_mean", "test (8-bit x_hat)", 1, 1);
    add_series(&rca[0], &d, "test_float_rca_mean", "test (float x_hat)", 2, 1);
    static char labels[2 * DJ_JND_MAX_CLASSIFIERS][48];
    int k = 0;
    for (int c = 0; c < t.ncols && k < DJ_JND_MAX_CLASSIFIERS; c++) {
        if (strncmp(t.names[c], "train_rca_", 10) || !strcmp(t.names[c], "train_rca_mean")) continue;
        const char *tag = t.names[c] + 10;
        char test_col[64];
        snprintf(labels[2 * k], sizeof labels[0], "%s train", tag);
        snprintf(labels[2 * k + 1], sizeof labels[0], "%s test", tag);
        snprintf(test_col, sizeof test_col, "test_rca_%s", tag);
        add_series(&rca[1], &d, t.names[c], labels[2 * k], k, 0);
        add_series(&rca[1], &d, test_col, labels[2 * k + 1], k, 1);
        k++;
    }
    snprintf(path, sizeof path, "%s/rca.png", dir);
    rc = dj_plot_write_png(path, rca, 2, 2, 560, 400);
    /* loss.png: Loss, Loss1..3 (paper Fig. 6) */
    if (!rc) {
        dj_plot_panel lp[4];
        memset(lp, 0, sizeof lp);
        const char *titles[4] = {"(a) Loss", "(b) Loss1 (cross-entropy)", "(c) Loss2 (magnitude)",
                                 "(d) Loss3 (spatial distribution)"};
        const char *tr[4] = {"train_loss", "train_loss1", "train_loss2", "train_loss3"};
        const char *te[4] = {"test_loss", "test_loss1", "test_loss2", "test_loss3"};
        for (int i = 0; i < 4; i++) {
            lp[i].title = titles[i];
            lp[i].xlabel = "epoch";
            lp[i].ylabel = "loss";
            add_series(&lp[i], &d, tr[i], "train", 0, 0);
            add_series(&lp[i], &d, te[i], "test (8-bit)", 1, 1);
        }
        snprintf(path, sizeof path, "%s/loss.png", dir);
        rc = dj_plot_write_png(path, lp, 4, 2, 560, 400);
    }
    /* psnr.png (paper Fig. 7) and mean |e| */
    if (!rc) {
        dj_plot_panel pp[2];
        memset(pp, 0, sizeof pp);
        pp[0].title = "PSNR of x_hat (8-bit) vs x";
        pp[0].xlabel = "epoch";
        pp[0].ylabel = "PSNR (dB)";
        add_series(&pp[0], &d, "train_psnr", "train", 0, 0);
        add_series(&pp[0], &d, "test_psnr", "test", 1, 1);
        pp[1].title = "mean |e| (8-bit levels)";
        pp[1].xlabel = "epoch";
        pp[1].ylabel = "levels";
        add_series(&pp[1], &d, "train_mean_abs_e", "train", 0, 0);
        add_series(&pp[1], &d, "test_mean_abs_e", "test", 1, 1);
        snprintf(path, sizeof path, "%s/psnr.png", dir);
        rc = dj_plot_write_png(path, pp, 2, 2, 560, 400);
    }
    free(d.cols);
    table_free(&t);
    return rc;
}

int dj_jnd_plot_csv(const char *csv_path, const char *dir) {
    void *data;
    size_t size;
    int rc = dj_read_file(csv_path, CSV_MAX_BYTES, &data, &size);
    if (rc) return rc;
    rc = dj_jnd_plot_text(data, dir);
    dj_free(data);
    return rc;
}
