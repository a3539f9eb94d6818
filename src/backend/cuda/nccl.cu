// NCCL for the communication layer (struct dlfs_nccl_api in dlfs/backend.h):
// plain C types, one context per communicator, on the GPU this process drives,
// with the communicator's OWN stream:
//
//   compute stream:  ... backward of layer l ──event──┐
//   comm stream:                                      └─wait─ ncclAllReduce(bucket) ──event──┐
//   compute stream:  ... (more backward) ─────────────────────── wait ◀──────────────────────┘ optimizer
//
// so bucket reductions overlap the rest of the backward pass, and the optimizer
// (issued after `wait`) sees the reduced gradients.
//
// The communicator is non-blocking (ncclConfig_t.blocking = 0): set-up is started
// and then polled, so that a peer that never joins ends the job after
// --comm-timeout instead of hanging it in ncclCommInitRank. NCCL's rule for such
// communicators: a call that returns ncclInProgress must be followed by polling
// ncclCommGetAsyncError until the state leaves ncclInProgress before the next
// NCCL call — every call here does that, against the context's deadline.
// Built without NCCL (DLFS_HAVE_NCCL unset), the backend offers no NCCL at all.
#include <stdio.h>
#include <string.h>
#include "backend/cuda/cuda-impl.cuh"

#ifdef DLFS_HAVE_NCCL
#include <nccl.h>
#include <time.h>

struct nccl_ctx_ {
    ncclComm_t comm;
    cudaStream_t stream;    // the communicator's stream
    cudaEvent_t ready, done; // compute -> comm, comm -> compute
    double timeout_s;       // bound on every wait for the peers
    int rank, up;           // up: set-up finished, stream and events exist
};

