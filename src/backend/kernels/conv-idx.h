/* Per-element index math of the CUDA conv, pool and dropout kernels, as inline
 * functions that gcc and nvcc both compile. Each CUDA thread calls one of these
 * for its element; tests/unit/test_kernel_idx.c loops over every element on the
 * host calling the SAME functions and compares with the CPU backend, so the GPU
 * kernels' indexing is tested on machines without a GPU.
 *
 * Every function computes one output element from its inputs (a gather): no two
 * threads write the same place, so there are no atomics, and sums run in a fixed
 * order — the order the CPU backend uses, which makes im2col, col2im, maxpool and
 * dropout bit-identical to it.
 *
 * Layouts (as src/backend/cpu/conv.c): a chunk of s images is unfolded into
 * col (k, s*plane) with k = c*kh*kw rows and leading dimension ld = s*plane;
 * column j*plane + p is output pixel p of image j of the chunk. The GEMM output
 * and the backward's dz copy are channel-major over the chunk, (oc, s*plane).
 *
 * Include dlfs/backend.h first (in .cu files: backend/cuda/cuda-impl.cuh, which
 * wraps it in extern "C"). */
#ifndef DLFS_CONV_IDX_H
#define DLFS_CONV_IDX_H

#include <stddef.h>
#include <stdint.h>
#include "core/rng-hd.h" /* DLFS_HD, dlfs_hash64_hd_, dlfs_uniform01_hd_ */

#ifndef DLFS_BACKEND_H
#error "include dlfs/backend.h (or backend/cuda/cuda-impl.cuh) before backend/kernels/conv-idx.h"
#endif

/* col[idx], idx in [0, k * ld): the input value under kernel tap (c, ki, kj) for
 * output pixel p of chunk image j, 0 in the padding. x: the chunk's first image. */
DLFS_HD static inline float dlfs_im2col_at(const struct dlfs_conv_geom *g, const float *x, size_t ld, size_t idx)
{
    const size_t plane = (size_t)g->oh * g->ow;
    const size_t row = idx / ld, colj = idx % ld;
    const size_t j = colj / plane, p = colj % plane;
    const int oy = (int)(p / (size_t)g->ow), ox = (int)(p % (size_t)g->ow);
    const int kj = (int)(row % (size_t)g->kw), ki = (int)(row / (size_t)g->kw % (size_t)g->kh);
    const int c = (int)(row / ((size_t)g->kw * g->kh));
    const int iy = oy * g->stride - g->pad + ki, ix = ox * g->stride - g->pad + kj;
    if (iy < 0 || iy >= g->h || ix < 0 || ix >= g->w) return 0.0f;
    return x[((j * g->c + (size_t)c) * g->h + (size_t)iy) * g->w + (size_t)ix];
}

/* dx[idx] of the chunk, idx in [0, s * c*h*w): the sum of the col entries that
 * im2col copied from this input pixel (the adjoint of dlfs_im2col_at), taps in
 * (ki, kj) order from 0.0f — the order in which src/backend/cpu/conv.c adds them. */
DLFS_HD static inline float dlfs_col2im_at(const struct dlfs_conv_geom *g, const float *col, size_t ld, size_t idx)
{
    const size_t hw = (size_t)g->h * g->w, plane = (size_t)g->oh * g->ow;
    const size_t j = idx / (hw * (size_t)g->c), r = idx % (hw * (size_t)g->c);
    const int c = (int)(r / hw), iy = (int)(r % hw / (size_t)g->w), ix = (int)(r % (size_t)g->w);
    float sum = 0.0f;
    for (int ki = 0; ki < g->kh; ki++) {
        const int ty = iy + g->pad - ki; /* = oy * stride */
        if (ty < 0 || ty % g->stride) continue;
        const int oy = ty / g->stride;
        if (oy >= g->oh) continue;
        for (int kj = 0; kj < g->kw; kj++) {
            const int tx = ix + g->pad - kj;
            if (tx < 0 || tx % g->stride) continue;
            const int ox = tx / g->stride;
            if (ox >= g->ow) continue;
            const size_t row = ((size_t)c * g->kh + (size_t)ki) * g->kw + (size_t)kj;
            sum += col[row * ld + j * plane + (size_t)oy * g->ow + (size_t)ox];
        }
    }
    return sum;
}

/* Where NCHW element idx of a chunk (idx in [0, s * oc*plane)) sits in the chunk's
 * channel-major (oc, ld) buffer. */
