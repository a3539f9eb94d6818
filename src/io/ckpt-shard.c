/* Sharded checkpoints (one file per rank plus a manifest; include/dlfs/checkpoint.h,
 * src/README.md "Checkpoints"): the shard files written and read, the manifest
 * written, the directory made and removed. */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "core/checked.h"
#include "io/ckpt-impl.h"
#include "io/io.h"

#define SHARD_FORMAT "dlfs-checkpoint-shard"

static char *path2_(const char *dir, const char *a, const char *b)
{
    const size_t n = strlen(dir) + strlen(a) + (b ? strlen(b) : 0) + 3;
    char *p = malloc(n);
    if (p) snprintf(p, n, b ? "%s/%s/%s" : "%s/%s", dir, a, b ? b : "");
    return p;
}

enum dlfs_status dlfs_ckpt_shard_dir(const char *dir, long step)
{
    DLFS_TRY(io_mkdirs("--checkpoint-dir", dir, CKPT_NAME_ROOM));
    char name[40];
    ckpt_dir_name(step, name, sizeof name);
    char *p = path2_(dir, name, NULL), *man = path2_(dir, name, "manifest.h5");
    enum dlfs_status st = DLFS_OK;
    struct stat sb;
    if (!p || !man) st = dlfs_error_set(DLFS_ERR_NOMEM, "cannot write checkpoint in %s: out of memory", dir);
    else if (mkdir(p, 0777) != 0 && errno != EEXIST)
        st = dlfs_error_set(DLFS_ERR_IO, "cannot create the sharded checkpoint %s: %s; the previous checkpoints "
                            "are untouched", p, strerror(errno));
    else if (lstat(p, &sb) != 0 || !S_ISDIR(sb.st_mode)) /* never into a link planted at the name */
        st = dlfs_error_set(DLFS_ERR_IO, "cannot write the sharded checkpoint %s: the name is taken by something "
                            "that is not a directory dlfs made (a link or a file); move it away", p);
    else if (unlink(man) != 0 && errno != ENOENT)
        st = dlfs_error_set(DLFS_ERR_IO, "cannot replace %s: %s", man, strerror(errno));
    free(p), free(man);
    return st;
}

static int write_u64s_(hid_t f, const char *name, int count, const uint64_t *v)
{
    const hsize_t d[1] = {(hsize_t)count};
    hid_t sp = H5Screate_simple(1, d, NULL), ds = -1;
    const int ok = sp >= 0 && (ds = H5Dcreate2(f, name, H5T_STD_U64LE, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT)) >= 0 &&
                   (count == 0 || H5Dwrite(ds, H5T_NATIVE_UINT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, v) >= 0);
    h5_close(ds), h5_close(sp);
    return ok ? 0 : -1;
}

static int shard_image_(const struct dlfs_ckpt_shard *s, size_t total, const char *sha, void **image, size_t *len)
{
    hid_t f = h5_create_memory((size_t)1 << 20);
    const uint64_t d[1] = {(uint64_t)total};
    int rc = f < 0 ? -1 : 0;
    if (rc == 0) {
        rc |= h5_attr_str_write(f, "format", SHARD_FORMAT);
        rc |= h5_attr_i64_write(f, "format_version", 1);
        rc |= h5_attr_i64_write(f, "rank", s->rank);
        rc |= h5_attr_i64_write(f, "world_size", s->world_size);
        rc |= h5_attr_i64_write(f, "step", s->step);
        rc |= h5_attr_i64_write(f, "num_params", (int64_t)s->num_params);
        rc |= h5_attr_str_write(f, "moments", s->v ? "mv" : "m");
        rc |= h5_attr_str_write(f, "shard_sha256", sha);
        rc |= write_u64s_(f, "offset", s->count, s->off) | write_u64s_(f, "length", s->count, s->len);
        rc |= h5_write_f32(f, "/m", 1, d, s->m);
        if (s->v) rc |= h5_write_f32(f, "/v", 1, d, s->v);
    }
    if (rc == 0) rc = h5_get_image(f, image, len);
    if (f >= 0 && H5Fclose(f) < 0) rc = -1;
    return rc;
}

