/* The counter-based RNG (dlfs/util.h) as inline functions that gcc and nvcc both
 * compile: src/core/rng.c wraps them for C callers, and CUDA kernels call them
 * directly (dropout), so host and device draws are the same bits by construction.
 * Integer arithmetic only, plus one exact int->float conversion and a multiply by
 * a power of two: no rounding mode or FMA contraction can change a result. */
#ifndef DLFS_RNG_HD_H
#define DLFS_RNG_HD_H

#include <stdint.h>

/* __host__ __device__ under nvcc, nothing under a C compiler. */
#ifndef DLFS_HD
#ifdef __CUDACC__
#define DLFS_HD __host__ __device__
#else
#define DLFS_HD
#endif
#endif

/* the splitmix64 finaliser (Steele et al., 2014) */
DLFS_HD static inline uint64_t dlfs_mix64_hd_(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

DLFS_HD static inline uint64_t dlfs_hash64_hd_(uint64_t key, uint64_t counter)
{
    return dlfs_mix64_hd_(dlfs_mix64_hd_(key + 0x9e3779b97f4a7c15ULL) ^
                          (counter * 0xd1b54a32d192ed03ULL + 0x632be59bd9b4e019ULL));
}

/* 24 random bits -> [0, 1), exact in float32 */
DLFS_HD static inline float dlfs_uniform01_hd_(uint64_t key, uint64_t counter)
{
    return (float)(dlfs_hash64_hd_(key, counter) >> 40) * (1.0f / 16777216.0f);
}

#endif
