/* dlfs — communication between ranks.
 *
 * MPI is always the launcher and bootstrap (even for one rank). A communicator
 * has a kind: `self` (one rank, every collective is a no-op) or `mpi`. Every
 * host-side collective (status agreement, evaluation sums, digests, the
 * deterministic reduction) goes over MPI. Gradient buckets take one of two
 * paths (enum dlfs_comm_path, --comm): MPI (host buffers as they are; device
 * buffers staged through pinned host memory) or NCCL (device buffers, on its own
 * CUDA stream; src/comm/nccl.c is the seam to src/backend/cuda/nccl.cu).
 *
 * Two all-reduce flavours over float gradients:
 *   - fast: non-blocking sums in any order (MPI_Iallreduce), started per bucket
 *     while the backward pass continues (dlfs_buckets_*);
 *   - deterministic: recursive halving (reduce-scatter) then recursive doubling
 *     (all-gather) with partner distance 1, 2, 4, ... — the upper levels of one
 *     fixed binary tree over the virtual shards, so 1, 2, 4, 8 ranks produce the
 *     same bits (src/README.md, "Deterministic mode").
 */
#ifndef DLFS_COMM_H
#define DLFS_COMM_H

/* From C++, only MPI's C API: Open MPI's and MPICH's deprecated C++ bindings
 * would otherwise need their own library at link time. */
#if defined(__cplusplus) && !defined(OMPI_SKIP_MPICXX)
#define OMPI_SKIP_MPICXX 1
#endif
#if defined(__cplusplus) && !defined(MPICH_SKIP_MPICXX)
#define MPICH_SKIP_MPICXX 1
#endif
#include <mpi.h>
#include <stddef.h>
#include <stdint.h>
#include "dlfs/backend.h"
#include "dlfs/status.h"

