/* dlfs — gradient synchronisation: the gradient slab(s) a step's backward passes
 * write, their sum across ranks, and the sum of the batch-norm statistics.
 *
 * Fast mode: every pass writes one slab; buckets of it start their sums while
 * the backward pass goes on (the layer hook), through the transport chosen when
 * the run was set up (comm.h). Deterministic mode: pass p (one virtual shard)
 * writes its own slab; after the last pass the slabs are summed pairwise in a
 * binary tree on this rank (the lower levels of the fixed tree over shards), and
 * the det_tree transport finishes the tree across ranks. Either way the summed
 * gradients end in dlfs_gsync_grads(). */
#ifndef DLFS_GRADSYNC_H
#define DLFS_GRADSYNC_H

#include <stdbool.h>
#include <stddef.h>
#include "dlfs/backend.h"
#include "dlfs/comm.h"
#include "dlfs/model.h"
#include "dlfs/status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define DLFS_MAX_PASSES 64

struct dlfs_gradsync {
    const struct dlfs_comm *comm;
    const struct dlfs_backend *be;
    size_t n;                            /* parameters */
    int passes;                          /* slabs: V/P in deterministic mode, else 1 */
    float *grads[DLFS_MAX_PASSES];       /* (n) each, backend memory; grads[0] ends summed */
    size_t layer_off[DLFS_MAX_LAYERS];   /* where each layer's parameters start (the hook's bucket bound) */
    int num_layers;
    struct dlfs_buckets buckets;
    size_t nbuf;                         /* batch-norm running statistics (model.num_buffers) */
    float *bstats[DLFS_MAX_PASSES];      /* (nbuf) per pass: sums of its groups' batch statistics */
    float *bhost;                        /* (nbuf + (nbuf + 1) / 2) host staging and scratch */
    double t_comm;                       /* seconds summing, accumulated (the caller resets it) */
};

/* Slabs for `passes` passes of model m, buckets of bucket_bytes, summed by
 * transport tp (dlfs_transport_det_tree in deterministic mode). For the NCCL
 * transport pass the context from dlfs_nccl_open (owned from here on, also when
 * this fails). Not collective: the caller agrees on the status. */
enum dlfs_status dlfs_gsync_init(struct dlfs_gradsync *g, const struct dlfs_comm *c, const struct dlfs_backend *be,
                                 const struct dlfs_model *m, int passes, size_t bucket_bytes,
                                 const struct dlfs_transport_ops *tp, void *nccl_ctx);
void dlfs_gsync_free(struct dlfs_gradsync *g);

/* The slab pass p's backward pass writes. */
float *dlfs_gsync_slab(struct dlfs_gradsync *g, int pass);
/* The hook dlfs_model_backward calls after each layer (ctx = g): starts the sums
 * of the buckets it completed. NULL where sums wait for the last pass. */
void (*dlfs_gsync_hook(const struct dlfs_gradsync *g))(int layer, void *ctx);
/* After the last pass: the sum over passes and ranks, into dlfs_gsync_grads(). */
void dlfs_gsync_reduce(struct dlfs_gradsync *g);
float *dlfs_gsync_grads(struct dlfs_gradsync *g);
/* The batch-norm statistics sums of pass p (NULL without batch norm). */
float *dlfs_gsync_bn_slot(struct dlfs_gradsync *g, int pass);
/* Running statistics: every group of `group` rows of the global batch (one
 * virtual shard) added its mean and variance to its pass's slot; sum them in the
 * same fixed order as the gradients (deterministic mode: the same bits on any
 * rank count), average, and blend into bufs with momentum 0.1. */
void dlfs_gsync_running_stats(struct dlfs_gradsync *g, float *bufs, int global_batch, int group);
/* The path that ran, for banners and metrics: the transport's name, or "none"
 * when one rank sums nothing over MPI. */
const char *dlfs_gsync_name(const struct dlfs_gradsync *g);

#ifdef __cplusplus
}
#endif

#endif
