// Batch normalisation on the GPU (the twin of src/backend/cpu/norm.c).
//
// Training: one block per (channel, group) computes the group's mean and biased
// variance in two passes with double partial sums and a fixed-order tree
// (reduce.cuh), then normalises its own elements. No float atomics anywhere: the
// per-group values that several groups add into one place (running statistics,
// dgamma, dbeta) go to a small scratch and a second kernel adds them in group
// order, as the CPU does. Results are reproducible bit for bit run to run, and
// agree with the CPU to float rounding of the double sums.
//
// __fmul_rn/__fadd_rn/__fsub_rn where the CPU computes in float: they forbid the
// FMA contractions nvcc would make, so xhat, z and dx round like the CPU's.
#include "backend/cuda/act.cuh"
#include "backend/cuda/cuda-impl.cuh"
#include "backend/cuda/reduce.cuh"

// Per-group partial results (groups, 2c), grown on demand and kept for the life of
// the process. Stream-ordered (cudaFreeAsync/cudaMallocAsync on the op stream):
// kernels queued before still read the old buffer, the new one is ready for the
// kernels queued after, and the host never waits for the device (cudaFree and
// cudaMalloc synchronise it, in the middle of a training step). The first
// allocation is generous (256 KiB: 64 groups of 512 channels) so that it never
// grows in practice: a captured CUDA graph keeps the address it was captured
// with, and a regrowth would leave it pointing at freed memory.
#define BN_PART_MIN_FLOATS ((size_t)64 * 1024)
static float *bn_part_;
static size_t bn_part_cap_;
static float *bn_part_get_(size_t floats)
{
    if (floats > bn_part_cap_) {
        cudaStreamCaptureStatus cap = cudaStreamCaptureStatusNone;
        CUDA_CHECK(cudaStreamIsCapturing(cuda_ctx_.stream, &cap));
        DLFS_ASSERT_MSG(cap == cudaStreamCaptureStatusNone,
                        "batchnorm scratch must not grow inside a CUDA graph capture");
        int pools = 0; // stream-ordered allocation needs memory-pool support (not every vGPU has it)
        CUDA_CHECK(cudaDeviceGetAttribute(&pools, cudaDevAttrMemoryPoolsSupported, cuda_ctx_.device));
        if (floats < BN_PART_MIN_FLOATS) floats = BN_PART_MIN_FLOATS;
        void *p = nullptr;
        if (pools) {
            if (bn_part_) CUDA_CHECK(cudaFreeAsync(bn_part_, cuda_ctx_.stream));
            CUDA_CHECK(cudaMallocAsync(&p, floats * sizeof(float), cuda_ctx_.stream));
        } else { // cudaFree waits for the device: no queued kernel still reads the old buffer
            if (bn_part_) CUDA_CHECK(cudaFree(bn_part_));
            CUDA_CHECK(cudaMalloc(&p, floats * sizeof(float)));
        }
        bn_part_ = static_cast<float *>(p);
        bn_part_cap_ = floats;
    }
    return bn_part_;
}

// Element e of (channel ch, rows g0..g0+rows) in x(n, c, plane).
__device__ __forceinline__ size_t bn_at_(size_t e, size_t plane, size_t img, int g0, int ch)
{
    return ((size_t)g0 + e / plane) * img + (size_t)ch * plane + e % plane;
}

// grid (groups, c), REDUCE_THREADS threads. part(groups, 2c): the group's mean and
// unbiased variance (for the running statistics). x may alias nothing written.
template <int ACT>
__global__ void bn_fwd_train_k(int n, int c, int plane, int group, const float *__restrict__ x,
                               const float *__restrict__ gamma, const float *__restrict__ beta, float eps,
                               float *__restrict__ xhat, float *__restrict__ invstd, float *z, float *a,
                               float *__restrict__ part)
{
    __shared__ double sh[REDUCE_THREADS];
    const int ch = blockIdx.y, gi = blockIdx.x, g0 = gi * group;
    const int rows = n - g0 < group ? n - g0 : group;
    const size_t pl = (size_t)plane, img = (size_t)c * pl, cnt = (size_t)rows * pl;
    double s = 0.0;
    for (size_t e = threadIdx.x; e < cnt; e += REDUCE_THREADS) s += x[bn_at_(e, pl, img, g0, ch)];
    const double mean = block_sum_(s, sh) / (double)cnt;
    double s2 = 0.0;
    for (size_t e = threadIdx.x; e < cnt; e += REDUCE_THREADS) {
        const double d = x[bn_at_(e, pl, img, g0, ch)] - mean;
        s2 += d * d;
    }
    s2 = block_sum_(s2, sh);
    const double var = s2 / (double)cnt;
    const float is = (float)(1.0 / sqrt(var + eps)), mu = (float)mean;
    if (threadIdx.x == 0) {
        invstd[(size_t)gi * c + ch] = is;
        part[(size_t)gi * 2 * c + ch] = (float)mean;
        part[(size_t)gi * 2 * c + c + ch] = (float)(cnt > 1 ? s2 / (double)(cnt - 1) : var);
    }
    const float ga = gamma[ch], be = beta[ch];
    for (size_t e = threadIdx.x; e < cnt; e += REDUCE_THREADS) {
        const size_t i = bn_at_(e, pl, img, g0, ch);
        const float h = __fmul_rn(__fsub_rn(x[i], mu), is);
        const float v = __fadd_rn(__fmul_rn(ga, h), be);
        xhat[i] = h;
        z[i] = v;
        a[i] = act_f<ACT>(v);
    }
}

