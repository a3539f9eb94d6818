/* Bias + activation forward, activation backward, column sums. */
#include <math.h>
#include <string.h>
#include "backend/cpu/cpu-impl.h"

static inline float act_f_(float z, enum dlfs_act act)
{
    switch (act) {
    case DLFS_ACT_RELU: return z > 0.0f ? z : 0.0f;
    case DLFS_ACT_TANH: return tanhf(z);
    case DLFS_ACT_SIGMOID: return 1.0f / (1.0f + expf(-z));
    default: return z;
    }
}

/* One bias for n elements (a conv channel's plane, batch norm's whole output): one
 * flat loop. Per element the same operations as the general loop below, so the
 * same bits; cnn-bn spent 15 % of its step in that loop's rows of one column. */
CPU_CLONES_ static void scalar_bias_act_(float *z, float *a, float b, size_t n, enum dlfs_act act)
{
    if (act == DLFS_ACT_RELU) {
        for (size_t i = 0; i < n; i++) {
            const float v = z[i] + b;
            z[i] = v;
            a[i] = v > 0.0f ? v : 0.0f;
        }
    } else {
        for (size_t i = 0; i < n; i++) {
            const float v = z[i] + b;
            z[i] = v;
            a[i] = act_f_(v, act);
        }
    }
}

static void bias_act_(float *z, float *a, const float *bias, int rows, int cols, enum dlfs_act act)
{
    if (act == DLFS_ACT_GELU) { /* vectorised, threaded: gelu.c */
        cpu_gelu_bias_fwd(z, a, bias, rows, cols);
        return;
    }
    if (cols == 1) {
        scalar_bias_act_(z, a, bias[0], (size_t)rows, act);
        return;
    }
    for (int r = 0; r < rows; r++) {
        float *zr = z + (size_t)r * cols;
        float *ar = a + (size_t)r * cols;
        if (act == DLFS_ACT_RELU) { /* the common case, kept branch-free for the vectoriser */
            for (int c = 0; c < cols; c++) {
                float v = zr[c] + bias[c];
                zr[c] = v;
                ar[c] = v > 0.0f ? v : 0.0f;
            }
        } else {
            for (int c = 0; c < cols; c++) {
                float v = zr[c] + bias[c];
                zr[c] = v;
                ar[c] = act_f_(v, act);
            }
        }
    }
}

CPU_CLONES_ static void act_bwd_(float *dz, const float *da, const float *z, const float *a, size_t n,
                                 enum dlfs_act act)
{
    switch (act) {
    case DLFS_ACT_RELU:
        /* da loaded unconditionally: a select the vectoriser takes, not a branch
         * that mispredicts on half the elements (same bits either way) */
        for (size_t i = 0; i < n; i++) {
            const float d = da[i];
            dz[i] = z[i] > 0.0f ? d : 0.0f;
        }
        break;
    case DLFS_ACT_TANH:
        for (size_t i = 0; i < n; i++) dz[i] = da[i] * (1.0f - a[i] * a[i]);
        break;
    case DLFS_ACT_SIGMOID:
        for (size_t i = 0; i < n; i++) dz[i] = da[i] * a[i] * (1.0f - a[i]);
        break;
    case DLFS_ACT_GELU: /* gelu.c */
        cpu_gelu_bwd(dz, da, z, n);
        break;
    default:
        if (dz != da) memcpy(dz, da, n * sizeof *dz);
        break;
    }
}

/* Both ops over the rank's threads (cpu_parallel_for) when large (batch norm's and
 * the residual add's relu in resnet20: 1.6 M values at batch 128): element by
 * element, the same bits whatever the split. Rows of a bias over several columns
 * are split whole; a bias over one column (rows values) is split anywhere. */
#define GRAIN_ ((size_t)1 << 16)

struct act_job_ {
    float *z, *a, *dz;
    const float *bias, *da, *zc, *ac;
    int cols;
    enum dlfs_act act;
};

static void fwd_part_(void *arg, size_t lo, size_t hi)
{
    const struct act_job_ *j = arg;
    const size_t o = lo * (size_t)j->cols;
    bias_act_(j->z + o, j->a + o, j->bias, (int)(hi - lo), j->cols, j->act);
}

void cpu_bias_act_fwd(float *z, float *a, const float *bias, int rows, int cols, enum dlfs_act act)
{
    if (act == DLFS_ACT_GELU) { /* gelu.c splits it itself: not inside a part */
        cpu_gelu_bias_fwd(z, a, bias, rows, cols);
        return;
    }
    struct act_job_ j = {.z = z, .a = a, .bias = bias, .cols = cols, .act = act};
    const size_t per = cols > 0 ? (size_t)cols : 1;
    cpu_parallel_for((size_t)(rows > 0 ? rows : 0), (GRAIN_ + per - 1) / per, fwd_part_, &j);
}

static void bwd_part_(void *arg, size_t lo, size_t hi)
{
    const struct act_job_ *j = arg;
    act_bwd_(j->dz + lo, j->da + lo, j->zc ? j->zc + lo : NULL, j->ac ? j->ac + lo : NULL, hi - lo, j->act);
}

void cpu_act_bwd(float *dz, const float *da, const float *z, const float *a, size_t n, enum dlfs_act act)
{
    if (act == DLFS_ACT_GELU) { /* gelu.c splits it itself */
        cpu_gelu_bwd(dz, da, z, n);
        return;
    }
    struct act_job_ j = {.dz = dz, .da = da, .zc = z, .ac = a, .act = act};
    cpu_parallel_for(n, GRAIN_, bwd_part_, &j);
}

void cpu_colsum(float *out, const float *x, int rows, int cols, float beta)
{
    if (beta == 0.0f) memset(out, 0, (size_t)cols * sizeof *out);
    else if (beta != 1.0f) for (int c = 0; c < cols; c++) out[c] *= beta;
    for (int r = 0; r < rows; r++) {
        const float *xr = x + (size_t)r * cols;
        for (int c = 0; c < cols; c++) out[c] += xr[c];
    }
}
