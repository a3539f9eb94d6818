/* block(C,hH): one GPT-2 transformer block over (T, C) (src/README.md, "Language
 * models"), pre-norm:
 *   x1 = x + proj(attn(ln1(x)))         attn: causal, H heads of C/H
 *   y  = x1 + fc2(gelu(fc(ln2(x1))))    fc: C -> 4C, fc2: 4C -> C
 * Parameters in this order (the checkpoint's 1-D weight, then the bias = fc2's):
 *   ln1 gamma, beta (C each) | qkv W (3C, C), b (3C) | proj W (C, C), b (C) |
 *   ln2 gamma, beta | fc W (4C, C), b (4C) | fc2 W (C, 4C) || fc2 b (C)
 * The activations the backward needs live in ws->aux (per layer), its scratch in
 * ws->col (shared). */
#include <string.h>
#include "nn/layer.h"

/* the backend's GEMM for a language model's products (dlfs/backend.h, gemm_rows) */
#define LM_GEMM_(be) ((be)->gemm_rows ? (be)->gemm_rows : (be)->gemm)

#define BK_EPS 1e-5f

/* Offsets of the parameters (relative to w_off), for width C. */
struct bk_off_ { size_t g1, b1, wqkv, bqkv, wp, bp, g2, b2, wfc, bfc, w2, bo; };
static struct bk_off_ off_(size_t C)
{
    struct bk_off_ o;
    o.g1 = 0, o.b1 = C, o.wqkv = 2 * C, o.bqkv = o.wqkv + 3 * C * C, o.wp = o.bqkv + 3 * C, o.bp = o.wp + C * C;
    o.g2 = o.bp + C, o.b2 = o.g2 + C, o.wfc = o.b2 + C, o.bfc = o.wfc + 4 * C * C, o.w2 = o.bfc + 4 * C;
    o.bo = o.w2 + 4 * C * C;
    return o;
}

/* The saved activations of n = rows * T positions in aux, and the scratch in col. */
struct bk_ws_ { float *ln1, *qkv, *atty, *x1, *ln2, *fch, *fca, *m1, *r1, *m2, *r2, *att; };
static struct bk_ws_ ws_of_(float *aux, size_t n, size_t C)
{
    struct bk_ws_ w;
    w.ln1 = aux, w.qkv = w.ln1 + n * C, w.atty = w.qkv + 3 * n * C, w.x1 = w.atty + n * C, w.ln2 = w.x1 + n * C;
    w.fch = w.ln2 + n * C, w.fca = w.fch + 4 * n * C, w.m1 = w.fca + 4 * n * C, w.r1 = w.m1 + n, w.m2 = w.r1 + n;
    w.r2 = w.m2 + n, w.att = w.r2 + n;
    return w;
}

static const char *parse_(const struct nn_tok *k, struct dlfs_layer *L, struct nn_shape *s)
{
    int c = 0, h = 0;
    const char *comma = k->arg ? memchr(k->arg, ',', k->alen) : NULL;
    if (!comma || !nn_parse_pos(k->arg, (size_t)(comma - k->arg), &c) || comma[1] != 'h' ||
        !nn_parse_pos(comma + 2, k->alen - (size_t)(comma + 2 - k->arg), &h))
        return "block(C,hH) needs a width C and a number of heads H";
    if (c % h) return "block(C,hH): C must be a multiple of H";
    if (s->c != 1 || s->w != c) return "block(C,hH) must follow embed(V,C) or a block of the same C";
    L->seq = s->h, L->heads = h;
    return NULL;
}
static int print_(const struct dlfs_layer *L, char *o, size_t room)
{
    return snprintf(o, room, "block(%d,h%d)", L->g.w, L->heads);
}
static void sizes_(struct dlfs_layer *L, size_t *nw, size_t *nb)
{
    const size_t C = (size_t)L->g.w;
    *nw = 12 * C * C + 12 * C, *nb = C;
    L->w_rank = 1, L->w_dims[0] = (uint64_t)*nw;
}
static void init_(const struct dlfs_layer *L, uint64_t seed, int l, float *p)
{
    const size_t C = (size_t)L->g.w;
    const struct bk_off_ o = off_(C);
    memset(p, 0, (o.bo + C) * sizeof *p);
    nn_init_std(seed, l, 0.02f, p + o.wqkv, 3 * C * C);
    nn_init_std(seed, 4 * l + 1 + (1 << 20), 0.02f, p + o.wp, C * C);
    nn_init_std(seed, 4 * l + 2 + (1 << 20), 0.02f, p + o.wfc, 4 * C * C);
    nn_init_std(seed, 4 * l + 3 + (1 << 20), 0.02f, p + o.w2, 4 * C * C);
    for (size_t j = 0; j < C; j++) p[o.g1 + j] = p[o.g2 + j] = 1.0f;
}
static void ws_need_(const struct dlfs_layer *L, int rows, struct nn_ws_need *n)
{
    const size_t C = (size_t)L->g.w, N = (size_t)rows * (size_t)L->seq;
    const size_t att = (size_t)rows * (size_t)L->heads * (size_t)L->seq * (size_t)L->seq;
    n->aux = 15 * N * C + 4 * N + att;
    n->col = 6 * N * C + att;
}
static const char *missing_(const struct dlfs_backend *be)
{
    return !be->layernorm_fwd ? "layernorm_fwd" : !be->attn_fwd ? "attn_fwd" : NULL;
}

