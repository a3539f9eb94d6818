/* Opening only regular files, and creating directories under checked paths. */
#define _POSIX_C_SOURCE 200809L
#include "io/io.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "dlfs/util.h"

static const char *kind_(mode_t m)
{
    if (S_ISDIR(m)) return "a directory";
    if (S_ISFIFO(m)) return "a FIFO (named pipe)";
    if (S_ISSOCK(m)) return "a socket";
    if (S_ISCHR(m)) return "a character device";
    if (S_ISBLK(m)) return "a block device";
    return "not a regular file";
}

static enum dlfs_status not_regular_(const char *path, const char *what, mode_t m)
{
    return dlfs_error_set(DLFS_ERR_IO, "cannot read %s %s: it is %s, not a regular file; give the path of "
                          "the file itself", what, path, kind_(m));
}

enum dlfs_status io_open_regular(const char *path, const char *what, int *fd, uint64_t *size)
{
    *fd = -1;
    /* O_NONBLOCK: opening a FIFO must not wait for a writer; O_NOCTTY: a terminal
     * device given as a file must not become our controlling terminal */
    int f = open(path, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
    if (f < 0) {
        const int e = errno;
        struct stat sb; /* a socket cannot be opened at all: say what it is */
        if (e == ENXIO && stat(path, &sb) == 0) return not_regular_(path, what, sb.st_mode);
        return dlfs_error_set(DLFS_ERR_IO, "cannot open %s %s: %s", what, path, strerror(e));
    }
    struct stat sb;
    if (fstat(f, &sb) != 0) {
        const int e = errno;
        close(f);
        return dlfs_error_set(DLFS_ERR_IO, "cannot read %s %s: %s", what, path, strerror(e));
    }
    if (!S_ISREG(sb.st_mode)) {
        close(f);
        return not_regular_(path, what, sb.st_mode);
    }
    const int fl = fcntl(f, F_GETFL);
    if (fl < 0 || fcntl(f, F_SETFL, fl & ~O_NONBLOCK) < 0) {
        const int e = errno;
        close(f);
        return dlfs_error_set(DLFS_ERR_IO, "cannot read %s %s: %s", what, path, strerror(e));
    }
    *fd = f;
    *size = (uint64_t)sb.st_size;
    return DLFS_OK;
}

enum dlfs_status io_check_regular(const char *path, const char *what, uint64_t *size)
{
    int fd;
    DLFS_TRY(io_open_regular(path, what, &fd, size));
    close(fd);
    return DLFS_OK;
}

int io_read_full(int fd, void *buf, size_t n)
{
    char *p = buf;
    while (n > 0) {
        const ssize_t r = read(fd, p, n > ((size_t)1 << 30) ? (size_t)1 << 30 : n);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) return -1;
        if (r == 0) {
            errno = 0; /* the file ended early */
            return -1;
        }
        p += r;
        n -= (size_t)r;
    }
    return 0;
}

enum dlfs_status io_mkdirs(const char *what, const char *dir, size_t extra)
{
    DLFS_TRY(dlfs_path_check(what, dir, extra));
    const size_t len = strlen(dir);
    char *tmp = malloc(len + 1);
    if (!tmp) return dlfs_error_set(DLFS_ERR_NOMEM, "%s %s: out of memory", what, dir);
    memcpy(tmp, dir, len + 1);
    /* parents first; the first that cannot be made ends the walk, and the final
     * mkdir reports why (an existing parent may refuse mkdir with EACCES) */
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        const int bad = mkdir(tmp, 0777) != 0 && errno != EEXIST;
        *p = '/';
        if (bad) break;
    }
    const int err = mkdir(tmp, 0777) != 0 && errno != EEXIST ? errno : 0;
    free(tmp);
    struct stat st;
    if (err) return dlfs_error_set(DLFS_ERR_IO, "%s %s: cannot create the directory: %s", what, dir, strerror(err));
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
        return dlfs_error_set(DLFS_ERR_IO, "%s %s: not a directory", what, dir);
    return DLFS_OK;
}
