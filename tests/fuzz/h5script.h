/* Structure-aware fuzzing of the HDF5 readers (header-only, for fuzz_dataset.c
 * and fuzz_ckpt.c). The fuzz input is a script of edits applied, through the
 * HDF5 API, to a real file held in memory (core driver): attributes set to any
 * type, count and value (integers and floats from a table of edge values or raw
 * bits, strings of any bytes), attributes and links deleted, datasets replaced by
 * ones of any type, rank and shape (small ones written, big ones declared and
 * never written), single values poked (NaN, Inf, …). The edited image is then
 * given to the loader. The file stays well-formed HDF5, so what is fuzzed is how
 * dlfs treats whatever a well-formed file holds — HDF5's own parser of damaged
 * bytes is fuzzed by fuzz_h5raw (tests/fuzz/README.md). */
#ifndef DLFS_FUZZ_H5SCRIPT_H
#define DLFS_FUZZ_H5SCRIPT_H

#include <float.h>
#include <hdf5.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct fz { const uint8_t *p; size_t n; };

static unsigned fz_u8(struct fz *s)
{
    if (!s->n) return 0;
    s->n--;
    return *s->p++;
}

static uint64_t fz_u64(struct fz *s)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v = v << 8 | fz_u8(s);
    return v;
}

static int64_t fz_int(struct fz *s)
{
    static const int64_t edge[] = {0, 1, -1, 2, 3, 5, 8, 10, 127, 255, 256, 65535, 2147483647LL, 2147483648LL,
                                   4294967296LL, 999999999999LL, 1000000000000LL, INT64_MAX, INT64_MIN, -2};
    const unsigned k = fz_u8(s);
    return k < sizeof edge / sizeof *edge ? edge[k] : (int64_t)fz_u64(s);
}

static double fz_real(struct fz *s)
{
    static const double edge[] = {0, -0.0, 1, -1, 0.5, 0.29, 0.1307, 1e-4, 9e-5, 1e-300, 1e300, DBL_MAX, FLT_MAX,
                                  1e39, 4.9e-324, 1.2e-38};
    const unsigned k = fz_u8(s);
    if (k < sizeof edge / sizeof *edge) return edge[k];
    if (k == 200) return NAN;
    if (k == 201) return INFINITY;
    if (k == 202) return -INFINITY;
    uint64_t b = fz_u64(s);
    double d;
    memcpy(&d, &b, sizeof d);
    return d;
}

/* A string: one of `known` (n_known of them) or raw bytes of length < 256. */
static char *fz_str(struct fz *s, const char *const *known, size_t n_known)
{
    const unsigned k = fz_u8(s);
    if (k < n_known) return strdup(known[k]);
    const size_t len = k == 255 ? 70000 : fz_u8(s); /* 70000: longer than any limit */
    char *v = malloc(len + 1);
    for (size_t i = 0; v && i < len; i++) v[i] = (char)(k == 255 ? 'x' : (fz_u8(s) | 1));
    if (v) v[len] = '\0';
    return v;
}

static hsize_t fz_dim(struct fz *s)
{
    static const hsize_t edge[] = {0, 1, 2, 3, 4, 5, 7, 8, 10, 28, 1024, 65536, 1u << 20, 2147483648ULL,
                                   3000000000ULL};
    const unsigned k = fz_u8(s);
    return k < sizeof edge / sizeof *edge ? edge[k] : (hsize_t)(k % 40);
}

/* The names a script may touch, chosen by index. */
struct fz_names {
    const char *const *objs; size_t n_objs;     /* where attributes live ("/", groups) */
    const char *const *attrs; size_t n_attrs;   /* attribute names */
    const char *const *dsets; size_t n_dsets;   /* dataset paths */
    const char *const *strs; size_t n_strs;     /* interesting string values */
};

