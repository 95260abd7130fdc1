/* Small line plots written as PNG (the training trends of `dmvjnd train`).
 *
 * A figure is a grid of panels; each panel has a title, axis labels, x/y
 * ticks with "nice" round numbers, a legend, and line series (solid or
 * dashed; a marker at every point when there are few). Text is drawn with a
 * built-in 5x7 bitmap font (printable ASCII). NaN points break a line.
 * Internal to dmvjnd. */
#ifndef DMVJND_UTIL_PLOT_H
#define DMVJND_UTIL_PLOT_H

#include <stdint.h>

typedef struct dj_plot_series {
    const char *label;   /* legend text; NULL: not in the legend          */
    const double *x, *y; /* n points                                      */
    int n;
    uint8_t rgb[3];
    int dashed;          /* 1: dashed line                                */
} dj_plot_series;

#define DJ_PLOT_MAX_SERIES 24

typedef struct dj_plot_panel {
    const char *title, *xlabel, *ylabel;
    dj_plot_series series[DJ_PLOT_MAX_SERIES];
    int nseries;
    double y_min, y_max; /* fixed y range when y_min < y_max; else automatic */
} dj_plot_panel;

/* A palette of distinct colours: dj_plot_color(i) for series i. */
void dj_plot_color(int i, uint8_t rgb[3]);

/* Render the panels in a grid of `cols` columns, each panel_w x panel_h
 * pixels, into a new RGB buffer (*rgb, free with free(); *w x *h pixels). */
int dj_plot_render(const dj_plot_panel *panels, int npanels, int cols, int panel_w, int panel_h, uint8_t **rgb,
                   int *w, int *h);

/* Render and write a PNG (atomically). */
int dj_plot_write_png(const char *path, const dj_plot_panel *panels, int npanels, int cols, int panel_w,
                      int panel_h);

#endif
