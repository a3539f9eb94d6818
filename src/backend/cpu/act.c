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

void cpu_bias_act_fwd(float *z, float *a, const float *bias, int rows, int cols, enum dlfs_act act)
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

CPU_CLONES_ void cpu_act_bwd(float *dz, const float *da, const float *z, const float *a, size_t n,
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

void cpu_colsum(float *out, const float *x, int rows, int cols, float beta)
{
    if (beta == 0.0f) memset(out, 0, (size_t)cols * sizeof *out);
    else if (beta != 1.0f) for (int c = 0; c < cols; c++) out[c] *= beta;
    for (int r = 0; r < rows; r++) {
        const float *xr = x + (size_t)r * cols;
        for (int c = 0; c < cols; c++) out[c] += xr[c];
    }
}
