// The language model's elementwise ops on the GPU (twins of src/backend/cpu/lm.c):
// embedding gather and its deterministic scatter-add, layer norm. No atomics:
// the embedding backward gives each column of the table to one thread, which
// walks the rows in increasing order; layer norm's dgamma/dbeta likewise walk
// the rows per column. Row statistics use the fixed-order block tree of
// reduce.cuh (double partials), so results are reproducible bit for bit.
#include "backend/cuda/cuda-impl.cuh"
#include "backend/cuda/reduce.cuh"

// the id of row r: sequence r / T, position r mod T, ld apart (rounded)
__device__ __forceinline__ size_t id_(const float *ids, int ld, size_t r, int T)
{
    return (size_t)(ids[(r / (size_t)T) * (size_t)ld + r % (size_t)T] + 0.5f);
}

__global__ void take_ids_k_(const float *x, int rows, int ld, int off, int n, int32_t *out)
{
    CUDA_GRID_STRIDE(i, (size_t)rows * n) {
        const size_t s = i / (size_t)n, j = i % (size_t)n;
        out[i] = (int32_t)(x[s * (size_t)ld + (size_t)off + j] + 0.5f);
    }
}

void cuda_take_ids(const float *x, int rows, int ld, int off, int n, int32_t *out)
{
    const size_t total = (size_t)rows * n;
    if (!total) return;
    take_ids_k_<<<cuda_grid_(total, 256), 256, 0, cuda_ctx_.stream>>>(x, rows, ld, off, n, out);
    CUDA_LAUNCH_CHECK();
}

__global__ void embed_fwd_k_(const float *tok, const float *pos, const float *ids, int ld, int rows, int T, int dim,
                             float *y)
{
    CUDA_GRID_STRIDE(i, (size_t)rows * dim) {
        const size_t r = i / (size_t)dim, j = i % (size_t)dim;
        const float e = tok[id_(ids, ld, r, T) * dim + j];
        y[i] = pos ? __fadd_rn(e, pos[(r % (size_t)T) * dim + j]) : e;
    }
}

void cuda_embed_fwd(const float *tok, const float *pos, const float *ids, int ld, int rows, int T, int dim, float *y)
{
    const size_t n = (size_t)rows * dim;
    if (!n) return;
    embed_fwd_k_<<<cuda_grid_(n, 256), 256, 0, cuda_ctx_.stream>>>(tok, pos, ids, ld, rows, T, dim, y);
    CUDA_LAUNCH_CHECK();
}

// One thread per column j of dtok: rows in increasing order (as the CPU).
__global__ void embed_bwd_tok_k_(const float *dy, const float *ids, int ld, int rows, int T, int dim, float *dtok)
{
    const int j = blockIdx.x * blockDim.x + threadIdx.x;
    if (j >= dim) return;
    for (int r = 0; r < rows; r++) {
        float *e = dtok + id_(ids, ld, (size_t)r, T) * dim + j;
        *e = __fadd_rn(*e, dy[(size_t)r * dim + j]);
    }
}

// One thread per (position t, column j) of dpos: the rows t, t + T, ... in order.
__global__ void embed_bwd_pos_k_(const float *dy, int rows, int T, int dim, float *dpos)
{
    CUDA_GRID_STRIDE(i, (size_t)T * dim) {
        const size_t t = i / (size_t)dim, j = i % (size_t)dim;
        float acc = dpos[i];
        for (size_t r = t; r < (size_t)rows; r += (size_t)T) acc = __fadd_rn(acc, dy[r * dim + j]);
        dpos[i] = acc;
    }
}

void cuda_embed_bwd(const float *dy, const float *ids, int ld, int rows, int T, int dim, int vocab, float *dtok,
                    float *dpos)
{
    (void)vocab;
    if (rows <= 0 || dim <= 0) return;
    embed_bwd_tok_k_<<<(dim + 127) / 128, 128, 0, cuda_ctx_.stream>>>(dy, ids, ld, rows, T, dim, dtok);
    CUDA_LAUNCH_CHECK();
    if (dpos) {
        embed_bwd_pos_k_<<<cuda_grid_((size_t)T * dim, 256), 256, 0, cuda_ctx_.stream>>>(dy, rows, T, dim, dpos);
        CUDA_LAUNCH_CHECK();
    }
}

