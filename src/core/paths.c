/* Path helpers: "is this output one of my inputs?" and path-length checks made
 * before anything is created. */
#define _POSIX_C_SOURCE 200809L
#include <limits.h>
#include <string.h>
#include <sys/stat.h>
#include "dlfs/status.h"
#include "dlfs/util.h"

bool dlfs_path_same(const char *a, const char *b)
{
    struct stat sa, sb;
    if (!a || !b || stat(a, &sa) != 0 || stat(b, &sb) != 0) return false;
    /* stat follows symbolic links: a link to an input, a hard link to it and the
     * input under another spelling ("./x", "d/../x") all share device and inode */
    return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
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
