// The small vector ops that src/backend/cpu/cpu.c keeps inline: fill, axpy, scale,
// dropout and its backward (mul), and the uint8 -> float normalisation of a batch
// of images.
#include "backend/cuda/cuda-impl.cuh"
#include "backend/kernels/conv-idx.h" // dlfs_dropout_at

#define VEC_THREADS 256

__global__ void fill_k(float *x, float v, size_t n)
{
    CUDA_GRID_STRIDE(i, n) x[i] = v;
}

__global__ void axpy_k(size_t n, float alpha, const float *x, float *y) // x may equal y
{
    CUDA_GRID_STRIDE(i, n) y[i] += alpha * x[i];
}

__global__ void scale_k(size_t n, float alpha, float *x)
{
    CUDA_GRID_STRIDE(i, n) x[i] *= alpha;
}

__global__ void mul_k(size_t n, const float *x, float *y) // x may equal y
{
    CUDA_GRID_STRIDE(i, n) y[i] *= x[i];
}

__global__ void add_k(size_t n, const float *a, const float *b, float *y) // y may equal a or b
{
    CUDA_GRID_STRIDE(i, n) y[i] = __fadd_rn(a[i], b[i]);
}

// One thread per element; the row's key is rehashed per element (two 64-bit
// mixes: cheaper than a second pass). y may equal x. The draw is the shared
// host/device code of core/rng-hd.h, so masks are the CPU's bit for bit.
__global__ void dropout_k(const float *x, float *y, float *__restrict__ mask, int cols, float rate, float keep,
                          uint64_t key, const uint32_t *__restrict__ ids, size_t n)
{
    CUDA_GRID_STRIDE(i, n) dlfs_dropout_at(x, y, mask, cols, rate, keep, key, ids, i);
}

cudaError_t cuda_kernel_image_check_(void)
{
    cudaFuncAttributes at;
    return cudaFuncGetAttributes(&at, fill_k); // fails without an image (SASS or PTX) for this GPU
}

void cuda_fill(float *x, float v, size_t n)
{
    if (!n) return;
    fill_k<<<cuda_grid_(n, VEC_THREADS), VEC_THREADS, 0, cuda_ctx_.stream>>>(x, v, n);
    CUDA_LAUNCH_CHECK();
}

void cuda_axpy(size_t n, float alpha, const float *x, float *y)
{
    if (!n) return;
    axpy_k<<<cuda_grid_(n, VEC_THREADS), VEC_THREADS, 0, cuda_ctx_.stream>>>(n, alpha, x, y);
    CUDA_LAUNCH_CHECK();
}

void cuda_scale(size_t n, float alpha, float *x)
{
    if (!n) return;
    scale_k<<<cuda_grid_(n, VEC_THREADS), VEC_THREADS, 0, cuda_ctx_.stream>>>(n, alpha, x);
    CUDA_LAUNCH_CHECK();
}

void cuda_mul(size_t n, const float *x, float *y)
{
    if (!n) return;
    mul_k<<<cuda_grid_(n, VEC_THREADS), VEC_THREADS, 0, cuda_ctx_.stream>>>(n, x, y);
    CUDA_LAUNCH_CHECK();
}

void cuda_add(size_t n, const float *a, const float *b, float *y)
{
    if (!n) return;
    add_k<<<cuda_grid_(n, VEC_THREADS), VEC_THREADS, 0, cuda_ctx_.stream>>>(n, a, b, y);
    CUDA_LAUNCH_CHECK();
}

void cuda_dropout_fwd(const float *x, float *y, float *mask, int rows, int cols, float rate, uint64_t key,
                      const uint32_t *ids)
{
    DLFS_ASSERT(rows >= 0 && cols >= 0 && rate >= 0.0f && rate < 1.0f);
    const size_t n = (size_t)rows * cols;
    if (!n) return;
    const float keep = 1.0f / (1.0f - rate); // on the host, in float: the CPU's value
    dropout_k<<<cuda_grid_(n, VEC_THREADS), VEC_THREADS, 0, cuda_ctx_.stream>>>(x, y, mask, cols, rate, keep, key,
                                                                                ids, n);
    CUDA_LAUNCH_CHECK();
}

// Per-channel scale and offset, passed BY VALUE as a kernel argument: mean/std
// are host arrays (the dataset's attributes), and a 128-byte argument costs
// nothing, where a device copy would cost a transfer per batch.
struct norm_coef {
    float s[DLFS_MAX_CHANNELS]; // 1 / (255 std)
    float o[DLFS_MAX_CHANNELS]; // -mean / std
};

// One block per image plane (all pixels of one channel of one image share s, o),
// threads across the plane. __fmul_rn/__fadd_rn forbid the FMA contraction nvcc
// would otherwise make, so the result is bit-identical to the CPU's x * s + o:
// CPU and GPU runs then start from the same input bits.
__global__ void normalize_u8_k(float *__restrict__ dst, const uint8_t *__restrict__ src, size_t planes,
                               int channels, size_t plane, norm_coef k)
{
    for (size_t p = blockIdx.x; p < planes; p += gridDim.x) {
        const int ch = (int)(p % (size_t)channels);
        const float s = k.s[ch], o = k.o[ch];
        const uint8_t *sp = src + p * plane;
        float *dp = dst + p * plane;
        for (size_t j = threadIdx.x; j < plane; j += blockDim.x) dp[j] = __fadd_rn(__fmul_rn((float)sp[j], s), o);
    }
}

void cuda_normalize_u8(float *dst, const uint8_t *src, size_t n, int channels, size_t plane, const double *mean,
                       const double *std)
{
    DLFS_ASSERT(channels >= 1 && channels <= DLFS_MAX_CHANNELS);
    if (!n || !plane) return;
    norm_coef k;
    for (int ch = 0; ch < channels; ch++) { // the same float rounding as cpu_normalize_u8
        k.s[ch] = (float)(1.0 / (255.0 * std[ch]));
        k.o[ch] = (float)(-mean[ch] / std[ch]);
    }
    for (int ch = channels; ch < DLFS_MAX_CHANNELS; ch++) k.s[ch] = k.o[ch] = 0.0f;
    const size_t planes = n * (size_t)channels;
    const unsigned threads = plane >= 256 ? 256 : (unsigned)((plane + 31) / 32 * 32);
    size_t blocks = planes;
    if (blocks > (size_t)cuda_ctx_.sm_count * 32) blocks = (size_t)cuda_ctx_.sm_count * 32;
    normalize_u8_k<<<(unsigned)blocks, threads, 0, cuda_ctx_.stream>>>(dst, src, planes, channels, plane, k);
    CUDA_LAUNCH_CHECK();
}
