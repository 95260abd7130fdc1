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
int dj_add_forward(const dj_tensor *a, const dj_tensor *b, dj_tensor *y) { return dj_add_relu_forward(a, b, 0, y); }

/* One pass for the residual join y = relu(a + b): a separate ReLU pass would
 * read and write the whole tensor again. */
int dj_add_relu_forward(const dj_tensor *a, const dj_tensor *b, int relu, dj_tensor *y) {
    int st = add_check("a", a, "b", b);
    if (!st) st = add_check("a", a, "y", y);
    if (st) return st;
    size_t n = dj_tensor_numel(a);
    const float *pa = a->data, *pb = b->data;
    float *py = y->data;
    if (relu) {
#pragma omp parallel for simd schedule(static) if (n > ADD_SERIAL)
        for (size_t i = 0; i < n; i++) {
            float v = pa[i] + pb[i];
            py[i] = v > 0 ? v : 0;
        }
    } else {
#pragma omp parallel for simd schedule(static) if (n > ADD_SERIAL)
        for (size_t i = 0; i < n; i++) py[i] = pa[i] + pb[i];
    }
    return DJ_OK;
}

/* Gradient of y = relu(a + b) (relu = 0: of a + b) to both inputs in one
 * pass: g = dy * (y > 0); da (+)= g; db (+)= g. da or db may be NULL. */
int dj_add_relu_backward(const dj_tensor *y, const dj_tensor *dy, int relu, dj_tensor *da, int accum_a, dj_tensor *db,
                         int accum_b) {
    int st = add_check("y", y, "dy", dy);
    if (!st && da) st = add_check("dy", dy, "da", da);
    if (!st && db) st = add_check("dy", dy, "db", db);
    if (st) return st;
    size_t n = dj_tensor_numel(dy);
    const float *py = y->data, *pg = dy->data;
    float *pa = da ? da->data : NULL, *pb = db ? db->data : NULL;
#pragma omp parallel for schedule(static) if (n > ADD_SERIAL)
    for (size_t i = 0; i < n; i++) {
        float g = !relu || py[i] > 0 ? pg[i] : 0;
        if (pa) pa[i] = accum_a ? pa[i] + g : g;
        if (pb) pb[i] = accum_b ? pb[i] + g : g;
    }
    return DJ_OK;
}
