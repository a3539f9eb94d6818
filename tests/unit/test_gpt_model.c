/* The language model through the model code (embed, block, lnorm, lmhead tied to
 * the embedding): parameter counts against published figures (GPT-2 small has
 * 124 439 808), the loss at every position against a float64 reference of the
 * whole network written here, every gradient against central finite differences
 * of that reference, causality (a later token never changes an earlier logit),
 * and two backward passes giving the same bits. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "dlfs/model.h"
#include "testutil.h"

enum { R = 2, T = 4, V = 7, C = 8, H = 2 };
static const char *spec_ = "in(5),embed(7,8),block(8,h2),lnorm,lmhead"; /* windows of T + 1 */

/* ---- float64 reference ----------------------------------------------------------------- */

static void ln_(const double *x, const double *g, const double *b, double *y)
{
    for (int t = 0; t < T; t++) {
        double m = 0, v = 0;
        for (int j = 0; j < C; j++) m += x[t * C + j] / C;
        for (int j = 0; j < C; j++) v += (x[t * C + j] - m) * (x[t * C + j] - m) / C;
        for (int j = 0; j < C; j++) y[t * C + j] = (x[t * C + j] - m) / sqrt(v + 1e-5) * g[j] + b[j];
    }
}
/* y (T, o) = x (T, i) W^T + b (+ y when add) */
static void lin_(const double *x, int i, int o, const double *W, const double *b, double *y, int add)
{
    for (int t = 0; t < T; t++)
        for (int k = 0; k < o; k++) {
            double s = b[k];
            for (int j = 0; j < i; j++) s += x[t * i + j] * W[k * i + j];
            y[t * o + k] = (add ? y[t * o + k] : 0) + s;
        }
}
static void attn_(const double *qkv, double *y)
{
    const int hs = C / H;
    for (int h = 0; h < H; h++)
        for (int t = 0; t < T; t++) {
            double p[T], mx = -INFINITY, sum = 0;
            for (int s = 0; s <= t; s++) {
                double d = 0;
                for (int i = 0; i < hs; i++) d += qkv[t * 3 * C + h * hs + i] * qkv[s * 3 * C + C + h * hs + i];
                p[s] = d / sqrt(hs), mx = fmax(mx, p[s]);
            }
            for (int s = 0; s <= t; s++) sum += p[s] = exp(p[s] - mx);
            for (int i = 0; i < hs; i++) {
                double o = 0;
                for (int s = 0; s <= t; s++) o += p[s] / sum * qkv[s * 3 * C + 2 * C + h * hs + i];
                y[t * C + h * hs + i] = o;
            }
        }
}
static double gelu_(double z) { return 0.5 * z * (1 + tanh(0.7978845608028654 * (z + 0.044715 * z * z * z))); }

/* Mean cross-entropy over the R*T positions; logits of row 0 into lg0 when given. */
static double ref_loss_(const struct dlfs_model *m, const double *p, const float *ids, double *lg0)
{
    const struct dlfs_layer *E = &m->layers[0], *B = &m->layers[1], *N = &m->layers[2];
    const double *b = p + B->w_off;
    double loss = 0;
    for (int r = 0; r < R; r++) {
        double x[T * C], a[T * C], qkv[T * 3 * C], y[T * C], h4[T * 4 * C], lg[T * V];
        for (int t = 0; t < T; t++)
            for (int j = 0; j < C; j++) x[t * C + j] = p[E->w_off + (size_t)ids[r * (T + 1) + t] * C + j] + p[E->b_off + t * C + j];
        ln_(x, b, b + C, a);
        lin_(a, C, 3 * C, b + 2 * C, b + 2 * C + 3 * C * C, qkv, 0);
        attn_(qkv, y);
        const double *wp = b + 5 * C + 3 * C * C, *ln2 = wp + C * C + C, *wfc = ln2 + 2 * C, *w2 = wfc + 4 * C * C + 4 * C;
        lin_(y, C, C, wp, wp + C * C, x, 1);
        ln_(x, ln2, ln2 + C, a);
        lin_(a, C, 4 * C, wfc, wfc + 4 * C * C, h4, 0);
        for (int i = 0; i < T * 4 * C; i++) h4[i] = gelu_(h4[i]);
        lin_(h4, 4 * C, C, w2, w2 + 4 * C * C, x, 1);
        ln_(x, p + N->w_off, p + N->b_off, a);
        for (int t = 0; t < T; t++) {
            double mx = -INFINITY, s = 0;
            for (int v = 0; v < V; v++) {
                double z = 0;
                for (int j = 0; j < C; j++) z += a[t * C + j] * p[E->w_off + (size_t)v * C + j];
                lg[t * V + v] = z, mx = fmax(mx, z);
            }
            for (int v = 0; v < V; v++) s += exp(lg[t * V + v] - mx);
            loss += log(s) + mx - lg[t * V + (int)ids[r * (T + 1) + t + 1]]; /* the next token */
        }
        if (r == 0 && lg0) memcpy(lg0, lg, sizeof lg);
    }
    return loss / (R * T);
}

/* ---- checks ---------------------------------------------------------------------------- */

