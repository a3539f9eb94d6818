/* Parameter initialisation and the forward/backward passes: generic loops over
 * the layer table (src/nn/layer.h), expressed only through backend ops. */
#include <stdlib.h>
#include <string.h>
#include "core/trace.h"
#include "dlfs/util.h"
#include "nn/layer.h"

void dlfs_model_init_params(const struct dlfs_model *m, uint64_t seed, float *params)
{
    for (int l = 0; l < m->num_layers; l++) {
        const struct dlfs_layer *L = &m->layers[l];
        const struct nn_layer_desc *d = nn_layer_desc(L->type);
        if (L->num_params && d->init) d->init(L, seed, l, params + L->w_off);
    }
}

void dlfs_model_init_buffers(const struct dlfs_model *m, float *buffers)
{
    for (int l = 0; l < m->num_layers; l++) {
        const struct dlfs_layer *L = &m->layers[l];
        const struct nn_layer_desc *d = nn_layer_desc(L->type);
        if (L->num_bufs && d->init_buffers) d->init_buffers(L, buffers + L->buf_off);
    }
}

double dlfs_model_train_flops_per_sample(const struct dlfs_model *m)
{
    double macs = 0.0;
    for (int l = 0; l < m->num_layers; l++) {
        const struct nn_layer_desc *d = nn_layer_desc(m->layers[l].type);
        if (d->macs) macs += d->macs(&m->layers[l]);
    }
    return 6.0 * macs;
}

int dlfs_model_nodecay(const struct dlfs_model *m, size_t (*r)[2], int max)
{
    int n = 0;
    for (int l = 0; l < m->num_layers; l++) {
        const struct dlfs_layer *L = &m->layers[l];
        const struct nn_layer_desc *d = nn_layer_desc(L->type);
        size_t mine[8][2];
        const int k = L->num_params && d->nodecay ? d->nodecay(L, mine) : 0;
        for (int i = 0; i < k && n < max; i++, n++) r[n][0] = L->w_off + mine[i][0], r[n][1] = mine[i][1];
    }
    return n;
}

bool dlfs_model_draws_random(const struct dlfs_model *m)
{
    for (int l = 0; l < m->num_layers; l++)
        if (nn_layer_desc(m->layers[l].type)->flags & NN_RANDOM) return true;
    return false;
}

enum dlfs_status dlfs_model_check_backend(const struct dlfs_model *m, const struct dlfs_backend *be)
{
    for (int l = 0; l < m->num_layers; l++) {
        const struct dlfs_layer *L = &m->layers[l];
        const struct nn_layer_desc *d = nn_layer_desc(L->type);
        /* derived from the table entries: a NULL op is an op the backend lacks */
        const char *missing = d->missing_op ? d->missing_op(be) : NULL;
        if (missing)
            return dlfs_error_set(DLFS_ERR_DEVICE, "the %s backend has no %s op, which layer %s of model '%s' "
                                  "needs; use --device cpu", be->name, missing, L->name, m->spec);
    }
    return DLFS_OK;
}

void dlfs_model_free(struct dlfs_model *m)
{
    free(m->spec);
    m->spec = NULL;
}

/* The output of layer k (-1: the model input). */
static const float *out_(const struct dlfs_workspace *ws, int k)
{
    return k < 0 ? ws->x : ws->a[k];
}

const float *dlfs_model_forward(const struct dlfs_model *m, struct dlfs_workspace *ws,
                                const float *params, int rows)
{
    DLFS_ASSERT(rows > 0 && rows <= ws->max_rows);
    for (int l = 0; l < m->num_layers; l++) {
        const struct dlfs_layer *L = &m->layers[l];
        const struct nn_layer_desc *d = nn_layer_desc(L->type);
        const int span = dlfs_trace_begin("forward", L->name, l);
        const struct nn_call c = {
            .L = L, .l = l, .rows = rows, .ws = ws, .params = params,
            .x = {out_(ws, L->src[0]), L->nsrc > 1 ? out_(ws, L->src[1]) : NULL}, .z = ws->z[l], .y = ws->a[l],
        };
        if (d->forward) d->forward(&c);
        dlfs_trace_end(span);
    }
    return ws->a[m->num_layers - 1];
}

