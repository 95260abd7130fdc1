/* The compute backend: every oneDNN call of the project lives in this file
 * (see src/backend/dnnl.h for why). */
#include "backend/dnnl.h"

#include <omp.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include <dnnl.h>
#include <dnnl_debug.h>

#include "backend/dnnl_conv.h"
#include "dmvjnd/core.h"
#include "dmvjnd/tensor.h"

/* ------------------------------------------------------------ strict mode */

static int strict_mode = 1;

void dj_backend_set_strict(int strict) { strict_mode = strict ? 1 : 0; }
int dj_backend_strict(void) { return strict_mode; }

/* ------------------------------------------------------- engine and stream */

/* One CPU engine and one in-order stream for the whole process, created on
 * first use. They are never destroyed: primitives cached in dj_conv objects
 * refer to the engine for as long as those objects live. */
static pthread_once_t engine_once = PTHREAD_ONCE_INIT;
static dnnl_engine_t engine;
static dnnl_stream_t stream;
static dnnl_status_t engine_status;

static void engine_init(void) {
    engine_status = dnnl_engine_create(&engine, dnnl_cpu, 0);
    if (engine_status == dnnl_success) engine_status = dnnl_stream_create(&stream, engine, dnnl_stream_default_flags);
}

static int backend_ready(void) {
    pthread_once(&engine_once, engine_init);
    if (engine_status != dnnl_success)
        return dj_error(DJ_EBACKEND, "oneDNN: cannot create the CPU engine and stream: %s",
                        dnnl_status2str(engine_status));
    return DJ_OK;
}

/* ------------------------------------------------------------ convolution */

#define CACHE_SLOTS 4 /* input shapes (n, h, w) kept per dj_conv */
#define MAX_BINDS 4   /* data arguments of one pass */
#define IMPL_LEN 64

static int debug_flags;

void dj_bconv_debug_layout(int flags) { debug_flags = flags; }

/* How the data of one primitive argument flows between the caller's buffer
 * (plain layout) and the primitive. */
enum io_kind {
    IO_IN,    /* read by the primitive                                     */
    IO_OUT,   /* written by the primitive (overwrite, or add when asked)   */
    IO_INOUT, /* read and written: the destination of a post-op sum        */
    IO_ACC    /* written by the primitive, then ADDED to the caller's data */
};

/* One argument of a pass. When oneDNN wants the caller's layout (`same`),
 * the primitive works on the caller's memory directly; otherwise on `buf`
 * in its own layout, with reorders on the way in and/or out. Everything is
 * created once per shape and kept, so later calls allocate nothing. */
typedef struct arg_bind {
    int arg; /* DNNL_ARG_* */
    int io;
    int same;
    size_t user_floats;         /* caller's element count (for adds)        */
    dnnl_memory_desc_t user_md; /* caller's plain layout                    */
    dnnl_memory_desc_t prim_md; /* the layout the primitive asked for       */
    dnnl_memory_t user;         /* caller's memory, handle set per call     */
    dnnl_memory_t prim;         /* over buf, NULL until needed              */
    void *buf;
    dnnl_primitive_t to_prim;   /* reorder user -> prim                     */
    dnnl_primitive_t from_prim; /* reorder prim -> user                     */
    dnnl_primitive_t add_prim;  /* reorder prim -> user with a sum post-op  */
    const float *cached;        /* frozen weights: source of buf's content  */
    int cache_ok;
} arg_bind;

typedef struct conv_pass {
    dnnl_primitive_desc_t pd;
    dnnl_primitive_desc_t hint; /* forward pd the backward pd was built from */
    dnnl_primitive_t prim;
    arg_bind b[MAX_BINDS];
    int nb;
    char impl[IMPL_LEN];
} conv_pass;

typedef struct conv_slot {
    int used;
    int n, h, w; /* input shape */
    unsigned long stamp;
    conv_pass p[DJ_CONV_PASS_COUNT];
} conv_slot;

struct dj_bconv {
    dj_conv_desc d;  /* as the caller described it                            */
    dj_conv_desc od; /* as oneDNN sees it: d, or d with an extended kernel    */
    /* Zero-extended weights and their gradient when od.k > d.k (see
     * dj_bconv_create); NULL otherwise. */
    float *wext, *dwext;
    const float *wext_src; /* caller's weights last copied into wext */
    /* Own epilogue of transposed convs: the primitive's output before the
     * post-op sum, and per-thread partial sums of the bias gradient. */
    float *ytmp;
    size_t ytmp_floats;
    double *red;
    size_t red_count;
    conv_slot s[CACHE_SLOTS];
    unsigned long clock;
    /* One user-managed scratchpad shared by every primitive of this conv
     * (they never run concurrently), grown when a new primitive needs more. */
    void *scratch;
    size_t scratch_bytes;
    dnnl_memory_t scratch_mem;
    char impl[DJ_CONV_PASS_COUNT][IMPL_LEN];
    int warned[DJ_CONV_PASS_COUNT];
};

static const char *pass_names[DJ_CONV_PASS_COUNT] = {"forward", "backward-data", "backward-weights"};

