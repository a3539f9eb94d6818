/* IDX reader (the MNIST family format): 0x00 0x00 TYPE NDIM, NDIM big-endian
 * uint32 dimensions, then prod(dims) elements; plain or gzip (told apart by the
 * gzip magic, not by the name).
 *
 * Sizes are checked before anything is allocated: every dimension >= 1, the
 * item (one image: the product of the dimensions after the first) at most
 * DLFS_IDX_MAX_ITEM values, the whole at most DLFS_IDX_MAX_BYTES. A plain file
 * must hold exactly the bytes its header declares (its size says so before we
 * read). A gzip file's uncompressed size is known only by reading it: the buffer
 * grows with the data actually inflated, so a small file that declares a lot
 * cannot make us allocate a lot. gzip is inflated here with zlib's inflate (not
 * gzread, which accepts a stream that stops before its CRC/length trailer): every
 * member must end with a valid trailer; concatenated members (`cat a.gz b.gz`,
 * what gunzip accepts) are read as one stream; anything after the last member
 * that is not another gzip member is refused as trailing data. */
#define _POSIX_C_SOURCE 200809L
#include "dlfs/dataset.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>
#include "core/checked.h"
#include "io/io.h"

#define IDX_TYPE_UBYTE 0x08
#define IDX_IN_BUF (64u << 10)
#define IDX_FIRST_ALLOC ((size_t)16 << 20) /* gzip: the buffer starts here and doubles */

/* The raw bytes (a descriptor or memory) and, for gzip, the inflate state. */
struct src_ {
    const char *path;
    int fd;                      /* -1: memory */
    const uint8_t *mem;
    size_t mem_left;
    uint64_t file_size;          /* plain files: to check the declared size first */
    int gz, raw_eof, in_member;  /* in_member: inside a gzip member (its end not seen) */
    z_stream z;
    uint8_t in[IDX_IN_BUF];
};

/* More raw input into the inflate buffer, keeping what is unread. -1: read error. */
static int refill_(struct src_ *s)
{
    if (s->raw_eof) return 0;
    if (s->fd < 0) { /* memory: the unread bytes stay contiguous, hand over more of them */
        if (s->z.avail_in == 0) s->z.next_in = (Bytef *)s->mem;
        const size_t k = s->mem_left > (1u << 30) ? (1u << 30) : s->mem_left;
        s->z.avail_in += (uInt)k;
        s->mem += k;
        s->mem_left -= k;
        s->raw_eof = s->mem_left == 0;
        return 0;
    }
    memmove(s->in, s->z.next_in, s->z.avail_in);
    s->z.next_in = s->in;
    for (;;) {
        const ssize_t r = read(s->fd, s->in + s->z.avail_in, IDX_IN_BUF - s->z.avail_in);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) return dlfs_error_set(DLFS_ERR_IO, "cannot read IDX file %s: %s", s->path, strerror(errno)), -1;
        if (r == 0) s->raw_eof = 1;
        s->z.avail_in += (uInt)r;
        return 0;
    }
}

static int gz_error_(struct src_ *s, int zr)
{
    if (zr == Z_MEM_ERROR)
        dlfs_error_set(DLFS_ERR_NOMEM, "cannot read IDX file %s: out of memory for zlib", s->path);
    else
        dlfs_error_set(DLFS_ERR_FORMAT, "%s is corrupt (gzip error: %s); download the file again", s->path,
                       s->z.msg ? s->z.msg : "invalid data");
    return -1;
}

/* After a member's end: another member follows (0), clean end (1), garbage (-1). */
static int next_member_(struct src_ *s)
{
    while (s->z.avail_in < 2 && !s->raw_eof)
        if (refill_(s) < 0) return -1;
    if (s->z.avail_in == 0) return 1;
    if (s->z.avail_in < 2 || s->z.next_in[0] != 0x1f || s->z.next_in[1] != 0x8b) {
        dlfs_error_set(DLFS_ERR_FORMAT, "%s has trailing data after its gzip stream; the file is damaged: "
                       "download it again", s->path);
        return -1;
    }
    if (inflateReset(&s->z) != Z_OK) return gz_error_(s, Z_STREAM_ERROR);
    s->in_member = 1;
    return 0;
}

