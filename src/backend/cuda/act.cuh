// The activations as device functions, shared by the kernels that fuse one
// (act.cu's bias + activation, conv.cu's bias + activation, norm.cu's affine +
// activation). The formulas are src/backend/cpu/act.c's, in float.
#ifndef DLFS_CUDA_ACT_CUH
#define DLFS_CUDA_ACT_CUH

#include "backend/cuda/cuda-impl.cuh"

#define GELU_K 0.7978845608028654f // sqrt(2/pi)
#define GELU_C 0.044715f

// The activation is a template parameter so each kernel is branch-free inside.
template <int ACT> __device__ __forceinline__ float act_f(float z)
{
    if (ACT == DLFS_ACT_RELU) return z > 0.0f ? z : 0.0f;
    if (ACT == DLFS_ACT_TANH) return tanhf(z);
    if (ACT == DLFS_ACT_SIGMOID) return 1.0f / (1.0f + expf(-z));
    if (ACT == DLFS_ACT_GELU) return 0.5f * z * (1.0f + tanhf(GELU_K * (z + GELU_C * z * z * z)));
    return z;
}

// d act / dz times da; `a` = act(z) where that is cheaper than recomputing.
template <int ACT> __device__ __forceinline__ float act_grad(float da, float z, float a)
{
    if (ACT == DLFS_ACT_RELU) return z > 0.0f ? da : 0.0f;
    if (ACT == DLFS_ACT_TANH) return da * (1.0f - a * a);
    if (ACT == DLFS_ACT_SIGMOID) return da * a * (1.0f - a);
    if (ACT == DLFS_ACT_GELU) {
        float u = GELU_K * (z + GELU_C * z * z * z);
        float t = tanhf(u);
        float du = GELU_K * (1.0f + 3.0f * GELU_C * z * z);
        return da * (0.5f * (1.0f + t) + 0.5f * z * (1.0f - t * t) * du);
    }
    return da;
}

#endif
