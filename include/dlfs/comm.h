/* dlfs — communication between ranks.
 *
 * MPI is always the launcher and bootstrap (even for one rank). A communicator
 * has a kind: `self` (one rank, every collective is a no-op) or `mpi`. Every
 * host-side collective (status agreement, evaluation sums, digests, the
 * deterministic reduction) goes over MPI. Gradient buckets travel by one of the
 * transports below (--comm: MPI on host buffers, MPI staged through pinned host
 * memory for device buffers, NCCL on device buffers, or the deterministic tree);
 * NCCL comes from the backend (dlfs_backend_nccl), never from an #ifdef here.
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

/* The gradient transports, ONE row each, in order of preference:
 *   X(NAMES|JOINS, path, word, ops)
 * NAMES: the row gives --comm the choice `word` (and the enum constant `path`);
 * JOINS: the row is one more transport under the word of `path`, named by another
 * row (word ""). `ops` is the table its own file defines (struct dlfs_transport_ops:
 * what it does, its flags, whether it applies to a run). --comm's names, its --help
 * argument, the enum below and the choice (dlfs_transport_choose: the first row of
 * the asked path that applies) are all generated from these rows, so a new
 * transport is its file and one row (src/README.md, Adding a transport). */
#define DLFS_TRANSPORTS(X)                                             \
    X(NAMES, DLFS_COMM_PATH_MPI, "mpi", dlfs_transport_mpi_host)       \
    X(NAMES, DLFS_COMM_PATH_NCCL, "nccl", dlfs_transport_nccl)         \
    X(JOINS, DLFS_COMM_PATH_MPI, "", dlfs_transport_det_tree)          \
    X(JOINS, DLFS_COMM_PATH_MPI, "", dlfs_transport_mpi_staged)

#define DLFS_TP_ENUM_NAMES(path, word) path,
#define DLFS_TP_ENUM_JOINS(path, word)
#define DLFS_TP_WORD_NAMES(path, word) word,
#define DLFS_TP_WORD_JOINS(path, word)
#define DLFS_TP_ENUM_(kind, path, word, ops) DLFS_TP_ENUM_##kind(path, word)
#define DLFS_TP_WORD_(kind, path, word, ops) DLFS_TP_WORD_##kind(path, word)

/* How gradient buckets are summed (--comm). AUTO is an option value only: the run
 * resolves it to the first transport that applies (dlfs_transport_choose). */
enum dlfs_comm_path { DLFS_COMM_PATH_AUTO = 0, DLFS_TRANSPORTS(DLFS_TP_ENUM_) DLFS_COMM_PATH_COUNT };
/* --comm's names, in enum order (options.h) */
#define DLFS_COMM_PATH_NAMES "auto", DLFS_TRANSPORTS(DLFS_TP_WORD_)
const char *dlfs_comm_path_name(enum dlfs_comm_path p);

