/* batchnorm: per channel (per feature after a flat input): batch statistics
 * while training, the running ones (buffers running_mean, running_var) in
 * evaluation; weight = gamma, bias = beta. */
#include "nn/layer.h"

#define DLFS_BN_EPS 1e-5f /* PyTorch's default */

static const char *parse_(const struct nn_tok *k, struct dlfs_layer *L, struct nn_shape *s)
{
    if (k->arg) return NN_UNKNOWN;
    /* a flat input (1x1xN) is normalised per feature, an image per channel */
    L->bn_c = s->c == 1 && s->h == 1 ? s->w : s->c;
    L->bn_plane = s->c == 1 && s->h == 1 ? 1 : s->h * s->w;
    return NULL;
}

static void sizes_(struct dlfs_layer *L, size_t *nw, size_t *nb)
{
    *nw = *nb = (size_t)L->bn_c;
    L->w_rank = 1;
    L->w_dims[0] = (uint64_t)L->bn_c;
    L->num_bufs = 2;
    L->buf_len = (size_t)L->bn_c;
    L->buf_names[0] = "running_mean";
    L->buf_names[1] = "running_var";
}

static void init_(const struct dlfs_layer *L, uint64_t seed, int l, float *p)
{
    (void)seed, (void)l;
    for (int c = 0; c < L->bn_c; c++) { /* gamma 1, beta 0: the identity at the start */
        p[c] = 1.0f;
        p[L->bn_c + c] = 0.0f;
    }
}

static void init_buffers_(const struct dlfs_layer *L, float *b)
{
    for (int c = 0; c < L->bn_c; c++) {
        b[c] = 0.0f;
        b[L->bn_c + c] = 1.0f;
    }
}

static void ws_(const struct dlfs_layer *L, int rows, struct nn_ws_need *n)
{
    n->aux = (size_t)rows * L->out;
    n->stat = (size_t)rows * L->bn_c;
}

static const char *missing_(const struct dlfs_backend *be)
{
    return !be->batchnorm_fwd ? "batchnorm_fwd" : !be->batchnorm_bwd ? "batchnorm_bwd" : NULL;
}

static void forward_(const struct nn_call *c)
{
    const struct dlfs_layer *L = c->L;
    struct dlfs_workspace *ws = c->ws;
    const float *gamma = c->params + L->w_off, *beta = c->params + L->b_off;
    if (ws->training)
        ws->be->batchnorm_fwd(c->rows, L->bn_c, L->bn_plane, ws->bn_group, c->x[0], gamma, beta, NULL, NULL,
                              DLFS_BN_EPS, ws->aux[c->l], ws->invstd[c->l], c->z, c->y, L->act,
                              ws->bn_stats ? ws->bn_stats + L->buf_off : NULL);
    else
        ws->be->batchnorm_fwd(c->rows, L->bn_c, L->bn_plane, 0, c->x[0], gamma, beta, ws->buffers + L->buf_off,
                              ws->buffers + L->buf_off + L->bn_c, DLFS_BN_EPS, NULL, NULL, c->z, c->y, L->act,
                              NULL);
}

static void backward_(const struct nn_call *c)
{
    const struct dlfs_layer *L = c->L;
    struct dlfs_workspace *ws = c->ws;
    DLFS_ASSERT(ws->training);
    ws->be->batchnorm_bwd(c->rows, L->bn_c, L->bn_plane, ws->bn_group, c->dy, ws->aux[c->l], ws->invstd[c->l],
                          c->params + L->w_off, c->grads + L->w_off, c->grads + L->b_off, c->dx[0]);
}

const struct nn_layer_desc nn_layer_batchnorm = {
    .name = "batchnorm", .flags = NN_ACT, .parse = parse_, .sizes = sizes_, .init = init_,
    .init_buffers = init_buffers_, .ws_need = ws_, .missing_op = missing_, .forward = forward_,
    .backward = backward_,
};
