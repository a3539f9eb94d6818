/* Checkpoints in HDF5: atomic write (tmp, fsync, rename), validated read, and
 * the search for the newest complete one. Layout in include/dlfs/checkpoint.h. */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "dlfs/checkpoint.h"
#include "dlfs/util.h"
#include "io/h5util.h"

static int ckpt_step_(const char *name, long *step)
{
    /* "ckpt-<digits>.h5" exactly */
    size_t n = strlen(name);
    if (n < 9 || strncmp(name, "ckpt-", 5) != 0 || strcmp(name + n - 3, ".h5") != 0) return 0;
    long v = 0;
    for (size_t i = 5; i < n - 3; i++) {
        if (name[i] < '0' || name[i] > '9') return 0;
        v = v * 10 + (name[i] - '0');
    }
    *step = v;
    return 1;
}

static enum dlfs_status mkdirs_(const char *dir)
{
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s", dir);
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        if (mkdir(tmp, 0777) != 0 && errno != EEXIST) break;
        *p = '/';
    }
    if (mkdir(tmp, 0777) != 0 && errno != EEXIST)
        return dlfs_error_set(DLFS_ERR_IO, "--checkpoint-dir %s: cannot create the directory: %s", dir, strerror(errno));
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
        return dlfs_error_set(DLFS_ERR_IO, "--checkpoint-dir %s: not a directory", dir);
    return DLFS_OK;
}

/* Shapes as the layer sees them: dense weight (out, in), conv weight (oc, c, kh,
 * kw) as PyTorch stores them, batchnorm weight (c); bias (out channels). Returns the weight's rank. */
static int weight_dims_(const struct dlfs_layer *L, uint64_t wd[4], uint64_t bd[1])
{
    if (L->type == DLFS_LAYER_CONV) {
        wd[0] = (uint64_t)L->g.oc; wd[1] = (uint64_t)L->g.c; wd[2] = (uint64_t)L->g.kh; wd[3] = (uint64_t)L->g.kw;
        bd[0] = (uint64_t)L->g.oc;
        return 4;
    }
    if (L->type == DLFS_LAYER_BATCHNORM) { /* gamma, beta */
        wd[0] = bd[0] = (uint64_t)L->bn_c;
        return 1;
    }
    wd[0] = (uint64_t)L->out; wd[1] = (uint64_t)L->in;
    bd[0] = (uint64_t)L->out;
    return 2;
}