static void out_dims(const dj_conv_desc *d, int h, int w, int *oh, int *ow) {
    if (d->transposed) {
        *oh = (h - 1) * d->stride - 2 * d->pad + d->k + d->out_pad;
        *ow = (w - 1) * d->stride - 2 * d->pad + d->k + d->out_pad;
    } else {
        *oh = (h + 2 * d->pad - d->k) / d->stride + 1;
        *ow = (w + 2 * d->pad - d->k) / d->stride + 1;
    }
}

/* "transposed conv backward-data (cin 3, cout 5, k 3, stride 2, pad 1,
 * out_pad 1) on input 3x5x7x3 -> output 3x10x14x5 (NHWC)" for messages. */
static const char *describe(const dj_bconv *c, int pi, int n, int h, int w, char *buf, size_t size) {
    const dj_conv_desc *d = &c->d;
    int oh, ow;
    out_dims(d, h, w, &oh, &ow);
    snprintf(buf, size,
             "%s %s (cin %d, cout %d, k %d, stride %d, pad %d, out_pad %d%s%s) on input %dx%dx%dx%d -> "
             "output %dx%dx%dx%d (NHWC)",
             d->transposed ? "transposed conv" : "conv", pass_names[pi], d->cin, d->cout, d->k, d->stride, d->pad,
             d->out_pad, d->winograd ? ", winograd" : "", d->frozen ? ", frozen" : "", n, h, w, d->cin, n, oh, ow,
             d->cout);
    return buf;
}

static int dnnl_fail(dnnl_status_t st, const char *call, const char *what) {
    return dj_error(DJ_EBACKEND, "oneDNN %s failed for %s: %s", call, what, dnnl_status2str(st));
}

static dnnl_status_t md_init(dnnl_memory_desc_t *md, int ndims, const dnnl_dim_t *dims, dnnl_format_tag_t tag) {
    dnnl_dims_t d;
    for (int i = 0; i < ndims; i++) d[i] = dims[i];
    return dnnl_memory_desc_init_by_tag(md, ndims, d, dnnl_f32, tag);
}

/* Grows the shared scratchpad to what `pd` asks for. Runs at primitive
 * creation only, never in a steady-state call. */
static int scratch_reserve(dj_bconv *c, const_dnnl_primitive_desc_t pd, const char *what) {
    const dnnl_memory_desc_t *smd = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
    size_t need = smd ? dnnl_memory_desc_get_size(smd) : 0;
    if (need <= c->scratch_bytes) return DJ_OK;
    if (c->scratch_mem) dnnl_memory_destroy(c->scratch_mem);
    c->scratch_mem = NULL;
    dj_free(c->scratch);
    c->scratch_bytes = 0;
    c->scratch = dj_malloc(need);
    if (!c->scratch) return dj_error(DJ_ENOMEM, "cannot allocate %zu bytes of oneDNN scratchpad for %s", need, what);
    /* A flat byte buffer as large as the largest request serves every
     * primitive: oneDNN only uses its data handle. */
    dnnl_memory_desc_t md;
    dnnl_dims_t dims = {(dnnl_dim_t)need};
    dnnl_status_t st = dnnl_memory_desc_init_by_tag(&md, 1, dims, dnnl_u8, dnnl_a);
    if (st == dnnl_success) st = dnnl_memory_create(&c->scratch_mem, &md, engine, c->scratch);
    if (st != dnnl_success) {
        dj_free(c->scratch);
        c->scratch = NULL;
        return dnnl_fail(st, "scratchpad memory creation", what);
    }
    c->scratch_bytes = need;
    return DJ_OK;
}

/* Implementation name of `pd` into `out`; refuses a reference ("ref:")
 * implementation in strict mode, warns once per conv and pass otherwise. */
static int check_impl(dj_bconv *c, int pi, const_dnnl_primitive_desc_t pd, char *out, const char *prim_kind,
                      const char *what) {
    const char *name = NULL;
    if (dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &name) != dnnl_success || !name) name = "?";
    if (out) snprintf(out, IMPL_LEN, "%s", name);
    if (strncmp(name, "ref", 3) != 0) return DJ_OK;
    if (strict_mode)
        return dj_error(DJ_EBACKEND,
                        "%s: oneDNN chose the reference %s implementation '%s' (100-1400x slower); strict mode "
                        "refuses it (dj_backend_set_strict(0) allows it)",
                        what, prim_kind, name);
    if (!c->warned[pi]) {
        c->warned[pi] = 1;
        dj_log(DJ_LOG_WARN, "%s: oneDNN runs the reference %s implementation '%s' (100-1400x slower)", what, prim_kind,
               name);
    }
    return DJ_OK;
}

static dnnl_status_t attr_new(dnnl_primitive_attr_t *attr, int post_sum, int post_relu) {
    dnnl_status_t st = dnnl_primitive_attr_create(attr);
    if (st != dnnl_success) return st;
    st = dnnl_primitive_attr_set_scratchpad_mode(*attr, dnnl_scratchpad_mode_user);
    if (st == dnnl_success && (post_sum || post_relu)) {
        dnnl_post_ops_t po;
        st = dnnl_post_ops_create(&po);
        if (st != dnnl_success) goto out;
        /* Order matters: y = relu(conv + y_old), as nn.h specifies. */
        if (post_sum) st = dnnl_post_ops_append_sum(po, 1.0f);
        if (st == dnnl_success && post_relu) st = dnnl_post_ops_append_eltwise(po, 1.0f, dnnl_eltwise_relu, 0.f, 0.f);
        if (st == dnnl_success) st = dnnl_primitive_attr_set_post_ops(*attr, po);
        dnnl_post_ops_destroy(po);
    }
out:
    if (st != dnnl_success) dnnl_primitive_attr_destroy(*attr);
    return st;
}

