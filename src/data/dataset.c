/* The dlfs dataset file (layout in include/dlfs/dataset.h), HDF5 serial API.
 *
 * Every HDF5 call that can fail is checked; HDF5's own error-stack printing is
 * switched off while we work (and restored after) because we report ONE message
 * of our own naming the file. Each function closes every handle it opened on
 * every path, so a failed load leaves no open HDF5 objects behind (the tests
 * check H5Fget_obj_count after bad files).
 */
#define _POSIX_C_SOURCE 200809L
#include "dlfs/dataset.h"

#include <errno.h>
#include <fcntl.h>
#include <hdf5.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define DS_GZIP_LEVEL 4
#define DS_CHUNK_ROWS 1024
#define DS_CHUNK_MAX_BYTES ((size_t)4 << 20)  /* keep chunks small enough to cache */

/* ---- small HDF5 helpers ------------------------------------------------------ */

struct h5_quiet { H5E_auto2_t func; void *data; };

static void h5_quiet_begin(struct h5_quiet *q)
{
    H5Eget_auto2(H5E_DEFAULT, &q->func, &q->data);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
}

static void h5_quiet_end(const struct h5_quiet *q) { H5Eset_auto2(H5E_DEFAULT, q->func, q->data); }

/* Close any handle we created (negative = never opened). */
static void h5_close(hid_t id)
{
    if (id < 0) return;
    switch (H5Iget_type(id)) {
    case H5I_FILE: H5Fclose(id); break;
    case H5I_GROUP: H5Gclose(id); break;
    case H5I_DATASET: H5Dclose(id); break;
    case H5I_ATTR: H5Aclose(id); break;
    case H5I_DATATYPE: H5Tclose(id); break;
    case H5I_DATASPACE: H5Sclose(id); break;
    case H5I_GENPROP_LST: H5Pclose(id); break;
    default: break;
    }
}

static char *ds_strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    return memcpy(dlfs_malloc(n), s, n);
}

/* Variable-length UTF-8 strings: h5py reads them as str, h5dump prints them. */
static int attr_write_strings(hid_t loc, const char *name, const char *const *v, size_t n,
                              int scalar)
{
    hsize_t dim = n;
    hid_t t = H5Tcopy(H5T_C_S1), sp = -1, a = -1;
    int ok = t >= 0 && H5Tset_size(t, H5T_VARIABLE) >= 0 && H5Tset_cset(t, H5T_CSET_UTF8) >= 0;
    if (ok) ok = (sp = scalar ? H5Screate(H5S_SCALAR) : H5Screate_simple(1, &dim, NULL)) >= 0;
    if (ok) ok = (a = H5Acreate2(loc, name, t, sp, H5P_DEFAULT, H5P_DEFAULT)) >= 0;
    if (ok) ok = H5Awrite(a, t, v) >= 0;
    h5_close(a), h5_close(sp), h5_close(t);
    return ok ? 0 : -1;
}

static int attr_write_num(hid_t loc, const char *name, hid_t ftype, hid_t mtype, hsize_t n,
                          int scalar, const void *v)
{
    hid_t sp = scalar ? H5Screate(H5S_SCALAR) : H5Screate_simple(1, &n, NULL), a = -1;
    int ok = sp >= 0 && (a = H5Acreate2(loc, name, ftype, sp, H5P_DEFAULT, H5P_DEFAULT)) >= 0 &&
             H5Awrite(a, mtype, v) >= 0;
    h5_close(a), h5_close(sp);
    return ok ? 0 : -1;
}

/* Read a string attribute (scalar or 1-D, fixed or variable length) into *n
 * new strings. Returns 0, 1 when absent, -1 when it is not 1..max strings. */
