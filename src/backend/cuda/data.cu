// The data side of the training step (the twin of src/backend/cpu/data.c): batch
// assembly from a dataset resident in GPU memory, asynchronous uploads from the
// pinned staging (pinned_alloc, stage.cu) of the batches that are not, the
// free-memory query that decides which, and the asynchronous read-back of the
// step's loss with the marks (events) that say when it has landed.
#include "backend/cuda/cuda-impl.cuh"

#define GATHER_THREADS 256

// Per-channel scale and offset by value, as in vec.cu's normalize_u8_k.
struct gather_coef {
    float s[DLFS_MAX_CHANNELS]; // 1 / (255 std)
    float o[DLFS_MAX_CHANNELS]; // -mean / std
};

// One block per (row, channel) plane of the batch: row r reads plane ch of image
// idx[r]. __fmul_rn/__fadd_rn keep the CPU's x * s + o rounding (no FMA), so this
// gives the bits of the staged path (to_device + normalize_u8) exactly.
__global__ void gather_u8_k(float *__restrict__ dst, int32_t *__restrict__ labels_out,
                            const uint8_t *__restrict__ images, const uint8_t *__restrict__ labels,
                            const uint32_t *__restrict__ idx, int rows, int channels, size_t plane,
                            gather_coef k)
{
    const size_t planes = (size_t)rows * (size_t)channels;
    for (size_t p = blockIdx.x; p < planes; p += gridDim.x) {
        const size_t r = p / (size_t)channels;
        const int ch = (int)(p % (size_t)channels);
        const size_t img = idx[r];
        const float s = k.s[ch], o = k.o[ch];
        const uint8_t *sp = images + (img * (size_t)channels + (size_t)ch) * plane;
        float *dp = dst + p * plane;
        for (size_t j = threadIdx.x; j < plane; j += blockDim.x) dp[j] = __fadd_rn(__fmul_rn((float)sp[j], s), o);
        if (ch == 0 && threadIdx.x == 0) labels_out[r] = (int32_t)labels[img];
    }
}

void cuda_gather_u8(float *dst, int32_t *labels_out, const uint8_t *images, const uint8_t *labels,
                    const uint32_t *idx, int rows, int channels, size_t plane, const double *mean,
                    const double *std)
{
    DLFS_ASSERT(channels >= 1 && channels <= DLFS_MAX_CHANNELS);
    if (rows <= 0 || !plane) return;
    gather_coef k;
    for (int ch = 0; ch < channels; ch++) { // the same float rounding as cpu_normalize_u8
        k.s[ch] = (float)(1.0 / (255.0 * std[ch]));
        k.o[ch] = (float)(-mean[ch] / std[ch]);
    }
    for (int ch = channels; ch < DLFS_MAX_CHANNELS; ch++) k.s[ch] = k.o[ch] = 0.0f;
    const size_t planes = (size_t)rows * (size_t)channels;
    const unsigned threads = plane >= GATHER_THREADS ? GATHER_THREADS : (unsigned)((plane + 31) / 32 * 32);
    size_t blocks = planes;
    if (blocks > (size_t)cuda_ctx_.sm_count * 32) blocks = (size_t)cuda_ctx_.sm_count * 32;
    gather_u8_k<<<(unsigned)blocks, threads, 0, cuda_ctx_.stream>>>(dst, labels_out, images, labels, idx, rows,
                                                                      channels, plane, k);
    CUDA_LAUNCH_CHECK();
}

// Ordered on the stream, no wait: the caller keeps `src` unchanged until the next
// sync / to_host (the table's contract).
void cuda_to_device_async(void *dst, const void *src, size_t bytes)
{
    if (bytes) CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, cuda_ctx_.stream));
}

// Device to pinned host memory, ordered on the stream, no wait: the bytes are
// there once a mark recorded after it has passed (cuda_mark_wait).
void cuda_to_host_async(void *dst, const void *src, size_t bytes)
{
    if (bytes) CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, cuda_ctx_.stream));
}

// Marks: one event each, created on first record (never while a graph records:
// the caller records outside the recording, the table's contract).
static cudaEvent_t marks_[DLFS_MARKS];

void cuda_mark_record(int k)
{
    DLFS_ASSERT(k >= 0 && k < DLFS_MARKS);
    if (!marks_[k]) CUDA_CHECK(cudaEventCreateWithFlags(&marks_[k], cudaEventDisableTiming));
    CUDA_CHECK(cudaEventRecord(marks_[k], cuda_ctx_.stream));
}

void cuda_mark_wait(int k)
{
    DLFS_ASSERT(k >= 0 && k < DLFS_MARKS);
    if (marks_[k]) CUDA_CHECK(cudaEventSynchronize(marks_[k])); // a fault in the step surfaces here
}

size_t cuda_mem_free(void)
{
    size_t free_b = 0, total_b = 0;
    CUDA_CHECK(cudaMemGetInfo(&free_b, &total_b));
    return free_b;
}