/* Reorder primitive from one layout to another; with `add`, a sum post-op
 * makes it dst += reorder(src), which is how blocked gradients are added to
 * the caller's plain ones without another buffer. */
static int make_reorder(dj_bconv *c, int pi, const dnnl_memory_desc_t *from, const dnnl_memory_desc_t *to, int add,
                        dnnl_primitive_t *out, const char *what) {
    dnnl_primitive_attr_t attr;
    dnnl_primitive_desc_t pd = NULL;
    dnnl_status_t st = attr_new(&attr, add, 0);
    if (st != dnnl_success) return dnnl_fail(st, "reorder attribute creation", what);
    st = dnnl_reorder_primitive_desc_create(&pd, from, engine, to, engine, attr);
    dnnl_primitive_attr_destroy(attr);
    if (st != dnnl_success) return dnnl_fail(st, "reorder creation", what);
    int rc = check_impl(c, pi, pd, NULL, "reorder", what);
    if (rc == DJ_OK) rc = scratch_reserve(c, pd, what);
    if (rc == DJ_OK) {
        st = dnnl_primitive_create(out, pd);
        if (st != dnnl_success) rc = dnnl_fail(st, "reorder primitive creation", what);
    }
    dnnl_primitive_desc_destroy(pd);
    return rc;
}

static void bind_clear(arg_bind *b) {
    if (b->to_prim) dnnl_primitive_destroy(b->to_prim);
    if (b->from_prim) dnnl_primitive_destroy(b->from_prim);
    if (b->add_prim) dnnl_primitive_destroy(b->add_prim);
    if (b->user) dnnl_memory_destroy(b->user);
    if (b->prim) dnnl_memory_destroy(b->prim);
    dj_free(b->buf);
    memset(b, 0, sizeof *b);
}

static void pass_clear(conv_pass *p) {
    for (int i = 0; i < p->nb; i++) bind_clear(&p->b[i]);
    if (p->prim) dnnl_primitive_destroy(p->prim);
    if (p->pd) dnnl_primitive_desc_destroy(p->pd);
    if (p->hint) dnnl_primitive_desc_destroy(p->hint);
    memset(p, 0, sizeof *p);
}

static void slot_clear(conv_slot *s) {
    for (int i = 0; i < DJ_CONV_PASS_COUNT; i++) pass_clear(&s->p[i]);
    memset(s, 0, sizeof *s);
}

/* The primitive's own buffer for an argument, in its layout. */
static int bind_need_buf(arg_bind *b, const char *what) {
    if (b->prim) return DJ_OK;
    size_t bytes = dnnl_memory_desc_get_size(&b->prim_md);
    b->buf = dj_malloc(bytes);
    if (!b->buf) return dj_error(DJ_ENOMEM, "cannot allocate %zu bytes for a reorder buffer of %s", bytes, what);
    dnnl_status_t st = dnnl_memory_create(&b->prim, &b->prim_md, engine, b->buf);
    if (st != dnnl_success) {
        dj_free(b->buf);
        b->buf = NULL;
        b->prim = NULL;
        return dnnl_fail(st, "memory creation", what);
    }
    return DJ_OK;
}

/* What an output needs when the caller asks to add into it (dx with
 * accum = 1): the primitive's buffer and, for other layouts, an adding
 * reorder. Created on the first such call. */
static int bind_need_add(dj_bconv *c, int pi, arg_bind *b, const char *what) {
    int rc = bind_need_buf(b, what);
    if (rc == DJ_OK && !b->same && !b->add_prim)
        rc = make_reorder(c, pi, &b->prim_md, &b->user_md, 1, &b->add_prim, what);
    return rc;
}

/* Sets up one argument of a freshly created primitive. */
static int bind_init(dj_bconv *c, int pi, conv_pass *p, int arg, int io, const dnnl_memory_desc_t *user_md,
                     size_t floats, const char *what) {
    arg_bind *b = &p->b[p->nb++];
    b->arg = arg;
    b->io = io;
    b->user_md = *user_md;
    b->user_floats = floats;
    const dnnl_memory_desc_t *pmd = dnnl_primitive_desc_query_md(p->pd, dnnl_query_exec_arg_md, arg);
    if (!pmd) return dj_error(DJ_EINTERNAL, "oneDNN has no memory descriptor for argument %d of %s", arg, what);
    b->prim_md = *pmd;
    b->same = dnnl_memory_desc_equal(user_md, pmd);
    dnnl_status_t st = dnnl_memory_create(&b->user, user_md, engine, DNNL_MEMORY_NONE);
    if (st != dnnl_success) return dnnl_fail(st, "memory creation", what);
    int rc = DJ_OK;
    if (!b->same || io == IO_ACC) rc = bind_need_buf(b, what);
    if (rc == DJ_OK && !b->same && (io == IO_IN || io == IO_INOUT))
        rc = make_reorder(c, pi, user_md, pmd, 0, &b->to_prim, what);
    if (rc == DJ_OK && !b->same && (io == IO_OUT || io == IO_INOUT))
        rc = make_reorder(c, pi, pmd, user_md, 0, &b->from_prim, what);
    if (rc == DJ_OK && io == IO_ACC) rc = bind_need_add(c, pi, b, what);
    return rc;
}

