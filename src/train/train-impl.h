/* A training (or evaluation, or benchmark) run: the objects it is made of and the
 * few functions the files of src/train share. Each object owns one concern:
 *
 *   batcher   (train/batcher.h)  the sampler, resident splits, staging, augmentation,
 *                                the prefetch thread: hands each step its batch
 *   model     (dlfs/model.h)     forward and backward passes over the workspace
 *   gradsync  (dlfs/gradsync.h)  gradient slabs, buckets and their transport, the
 *                                batch-norm statistics sums
 *   optimizer (dlfs/optim.h)     moments, schedule, update, its checkpoint fields
 *   pipeline  (train/pipeline.h) CUDA graph and the loss-lag ring
 *
 * One step is batcher -> model -> gradsync -> optimizer (step.c). The run holds
 * what the objects share: the parameters, the workspace, the step counter. */
#ifndef DLFS_TRAIN_IMPL_H
#define DLFS_TRAIN_IMPL_H

#include <stdio.h>
#include "dlfs/backend.h"
#include "dlfs/comm.h"
#include "dlfs/dataset.h"
#include "dlfs/gradsync.h"
#include "dlfs/model.h"
#include "dlfs/optim.h"
#include "dlfs/train.h"
#include "train/batcher.h"
#include "train/pipeline.h"

enum dlfs_run_mode { DLFS_RUN_TRAIN = 0, DLFS_RUN_EVAL, DLFS_RUN_BENCH };

/* --trace (timeline.c): the window of steps recorded and the clock of rank 0. */
struct dlfs_tracer {
    int on;                       /* --trace given */
    long first, w0, w1;           /* the run's first step; steps [w0, w1) are recorded */
    int span;                     /* the open "step" span */
    double offset;                /* rank 0's clock minus this rank's (seconds) */
    double origin;                /* time zero of the file, on rank 0's clock */
    int nmarks;                   /* device marks of the step in flight (backends with timers) */
    const char *mark_name[DLFS_TIMER_MARKS];
    double h0;                    /* host time at which mark 0 was issued */
};

/* The run's place in the history of its checkpoint directory (src/io/README.md,
 * Lineage), owned by resume.c: what its checkpoints record and what --rollback
 * checks. */
struct dlfs_lineage {
    char run_id[33];              /* this invocation's, recorded in its checkpoints */
    char *parent;                 /* the checkpoint it resumed from (file name), NULL: a fresh start */
    char *parent_path;            /* ... as --resume found it */
    long parent_step;             /* ... and its step, -1 */
    int skipped_newer;            /* --resume latest passed over newer files that did not verify */
};

struct dlfs_run {
    const struct dlfs_options *o;
    const struct dlfs_comm *comm;
    const struct dlfs_backend *be;
    enum dlfs_run_mode mode;
    struct dlfs_model model;
    struct dlfs_dataset ds;       /* loaded; in benchmarks one synthetic batch */
    int have_ds;
    int ckpt_lock;                /* --checkpoint-dir's lock file descriptor + 1 (rank 0; 0: none) */

    int global_batch;             /* B */
    int local_batch;              /* B / P rows per rank per step */
    int passes;                   /* forward/backward passes per step: V/P (deterministic) or 1 */
    int pass_rows;                /* rows per pass: B/V or B/P */
    int bn_group;                 /* rows per batch-norm statistics group: one virtual shard */
    int threads;                  /* host threads per rank given to the backend (0: its default) */

    size_t n;                     /* parameters */
    float *params;                /* (n) backend memory */
    float *bufs;                  /* (model.num_buffers) batch-norm running statistics, backend memory */
    float *host;                  /* (max(n, num_buffers)) host copy for digests and init */
    struct dlfs_workspace ws;

    struct dlfs_batcher batcher;
    struct dlfs_gradsync gs;
    struct dlfs_optimizer opt;
    struct dlfs_pipeline pipe;
    struct dlfs_tracer tracer;

    struct dlfs_lineage lineage;  /* resume.c */
    long step;                    /* optimizer steps done */
    long total_steps;             /* planned (the schedule's length) */
    double t_compute;             /* seconds, accumulated per epoch */
    double grad_norm;             /* --clip-grad: the last step's global gradient norm (before clipping) */
    FILE *metrics;
    char pipeline[400];           /* one line describing the step pipeline, for banners */
};

/* Set up everything (backend, model, batch arithmetic, the dataset — loaded, or
 * synthetic for benchmarks —, the objects) on every rank; collective; errors
 * agreed across ranks. dlfs_run_free undoes whatever it did. */
enum dlfs_status dlfs_run_init(struct dlfs_run *r, const struct dlfs_options *o, const struct dlfs_comm *comm,
                               enum dlfs_run_mode mode);
void dlfs_run_free(struct dlfs_run *r);
/* memory.c: refuses, before anything is allocated for them, `rows` rows of
 * activations with the model's state (and `data` bytes of a dataset still to be
 * made) when the estimate exceeds the memory available; `opt` (given `value`)
 * is the option that sized rows. The estimate is in the message. Not collective. */
enum dlfs_status dlfs_run_check_memory(const struct dlfs_run *r, int rows, const char *opt, int value, double data);
/* The end of a run that got as far as `st`: the metrics file flushed and closed
 * (a failed write — a full disk, /dev/full — becomes the run's error when st was
 * DLFS_OK), then dlfs_run_free. Returns the run's status. */
