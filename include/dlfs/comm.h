/* dlfs — communication between ranks.
 *
 * MPI is always the launcher and bootstrap (even for one rank). A communicator
 * has a kind: `self` (one rank, every collective is a no-op) or `mpi` (host
 * buffers); `nccl` (device buffers) plugs in with the CUDA backend.
 *
 * Two all-reduce flavours over float gradients:
 *   - fast: non-blocking sums in any order (MPI_Iallreduce), started per bucket
 *     while the backward pass continues (dlfs_buckets_*);
 *   - deterministic: recursive halving (reduce-scatter) then recursive doubling
 *     (all-gather) with partner distance 1, 2, 4, ... — the upper levels of one
 *     fixed binary tree over the virtual shards, so 1, 2, 4, 8 ranks produce the
 *     same bits (README, "Deterministic mode").
 */
#ifndef DLFS_COMM_H
#define DLFS_COMM_H

#include <mpi.h>
#include <stddef.h>
#include <stdint.h>
#include "dlfs/status.h"

enum dlfs_comm_kind { DLFS_COMM_SELF = 0, DLFS_COMM_MPI, DLFS_COMM_KIND_COUNT };

struct dlfs_comm {
    enum dlfs_comm_kind kind;
    MPI_Comm world;          /* a duplicate of MPI_COMM_WORLD */
    int rank, size;          /* world rank and size */
    int local_rank, local_size; /* within the node (MPI_COMM_TYPE_SHARED) */
    char host[64];
};

/* After MPI_Init: fill rank/size/local rank and pick `self` or `mpi`. */
enum dlfs_status dlfs_comm_init(struct dlfs_comm *c);
void dlfs_comm_free(struct dlfs_comm *c);

/* Blocking sum of n floats / doubles in place (any order). */
void dlfs_comm_allreduce_f32(const struct dlfs_comm *c, float *buf, size_t n);
void dlfs_comm_allreduce_f64(const struct dlfs_comm *c, double *buf, size_t n);

/* Deterministic in-place sum across ranks (see above). P must be a power of two.
 * `scratch` holds at least (n + 1) / 2 floats. Every rank ends with identical bits. */
void dlfs_comm_allreduce_det(const struct dlfs_comm *c, float *buf, size_t n, float *scratch);

/* Agreement on a local status: returns DLFS_OK when every rank passed DLFS_OK.
 * Otherwise every rank returns the failing status, and the message of the
 * lowest failing rank becomes the recorded
 * message on every rank, so rank 0 can print it once (prefixed "rank R" when
 * only some ranks failed). Collective. */
enum dlfs_status dlfs_comm_agree(const struct dlfs_comm *c, enum dlfs_status local);

/* Compare a 64-bit value across ranks; returns 1 when all ranks hold the same
 * value, else 0 and (first_bad) the lowest rank whose value differs from rank 0. */
int dlfs_comm_same_u64(const struct dlfs_comm *c, uint64_t v, int *first_bad);

/* 1 when `flag` is non-zero on any rank (a signal seen by one rank stops all). */
int dlfs_comm_any(const struct dlfs_comm *c, int flag);

/* Gradient buckets for the fast all-reduce: the slab [0, n) is cut, from the end,
 * into buckets of at least `bucket_bytes` aligned to layer boundaries, so the
 * last layers' gradients (complete first in the backward pass) form the first
 * bucket. dlfs_buckets_ready(b, off) starts every bucket lying wholly at or after
 * slab offset `off` (call it when every gradient from `off` on is final);
 * dlfs_buckets_wait() completes them all and returns the seconds spent waiting. */
struct dlfs_buckets {
    const struct dlfs_comm *comm;
    float *grads;
    int count, started;
    size_t *begin, *end;   /* bucket i covers [begin[i], end[i]), i = 0 is the slab's tail */
    MPI_Request *req;
};
void dlfs_buckets_init(struct dlfs_buckets *b, const struct dlfs_comm *c, float *grads,
                       const size_t *boundaries, int num_boundaries, size_t n, size_t bucket_bytes);
void dlfs_buckets_free(struct dlfs_buckets *b);
void dlfs_buckets_ready(struct dlfs_buckets *b, size_t off);
/* Let MPI progress the started reductions (cheap; call between layers). */
void dlfs_buckets_poke(struct dlfs_buckets *b);
double dlfs_buckets_wait(struct dlfs_buckets *b);

#endif
