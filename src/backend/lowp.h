/* Reduced-precision GEMM operands: the rounding both backends share.
 *
 * One definition for gcc (CPU backend, tests) and nvcc (CUDA kernels), so that the
 * CPU emulation of --precision bf16/tf32 rounds every operand to exactly the bits
 * the GPU feeds its tensor cores (bf16; see gemm.cu for tf32). Round to nearest,
 * ties to even, on the bit pattern: this is also right for subnormals (bf16 and
 * tf32 have fp32's exponent range), overflows to +-inf past the largest finite
 * value, keeps +-inf, and keeps NaN a (quiet) NaN with its sign.
 */
#ifndef DLFS_LOWP_H
#define DLFS_LOWP_H

#include <stdint.h>
#include <string.h>

#ifdef __CUDACC__
#define DLFS_HD __host__ __device__
#else
#define DLFS_HD
#endif

static inline DLFS_HD uint32_t dlfs_f32_bits(float x)
{
#ifdef __CUDA_ARCH__
    return __float_as_uint(x);
#else
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    return u;
#endif
}

static inline DLFS_HD float dlfs_f32_from_bits(uint32_t u)
{
#ifdef __CUDA_ARCH__
    return __uint_as_float(u);
#else
    float x;
    memcpy(&x, &u, sizeof x);
    return x;
#endif
}

/* The bf16 nearest to x (ties to even): its 16 bits (sign, 8 exponent, 7 mantissa). */
static inline DLFS_HD uint16_t dlfs_bf16_bits(float x)
{
    uint32_t u = dlfs_f32_bits(x);
    if ((u & 0x7fffffffu) > 0x7f800000u) /* NaN: truncating could make it inf; set the quiet bit */
        return (uint16_t)((u >> 16) | 0x0040u);
    u += 0x7fffu + ((u >> 16) & 1u); /* carries into the exponent where it must (incl. to inf) */
    return (uint16_t)(u >> 16);
}

/* x rounded to bf16 and widened back to float (exact). */
static inline DLFS_HD float dlfs_round_bf16(float x)
{
    return dlfs_f32_from_bits((uint32_t)dlfs_bf16_bits(x) << 16);
}

/* x rounded to tf32 (fp32 with a 10-bit mantissa: the low 13 bits zero), ties to even. */
static inline DLFS_HD float dlfs_round_tf32(float x)
{
    uint32_t u = dlfs_f32_bits(x);
    if ((u & 0x7fffffffu) > 0x7f800000u) return dlfs_f32_from_bits((u | 0x00400000u) & ~0x1fffu);
    u += 0x0fffu + ((u >> 13) & 1u);
    return dlfs_f32_from_bits(u & ~0x1fffu);
}

#endif