static void check_counts(void)
{
    const int before = t_failures_;
    struct dlfs_model m;
    CHECK(dlfs_model_parse("gpt2", &m) == DLFS_OK, "gpt2: %s", dlfs_error_msg());
    CHECK(m.num_params == 124439808u, "gpt2 has %zu parameters, GPT-2 small 124439808", m.num_params);
    CHECK(m.input_dim == 1025, "gpt2 takes windows of %d ids, want 1025 (context + 1)", m.input_dim);
    CHECK(m.positions == 1024 && m.num_classes == 50257, "gpt2: %d positions of %d classes", m.positions,
          m.num_classes);
    dlfs_model_free(&m);
    CHECK(dlfs_model_parse("gpt-tiny", &m) == DLFS_OK, "gpt-tiny: %s", dlfs_error_msg());
    CHECK(m.num_params == 256 * 128 + 128 * 128 + 4 * (12 * 128 * 128 + 13 * 128) + 2 * 128, "gpt-tiny: %zu",
          m.num_params);
    dlfs_model_free(&m);
    CHECK(dlfs_model_parse(spec_, &m) == DLFS_OK && !strcmp(m.spec, spec_), "canonical form: %s", m.spec);
    dlfs_model_free(&m);
    const char *bad[] = {"in(4),block(8,h2),lnorm,lmhead", "in(4),embed(7,8),block(8,h3),lnorm,lmhead",
                         "in(4),embed(7,8),block(6,h2),lnorm,lmhead", "in(4),embed(7,8),lnorm,dense(3),lmhead",
                         "in(4),embed(1,8),lnorm,lmhead", "in(4),dense(8),lmhead", "in(1),embed(7,8),lmhead",
                         "in(2x2x2),embed(7,8),lmhead"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        dlfs_error_clear();
        CHECK(dlfs_model_parse(bad[i], &m) != DLFS_OK, "accepted: %s", bad[i]);
    }
    if (t_failures_ == before)
        printf("  ok  parameter counts (gpt2 124439808), canonical form, %zu bad specs refused\n", sizeof bad / sizeof *bad);
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    check_counts();
    const struct dlfs_backend *be = dlfs_backend_cpu();
    struct dlfs_model m;
    if (dlfs_model_parse(spec_, &m) != DLFS_OK) return fprintf(stderr, "%s\n", dlfs_error_msg()), 1;
    const size_t np = m.num_params;
    float *pf = malloc(np * sizeof *pf), *g1 = malloc(np * sizeof *g1), *g2 = malloc(np * sizeof *g2);
    double *pd = malloc(np * sizeof *pd);
    dlfs_model_init_params(&m, 7, pf);
    unsigned long long s = 5;
    for (size_t i = 0; i < np; i++) pf[i] += (float)(0.3 * t_rand_(&s)), pd[i] = pf[i]; /* away from the init's zeros */
    float ids[R * (T + 1)];
    for (int i = 0; i < R * (T + 1); i++) ids[i] = (float)((i * 3 + 1 + i / 4) % V);
    struct dlfs_workspace ws;
    CHECK(dlfs_workspace_init(&ws, &m, be, R) == DLFS_OK, "workspace");
    memcpy(ws.x, ids, sizeof ids);
    ws.stats[0] = ws.stats[1] = 0;
    const float *logits = dlfs_model_forward(&m, &ws, pf, R);
    double lg0[T * V];
    const double want = ref_loss_(&m, pd, ids, lg0);
    int bad = 0;
    for (int i = 0; i < T * V; i++) bad += fabs(logits[i] - lg0[i]) > 1e-4 * (1 + fabs(lg0[i]));
    CHECK(!bad, "%d logits of row 0 differ from the float64 reference", bad);
    dlfs_model_loss(&m, &ws, R, 1.0f / R); /* per sample: spread over its T positions */
    CHECK(fabs(ws.stats[0] / (R * T) - want) < 1e-5 * (1 + want), "loss %.9g, reference %.9g", ws.stats[0] / (R * T),
          want);
    dlfs_model_backward(&m, &ws, pf, g1, R, NULL, NULL);
    /* every gradient against central differences of the float64 loss */
    double *fd = malloc(np * sizeof *fd);
    for (size_t i = 0; i < np; i++) {
        const double keep = pd[i], h = 1e-5;
        pd[i] = keep + h;
        const double lp = ref_loss_(&m, pd, ids, NULL);
        pd[i] = keep - h;
        fd[i] = (lp - ref_loss_(&m, pd, ids, NULL)) / (2 * h);
        pd[i] = keep;
    }
    if (!t_close_("gradients (finite differences of the float64 loss)", g1, fd, np, 2e-5, 2e-3))
        printf("  ok  loss at %d positions and all %zu gradients against the float64 reference\n", R * T, np);
    /* again from the same state: the same bits */
    dlfs_model_forward(&m, &ws, pf, R);
    dlfs_model_loss(&m, &ws, R, 1.0f / R); /* per sample: spread over its T positions */
    dlfs_model_backward(&m, &ws, pf, g2, R, NULL, NULL);
    CHECK(!memcmp(g1, g2, np * sizeof *g1), "two backward passes differ in bits");
    /* causality: the last token of row 0 changes no logit before the last position */
    float before[T * V];
    memcpy(before, logits, sizeof before);
    ws.x[T - 1] = (float)(((int)ws.x[T - 1] + 1) % V);
    logits = dlfs_model_forward(&m, &ws, pf, R);
    CHECK(!memcmp(before, logits, sizeof(float) * (T - 1) * V), "a later token changed an earlier logit");
    CHECK(memcmp(before + (T - 1) * V, logits + (T - 1) * V, sizeof(float) * V), "the last token changed nothing");
    dlfs_workspace_free(&ws, &m);
    dlfs_model_free(&m);
    free(pf), free(g1), free(g2), free(pd), free(fd);
    T_DONE();
}
