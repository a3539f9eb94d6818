// Bias + activation forward, activation backward, column sums (the twin of
// src/backend/cpu/act.c; the formulas are the same, in float, so results agree
// to a few ulps — tanhf/expf differ between libm and CUDA's libdevice by <= 2 ulp).
#include "backend/cuda/cuda-impl.cuh"
#include "backend/cuda/act.cuh"

// Block (32, 8): x walks columns (a warp reads 32 consecutive floats of one row:
// coalesced), y walks rows; both grid-stride, so any shape fits any grid. The
// bias value is loaded once per column and kept across rows. `a` may alias `z`
// (DLFS_ACT_NONE), hence no __restrict__.
template <int ACT>
__global__ void bias_act_fwd_k(float *z, float *a, const float *bias, int rows, int cols)
{
    for (int c = blockIdx.x * blockDim.x + threadIdx.x; c < cols; c += gridDim.x * blockDim.x) {
        const float b = bias[c];
        for (int r = blockIdx.y * blockDim.y + threadIdx.y; r < rows; r += gridDim.y * blockDim.y) {
            const size_t i = (size_t)r * cols + c;
            const float v = z[i] + b;
            z[i] = v;
            a[i] = act_f<ACT>(v);
        }
    }
}

void cuda_bias_act_fwd(float *z, float *a, const float *bias, int rows, int cols, enum dlfs_act act)
{
    DLFS_ASSERT(rows >= 0 && cols >= 0 && (a != z || act == DLFS_ACT_NONE));
    if (!rows || !cols) return;
    const dim3 block(32, 8);
    unsigned gx = (unsigned)((cols + 31) / 32), gy = (unsigned)((rows + 7) / 8);
    // enough blocks to fill the GPU; the loops cover the rest
    if (gy > 65535u) gy = 65535u;
    if ((size_t)gx * gy > (size_t)cuda_ctx_.sm_count * 64) gy = (unsigned)((size_t)cuda_ctx_.sm_count * 64 / gx) + 1;
    const dim3 grid(gx, gy);
    cudaStream_t s = cuda_ctx_.stream;
    switch (act) {
    case DLFS_ACT_RELU: bias_act_fwd_k<DLFS_ACT_RELU><<<grid, block, 0, s>>>(z, a, bias, rows, cols); break;
    case DLFS_ACT_TANH: bias_act_fwd_k<DLFS_ACT_TANH><<<grid, block, 0, s>>>(z, a, bias, rows, cols); break;
    case DLFS_ACT_SIGMOID: bias_act_fwd_k<DLFS_ACT_SIGMOID><<<grid, block, 0, s>>>(z, a, bias, rows, cols); break;
    case DLFS_ACT_GELU: bias_act_fwd_k<DLFS_ACT_GELU><<<grid, block, 0, s>>>(z, a, bias, rows, cols); break;
    default: bias_act_fwd_k<DLFS_ACT_NONE><<<grid, block, 0, s>>>(z, a, bias, rows, cols); break;
    }
    CUDA_LAUNCH_CHECK();
}

// Elementwise; dz may equal da (the model runs it in place): each thread reads
// its da[i] before writing dz[i], and no thread touches another's element.
template <int ACT>
__global__ void act_bwd_k(float *dz, const float *da, const float *z, const float *a, size_t n)
{
    CUDA_GRID_STRIDE(i, n) dz[i] = act_grad<ACT>(da[i], z ? z[i] : 0.0f, a ? a[i] : 0.0f);
}

void cuda_act_bwd(float *dz, const float *da, const float *z, const float *a, size_t n, enum dlfs_act act)
{
    if (!n) return;
    cudaStream_t s = cuda_ctx_.stream;
    const unsigned t = 256, g = cuda_grid_(n, t);
    switch (act) {
    case DLFS_ACT_RELU: act_bwd_k<DLFS_ACT_RELU><<<g, t, 0, s>>>(dz, da, z, nullptr, n); break;
    case DLFS_ACT_TANH: act_bwd_k<DLFS_ACT_TANH><<<g, t, 0, s>>>(dz, da, nullptr, a, n); break;
    case DLFS_ACT_SIGMOID: act_bwd_k<DLFS_ACT_SIGMOID><<<g, t, 0, s>>>(dz, da, nullptr, a, n); break;
    case DLFS_ACT_GELU: act_bwd_k<DLFS_ACT_GELU><<<g, t, 0, s>>>(dz, da, z, nullptr, n); break;
    default:
        if (dz != da) CUDA_CHECK(cudaMemcpyAsync(dz, da, n * sizeof *dz, cudaMemcpyDeviceToDevice, s));
        return;
    }
    CUDA_LAUNCH_CHECK();
}

// out(cols) = beta * out + column sums of x(rows, cols).
// One block per 32 columns: 32 row-strided partial sums per column (coalesced
// 128-byte reads), then a fixed-order reduction in shared memory. No atomics, so
// the result is bit-identical run to run — deterministic mode depends on that.
// (A fused path would use cuBLASLt's BGRADB epilogue instead of this kernel.)
#define COLSUM_Y 32
__global__ void colsum_k(float *out, const float *__restrict__ x, int rows, int cols, float beta)
{
    __shared__ float part[COLSUM_Y][33]; // +1: no bank conflicts on the transposed read
    const int c = blockIdx.x * 32 + threadIdx.x;
    float acc = 0.0f;
    if (c < cols)
        for (int r = threadIdx.y; r < rows; r += COLSUM_Y) acc += x[(size_t)r * cols + c];
    part[threadIdx.y][threadIdx.x] = acc;
    __syncthreads();
    if (threadIdx.y == 0 && c < cols) {
        float s = 0.0f;
        for (int y = 0; y < COLSUM_Y; y++) s += part[y][threadIdx.x];
        out[c] = beta == 0.0f ? s : beta * out[c] + s; // beta 0: never read out (may be garbage)
    }
}

void cuda_colsum(float *out, const float *x, int rows, int cols, float beta)
{
    DLFS_ASSERT(rows >= 0 && cols >= 0);
    if (!cols) return;
    const unsigned gx = (unsigned)((cols + 31) / 32); // cols <= DLFS_MAX_WIDTH: fits the grid
    colsum_k<<<gx, dim3(32, COLSUM_Y), 0, cuda_ctx_.stream>>>(out, x, rows, cols, beta);
    CUDA_LAUNCH_CHECK();
}
