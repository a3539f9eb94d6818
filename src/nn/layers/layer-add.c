/* add(K): the residual add, y = x + (the output of layer K), where x is this
 * layer's first input (the previous layer's output, or from(J)'s) and K an
 * earlier layer's index or `in`; both of the same shape. An activation may
 * follow (fused: ResNet's relu after the add). Backward sends dy to both inputs. */
#include "nn/layer.h"

static const char *parse_(const struct nn_tok *k, struct dlfs_layer *L, struct nn_shape *s)
{
    const int l = s->m->num_layers;
    int src, c, h, w;
    if (!k->arg || !nn_parse_ref(k->arg, k->alen, l, &src))
        return "add(K) needs an earlier layer's index K (its name's number) or 'in'";
    if (src == L->src[0]) return "add(K) would add an output to itself";
    nn_out_shape(s->m, src, &c, &h, &w);
    if (c != s->c || h != s->h || w != s->w) {
        snprintf(s->why, sizeof s->why, "add needs two inputs of one shape: %dx%dx%d and %dx%dx%d (layer %s)", s->c,
                 s->h, s->w, c, h, w, src < 0 ? "in" : s->m->layers[src].name);
        return s->why;
    }
    L->nsrc = 2;
    L->src[1] = src;
    return NULL;
}

static int print_(const struct dlfs_layer *L, char *o, size_t room)
{
    if (L->src[1] < 0) return snprintf(o, room, "add(in)");
    return snprintf(o, room, "add(%d)", L->src[1]);
}

static void ws_(const struct dlfs_layer *L, int rows, struct nn_ws_need *n)
{
    (void)rows;
    if (L->act != DLFS_ACT_NONE) n->aux = (size_t)L->out; /* zeros: the fused activation's bias */
}

static const char *missing_(const struct dlfs_backend *be)
{
    return !be->add ? "add" : NULL;
}

static void forward_(const struct nn_call *c)
{
    const struct dlfs_layer *L = c->L;
    const struct dlfs_backend *be = c->ws->be;
    const size_t n = (size_t)c->rows * L->out;
    be->add(n, c->x[0], c->x[1], c->z);
    if (L->act != DLFS_ACT_NONE) be->bias_act_fwd(c->z, c->y, c->ws->aux[c->l], c->rows, L->out, L->act);
}

/* dL/dx0 = dL/dx1 = dy: copied, or added where the input's gradient is accumulating */
static void backward_(const struct nn_call *c)
{
    const struct dlfs_backend *be = c->ws->be;
    const size_t n = (size_t)c->rows * c->L->out;
    for (int i = 0; i < 2; i++) {
        if (!c->dx[i]) continue;
        if (c->acc[i]) be->axpy(n, 1.0f, c->dy, c->dx[i]);
        else be->copy(c->dx[i], c->dy, n * sizeof(float));
    }
}

const struct nn_layer_desc nn_layer_add = {
    .name = "add", .flags = NN_ACT | NN_BWD_ACC, .parse = parse_, .print = print_, .ws_need = ws_,
    .missing_op = missing_, .forward = forward_, .backward = backward_,
};
