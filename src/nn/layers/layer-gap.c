/* gap: global average pooling, (C,H,W) -> C (the mean of each channel's plane). */
#include "nn/layer.h"

static const char *parse_(const struct nn_tok *k, struct dlfs_layer *L, struct nn_shape *s)
{
    (void)L;
    if (k->arg) return NN_UNKNOWN;
    if (s->c == 1 && s->h == 1) return "gap needs an image input (CxHxW), not a flat one";
    s->w = s->c;
    s->c = s->h = 1;
    return NULL;
}

static const char *missing_(const struct dlfs_backend *be)
{
    return !be->gap_fwd ? "gap_fwd" : !be->gap_bwd ? "gap_bwd" : NULL;
}

static void forward_(const struct nn_call *c)
{
    const struct dlfs_layer *L = c->L;
    c->ws->be->gap_fwd(c->rows, L->g.c, L->g.h * L->g.w, c->x[0], c->y);
}

static void backward_(const struct nn_call *c)
{
    const struct dlfs_layer *L = c->L;
    if (c->dx[0]) c->ws->be->gap_bwd(c->rows, L->g.c, L->g.h * L->g.w, c->dy, c->dx[0]);
}

const struct nn_layer_desc nn_layer_gap = {
    .name = "gap", .parse = parse_, .missing_op = missing_, .forward = forward_, .backward = backward_,
};
