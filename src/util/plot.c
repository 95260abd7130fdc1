/* Line plots into an RGB buffer, written as PNG; see util/plot.h. */
#include "util/plot.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dmvjnd/core.h"
#include "dmvjnd/image.h"

/* 5x7 font, printable ASCII 0x20..0x7e; 5 columns per glyph, bit 0 = top row. */
static const uint8_t font5x7[95][5] = {
    {0x00, 0x00, 0x00, 0x00, 0x00}, {0x00, 0x00, 0x5F, 0x00, 0x00}, {0x00, 0x07, 0x00, 0x07, 0x00},
    {0x14, 0x7F, 0x14, 0x7F, 0x14}, {0x24, 0x2A, 0x7F, 0x2A, 0x12}, {0x23, 0x13, 0x08, 0x64, 0x62},
    {0x36, 0x49, 0x55, 0x22, 0x50}, {0x00, 0x05, 0x03, 0x00, 0x00}, {0x00, 0x1C, 0x22, 0x41, 0x00},
    {0x00, 0x41, 0x22, 0x1C, 0x00}, {0x08, 0x2A, 0x1C, 0x2A, 0x08}, {0x08, 0x08, 0x3E, 0x08, 0x08},
    {0x00, 0x50, 0x30, 0x00, 0x00}, {0x08, 0x08, 0x08, 0x08, 0x08}, {0x00, 0x60, 0x60, 0x00, 0x00},
    {0x20, 0x10, 0x08, 0x04, 0x02}, {0x3E, 0x51, 0x49, 0x45, 0x3E}, {0x00, 0x42, 0x7F, 0x40, 0x00},
    {0x42, 0x61, 0x51, 0x49, 0x46}, {0x21, 0x41, 0x45, 0x4B, 0x31}, {0x18, 0x14, 0x12, 0x7F, 0x10},
    {0x27, 0x45, 0x45, 0x45, 0x39}, {0x3C, 0x4A, 0x49, 0x49, 0x30}, {0x01, 0x71, 0x09, 0x05, 0x03},
    {0x36, 0x49, 0x49, 0x49, 0x36}, {0x06, 0x49, 0x49, 0x29, 0x1E}, {0x00, 0x36, 0x36, 0x00, 0x00},
    {0x00, 0x56, 0x36, 0x00, 0x00}, {0x08, 0x14, 0x22, 0x41, 0x00}, {0x14, 0x14, 0x14, 0x14, 0x14},
    {0x00, 0x41, 0x22, 0x14, 0x08}, {0x02, 0x01, 0x51, 0x09, 0x06}, {0x32, 0x49, 0x79, 0x41, 0x3E},
    {0x7E, 0x11, 0x11, 0x11, 0x7E}, {0x7F, 0x49, 0x49, 0x49, 0x36}, {0x3E, 0x41, 0x41, 0x41, 0x22},
    {0x7F, 0x41, 0x41, 0x22, 0x1C}, {0x7F, 0x49, 0x49, 0x49, 0x41}, {0x7F, 0x09, 0x09, 0x09, 0x01},
    {0x3E, 0x41, 0x49, 0x49, 0x7A}, {0x7F, 0x08, 0x08, 0x08, 0x7F}, {0x00, 0x41, 0x7F, 0x41, 0x00},
    {0x20, 0x40, 0x41, 0x3F, 0x01}, {0x7F, 0x08, 0x14, 0x22, 0x41}, {0x7F, 0x40, 0x40, 0x40, 0x40},
    {0x7F, 0x02, 0x0C, 0x02, 0x7F}, {0x7F, 0x04, 0x08, 0x10, 0x7F}, {0x3E, 0x41, 0x41, 0x41, 0x3E},
    {0x7F, 0x09, 0x09, 0x09, 0x06}, {0x3E, 0x41, 0x51, 0x21, 0x5E}, {0x7F, 0x09, 0x19, 0x29, 0x46},
    {0x46, 0x49, 0x49, 0x49, 0x31}, {0x01, 0x01, 0x7F, 0x01, 0x01}, {0x3F, 0x40, 0x40, 0x40, 0x3F},
    {0x1F, 0x20, 0x40, 0x20, 0x1F}, {0x3F, 0x40, 0x38, 0x40, 0x3F}, {0x63, 0x14, 0x08, 0x14, 0x63},
    {0x07, 0x08, 0x70, 0x08, 0x07}, {0x61, 0x51, 0x49, 0x45, 0x43}, {0x00, 0x7F, 0x41, 0x41, 0x00},
    {0x02, 0x04, 0x08, 0x10, 0x20}, {0x00, 0x41, 0x41, 0x7F, 0x00}, {0x04, 0x02, 0x01, 0x02, 0x04},
    {0x40, 0x40, 0x40, 0x40, 0x40}, {0x00, 0x01, 0x02, 0x04, 0x00}, {0x20, 0x54, 0x54, 0x54, 0x78},
    {0x7F, 0x48, 0x44, 0x44, 0x38}, {0x38, 0x44, 0x44, 0x44, 0x20}, {0x38, 0x44, 0x44, 0x48, 0x7F},
    {0x38, 0x54, 0x54, 0x54, 0x18}, {0x08, 0x7E, 0x09, 0x01, 0x02}, {0x0C, 0x52, 0x52, 0x52, 0x3E},
    {0x7F, 0x08, 0x04, 0x04, 0x78}, {0x00, 0x44, 0x7D, 0x40, 0x00}, {0x20, 0x40, 0x44, 0x3D, 0x00},
    {0x7F, 0x10, 0x28, 0x44, 0x00}, {0x00, 0x41, 0x7F, 0x40, 0x00}, {0x7C, 0x04, 0x18, 0x04, 0x78},
    {0x7C, 0x08, 0x04, 0x04, 0x78}, {0x38, 0x44, 0x44, 0x44, 0x38}, {0x7C, 0x14, 0x14, 0x14, 0x08},
    {0x08, 0x14, 0x14, 0x18, 0x7C}, {0x7C, 0x08, 0x04, 0x04, 0x08}, {0x48, 0x54, 0x54, 0x54, 0x20},
    {0x04, 0x3F, 0x44, 0x40, 0x20}, {0x3C, 0x40, 0x40, 0x20, 0x7C}, {0x1C, 0x20, 0x40, 0x20, 0x1C},
    {0x3C, 0x40, 0x30, 0x40, 0x3C}, {0x44, 0x28, 0x10, 0x28, 0x44}, {0x0C, 0x50, 0x50, 0x50, 0x3C},
    {0x44, 0x64, 0x54, 0x4C, 0x44}, {0x00, 0x08, 0x36, 0x41, 0x00}, {0x00, 0x00, 0x7F, 0x00, 0x00},
    {0x00, 0x41, 0x36, 0x08, 0x00}, {0x08, 0x04, 0x08, 0x10, 0x08},
};