/* Inflate up to `want` bytes. Returns the count (< want only at the end of the
 * input; s->in_member then says whether it ended inside a member) or -1. */
static int64_t gz_read_(struct src_ *s, uint8_t *out, size_t want)
{
    s->z.next_out = out;
    size_t done = 0;
    while (done < want) {
        if (!s->in_member) {
            const int r = next_member_(s);
            if (r < 0) return -1;
            if (r > 0) break;
        }
        if (s->z.avail_in == 0 && refill_(s) < 0) return -1;
        if (s->z.avail_in == 0) break; /* the input ended inside a member */
        const size_t piece = want - done > (1u << 30) ? (1u << 30) : want - done;
        s->z.avail_out = (uInt)piece;
        const uInt in_before = s->z.avail_in;
        const int zr = inflate(&s->z, Z_NO_FLUSH);
        done += piece - s->z.avail_out;
        if (zr == Z_STREAM_END) s->in_member = 0;
        else if (zr != Z_OK && zr != Z_BUF_ERROR) return gz_error_(s, zr);
        else if (s->z.avail_out == piece && s->z.avail_in == in_before) return gz_error_(s, Z_DATA_ERROR);
    }
    return (int64_t)done;
}

static int64_t src_read_(struct src_ *s, uint8_t *out, size_t want)
{
    if (s->gz) return gz_read_(s, out, want);
    size_t done = 0;
    while (done < want) { /* plain: the buffered bytes first, then big reads go straight to `out` */
        if (s->z.avail_in == 0 && s->fd >= 0 && want - done >= IDX_IN_BUF && !s->raw_eof) {
            if (io_read_full(s->fd, out + done, want - done) == 0) return (int64_t)want;
            if (errno) return dlfs_error_set(DLFS_ERR_IO, "cannot read IDX file %s: %s", s->path, strerror(errno)), -1;
            s->raw_eof = 1; /* shorter than declared: the caller checked the size first */
            break;
        }
        if (s->z.avail_in == 0 && refill_(s) < 0) return -1;
        if (s->z.avail_in == 0) break;
        const size_t k = s->z.avail_in < want - done ? s->z.avail_in : want - done;
        memcpy(out + done, s->z.next_in, k);
        s->z.next_in += k, s->z.avail_in -= (uInt)k, done += k;
    }
    return (int64_t)done;
}

/* Look at the first bytes: gzip magic -> inflate from here on. */
static enum dlfs_status src_start_(struct src_ *s)
{
    s->z.next_in = s->in;
    while (s->z.avail_in < 2 && !s->raw_eof)
        if (refill_(s) < 0) return DLFS_ERR_IO;
    s->gz = s->z.avail_in >= 2 && s->z.next_in[0] == 0x1f && s->z.next_in[1] == 0x8b;
    if (!s->gz) return DLFS_OK;
    const int zr = inflateInit2(&s->z, 16 + MAX_WBITS); /* gzip wrapper only, CRC and length checked */
    if (zr != Z_OK) return gz_error_(s, zr), DLFS_ERR_NOMEM;
    s->in_member = 1;
    return DLFS_OK;
}

static enum dlfs_status truncated_(const struct src_ *s, uint64_t want, int64_t got, const char *what)
{
    return dlfs_error_set(DLFS_ERR_FORMAT, "%s is truncated: %s %llu bytes, found %lld%s; download the file again",
                          s->path, what, (unsigned long long)want, (long long)got,
                          s->gz && s->in_member ? " (the gzip stream ends early)" : "");
}