static int attr_read_strings(hid_t loc, const char *name, size_t max, char ***out, size_t *n)
{
    *out = NULL, *n = 0;
    if (H5Aexists(loc, name) <= 0) return 1;
    hid_t a = H5Aopen(loc, name, H5P_DEFAULT), ft = -1, sp = -1, mt = -1;
    int rc = -1;
    hssize_t cnt = 0;
    char **v = NULL;
    if (a < 0 || (ft = H5Aget_type(a)) < 0 || H5Tget_class(ft) != H5T_STRING) goto done;
    if ((sp = H5Aget_space(a)) < 0 || H5Sget_simple_extent_ndims(sp) > 1) goto done;
    cnt = H5Sget_simple_extent_npoints(sp);
    if (cnt < 1 || (size_t)cnt > max) goto done;
    v = dlfs_calloc((size_t)cnt, sizeof *v);
    /* Memory type: same character set as the file (HDF5 will not convert ASCII<->UTF-8). */
    mt = H5Tcopy(H5T_C_S1);
    H5Tset_cset(mt, H5Tget_cset(ft));
    if (H5Tis_variable_str(ft) > 0) {
        char **raw = dlfs_calloc((size_t)cnt, sizeof *raw);
        if (H5Tset_size(mt, H5T_VARIABLE) >= 0 && H5Aread(a, mt, raw) >= 0) {
            for (hssize_t i = 0; i < cnt; i++) {
                v[i] = ds_strdup(raw[i] ? raw[i] : "");
                H5free_memory(raw[i]);
            }
            rc = 0;
        }
        free(raw);
    } else {
        size_t sz = H5Tget_size(ft);
        char *buf = dlfs_calloc((size_t)cnt, sz + 1);
        if (H5Tset_size(mt, sz + 1) >= 0 && H5Tset_strpad(mt, H5T_STR_NULLTERM) >= 0 &&
            H5Aread(a, mt, buf) >= 0) {
            for (hssize_t i = 0; i < cnt; i++) v[i] = ds_strdup(buf + (size_t)i * (sz + 1));
            rc = 0;
        }
        free(buf);
    }
    if (rc == 0) *out = v, *n = (size_t)cnt;
    else free(v);
done:
    h5_close(mt), h5_close(sp), h5_close(ft), h5_close(a);
    return rc;
}

/* Read a numeric attribute of exactly `n` elements (class `cls`) converted to
 * `mtype`. Returns 0, 1 when absent, -1 when of the wrong kind or size. */
static int attr_read_num(hid_t loc, const char *name, H5T_class_t cls, hid_t mtype, hssize_t n,
                         void *out)
{
    if (H5Aexists(loc, name) <= 0) return 1;
    hid_t a = H5Aopen(loc, name, H5P_DEFAULT), ft = -1, sp = -1;
    int ok = a >= 0 && (ft = H5Aget_type(a)) >= 0 && H5Tget_class(ft) == cls &&
             (sp = H5Aget_space(a)) >= 0 && H5Sget_simple_extent_ndims(sp) <= 1 &&
             H5Sget_simple_extent_npoints(sp) == n && H5Aread(a, mtype, out) >= 0;
    h5_close(sp), h5_close(ft), h5_close(a);
    return ok ? 0 : -1;
}

/* ---- load ---------------------------------------------------------------------- */

/* The opened datasets of one split and their checked shape. */
struct ds_split_h { hid_t img, lab; hsize_t dims[4]; };

/* Open /name/{images,labels} and check types, ranks and counts. */
static enum dlfs_status split_open(hid_t f, const char *path, const char *name,
                                   struct ds_split_h *h)
{
    static const char *parts[2] = {"images", "labels"};
    hid_t *ids[2] = {&h->img, &h->lab};
    hsize_t nlab = 0;
    char obj[64];
    h->img = h->lab = -1;
    snprintf(obj, sizeof obj, "/%s", name);
    if (H5Lexists(f, obj, H5P_DEFAULT) <= 0)
        return dlfs_error_set(DLFS_ERR_FORMAT, "%s: group %s is missing; re-create the file with "
                              "'dlfs-data convert'", path, obj);
    for (int k = 0; k < 2; k++) {
        snprintf(obj, sizeof obj, "/%s/%s", name, parts[k]);
        if (H5Lexists(f, obj, H5P_DEFAULT) <= 0 || (*ids[k] = H5Dopen2(f, obj, H5P_DEFAULT)) < 0)
            return dlfs_error_set(DLFS_ERR_FORMAT, "%s: dataset %s is missing or not a dataset; "
                                  "re-create the file with 'dlfs-data convert'", path, obj);
        hid_t t = H5Dget_type(*ids[k]), sp = H5Dget_space(*ids[k]);
        int u8 = t >= 0 && H5Tget_class(t) == H5T_INTEGER && H5Tget_size(t) == 1 &&
                 H5Tget_sign(t) == H5T_SGN_NONE;
        int rank = sp >= 0 ? H5Sget_simple_extent_ndims(sp) : -1;
        hsize_t dims[4] = {0, 0, 0, 0};
        if (rank == (k == 0 ? 4 : 1)) H5Sget_simple_extent_dims(sp, dims, NULL);
        h5_close(t), h5_close(sp);
        if (!u8)
            return dlfs_error_set(DLFS_ERR_FORMAT, "%s: %s must hold uint8 values; re-create the "
                                  "file with 'dlfs-data convert'", path, obj);
        if (rank != (k == 0 ? 4 : 1))
            return dlfs_error_set(DLFS_ERR_FORMAT, "%s: %s has %d dimensions, expected %s", path,
                                  obj, rank, k == 0 ? "4 [N, C, H, W]" : "1 [N]");
        if (k == 0) memcpy(h->dims, dims, sizeof dims);
        else nlab = dims[0];
    }
    const hsize_t *d = h->dims;
    if (d[0] == 0)
        return dlfs_error_set(DLFS_ERR_FORMAT, "%s: /%s/images holds no samples", path, name);
    if (d[1] < 1 || d[1] > DLFS_MAX_CHANNELS)
        return dlfs_error_set(DLFS_ERR_FORMAT, "%s: /%s/images has %llu channels, dlfs supports "
                              "1 to %d", path, name, (unsigned long long)d[1], DLFS_MAX_CHANNELS);
    if (d[2] < 1 || d[3] < 1 || d[2] > INT_MAX || d[3] > INT_MAX ||
        d[0] > SIZE_MAX / d[1] / d[2] / d[3])
        return dlfs_error_set(DLFS_ERR_FORMAT, "%s: /%s/images has an unusable shape [%llu, %llu, "
                              "%llu, %llu]", path, name, (unsigned long long)d[0],
                              (unsigned long long)d[1], (unsigned long long)d[2],
                              (unsigned long long)d[3]);
    if (nlab != d[0])
        return dlfs_error_set(DLFS_ERR_FORMAT, "%s: /%s/labels has %llu entries but /%s/images has "
                              "%llu images; each image needs one label", path, name,
                              (unsigned long long)nlab, name, (unsigned long long)d[0]);
    return DLFS_OK;
}

