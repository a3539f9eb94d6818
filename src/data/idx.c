/* IDX reader (the MNIST family format): 0x00 0x00 TYPE NDIM, NDIM big-endian
 * uint32 dimensions, then prod(dims) elements.
 *
 * zlib's gz* functions read gzip and plain files alike (a file without the gzip
 * magic is passed through), so one code path serves both. We open the file
 * ourselves and hand the descriptor to gzdopen() so that "cannot open" reports
 * the real errno and a directory is rejected before zlib sees it.
 */
#define _POSIX_C_SOURCE 200809L
#include "dlfs/dataset.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#define IDX_TYPE_UBYTE 0x08
/* Refuse absurd sizes before allocating: the largest public IDX sets are far
 * below this, and a corrupt header must not make us try to malloc 2^64 bytes. */
#define IDX_MAX_BYTES ((uint64_t)4 << 30)
/* gzread() takes an unsigned and returns an int: read in pieces below INT_MAX. */
#define IDX_READ_PIECE (1u << 30)

/* Read up to `want` bytes. Returns the count read (< want only at end of input)
 * or -1 on a read/decompression error. */
static int64_t idx_read_fully(gzFile gz, uint8_t *buf, uint64_t want)
{
    uint64_t got = 0;
    while (got < want) {
        uint64_t left = want - got;
        unsigned piece = left > IDX_READ_PIECE ? IDX_READ_PIECE : (unsigned)left;
        int r = gzread(gz, buf + got, piece);
        if (r < 0) return -1;
        if (r == 0) break;
        got += (uint64_t)r;
    }
    return (int64_t)got;
}

/* The zlib error after a read, turned into our status and one message.
 * Z_BUF_ERROR means the input ended in the middle of a gzip stream. */
static enum dlfs_status idx_gz_error(gzFile gz, const char *path)
{
    int err = Z_OK;
    const char *zmsg = gzerror(gz, &err);
    if (err == Z_ERRNO)
        return dlfs_error_set(DLFS_ERR_IO, "cannot read IDX file %s: %s", path, strerror(errno));
    if (err == Z_BUF_ERROR)
        return dlfs_error_set(DLFS_ERR_FORMAT,
                              "%s is truncated: the gzip stream ends early; download the file again",
                              path);
    /* zlib prefixes the "path" it was given, "<fd:N>" after gzdopen: drop it. */
    const char *colon = zmsg ? strstr(zmsg, ": ") : NULL;
    if (zmsg && zmsg[0] == '<' && colon) zmsg = colon + 2;
    return dlfs_error_set(DLFS_ERR_FORMAT,
                          "%s is corrupt (gzip error: %s); download the file again", path,
                          zmsg && *zmsg ? zmsg : "unknown");
}

/* True when zlib saw the input end inside a gzip stream (short read, no -1). */
static int idx_gz_truncated(gzFile gz)
{
    int err = Z_OK;
    gzerror(gz, &err);
    return err == Z_BUF_ERROR;
}

static enum dlfs_status idx_parse(gzFile gz, const char *path, struct dlfs_idx *idx)
{
    uint8_t head[4 + 4 * 4];
    int64_t got = idx_read_fully(gz, head, 4);
    if (got < 0) return idx_gz_error(gz, path);
    if (got < 4) {
        if (idx_gz_truncated(gz)) return idx_gz_error(gz, path);
        return dlfs_error_set(DLFS_ERR_FORMAT,
                              "%s is not an IDX file: it has only %lld bytes (the header needs 4); "
                              "check that it is an MNIST-style idx file", path, (long long)got);
    }
    if (head[0] != 0 || head[1] != 0)
        return dlfs_error_set(DLFS_ERR_FORMAT,
                              "%s is not an IDX file (magic bytes %02x %02x %02x %02x, expected "
                              "00 00 08 0N); give an MNIST-style idx file, gzipped or plain",
                              path, head[0], head[1], head[2], head[3]);
    if (head[2] != IDX_TYPE_UBYTE)
        return dlfs_error_set(DLFS_ERR_FORMAT,
                              "unsupported IDX element type 0x%02x in %s (only 0x08 = unsigned "
                              "byte is supported); convert the data to uint8 first",
                              head[2], path);
    int ndim = head[3];
    if (ndim < 1 || ndim > 4)
        return dlfs_error_set(DLFS_ERR_FORMAT,
                              "%s: IDX header says %d dimensions, only 1 to 4 are supported",
                              path, ndim);

