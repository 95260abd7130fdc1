/*
 * Tensors: float32, NHWC, contiguous.
 *
 * A dj_tensor is a view: it never owns its memory unless created with
 * dj_tensor_alloc (then free it with dj_tensor_free). Activations in a
 * network live in one arena owned by the graph; layers only see views.
 *
 * NHWC is used everywhere because it is one of the layouts oneDNN's fast
 * convolution kernels take directly (no reorder between layers), and because
 * the library's own loops (batch norm, pooling, ...) vectorise along C.
 * A dense vector batch (linear layer input) is an NHWC tensor with h = w = 1.
 */
#ifndef DMVJND_TENSOR_H
#define DMVJND_TENSOR_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct dj_tensor {
    float *data; /* n*h*w*c floats, index ((i*h + y)*w + x)*c + ch */
    int n, h, w, c;
} dj_tensor;

static inline size_t dj_tensor_numel(const dj_tensor *t) {
    return (size_t)t->n * (size_t)t->h * (size_t)t->w * (size_t)t->c;
}

static inline dj_tensor dj_tensor_view(float *data, int n, int h, int w, int c) {
    dj_tensor t;
    t.data = data;
    t.n = n;
    t.h = h;
    t.w = w;
    t.c = c;
    return t;
}

/* Allocate a 64-byte aligned tensor (contents zeroed). Returns 0 or DJ_ENOMEM. */
int dj_tensor_alloc(dj_tensor *t, int n, int h, int w, int c);
void dj_tensor_free(dj_tensor *t);

/* 64-byte aligned allocation used for every buffer the library owns
 * (AVX-512 loads and oneDNN both like it). Free with dj_free. */
void *dj_malloc(size_t bytes);
void *dj_calloc(size_t bytes);
void dj_free(void *p);

/* 1 if every element is finite. */
int dj_all_finite(const float *x, size_t n);

#ifdef __cplusplus
}
#endif

#endif
