/* Batch assembly from a dataset already in (host) memory: the twin of
 * src/backend/cuda/data.cu. */
#include "backend/cpu/cpu-impl.h"

void cpu_gather_u8(float *dst, int32_t *labels_out, const uint8_t *images, const uint8_t *labels,
                   const uint32_t *idx, int rows, int channels, size_t plane, const double *mean,
                   const double *std)
{
    const size_t dim = (size_t)channels * plane;
    for (int i = 0; i < rows; i++) {
        /* one image at a time through the same loop as the staged path: same bits */
        cpu_normalize_u8(dst + (size_t)i * dim, images + (size_t)idx[i] * dim, 1, channels, plane, mean, std);
        labels_out[i] = labels[idx[i]];
    }
}