typedef struct canvas {
    uint8_t *p;
    int w, h;
} canvas;

static void put(canvas *c, int x, int y, const uint8_t rgb[3]) {
    if (x < 0 || y < 0 || x >= c->w || y >= c->h) return;
    uint8_t *d = c->p + ((size_t)y * c->w + x) * 3;
    d[0] = rgb[0];
    d[1] = rgb[1];
    d[2] = rgb[2];
}

static void rect(canvas *c, int x0, int y0, int x1, int y1, const uint8_t rgb[3]) {
    for (int y = y0; y <= y1; y++)
        for (int x = x0; x <= x1; x++) put(c, x, y, rgb);
}

/* Text at (x, y) = top-left; scale 1 or 2; vertical = rotated 90 degrees
 * counter-clockwise (reads bottom to top), (x, y) then the bottom-left. */
static void text(canvas *c, int x, int y, const char *s, int scale, int vertical, const uint8_t rgb[3]) {
    for (int i = 0; s[i]; i++) {
        int ch = (unsigned char)s[i];
        if (ch < 0x20 || ch > 0x7e) ch = '?';
        const uint8_t *g = font5x7[ch - 0x20];
        for (int col = 0; col < 5; col++)
            for (int row = 0; row < 7; row++) {
                if (!(g[col] >> row & 1)) continue;
                for (int sy = 0; sy < scale; sy++)
                    for (int sx = 0; sx < scale; sx++) {
                        int gx = (i * 6 + col) * scale + sx, gy = row * scale + sy;
                        if (!vertical)
                            put(c, x + gx, y + gy, rgb);
                        else
                            put(c, x + gy, y - gx, rgb);
                    }
            }
    }
}

static int text_width(const char *s, int scale) { return (int)strlen(s) * 6 * scale - scale; }

/* Line of thickness 2 (Bresenham), dashed: 6 on, 4 off. */
static void line(canvas *c, int x0, int y0, int x1, int y1, const uint8_t rgb[3], int dashed, int *phase) {
    int dx = abs(x1 - x0), sx = x0 < x1 ? 1 : -1, dy = -abs(y1 - y0), sy = y0 < y1 ? 1 : -1, err = dx + dy;
    for (;;) {
        if (!dashed || (*phase % 10) < 6) {
            put(c, x0, y0, rgb);
            put(c, x0 + 1, y0, rgb);
            put(c, x0, y0 + 1, rgb);
        }
        (*phase)++;
        if (x0 == x1 && y0 == y1) break;
        int e2 = 2 * err;
        if (e2 >= dy) {
            err += dy;
            x0 += sx;
        }
        if (e2 <= dx) {
            err += dx;
            y0 += sy;
        }
    }
}

