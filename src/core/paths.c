/* Path helpers: "is this output one of my inputs?" and path-length checks made
 * before anything is created. */
#define _XOPEN_SOURCE 700 /* realpath */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include "dlfs/status.h"
#include "dlfs/util.h"

/* dirname of p (malloc'ed; "." without a slash, "/" for "/x"). */
static char *dir_of_(const char *p)
{
    const char *slash = strrchr(p, '/');
    return slash ? strndup(p, slash == p ? 1 : (size_t)(slash - p)) : strdup(".");
}

char *dlfs_path_resolve(const char *path)
{
    if (!path || !*path) return NULL;
    char *real = realpath(path, NULL);
    if (real) return real;
    /* not there (yet): follow dangling links by hand (40 at most, as the kernel),
     * then the parent's real path and the last name */
    char *p = strdup(path);
    struct stat sb;
    for (int hops = 0; p && hops < 40 && lstat(p, &sb) == 0 && S_ISLNK(sb.st_mode); hops++) {
        char target[PATH_MAX];
        const ssize_t n = readlink(p, target, sizeof target - 1);
        if (n <= 0) break;
        target[n] = '\0';
        char *next = NULL;
        if (target[0] == '/') {
            next = strdup(target);
        } else {
            char *d = dir_of_(p);
            const size_t len = d ? strlen(d) + (size_t)n + 2 : 0;
            if (d && (next = malloc(len))) snprintf(next, len, "%s/%s", d, target);
            free(d);
        }
        free(p);
        p = next;
    }
    if (!p) return NULL;
    char *d = dir_of_(p);
    const char *slash = strrchr(p, '/'), *base = slash ? slash + 1 : p;
    char *rd = d ? realpath(d, NULL) : NULL;
    char *out = NULL;
    if (rd) {
        const size_t len = strlen(rd) + strlen(base) + 2;
        if ((out = malloc(len))) snprintf(out, len, "%s%s%s", rd, strcmp(rd, "/") == 0 ? "" : "/", base);
    }
    free(rd);
    free(d);
    if (!out) return p; /* the parent is not there either: compare as given */
    free(p);
    return out;
}

bool dlfs_path_same(const char *a, const char *b)
{
    struct stat sa, sb;
    if (!a || !b) return false;
    /* stat follows symbolic links: a link to an input, a hard link to it and the
     * input under another spelling ("./x", "d/../x") all share device and inode */
    if (stat(a, &sa) == 0 && stat(b, &sb) == 0) return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
    /* one or both not there yet (two outputs, a file the run will create): the
     * same resolved path is the same file once written */
    char *ra = dlfs_path_resolve(a), *rb = dlfs_path_resolve(b);
    const bool same = ra && rb && strcmp(ra, rb) == 0;
    free(ra);
    free(rb);
    return same;
}

const char *dlfs_path_short(const char *path, char *buf, size_t len)
{
    const size_t n = strlen(path);
    if (n < len || len < 16) return path;
    static const char cut[] = "[...]";
    const size_t keep = len - sizeof cut, head = keep / 2, tail = keep - head;
    memcpy(buf, path, head);
    memcpy(buf + head, cut, sizeof cut - 1);
    memcpy(buf + head + sizeof cut - 1, path + n - tail, tail);
    buf[len - 1] = '\0';
    return buf;
}

enum dlfs_status dlfs_path_check(const char *what, const char *path, size_t extra)
{
    const size_t len = strlen(path);
    char brief[200];
    if (len == 0) return dlfs_error_set(DLFS_ERR_USAGE, "%s: the path is empty", what);
    if (len + extra >= PATH_MAX)
        return dlfs_error_set(DLFS_ERR_USAGE, "%s %s: the path is %zu characters long; paths here must stay "
                              "below %d (PATH_MAX%s); choose a shorter one", what,
                              dlfs_path_short(path, brief, sizeof brief), len, PATH_MAX - (int)extra,
                              extra ? ", less room for the file names written inside" : "");
    size_t comp = 0;
    for (const char *p = path;; p++) {
        if (*p == '/' || *p == '\0') {
            if (comp > NAME_MAX)
                return dlfs_error_set(DLFS_ERR_USAGE, "%s %s: a path component is %zu characters long; the "
                                      "system allows %d (NAME_MAX); choose a shorter name", what,
                                      dlfs_path_short(path, brief, sizeof brief), comp, NAME_MAX);
            comp = 0;
            if (!*p) break;
        } else {
            comp++;
        }
    }
    return DLFS_OK;
}
