/* The paper's Fig. 8 as one PNG: CAM | e | x | x + e per image.
 * dmvjnd/jnd_eval.h. */
#include <stdlib.h>
#include <string.h>

#include "dmvjnd/dmvjnd.h"
#include "dmvjnd/image.h"
#include "dmvjnd/jnd_eval.h"

#define GAP 2
#define PANELS 4

/* A heat map colour for v in [0, 1]: dark blue - cyan - yellow - red, the
 * usual look of CAM figures (piecewise linear through five stops). */
static void heat(float v, uint8_t *rgb) {
    static const float stops[5][3] = {{0, 0, 96}, {0, 128, 255}, {96, 255, 160}, {255, 220, 0}, {200, 0, 0}};
    if (!(v > 0)) v = 0;
    if (v > 1) v = 1;
    float t = v * 4;
    int i = (int)t;
    if (i > 3) i = 3;
    float f = t - (float)i;
    for (int c = 0; c < 3; c++) rgb[c] = (uint8_t)(stops[i][c] + f * (stops[i + 1][c] - stops[i][c]) + 0.5f);
}

int dj_jnd_montage(dj_jnd_generator *g, const uint8_t *rgb, int n, int h, int w, int zoom, float e_gain,
                   const char *path) {
    if (!g || !rgb || !path || n < 1 || h < 1 || w < 1 || zoom < 1 || zoom > 16)
        return dj_error(DJ_EINVAL, "jnd montage: bad arguments (n %d, %dx%d, zoom %d)", n, h, w, zoom);
    const int ph = h * zoom, pw = w * zoom;
    const long W = (long)PANELS * pw + (PANELS + 1) * GAP, Ht = (long)n * ph + (n + 1) * GAP;
    if (W > DJ_IMAGE_MAX_SIDE || Ht > DJ_IMAGE_MAX_SIDE)
        return dj_error(DJ_EINVAL, "jnd montage: %ldx%ld pixels is too large (at most %d a side)", Ht, W,
                        DJ_IMAGE_MAX_SIDE);
    const size_t HW = (size_t)h * w;
    float *e = malloc((size_t)n * HW * 3 * sizeof *e), *cam = malloc((size_t)n * HW * sizeof *cam);
    uint8_t *xh = malloc((size_t)n * HW * 3), *out = malloc((size_t)W * Ht * 3);
    uint8_t *panel = malloc(HW * 3 * PANELS);
    int rc = e && cam && xh && out && panel ? DJ_OK : dj_error(DJ_ENOMEM, "jnd montage: out of memory");
    if (!rc) rc = dj_jnd_generator_run(g, rgb, n, h, w, xh, e, cam, NULL);
    if (!rc) {
        memset(out, 255, (size_t)W * Ht * 3);
        for (int i = 0; i < n; i++) {
            uint8_t *p0 = panel, *p1 = panel + HW * 3, *p2 = panel + 2 * HW * 3, *p3 = panel + 3 * HW * 3;
            for (size_t p = 0; p < HW; p++) heat(cam[(size_t)i * HW + p], p0 + p * 3);
            dj_jnd_e_to_u8(e + (size_t)i * HW * 3, HW * 3, e_gain, p1);
            memcpy(p2, rgb + (size_t)i * HW * 3, HW * 3);
            memcpy(p3, xh + (size_t)i * HW * 3, HW * 3);
            for (int q = 0; q < PANELS; q++) {
                const uint8_t *src = panel + (size_t)q * HW * 3;
                long ox = GAP + (long)q * (pw + GAP), oy = GAP + (long)i * (ph + GAP);
                for (int y = 0; y < ph; y++)
                    for (int x = 0; x < pw; x++)
                        memcpy(out + ((size_t)(oy + y) * W + ox + x) * 3,
                               src + ((size_t)(y / zoom) * w + x / zoom) * 3, 3);
            }
        }
        rc = dj_png_write_rgb(path, out, (int)Ht, (int)W);
    }
    free(e);
    free(cam);
    free(xh);
    free(out);
    free(panel);
    return rc;
}
