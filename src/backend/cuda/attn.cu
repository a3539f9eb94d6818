// Causal self-attention on the GPU (twin of src/backend/cpu/attn.c): per sequence,
// cuBLAS strided-batched GEMMs over the heads (head h's q, k, v are hs columns
// apart in each row) around a masked-softmax kernel (one warp per row of
// scores, fixed shuffle tree: reproducible bits). fp32 GEMMs, or TF32 when the
// handle's math mode says so (as every other GEMM).
#include "backend/cuda/cuda-impl.cuh"

// Row-major C(m, n) = alpha op(A)(m, k) op(B)(k, n) + beta C, `count` times with
// the given strides (column-major cuBLAS on the transposed problem, as cuda_gemm).
static void gemm_batched_(bool ta, bool tb, int m, int n, int k, float alpha, const float *a, int lda, long long sa,
                          const float *b, int ldb, long long sb, float beta, float *c, int ldc, long long sc, int count)
{
    CUBLAS_CHECK(cublasSgemmStridedBatched(cuda_ctx_.blas, tb ? CUBLAS_OP_T : CUBLAS_OP_N, ta ? CUBLAS_OP_T : CUBLAS_OP_N,
                                           n, m, k, &alpha, b, ldb, sb, a, lda, sa, &beta, c, ldc, sc, count));
}

__device__ __forceinline__ float warp_max_(float v)
{
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}
__device__ __forceinline__ double warp_sum_(double v)
{
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

// One warp per row (b, h, t) of att: softmax over s <= t in place, 0 beyond.
__global__ void causal_softmax_k_(float *att, size_t nrows, int T)
{
    const size_t w = (blockIdx.x * (size_t)blockDim.x + threadIdx.x) / 32;
    const int lane = threadIdx.x % 32;
    if (w >= nrows) return;
    const int t = (int)(w % (size_t)T);
    float *row = att + w * (size_t)T, mx = -INFINITY;
    for (int s = lane; s <= t; s += 32) mx = fmaxf(mx, row[s]);
    mx = warp_max_(mx);
    double sum = 0;
    for (int s = lane; s <= t; s += 32) sum += (row[s] = expf(row[s] - mx));
    const float inv = (float)(1.0 / warp_sum_(sum));
    for (int s = lane; s < T; s += 32) row[s] = s <= t ? __fmul_rn(row[s], inv) : 0.0f;
}

// dS = P (dP - sum P dP) in place of dP, 0 beyond s = t.
__global__ void causal_softmax_bwd_k_(const float *att, float *datt, size_t nrows, int T)
{
    const size_t w = (blockIdx.x * (size_t)blockDim.x + threadIdx.x) / 32;
    const int lane = threadIdx.x % 32;
    if (w >= nrows) return;
    const int t = (int)(w % (size_t)T);
    const float *p = att + w * (size_t)T;
    float *d = datt + w * (size_t)T;
    double dot = 0;
    for (int s = lane; s <= t; s += 32) dot += (double)p[s] * d[s];
    const float df = (float)warp_sum_(dot);
    for (int s = lane; s < T; s += 32) d[s] = s <= t ? __fmul_rn(p[s], __fsub_rn(d[s], df)) : 0.0f;
}

static void softmax_launch_(const float *att, float *x, size_t nrows, int T, bool bwd)
{
    const unsigned threads = 256, blocks = (unsigned)((nrows * 32 + threads - 1) / threads);
    if (bwd) causal_softmax_bwd_k_<<<blocks, threads, 0, cuda_ctx_.stream>>>(att, x, nrows, T);
    else causal_softmax_k_<<<blocks, threads, 0, cuda_ctx_.stream>>>(x, nrows, T);
    CUDA_LAUNCH_CHECK();
}

void cuda_attn_fwd(int B, int T, int C, int nh, const float *qkv, float *att, float *y)
{
    const int hs = C / nh, ld = 3 * C;
    const float scale = 1.0f / sqrtf((float)hs);
    const long long tt = (long long)T * T;
    for (int b = 0; b < B; b++) {
        const float *q = qkv + (size_t)b * T * ld;
        gemm_batched_(false, true, T, T, hs, scale, q, ld, hs, q + C, ld, hs, 0.0f, att + (size_t)b * nh * tt, T, tt,
                      nh);
    }
    softmax_launch_(NULL, att, (size_t)B * nh * T, T, false);
    for (int b = 0; b < B; b++) {
        const float *v = qkv + (size_t)b * T * ld + 2 * C;
        gemm_batched_(false, false, T, hs, T, 1.0f, att + (size_t)b * nh * tt, T, tt, v, ld, hs, 0.0f,
                      y + (size_t)b * T * C, C, hs, nh);
    }
}

void cuda_attn_bwd(int B, int T, int C, int nh, const float *qkv, const float *att, const float *dy, float *datt,
                   float *dqkv)
{
    const int hs = C / nh, ld = 3 * C;
    const float scale = 1.0f / sqrtf((float)hs);
    const long long tt = (long long)T * T;
    for (int b = 0; b < B; b++) {
        const float *q = qkv + (size_t)b * T * ld, *g = dy + (size_t)b * T * C, *P = att + (size_t)b * nh * tt;
        float *dq = dqkv + (size_t)b * T * ld, *dS = datt + (size_t)b * nh * tt;
        gemm_batched_(false, true, T, T, hs, 1.0f, g, C, hs, q + 2 * C, ld, hs, 0.0f, dS, T, tt, nh); // dP = dY V^T
        gemm_batched_(true, false, T, hs, T, 1.0f, P, T, tt, g, C, hs, 0.0f, dq + 2 * C, ld, hs, nh); // dV = P^T dY
    }
    softmax_launch_(att, datt, (size_t)B * nh * T, T, true);
    for (int b = 0; b < B; b++) {
        const float *q = qkv + (size_t)b * T * ld, *dS = datt + (size_t)b * nh * tt;
        float *dq = dqkv + (size_t)b * T * ld;
        gemm_batched_(false, false, T, hs, T, scale, dS, T, tt, q + C, ld, hs, 0.0f, dq, ld, hs, nh);  // dQ = dS K
        gemm_batched_(true, false, T, hs, T, scale, dS, T, tt, q, ld, hs, 0.0f, dq + C, ld, hs, nh);   // dK = dS^T Q
    }
}