static int write_slab_(hid_t f, const char *group, const struct dlfs_model *m, const float *slab)
{
    char path[256];
    hid_t g = H5Gcreate2(f, group, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (g < 0) return -1;
    H5Gclose(g);
    for (int l = 0; l < m->num_layers; l++) {
        const struct dlfs_layer *L = &m->layers[l];
        if (L->num_params == 0) continue; /* pooling, flatten: nothing to store */
        snprintf(path, sizeof path, "%s/%s", group, L->name);
        if ((g = H5Gcreate2(f, path, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT)) < 0) return -1;
        H5Gclose(g);
        uint64_t wd[4], bd[1];
        const int rank = weight_dims_(L, wd, bd);
        snprintf(path, sizeof path, "%s/%s/weight", group, L->name);
        if (h5u_write_f32(f, path, rank, wd, slab + L->w_off) < 0) return -1;
        snprintf(path, sizeof path, "%s/%s/bias", group, L->name);
        if (h5u_write_f32(f, path, 1, bd, slab + L->b_off) < 0) return -1;
    }
    return 0;
}

static int read_slab_(hid_t f, const char *group, const struct dlfs_model *m, float *slab)
{
    char path[256];
    for (int l = 0; l < m->num_layers; l++) {
        const struct dlfs_layer *L = &m->layers[l];
        if (L->num_params == 0) continue;
        uint64_t wd[4], bd[1];
        const int rank = weight_dims_(L, wd, bd);
        snprintf(path, sizeof path, "%s/%s/weight", group, L->name);
        if (h5u_read_f32(f, path, rank, wd, slab + L->w_off) < 0) return -1;
        snprintf(path, sizeof path, "%s/%s/bias", group, L->name);
        if (h5u_read_f32(f, path, 1, bd, slab + L->b_off) < 0) return -1;
    }
    return 0;
}

/* Running statistics of the batchnorm layers: /buffers/<i>_batchnorm/running_mean|running_var. */
static int write_buffers_(hid_t f, const struct dlfs_model *m, const float *buf)
{
    char path[256];
    hid_t g = H5Gcreate2(f, "/buffers", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (g < 0) return -1;
    H5Gclose(g);
    for (int l = 0; l < m->num_layers; l++) {
        const struct dlfs_layer *L = &m->layers[l];
        if (L->type != DLFS_LAYER_BATCHNORM) continue;
        snprintf(path, sizeof path, "/buffers/%s", L->name);
        if ((g = H5Gcreate2(f, path, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT)) < 0) return -1;
        H5Gclose(g);
        const uint64_t d[1] = {(uint64_t)L->bn_c};
        snprintf(path, sizeof path, "/buffers/%s/running_mean", L->name);
        if (h5u_write_f32(f, path, 1, d, buf + L->buf_off) < 0) return -1;
        snprintf(path, sizeof path, "/buffers/%s/running_var", L->name);
        if (h5u_write_f32(f, path, 1, d, buf + L->buf_off + L->bn_c) < 0) return -1;
    }
    return 0;
}

static int read_buffers_(hid_t f, const struct dlfs_model *m, float *buf)
{
    char path[256];
    for (int l = 0; l < m->num_layers; l++) {
        const struct dlfs_layer *L = &m->layers[l];
        if (L->type != DLFS_LAYER_BATCHNORM) continue;
        const uint64_t d[1] = {(uint64_t)L->bn_c};
        snprintf(path, sizeof path, "/buffers/%s/running_mean", L->name);
        if (h5u_read_f32(f, path, 1, d, buf + L->buf_off) < 0) return -1;
        snprintf(path, sizeof path, "/buffers/%s/running_var", L->name);
        if (h5u_read_f32(f, path, 1, d, buf + L->buf_off + L->bn_c) < 0) return -1;
    }
    return 0;
}

/* Test hooks inside the write, half-way through the file's bytes:
 * DLFS_FAULT_CKPT_ABORT=N aborts in the N-th write; DLFS_FAULT_CKPT_PAUSE=N:S
 * sleeps S seconds in the N-th write (so a test can SIGKILL the writer). */
static void fault_hooks_(void)
{
    static int writes;
    writes++;
    const char *a = getenv("DLFS_FAULT_CKPT_ABORT"), *p = getenv("DLFS_FAULT_CKPT_PAUSE");
    int n, secs;
    if (p && sscanf(p, "%d:%d", &n, &secs) == 2 && n == writes) {
        fprintf(stderr, "dlfs: DLFS_FAULT_CKPT_PAUSE: pausing %d s inside the checkpoint write (test hook)\n", secs);
        sleep((unsigned)secs);
    }
    if (a && atoi(a) == writes) {
        fprintf(stderr, "dlfs: DLFS_FAULT_CKPT_ABORT: aborting inside the checkpoint write (test hook)\n");
        abort();
    }
}

/* Build the whole file in memory (HDF5 core driver, no backing store), then
 * write its bytes with plain write()/fsync(). A full disk or a file-size limit
 * then fails in our write loop with errno intact, instead of inside HDF5's
 * flush — which in HDF5 1.10 leaves a half-closed file that crashes at exit. */
static int build_image_(const struct dlfs_ckpt *c, const struct dlfs_model *m, void **image, size_t *len)
{
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    if (fapl < 0 || H5Pset_fapl_core(fapl, 1 << 20, 0) < 0) return -1;
    hid_t f = H5Fcreate("dlfs-checkpoint-image", H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
    H5Pclose(fapl);
    if (f < 0) return -1;
    char hex[65], when[64];
    dlfs_params_sha256(c->params, c->num_params, hex);
    time_t now = time(NULL);
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));
    int rc = 0;
    rc |= h5u_attr_str_write(f, "format", DLFS_CKPT_FORMAT);
    rc |= h5u_attr_i64_write(f, "format_version", DLFS_CKPT_VERSION);
    rc |= h5u_attr_str_write(f, "dlfs_version", DLFS_VERSION);
    rc |= h5u_attr_str_write(f, "created", when);
    rc |= h5u_attr_str_write(f, "model_spec", c->model_spec);
    rc |= h5u_attr_i64_write(f, "num_params", (int64_t)c->num_params);
    rc |= h5u_attr_str_write(f, "params_sha256", hex);
    rc |= h5u_attr_str_write(f, "optimizer", c->optimizer);
    rc |= h5u_attr_i64_write(f, "step", c->step);
    rc |= h5u_attr_i64_write(f, "epoch", c->epoch);
    rc |= h5u_attr_i64_write(f, "samples_in_epoch", c->samples_in_epoch);
    rc |= h5u_attr_i64_write(f, "global_batch", c->global_batch);
    rc |= h5u_attr_i64_write(f, "seed", (int64_t)c->seed);
    rc |= h5u_attr_i64_write(f, "deterministic", c->deterministic);
    rc |= h5u_attr_i64_write(f, "virtual_shards", c->virtual_shards);
    rc |= h5u_attr_i64_write(f, "world_size", c->world_size);
    rc |= h5u_attr_str_write(f, "rng", "counter-based: every draw is a function of (seed, purpose, epoch/layer, "
                                       "index); the seed and the position are the whole RNG state");
    rc |= h5u_attr_str_write(f, "options", c->options ? c->options : "");
    if (rc == 0) rc = write_slab_(f, "/params", m, c->params);
    if (rc == 0 && m->num_buffers) rc = c->buffers ? write_buffers_(f, m, c->buffers) : -1;
    if (rc == 0) {
        hid_t g = H5Gcreate2(f, "/optimizer", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        rc = g < 0 ? -1 : 0;
        if (g >= 0) {
            rc |= h5u_attr_str_write(g, "name", c->optimizer);
            rc |= h5u_attr_i64_write(g, "step", c->step);
            H5Gclose(g);
        }
    }
    if (rc == 0 && c->m) rc = write_slab_(f, "/optimizer/m", m, c->m);
    if (rc == 0 && c->v) rc = write_slab_(f, "/optimizer/v", m, c->v);
    if (rc == 0 && H5Fflush(f, H5F_SCOPE_GLOBAL) < 0) rc = -1;
    ssize_t n = rc == 0 ? H5Fget_file_image(f, NULL, 0) : -1;
    *image = NULL;
    if (n > 0 && (*image = malloc((size_t)n)) && H5Fget_file_image(f, *image, (size_t)n) == n) *len = (size_t)n;
    else rc = -1;
    if (H5Fclose(f) < 0) rc = -1;
    if (rc) {
        free(*image);
        *image = NULL;
    }
    return rc;
}

static int write_all_(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n > ((size_t)1 << 30) ? (size_t)1 << 30 : n);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0) return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Write the image to `tmp` and make it durable; 0 on success, else errno kept. */
static int write_file_(const char *tmp, const struct dlfs_ckpt *c, const struct dlfs_model *m)
{
    void *image;
    size_t len;
    if (build_image_(c, m, &image, &len) < 0) {
        errno = 0;
        return -1;
    }
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    int rc = fd < 0 ? -1 : 0;
    const size_t half = len / 2;
    if (rc == 0) rc = write_all_(fd, image, half);
    if (rc == 0) fault_hooks_(); /* test hooks: a writer dying half-way through the file */
    if (rc == 0) rc = write_all_(fd, (const char *)image + half, len - half);
    /* the bytes must be on disk before the rename makes them "the" checkpoint */
    if (rc == 0 && fsync(fd) != 0) rc = -1;
    int err = errno;
    if (fd >= 0 && close(fd) != 0 && rc == 0) {
        rc = -1;
        err = errno;
    }
    free(image);
    errno = err;
    return rc;
}

static void prune_(const char *dir, int keep)
{
    if (keep <= 0) return;
    DIR *d = opendir(dir);
    if (!d) return;
    long steps[4096];
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) && n < 4096) {
        long s;
        if (ckpt_step_(e->d_name, &s)) steps[n++] = s;
    }
    closedir(d);
    /* remove everything older than the keep-th newest */
    for (int i = 0; i < n; i++) {
        int newer = 0;
        for (int j = 0; j < n; j++) newer += steps[j] > steps[i];
        if (newer >= keep) {
            char path[4096];
            snprintf(path, sizeof path, "%s/ckpt-%09ld.h5", dir, steps[i]);
            unlink(path);
        }
    }
}

