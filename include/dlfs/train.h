/* dlfs — options, the training loop, evaluation, metrics and the benchmark. */
#ifndef DLFS_TRAIN_H
#define DLFS_TRAIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "dlfs/backend.h"
#include "dlfs/comm.h"
#include "dlfs/status.h"

#ifdef __cplusplus
extern "C" {
#endif

enum dlfs_optim { DLFS_OPTIM_SGD = 0, DLFS_OPTIM_ADAM, DLFS_OPTIM_ADAMW };
enum dlfs_schedule { DLFS_SCHED_CONSTANT = 0, DLFS_SCHED_COSINE };
enum dlfs_lr_scaling { DLFS_LR_SCALING_NONE = 0, DLFS_LR_SCALING_LINEAR };

struct dlfs_options {
    const char *data;
    const char *model;
    int epochs;
    int batch;            /* global batch (0: not given) */
    int batch_per_rank;   /* alternative (0: not given) */
    double lr;
    enum dlfs_optim optim;
    double momentum, weight_decay, beta1, beta2, eps;
    bool nesterov;
    enum dlfs_schedule schedule;
    int warmup;           /* steps */
    int augment_crop;     /* random crop: pad by this many pixels, crop back (0: off) */
    bool augment_flip;    /* random horizontal flip */
    double lr_min;
    enum dlfs_lr_scaling lr_scaling;
    int lr_ref_batch;
    uint64_t seed;
    enum dlfs_device device;
    enum dlfs_precision precision; /* of the GEMMs (dlfs/backend.h); default fp32 */
    const char *metrics;
    long max_steps;       /* stop after this many steps in total (0: no limit) */
    int eval_batch;
    int threads;          /* BLAS threads per rank (0: cores on the node / local ranks) */
    bool deterministic;
    int virtual_shards;
    int check_sync;       /* steps between parameter digest comparisons (0: start only) */
    double bucket_mb;
    enum dlfs_comm_path comm; /* --comm: how gradients are summed (auto resolves per run) */
    double comm_timeout;  /* seconds a gradient wait may take before the job is ended */
    double progress_s;    /* seconds between progress lines (0: auto) */
    bool quiet;
    /* checkpoints */
    const char *checkpoint_dir;
    long checkpoint_every;     /* steps (0: only at the end and on signals) */
    int checkpoint_every_epochs;
    int keep;                  /* newest checkpoints kept (0: all) */
    const char *resume;        /* "latest" or a file */
    bool eval_only;
    /* the step pipeline (results are bit-identical whichever is chosen) */
    bool data_on_device;  /* keep the splits in backend memory when they fit (default) */
    bool prefetch;        /* staged batches: assemble the next one on a thread (default) */
    int cuda_graph;       /* -1 auto (on where the backend has graphs), 0 off, 1 on */
    /* benchmark */
    bool bench;
    int steps;
    int bench_warmup;
};

/* Defaults, then argv. Returns DLFS_OK, DLFS_ERR_USAGE (message set), or sets
 * *exit_now (for --help / --version, after printing on rank 0). */
enum dlfs_status dlfs_options_parse(struct dlfs_options *o, int argc, char **argv, int rank,
                                    bool *exit_now);
/* A digest of every option that must agree across ranks. */
uint64_t dlfs_options_digest(const struct dlfs_options *o);
/* The options as one line of text (recorded in checkpoints). */
void dlfs_options_describe(const struct dlfs_options *o, char *buf, size_t len);
const char *dlfs_optim_name(enum dlfs_optim o);

/* Exit code of a run stopped by SIGTERM/SIGUSR1 after writing its checkpoint
 * (DLFS_ERR_INTERRUPTED), and of one stopped without --checkpoint-dir. */
#define DLFS_EXIT_CHECKPOINTED 3
#define DLFS_EXIT_INTERRUPTED_NO_CKPT 4

/* Install the SIGTERM/SIGUSR1 handlers (they only set a flag; the training
 * loop stops at the next step boundary) and ignore SIGXFSZ (a file-size limit
 * then fails the write instead of killing the process). */
void dlfs_signals_install(void);
/* The signal received (0 if none). */
int dlfs_signal_pending(void);

/* Train (or benchmark, with o->bench) on every rank of `comm`. Collective.
 * Errors: a status with one message, identical on every rank. */
enum dlfs_status dlfs_train_run(const struct dlfs_options *o, const struct dlfs_comm *comm);
/* --eval: evaluate the checkpoint given by --resume on the test split. */
enum dlfs_status dlfs_eval_run(const struct dlfs_options *o, const struct dlfs_comm *comm);
enum dlfs_status dlfs_bench_run(const struct dlfs_options *o, const struct dlfs_comm *comm);

/* SHA-256 of a float32 parameter slab as little-endian bytes (hex, 65 chars). */
void dlfs_params_sha256(const float *params, size_t n, char hex[65]);

#ifdef __cplusplus
}
#endif

#endif
