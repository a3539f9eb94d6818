/* Parameter initialisation, workspaces, and the forward/backward passes of the
 * layer table, expressed only through backend ops. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "core/trace.h"
#include "dlfs/model.h"
#include "dlfs/util.h"

#define DLFS_KEY_INIT 0x1a17ULL
#define DLFS_BN_EPS 1e-5f /* PyTorch's default */

void dlfs_model_init_params(const struct dlfs_model *m, uint64_t seed, float *params)
{
    for (int l = 0; l < m->num_layers; l++) {
        const struct dlfs_layer *L = &m->layers[l];
        if (L->num_params == 0) continue;
        if (L->type == DLFS_LAYER_BATCHNORM) { /* gamma 1, beta 0: the identity at the start */
            for (int c = 0; c < L->bn_c; c++) {
                params[L->w_off + (size_t)c] = 1.0f;
                params[L->b_off + (size_t)c] = 0.0f;
            }
            continue;
        }
        const uint64_t key = dlfs_key(seed, DLFS_KEY_INIT, (uint64_t)l);
        /* fan-in: inputs per output (PyTorch's Linear and Conv2d defaults) */
        const int fan_in = L->type == DLFS_LAYER_CONV ? L->g.c * L->g.kh * L->g.kw : L->in;
        const float bound = 1.0f / sqrtf((float)fan_in);
        float *p = params + L->w_off; /* weight then bias: contiguous */
        for (size_t i = 0; i < L->num_params; i++)
            p[i] = (2.0f * dlfs_uniform01(key, i) - 1.0f) * bound;
    }
}

void dlfs_model_init_buffers(const struct dlfs_model *m, float *buffers)
{
    for (int l = 0; l < m->num_layers; l++) {
        const struct dlfs_layer *L = &m->layers[l];
        if (L->type != DLFS_LAYER_BATCHNORM) continue;
        for (int c = 0; c < L->bn_c; c++) {
            buffers[L->buf_off + (size_t)c] = 0.0f;
            buffers[L->buf_off + (size_t)L->bn_c + (size_t)c] = 1.0f;
        }
    }
}

double dlfs_model_train_flops_per_sample(const struct dlfs_model *m)
{
    double macs = 0.0;
    for (int l = 0; l < m->num_layers; l++) {
        const struct dlfs_layer *L = &m->layers[l];
        if (L->type == DLFS_LAYER_DENSE) macs += (double)L->in * L->out;
        if (L->type == DLFS_LAYER_CONV) macs += (double)L->out * L->g.c * L->g.kh * L->g.kw;
    }
    return 6.0 * macs;
}

enum dlfs_status dlfs_model_check_backend(const struct dlfs_model *m, const struct dlfs_backend *be)
{
    for (int l = 0; l < m->num_layers; l++) {
        const struct dlfs_layer *L = &m->layers[l];
        const char *missing = NULL;
        /* derived from the table entries: a NULL op is an op the backend lacks */
        if (L->type == DLFS_LAYER_CONV && !be->conv2d_fwd) missing = "conv2d_fwd";
        else if (L->type == DLFS_LAYER_CONV && !be->conv2d_bwd) missing = "conv2d_bwd";
        else if (L->type == DLFS_LAYER_MAXPOOL && !be->maxpool_fwd) missing = "maxpool_fwd";
        else if (L->type == DLFS_LAYER_MAXPOOL && !be->maxpool_bwd) missing = "maxpool_bwd";
        else if (L->type == DLFS_LAYER_DROPOUT && !be->dropout_fwd) missing = "dropout_fwd";
        else if (L->type == DLFS_LAYER_DROPOUT && !be->mul) missing = "mul";
        else if (L->type == DLFS_LAYER_BATCHNORM && !be->batchnorm_fwd) missing = "batchnorm_fwd";
        else if (L->type == DLFS_LAYER_BATCHNORM && !be->batchnorm_bwd) missing = "batchnorm_bwd";
        if (missing)
            return dlfs_error_set(DLFS_ERR_DEVICE, "the %s backend has no %s op, which layer %s of model '%s' "
                                  "needs; use --device cpu", be->name, missing, L->name, m->spec);
    }
    return DLFS_OK;
}

