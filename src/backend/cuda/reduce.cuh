// Deterministic block reductions: every thread's partial sum comes from a fixed
// set of elements (its thread index and a fixed stride), and the partials are
// combined in one fixed tree order — no atomics, so the same inputs give the same
// bits on every run (deterministic mode depends on that).
#ifndef DLFS_CUDA_REDUCE_CUH
#define DLFS_CUDA_REDUCE_CUH

#include "backend/cuda/cuda-impl.cuh"

#define REDUCE_THREADS 256 // blockDim.x of every kernel that calls block_sum_ (a power of two)

// The sum of v over the block, returned to every thread. All threads of the block
// must call it (no early return before it); sh: REDUCE_THREADS shared doubles.
__device__ __forceinline__ double block_sum_(double v, double *sh)
{
    const unsigned t = threadIdx.x;
    sh[t] = v;
    __syncthreads();
    for (unsigned s = REDUCE_THREADS / 2; s > 0; s >>= 1) {
        if (t < s) sh[t] += sh[t + s];
        __syncthreads();
    }
    const double r = sh[0];
    __syncthreads(); // every thread has read sh[0] before anyone reuses sh
    return r;
}

#endif