/* Convolution or deconvolution operation descriptor for one pass. */
static dnnl_status_t op_init(const dj_conv_desc *d, int pi, dnnl_prop_kind_t fwd_prop, int wino,
                             const dnnl_memory_desc_t *src, const dnnl_memory_desc_t *wei,
                             const dnnl_memory_desc_t *bia, const dnnl_memory_desc_t *dst,
                             dnnl_convolution_desc_t *op) {
    dnnl_dims_t strides = {d->stride, d->stride};
    dnnl_dims_t pad_l = {d->pad, d->pad};
    /* PyTorch's output_padding adds rows/cols at the bottom/right: in
     * oneDNN's terms a smaller right padding (never negative here: see
     * dj_bconv_create). */
    dnnl_dims_t pad_r = {d->pad - d->out_pad, d->pad - d->out_pad};
    if (d->transposed) {
        dnnl_alg_kind_t alg = wino ? dnnl_deconvolution_winograd : dnnl_deconvolution_direct;
        switch (pi) {
        case DJ_CONV_PASS_FWD:
            return dnnl_deconvolution_forward_desc_init(op, fwd_prop, alg, src, wei, bia, dst, strides, pad_l, pad_r);
        case DJ_CONV_PASS_BWD_DATA:
            return dnnl_deconvolution_backward_data_desc_init(op, alg, src, wei, dst, strides, pad_l, pad_r);
        default:
            return dnnl_deconvolution_backward_weights_desc_init(op, alg, src, wei, bia, dst, strides, pad_l, pad_r);
        }
    }
    dnnl_alg_kind_t alg = wino ? dnnl_convolution_winograd : dnnl_convolution_direct;
    switch (pi) {
    case DJ_CONV_PASS_FWD:
        return dnnl_convolution_forward_desc_init(op, fwd_prop, alg, src, wei, bia, dst, strides, pad_l, pad_r);
    case DJ_CONV_PASS_BWD_DATA:
        return dnnl_convolution_backward_data_desc_init(op, alg, src, wei, dst, strides, pad_l, pad_r);
    default: return dnnl_convolution_backward_weights_desc_init(op, alg, src, wei, bia, dst, strides, pad_l, pad_r);
    }
}

/* oneDNN 2.6.3 runs a transposed conv's bias, diff-bias and post-ops in
 * reference loops around its fast kernel. Measured (50x16x16x32 -> 32x32x16,
 * k 2, stride 2, 2 threads): forward 0.48 ms plain, 2-3 ms with bias, 25 ms
 * with a ReLU post-op; backward-weights 0.55 ms vs 1.1 ms with diff-bias.
 * For transposed convs the backend does them itself (epilogue, bias_grad). */
static int own_epilogue(const dj_conv_desc *d) { return d->transposed; }

/* Creates the primitive descriptor of pass `pi` (and, for backward passes,
 * the forward-training hint oneDNN requires). */
static dnnl_status_t pd_create(const dj_conv_desc *d, int pi, int wino, const dnnl_memory_desc_t *src,
                               const dnnl_memory_desc_t *bia, const dnnl_memory_desc_t *dst, conv_pass *p) {
    /* Weights are always `any`: plain weights make oneDNN pick ref:any. */
    dnnl_memory_desc_t w_any;
    dnnl_dim_t wdims[4] = {d->cout, d->cin, d->k, d->k};
    dnnl_format_tag_t wtag = dnnl_format_tag_any;
    if (debug_flags & DJ_BCONV_DEBUG_PLAIN_WEIGHTS) wtag = d->transposed ? dnnl_iohw : dnnl_oihw;
    dnnl_status_t st = md_init(&w_any, 4, wdims, wtag);
    if (st != dnnl_success) return st;
    dnnl_convolution_desc_t op;
    dnnl_primitive_attr_t attr;
    if (pi != DJ_CONV_PASS_FWD) {
        /* The hint never carries post-ops: backward is of the plain conv. */
        st = op_init(d, DJ_CONV_PASS_FWD, dnnl_forward_training, wino, src, &w_any, bia, dst, &op);
        if (st == dnnl_success) st = attr_new(&attr, 0, 0);
        if (st != dnnl_success) return st;
        st = dnnl_primitive_desc_create(&p->hint, &op, attr, engine, NULL);
        dnnl_primitive_attr_destroy(attr);
        if (st != dnnl_success) return st;
    }
    int fwd = pi == DJ_CONV_PASS_FWD;
    /* A frozen conv's forward is inference only (oneDNN may pick other
     * weight formats, e.g. Winograd's); its backward-data is still allowed. */
    dnnl_prop_kind_t prop = d->frozen ? dnnl_forward_inference : dnnl_forward_training;
    st = op_init(d, pi, prop, wino, src, &w_any, pi == DJ_CONV_PASS_BWD_DATA ? NULL : bia, dst, &op);
    int post = fwd && !own_epilogue(d);
    if (st == dnnl_success) st = attr_new(&attr, post && d->post_sum, post && d->post_relu);
    if (st != dnnl_success) return st;
    st = dnnl_primitive_desc_create(&p->pd, &op, attr, engine, p->hint);
    dnnl_primitive_attr_destroy(attr);
    return st;
}

