/* The language model's simple layers (GPT-2 style; src/README.md, "Language models"):
 *   embed(V,C)  after in(T+1): a window of T + 1 token ids (floats); the first T
 *               -> (T, C) = token table (V, C) row + learned position table (T, C)
 *               row; the last T are the targets (dlfs_model_loss takes them from the
 *               input). Weight = token table, bias = position table
 *   lnorm       layer norm over the C values of each position (after embed/block);
 *               weight = gamma, bias = beta
 *   lmhead      the output projection tied to the embedding's token table:
 *               (T, C) -> logits (T, V); no parameters of its own, and the loss is
 *               taken at every position (dlfs_model_loss)
 * Initialisation as GPT-2's: tables std 0.02 (uniform here), gamma 1, beta 0. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "dlfs/util.h"
#include "nn/layer.h"

/* the backend's GEMM for a language model's products (dlfs/backend.h, gemm_rows) */
#define LM_GEMM_(be) ((be)->gemm_rows ? (be)->gemm_rows : (be)->gemm)

#define LM_KEY_INIT 0x6e70ULL

/* "A,B" into two positive ints */
static int two_(const struct nn_tok *k, int *a, int *b)
{
    if (!k->arg) return 0;
    const char *c = memchr(k->arg, ',', k->alen);
    return c && nn_parse_pos(k->arg, (size_t)(c - k->arg), a) &&
           nn_parse_pos(c + 1, k->alen - (size_t)(c + 1 - k->arg), b);
}

void nn_init_std(uint64_t seed, int l, float sd, float *p, size_t n)
{
    const uint64_t key = dlfs_key(seed, LM_KEY_INIT, (uint64_t)l);
    const float a = sd * sqrtf(3.0f); /* uniform(-a, a) has std sd */
    for (size_t i = 0; i < n; i++) p[i] = (2.0f * dlfs_uniform01(key, i) - 1.0f) * a;
}

/* ---- embed -------------------------------------------------------------------------- */

static const char *embed_parse_(const struct nn_tok *k, struct dlfs_layer *L, struct nn_shape *s)
{
    int v, c;
    if (!two_(k, &v, &c) || v < 2 || v > 65536) return "embed(V,C) needs a vocabulary V of 2..65536 and a width C";
    if (L->src[0] != -1 || s->c != 1 || s->h != 1 || s->w < 2)
        return "embed(V,C) must come first, after in(T+1): windows of T + 1 tokens";
    L->vocab = v, L->seq = s->w - 1, L->tie = -1;
    s->c = 1, s->h = L->seq, s->w = c;
    return NULL;
}
static int embed_print_(const struct dlfs_layer *L, char *o, size_t room)
{
    return snprintf(o, room, "embed(%d,%d)", L->vocab, L->g.ow);
}
static void embed_sizes_(struct dlfs_layer *L, size_t *nw, size_t *nb)
{
    const int c = L->out / L->seq;
    *nw = (size_t)L->vocab * (size_t)c, *nb = (size_t)L->seq * (size_t)c;
    L->w_rank = 2, L->w_dims[0] = (uint64_t)L->vocab, L->w_dims[1] = (uint64_t)c;
}
static void embed_init_(const struct dlfs_layer *L, uint64_t seed, int l, float *p)
{
    nn_init_std(seed, l, 0.02f, p, L->num_params);
}
static const char *embed_missing_(const struct dlfs_backend *be)
{
    return !be->embed_fwd ? "embed_fwd" : !be->take_ids ? "take_ids" : NULL;
}
static void embed_fwd_(const struct nn_call *c)
{
    const struct dlfs_layer *L = c->L;
    const int C = L->out / L->seq;
    c->ws->be->embed_fwd(c->params + L->w_off, c->params + L->b_off, c->x[0], L->seq + 1, c->rows * L->seq, L->seq, C,
                         c->y);
}
/* Adds into the token table's gradient when the head tied to it wrote it first. */
static void embed_bwd_(const struct nn_call *c)
{
    const struct dlfs_layer *L = c->L;
    const struct dlfs_backend *be = c->ws->be;
    const int C = L->out / L->seq;
    float *dtok = c->grads + L->w_off, *dpos = c->grads + L->b_off;
    if (L->tie < 0) be->fill(dtok, 0.0f, (size_t)L->vocab * (size_t)C);
    be->fill(dpos, 0.0f, (size_t)L->seq * (size_t)C);
    be->embed_bwd(c->dy, c->x[0], L->seq + 1, c->rows * L->seq, L->seq, C, L->vocab, dtok, dpos);
}
static double embed_macs_(const struct dlfs_layer *L) { (void)L; return 0.0; }

/* embed and lnorm: no decay on any of their parameters */
static int all_(const struct dlfs_layer *L, size_t r[][2])
{
    r[0][0] = 0, r[0][1] = L->num_params;
    return 1;
}

const struct nn_layer_desc nn_layer_embed = {
    .name = "embed", .parse = embed_parse_, .print = embed_print_, .sizes = embed_sizes_, .init = embed_init_,
    .missing_op = embed_missing_, .forward = embed_fwd_, .backward = embed_bwd_, .macs = embed_macs_,
    .nodecay = all_,
};

