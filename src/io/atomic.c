/* The one atomic writer (src/io/io.h), used by dataset and checkpoint files:
 * PATH.tmp created exclusively, write, fsync, close, rename, fsync the directory. */
#define _POSIX_C_SOURCE 200809L
#include "io/io.h"
#include "core/hooks.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int write_all_(int fd, const char *p, size_t n)
{
    while (n > 0) {
        const ssize_t w = write(fd, p, n > ((size_t)1 << 30) ? (size_t)1 << 30 : n);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0) return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* fsync the directory holding `path` (best effort). */
static void sync_dir_(const char *path)
{
    const char *slash = strrchr(path, '/');
    char *dir = slash ? strndup(path, slash == path ? 1 : (size_t)(slash - path)) : strdup(".");
    if (!dir) return;
    const int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
    free(dir);
}

static int fail_(struct io_atomic_err *e, const char *stage, int fd)
{
    e->err = errno;
    e->stage = stage;
    if (fd >= 0) close(fd);
    unlink(e->tmp);
    errno = e->err;
    return -1;
}

/* Create PATH.tmp as a new file of ours, never through what another user put
 * there. The directory may be writable by others (a shared scratch or project
 * directory), who can plant a symbolic link or a hard link at the temporary
 * name ahead of us, aimed at any file we can write:
 *  - O_CREAT|O_EXCL never follows a symbolic link (not even a dangling one) and
 *    fails on any existing name, so neither link can make us open its target;
 *    O_NOFOLLOW says the same for kernels and file systems where it matters;
 *  - an existing name is removed and the create tried again: unlink() removes
 *    the link or the stale file of a killed writer (a name), never the file it
 *    points at; one that comes back at once (someone racing us) is an error;
 *  - before the rename, the name must still be the file we wrote (same device
 *    and inode as our descriptor): we rename only what we created. In a sticky
 *    directory (mode 1777) nobody else can then swap it; in one where others may
 *    rename our files they could as well replace the checkpoint itself.
 * HDF5 never creates these files: a checkpoint is built in memory and its
 * bytes written here (src/io/checkpoint.c); a file too big for that (dlfs-data
 * synth) is created here and HDF5 only opens it by name (io_atomic_open). */
static int create_tmp_(const char *tmp)
{
    const int fl = O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC;
    int fd = open(tmp, fl, 0644);
    if (fd < 0 && errno == EEXIST && unlink(tmp) == 0) fd = open(tmp, fl, 0644);
    return fd;
}

/* The name `tmp` is still the file open as fd. */
static int still_ours_(const char *tmp, int fd)
{
    struct stat a, b;
    if (fstat(fd, &a) != 0 || lstat(tmp, &b) != 0) return 0;
    if (a.st_dev == b.st_dev && a.st_ino == b.st_ino) return 1;
    errno = EEXIST; /* "File exists": someone else's file took the name */
    return 0;
}

int io_atomic_open(const char *path, int *fd, struct io_atomic_err *e)
{
    const size_t n = strlen(path);
    e->err = 0;
    e->stage = "create";
    *fd = -1;
    if (!(e->tmp = malloc(n + 5))) return -1;
    memcpy(e->tmp, path, n);
    memcpy(e->tmp + n, ".tmp", 5);
    if ((*fd = create_tmp_(e->tmp)) < 0) {
        e->err = errno;
        return -1; /* nothing of ours to remove */
    }
    return 0;
}

void io_atomic_abort(int fd, struct io_atomic_err *e)
{
    if (fd >= 0) close(fd);
    if (e->tmp) unlink(e->tmp);
}

int io_atomic_commit(const char *path, int fd, struct io_atomic_err *e)
{
    /* the bytes must be on disk before the rename makes them "the" file */
    if (fsync(fd) != 0) return fail_(e, "fsync", fd);
    if (!still_ours_(e->tmp, fd)) {
        e->err = errno;
        e->stage = "rename";
        close(fd);
        return -1; /* not ours: neither renamed nor removed */
    }
    if (close(fd) != 0) return fail_(e, "close", -1);
    if (rename(e->tmp, path) != 0) return fail_(e, "rename", -1);
    sync_dir_(path); /* make the rename itself durable */
    return 0;
}

int io_atomic_write(const char *path, const void *buf, size_t len, unsigned flags, struct io_atomic_err *e)
{
    int fd = -1;
    if (io_atomic_open(path, &fd, e) != 0) return -1;
    const size_t half = len / 2;
    if (write_all_(fd, buf, half) != 0) return fail_(e, "write", fd);
    if (flags & IO_ATOMIC_CKPT_HOOKS) dlfs_hook_ckpt_write(); /* a writer dying half-way through the file */
    if (write_all_(fd, (const char *)buf + half, len - half) != 0) return fail_(e, "write", fd);
    return io_atomic_commit(path, fd, e);
}

void io_atomic_err_free(struct io_atomic_err *e)
{
    free(e->tmp);
    e->tmp = NULL;
}
