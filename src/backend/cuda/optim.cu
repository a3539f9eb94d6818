// Optimizer updates over a whole parameter slab, ONE launch each (the twin of
// src/backend/cpu/optim.c; same formulas, PyTorch's SGD / Adam / AdamW).
//
// The update is purely memory-bound (Adam: 4 floats read, 3 written per
// parameter), so the work is in the loads: float4 when every slab is 16-byte
// aligned (cudaMalloc'd slabs are; a shard of one may not be), scalar otherwise,
// and the last n % 4 values handled by the same launch.
//
// The *_update_dev entries run the same kernels with the per-step values (lr,
// Adam's bias corrections) loaded from device memory at the start of each thread
// instead of passed by value, so that a recorded CUDA graph can hold the update.
// Adam's derived factors are then computed on the device: IEEE division and
// square root (nvcc's defaults, no --use_fast_math in this build) round exactly
// as the host's, so both entries give the same bits (tests/gpu/test_pipeline_ops).
#include <math.h>
#include <stdint.h>
#include "backend/cuda/cuda-impl.cuh"

#define OPT_THREADS 256

struct sgd_hp {
    float lr, wd, mu;
    bool nesterov;
};
struct adam_hp {
    float lr, b1, b2, eps, wd;
    float step; // lr / (1 - beta1^t)
    float rc2;  // 1 / sqrt(1 - beta2^t)
    bool decoupled;
};

template <bool MOM>
__device__ __forceinline__ void sgd_el(float &p, float g, float &m, const sgd_hp &h)
{
    float d = g + h.wd * p;
    if (MOM) {
        m = h.mu * m + d;
        d = h.nesterov ? d + h.mu * m : m;
    }
    p -= h.lr * d;
}

__device__ __forceinline__ void adam_el(float &p, float g, float &m, float &v, const adam_hp &h)
{
    if (h.decoupled) p -= h.lr * h.wd * p;
    else g += h.wd * p;
    m = h.b1 * m + (1.0f - h.b1) * g;
    v = h.b2 * v + (1.0f - h.b2) * g * g;
    p -= h.step * m / (sqrtf(v) * h.rc2 + h.eps);
}

// Number of leading values done four at a time (0 when not every pointer is aligned).
static size_t vec4_count_(size_t n, const void *a, const void *b, const void *c, const void *d)
{
    const uintptr_t bits = (uintptr_t)a | (uintptr_t)b | (uintptr_t)c | (uintptr_t)d;
    return bits % 16 == 0 ? n / 4 * 4 : 0;
}

template <bool MOM>
__global__ void sgd_k(size_t n, size_t n4, float *p, const float *g, float *m, sgd_hp h,
                      const dlfs_optim_dyn *__restrict__ dyn)
{
    if (dyn) h.lr = dyn->lr;
    CUDA_GRID_STRIDE(i, n4 / 4) {
        float4 P = reinterpret_cast<float4 *>(p)[i];
        const float4 G = reinterpret_cast<const float4 *>(g)[i];
        float4 M = MOM ? reinterpret_cast<float4 *>(m)[i] : make_float4(0, 0, 0, 0);
        sgd_el<MOM>(P.x, G.x, M.x, h);
        sgd_el<MOM>(P.y, G.y, M.y, h);
        sgd_el<MOM>(P.z, G.z, M.z, h);
        sgd_el<MOM>(P.w, G.w, M.w, h);
        reinterpret_cast<float4 *>(p)[i] = P;
        if (MOM) reinterpret_cast<float4 *>(m)[i] = M;
    }
    CUDA_GRID_STRIDE(j, n - n4) {
        const size_t i = n4 + j;
        float mi = MOM ? m[i] : 0.0f;
        sgd_el<MOM>(p[i], g[i], mi, h);
        if (MOM) m[i] = mi;
    }
}

