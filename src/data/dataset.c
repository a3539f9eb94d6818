/* Reading the dlfs dataset file (layout in include/dlfs/dataset.h), HDF5 serial
 * API through src/io/h5.h.
 *
 * Every size the file declares is checked before anything is allocated: the
 * shape against the limits in dlfs/dataset.h, and the bytes declared against
 * the bytes the file stores (H5Dget_storage_size: equal or more for
 * uncompressed data, at most DLFS_DATASET_MAX_RATIO times less for compressed
 * data, never more than the file's size). The images are then read in pieces of
 * at most DS_READ_PIECE bytes. Each function closes every handle it opened on
 * every path, so a failed load leaves no open HDF5 objects behind (the tests
 * check H5Fget_obj_count after bad files). */
#define _POSIX_C_SOURCE 200809L
#include "dlfs/dataset.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/checked.h"
#include "data/split-file.h"
#include "io/h5.h"
#include "io/io.h"

#define DS_READ_PIECE ((size_t)64 << 20)

static char *strdup_(const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = malloc(n);
    return p ? memcpy(p, s, n) : NULL;
}

/* The opened datasets of one split and their checked shape. */
struct split_h_ { hid_t img, lab; hsize_t dims[4]; size_t image_bytes; };

/* Open /name/{images,labels}; check their types and ranks. */
static enum dlfs_status split_open_(hid_t f, const char *path, const char *name, struct split_h_ *h, hsize_t *nlab)
{
    static const char *parts[2] = {"images", "labels"};
    hid_t *ids[2] = {&h->img, &h->lab};
    char obj[64];
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
        const int u8 = t >= 0 && H5Tget_class(t) == H5T_INTEGER && H5Tget_size(t) == 1 &&
                       H5Tget_sign(t) == H5T_SGN_NONE;
        const int rank = sp >= 0 ? H5Sget_simple_extent_ndims(sp) : -1, want = k == 0 ? 4 : 1;
        hsize_t dims[4] = {0, 0, 0, 0};
        if (rank == want) H5Sget_simple_extent_dims(sp, dims, NULL);
        h5_close(t), h5_close(sp);
        if (!u8)
            return dlfs_error_set(DLFS_ERR_FORMAT, "%s: %s must hold uint8 values; re-create the "
                                  "file with 'dlfs-data convert'", path, obj);
        if (rank != want)
            return dlfs_error_set(DLFS_ERR_FORMAT, "%s: %s has %d dimensions, expected %s", path,
                                  obj, rank, k == 0 ? "4 [N, C, H, W]" : "1 [N]");
        if (k == 0) memcpy(h->dims, dims, sizeof dims);
        else *nlab = dims[0];
    }
    return DLFS_OK;
}

/* The declared shape against the limits (dlfs/dataset.h). */
static enum dlfs_status split_shape_(const char *path, const char *name, struct split_h_ *h, hsize_t nlab)
{
    const hsize_t *d = h->dims;
    const uint64_t chw[3] = {d[1], d[2], d[3]};
    uint64_t image = 0, bytes = 0;
    if (d[0] == 0) return dlfs_error_set(DLFS_ERR_FORMAT, "%s: /%s/images holds no samples", path, name);
    if (d[1] < 1 || d[1] > DLFS_MAX_CHANNELS)
        return dlfs_error_set(DLFS_ERR_FORMAT, "%s: /%s/images has %llu channels, dlfs supports "
                              "1 to %d", path, name, (unsigned long long)d[1], DLFS_MAX_CHANNELS);
    if (d[2] < 1 || d[3] < 1 || dlfs_prod_exceeds(chw, 3, DLFS_DATASET_MAX_IMAGE, &image))
        return dlfs_error_set(DLFS_ERR_FORMAT, "%s: /%s/images declares images of [%llu, %llu, %llu] (C, H, W): "
                              "dlfs takes images of at most %d values (datasets/README.md, limits); the file is "
                              "damaged or not made for dlfs", path, name, (unsigned long long)d[1],
                              (unsigned long long)d[2], (unsigned long long)d[3], DLFS_DATASET_MAX_IMAGE);
    if (d[0] > DLFS_DATASET_MAX_N || dlfs_mul_overflow_u64(d[0], image, &bytes) || bytes > DLFS_DATASET_MAX_BYTES)
        return dlfs_error_set(DLFS_ERR_FORMAT, "%s: /%s/images declares %llu images of %llu bytes; dlfs reads at "
                              "most %u images and %llu GiB of images per split (datasets/README.md, limits)", path,
                              name, (unsigned long long)d[0], (unsigned long long)image, DLFS_DATASET_MAX_N,
                              (unsigned long long)(DLFS_DATASET_MAX_BYTES >> 30));
    if (nlab != d[0])
        return dlfs_error_set(DLFS_ERR_FORMAT, "%s: /%s/labels has %llu entries but /%s/images has "
                              "%llu images; each image needs one label", path, name,
                              (unsigned long long)nlab, name, (unsigned long long)d[0]);
    h->image_bytes = (size_t)image;
    return DLFS_OK;
}