/* The 4-byte magic and the dimensions; sizes checked against the limits. */
static enum dlfs_status header_(struct src_ *s, struct dlfs_idx *idx, uint64_t *total)
{
    uint8_t head[4 + 4 * 4];
    int64_t got = src_read_(s, head, 4);
    if (got < 0) return DLFS_ERR_FORMAT;
    if (got < 4) {
        if (s->gz && s->in_member) return truncated_(s, 4, got, "the IDX header needs at least");
        return dlfs_error_set(DLFS_ERR_FORMAT, "%s is not an IDX file: it has only %lld bytes (the header needs 4); "
                              "check that it is an MNIST-style idx file", s->path, (long long)got);
    }
    if (head[0] != 0 || head[1] != 0)
        return dlfs_error_set(DLFS_ERR_FORMAT, "%s is not an IDX file (magic bytes %02x %02x %02x %02x, expected "
                              "00 00 08 0N); give an MNIST-style idx file, gzipped or plain",
                              s->path, head[0], head[1], head[2], head[3]);
    if (head[2] != IDX_TYPE_UBYTE)
        return dlfs_error_set(DLFS_ERR_FORMAT, "unsupported IDX element type 0x%02x in %s (only 0x08 = unsigned "
                              "byte is supported); convert the data to uint8 first", head[2], s->path);
    const int ndim = head[3];
    if (ndim < 1 || ndim > 4)
        return dlfs_error_set(DLFS_ERR_FORMAT, "%s: IDX header says %d dimensions, only 1 to 4 are supported",
                              s->path, ndim);
    got = src_read_(s, head + 4, 4 * (size_t)ndim);
    if (got < 0) return DLFS_ERR_FORMAT;
    if (got < 4 * ndim)
        return dlfs_error_set(DLFS_ERR_FORMAT, "%s is truncated: the IDX header needs %d bytes, found %lld; "
                              "download the file again", s->path, 4 + 4 * ndim, (long long)(4 + got));
    uint64_t d[4];
    for (int i = 0; i < ndim; i++) {
        const uint8_t *b = head + 4 + 4 * i;
        d[i] = (uint64_t)b[0] << 24 | (uint64_t)b[1] << 16 | (uint64_t)b[2] << 8 | b[3];
        if (d[i] == 0)
            return dlfs_error_set(DLFS_ERR_FORMAT, "%s: IDX dimension %d is 0; the file is empty or damaged",
                                  s->path, i);
        idx->dims[i] = (uint32_t)d[i];
    }
    uint64_t item;
    if (dlfs_prod_exceeds(d + 1, ndim - 1, DLFS_IDX_MAX_ITEM, &item))
        return dlfs_error_set(DLFS_ERR_FORMAT, "%s: the IDX header declares items of more than %d values each "
                              "(dimensions after the first); dlfs reads images of at most %d values: the header "
                              "is damaged or the data is not images", s->path, DLFS_IDX_MAX_ITEM, DLFS_IDX_MAX_ITEM);
    if (dlfs_mul_overflow_u64(d[0], item, total) || *total > DLFS_IDX_MAX_BYTES)
        return dlfs_error_set(DLFS_ERR_FORMAT, "%s: the IDX dimensions describe 4 GiB or more of data, more than "
                              "this reader accepts (datasets/README.md, limits); the header is probably damaged",
                              s->path);
    idx->ndim = ndim;
    return DLFS_OK;
}

/* The data: a plain file's size is checked before allocating; gzip grows the
 * buffer with what it inflates. */
