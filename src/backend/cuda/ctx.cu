// The CUDA backend's process state and the failure path of its check macros:
// what every other file of the backend uses, and nothing else (so that no two
// files of the backend depend on each other both ways).
#include <stdio.h>
#include <string.h>
#include "backend/cuda/cuda-impl.cuh"

struct cuda_ctx cuda_ctx_ = {-1, 0, nullptr, nullptr, 0, 0};

const char *cublas_status_name_(cublasStatus_t s)
{
    switch (s) {
    case CUBLAS_STATUS_SUCCESS: return "CUBLAS_STATUS_SUCCESS";
    case CUBLAS_STATUS_NOT_INITIALIZED: return "CUBLAS_STATUS_NOT_INITIALIZED";
    case CUBLAS_STATUS_ALLOC_FAILED: return "CUBLAS_STATUS_ALLOC_FAILED";
    case CUBLAS_STATUS_INVALID_VALUE: return "CUBLAS_STATUS_INVALID_VALUE";
    case CUBLAS_STATUS_ARCH_MISMATCH: return "CUBLAS_STATUS_ARCH_MISMATCH";
    case CUBLAS_STATUS_MAPPING_ERROR: return "CUBLAS_STATUS_MAPPING_ERROR";
    case CUBLAS_STATUS_EXECUTION_FAILED: return "CUBLAS_STATUS_EXECUTION_FAILED";
    case CUBLAS_STATUS_INTERNAL_ERROR: return "CUBLAS_STATUS_INTERNAL_ERROR";
    case CUBLAS_STATUS_NOT_SUPPORTED: return "CUBLAS_STATUS_NOT_SUPPORTED";
    case CUBLAS_STATUS_LICENSE_ERROR: return "CUBLAS_STATUS_LICENSE_ERROR";
    default: return "CUBLAS_STATUS_?";
    }
}

// What to do about the errors that have an answer (the rest speak for themselves).
static const char *hint_(const char *name)
{
    if (strstr(name, "NoKernelImage") || strstr(name, "ARCH_MISMATCH"))
        return "this build has no code for this GPU: reconfigure with -DCMAKE_CUDA_ARCHITECTURES=<its sm, "
               "e.g. 90 for H100>";
    if (strstr(name, "MemoryAllocation") || strstr(name, "ALLOC_FAILED"))
        return "the GPU is out of memory: use a smaller --batch, or check nvidia-smi for other processes";
    if (strstr(name, "DevicesUnavailable"))
        return "the GPU is busy (exclusive-process mode?): one rank per GPU";
    if (strstr(name, "IllegalAddress") || strstr(name, "LaunchFailure"))
        return "a kernel faulted (reported at a later call); rerun with DLFS_CUDA_SYNC=1 to stop at the "
               "launch that caused it";
    return nullptr;
}

void cuda_check_fail_(const char *stmt, const char *name, const char *str, const char *file, int line)
{
    // While this thread records a CUDA graph that an earlier call invalidated (an
    // operation the capture cannot hold), every later launch, copy or cuBLAS call on
    // the stream fails as well. Let those pass: graph_end then reports the failed
    // recording and the caller issues the ops again eagerly (dlfs/backend.h), where
    // a genuine error surfaces at its own op. Aborting here made that fallback dead.
    cudaStreamCaptureStatus cap = cudaStreamCaptureStatusNone;
    if (cuda_ctx_.stream && cudaStreamIsCapturing(cuda_ctx_.stream, &cap) == cudaSuccess &&
        cap == cudaStreamCaptureStatusInvalidated) {
        cudaGetLastError(); // not sticky: clear it for the next check
        return;
    }
    char msg[512];
    const char *h = hint_(name);
    snprintf(msg, sizeof msg, "%s: %s (GPU %d)%s%s", name, str, cuda_ctx_.device, h ? "; " : "", h ? h : "");
    dlfs_assert_fail(stmt, file, line, msg); // prints rank, host, file:line; MPI_Abort
}

void cuda_debug_sync_(void)
{
    cudaStreamCaptureStatus cap = cudaStreamCaptureStatusNone;
    CUDA_CHECK(cudaStreamIsCapturing(cuda_ctx_.stream, &cap));
    if (cap == cudaStreamCaptureStatusNone) CUDA_CHECK(cudaStreamSynchronize(cuda_ctx_.stream));
}
