/* Element-wise sum of two equal-shaped tensors (residual connections). The
 * backward is dj_accumulate(da, dy) and dj_accumulate(db, dy). */
#include "dmvjnd/dmvjnd.h"

#define ADD_SERIAL 65536 /* below this many elements threading costs more */

static int add_check(const char *an, const dj_tensor *a, const char *bn, const dj_tensor *b) {
    if (!a || !a->data) return dj_error(DJ_EINVAL, "add: %s is NULL", an);
    if (!b || !b->data) return dj_error(DJ_EINVAL, "add: %s is NULL", bn);
    if (a->n <= 0 || a->h <= 0 || a->w <= 0 || a->c <= 0)
        return dj_error(DJ_EINVAL, "add: %s has an empty shape %dx%dx%dx%d", an, a->n, a->h, a->w, a->c);
    if (a->n != b->n || a->h != b->h || a->w != b->w || a->c != b->c)
        return dj_error(DJ_EINVAL, "add: %s is %dx%dx%dx%d but %s is %dx%dx%dx%d", an, a->n, a->h, a->w, a->c, bn,
                        b->n, b->h, b->w, b->c);
    return DJ_OK;
}

/* y may alias a or b (element-wise, each element read before written). */
int dj_add_forward(const dj_tensor *a, const dj_tensor *b, dj_tensor *y) {
    int st = add_check("a", a, "b", b);
    if (!st) st = add_check("a", a, "y", y);
    if (st) return st;
    size_t n = dj_tensor_numel(a);
    const float *pa = a->data, *pb = b->data;
    float *py = y->data;
#pragma omp parallel for simd schedule(static) if (n > ADD_SERIAL)
    for (size_t i = 0; i < n; i++) py[i] = pa[i] + pb[i];
    return DJ_OK;
}
