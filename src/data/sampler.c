#include "dlfs/sampler.h"
#include "dlfs/util.h"

#define DLFS_KEY_SAMPLER 0x5a3bULL
#define DLFS_KEY_WINDOW 0x5a3cULL

/* Fisher-Yates driven by the counter-based RNG: draw i depends only on
 * (key, i). The modulo bias is below 2^-32 for n < 2^32. */
static void shuffle_(uint64_t key, uint32_t *a, size_t n)
{
    for (size_t i = n; i > 1; i--) {
        size_t j = (size_t)(dlfs_hash64(key, i) % i);
        uint32_t t = a[i - 1];
        a[i - 1] = a[j];
        a[j] = t;
    }
}

void dlfs_sampler_permutation(uint64_t seed, int epoch, uint32_t *perm, size_t n)
{
    for (size_t i = 0; i < n; i++) perm[i] = (uint32_t)i;
    shuffle_(dlfs_key(seed, DLFS_KEY_SAMPLER, (uint64_t)epoch), perm, n);
}

void dlfs_sampler_chunks(uint64_t seed, int epoch, uint32_t *order, size_t nchunks)
{
    for (size_t i = 0; i < nchunks; i++) order[i] = (uint32_t)i;
    shuffle_(dlfs_key(seed, DLFS_KEY_WINDOW, (uint64_t)epoch), order, nchunks);
}

void dlfs_sampler_windowed(uint64_t seed, int epoch, uint32_t *perm, size_t n, size_t chunk_rows,
                           size_t window_chunks, uint32_t *order)
{
    const size_t nchunks = (n + chunk_rows - 1) / chunk_rows;
    dlfs_sampler_chunks(seed, epoch, order, nchunks);
    size_t at = 0;
    for (size_t w0 = 0; w0 < nchunks; w0 += window_chunks) {
        const size_t begin = at, w1 = w0 + window_chunks < nchunks ? w0 + window_chunks : nchunks;
        for (size_t k = w0; k < w1; k++) {
            const size_t r0 = (size_t)order[k] * chunk_rows, r1 = r0 + chunk_rows < n ? r0 + chunk_rows : n;
            for (size_t r = r0; r < r1; r++) perm[at++] = (uint32_t)r;
        }
        /* window w's own key: its order does not depend on the other windows */
        const uint64_t key = dlfs_key(dlfs_key(seed, DLFS_KEY_WINDOW, (uint64_t)epoch), DLFS_KEY_SAMPLER,
                                      (uint64_t)(w0 / window_chunks));
        shuffle_(key, perm + begin, at - begin);
    }
}
