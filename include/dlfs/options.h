/* dlfs — the options of dlfs-train, from ONE table.
 *
 * Each row of DLFS_OPTIONS is one command-line option: the struct field it sets,
 * the field's C type, how its value is parsed (kind), its long name, the argument
 * name shown in --help, the default, the accepted range (numbers) or names
 * (choices), whether it belongs to the options digest, and its help text. The
 * struct dlfs_options, --help, the getopt table, parsing, range checks, the
 * options digest and the text recorded in checkpoints are all generated from it
 * (src/train/options.c), so a new option is one new row.
 *
 * Digest: options that change results must be the same on every rank (the ranks
 * compare a digest of them) — DLFS_OPT_DIGEST. Options that change no bits (the
 * step pipeline, threads, output) stay out (DLFS_OPT_LOCAL), so ranks and resumed
 * runs may differ in them. DLFS_OPT_PRESENCE: only whether it was given counts.
 *
 * Help: text lines are separated by '\n'; "(default X)" is appended from the
 * default unless the row says DLFS_OPT_NODEF (its text then says it itself).
 */
#ifndef DLFS_OPTIONS_H
#define DLFS_OPTIONS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include "dlfs/backend.h"
#include "dlfs/comm.h"
#include "dlfs/optim.h"
#include "dlfs/status.h"