/* The bytes a dataset declares against the bytes it stores in the file. */
static enum dlfs_status stored_(hid_t f, hid_t d, const char *path, const char *obj, uint64_t declared)
{
    hid_t dcpl = H5Dget_create_plist(d);
    const int filters = dcpl >= 0 ? H5Pget_nfilters(dcpl) : -1;
    h5_close(dcpl);
    const uint64_t stored = H5Dget_storage_size(d), file = h5_file_size(f);
    uint64_t bound = 0;
    const int ok = filters >= 0 && stored <= file &&
                   (filters == 0 ? stored >= declared
                                 : !dlfs_mul_overflow_u64(stored, DLFS_DATASET_MAX_RATIO, &bound) && bound >= declared);
    if (!ok)
        return dlfs_error_set(DLFS_ERR_FORMAT, "%s: %s declares %llu bytes but the file holds only %llu %sbytes for "
                              "it%s; the file is truncated or damaged: re-create it with 'dlfs-data convert'", path,
                              obj, (unsigned long long)declared, (unsigned long long)stored,
                              filters > 0 ? "compressed " : "", filters > 0 ? ", too few for any compression" : "");
    return DLFS_OK;
}

/* Read the opened split in bounded pieces and check every label against the
 * classes; the images only when `images` (else they stay in the file). */
static enum dlfs_status split_read_(const char *path, const char *name, const struct split_h_ *h,
                                    int num_classes, int images, struct dlfs_split *s)
{
    const size_t n = (size_t)h->dims[0], row = h->image_bytes, bytes = n * row; /* checked: <= MAX_BYTES */
    s->labels = malloc(n);
    s->images = s->labels && images ? malloc(bytes) : NULL;
    if (!s->labels || (images && !s->images))
        return dlfs_error_set(DLFS_ERR_NOMEM, "%s: cannot allocate %.1f MiB for the %zu images of /%s; this host "
                              "has too little free memory for the dataset", path, (double)bytes / 1048576, n, name);
    if (h5_read_u8_rows(h->lab, 1, h->dims, 0, n, s->labels) < 0)
        return dlfs_error_set(DLFS_ERR_FORMAT, "%s: cannot read /%s/labels (damaged or truncated "
                              "file?); re-create it with 'dlfs-data convert'", path, name);
    for (size_t i = 0; i < n; i++)
        if (s->labels[i] >= num_classes)
            return dlfs_error_set(DLFS_ERR_FORMAT, "%s: label %d of /%s/labels[%zu] is outside "
                                  "the %d classes", path, s->labels[i], name, i, num_classes);
    const size_t piece = DS_READ_PIECE / row > 0 ? DS_READ_PIECE / row : 1;
    for (size_t r0 = 0; images && r0 < n; r0 += piece) {
        const size_t rows = n - r0 < piece ? n - r0 : piece;
        if (h5_read_u8_rows(h->img, 4, h->dims, r0, rows, s->images + r0 * row) < 0)
            return dlfs_error_set(DLFS_ERR_FORMAT, "%s: cannot read /%s/images (damaged or truncated "
                                  "file?); re-create it with 'dlfs-data convert'", path, name);
    }
    s->n = n;
    return DLFS_OK;
}