/* Read the opened split into memory and check every label against the classes. */
static enum dlfs_status split_read(const char *path, const char *name, const struct ds_split_h *h,
                                   int num_classes, struct dlfs_split *s)
{
    size_t n = (size_t)h->dims[0], bytes = n * (size_t)(h->dims[1] * h->dims[2] * h->dims[3]);
    s->labels = dlfs_malloc(n);
    if (H5Dread(h->lab, H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, s->labels) < 0)
        return dlfs_error_set(DLFS_ERR_FORMAT, "%s: cannot read /%s/labels (damaged or truncated "
                              "file?); re-create it with 'dlfs-data convert'", path, name);
    for (size_t i = 0; i < n; i++)
        if (s->labels[i] >= num_classes)
            return dlfs_error_set(DLFS_ERR_FORMAT, "%s: label %d of /%s/labels[%zu] is outside "
                                  "the %d classes", path, s->labels[i], name, i, num_classes);
    s->images = dlfs_malloc(bytes);
    if (H5Dread(h->img, H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, s->images) < 0)
        return dlfs_error_set(DLFS_ERR_FORMAT, "%s: cannot read /%s/images (damaged or truncated "
                              "file?); re-create it with 'dlfs-data convert'", path, name);
    s->n = n;
    return DLFS_OK;
}

/* Root attributes that do not depend on the image shape. */
static enum dlfs_status attrs_load(hid_t f, const char *path, struct dlfs_dataset *ds)
{
    char **v = NULL;
    size_t n = 0;
    int rc = attr_read_strings(f, "format", 1, &v, &n);
    if (rc != 0)
        return dlfs_error_set(DLFS_ERR_FORMAT, "%s is not a dlfs dataset (no 'format' attribute = "
                              DLFS_DATASET_FORMAT "); convert IDX files with 'dlfs-data convert'",
                              path);
    if (strcmp(v[0], DLFS_DATASET_FORMAT) != 0)
        dlfs_error_set(DLFS_ERR_FORMAT, "%s is not a dlfs dataset (its 'format' attribute is "
                       "'%.64s', not " DLFS_DATASET_FORMAT "); convert IDX files with 'dlfs-data "
                       "convert'", path, v[0]);
    int match = strcmp(v[0], DLFS_DATASET_FORMAT) == 0;
    free(v[0]), free(v);
    if (!match) return DLFS_ERR_FORMAT;
    int version = 0;
    if (attr_read_num(f, "format_version", H5T_INTEGER, H5T_NATIVE_INT, 1, &version) != 0)
        return dlfs_error_set(DLFS_ERR_FORMAT, "%s: the 'format_version' attribute is missing or "
                              "not an integer; re-create the file with 'dlfs-data convert'", path);
    if (version != DLFS_DATASET_VERSION)
        return dlfs_error_set(DLFS_ERR_FORMAT, "%s has dlfs dataset format_version %d, this dlfs "
                              "reads version %d; re-create it with this dlfs's 'dlfs-data convert'",
                              path, version, DLFS_DATASET_VERSION);
    if (attr_read_strings(f, "classes", DLFS_MAX_CLASSES, &ds->classes, &n) != 0)
        return dlfs_error_set(DLFS_ERR_FORMAT, "%s: the 'classes' attribute is missing or is not "
                              "a list of 1 to %d names", path, DLFS_MAX_CLASSES);
    ds->num_classes = (int)n;
    /* source and license are informational: absent means unknown, not an error. */
    const char *names[2] = {"source", "license"};
    char **dst[2] = {&ds->source, &ds->license};
    for (int k = 0; k < 2; k++) {
        rc = attr_read_strings(f, names[k], 1, &v, &n);
        if (rc < 0)
            return dlfs_error_set(DLFS_ERR_FORMAT, "%s: the '%s' attribute is not a string", path,
                                  names[k]);
        *dst[k] = rc == 0 ? v[0] : ds_strdup("");
        free(v);
    }
    return DLFS_OK;
}

