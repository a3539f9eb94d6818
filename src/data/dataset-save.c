/* Writing the dlfs dataset file (built in memory, then the one atomic writer of
 * src/io), its statistics and normalisation check, and the synthetic dataset. */
#define _POSIX_C_SOURCE 200809L
#include "dlfs/dataset.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/checked.h"
#include "dlfs/util.h"
#include "io/h5.h"
#include "io/io.h"

#define DS_IMAGE_INCREMENT ((size_t)16 << 20) /* the in-memory file grows by this much */
#define DS_KEY_SYNTH 0x5917ULL                 /* the benchmark's data: keep the bytes */

static int write_attrs_(hid_t f, const struct dlfs_dataset *ds)
{
    const char *fmt = DLFS_DATASET_FORMAT;
    const char *src = ds->source ? ds->source : "", *lic = ds->license ? ds->license : "";
    int version = DLFS_DATASET_VERSION;
    const size_t c = (size_t)ds->c;
    return h5_attr_str_write(f, "format", fmt) ||
           h5_attr_num_write(f, "format_version", H5T_STD_I32LE, H5T_NATIVE_INT, 0, &version) ||
           h5_attr_strs_write(f, "classes", (const char *const *)ds->classes, (size_t)ds->num_classes) ||
           h5_attr_str_write(f, "source", src) || h5_attr_str_write(f, "license", lic) ||
           h5_attr_num_write(f, "mean", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, c, ds->mean) ||
           h5_attr_num_write(f, "std", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, c, ds->std)
               ? -1 : 0;
}

