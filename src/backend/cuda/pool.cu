// Max pooling on the GPU (the twin of src/backend/cpu/pool.c): one thread per
// output (forward) or per input pixel (backward, a gather over the windows that
// cover it, so overlapping windows need no atomics). The per-element code is
// backend/kernels/conv-idx.h, tested on the host by tests/unit/test_kernel_idx.c.
#include "backend/cuda/cuda-impl.cuh"
#include "backend/kernels/conv-idx.h"

#define POOL_THREADS 256

__global__ void maxpool_fwd_k(dlfs_conv_geom g, const float *__restrict__ x, float *__restrict__ y,
                              int32_t *__restrict__ arg, size_t total)
{
    CUDA_GRID_STRIDE(i, total) dlfs_maxpool_fwd_at(&g, x, y, arg, i);
}

__global__ void maxpool_bwd_k(dlfs_conv_geom g, const float *__restrict__ dy, const int32_t *__restrict__ arg,
                              float *__restrict__ dx, size_t total)
{
    CUDA_GRID_STRIDE(i, total) dx[i] = dlfs_maxpool_bwd_at(&g, dy, arg, i);
}

void cuda_maxpool_fwd(const struct dlfs_conv_geom *g, int n, const float *x, float *y, int32_t *arg)
{
    DLFS_ASSERT(n >= 0 && g->stride > 0 && g->oh > 0 && g->ow > 0);
    const size_t total = (size_t)n * g->c * g->oh * g->ow;
    if (!total) return;
    maxpool_fwd_k<<<cuda_grid_(total, POOL_THREADS), POOL_THREADS, 0, cuda_ctx_.stream>>>(*g, x, y, arg, total);
    CUDA_LAUNCH_CHECK();
}

void cuda_maxpool_bwd(const struct dlfs_conv_geom *g, int n, const float *dy, const int32_t *arg, float *dx)
{
    DLFS_ASSERT(n >= 0 && g->stride > 0 && g->oh > 0 && g->ow > 0);
    const size_t total = (size_t)n * g->c * g->h * g->w;
    if (!total) return;
    maxpool_bwd_k<<<cuda_grid_(total, POOL_THREADS), POOL_THREADS, 0, cuda_ctx_.stream>>>(*g, dy, arg, dx, total);
    CUDA_LAUNCH_CHECK();
}

// Global average pooling: one thread per (sample, channel) plane, summed in the
// CPU's order and divided by the plane size (__fadd_rn/__fdiv_rn: its bits).
__global__ void gap_fwd_k(const float *__restrict__ x, float *__restrict__ y, int plane, size_t total)
{
    CUDA_GRID_STRIDE(q, total) {
        const float *xp = x + q * (size_t)plane;
        float s = 0.0f;
        for (int i = 0; i < plane; i++) s = __fadd_rn(s, xp[i]);
        y[q] = __fdiv_rn(s, (float)plane);
    }
}

__global__ void gap_bwd_k(const float *__restrict__ dy, float *__restrict__ dx, int plane, size_t total)
{
    CUDA_GRID_STRIDE(i, total) dx[i] = __fdiv_rn(dy[i / (size_t)plane], (float)plane);
}

void cuda_gap_fwd(int n, int c, int plane, const float *x, float *y)
{
    DLFS_ASSERT(n >= 0 && c >= 0 && plane > 0);
    const size_t total = (size_t)n * c;
    if (!total) return;
    gap_fwd_k<<<cuda_grid_(total, POOL_THREADS), POOL_THREADS, 0, cuda_ctx_.stream>>>(x, y, plane, total);
    CUDA_LAUNCH_CHECK();
}

void cuda_gap_bwd(int n, int c, int plane, const float *dy, float *dx)
{
    DLFS_ASSERT(n >= 0 && c >= 0 && plane > 0);
    const size_t total = (size_t)n * c * plane;
    if (!total) return;
    gap_bwd_k<<<cuda_grid_(total, POOL_THREADS), POOL_THREADS, 0, cuda_ctx_.stream>>>(dy, dx, plane, total);
    CUDA_LAUNCH_CHECK();
}
