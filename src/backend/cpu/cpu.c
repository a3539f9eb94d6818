/* The CPU backend: OpenBLAS for GEMM, plain C loops for the rest. Memory is host
 * memory, so transfers are memcpy and sync is a no-op. */
#include <stdlib.h>
#include <string.h>
#include <cblas.h>
#include "backend/cpu/cpu-impl.h"
#include "dlfs/util.h"

static void *cpu_alloc(size_t bytes)
{
    /* 64-byte aligned for vector loads; zero-filled as the table promises */
    size_t n = (bytes + 63) / 64 * 64;
    void *p = aligned_alloc(64, n ? n : 64);
    if (p) memset(p, 0, n ? n : 64);
    return p;
}
static void cpu_free(void *p) { free(p); }
static void cpu_memcpy(void *dst, const void *src, size_t bytes)
{
    if (bytes) memmove(dst, src, bytes);
}
static void cpu_sync(void) {}
static void cpu_fill(float *x, float v, size_t n)
{
    for (size_t i = 0; i < n; i++) x[i] = v;
}
static void cpu_axpy(size_t n, float alpha, const float *x, float *y)
{
    for (size_t i = 0; i < n; i++) y[i] += alpha * x[i];
}
static void cpu_mul(size_t n, const float *x, float *y)
{
    for (size_t i = 0; i < n; i++) y[i] *= x[i];
}
static void cpu_dropout_fwd(const float *x, float *y, float *mask, int rows, int cols, float rate, uint64_t key,
                            const uint32_t *ids)
{
    const float keep = 1.0f / (1.0f - rate);
    for (int r = 0; r < rows; r++) {
        const uint64_t rk = dlfs_hash64(key, ids[r]);
        const size_t o = (size_t)r * cols;
        for (int j = 0; j < cols; j++) {
            mask[o + j] = dlfs_uniform01(rk, (uint64_t)j) >= rate ? keep : 0.0f;
            y[o + j] = x[o + j] * mask[o + j];
        }
    }
}
static void cpu_scale(size_t n, float alpha, float *x)
{
    for (size_t i = 0; i < n; i++) x[i] *= alpha;
}

void cpu_normalize_u8(float *dst, const uint8_t *src, size_t n, int channels, size_t plane,
                      const double *mean, const double *std)
{
    for (int ch = 0; ch < channels; ch++) {
        /* (x/255 - mean)/std == x * s + o */
        const float s = (float)(1.0 / (255.0 * std[ch]));
        const float o = (float)(-mean[ch] / std[ch]);
        for (size_t i = 0; i < n; i++) {
            const uint8_t *sp = src + (i * channels + ch) * plane;
            float *dp = dst + (i * channels + ch) * plane;
            for (size_t j = 0; j < plane; j++) dp[j] = (float)sp[j] * s + o;
        }
    }
}

static void cpu_set_threads(int n) { openblas_set_num_threads(n); }

static const struct dlfs_backend cpu_backend_ = {
    .name = "cpu",
    .host_memory = true,
    .alloc = cpu_alloc,
    .free = cpu_free,
    .to_device = cpu_memcpy,
    .to_host = cpu_memcpy,
    .copy = cpu_memcpy,
    .sync = cpu_sync,
    .fill = cpu_fill,
    .gemm = cpu_gemm,
    .bias_act_fwd = cpu_bias_act_fwd,
    .act_bwd = cpu_act_bwd,
    .colsum = cpu_colsum,
    .softmax_xent = cpu_softmax_xent,
    .normalize_u8 = cpu_normalize_u8,
    .axpy = cpu_axpy,
    .scale = cpu_scale,
    .sgd_update = cpu_sgd_update,
    .adam_update = cpu_adam_update,
    .sgd_update_dev = cpu_sgd_update_dev,
    .adam_update_dev = cpu_adam_update_dev,
    .conv2d_fwd = cpu_conv2d_fwd,
    .conv2d_bwd = cpu_conv2d_bwd,
    .maxpool_fwd = cpu_maxpool_fwd,
    .maxpool_bwd = cpu_maxpool_bwd,
    .dropout_fwd = cpu_dropout_fwd,
    .mul = cpu_mul,
    .batchnorm_fwd = cpu_batchnorm_fwd,
    .batchnorm_bwd = cpu_batchnorm_bwd,
    .set_precision = cpu_set_precision,
    .set_threads = cpu_set_threads,
    .gather_u8 = cpu_gather_u8,
    /* host memory already: no pinned staging, no async copies, no graphs */
};

const struct dlfs_backend *dlfs_backend_cpu(void) { return &cpu_backend_; }
