/* Counter-based random numbers from the splitmix64 finaliser (Steele et al.,
 * "Fast splittable pseudorandom number generators", 2014): a strong 64-bit mixer,
 * applied to key ^ counter * odd constant. Stateless, hence reproducible on any
 * rank count and in any order. */
#include "dlfs/util.h"
#include "core/rng-hd.h" /* the arithmetic, shared with the CUDA kernels */

uint64_t dlfs_hash64(uint64_t key, uint64_t counter) { return dlfs_hash64_hd_(key, counter); }

float dlfs_uniform01(uint64_t key, uint64_t counter) { return dlfs_uniform01_hd_(key, counter); }

uint64_t dlfs_key(uint64_t a, uint64_t b, uint64_t c)
{
    return dlfs_hash64(dlfs_hash64(a, b), c);
}
