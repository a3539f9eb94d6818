/* Private state of a training (or benchmark) run, shared by the files in src/train. */
#ifndef DLFS_TRAIN_IMPL_H
#define DLFS_TRAIN_IMPL_H

#include <pthread.h>
#include <stdio.h>
#include "dlfs/backend.h"
#include "dlfs/comm.h"
#include "dlfs/dataset.h"
#include "dlfs/model.h"
#include "dlfs/train.h"

/* One assembled local batch in host staging (prefetch.c). */
struct dlfs_stage {
    void *block;                  /* lab then img, one allocation (pinned when `pinned`) */
    int32_t *lab;                 /* (rows) */
    uint8_t *img;                 /* (rows, input) */
    uint32_t *idx;                /* (rows) the samples it holds */
    int rows;
    uint64_t aug_key;
    const struct dlfs_split *split;
    int pinned;
};

/* The prefetch thread and its two stages; the main thread posts batch k+1 after
 * taking batch k. */
struct dlfs_prefetch {
    struct dlfs_run *r;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct dlfs_stage stage[2];
    int job;                      /* stage holding the posted batch, -1 none */
    int taken;                    /* stage last handed out (left alone by the next post) */
    int busy, quit, started;
    long hits;                    /* batches taken from the thread (the rest were assembled inline) */
};

/* A split held in backend memory for gather_u8 (on host-memory backends: the
 * split's own arrays). */
struct dlfs_resident {
    const struct dlfs_split *split; /* NULL: not resident */
    uint8_t *img;                   /* (n, c, h, w) */
    uint8_t *lab;                   /* (n) */
    int owned;                      /* allocated with be->alloc */
};

/* What one step in flight reads and writes in host memory (step.c): a ring of
 * DLFS_LAG_SLOTS, step s in slot s % DLFS_LAG_SLOTS, page-locked when the step
 * runs as a CUDA graph. A slot is rewritten only after mark s % DLFS_LAG_SLOTS,
 * recorded at the end of the step that used it last, has passed. */
#define DLFS_LAG_SLOTS 2
#define DLFS_DYN_BYTES 32         /* hp, then ids: in a slot and in the device block alike */
struct dlfs_inflight {
    double *stats;                /* (2) the step's loss sum and correct count */
    struct dlfs_optim_dyn *hp;    /* its lr and bias corrections, uploaded for the graph... */
    uint32_t *ids;                /* (pass_rows) ...with its sample ids: at hp + DLFS_DYN_BYTES */
};

struct dlfs_run {
    const struct dlfs_options *o;
    const struct dlfs_comm *comm;
    const struct dlfs_backend *be;
    struct dlfs_model model;
    struct dlfs_dataset ds;       /* empty in benchmarks */
    int have_ds;

    int global_batch;             /* B */
    int local_batch;              /* B / P rows per rank per step */
    int passes;                   /* forward/backward passes per step: V/P (deterministic) or 1 */
    int pass_rows;                /* rows per pass: B/V or B/P */
    double lr;                    /* base lr after --lr-scaling */

    size_t n;                     /* parameters */
    float *params;                /* (n) backend memory */
    float *grads[64];             /* passes slabs of (n); grads[0] is the reduced one */
    float *m, *v;                 /* optimizer state (n), NULL where unused */
    float *scratch;               /* (n+1)/2 for the deterministic all-reduce (host) */
    size_t nbuf;                  /* batchnorm running statistics (model.num_buffers) */
    float *bufs;                  /* (nbuf) running statistics, backend memory */
    float *bstats[64];            /* per pass (nbuf): sums of the groups' batch statistics */
    float *bhost;                 /* (nbuf) host staging + (nbuf+1)/2 scratch */
    int bn_group;                 /* rows per batchnorm statistics group: one virtual shard */
    float *host;                  /* (n) host copy for digests, init and transfers */
    struct dlfs_workspace ws;
    uint8_t *host_img;            /* (pass_rows or eval rows, input) staging */
    int32_t *host_lab;
    uint8_t *dev_img;
    int stage_rows;
    size_t boundaries[DLFS_MAX_LAYERS];
    struct dlfs_buckets buckets;
    enum dlfs_comm_path path;     /* how gradients are summed: MPI or NCCL (--comm resolved) */
    int nccl_up;                  /* dlfs_comm_nccl_init succeeded: free it with the run */

    uint64_t seed;                /* data order / init seed (a resumed run keeps its own) */
    long step;                    /* optimizer steps done */
    long total_steps;             /* planned, for the schedule */
    double t_data, t_compute, t_comm; /* seconds, accumulated per epoch */
    FILE *metrics;
    FILE *trace;                  /* test hook DLFS_TRACE_SAMPLES: sample indices per step */

