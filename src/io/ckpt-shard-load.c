/* Reading a sharded checkpoint's shard files (ckpt-impl.h: ckpt_shards_read):
 * each file checked against the manifest (rank, step, run, digest), its segments
 * against the parameter count (inside, no overlap, all covered), the moments
 * reassembled in full, then the manifest's state digest over the whole. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "io/ckpt-impl.h"
#include "io/io.h"

struct shard_in_ {
    int rank, shards, has_v;
    const struct dlfs_ckpt *c;
    const char *want_sha;
    unsigned char *covered; /* (num_params) */
};

static enum dlfs_status bad_(const char *path, const char *what)
{
    return dlfs_error_set(DLFS_ERR_FORMAT, "%s: checkpoint shard is damaged or not this checkpoint's (%s)", path,
                          what);
}

static int read_u64s_(hid_t f, const char *name, size_t max, uint64_t **out, size_t *n)
{
    *out = NULL;
    if (H5Lexists(f, name, H5P_DEFAULT) <= 0) return -1;
    hid_t ds = H5Dopen2(f, name, H5P_DEFAULT), sp = -1, t = -1;
    hsize_t d[1] = {0};
    int ok = ds >= 0 && (sp = H5Dget_space(ds)) >= 0 && (t = H5Dget_type(ds)) >= 0 &&
             H5Tget_class(t) == H5T_INTEGER && H5Sget_simple_extent_ndims(sp) == 1 &&
             H5Sget_simple_extent_dims(sp, d, NULL) == 1 && d[0] <= max;
    ok = ok && (*out = malloc((size_t)d[0] * sizeof **out + 1)) != NULL;
    ok = ok && (d[0] == 0 || H5Dread(ds, H5T_NATIVE_UINT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, *out) >= 0);
    *n = (size_t)d[0];
    h5_close(t), h5_close(sp), h5_close(ds);
    if (!ok) free(*out), *out = NULL;
    return ok ? 0 : -1;
}

static enum dlfs_status header_(hid_t f, const char *path, const struct shard_in_ *in)
{
    char *s = NULL;
    int64_t v[4] = {-1, -1, -1, -1};
    const int fmt = h5_attr_str_read(f, "format", 64, &s) == 0 && strcmp(s, "dlfs-checkpoint-shard") == 0;
    free(s), s = NULL;
    if (!fmt) return bad_(path, "no 'format' attribute = dlfs-checkpoint-shard");
    const char *names[4] = {"rank", "world_size", "step", "num_params"};
    for (int i = 0; i < 4; i++)
        if (h5_attr_i64_read(f, names[i], &v[i]) != 0) return bad_(path, "an integer attribute is missing");
    if (v[0] != in->rank || v[1] != in->shards || v[2] != in->c->step || (uint64_t)v[3] != in->c->num_params)
        return bad_(path, "its rank, world_size, step or num_params differ from the manifest's");
    const int ok = h5_attr_str_read(f, "moments", 8, &s) == 0 && strcmp(s, in->has_v ? "mv" : "m") == 0;
    free(s);
    return ok ? DLFS_OK : bad_(path, "it holds other moments than the manifest names");
}

/* The segments: inside [0, num_params), none overlapping another's (any shard). */
static enum dlfs_status segments_(const char *path, const struct shard_in_ *in, const uint64_t *off,
                                  const uint64_t *len, size_t k, size_t *total)
{
    const uint64_t n = in->c->num_params;
    *total = 0;
    for (size_t i = 0; i < k; i++) {
        if (off[i] > n || len[i] > n - off[i]) return bad_(path, "a segment lies outside the parameters");
        for (uint64_t j = off[i]; j < off[i] + len[i]; j++) {
            if (in->covered[j]) return bad_(path, "a segment overlaps another shard's");
            in->covered[j] = 1;
        }
        *total += (size_t)len[i];
    }
    return DLFS_OK;
}

static void scatter_(float *full, const float *part, const uint64_t *off, const uint64_t *len, size_t k)
{
    size_t at = 0;
    for (size_t i = 0; i < k; at += (size_t)len[i], i++) memcpy(full + off[i], part + at, (size_t)len[i] * sizeof *full);
}

static enum dlfs_status values_(hid_t f, const char *path, const struct shard_in_ *in, struct dlfs_ckpt *c,
                                const uint64_t *off, const uint64_t *len, size_t k, size_t total)
{
    float *pm = malloc(total * sizeof *pm + 1), *pv = in->has_v ? malloc(total * sizeof *pv + 1) : NULL;
    const uint64_t d[1] = {(uint64_t)total};
    enum dlfs_status st = DLFS_OK;
    if (!pm || (in->has_v && !pv)) st = dlfs_error_set(DLFS_ERR_NOMEM, "%s: out of memory", path);
    else if (h5_read_f32(f, "/m", 1, d, pm) != 0 || (pv && h5_read_f32(f, "/v", 1, d, pv) != 0))
        st = bad_(path, "cannot read its moments with the length of its segments");
    if (st == DLFS_OK) {
        uint64_t *o = malloc(k * sizeof *o + 1), *l = malloc(k * sizeof *l + 1);
        if (o && l) memcpy(o, off, k * sizeof *o), memcpy(l, len, k * sizeof *l);
        const struct dlfs_ckpt_shard s = {in->rank, in->shards, c->step, c->num_params, (int)k, o, l, pm, pv};
        char hex[65];
        ckpt_shard_sha256(&s, total, hex);
        if (!o || !l) st = dlfs_error_set(DLFS_ERR_NOMEM, "%s: out of memory", path);
        else if (strcmp(hex, in->want_sha) != 0)
            st = dlfs_error_set(DLFS_ERR_FORMAT, "%s: checkpoint shard is corrupt (its contents do not match the "
                                "sha256 its manifest records for it)", path);
        free(o), free(l);
    }
    if (st == DLFS_OK) {
        scatter_(c->m, pm, off, len, k);
        if (pv) scatter_(c->v, pv, off, len, k);
    }
    free(pm), free(pv);
    return st;
}

