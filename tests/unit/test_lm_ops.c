/* The language model's ops (embedding, layer norm, causal attention, cross-entropy
 * at every position) against float64 references written here, and their
 * backward passes against central finite differences of those references
 * (L = sum(y * R) for a random R, so dL/dy = R). Also: the backward passes give
 * the same bits when run twice (no order-dependent atomics), attention rows are
 * distributions that never look ahead. GELU (the block's MLP) on an array large enough
 * for the CPU backend's threaded, vectorised loops, and layer norm and cross-entropy on
 * rows enough for its thread split, against float64, with the same bits on 1 and 2
 * threads.
 *   test_lm_ops --self   the CPU backend (label unit)
 *   test_lm_ops          the CUDA backend (label gpu; exit 77 without a GPU) */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "dlfs/backend.h"
#include "testutil.h"

static const struct dlfs_backend *be_;
static unsigned long long seed_ = 2024;

static double *rnd_(size_t n, double scale)
{
    double *p = malloc(n * sizeof *p);
    for (size_t i = 0; i < n; i++) p[i] = scale * t_rand_(&seed_);
    return p;
}

/* double[n] -> a new device buffer of floats */
static float *up_(const double *x, size_t n)
{
    float *h = malloc(n * sizeof *h), *d = be_->alloc(n * sizeof *d);
    for (size_t i = 0; i < n; i++) h[i] = (float)x[i];
    be_->to_device(d, h, n * sizeof *h);
    free(h);
    return d;
}

static float *down_(const float *d, size_t n)
{
    float *h = malloc(n * sizeof *h);
    be_->to_host(h, d, n * sizeof *h);
    return h;
}

/* got (device) against want, freeing the host copy. */
static void close_(const char *what, const float *dev, const double *want, size_t n, double atol, double rtol)
{
    float *h = down_(dev, n);
    if (!t_close_(what, h, want, n, atol, rtol)) printf("  ok  %s (%zu values)\n", what, n);
    free(h);
}

/* Central differences of L(x) = sum(f(x) * R) over every element of x (in place, restored). */
typedef double (*loss_fn)(void *ctx);
static void fd_(double *x, size_t n, loss_fn L, void *ctx, double *grad)
{
    const double h = 1e-5;
    for (size_t i = 0; i < n; i++) {
        const double keep = x[i];
        x[i] = keep + h;
        const double lp = L(ctx);
        x[i] = keep - h;
        const double lm = L(ctx);
        x[i] = keep;
        grad[i] = (lp - lm) / (2 * h);
    }
}

/* ---- embedding ---------------------------------------------------------------------- */

enum { EV = 7, ER = 12, ET = 4, ED = 5 };
struct emb_ { double *tok, *pos, *R; float ids[ER]; };

static void emb_ref_(const struct emb_ *e, double *y)
{
    for (int r = 0; r < ER; r++)
        for (int j = 0; j < ED; j++) y[r * ED + j] = e->tok[(int)e->ids[r] * ED + j] + e->pos[(r % ET) * ED + j];
}
static double emb_loss_(void *ctx)
{
    const struct emb_ *e = ctx;
    double y[ER * ED], l = 0;
    emb_ref_(e, y);
    for (int i = 0; i < ER * ED; i++) l += y[i] * e->R[i];
    return l;
}

