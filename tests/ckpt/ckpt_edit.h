/* Test helpers: edit a checkpoint file in place with the HDF5 API (header-only,
 * shared by test_ckpt.c and the hostile suite's mkhostile). HDF5's own error
 * printing is left on: a failure here is a test bug and should say so. */
#ifndef DLFS_TEST_CKPT_EDIT_H
#define DLFS_TEST_CKPT_EDIT_H

#include <hdf5.h>
#include <stdint.h>
#include <string.h>
#include "dlfs/checkpoint.h"
#include "io/ckpt-impl.h" /* the digests, to forge a checkpoint whose digests match */

/* Replace the root attribute `name` by a scalar int64. 0 on success. */
static inline int ckedit_set_i64(const char *path, const char *name, long long v)
{
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    if (f < 0) return -1;
    if (H5Aexists(f, name) > 0) H5Adelete(f, name);
    hid_t sp = H5Screate(H5S_SCALAR), a = H5Acreate2(f, name, H5T_STD_I64LE, sp, H5P_DEFAULT, H5P_DEFAULT);
    const int rc = a >= 0 && H5Awrite(a, H5T_NATIVE_LLONG, &v) >= 0 ? 0 : -1;
    H5Aclose(a), H5Sclose(sp);
    return H5Fclose(f) < 0 ? -1 : rc;
}

/* Replace the root attribute `name` by a variable-length string (NULL: delete it). */
static inline int ckedit_set_str(const char *path, const char *name, const char *v)
{
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    if (f < 0) return -1;
    if (H5Aexists(f, name) > 0) H5Adelete(f, name);
    int rc = 0;
    if (v) {
        hid_t t = H5Tcopy(H5T_C_S1), sp = H5Screate(H5S_SCALAR);
        H5Tset_size(t, H5T_VARIABLE);
        hid_t a = H5Acreate2(f, name, t, sp, H5P_DEFAULT, H5P_DEFAULT);
        rc = a >= 0 && H5Awrite(a, t, &v) >= 0 ? 0 : -1;
        H5Aclose(a), H5Sclose(sp), H5Tclose(t);
    }
    return H5Fclose(f) < 0 ? -1 : rc;
}

/* Overwrite element `index` (row-major) of the float dataset `dset`. */
static inline int ckedit_put_float(const char *path, const char *dset, unsigned long long index, float value)
{
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    if (f < 0) return -1;
    hid_t d = H5Dopen2(f, dset, H5P_DEFAULT), fs = d >= 0 ? H5Dget_space(d) : -1;
    int rc = -1;
    if (fs >= 0) {
        hsize_t dims[4] = {1, 1, 1, 1}, coord[4] = {0, 0, 0, 0}, one = 1;
        const int rank = H5Sget_simple_extent_dims(fs, dims, NULL);
        for (int i = rank - 1; i >= 0; i--) coord[i] = index % dims[i], index /= dims[i];
        hid_t ms = H5Screate_simple(1, &one, NULL);
        if (H5Sselect_elements(fs, H5S_SELECT_SET, 1, coord) >= 0 &&
            H5Dwrite(d, H5T_NATIVE_FLOAT, ms, fs, H5P_DEFAULT, &value) >= 0)
            rc = 0;
        H5Sclose(ms), H5Sclose(fs);
    }
    if (d >= 0) H5Dclose(d);
    return H5Fclose(f) < 0 ? -1 : rc;
}

/* Rewrite params_sha256 and state_sha256 from `c` (the state the file now holds). */
static inline int ckedit_redigest(const char *path, const struct dlfs_ckpt *c)
{
    char p[65], s[65];
    dlfs_params_sha256(c->params, c->num_params, p);
    ckpt_state_sha256(c, s);
    return ckedit_set_str(path, "params_sha256", p) || ckedit_set_str(path, "state_sha256", s) ? -1 : 0;
}

#endif
