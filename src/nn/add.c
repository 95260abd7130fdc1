/* Element-wise sum of two equal-shaped tensors (residual connections). The
 * backward is dj_accumulate(da, dy) and dj_accumulate(db, dy). */
#include <string.h>

#include "dmvjnd/core.h"
#include "dmvjnd/nn.h"

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

/* g = relu ? dy * (y > 0) : dy; d (+)= g. One branch-free loop per case,
 * restrict-qualified so the compiler vectorises it: a generic loop with the
 * cases inside ran scalar, ~2x slower than memory allows. */
static void grad_into(size_t n, const float *restrict y, const float *restrict dy, int relu, float *restrict d,
                      int accum) {
    if (relu && accum) {
#pragma omp parallel for simd schedule(static) if (n > ADD_SERIAL)
        for (size_t i = 0; i < n; i++) d[i] += y[i] > 0 ? dy[i] : 0.f;
    } else if (relu) {
#pragma omp parallel for simd schedule(static) if (n > ADD_SERIAL)
        for (size_t i = 0; i < n; i++) d[i] = y[i] > 0 ? dy[i] : 0.f;
    } else if (accum) {
#pragma omp parallel for simd schedule(static) if (n > ADD_SERIAL)
        for (size_t i = 0; i < n; i++) d[i] += dy[i];
    } else {
        memcpy(d, dy, n * sizeof(float));
    }
}

/* Both inputs' gradients in one pass (each element of y and dy read once):
 * g = dy * (y > 0); a (+)= g; b (+)= g. */
static void grad_into2(size_t n, const float *restrict y, const float *restrict dy, int relu, float *restrict a,
                       int acc_a, float *restrict b, int acc_b) {
#define GRAD2_LOOP(G, A, B)                                                                                            \
    _Pragma("omp parallel for simd schedule(static) if (n > ADD_SERIAL)") for (size_t i = 0; i < n; i++) {            \
        float g = (G);                                                                                                 \
        a[i] = (A);                                                                                                    \
        b[i] = (B);                                                                                                    \
    }
    if (relu) {
        if (acc_a && acc_b) GRAD2_LOOP(y[i] > 0 ? dy[i] : 0.f, a[i] + g, b[i] + g)
        else if (acc_a) GRAD2_LOOP(y[i] > 0 ? dy[i] : 0.f, a[i] + g, g)
        else if (acc_b) GRAD2_LOOP(y[i] > 0 ? dy[i] : 0.f, g, b[i] + g)
        else GRAD2_LOOP(y[i] > 0 ? dy[i] : 0.f, g, g)
    } else {
        if (acc_a && acc_b) GRAD2_LOOP(dy[i], a[i] + g, b[i] + g)
        else if (acc_a) GRAD2_LOOP(dy[i], a[i] + g, g)
        else if (acc_b) GRAD2_LOOP(dy[i], g, b[i] + g)
        else GRAD2_LOOP(dy[i], g, g)
    }
#undef GRAD2_LOOP
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
    if (da && db && da->data != db->data)
        grad_into2(n, y->data, dy->data, relu, da->data, accum_a, db->data, accum_b);
    else if (da && db) { /* one buffer for both: a (+)= 2 g */
        grad_into(n, y->data, dy->data, relu, da->data, accum_a);
        grad_into(n, y->data, dy->data, relu, da->data, 1);
    } else if (da)
        grad_into(n, y->data, dy->data, relu, da->data, accum_a);
    else if (db)
        grad_into(n, y->data, dy->data, relu, db->data, accum_b);
    return DJ_OK;
}