/* The 'format' and 'format_version' attributes. */
static enum dlfs_status format_(hid_t f, const char *path)
{
    char *v = NULL;
    if (h5_attr_str_read(f, "format", 64, &v) != 0)
        return dlfs_error_set(DLFS_ERR_FORMAT, "%s is not a dlfs dataset (no 'format' attribute = "
                              DLFS_DATASET_FORMAT "); convert IDX files with 'dlfs-data convert'", path);
    const int match = strcmp(v, DLFS_DATASET_FORMAT) == 0;
    if (!match)
        dlfs_error_set(DLFS_ERR_FORMAT, "%s is not a dlfs dataset (its 'format' attribute is '%.64s', not "
                       DLFS_DATASET_FORMAT "); convert IDX files with 'dlfs-data convert'", path, v);
    free(v);
    if (!match) return DLFS_ERR_FORMAT;
    int version = 0;
    if (h5_attr_num_read(f, "format_version", H5T_INTEGER, H5T_NATIVE_INT, 1, &version) != 0)
        return dlfs_error_set(DLFS_ERR_FORMAT, "%s: the 'format_version' attribute is missing or "
                              "not an integer; re-create the file with 'dlfs-data convert'", path);
    if (version != DLFS_DATASET_VERSION)
        return dlfs_error_set(DLFS_ERR_FORMAT, "%s has dlfs dataset format_version %d, this dlfs "
                              "reads version %d; re-create it with this dlfs's 'dlfs-data convert'",
                              path, version, DLFS_DATASET_VERSION);
    return DLFS_OK;
}

/* Root attributes that do not depend on the image shape. */
static enum dlfs_status attrs_(hid_t f, const char *path, struct dlfs_dataset *ds)
{
    DLFS_TRY(format_(f, path));
    size_t n = 0;
    if (h5_attr_strs_read(f, "classes", DLFS_MAX_CLASSES, DLFS_DATASET_MAX_NAME, &ds->classes, &n) != 0)
        return dlfs_error_set(DLFS_ERR_FORMAT, "%s: the 'classes' attribute is missing or is not "
                              "a list of 1 to %d names of at most %d bytes", path, DLFS_MAX_CLASSES,
                              DLFS_DATASET_MAX_NAME);
    ds->num_classes = (int)n;
    /* source and license are informational: absent means unknown, not an error */
    const char *names[2] = {"source", "license"};
    char **dst[2] = {&ds->source, &ds->license};
    for (int k = 0; k < 2; k++) {
        const int rc = h5_attr_str_read(f, names[k], DLFS_DATASET_MAX_TEXT, dst[k]);
        if (rc < 0)
            return dlfs_error_set(DLFS_ERR_FORMAT, "%s: the '%s' attribute is not a string of at most %d bytes",
                                  path, names[k], DLFS_DATASET_MAX_TEXT);
        if (rc > 0 && !(*dst[k] = strdup_("")))
            return dlfs_error_set(DLFS_ERR_NOMEM, "%s: out of memory", path);
    }
    return DLFS_OK;
}