    got = idx_read_fully(gz, head + 4, 4u * (unsigned)ndim);
    if (got < 0) return idx_gz_error(gz, path);
    if (got < 4 * ndim) {
        if (idx_gz_truncated(gz)) return idx_gz_error(gz, path);
        return dlfs_error_set(DLFS_ERR_FORMAT,
                              "%s is truncated: the IDX header needs %d bytes, found %lld; "
                              "download the file again", path, 4 + 4 * ndim, (long long)(4 + got));
    }

    uint64_t total = 1;
    for (int i = 0; i < ndim; i++) {
        const uint8_t *b = head + 4 + 4 * i;
        uint32_t d = (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
        if (d == 0)
            return dlfs_error_set(DLFS_ERR_FORMAT, "%s: IDX dimension %d is 0; the file is empty "
                                  "or damaged", path, i);
        idx->dims[i] = d;
        total *= d;  /* cannot overflow: checked against IDX_MAX_BYTES (< 2^33) each step */
        if (total >= IDX_MAX_BYTES)
            return dlfs_error_set(DLFS_ERR_FORMAT, "%s: the IDX dimensions describe 4 GiB or "
                                  "more of data, more than this reader accepts; the header is "
                                  "probably damaged", path);
    }
    idx->ndim = ndim;

    idx->data = malloc(total ? total : 1);
    if (!idx->data)
        return dlfs_error_set(DLFS_ERR_NOMEM, "%s: cannot allocate %llu bytes for the IDX data",
                              path, (unsigned long long)total);
    got = idx_read_fully(gz, idx->data, total);
    if (got < 0) return idx_gz_error(gz, path);
    if ((uint64_t)got < total)
        return dlfs_error_set(DLFS_ERR_FORMAT,
                              "%s is truncated: expected %llu bytes of data, found %lld%s; "
                              "download the file again", path, (unsigned long long)total,
                              (long long)got,
                              idx_gz_truncated(gz) ? " (the gzip stream ends early)" : "");
    /* Extra bytes mean the header does not describe the data: refuse rather than guess. */
    uint8_t extra;
    got = idx_read_fully(gz, &extra, 1);
    if (got < 0) return idx_gz_error(gz, path);
    if (got > 0)
        return dlfs_error_set(DLFS_ERR_FORMAT,
                              "%s has trailing data after the %llu bytes its IDX header "
                              "describes; the header or the file is damaged",
                              path, (unsigned long long)total);
    /* All data present but the gzip trailer (CRC, length) missing. */
    if (idx_gz_truncated(gz)) return idx_gz_error(gz, path);
    return DLFS_OK;
}

enum dlfs_status dlfs_idx_read(const char *path, struct dlfs_idx *idx)
{
    memset(idx, 0, sizeof *idx);
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return dlfs_error_set(DLFS_ERR_IO, "cannot open IDX file %s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return dlfs_error_set(DLFS_ERR_IO, "cannot read IDX file %s: %s", path, strerror(e));
    }
    if (S_ISDIR(st.st_mode)) {
        close(fd);
        return dlfs_error_set(DLFS_ERR_IO, "cannot read IDX file %s: it is a directory; give "
                              "the path of the file itself", path);
    }
    gzFile gz = gzdopen(fd, "rb");  /* owns fd from here on, closes it in gzclose */
    if (!gz) {
        close(fd);
        return dlfs_error_set(DLFS_ERR_NOMEM, "cannot read IDX file %s: out of memory", path);
    }
    enum dlfs_status s = idx_parse(gz, path, idx);
    gzclose(gz);
    if (s != DLFS_OK) dlfs_idx_free(idx);
    return s;
}

void dlfs_idx_free(struct dlfs_idx *idx)
{
    if (!idx) return;
    free(idx->data);
    memset(idx, 0, sizeof *idx);
}
