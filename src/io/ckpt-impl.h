/* Shared by the checkpoint files of src/io (private): names, field ranges,
 * digests, the walk over a model's parameter datasets. */
#ifndef DLFS_IO_CKPT_IMPL_H
#define DLFS_IO_CKPT_IMPL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "dlfs/checkpoint.h"
#include "dlfs/util.h"
#include "io/h5.h"

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

/* The state digest of a sharded checkpoint's manifest: the same attributes,
 * parameters and buffers as ckpt_state_sha256, the moments named ("m", "mv", "")
 * and, instead of their values, the shard count and each shard file's sha256. */
void ckpt_sharded_sha256(const struct dlfs_ckpt *c, const char *moments, char (*shard_sha)[65], int shards,
                         char hex[65]);

/* What a manifest adds to the single-file layout (ckpt-shard.c). */
struct ckpt_manifest {
    int shards;
    const char *moments;   /* "m", "mv" or "" */
    char (*shard_sha)[65]; /* (shards) */
};
/* The HDF5 file of `c` built in memory (checkpoint.c); with mf, a manifest: no
 * moment arrays, the sharded state digest and mf's attributes. */
int ckpt_build_image(const struct dlfs_ckpt *c, const struct dlfs_model *m, const struct ckpt_manifest *mf,
                     void **image, size_t *len);
/* The atomic write of an image at `path` with the checkpoint messages. */
enum dlfs_status ckpt_write_image(const char *path, const void *image, size_t len);
/* Read a sharded checkpoint's shard files under `dir` into c->m / c->v (allocated
 * here) and check them against the manifest `f` (ckpt-shard-load.c). */
enum dlfs_status ckpt_shards_read(const char *dir, hid_t f, struct dlfs_ckpt *c, int has_m, int has_v,
                                  const char *state_sha);
/* A shard file's digest: rank, world size, step, parameter count, the segment
 * table and the `total` values of m (and v). */
void ckpt_shard_sha256(const struct dlfs_ckpt_shard *s, size_t total, char hex[65]);
/* "ckpt-%09ld.d" into buf: the directory of a sharded checkpoint. */
void ckpt_dir_name(long step, char *buf, size_t len);
/* Remove a sharded checkpoint's directory: the manifest first, then the rest. */
void ckpt_remove_dir(const char *path);

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