/* ---- lnorm -------------------------------------------------------------------------- */

#define LN_EPS 1e-5f

static const char *ln_parse_(const struct nn_tok *k, struct dlfs_layer *L, struct nn_shape *s)
{
    if (k->arg) return NN_UNKNOWN;
    if (s->c != 1 || s->h < 1) return "lnorm must follow embed or block";
    L->seq = s->h;
    return NULL;
}
static void ln_sizes_(struct dlfs_layer *L, size_t *nw, size_t *nb)
{
    *nw = *nb = (size_t)L->g.w;
    L->w_rank = 1, L->w_dims[0] = (uint64_t)L->g.w;
}
static void ln_init_(const struct dlfs_layer *L, uint64_t seed, int l, float *p)
{
    (void)seed, (void)l;
    for (int j = 0; j < L->g.w; j++) p[j] = 1.0f, p[L->g.w + j] = 0.0f;
}
static void ln_ws_(const struct dlfs_layer *L, int rows, struct nn_ws_need *n)
{
    n->aux = 2 * (size_t)rows * (size_t)L->seq;
}
static const char *ln_missing_(const struct dlfs_backend *be) { return be->layernorm_fwd ? NULL : "layernorm_fwd"; }
static void ln_fwd_(const struct nn_call *c)
{
    const struct dlfs_layer *L = c->L;
    const int n = c->rows * L->seq;
    float *mean = c->ws->aux[c->l];
    c->ws->be->layernorm_fwd(n, L->g.w, c->x[0], c->params + L->w_off, c->params + L->b_off, LN_EPS, c->y, mean,
                             mean + n);
}
static void ln_bwd_(const struct nn_call *c)
{
    const struct dlfs_layer *L = c->L;
    const int n = c->rows * L->seq;
    const float *mean = c->ws->aux[c->l];
    c->ws->be->layernorm_bwd(n, L->g.w, c->dy, c->x[0], mean, mean + n, c->params + L->w_off, c->dx[0],
                             c->grads + L->w_off, c->grads + L->b_off);
}

const struct nn_layer_desc nn_layer_lnorm = {
    .name = "lnorm", .parse = ln_parse_, .sizes = ln_sizes_, .init = ln_init_, .ws_need = ln_ws_,
    .missing_op = ln_missing_, .forward = ln_fwd_, .backward = ln_bwd_, .nodecay = all_,
};

/* ---- lmhead -------------------------------------------------------------------------- */

/* L is &layers[l] with l = L->src[0] + 1 (spec.c fills src before parse): the
 * embedding it ties to is the first embed layer before it. */
static const char *head_parse_(const struct nn_tok *k, struct dlfs_layer *L, struct nn_shape *s)
{
    if (k->arg) return NN_UNKNOWN;
    struct dlfs_layer *first = L - (L->src[0] + 1), *E = NULL;
    for (int i = 0; i <= L->src[0] && !E; i++)
        if (first[i].type == DLFS_LAYER_EMBED) E = &first[i];
    if (!E || s->c != 1 || s->h != E->seq || s->w != E->out / E->seq)
        return "lmhead needs an embed(V,C) layer before it and an input of (T, C) as that layer's output";
    L->tie = (int)(E - first), L->seq = E->seq, L->vocab = E->vocab;
    E->tie = L->src[0] + 1;
    s->h = L->seq, s->w = L->vocab;
    return NULL;
}
static void head_fwd_(const struct nn_call *c)
{
    const struct dlfs_layer *L = c->L, *E = L + (L->tie - c->l);
    const int C = L->in / L->seq;
    LM_GEMM_(c->ws->be)(false, true, c->rows * L->seq, L->vocab, C, 1.0f, c->x[0], C, c->params + E->w_off, C, 0.0f,
                    c->y, L->vocab);
}
/* Overwrites the token table's gradient (the embedding, later in the backward, adds to it). */
static void head_bwd_(const struct nn_call *c)
{
    const struct dlfs_layer *L = c->L, *E = L + (L->tie - c->l);
    const int C = L->in / L->seq, n = c->rows * L->seq;
    const struct dlfs_backend *be = c->ws->be;
    LM_GEMM_(be)(true, false, L->vocab, C, n, 1.0f, c->dy, L->vocab, c->x[0], C, 0.0f, c->grads + E->w_off, C);
    if (c->dx[0])
        LM_GEMM_(be)(false, false, n, C, L->vocab, 1.0f, c->dy, L->vocab, c->params + E->w_off, C, 0.0f, c->dx[0], C);
}
static double head_macs_(const struct dlfs_layer *L) { return (double)L->in * L->vocab; }

const struct nn_layer_desc nn_layer_lmhead = {
    .name = "lmhead", .flags = NN_LAST | NN_SEQ, .parse = head_parse_, .forward = head_fwd_, .backward = head_bwd_,
    .macs = head_macs_,
};
