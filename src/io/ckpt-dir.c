/* The checkpoint directory: listing, latest, the newest that verifies, pruning,
 * the lineage check (rollback), the directory check, run ids. */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "dlfs/util.h"
#include "io/ckpt-impl.h"
#include "io/io.h"

/* A growing text (one line per note); silently stops growing without memory. */
static void note_(char **text, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void note_(char **text, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    const int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    const size_t old = *text ? strlen(*text) : 0;
    char *p = n >= 0 ? realloc(*text, old + (size_t)n + 2) : NULL;
    if (!p) return;
    va_start(ap, fmt);
    vsnprintf(p + old, (size_t)n + 1, fmt, ap);
    va_end(ap);
    memcpy(p + old + n, "\n", 2);
    *text = p;
}

static char *join_(const char *dir, const char *name)
{
    const size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s/%s", dir, name);
    return p;
}

static int by_step_(const void *a, const void *b)
{
    const long x = ((const struct dlfs_ckpt_entry *)a)->step, y = ((const struct dlfs_ckpt_entry *)b)->step;
    return (x > y) - (x < y);
}

/* One directory entry: a checkpoint (1), ignored with a note (0), not one (-1). */
static int entry_(const char *dir, const char *name, long *step, char **ignored)
{
    const char *why = NULL;
    const int rc = ckpt_parse_name(name, step, &why);
    if (rc == 0) note_(ignored, "ignored %s/%s: %s", dir, name, why);
    if (rc <= 0) return rc;
    char *p = join_(dir, name);
    struct stat sb;
    /* lstat: dlfs writes regular files only, so a link under a checkpoint's name is
     * someone else's (the directory may be shared): never read, pruned or moved.
     * HDF5 then opens the listed file by name; a file swapped in between must still
     * verify its digests, and who can swap it could as well write a checkpoint. */
    const int is_dir = name[strlen(name) - 1] == 'd'; /* ckpt-<step>.d: a sharded checkpoint */
    const int ok = p && lstat(p, &sb) == 0, reg = ok && (is_dir ? S_ISDIR(sb.st_mode) : S_ISREG(sb.st_mode));
    free(p);
    if (!reg) note_(ignored, "ignored %s/%s: %s", dir, name, ok && S_ISLNK(sb.st_mode) ? "a symbolic link, not a "
                    "file dlfs wrote" : is_dir ? "not a directory" : "not a regular file");
    return reg ? 1 : 0;
}

enum dlfs_status dlfs_ckpt_list(const char *dir, struct dlfs_ckpt_list *l)
{
    memset(l, 0, sizeof *l);
    DIR *d = opendir(dir);
    if (!d) {
        if (errno == ENOENT) return DLFS_OK; /* nothing saved yet */
        return dlfs_error_set(DLFS_ERR_IO, "--checkpoint-dir %s: %s", dir, strerror(errno));
    }
    size_t cap = 0;
    enum dlfs_status st = DLFS_OK;
    struct dirent *e;
    while (st == DLFS_OK && (e = readdir(d))) {
        long step;
        if (entry_(dir, e->d_name, &step, &l->ignored) != 1) continue;
        if (l->n == cap) {
            cap = cap ? 2 * cap : 16;
            struct dlfs_ckpt_entry *v = realloc(l->v, cap * sizeof *v);
            if (!v) { st = dlfs_error_set(DLFS_ERR_NOMEM, "--checkpoint-dir %s: out of memory", dir); break; }
            l->v = v;
        }
        if (!(l->v[l->n].name = strdup(e->d_name))) st = dlfs_error_set(DLFS_ERR_NOMEM, "out of memory");
        else l->v[l->n++].step = step;
    }
    closedir(d);
    if (st != DLFS_OK) dlfs_ckpt_list_free(l);
    else if (l->n) qsort(l->v, l->n, sizeof *l->v, by_step_);
    return st;
}

void dlfs_ckpt_list_free(struct dlfs_ckpt_list *l)
{
    for (size_t i = 0; i < l->n; i++) free(l->v[i].name);
    free(l->v);
    free(l->ignored);
    memset(l, 0, sizeof *l);
}

enum dlfs_status dlfs_ckpt_latest_valid(const char *dir, const struct dlfs_ckpt_expect *e, struct dlfs_ckpt *c,
                                        char **report)
{
    memset(c, 0, sizeof *c);
    *report = NULL;
    struct dlfs_ckpt_list l;
    DLFS_TRY(dlfs_ckpt_list(dir, &l));
    if (l.ignored) *report = strdup(l.ignored);
    enum dlfs_status st = DLFS_OK;
    char *first = NULL;
    for (size_t i = l.n; i-- > 0;) {
        char *p = join_(dir, l.v[i].name);
        dlfs_error_clear();
        st = p ? dlfs_ckpt_load_checked(p, c, e) : dlfs_error_set(DLFS_ERR_NOMEM, "out of memory");
        free(p);
        if (st != DLFS_ERR_FORMAT && st != DLFS_ERR_NUMERIC) break; /* found, or not a damaged file */
        note_(report, "skipped %s", dlfs_error_msg());
        if (!first) first = strdup(dlfs_error_msg());
    }
    if ((st == DLFS_ERR_FORMAT || st == DLFS_ERR_NUMERIC)) {
        dlfs_error_clear();
        st = dlfs_error_set(st, "no checkpoint in %s verifies (%zu tried; the newest: %s); resume from a file with "
                            "--resume FILE or start a new --checkpoint-dir", dir, l.n, first ? first : "?");
    }
    free(first);
    dlfs_ckpt_list_free(&l);
    return st;
}

void ckpt_remove_dir(const char *path)
{
    char *man = join_(path, "manifest.h5");
    if (man) unlink(man); /* first: from here on it is no checkpoint */
    free(man);
    DIR *d = opendir(path);
    struct dirent *e;
    while (d && (e = readdir(d)))
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) {
            char *p = join_(path, e->d_name);
            if (p) unlink(p);
            free(p);
        }
    if (d) closedir(d);
    rmdir(path);
}

