// The CUDA backend: set-up, memory and transfers, and the op table. The process
// state and the check macro's failure path live in ctx.cu; kernels in one file per
// op family.
//
// Ordering model: every op (kernels, cuBLAS, copies) is issued on ONE non-blocking
// stream, so ops run in issue order and never wait on (or for) other libraries'
// legacy-stream work. The host only waits in `sync`, `to_host` and `mark_wait`.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "backend/cuda/cuda-impl.cuh"

// ---- memory -------------------------------------------------------------------

static void *alloc_(size_t bytes)
{
    void *p = nullptr;
    // cudaMalloc's out-of-memory is the one recoverable CUDA failure: the caller
    // turns NULL into "use a smaller --batch". The error is not sticky; clear it.
    if (cudaMalloc(&p, bytes ? bytes : 1) != cudaSuccess) {
        cudaGetLastError();
        return nullptr;
    }
    CUDA_CHECK(cudaMemsetAsync(p, 0, bytes ? bytes : 1, cuda_ctx_.stream)); // zero-filled, as promised
    return p;
}

static void free_(void *p)
{
    if (p) CUDA_CHECK(cudaFree(p)); // cudaFree waits for the device: no op still uses p
}

// Host to device, ordered on the stream. From pageable memory (dlfs's malloc'd
// staging) cudaMemcpyAsync returns once the source has been copied out, so the
// caller may reuse `src` at once; from pinned memory the copy is truly async, so
// we wait to keep the same contract ("src is free on return") for every caller.
static void to_device_(void *dst, const void *src, size_t bytes)
{
    if (!bytes) return;
    CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, cuda_ctx_.stream));
    cudaPointerAttributes at;
    CUDA_CHECK(cudaPointerGetAttributes(&at, src));
    if (at.type == cudaMemoryTypeHost) CUDA_CHECK(cudaStreamSynchronize(cuda_ctx_.stream));
}

// Device to host: waits for every op issued before (the table's promise that
// host-visible results are read after to_host).
static void to_host_(void *dst, const void *src, size_t bytes)
{
    if (!bytes) return;
    CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, cuda_ctx_.stream));
    CUDA_CHECK(cudaStreamSynchronize(cuda_ctx_.stream));
}

static void copy_(void *dst, const void *src, size_t bytes)
{
    if (bytes && dst != src)
        CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, cuda_ctx_.stream));
}

static void sync_(void) { CUDA_CHECK(cudaStreamSynchronize(cuda_ctx_.stream)); }

// ---- set-up -------------------------------------------------------------------

// cuBLAS on the backend's stream, with a workspace of its own. 0, or -1 with a reason.
static int blas_init_(int device, char *why, size_t why_len)
{
    cublasStatus_t s = cublasCreate(&cuda_ctx_.blas);
    if (s != CUBLAS_STATUS_SUCCESS) {
        snprintf(why, why_len, "cuBLAS could not start on GPU %d: %s", device, cublasGetStatusString(s));
        return -1;
    }
    CUBLAS_CHECK(cublasSetStream(cuda_ctx_.blas, cuda_ctx_.stream));
    // A workspace of the handle's own, set AFTER cublasSetStream (which resets it to
    // the default pool): cuBLAS then never allocates one while a CUDA graph records
    // (graph.cu), and eager and captured GEMMs use the same one. 32 MiB is NVIDIA's
    // recommendation for Hopper (4 MiB suffices before it). Lives as long as the process.
    const size_t ws_bytes = (size_t)32 << 20;
    void *ws = nullptr;
    if (cudaMalloc(&ws, ws_bytes) != cudaSuccess) {
        cudaGetLastError();
        snprintf(why, why_len, "GPU %d: no memory for the cuBLAS workspace (%zu MiB)", device, ws_bytes >> 20);
        return -1;
    }
    CUBLAS_CHECK(cublasSetWorkspace(cuda_ctx_.blas, ws, ws_bytes));
    return 0;
}

