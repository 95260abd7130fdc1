/* Aligned allocation, owned tensors and the small element-wise helpers that
 * every layer's backward uses. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "dmvjnd/core.h"
#include "dmvjnd/tensor.h"

void *dj_malloc(size_t bytes) {
    if (bytes == 0) bytes = 64;
    size_t rounded = (bytes + 63) & ~(size_t)63; /* aligned_alloc wants a multiple */
    if (rounded < bytes) return NULL;
    return aligned_alloc(64, rounded);
}

void *dj_calloc(size_t bytes) {
    void *p = dj_malloc(bytes);
    if (p) memset(p, 0, bytes);
    return p;
}

void dj_free(void *p) { free(p); }

int dj_tensor_alloc(dj_tensor *t, int n, int h, int w, int c) {
    if (n <= 0 || h <= 0 || w <= 0 || c <= 0)
        return dj_error(DJ_EINVAL, "tensor shape %dx%dx%dx%d has an empty dimension", n, h, w, c);
    *t = dj_tensor_view(NULL, n, h, w, c);
    size_t count = dj_tensor_numel(t);
    if (count > ((size_t)1 << 40) / sizeof(float))
        return dj_error(DJ_ENOMEM, "tensor shape %dx%dx%dx%d is too large", n, h, w, c);
    t->data = dj_calloc(count * sizeof(float));
    if (!t->data) return dj_error(DJ_ENOMEM, "cannot allocate a %dx%dx%dx%d tensor", n, h, w, c);
    return DJ_OK;
}

void dj_tensor_free(dj_tensor *t) {
    if (!t) return;
    dj_free(t->data);
    t->data = NULL;
}

int dj_all_finite(const float *x, size_t n) {
    int ok = 1;
#pragma omp parallel for reduction(& : ok) schedule(static) if (n > 65536)
    for (size_t i = 0; i < n; i++) ok &= isfinite(x[i]) ? 1 : 0;
    return ok;
}

void dj_accumulate(float *dst, const float *src, size_t n, int accum) {
    if (dst == src && !accum) return;
    if (!accum) {
        memcpy(dst, src, n * sizeof(float));
        return;
    }
#pragma omp parallel for schedule(static) if (n > 65536)
    for (size_t i = 0; i < n; i++) dst[i] += src[i];
}
