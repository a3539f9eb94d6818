/* dlfs — the epoch sampler.
 *
 * One permutation of the training set per epoch, a pure function of (seed, epoch),
 * so every rank computes the same one without communication. Global batch b of
 * the epoch is perm[b*B, (b+1)*B); rank r takes rows [r*B/P, (r+1)*B/P) of it
 * (in deterministic mode: virtual shard g = its rows [g*B/V, (g+1)*B/V)). The
 * last N mod B samples of each epoch's permutation are not used in that epoch
 * (they are different samples in every epoch), whatever the rank count. */
#ifndef DLFS_SAMPLER_H
#define DLFS_SAMPLER_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

void dlfs_sampler_permutation(uint64_t seed, int epoch, uint32_t *perm, size_t n);

/* The windowed shuffle of a streamed split (--data-cache): the split is cut into
 * chunks of `chunk_rows` consecutive samples (the last may be shorter); the
 * chunks are put in the order dlfs_sampler_chunks gives (a permutation of the
 * chunk numbers from (seed, epoch)); windows of `window_chunks` consecutive
 * chunks of that order are formed, and the samples of each window are shuffled
 * among themselves (window w's shuffle from (seed, epoch, w)). perm gets all n
 * samples, window after window. `order` is scratch of ceil(n / chunk_rows)
 * entries and holds the chunk order on return. A pure function of (seed, epoch,
 * n, chunk_rows, window_chunks): the rank count plays no part. */
void dlfs_sampler_chunks(uint64_t seed, int epoch, uint32_t *order, size_t nchunks);
void dlfs_sampler_windowed(uint64_t seed, int epoch, uint32_t *perm, size_t n, size_t chunk_rows,
                           size_t window_chunks, uint32_t *order);

#ifdef __cplusplus
}
#endif

#endif
