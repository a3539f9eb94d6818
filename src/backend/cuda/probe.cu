// GPU discovery. A program linked with CUDA runs on a machine without a GPU:
// cudaGetDeviceCount then fails ("driver version is insufficient" / "no CUDA-capable
// device"), which means "no GPU" here, never a crash. The count is of VISIBLE
// devices: the runtime has already applied CUDA_VISIBLE_DEVICES.
#include <stdio.h>
#include "backend/cuda/cuda-impl.cuh"

extern "C" int dlfs_cuda_probe_(char *why, size_t why_len)
{
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess) {
        if (why) snprintf(why, why_len, "CUDA reports: %s", cudaGetErrorString(e));
        cudaGetLastError(); // clear the sticky error
        return 0;
    }
    if (n == 0 && why) snprintf(why, why_len, "no CUDA device is visible (CUDA_VISIBLE_DEVICES?)");
    return n;
}
