/* Makes hostile input files for tests/hostile (a helper, not a test):
 *   mkhostile idx OUT.gz D0 D1 D2 BYTES    gzip IDX whose header says [D0,D1,D2], then
 *                                          BYTES zero bytes (fewer than declared: truncated)
 *   mkhostile dataset OUT.h5               a small valid dlfs dataset (1x28x28, 10 classes)
 *   mkhostile not-dlfs OUT.h5              an HDF5 file with one integer dataset, no dlfs attributes
 *   mkhostile label FILE.h5 I V            set /train/labels[I] to V in place
 *   mkhostile ds-declare FILE.h5 N C H W   /train/images (and labels) declare this shape,
 *                                          chunked and never written: nothing stored
 *   mkhostile ds-attr FILE.h5 NAME V       set channel 0 of the float attribute NAME (mean, std)
 *   mkhostile ckpt-int FILE.h5 NAME V      set the integer root attribute NAME
 *   mkhostile ckpt-str FILE.h5 NAME LEN    set the string root attribute NAME to LEN 'x's
 *   mkhostile ckpt-float FILE.h5 DSET I V  set element I of float dataset DSET (digests kept)
 *   mkhostile ckpt-nan FILE.h5             a NaN in /params/0_dense/weight, digests recomputed
 *                                          so that they match: only the finiteness check can tell
 *   mkhostile outside KIND FILE.h5 DSET SRC   DSET replaced by one of the same type and shape whose
 *                                          values live outside FILE: KIND external (raw storage in
 *                                          the file SRC, e.g. a FIFO or /dev/zero), virtual (a VDS
 *                                          mapping SRC's DSET) or link (an external link to SRC's DSET) */
#define _POSIX_C_SOURCE 200809L
#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>
#include "ckpt/ckpt_edit.h"
#include "dlfs/dataset.h"

static int idx_(char **a)
{
    const unsigned long d[3] = {strtoul(a[1], NULL, 10), strtoul(a[2], NULL, 10), strtoul(a[3], NULL, 10)};
    unsigned long long left = strtoull(a[4], NULL, 10);
    gzFile g = gzopen(a[0], "wb9");
    if (!g) return 1;
    unsigned char head[16] = {0, 0, 8, 3};
    for (int i = 0; i < 3; i++)
        for (int k = 0; k < 4; k++) head[4 + 4 * i + k] = (unsigned char)(d[i] >> (24 - 8 * k));
    int ok = gzwrite(g, head, 16) == 16;
    static unsigned char zeros[1 << 20];
    while (ok && left) {
        const unsigned n = left > sizeof zeros ? sizeof zeros : (unsigned)left;
        ok = gzwrite(g, zeros, n) == (int)n;
        left -= n;
    }
    return gzclose(g) == Z_OK && ok ? 0 : 1;
}

static int dataset_(const char *out)
{
    enum { NTR = 200, NTE = 50, D = 784 };
    static uint8_t tri[NTR * D], trl[NTR], tei[NTE * D], tel[NTE];
    for (size_t i = 0; i < sizeof tri; i++) tri[i] = (uint8_t)(i * 7 + i / 13);
    for (size_t i = 0; i < sizeof tei; i++) tei[i] = (uint8_t)(i * 5 + 1);
    for (int i = 0; i < NTR; i++) trl[i] = (uint8_t)(i % 10);
    for (int i = 0; i < NTE; i++) tel[i] = (uint8_t)(i % 10);
    char *names[10] = {"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"};
    struct dlfs_dataset ds = {.c = 1, .h = 28, .w = 28, .num_classes = 10, .classes = names, .source = "mkhostile",
                              .license = "CC0", .train = {NTR, tri, trl}, .test = {NTE, tei, tel}};
    dlfs_dataset_stats(&ds.train, 1, 28, 28, ds.mean, ds.std);
    if (dlfs_dataset_save(out, &ds) == DLFS_OK) return 0;
    fprintf(stderr, "mkhostile: %s\n", dlfs_error_msg());
    return 1;
}