enum dlfs_status dlfs_workspace_init(struct dlfs_workspace *ws, const struct dlfs_model *m,
                                     const struct dlfs_backend *be, int max_rows)
{
    memset(ws, 0, sizeof *ws);
    ws->be = be;
    ws->max_rows = max_rows;
    size_t rows = (size_t)max_rows;
    int ok = 1;
#define ALLOC_(ptr, bytes) do { (ptr) = be->alloc(bytes); ok = ok && (ptr) != NULL; } while (0)
    ALLOC_(ws->x, rows * m->input_dim * sizeof(float));
    for (int l = 0; l < m->num_layers; l++) {
        const struct dlfs_layer *L = &m->layers[l];
        if (L->type == DLFS_LAYER_FLATTEN) { /* a view of its input: NCHW is already (rows, c*h*w) */
            ws->z[l] = ws->a[l] = l == 0 ? ws->x : ws->a[l - 1];
            continue;
        }
        ALLOC_(ws->z[l], rows * L->out * sizeof(float));
        if (L->act != DLFS_ACT_NONE) ALLOC_(ws->a[l], rows * L->out * sizeof(float));
        else ws->a[l] = ws->z[l];
        if (L->type == DLFS_LAYER_MAXPOOL) ALLOC_(ws->arg[l], rows * L->out * sizeof(int32_t));
        if (L->type == DLFS_LAYER_DROPOUT || L->type == DLFS_LAYER_BATCHNORM)
            ALLOC_(ws->aux[l], rows * L->out * sizeof(float));
        if (L->type == DLFS_LAYER_BATCHNORM) ALLOC_(ws->invstd[l], rows * (size_t)L->bn_c * sizeof(float));
    }
    size_t col = 0;
    for (int l = 0; l < m->num_layers; l++) {
        if (m->layers[l].type != DLFS_LAYER_CONV) continue;
        const size_t c = dlfs_conv_col_floats(&m->layers[l].g, max_rows);
        if (c > col) col = c;
    }
    if (col) ALLOC_(ws->col, col * sizeof(float));
    ALLOC_(ws->ids, rows * sizeof(uint32_t));
    ALLOC_(ws->d0, rows * m->max_width * sizeof(float));
    ALLOC_(ws->d1, rows * m->max_width * sizeof(float));
    ALLOC_(ws->labels, rows * sizeof(int32_t));
    ALLOC_(ws->stats, 2 * sizeof(double));
#undef ALLOC_
    if (!ok) {
        dlfs_workspace_free(ws, m);
        return dlfs_error_set(DLFS_ERR_NOMEM, "out of %s memory for activations of %d samples; "
                              "use a smaller --batch", be->name, max_rows);
    }
    return DLFS_OK;
}

void dlfs_model_free(struct dlfs_model *m)
{
    free(m->spec);
    m->spec = NULL;
}

double dlfs_workspace_bytes(const struct dlfs_model *m, int max_rows)
{
    /* per row, as dlfs_workspace_init allocates: x, ids, labels, d0, d1, then each layer */
    double row = 4.0 * m->input_dim + 4 + 4 + 2 * 4.0 * m->max_width, col = 0;
    for (int l = 0; l < m->num_layers; l++) {
        const struct dlfs_layer *L = &m->layers[l];
        if (L->type == DLFS_LAYER_FLATTEN) continue;
        const int extra = (L->act != DLFS_ACT_NONE) + (L->type == DLFS_LAYER_MAXPOOL) +
                          (L->type == DLFS_LAYER_DROPOUT || L->type == DLFS_LAYER_BATCHNORM);
        row += 4.0 * L->out * (1 + extra) + (L->type == DLFS_LAYER_BATCHNORM ? 4.0 * L->bn_c : 0.0);
        if (L->type == DLFS_LAYER_CONV) {
            const double c = 4.0 * (double)dlfs_conv_col_floats(&L->g, max_rows);
            col = c > col ? c : col;
        }
    }
    return row * max_rows + col + 2 * sizeof(double);
}

void dlfs_workspace_free(struct dlfs_workspace *ws, const struct dlfs_model *m)
{
    const struct dlfs_backend *be = ws->be;
    if (!be) return;
    be->free(ws->x);
    for (int l = 0; l < m->num_layers; l++) {
        if (m->layers[l].type == DLFS_LAYER_FLATTEN) continue; /* views, not owned */
        if (ws->a[l] != ws->z[l]) be->free(ws->a[l]);
        be->free(ws->z[l]);
        be->free(ws->arg[l]);
        be->free(ws->aux[l]);
        be->free(ws->invstd[l]);
    }
    be->free(ws->col);
    be->free(ws->ids);
    be->free(ws->d0);
    be->free(ws->d1);
    be->free(ws->labels);
    be->free(ws->stats);
    memset(ws, 0, sizeof *ws);
}