enum dlfs_status dlfs_run_close(struct dlfs_run *r, enum dlfs_status st);
/* plan.c: the choices every rank makes alike (backend, gradient path — *tp, the
 * transport, which set-up hands to the gradient sync —, model, precision, batch
 * arithmetic), agreed; whether the dataset fits the model; the
 * CPU threads per rank. */
enum dlfs_status dlfs_run_choose(struct dlfs_run *r, const struct dlfs_transport_ops **tp);
enum dlfs_status dlfs_run_check_data(struct dlfs_run *r);
void dlfs_run_threads(struct dlfs_run *r);
/* --eval-batch, or its default (1000; a language model's: the most windows whose
 * activations fit in DLFS_EVAL_LM_BYTES, at least a pass's rows, at most 1000). */
#define DLFS_EVAL_LM_BYTES (512.0 * 1048576.0)
int dlfs_run_eval_batch(const struct dlfs_run *r);
/* The run's length in steps: the schedule's horizon and where prefetching stops. */
void dlfs_run_plan(struct dlfs_run *r, long total_steps);
/* The gradient path that ran, for banners and metrics: "nccl", "mpi" (host
 * buffers), "mpi-staged" (device buffers through pinned host memory),
 * "mpi-tree" (deterministic), "none" (one rank). */
const char *dlfs_run_comm_name(const struct dlfs_run *r);

/* One optimizer step over batch bt. Returns the local loss sum of this step, or
 * with the loss lag that of the step before (0 after a flush or at the first
 * step): the host then does not wait for this step to finish, only for the one
 * before, so it queues step k+1 while step k runs. */
double dlfs_run_step(struct dlfs_run *r, const struct dlfs_batch *bt);
/* The loss sum dlfs_run_step still owes (waits for the last step), 0 when none.
 * Call it wherever the losses must be complete. */
double dlfs_run_flush(struct dlfs_run *r);

/* Seconds of the epoch so far spent computing, waiting for other ranks, and
 * assembling/uploading data; reset. */
struct dlfs_times { double compute, comm, data; };
struct dlfs_times dlfs_run_times(const struct dlfs_run *r);
void dlfs_run_times_reset(struct dlfs_run *r);

/* timeline.c: set up (collective: clock offsets; nothing without --trace); around each
 * step (begin 1, then 0): records the steps of the window; a device mark after the
 * work named (backends with timers: a span on the device track); a span of
 * evaluation or checkpointing (handle for dlfs_trace_end); the file (collective). */
void dlfs_tracer_init(struct dlfs_run *r);
void dlfs_tracer_step(struct dlfs_run *r, int begin);
void dlfs_tracer_mark(struct dlfs_run *r, const char *what);
int dlfs_tracer_begin(struct dlfs_run *r, const char *name);
enum dlfs_status dlfs_tracer_write(struct dlfs_run *r);

/* Distributed evaluation over a split: every rank takes a contiguous slice, sums
 * are all-reduced. */
void dlfs_run_evaluate(struct dlfs_run *r, const struct dlfs_split *split, double *loss, double *acc);
/* --sample: o->sample tokens generated after o->prompt by the language model, each
 * drawn from softmax(logits / temperature) over the top-k, keyed by (seed, token
 * index): every rank computes the same text; rank 0 writes it to `out` (bytes
 * outside printable ASCII but newline and tab as \xNN). DLFS_ERR_USAGE for a model
 * without positions, or of fewer than 256 tokens (the prompt is bytes). */
enum dlfs_status dlfs_run_sample(struct dlfs_run *r, FILE *out);
/* --clip-grad N: the global L2 norm of the summed gradient `grads` (this rank's
 * optimizer shard, summed over the ranks with ZeRO-1) exactly — squares in fixed
 * point, 2^-40 steps, added as integers, so neither order nor rank count changes a
 * bit — and, when it exceeds N, the shard scaled by N / norm. Collective with ZeRO. */
void dlfs_run_clip(struct dlfs_run *r, float *grads);

/* Parameter digest (SHA-256 hex of the float32 LE bytes, layer order). */
void dlfs_run_digest(struct dlfs_run *r, char hex[65]);
/* Compare parameters across ranks; DLFS_ERR_COMM with a message on divergence. */
enum dlfs_status dlfs_run_check_sync(struct dlfs_run *r);

/* Write a checkpoint of the current state (rank 0) into --checkpoint-dir;
 * collective; *path receives the file name on rank 0 (caller frees). */
enum dlfs_status dlfs_run_save(struct dlfs_run *r, int epoch, long samples_in_epoch, char **path);
/* Restore from --resume (latest or FILE) when given; sets the epoch and the
 * sample position to continue from (epoch 0: nothing to resume) and, when `path`
 * is not NULL, the checkpoint's file name (malloc'd). Evaluation (--eval) restores
 * the parameters and statistics only. Collective. */
enum dlfs_status dlfs_run_resume(struct dlfs_run *r, int *epoch, long *samples_in_epoch, char **path);
/* A fresh run's lineage (a new run id, no parent); its strings freed. */
void dlfs_lineage_init(struct dlfs_lineage *l);
void dlfs_lineage_free(struct dlfs_lineage *l);
/* Before the first write into --checkpoint-dir: the run must continue the newest
 * line there (src/io/README.md, Lineage); --rollback moves what is in the way
 * aside. Collective. */
enum dlfs_status dlfs_run_lineage(struct dlfs_run *r, int archive);

#endif