static void declare_(hid_t f, const char *name, int rank, const hsize_t *dims)
{
    if (H5Lexists(f, name, H5P_DEFAULT) > 0) H5Ldelete(f, name, H5P_DEFAULT);
    hsize_t chunk[4] = {1, 1, 1, 1};
    for (int i = 1; i < rank; i++) chunk[i] = dims[i] < 256 ? dims[i] : 256;
    hid_t sp = H5Screate_simple(rank, dims, NULL), dcpl = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_chunk(dcpl, rank, chunk);
    H5Pset_deflate(dcpl, 4);
    H5Dclose(H5Dcreate2(f, name, H5T_STD_U8LE, sp, H5P_DEFAULT, dcpl, H5P_DEFAULT));
    H5Pclose(dcpl), H5Sclose(sp);
}

static int ds_declare_(char **a)
{
    hid_t f = H5Fopen(a[0], H5F_ACC_RDWR, H5P_DEFAULT);
    if (f < 0) return 1;
    const hsize_t d[4] = {strtoull(a[1], NULL, 10), strtoull(a[2], NULL, 10), strtoull(a[3], NULL, 10),
                          strtoull(a[4], NULL, 10)};
    declare_(f, "/train/images", 4, d);
    declare_(f, "/train/labels", 1, d);
    return H5Fclose(f) < 0;
}

static int ds_attr_(char **a)
{
    hid_t f = H5Fopen(a[0], H5F_ACC_RDWR, H5P_DEFAULT), at = f < 0 ? -1 : H5Aopen(f, a[1], H5P_DEFAULT);
    const double v = strtod(a[2], NULL);
    const int ok = at >= 0 && H5Awrite(at, H5T_NATIVE_DOUBLE, &v) >= 0; /* one channel */
    if (at >= 0) H5Aclose(at);
    return (f < 0 || H5Fclose(f) < 0) || !ok;
}

static int ckpt_nan_(const char *path)
{
    struct dlfs_ckpt c;
    if (dlfs_ckpt_load(path, &c) != DLFS_OK) return fprintf(stderr, "mkhostile: %s\n", dlfs_error_msg()), 1;
    c.params[3] = NAN;
    const int rc = ckedit_put_float(path, "/params/0_dense/weight", 3, NAN) || ckedit_redigest(path, &c);
    dlfs_ckpt_free(&c);
    return rc;
}

/* The dataset-creation list of one kind of storage outside the file. */
static hid_t outside_dcpl_(const char *kind, const char *src, const char *dset, hid_t sp, hid_t t)
{
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    const hssize_t n = H5Sget_simple_extent_npoints(sp);
    int ok = dcpl >= 0 && n >= 0;
    if (ok && !strcmp(kind, "external")) ok = H5Pset_external(dcpl, src, 0, (hsize_t)n * H5Tget_size(t)) >= 0;
    else if (ok && !strcmp(kind, "virtual")) ok = H5Sselect_all(sp) >= 0 && H5Pset_virtual(dcpl, sp, src, dset, sp) >= 0;
    else ok = 0;
    if (!ok && dcpl >= 0) H5Pclose(dcpl);
    return ok ? dcpl : -1;
}

