// GEMM through cuBLAS (the twin of src/backend/cpu/gemm.c), in fp32, tf32 or bf16.
//
// cuBLAS is column-major; our tensors are row-major. A row-major (r, c) matrix
// with leading dimension ld is, byte for byte, its column-major transpose (c, r)
// with the same ld. So row-major C = op(A) op(B) is column-major
// C^T = op(B)^T op(A)^T: swap the operands (and m with n), keep each operand's
// own transpose flag. No data moves.
//
// Precision (dlfs/backend.h, enum dlfs_precision):
//   fp32  cublasSgemm, default math (no tensor cores; the strict baseline);
//   tf32  cublasSgemm with CUBLAS_TF32_TENSOR_OP_MATH: cuBLAS feeds the fp32
//         operands to TF32 tensor cores and does its own rounding of the low 13
//         mantissa bits (the CPU twin rounds to nearest even: agreement to ~1e-3);
//   bf16  both operands rounded to bf16 by our kernel (src/backend/lowp.h, the
//         very function the CPU emulation uses) into packed scratch, then
//         cublasGemmEx(bf16 x bf16 -> fp32 C, CUBLAS_COMPUTE_32F). C stays fp32, so
//         beta accumulation (gradients) and everything downstream is unchanged:
//         weights, gradients and optimizer state are fp32 master copies.
#include <stdio.h>
#include "backend/cuda/cuda-impl.cuh"
#include "backend/lowp.h"

// ---- bf16 operand scratch -------------------------------------------------------
//
// Two grow-on-demand device buffers (A and B operands), owned by the backend for
// the life of the process. A buffer that is outgrown is left allocated, never
// freed: a CUDA graph captured earlier may still point at it (e.g. training steps
// captured at batch 128, then evaluation at 1000 rows grows the scratch). Sizes
// are powers of two from 1 Mi elements, so the waste is at most the live size.
struct bf16_scratch_ {
    uint16_t *p;
    size_t cap; // elements
};
static bf16_scratch_ scratch_[2];

static uint16_t *scratch_get_(int slot, size_t n)
{
    bf16_scratch_ *s = &scratch_[slot];
    if (n <= s->cap) return s->p;
    cudaStreamCaptureStatus cap = cudaStreamCaptureStatusNone;
    CUDA_CHECK(cudaStreamIsCapturing(cuda_ctx_.stream, &cap));
    DLFS_ASSERT_MSG(cap == cudaStreamCaptureStatusNone,
                    "the bf16 GEMM scratch cannot grow during CUDA graph capture: run the work to be "
                    "captured once eagerly first, so that the scratch already has its size");
    size_t want = (size_t)1 << 20;
    while (want < n) want <<= 1;
    void *p = nullptr;
    if (cudaMalloc(&p, want * sizeof(uint16_t)) != cudaSuccess) {
        cudaGetLastError();
        char msg[160];
        snprintf(msg, sizeof msg, "out of GPU memory for %zu MiB of bf16 GEMM scratch: use a smaller --batch",
                 want * sizeof(uint16_t) >> 20);
        dlfs_assert_fail("cudaMalloc(bf16 scratch)", __FILE__, __LINE__, msg);
    }
    s->p = (uint16_t *)p;
    s->cap = want;
    return s->p;
}

// dst[i] = bf16(src[i]) over n contiguous floats, four at a time (16-byte loads,
// 8-byte stores). Needs n % 4 == 0 and src 16-byte aligned; dst is scratch (256).
__global__ void to_bf16_vec4_(uint2 *__restrict__ dst, const float4 *__restrict__ src, size_t n4)
{
    CUDA_GRID_STRIDE(i, n4) {
        const float4 v = src[i];
        uint2 o; // element 0 at the lower address: the low half (little endian)
        o.x = (uint32_t)dlfs_bf16_bits(v.x) | (uint32_t)dlfs_bf16_bits(v.y) << 16;
        o.y = (uint32_t)dlfs_bf16_bits(v.z) | (uint32_t)dlfs_bf16_bits(v.w) << 16;
        dst[i] = o;
    }
}