    /* the step pipeline (step.c, prefetch.c; set up by dlfs_run_pipeline_init) */
    struct dlfs_resident res[2];  /* train, test */
    struct dlfs_prefetch prefetch;/* started when training batches are staged and --prefetch on */
    const uint32_t *next_idx;     /* set by the caller before a step: the NEXT step's global
                                     batch (same split), NULL when unknown; the step clears it */
    int graph_on;                 /* the step may run as a CUDA graph (conditions in step.c) */
    int graph_warm;               /* one eager step done since graph_on */
    void *graph;                  /* the recorded step, NULL until recorded */
    int graph_update;             /* the graph holds the optimizer update too (nothing to reduce) */
    struct dlfs_optim_dyn *hp_dev;/* backend memory (graph_update): the update's per-step values, */
    uint32_t *ids_dev;            /* then at hp_dev + DLFS_DYN_BYTES the graph's sample ids */
    struct dlfs_inflight fl[DLFS_LAG_SLOTS];
    void *fl_block;               /* the slots' memory, one allocation */
    int fl_pinned;                /* ... from pinned_alloc (else malloc) */
    int loss_lag;                 /* dlfs_run_step returns the PREVIOUS step's loss (see there) */
    int lag_async;                /* ... and the step's loss comes back without a host wait */
    int loss_pending;             /* the last step's loss has not been returned yet */
    char pipeline[200];           /* one line describing the above, for banners */
};

/* Set up everything (backend, dataset unless benchmarking, model, slabs) on
 * every rank; collective; errors agreed across ranks. */
enum dlfs_status dlfs_run_init(struct dlfs_run *r, const struct dlfs_options *o,
                               const struct dlfs_comm *comm, int with_data);
void dlfs_run_free(struct dlfs_run *r);
/* The gradient path that ran, for banners and metrics: "nccl", "mpi" (host
 * buffers), "mpi-staged" (device buffers through pinned host memory),
 * "mpi-tree" (deterministic), "none" (one rank). */
const char *dlfs_run_comm_name(const struct dlfs_run *r);

/* After the splits are in place (dlfs_run_init does it when loading data; the
 * benchmark after making its own): keep them in backend memory when they fit,
 * start the prefetch thread when batches are staged, decide on the CUDA graph.
 * Collective; errors agreed across ranks. Undone by dlfs_run_free. */
enum dlfs_status dlfs_run_pipeline_init(struct dlfs_run *r);

/* Host staging of split rows idx[0..rows) into img (rows, input) / lab (rows),
 * augmented when aug_key != 0. Reads only immutable run state: thread-safe. */
void dlfs_run_assemble(const struct dlfs_run *r, const struct dlfs_split *split, const uint32_t *idx, int rows,
                       uint64_t aug_key, uint8_t *img, int32_t *lab);

/* prefetch.c: start the thread with two stages of `rows` rows; post a batch;
 * take it back (NULL unless the posted batch is exactly this one: then the
 * caller assembles it); stop and release (joins the thread; safe on any state
 * dlfs_prefetch_init left, and on a zeroed struct). */
enum dlfs_status dlfs_prefetch_init(struct dlfs_prefetch *pf, struct dlfs_run *r, int rows);
void dlfs_prefetch_post(struct dlfs_prefetch *pf, const struct dlfs_split *split, const uint32_t *idx, int rows,
                        uint64_t aug_key);
const struct dlfs_stage *dlfs_prefetch_take(struct dlfs_prefetch *pf, const struct dlfs_split *split,
                                            const uint32_t *idx, int rows, uint64_t aug_key);
void dlfs_prefetch_free(struct dlfs_prefetch *pf, const struct dlfs_backend *be);

/* One optimizer step over global batch rows idx[0..B) (sample indices into
 * `split`); rank r uses idx[r*B/P, (r+1)*B/P). Returns the local loss sum of
 * this step, or with r->loss_lag that of the step before (0 after a flush or at
 * the first step): the host then does not wait for this step to finish, only
 * for the one before, so it queues step k+1 while step k runs. */
double dlfs_run_step(struct dlfs_run *r, const struct dlfs_split *split, const uint32_t *idx);
/* The loss sum dlfs_run_step still owes (waits for the last step), 0 when none:
 * summing every step's return and then this gives the same values in the same
 * order as without the lag. Call it wherever the losses must be complete. */
double dlfs_run_flush(struct dlfs_run *r);

/* Learning rate at step `step` under the schedule. */
double dlfs_run_lr(const struct dlfs_run *r, long step);

/* Distributed evaluation over a split: every rank takes a contiguous slice,
 * sums are all-reduced. */
void dlfs_run_evaluate(struct dlfs_run *r, const struct dlfs_split *split, double *loss, double *acc);

/* Parameter digest (SHA-256 hex of the float32 LE bytes, layer order). */
void dlfs_run_digest(struct dlfs_run *r, char hex[65]);
/* Compare parameters across ranks; DLFS_ERR_COMM with a message on divergence. */
enum dlfs_status dlfs_run_check_sync(struct dlfs_run *r);

/* Write a checkpoint of the current state (rank 0) into --checkpoint-dir;
 * collective; *path receives the file name on rank 0 (caller frees). */
enum dlfs_status dlfs_run_save(struct dlfs_run *r, int epoch, long samples_in_epoch, char **path);
/* Restore from --resume (latest or FILE) when given; sets the epoch and the
 * sample position to continue from. Collective. */
enum dlfs_status dlfs_run_resume(struct dlfs_run *r, int *epoch, long *samples_in_epoch);

#endif