void dlfs_model_loss(const struct dlfs_model *m, struct dlfs_workspace *ws, int rows, float grad_scale)
{
    const int T = m->positions > 1 ? m->positions : 1;
    if (T > 1) /* a language model: the targets are the last T ids of each input window */
        ws->be->take_ids(ws->x, rows, m->input_dim, m->input_dim - T, T, ws->labels);
    ws->be->softmax_xent(ws->a[m->num_layers - 1], ws->labels, rows * T, m->num_classes, grad_scale / (float)T,
                         grad_scale != 0.0f ? ws->g[m->num_layers - 1] : NULL, ws->stats);
}

/* Where layer l sends the gradient of its input i (NULL: the model input, which
 * needs none). The first consumer of an output in backward order (its last_use)
 * writes the output's gradient buffer; later ones write `scratch` and add it in
 * (*acc = 1), or add directly when the layer can (NN_BWD_ACC). */
static float *dx_(const struct dlfs_model *m, struct dlfs_workspace *ws, int l, int i, float *scratch,
                  int *acc, int *add_after)
{
    const int k = m->layers[l].src[i];
    *acc = *add_after = 0;
    if (k < 0) return NULL;
    if (m->layers[k].last_use == l) return ws->g[k];
    if (nn_layer_desc(m->layers[l].type)->flags & NN_BWD_ACC) {
        *acc = 1;
        return ws->g[k];
    }
    *add_after = 1;
    return scratch;
}

/* One layer's backward, with its input gradients' routing (in place, accumulate). */
static void backward_layer_(const struct dlfs_model *m, struct dlfs_workspace *ws, const float *params,
                            float *grads, int rows, int l)
{
    const struct dlfs_backend *be = ws->be;
    const struct dlfs_layer *L = &m->layers[l];
    const struct nn_layer_desc *d = nn_layer_desc(L->type);
    DLFS_ASSERT(L->nsrc == 1 || (d->flags & NN_BWD_ACC)); /* one scratch buffer: one input to add later */
    float *dy = ws->g[l];
    if (L->act != DLFS_ACT_NONE) /* in place: dy becomes dL/dz */
        be->act_bwd(dy, dy, ws->z[l], ws->a[l], (size_t)rows * L->out, L->act);
    /* scratch for an input gradient to be added: a ping-pong buffer dy is not */
    float *scratch = dy == ws->d0 ? ws->d1 : ws->d0;
    struct nn_call c = {
        .L = L, .l = l, .rows = rows, .ws = ws, .params = params, .grads = grads, .dy = dy,
        .x = {out_(ws, L->src[0]), L->nsrc > 1 ? out_(ws, L->src[1]) : NULL}, .z = ws->z[l], .y = ws->a[l],
    };
    int add_after[2] = {0, 0};
    for (int i = 0; i < L->nsrc && !(d->flags & NN_BWD_INPLACE); i++)
        c.dx[i] = dx_(m, ws, l, i, scratch, &c.acc[i], &add_after[i]);
    if (d->flags & NN_BWD_INPLACE) { /* dx = f(dy) in dy's buffer, then moved where it belongs */
        const int k = L->src[0];
        c.dx[0] = dy;
        if (d->backward) d->backward(&c);
        if (k < 0) return;
        const size_t n = (size_t)rows * L->in;
        if (ws->g[k] == dy) return; /* the plain chain: the gradient stays where it is */
        if (m->layers[k].last_use == l) be->copy(ws->g[k], dy, n * sizeof(float));
        else be->axpy(n, 1.0f, dy, ws->g[k]);
        return;
    }
    d->backward(&c);
    for (int i = 0; i < L->nsrc; i++)
        if (add_after[i]) be->axpy((size_t)rows * m->layers[L->src[i]].out, 1.0f, scratch, ws->g[L->src[i]]);
}

void dlfs_model_backward(const struct dlfs_model *m, struct dlfs_workspace *ws, const float *params,
                         float *grads, int rows, void (*layer_done)(int layer, void *ctx), void *ctx)
{
    for (int l = m->num_layers - 1; l >= 0; l--) {
        const int span = dlfs_trace_begin("backward", m->layers[l].name, l);
        backward_layer_(m, ws, params, grads, rows, l);
        dlfs_trace_end(span);
        if (layer_done) layer_done(l, ctx);
    }
}
