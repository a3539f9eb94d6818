/* Reading a checkpoint: attributes in their ranges, the caller's expectation and
 * the sizes before any allocation, the arrays, the digests, then finiteness. */
#define _POSIX_C_SOURCE 200809L
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "core/checked.h"
#include "io/ckpt-impl.h"
#include "io/h5.h"
#include "io/io.h"

static enum dlfs_status damaged_(const char *path, const char *what)
{
    return dlfs_error_set(DLFS_ERR_FORMAT, "%s: checkpoint is damaged or incomplete (%s)", path, what);
}

/* The integer attributes, each read as int64 and checked against its range. */
static enum dlfs_status ints_(hid_t f, const char *path, struct dlfs_ckpt *c, int version)
{
    static const struct { const char *name; int64_t lo, hi; } r[] = {
        {"num_params", 1, INT64_MAX}, {"step", 0, DLFS_CKPT_MAX_STEP}, {"epoch", 1, INT_MAX},
        {"samples_in_epoch", 0, INT_MAX}, {"global_batch", 1, INT_MAX}, {"seed", 0, DLFS_CKPT_MAX_SEED},
        {"deterministic", 0, 1}, {"virtual_shards", 1, DLFS_CKPT_MAX_SHARDS}, {"world_size", 1, DLFS_CKPT_MAX_WORLD},
        {"parent_step", -1, DLFS_CKPT_MAX_STEP}};
    const int n = version >= 2 ? 10 : 9;
    int64_t v[10] = {0, 0, 0, 0, 0, 0, 0, 0, 0, -1};
    for (int i = 0; i < n; i++) {
        char what[96];
        snprintf(what, sizeof what, "its '%s' attribute is missing or not an integer", r[i].name);
        if (h5_attr_i64_read(f, r[i].name, &v[i]) != 0) return damaged_(path, what);
        if (v[i] < r[i].lo || v[i] > r[i].hi)
            return dlfs_error_set(DLFS_ERR_FORMAT, "%s: checkpoint attribute '%s' is %lld, outside [%lld, %lld]: "
                                  "the file is damaged or was not written by dlfs", path, r[i].name,
                                  (long long)v[i], (long long)r[i].lo, (long long)r[i].hi);
    }
    c->num_params = (size_t)v[0], c->step = (long)v[1], c->epoch = (int)v[2], c->samples_in_epoch = (long)v[3];
    c->global_batch = (int)v[4], c->seed = (uint64_t)v[5], c->deterministic = (int)v[6];
    c->virtual_shards = (int)v[7], c->world_size = (int)v[8], c->parent_step = (long)v[9];
    return DLFS_OK;
}

/* A string attribute of at most `max` bytes; absent is an error unless `optional`. */
static enum dlfs_status str_(hid_t f, const char *path, const char *name, size_t max, int optional, char **out)
{
    const int rc = h5_attr_str_read(f, name, max, out);
    if (rc == 0 || (rc > 0 && optional && (*out = strdup(""))))
        return DLFS_OK;
    char what[128];
    snprintf(what, sizeof what, "its '%s' attribute is %s", name, rc > 0 ? "missing" : "not a string of at most "
             "the allowed length");
    return damaged_(path, what);
}

static enum dlfs_status attrs_(hid_t f, const char *path, struct dlfs_ckpt *c, char digests[2][65])
{
    char *s = NULL;
    if (h5_attr_str_read(f, "format", 64, &s) != 0 || strcmp(s, DLFS_CKPT_FORMAT) != 0) {
        free(s);
        return dlfs_error_set(DLFS_ERR_FORMAT, "%s is not a dlfs checkpoint (no 'format' attribute = %s)", path,
                              DLFS_CKPT_FORMAT);
    }
    free(s);
    int64_t ver = 0;
    if (h5_attr_i64_read(f, "format_version", &ver) != 0 || ver < 1 || ver > DLFS_CKPT_VERSION)
        return dlfs_error_set(DLFS_ERR_FORMAT, "%s is a dlfs checkpoint of format version %lld; this dlfs reads "
                              "versions 1 to %d (use the dlfs version that wrote it)", path, (long long)ver,
                              DLFS_CKPT_VERSION);
    c->format_version = (int)ver;
    const int v2 = ver >= 2;
    DLFS_TRY(str_(f, path, "model_spec", DLFS_CKPT_MAX_SPEC, 0, &c->model_spec));
    DLFS_TRY(str_(f, path, "optimizer", 16, 0, &c->optimizer));
    DLFS_TRY(str_(f, path, "options", DLFS_CKPT_MAX_TEXT, 1, &c->options));
    DLFS_TRY(str_(f, path, "run_id", DLFS_CKPT_MAX_TEXT, !v2, &c->run_id));
    DLFS_TRY(str_(f, path, "parent", DLFS_CKPT_MAX_TEXT, !v2, &c->parent));
    for (int k = 0; k < 1 + v2; k++) {
        char *d = NULL;
        DLFS_TRY(str_(f, path, k ? "state_sha256" : "params_sha256", 64, 0, &d));
        snprintf(digests[k], 65, "%s", d);
        free(d);
    }
    DLFS_TRY(ints_(f, path, c, (int)ver));
    const char *bad = ckpt_fields_bad(c);
    return bad ? dlfs_error_set(DLFS_ERR_FORMAT, "%s: checkpoint attribute '%s' is not valid: the file is damaged "
                                "or was not written by dlfs", path, bad)
               : DLFS_OK;
}