/* oneDNN 2.6.3's 1x1 backward-weights kernels (jit_1x1, AVX2 and AVX-512)
 * write past their per-thread workspace when the stride is > 1, the source
 * is NHWC and its channel count is not a multiple of the channel block
 * (oneDNN issue #6035): wrong gradients, heap corruption or a hang, seen
 * here as wrong dw in ~10% of calls with 2 threads. A blocked source layout
 * takes a correct path, at the cost of reordering the activations of these
 * (rare, small) layers. A transposed conv's backward-weights is oneDNN's
 * conv backward-weights with source and destination swapped. */
static int rtus_bug_risk(const dj_conv_desc *od) {
    int src_channels = od->transposed ? od->cout : od->cin;
    return od->k == 1 && od->stride > 1 && src_channels % 16 != 0;
}

/* Builds pass `pi` for the shape of slot `s`: primitive descriptor (with
 * Winograd first when asked and possible), implementation check, primitive,
 * argument bindings and reorders. */
static int pass_init(dj_bconv *c, conv_slot *s, int pi) {
    const dj_conv_desc *d = &c->od;
    conv_pass *p = &s->p[pi];
    char what[256];
    describe(c, pi, s->n, s->h, s->w, what, sizeof what);
    int oh, ow;
    out_dims(d, s->h, s->w, &oh, &ow);
    dnnl_dim_t xdims[4] = {s->n, d->cin, s->h, s->w}, ydims[4] = {s->n, d->cout, oh, ow};
    dnnl_dim_t wdims[4] = {d->cout, d->cin, d->k, d->k}, bdims[1] = {d->cout};
    dnnl_memory_desc_t x_md, y_md, x_any, y_any, w_md, b_md;
    dnnl_status_t st = md_init(&x_md, 4, xdims, dnnl_nhwc);
    if (st == dnnl_success) st = md_init(&y_md, 4, ydims, dnnl_nhwc);
    if (st == dnnl_success) st = md_init(&x_any, 4, xdims, dnnl_format_tag_any);
    if (st == dnnl_success) st = md_init(&y_any, 4, ydims, dnnl_format_tag_any);
    /* PyTorch layouts: Conv2d (out, in, kh, kw), ConvTranspose2d (in, out,
     * kh, kw); oneDNN's dims are (out, in, kh, kw) for both. */
    if (st == dnnl_success) st = md_init(&w_md, 4, wdims, d->transposed ? dnnl_iohw : dnnl_oihw);
    if (st == dnnl_success) st = md_init(&b_md, 1, bdims, dnnl_a);
    if (st != dnnl_success) return dnnl_fail(st, "memory descriptor creation", what);

    /* oneDNN's Winograd kernels only take blocked activations (nChw16c):
     * they get `any` activations and reorders around them. */
    int prim_bias = d->bias && !own_epilogue(d);
    int try_wino = d->winograd && d->k == 3 && d->stride == 1 && c->d.k == 3;
    for (int wino = try_wino; wino >= 0; wino--) {
        int any =
            wino || (debug_flags & DJ_BCONV_DEBUG_ANY_ACT) || (pi == DJ_CONV_PASS_BWD_WEIGHTS && rtus_bug_risk(d));
        st = pd_create(d, pi, wino, any ? &x_any : &x_md, prim_bias ? &b_md : NULL, any ? &y_any : &y_md, p);
        if (st == dnnl_success) break;
        pass_clear(p); /* Winograd unavailable here: try the direct kernel */
    }
    if (st != dnnl_success) return dnnl_fail(st, "primitive descriptor creation", what);
    int rc = check_impl(c, pi, p->pd, p->impl, "convolution", what);
    if (rc == DJ_OK) rc = scratch_reserve(c, p->pd, what);
    if (rc != DJ_OK) return rc;
    st = dnnl_primitive_create(&p->prim, p->pd);
    if (st != dnnl_success) return dnnl_fail(st, "primitive creation", what);

    size_t nx = (size_t)s->n * s->h * s->w * d->cin, ny = (size_t)s->n * oh * ow * d->cout;
    size_t nw = (size_t)d->cout * d->cin * d->k * d->k, nb = (size_t)d->cout;
    switch (pi) {
    case DJ_CONV_PASS_FWD:
        rc = bind_init(c, pi, p, DNNL_ARG_SRC, IO_IN, &x_md, nx, what);
        if (rc == DJ_OK) rc = bind_init(c, pi, p, DNNL_ARG_WEIGHTS, IO_IN, &w_md, nw, what);
        if (rc == DJ_OK && prim_bias) rc = bind_init(c, pi, p, DNNL_ARG_BIAS, IO_IN, &b_md, nb, what);
        int inout = d->post_sum && !own_epilogue(d);
        if (rc == DJ_OK) rc = bind_init(c, pi, p, DNNL_ARG_DST, inout ? IO_INOUT : IO_OUT, &y_md, ny, what);
        break;
    case DJ_CONV_PASS_BWD_DATA:
        rc = bind_init(c, pi, p, DNNL_ARG_DIFF_DST, IO_IN, &y_md, ny, what);
        if (rc == DJ_OK) rc = bind_init(c, pi, p, DNNL_ARG_WEIGHTS, IO_IN, &w_md, nw, what);
        if (rc == DJ_OK) rc = bind_init(c, pi, p, DNNL_ARG_DIFF_SRC, IO_OUT, &x_md, nx, what);
        break;
    default:
        rc = bind_init(c, pi, p, DNNL_ARG_SRC, IO_IN, &x_md, nx, what);
        if (rc == DJ_OK) rc = bind_init(c, pi, p, DNNL_ARG_DIFF_DST, IO_IN, &y_md, ny, what);
        if (rc == DJ_OK) rc = bind_init(c, pi, p, DNNL_ARG_DIFF_WEIGHTS, IO_ACC, &w_md, nw, what);
        if (rc == DJ_OK && prim_bias) rc = bind_init(c, pi, p, DNNL_ARG_DIFF_BIAS, IO_ACC, &b_md, nb, what);
        break;
    }
    return rc;
}

