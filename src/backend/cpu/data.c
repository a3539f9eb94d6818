/* Inputs: uint8 images normalised to float, staged (normalize_u8) or gathered from
 * a dataset already in (host) memory (gather_u8): the twin of
 * src/backend/cuda/data.cu. */
#include "backend/cpu/cpu-impl.h"

void cpu_normalize_u8(float *dst, const uint8_t *src, size_t n, int channels, size_t plane,
                      const double *mean, const double *std)
{
    for (int ch = 0; ch < channels; ch++) {
        /* (x/255 - mean)/std == x * s + o */
        const float s = (float)(1.0 / (255.0 * std[ch]));
        const float o = (float)(-mean[ch] / std[ch]);
        for (size_t i = 0; i < n; i++) {
            const uint8_t *sp = src + (i * channels + ch) * plane;
            float *dp = dst + (i * channels + ch) * plane;
            for (size_t j = 0; j < plane; j++) dp[j] = (float)sp[j] * s + o;
        }
    }
}

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