void dj_plot_color(int i, uint8_t rgb[3]) {
    static const uint8_t pal[10][3] = {{31, 119, 180}, {255, 127, 14}, {44, 160, 44},  {214, 39, 40},
                                       {148, 103, 189}, {140, 86, 75}, {227, 119, 194}, {127, 127, 127},
                                       {188, 189, 34},  {23, 190, 207}};
    memcpy(rgb, pal[((i % 10) + 10) % 10], 3);
}

/* Round step of about range/target: 1, 2 or 5 x 10^k. */
static double nice_step(double range, int target) {
    double raw = range / target, p = pow(10, floor(log10(raw))), m = raw / p;
    return (m < 1.5 ? 1 : m < 3.5 ? 2 : m < 7.5 ? 5 : 10) * p;
}

static void fmt_tick(char *buf, size_t size, double v, double step) {
    if (fabs(v) < step * 1e-6) v = 0;
    double a = fabs(v);
    if (a != 0 && (a >= 1e5 || a < 1e-3)) {
        snprintf(buf, size, "%.1e", v);
        return;
    }
    int dec = step >= 1 ? 0 : (int)ceil(-log10(step) - 1e-9);
    if (dec > 6) dec = 6;
    snprintf(buf, size, "%.*f", dec, v);
}

static void draw_panel(canvas *c, int ox, int oy, int pw, int ph, const dj_plot_panel *pl) {
    static const uint8_t black[3] = {0, 0, 0}, grid[3] = {225, 225, 225}, grey[3] = {90, 90, 90};
    const int left = 62, right = 12, top = 30, bottom = 40;
    int x0 = ox + left, x1 = ox + pw - right, y0 = oy + top, y1 = oy + ph - bottom;
    if (x1 - x0 < 20 || y1 - y0 < 20) return;
    /* data range */
    double xmin = INFINITY, xmax = -INFINITY, ymin = INFINITY, ymax = -INFINITY;
    for (int s = 0; s < pl->nseries; s++)
        for (int i = 0; i < pl->series[s].n; i++) {
            double x = pl->series[s].x[i], y = pl->series[s].y[i];
            if (!isfinite(x) || !isfinite(y)) continue;
            if (x < xmin) xmin = x;
            if (x > xmax) xmax = x;
            if (y < ymin) ymin = y;
            if (y > ymax) ymax = y;
        }
    if (pl->y_min < pl->y_max) {
        ymin = pl->y_min;
        ymax = pl->y_max;
    }
    if (!(xmin <= xmax)) xmin = 0, xmax = 1;
    if (!(ymin <= ymax)) ymin = 0, ymax = 1;
    if (xmax - xmin < 1e-12) xmin -= 0.5, xmax += 0.5;
    if (ymax - ymin < 1e-12 * (fabs(ymax) + 1)) {
        double d = fabs(ymax) * 0.05 + 1e-3;
        ymin -= d;
        ymax += d;
    } else if (!(pl->y_min < pl->y_max)) {
        double pad = (ymax - ymin) * 0.05;
        ymin -= pad;
        ymax += pad;
    }
    double xs = nice_step(xmax - xmin, 6), ys = nice_step(ymax - ymin, 5);
    /* integer x (epochs): integer ticks */
    int integral = 1;
    for (int s = 0; s < pl->nseries && integral; s++)
        for (int i = 0; i < pl->series[s].n; i++)
            if (isfinite(pl->series[s].x[i]) && pl->series[s].x[i] != floor(pl->series[s].x[i])) integral = 0;
    if (integral && xs < 1) xs = 1;
    /* grid and ticks */
    char buf[32];
    for (double t = ceil(ymin / ys - 1e-9) * ys; t <= ymax + ys * 1e-9; t += ys) {
        int y = y1 - (int)lround((t - ymin) / (ymax - ymin) * (y1 - y0));
        for (int x = x0 + 1; x < x1; x++) put(c, x, y, grid);
        rect(c, x0 - 4, y, x0 - 1, y, black);
        fmt_tick(buf, sizeof buf, t, ys);
        text(c, x0 - 6 - text_width(buf, 1), y - 3, buf, 1, 0, black);
    }
    for (double t = ceil(xmin / xs - 1e-9) * xs; t <= xmax + xs * 1e-9; t += xs) {
        int x = x0 + (int)lround((t - xmin) / (xmax - xmin) * (x1 - x0));
        for (int y = y0 + 1; y < y1; y++) put(c, x, y, grid);
        rect(c, x, y1 + 1, x, y1 + 4, black);
        fmt_tick(buf, sizeof buf, t, xs);
        text(c, x - text_width(buf, 1) / 2, y1 + 7, buf, 1, 0, black);
    }
    /* axes box */
    rect(c, x0, y0, x1, y0, black);
    rect(c, x0, y1, x1, y1, black);
    rect(c, x0, y0, x0, y1, black);
    rect(c, x1, y0, x1, y1, black);
    /* labels */
    if (pl->title) text(c, ox + (pw - text_width(pl->title, 2)) / 2, oy + 8, pl->title, 2, 0, black);
    if (pl->xlabel) text(c, x0 + (x1 - x0 - text_width(pl->xlabel, 1)) / 2, y1 + 22, pl->xlabel, 1, 0, grey);
    if (pl->ylabel)
        text(c, ox + 6, y0 + (y1 - y0 + text_width(pl->ylabel, 1)) / 2, pl->ylabel, 1, 1, grey);
    /* series */
    for (int s = 0; s < pl->nseries; s++) {
        const dj_plot_series *sr = &pl->series[s];
        int have = 0, px = 0, py = 0, phase = 0;
        for (int i = 0; i < sr->n; i++) {
            double x = sr->x[i], y = sr->y[i];
            if (!isfinite(x) || !isfinite(y)) {
                have = 0;
                continue;
            }
            if (y < ymin) y = ymin;
            if (y > ymax) y = ymax;
            int X = x0 + (int)lround((x - xmin) / (xmax - xmin) * (x1 - x0));
            int Y = y1 - (int)lround((y - ymin) / (ymax - ymin) * (y1 - y0));
            if (have) line(c, px, py, X, Y, sr->rgb, sr->dashed, &phase);
            if (sr->n <= 40) rect(c, X - 1, Y - 1, X + 2, Y + 2, sr->rgb);
            px = X;
            py = Y;
            have = 1;
        }
    }
    /* legend, top right inside the box */
    int lw = 0, ln = 0;
    for (int s = 0; s < pl->nseries; s++)
        if (pl->series[s].label) {
            int tw = text_width(pl->series[s].label, 1);
            if (tw > lw) lw = tw;
            ln++;
        }
    if (ln) {
        static const uint8_t white[3] = {255, 255, 255};
        int bx1 = x1 - 4, bx0 = bx1 - lw - 34, by0 = y0 + 4, by1 = by0 + ln * 11 + 4;
        rect(c, bx0, by0, bx1, by1, white);
        rect(c, bx0, by0, bx1, by0, grid);
        rect(c, bx0, by1, bx1, by1, grid);
        rect(c, bx0, by0, bx0, by1, grid);
        rect(c, bx1, by0, bx1, by1, grid);
        int k = 0;
        for (int s = 0; s < pl->nseries; s++) {
            const dj_plot_series *sr = &pl->series[s];
            if (!sr->label) continue;
            int y = by0 + 4 + k * 11, phase = 0;
            line(c, bx0 + 4, y + 3, bx0 + 26, y + 3, sr->rgb, sr->dashed, &phase);
            text(c, bx0 + 30, y, sr->label, 1, 0, black);
            k++;
        }
    }
}