enum dlfs_status dlfs_ckpt_save(const char *dir, const struct dlfs_ckpt *c, const struct dlfs_model *m,
                                int keep, char **path_out)
{
    DLFS_TRY(mkdirs_(dir));
    char path[4096], tmp[4200];
    snprintf(path, sizeof path, "%s/ckpt-%09ld.h5", dir, c->step);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    H5E_auto2_t old_fn;
    void *old_data;
    H5Eget_auto2(H5E_DEFAULT, &old_fn, &old_data);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    errno = 0;
    int rc = write_file_(tmp, c, m);
    int err = errno;
    H5Eset_auto2(H5E_DEFAULT, old_fn, old_data);
    if (rc != 0) {
        unlink(tmp);
        return dlfs_error_set(DLFS_ERR_IO, "cannot write checkpoint %s: %s; the previous checkpoints are "
                              "untouched (free disk space or choose another --checkpoint-dir)", path,
                              err ? strerror(err) : "HDF5 write failed");
    }
    if (rename(tmp, path) != 0) {
        err = errno;
        unlink(tmp);
        return dlfs_error_set(DLFS_ERR_IO, "cannot rename %s to %s: %s", tmp, path, strerror(err));
    }
    int dfd = open(dir, O_RDONLY);
    if (dfd >= 0) { /* make the rename itself durable */
        fsync(dfd);
        close(dfd);
    }
    prune_(dir, keep);
    if (path_out) *path_out = strdup(path);
    return DLFS_OK;
}

