/* Shared by the checkpoint files of src/io (private): names, field ranges,
 * digests, the walk over a model's parameter datasets. */
#ifndef DLFS_IO_CKPT_IMPL_H
#define DLFS_IO_CKPT_IMPL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "dlfs/checkpoint.h"
#include "dlfs/util.h"

/* Room a checkpoint directory's path must leave for the names written inside
 * it ("/abandoned-<time>-<n>/ckpt-<12 digits>.h5.tmp", the write probe). */
#define CKPT_NAME_ROOM 80

/* "ckpt-%09ld.h5" into buf (at least 32 bytes). */
void ckpt_name(long step, char *buf, size_t len);
/* The step of a name dlfs writes: 1 and *step; 0 and *why (static text) for a
 * ckpt-*.h5 name that is not one (ckpt-5.h5, ckpt-<23 digits>.h5); -1 for
 * names that do not look like checkpoints at all (quietly ignored). */
int ckpt_parse_name(const char *name, long *step, const char **why);

/* The attributes in their documented ranges: NULL, else the first field out of range. */
const char *ckpt_fields_bad(const struct dlfs_ckpt *c);
/* Whether moment slabs m (has_m) and v (has_v) are what a checkpoint of optimizer
 * `name` holds (its row of the optimizer table: between moments_min and
 * moments_max of them, v only with m): NULL if so, else what is wrong. */
const char *ckpt_moments_bad(const char *name, int has_m, int has_v);

/* Hex digests of the parameters (as dlfs-train prints them) and of the whole state. */
void ckpt_state_sha256(const struct dlfs_ckpt *c, char hex[65]);

/* The first dataset path of a slab holding a NaN or Inf ("/params/0_dense/weight"),
 * written into buf; false when all values are finite. `group`: "/params",
 * "/optimizer/m", "/optimizer/v", or "/buffers" (then slab = buffers). */
bool ckpt_nonfinite(const struct dlfs_model *m, const char *group, const float *slab, char *buf, size_t len);
/* The first non-finite dataset of the whole state (params, buffers, m, v). */
bool ckpt_state_nonfinite(const struct dlfs_model *m, const struct dlfs_ckpt *c, char *buf, size_t len);

/* Remove the checkpoints of DIR older than the newest `keep` (0: none), counting
 * the one just written at `step`; never that one or a higher step. */
void ckpt_prune(const char *dir, int keep, long step);

/* Take DIR's lock (DIR/.dlfs-lock, src/io/ckpt-lock.c): *fd is the lock file,
 * held open for the run (the kernel releases the lock when the process ends);
 * -1 when DLFS_CKPT_LOCK=off. Another run holding it: DLFS_ERR_USAGE naming it. */
enum dlfs_status ckpt_dir_lock(const char *dir, int *fd);

/* Shapes of a layer's weight (its rank returned) and bias as the file stores them. */
int ckpt_weight_dims(const struct dlfs_layer *L, uint64_t wd[4], uint64_t bd[1]);

#endif
