// Softmax cross-entropy (the twin of src/backend/cpu/loss.c): shift by the row
// maximum, sum the exponentials in double, loss and accuracy reduced on the
// device into stats[2] (two doubles in device memory, accumulated, never reset
// here: the trainer zeroes them once per step / evaluation).
//
// The reduction is deterministic (no atomics): a grid of at most XENT_MAX_BLOCKS
// blocks walks the rows in a fixed pattern, each block leaves its two partial
// sums in a scratch sized once at start-up (cuda_loss_init_: nothing is allocated
// on the hot path, so a CUDA graph capture of a step sees one fixed address), and
// one block adds them in a fixed tree. The same inputs give the same bits every
// run, as deterministic mode promises for the reported loss.
#include <limits.h>
#include <math.h>
#include "backend/cuda/cuda-impl.cuh"
#include "backend/cuda/reduce.cuh"

#define XENT_WARPS 16        // rows per block and pass: one warp per row, any number of classes
#define XENT_MAX_BLOCKS 1024 // 16 Ki warps in flight: more than an H100/H200 holds at once

static double *xent_part_; // (XENT_MAX_BLOCKS, 2): each block's loss and correct count

cudaError_t cuda_loss_init_(void)
{
    if (xent_part_) return cudaSuccess;
    void *p = nullptr;
    const cudaError_t e = cudaMalloc(&p, (size_t)XENT_MAX_BLOCKS * 2 * sizeof(double));
    if (e == cudaSuccess) xent_part_ = static_cast<double *>(p);
    return e;
}

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
                               float grad_scale, float *dlogits, double *__restrict__ part)
{
    __shared__ double s_loss[XENT_WARPS], s_ok[XENT_WARPS];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    double loss = 0.0, ok = 0.0; // lane 0's sums over this warp's rows, in row order
    for (long long r0 = (long long)blockIdx.x * XENT_WARPS; r0 < rows; r0 += (long long)gridDim.x * XENT_WARPS) {
        const long long r = r0 + warp;
        if (r >= rows) continue; // warp-uniform: the whole warp skips the row or none of it
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
            loss += valid ? lse - xy : (double)NAN;
            ok += arg == y ? 1.0 : 0.0;
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
    // the block's partials, warps in order
    if (lane == 0) { s_loss[warp] = loss; s_ok[warp] = ok; }
    __syncthreads();
    if (threadIdx.x == 0) {
        double l = 0.0, k = 0.0;
        for (int w = 0; w < XENT_WARPS; w++) { l += s_loss[w]; k += s_ok[w]; }
        part[2 * (size_t)blockIdx.x] = l;
        part[2 * (size_t)blockIdx.x + 1] = k;
    }
}

// One block of REDUCE_THREADS: stats += the blocks' partials, in a fixed tree.
__global__ void xent_finish_k(const double *__restrict__ part, int blocks, double *stats)
{
    __shared__ double sh[REDUCE_THREADS];
    double l = 0.0, k = 0.0;
    for (int b = threadIdx.x; b < blocks; b += REDUCE_THREADS) {
        l += part[2 * (size_t)b];
        k += part[2 * (size_t)b + 1];
    }
    l = block_sum_(l, sh);
    k = block_sum_(k, sh);
    if (threadIdx.x == 0) {
        stats[0] += l;
        stats[1] += k;
    }
}

void cuda_softmax_xent(const float *logits, const int32_t *labels, int rows, int classes, float grad_scale,
                       float *dlogits, double *stats)
{
    DLFS_ASSERT(rows >= 0 && classes > 0);
    DLFS_ASSERT_MSG(xent_part_, "dlfs_cuda_init_ first");
    if (!rows) return;
    const int need = (int)(((long long)rows + XENT_WARPS - 1) / XENT_WARPS);
    const int blocks = need < XENT_MAX_BLOCKS ? need : XENT_MAX_BLOCKS;
    softmax_xent_k<<<(unsigned)blocks, XENT_WARPS * 32, 0, cuda_ctx_.stream>>>(logits, labels, rows, classes,
                                                                               grad_scale, dlogits, xent_part_);
    CUDA_LAUNCH_CHECK();
    xent_finish_k<<<1, REDUCE_THREADS, 0, cuda_ctx_.stream>>>(xent_part_, blocks, stats);
    CUDA_LAUNCH_CHECK();
}