static void test_embedding(void)
{
    struct emb_ e = {rnd_(EV * ED, 1), rnd_(ET * ED, 1), rnd_(ER * ED, 1), {0}};
    for (int r = 0; r < ER; r++) e.ids[r] = (float)((r * 5 + r / 3) % EV); /* repeats: rows that add into one table row */
    double want[ER * ED], gtok[EV * ED], gpos[ET * ED];
    emb_ref_(&e, want);
    float *tok = up_(e.tok, EV * ED), *pos = up_(e.pos, ET * ED), *R = up_(e.R, ER * ED), *y = be_->alloc(sizeof want);
    /* the ids as a model's input rows hold them: ER / ET windows of ET + 1 (LD apart), a
     * little off the whole numbers (normalisation rounding), the last one a target */
    enum { LD = ET + 1, NS = ER / ET };
    float rows_in[NS * LD];
    for (int r = 0; r < ER; r++) rows_in[(r / ET) * LD + r % ET] = e.ids[r] + (r % 2 ? 1e-3f : -1e-3f);
    for (int s = 0; s < NS; s++) rows_in[s * LD + ET] = (float)(s + 3);
    float *ids = be_->alloc(sizeof rows_in);
    be_->to_device(ids, rows_in, sizeof rows_in);
    be_->embed_fwd(tok, pos, ids, LD, ER, ET, ED, y);
    close_("embed_fwd (tok + pos)", y, want, ER * ED, 1e-6, 1e-6);
    be_->embed_fwd(tok, NULL, ids, LD, ER, ET, ED, y);
    for (int r = 0; r < ER; r++)
        for (int j = 0; j < ED; j++) want[r * ED + j] = (float)e.tok[(int)e.ids[r] * ED + j];
    close_("embed_fwd (tok only)", y, want, ER * ED, 0, 0);
    fd_(e.tok, EV * ED, emb_loss_, &e, gtok);
    fd_(e.pos, ET * ED, emb_loss_, &e, gpos);
    /* bwd adds: start from 1, expect 1 + gradient */
    double one_tok[EV * ED], one_pos[ET * ED];
    for (int i = 0; i < EV * ED; i++) one_tok[i] = 1.0, gtok[i] += 1.0;
    for (int i = 0; i < ET * ED; i++) one_pos[i] = 1.0, gpos[i] += 1.0;
    float *dtok = up_(one_tok, EV * ED), *dpos = up_(one_pos, ET * ED);
    be_->embed_bwd(R, ids, LD, ER, ET, ED, EV, dtok, dpos);
    close_("embed_bwd dtok (adds; finite differences)", dtok, gtok, EV * ED, 1e-5, 1e-5);
    close_("embed_bwd dpos (adds; finite differences)", dpos, gpos, ET * ED, 1e-5, 1e-5);
    float *first = down_(dtok, EV * ED);
    be_->to_device(dtok, (float[EV * ED]){0}, sizeof(float) * EV * ED);
    be_->embed_bwd(R, ids, LD, ER, ET, ED, EV, dtok, NULL);
    be_->embed_bwd(R, ids, LD, ER, ET, ED, EV, dtok, NULL);
    float *again = down_(dtok, EV * ED);
    int same = 1;
    for (int i = 0; i < EV * ED; i++) same &= fabsf(again[i] - 2.0f * (first[i] - 1.0f)) <= 1e-5f;
    CHECK(same, "embed_bwd twice from 0 != twice the gradient");
    free(first), free(again);
    /* take_ids: the targets (positions 1..ET of each window), rounded */
    int32_t *lab = be_->alloc(sizeof(int32_t) * NS * ET), hl[NS * ET];
    be_->take_ids(ids, NS, LD, 1, ET, lab);
    be_->to_host(hl, lab, sizeof hl);
    int ok = 1;
    for (int s = 0; s < NS; s++)
        for (int j = 0; j < ET; j++) ok &= hl[s * ET + j] == (j + 1 < ET ? (int)e.ids[s * ET + j + 1] : s + 3);
    CHECK(ok, "take_ids: wrong targets");
    be_->free(lab);
    be_->free(tok), be_->free(pos), be_->free(R), be_->free(y), be_->free(ids), be_->free(dtok), be_->free(dpos);
    free(e.tok), free(e.pos), free(e.R);
}

/* ---- layer norm --------------------------------------------------------------------- */

enum { LR = 6, LD = 10 };
struct ln_ { double *x, *g, *b, *R; };
#define LN_EPS 1e-5

