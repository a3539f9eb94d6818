/* The HDF5 helpers shared by datasets and checkpoints (src/io/h5.h). */
#define _POSIX_C_SOURCE 200809L
#include "io/h5.h"

#include <stdlib.h>
#include <string.h>
#include "dlfs/status.h"

void h5_silence(void) { H5Eset_auto2(H5E_DEFAULT, NULL, NULL); }

void h5_close(hid_t id)
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

/* ---- files ------------------------------------------------------------------------ */

hid_t h5_open_path(const char *path)
{
    h5_silence();
    if (H5Fis_hdf5(path) <= 0) return -1;
    return H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
}

hid_t h5_open_image(const void *buf, size_t len)
{
    h5_silence();
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS), f = -1;
    if (fapl >= 0 && len > 0 && H5Pset_fapl_core(fapl, 1 << 20, 0) >= 0 &&
        H5Pset_file_image(fapl, (void *)buf, len) >= 0)
        f = H5Fopen("dlfs-memory-image", H5F_ACC_RDONLY, fapl);
    h5_close(fapl);
    return f;
}

hid_t h5_create_memory(size_t increment)
{
    h5_silence();
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS), f = -1;
    if (fapl >= 0 && H5Pset_fapl_core(fapl, increment, 0) >= 0)
        f = H5Fcreate("dlfs-memory-image", H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
    h5_close(fapl);
    return f;
}

int h5_get_image(hid_t f, void **buf, size_t *len)
{
    *buf = NULL;
    *len = 0;
    if (H5Fflush(f, H5F_SCOPE_GLOBAL) < 0) return -1;
    ssize_t n = H5Fget_file_image(f, NULL, 0);
    if (n <= 0 || !(*buf = malloc((size_t)n))) return -1;
    if (H5Fget_file_image(f, *buf, (size_t)n) != n) {
        free(*buf);
        *buf = NULL;
        return -1;
    }
    *len = (size_t)n;
    return 0;
}

uint64_t h5_file_size(hid_t f)
{
    hsize_t n = 0;
    return H5Fget_filesize(f, &n) < 0 ? 0 : (uint64_t)n;
}

/* ---- attributes ------------------------------------------------------------------ */

static hid_t utf8_vlen_(void)
{
    hid_t t = H5Tcopy(H5T_C_S1);
    if (t >= 0 && (H5Tset_size(t, H5T_VARIABLE) < 0 || H5Tset_cset(t, H5T_CSET_UTF8) < 0)) {
        H5Tclose(t);
        return -1;
    }
    return t;
}

static int strs_write_(hid_t loc, const char *name, const char *const *v, size_t n, int scalar)
{
    hsize_t dim = n;
    hid_t t = utf8_vlen_(), sp = -1, a = -1;
    int ok = t >= 0 && (sp = scalar ? H5Screate(H5S_SCALAR) : H5Screate_simple(1, &dim, NULL)) >= 0 &&
             (a = H5Acreate2(loc, name, t, sp, H5P_DEFAULT, H5P_DEFAULT)) >= 0 && H5Awrite(a, t, v) >= 0;
    h5_close(a), h5_close(sp), h5_close(t);
    return ok ? 0 : -1;
}

int h5_attr_str_write(hid_t loc, const char *name, const char *value)
{
    return strs_write_(loc, name, &value, 1, 1);
}

int h5_attr_strs_write(hid_t loc, const char *name, const char *const *v, size_t n)
{
    return strs_write_(loc, name, v, n, 0);
}

static char *dup_n_(const char *s, size_t max_len)
{
    size_t n = strnlen(s, max_len + 1);
    if (n > max_len) return NULL;
    char *p = malloc(n + 1);
    if (p) memcpy(p, s, n), p[n] = '\0';
    return p;
}