/* Shapes of both splits, the normalisation, the stored sizes. */
static enum dlfs_status check_(hid_t f, const char *path, struct dlfs_dataset *ds, struct split_h_ *tr,
                               struct split_h_ *te)
{
    hsize_t ntr = 0, nte = 0;
    DLFS_TRY(split_open_(f, path, "train", tr, &ntr));
    DLFS_TRY(split_open_(f, path, "test", te, &nte));
    DLFS_TRY(split_shape_(path, "train", tr, ntr));
    DLFS_TRY(split_shape_(path, "test", te, nte));
    if (memcmp(tr->dims + 1, te->dims + 1, 3 * sizeof(hsize_t)) != 0)
        return dlfs_error_set(DLFS_ERR_FORMAT, "%s: /train/images are %llux%llux%llu but /test/images are "
                              "%llux%llux%llu; both splits need one image shape", path,
                              (unsigned long long)tr->dims[1], (unsigned long long)tr->dims[2],
                              (unsigned long long)tr->dims[3], (unsigned long long)te->dims[1],
                              (unsigned long long)te->dims[2], (unsigned long long)te->dims[3]);
    ds->c = (int)tr->dims[1], ds->h = (int)tr->dims[2], ds->w = (int)tr->dims[3];
    if (h5_attr_num_read(f, "mean", H5T_FLOAT, H5T_NATIVE_DOUBLE, (size_t)ds->c, ds->mean) != 0 ||
        h5_attr_num_read(f, "std", H5T_FLOAT, H5T_NATIVE_DOUBLE, (size_t)ds->c, ds->std) != 0)
        return dlfs_error_set(DLFS_ERR_FORMAT, "%s: the 'mean' and 'std' attributes must be %d "
                              "floating-point values (one per channel)", path, ds->c);
    DLFS_TRY(dlfs_dataset_check_norm(path, ds->c, ds->mean, ds->std));
    const struct split_h_ *sp[2] = {tr, te};
    for (int k = 0; k < 2; k++) {
        const char *nm = k ? "test" : "train";
        char obj[32];
        snprintf(obj, sizeof obj, "/%s/images", nm);
        DLFS_TRY(stored_(f, sp[k]->img, path, obj, (uint64_t)sp[k]->dims[0] * sp[k]->image_bytes));
        snprintf(obj, sizeof obj, "/%s/labels", nm);
        DLFS_TRY(stored_(f, sp[k]->lab, path, obj, (uint64_t)sp[k]->dims[0]));
    }
    return DLFS_OK;
}

/* Rows per HDF5 chunk of the opened images (contiguous data: 1 MiB worth). */
static size_t chunk_rows_(const struct split_h_ *h)
{
    hid_t dcpl = H5Dget_create_plist(h->img);
    hsize_t chunk[4] = {0, 0, 0, 0};
    const int chunked = dcpl >= 0 && H5Pget_layout(dcpl) == H5D_CHUNKED && H5Pget_chunk(dcpl, 4, chunk) == 4;
    h5_close(dcpl);
    const size_t mib = ((size_t)1 << 20) / h->image_bytes;
    return chunked && chunk[0] > 0 ? (size_t)chunk[0] : mib > 0 ? mib : 1;
}

/* The open file behind a split whose images stay in it. */
/* stream_bytes: the train images stay in the file when they take more (0: never). */
static enum dlfs_status load_hid_(hid_t f, const char *path, struct dlfs_dataset *ds, uint64_t stream_bytes)
{
    struct split_h_ tr = {-1, -1, {0}, 0}, te = {-1, -1, {0}, 0};
    char obj[256];
    if (h5_find_outside(f, obj, sizeof obj) == 1) /* before anything is read: a FIFO or /dev/zero behind it */
        return dlfs_error_set(DLFS_ERR_FORMAT, "%s: %s keeps its values outside the file (external storage, a virtual "
                              "dataset or a link into another file); dlfs reads only data stored in the file itself: "
                              "re-create it with 'dlfs-data convert'", path, obj);
    enum dlfs_status st = attrs_(f, path, ds);
    if (st == DLFS_OK) st = check_(f, path, ds, &tr, &te);
    const int stream = st == DLFS_OK && stream_bytes && (uint64_t)tr.dims[0] * tr.image_bytes > stream_bytes;
    if (st == DLFS_OK) st = split_read_(path, "train", &tr, ds->num_classes, !stream, &ds->train);
    if (st == DLFS_OK) st = split_read_(path, "test", &te, ds->num_classes, 1, &ds->test);
    if (st == DLFS_OK) ds->train.chunk_rows = chunk_rows_(&tr), ds->test.chunk_rows = chunk_rows_(&te);
    if (st == DLFS_OK && stream) {
        struct dlfs_split_file *sf = malloc(sizeof *sf);
        char *p = strdup_(path);
        if (sf && p) {
            *sf = (struct dlfs_split_file){.f = f, .img = tr.img, .path = p};
            memcpy(sf->dims, tr.dims, sizeof sf->dims);
            ds->train.file = sf;
            tr.img = -1; /* the split's now, closed by dlfs_dataset_free (with the file) */
        } else {
            free(sf), free(p);
            st = dlfs_error_set(DLFS_ERR_NOMEM, "%s: out of memory", path);
        }
    }
    h5_close(tr.img), h5_close(tr.lab), h5_close(te.img), h5_close(te.lab);
    if (st == DLFS_OK && !(ds->path = strdup_(path))) st = dlfs_error_set(DLFS_ERR_NOMEM, "%s: out of memory", path);
    return st;
}