/* The cache slot for input shape (n, h, w): found, free, or the least
 * recently used one, emptied. */
static conv_slot *slot_get(dj_bconv *c, int n, int h, int w) {
    conv_slot *victim = NULL;
    for (int i = 0; i < CACHE_SLOTS; i++) {
        conv_slot *s = &c->s[i];
        if (s->used && s->n == n && s->h == h && s->w == w) {
            s->stamp = ++c->clock;
            return s;
        }
        if (!victim || (victim->used && (!s->used || s->stamp < victim->stamp))) victim = s;
    }
    slot_clear(victim);
    victim->used = 1;
    victim->n = n;
    victim->h = h;
    victim->w = w;
    victim->stamp = ++c->clock;
    return victim;
}

/* The pass of shape (n, h, w), built on first use. A failed build leaves
 * the pass empty, so the next call tries again (and reports again). */
static int pass_get(dj_bconv *c, int pi, int n, int h, int w, conv_pass **out) {
    int rc = backend_ready();
    if (rc != DJ_OK) return rc;
    conv_slot *s = slot_get(c, n, h, w);
    conv_pass *p = &s->p[pi];
    if (!p->prim) {
        rc = pass_init(c, s, pi);
        if (rc != DJ_OK) {
            pass_clear(p);
            return rc;
        }
    }
    memcpy(c->impl[pi], p->impl, IMPL_LEN);
    *out = p;
    return DJ_OK;
}

static int run_prim(dj_bconv *c, dnnl_primitive_t prim, dnnl_exec_arg_t *args, int nargs, const char *what) {
    if (c->scratch_mem) {
        args[nargs].arg = DNNL_ARG_SCRATCHPAD;
        args[nargs].memory = c->scratch_mem;
        nargs++;
    }
    dnnl_status_t st = dnnl_primitive_execute(prim, stream, nargs, args);
    if (st != dnnl_success)
        return dj_error(DJ_EBACKEND, "oneDNN execution of %s failed: %s", what, dnnl_status2str(st));
    return DJ_OK;
}

static int run_reorder(dj_bconv *c, dnnl_primitive_t r, dnnl_memory_t from, dnnl_memory_t to, const char *what) {
    dnnl_exec_arg_t args[3] = {{DNNL_ARG_FROM, from}, {DNNL_ARG_TO, to}};
    return run_prim(c, r, args, 2, what);
}

static int set_handle(arg_bind *b, const void *data) {
    dnnl_status_t st = dnnl_memory_set_data_handle(b->user, (void *)data);
    return st == dnnl_success ? DJ_OK : dj_error(DJ_EBACKEND, "oneDNN set_data_handle failed: %s", dnnl_status2str(st));
}

/* Before the primitive runs: points the argument at the caller's data and
 * brings inputs into the primitive's layout. `cacheable` (frozen weights)
 * skips the reorder while the same weights were reordered last time.
 * Returns the memory the primitive gets in *mem. */
static int bind_pre(dj_bconv *c, arg_bind *b, const void *data, int accum, int cacheable, dnnl_memory_t *mem) {
    int rc = set_handle(b, data);
    if (rc != DJ_OK) return rc;
    int to_buf = !b->same || b->io == IO_ACC || (b->io == IO_OUT && accum);
    *mem = to_buf ? b->prim : b->user;
    if (b->same || !b->to_prim) return DJ_OK;
    if (cacheable && b->cache_ok && b->cached == data) return DJ_OK;
    rc = run_reorder(c, b->to_prim, b->user, b->prim, "an input reorder");
    b->cache_ok = cacheable && rc == DJ_OK;
    b->cached = data;
    return rc;
}

/* After the primitive ran: brings outputs back to the caller's layout,
 * adding into the caller's data for IO_ACC and accumulating IO_OUT. */
static int bind_post(dj_bconv *c, arg_bind *b, float *data, int accum) {
    if (b->io == IO_IN || !data) return DJ_OK;
    int add = b->io == IO_ACC || (b->io == IO_OUT && accum);
    if (!add) return b->same ? DJ_OK : run_reorder(c, b->from_prim, b->prim, b->user, "an output reorder");
    if (!b->same) return run_reorder(c, b->add_prim, b->prim, b->user, "an accumulating reorder");
    dnnl_stream_wait(stream);
    dj_accumulate(data, b->buf, b->user_floats, 1);
    return DJ_OK;
}