// One block per row: mean and biased variance (two passes, double partials, fixed tree).
__global__ void layernorm_fwd_k_(int dim, const float *x, const float *gamma, const float *beta, float eps, float *y,
                                 float *mean, float *rstd)
{
    __shared__ double sh[REDUCE_THREADS];
    const size_t r = blockIdx.x;
    const float *xr = x + r * dim;
    double s = 0;
    for (int j = threadIdx.x; j < dim; j += REDUCE_THREADS) s += xr[j];
    const double m = block_sum_(s, sh) / dim;
    double q = 0;
    for (int j = threadIdx.x; j < dim; j += REDUCE_THREADS) q += (xr[j] - m) * (xr[j] - m);
    const double var = block_sum_(q, sh) / dim;
    const float mf = (float)m, rs = (float)(1.0 / sqrt(var + (double)eps));
    for (int j = threadIdx.x; j < dim; j += REDUCE_THREADS)
        y[r * dim + j] = __fadd_rn(__fmul_rn(__fmul_rn(__fsub_rn(xr[j], mf), rs), gamma[j]), beta[j]);
    if (threadIdx.x == 0) mean[r] = mf, rstd[r] = rs;
}

void cuda_layernorm_fwd(int rows, int dim, const float *x, const float *gamma, const float *beta, float eps, float *y,
                        float *mean, float *rstd)
{
    if (rows <= 0) return;
    layernorm_fwd_k_<<<rows, REDUCE_THREADS, 0, cuda_ctx_.stream>>>(dim, x, gamma, beta, eps, y, mean, rstd);
    CUDA_LAUNCH_CHECK();
}

__global__ void layernorm_dx_k_(int dim, const float *dy, const float *x, const float *mean, const float *rstd,
                                const float *gamma, float *dx)
{
    __shared__ double sh[REDUCE_THREADS];
    const size_t r = blockIdx.x;
    const float *xr = x + r * dim, *gr = dy + r * dim, m = mean[r], rs = rstd[r];
    double sg = 0, sgx = 0;
    for (int j = threadIdx.x; j < dim; j += REDUCE_THREADS) {
        const float xh = __fmul_rn(__fsub_rn(xr[j], m), rs), g = __fmul_rn(gr[j], gamma[j]);
        sg += g, sgx += (double)g * xh;
    }
    const float mg = (float)(block_sum_(sg, sh) / dim), mgx = (float)(block_sum_(sgx, sh) / dim);
    for (int j = threadIdx.x; j < dim; j += REDUCE_THREADS) {
        const float xh = __fmul_rn(__fsub_rn(xr[j], m), rs);
        dx[r * dim + j] = __fmul_rn(rs, __fsub_rn(__fsub_rn(__fmul_rn(gr[j], gamma[j]), mg), __fmul_rn(xh, mgx)));
    }
}

// One thread per column: dgamma = sum dy * xhat, dbeta = sum dy over the rows in order.
__global__ void layernorm_dparam_k_(int rows, int dim, const float *dy, const float *x, const float *mean,
                                    const float *rstd, float *dgamma, float *dbeta)
{
    const int j = blockIdx.x * blockDim.x + threadIdx.x;
    if (j >= dim) return;
    double a = 0, b = 0;
    for (int r = 0; r < rows; r++) {
        const float g = dy[(size_t)r * dim + j], xh = __fmul_rn(__fsub_rn(x[(size_t)r * dim + j], mean[r]), rstd[r]);
        a += (double)g * xh, b += g;
    }
    dgamma[j] = (float)a, dbeta[j] = (float)b;
}

void cuda_layernorm_bwd(int rows, int dim, const float *dy, const float *x, const float *mean, const float *rstd,
                        const float *gamma, float *dx, float *dgamma, float *dbeta)
{
    if (rows <= 0) return;
    if (dx) {
        layernorm_dx_k_<<<rows, REDUCE_THREADS, 0, cuda_ctx_.stream>>>(dim, dy, x, mean, rstd, gamma, dx);
        CUDA_LAUNCH_CHECK();
    }
    layernorm_dparam_k_<<<(dim + 127) / 128, 128, 0, cuda_ctx_.stream>>>(rows, dim, dy, x, mean, rstd, dgamma,
                                                                          dbeta);
    CUDA_LAUNCH_CHECK();
}
