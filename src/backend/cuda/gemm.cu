// GEMM through cuBLAS (the twin of src/backend/cpu/gemm.c).
//
// cuBLAS is column-major; our tensors are row-major. A row-major (r, c) matrix
// with leading dimension ld is, byte for byte, its column-major transpose (c, r)
// with the same ld. So row-major C = op(A) op(B) is column-major
// C^T = op(B)^T op(A)^T: swap the operands (and m with n), keep each operand's
// own transpose flag. No data moves.
#include "backend/cuda/cuda-impl.cuh"

void cuda_gemm(bool trans_a, bool trans_b, int m, int n, int k, float alpha, const float *a, int lda,
               const float *b, int ldb, float beta, float *c, int ldc)
{
    if (m <= 0 || n <= 0) return; // nothing to write (cuBLAS would return too)
    CUBLAS_CHECK(cublasSgemm(cuda_ctx_.blas, trans_b ? CUBLAS_OP_T : CUBLAS_OP_N,
                             trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, n, m, k, &alpha, b, ldb, a, lda, &beta, c,
                             ldc));
}

// The math mode is a property of the handle: set once here, not per call, so the
// hot path stays one cuBLAS call. TF32 keeps fp32 storage and range but rounds the
// GEMM inputs to a 10-bit mantissa (~1e-3 relative) for ~8x the throughput on H100.
void cuda_apply_math_mode_(void)
{
    if (cuda_ctx_.device < 0) return; // applied by dlfs_cuda_init_
    cublasMath_t mode = cuda_ctx_.math_mode == 1 ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH;
    CUBLAS_CHECK(cublasSetMathMode(cuda_ctx_.blas, mode));
}

extern "C" void dlfs_cuda_set_math(int mode)
{
    DLFS_ASSERT_MSG(mode == 0 || mode == 1, "math mode 0 (fp32) or 1 (tf32)");
    cuda_ctx_.math_mode = mode;
    cuda_apply_math_mode_();
}
