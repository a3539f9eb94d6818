/* Counter-based random numbers from the splitmix64 finaliser (Steele et al.,
 * "Fast splittable pseudorandom number generators", 2014): a strong 64-bit mixer,
 * applied to key ^ counter * odd constant. Stateless, hence reproducible on any
 * rank count and in any order. */
#include "dlfs/util.h"

static inline uint64_t mix64_(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

uint64_t dlfs_hash64(uint64_t key, uint64_t counter)
{
    return mix64_(mix64_(key + 0x9e3779b97f4a7c15ULL) ^ (counter * 0xd1b54a32d192ed03ULL + 0x632be59bd9b4e019ULL));
}

float dlfs_uniform01(uint64_t key, uint64_t counter)
{
    return (float)(dlfs_hash64(key, counter) >> 40) * (1.0f / 16777216.0f);
}

uint64_t dlfs_key(uint64_t a, uint64_t b, uint64_t c)
{
    return dlfs_hash64(dlfs_hash64(a, b), c);
}
