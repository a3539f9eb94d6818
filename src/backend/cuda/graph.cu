// CUDA graphs for the training step: record the ops issued on the backend's one
// stream once, replay them with one launch per step (launch overhead is what
// dominates small models).
//
// Recording uses cudaStreamCaptureModeThreadLocal: only this thread is barred
// from unsafe calls (cudaMalloc, synchronous copies) while it records, so an
// MPI/NCCL progress thread or the prefetch thread cannot invalidate it. cuBLAS
// records safely because dlfs_cuda_init_ gives the handle a workspace of its own
// (cublasSetWorkspace): it never allocates one during capture, and eager and
// replayed GEMMs see the same workspace, hence the same algorithms and bits.
#include <stdio.h>
#include "backend/cuda/cuda-impl.cuh"

int cuda_graph_begin(void)
{
    // DLFS_CUDA_SYNC=1 is for finding the launch that faults: a replayed graph would
    // hide it, so that run stays eager.
    if (cuda_ctx_.debug_sync) return -1;
    CUDA_CHECK(cudaStreamBeginCapture(cuda_ctx_.stream, cudaStreamCaptureModeThreadLocal));
    return 0;
}

void *cuda_graph_end(void)
{
    cudaGraph_t g = nullptr;
    cudaError_t e = cudaStreamEndCapture(cuda_ctx_.stream, &g);
    if (e != cudaSuccess) { // an op did something capture cannot hold: the caller runs eagerly
        fprintf(stderr, "dlfs: CUDA graph capture failed (%s: %s); running the step without a graph\n",
                cudaGetErrorName(e), cudaGetErrorString(e));
        cudaGetLastError();
        if (g) cudaGraphDestroy(g);
        return nullptr;
    }
    cudaGraphExec_t exec = nullptr;
    e = cudaGraphInstantiate(&exec, g, 0);
    CUDA_CHECK(cudaGraphDestroy(g)); // the executable graph keeps what it needs
    if (e != cudaSuccess) {
        fprintf(stderr, "dlfs: CUDA graph instantiation failed (%s: %s); running the step without a graph\n",
                cudaGetErrorName(e), cudaGetErrorString(e));
        cudaGetLastError();
        return nullptr;
    }
    // Upload now, so that the first replay does not pay for it inside a timed step.
    CUDA_CHECK(cudaGraphUpload(exec, cuda_ctx_.stream));
    return (void *)exec;
}

void cuda_graph_launch(void *graph)
{
    CUDA_CHECK(cudaGraphLaunch((cudaGraphExec_t)graph, cuda_ctx_.stream));
    if (cuda_ctx_.debug_sync) CUDA_CHECK(cudaStreamSynchronize(cuda_ctx_.stream));
}

void cuda_graph_free(void *graph)
{
    if (!graph) return;
    CUDA_CHECK(cudaStreamSynchronize(cuda_ctx_.stream)); // no replay still running
    CUDA_CHECK(cudaGraphExecDestroy((cudaGraphExec_t)graph));
}