static int outside_(char **a)
{
    const char *kind = a[0], *path = a[1], *dset = a[2], *src = a[3];
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT), d = f < 0 ? -1 : H5Dopen2(f, dset, H5P_DEFAULT);
    if (d < 0) return fprintf(stderr, "mkhostile: no dataset %s in %s\n", dset, path), 1;
    hid_t sp = H5Dget_space(d), t = H5Dget_type(d), dcpl = -1;
    H5Dclose(d);
    int ok = H5Ldelete(f, dset, H5P_DEFAULT) >= 0;
    if (ok && !strcmp(kind, "link")) ok = H5Lcreate_external(src, dset, f, dset, H5P_DEFAULT, H5P_DEFAULT) >= 0;
    else if (ok) {
        ok = (dcpl = outside_dcpl_(kind, src, dset, sp, t)) >= 0 &&
             (d = H5Dcreate2(f, dset, t, sp, H5P_DEFAULT, dcpl, H5P_DEFAULT)) >= 0 && H5Dclose(d) >= 0;
        if (dcpl >= 0) H5Pclose(dcpl);
    }
    H5Sclose(sp), H5Tclose(t);
    return (H5Fclose(f) < 0) || !ok;
}

static int not_dlfs_(const char *out)
{
    hid_t f = H5Fcreate(out, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (f < 0) return 1;
    const hsize_t dims[1] = {4};
    const int v[4] = {1, 2, 3, 4};
    hid_t sp = H5Screate_simple(1, dims, NULL);
    hid_t d = H5Dcreate2(f, "values", H5T_NATIVE_INT, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    const int ok = d >= 0 && H5Dwrite(d, H5T_NATIVE_INT, H5S_ALL, H5S_ALL, H5P_DEFAULT, v) >= 0;
    H5Dclose(d), H5Sclose(sp);
    return (H5Fclose(f) < 0) || !ok;
}

static int label_(char **a)
{
    hid_t f = H5Fopen(a[0], H5F_ACC_RDWR, H5P_DEFAULT);
    if (f < 0) return 1;
    hid_t d = H5Dopen2(f, "/train/labels", H5P_DEFAULT), fs = H5Dget_space(d);
    const hsize_t start[1] = {strtoull(a[1], NULL, 10)}, count[1] = {1};
    const unsigned char v = (unsigned char)atoi(a[2]);
    hid_t ms = H5Screate_simple(1, count, NULL);
    const int ok = H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, count, NULL) >= 0 &&
                   H5Dwrite(d, H5T_NATIVE_UCHAR, ms, fs, H5P_DEFAULT, &v) >= 0;
    H5Sclose(ms), H5Sclose(fs), H5Dclose(d);
    return (H5Fclose(f) < 0) || !ok;
}

int main(int argc, char **argv)
{
    const char *cmd = argc > 1 ? argv[1] : "";
    char **a = argv + 2;
    if (!strcmp(cmd, "idx") && argc == 7) return idx_(a);
    if (!strcmp(cmd, "dataset") && argc == 3) return dataset_(a[0]);
    if (!strcmp(cmd, "not-dlfs") && argc == 3) return not_dlfs_(a[0]);
    if (!strcmp(cmd, "label") && argc == 5) return label_(a);
    if (!strcmp(cmd, "ds-declare") && argc == 7) return ds_declare_(a);
    if (!strcmp(cmd, "ds-attr") && argc == 5) return ds_attr_(a);
    if (!strcmp(cmd, "ckpt-int") && argc == 5) return ckedit_set_i64(a[0], a[1], strtoll(a[2], NULL, 10)) != 0;
    if (!strcmp(cmd, "ckpt-str") && argc == 5) {
        const size_t n = strtoul(a[2], NULL, 10);
        char *s = malloc(n + 1);
        if (!s) return 1;
        memset(s, 'x', n), s[n] = '\0';
        const int rc = ckedit_set_str(a[0], a[1], s) != 0;
        free(s);
        return rc;
    }
    if (!strcmp(cmd, "ckpt-float") && argc == 6)
        return ckedit_put_float(a[0], a[1], strtoull(a[2], NULL, 10), strtof(a[3], NULL)) != 0;
    if (!strcmp(cmd, "ckpt-nan") && argc == 3) return ckpt_nan_(a[0]);
    if (!strcmp(cmd, "outside") && argc == 6) return outside_(a);
    fprintf(stderr, "usage: see the comment at the top of tests/hostile/mkhostile.c\n");
    return 2;
}
