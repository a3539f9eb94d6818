/* dropout(P): while training, zero each value with probability P and scale the
 * rest by 1/(1-P); the identity in evaluation. The mask of layer l, row r,
 * element j is drawn from (ws->key, l, ws->ids[r], j): no rank-count dependence. */
#include <stdlib.h>
#include "dlfs/util.h"
#include "nn/layer.h"

static const char *parse_(const struct nn_tok *k, struct dlfs_layer *L, struct nn_shape *s)
{
    (void)s;
    char *end = NULL;
    const double p = k->arg ? strtod(k->arg, &end) : -1.0;
    if (!k->arg || k->alen == 0 || end != k->arg + k->alen || !(p >= 0.0 && p < 1.0))
        return "dropout(P) needs a probability 0 <= P < 1";
    L->rate = (float)p;
    return NULL;
}

static int print_(const struct dlfs_layer *L, char *o, size_t room)
{
    return snprintf(o, room, "dropout(%g)", (double)L->rate);
}

static void ws_(const struct dlfs_layer *L, int rows, struct nn_ws_need *n)
{
    n->aux = (size_t)rows * L->out;
}

static const char *missing_(const struct dlfs_backend *be)
{
    return !be->dropout_fwd ? "dropout_fwd" : !be->mul ? "mul" : NULL;
}

static void forward_(const struct nn_call *c)
{
    const struct dlfs_layer *L = c->L;
    struct dlfs_workspace *ws = c->ws;
    const size_t n = (size_t)c->rows * L->out;
    if (ws->training && L->rate > 0.0f)
        ws->be->dropout_fwd(c->x[0], c->y, ws->aux[c->l], c->rows, L->out, L->rate,
                            dlfs_hash64(ws->key, (uint64_t)c->l), ws->ids);
    else if (ws->training)
        ws->be->fill(ws->aux[c->l], 1.0f, n);
    if (!ws->training || L->rate == 0.0f) ws->be->copy(c->y, c->x[0], n * sizeof(float));
}

/* in place: dx = dy * mask (the identity after an evaluation forward) */
static void backward_(const struct nn_call *c)
{
    if (c->ws->training) c->ws->be->mul((size_t)c->rows * c->L->out, c->ws->aux[c->l], c->dx[0]);
}

const struct nn_layer_desc nn_layer_dropout = {
    .name = "dropout", .flags = NN_BWD_INPLACE | NN_RANDOM, .parse = parse_, .print = print_, .ws_need = ws_,
    .missing_op = missing_, .forward = forward_, .backward = backward_,
};
