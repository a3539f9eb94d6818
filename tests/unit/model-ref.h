/* The float64 reference network of test_model.c: each layer kind by definition (no
 * code shared with src/nn), the mean softmax cross-entropy over rows. Included once,
 * by test_model.c only (static functions, as tests/gpu/ops/ for test_cuda_ops.c). */
#ifndef DLFS_TEST_MODEL_REF_H
#define DLFS_TEST_MODEL_REF_H
#include <math.h>
#include <string.h>
#include "dlfs/model.h"
#include "dlfs/util.h"
#include "testutil.h"

/* dropout in the reference: the training key and the rows' sample indices */
static uint64_t ref_key_ = 0x5eed;
static uint32_t ref_id_(int r) { return (uint32_t)(1000 + 7 * r); }

/* float64 reference of the model: mean softmax cross-entropy over rows */
static double act_d(double z, enum dlfs_act a)
{
    switch (a) {
    case DLFS_ACT_RELU: return z > 0 ? z : 0;
    case DLFS_ACT_TANH: return tanh(z);
    case DLFS_ACT_SIGMOID: return 1 / (1 + exp(-z));
    case DLFS_ACT_GELU: return 0.5 * z * (1 + tanh(0.7978845608028654 * (z + 0.044715 * z * z * z)));
    default: return z;
    }
}

/* one layer for one sample (all but batchnorm) */
static void ref_layer_(const struct dlfs_layer *L, int l, const double *p, const double *cur, double *next, int r)
{
    if (L->type == DLFS_LAYER_DENSE) {
        for (int o = 0; o < L->out; o++) {
            double z = p[L->b_off + o];
            for (int i = 0; i < L->in; i++) z += p[L->w_off + (size_t)o * L->in + i] * cur[i];
            next[o] = act_d(z, L->act);
        }
    } else if (L->type == DLFS_LAYER_CONV || L->type == DLFS_LAYER_MAXPOOL) {
        const struct dlfs_conv_geom *g = &L->g;
        for (int o = 0; o < g->oc; o++)
            for (int oy = 0; oy < g->oh; oy++)
                for (int ox = 0; ox < g->ow; ox++) {
                    double acc = L->type != DLFS_LAYER_CONV ? -INFINITY : L->no_bias ? 0.0 : p[L->b_off + o];
                    for (int c = 0; c < g->c; c++)
                        for (int ki = 0; ki < g->kh; ki++)
                            for (int kj = 0; kj < g->kw; kj++) {
                                int iy = oy * g->stride - g->pad + ki, ix = ox * g->stride - g->pad + kj;
                                if (iy < 0 || iy >= g->h || ix < 0 || ix >= g->w) continue;
                                double v = cur[(c * g->h + iy) * g->w + ix];
                                if (L->type == DLFS_LAYER_CONV)
                                    acc += p[L->w_off + (size_t)((o * g->c + c) * g->kh + ki) * g->kw + kj] * v;
                                else if (c == o && v > acc)
                                    acc = v;
                            }
                    next[(o * g->oh + oy) * g->ow + ox] = act_d(acc, L->act);
                }
    } else if (L->type == DLFS_LAYER_DROPOUT) {
        const uint64_t rk = dlfs_hash64(dlfs_hash64(ref_key_, (uint64_t)l), ref_id_(r));
        for (int j = 0; j < L->out; j++)
            next[j] = dlfs_uniform01(rk, (uint64_t)j) >= L->rate ? cur[j] / (1.0 - L->rate) : 0.0;
    } else { /* flatten */
        memcpy(next, cur, sizeof(double) * (size_t)L->out);
    }
}

/* batchnorm over all rows (training statistics, biased variance) */
static void ref_bn_(const struct dlfs_layer *L, const double *p, const double *cur, double *next, int rows,
                    size_t stride)
{
    const int C = L->bn_c, P = L->bn_plane;
    for (int c = 0; c < C; c++) {
        double s = 0, s2 = 0, cnt = (double)rows * P;
        for (int r = 0; r < rows; r++)
            for (int q = 0; q < P; q++) s += cur[r * stride + (size_t)c * P + q];
        const double mean = s / cnt;
        for (int r = 0; r < rows; r++)
            for (int q = 0; q < P; q++) {
                const double d = cur[r * stride + (size_t)c * P + q] - mean;
                s2 += d * d;
            }
        const double is = 1.0 / sqrt(s2 / cnt + 1e-5);
        for (int r = 0; r < rows; r++)
            for (int q = 0; q < P; q++) {
                const size_t i = r * stride + (size_t)c * P + q;
                next[i] = act_d(p[L->w_off + c] * (cur[i] - mean) * is + p[L->b_off + c], L->act);
            }
    }
}

/* one layer after the table's generic ones: add (two inputs) and gap */
static void ref_extra_(const struct dlfs_layer *L, const double *cur, const double *cur2, double *next)
{
    if (L->type == DLFS_LAYER_ADD) {
        for (int j = 0; j < L->out; j++) next[j] = act_d(cur[j] + cur2[j], L->act);
        return;
    }
    const int P = L->g.h * L->g.w; /* gap */
    for (int c = 0; c < L->g.c; c++) {
        double sum = 0;
        for (int q = 0; q < P; q++) sum += cur[c * P + q];
        next[c] = sum / P;
    }
}

static double ref_loss(const struct dlfs_model *m, const double *p, const double *x, const int32_t *y,
                       int rows, double *logits_out)
{
    /* every layer's output kept (out[l + 1]; out[0]: the input): layers read any earlier one */
    const size_t W = (size_t)m->max_width;
    double *out[DLFS_MAX_LAYERS + 1];
    for (int l = 0; l <= m->num_layers; l++) out[l] = malloc(sizeof(double) * W * rows);
    for (int r = 0; r < rows; r++) memcpy(out[0] + r * W, x + (size_t)r * m->input_dim, sizeof(double) * m->input_dim);
    for (int l = 0; l < m->num_layers; l++) {
        const struct dlfs_layer *L = &m->layers[l];
        const double *cur = out[L->src[0] + 1], *cur2 = out[L->src[1] + 1];
        double *next = out[l + 1];
        if (L->type == DLFS_LAYER_BATCHNORM) ref_bn_(L, p, cur, next, rows, W);
        else if (L->type == DLFS_LAYER_ADD || L->type == DLFS_LAYER_GAP)
            for (int r = 0; r < rows; r++) ref_extra_(L, cur + r * W, cur2 + r * W, next + r * W);
        else for (int r = 0; r < rows; r++) ref_layer_(L, l, p, cur + r * W, next + r * W, r);
    }
    const double *cur = out[m->num_layers];
    double loss = 0;
    for (int r = 0; r < rows; r++) {
        const double *o = cur + r * W;
        double mx = o[0], s = 0;
        for (int c = 0; c < m->num_classes; c++) if (o[c] > mx) mx = o[c];
        for (int c = 0; c < m->num_classes; c++) s += exp(o[c] - mx);
        loss += log(s) + mx - o[y[r]];
        if (logits_out) memcpy(logits_out + (size_t)r * m->num_classes, o, sizeof(double) * (size_t)m->num_classes);
    }
    for (int l = 0; l <= m->num_layers; l++) free(out[l]);
    return loss / rows;
}
#endif
