/* Checkpoints in HDF5: the validated write (built in memory, the one atomic
 * writer) and the validated read. Layout in include/dlfs/checkpoint.h and
 * src/io/README.md; the directory side (listing, pruning, lineage) is ckpt-dir.c. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "io/ckpt-impl.h"
#include "io/h5.h"
#include "io/io.h"

#define CKPT_IMAGE_INCREMENT ((size_t)1 << 20)

/* ---- write ---------------------------------------------------------------------- */

static int write_slab_(hid_t f, const char *group, const struct dlfs_model *m, const float *slab)
{
    char path[256];
    if (h5_group_create(f, group) < 0) return -1;
    for (int l = 0; l < m->num_layers; l++) {
        const struct dlfs_layer *L = &m->layers[l];
        if (L->num_params == 0) continue; /* pooling, flatten: nothing to store */
        snprintf(path, sizeof path, "%s/%s", group, L->name);
        if (h5_group_create(f, path) < 0) return -1;
        uint64_t wd[4], bd[1];
        const int rank = ckpt_weight_dims(L, wd, bd);
        snprintf(path, sizeof path, "%s/%s/weight", group, L->name);
        if (h5_write_f32(f, path, rank, wd, slab + L->w_off) < 0) return -1;
        snprintf(path, sizeof path, "%s/%s/bias", group, L->name);
        if (bd[0] && h5_write_f32(f, path, 1, bd, slab + L->b_off) < 0) return -1;
    }
    return 0;
}

/* The layers' buffers (batchnorm's running statistics): /buffers/<layer>/<buf_names[i]>. */
static int write_buffers_(hid_t f, const struct dlfs_model *m, const float *buf)
{
    char path[256];
    if (h5_group_create(f, "/buffers") < 0) return -1;
    for (int l = 0; l < m->num_layers; l++) {
        const struct dlfs_layer *L = &m->layers[l];
        if (L->num_bufs == 0) continue;
        snprintf(path, sizeof path, "/buffers/%s", L->name);
        if (h5_group_create(f, path) < 0) return -1;
        const uint64_t d[1] = {(uint64_t)L->buf_len};
        for (int i = 0; i < L->num_bufs; i++) {
            snprintf(path, sizeof path, "/buffers/%s/%s", L->name, L->buf_names[i]);
            if (h5_write_f32(f, path, 1, d, buf + L->buf_off + (size_t)i * L->buf_len) < 0) return -1;
        }
    }
    return 0;
}

static int write_attrs_(hid_t f, const struct dlfs_ckpt *c, const struct ckpt_manifest *mf)
{
    char params[65], state[65], when[64];
    dlfs_params_sha256(c->params, c->num_params, params);
    if (mf) ckpt_sharded_sha256(c, mf->moments, mf->shard_sha, mf->shards, state);
    else ckpt_state_sha256(c, state);
    const time_t now = time(NULL);
    struct tm tmv;
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&now, &tmv));
    int rc = 0;
    rc |= h5_attr_str_write(f, "format", DLFS_CKPT_FORMAT);
    rc |= h5_attr_i64_write(f, "format_version", DLFS_CKPT_VERSION);
    rc |= h5_attr_str_write(f, "dlfs_version", DLFS_VERSION);
    rc |= h5_attr_str_write(f, "created", when);
    rc |= h5_attr_str_write(f, "model_spec", c->model_spec);
    rc |= h5_attr_i64_write(f, "num_params", (int64_t)c->num_params);
    rc |= h5_attr_str_write(f, "params_sha256", params);
    rc |= h5_attr_str_write(f, "state_sha256", state);
    rc |= h5_attr_str_write(f, "optimizer", c->optimizer);
    rc |= h5_attr_i64_write(f, "step", c->step);
    rc |= h5_attr_i64_write(f, "epoch", c->epoch);
    rc |= h5_attr_i64_write(f, "samples_in_epoch", c->samples_in_epoch);
    rc |= h5_attr_i64_write(f, "global_batch", c->global_batch);
    rc |= h5_attr_i64_write(f, "seed", (int64_t)c->seed);
    rc |= h5_attr_i64_write(f, "deterministic", c->deterministic);
    rc |= h5_attr_i64_write(f, "virtual_shards", c->virtual_shards);
    rc |= h5_attr_i64_write(f, "world_size", c->world_size);
    rc |= h5_attr_str_write(f, "run_id", c->run_id ? c->run_id : "");
    rc |= h5_attr_str_write(f, "parent", c->parent ? c->parent : "");
    rc |= h5_attr_i64_write(f, "parent_step", c->parent_step);
    rc |= h5_attr_str_write(f, "rng", "counter-based: every draw is a function of (seed, purpose, epoch/layer, "
                                      "index); the seed and the position are the whole RNG state");
    rc |= h5_attr_str_write(f, "options", c->options ? c->options : "");
    if (mf) {
        const char **v = malloc((size_t)mf->shards * sizeof *v);
        for (int r = 0; v && r < mf->shards; r++) v[r] = mf->shard_sha[r];
        rc |= h5_attr_i64_write(f, "shards", mf->shards);
        rc |= h5_attr_str_write(f, "moments", mf->moments);
        rc |= v ? h5_attr_strs_write(f, "shard_sha256", v, (size_t)mf->shards) : -1;
        free(v);
    }
    return rc ? -1 : 0;
}

