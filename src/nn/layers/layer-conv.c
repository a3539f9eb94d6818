#define _POSIX_C_SOURCE 200809L
/* The window layers: conv(C,kK[,sS][,pP]) (C output channels, KxK kernel,
 * stride S, zero padding P; weight (C, c, K, K)) and maxpool(K[,sS]). */
#include <ctype.h>
#include <string.h>
#include "nn/layer.h"

/* Window arguments after the first: "k5", "s2", "p0" (key in `keys`). Returns
 * NULL or the reason it is bad. */
static const char *window_args_(char *args, const char *keys, int *k, int *stride, int *pad)
{
    char *save = NULL, seen[4] = "";
    for (char *a = strtok_r(args, ",", &save); a; a = strtok_r(NULL, ",", &save)) {
        while (isspace((unsigned char)*a)) a++;
        size_t n = strlen(a);
        while (n && isspace((unsigned char)a[n - 1])) a[--n] = '\0';
        if (n < 2 || !strchr(keys, a[0])) return "unknown argument (use kK, sS, pP)";
        if (strchr(seen, a[0]))
            return a[0] == 'k' ? "the kernel size is given twice" : a[0] == 's' ? "the stride is given twice"
                                                                            : "the padding is given twice";
        seen[strlen(seen)] = a[0];
        int v;
        if (a[0] == 'p') {
            if (!nn_parse_int(a + 1, n - 1, 0, 4096, &v)) return "padding must be an integer >= 0";
            *pad = v;
        } else if (!nn_parse_int(a + 1, n - 1, 1, 4096, &v)) {
            return a[0] == 'k' ? "kernel size must be a positive integer" : "stride must be a positive integer";
        } else if (a[0] == 'k') {
            *k = v;
        } else {
            *stride = v;
        }
    }
    return NULL;
}

static const char *window_(const struct nn_tok *k, struct dlfs_layer *L, struct nn_shape *s, int conv)
{
    char *comma = k->arg ? strchr(k->arg, ',') : NULL;
    int first, win = 0, stride = 1, pad = 0;
    if (!k->arg || !nn_parse_pos(k->arg, comma ? (size_t)(comma - k->arg) : k->alen, &first))
        return conv ? "conv(C,kK[,sS][,pP]) needs a positive number of output channels"
                    : "maxpool(K[,sS]) needs a positive window size";
    const char *why = comma ? window_args_(comma + 1, conv ? "ksp" : "s", &win, &stride, &pad) : NULL;
    if (why) return why;
    if (conv && win == 0) return "conv needs a kernel size, e.g. conv(32,k5,p2)";
    if (!conv) { win = first; if (!comma) stride = first; }
    if (win > s->h + 2 * pad || win > s->w + 2 * pad) {
        snprintf(s->why, sizeof s->why, "the %dx%d window is larger than its %dx%d input%s", win, win, s->h, s->w,
                 pad ? " plus padding" : "");
        return s->why;
    }
    L->g.kh = L->g.kw = win;
    L->g.stride = stride;
    L->g.pad = pad;
    s->c = conv ? first : s->c;
    s->h = (s->h + 2 * pad - win) / stride + 1;
    s->w = (s->w + 2 * pad - win) / stride + 1;
    return NULL;
}

static const char *conv_parse_(const struct nn_tok *k, struct dlfs_layer *L, struct nn_shape *s)
{
    return window_(k, L, s, 1);
}

static const char *pool_parse_(const struct nn_tok *k, struct dlfs_layer *L, struct nn_shape *s)
{
    return window_(k, L, s, 0);
}

static int conv_print_(const struct dlfs_layer *L, char *o, size_t room)
{
    char s[16] = "", p[16] = "";
    if (L->g.stride != 1) snprintf(s, sizeof s, ",s%d", L->g.stride);
    if (L->g.pad) snprintf(p, sizeof p, ",p%d", L->g.pad);
    return snprintf(o, room, "conv(%d,k%d%s%s)", L->g.oc, L->g.kh, s, p);
}

static int pool_print_(const struct dlfs_layer *L, char *o, size_t room)
{
    if (L->g.stride == L->g.kh) return snprintf(o, room, "maxpool(%d)", L->g.kh);
    return snprintf(o, room, "maxpool(%d,s%d)", L->g.kh, L->g.stride);
}

static void conv_sizes_(struct dlfs_layer *L, size_t *nw, size_t *nb)
{
    *nw = (size_t)L->g.oc * L->g.c * L->g.kh * L->g.kw;
    *nb = (size_t)L->g.oc;
    L->w_rank = 4;
    L->w_dims[0] = (uint64_t)L->g.oc, L->w_dims[1] = (uint64_t)L->g.c;
    L->w_dims[2] = (uint64_t)L->g.kh, L->w_dims[3] = (uint64_t)L->g.kw;
}

static void conv_init_(const struct dlfs_layer *L, uint64_t seed, int l, float *p)
{
    nn_init_uniform(seed, l, L->g.c * L->g.kh * L->g.kw, p, L->num_params);
}

static void conv_ws_(const struct dlfs_layer *L, int rows, struct nn_ws_need *n)
{
    n->col = dlfs_conv_col_floats(&L->g, rows);
}

static void pool_ws_(const struct dlfs_layer *L, int rows, struct nn_ws_need *n)
{
    n->arg = (size_t)rows * L->out;
}

static const char *conv_missing_(const struct dlfs_backend *be)
{
    return !be->conv2d_fwd ? "conv2d_fwd" : !be->conv2d_bwd ? "conv2d_bwd" : NULL;
}

static const char *pool_missing_(const struct dlfs_backend *be)
{
    return !be->maxpool_fwd ? "maxpool_fwd" : !be->maxpool_bwd ? "maxpool_bwd" : NULL;
}

static void conv_forward_(const struct nn_call *c)
{
    const struct dlfs_layer *L = c->L;
    c->ws->be->conv2d_fwd(&L->g, c->rows, c->x[0], c->params + L->w_off, c->params + L->b_off, c->ws->col, c->z,
                          c->y, L->act);
}

static void conv_backward_(const struct nn_call *c)
{
    const struct dlfs_layer *L = c->L;
    c->ws->be->conv2d_bwd(&L->g, c->rows, c->x[0], c->params + L->w_off, c->dy, c->ws->col, c->grads + L->w_off,
                          c->grads + L->b_off, c->dx[0]);
}

static void pool_forward_(const struct nn_call *c)
{
    c->ws->be->maxpool_fwd(&c->L->g, c->rows, c->x[0], c->y, c->ws->arg[c->l]);
}

static void pool_backward_(const struct nn_call *c)
{
    if (c->dx[0]) c->ws->be->maxpool_bwd(&c->L->g, c->rows, c->dy, c->ws->arg[c->l], c->dx[0]);
}

static double conv_macs_(const struct dlfs_layer *L)
{
    return (double)L->out * L->g.c * L->g.kh * L->g.kw;
}

const struct nn_layer_desc nn_layer_conv = {
    .name = "conv", .flags = NN_ACT, .parse = conv_parse_, .print = conv_print_, .sizes = conv_sizes_,
    .init = conv_init_, .ws_need = conv_ws_, .missing_op = conv_missing_, .forward = conv_forward_,
    .backward = conv_backward_, .macs = conv_macs_,
};

const struct nn_layer_desc nn_layer_maxpool = {
    .name = "maxpool", .parse = pool_parse_, .print = pool_print_, .ws_need = pool_ws_,
    .missing_op = pool_missing_, .forward = pool_forward_, .backward = pool_backward_,
};
