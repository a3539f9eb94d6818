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

#ifdef __cplusplus
}
#endif

#endif