enum dlfs_status dlfs_ckpt_dir_check(const char *dir)
{
    DLFS_TRY(mkdirs_(dir));
    char probe[4096];
    snprintf(probe, sizeof probe, "%s/.dlfs-write-test.%ld", dir, (long)getpid());
    int fd = open(probe, O_WRONLY | O_CREAT | O_TRUNC, 0666);
    if (fd < 0)
        return dlfs_error_set(DLFS_ERR_IO, "--checkpoint-dir %s: cannot write there: %s", dir, strerror(errno));
    close(fd);
    unlink(probe);
    /* stale NAME.tmp files are what a killed writer leaves: never checkpoints */
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        size_t n = strlen(e->d_name);
        if (n > 12 && strncmp(e->d_name, "ckpt-", 5) == 0 && strcmp(e->d_name + n - 7, ".h5.tmp") == 0) {
            char p[4096];
            snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
            unlink(p);
        }
    }
    if (d) closedir(d);
    return DLFS_OK;
}

enum dlfs_status dlfs_ckpt_latest(const char *dir, char **path)
{
    *path = NULL;
    DIR *d = opendir(dir);
    if (!d) {
        if (errno == ENOENT) return DLFS_OK; /* nothing saved yet */
        return dlfs_error_set(DLFS_ERR_IO, "--checkpoint-dir %s: %s", dir, strerror(errno));
    }
    long best = -1;
    struct dirent *e;
    while ((e = readdir(d))) {
        long s;
        if (ckpt_step_(e->d_name, &s) && s > best) best = s;
    }
    closedir(d);
    if (best >= 0) {
        char p[4096];
        snprintf(p, sizeof p, "%s/ckpt-%09ld.h5", dir, best);
        *path = strdup(p);
    }
    return DLFS_OK;
}

void dlfs_ckpt_free(struct dlfs_ckpt *c)
{
    free(c->path);
    free(c->model_spec);
    free(c->optimizer);
    free(c->options);
    free(c->params);
    free(c->m);
    free(c->v);
    free(c->buffers);
    memset(c, 0, sizeof *c);
}