/* Runs pass p: data[i] is the caller's pointer for binding i. */
static int pass_run(dj_bconv *c, conv_pass *p, void *const *data, int accum, int cache_weights) {
    dnnl_exec_arg_t args[MAX_BINDS + 1];
    int rc = DJ_OK;
    for (int i = 0; i < p->nb && rc == DJ_OK; i++) {
        args[i].arg = p->b[i].arg;
        int cacheable = cache_weights && p->b[i].arg == DNNL_ARG_WEIGHTS;
        rc = bind_pre(c, &p->b[i], data[i], accum, cacheable, &args[i].memory);
    }
    if (rc == DJ_OK) rc = run_prim(c, p->prim, args, p->nb, "a convolution");
    for (int i = 0; i < p->nb && rc == DJ_OK; i++) rc = bind_post(c, &p->b[i], data[i], accum);
    dnnl_status_t st = dnnl_stream_wait(stream);
    if (rc == DJ_OK && st != dnnl_success)
        rc = dj_error(DJ_EBACKEND, "oneDNN stream wait failed: %s", dnnl_status2str(st));
    return rc;
}

/* A transposed conv whose output padding exceeds its padding would give
 * oneDNN a negative right padding (pad - out_pad), which its kernels handle
 * badly: the 1x1 backward-weights kernel computes wrong gradients and
 * corrupts the heap (oneDNN 2.6.3, seen with k 1, stride 2, out_pad 1).
 * Instead, the kernel is extended by e = out_pad - pad zero taps at the
 * bottom/right and out_pad lowered by e: same output size, right padding 0,
 * same results, since the extra taps are zero (their gradient is dropped). */
int dj_bconv_create(dj_bconv **out, const dj_conv_desc *d) {
    *out = NULL;
    dj_bconv *c = dj_calloc(sizeof *c);
    if (!c) return dj_error(DJ_ENOMEM, "cannot allocate a convolution object");
    c->d = *d;
    c->od = *d;
    if (d->transposed && d->out_pad > d->pad) {
        int e = d->out_pad - d->pad;
        c->od.k = d->k + e;
        c->od.out_pad = d->pad;
        size_t n = (size_t)d->cout * d->cin * c->od.k * c->od.k * sizeof(float);
        c->wext = dj_calloc(n); /* the extra taps stay zero for good */
        c->dwext = dj_calloc(n);
        if (!c->wext || !c->dwext) {
            dj_bconv_destroy(c);
            return dj_error(DJ_ENOMEM, "cannot allocate extended transposed-conv weights (%zu bytes)", n);
        }
    }
    *out = c;
    return DJ_OK;
}

/* Caller's k x k weights into the top-left of the extended kernels. Same
 * code for OIHW and IOHW: only the two trailing dimensions differ. */
static const float *ext_weights_in(dj_bconv *c, const float *w) {
    if (!c->wext) return w;
    /* The primitives only ever see wext, so the frozen cache cannot notice
     * new caller weights by their address: tell it here. */
    if (w != c->wext_src) dj_bconv_weights_changed(c);
    c->wext_src = w;
    int k = c->d.k, kx = c->od.k;
    size_t planes = (size_t)c->d.cout * c->d.cin;
    for (size_t p = 0; p < planes; p++)
        for (int y = 0; y < k; y++) memcpy(c->wext + (p * kx + y) * kx, w + (p * k + y) * k, k * sizeof(float));
    return c->wext;
}

/* dw += the top-left k x k of each extended kernel gradient. */
static void ext_weights_add(const dj_bconv *c, float *dw) {
    int k = c->d.k, kx = c->od.k;
    size_t planes = (size_t)c->d.cout * c->d.cin;
    for (size_t p = 0; p < planes; p++)
        for (int y = 0; y < k; y++)
            for (int x = 0; x < k; x++) dw[(p * k + y) * k + x] += c->dwext[(p * kx + y) * kx + x];
}

void dj_bconv_destroy(dj_bconv *c) {
    if (!c) return;
    for (int i = 0; i < CACHE_SLOTS; i++) slot_clear(&c->s[i]);
    if (c->scratch_mem) dnnl_memory_destroy(c->scratch_mem);
    dj_free(c->scratch);
    dj_free(c->wext);
    dj_free(c->dwext);
    dj_free(c->ytmp);
    dj_free(c->red);
    dj_free(c);
}

/* y = relu(t + b + y) (t: the primitive's output when the post-op sum is
 * on, else NULL and y holds it), each part only when asked. */
static void epilogue(float *y, const float *t, const float *b, size_t pixels, int c, int relu) {
    if (!t && !b && !relu) return;
#pragma omp parallel for schedule(static) if (pixels * (size_t)c > 65536)
    for (size_t p = 0; p < pixels; p++) {
        float *yp = y + p * c;
        const float *tp = t ? t + p * c : NULL;
        for (int i = 0; i < c; i++) {
            float v = tp ? tp[i] : yp[i];
            if (b) v += b[i];
            if (tp) v += yp[i];
            yp[i] = relu && v < 0.f ? 0.f : v;
        }
    }
}

