/* The HDF5 helpers shared by the dataset and checkpoint files (private to the
 * library; src/io/README.md).
 *
 * Conventions: functions returning int give 0 on success and -1 on failure (1
 * where noted: "absent"); they never print (h5_silence() is in force) and close
 * every handle they open on every path. Sizes read from a file are bounded by
 * the caller's limits before anything is allocated for them. */
#ifndef DLFS_IO_H5_H
#define DLFS_IO_H5_H

#include <hdf5.h>
#include <stddef.h>
#include <stdint.h>

/* Switch HDF5's automatic error printing off for the whole process, for good
 * (idempotent, cheap). Every HDF5 entry point of the library calls it first: we
 * report one message of our own, and HDF5 must not add lines, not even when the
 * library shuts down at exit after a damaged file ("infinite loop closing
 * library" is printed only while automatic printing is on). */
void h5_silence(void);

/* Close any handle (negative: never opened). */
void h5_close(hid_t id);

/* Open an existing file read-only: by path (sec2 driver) or from a memory image
 * (core driver; the image is copied, the caller keeps `buf`). < 0 on failure. */
hid_t h5_open_path(const char *path);
hid_t h5_open_image(const void *buf, size_t len);
/* A new file that lives in memory only (core driver, no backing store), for
 * building a file image; `increment`: how much memory it grows by. */
hid_t h5_create_memory(size_t increment);
/* Flush `f` and copy its image into a new malloc'ed buffer. */
int h5_get_image(hid_t f, void **buf, size_t *len);
/* Size of the file behind `f` in bytes (0 when unknown). */
uint64_t h5_file_size(hid_t f);

/* The first object of `f` whose values do not live in the file itself: a dataset
 * with external storage (raw data in other files) or of virtual layout (mapped
 * from other datasets and files), or a link of another kind than hard or soft (an
 * external link into another file). 1 with its path in `name`, 0 when there is
 * none, -1 when the file cannot be walked. Reading such an object would read
 * whatever the named files are (a FIFO hangs, /dev/zero never ends). */
int h5_find_outside(hid_t f, char *name, size_t len);

/* Attributes. Strings are written as variable-length UTF-8 (h5py returns str).
 * h5_attr_strs_read: a scalar or 1-D string attribute of 1..max_count strings
 * (fixed or variable length) of at most max_len bytes each -> *out (count in
 * *n; free each and the array); 0, 1 when absent, -1 when of another kind. */
int h5_attr_str_write(hid_t loc, const char *name, const char *value);
int h5_attr_strs_write(hid_t loc, const char *name, const char *const *v, size_t n);
int h5_attr_strs_read(hid_t loc, const char *name, size_t max_count, size_t max_len, char ***out, size_t *n);
/* One string (scalar or 1-element): 0, 1 absent, -1 bad or longer than max_len. */
int h5_attr_str_read(hid_t loc, const char *name, size_t max_len, char **out);
/* Numbers: `n` values of file type ftype from mtype (scalar when n == 0). */
int h5_attr_num_write(hid_t loc, const char *name, hid_t ftype, hid_t mtype, size_t n, const void *v);
/* Exactly `n` values (a scalar counts as 1) of HDF5 class `cls`, converted to
 * mtype: 0, 1 absent, -1 of another class or count. */
int h5_attr_num_read(hid_t loc, const char *name, H5T_class_t cls, hid_t mtype, size_t n, void *out);
int h5_attr_i64_write(hid_t loc, const char *name, int64_t value);
int h5_attr_i64_read(hid_t loc, const char *name, int64_t *value);

/* A group (absent parents are an error). */
int h5_group_create(hid_t loc, const char *path);
/* Float32 datasets of rank 1..4 (path's groups must exist); the read requires
 * a floating-point dataset of exactly `dims`. */
int h5_write_f32(hid_t f, const char *path, int rank, const uint64_t *dims, const float *data);
int h5_read_f32(hid_t f, const char *path, int rank, const uint64_t *dims, float *data);
/* A uint8 dataset chunked by rows (gzip when this HDF5 can write it). */
int h5_write_u8_rows(hid_t loc, const char *name, int rank, const hsize_t *dims, const uint8_t *data);
/* The same written in pieces: h5_create_u8_rows makes the dataset (its chunks
 * hold h5_u8_chunk_rows rows; < 0 on failure, close it), h5_write_u8_rows_at
 * writes its rows [row0, row0 + rows) from `data` (whole chunks: nothing is
 * cached or read back). */
hsize_t h5_u8_chunk_rows(int rank, const hsize_t *dims);
hid_t h5_create_u8_rows(hid_t loc, const char *name, int rank, const hsize_t *dims);
int h5_write_u8_rows_at(hid_t d, int rank, const hsize_t *dims, hsize_t row0, hsize_t rows, const uint8_t *data);
/* Rows [row0, row0 + rows) of an open uint8 dataset of `rank` dims into `out`. */
int h5_read_u8_rows(hid_t d, int rank, const hsize_t *dims, hsize_t row0, hsize_t rows, uint8_t *out);

#endif