static void ln_ref_(const struct ln_ *c, double *y, double *mean, double *rstd)
{
    for (int r = 0; r < LR; r++) {
        double m = 0, v = 0;
        for (int j = 0; j < LD; j++) m += c->x[r * LD + j];
        m /= LD;
        for (int j = 0; j < LD; j++) v += (c->x[r * LD + j] - m) * (c->x[r * LD + j] - m);
        const double rs = 1 / sqrt(v / LD + LN_EPS);
        for (int j = 0; j < LD; j++) y[r * LD + j] = (c->x[r * LD + j] - m) * rs * c->g[j] + c->b[j];
        if (mean) mean[r] = m, rstd[r] = rs;
    }
}
static double ln_loss_(void *ctx)
{
    const struct ln_ *c = ctx;
    double y[LR * LD], l = 0;
    ln_ref_(c, y, NULL, NULL);
    for (int i = 0; i < LR * LD; i++) l += y[i] * c->R[i];
    return l;
}

static void test_layernorm(void)
{
    struct ln_ c = {rnd_(LR * LD, 2), rnd_(LD, 1), rnd_(LD, 1), rnd_(LR * LD, 1)};
    for (int j = 0; j < LD; j++) c.x[j] += 30.0; /* a row far from 0: the mean must come out first */
    double want[LR * LD], mean[LR], rstd[LR], gx[LR * LD], gg[LD], gb[LD];
    ln_ref_(&c, want, mean, rstd);
    float *x = up_(c.x, LR * LD), *g = up_(c.g, LD), *b = up_(c.b, LD), *R = up_(c.R, LR * LD);
    float *y = be_->alloc(sizeof(float) * LR * LD), *m = be_->alloc(sizeof(float) * LR), *rs = be_->alloc(sizeof(float) * LR);
    float *dx = be_->alloc(sizeof(float) * LR * LD), *dg = be_->alloc(sizeof(float) * LD), *db = be_->alloc(sizeof(float) * LD);
    be_->layernorm_fwd(LR, LD, x, g, b, (float)LN_EPS, y, m, rs);
    close_("layernorm_fwd y", y, want, LR * LD, 1e-5, 1e-5);
    close_("layernorm_fwd mean", m, mean, LR, 1e-5, 1e-6);
    close_("layernorm_fwd rstd", rs, rstd, LR, 1e-6, 1e-5);
    fd_(c.x, LR * LD, ln_loss_, &c, gx);
    fd_(c.g, LD, ln_loss_, &c, gg);
    fd_(c.b, LD, ln_loss_, &c, gb);
    be_->layernorm_bwd(LR, LD, R, x, m, rs, g, dx, dg, db);
    close_("layernorm_bwd dx (finite differences)", dx, gx, LR * LD, 1e-4, 1e-3);
    close_("layernorm_bwd dgamma (finite differences)", dg, gg, LD, 1e-4, 1e-3);
    close_("layernorm_bwd dbeta (finite differences)", db, gb, LD, 1e-4, 1e-3);
    float *first = down_(dx, LR * LD);
    be_->layernorm_bwd(LR, LD, R, x, m, rs, g, dx, dg, db);
    float *again = down_(dx, LR * LD);
    CHECK(memcmp(first, again, sizeof(float) * LR * LD) == 0, "layernorm_bwd: two runs differ in bits");
    free(first), free(again);
    float *bufs[] = {x, g, b, R, y, m, rs, dx, dg, db};
    for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++) be_->free(bufs[i]);
    free(c.x), free(c.g), free(c.b), free(c.R);
}

/* ---- causal attention ---------------------------------------------------------------- */

enum { AB = 2, AT = 5, AC = 8, AH = 2, AS = AC / AH };
struct at_ { double *qkv, *R; };

