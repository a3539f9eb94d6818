/* dlfs — checkpoints (HDF5, serial API; rank 0 writes, any rank may read).
 *
 * Layout of DIR/ckpt-<step, 9 digits or more>.h5 (src/io/README.md has the details):
 *   /params/<i>_<layer>/weight  float32 (out, in)     /params/<i>_<layer>/bias  float32 (out)
 *   /buffers/<i>_batchnorm/running_mean|running_var    batchnorm running statistics
 *   /optimizer/m/<i>_<layer>/weight|bias               first moment / momentum (if any)
 *   /optimizer/v/<i>_<layer>/weight|bias               second moment (Adam, AdamW)
 *   root attributes: format "dlfs-checkpoint", format_version, dlfs_version, model_spec,
 *     num_params, params_sha256, state_sha256, optimizer, step, epoch, samples_in_epoch,
 *     global_batch, seed, deterministic, virtual_shards, world_size, run_id, parent,
 *     parent_step, rng, options, created
 *
 * params_sha256 covers the parameters (as dlfs-train prints it); state_sha256 the
 * whole training state: parameters, buffers, optimizer moments and every
 * attribute that positions the run (src/io/README.md gives the exact bytes).
 * Format version 2 is written; version 1 (no state_sha256, no lineage) is still
 * read, its parameters verified against params_sha256 only (format_version says
 * which was read, so the caller can say so).
 *
 * Atomic: the file is built in memory and written by the one atomic writer
 * (src/io/io.h): NAME.tmp, fsync, rename, fsync of the directory. A crash at any
 * point leaves the previous checkpoints untouched; no .tmp file is ever taken
 * for a checkpoint. Non-finite state is never written.
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
#define DLFS_CKPT_VERSION 2
/* Ranges every checkpoint attribute must be in (checked on load and on save). */
#define DLFS_CKPT_MAX_STEP 999999999999L /* 12 digits in the file name */
#define DLFS_CKPT_MAX_SPEC 65536         /* bytes of model_spec */
#define DLFS_CKPT_MAX_TEXT 65536         /* bytes of options, run_id, parent */
#define DLFS_CKPT_MAX_SEED 2147483647L   /* the largest --seed */
#define DLFS_CKPT_MAX_SHARDS 4096        /* the largest --virtual-shards */
#define DLFS_CKPT_MAX_WORLD (1 << 24)    /* ranks */

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
    /* lineage (format 2; "" and -1 when unknown): the dlfs-train invocation that
     * wrote it, and the checkpoint that invocation resumed from */
    char *run_id;          /* dlfs_ckpt_run_id(); NULL is written as "" */
    char *parent;          /* file name (no directory) it resumed from; "" or NULL: a fresh start */
    long parent_step;      /* that checkpoint's step; -1: a fresh start */
    int format_version;    /* set by the loaders: the version of the file read (1 or 2) */
    int shards;            /* set by the loaders: shard files of a sharded checkpoint (0: one file) */
};

/* What the caller's run needs, compared BEFORE any array is allocated or read
 * (a checkpoint of another model costs no memory). Every member may be 0/NULL
 * (= anything goes). Mismatches: DLFS_ERR_SHAPE "PATH holds model A but --model
 * is B; resume with --model 'A'", DLFS_ERR_USAGE "PATH holds X optimizer state
 * but --optim is Y; resume with --optim X", DLFS_ERR_USAGE "PATH has no optimizer
 * state for these options …". */
struct dlfs_ckpt_expect {
    const char *model_spec; /* the run's canonical spec (dlfs_model.spec) */
    const char *model_arg;  /* the --model text, for the message (NULL: model_spec) */
    const char *optimizer;  /* "sgd", "adam", "adamw" */
    int need_m, need_v;     /* the run keeps first / second moments */
    int params_only;        /* --eval: verify everything, then keep only params and buffers */
};

/* Write `c` (path and format_version ignored) as DIR/ckpt-<step>.h5; then
 * remove the checkpoints of DIR older than the newest `keep` (keep 0: remove
 * none): never the one just written, never one of a higher step, never a file
 * whose name does not parse. Creates DIR if needed (its path length checked
 * first). Refuses, writing nothing: fields out of their ranges (DLFS_ERR_FORMAT)
 * and non-finite parameters, buffers or moments (DLFS_ERR_NUMERIC, the message
 * names the first dataset holding one). On success *path_out (if not NULL)
 * receives the file name (caller frees). On failure nothing under a final name
 * is changed. */
enum dlfs_status dlfs_ckpt_save(const char *dir, const struct dlfs_ckpt *c, const struct dlfs_model *m,
                                int keep, char **path_out);

/* Read and validate a checkpoint: only a regular file; format and version;
 * every attribute's type and range; the spec parsed and num_params compared, and
 * the arrays' bytes checked against the file's size, before allocating; the
 * digests (params_sha256; state_sha256 from version 2 on) against what was
 * read; then every value finite ("non-finite values in /params/…: the run had
 * diverged before this checkpoint", DLFS_ERR_NUMERIC). A damaged file is
 * DLFS_ERR_FORMAT; every message names the file. `e` may be NULL. */
enum dlfs_status dlfs_ckpt_load_checked(const char *path, struct dlfs_ckpt *c, const struct dlfs_ckpt_expect *e);
/* The same from an HDF5 file image in memory (`name` for messages; for tests and fuzzing). */
enum dlfs_status dlfs_ckpt_load_image(const void *buf, size_t len, const char *name, struct dlfs_ckpt *c,
                                      const struct dlfs_ckpt_expect *e);
void dlfs_ckpt_free(struct dlfs_ckpt *c);