static enum dlfs_status load_path_(const char *path, struct dlfs_dataset *ds, uint64_t stream_bytes)
{
    memset(ds, 0, sizeof *ds);
    uint64_t size = 0;
    /* a regular file, checked without blocking (HDF5 then opens it again by name) */
    enum dlfs_status st = io_check_regular(path, "dataset", &size);
    if (st != DLFS_OK) return st;
    h5_silence();
    hid_t f = -1;
    if (H5Fis_hdf5(path) <= 0)
        st = dlfs_error_set(DLFS_ERR_FORMAT, "%s is not an HDF5 file; make a dlfs dataset from "
                            "IDX files with 'dlfs-data convert'", path);
    else if ((f = h5_open_path(path)) < 0)
        st = dlfs_error_set(DLFS_ERR_FORMAT, "%s cannot be opened as HDF5 (truncated or damaged "
                            "file? re-create it with 'dlfs-data convert'; on a filesystem without "
                            "file locks set HDF5_USE_FILE_LOCKING=FALSE)", path);
    else
        st = load_hid_(f, path, ds, stream_bytes);
    if (!ds->train.file) h5_close(f); /* else the split keeps it open */
    if (st != DLFS_OK) dlfs_dataset_free(ds);
    return st;
}

enum dlfs_status dlfs_dataset_load(const char *path, struct dlfs_dataset *ds) { return load_path_(path, ds, 0); }

enum dlfs_status dlfs_dataset_open(const char *path, struct dlfs_dataset *ds, uint64_t stream_bytes)
{
    return load_path_(path, ds, stream_bytes ? stream_bytes : 1);
}

int dlfs_dataset_threadsafe(void)
{
    hbool_t ts = 0;
    return H5is_library_threadsafe(&ts) >= 0 && ts;
}

enum dlfs_status dlfs_dataset_load_image(const void *buf, size_t len, const char *name, struct dlfs_dataset *ds)
{
    memset(ds, 0, sizeof *ds);
    hid_t f = h5_open_image(buf, len);
    enum dlfs_status st = f < 0 ? dlfs_error_set(DLFS_ERR_FORMAT, "%s cannot be opened as HDF5 (not an HDF5 "
                                                 "file, truncated or damaged)", name)
                                : load_hid_(f, name, ds, 0);
    h5_close(f);
    if (st != DLFS_OK) dlfs_dataset_free(ds);
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
    dlfs_split_file_close(ds->train.file);
    memset(ds, 0, sizeof *ds);
}

enum dlfs_status dlfs_dataset_check_norm(const char *name, int c, const double *mean, const double *std)
{
    for (int i = 0; i < c; i++) {
        const double m = mean[i], s = std[i];
        if (!isfinite(m) || !isfinite(s) || m < 0 || m > 1 || s > 1)
            return dlfs_error_set(DLFS_ERR_NUMERIC, "%s: channel %d has mean %g, std %g: not a usable normalisation "
                                  "(mean in [0, 1], std in [%g, 1] on the 0..1 pixel scale); re-create the file with "
                                  "'dlfs-data convert'", name, i, m, s, DLFS_DATASET_MIN_STD);
        if (!(s >= DLFS_DATASET_MIN_STD))
            return dlfs_error_set(DLFS_ERR_NUMERIC, "%s: channel %d of the train images is (nearly) constant (std "
                                  "%g < %g): normalising would divide by ~0; drop that channel or use images that "
                                  "vary", name, i, s, DLFS_DATASET_MIN_STD);
    }
    return DLFS_OK;
}
