/* The checkpoint directory's lock: one run at a time writes checkpoints there.
 *
 * DIR/.dlfs-lock is opened (created when missing) without following a link and
 * must be a regular file with one name (a hard link planted there to another
 * file would otherwise be truncated); rank 0 takes a POSIX record lock on it
 * (fcntl F_SETLK: also on NFS, where flock() may be local to one client) and
 * keeps it open for the whole run, so the kernel releases the lock when the
 * process ends, however it ends; a run that ends (not one that is killed) also
 * removes the file. The holder writes "pid P on host H, started T" into it, for
 * the message the next run prints. DLFS_CKPT_LOCK=off skips
 * the lock (src/README.md): for a file system without working locks, or a
 * stale lock there that outlives its holder. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "dlfs/util.h"
#include "io/ckpt-impl.h"

#define LOCK_NAME_ ".dlfs-lock"
#define OFF_HINT_ "if no other run uses the directory, set DLFS_CKPT_LOCK=off for this run"

/* What the holder wrote (printable characters only), into buf. */
static void holder_(int fd, char *buf, size_t len)
{
    char raw[256];
    const ssize_t n = pread(fd, raw, sizeof raw - 1, 0);
    size_t k = 0;
    for (ssize_t i = 0; i < n && k + 1 < len; i++)
        if (raw[i] >= 0x20 && raw[i] < 0x7f) buf[k++] = raw[i];
    buf[k] = '\0';
    if (k == 0) snprintf(buf, len, "a run that wrote nothing into the lock file yet");
}

/* "pid P on host H, started T" into the lock file (best effort: the lock is what counts). */
static void stamp_(int fd)
{
    char host[256] = "?", when[32] = "?", line[400];
    gethostname(host, sizeof host - 1);
    host[sizeof host - 1] = '\0';
    const time_t now = time(NULL);
    struct tm tmv;
    if (gmtime_r(&now, &tmv)) strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tmv);
    const int n = snprintf(line, sizeof line, "pid %ld on host %s, started %s\n", (long)getpid(), host, when);
    if (ftruncate(fd, 0) == 0 && n > 0 && pwrite(fd, line, (size_t)n, 0) == n) fsync(fd);
}

static enum dlfs_status fail_(int fd, enum dlfs_status st)
{
    close(fd);
    return st;
}

/* One try: 1 locked (*fd set), 0 the file was unlinked under us (try again), -1 refused. */
static int try_lock_(const char *dir, const char *p, int *fd_out, enum dlfs_status *st)
{
    const int fd = open(p, O_RDWR | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC, 0644);
    const int err = errno;
    if (fd < 0) {
        *st = dlfs_error_set(DLFS_ERR_IO, "--checkpoint-dir %s: cannot open its lock file %s: %s%s", dir, LOCK_NAME_,
                             strerror(err), err == ELOOP ? " (a symbolic link: remove it)" : "");
        return -1;
    }
    struct stat sb, now;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode) || sb.st_nlink != 1) {
        *st = fail_(fd, dlfs_error_set(DLFS_ERR_IO, "--checkpoint-dir %s: its lock file %s is not a regular file "
                                       "with one name (a link to another file?): remove it", dir, LOCK_NAME_));
        return -1;
    }
    struct flock fl;
    memset(&fl, 0, sizeof fl);
    fl.l_type = F_WRLCK;
    fl.l_whence = SEEK_SET;
    if (fcntl(fd, F_SETLK, &fl) == 0) {
        /* the holder before us unlinks the file as it ends (dlfs_ckpt_dir_unlock): a
         * lock on a file no longer under the name locks nothing */
        if (lstat(p, &now) != 0 || now.st_dev != sb.st_dev || now.st_ino != sb.st_ino) return close(fd), 0;
        stamp_(fd);
        *fd_out = fd;
        return 1;
    }
    const int e = errno;
    if (e == EAGAIN || e == EACCES) {
        char who[256];
        holder_(fd, who, sizeof who);
        *st = fail_(fd, dlfs_error_set(DLFS_ERR_USAGE, "--checkpoint-dir %s is in use by another run (%s): two runs "
                                       "would replace each other's checkpoints; wait for it to end or give another "
                                       "--checkpoint-dir (%s, e.g. a stale lock of a file system whose locks "
                                       "outlive their holder)", dir, who, OFF_HINT_));
        return -1;
    }
    *st = fail_(fd, dlfs_error_set(DLFS_ERR_IO, "--checkpoint-dir %s: cannot lock %s: %s (a file system without "
                                   "working locks?); %s", dir, LOCK_NAME_, strerror(e), OFF_HINT_));
    return -1;
}

static char *lock_path_(const char *dir)
{
    char *p = dlfs_malloc(strlen(dir) + sizeof LOCK_NAME_ + 1);
    sprintf(p, "%s/%s", dir, LOCK_NAME_);
    return p;
}

enum dlfs_status ckpt_dir_lock(const char *dir, int *fd_out)
{
    *fd_out = -1;
    const char *env = getenv("DLFS_CKPT_LOCK");
    if (env && strcmp(env, "off") == 0) return DLFS_OK;
    char *p = lock_path_(dir);
    enum dlfs_status st = DLFS_OK;
    int rc = 0;
    for (int k = 0; k < 8 && rc == 0; k++) rc = try_lock_(dir, p, fd_out, &st);
    free(p);
    if (rc == 0) /* unlinked under us again and again */
        st = dlfs_error_set(DLFS_ERR_IO, "--checkpoint-dir %s: its lock file %s keeps disappearing (another run "
                            "ending and starting?); try again", dir, LOCK_NAME_);
    return st;
}

void dlfs_ckpt_dir_unlock(const char *dir, int fd)
{
    if (fd < 0) return;
    /* unlinked while still locked: a run that opened it before sees it gone once it
     * gets the lock, and tries again with a new file */
    char *p = lock_path_(dir);
    struct stat a, b;
    if (fstat(fd, &a) == 0 && lstat(p, &b) == 0 && a.st_dev == b.st_dev && a.st_ino == b.st_ino) unlink(p);
    free(p);
    close(fd);
}