void ckpt_prune(const char *dir, int keep, long step)
{
    if (keep <= 0) return;
    struct dlfs_ckpt_list l;
    if (dlfs_ckpt_list(dir, &l) != DLFS_OK) return;
    /* older than the one just written: all but the newest keep-1 of them go */
    size_t older = 0;
    while (older < l.n && l.v[older].step < step) older++;
    const size_t spare = (size_t)keep - 1;
    for (size_t i = 0; older > spare && i < older - spare; i++) {
        char *p = join_(dir, l.v[i].name);
        const size_t n = strlen(l.v[i].name);
        if (p && l.v[i].name[n - 1] == 'd') ckpt_remove_dir(p); /* a sharded checkpoint: the whole directory */
        else if (p) unlink(p);
        free(p);
    }
    dlfs_ckpt_list_free(&l);
}

/* Entries in the way of a run continuing from (resume_path, resume_step). */
static size_t in_the_way_(const char *dir, const struct dlfs_ckpt_list *l, const char *resume_path, long resume_step,
                          char *keep_flags)
{
    size_t n = 0;
    for (size_t i = 0; i < l->n; i++) {
        int way = l->v[i].step > resume_step || !resume_path;
        if (!way && l->v[i].step == resume_step) {
            char *p = join_(dir, l->v[i].name);
            way = !p || !dlfs_path_same(p, resume_path);
            free(p);
        }
        keep_flags[i] = (char)!way;
        n += (size_t)way;
    }
    return n;
}

/* DIR/abandoned-<UTC time>[-k], created; NULL (message set) on failure. */
static char *abandoned_dir_(const char *dir)
{
    char stamp[64];
    const time_t now = time(NULL);
    struct tm tmv;
    strftime(stamp, sizeof stamp, "abandoned-%Y%m%dT%H%M%SZ", gmtime_r(&now, &tmv));
    for (int k = 1; k < 100; k++) {
        char name[80];
        if (k == 1) snprintf(name, sizeof name, "%s", stamp);
        else snprintf(name, sizeof name, "%s-%d", stamp, k);
        char *p = join_(dir, name);
        if (!p) break;
        if (mkdir(p, 0777) == 0) return p;
        const int err = errno;
        free(p);
        if (err != EEXIST) {
            dlfs_error_set(DLFS_ERR_IO, "--checkpoint-dir %s: cannot create %s: %s", dir, name, strerror(err));
            return NULL;
        }
    }
    dlfs_error_set(DLFS_ERR_IO, "--checkpoint-dir %s: cannot create a directory for the abandoned checkpoints", dir);
    return NULL;
}

/* Move the entries in the way into DIR/abandoned-…/ and say so in *msg. */
static enum dlfs_status archive_(const char *dir, const struct dlfs_ckpt_list *l, const char *keep, size_t n,
                                 char **msg)
{
    char *to = abandoned_dir_(dir);
    if (!to) return DLFS_ERR_IO;
    size_t moved = 0;
    enum dlfs_status st = DLFS_OK;
    for (size_t i = 0; i < l->n && st == DLFS_OK; i++) {
        if (keep[i]) continue;
        char *src = join_(dir, l->v[i].name), *dst = join_(to, l->v[i].name);
        if (!src || !dst || rename(src, dst) != 0)
            st = dlfs_error_set(DLFS_ERR_IO, "--rollback: cannot move %s into %s: %s (%zu of %zu moved; nothing was "
                                "deleted)", l->v[i].name, to, strerror(errno), moved, n);
        else moved++;
        free(src), free(dst);
    }
    const int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) fsync(fd), close(fd);
    if (st == DLFS_OK) {
        const struct dlfs_ckpt_entry *last = &l->v[l->n - 1];
        note_(msg, "rollback: moved %zu newer checkpoint(s) (up to %s, step %ld) into %s/; nothing was deleted", moved,
              last->name, last->step, to);
    }
    free(to);
    return st;
}

