/* dlfs — the training loop, evaluation, metrics and the benchmark (options:
 * dlfs/options.h). */
#ifndef DLFS_TRAIN_H
#define DLFS_TRAIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "dlfs/backend.h"
#include "dlfs/comm.h"
#include "dlfs/options.h"
#include "dlfs/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Exit code of a run stopped by SIGTERM/SIGUSR1 after writing its checkpoint
 * (DLFS_ERR_INTERRUPTED), and of one stopped without --checkpoint-dir. */
#define DLFS_EXIT_CHECKPOINTED 3
#define DLFS_EXIT_INTERRUPTED_NO_CKPT 4

/* Train (or benchmark, with o->bench) on every rank of `comm`. Collective.
 * Errors: a status with one message, identical on every rank. */
enum dlfs_status dlfs_train_run(const struct dlfs_options *o, const struct dlfs_comm *comm);
/* --eval: evaluate the checkpoint given by --resume on the test split. */
enum dlfs_status dlfs_eval_run(const struct dlfs_options *o, const struct dlfs_comm *comm);
enum dlfs_status dlfs_bench_run(const struct dlfs_options *o, const struct dlfs_comm *comm);

#ifdef __cplusplus
}
#endif

#endif