static void at_ref_(const struct at_ *c, double *y, double *att)
{
    for (int b = 0; b < AB; b++)
        for (int h = 0; h < AH; h++)
            for (int t = 0; t < AT; t++) {
                const double *q = c->qkv + (b * AT + t) * 3 * AC + h * AS;
                double p[AT], mx = -INFINITY, sum = 0;
                for (int s = 0; s <= t; s++) {
                    const double *k = c->qkv + (b * AT + s) * 3 * AC + AC + h * AS;
                    double d = 0;
                    for (int i = 0; i < AS; i++) d += q[i] * k[i];
                    p[s] = d / sqrt((double)AS);
                    mx = p[s] > mx ? p[s] : mx;
                }
                for (int s = 0; s <= t; s++) sum += p[s] = exp(p[s] - mx);
                for (int s = 0; s < AT; s++) {
                    if (s <= t) p[s] /= sum;
                    if (att) att[((b * AH + h) * AT + t) * AT + s] = s <= t ? p[s] : 0.0;
                }
                for (int i = 0; i < AS; i++) {
                    double o = 0;
                    for (int s = 0; s <= t; s++) o += p[s] * c->qkv[(b * AT + s) * 3 * AC + 2 * AC + h * AS + i];
                    y[(b * AT + t) * AC + h * AS + i] = o;
                }
            }
}
static double at_loss_(void *ctx)
{
    const struct at_ *c = ctx;
    double y[AB * AT * AC], l = 0;
    at_ref_(c, y, NULL);
    for (int i = 0; i < AB * AT * AC; i++) l += y[i] * c->R[i];
    return l;
}

static void test_attention(void)
{
    enum { NQ = AB * AT * 3 * AC, NY = AB * AT * AC, NA = AB * AH * AT * AT };
    struct at_ c = {rnd_(NQ, 1.5), rnd_(NY, 1)};
    double want[NY], watt[NA], gq[NQ];
    at_ref_(&c, want, watt);
    float *qkv = up_(c.qkv, NQ), *R = up_(c.R, NY), *y = be_->alloc(sizeof(float) * NY);
    float *att = be_->alloc(sizeof(float) * NA), *datt = be_->alloc(sizeof(float) * NA);
    float *dq = be_->alloc(sizeof(float) * NQ);
    be_->attn_fwd(AB, AT, AC, AH, qkv, att, y);
    close_("attn_fwd y", y, want, NY, 1e-5, 1e-4);
    close_("attn_fwd att (causal softmax, 0 above the diagonal)", att, watt, NA, 1e-6, 1e-5);
    fd_(c.qkv, NQ, at_loss_, &c, gq);
    be_->attn_bwd(AB, AT, AC, AH, qkv, att, R, datt, dq);
    close_("attn_bwd dqkv (finite differences)", dq, gq, NQ, 1e-4, 1e-3);
    float *first = down_(dq, NQ);
    be_->attn_bwd(AB, AT, AC, AH, qkv, att, R, datt, dq);
    float *again = down_(dq, NQ);
    CHECK(memcmp(first, again, sizeof(float) * NQ) == 0, "attn_bwd: two runs differ in bits");
    /* the first position sees only itself: its output is its own v exactly */
    float *hy = down_(y, NY);
    CHECK(fabs(hy[0] - (float)c.qkv[2 * AC]) < 1e-6, "position 0 attends elsewhere");
    free(first), free(again), free(hy);
    be_->free(qkv), be_->free(R), be_->free(y), be_->free(att), be_->free(datt), be_->free(dq);
    free(c.qkv), free(c.R);
}

/* ---- cross-entropy at every position (softmax_xent over B*T rows of a vocabulary) ----- */