const float *dlfs_model_forward(const struct dlfs_model *m, struct dlfs_workspace *ws,
                                const float *params, int rows)
{
    const struct dlfs_backend *be = ws->be;
    DLFS_ASSERT(rows > 0 && rows <= ws->max_rows);
    const float *x = ws->x;
    for (int l = 0; l < m->num_layers; l++) {
        const struct dlfs_layer *L = &m->layers[l];
        const int span = dlfs_trace_begin("forward", L->name, l);
        switch (L->type) {
        case DLFS_LAYER_DENSE:
            /* z (rows, out) = x (rows, in) * W^T (in, out) */
            be->gemm(false, true, rows, L->out, L->in, 1.0f, x, L->in, params + L->w_off, L->in,
                     0.0f, ws->z[l], L->out);
            be->bias_act_fwd(ws->z[l], ws->a[l], params + L->b_off, rows, L->out, L->act);
            break;
        case DLFS_LAYER_CONV:
            be->conv2d_fwd(&L->g, rows, x, params + L->w_off, params + L->b_off, ws->col, ws->z[l], ws->a[l],
                           L->act);
            break;
        case DLFS_LAYER_MAXPOOL:
            be->maxpool_fwd(&L->g, rows, x, ws->a[l], ws->arg[l]);
            break;
        case DLFS_LAYER_BATCHNORM: {
            const float *gamma = params + L->w_off, *beta = params + L->b_off;
            if (ws->training)
                be->batchnorm_fwd(rows, L->bn_c, L->bn_plane, ws->bn_group, x, gamma, beta, NULL, NULL,
                                  DLFS_BN_EPS, ws->aux[l], ws->invstd[l], ws->z[l], ws->a[l], L->act,
                                  ws->bn_stats ? ws->bn_stats + L->buf_off : NULL);
            else
                be->batchnorm_fwd(rows, L->bn_c, L->bn_plane, 0, x, gamma, beta, ws->buffers + L->buf_off,
                                  ws->buffers + L->buf_off + L->bn_c, DLFS_BN_EPS, NULL, NULL, ws->z[l], ws->a[l],
                                  L->act, NULL);
            break;
        }
        case DLFS_LAYER_DROPOUT:
            if (ws->training && L->rate > 0.0f)
                be->dropout_fwd(x, ws->a[l], ws->aux[l], rows, L->out, L->rate,
                                dlfs_hash64(ws->key, (uint64_t)l), ws->ids);
            else if (ws->training)
                be->fill(ws->aux[l], 1.0f, (size_t)rows * L->out);
            if (!ws->training || L->rate == 0.0f)
                be->copy(ws->a[l], x, (size_t)rows * L->out * sizeof(float));
            break;
        default: /* flatten: a view */
            break;
        }
        dlfs_trace_end(span);
        x = ws->a[l];
    }
    return x;
}

void dlfs_model_loss(const struct dlfs_model *m, struct dlfs_workspace *ws, int rows, float grad_scale)
{
    ws->be->softmax_xent(ws->a[m->num_layers - 1], ws->labels, rows, m->num_classes, grad_scale,
                         grad_scale != 0.0f ? ws->d0 : NULL, ws->stats);
}

void dlfs_model_backward(const struct dlfs_model *m, struct dlfs_workspace *ws, const float *params,
                         float *grads, int rows, void (*layer_done)(int layer, void *ctx), void *ctx)
{
    const struct dlfs_backend *be = ws->be;
    float *d = ws->d0, *dnext = ws->d1; /* d: gradient w.r.t. the layer's output */
    for (int l = m->num_layers - 1; l >= 0; l--) {
        const struct dlfs_layer *L = &m->layers[l];
        const float *x = l == 0 ? ws->x : ws->a[l - 1];
        const int span = dlfs_trace_begin("backward", L->name, l);
        if (L->act != DLFS_ACT_NONE) /* in place: d becomes dL/dz */
            be->act_bwd(d, d, ws->z[l], ws->a[l], (size_t)rows * L->out, L->act);
        int swap = l > 0;
        switch (L->type) {
        case DLFS_LAYER_DENSE:
            /* dW (out, in) = dz^T (out, rows) * x (rows, in) */
            be->gemm(true, false, L->out, L->in, rows, 1.0f, d, L->out, x, L->in, 0.0f,
                     grads + L->w_off, L->in);
            be->colsum(grads + L->b_off, d, rows, L->out, 0.0f);
            /* dx (rows, in) = dz (rows, out) * W (out, in) */
            if (l > 0)
                be->gemm(false, false, rows, L->in, L->out, 1.0f, d, L->out, params + L->w_off, L->in,
                         0.0f, dnext, L->in);
            break;
        case DLFS_LAYER_CONV:
            be->conv2d_bwd(&L->g, rows, x, params + L->w_off, d, ws->col, grads + L->w_off, grads + L->b_off,
                           l > 0 ? dnext : NULL);
            break;
        case DLFS_LAYER_MAXPOOL:
            if (l > 0) be->maxpool_bwd(&L->g, rows, d, ws->arg[l], dnext);
            break;
        case DLFS_LAYER_BATCHNORM:
            DLFS_ASSERT(ws->training);
            be->batchnorm_bwd(rows, L->bn_c, L->bn_plane, ws->bn_group, d, ws->aux[l], ws->invstd[l],
                              params + L->w_off, grads + L->w_off, grads + L->b_off, l > 0 ? dnext : NULL);
            break;
        case DLFS_LAYER_DROPOUT: /* in place: dx = dy * mask (identity after an evaluation forward) */
            if (ws->training) be->mul((size_t)rows * L->out, ws->aux[l], d);
            swap = 0;
            break;
        default: /* flatten: the gradient is already laid out as its input */
            swap = 0;
            break;
        }
        if (swap) { float *t = d; d = dnext; dnext = t; }
        dlfs_trace_end(span);
        if (layer_done) layer_done(l, ctx);
    }
}