/* Build the whole file in memory (HDF5 core driver, no backing store); the
 * atomic writer then writes its bytes with plain write()/fsync(): a full disk
 * fails there with errno intact, instead of inside HDF5's flush (which in HDF5
 * 1.10 leaves a half-closed file that crashes at exit). */
int ckpt_build_image(const struct dlfs_ckpt *c, const struct dlfs_model *m, const struct ckpt_manifest *mf,
                     void **image, size_t *len)
{
    hid_t f = h5_create_memory(CKPT_IMAGE_INCREMENT);
    int rc = f < 0 ? -1 : write_attrs_(f, c, mf);
    if (rc == 0) rc = write_slab_(f, "/params", m, c->params);
    if (rc == 0 && m->num_buffers) rc = c->buffers ? write_buffers_(f, m, c->buffers) : -1;
    if (rc == 0) {
        hid_t g = H5Gcreate2(f, "/optimizer", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        rc = g < 0 || h5_attr_str_write(g, "name", c->optimizer) || h5_attr_i64_write(g, "step", c->step) ? -1 : 0;
        h5_close(g);
    }
    if (rc == 0 && c->m) rc = write_slab_(f, "/optimizer/m", m, c->m);
    if (rc == 0 && c->v) rc = write_slab_(f, "/optimizer/v", m, c->v);
    if (rc == 0) rc = h5_get_image(f, image, len);
    if (f >= 0 && H5Fclose(f) < 0) rc = -1;
    if (rc) {
        free(*image);
        *image = NULL;
    }
    return rc;
}

/* Everything about `c` that makes it unwritable, before a byte is written. */
static enum dlfs_status save_check_(const char *path, const struct dlfs_ckpt *c, const struct dlfs_model *m)
{
    const char *bad = ckpt_fields_bad(c);
    if (bad)
        return dlfs_error_set(DLFS_ERR_FORMAT, "cannot write checkpoint %s: its %s is out of range (a bug: please "
                              "report it); the previous checkpoints are untouched", path, bad);
    const int bufs_ok = !m->num_buffers || (c->buffers && c->num_buffers == m->num_buffers);
    if (c->num_params != m->num_params || !c->params || !bufs_ok || ckpt_moments_bad(c->optimizer, !!c->m, !!c->v))
        return dlfs_error_set(DLFS_ERR_FORMAT, "cannot write checkpoint %s: the state does not match the model "
                              "(a bug: please report it); the previous checkpoints are untouched", path);
    char where[320];
    if (ckpt_state_nonfinite(m, c, where, sizeof where))
        return dlfs_error_set(DLFS_ERR_NUMERIC, "cannot write checkpoint %s at step %ld: non-finite values in %s "
                              "(the run has diverged); nothing was written, the previous checkpoints are kept",
                              path, c->step, where);
    return DLFS_OK;
}

enum dlfs_status ckpt_write_image(const char *path, const void *image, size_t len)
{
    struct io_atomic_err e = {0, NULL, NULL};
    enum dlfs_status st = DLFS_OK;
    if (io_atomic_write(path, image, len, IO_ATOMIC_CKPT_HOOKS, &e) != 0)
        st = strcmp(e.stage, "rename") == 0
                 ? dlfs_error_set(DLFS_ERR_IO, "cannot rename %s to %s: %s", e.tmp, path, strerror(e.err))
                 : dlfs_error_set(DLFS_ERR_IO, "cannot write checkpoint %s: %s; the previous checkpoints are "
                                  "untouched (free disk space or choose another --checkpoint-dir)", path,
                                  e.err ? strerror(e.err) : "out of memory");
    io_atomic_err_free(&e);
    return st;
}

enum dlfs_status dlfs_ckpt_write_file(const char *path, const struct dlfs_ckpt *c, const struct dlfs_model *m)
{
    enum dlfs_status st = save_check_(path, c, m);
    void *image = NULL;
    size_t len = 0;
    if (st == DLFS_OK && ckpt_build_image(c, m, NULL, &image, &len) != 0)
        st = dlfs_error_set(DLFS_ERR_IO, "cannot write checkpoint %s: building the HDF5 file in memory failed (out "
                            "of memory?); the previous checkpoints are untouched", path);
    if (st == DLFS_OK) st = ckpt_write_image(path, image, len);
    free(image);
    return st;
}

enum dlfs_status dlfs_ckpt_save(const char *dir, const struct dlfs_ckpt *c, const struct dlfs_model *m,
                                int keep, char **path_out)
{
    DLFS_TRY(io_mkdirs("--checkpoint-dir", dir, CKPT_NAME_ROOM));
    char name[40];
    ckpt_name(c->step, name, sizeof name);
    const size_t plen = strlen(dir) + strlen(name) + 2;
    char *path = malloc(plen);
    if (!path) return dlfs_error_set(DLFS_ERR_NOMEM, "cannot write checkpoint in %s: out of memory", dir);
    snprintf(path, plen, "%s/%s", dir, name);
    const enum dlfs_status st = dlfs_ckpt_write_file(path, c, m);
    if (st == DLFS_OK) ckpt_prune(dir, keep, c->step);
    if (st == DLFS_OK && path_out) *path_out = path;
    else free(path);
    return st;
}