static double now_(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static void nap_(void)
{
    struct timespec nap = {0, 20000}; // 20 us: far below a step, far above a spin
    nanosleep(&nap, nullptr);
}

// After a call returned `r`: wait (bounded) while the communicator is in progress.
// 0 when it ended in success, -1 with a reason.
static int settle_(nccl_ctx_ *c, ncclResult_t r, const char *what, char *why, size_t why_len)
{
    const double deadline = now_() + c->timeout_s;
    while (r == ncclInProgress) {
        if (now_() > deadline) {
            snprintf(why, why_len, "%s did not finish within %g s (--comm-timeout): a peer rank is stuck or dead",
                     what, c->timeout_s);
            return -1;
        }
        nap_();
        if (ncclCommGetAsyncError(c->comm, &r) != ncclSuccess) r = ncclInternalError;
    }
    if (r == ncclSuccess) return 0;
    snprintf(why, why_len, "%s failed: %s (a peer rank died or its network failed)", what, ncclGetErrorString(r));
    return -1;
}

static int get_id_(void *id, char *why, size_t why_len)
{
    ncclUniqueId u;
    const ncclResult_t r = ncclGetUniqueId(&u);
    if (r != ncclSuccess) {
        snprintf(why, why_len, "NCCL could not create its id: %s (network interfaces? NCCL_SOCKET_IFNAME)",
                 ncclGetErrorString(r));
        return -1;
    }
    memcpy(id, &u, sizeof u);
    return 0;
}

static void *init_start_(const void *id, int nranks, int rank, double timeout_s, char *why, size_t why_len)
{
    DLFS_ASSERT_MSG(cuda_ctx_.device >= 0, "dlfs_cuda_init_ before NCCL");
    nccl_ctx_ *c = (nccl_ctx_ *)calloc(1, sizeof *c);
    if (!c) {
        snprintf(why, why_len, "out of host memory for the NCCL context");
        return nullptr;
    }
    c->timeout_s = timeout_s > 0 ? timeout_s : 1e9;
    c->rank = rank;
    ncclUniqueId u;
    memcpy(&u, id, sizeof u);
    ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
    config.blocking = 0;
    const ncclResult_t r = ncclCommInitRankConfig(&c->comm, nranks, u, rank, &config);
    if (r != ncclSuccess && r != ncclInProgress) {
        // invalid usage here is, in practice, two ranks on one GPU (measured: NCCL 2.28)
        snprintf(why, why_len, "NCCL could not start on rank %d (GPU %d): %s%s", rank, cuda_ctx_.device,
                 ncclGetErrorString(r),
                 r == ncclInvalidUsage ? "; NCCL refuses two ranks on one GPU: use fewer ranks per node, or "
                                         "--comm mpi" : "");
        if (c->comm) ncclCommAbort(c->comm);
        free(c);
        return nullptr;
    }
    return c;
}

static int init_poll_(void *ctx, char *why, size_t why_len)
{
    nccl_ctx_ *c = (nccl_ctx_ *)ctx;
    if (c->up) return 1; // idempotent: the stream and events exist once
    ncclResult_t st = ncclSuccess;
    const ncclResult_t r = ncclCommGetAsyncError(c->comm, &st);
    if (r == ncclSuccess && st == ncclInProgress) return 0;
    if (r != ncclSuccess || st != ncclSuccess) {
        snprintf(why, why_len, "NCCL set-up failed on rank %d (GPU %d): %s%s", c->rank, cuda_ctx_.device,
                 ncclGetErrorString(r != ncclSuccess ? r : st),
                 st == ncclInvalidUsage ? "; NCCL refuses two ranks on one GPU: use fewer ranks per node, or "
                                          "--comm mpi" : "");
        return -1;
    }
    CUDA_CHECK(cudaStreamCreateWithFlags(&c->stream, cudaStreamNonBlocking));
    CUDA_CHECK(cudaEventCreateWithFlags(&c->ready, cudaEventDisableTiming));
    CUDA_CHECK(cudaEventCreateWithFlags(&c->done, cudaEventDisableTiming));
    c->up = 1;
    return 1;
}

static int allreduce_(void *ctx, float *buf, size_t n, char *why, size_t why_len)
{
    nccl_ctx_ *c = (nccl_ctx_ *)ctx;
    if (!n) return 0;
    CUDA_CHECK(cudaEventRecord(c->ready, cuda_ctx_.stream));
    CUDA_CHECK(cudaStreamWaitEvent(c->stream, c->ready, 0));
    return settle_(c, ncclAllReduce(buf, buf, n, ncclFloat32, ncclSum, c->comm, c->stream), "NCCL all-reduce",
                   why, why_len);
}

static int reduce_scatter_(void *ctx, float *buf, size_t count, char *why, size_t why_len)
{
    nccl_ctx_ *c = (nccl_ctx_ *)ctx;
    if (!count) return 0;
    CUDA_CHECK(cudaEventRecord(c->ready, cuda_ctx_.stream));
    CUDA_CHECK(cudaStreamWaitEvent(c->stream, c->ready, 0));
    // in place: the receive buffer is the rank's own part of the send buffer
    return settle_(c, ncclReduceScatter(buf, buf + (size_t)c->rank * count, count, ncclFloat32, ncclSum, c->comm,
                                        c->stream), "NCCL reduce-scatter", why, why_len);
}

static int all_gather_(void *ctx, float *buf, size_t count, char *why, size_t why_len)
{
    nccl_ctx_ *c = (nccl_ctx_ *)ctx;
    if (!count) return 0;
    CUDA_CHECK(cudaEventRecord(c->ready, cuda_ctx_.stream));
    CUDA_CHECK(cudaStreamWaitEvent(c->stream, c->ready, 0));
    return settle_(c, ncclAllGather(buf + (size_t)c->rank * count, buf, count, ncclFloat32, c->comm, c->stream),
                   "NCCL all-gather", why, why_len);
}

static int wait_(void *ctx, char *why, size_t why_len)
{
    nccl_ctx_ *c = (nccl_ctx_ *)ctx;
    CUDA_CHECK(cudaEventRecord(c->done, c->stream));
    CUDA_CHECK(cudaStreamWaitEvent(cuda_ctx_.stream, c->done, 0));
    const double deadline = now_() + c->timeout_s;
    for (;;) {
        const cudaError_t e = cudaEventQuery(c->done);
        if (e == cudaSuccess) return 0;
        if (e != cudaErrorNotReady) CUDA_CHECK(e);
        (void)cudaGetLastError(); // NotReady may stay as the last error: the optimizer's launch check would abort
        ncclResult_t async = ncclSuccess;
        if (ncclCommGetAsyncError(c->comm, &async) != ncclSuccess) async = ncclInternalError;
        if ((async != ncclSuccess && async != ncclInProgress) || now_() > deadline) {
            if (async != ncclSuccess && async != ncclInProgress)
                snprintf(why, why_len, "NCCL all-reduce failed: %s (a peer rank died or its network failed)",
                         ncclGetErrorString(async));
            else
                snprintf(why, why_len, "NCCL all-reduce did not finish within %g s (--comm-timeout): a peer "
                         "rank is stuck or dead", c->timeout_s);
            return -1;
        }
        nap_();
    }
}

static void release_(nccl_ctx_ *c)
{
    if (c->up) {
        CUDA_CHECK(cudaEventDestroy(c->ready));
        CUDA_CHECK(cudaEventDestroy(c->done));
        CUDA_CHECK(cudaStreamDestroy(c->stream));
    }
    free(c);
}

static void abort_(void *ctx)
{
    nccl_ctx_ *c = (nccl_ctx_ *)ctx;
    if (!c) return;
    ncclCommAbort(c->comm); // never waits for peers; unblocks the comm stream
    release_(c);
}

static void destroy_(void *ctx)
{
    nccl_ctx_ *c = (nccl_ctx_ *)ctx;
    if (!c) return;
    char why[256];
    if (c->up) CUDA_CHECK(cudaStreamSynchronize(c->stream));
    // finalize waits for the peers' outstanding work: bounded like any other wait
    if (settle_(c, ncclCommFinalize(c->comm), "NCCL finalize", why, sizeof why) != 0) {
        abort_(c);
        return;
    }
    ncclCommDestroy(c->comm);
    release_(c);
}

static const struct dlfs_nccl_api api_ = {
    NCCL_UNIQUE_ID_BYTES, get_id_, init_start_, init_poll_, allreduce_, reduce_scatter_, all_gather_, wait_,
    destroy_, abort_,
};

extern "C" const struct dlfs_nccl_api *dlfs_cuda_nccl_api_(void) { return &api_; }

#else // built without NCCL: GPU ranks sum their gradients over MPI only

extern "C" const struct dlfs_nccl_api *dlfs_cuda_nccl_api_(void) { return nullptr; }

#endif