static enum dlfs_status dataset_load_open(hid_t f, const char *path, struct dlfs_dataset *ds)
{
    struct ds_split_h tr = {-1, -1, {0}}, te = {-1, -1, {0}};
    enum dlfs_status st = attrs_load(f, path, ds);
    if (st == DLFS_OK) st = split_open(f, path, "train", &tr);
    if (st == DLFS_OK) st = split_open(f, path, "test", &te);
    if (st == DLFS_OK && memcmp(tr.dims + 1, te.dims + 1, 3 * sizeof(hsize_t)) != 0)
        st = dlfs_error_set(DLFS_ERR_FORMAT, "%s: /train/images are %llux%llux%llu but "
                            "/test/images are %llux%llux%llu; both splits need one image shape",
                            path, (unsigned long long)tr.dims[1], (unsigned long long)tr.dims[2],
                            (unsigned long long)tr.dims[3], (unsigned long long)te.dims[1],
                            (unsigned long long)te.dims[2], (unsigned long long)te.dims[3]);
    if (st == DLFS_OK) {
        ds->c = (int)tr.dims[1], ds->h = (int)tr.dims[2], ds->w = (int)tr.dims[3];
        if (attr_read_num(f, "mean", H5T_FLOAT, H5T_NATIVE_DOUBLE, ds->c, ds->mean) != 0 ||
            attr_read_num(f, "std", H5T_FLOAT, H5T_NATIVE_DOUBLE, ds->c, ds->std) != 0)
            st = dlfs_error_set(DLFS_ERR_FORMAT, "%s: the 'mean' and 'std' attributes must be %d "
                                "floating-point values (one per channel)", path, ds->c);
        for (int i = 0; st == DLFS_OK && i < ds->c; i++)
            if (!isfinite(ds->mean[i]) || !isfinite(ds->std[i]) || ds->std[i] < 0)
                st = dlfs_error_set(DLFS_ERR_FORMAT, "%s: channel %d has mean %g, std %g; "
                                    "re-create the file with 'dlfs-data convert'", path, i,
                                    ds->mean[i], ds->std[i]);
    }
    if (st == DLFS_OK) st = split_read(path, "train", &tr, ds->num_classes, &ds->train);
    if (st == DLFS_OK) st = split_read(path, "test", &te, ds->num_classes, &ds->test);
    h5_close(tr.img), h5_close(tr.lab), h5_close(te.img), h5_close(te.lab);
    return st;
}

enum dlfs_status dlfs_dataset_load(const char *path, struct dlfs_dataset *ds)
{
    memset(ds, 0, sizeof *ds);
    /* Plain open first: it gives the real reason (ENOENT, EACCES) HDF5 would hide. */
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return dlfs_error_set(DLFS_ERR_IO, "cannot open dataset %s: %s", path, strerror(errno));
    struct stat sb;
    int isdir = fstat(fd, &sb) == 0 && S_ISDIR(sb.st_mode);
    close(fd);
    if (isdir)
        return dlfs_error_set(DLFS_ERR_IO, "cannot open dataset %s: it is a directory", path);