struct dlfs_comm {
    enum dlfs_comm_kind kind;
    MPI_Comm world;          /* a duplicate of MPI_COMM_WORLD */
    int rank, size;          /* world rank and size */
    int local_rank, local_size; /* within the node (MPI_COMM_TYPE_SHARED) */
    char host[64];
    double timeout_s;        /* bound on every wait for other ranks (--comm-timeout); 0: forever */
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
/* Its two halves. reduce_scatter: recursive halving, after which this rank's
 * segment (dlfs_comm_det_segment) holds the sum — the same bits the all-reduce
 * gives there; the rest of buf is scratch. allgather: recursive doubling, which
 * hands every rank's segment to everyone (plain copies). */
void dlfs_comm_reduce_scatter_det(const struct dlfs_comm *c, float *buf, size_t n, float *scratch);
void dlfs_comm_allgather_det(const struct dlfs_comm *c, float *buf, size_t n);
/* The segment [lo, hi) of n values rank `rank` of `size` holds after the halving. */
void dlfs_comm_det_segment(int size, int rank, size_t n, size_t *lo, size_t *hi);

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
/* The bitwise OR of every rank's flags; bounded by c->timeout_s. */
int dlfs_comm_or(const struct dlfs_comm *c, int flags);

/* Node-wide duplicates: every rank passes a key of `len` <= 32 bytes (e.g. the
 * UUID of its GPU) or NULL (nothing to compare). Returns 1 when another rank on
 * the same host passed the same key, with the lowest such rank in *other; else 0.
 * Collective (every rank must call it, with or without a key). */
int dlfs_comm_node_duplicate(const struct dlfs_comm *c, const void *key, size_t len, int *other);

/* Complete `n` MPI requests, bounded by c->timeout_s (0: no deadline). A request
 * still open at the deadline means a peer is stuck or dead: dlfs_fatal names this
 * rank and `what` and ends the job (it cannot be agreed: the peer never answers).
 * SIGTERM/SIGUSR1 arriving while a wait has already lasted 5 s end the job too
 * (exit code 4): a stuck peer must not keep a job from stopping. */
void dlfs_comm_wait(const struct dlfs_comm *c, int n, MPI_Request *req, const char *what);

/* Bounded variants of three MPI collectives (--comm-timeout): a barrier, the
 * maximum of n doubles in place, and a broadcast of `bytes` bytes from `root`. */
void dlfs_comm_barrier(const struct dlfs_comm *c, const char *what);
void dlfs_comm_max_f64(const struct dlfs_comm *c, double *buf, int n);
void dlfs_comm_bcast(const struct dlfs_comm *c, void *buf, int bytes, int root, const char *what);

/* Part of a slab, as segments in slab order: the parameters an optimizer updates.
 * Without ZeRO one segment, the whole slab; with ZeRO-1 this rank's shard
 * (dlfs_buckets_shard). `shared` segments are updated by every rank alike, the
 * others by this rank only. */
struct dlfs_seg {
    size_t off, len;
    bool shared;
};
struct dlfs_shard {
    int count;
    struct dlfs_seg *seg;        /* (count) */
    size_t total;                /* values in all segments */
};

/* ---- gradient buckets and their transports ---------------------------------------
 *
 * The gradient slab [0, n) is cut, from the end, into buckets of at least
 * `bucket_bytes` aligned to layer boundaries, so the last layers' gradients
 * (complete first in the backward pass) form the first bucket. As the backward
 * pass completes gradients, dlfs_buckets_ready(b, off) starts every bucket lying
 * wholly at or after slab offset `off`; dlfs_buckets_wait() starts the rest and
 * completes them all, bounded by comm->timeout_s.
 *
 * How a bucket travels is a transport, one table each (as nccl-tests keeps one
 * table per collective), chosen once when the run is set up from the rows of
 * DLFS_TRANSPORTS (above):
 *   dlfs_transport_mpi_host    MPI_Iallreduce on host memory (the CPU backend);
 *   dlfs_transport_nccl        ncclAllReduce on the device, on NCCL's own stream
 *                              (also on one rank: the path the tests run is real);
 *   dlfs_transport_det_tree    deterministic mode: one bucket, the whole slab,
 *                              summed by dlfs_comm_allreduce_det on host memory;
 *   dlfs_transport_mpi_staged  device memory MPI cannot read: each ready bucket is
 *                              copied to pinned host memory on the backend's copy
 *                              stream, MPI_Iallreduce'd once the copy has landed,
 *                              and the sums go back to the device in wait.
 * Only NCCL and mpi_staged both apply to one run (fast mode on several GPU ranks
 * with NCCL built, --comm auto): NCCL, the earlier row, carries it.
 * On one rank (DLFS_COMM_SELF) the MPI transports sum nothing. Each keeps its
 * state private, behind b->ctx (open allocates it, free releases it).
 *
 * ZeRO-1 (b->zero, set before the first bucket starts): a bucket of L values is
 * reduce-scattered instead: rank r receives the sums of its part, the r-th of P
 * equal parts of floor(L/P) values, and the last L mod P values are all-reduced
 * (every rank updates them). The optimizer then updates only this rank's shard
 * (dlfs_buckets_shard), and `gather` hands the updated parts of the parameters to
 * every rank. det_tree instead keeps the recursive halving's segment of the whole
 * slab (dlfs_comm_det_segment): the same additions as its all-reduce, so the same
 * bits. */
struct dlfs_buckets;

/* What a run asks of its transport: the choice is made from this alone. */
struct dlfs_transport_want {
    const struct dlfs_backend *be;   /* the backend holding the gradients */
    enum dlfs_comm_path comm;        /* --comm */
    bool deterministic;              /* --deterministic: the fixed-order sum */
    int ranks;
    const char *device;              /* --device as given, for messages */
    const struct dlfs_nccl_api *nccl; /* the backend's NCCL, NULL without */
};

/* Row flags. */
#define DLFS_TP_DETERMINISTIC 1u /* the fixed-order sum of deterministic mode: one bucket, the whole slab */
#define DLFS_TP_ALWAYS_SUMS 2u   /* sums on one rank too (outside a recorded graph; its name, not "none") */

struct dlfs_transport_ops {
    const char *name;                                   /* "mpi", "mpi-staged", "nccl", "mpi-tree" */
    unsigned flags;                                     /* DLFS_TP_* */
    /* 1: it carries the gradients of a run asking `w`; 0: not; -1 (message set):
     * --comm names it, but it cannot run here. */
    int (*applies)(const struct dlfs_transport_want *w);
    /* optional, collective, before the objects are made: what open takes over
     * (NCCL: the communicator, dlfs_nccl_open); `discard` frees one never opened */
    enum dlfs_status (*prepare)(const struct dlfs_comm *c, const struct dlfs_backend *be, void **arg);
    void (*discard)(const struct dlfs_backend *be, void *arg);
    /* resources, b->ctx (not collective; the caller agrees); takes `arg` over, also
     * when it fails (dlfs_buckets_free then releases what it holds) */
    enum dlfs_status (*open)(struct dlfs_buckets *b, void *arg);
    void (*start)(struct dlfs_buckets *b, int i);       /* bucket i's gradients are final: start its sum */
    void (*progress)(struct dlfs_buckets *b);           /* let started sums move on; never blocks */
    int (*test)(struct dlfs_buckets *b, int i);         /* optional: 1 once bucket i's sum is done (timelines) */
    void (*wait)(struct dlfs_buckets *b);               /* every started sum complete (bounded) */
    void (*gather)(struct dlfs_buckets *b, float *params); /* ZeRO-1: every rank's part of params to all */
    void (*free)(struct dlfs_buckets *b);               /* releases b->ctx */
};
#define DLFS_TP_DECL_(kind, path, word, ops) extern const struct dlfs_transport_ops ops;
DLFS_TRANSPORTS(DLFS_TP_DECL_)

/* The transport of a run asking `w`: the first row of DLFS_TRANSPORTS whose path
 * is w->comm (any, for auto) and that applies. DLFS_ERR_DEVICE with the row's
 * message when the asked one cannot run here. Not collective. */
enum dlfs_status dlfs_transport_choose(const struct dlfs_transport_want *w, const struct dlfs_transport_ops **out);
/* The path (--comm word) a transport belongs to. */
enum dlfs_comm_path dlfs_transport_path(const struct dlfs_transport_ops *tp);

struct dlfs_buckets {
    const struct dlfs_comm *comm;
    float *grads;                  /* (n) the slab summed in place */
    size_t n;
    int count, started;
    size_t *begin, *end;           /* bucket i covers [begin[i], end[i]); i = 0 is the slab's tail */
    const struct dlfs_transport_ops *tp;
    const struct dlfs_backend *be; /* the backend owning `grads` */
    int zero;                      /* ZeRO-1: sums are reduce-scattered (dlfs_buckets_shard) */
    double *t_start;               /* timelines: when each bucket's sum started (0: done or not traced) */
    void *ctx;                     /* the transport's own state (its open/free) */
};

/* The layout over `grads` (n floats of backend `be` memory), with transport `tp`
 * (NULL: mpi_host), opened with `arg` (tp->prepare's; NULL without). A
 * DLFS_TP_DETERMINISTIC transport takes one bucket whatever the boundaries.
 * DLFS_ERR_NOMEM / DLFS_ERR_USAGE with a message when the transport cannot get
 * its resources; not collective. */
enum dlfs_status dlfs_buckets_init(struct dlfs_buckets *b, const struct dlfs_comm *c, const struct dlfs_backend *be,
                                   float *grads, const size_t *boundaries, int num_boundaries, size_t n,
                                   size_t bucket_bytes, const struct dlfs_transport_ops *tp, void *arg);
void dlfs_buckets_free(struct dlfs_buckets *b);
void dlfs_buckets_ready(struct dlfs_buckets *b, size_t off);
/* Let the started sums progress (cheap, never blocks; call between layers). */
void dlfs_buckets_poke(struct dlfs_buckets *b);
/* Start what is left, complete everything; returns the seconds spent waiting. */
double dlfs_buckets_wait(struct dlfs_buckets *b);

/* ZeRO-1: the shard of rank `rank` under this layout and transport (segments in
 * slab order; out->seg allocated, the caller frees it). Without b->zero, or on one
 * rank: the whole slab. */
void dlfs_buckets_shard(const struct dlfs_buckets *b, int rank, struct dlfs_shard *out);
/* ZeRO-1, after the update: every rank's updated part of params (n values of the
 * slab's backend memory) to every rank; bounded like the sums. */
void dlfs_buckets_gather(struct dlfs_buckets *b, float *params);

/* NCCL's set-up over MPI (the nccl transport's prepare), every wait bounded by
 * c->timeout_s: rank 0 makes the id, a bounded broadcast hands it out, every rank
 * starts joining and polls until the communicator is up. A peer that never joins
 * makes the others give up after the timeout (their contexts aborted) instead of
 * hanging. Collective; every rank returns the same status (DLFS_ERR_COMM with
 * NCCL's reason). *ctx is for the transport's open (dlfs_buckets_init), which
 * takes it over; dlfs_buckets_free releases it. */
enum dlfs_status dlfs_nccl_open(const struct dlfs_comm *c, const struct dlfs_nccl_api *api, void **ctx);

#ifdef __cplusplus
}
#endif

#endif