/* The caller's expectation, compared before any array is allocated or read. */
static enum dlfs_status expect_(const char *path, const struct dlfs_ckpt *c, const struct dlfs_ckpt_expect *e,
                                int has_m, int has_v)
{
    if (!e) return DLFS_OK;
    if (e->model_spec && strcmp(c->model_spec, e->model_spec) != 0)
        return dlfs_error_set(DLFS_ERR_SHAPE, "%s holds model %.300s but --model '%s' is %s; resume with "
                              "--model '%.300s'",
                              path, c->model_spec, e->model_arg ? e->model_arg : e->model_spec, e->model_spec,
                              c->model_spec);
    if (e->optimizer && strcmp(c->optimizer, e->optimizer) != 0)
        return dlfs_error_set(DLFS_ERR_USAGE, "%s holds %s optimizer state but --optim is %s; resume with --optim %s",
                              path, c->optimizer, e->optimizer, c->optimizer);
    if ((e->need_m && !has_m) || (e->need_v && !has_v))
        return dlfs_error_set(DLFS_ERR_USAGE, "%s has no optimizer state for these options (e.g. SGD without "
                              "momentum); use the optimizer settings it was written with", path);
    return DLFS_OK;
}

static int read_slab_(hid_t f, const char *group, const struct dlfs_model *m, float *slab)
{
    char path[256];
    for (int l = 0; l < m->num_layers; l++) {
        const struct dlfs_layer *L = &m->layers[l];
        if (L->num_params == 0) continue;
        uint64_t wd[4], bd[1];
        const int rank = ckpt_weight_dims(L, wd, bd);
        snprintf(path, sizeof path, "%s/%s/weight", group, L->name);
        if (h5_read_f32(f, path, rank, wd, slab + L->w_off) < 0) return -1;
        snprintf(path, sizeof path, "%s/%s/bias", group, L->name);
        if (bd[0] && h5_read_f32(f, path, 1, bd, slab + L->b_off) < 0) return -1;
    }
    return 0;
}

static int read_buffers_(hid_t f, const struct dlfs_model *m, float *buf)
{
    char path[256];
    for (int l = 0; l < m->num_layers; l++) {
        const struct dlfs_layer *L = &m->layers[l];
        const uint64_t d[1] = {(uint64_t)L->buf_len};
        for (int i = 0; i < L->num_bufs; i++) {
            snprintf(path, sizeof path, "/buffers/%s/%s", L->name, L->buf_names[i]);
            if (h5_read_f32(f, path, 1, d, buf + L->buf_off + (size_t)i * L->buf_len) < 0) return -1;
        }
    }
    return 0;
}

static int exists_(hid_t f, const char *group, const char *sub)
{
    char p[64];
    snprintf(p, sizeof p, "%s/%s", group, sub);
    return H5Lexists(f, group, H5P_DEFAULT) > 0 && H5Lexists(f, p, H5P_DEFAULT) > 0;
}