    struct h5_quiet q;
    h5_quiet_begin(&q);
    enum dlfs_status st = DLFS_OK;
    hid_t f = -1;
    if (H5Fis_hdf5(path) <= 0)
        st = dlfs_error_set(DLFS_ERR_FORMAT, "%s is not an HDF5 file; make a dlfs dataset from "
                            "IDX files with 'dlfs-data convert'", path);
    else if ((f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT)) < 0)
        st = dlfs_error_set(DLFS_ERR_FORMAT, "%s cannot be opened as HDF5 (truncated or damaged "
                            "file? re-create it with 'dlfs-data convert'; on a filesystem without "
                            "file locks set HDF5_USE_FILE_LOCKING=FALSE)", path);
    else
        st = dataset_load_open(f, path, ds);
    h5_close(f);
    h5_quiet_end(&q);
    if (st != DLFS_OK) dlfs_dataset_free(ds);
    else ds->path = ds_strdup(path);
    return st;
}

void dlfs_dataset_free(struct dlfs_dataset *ds)
{
    if (!ds) return;
    for (int i = 0; ds->classes && i < ds->num_classes; i++) free(ds->classes[i]);
    free(ds->classes);
    free(ds->path), free(ds->source), free(ds->license);
    free(ds->train.images), free(ds->train.labels);
    free(ds->test.images), free(ds->test.labels);
    memset(ds, 0, sizeof *ds);
}

/* ---- save ---------------------------------------------------------------------- */

/* One uint8 dataset, chunked by rows (so a reader can stream it) and gzipped
 * when this HDF5 has the deflate filter. */
static int write_u8(hid_t grp, const char *name, int rank, const hsize_t *dims, const void *data)
{
    size_t row = 1;
    for (int i = 1; i < rank; i++) row *= (size_t)dims[i];
    hsize_t chunk[4] = {dims[0] < DS_CHUNK_ROWS ? dims[0] : DS_CHUNK_ROWS, 0, 0, 0};
    while (chunk[0] > 1 && chunk[0] * row > DS_CHUNK_MAX_BYTES) chunk[0] /= 2;
    for (int i = 1; i < rank; i++) chunk[i] = dims[i];
    unsigned cfg = 0;
    int gzip = H5Zfilter_avail(H5Z_FILTER_DEFLATE) > 0 &&
               H5Zget_filter_info(H5Z_FILTER_DEFLATE, &cfg) >= 0 &&
               (cfg & H5Z_FILTER_CONFIG_ENCODE_ENABLED);
    hid_t sp = H5Screate_simple(rank, dims, NULL), dcpl = H5Pcreate(H5P_DATASET_CREATE), d = -1;
    int ok = sp >= 0 && dcpl >= 0 && H5Pset_chunk(dcpl, rank, chunk) >= 0 &&
             (!gzip || H5Pset_deflate(dcpl, DS_GZIP_LEVEL) >= 0) &&
             (d = H5Dcreate2(grp, name, H5T_STD_U8LE, sp, H5P_DEFAULT, dcpl, H5P_DEFAULT)) >= 0 &&
             H5Dwrite(d, H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) >= 0;
    h5_close(d), h5_close(dcpl), h5_close(sp);
    return ok ? 0 : -1;
}

