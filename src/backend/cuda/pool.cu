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
