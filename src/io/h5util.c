#define _POSIX_C_SOURCE 200809L
#include <stdlib.h>
#include <string.h>
#include "io/h5util.h"

int h5u_attr_str_write(hid_t obj, const char *name, const char *value)
{
    /* variable-length UTF-8: h5py returns str, h5dump prints the text */
    hid_t t = H5Tcopy(H5T_C_S1), s = H5Screate(H5S_SCALAR), a = -1;
    int rc = -1;
    if (t >= 0 && s >= 0 && H5Tset_size(t, H5T_VARIABLE) >= 0 && H5Tset_cset(t, H5T_CSET_UTF8) >= 0 &&
        (a = H5Acreate2(obj, name, t, s, H5P_DEFAULT, H5P_DEFAULT)) >= 0)
        rc = H5Awrite(a, t, &value) < 0 ? -1 : 0;
    if (a >= 0) H5Aclose(a);
    if (s >= 0) H5Sclose(s);
    if (t >= 0) H5Tclose(t);
    return rc;
}

static int attr_num_write_(hid_t obj, const char *name, hid_t file_type, hid_t mem_type, const void *v)
{
    hid_t s = H5Screate(H5S_SCALAR), a = -1;
    int rc = -1;
    if (s >= 0 && (a = H5Acreate2(obj, name, file_type, s, H5P_DEFAULT, H5P_DEFAULT)) >= 0)
        rc = H5Awrite(a, mem_type, v) < 0 ? -1 : 0;
    if (a >= 0) H5Aclose(a);
    if (s >= 0) H5Sclose(s);
    return rc;
}

int h5u_attr_i64_write(hid_t obj, const char *name, int64_t value)
{
    return attr_num_write_(obj, name, H5T_STD_I64LE, H5T_NATIVE_INT64, &value);
}

int h5u_attr_f64_write(hid_t obj, const char *name, double value)
{
    return attr_num_write_(obj, name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, &value);
}

int h5u_attr_str_read(hid_t obj, const char *name, char **value)
{
    *value = NULL;
    if (H5Aexists(obj, name) <= 0) return -1;
    hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
    if (a < 0) return -1;
    hid_t t = H5Aget_type(a), s = H5Aget_space(a);
    int rc = -1;
    if (t >= 0 && s >= 0 && H5Tget_class(t) == H5T_STRING && H5Sget_simple_extent_npoints(s) == 1) {
        if (H5Tis_variable_str(t) > 0) {
            char *p = NULL;
            hid_t mt = H5Tcopy(H5T_C_S1);
            H5Tset_size(mt, H5T_VARIABLE);
            if (H5Aread(a, mt, &p) >= 0 && p) {
                *value = strdup(p);
                rc = 0;
                H5free_memory(p);
            }
            H5Tclose(mt);
        } else {
            size_t n = H5Tget_size(t);
            char *p = calloc(n + 1, 1);
            hid_t mt = H5Tcopy(H5T_C_S1);
            H5Tset_size(mt, n + 1);
            H5Tset_strpad(mt, H5T_STR_NULLTERM);
            if (p && H5Aread(a, mt, p) >= 0) { *value = p; rc = 0; }
            else free(p);
            H5Tclose(mt);
        }
    }
    if (s >= 0) H5Sclose(s);
    if (t >= 0) H5Tclose(t);
    H5Aclose(a);
    return rc;
}

int h5u_attr_i64_read(hid_t obj, const char *name, int64_t *value)
{
    if (H5Aexists(obj, name) <= 0) return -1;
    hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
    if (a < 0) return -1;
    hid_t t = H5Aget_type(a);
    int rc = -1;
    if (t >= 0 && H5Tget_class(t) == H5T_INTEGER) rc = H5Aread(a, H5T_NATIVE_INT64, value) < 0 ? -1 : 0;
    if (t >= 0) H5Tclose(t);
    H5Aclose(a);
    return rc;
}

int h5u_write_f32(hid_t file, const char *path, int rank, const uint64_t *dims, const float *data)
{
    hsize_t d[4] = {1, 1, 1, 1};
    if (rank < 1 || rank > 4) return -1;
    for (int i = 0; i < rank; i++) d[i] = dims[i];
    hid_t s = H5Screate_simple(rank, d, NULL), ds = -1;
    int rc = -1;
    if (s >= 0 && (ds = H5Dcreate2(file, path, H5T_IEEE_F32LE, s, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT)) >= 0)
        rc = H5Dwrite(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0 ? -1 : 0;
    if (ds >= 0) H5Dclose(ds);
    if (s >= 0) H5Sclose(s);
    return rc;
}

int h5u_read_f32(hid_t file, const char *path, int rank, const uint64_t *dims, float *data)
{
    if (H5Lexists(file, path, H5P_DEFAULT) <= 0) return -1;
    hid_t ds = H5Dopen2(file, path, H5P_DEFAULT);
    if (ds < 0) return -1;
    hid_t s = H5Dget_space(ds), t = H5Dget_type(ds);
    int rc = -1;
    hsize_t d[4] = {0};
    int same = rank >= 1 && rank <= 4 && s >= 0 && H5Sget_simple_extent_ndims(s) == rank &&
               H5Sget_simple_extent_dims(s, d, NULL) == rank;
    for (int i = 0; same && i < rank; i++) same = d[i] == dims[i];
    if (same && t >= 0 && H5Tget_class(t) == H5T_FLOAT)
        rc = H5Dread(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0 ? -1 : 0;
    if (t >= 0) H5Tclose(t);
    if (s >= 0) H5Sclose(s);
    H5Dclose(ds);
    return rc;
}