/* db += sum of dy over its pixels, in double: per-thread partial sums over
 * slices of the pixels (NHWC keeps each pixel's channels contiguous), then
 * added up in order, so the result does not depend on timing. */
static int bias_grad(dj_bconv *c, const float *dy, size_t pixels, int cout, float *db) {
    int nthr = pixels * (size_t)cout > 65536 ? omp_get_max_threads() : 1;
    size_t need = (size_t)nthr * cout;
    if (need > c->red_count) {
        dj_free(c->red);
        c->red_count = 0;
        c->red = dj_malloc(need * sizeof(double));
        if (!c->red) return dj_error(DJ_ENOMEM, "cannot allocate %zu doubles for a bias gradient", need);
        c->red_count = need;
    }
    memset(c->red, 0, need * sizeof(double));
#pragma omp parallel num_threads(nthr)
    {
        int t = omp_get_thread_num(), nt = omp_get_num_threads();
        double *acc = c->red + (size_t)t * cout;
        size_t lo = pixels * t / nt, hi = pixels * (t + 1) / nt;
        for (size_t p = lo; p < hi; p++)
            for (int i = 0; i < cout; i++) acc[i] += dy[p * cout + i];
    }
    for (int t = 0; t < nthr; t++)
        for (int i = 0; i < cout; i++) db[i] += (float)c->red[(size_t)t * cout + i];
    return DJ_OK;
}

int dj_bconv_forward(dj_bconv *c, const dj_tensor *x, const float *w, const float *b, dj_tensor *y) {
    conv_pass *p;
    int rc = pass_get(c, DJ_CONV_PASS_FWD, x->n, x->h, x->w, &p);
    if (rc != DJ_OK) return rc;
    int own = own_epilogue(&c->d);
    float *dst = y->data;
    size_t ny = dj_tensor_numel(y);
    if (own && c->d.post_sum) { /* y keeps y_old until the epilogue */
        if (ny > c->ytmp_floats) {
            dj_free(c->ytmp);
            c->ytmp_floats = 0;
            c->ytmp = dj_malloc(ny * sizeof(float));
            if (!c->ytmp) return dj_error(DJ_ENOMEM, "cannot allocate %zu floats for a transposed conv output", ny);
            c->ytmp_floats = ny;
        }
        dst = c->ytmp;
    }
    void *data[MAX_BINDS] = {x->data, (void *)ext_weights_in(c, w)};
    int i = 2;
    if (c->d.bias && !own) data[i++] = (void *)b;
    data[i] = dst;
    rc = pass_run(c, p, data, 0, c->d.frozen);
    if (rc == DJ_OK && own)
        epilogue(y->data, dst == y->data ? NULL : dst, c->d.bias ? b : NULL, ny / (size_t)y->c, y->c, c->d.post_relu);
    return rc;
}

int dj_bconv_backward_data(dj_bconv *c, const dj_tensor *dy, const float *w, dj_tensor *dx, int accum) {
    conv_pass *p;
    int rc = pass_get(c, DJ_CONV_PASS_BWD_DATA, dx->n, dx->h, dx->w, &p);
    if (rc != DJ_OK) return rc;
    if (accum) {
        char what[256];
        rc = bind_need_add(c, DJ_CONV_PASS_BWD_DATA, &p->b[2],
                           describe(c, DJ_CONV_PASS_BWD_DATA, dx->n, dx->h, dx->w, what, sizeof what));
        if (rc != DJ_OK) return rc;
    }
    void *data[MAX_BINDS] = {dy->data, (void *)ext_weights_in(c, w), dx->data};
    return pass_run(c, p, data, accum, c->d.frozen);
}

int dj_bconv_backward_weights(dj_bconv *c, const dj_tensor *x, const dj_tensor *dy, float *dw, float *db) {
    int own = own_epilogue(&c->d);
    int rc = DJ_OK;
    if (dw || !own) {
        conv_pass *p;
        rc = pass_get(c, DJ_CONV_PASS_BWD_WEIGHTS, x->n, x->h, x->w, &p);
        if (rc != DJ_OK) return rc;
        int ext = c->dwext && dw; /* extended kernel: gradient via dwext */
        if (ext) memset(c->dwext, 0, (size_t)c->d.cout * c->d.cin * c->od.k * c->od.k * sizeof(float));
        void *data[MAX_BINDS] = {x->data, dy->data, ext ? c->dwext : dw, own ? NULL : db};
        rc = pass_run(c, p, data, 0, 0);
        if (rc == DJ_OK && ext) ext_weights_add(c, dw);
    }
    if (rc == DJ_OK && own && db) rc = bias_grad(c, dy->data, dj_tensor_numel(dy) / (size_t)dy->c, dy->c, db);
    return rc;
}

void dj_bconv_weights_changed(dj_bconv *c) {
    for (int i = 0; i < CACHE_SLOTS; i++)
        for (int pi = 0; pi < DJ_CONV_PASS_COUNT; pi++)
            for (int j = 0; j < c->s[i].p[pi].nb; j++) c->s[i].p[pi].b[j].cache_ok = 0;
}

const char *dj_bconv_impl_name(const dj_bconv *c, int pass) {
    if (!c || pass < 0 || pass >= DJ_CONV_PASS_COUNT) return "";
    return c->impl[pass];
}
