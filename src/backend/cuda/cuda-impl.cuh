// Private declarations of the CUDA backend (one op family per .cu file, mirroring
// src/backend/cpu/). Only .cu files include this; C code sees the backend through
// the op table (dlfs/backend.h) and the extern "C" entry points listed at the end.
#ifndef DLFS_CUDA_IMPL_CUH
#define DLFS_CUDA_IMPL_CUH

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <stddef.h>
#include <stdint.h>

// The public headers carry their own extern "C" guards.
#include "dlfs/backend.h"
#include "dlfs/status.h"

// Process-wide state: the backend drives exactly one GPU per process (one rank,
// one device), selected once by dlfs_cuda_init_.
struct cuda_ctx {
    int device;            // -1 until initialised
    int sm_count;          // for sizing grid-stride launches
    cudaStream_t stream;   // every op runs here, in order (never the legacy stream)
    cublasHandle_t blas;   // bound to `stream`
    int precision;         // enum dlfs_precision of the GEMMs (gemm.cu, the table's set_precision)
    int debug_sync;        // DLFS_CUDA_SYNC=1: synchronise after every launch
};
extern struct cuda_ctx cuda_ctx_;

// One generic check for CUDA runtime and cuBLAS calls: prints the failed
// statement, the error name and string, rank, host and file:line, a hint where one
// exists, then ends the job (dlfs_assert_fail -> MPI_Abort). These are programming
// or hardware errors; recoverable ones (no GPU, out of memory in alloc) are handled
// at their call sites instead. The one exception, where it returns: a failure
// inside a CUDA graph recording that is already invalidated (cuda.cu).
void cuda_check_fail_(const char *stmt, const char *name, const char *str,
                      const char *file, int line);
#define DLFS_CHECK_GEN_(stmt, type, ok, name_fn, str_fn)                                  \
    do {                                                                                  \
        type dlfs_e_ = (stmt);                                                            \
        if (dlfs_e_ != (ok)) cuda_check_fail_(#stmt, name_fn(dlfs_e_), str_fn(dlfs_e_),   \
                                              __FILE__, __LINE__);                        \
    } while (0)
const char *cublas_status_name_(cublasStatus_t s);
#define CUDA_CHECK(stmt) DLFS_CHECK_GEN_(stmt, cudaError_t, cudaSuccess, cudaGetErrorName, cudaGetErrorString)
#define CUBLAS_CHECK(stmt) \
    DLFS_CHECK_GEN_(stmt, cublasStatus_t, CUBLAS_STATUS_SUCCESS, cublas_status_name_, cublasGetStatusString)
// After every kernel launch: launch-configuration errors now; with DLFS_CUDA_SYNC=1
// also faults inside the kernel, reported at the launch that caused them — except
// while the stream is being captured into a CUDA graph, where a synchronise is
// illegal (it would invalidate the capture) and nothing has run yet anyway.
void cuda_debug_sync_(void);
#define CUDA_LAUNCH_CHECK()                                \
    do {                                                   \
        CUDA_CHECK(cudaGetLastError());                    \
        if (cuda_ctx_.debug_sync) cuda_debug_sync_();      \
    } while (0)

// Grid-stride loop over [0, n) with a 64-bit index (slabs can exceed 2^31 floats).
#define CUDA_GRID_STRIDE(i, n) \
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < (n); i += (size_t)gridDim.x * blockDim.x)

// Grid for a grid-stride loop over n items with `threads` per block: enough blocks
// to fill the GPU a few times over, never more than the work needs.
static inline unsigned cuda_grid_(size_t n, unsigned threads)
{
    size_t blocks = (n + threads - 1) / threads;
    size_t cap = (size_t)cuda_ctx_.sm_count * 16;
    if (blocks > cap) blocks = cap;
    return blocks ? (unsigned)blocks : 1u;
}

// The ops (table entries), by family: gemm.cu, act.cu, loss.cu, optim.cu, vec.cu,
// conv.cu, pool.cu, norm.cu, lm.cu (embedding, layer norm), attn.cu.
void cuda_gemm(bool trans_a, bool trans_b, int m, int n, int k, float alpha, const float *a, int lda,
               const float *b, int ldb, float beta, float *c, int ldc);
void cuda_apply_math_mode_(void);
void cuda_set_precision(enum dlfs_precision p);
void cuda_bias_act_fwd(float *z, float *a, const float *bias, int rows, int cols, enum dlfs_act act);
void cuda_act_bwd(float *dz, const float *da, const float *z, const float *a, size_t n,
                  enum dlfs_act act);
void cuda_colsum(float *out, const float *x, int rows, int cols, float beta);
void cuda_softmax_xent(const float *logits, const int32_t *labels, int rows, int classes,
                       float grad_scale, float *dlogits, double *stats);
void cuda_fill(float *x, float v, size_t n);
void cuda_axpy(size_t n, float alpha, const float *x, float *y);
void cuda_scale(size_t n, float alpha, float *x);
void cuda_normalize_u8(float *dst, const uint8_t *src, size_t n, int channels, size_t plane,
                       const double *mean, const double *std);