// Evaluation: the running statistics, elementwise.
template <int ACT>
__global__ void bn_fwd_eval_k(size_t total, int c, size_t plane, const float *__restrict__ x,
                              const float *__restrict__ gamma, const float *__restrict__ beta,
                              const float *__restrict__ run_mean, const float *__restrict__ run_var, float eps,
                              float *z, float *a)
{
    CUDA_GRID_STRIDE(i, total)
    {
        const int ch = (int)(i / plane % (size_t)c);
        const float is = 1.0f / sqrtf(__fadd_rn(run_var[ch], eps)); // IEEE sqrt and division (no fast math)
        const float h = __fmul_rn(__fsub_rn(x[i], run_mean[ch]), is);
        const float v = __fadd_rn(__fmul_rn(gamma[ch], h), beta[ch]);
        z[i] = v;
        a[i] = act_f<ACT>(v);
    }
}

// lo[j] (j < c) and hi[j - c] (j >= c) = (acc ? their value : 0) + part[0][j] +
// part[1][j] + ..., groups in order: what the CPU's per-group `+=` computes.
__global__ void bn_add_groups_k(float *lo, float *hi, const float *__restrict__ part, int c, int groups, int acc)
{
    CUDA_GRID_STRIDE(j, (size_t)2 * c)
    {
        float *dst = j < (size_t)c ? lo + j : hi + (j - c);
        float v = acc ? *dst : 0.0f;
        for (int gi = 0; gi < groups; gi++) v += part[(size_t)gi * 2 * c + j];
        *dst = v;
    }
}

// grid (groups, c): the group's sums of dz and dz * xhat into part(groups, 2c)
// (dbeta's then dgamma's), and dx unless NULL. dx may alias dz: every block reads
// all of its elements (the sums) before it writes any.
__global__ void bn_bwd_k(int n, int c, int plane, int group, const float *dz, const float *__restrict__ xhat,
                         const float *__restrict__ invstd, const float *__restrict__ gamma, float *dx,
                         float *__restrict__ part)
{
    __shared__ double sh[REDUCE_THREADS];
    const int ch = blockIdx.y, gi = blockIdx.x, g0 = gi * group;
    const int rows = n - g0 < group ? n - g0 : group;
    const size_t pl = (size_t)plane, img = (size_t)c * pl, cnt = (size_t)rows * pl;
    double sd = 0.0, sdh = 0.0;
    for (size_t e = threadIdx.x; e < cnt; e += REDUCE_THREADS) {
        const size_t i = bn_at_(e, pl, img, g0, ch);
        sd += dz[i];
        sdh += (double)dz[i] * xhat[i];
    }
    sd = block_sum_(sd, sh);
    sdh = block_sum_(sdh, sh);
    if (threadIdx.x == 0) {
        part[(size_t)gi * 2 * c + ch] = (float)sd;
        part[(size_t)gi * 2 * c + c + ch] = (float)sdh;
    }
    if (!dx) return; // uniform across the block, and after the last __syncthreads
    // dx = gamma * invstd * (dz - mean(dz) - xhat * mean(dz * xhat))
    const float k = __fmul_rn(gamma[ch], invstd[(size_t)gi * c + ch]);
    const float md = (float)(sd / (double)cnt), mdh = (float)(sdh / (double)cnt);
    for (size_t e = threadIdx.x; e < cnt; e += REDUCE_THREADS) {
        const size_t i = bn_at_(e, pl, img, g0, ch);
        dx[i] = __fmul_rn(k, __fsub_rn(__fsub_rn(dz[i], md), __fmul_rn(xhat[i], mdh)));
    }
}

