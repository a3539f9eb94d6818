// NCCL wrappers for the communication layer (src/comm), plain C types only: the
// comm code never sees NCCL or CUDA types. One communicator per process, on the
// device the backend already selected (dlfs_cuda_init_), with its OWN stream:
//
//   compute stream:  ... backward of layer l ──event──┐
//   comm stream:                                      └─wait─ ncclAllReduce(bucket) ──event──┐
//   compute stream:  ... (more backward) ─────────────────────── wait ◀──────────────────────┘ optimizer
//
// so bucket reductions overlap the rest of the backward pass, and the optimizer
// (issued after dlfs_nccl_wait) sees the reduced gradients. Waiting polls
// ncclCommGetAsyncError with a deadline: a dead or stuck peer ends the job
// (ncclCommAbort, then the caller's MPI_Abort) instead of hanging it.
//
// Built without NCCL (DLFS_HAVE_NCCL unset), every entry point says so and fails.
#include <stdio.h>
#include <string.h>
#include "backend/cuda/cuda-impl.cuh"

#include "backend/cuda/nccl-api.h"

#ifdef DLFS_HAVE_NCCL
#include <nccl.h>
#include <time.h>

static ncclComm_t comm_;
static cudaStream_t comm_stream_;
static cudaEvent_t ready_, done_; // compute -> comm, comm -> compute

#define NCCL_CHECK(stmt) DLFS_CHECK_GEN_(stmt, ncclResult_t, ncclSuccess, nccl_name_, ncclGetErrorString)
static const char *nccl_name_(ncclResult_t r)
{
    switch (r) {
    case ncclUnhandledCudaError: return "ncclUnhandledCudaError";
    case ncclSystemError: return "ncclSystemError";
    case ncclInternalError: return "ncclInternalError";
    case ncclInvalidArgument: return "ncclInvalidArgument";
    case ncclInvalidUsage: return "ncclInvalidUsage";
    case ncclRemoteError: return "ncclRemoteError";
    case ncclInProgress: return "ncclInProgress";
    default: return "ncclResult?";
    }
}

int dlfs_nccl_id_bytes(void) { return NCCL_UNIQUE_ID_BYTES; }

int dlfs_nccl_get_id(void *id, char *why, size_t why_len)
{
    ncclUniqueId u;
    ncclResult_t r = ncclGetUniqueId(&u);
    if (r != ncclSuccess) {
        snprintf(why, why_len, "NCCL could not create its id: %s (network interfaces? NCCL_SOCKET_IFNAME)",
                 ncclGetErrorString(r));
        return -1;
    }
    memcpy(id, &u, sizeof u);
    return 0;
}

int dlfs_nccl_init(const void *id, int nranks, int rank, char *why, size_t why_len)
{
    DLFS_ASSERT_MSG(cuda_ctx_.device >= 0, "dlfs_cuda_init_ before dlfs_nccl_init");
    ncclUniqueId u;
    memcpy(&u, id, sizeof u);
    ncclResult_t r = ncclCommInitRank(&comm_, nranks, u, rank);
    if (r != ncclSuccess) {
        // invalid usage here is, in practice, two ranks on one GPU (measured: NCCL 2.28)
        snprintf(why, why_len, "NCCL could not start on rank %d (GPU %d): %s%s", rank, cuda_ctx_.device,
                 ncclGetErrorString(r),
                 r == ncclInvalidUsage ? "; NCCL refuses two ranks on one GPU: use fewer ranks per node, or "
                                         "--comm mpi" : "");
        comm_ = nullptr;
        return -1;
    }
    CUDA_CHECK(cudaStreamCreateWithFlags(&comm_stream_, cudaStreamNonBlocking));
    CUDA_CHECK(cudaEventCreateWithFlags(&ready_, cudaEventDisableTiming));
    CUDA_CHECK(cudaEventCreateWithFlags(&done_, cudaEventDisableTiming));
    return 0;
}

void dlfs_nccl_allreduce_f32(float *buf, size_t n)
{
    if (!n) return;
    CUDA_CHECK(cudaEventRecord(ready_, cuda_ctx_.stream));
    CUDA_CHECK(cudaStreamWaitEvent(comm_stream_, ready_, 0));
    NCCL_CHECK(ncclAllReduce(buf, buf, n, ncclFloat32, ncclSum, comm_, comm_stream_));
}

static double now_(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

int dlfs_nccl_wait(double timeout_s, char *why, size_t why_len)
{
    CUDA_CHECK(cudaEventRecord(done_, comm_stream_));
    CUDA_CHECK(cudaStreamWaitEvent(cuda_ctx_.stream, done_, 0));
    const double deadline = now_() + timeout_s;
    for (;;) {
        cudaError_t e = cudaEventQuery(done_);
        if (e == cudaSuccess) return 0;
        if (e != cudaErrorNotReady) CUDA_CHECK(e);
        (void)cudaGetLastError(); // NotReady may stay as the last error: the optimizer's launch check would abort
        ncclResult_t async = ncclSuccess;
        NCCL_CHECK(ncclCommGetAsyncError(comm_, &async));
        if (async != ncclSuccess || now_() > deadline) {
            if (async != ncclSuccess)
                snprintf(why, why_len, "NCCL all-reduce failed: %s (a peer rank died or its network failed)",
                         ncclGetErrorString(async));
            else
                snprintf(why, why_len, "NCCL all-reduce did not finish within %g s (--comm-timeout): a peer "
                         "rank is stuck or dead", timeout_s);
            ncclCommAbort(comm_); // unblocks the comm stream; the caller ends the job
            comm_ = nullptr;
            return -1;
        }
        struct timespec nap = {0, 20000}; // 20 us: far below a step, far above a spin
        nanosleep(&nap, nullptr);
    }
}

static void release_(void)
{
    CUDA_CHECK(cudaEventDestroy(ready_));
    CUDA_CHECK(cudaEventDestroy(done_));
    CUDA_CHECK(cudaStreamDestroy(comm_stream_));
    ready_ = done_ = nullptr;
    comm_stream_ = nullptr;
}

void dlfs_nccl_free(void)
{
    if (!comm_) return;
    CUDA_CHECK(cudaStreamSynchronize(comm_stream_));
    NCCL_CHECK(ncclCommDestroy(comm_));
    comm_ = nullptr;
    release_();
}

void dlfs_nccl_abort(void)
{
    if (!comm_) return;
    ncclCommAbort(comm_); // best effort: the job is ending with an error already
    comm_ = nullptr;
    release_();
}

#else // built without NCCL: the MPI path is the only one

static int no_nccl_(char *why, size_t why_len)
{
    snprintf(why, why_len, "this dlfs was built without NCCL (install libnccl-dev and reconfigure, or use "
             "--comm mpi)");
    return -1;
}
int dlfs_nccl_id_bytes(void) { return 128; }
int dlfs_nccl_get_id(void *, char *why, size_t why_len) { return no_nccl_(why, why_len); }
int dlfs_nccl_init(const void *, int, int, char *why, size_t why_len) { return no_nccl_(why, why_len); }
void dlfs_nccl_allreduce_f32(float *, size_t) { DLFS_ASSERT_MSG(0, "built without NCCL"); }
int dlfs_nccl_wait(double, char *why, size_t why_len) { return no_nccl_(why, why_len); }
void dlfs_nccl_free(void) {}
void dlfs_nccl_abort(void) {}

#endif