static void test_xent_positions(void)
{
    enum { ROWS = 2 * 6, V = 256 };
    double *lg = rnd_(ROWS * V, 4), want[ROWS * V], loss = 0;
    int32_t lab[ROWS];
    for (int r = 0; r < ROWS; r++) lab[r] = (r * 37 + 11) % V;
    for (int r = 0; r < ROWS; r++) {
        double mx = -INFINITY, sum = 0;
        for (int v = 0; v < V; v++) mx = lg[r * V + v] > mx ? lg[r * V + v] : mx;
        for (int v = 0; v < V; v++) sum += exp(lg[r * V + v] - mx);
        loss += log(sum) + mx - lg[r * V + lab[r]];
        for (int v = 0; v < V; v++) want[r * V + v] = (exp(lg[r * V + v] - mx) / sum - (v == lab[r])) / ROWS;
    }
    float *x = up_(lg, ROWS * V), *dx = be_->alloc(sizeof(float) * ROWS * V);
    int32_t *l = be_->alloc(sizeof lab);
    double *st = be_->alloc(2 * sizeof(double)), hs[2];
    be_->to_device(l, lab, sizeof lab);
    be_->softmax_xent(x, l, ROWS, V, 1.0f / ROWS, dx, st);
    be_->to_host(hs, st, sizeof hs);
    close_("softmax_xent dlogits over 12 positions x 256", dx, want, ROWS * V, 1e-7, 1e-4);
    CHECK(fabs(hs[0] - loss) < 1e-4 * loss, "loss sum %.9g, want %.9g", hs[0], loss);
    be_->free(x), be_->free(dx), be_->free(l), be_->free(st), free(lg);
}

/* ---- GELU over a block-sized array (bias_act_fwd / act_bwd with DLFS_ACT_GELU) ---------- */

static double gelu_d_(double z, double *dz)
{
    const double k = sqrt(2.0 / 3.14159265358979323846), u = k * (z + 0.044715 * z * z * z), t = tanh(u);
    *dz = 0.5 * (1 + t) + 0.5 * z * (1 - t * t) * k * (1 + 3 * 0.044715 * z * z);
    return 0.5 * z * (1 + t);
}

/* fwd(z + bias) -> a; bwd(da) -> dz; both into host copies */
static void gelu_run_(const double *z, const double *bias, const double *da, int rows, int cols, float **a, float **g)
{
    const size_t n = (size_t)rows * (size_t)cols;
    float *dz = up_(z, n), *db = up_(bias, (size_t)cols), *dact = be_->alloc(n * sizeof *dact);
    float *dda = up_(da, n), *dg = be_->alloc(n * sizeof *dg);
    be_->bias_act_fwd(dz, dact, db, rows, cols, DLFS_ACT_GELU);
    be_->act_bwd(dg, dda, dz, dact, n, DLFS_ACT_GELU);
    *a = down_(dact, n), *g = down_(dg, n);
    be_->free(dz), be_->free(db), be_->free(dact), be_->free(dda), be_->free(dg);
}

static void test_gelu(void)
{
    enum { ROWS = 67, COLS = 4 * 128 + 3 }; /* 34505 values: the CPU's threaded split, vector remainders */
    const size_t n = (size_t)ROWS * COLS;
    double *z = rnd_(n, 6), *bias = rnd_(COLS, 1), *da = rnd_(n, 1), *wa = malloc(n * sizeof *wa), *wg = malloc(n * sizeof *wg);
    z[0] = 0.0, z[1] = -9.0, z[2] = 9.0, z[3] = 1e-6; /* the cap of tanh's argument (|u| >= 10), tiny values */
    for (size_t i = 0; i < n; i++) wa[i] = gelu_d_((double)(float)((float)z[i] + (float)bias[i % COLS]), &wg[i]);
    for (size_t i = 0; i < n; i++) wg[i] *= (double)(float)da[i];
    if (be_->set_threads) be_->set_threads(2);
    float *a2, *g2;
    gelu_run_(z, bias, da, ROWS, COLS, &a2, &g2);
    t_close_("gelu forward vs float64", a2, wa, n, 1e-6, 1e-6);
    t_close_("gelu backward vs float64", g2, wg, n, 1e-6, 1e-5);
    if (be_->set_threads) { /* the split across threads changes no bit */
        float *a1, *g1;
        be_->set_threads(1), gelu_run_(z, bias, da, ROWS, COLS, &a1, &g1), be_->set_threads(2);
        CHECK(!memcmp(a1, a2, n * sizeof *a1) && !memcmp(g1, g2, n * sizeof *g1), "gelu: other bits on 1 thread than 2");
        free(a1), free(g1);
    }
    printf("  ok  gelu forward and backward over %zu values\n", n);
    free(a2), free(g2), free(z), free(bias), free(da), free(wa), free(wg);
}

