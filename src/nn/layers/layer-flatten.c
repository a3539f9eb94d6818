/* flatten: (C,H,W) -> C*H*W. No computation: NCHW rows are already (rows, C*H*W),
 * so the output is a view of the input and the gradient passes through. */
#include "nn/layer.h"

static const char *parse_(const struct nn_tok *k, struct dlfs_layer *L, struct nn_shape *s)
{
    (void)L;
    if (k->arg) return NN_UNKNOWN;
    s->w = s->c * s->h * s->w;
    s->c = s->h = 1;
    return NULL;
}

const struct nn_layer_desc nn_layer_flatten = {
    .name = "flatten", .flags = NN_VIEW | NN_BWD_INPLACE, .parse = parse_,
};