static void fz_set_attr(hid_t f, struct fz *s, const struct fz_names *nm)
{
    const char *obj = nm->objs[fz_u8(s) % nm->n_objs], *name = nm->attrs[fz_u8(s) % nm->n_attrs];
    const unsigned kind = fz_u8(s) % 6, count = fz_u8(s) % 5; /* 0: scalar */
    hsize_t dim = count ? count : 1;
    hid_t o = H5Oopen(f, obj, H5P_DEFAULT);
    if (o < 0) return;
    if (H5Aexists(o, name) > 0) H5Adelete(o, name);
    hid_t sp = count ? H5Screate_simple(1, &dim, NULL) : H5Screate(H5S_SCALAR), t = -1;
    if (kind <= 1) {
        int64_t v[4];
        for (unsigned i = 0; i < dim; i++) v[i] = fz_int(s);
        hid_t a = H5Acreate2(o, name, kind ? H5T_STD_I32LE : H5T_STD_I64LE, sp, H5P_DEFAULT, H5P_DEFAULT);
        if (a >= 0) H5Awrite(a, H5T_NATIVE_INT64, v), H5Aclose(a);
    } else if (kind <= 3) {
        double v[4];
        for (unsigned i = 0; i < dim; i++) v[i] = fz_real(s);
        hid_t a = H5Acreate2(o, name, kind == 2 ? H5T_IEEE_F64LE : H5T_IEEE_F32LE, sp, H5P_DEFAULT, H5P_DEFAULT);
        if (a >= 0) H5Awrite(a, H5T_NATIVE_DOUBLE, v), H5Aclose(a);
    } else {
        char *v[4] = {NULL, NULL, NULL, NULL};
        for (unsigned i = 0; i < dim; i++) v[i] = fz_str(s, nm->strs, nm->n_strs);
        t = H5Tcopy(H5T_C_S1);
        size_t fixed = 1;
        for (unsigned i = 0; i < dim; i++) fixed = v[i] && strlen(v[i]) >= fixed ? strlen(v[i]) + 1 : fixed;
        H5Tset_size(t, kind == 4 ? H5T_VARIABLE : fixed);
        char *buf = kind == 4 ? NULL : calloc(dim, fixed);
        for (unsigned i = 0; buf && i < dim; i++) if (v[i]) memcpy(buf + i * fixed, v[i], strlen(v[i]));
        hid_t a = H5Acreate2(o, name, t, sp, H5P_DEFAULT, H5P_DEFAULT);
        if (a >= 0 && (kind == 4 ? 1 : buf != NULL)) H5Awrite(a, t, kind == 4 ? (void *)v : (void *)buf);
        if (a >= 0) H5Aclose(a);
        free(buf);
        for (unsigned i = 0; i < dim; i++) free(v[i]);
    }
    if (t >= 0) H5Tclose(t);
    H5Sclose(sp), H5Oclose(o);
}

static void fz_del_attr(hid_t f, struct fz *s, const struct fz_names *nm)
{
    const char *obj = nm->objs[fz_u8(s) % nm->n_objs], *name = nm->attrs[fz_u8(s) % nm->n_attrs];
    if (H5Aexists_by_name(f, obj, name, H5P_DEFAULT) > 0) H5Adelete_by_name(f, obj, name, H5P_DEFAULT);
}

/* Replace a dataset: any type, rank 0..4, shape; written when small, else only declared. */
static void fz_dataset(hid_t f, struct fz *s, const struct fz_names *nm)
{
    static const hid_t *types[] = {&H5T_STD_U8LE_g, &H5T_STD_I8LE_g, &H5T_STD_I16LE_g, &H5T_IEEE_F32LE_g,
                                   &H5T_IEEE_F64LE_g, &H5T_STD_U64LE_g};
    const char *path = nm->dsets[fz_u8(s) % nm->n_dsets];
    const hid_t type = *types[fz_u8(s) % 6];
    const int rank = (int)(fz_u8(s) % 5);
    hsize_t dims[4] = {1, 1, 1, 1}, chunk[4] = {1, 1, 1, 1}, n = 1;
    int big = 0;
    for (int i = 0; i < rank; i++) {
        dims[i] = fz_dim(s);
        chunk[i] = dims[i] && dims[i] < 64 ? dims[i] : 1;
        big |= dims[i] > 65536 || (n *= dims[i] ? dims[i] : 1) > 65536;
    }
    if (H5Lexists(f, path, H5P_DEFAULT) > 0) H5Ldelete(f, path, H5P_DEFAULT);
    hid_t sp = rank ? H5Screate_simple(rank, dims, NULL) : H5Screate(H5S_SCALAR), dcpl = H5Pcreate(H5P_DATASET_CREATE);
    if (big && rank) H5Pset_chunk(dcpl, rank, chunk), H5Pset_deflate(dcpl, 1);
    hid_t d = H5Dcreate2(f, path, type, sp, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    if (d >= 0 && !big) {
        double *v = malloc(n * sizeof *v), x = fz_real(s);
        for (hsize_t i = 0; v && i < n; i++) v[i] = i % 7 == 3 ? fz_real(s) : x + (double)(i % 11);
        if (v) H5Dwrite(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, v);
        free(v);
    }
    if (d >= 0) H5Dclose(d);
    H5Pclose(dcpl), H5Sclose(sp);
}

/* Set one element of an existing dataset (converted from a double: NaN, Inf, …). */
static void fz_poke(hid_t f, struct fz *s, const struct fz_names *nm)
{
    const char *path = nm->dsets[fz_u8(s) % nm->n_dsets];
    const uint64_t at = fz_u64(s);
    const double v = fz_real(s);
    if (H5Lexists(f, path, H5P_DEFAULT) <= 0) return;
    hid_t d = H5Dopen2(f, path, H5P_DEFAULT), fs = d >= 0 ? H5Dget_space(d) : -1;
    const hssize_t np = fs >= 0 ? H5Sget_simple_extent_npoints(fs) : 0;
    const int rank = fs >= 0 ? H5Sget_simple_extent_ndims(fs) : 0;
    if (np > 0 && rank > 0 && rank <= 4) {
        hsize_t dims[4], coord[4], one = 1, idx = at % (uint64_t)np;
        H5Sget_simple_extent_dims(fs, dims, NULL);
        for (int i = rank - 1; i >= 0; i--) coord[i] = idx % dims[i], idx /= dims[i];
        hid_t ms = H5Screate_simple(1, &one, NULL);
        if (H5Sselect_elements(fs, H5S_SELECT_SET, 1, coord) >= 0) H5Dwrite(d, H5T_NATIVE_DOUBLE, ms, fs, H5P_DEFAULT, &v);
        H5Sclose(ms);
    }
    if (fs >= 0) H5Sclose(fs);
    if (d >= 0) H5Dclose(d);
}

static void fz_del_link(hid_t f, struct fz *s, const struct fz_names *nm)
{
    const unsigned k = fz_u8(s);
    const char *path = k & 1 ? nm->dsets[(k >> 1) % nm->n_dsets] : nm->objs[(k >> 1) % nm->n_objs];
    if (strcmp(path, "/") != 0 && H5Lexists(f, path, H5P_DEFAULT) > 0) H5Ldelete(f, path, H5P_DEFAULT);
}

/* Open a copy of `image` read-write in memory (core driver). */
static hid_t fz_open_rw(const void *image, size_t len)
{
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS), f = -1;
    if (H5Pset_fapl_core(fapl, 1 << 16, 0) >= 0 && H5Pset_file_image(fapl, (void *)image, len) >= 0)
        f = H5Fopen("fuzz-edit", H5F_ACC_RDWR, fapl);
    H5Pclose(fapl);
    return f;
}