/* ---- layer norm and cross-entropy on arrays large enough for the CPU's thread split ---- */

/* layer norm fwd + bwd and softmax_xent of (rows, dim) into host copies: y, dx, dgamma, dbeta, dlogits; loss */
enum { BR = 300, BD = 128 }; /* 38400 values: split across threads */
static float *big_run_(const double *x, const double *g, const double *b, const double *R, const int32_t *lab,
                       double *loss)
{
    float *dx = up_(x, BR * BD), *dg = up_(g, BD), *db = up_(b, BD), *dR = up_(R, BR * BD);
    float *y = be_->alloc(sizeof(float) * BR * BD), *m = be_->alloc(sizeof(float) * BR), *rs = be_->alloc(sizeof(float) * BR);
    float *gx = be_->alloc(sizeof(float) * BR * BD), *gg = be_->alloc(sizeof(float) * BD), *gb = be_->alloc(sizeof(float) * BD);
    float *dl = be_->alloc(sizeof(float) * BR * BD), *out = malloc(sizeof(float) * (3 * BR * BD + 2 * BD));
    int32_t *dlab = be_->alloc(sizeof(int32_t) * BR);
    double *st = be_->alloc(2 * sizeof(double)), hs[2] = {0, 0};
    be_->to_device(dlab, lab, sizeof(int32_t) * BR);
    be_->to_device(st, hs, sizeof hs);
    be_->layernorm_fwd(BR, BD, dx, dg, db, (float)LN_EPS, y, m, rs);
    be_->layernorm_bwd(BR, BD, dR, dx, m, rs, dg, gx, gg, gb);
    be_->softmax_xent(dx, dlab, BR, BD, 1.0f / BR, dl, st); /* x as logits of a vocabulary of BD */
    be_->to_host(out, y, sizeof(float) * BR * BD), be_->to_host(out + BR * BD, gx, sizeof(float) * BR * BD);
    be_->to_host(out + 2 * BR * BD, dl, sizeof(float) * BR * BD), be_->to_host(out + 3 * BR * BD, gg, sizeof(float) * BD);
    be_->to_host(out + 3 * BR * BD + BD, gb, sizeof(float) * BD);
    be_->to_host(hs, st, sizeof hs);
    *loss = hs[0];
    float *bufs[] = {dx, dg, db, dR, y, m, rs, gx, gg, gb, dl};
    for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++) be_->free(bufs[i]);
    be_->free(dlab), be_->free(st);
    return out;
}

