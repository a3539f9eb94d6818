/* Small HDF5 helpers for attributes and whole-dataset I/O (private). Every
 * function returns < 0 on failure with HDF5's error stack silenced. */
#ifndef DLFS_H5UTIL_H
#define DLFS_H5UTIL_H
#include <hdf5.h>
#include <stdint.h>

int h5u_attr_str_write(hid_t obj, const char *name, const char *value);
int h5u_attr_i64_write(hid_t obj, const char *name, int64_t value);
int h5u_attr_f64_write(hid_t obj, const char *name, double value);
/* Read a string attribute (fixed or variable length) into a malloc'ed string. */
int h5u_attr_str_read(hid_t obj, const char *name, char **value);
int h5u_attr_i64_read(hid_t obj, const char *name, int64_t *value);
/* Write a float32 dataset of rank 1 to 4 at `path` (groups must exist). */
int h5u_write_f32(hid_t file, const char *path, int rank, const uint64_t *dims, const float *data);
/* Read a float32 dataset whose shape must equal dims exactly. */
int h5u_read_f32(hid_t file, const char *path, int rank, const uint64_t *dims, float *data);
#endif