/* The arrays: sizes against the file first, then allocation and reading. */
static enum dlfs_status arrays_(hid_t f, const char *path, uint64_t file_size, struct dlfs_ckpt *c,
                                const struct dlfs_model *m, int has_m, int has_v)
{
    uint64_t bytes = 0, nbuf = m->num_buffers;
    const uint64_t values = (uint64_t)c->num_params * (uint64_t)(1 + has_m + has_v) + nbuf;
    if (dlfs_mul_overflow_u64(values, sizeof(float), &bytes) || bytes > file_size)
        return dlfs_error_set(DLFS_ERR_FORMAT, "%s: checkpoint declares %llu bytes of arrays but the file has only "
                              "%llu bytes: it is truncated or damaged", path, (unsigned long long)bytes,
                              (unsigned long long)file_size);
    const size_t n = c->num_params * sizeof(float);
    int ok = (c->params = malloc(n)) != NULL && (!has_m || (c->m = malloc(n))) && (!has_v || (c->v = malloc(n))) &&
             (!nbuf || (c->buffers = malloc((size_t)nbuf * sizeof(float))));
    if (!ok)
        return dlfs_error_set(DLFS_ERR_NOMEM, "%s: cannot allocate %.1f MiB for the checkpoint's state", path,
                              (double)bytes / 1048576);
    c->num_buffers = (size_t)nbuf;
    ok = read_slab_(f, "/params", m, c->params) == 0 && (!has_m || read_slab_(f, "/optimizer/m", m, c->m) == 0) &&
         (!has_v || read_slab_(f, "/optimizer/v", m, c->v) == 0) && (!nbuf || read_buffers_(f, m, c->buffers) == 0);
    return ok ? DLFS_OK : damaged_(path, "cannot read its parameters, buffers or optimizer state with the shapes "
                                         "of its model spec");
}

/* Digests first (a flipped byte is damage, not divergence), then finiteness. */
static enum dlfs_status verify_(const char *path, const struct dlfs_ckpt *c, const struct dlfs_model *m,
                                char digests[2][65], const char *shards_dir)
{
    char hex[65];
    dlfs_params_sha256(c->params, c->num_params, hex);
    if (strcmp(hex, digests[0]) != 0)
        return dlfs_error_set(DLFS_ERR_FORMAT, "%s: checkpoint is corrupt (its parameters do not match the "
                              "params_sha256 recorded when it was written)", path);
    if (c->format_version >= 2 && !shards_dir) { /* a manifest's: checked by ckpt_shards_read */
        ckpt_state_sha256(c, hex);
        if (strcmp(hex, digests[1]) != 0)
            return dlfs_error_set(DLFS_ERR_FORMAT, "%s: checkpoint is corrupt (its training state: buffers, "
                                  "optimizer moments or the attributes that position the run, does not match the "
                                  "state_sha256 recorded when it was written)", path);
    }
    char where[320];
    if (ckpt_state_nonfinite(m, c, where, sizeof where))
        return dlfs_error_set(DLFS_ERR_NUMERIC, "%s: non-finite values in %s: the run had diverged before this "
                              "checkpoint; resume from an earlier one", path, where);
    return DLFS_OK;
}

/* Which moments a manifest says its shards hold (its 'moments' attribute). */
static int manifest_moments_(hid_t f, int *has_m, int *has_v)
{
    char *s = NULL;
    const int ok = h5_attr_str_read(f, "moments", 8, &s) == 0 &&
                   (strcmp(s, "m") == 0 || strcmp(s, "mv") == 0 || strcmp(s, "") == 0);
    *has_m = ok && s[0] == 'm', *has_v = ok && s[1] == 'v';
    free(s);
    return ok ? 0 : -1;
}