static enum dlfs_status one_(const char *dir, const struct shard_in_ *in, struct dlfs_ckpt *c)
{
    char name[48], *path = malloc(strlen(dir) + sizeof name + 2);
    if (!path) return dlfs_error_set(DLFS_ERR_NOMEM, "%s: out of memory", dir);
    snprintf(name, sizeof name, "rank-%d.h5", in->rank);
    sprintf(path, "%s/%s", dir, name);
    uint64_t size = 0, *off = NULL, *len = NULL;
    size_t k = 0, k2 = 0, total = 0;
    char obj[256];
    enum dlfs_status st = io_check_regular(path, "checkpoint shard", &size);
    hid_t f = st == DLFS_OK ? h5_open_path(path) : -1;
    if (st == DLFS_OK && f < 0) st = bad_(path, "not a readable HDF5 file");
    if (st == DLFS_OK && h5_find_outside(f, obj, sizeof obj) == 1) st = bad_(path, "values stored outside the file");
    if (st == DLFS_OK) st = header_(f, path, in);
    if (st == DLFS_OK && (read_u64s_(f, "offset", c->num_params, &off, &k) != 0 ||
                          read_u64s_(f, "length", c->num_params, &len, &k2) != 0 || k != k2))
        st = bad_(path, "its segment table is missing or inconsistent");
    if (st == DLFS_OK) st = segments_(path, in, off, len, k, &total);
    if (st == DLFS_OK && (uint64_t)total * sizeof(float) * (1u + (unsigned)in->has_v) > size)
        st = bad_(path, "shorter than its segments");
    if (st == DLFS_OK) st = values_(f, path, in, c, off, len, k, total);
    h5_close(f);
    free(off), free(len), free(path);
    return st;
}

/* Every parameter's moments in some shard: else the manifest's shards leave a gap
 * (one named: its first), and the checkpoint is incomplete. */
static enum dlfs_status gaps_(const char *dir, const struct shard_in_ *in)
{
    const size_t n = in->c->num_params;
    size_t covered = 0, g0 = n, g1 = n;
    for (size_t i = 0; i < n; i++) {
        covered += in->covered[i];
        if (!in->covered[i] && g0 == n) g0 = i;
        if (in->covered[i] && g0 < n && g1 == n) g1 = i;
    }
    if (covered == n) return DLFS_OK;
    return dlfs_error_set(DLFS_ERR_FORMAT, "%s/manifest.h5: checkpoint is incomplete: its %d shards hold the "
                          "moments of %zu of the %zu parameters (none for %zu..%zu, the first gap); the manifest "
                          "or a shard is damaged", dir, in->shards, covered, n, g0, g1 - 1);
}

enum dlfs_status ckpt_shards_read(const char *dir, hid_t f, struct dlfs_ckpt *c, int has_m, int has_v,
                                  const char *state_sha)
{
    char **sha = NULL;
    size_t n = 0;
    if (!has_m)
        return dlfs_error_set(DLFS_ERR_FORMAT, "%s: sharded checkpoint without optimizer moments (its manifest is "
                              "damaged)", dir);
    if (h5_attr_strs_read(f, "shard_sha256", (size_t)c->world_size, 64, &sha, &n) != 0 || n != (size_t)c->world_size)
        return dlfs_error_set(DLFS_ERR_FORMAT, "%s/manifest.h5: its 'shard_sha256' attribute is missing or does not "
                              "name one digest per rank of its world_size", dir);
    enum dlfs_status st = DLFS_OK;
    struct shard_in_ in = {0, c->world_size, has_v, c, NULL, calloc(c->num_params, 1)};
    c->m = malloc(c->num_params * sizeof(float));
    c->v = has_v ? malloc(c->num_params * sizeof(float)) : NULL;
    if (!in.covered || !c->m || (has_v && !c->v)) st = dlfs_error_set(DLFS_ERR_NOMEM, "%s: out of memory", dir);
    for (int r = 0; st == DLFS_OK && r < c->world_size; r++) {
        in.rank = r, in.want_sha = sha[r];
        st = one_(dir, &in, c);
    }
    if (st == DLFS_OK) st = gaps_(dir, &in);
    char hex[65];
    char(*list)[65] = st == DLFS_OK ? malloc(n * sizeof *list) : NULL;
    for (size_t r = 0; list && r < n; r++) snprintf(list[r], 65, "%s", sha[r]);
    if (st == DLFS_OK && list) ckpt_sharded_sha256(c, has_v ? "mv" : "m", list, (int)n, hex);
    if (st == DLFS_OK && (!list || strcmp(hex, state_sha) != 0))
        st = dlfs_error_set(DLFS_ERR_FORMAT, "%s/manifest.h5: checkpoint is corrupt (its parameters, buffers, "
                            "attributes or shard digests do not match the state_sha256 recorded when it was written)",
                            dir);
    free(list);
    for (size_t r = 0; r < n; r++) free(sha[r]);
    free(sha);
    free(in.covered);
    c->shards = c->world_size;
    return st;
}
