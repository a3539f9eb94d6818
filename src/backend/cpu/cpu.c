/* The CPU backend: OpenBLAS for GEMM, plain C loops for the rest. Memory is host
 * memory, so transfers are memcpy and sync is a no-op. */
#include <stdlib.h>
#include <string.h>
#include <cblas.h>
#include "backend/cpu/cpu-impl.h"
#include "dlfs/util.h"

static void *alloc_(size_t bytes)
{
    /* 64-byte aligned for vector loads; zero-filled as the table promises */
    size_t n = (bytes + 63) / 64 * 64;
    void *p = aligned_alloc(64, n ? n : 64);
    if (p) memset(p, 0, n ? n : 64);
    return p;
}
static void free_(void *p) { free(p); }
/* Copies of 512 KiB and up that do not overlap are split across the rank's threads
 * (the residual add's backward copies its 6 MiB gradient to both branches in
 * resnet20 at batch 128); a copy is the same bytes whatever the split. */
struct copy_job_ {
    char *dst;
    const char *src;
};
static void copy_part_(void *arg, size_t lo, size_t hi)
{
    const struct copy_job_ *j = arg;
    memcpy(j->dst + lo, j->src + lo, hi - lo);
}
static void memcpy_(void *dst, const void *src, size_t bytes)
{
    char *d = dst;
    const char *s = src;
    if (bytes >= ((size_t)1 << 19) && (d + bytes <= s || s + bytes <= d)) {
        struct copy_job_ j = {d, s};
        cpu_parallel_for(bytes, (size_t)1 << 18, copy_part_, &j);
    } else if (bytes) {
        memmove(dst, src, bytes);
    }
}
static void sync_(void) {}
static void fill_(float *x, float v, size_t n)
{
    for (size_t i = 0; i < n; i++) x[i] = v;
}
/* axpy and add over the rank's threads when large (the residual add and the
 * gradients it sends to both branches: 1.6 M values a layer in resnet20 at batch
 * 128), element by element: the same bits whatever the split. */
#define GRAIN_ ((size_t)1 << 16)
struct vec_job_ {
    float alpha;
    const float *a, *b;
    float *y;
};
static void axpy_part_(void *arg, size_t lo, size_t hi)
{
    const struct vec_job_ *j = arg;
    for (size_t i = lo; i < hi; i++) j->y[i] += j->alpha * j->a[i];
}
static void axpy_(size_t n, float alpha, const float *x, float *y)
{
    struct vec_job_ j = {.alpha = alpha, .a = x, .y = y};
    cpu_parallel_for(n, GRAIN_, axpy_part_, &j);
}
static void mul_(size_t n, const float *x, float *y)
{
    for (size_t i = 0; i < n; i++) y[i] *= x[i];
}
static void add_part_(void *arg, size_t lo, size_t hi)
{
    const struct vec_job_ *j = arg;
    for (size_t i = lo; i < hi; i++) j->y[i] = j->a[i] + j->b[i];
}
static void add_(size_t n, const float *a, const float *b, float *y)
{
    struct vec_job_ j = {.a = a, .b = b, .y = y};
    cpu_parallel_for(n, GRAIN_, add_part_, &j);
}
static void dropout_fwd_(const float *x, float *y, float *mask, int rows, int cols, float rate, uint64_t key,
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
static void scale_(size_t n, float alpha, float *x)
{
    for (size_t i = 0; i < n; i++) x[i] *= alpha;
}

static void set_threads_(int n) { openblas_set_num_threads(n); }

static const struct dlfs_backend cpu_backend_ = {
    .name = "cpu",
    .host_memory = true,
    .alloc = alloc_,
    .free = free_,
    .to_device = memcpy_,
    .to_host = memcpy_,
    .copy = memcpy_,
    .sync = sync_,
    .fill = fill_,
    .gemm = cpu_gemm,
    .bias_act_fwd = cpu_bias_act_fwd,
    .act_bwd = cpu_act_bwd,
    .colsum = cpu_colsum,
    .softmax_xent = cpu_softmax_xent,
    .normalize_u8 = cpu_normalize_u8,
    .axpy = axpy_,
    .scale = scale_,
    .sgd_update = cpu_sgd_update,
    .adam_update = cpu_adam_update,
    .sgd_update_dev = cpu_sgd_update_dev,
    .adam_update_dev = cpu_adam_update_dev,
    .conv2d_fwd = cpu_conv2d_fwd,
    .conv2d_bwd = cpu_conv2d_bwd,
    .maxpool_fwd = cpu_maxpool_fwd,
    .maxpool_bwd = cpu_maxpool_bwd,
    .dropout_fwd = dropout_fwd_,
    .mul = mul_,
    .add = add_,
    .gap_fwd = cpu_gap_fwd,
    .gap_bwd = cpu_gap_bwd,
    .batchnorm_fwd = cpu_batchnorm_fwd,
    .batchnorm_bwd = cpu_batchnorm_bwd,
    .embed_fwd = cpu_embed_fwd,
    .embed_bwd = cpu_embed_bwd,
    .take_ids = cpu_take_ids,
    .layernorm_fwd = cpu_layernorm_fwd,
    .layernorm_bwd = cpu_layernorm_bwd,
    .attn_fwd = cpu_attn_fwd,
    .attn_bwd = cpu_attn_bwd,
    .set_precision = cpu_set_precision,
    .set_threads = set_threads_,
    .gemm_account = cpu_gemm_account,
    .gemm_rows = cpu_gemm_rows,
    .gather_u8 = cpu_gather_u8,
    /* host memory already: no pinned staging, no async copies, no graphs */
};

const struct dlfs_backend *dlfs_backend_cpu(void) { return &cpu_backend_; }
