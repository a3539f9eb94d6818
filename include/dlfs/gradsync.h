/* dlfs — gradient synchronisation: the gradient slab(s) a step's backward passes
 * write, their sum across ranks, and the sum of the batch-norm statistics.
 *
 * Fast mode: pass 0 writes the slab; with gradient accumulation (several passes,
 * one micro-batch each) later passes write a second slab whose layers the hook
 * adds into the first as the backward pass finishes them. On the last pass the
 * hook also starts the sums of the buckets it completed, through the transport
 * chosen when the run was set up (comm.h), while the backward pass goes on.
 *
 * Deterministic mode: each pass (one virtual shard) has a gradient of its own,
 * and the rank sums them pairwise in a binary tree (the lower levels of the fixed
 * tree over shards) as they come: after pass p, while p + 1 is even, the two
 * newest partial sums are added — the same additions, operand for operand, as a
 * tree over all of them at the end, with log2(passes) + 1 slabs instead of one per
 * pass. The deterministic transport (det_tree) finishes the tree across ranks.
 *
 * Either way the summed gradients end in dlfs_gsync_grads(). */
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

#define DLFS_MAX_PASSES 64    /* virtual shards per rank (deterministic mode: the tree's passes) */
#define DLFS_MAX_ACCUM 4096   /* micro-batches per step (--accum-steps) */
#define DLFS_MAX_SLABS 8      /* gradient slabs: log2(DLFS_MAX_PASSES) + 1 for the tree, 2 otherwise */

struct dlfs_gradsync {
    const struct dlfs_comm *comm;
    const struct dlfs_backend *be;
    size_t n;                            /* parameters */
    int passes;                          /* per step: V/P virtual shards (deterministic) or micro-batches */
    bool tree;                           /* deterministic: a gradient per pass, summed in the fixed tree */
    int slabs;                           /* of grads[]: log2(passes) + 1 (tree), 2 (accumulation) or 1 */
    float *grads[DLFS_MAX_SLABS];        /* (n) each, backend memory; grads[0] ends summed */
    int pass;                            /* the pass under way (dlfs_gsync_begin_pass) */
    int depth;                           /* tree: partial sums held, grads[0 .. depth) */
    size_t layer_off[DLFS_MAX_LAYERS];   /* where each layer's parameters start (the hook's bucket bound) */
    size_t layer_len[DLFS_MAX_LAYERS];   /* ... and how many it has */
    int num_layers;
    struct dlfs_buckets buckets;
    struct dlfs_shard shard;             /* the parameters this rank updates (ZeRO-1; else all) */
    size_t nbuf;                         /* batch-norm running statistics (model.num_buffers) */
    float **bstats;                      /* [passes] of (nbuf): per pass, sums of its groups' batch statistics */
    float *bhost;                        /* (nbuf + (nbuf + 1) / 2) host staging and scratch */
    double t_comm;                       /* seconds summing, accumulated (the caller resets it) */
};

/* Slabs for `passes` passes of model m per step, buckets of bucket_bytes, summed
 * by transport tp (dlfs_transport_choose; a DLFS_TP_DETERMINISTIC one for the tree
 * of deterministic mode: `passes` is then a power of two); with `zero` (ZeRO-1, on
 * several ranks) the sums are reduce-scattered and g->shard is this rank's part.
 * tp_arg: what tp->prepare made (NULL without), owned from here on, also when this
 * fails. Not collective: the caller agrees on the status. */
enum dlfs_status dlfs_gsync_init(struct dlfs_gradsync *g, const struct dlfs_comm *c, const struct dlfs_backend *be,
                                 const struct dlfs_model *m, int passes, size_t bucket_bytes,
                                 const struct dlfs_transport_ops *tp, void *tp_arg, bool zero);
void dlfs_gsync_free(struct dlfs_gradsync *g);

/* Around each pass p = 0 .. passes-1 of a step, in order: begin names the pass
 * (the hook acts on it), the backward pass writes dlfs_gsync_slab(), end folds
 * it into the sum. A step of one pass may skip both (the recorded graph). */
void dlfs_gsync_begin_pass(struct dlfs_gradsync *g, int pass);
float *dlfs_gsync_slab(struct dlfs_gradsync *g);
void dlfs_gsync_end_pass(struct dlfs_gradsync *g);
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
/* ZeRO-1, after the optimizer updated this rank's shard: every rank's part of the
 * parameters to every rank (nothing without ZeRO). */
void dlfs_gsync_gather_params(struct dlfs_gradsync *g, float *params);
/* ZeRO-1, for checkpoints: every rank's shard of a state slab (compact: the
 * shard's values, host memory) into `full` (n values) on rank 0. Collective,
 * bounded; without ZeRO a copy. */
void dlfs_gsync_gather_state(struct dlfs_gradsync *g, const float *compact, float *full);
/* Whether ZeRO-1 is in effect (asked for, on several ranks): the optimizer updates
 * g->shard only and dlfs_gsync_gather_params must follow each update. */
bool dlfs_gsync_zero(const struct dlfs_gradsync *g);
/* The parameters this rank updates (ZeRO-1: its part; else all of them); the
 * batch-norm running statistics summed (0: none); the seconds spent summing since
 * the last reset. */
const struct dlfs_shard *dlfs_gsync_shard(const struct dlfs_gradsync *g);
size_t dlfs_gsync_nbuf(const struct dlfs_gradsync *g);
double dlfs_gsync_seconds(const struct dlfs_gradsync *g);
void dlfs_gsync_seconds_reset(struct dlfs_gradsync *g);
/* The path that ran, for banners and metrics: the transport's name, or "none"
 * when one rank sums nothing over MPI. */
const char *dlfs_gsync_name(const struct dlfs_gradsync *g);

#ifdef __cplusplus
}
#endif

#endif
