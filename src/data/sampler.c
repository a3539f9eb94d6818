#include "dlfs/sampler.h"
#include "dlfs/util.h"

#define DLFS_KEY_SAMPLER 0x5a3bULL

void dlfs_sampler_permutation(uint64_t seed, int epoch, uint32_t *perm, size_t n)
{
    /* Fisher-Yates driven by the counter-based RNG: draw i depends only on
     * (seed, epoch, i). The modulo bias is below 2^-32 for n < 2^32. */
    const uint64_t key = dlfs_key(seed, DLFS_KEY_SAMPLER, (uint64_t)epoch);
    for (size_t i = 0; i < n; i++) perm[i] = (uint32_t)i;
    for (size_t i = n; i > 1; i--) {
        size_t j = (size_t)(dlfs_hash64(key, i) % i);
        uint32_t t = perm[i - 1];
        perm[i - 1] = perm[j];
        perm[j] = t;
    }
}