static enum dlfs_status load_(hid_t f, const char *path, struct dlfs_ckpt *c)
{
    char *format = NULL, *digest = NULL;
    int64_t ver = 0, v64;
    if (h5u_attr_str_read(f, "format", &format) < 0 || strcmp(format, DLFS_CKPT_FORMAT) != 0) {
        free(format);
        return dlfs_error_set(DLFS_ERR_FORMAT, "%s is not a dlfs checkpoint (no 'format' attribute = %s)", path,
                              DLFS_CKPT_FORMAT);
    }
    free(format);
    if (h5u_attr_i64_read(f, "format_version", &ver) < 0 || ver != DLFS_CKPT_VERSION)
        return dlfs_error_set(DLFS_ERR_FORMAT, "%s is a dlfs checkpoint of format version %lld; this dlfs reads "
                              "version %d (use the dlfs version that wrote it)", path, (long long)ver,
                              DLFS_CKPT_VERSION);
#define NEED_(expr, what)                                                                                  \
    do {                                                                                                   \
        if ((expr) < 0)                                                                                    \
            return dlfs_error_set(DLFS_ERR_FORMAT, "%s: checkpoint is damaged or incomplete (cannot read %s)", \
                                  path, what);                                                             \
    } while (0)
    NEED_(h5u_attr_str_read(f, "model_spec", &c->model_spec), "model_spec");
    NEED_(h5u_attr_str_read(f, "optimizer", &c->optimizer), "optimizer");
    NEED_(h5u_attr_str_read(f, "params_sha256", &digest), "params_sha256");
    if (h5u_attr_str_read(f, "options", &c->options) < 0) c->options = NULL;
    NEED_(h5u_attr_i64_read(f, "num_params", &v64), "num_params"); c->num_params = (size_t)v64;
    NEED_(h5u_attr_i64_read(f, "step", &v64), "step"); c->step = (long)v64;
    NEED_(h5u_attr_i64_read(f, "epoch", &v64), "epoch"); c->epoch = (int)v64;
    NEED_(h5u_attr_i64_read(f, "samples_in_epoch", &v64), "samples_in_epoch"); c->samples_in_epoch = (long)v64;
    NEED_(h5u_attr_i64_read(f, "global_batch", &v64), "global_batch"); c->global_batch = (int)v64;
    NEED_(h5u_attr_i64_read(f, "seed", &v64), "seed"); c->seed = (uint64_t)v64;
    NEED_(h5u_attr_i64_read(f, "deterministic", &v64), "deterministic"); c->deterministic = (int)v64;
    NEED_(h5u_attr_i64_read(f, "virtual_shards", &v64), "virtual_shards"); c->virtual_shards = (int)v64;
    NEED_(h5u_attr_i64_read(f, "world_size", &v64), "world_size"); c->world_size = (int)v64;
    struct dlfs_model m;
    enum dlfs_status st = dlfs_model_parse(c->model_spec, &m);
    if (st != DLFS_OK) {
        free(digest);
        dlfs_error_clear();
        return dlfs_error_set(DLFS_ERR_FORMAT, "%s: checkpoint holds an unreadable model spec '%s'", path,
                              c->model_spec);
    }
    if (m.num_params != c->num_params || c->step < 0 || c->epoch < 1 || c->global_batch < 1) {
        dlfs_model_free(&m);
        free(digest);
        return dlfs_error_set(DLFS_ERR_FORMAT, "%s: checkpoint attributes are inconsistent (damaged file?)", path);
    }
    c->params = dlfs_malloc(c->num_params * sizeof(float));
    int bad = read_slab_(f, "/params", &m, c->params) < 0;
    if (!bad && H5Lexists(f, "/optimizer/m", H5P_DEFAULT) > 0) {
        c->m = dlfs_malloc(c->num_params * sizeof(float));
        bad = read_slab_(f, "/optimizer/m", &m, c->m) < 0;
    }
    if (!bad && H5Lexists(f, "/optimizer/v", H5P_DEFAULT) > 0) {
        c->v = dlfs_malloc(c->num_params * sizeof(float));
        bad = read_slab_(f, "/optimizer/v", &m, c->v) < 0;
    }
    if (!bad && m.num_buffers) {
        c->num_buffers = m.num_buffers;
        c->buffers = dlfs_malloc(c->num_buffers * sizeof(float));
        bad = read_buffers_(f, &m, c->buffers) < 0;
    }
    dlfs_model_free(&m);
    if (bad) {
        free(digest);
        return dlfs_error_set(DLFS_ERR_FORMAT, "%s: checkpoint is damaged or incomplete (cannot read its "
                              "parameters or optimizer state)", path);
    }
    char hex[65];
    dlfs_params_sha256(c->params, c->num_params, hex);
    int same = strcmp(hex, digest) == 0;
    free(digest);
    if (!same)
        return dlfs_error_set(DLFS_ERR_FORMAT, "%s: checkpoint is corrupt (its parameters do not match the "
                              "params_sha256 recorded when it was written)", path);
    return DLFS_OK;
}

enum dlfs_status dlfs_ckpt_load(const char *path, struct dlfs_ckpt *c)
{
    memset(c, 0, sizeof *c);
    struct stat sb;
    if (stat(path, &sb) != 0)
        return dlfs_error_set(DLFS_ERR_IO, "--resume %s: %s", path, strerror(errno));
    H5E_auto2_t old_fn;
    void *old_data;
    H5Eget_auto2(H5E_DEFAULT, &old_fn, &old_data);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    enum dlfs_status st;
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0) {
        st = dlfs_error_set(DLFS_ERR_FORMAT, "%s is not a readable HDF5 file (truncated or not a dlfs "
                            "checkpoint)", path);
    } else {
        st = load_(f, path, c);
        H5Fclose(f);
    }
    H5Eset_auto2(H5E_DEFAULT, old_fn, old_data);
    if (st != DLFS_OK) dlfs_ckpt_free(c);
    else c->path = strdup(path);
    return st;
}
