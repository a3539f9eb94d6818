// Softmax cross-entropy (the twin of src/backend/cpu/loss.c): shift by the row
// maximum, sum the exponentials in double, loss and accuracy reduced on the
// device into stats[2] (two doubles in device memory, accumulated, never reset
// here: the trainer zeroes them once per step / evaluation).
#include <limits.h>
#include <math.h>
#include "backend/cuda/cuda-impl.cuh"

#define XENT_WARPS 16 // rows per block: one warp per row, any number of classes

// Combine two (max, index) candidates so that the FIRST maximum wins, as in the
// CPU loop `if (x[c] > mx)`: larger value, or the same value at a lower index.
__device__ __forceinline__ void argmax_merge(float &m, int &i, float m2, int i2)
{
    if (m2 > m || (m2 == m && i2 < i)) { m = m2; i = i2; }
}

// No __restrict__ on logits/dlogits: like the CPU loop, this works in place
// (every read of the row, x[y] included, comes before the __syncwarp that
// precedes the writes; a lane writes only the d[c] it read as x[c]).
__global__ void softmax_xent_k(const float *logits, const int32_t *__restrict__ labels, int rows, int classes,
                               float grad_scale, float *dlogits, double *stats)
{
    __shared__ double s_loss[XENT_WARPS], s_ok[XENT_WARPS];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int r = blockIdx.x * XENT_WARPS + warp;
    double loss = 0.0, ok = 0.0;
    if (r < rows) { // warp-uniform: the whole warp takes the branch or none of it
        const float *x = logits + (size_t)r * classes;
        const int y = labels[r];
        // a label outside the classes is caught when the dataset is loaded; should
        // one get here anyway, poison the loss (the trainer stops on NaN) rather
        // than read outside the row
        const bool valid = y >= 0 && y < classes;
        // x[y] is read by every lane now, before any lane writes dlogits: in place,
        // lane y % 32 overwrites it, and lanes of a warp are not in lockstep
        const float xy = valid ? x[y] : 0.0f;
        // The CPU loop: mx = x[0], then `x[c] > mx`, so a NaN at x[0] wins (index 0)
        // and any later NaN is skipped. Lane 0 starts from x[0]; the other lanes
        // start from -inf at INT_MAX and take only values > mx (never a NaN), so
        // the only NaN candidate is lane 0's, and with no NaN the merge is a total
        // order (ties: lower index), which an all -inf row resolves to index 0.
        float mx = lane == 0 ? x[0] : -INFINITY;
        int arg = lane == 0 ? 0 : INT_MAX;
        for (int c = lane == 0 ? 32 : lane; c < classes; c += 32)
            if (x[c] > mx) { mx = x[c]; arg = c; }
        for (int o = 16; o > 0; o >>= 1)
            argmax_merge(mx, arg, __shfl_xor_sync(0xffffffffu, mx, o), __shfl_xor_sync(0xffffffffu, arg, o));
        // with a NaN at x[0] the butterfly can leave lanes disagreeing: use lane 0's
        mx = __shfl_sync(0xffffffffu, mx, 0);
        arg = __shfl_sync(0xffffffffu, arg, 0);
        double sum = 0.0;
        for (int c = lane; c < classes; c += 32) sum += exp((double)x[c] - mx);
        for (int o = 16; o > 0; o >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);
        const double lse = log(sum) + mx;
        if (lane == 0) {
            loss = valid ? lse - xy : (double)NAN;
            ok = arg == y ? 1.0 : 0.0;
        }
        if (dlogits) {
            __syncwarp(); // every lane's reads of the row happen before any write to it
            float *d = dlogits + (size_t)r * classes;
            for (int c = lane; c < classes; c += 32) {
                const float p = (float)exp((double)x[c] - lse);
                d[c] = valid ? (p - (c == y ? 1.0f : 0.0f)) * grad_scale : 0.0f;
            }
        }
    }
    // one double atomic per block and statistic (sm_60+), not one per row
    if (lane == 0) { s_loss[warp] = loss; s_ok[warp] = ok; }
    __syncthreads();
    if (threadIdx.x == 0) {
        double l = 0.0, k = 0.0;
        for (int w = 0; w < XENT_WARPS; w++) { l += s_loss[w]; k += s_ok[w]; }
        atomicAdd(&stats[0], l);
        atomicAdd(&stats[1], k);
    }
}

void cuda_softmax_xent(const float *logits, const int32_t *labels, int rows, int classes, float grad_scale,
                       float *dlogits, double *stats)
{
    DLFS_ASSERT(rows >= 0 && classes > 0);
    if (!rows) return;
    const unsigned blocks = (unsigned)((rows + XENT_WARPS - 1) / XENT_WARPS);
    softmax_xent_k<<<blocks, XENT_WARPS * 32, 0, cuda_ctx_.stream>>>(logits, labels, rows, classes, grad_scale,
                                                                     dlogits, stats);
    CUDA_LAUNCH_CHECK();
}