int dj_plot_render(const dj_plot_panel *panels, int npanels, int cols, int panel_w, int panel_h, uint8_t **rgb,
                   int *w, int *h) {
    if (!panels || npanels < 1 || cols < 1 || panel_w < 100 || panel_h < 80 || !rgb || !w || !h)
        return dj_error(DJ_EINVAL, "plot: bad arguments");
    if (cols > npanels) cols = npanels;
    int rows = (npanels + cols - 1) / cols;
    canvas c = {NULL, cols * panel_w, rows * panel_h};
    c.p = malloc((size_t)c.w * c.h * 3);
    if (!c.p) return dj_error(DJ_ENOMEM, "plot: out of memory");
    memset(c.p, 255, (size_t)c.w * c.h * 3);
    for (int i = 0; i < npanels; i++) draw_panel(&c, (i % cols) * panel_w, (i / cols) * panel_h, panel_w, panel_h,
                                                 &panels[i]);
    *rgb = c.p;
    *w = c.w;
    *h = c.h;
    return DJ_OK;
}

int dj_plot_write_png(const char *path, const dj_plot_panel *panels, int npanels, int cols, int panel_w,
                      int panel_h) {
    uint8_t *rgb;
    int w, h;
    int rc = dj_plot_render(panels, npanels, cols, panel_w, panel_h, &rgb, &w, &h);
    if (rc) return rc;
    rc = dj_png_write_rgb(path, rgb, h, w);
    free(rgb);
    return rc;
}
