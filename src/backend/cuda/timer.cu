// Timer marks for timelines (--trace): CUDA events with timing, recorded on the
// backend's stream; a mark's time is read once it has passed. Used only during the
// few steps a trace records, so the event records cost nothing otherwise.
#include "backend/cuda/cuda-impl.cuh"

static cudaEvent_t marks_[DLFS_TIMER_MARKS];

void cuda_timer_mark(int k)
{
    DLFS_ASSERT(k >= 0 && k < DLFS_TIMER_MARKS);
    if (!marks_[k]) CUDA_CHECK(cudaEventCreate(&marks_[k]));
    CUDA_CHECK(cudaEventRecord(marks_[k], cuda_ctx_.stream));
}

double cuda_timer_read(int k)
{
    DLFS_ASSERT(k >= 0 && k < DLFS_TIMER_MARKS && marks_[0] && marks_[k]);
    CUDA_CHECK(cudaEventSynchronize(marks_[k]));
    float ms = 0.0f;
    CUDA_CHECK(cudaEventElapsedTime(&ms, marks_[0], marks_[k]));
    return ms * 1e-3;
}