#ifdef __cplusplus
extern "C" {
#endif

enum dlfs_lr_scaling { DLFS_LR_SCALING_NONE = 0, DLFS_LR_SCALING_LINEAR };

/* How a row's argument is read. */
enum dlfs_opt_kind {
    DLFS_OPT_STR,    /* a string, kept as given (argv outlives the options) */
    DLFS_OPT_INT,    /* a decimal integer in [lo, hi] (int field) */
    DLFS_OPT_LONG,   /* ... (long field) */
    DLFS_OPT_U64,    /* ... (uint64_t field) */
    DLFS_OPT_REAL,   /* a finite number in [lo, hi] (double field) */
    DLFS_OPT_FLAG,   /* no argument: sets the bool field */
    DLFS_OPT_CHOICE, /* one of the names (int-sized enum or int field: the name's index) */
    DLFS_OPT_EVERY,  /* N steps, or Ne epochs: --checkpoint-every (long field; epochs in the next) */
};

/* Row flags. */
#define DLFS_OPT_DIGEST 1   /* in the options digest */
#define DLFS_OPT_LOCAL 0    /* not in it */
#define DLFS_OPT_PRESENCE 2 /* in it as given / not given */
#define DLFS_OPT_NODEF 4    /* --help shows no "(default …)" */

/* Choice lists: names in enum order. */
#define DLFS_OPT_NAMES_OPTIM DLFS_OPTIMIZERS(DLFS_OPTIM_NAME_) /* dlfs/optim.h's table */
#define DLFS_OPT_NAMES_SCHED "constant", "cosine"
#define DLFS_OPT_NAMES_SCALING "none", "linear"
#define DLFS_OPT_NAMES_DEVICE "cpu", "cuda", "auto"
#define DLFS_OPT_NAMES_COMM DLFS_COMM_PATH_NAMES /* dlfs/comm.h's transport rows */
#define DLFS_OPT_NAMES_PRECISION "fp32", "tf32", "bf16"
#define DLFS_OPT_NAMES_AUTOOFF "off", "auto"
#define DLFS_OPT_NAMES_ONOFF "off", "on"

/* H(heading) starts a --help section; X(field, type, kind, name, arg, default, lo, hi,
 * choices, flags, help) is an option. Defaults of STR rows are NULL or a string. */
#define DLFS_OPTIONS(X, H)                                                                                       \
    H("Data and model:")                                                                                         \
    X(data, const char *, DLFS_OPT_STR, "data", "FILE", NULL, 0, 0, (""), DLFS_OPT_DIGEST,                       \
      "dataset file written by 'dlfs-data convert' (HDF5)")                                                      \
    X(data_cache, int, DLFS_OPT_INT, "data-cache", "MB", 0, 0, 1 << 20, (""), DLFS_OPT_DIGEST | DLFS_OPT_NODEF,    \
      "hold at most MB MiB of the train images (or token windows) per rank:\n"                                 \
      "read from the file chunk by chunk when larger, with the windowed\n"                                      \
      "shuffle (windows of MB/2; src/README.md, Streaming) also when they\n"                                    \
      "fit (default 0: all in memory, one full permutation per epoch)")                                         \
    X(model, const char *, DLFS_OPT_STR, "model", "NAME|SPEC", "mlp", 0, 0, (""), DLFS_OPT_DIGEST,               \
      "mlp (784-512-512-10, ReLU), mlp-large (784-4096-4096-4096-10),\n"                                         \
      "a shorthand 784-256-10[:ACT] or a layer list\n"                                                           \
      "in(784),dense(256),gelu,dense(10); ACT: relu tanh sigmoid gelu\n"                                         \
      "cnn: in(1x28x28),conv(32,k5,p2),relu,maxpool(2),conv(64,k5,p2),\n"                                        \
      "relu,maxpool(2),flatten,dense(1024),relu,dense(10); layers\n"                                             \
      "conv(C,kK[,sS][,pP][,b0]) (b0: no bias) maxpool(K[,sS][,pP])\n"                                          \
      "flatten dropout(P) batchnorm gap; skips: add(K) from(K), K an\n"                                          \
      "earlier layer's index or in; blocks res(C[,sS]) (basic)\n"                                               \
      "bottleneck(C[,sS]) (src/README.md, Models); cnn-bn: cnn with\n"                                          \
      "batchnorm after each conv and dropout(0.5) before the last layer;\n"                                     \
      "resnet20 (1x28x28: 3 stages x 3 res, 16/32/64 channels),\n"                                              \
      "resnet50 (3x224x224: bottlenecks 3-4-6-3, 1000 classes); gpt-tiny,\n"                                    \
      "gpt2: language models on token files (src/README.md, Language\n"                                         \
      "models)")                                                                                                 \
    H("Training:")                                                                                               \
    X(epochs, int, DLFS_OPT_INT, "epochs", "N", 10, 1, 100000, (""), DLFS_OPT_DIGEST,                            \
      "passes over the training set")                                                                            \
    X(batch, int, DLFS_OPT_INT, "batch", "B", 0, 1, 1 << 24, (""), DLFS_OPT_DIGEST | DLFS_OPT_NODEF,             \
      "GLOBAL batch, split evenly over the ranks (default 128)")                                                 \
    X(batch_per_rank, int, DLFS_OPT_INT, "batch-per-rank", "B", 0, 1, 1 << 24, (""),                             \
      DLFS_OPT_DIGEST | DLFS_OPT_NODEF, "per-rank batch instead (global = B x ranks; weak scaling)")             \
    X(lr, double, DLFS_OPT_REAL, "lr", "X", -1, 1e-12, 100.0, (""), DLFS_OPT_DIGEST | DLFS_OPT_NODEF,            \
      "learning rate (default 1e-3 for adam/adamw, 0.05 for sgd)")                                               \
    X(lr_scaling, enum dlfs_lr_scaling, DLFS_OPT_CHOICE, "lr-scaling", "none|linear", 0, 0, 0,                   \
      (DLFS_OPT_NAMES_SCALING), DLFS_OPT_DIGEST, "linear: lr x global_batch / --lr-ref-batch")                   \
    X(lr_ref_batch, int, DLFS_OPT_INT, "lr-ref-batch", "B", 128, 1, 1 << 24, (""), DLFS_OPT_DIGEST,              \
      "batch the --lr is meant for under linear scaling")                                                        \
    X(optim, enum dlfs_optim, DLFS_OPT_CHOICE, "optim", NULL, 1, 0, 0, (DLFS_OPT_NAMES_OPTIM),       \
      DLFS_OPT_DIGEST, "optimizer")                                                                              \
    X(momentum, double, DLFS_OPT_REAL, "momentum", "X", 0.9, 0.0, 0.9999, (""), DLFS_OPT_DIGEST,                 \
      "SGD momentum")                                                                                            \
    X(nesterov, bool, DLFS_OPT_FLAG, "nesterov", NULL, 0, 0, 0, (""), DLFS_OPT_DIGEST,                           \
      "Nesterov momentum (--optim sgd)")                                                                         \
    X(weight_decay, double, DLFS_OPT_REAL, "weight-decay", "X", -1, 0.0, 10.0, (""),                             \
      DLFS_OPT_DIGEST | DLFS_OPT_NODEF, "L2 (sgd, adam) or decoupled (adamw) decay (default 0; adamw 0.01)")     \
    X(beta1, double, DLFS_OPT_REAL, "beta1", "X", 0.9, 0.0, 0.999999, (""), DLFS_OPT_DIGEST,                     \
      "Adam's first-moment decay")                                                                               \
    X(beta2, double, DLFS_OPT_REAL, "beta2", "X", 0.999, 0.0, 0.999999999, (""), DLFS_OPT_DIGEST,                \
      "Adam's second-moment decay")                                                                              \
    X(eps, double, DLFS_OPT_REAL, "eps", "X", 1e-8, 1e-30, 1.0, (""), DLFS_OPT_DIGEST, "Adam's epsilon")         \
    X(schedule, enum dlfs_schedule, DLFS_OPT_CHOICE, "schedule", "constant|cosine", 0, 0, 0,                     \
      (DLFS_OPT_NAMES_SCHED), DLFS_OPT_DIGEST, "learning-rate schedule")                                         \
    X(warmup, int, DLFS_OPT_INT, "warmup", "N", 0, 0, 100000000, (""), DLFS_OPT_DIGEST,                          \
      "linear warm-up over the first N steps")                                                                   \
    X(lr_min, double, DLFS_OPT_REAL, "lr-min", "X", 0.0, 0.0, 100.0, (""), DLFS_OPT_DIGEST,                      \
      "final learning rate of the cosine schedule")                                                              \
    X(clip_grad, double, DLFS_OPT_REAL, "clip-grad", "N", 0, 1e-6, 1e6, (""), DLFS_OPT_DIGEST | DLFS_OPT_NODEF,      \
      "scale the summed gradient down to global L2 norm N when it is larger\n"                                    \
      "(the norm over every rank's and ZeRO shard's part, the same bits on\n"                                    \
      "any rank count; default: no clipping)")                                                                  \
    X(seed, uint64_t, DLFS_OPT_U64, "seed", "N", 1, 0, 0x7fffffffL, (""), DLFS_OPT_DIGEST,                       \
      "seed of initialisation and data order")                                                                   \
    X(max_steps, long, DLFS_OPT_LONG, "max-steps", "N", 0, 1, 1000000000L, (""), DLFS_OPT_DIGEST | DLFS_OPT_NODEF, \
      "stop after N steps in total (default: all epochs)")                                                       \
    X(target_acc, double, DLFS_OPT_REAL, "target-acc", "X", 0.0, 1e-9, 1.0, (""), DLFS_OPT_DIGEST | DLFS_OPT_NODEF, \
      "stop as soon as the test accuracy reaches X (a fraction, e.g. 0.9),\n"                                    \
      "checked at each evaluation; records the time and steps it took\n"                                         \
      "(default: off)")                                                                                          \
    X(eval_every, long, DLFS_OPT_LONG, "eval-every", "N", 0, 1, 1000000000L, (""), DLFS_OPT_DIGEST | DLFS_OPT_NODEF, \
      "also evaluate on the test split every N steps (default: at the end\n"                                     \
      "of each epoch only)")                                                                                     \
    X(augment_crop, int, DLFS_OPT_INT, "augment-crop", "P", 0, 0, 64, (""), DLFS_OPT_DIGEST,                     \
      "training images: pad by P pixels (zeros) and crop back at a\n"                                            \
      "random offset, drawn from (seed, step, sample index)")                                                    \
    X(augment_flip, bool, DLFS_OPT_FLAG, "augment-flip", NULL, 0, 0, 0, (""), DLFS_OPT_DIGEST,                   \
      "mirror training images left-right with probability 1/2")                                                  \
    X(accum_steps, int, DLFS_OPT_INT, "accum-steps", "N", 1, 1, 4096, (""), DLFS_OPT_DIGEST,                     \
      "gradient accumulation: each rank takes its part of the global batch\n"                                    \
      "in N micro-batches, summed before one all-reduce and one update\n"                                        \
      "(the same global batch: activations shrink N-fold)")                                                      \
    H("Ranks and determinism:")                                                                                  \
    X(deterministic, bool, DLFS_OPT_FLAG, "deterministic", NULL, 0, 0, 0, (""), DLFS_OPT_DIGEST,                 \
      "bit-identical results on any rank count P dividing V")                                                    \
    X(virtual_shards, int, DLFS_OPT_INT, "virtual-shards", "V", 8, 1, 4096, (""), DLFS_OPT_DIGEST,               \
      "shards of each global batch in deterministic mode (a power of\n"                                          \
      "two; the batch must be divisible by V)")                                                                  \
    X(zero, int, DLFS_OPT_INT, "zero", "0|1", 0, 0, 1, (""), DLFS_OPT_DIGEST,                                    \
      "1: ZeRO-1, the optimizer state sharded across the ranks: gradients\n"                                     \
      "reduce-scattered, each rank updates its part of the parameters,\n"                                        \
      "which are then all-gathered (deterministic mode: the same bits as 0)")                                    \
    X(bucket_mb, double, DLFS_OPT_REAL, "bucket-mb", "X", 4.0, 0.0, 65536.0, (""), DLFS_OPT_DIGEST,              \
      "gradient all-reduce bucket size in MiB")                                                                  \
    X(comm, enum dlfs_comm_path, DLFS_OPT_CHOICE, "comm", NULL, 0, 0, 0, (DLFS_OPT_NAMES_COMM),       \
      DLFS_OPT_DIGEST,                                                                                           \
      "how GPU ranks sum gradients (auto: NCCL with the cuda backend on\n"                                       \
      "several ranks when built with it, else MPI; one rank sums\n"                                              \
      "nothing; deterministic mode: MPI). Node-local rank r uses visible\n"                                      \
      "GPU r mod the GPUs it sees. auto and nccl need one GPU per rank;\n"                                       \
      "mpi stages GPU buffers through pinned host memory and lets ranks\n"                                       \
      "share GPUs (for testing)")                                                                                \
    X(comm_timeout, double, DLFS_OPT_REAL, "comm-timeout", "S", 300.0, 0.001, 1e7, (""), DLFS_OPT_LOCAL,         \
      "end the job when a wait for the other ranks (gradient all-reduce,\n"                                      \
      "evaluation and loss sums, the signal check, the outcome of set-up,\n"                                     \
      "a checkpoint write or a resume) lasts longer than S seconds: a\n"                                         \
      "stuck or dead rank")                                                                                      \
    X(check_sync, int, DLFS_OPT_INT, "check-sync", "N", 0, 0, 1000000000L, (""), DLFS_OPT_DIGEST | DLFS_OPT_NODEF, \
      "compare a parameter digest across ranks every N steps (default 0:\n"                                      \
      "at start and end only)")                                                                                  \
    H("Checkpoints (HDF5; src/README.md, Checkpoints):")                                                         \
    X(checkpoint_dir, const char *, DLFS_OPT_STR, "checkpoint-dir", "DIR", NULL, 0, 0, (""), DLFS_OPT_DIGEST,    \
      "write checkpoints here (at the end, on SIGTERM/SIGUSR1, and as below)")                                   \
    X(checkpoint_every, long, DLFS_OPT_EVERY, "checkpoint-every", "N|Ne", 0, 1, 1000000000L, (""),               \
      DLFS_OPT_DIGEST | DLFS_OPT_NODEF, "every N steps; 'Ne' for every N epochs (default: end and signals only)") \
    X(checkpoint_every_epochs, int, DLFS_OPT_EVERY, NULL, NULL, 0, 0, 0, (""), DLFS_OPT_DIGEST, "")              \
    X(keep, int, DLFS_OPT_INT, "keep", "K", 3, 0, 1000000, (""), DLFS_OPT_DIGEST,                                \
      "keep the newest K checkpoints (0 keeps all)")                                                             \
    X(ckpt_sharded, bool, DLFS_OPT_FLAG, "ckpt-sharded", NULL, 0, 0, 0, (""), DLFS_OPT_LOCAL,                   \
      "with --zero 1: every rank writes its part of the optimizer state\n"                                      \
      "(DIR/ckpt-<step>.d/rank-<r>.h5, then rank 0 the manifest.h5): rank 0\n"                                  \
      "never gathers the moments; resumes on any rank count; dlfs-data\n"                                       \
      "ckpt-merge makes one file of it")                                                                         \
    X(resume, const char *, DLFS_OPT_STR, "resume", "latest|FILE", NULL, 0, 0, (""), DLFS_OPT_DIGEST,            \
      "continue from FILE (a sharded checkpoint: its ckpt-<step>.d), or the\n"                                  \
      "newest checkpoint of --checkpoint-dir (latest with none yet starts\n"                                    \
      "fresh); the rank count may differ")                                                                       \
    X(rollback, bool, DLFS_OPT_FLAG, "rollback", NULL, 0, 0, 0, (""), DLFS_OPT_DIGEST,                           \
      "continue an older line of --checkpoint-dir: the checkpoints in the way\n"                                 \
      "(newer ones, or another run's) are moved into DIR/abandoned-<time>/,\n"                                   \
      "never deleted (src/io/README.md, Lineage); needs --checkpoint-dir")                                       \
    X(eval_only, bool, DLFS_OPT_FLAG, "eval", NULL, 0, 0, 0, (""), DLFS_OPT_DIGEST,                              \
      "evaluate the --resume checkpoint on --data's test split, no training")                                    \
    X(sample, int, DLFS_OPT_INT, "sample", "N", 0, 1, 1000000, (""), DLFS_OPT_LOCAL | DLFS_OPT_NODEF,              \
      "with --eval of a language model: then print N tokens it generates\n"                                       \
      "after --prompt, seeded by --seed (the same text on any rank count)")                                       \
    X(prompt, const char *, DLFS_OPT_STR, "prompt", "TEXT", NULL, 0, 0, (""), DLFS_OPT_LOCAL,                      \
      "the text --sample continues (default: a newline)")                                                        \
    X(temperature, double, DLFS_OPT_REAL, "temperature", "T", 1.0, 1e-3, 100.0, (""), DLFS_OPT_LOCAL,            \
      "--sample: divide the logits by T before the softmax")                                                     \
    X(top_k, int, DLFS_OPT_INT, "top-k", "K", 0, 1, 65536, (""), DLFS_OPT_LOCAL | DLFS_OPT_NODEF,                 \
      "--sample: draw among the K most likely tokens only (default: all)")                                       \
    H("Devices and output:")                                                                                     \
    X(device, enum dlfs_device, DLFS_OPT_CHOICE, "device", "cpu|cuda|auto", 2, 0, 0, (DLFS_OPT_NAMES_DEVICE),    \
      DLFS_OPT_DIGEST, "auto: CUDA when built and a GPU works, else the CPU (saying why);\n"                    \
      "refused when GPUs are visible but unusable (CUDA_VISIBLE_DEVICES=-1\n"                                   \
      "hides them)")                                                                                             \
    X(precision, enum dlfs_precision, DLFS_OPT_CHOICE, "precision", "fp32|tf32|bf16", 0, 0, 0,                   \
      (DLFS_OPT_NAMES_PRECISION), DLFS_OPT_DIGEST,                                                               \
      "GEMM arithmetic. tf32/bf16 round the GEMM operands (10-/7-bit\n"                                          \
      "mantissa), sum in fp32; weights, gradients and optimizer state\n"                                         \
      "stay fp32. Fast on CUDA tensor cores; the CPU backend emulates\n"                                         \
      "them exactly, a little slower than fp32")                                                                 \
    X(data_on_device, bool, DLFS_OPT_CHOICE, "data-on-device", "auto|off", 1, 0, 0, (DLFS_OPT_NAMES_AUTOOFF),    \
      DLFS_OPT_LOCAL, "auto: keep the dataset in device memory when it fits (half the\n"                         \
      "free memory) and gather each batch there")                                                                \
    X(prefetch, bool, DLFS_OPT_CHOICE, "prefetch", "on|off", 1, 0, 0, (DLFS_OPT_NAMES_ONOFF), DLFS_OPT_LOCAL,    \
      "batches not gathered on the device: a thread assembles the next\n"                                        \
      "one while the step computes")                                                                             \
    X(cuda_graph, bool, DLFS_OPT_CHOICE, "cuda-graph", "on|off", 1, 0, 0, (DLFS_OPT_NAMES_ONOFF), DLFS_OPT_LOCAL, \
      "record the whole step once, replay it (one rank, fast mode, data\n"                                       \
      "on the device, no dropout; the cpu backend has no graphs and\n"                                           \
      "ignores it). Same bits either way")                                                                       \
    X(threads, int, DLFS_OPT_INT, "threads", "N", 0, 1, 1024, (""), DLFS_OPT_LOCAL | DLFS_OPT_NODEF,             \
      "CPU threads per rank: BLAS's, and the conv layers split the batch\n"                                      \
      "across them (default: cores / ranks on the node; 1 in\n"                                                  \
      "deterministic mode)")                                                                                     \
    X(eval_batch, int, DLFS_OPT_INT, "eval-batch", "N", 0, 1, 1 << 20, (""), DLFS_OPT_DIGEST | DLFS_OPT_NODEF,   \
      "evaluation chunk size (at most a rank's share of the test split;\n"                                        \
      "default 1000; language models: the windows whose activations fit\n"                                      \
      "in 512 MiB, at least a pass's rows, at most 1000)")                                                       \
    X(metrics, const char *, DLFS_OPT_STR, "metrics", "FILE", NULL, 0, 0, (""), DLFS_OPT_PRESENCE,               \
      "JSON lines: one object per epoch and a final one")                                                        \
    X(progress_s, double, DLFS_OPT_REAL, "progress-seconds", "X", 0.0, 0.0, 1e6, (""),                           \
      DLFS_OPT_LOCAL | DLFS_OPT_NODEF, "seconds between progress lines (default 1 on a terminal, 15 otherwise)") \
    X(quiet, bool, DLFS_OPT_FLAG, "quiet", NULL, 0, 0, 0, (""), DLFS_OPT_LOCAL, "only the final lines")          \
    X(trace, const char *, DLFS_OPT_STR, "trace", "FILE", NULL, 0, 0, (""), DLFS_OPT_LOCAL,                      \
      "timeline of every rank (Chrome trace JSON: Perfetto, chrome://tracing):\n"                                \
      "data, forward/backward per layer, each bucket's all-reduce, waits,\n"                                     \
      "the update, evaluation and checkpoint writes; on a GPU also device\n"                                     \
      "time. Recorded for --trace-steps steps after 2 warm-up steps")                                            \
    X(trace_steps, int, DLFS_OPT_INT, "trace-steps", "N", 5, 1, 100000, (""), DLFS_OPT_LOCAL,                    \
      "steps the timeline records")                                                                              \
    H("Benchmark:")                                                                                              \
    X(bench, bool, DLFS_OPT_FLAG, "bench", NULL, 0, 0, 0, (""), DLFS_OPT_DIGEST,                                 \
      "time training steps on synthetic data (no --data needed)")                                                \
    X(steps, int, DLFS_OPT_INT, "steps", "N", 30, 1, 1000000, (""), DLFS_OPT_DIGEST, "timed steps")              \
    X(bench_warmup, int, DLFS_OPT_INT, "bench-warmup", "N", 3, 0, 1000000, (""), DLFS_OPT_DIGEST,                \
      "untimed steps before them")

/* The options: one field per row of the table. */
#define DLFS_OPT_FIELD_(field, type, ...) type field;
#define DLFS_OPT_NONE_(heading)
struct dlfs_options {
    DLFS_OPTIONS(DLFS_OPT_FIELD_, DLFS_OPT_NONE_)
};

/* Defaults, then argv. Returns DLFS_OK, DLFS_ERR_USAGE (message set), or sets
 * *exit_now (for --help / --version, after printing on rank 0). */
enum dlfs_status dlfs_options_parse(struct dlfs_options *o, int argc, char **argv, int rank, bool *exit_now);
/* The optimizer's configuration from the options and the global batch (for
 * --lr-scaling); total_steps is left 0 for the trainer's plan to set. */
struct dlfs_optim_config dlfs_options_optim(const struct dlfs_options *o, int global_batch);
/* A digest of every option that must agree across ranks. */
uint64_t dlfs_options_digest(const struct dlfs_options *o);
/* The digested options as one line of text "name=value;..." (recorded in
 * checkpoints). */
void dlfs_options_describe(const struct dlfs_options *o, char *buf, size_t len);
/* The --help text (rank 0 prints it for -h/--help). */
void dlfs_options_usage(FILE *f);

#ifdef __cplusplus
}
#endif

#endif