#define BN_ACT_SWITCH_(act, LAUNCH)                    \
    switch (act) {                                     \
    case DLFS_ACT_RELU: LAUNCH(DLFS_ACT_RELU); break;       \
    case DLFS_ACT_TANH: LAUNCH(DLFS_ACT_TANH); break;       \
    case DLFS_ACT_SIGMOID: LAUNCH(DLFS_ACT_SIGMOID); break; \
    case DLFS_ACT_GELU: LAUNCH(DLFS_ACT_GELU); break;       \
    default: LAUNCH(DLFS_ACT_NONE); break;                  \
    }

static int bn_groups_(int n, int *group)
{
    if (*group <= 0 || *group > n) *group = n;
    return (n + *group - 1) / *group;
}

// Grid of the per-(channel, group) kernels: groups on x (up to 2^31 - 1: a batch of
// many small groups), channels on y (at most 65535).
static dim3 bn_grid_(int c, int groups)
{
    DLFS_ASSERT_MSG(c <= 65535, "batchnorm: at most 65535 channels (grid y)");
    return dim3((unsigned)groups, (unsigned)c);
}

void cuda_batchnorm_fwd(int n, int c, int plane, int group, const float *x, const float *gamma, const float *beta,
                        const float *run_mean, const float *run_var, float eps, float *xhat, float *invstd,
                        float *z, float *a, enum dlfs_act act, float *stats)
{
    DLFS_ASSERT(n >= 0 && c > 0 && plane > 0 && (a != z || act == DLFS_ACT_NONE));
    if (!n) return;
    cudaStream_t st = cuda_ctx_.stream;
    if (run_mean) {
        const size_t total = (size_t)n * c * plane;
        const unsigned gr = cuda_grid_(total, REDUCE_THREADS);
#define BN_EVAL_(A)                                                                                     \
    bn_fwd_eval_k<A><<<gr, REDUCE_THREADS, 0, st>>>(total, c, (size_t)plane, x, gamma, beta, run_mean, run_var, \
                                                     eps, z, a)
        BN_ACT_SWITCH_(act, BN_EVAL_)
#undef BN_EVAL_
        CUDA_LAUNCH_CHECK();
        return;
    }
    const int groups = bn_groups_(n, &group);
    float *part = bn_part_get_((size_t)groups * 2 * c);
    const dim3 grid = bn_grid_(c, groups);
#define BN_TRAIN_(A) \
    bn_fwd_train_k<A><<<grid, REDUCE_THREADS, 0, st>>>(n, c, plane, group, x, gamma, beta, eps, xhat, invstd, z, a, part)
    BN_ACT_SWITCH_(act, BN_TRAIN_)
#undef BN_TRAIN_
    CUDA_LAUNCH_CHECK();
    if (stats) {
        bn_add_groups_k<<<cuda_grid_((size_t)2 * c, REDUCE_THREADS), REDUCE_THREADS, 0, st>>>(stats, stats + c, part, c,
                                                                                              groups, 1);
        CUDA_LAUNCH_CHECK();
    }
}

void cuda_batchnorm_bwd(int n, int c, int plane, int group, const float *dz, const float *xhat, const float *invstd,
                        const float *gamma, float *dgamma, float *dbeta, float *dx)
{
    DLFS_ASSERT(n >= 0 && c > 0 && plane > 0);
    cudaStream_t st = cuda_ctx_.stream;
    if (!n) { // nothing to sum: zero gradients, as the CPU's memset
        CUDA_CHECK(cudaMemsetAsync(dgamma, 0, (size_t)c * sizeof *dgamma, st));
        CUDA_CHECK(cudaMemsetAsync(dbeta, 0, (size_t)c * sizeof *dbeta, st));
        return;
    }
    const int groups = bn_groups_(n, &group);
    float *part = bn_part_get_((size_t)groups * 2 * c);
    bn_bwd_k<<<bn_grid_(c, groups), REDUCE_THREADS, 0, st>>>(n, c, plane, group, dz, xhat, invstd, gamma, dx,
                                                             part);
    CUDA_LAUNCH_CHECK();
    bn_add_groups_k<<<cuda_grid_((size_t)2 * c, REDUCE_THREADS), REDUCE_THREADS, 0, st>>>(dbeta, dgamma, part, c,
                                                                                          groups, 0);
    CUDA_LAUNCH_CHECK();
}