__global__ void adam_k(size_t n, size_t n4, float *p, const float *g, float *m, float *v, adam_hp h,
                       const dlfs_optim_dyn *__restrict__ dyn)
{
    if (dyn) { // the same float arithmetic as the host side of cuda_adam_update
        h.lr = dyn->lr;
        h.step = h.lr / dyn->bias_c1;
        h.rc2 = 1.0f / sqrtf(dyn->bias_c2);
    }
    CUDA_GRID_STRIDE(i, n4 / 4) {
        float4 P = reinterpret_cast<float4 *>(p)[i], M = reinterpret_cast<float4 *>(m)[i];
        float4 V = reinterpret_cast<float4 *>(v)[i];
        const float4 G = reinterpret_cast<const float4 *>(g)[i];
        adam_el(P.x, G.x, M.x, V.x, h);
        adam_el(P.y, G.y, M.y, V.y, h);
        adam_el(P.z, G.z, M.z, V.z, h);
        adam_el(P.w, G.w, M.w, V.w, h);
        reinterpret_cast<float4 *>(p)[i] = P;
        reinterpret_cast<float4 *>(m)[i] = M;
        reinterpret_cast<float4 *>(v)[i] = V;
    }
    CUDA_GRID_STRIDE(j, n - n4) {
        const size_t i = n4 + j;
        adam_el(p[i], g[i], m[i], v[i], h);
    }
}

static void sgd_launch_(size_t n, float *p, const float *g, float *m, const struct dlfs_optim_hp *hp,
                        const struct dlfs_optim_dyn *dyn)
{
    if (!n) return;
    const sgd_hp h = {hp->lr, hp->weight_decay, hp->momentum, hp->nesterov};
    const size_t n4 = vec4_count_(n, p, g, m, nullptr);
    // size the grid for the float4 part when there is one (a quarter of the threads)
    const unsigned grid = cuda_grid_(n4 ? n4 / 4 : n, OPT_THREADS);
    if (m) sgd_k<true><<<grid, OPT_THREADS, 0, cuda_ctx_.stream>>>(n, n4, p, g, m, h, dyn);
    else sgd_k<false><<<grid, OPT_THREADS, 0, cuda_ctx_.stream>>>(n, n4, p, g, nullptr, h, dyn);
    CUDA_LAUNCH_CHECK();
}

static void adam_launch_(size_t n, float *p, const float *g, float *m, float *v, const struct dlfs_optim_hp *hp,
                         const struct dlfs_optim_dyn *dyn)
{
    if (!n) return;
    DLFS_ASSERT(m && v);
    // the same float arithmetic on the host as cpu_adam_update (with dyn: the kernel
    // redoes the first two from dyn, the same way)
    const adam_hp h = {hp->lr, hp->beta1, hp->beta2, hp->eps, hp->weight_decay, hp->lr / hp->bias_c1,
                       1.0f / sqrtf(hp->bias_c2), hp->decoupled};
    const size_t n4 = vec4_count_(n, p, g, m, v);
    const unsigned grid = cuda_grid_(n4 ? n4 / 4 : n, OPT_THREADS);
    adam_k<<<grid, OPT_THREADS, 0, cuda_ctx_.stream>>>(n, n4, p, g, m, v, h, dyn);
    CUDA_LAUNCH_CHECK();
}

void cuda_sgd_update(size_t n, float *p, const float *g, float *m, const struct dlfs_optim_hp *hp)
{
    sgd_launch_(n, p, g, m, hp, nullptr);
}

void cuda_adam_update(size_t n, float *p, const float *g, float *m, float *v, const struct dlfs_optim_hp *hp)
{
    adam_launch_(n, p, g, m, v, hp, nullptr);
}

void cuda_sgd_update_dev(size_t n, float *p, const float *g, float *m, const struct dlfs_optim_hp *hp,
                         const struct dlfs_optim_dyn *dyn)
{
    DLFS_ASSERT(dyn);
    sgd_launch_(n, p, g, m, hp, dyn);
}

void cuda_adam_update_dev(size_t n, float *p, const float *g, float *m, float *v, const struct dlfs_optim_hp *hp,
                          const struct dlfs_optim_dyn *dyn)
{
    DLFS_ASSERT(dyn);
    adam_launch_(n, p, g, m, v, hp, dyn);
}
