/* Internal interface between src/nn/conv.c (public dj_conv_* API: argument
 * checks) and src/backend/dnnl.c (oneDNN primitives). The backend trusts its
 * arguments: conv.c has validated the descriptor and every tensor shape. */
#ifndef DMVJND_BACKEND_DNNL_CONV_H
#define DMVJND_BACKEND_DNNL_CONV_H

#include "dmvjnd/nn.h"

enum { DJ_CONV_PASS_FWD = 0, DJ_CONV_PASS_BWD_DATA = 1, DJ_CONV_PASS_BWD_WEIGHTS = 2, DJ_CONV_PASS_COUNT = 3 };

typedef struct dj_bconv dj_bconv; /* cached primitives of one convolution */

int dj_bconv_create(dj_bconv **out, const dj_conv_desc *d);
void dj_bconv_destroy(dj_bconv *c);
int dj_bconv_forward(dj_bconv *c, const dj_tensor *x, const float *w, const float *b, dj_tensor *y);
/* dx is never NULL here. */
int dj_bconv_backward_data(dj_bconv *c, const dj_tensor *dy, const float *w, dj_tensor *dx, int accum);
/* dw and db may be NULL (then that gradient is not stored). */
int dj_bconv_backward_weights(dj_bconv *c, const dj_tensor *x, const dj_tensor *dy, float *dw, float *db);
void dj_bconv_weights_changed(dj_bconv *c);
/* "" until the pass has run once. */
const char *dj_bconv_impl_name(const dj_bconv *c, int pass);

/* Testing aids, process-wide, off (0) by default; they apply to primitives
 * created afterwards.
 *   DJ_BCONV_DEBUG_ANY_ACT: let oneDNN choose the activation layout (as the
 *     Winograd path does, since its kernels only take blocked activations),
 *     so the activation reorder code runs on machines without Winograd.
 *   DJ_BCONV_DEBUG_PLAIN_WEIGHTS: hand the primitives the caller's plain
 *     weight layout, the mistake that makes oneDNN pick its reference
 *     kernel: exercises strict mode and the no-reorder path. */
enum { DJ_BCONV_DEBUG_ANY_ACT = 1, DJ_BCONV_DEBUG_PLAIN_WEIGHTS = 2 };
void dj_bconv_debug_layout(int flags);

#endif