static int write_all_(hid_t f, const struct dlfs_dataset *ds)
{
    const struct dlfs_split *sp[2] = {&ds->train, &ds->test};
    const char *names[2] = {"train", "test"};
    for (int k = 0; k < 2; k++) {
        hsize_t dims[4] = {sp[k]->n, (hsize_t)ds->c, (hsize_t)ds->h, (hsize_t)ds->w};
        hid_t g = H5Gcreate2(f, names[k], H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        const int ok = g >= 0 && h5_write_u8_rows(g, "images", 4, dims, sp[k]->images) == 0 &&
                       h5_write_u8_rows(g, "labels", 1, dims, sp[k]->labels) == 0;
        h5_close(g);
        if (!ok) return -1;
    }
    return write_attrs_(f, ds);
}

static enum dlfs_status save_check_(const char *path, const struct dlfs_dataset *ds)
{
    uint64_t chw[3] = {(uint64_t)ds->c, (uint64_t)ds->h, (uint64_t)ds->w}, image = 0;
    int ok = ds->c >= 1 && ds->c <= DLFS_MAX_CHANNELS && ds->h >= 1 && ds->w >= 1 &&
             !dlfs_prod_exceeds(chw, 3, DLFS_DATASET_MAX_IMAGE, &image) &&
             ds->num_classes >= 1 && ds->num_classes <= DLFS_MAX_CLASSES && ds->classes &&
             ds->train.n > 0 && ds->test.n > 0 && ds->train.n <= DLFS_DATASET_MAX_N &&
             ds->test.n <= DLFS_DATASET_MAX_N && ds->train.images && ds->train.labels &&
             ds->test.images && ds->test.labels;
    for (int i = 0; ok && i < ds->num_classes; i++) ok = ds->classes[i] != NULL;
    if (!ok)
        return dlfs_error_set(DLFS_ERR_SHAPE, "cannot write dataset %s: incomplete dataset or sizes out of the "
                              "limits (%dx%dx%d images, %d classes, %zu/%zu samples)", path, ds->c, ds->h, ds->w,
                              ds->num_classes, ds->train.n, ds->test.n);
    return dlfs_dataset_check_norm(path, ds->c, ds->mean, ds->std);
}

/* The one message of a failed atomic write (io_atomic_write's stages). */
static enum dlfs_status atomic_err_(const char *path, const struct io_atomic_err *e)
{
    return e->tmp && strcmp(e->stage, "rename") == 0
               ? dlfs_error_set(DLFS_ERR_IO, "cannot rename %s to %s: %s", e->tmp, path, strerror(e->err))
               : dlfs_error_set(DLFS_ERR_IO, "cannot write dataset %s: %s%s%s; check that the directory exists, "
                                "is writable and has room", e->tmp ? e->tmp : path, e->stage,
                                e->err ? ": " : "", e->err ? strerror(e->err) : "");
}

enum dlfs_status dlfs_dataset_save(const char *path, const struct dlfs_dataset *ds)
{
    DLFS_TRY(save_check_(path, ds));
    void *image = NULL;
    size_t len = 0;
    hid_t f = h5_create_memory(DS_IMAGE_INCREMENT);
    const int built = f >= 0 && write_all_(f, ds) == 0 && h5_get_image(f, &image, &len) == 0;
    h5_close(f);
    if (!built) {
        free(image);
        return dlfs_error_set(DLFS_ERR_NOMEM, "cannot write dataset %s: building the HDF5 file in memory "
                              "failed (out of memory?)", path);
    }
    struct io_atomic_err e;
    enum dlfs_status st = DLFS_OK;
    if (io_atomic_write(path, image, len, 0, &e) != 0) st = atomic_err_(path, &e);
    io_atomic_err_free(&e);
    free(image);
    return st;
}

/* ---- statistics ------------------------------------------------------------------ */

void dlfs_dataset_stats(const struct dlfs_split *s, int c, int h, int w, double *mean, double *std)
{
    const size_t plane = (size_t)h * (size_t)w; /* the caller checked c*h*w against the limits */
    for (int ch = 0; ch < c; ch++) {
        /* Integer sums are exact (2^31 images of 2^20 values of 255^2 stay below
         * 2^64); the only rounding is in the final divisions. */
        uint64_t sum = 0, sq = 0;
        for (size_t i = 0; i < s->n; i++) {
            const uint8_t *p = s->images + (i * (size_t)c + (size_t)ch) * plane;
            for (size_t j = 0; j < plane; j++) sum += p[j], sq += (uint64_t)p[j] * p[j];
        }
        const double cnt = (double)s->n * (double)plane;
        if (cnt == 0) {
            mean[ch] = 0, std[ch] = 0;
            continue;
        }
        const double m = (double)sum / cnt, var = (double)sq / cnt - m * m;
        mean[ch] = m / 255.0;
        std[ch] = sqrt(var > 0 ? var : 0) / 255.0; /* population std (ddof 0) */
    }
}


/* ---- the synthetic dataset ---------------------------------------------------------- */

/* Labels are bytes: a synthetic set of more classes (resnet50's 1000, for --bench)
 * draws its labels from the first 256; the model's layers are the same. */
#define DLFS_SYNTH_MAX_CLASSES 4096

static enum dlfs_status synth_names_(struct dlfs_dataset *ds, int classes)
{
    ds->classes = calloc((size_t)classes, sizeof *ds->classes);
    ds->path = strdup("synthetic");
    ds->source = strdup("synthetic (dlfs_dataset_synthetic)");
    ds->license = strdup("");
    int ok = ds->classes && ds->path && ds->source && ds->license;
    if (ds->classes) ds->num_classes = classes;
    for (int i = 0; ok && i < classes; i++) {
        char buf[16];
        snprintf(buf, sizeof buf, "%d", i);
        ok = (ds->classes[i] = strdup(buf)) != NULL;
    }
    return ok ? DLFS_OK : dlfs_error_set(DLFS_ERR_NOMEM, "synthetic dataset: out of memory");
}

/* Rows [i0, i0 + n) of the synthetic split of `seed`: their images (n x dim, when
 * img) and labels (when lab). */
static void synth_rows_(uint64_t seed, size_t dim, int classes, size_t i0, size_t n, uint8_t *img, uint8_t *lab)
{
    for (size_t i = 0; i < n; i++) {
        const uint64_t key = dlfs_key(seed, DS_KEY_SYNTH, i0 + i);
        for (size_t j = 0; img && j < dim; j++) img[i * dim + j] = (uint8_t)(dlfs_hash64(key, j) >> 56);
        if (lab) lab[i] = (uint8_t)(dlfs_hash64(key, dim) % (uint64_t)(classes < 256 ? classes : 256));
    }
}

/* The fields of a synthetic dataset but its splits; *dim: bytes per image. */
static enum dlfs_status synth_shape_(struct dlfs_dataset *ds, int c, int h, int w, int classes, size_t n,
                                     size_t *dim)
{
    memset(ds, 0, sizeof *ds);
    uint64_t chw[3] = {(uint64_t)c, (uint64_t)h, (uint64_t)w}, dim64 = 0, bytes = 0;
    if (c < 1 || c > DLFS_MAX_CHANNELS || h < 1 || w < 1 || dlfs_prod_exceeds(chw, 3, DLFS_DATASET_MAX_IMAGE, &dim64) ||
        classes < 2 || classes > DLFS_SYNTH_MAX_CLASSES || n < 1 || n > DLFS_DATASET_MAX_N ||
        dlfs_mul_overflow_u64(n, dim64, &bytes) || bytes > DLFS_DATASET_MAX_BYTES)
        return dlfs_error_set(DLFS_ERR_USAGE, "synthetic dataset: %zu images of %dx%dx%d with %d classes is outside "
                              "the limits (datasets/README.md; 2 to 4096 classes)", n, c, h, w,
                              classes);
    *dim = (size_t)dim64;
    ds->c = c, ds->h = h, ds->w = w;
    for (int i = 0; i < c; i++) ds->mean[i] = 0.5, ds->std[i] = 0.29;
    return synth_names_(ds, classes);
}

enum dlfs_status dlfs_dataset_synthetic(struct dlfs_dataset *ds, int c, int h, int w, int classes, size_t n,
                                        uint64_t seed)
{
    size_t dim = 0;
    enum dlfs_status st = synth_shape_(ds, c, h, w, classes, n, &dim);
    ds->train.images = st == DLFS_OK ? malloc(n * dim) : NULL;
    ds->train.labels = ds->train.images ? malloc(n) : NULL;
    if (st == DLFS_OK && !ds->train.labels)
        st = dlfs_error_set(DLFS_ERR_NOMEM, "synthetic dataset: cannot allocate %.1f MiB for %zu images",
                            (double)(n * dim) / 1048576, n);
    if (st != DLFS_OK) {
        dlfs_dataset_free(ds);
        return st;
    }
    synth_rows_(seed, dim, classes, 0, n, ds->train.images, ds->train.labels);
    ds->train.n = n;
    return DLFS_OK;
}

/* ---- the synthetic dataset written chunk by chunk ----------------------------------- */

#define DS_SYNTH_LABEL_ROWS ((size_t)1 << 20) /* labels written per piece: whole chunks of 1024 */

/* Split `name` of n samples (seed) into f, in pieces of `buf`'s room: the images a
 * chunk of rows at a time, then the labels (dlfs_dataset_save's layout). */
static int synth_split_(hid_t f, const char *name, const struct dlfs_dataset *ds, size_t n, uint64_t seed,
                        uint8_t *buf)
{
    const size_t dim = (size_t)ds->c * (size_t)ds->h * (size_t)ds->w;
    hsize_t dims[4] = {n, (hsize_t)ds->c, (hsize_t)ds->h, (hsize_t)ds->w};
    const size_t K = (size_t)h5_u8_chunk_rows(4, dims);
    hid_t g = H5Gcreate2(f, name, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    hid_t d = g >= 0 ? h5_create_u8_rows(g, "images", 4, dims) : -1;
    int ok = d >= 0;
    for (size_t r = 0; ok && r < n; r += K) {
        const size_t rows = n - r < K ? n - r : K;
        synth_rows_(seed, dim, ds->num_classes, r, rows, buf, NULL);
        ok = h5_write_u8_rows_at(d, 4, dims, r, rows, buf) == 0;
    }
    h5_close(d);
    d = ok ? h5_create_u8_rows(g, "labels", 1, dims) : -1;
    ok = d >= 0;
    for (size_t r = 0; ok && r < n; r += DS_SYNTH_LABEL_ROWS) {
        const size_t rows = n - r < DS_SYNTH_LABEL_ROWS ? n - r : DS_SYNTH_LABEL_ROWS;
        synth_rows_(seed, dim, ds->num_classes, r, rows, NULL, buf);
        ok = h5_write_u8_rows_at(d, 1, dims, r, rows, buf) == 0;
    }
    h5_close(d), h5_close(g);
    return ok ? 0 : -1;
}

/* Both splits and the attributes into PATH.tmp (created by io_atomic_open), closed. */
static int synth_file_(const char *tmp, const struct dlfs_dataset *ds, size_t n, size_t n_test, uint64_t seed,
                       uint8_t *buf)
{
    h5_silence();
    hid_t f = H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    int ok = f >= 0 && synth_split_(f, "train", ds, n, seed, buf) == 0 &&
             synth_split_(f, "test", ds, n_test, seed + 1, buf) == 0 && write_attrs_(f, ds) == 0;
    if (f >= 0 && H5Fclose(f) < 0) ok = 0; /* the last metadata is written here */
    return ok ? 0 : -1;
}

enum dlfs_status dlfs_dataset_synth_save(const char *path, int c, int h, int w, int classes, size_t n, size_t n_test,
                                         uint64_t seed)
{
    struct dlfs_dataset ds;
    size_t dim = 0;
    DLFS_TRY(synth_shape_(&ds, c, h, w, classes, n_test, &dim)); /* the test split's sizes */
    dlfs_dataset_free(&ds);
    DLFS_TRY(synth_shape_(&ds, c, h, w, classes, n, &dim));
    hsize_t dims[4] = {n > n_test ? n : n_test, (hsize_t)c, (hsize_t)h, (hsize_t)w};
    const size_t K = (size_t)h5_u8_chunk_rows(4, dims); /* either split's chunks have at most K rows */
    const size_t room = K * dim > DS_SYNTH_LABEL_ROWS ? K * dim : DS_SYNTH_LABEL_ROWS;
    uint8_t *buf = malloc(room);
    int fd = -1;
    struct io_atomic_err e = {0, NULL, NULL};
    enum dlfs_status st = DLFS_OK;
    if (!buf) {
        st = dlfs_error_set(DLFS_ERR_NOMEM, "cannot write dataset %s: out of memory", path);
    } else if (io_atomic_open(path, &fd, &e) != 0) {
        st = atomic_err_(path, &e);
    } else if (synth_file_(e.tmp, &ds, n, n_test, seed, buf) != 0) {
        io_atomic_abort(fd, &e);
        st = dlfs_error_set(DLFS_ERR_IO, "cannot write dataset %s: HDF5 failed to write %s; check that the "
                            "directory has room", path, e.tmp);
    } else if (io_atomic_commit(path, fd, &e) != 0) {
        st = atomic_err_(path, &e);
    }
    io_atomic_err_free(&e);
    free(buf);
    dlfs_dataset_free(&ds);
    return st;
}