void cuda_mul(size_t n, const float *x, float *y);
void cuda_add(size_t n, const float *a, const float *b, float *y);
void cuda_gap_fwd(int n, int c, int plane, const float *x, float *y);
void cuda_gap_bwd(int n, int c, int plane, const float *dy, float *dx);
void cuda_dropout_fwd(const float *x, float *y, float *mask, int rows, int cols, float rate, uint64_t key,
                      const uint32_t *ids);
void cuda_conv2d_fwd(const struct dlfs_conv_geom *g, int n, const float *x, const float *w, const float *b,
                     float *col, float *z, float *a, enum dlfs_act act);
void cuda_conv2d_bwd(const struct dlfs_conv_geom *g, int n, const float *x, const float *w, const float *dz,
                     float *col, float *dw, float *db, float *dx);
void cuda_maxpool_fwd(const struct dlfs_conv_geom *g, int n, const float *x, float *y, int32_t *arg);
void cuda_maxpool_bwd(const struct dlfs_conv_geom *g, int n, const float *dy, const int32_t *arg, float *dx);
void cuda_batchnorm_fwd(int n, int c, int plane, int group, const float *x, const float *gamma, const float *beta,
                        const float *run_mean, const float *run_var, float eps, float *xhat, float *invstd,
                        float *z, float *a, enum dlfs_act act, float *stats);
void cuda_batchnorm_bwd(int n, int c, int plane, int group, const float *dz, const float *xhat, const float *invstd,
                        const float *gamma, float *dgamma, float *dbeta, float *dx);
void cuda_take_ids(const float *x, int rows, int ld, int off, int n, int32_t *out);
void cuda_embed_fwd(const float *tok, const float *pos, const float *ids, int ld, int rows, int T, int dim, float *y);
void cuda_embed_bwd(const float *dy, const float *ids, int ld, int rows, int T, int dim, int vocab, float *dtok,
                    float *dpos);
void cuda_layernorm_fwd(int rows, int dim, const float *x, const float *gamma, const float *beta, float eps, float *y,
                        float *mean, float *rstd);
void cuda_layernorm_bwd(int rows, int dim, const float *dy, const float *x, const float *mean, const float *rstd,
                        const float *gamma, float *dx, float *dgamma, float *dbeta);
void cuda_attn_fwd(int B, int T, int C, int nh, const float *qkv, float *att, float *y);
void cuda_attn_bwd(int B, int T, int C, int nh, const float *qkv, const float *att, const float *dy, float *datt,
                   float *dqkv);
void cuda_sgd_update(size_t n, float *p, const float *g, float *m, const struct dlfs_optim_hp *hp);
void cuda_adam_update(size_t n, float *p, const float *g, float *m, float *v,
                      const struct dlfs_optim_hp *hp);
void cuda_sgd_update_dev(size_t n, float *p, const float *g, float *m, const struct dlfs_optim_hp *hp,
                         const struct dlfs_optim_dyn *dyn);
void cuda_adam_update_dev(size_t n, float *p, const float *g, float *m, float *v, const struct dlfs_optim_hp *hp,
                          const struct dlfs_optim_dyn *dyn);

// Staging for the MPI path (stage.cu; contracts in dlfs/backend.h).
void *cuda_pinned_alloc(size_t bytes);
void cuda_pinned_free(void *p);
void cuda_stage_to_host(void *dst, const void *src, size_t bytes, int slot);
int cuda_stage_test(int slot, bool wait);
// The training-step pipeline: data.cu (resident batches, async uploads) and graph.cu.
void cuda_gather_u8(float *dst, int32_t *labels_out, const uint8_t *images, const uint8_t *labels,
                    const uint32_t *idx, int rows, int channels, size_t plane, const double *mean,
                    const double *std);
void cuda_to_device_async(void *dst, const void *src, size_t bytes);
size_t cuda_mem_free(void);
void cuda_to_host_async(void *dst, const void *src, size_t bytes);
void cuda_mark_record(int k);
void cuda_mark_wait(int k);
void cuda_timer_mark(int k);
double cuda_timer_read(int k);
int cuda_graph_begin(void);
void *cuda_graph_end(void);
void cuda_graph_launch(void *graph);
void cuda_graph_free(void *graph);

// cudaSuccess when this build carries code the current GPU can run (vec.cu).
cudaError_t cuda_kernel_image_check_(void);
// The softmax_xent reduction scratch, allocated once by dlfs_cuda_init_ (loss.cu).
cudaError_t cuda_loss_init_(void);

// Entry points for C (src/backend/registry.c and tests), plain C types only.
extern "C" {
int dlfs_cuda_probe_(char *why, size_t why_len);
// Bind this process to visible device `device`, create the stream and the cuBLAS
// handle. Returns 0, or -1 with a one-line reason in `why` (device busy, driver too
// old, ...). Once per process; a second call with the same device is a no-op.
int dlfs_cuda_init_(int device, char *why, size_t why_len);
const struct dlfs_backend *dlfs_backend_cuda_(void);
// NCCL's entry points (nccl.cu), NULL when built without NCCL.
const struct dlfs_nccl_api *dlfs_cuda_nccl_api_(void);
}

#endif