/* shards_dir: `f` is the manifest of the sharded checkpoint in that directory. */
static enum dlfs_status load_hid_(hid_t f, const char *path, uint64_t file_size, struct dlfs_ckpt *c,
                                  const struct dlfs_ckpt_expect *e, const char *shards_dir)
{
    char digests[2][65] = {"", ""}, obj[256];
    if (h5_find_outside(f, obj, sizeof obj) == 1) /* before anything is read: a FIFO or /dev/zero behind it */
        return dlfs_error_set(DLFS_ERR_FORMAT, "%s: %s keeps its values outside the file (external storage, a virtual "
                              "dataset or a link into another file); a dlfs checkpoint holds its arrays in the file "
                              "itself: use a checkpoint written by dlfs-train", path, obj);
    DLFS_TRY(attrs_(f, path, c, digests));
    int has_m = exists_(f, "/optimizer", "m"), has_v = exists_(f, "/optimizer", "v");
    if (shards_dir && manifest_moments_(f, &has_m, &has_v) != 0)
        return damaged_(path, "its 'moments' attribute is missing or not m, mv or empty");
    const char *moments = ckpt_moments_bad(c->optimizer, has_m, has_v);
    if (moments) {
        char what[128];
        snprintf(what, sizeof what, "%s state with %s", c->optimizer, moments);
        return damaged_(path, what);
    }
    struct dlfs_model m; /* a spec that does not even parse is damage, not another model */
    if (dlfs_model_parse(c->model_spec, &m) != DLFS_OK) {
        dlfs_error_clear();
        return dlfs_error_set(DLFS_ERR_FORMAT, "%s: checkpoint holds an unreadable model spec '%.200s'", path,
                              c->model_spec);
    }
    enum dlfs_status st = expect_(path, c, e, has_m, has_v);
    if (st == DLFS_OK && m.num_params != c->num_params)
        st = damaged_(path, "its num_params does not match its model spec");
    if (st == DLFS_OK) st = arrays_(f, path, file_size, c, &m, has_m && !shards_dir, has_v && !shards_dir);
    if (st == DLFS_OK && shards_dir && has_m) st = ckpt_shards_read(shards_dir, f, c, has_m, has_v, digests[1]);
    if (st == DLFS_OK) st = verify_(path, c, &m, digests, shards_dir);
    dlfs_model_free(&m);
    if (st == DLFS_OK && e && e->params_only) {
        free(c->m), free(c->v);
        c->m = c->v = NULL;
    }
    return st;
}

enum dlfs_status dlfs_ckpt_load_checked(const char *path, struct dlfs_ckpt *c, const struct dlfs_ckpt_expect *e)
{
    memset(c, 0, sizeof *c);
    uint64_t size = 0;
    /* a directory named ckpt-<step>.d or holding a manifest: a sharded checkpoint;
     * any other directory is refused below as no checkpoint at all */
    struct stat sb;
    const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path, *why = NULL;
    long step = 0;
    const int named = ckpt_parse_name(base, &step, &why) == 1 && base[strlen(base) - 1] == 'd';
    char *man = stat(path, &sb) == 0 && S_ISDIR(sb.st_mode) ? malloc(strlen(path) + 16) : NULL;
    if (man) sprintf(man, "%s/manifest.h5", path);
    if (man && access(man, F_OK) != 0) {
        free(man), man = NULL;
        if (named)
            return dlfs_error_set(DLFS_ERR_FORMAT, "%s: sharded checkpoint is incomplete (no manifest.h5: its write "
                                  "did not finish)", path);
    }
    /* a regular file, checked without blocking (HDF5 then opens it again by name) */
    enum dlfs_status st = io_check_regular(man ? man : path, "checkpoint", &size);
    hid_t f = st == DLFS_OK ? h5_open_path(man ? man : path) : -1;
    if (st == DLFS_OK && f < 0)
        st = dlfs_error_set(DLFS_ERR_FORMAT, "%s is not a readable HDF5 file (truncated or not a dlfs "
                            "checkpoint)", man ? man : path);
    else if (st == DLFS_OK)
        st = load_hid_(f, man ? man : path, size, c, e, man ? path : NULL);
    h5_close(f);
    free(man);
    if (st == DLFS_OK && !(c->path = strdup(path))) st = dlfs_error_set(DLFS_ERR_NOMEM, "%s: out of memory", path);
    if (st != DLFS_OK) dlfs_ckpt_free(c);
    return st;
}


enum dlfs_status dlfs_ckpt_load_image(const void *buf, size_t len, const char *name, struct dlfs_ckpt *c,
                                      const struct dlfs_ckpt_expect *e)
{
    memset(c, 0, sizeof *c);
    hid_t f = h5_open_image(buf, len);
    enum dlfs_status st = f < 0 ? dlfs_error_set(DLFS_ERR_FORMAT, "%s is not a readable HDF5 file (truncated or "
                                                 "not a dlfs checkpoint)", name)
                                : load_hid_(f, name, len, c, e, NULL);
    h5_close(f);
    if (st == DLFS_OK && !(c->path = strdup(name))) st = dlfs_error_set(DLFS_ERR_NOMEM, "%s: out of memory", name);
    if (st != DLFS_OK) dlfs_ckpt_free(c);
    return st;
}

void dlfs_ckpt_free(struct dlfs_ckpt *c)
{
    free(c->path), free(c->model_spec), free(c->optimizer), free(c->options);
    free(c->params), free(c->m), free(c->v), free(c->buffers);
    free(c->run_id), free(c->parent);
    memset(c, 0, sizeof *c);
}