static enum dlfs_status data_(struct src_ *s, struct dlfs_idx *idx, uint64_t total, uint64_t header)
{
    if (!s->gz && s->file_size != header + total) {
        if (s->file_size > header + total)
            return dlfs_error_set(DLFS_ERR_FORMAT, "%s has trailing data after the %llu bytes its IDX header "
                                  "describes; the header or the file is damaged", s->path, (unsigned long long)total);
        return dlfs_error_set(DLFS_ERR_FORMAT, "%s is truncated: expected %llu bytes of data, found %llu; download "
                              "the file again", s->path, (unsigned long long)total,
                              (unsigned long long)(s->file_size - header));
    }
    size_t cap = s->gz && total > IDX_FIRST_ALLOC ? IDX_FIRST_ALLOC : (size_t)total, got = 0;
    for (;;) {
        uint8_t *p = realloc(idx->data, cap ? cap : 1);
        if (!p)
            return dlfs_error_set(DLFS_ERR_NOMEM, "%s: cannot allocate %zu bytes for its IDX data (%llu in all)",
                                  s->path, cap, (unsigned long long)total);
        idx->data = p;
        const int64_t r = src_read_(s, idx->data + got, cap - got);
        if (r < 0) return DLFS_ERR_FORMAT;
        got += (size_t)r;
        if (got < cap || cap == total) break;
        cap = (uint64_t)cap * 2 > total ? (size_t)total : cap * 2;
    }
    if (got < total)
        return dlfs_error_set(DLFS_ERR_FORMAT, "%s is truncated: expected %llu bytes of data, found %zu%s; download "
                              "the file again", s->path, (unsigned long long)total, got,
                              s->in_member ? " (the gzip stream ends early)" : "");
    uint8_t extra;
    const int64_t r = src_read_(s, &extra, 1);
    if (r < 0) return DLFS_ERR_FORMAT;
    if (r > 0)
        return dlfs_error_set(DLFS_ERR_FORMAT, "%s has trailing data after the %llu bytes its IDX header describes; "
                              "the header or the file is damaged", s->path, (unsigned long long)total);
    if (s->gz && s->in_member) /* all the data, but not the member's end and its CRC/length trailer */
        return dlfs_error_set(DLFS_ERR_FORMAT, "%s is truncated: the gzip stream ends early (its end or its CRC "
                              "and length trailer is missing); download the file again", s->path);
    return DLFS_OK;
}

static enum dlfs_status read_(struct src_ *s, struct dlfs_idx *idx)
{
    memset(idx, 0, sizeof *idx);
    uint64_t total = 0;
    enum dlfs_status st = src_start_(s);
    if (st == DLFS_OK) st = header_(s, idx, &total);
    if (st == DLFS_OK) st = data_(s, idx, total, 4 + 4 * (uint64_t)idx->ndim);
    if (s->gz) inflateEnd(&s->z);
    if (st != DLFS_OK) dlfs_idx_free(idx);
    return st;
}

enum dlfs_status dlfs_idx_read(const char *path, struct dlfs_idx *idx)
{
    memset(idx, 0, sizeof *idx);
    struct src_ *s = calloc(1, sizeof *s);
    if (!s) return dlfs_error_set(DLFS_ERR_NOMEM, "cannot read IDX file %s: out of memory", path);
    s->path = path;
    enum dlfs_status st = io_open_regular(path, "IDX file", &s->fd, &s->file_size);
    if (st == DLFS_OK) {
        st = read_(s, idx);
        close(s->fd);
    }
    free(s);
    return st;
}

enum dlfs_status dlfs_idx_read_mem(const void *buf, size_t len, const char *name, struct dlfs_idx *idx)
{
    memset(idx, 0, sizeof *idx);
    struct src_ *s = calloc(1, sizeof *s);
    if (!s) return dlfs_error_set(DLFS_ERR_NOMEM, "cannot read IDX data %s: out of memory", name);
    s->path = name, s->fd = -1, s->mem = buf, s->mem_left = len, s->file_size = len, s->raw_eof = len == 0;
    const enum dlfs_status st = read_(s, idx);
    free(s);
    return st;
}

void dlfs_idx_free(struct dlfs_idx *idx)
{
    if (!idx) return;
    free(idx->data);
    memset(idx, 0, sizeof *idx);
}
