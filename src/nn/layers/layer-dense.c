/* dense(N): fully connected, z (rows, N) = x (rows, in) W^T + b; W (N, in). */
#include "nn/layer.h"

static const char *parse_(const struct nn_tok *k, struct dlfs_layer *L, struct nn_shape *s)
{
    (void)L;
    int n;
    if (!k->arg || !nn_parse_pos(k->arg, k->alen, &n)) return "dense(N) needs a positive width";
    s->c = 1; s->h = 1; s->w = n;
    return NULL;
}

static int print_(const struct dlfs_layer *L, char *o, size_t room)
{
    return snprintf(o, room, "dense(%d)", L->out);
}

static void sizes_(struct dlfs_layer *L, size_t *nw, size_t *nb)
{
    *nw = (size_t)L->out * L->in;
    *nb = (size_t)L->out;
    L->w_rank = 2;
    L->w_dims[0] = (uint64_t)L->out, L->w_dims[1] = (uint64_t)L->in;
}

static void init_(const struct dlfs_layer *L, uint64_t seed, int l, float *p)
{
    nn_init_uniform(seed, l, L->in, p, L->num_params); /* weight then bias: contiguous */
}

static void forward_(const struct nn_call *c)
{
    const struct dlfs_layer *L = c->L;
    const struct dlfs_backend *be = c->ws->be;
    /* z (rows, out) = x (rows, in) * W^T (in, out) */
    be->gemm(false, true, c->rows, L->out, L->in, 1.0f, c->x[0], L->in, c->params + L->w_off, L->in, 0.0f,
             c->z, L->out);
    be->bias_act_fwd(c->z, c->y, c->params + L->b_off, c->rows, L->out, L->act);
}

static void backward_(const struct nn_call *c)
{
    const struct dlfs_layer *L = c->L;
    const struct dlfs_backend *be = c->ws->be;
    /* dW (out, in) = dz^T (out, rows) * x (rows, in) */
    be->gemm(true, false, L->out, L->in, c->rows, 1.0f, c->dy, L->out, c->x[0], L->in, 0.0f,
             c->grads + L->w_off, L->in);
    be->colsum(c->grads + L->b_off, c->dy, c->rows, L->out, 0.0f);
    /* dx (rows, in) = dz (rows, out) * W (out, in) */
    if (c->dx[0])
        be->gemm(false, false, c->rows, L->in, L->out, 1.0f, c->dy, L->out, c->params + L->w_off, L->in, 0.0f,
                 c->dx[0], L->in);
}

static double macs_(const struct dlfs_layer *L)
{
    return (double)L->in * L->out;
}

const struct nn_layer_desc nn_layer_dense = {
    .name = "dense", .flags = NN_ACT | NN_LAST, .parse = parse_, .print = print_, .sizes = sizes_,
    .init = init_, .forward = forward_, .backward = backward_, .macs = macs_,
};
