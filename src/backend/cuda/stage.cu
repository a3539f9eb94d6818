// Staging of gradient buckets through pinned host memory, for the MPI path with
// device buffers (--comm mpi; src/comm/buckets.c). Each bucket's copy runs on a
// copy stream of its own, ordered after the compute stream by an event, so it
// overlaps the rest of the backward pass:
//
//   compute stream:  ... backward of layer l ──event──┐          (backward goes on)
//   copy stream:                                      └─wait─ D2H(bucket) ──event copied_[slot]
//   host:            poll copied_[slot] ──▶ MPI_Iallreduce on the pinned copy
//
// The sums go back with the table's to_device (ordered on the compute stream,
// before the optimizer). Several ranks may share one GPU this way (NCCL refuses).
#include "backend/cuda/cuda-impl.cuh"

static cudaStream_t copy_stream_;
static cudaEvent_t after_compute_;                // compute -> copy
static cudaEvent_t copied_[DLFS_STAGE_SLOTS];     // copy `slot` done, created on first use

void *cuda_pinned_alloc(size_t bytes)
{
    void *p = nullptr;
    // out of pinned memory is recoverable (the caller says what to do); clear the error
    if (cudaMallocHost(&p, bytes ? bytes : 1) != cudaSuccess) {
        cudaGetLastError();
        return nullptr;
    }
    return p;
}

void cuda_pinned_free(void *p)
{
    if (p) CUDA_CHECK(cudaFreeHost(p));
}

void cuda_stage_to_host(void *dst, const void *src, size_t bytes, int slot)
{
    DLFS_ASSERT(slot >= 0 && slot < DLFS_STAGE_SLOTS);
    DLFS_ASSERT_MSG(cuda_ctx_.device >= 0, "dlfs_cuda_init_ first");
    if (!copy_stream_) {
        CUDA_CHECK(cudaStreamCreateWithFlags(&copy_stream_, cudaStreamNonBlocking));
        CUDA_CHECK(cudaEventCreateWithFlags(&after_compute_, cudaEventDisableTiming));
    }
    if (!copied_[slot]) CUDA_CHECK(cudaEventCreateWithFlags(&copied_[slot], cudaEventDisableTiming));
    // the wait captures the compute stream's work issued so far (the event's latest
    // record), so re-recording the same event for the next bucket is safe
    CUDA_CHECK(cudaEventRecord(after_compute_, cuda_ctx_.stream));
    CUDA_CHECK(cudaStreamWaitEvent(copy_stream_, after_compute_, 0));
    CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, copy_stream_));
    CUDA_CHECK(cudaEventRecord(copied_[slot], copy_stream_));
}

int cuda_stage_test(int slot, bool wait)
{
    DLFS_ASSERT(slot >= 0 && slot < DLFS_STAGE_SLOTS && copied_[slot]);
    if (wait) {
        CUDA_CHECK(cudaEventSynchronize(copied_[slot]));
        return 1;
    }
    cudaError_t e = cudaEventQuery(copied_[slot]);
    if (e == cudaErrorNotReady) {
        // not an error, but the runtime may keep it as the thread's last error: the
        // next launch's CUDA_LAUNCH_CHECK (cudaGetLastError) would then abort on it
        (void)cudaGetLastError();
        return 0;
    }
    CUDA_CHECK(e);
    return 1;
}
