/* 2-D convolution on the CPU: im2col + one OpenBLAS GEMM per chunk of images.
 *
 * Per image GEMMs are too small for two BLAS threads (conv 5x5x32 on 28x28 is
 * 32 x 784 x 25: the threads spent more time in sched_yield than computing —
 * measured 528 ms per cnn step at batch 128), so dlfs_conv_chunk() images are
 * unfolded side by side into col (k, S*plane) and multiplied at once. The GEMM
 * output is channel-major over the chunk, (oc, S*plane); one copy puts it into
 * NCHW, cheap next to the k multiply-adds per output. */
#include <string.h>
#include "backend/cpu/cpu-impl.h"

/* col rows (c*kh*kw) x columns [0, plane) at leading dimension ld, from one
 * image x (c, h, w); zero where the window hangs over the padding. */
static void im2col_(const struct dlfs_conv_geom *g, const float *x, float *col, size_t ld)
{
    for (int c = 0; c < g->c; c++)
        for (int ki = 0; ki < g->kh; ki++)
            for (int kj = 0; kj < g->kw; kj++) {
                float *row = col + (size_t)((c * g->kh + ki) * g->kw + kj) * ld;
                const float *xc = x + (size_t)c * g->h * g->w;
                /* output columns whose input column ix = ox*s - pad + kj is inside */
                int lo = 0, hi = g->ow;
                while (lo < hi && lo * g->stride - g->pad + kj < 0) lo++;
                while (hi > lo && (hi - 1) * g->stride - g->pad + kj >= g->w) hi--;
                for (int oy = 0; oy < g->oh; oy++) {
                    const int iy = oy * g->stride - g->pad + ki;
                    float *r = row + oy * g->ow;
                    if (iy < 0 || iy >= g->h) {
                        memset(r, 0, (size_t)g->ow * sizeof *r);
                        continue;
                    }
                    const float *xr = xc + (size_t)iy * g->w - g->pad + kj;
                    for (int ox = 0; ox < lo; ox++) r[ox] = 0.0f;
                    if (g->stride == 1) memcpy(r + lo, xr + lo, (size_t)(hi - lo) * sizeof *r);
                    else for (int ox = lo; ox < hi; ox++) r[ox] = xr[ox * g->stride];
                    for (int ox = hi; ox < g->ow; ox++) r[ox] = 0.0f;
                }
            }
}

/* dx (c, h, w) += the columns of col folded back (the adjoint of im2col_) */
static void col2im_(const struct dlfs_conv_geom *g, const float *col, size_t ld, float *dx)
{
    for (int c = 0; c < g->c; c++)
        for (int ki = 0; ki < g->kh; ki++)
            for (int kj = 0; kj < g->kw; kj++) {
                const float *row = col + (size_t)((c * g->kh + ki) * g->kw + kj) * ld;
                float *dc = dx + (size_t)c * g->h * g->w;
                int lo = 0, hi = g->ow;
                while (lo < hi && lo * g->stride - g->pad + kj < 0) lo++;
                while (hi > lo && (hi - 1) * g->stride - g->pad + kj >= g->w) hi--;
                for (int oy = 0; oy < g->oh; oy++) {
                    const int iy = oy * g->stride - g->pad + ki;
                    if (iy < 0 || iy >= g->h) continue;
                    const float *r = row + oy * g->ow;
                    float *dr = dc + (size_t)iy * g->w - g->pad + kj;
                    for (int ox = lo; ox < hi; ox++) dr[ox * g->stride] += r[ox];
                }
            }
}

void cpu_conv2d_fwd(const struct dlfs_conv_geom *g, int n, const float *x, const float *w, const float *b,
                    float *col, float *z, float *a, enum dlfs_act act)
{
    const int k = g->c * g->kh * g->kw, plane = g->oh * g->ow, S = dlfs_conv_chunk(g, n);
    const size_t in_sz = (size_t)g->c * g->h * g->w, out_sz = (size_t)g->oc * plane;
    for (int i0 = 0; i0 < n; i0 += S) {
        const int s = n - i0 < S ? n - i0 : S;
        const size_t ld = (size_t)s * plane;
        float *out = col + (size_t)k * ld; /* (oc, s*plane) */
        for (int j = 0; j < s; j++) im2col_(g, x + (size_t)(i0 + j) * in_sz, col + (size_t)j * plane, ld);
        /* out (oc, s*plane) = W (oc, k) * col (k, s*plane) */
        cpu_gemm(false, false, g->oc, (int)ld, k, 1.0f, w, k, col, (int)ld, 0.0f, out, (int)ld);
        for (int j = 0; j < s; j++)
            for (int o = 0; o < g->oc; o++) { /* bias per channel, activation, into NCHW */
                const float *src = out + (size_t)o * ld + (size_t)j * plane;
                const size_t at = (size_t)(i0 + j) * out_sz + (size_t)o * plane;
                float *zr = z + at, *ar = a + at;
                const float bo = b[o];
                if (act == DLFS_ACT_RELU) {
                    for (int p = 0; p < plane; p++) {
                        const float v = src[p] + bo;
                        zr[p] = v;
                        ar[p] = v > 0.0f ? v : 0.0f;
                    }
                } else {
                    memcpy(zr, src, (size_t)plane * sizeof *zr);
                    /* (plane, 1): the dense op's bias broadcast over one column */
                    cpu_bias_act_fwd(zr, ar, b + o, plane, 1, act);
                }
            }
    }
}

void cpu_conv2d_bwd(const struct dlfs_conv_geom *g, int n, const float *x, const float *w, const float *dz,
                    float *col, float *dw, float *db, float *dx)
{
    const int k = g->c * g->kh * g->kw, plane = g->oh * g->ow, S = dlfs_conv_chunk(g, n);
    const size_t in_sz = (size_t)g->c * g->h * g->w, out_sz = (size_t)g->oc * plane;
    memset(db, 0, (size_t)g->oc * sizeof *db);
    if (dx) memset(dx, 0, (size_t)n * in_sz * sizeof *dx);
    for (int i0 = 0; i0 < n; i0 += S) {
        const int s = n - i0 < S ? n - i0 : S;
        const size_t ld = (size_t)s * plane;
        float *dzt = col + (size_t)k * ld; /* dz of the chunk, channel-major (oc, s*plane) */
        for (int j = 0; j < s; j++)
            for (int o = 0; o < g->oc; o++) {
                const float *src = dz + (size_t)(i0 + j) * out_sz + (size_t)o * plane;
                memcpy(dzt + (size_t)o * ld + (size_t)j * plane, src, (size_t)plane * sizeof *src);
                float sum = 0.0f;
                for (int p = 0; p < plane; p++) sum += src[p];
                db[o] += sum;
            }
        for (int j = 0; j < s; j++) im2col_(g, x + (size_t)(i0 + j) * in_sz, col + (size_t)j * plane, ld);
        /* dW (oc, k) (+)= dz (oc, s*plane) * col^T (s*plane, k) */
        cpu_gemm(false, true, g->oc, k, (int)ld, 1.0f, dzt, (int)ld, col, (int)ld, i0 ? 1.0f : 0.0f, dw, k);
        if (dx) {
            /* col (k, s*plane) = W^T (k, oc) * dz (oc, s*plane), folded back into dx */
            cpu_gemm(true, false, k, (int)ld, g->oc, 1.0f, w, k, dzt, (int)ld, 0.0f, col, (int)ld);
            for (int j = 0; j < s; j++) col2im_(g, col + (size_t)j * plane, ld, dx + (size_t)(i0 + j) * in_sz);
        }
    }
}