extern "C" int dlfs_cuda_init_(int device, char *why, size_t why_len)
{
    if (cuda_ctx_.device >= 0) {
        DLFS_ASSERT_MSG(cuda_ctx_.device == device, "one GPU per process");
        return 0;
    }
    // Recoverable: the GPU is visible but unusable (busy in exclusive mode, driver
    // mismatch, out of memory). The registry turns this into one message.
    cudaError_t e = cudaSetDevice(device);
    if (e == cudaSuccess) e = cudaFree(nullptr); // creates the context now, not in the first op
    if (e != cudaSuccess) {
        snprintf(why, why_len, "%s: %s", cudaGetErrorName(e), cudaGetErrorString(e));
        cudaGetLastError();
        return -1;
    }
    int major = 0, minor = 0, sms = 0; // attributes, not cudaGetDeviceProperties: that one is slow
    CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device));
    CUDA_CHECK(cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, device));
    CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device));
    if (major < 6) { // the oldest GPUs dlfs supports
        snprintf(why, why_len, "compute capability %d.%d; dlfs needs 6.0 or newer", major, minor);
        return -1;
    }
    e = cuda_kernel_image_check_();
    if (e != cudaSuccess) { // e.g. an sm_90 build on an sm_80 GPU: say so now, not at the first launch
        snprintf(why, why_len, "this build has no kernels for its compute capability %d.%d (%s); reconfigure "
                 "with -DCMAKE_CUDA_ARCHITECTURES=%d%d", major, minor, cudaGetErrorName(e), major, minor);
        cudaGetLastError();
        return -1;
    }
    cuda_ctx_.sm_count = sms;
    CUDA_CHECK(cudaStreamCreateWithFlags(&cuda_ctx_.stream, cudaStreamNonBlocking));
    if (blas_init_(device, why, why_len) != 0) return -1;
    e = cuda_loss_init_(); // fixed-size scratch: nothing is allocated on the hot path
    if (e != cudaSuccess) {
        snprintf(why, why_len, "GPU %d: %s: %s", device, cudaGetErrorName(e), cudaGetErrorString(e));
        cudaGetLastError();
        return -1;
    }
    const char *dbg = getenv("DLFS_CUDA_SYNC");
    cuda_ctx_.debug_sync = dbg && *dbg && strcmp(dbg, "0") != 0;
    cuda_ctx_.device = device;
    cuda_apply_math_mode_();
    return 0;
}

// ---- the table ----------------------------------------------------------------

static const struct dlfs_backend cuda_backend_ = {
    .name = "cuda",
    .host_memory = false,
    .alloc = alloc_,
    .free = free_,
    .to_device = to_device_,
    .to_host = to_host_,
    .copy = copy_,
    .sync = sync_,
    .fill = cuda_fill,
    .gemm = cuda_gemm,
    .bias_act_fwd = cuda_bias_act_fwd,
    .act_bwd = cuda_act_bwd,
    .colsum = cuda_colsum,
    .softmax_xent = cuda_softmax_xent,
    .normalize_u8 = cuda_normalize_u8,
    .axpy = cuda_axpy,
    .scale = cuda_scale,
    .sgd_update = cuda_sgd_update,
    .adam_update = cuda_adam_update,
    .sgd_update_dev = cuda_sgd_update_dev,
    .adam_update_dev = cuda_adam_update_dev,
    .conv2d_fwd = cuda_conv2d_fwd,
    .conv2d_bwd = cuda_conv2d_bwd,
    .maxpool_fwd = cuda_maxpool_fwd,
    .maxpool_bwd = cuda_maxpool_bwd,
    .dropout_fwd = cuda_dropout_fwd,
    .mul = cuda_mul,
    .add = cuda_add,
    .gap_fwd = cuda_gap_fwd,
    .gap_bwd = cuda_gap_bwd,
    .batchnorm_fwd = cuda_batchnorm_fwd,
    .batchnorm_bwd = cuda_batchnorm_bwd,
    .embed_fwd = cuda_embed_fwd,
    .embed_bwd = cuda_embed_bwd,
    .take_ids = cuda_take_ids,
    .layernorm_fwd = cuda_layernorm_fwd,
    .layernorm_bwd = cuda_layernorm_bwd,
    .attn_fwd = cuda_attn_fwd,
    .attn_bwd = cuda_attn_bwd,
    .set_precision = cuda_set_precision,
    .set_threads = nullptr, // no host threads to tune
    .gemm_account = nullptr, // cuBLAS calls are asynchronous: not timed one by one
    .gemm_rows = nullptr,    // gemm
    // the MPI path's staging through pinned host memory (stage.cu)
    .pinned_alloc = cuda_pinned_alloc,
    .pinned_free = cuda_pinned_free,
    .stage_to_host = cuda_stage_to_host,
    .stage_test = cuda_stage_test,
    .gather_u8 = cuda_gather_u8,
    .to_device_async = cuda_to_device_async,
    .mem_free = cuda_mem_free,
    .graph_begin = cuda_graph_begin,
    .graph_end = cuda_graph_end,
    .graph_launch = cuda_graph_launch,
    .graph_free = cuda_graph_free,
    // the step that does not wait for the device (data.cu)
    .to_host_async = cuda_to_host_async,
    .mark_record = cuda_mark_record,
    .mark_wait = cuda_mark_wait,
    .timer_mark = cuda_timer_mark,
    .timer_read = cuda_timer_read,
};

// The physical identity of this process's GPU (the same device seen through
// different CUDA_VISIBLE_DEVICES lists has the same UUID).
extern "C" int dlfs_cuda_device_uuid_(unsigned char uuid[16])
{
    if (cuda_ctx_.device < 0) return -1;
    cudaDeviceProp p;
    CUDA_CHECK(cudaGetDeviceProperties(&p, cuda_ctx_.device));
    static_assert(sizeof p.uuid.bytes == 16, "cudaUUID_t is 16 bytes");
    memcpy(uuid, p.uuid.bytes, 16);
    return 0;
}

extern "C" const struct dlfs_backend *dlfs_backend_cuda_(void)
{
    DLFS_ASSERT_MSG(cuda_ctx_.device >= 0, "dlfs_cuda_init_ first");
    return &cuda_backend_;
}
