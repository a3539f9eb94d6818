/* Test helpers: write IDX files (plain or gzip), good or deliberately broken.
 * Header-only (static functions) so both the unit test and the generator use it. */
#ifndef DLFS_TEST_IDX_WRITE_H
#define DLFS_TEST_IDX_WRITE_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

/* Deterministic pseudo-random bytes (so compression and chunking see real data). */
static inline void tw_fill(uint8_t *buf, size_t n, uint32_t seed)
{
    uint32_t x = seed * 2654435761u + 12345u;
    for (size_t i = 0; i < n; i++) {
        x = x * 1664525u + 1013904223u;
        buf[i] = (uint8_t)(x >> 24);
    }
}

/* Write raw bytes, gzip-compressed when gz != 0. Returns 0 on success. */
static inline int tw_write_raw(const char *path, int gz, const void *bytes, size_t n)
{
    if (gz) {
        gzFile g = gzopen(path, "wb6");
        if (!g) return -1;
        int ok = n == 0 || gzwrite(g, bytes, (unsigned)n) == (int)n;
        return gzclose(g) == Z_OK && ok ? 0 : -1;
    }
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    int ok = fwrite(bytes, 1, n, f) == n;
    return fclose(f) == 0 && ok ? 0 : -1;
}

/* IDX header (type, ndim, dims) followed by `nbytes` of `data`; pass nbytes
 * different from prod(dims) to make a truncated or over-long file. */
static inline int tw_write_idx(const char *path, int gz, uint8_t type, int ndim,
                               const uint32_t *dims, const uint8_t *data, size_t nbytes)
{
    size_t head = 4 + 4 * (size_t)ndim;
    uint8_t *buf = malloc(head + nbytes + 1);
    if (!buf) return -1;
    buf[0] = 0, buf[1] = 0, buf[2] = type, buf[3] = (uint8_t)ndim;
    for (int i = 0; i < ndim; i++) {
        buf[4 + 4 * i] = (uint8_t)(dims[i] >> 24), buf[5 + 4 * i] = (uint8_t)(dims[i] >> 16);
        buf[6 + 4 * i] = (uint8_t)(dims[i] >> 8), buf[7 + 4 * i] = (uint8_t)dims[i];
    }
    if (nbytes) memcpy(buf + head, data, nbytes);
    int rc = tw_write_raw(path, gz, buf, head + nbytes);
    free(buf);
    return rc;
}

#endif