// dst(rows, cols) packed = bf16(src(rows, cols) with leading dimension ld).
__global__ void to_bf16_2d_(uint16_t *__restrict__ dst, const float *__restrict__ src, int rows, int cols,
                            int ld)
{
    const size_t n = (size_t)rows * cols;
    CUDA_GRID_STRIDE(i, n) {
        const size_t r = i / (size_t)cols, c = i - r * (size_t)cols;
        dst[i] = dlfs_bf16_bits(src[r * (size_t)ld + c]);
    }
}

// The stored matrix x(rows, cols), leading dimension ld, rounded into scratch `slot`
// packed (leading dimension cols). Ordered on the stream like every op.
static const uint16_t *to_bf16_(int slot, const float *x, int rows, int cols, int ld)
{
    const size_t n = (size_t)rows * cols;
    uint16_t *d = scratch_get_(slot, n);
    const unsigned threads = 256;
    if (ld == cols && n % 4 == 0 && ((uintptr_t)x & 15) == 0) {
        to_bf16_vec4_<<<cuda_grid_(n / 4, threads), threads, 0, cuda_ctx_.stream>>>(
            (uint2 *)d, (const float4 *)x, n / 4);
    } else {
        to_bf16_2d_<<<cuda_grid_(n, threads), threads, 0, cuda_ctx_.stream>>>(d, x, rows, cols, ld);
    }
    CUDA_LAUNCH_CHECK();
    return d;
}

// ---- the op ---------------------------------------------------------------------

void cuda_gemm(bool trans_a, bool trans_b, int m, int n, int k, float alpha, const float *a, int lda,
               const float *b, int ldb, float beta, float *c, int ldc)
{
    if (m <= 0 || n <= 0) return; // nothing to write (cuBLAS would return too)
    const cublasOperation_t op_a = trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
    const cublasOperation_t op_b = trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
    if (cuda_ctx_.precision == DLFS_PRECISION_BF16 && k > 0) {
        // stored shapes: A is (m, k) or (k, m) transposed; B is (k, n) or (n, k)
        const int ar = trans_a ? k : m, ac = trans_a ? m : k;
        const int br = trans_b ? n : k, bc = trans_b ? k : n;
        const uint16_t *a16 = to_bf16_(0, a, ar, ac, lda);
        const uint16_t *b16 = to_bf16_(1, b, br, bc, ldb);
        CUBLAS_CHECK(cublasGemmEx(cuda_ctx_.blas, op_b, op_a, n, m, k, &alpha, b16, CUDA_R_16BF, bc, a16,
                                  CUDA_R_16BF, ac, &beta, c, CUDA_R_32F, ldc, CUBLAS_COMPUTE_32F,
                                  CUBLAS_GEMM_DEFAULT));
        return;
    }
    // fp32 and tf32 (the handle's math mode); also bf16 with k == 0 (C = beta C)
    CUBLAS_CHECK(cublasSgemm(cuda_ctx_.blas, op_b, op_a, n, m, k, &alpha, b, ldb, a, lda, &beta, c, ldc));
}

// The math mode is a property of the handle: set once here, not per call, so the
// hot path stays one cuBLAS call. TF32 keeps fp32 storage and range but rounds the
// GEMM inputs to a 10-bit mantissa (~1e-3 relative) for ~8x the throughput on H100.
// bf16 GEMMs use tensor cores whatever the mode; their k == 0 fallback is fp32.
void cuda_apply_math_mode_(void)
{
    if (cuda_ctx_.device < 0) return; // applied by dlfs_cuda_init_
    cublasMath_t mode =
        cuda_ctx_.precision == DLFS_PRECISION_TF32 ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH;
    CUBLAS_CHECK(cublasSetMathMode(cuda_ctx_.blas, mode));
}

void cuda_set_precision(enum dlfs_precision p)
{
    DLFS_ASSERT_MSG((unsigned)p < DLFS_PRECISION_COUNT, "unknown precision");
    cuda_ctx_.precision = (int)p;
    cuda_apply_math_mode_();
}