#ifdef __cplusplus
extern "C" {
#endif

enum dlfs_comm_kind { DLFS_COMM_SELF = 0, DLFS_COMM_MPI, DLFS_COMM_KIND_COUNT };

/* How gradient buckets are summed (--comm). AUTO is an option value only: the
 * run resolves it (NCCL for CUDA buffers when NCCL is built and the run is not
 * deterministic, else MPI). */
enum dlfs_comm_path { DLFS_COMM_PATH_AUTO = 0, DLFS_COMM_PATH_MPI, DLFS_COMM_PATH_NCCL, DLFS_COMM_PATH_COUNT };
const char *dlfs_comm_path_name(enum dlfs_comm_path p);

struct dlfs_comm {
    enum dlfs_comm_kind kind;
    MPI_Comm world;          /* a duplicate of MPI_COMM_WORLD */
    int rank, size;          /* world rank and size */
    int local_rank, local_size; /* within the node (MPI_COMM_TYPE_SHARED) */
    char host[64];
    double timeout_s;        /* bound on gradient waits (--comm-timeout); 0: wait forever */
};

/* After MPI_Init: fill rank/size/local rank and pick `self` or `mpi`. */
enum dlfs_status dlfs_comm_init(struct dlfs_comm *c);
void dlfs_comm_free(struct dlfs_comm *c);

/* Blocking sum of n floats / doubles in place (any order), bounded by c->timeout_s. */
void dlfs_comm_allreduce_f32(const struct dlfs_comm *c, float *buf, size_t n);
void dlfs_comm_allreduce_f64(const struct dlfs_comm *c, double *buf, size_t n);

/* Deterministic in-place sum across ranks (see above). P must be a power of two.
 * `scratch` holds at least (n + 1) / 2 floats. Every rank ends with identical bits.
 * Each exchange is bounded by c->timeout_s (dlfs_comm_wait). */
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

/* 1 when `flag` is non-zero on any rank (a signal seen by one rank stops all);
 * bounded by c->timeout_s. */
int dlfs_comm_any(const struct dlfs_comm *c, int flag);

/* Node-wide duplicates: every rank passes a key of `len` <= 32 bytes (e.g. the
 * UUID of its GPU) or NULL (nothing to compare). Returns 1 when another rank on
 * the same host passed the same key, with the lowest such rank in *other; else 0.
 * Collective (every rank must call it, with or without a key). */
int dlfs_comm_node_duplicate(const struct dlfs_comm *c, const void *key, size_t len, int *other);

/* Complete `n` MPI requests, bounded by c->timeout_s (0: MPI_Waitall). A request
 * still open at the deadline means a peer is stuck or dead: dlfs_fatal names this
 * rank and `what` and ends the job (it cannot be agreed: the peer never answers). */
void dlfs_comm_wait(const struct dlfs_comm *c, int n, MPI_Request *req, const char *what);

/* NCCL for gradient buckets (process-wide: one communicator per process, on the
 * GPU the CUDA backend selected). dlfs_comm_nccl_built: 1 when this dlfs has the
 * CUDA backend and NCCL. dlfs_comm_nccl_init: collective over c (rank 0 creates
 * the id, MPI broadcasts it); every rank returns the same status, DLFS_ERR_COMM
 * with NCCL's reason ("built without NCCL", "two ranks on one GPU", ...).
 * dlfs_comm_nccl_free: collective; a no-op when NCCL was not started. */
int dlfs_comm_nccl_built(void);
enum dlfs_status dlfs_comm_nccl_init(const struct dlfs_comm *c);
void dlfs_comm_nccl_free(void);
/* In-place sum of n device floats, ordered after the compute stream; returns at once. */
void dlfs_comm_nccl_allreduce(float *buf, size_t n);
/* Wait (bounded by c->timeout_s) for every sum started; later compute is ordered
 * after them. NCCL's asynchronous error or the deadline: abort NCCL, then
 * dlfs_fatal naming this rank. */
void dlfs_comm_nccl_wait(const struct dlfs_comm *c);

/* Gradient buckets for the fast all-reduce: the slab [0, n) is cut, from the end,
 * into buckets of at least `bucket_bytes` aligned to layer boundaries, so the
 * last layers' gradients (complete first in the backward pass) form the first
 * bucket. dlfs_buckets_ready(b, off) starts every bucket lying wholly at or after
 * slab offset `off` (call it when every gradient from `off` on is final);
 * dlfs_buckets_wait() completes them all (bounded by comm->timeout_s) and returns
 * the seconds spent waiting.
 *
 * After init the buckets sum host memory with MPI (the CPU backend). For device
 * gradients call dlfs_buckets_use() once:
 *   - NCCL: each ready bucket is ncclAllReduce'd on NCCL's stream (even on one
 *     rank: the same code path as on eight);
 *   - MPI with a backend whose memory MPI cannot read: each ready bucket is
 *     copied to pinned host memory on the backend's copy stream (be->stage_*),
 *     MPI_Iallreduce'd once that copy is done (checked in poke and wait), and
 *     the summed slab goes back to the device in wait, before the optimizer. */
struct dlfs_buckets {
    const struct dlfs_comm *comm;
    float *grads;
    int count, started;
    size_t *begin, *end;   /* bucket i covers [begin[i], end[i]), i = 0 is the slab's tail */
    MPI_Request *req;
    enum dlfs_comm_path path;      /* MPI (default) or NCCL */
    const struct dlfs_backend *be; /* MPI path, device memory: the backend that stages; else NULL */
    float *host;                   /* (n) pinned staging slab when be != NULL */
    size_t n;
    int sent;                      /* staged buckets whose MPI reduction has started */
};
void dlfs_buckets_init(struct dlfs_buckets *b, const struct dlfs_comm *c, float *grads,
                       const size_t *boundaries, int num_boundaries, size_t n, size_t bucket_bytes);
/* Device gradients (see above): DLFS_ERR_NOMEM when the pinned slab cannot be had.
 * Not collective; the caller agrees on the status. */
enum dlfs_status dlfs_buckets_use(struct dlfs_buckets *b, enum dlfs_comm_path path,
                                  const struct dlfs_backend *be);
void dlfs_buckets_free(struct dlfs_buckets *b);
void dlfs_buckets_ready(struct dlfs_buckets *b, size_t off);
/* Let MPI progress the started reductions and start those whose staging copy is
 * done (cheap, never blocks; call between layers). */
void dlfs_buckets_poke(struct dlfs_buckets *b);
double dlfs_buckets_wait(struct dlfs_buckets *b);

#ifdef __cplusplus
}
#endif

#endif