/* Read `cnt` strings of the open attribute `a` (file type ft) into v[]. */
static int strs_read_(hid_t a, hid_t ft, size_t cnt, size_t max_len, char **v)
{
    hid_t mt = H5Tcopy(H5T_C_S1);
    int rc = mt >= 0 && H5Tset_cset(mt, H5Tget_cset(ft)) >= 0 ? 0 : -1;
    if (rc == 0 && H5Tis_variable_str(ft) > 0) {
        char **raw = calloc(cnt, sizeof *raw);
        rc = raw && H5Tset_size(mt, H5T_VARIABLE) >= 0 && H5Aread(a, mt, raw) >= 0 ? 0 : -1;
        for (size_t i = 0; raw && i < cnt; i++) {
            if (rc == 0 && !(v[i] = dup_n_(raw[i] ? raw[i] : "", max_len))) rc = -1;
            if (raw[i]) H5free_memory(raw[i]);
        }
        free(raw);
    } else if (rc == 0) {
        const size_t sz = H5Tget_size(ft);
        char *buf = sz && sz <= max_len ? calloc(cnt, sz + 1) : NULL;
        rc = buf && H5Tset_size(mt, sz + 1) >= 0 && H5Tset_strpad(mt, H5T_STR_NULLTERM) >= 0 &&
                     H5Aread(a, mt, buf) >= 0 ? 0 : -1;
        for (size_t i = 0; rc == 0 && i < cnt; i++)
            if (!(v[i] = dup_n_(buf + i * (sz + 1), max_len))) rc = -1;
        free(buf);
    }
    h5_close(mt);
    return rc;
}

int h5_attr_strs_read(hid_t loc, const char *name, size_t max_count, size_t max_len, char ***out, size_t *n)
{
    *out = NULL, *n = 0;
    if (H5Aexists(loc, name) <= 0) return 1;
    hid_t a = H5Aopen(loc, name, H5P_DEFAULT), ft = -1, sp = -1;
    int rc = -1;
    if (a >= 0 && (ft = H5Aget_type(a)) >= 0 && H5Tget_class(ft) == H5T_STRING && (sp = H5Aget_space(a)) >= 0 &&
        H5Sget_simple_extent_ndims(sp) <= 1) {
        const hssize_t cnt = H5Sget_simple_extent_npoints(sp);
        char **v = cnt >= 1 && (size_t)cnt <= max_count ? calloc((size_t)cnt, sizeof *v) : NULL;
        if (v) rc = strs_read_(a, ft, (size_t)cnt, max_len, v);
        if (rc == 0) {
            *out = v, *n = (size_t)cnt;
        } else {
            for (hssize_t i = 0; v && i < cnt; i++) free(v[i]);
            free(v);
        }
    }
    h5_close(sp), h5_close(ft), h5_close(a);
    return rc;
}

int h5_attr_str_read(hid_t loc, const char *name, size_t max_len, char **out)
{
    char **v = NULL;
    size_t n = 0;
    *out = NULL;
    const int rc = h5_attr_strs_read(loc, name, 1, max_len, &v, &n);
    if (rc == 0) *out = v[0];
    free(v);
    return rc;
}

int h5_attr_num_write(hid_t loc, const char *name, hid_t ftype, hid_t mtype, size_t n, const void *v)
{
    hsize_t dim = n;
    hid_t sp = n == 0 ? H5Screate(H5S_SCALAR) : H5Screate_simple(1, &dim, NULL), a = -1;
    const int ok = sp >= 0 && (a = H5Acreate2(loc, name, ftype, sp, H5P_DEFAULT, H5P_DEFAULT)) >= 0 &&
                   H5Awrite(a, mtype, v) >= 0;
    h5_close(a), h5_close(sp);
    return ok ? 0 : -1;
}