static int write_all(hid_t f, const struct dlfs_dataset *ds)
{
    const char *fmt = DLFS_DATASET_FORMAT;
    const char *src = ds->source ? ds->source : "", *lic = ds->license ? ds->license : "";
    int version = DLFS_DATASET_VERSION;
    const struct dlfs_split *sp[2] = {&ds->train, &ds->test};
    const char *names[2] = {"train", "test"};
    for (int k = 0; k < 2; k++) {
        hsize_t dims[4] = {sp[k]->n, (hsize_t)ds->c, (hsize_t)ds->h, (hsize_t)ds->w};
        hid_t g = H5Gcreate2(f, names[k], H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        int ok = g >= 0 && write_u8(g, "images", 4, dims, sp[k]->images) == 0 &&
                 write_u8(g, "labels", 1, dims, sp[k]->labels) == 0;
        h5_close(g);
        if (!ok) return -1;
    }
    return attr_write_strings(f, "format", &fmt, 1, 1) ||
           attr_write_num(f, "format_version", H5T_STD_I32LE, H5T_NATIVE_INT, 1, 1, &version) ||
           attr_write_strings(f, "classes", (const char *const *)ds->classes,
                              (size_t)ds->num_classes, 0) ||
           attr_write_strings(f, "source", &src, 1, 1) ||
           attr_write_strings(f, "license", &lic, 1, 1) ||
           attr_write_num(f, "mean", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, (hsize_t)ds->c, 0, ds->mean) ||
           attr_write_num(f, "std", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, (hsize_t)ds->c, 0, ds->std)
               ? -1 : 0;
}

/* fsync a file or directory by name; directories are best effort (some
 * filesystems refuse), the data file is not. */
static int fsync_path(const char *p, int flags)
{
    int fd = open(p, flags);
    if (fd < 0) return -1;
    int r = fsync(fd);
    close(fd);
    return r;
}

enum dlfs_status dlfs_dataset_save(const char *path, const struct dlfs_dataset *ds)
{
    int ok = ds->c >= 1 && ds->c <= DLFS_MAX_CHANNELS && ds->h >= 1 && ds->w >= 1 &&
             ds->num_classes >= 1 && ds->num_classes <= DLFS_MAX_CLASSES && ds->classes &&
             ds->train.n > 0 && ds->test.n > 0 && ds->train.images && ds->train.labels &&
             ds->test.images && ds->test.labels;
    for (int i = 0; ok && i < ds->num_classes; i++) ok = ds->classes[i] != NULL;
    if (!ok)
        return dlfs_error_set(DLFS_ERR_SHAPE, "cannot write dataset %s: incomplete dataset "
                              "(%dx%dx%d images, %d classes, %zu/%zu samples)", path, ds->c,
                              ds->h, ds->w, ds->num_classes, ds->train.n, ds->test.n);
    size_t len = strlen(path);
    char *tmp = dlfs_malloc(len + 5);
    memcpy(tmp, path, len), memcpy(tmp + len, ".tmp", 5);
    /* Create it ourselves first: HDF5's failure would not say why (EACCES, ENOENT). */
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) {
        enum dlfs_status st = dlfs_error_set(DLFS_ERR_IO, "cannot write dataset %s: %s; check "
                                             "that the directory exists and is writable",
                                             tmp, strerror(errno));
        free(tmp);
        return st;
    }
    close(fd);

    struct h5_quiet q;
    h5_quiet_begin(&q);
    enum dlfs_status st = DLFS_OK;
    hid_t f = H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    int wrote = f >= 0 && write_all(f, ds) == 0;
    /* H5Fclose flushes: its failure (e.g. disk full) is a write failure too. */
    if (f >= 0 && H5Fclose(f) < 0) wrote = 0;
    h5_quiet_end(&q);
    if (!wrote)
        st = dlfs_error_set(DLFS_ERR_IO, "cannot write dataset %s: HDF5 write failed (disk full "
                            "or not writable?)", tmp);
    else if (fsync_path(tmp, O_RDONLY) != 0)
        st = dlfs_error_set(DLFS_ERR_IO, "cannot write dataset %s: fsync: %s", tmp, strerror(errno));
    else if (rename(tmp, path) != 0)
        st = dlfs_error_set(DLFS_ERR_IO, "cannot rename %s to %s: %s", tmp, path, strerror(errno));
    if (st != DLFS_OK) {
        unlink(tmp);
    } else {
        /* Make the rename itself durable: sync the directory holding `path`. */
        char *slash = strrchr(tmp, '/');
        if (slash == tmp) slash[1] = '\0';
        else if (slash) *slash = '\0';
        fsync_path(slash ? tmp : ".", O_RDONLY | O_DIRECTORY);
    }
    free(tmp);
    return st;
}

/* ---- statistics ------------------------------------------------------------------ */

void dlfs_dataset_stats(const struct dlfs_split *s, int c, int h, int w, double *mean, double *std)
{
    size_t plane = (size_t)h * (size_t)w;
    for (int ch = 0; ch < c; ch++) {
        /* Integer sums are exact (60000*784*255^2 is far below 2^64); the only
         * rounding is in the final divisions. */
        uint64_t sum = 0, sq = 0;
        for (size_t i = 0; i < s->n; i++) {
            const uint8_t *p = s->images + (i * (size_t)c + (size_t)ch) * plane;
            for (size_t j = 0; j < plane; j++) sum += p[j], sq += (uint64_t)p[j] * p[j];
        }
        double cnt = (double)s->n * (double)plane;
        if (cnt == 0) {
            mean[ch] = 0, std[ch] = 0;
            continue;
        }
        double m = (double)sum / cnt, var = (double)sq / cnt - m * m;
        mean[ch] = m / 255.0;
        std[ch] = sqrt(var > 0 ? var : 0) / 255.0;  /* population std (ddof 0) */
    }
}
