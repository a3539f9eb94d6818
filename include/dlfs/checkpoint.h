/* dlfs — checkpoints (HDF5, serial API; rank 0 writes, any rank may read).
 *
 * Layout of DIR/ckpt-<step, 9 digits>.h5 (src/README.md, "Checkpoints"):
 *   /params/<i>_<layer>/weight  float32 (out, in)     /params/<i>_<layer>/bias  float32 (out)
 *   /optimizer/m/<i>_<layer>/weight|bias               first moment / momentum (if any)
 *   /optimizer/v/<i>_<layer>/weight|bias               second moment (Adam, AdamW)
 *   root attributes: format "dlfs-checkpoint", format_version, dlfs_version, model_spec,
 *     num_params, params_sha256, optimizer, step, epoch, step_in_epoch, samples_in_epoch,
 *     global_batch, seed, deterministic, virtual_shards, world_size, rng, options, created
 *
 * Atomic: the file is built in memory, written to NAME.tmp, fsync'ed, closed,
 * renamed, and the directory fsync'ed. A crash at any point leaves the previous checkpoints untouched;
 * dlfs_ckpt_latest never returns a .tmp file.
 */
#ifndef DLFS_CHECKPOINT_H
#define DLFS_CHECKPOINT_H

#include <stddef.h>
#include <stdint.h>
#include "dlfs/model.h"
#include "dlfs/status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define DLFS_CKPT_FORMAT "dlfs-checkpoint"
#define DLFS_CKPT_VERSION 1

/* Everything a checkpoint stores. Arrays are host memory of num_params floats
 * (m, v may be NULL). Loading fills it and owns the arrays and strings. */
struct dlfs_ckpt {
    char *path;
    char *model_spec;
    char *optimizer;       /* "sgd", "adam", "adamw" */
    char *options;         /* the run's options as text, for the record */
    size_t num_params;
    float *params, *m, *v;
    size_t num_buffers;    /* batchnorm running statistics (/buffers/<i>_batchnorm/running_mean|running_var) */
    float *buffers;
    long step;             /* optimizer steps done */
    int epoch;             /* epoch in progress (1-based) */
    long samples_in_epoch; /* samples of that epoch's permutation already used */
    int global_batch;
    uint64_t seed;
    int deterministic, virtual_shards, world_size;
};

/* Write `c` (path ignored) as DIR/ckpt-<step>.h5; then remove all but the
 * newest `keep` checkpoints of DIR (keep 0: remove none). Creates DIR if
 * needed. On success *path_out (if not NULL) receives the file name (caller
 * frees). On failure nothing under a final name is changed. */
enum dlfs_status dlfs_ckpt_save(const char *dir, const struct dlfs_ckpt *c, const struct dlfs_model *m,
                                int keep, char **path_out);

/* Read and validate a checkpoint: format and version, shapes against its own
 * model spec, and the stored params_sha256 against the parameters read. */
enum dlfs_status dlfs_ckpt_load(const char *path, struct dlfs_ckpt *c);
void dlfs_ckpt_free(struct dlfs_ckpt *c);

/* Newest complete checkpoint of DIR (highest step), or *path = NULL when there
 * is none (not an error: a first start with --resume latest). */
enum dlfs_status dlfs_ckpt_latest(const char *dir, char **path);

/* Create DIR if needed and prove it writable (before hours of training rather
 * than after); removes stale ckpt-*.h5.tmp left by a killed writer. */
enum dlfs_status dlfs_ckpt_dir_check(const char *dir);

/* Test hooks (environment): DLFS_FAULT_CKPT_ABORT=N aborts the process in the
 * middle of the N-th checkpoint write, DLFS_FAULT_CKPT_PAUSE=N:S sleeps S
 * seconds there (half-way through writing the file). */

#ifdef __cplusplus
}
#endif

#endif