/* Flush and copy out the edited image; closes f. */
static int fz_image(hid_t f, void **out, size_t *len)
{
    *out = NULL;
    ssize_t n = H5Fflush(f, H5F_SCOPE_GLOBAL) >= 0 ? H5Fget_file_image(f, NULL, 0) : -1;
    if (n > 0 && (*out = malloc((size_t)n)) && H5Fget_file_image(f, *out, (size_t)n) == n) *len = (size_t)n;
    else free(*out), *out = NULL;
    H5Fclose(f);
    return *out ? 0 : -1;
}

/* The whole file as bytes (for templates written by the library to a temp file). */
static void *fz_slurp(const char *path, size_t *len)
{
    FILE *fp = fopen(path, "rb");
    void *b = NULL;
    long n = -1;
    if (fp && fseek(fp, 0, SEEK_END) == 0 && (n = ftell(fp)) > 0 && fseek(fp, 0, SEEK_SET) == 0 &&
        (b = malloc((size_t)n)) && fread(b, 1, (size_t)n, fp) == (size_t)n) *len = (size_t)n;
    else free(b), b = NULL;
    if (fp) fclose(fp);
    return b;
}

/* Apply up to 24 edits from the script. `extra` (may be NULL): a target-specific op. */
static void fz_run(hid_t f, struct fz *s, const struct fz_names *nm, void (*extra)(hid_t, struct fz *))
{
    for (int i = 0; i < 24 && s->n; i++) {
        switch (fz_u8(s) % 7) {
        case 0: case 1: fz_set_attr(f, s, nm); break;
        case 2: fz_del_attr(f, s, nm); break;
        case 3: fz_dataset(f, s, nm); break;
        case 4: fz_poke(f, s, nm); break;
        case 5: fz_del_link(f, s, nm); break;
        default: if (extra) extra(f, s); break;
        }
    }
}

/* One input: its first byte picks one of the two templates, the rest is the edit script;
 * *image is the edited file's bytes (the caller frees it). -1: the edits left no file. */
static int fz_edit(const uint8_t *data, size_t size, void *const tmpl[2], const size_t tmpl_len[2],
                   const struct fz_names *nm, void (*extra)(hid_t, struct fz *), void **image, size_t *len)
{
    struct fz s = {data, size};
    const int k = (int)(fz_u8(&s) & 1);
    hid_t f = fz_open_rw(tmpl[k], tmpl_len[k]);
    *image = NULL;
    *len = 0;
    if (f < 0) abort();
    fz_run(f, &s, nm, extra);
    return fz_image(f, image, len);
}

#endif
