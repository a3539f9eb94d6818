/* File-system helpers shared by the dataset and checkpoint code (private to the
 * library; src/io/README.md): opening only regular files, creating directories
 * under a checked path, and the one atomic writer. */
#ifndef DLFS_IO_IO_H
#define DLFS_IO_IO_H

#include <stddef.h>
#include <stdint.h>
#include "dlfs/status.h"

/* Open `path` for reading without ever blocking on it: O_NONBLOCK, fstat, and
 * anything but a regular file (directory, FIFO, socket, device) is refused
 * with one message "cannot read WHAT PATH: it is a FIFO (named pipe), …";
 * then O_NONBLOCK is cleared. On success *fd is open (caller closes) and
 * *size is the file's size. */
enum dlfs_status io_open_regular(const char *path, const char *what, int *fd, uint64_t *size);
/* io_open_regular, then close: for files that a library opens again by name
 * (HDF5's sec2 driver cannot take a descriptor). The check and HDF5's open are
 * two steps: a file swapped in between is not seen (documented race). */
enum dlfs_status io_check_regular(const char *path, const char *what, uint64_t *size);
/* Read exactly n bytes at the current offset (EINTR retried): 0, else -1 with errno. */
int io_read_full(int fd, void *buf, size_t n);

/* Create `dir` and its missing parents (mode 0777 less umask) after checking
 * the path's length (room for `extra` more characters inside it) before
 * creating anything. Messages start with WHAT (e.g. "--checkpoint-dir"). */
enum dlfs_status io_mkdirs(const char *what, const char *dir, size_t extra);

/* The one atomic writer: `len` bytes of `buf` become the file `path` all at
 * once or not at all. PATH.tmp in the same directory is created exclusively
 * (O_EXCL|O_NOFOLLOW: never through a planted link; an existing PATH.tmp, a
 * killed writer's or a link, is unlinked first), written, fsync'ed, checked to
 * be still the file created, closed and renamed over `path`, then the
 * directory is fsync'ed (best effort:
 * some file systems refuse). On failure PATH.tmp is removed, `path` untouched,
 * and -1 is returned with e->err (errno, 0 when none) and e->stage ("create",
 * "write", "fsync", "close", "rename") set; e->tmp names the temporary file.
 * IO_ATOMIC_CKPT_HOOKS: this is a checkpoint write and the test hooks apply
 * (DLFS_FAULT_CKPT_ABORT=N aborts, DLFS_FAULT_CKPT_PAUSE=N:S sleeps S s, half-way
 * through the file's bytes of the N-th checkpoint write of the process). */
#define IO_ATOMIC_CKPT_HOOKS 1u
struct io_atomic_err {
    int err;
    const char *stage;
    char *tmp; /* malloc'ed, freed by io_atomic_err_free */
};
int io_atomic_write(const char *path, const void *buf, size_t len, unsigned flags, struct io_atomic_err *e);
/* The same writer for a file too big to build in memory, that a library writes by
 * name (HDF5 writing a dataset chunk by chunk): io_atomic_open creates PATH.tmp
 * as above and keeps it open as *fd (e->tmp names it); the library opens e->tmp
 * by name, truncating this empty file of ours, writes and closes it; then
 * io_atomic_commit fsyncs fd, checks that the name is still the file created,
 * closes and renames it over `path` (stages and errors as above), or
 * io_atomic_abort closes fd and removes PATH.tmp. Either way
 * io_atomic_err_free follows. */
int io_atomic_open(const char *path, int *fd, struct io_atomic_err *e);
int io_atomic_commit(const char *path, int fd, struct io_atomic_err *e);
void io_atomic_abort(int fd, struct io_atomic_err *e);
void io_atomic_err_free(struct io_atomic_err *e);

#endif