int h5_attr_num_read(hid_t loc, const char *name, H5T_class_t cls, hid_t mtype, size_t n, void *out)
{
    if (H5Aexists(loc, name) <= 0) return 1;
    hid_t a = H5Aopen(loc, name, H5P_DEFAULT), ft = -1, sp = -1;
    const int ok = a >= 0 && (ft = H5Aget_type(a)) >= 0 && H5Tget_class(ft) == cls && (sp = H5Aget_space(a)) >= 0 &&
                   H5Sget_simple_extent_ndims(sp) <= 1 && H5Sget_simple_extent_npoints(sp) == (hssize_t)n &&
                   H5Aread(a, mtype, out) >= 0;
    h5_close(sp), h5_close(ft), h5_close(a);
    return ok ? 0 : -1;
}

int h5_attr_i64_write(hid_t loc, const char *name, int64_t value)
{
    return h5_attr_num_write(loc, name, H5T_STD_I64LE, H5T_NATIVE_INT64, 0, &value);
}

int h5_attr_i64_read(hid_t loc, const char *name, int64_t *value)
{
    return h5_attr_num_read(loc, name, H5T_INTEGER, H5T_NATIVE_INT64, 1, value);
}

/* ---- datasets -------------------------------------------------------------------- */

int h5_group_create(hid_t loc, const char *path)
{
    hid_t g = H5Gcreate2(loc, path, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    h5_close(g);
    return g < 0 ? -1 : 0;
}

int h5_write_f32(hid_t f, const char *path, int rank, const uint64_t *dims, const float *data)
{
    hsize_t d[4];
    if (rank < 1 || rank > 4) return -1;
    for (int i = 0; i < rank; i++) d[i] = dims[i];
    hid_t s = H5Screate_simple(rank, d, NULL), ds = -1;
    const int ok = s >= 0 &&
                   (ds = H5Dcreate2(f, path, H5T_IEEE_F32LE, s, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT)) >= 0 &&
                   H5Dwrite(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) >= 0;
    h5_close(ds), h5_close(s);
    return ok ? 0 : -1;
}

int h5_read_f32(hid_t f, const char *path, int rank, const uint64_t *dims, float *data)
{
    if (rank < 1 || rank > 4 || H5Lexists(f, path, H5P_DEFAULT) <= 0) return -1;
    hid_t ds = H5Dopen2(f, path, H5P_DEFAULT), s = -1, t = -1;
    hsize_t d[4] = {0};
    int ok = ds >= 0 && (s = H5Dget_space(ds)) >= 0 && (t = H5Dget_type(ds)) >= 0 &&
             H5Tget_class(t) == H5T_FLOAT && H5Sget_simple_extent_ndims(s) == rank &&
             H5Sget_simple_extent_dims(s, d, NULL) == rank;
    for (int i = 0; ok && i < rank; i++) ok = d[i] == dims[i];
    ok = ok && H5Dread(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) >= 0;
    h5_close(t), h5_close(s), h5_close(ds);
    return ok ? 0 : -1;
}

struct outside_ {
    char *name;
    size_t len;
};

static herr_t outside_cb_(hid_t g, const char *name, const H5L_info_t *info, void *data)
{
    struct outside_ *o = data;
    int bad = info->type != H5L_TYPE_HARD && info->type != H5L_TYPE_SOFT;
    if (info->type == H5L_TYPE_HARD) {
        hid_t obj = H5Oopen(g, name, H5P_DEFAULT), dcpl = -1;
        if (obj >= 0 && H5Iget_type(obj) == H5I_DATASET && (dcpl = H5Dget_create_plist(obj)) >= 0) {
            const H5D_layout_t l = H5Pget_layout(dcpl);
            bad = !(l == H5D_CHUNKED || l == H5D_COMPACT || (l == H5D_CONTIGUOUS && H5Pget_external_count(dcpl) == 0));
        }
        h5_close(dcpl), h5_close(obj);
    }
    if (bad) snprintf(o->name, o->len, "/%s", name);
    return bad ? 1 : 0;
}

int h5_find_outside(hid_t f, char *name, size_t len)
{
    struct outside_ o = {name, len};
    const herr_t r = H5Lvisit(f, H5_INDEX_NAME, H5_ITER_INC, outside_cb_, &o);
    return r < 0 ? -1 : r > 0;
}

#define H5_CHUNK_ROWS 1024
#define H5_CHUNK_MAX_BYTES ((size_t)4 << 20) /* small enough to cache */
#define H5_GZIP_LEVEL 4

hsize_t h5_u8_chunk_rows(int rank, const hsize_t *dims)
{
    size_t row = 1;
    for (int i = 1; i < rank; i++) row *= (size_t)dims[i];
    hsize_t rows = dims[0] < H5_CHUNK_ROWS ? dims[0] : H5_CHUNK_ROWS;
    while (rows > 1 && rows * row > H5_CHUNK_MAX_BYTES) rows /= 2;
    return rows;
}

hid_t h5_create_u8_rows(hid_t loc, const char *name, int rank, const hsize_t *dims)
{
    hsize_t chunk[4] = {h5_u8_chunk_rows(rank, dims), 0, 0, 0};
    for (int i = 1; i < rank; i++) chunk[i] = dims[i];
    unsigned cfg = 0;
    const int gzip = H5Zfilter_avail(H5Z_FILTER_DEFLATE) > 0 && H5Zget_filter_info(H5Z_FILTER_DEFLATE, &cfg) >= 0 &&
                     (cfg & H5Z_FILTER_CONFIG_ENCODE_ENABLED);
    hid_t sp = H5Screate_simple(rank, dims, NULL), dcpl = H5Pcreate(H5P_DATASET_CREATE), d = -1;
    if (sp >= 0 && dcpl >= 0 && H5Pset_chunk(dcpl, rank, chunk) >= 0 &&
        (!gzip || H5Pset_deflate(dcpl, H5_GZIP_LEVEL) >= 0))
        d = H5Dcreate2(loc, name, H5T_STD_U8LE, sp, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    h5_close(dcpl), h5_close(sp);
    return d;
}

int h5_write_u8_rows(hid_t loc, const char *name, int rank, const hsize_t *dims, const uint8_t *data)
{
    hid_t d = h5_create_u8_rows(loc, name, rank, dims);
    const int ok = d >= 0 && H5Dwrite(d, H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) >= 0;
    h5_close(d);
    return ok ? 0 : -1;
}

int h5_write_u8_rows_at(hid_t d, int rank, const hsize_t *dims, hsize_t row0, hsize_t rows, const uint8_t *data)
{
    hsize_t start[4] = {row0, 0, 0, 0}, count[4] = {rows, 1, 1, 1};
    for (int i = 1; i < rank; i++) count[i] = dims[i];
    hid_t fs = H5Dget_space(d), ms = H5Screate_simple(rank, count, NULL);
    const int ok = fs >= 0 && ms >= 0 && H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, count, NULL) >= 0 &&
                   H5Dwrite(d, H5T_NATIVE_UINT8, ms, fs, H5P_DEFAULT, data) >= 0;
    h5_close(ms), h5_close(fs);
    return ok ? 0 : -1;
}

int h5_read_u8_rows(hid_t d, int rank, const hsize_t *dims, hsize_t row0, hsize_t rows, uint8_t *out)
{
    hsize_t start[4] = {row0, 0, 0, 0}, count[4] = {rows, 1, 1, 1};
    for (int i = 1; i < rank; i++) count[i] = dims[i];
    hid_t fs = H5Dget_space(d), ms = H5Screate_simple(rank, count, NULL);
    const int ok = fs >= 0 && ms >= 0 && H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, count, NULL) >= 0 &&
                   H5Dread(d, H5T_NATIVE_UINT8, ms, fs, H5P_DEFAULT, out) >= 0;
    h5_close(ms), h5_close(fs);
    return ok ? 0 : -1;
}