/* out (n, o) = in (n, i) W^T + b, plus `res` (n, o) when not NULL (a residual), then act. */
static void lin_(const struct dlfs_backend *be, int n, int o, int i, const float *in, const float *W, const float *b,
                 const float *res, float *out, float *act_out)
{
    if (res) be->copy(out, res, (size_t)n * (size_t)o * sizeof *out);
    LM_GEMM_(be)(false, true, n, o, i, 1.0f, in, i, W, i, res ? 1.0f : 0.0f, out, o);
    be->bias_act_fwd(out, act_out ? act_out : out, b, n, o, act_out ? DLFS_ACT_GELU : DLFS_ACT_NONE);
}

static void forward_(const struct nn_call *c)
{
    const struct dlfs_layer *L = c->L;
    const struct dlfs_backend *be = c->ws->be;
    const int C = L->g.w, n = c->rows * L->seq;
    const struct bk_off_ o = off_((size_t)C);
    const float *p = c->params + L->w_off;
    const struct bk_ws_ w = ws_of_(c->ws->aux[c->l], (size_t)n, (size_t)C);
    be->layernorm_fwd(n, C, c->x[0], p + o.g1, p + o.b1, BK_EPS, w.ln1, w.m1, w.r1);
    lin_(be, n, 3 * C, C, w.ln1, p + o.wqkv, p + o.bqkv, NULL, w.qkv, NULL);
    be->attn_fwd(c->rows, L->seq, C, L->heads, w.qkv, w.att, w.atty);
    lin_(be, n, C, C, w.atty, p + o.wp, p + o.bp, c->x[0], w.x1, NULL);
    be->layernorm_fwd(n, C, w.x1, p + o.g2, p + o.b2, BK_EPS, w.ln2, w.m2, w.r2);
    lin_(be, n, 4 * C, C, w.ln2, p + o.wfc, p + o.bfc, NULL, w.fch, w.fca);
    lin_(be, n, C, 4 * C, w.fca, p + o.w2, p + o.bo, w.x1, c->y, NULL);
}

/* dW (o, i) = dout^T in, db = colsum dout, din (n, i) = dout W (when din). */
static void lin_bwd_(const struct dlfs_backend *be, int n, int o, int i, const float *dout, const float *in,
                     const float *W, float *dW, float *db, float *din)
{
    LM_GEMM_(be)(true, false, o, i, n, 1.0f, dout, o, in, i, 0.0f, dW, i);
    be->colsum(db, dout, n, o, 0.0f);
    if (din) LM_GEMM_(be)(false, false, n, i, o, 1.0f, dout, o, W, i, 0.0f, din, i);
}

static void backward_(const struct nn_call *c)
{
    const struct dlfs_layer *L = c->L;
    const struct dlfs_backend *be = c->ws->be;
    const int C = L->g.w, n = c->rows * L->seq;
    const size_t nc = (size_t)n * (size_t)C;
    const struct bk_off_ o = off_((size_t)C);
    const float *p = c->params + L->w_off;
    float *g = c->grads + L->w_off, *A = c->ws->col, *B = A + 4 * nc, *dx1 = B + nc, *datt = dx1 + nc;
    const struct bk_ws_ w = ws_of_(c->ws->aux[c->l], (size_t)n, (size_t)C);
    lin_bwd_(be, n, C, 4 * C, c->dy, w.fca, p + o.w2, g + o.w2, g + o.bo, A);              /* d fca */
    be->act_bwd(A, A, w.fch, w.fca, 4 * nc, DLFS_ACT_GELU);                                /* d fch */
    lin_bwd_(be, n, 4 * C, C, A, w.ln2, p + o.wfc, g + o.wfc, g + o.bfc, B);               /* d ln2 */
    be->layernorm_bwd(n, C, B, w.x1, w.m2, w.r2, p + o.g2, dx1, g + o.g2, g + o.b2);
    be->axpy(nc, 1.0f, c->dy, dx1);                                                        /* + residual */
    lin_bwd_(be, n, C, C, dx1, w.atty, p + o.wp, g + o.wp, g + o.bp, B);                   /* d atty */
    be->attn_bwd(c->rows, L->seq, C, L->heads, w.qkv, w.att, B, datt, A);                  /* d qkv */
    lin_bwd_(be, n, 3 * C, C, A, w.ln1, p + o.wqkv, g + o.wqkv, g + o.bqkv, B);            /* d ln1 */
    be->layernorm_bwd(n, C, B, c->x[0], w.m1, w.r1, p + o.g1, c->dx[0], g + o.g1, g + o.b1);
    if (c->dx[0]) be->axpy(nc, 1.0f, dx1, c->dx[0]);                                       /* + residual */
}
static double macs_(const struct dlfs_layer *L)
{
    const double C = L->g.w, T = L->seq;
    return T * 12.0 * C * C + 2.0 * T * T * C;
}

/* Decay on the four matrices only: the ranges between them (norms, biases) and the last bias are left alone. */
static int nodecay_(const struct dlfs_layer *L, size_t r[][2])
{
    const size_t C = (size_t)L->g.w;
    const struct bk_off_ o = off_(C);
    const size_t from[5] = {o.g1, o.bqkv, o.bp, o.bfc, o.bo}, to[5] = {o.wqkv, o.wp, o.wfc, o.w2, o.bo + C};
    for (int i = 0; i < 5; i++) r[i][0] = from[i], r[i][1] = to[i] - from[i];
    return 5;
}

const struct nn_layer_desc nn_layer_block = {
    .name = "block", .parse = parse_, .print = print_, .sizes = sizes_, .init = init_, .ws_need = ws_need_,
    .missing_op = missing_, .forward = forward_, .backward = backward_, .macs = macs_, .nodecay = nodecay_,
};