DLFS_HD static inline size_t dlfs_chunk_cm_index(size_t plane, int oc, size_t ld, size_t idx)
{
    const size_t img = plane * (size_t)oc;
    const size_t j = idx / img, r = idx % img;
    return (r / plane) * ld + j * plane + r % plane;
}

/* Max pooling, output element idx of (n, c, oh, ow): y[idx] and arg[idx] = the
 * first maximum's index in its input plane. Padding counts as -inf (never chosen,
 * as PyTorch's max_pool2d): the window is clipped to the plane. The loop is src/backend/cpu/pool.c's,
 * comparison for comparison (so NaNs and ties resolve the same way). */
DLFS_HD static inline void dlfs_maxpool_fwd_at(const struct dlfs_conv_geom *g, const float *x, float *y,
                                               int32_t *arg, size_t idx)
{
    const size_t in_plane = (size_t)g->h * g->w, out_plane = (size_t)g->oh * g->ow;
    const size_t q = idx / out_plane, o = idx % out_plane;
    const float *xp = x + q * in_plane;
    const int y0 = (int)(o / (size_t)g->ow) * g->stride - g->pad, x0 = (int)(o % (size_t)g->ow) * g->stride - g->pad;
    const int ya = y0 > 0 ? y0 : 0, xa = x0 > 0 ? x0 : 0; /* the window clipped to the plane */
    const int yb = y0 + g->kh < g->h ? y0 + g->kh : g->h, xb = x0 + g->kw < g->w ? x0 + g->kw : g->w;
    int best = ya * g->w + xa;
    float m = xp[best];
    for (int iy = ya; iy < yb; iy++)
        for (int ix = xa; ix < xb; ix++) {
            const int at = iy * g->w + ix;
            if (xp[at] > m) { m = xp[at]; best = at; }
        }
    y[idx] = m;
    arg[idx] = best;
}

/* Max pooling backward, input element idx of (n, c, h, w): the sum of dy over the
 * windows that cover this pixel and chose it (arg), windows in ascending output
 * order from 0.0f — the CPU's scatter order, so overlapping windows (stride <
 * kernel) add up to the same bits. Relies on arg coming from maxpool_fwd (inside
 * its window). */
DLFS_HD static inline float dlfs_maxpool_bwd_at(const struct dlfs_conv_geom *g, const float *dy, const int32_t *arg,
                                                size_t idx)
{
    const size_t in_plane = (size_t)g->h * g->w, out_plane = (size_t)g->oh * g->ow;
    const size_t q = idx / in_plane;
    const int p = (int)(idx % in_plane), iy = p / g->w, ix = p % g->w;
    /* windows oy*stride - pad <= iy < oy*stride - pad + kh, and the same across */
    const int ty = iy + g->pad, tx = ix + g->pad;
    const int ylo = ty - g->kh + 1 > 0 ? (ty - g->kh + 1 + g->stride - 1) / g->stride : 0;
    const int xlo = tx - g->kw + 1 > 0 ? (tx - g->kw + 1 + g->stride - 1) / g->stride : 0;
    const int yhi = ty / g->stride < g->oh - 1 ? ty / g->stride : g->oh - 1;
    const int xhi = tx / g->stride < g->ow - 1 ? tx / g->stride : g->ow - 1;
    const float *dq = dy + q * out_plane;
    const int32_t *aq = arg + q * out_plane;
    float sum = 0.0f;
    for (int oy = ylo; oy <= yhi; oy++)
        for (int ox = xlo; ox <= xhi; ox++) {
            const size_t o = (size_t)oy * g->ow + (size_t)ox;
            if (aq[o] == p) sum += dq[o];
        }
    return sum;
}

/* Dropout element idx of (rows, cols): mask[idx] and y[idx] as the table's
 * contract says. keep = 1 / (1 - rate), computed once by the caller in float. */
DLFS_HD static inline void dlfs_dropout_at(const float *x, float *y, float *mask, int cols, float rate, float keep,
                                           uint64_t key, const uint32_t *ids, size_t idx)
{
    const size_t r = idx / (size_t)cols, j = idx % (size_t)cols;
    const float mk = dlfs_uniform01_hd_(dlfs_hash64_hd_(key, ids[r]), (uint64_t)j) >= rate ? keep : 0.0f;
    mask[idx] = mk;
    y[idx] = x[idx] * mk;
}

#endif