enum dlfs_status dlfs_ckpt_shard_write(const char *dir, const struct dlfs_ckpt_shard *s, char sha[65])
{
    char name[40], file[32];
    ckpt_dir_name(s->step, name, sizeof name);
    snprintf(file, sizeof file, "rank-%d.h5", s->rank);
    char *path = path2_(dir, name, file);
    if (!path) return dlfs_error_set(DLFS_ERR_NOMEM, "cannot write checkpoint in %s: out of memory", dir);
    size_t total = 0;
    for (int i = 0; i < s->count; i++) total += s->len[i];
    enum dlfs_status st = DLFS_OK;
    for (size_t i = 0; i < total && st == DLFS_OK; i++)
        if (!isfinite(s->m[i]) || (s->v && !isfinite(s->v[i])))
            st = dlfs_error_set(DLFS_ERR_NUMERIC, "cannot write checkpoint %s at step %ld: non-finite optimizer "
                                "moments (the run has diverged); the previous checkpoints are kept", path, s->step);
    ckpt_shard_sha256(s, total, sha);
    void *image = NULL;
    size_t len = 0;
    if (st == DLFS_OK && shard_image_(s, total, sha, &image, &len) != 0)
        st = dlfs_error_set(DLFS_ERR_IO, "cannot write checkpoint %s: building the HDF5 file in memory failed (out "
                            "of memory?); the previous checkpoints are untouched", path);
    if (st == DLFS_OK) st = ckpt_write_image(path, image, len);
    free(image);
    free(path);
    return st;
}

enum dlfs_status dlfs_ckpt_manifest_write(const char *dir, const struct dlfs_ckpt *c, int has_m, int has_v,
                                          const struct dlfs_model *m, char (*shard_sha)[65], int keep,
                                          char **path_out)
{
    char name[40];
    ckpt_dir_name(c->step, name, sizeof name);
    char *path = path2_(dir, name, NULL), *man = path2_(dir, name, "manifest.h5");
    enum dlfs_status st = path && man ? DLFS_OK : dlfs_error_set(DLFS_ERR_NOMEM, "out of memory");
    const struct ckpt_manifest mf = {c->world_size, has_m ? (has_v ? "mv" : "m") : "", shard_sha};
    const char *bad = ckpt_fields_bad(c);
    if (st == DLFS_OK && (bad || c->num_params != m->num_params || ckpt_moments_bad(c->optimizer, has_m, has_v)))
        st = dlfs_error_set(DLFS_ERR_FORMAT, "cannot write checkpoint %s: %s does not match the model or is out of "
                            "range (a bug: please report it); the previous checkpoints are untouched", path,
                            bad ? bad : "the state");
    char where[320];
    if (st == DLFS_OK && ckpt_state_nonfinite(m, c, where, sizeof where))
        st = dlfs_error_set(DLFS_ERR_NUMERIC, "cannot write checkpoint %s at step %ld: non-finite values in %s (the "
                            "run has diverged); the previous checkpoints are kept", path, c->step, where);
    void *image = NULL;
    size_t len = 0;
    if (st == DLFS_OK && ckpt_build_image(c, m, &mf, &image, &len) != 0)
        st = dlfs_error_set(DLFS_ERR_IO, "cannot write checkpoint %s: building the manifest in memory failed; the "
                            "previous checkpoints are untouched", path);
    if (st == DLFS_OK) st = ckpt_write_image(man, image, len);
    free(image);
    free(man);
    if (st == DLFS_OK) ckpt_prune(dir, keep, c->step);
    if (st == DLFS_OK && path_out) *path_out = path;
    else free(path);
    return st;
}