enum dlfs_status dlfs_ckpt_rollback_check(const char *dir, const char *resume_path, long resume_step, int archive,
                                          char **msg)
{
    *msg = NULL;
    struct dlfs_ckpt_list l;
    DLFS_TRY(dlfs_ckpt_list(dir, &l));
    char *keep = calloc(l.n + 1, 1);
    size_t n = keep ? in_the_way_(dir, &l, resume_path, resume_step, keep) : 0;
    enum dlfs_status st = keep ? DLFS_OK : dlfs_error_set(DLFS_ERR_NOMEM, "out of memory");
    const struct dlfs_ckpt_entry *last = l.n ? &l.v[l.n - 1] : NULL;
    if (st == DLFS_OK && n && archive) {
        st = archive_(dir, &l, keep, n, msg);
    } else if (st == DLFS_OK && n && resume_path) {
        st = dlfs_error_set(DLFS_ERR_USAGE, "--resume %s goes back to step %ld, but --checkpoint-dir %s holds %zu "
                            "checkpoint(s) of another line up to %s (step %ld); to continue from step %ld add "
                            "--rollback (moves them into %s/abandoned-<UTC time>/, deletes nothing), or write to a new "
                            "--checkpoint-dir", resume_path, resume_step, dir, n, last->name, last->step, resume_step,
                            dir);
    } else if (st == DLFS_OK && n) {
        st = dlfs_error_set(DLFS_ERR_USAGE, "--checkpoint-dir %s already holds %zu checkpoint(s) of an earlier run "
                            "(newest %s); add --resume latest to continue it, --rollback to move them into "
                            "%s/abandoned-<UTC time>/ and start afresh (nothing is deleted), or give a new "
                            "--checkpoint-dir", dir, n, last->name, dir);
    }
    free(keep);
    dlfs_ckpt_list_free(&l);
    return st;
}

void dlfs_ckpt_run_id(char out[33])
{
    uint8_t b[16];
    int ok = 0;
    const int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        ok = io_read_full(fd, b, sizeof b) == 0;
        close(fd);
    }
    if (!ok) { /* no /dev/urandom: time, pid and an address are unique enough for a label */
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        const uint64_t k = dlfs_key((uint64_t)ts.tv_sec, (uint64_t)ts.tv_nsec, (uint64_t)getpid() ^ (uintptr_t)&ts);
        for (int i = 0; i < 16; i++) b[i] = (uint8_t)(dlfs_hash64(k, (uint64_t)i) >> 56);
    }
    for (int i = 0; i < 16; i++) snprintf(out + 2 * i, 3, "%02x", b[i]);
}

/* Prove DIR writable with a probe file of our own: created exclusively under a
 * name nobody holds (O_EXCL|O_NOFOLLOW: a link planted at the name is never
 * followed, the next name is tried), removed only when we created it. */
static enum dlfs_status probe_(const char *dir)
{
    int err = EEXIST;
    for (int k = 0; k < 16 && err == EEXIST; k++) {
        char probe[64];
        snprintf(probe, sizeof probe, ".dlfs-write-test.%ld.%d", (long)getpid(), k);
        char *p = join_(dir, probe);
        const int fd = p ? open(p, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600) : -1;
        err = p ? errno : ENOMEM;
        if (fd >= 0) close(fd), unlink(p);
        free(p);
        if (fd >= 0) return DLFS_OK;
    }
    return dlfs_error_set(DLFS_ERR_IO, "--checkpoint-dir %s: cannot write there: %s", dir, strerror(err));
}

enum dlfs_status dlfs_ckpt_dir_check(const char *dir, int *lock_fd)
{
    *lock_fd = -1;
    DLFS_TRY(io_mkdirs("--checkpoint-dir", dir, CKPT_NAME_ROOM));
    DLFS_TRY(probe_(dir));
    /* before anything in the directory is touched: another run's files are its own */
    DLFS_TRY(ckpt_dir_lock(dir, lock_fd));
    /* stale NAME.tmp files are what a killed writer leaves: never checkpoints
     * (unlink removes a name, a link planted there included, never its target) */
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        const size_t n = strlen(e->d_name);
        if (n > 12 && strncmp(e->d_name, "ckpt-", 5) == 0 && strcmp(e->d_name + n - 7, ".h5.tmp") == 0) {
            char *t = join_(dir, e->d_name);
            if (t) unlink(t);
            free(t);
        }
    }
    if (d) closedir(d);
    struct dlfs_ckpt_list l;
    if (dlfs_ckpt_list(dir, &l) == DLFS_OK && l.ignored) /* one line each: "ignored PATH: why" */
        for (char *line = l.ignored, *nl; (nl = strchr(line, '\n')); line = nl + 1)
            fprintf(stderr, "dlfs: warning: %.*s (it is never read, pruned or moved)\n", (int)(nl - line), line);
    dlfs_ckpt_list_free(&l);
    return DLFS_OK;
}
