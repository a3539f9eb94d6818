/* The one atomic writer (src/io/io.h), used by dataset and checkpoint files:
 * PATH.tmp, write, fsync, close, rename, fsync the directory. */
#define _POSIX_C_SOURCE 200809L
#include "io/io.h"
#include "core/hooks.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

int io_atomic_write(const char *path, const void *buf, size_t len, unsigned flags, struct io_atomic_err *e)
{
    const size_t n = strlen(path);
    e->err = 0;
    e->stage = "create";
    if (!(e->tmp = malloc(n + 5))) return -1;
    memcpy(e->tmp, path, n);
    memcpy(e->tmp + n, ".tmp", 5);
    const int fd = open(e->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        e->err = errno;
        return -1; /* nothing to remove */
    }
    const size_t half = len / 2;
    if (write_all_(fd, buf, half) != 0) return fail_(e, "write", fd);
    if (flags & IO_ATOMIC_CKPT_HOOKS) dlfs_hook_ckpt_write(); /* a writer dying half-way through the file */
    if (write_all_(fd, (const char *)buf + half, len - half) != 0) return fail_(e, "write", fd);
    /* the bytes must be on disk before the rename makes them "the" file */
    if (fsync(fd) != 0) return fail_(e, "fsync", fd);
    if (close(fd) != 0) return fail_(e, "close", -1);
    if (rename(e->tmp, path) != 0) return fail_(e, "rename", -1);
    sync_dir_(path); /* make the rename itself durable */
    return 0;
}

void io_atomic_err_free(struct io_atomic_err *e)
{
    free(e->tmp);
    e->tmp = NULL;
}