/* Sharded checkpoints (--ckpt-sharded with --zero 1; src/README.md, Checkpoints):
 * DIR/ckpt-<step>.d/rank-<R>.h5, one per rank, each holding that rank's segments
 * of the optimizer moments, and DIR/ckpt-<step>.d/manifest.h5, written last by
 * rank 0: the parameters, buffers and attributes of a single-file checkpoint (no
 * moments) plus the shard count and each shard's sha256. Without the manifest the
 * directory is no checkpoint. dlfs_ckpt_load_checked reads a sharded checkpoint
 * when given its directory, reassembling the full moments (any rank count). */
struct dlfs_ckpt_shard {
    int rank, world_size;
    long step;
    size_t num_params;
    int count;                  /* segments */
    const uint64_t *off, *len;  /* (count) each: where the segment's values lie in the full vector */
    const float *m, *v;         /* the segments' values, one after another (v NULL without) */
};
/* Rank 0, before the shards: create DIR/ckpt-<step>.d (and DIR), removing the
 * manifest of an earlier write of that step so that it no longer counts. */
enum dlfs_status dlfs_ckpt_shard_dir(const char *dir, long step);
/* Every rank: its shard file, written atomically; its digest into sha. */
enum dlfs_status dlfs_ckpt_shard_write(const char *dir, const struct dlfs_ckpt_shard *s, char sha[65]);
/* Rank 0, after every shard is written: the manifest (c->m, c->v NULL; has_m,
 * has_v say which moments the shards hold), then pruning to `keep`. */
enum dlfs_status dlfs_ckpt_manifest_write(const char *dir, const struct dlfs_ckpt *c, int has_m, int has_v,
                                          const struct dlfs_model *m, char (*shard_sha)[65], int keep,
                                          char **path_out);
/* A loaded checkpoint (full state) as one file of the single-file format at `path`. */
enum dlfs_status dlfs_ckpt_write_file(const char *path, const struct dlfs_ckpt *c, const struct dlfs_model *m);

/* The checkpoints of DIR, ascending by step. Only names dlfs writes count
 * (ckpt-<step>.h5, step zero-padded to 9 digits, at most DLFS_CKPT_MAX_STEP) and
 * only regular files; other ckpt-*.h5 names (ckpt-5.h5, ckpt-<23 digits>.h5, a
 * directory) are ignored, each with a line "ignored NAME: why" in `ignored`.
 * A missing DIR is an empty list. */
struct dlfs_ckpt_entry { char *name; long step; };
struct dlfs_ckpt_list {
    size_t n;
    struct dlfs_ckpt_entry *v;
    char *ignored; /* NULL when nothing was ignored */
};
enum dlfs_status dlfs_ckpt_list(const char *dir, struct dlfs_ckpt_list *l);
void dlfs_ckpt_list_free(struct dlfs_ckpt_list *l);

/* The newest checkpoint of DIR that loads and verifies (dlfs_ckpt_load_checked
 * with `e`), loaded into *c (c->path NULL when DIR holds none: not an error).
 * Checkpoints that are damaged (DLFS_ERR_FORMAT) or non-finite
 * (DLFS_ERR_NUMERIC) are skipped; *report (caller frees; NULL when there is
 * nothing to say) gets one line per skipped or ignored file with the reason, for
 * the caller to print. Any other failure (a mismatch with `e`, an I/O error) is
 * returned at once. When every checkpoint fails: DLFS_ERR_FORMAT "no checkpoint
 * in DIR verifies …". A caller that skipped newer files should set them aside
 * with dlfs_ckpt_rollback_check(…, archive = 1, …) before writing to DIR. */
enum dlfs_status dlfs_ckpt_latest_valid(const char *dir, const struct dlfs_ckpt_expect *e, struct dlfs_ckpt *c,
                                        char **report);

/* Lineage (src/io/README.md): a run writing into DIR must continue the newest
 * line there. Before a run writes into DIR, call this with the checkpoint it
 * resumes from (resume_path and its step; NULL and -1 for a fresh start). The
 * checkpoints in the way are those of DIR with a higher step, or the same step
 * but another file (for a fresh start: all of them). None: DLFS_OK, *msg NULL.
 * Some and !archive: DLFS_ERR_USAGE with one message naming them and the ways
 * forward (--rollback, or a new --checkpoint-dir); nothing is touched.
 * Some and archive: they are MOVED (never deleted) into
 * DIR/abandoned-<UTC time>/ and *msg (caller frees) says so, for the caller to
 * print; `latest` is then the resumed checkpoint again. */
enum dlfs_status dlfs_ckpt_rollback_check(const char *dir, const char *resume_path, long resume_step, int archive,
                                          char **msg);

/* A new random run id (32 hex characters + NUL) for struct dlfs_ckpt.run_id. */
void dlfs_ckpt_run_id(char out[33]);

/* Create DIR if needed (path length checked before creating anything) and prove
 * it writable (before hours of training rather than after); take its lock, so
 * that no second run writes there at the same time (*lock_fd: the lock file,
 * to close at the end of the run, -1 when none: DLFS_CKPT_LOCK=off); removes
 * stale ckpt-*.h5.tmp left by a killed writer; warns on stderr (one line each)
 * about ckpt-*.h5 names it will ignore. */
enum dlfs_status dlfs_ckpt_dir_check(const char *dir, int *lock_fd);
/* Release DIR's lock taken by dlfs_ckpt_dir_check: the lock file is removed (while
 * still locked, and only when it is still the one locked) and closed. fd -1: nothing. */
void dlfs_ckpt_dir_unlock(const char *dir, int fd);

/* Test hooks (environment): DLFS_FAULT_CKPT_ABORT=N aborts the process in the
 * middle of the N-th checkpoint write, DLFS_FAULT_CKPT_PAUSE=N:S sleeps S
 * seconds there (half-way through writing the file). */

#ifdef __cplusplus
}
#endif

#endif