static void test_big_rows(void)
{
    double *x = rnd_(BR * BD, 3), *g = rnd_(BD, 1), *b = rnd_(BD, 1), *R = rnd_(BR * BD, 1), loss2, loss1;
    double *wy = malloc(sizeof(double) * BR * BD), wg[BD] = {0}, wb[BD] = {0}, wl = 0;
    int32_t lab[BR];
    for (int r = 0; r < BR; r++) lab[r] = (r * 37 + 5) % BD;
    for (int r = 0; r < BR; r++) { /* float64: y, dgamma = sum R xhat, dbeta = sum R, the loss */
        const double *xr = x + r * BD;
        double m = 0, v = 0, mx = -INFINITY, se = 0;
        for (int j = 0; j < BD; j++) m += (float)xr[j], mx = (float)xr[j] > mx ? (float)xr[j] : mx;
        m /= BD;
        for (int j = 0; j < BD; j++) v += ((float)xr[j] - m) * ((float)xr[j] - m), se += exp((float)xr[j] - mx);
        const double rs = 1 / sqrt(v / BD + LN_EPS);
        for (int j = 0; j < BD; j++) {
            const double xh = ((float)xr[j] - m) * rs;
            wy[r * BD + j] = xh * (float)g[j] + (float)b[j], wg[j] += (float)R[r * BD + j] * xh, wb[j] += (float)R[r * BD + j];
        }
        wl += log(se) + mx - (float)xr[lab[r]];
    }
    if (be_->set_threads) be_->set_threads(2);
    float *o2 = big_run_(x, g, b, R, lab, &loss2);
    t_close_("layernorm_fwd y (300 x 128)", o2, wy, BR * BD, 1e-5, 1e-5);
    t_close_("layernorm_bwd dgamma (300 rows)", o2 + 3 * BR * BD, wg, BD, 1e-4, 1e-4);
    t_close_("layernorm_bwd dbeta (300 rows)", o2 + 3 * BR * BD + BD, wb, BD, 1e-4, 1e-4);
    CHECK(fabs(loss2 - wl) < 1e-5 * wl, /* (1e-5: a GPU sums in float) */ "softmax_xent loss over 300 rows %.9g, want %.9g", loss2, wl);
    if (be_->set_threads) { /* the split across threads changes no bit */
        be_->set_threads(1);
        float *o1 = big_run_(x, g, b, R, lab, &loss1);
        be_->set_threads(2);
        CHECK(!memcmp(o1, o2, sizeof(float) * (3 * BR * BD + 2 * BD)) && loss1 == loss2,
              "layer norm or cross-entropy: other bits on 1 thread than 2");
        free(o1);
    }
    printf("  ok  layer norm and cross-entropy over 300 rows of 128\n");
    free(o2), free(x), free(g), free(b), free(R), free(wy);
}

/* ---- gemm_rows: a language model's products, split by rows on the CPU's threads -------- */

/* C (m, n) = op(A) op(B) for the three forms the model uses, against float64 */
static void test_gemm_rows(void)
{
    if (!be_->gemm_rows) return; /* (gemm serves: tested by test_ops) */
    enum { M = 300, N = 96, K = 160 }; /* 4.6 M multiply-adds: split on 2 threads */
    const int form[3][2] = {{0, 1}, {1, 0}, {0, 0}};
    if (be_->set_threads) be_->set_threads(2);
    for (int f = 0; f < 3; f++) {
        const int ta = form[f][0], tb = form[f][1], lda = ta ? M : K, ldb = tb ? K : N;
        double *a = rnd_((size_t)M * K, 1), *b = rnd_((size_t)K * N, 1), *want = malloc(sizeof(double) * M * N);
        for (int i = 0; i < M; i++)
            for (int j = 0; j < N; j++) {
                double acc = 0;
                for (int k = 0; k < K; k++)
                    acc += (double)(float)a[ta ? (size_t)k * lda + i : (size_t)i * lda + k] *
                           (float)b[tb ? (size_t)j * ldb + k : (size_t)k * ldb + j];
                want[(size_t)i * N + j] = acc;
            }
        float *da = up_(a, (size_t)M * K), *db = up_(b, (size_t)K * N), *dc = be_->alloc(sizeof(float) * M * N);
        be_->gemm_rows(ta, tb, M, N, K, 1.0f, da, lda, db, ldb, 0.0f, dc, N);
        char what[64];
        snprintf(what, sizeof what, "gemm_rows %s%s %dx%dx%d", ta ? "T" : "N", tb ? "T" : "N", M, N, K);
        close_(what, dc, want, (size_t)M * N, 1e-4, 1e-4);
        be_->free(da), be_->free(db), be_->free(dc), free(a), free(b), free(want);
    }
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    int self = 0;
    const int rc = t_device_backend_(argc, argv, &be_, &self);
    if (rc) return rc;
    if (!be_->embed_fwd || !be_->layernorm_fwd || !be_->attn_fwd) {
        fprintf(stderr, "FAIL: backend %s lacks the language-model ops\n", be_->name);
        return 1;
    }
    test_embedding();
    test_layernorm();
    test_attention();
    test_xent_positions();
    test_gelu();
    test_big_rows();
    test_gemm_rows();
    T_DONE();
}
