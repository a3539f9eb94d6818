/* Checked size arithmetic (header-only, private to the library and its tests).
 *
 * Every size that comes from a file (IDX dimensions, dataset shapes, checkpoint
 * counts) is multiplied with these: they report overflow instead of wrapping,
 * and the caller turns that into one message naming the file. */
#ifndef DLFS_CORE_CHECKED_H
#define DLFS_CORE_CHECKED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* *r = a * b; true when the product does not fit (then *r is unspecified). */
static inline bool dlfs_mul_overflow(size_t a, size_t b, size_t *r)
{
    return __builtin_mul_overflow(a, b, r);
}

static inline bool dlfs_mul_overflow_u64(uint64_t a, uint64_t b, uint64_t *r)
{
    return __builtin_mul_overflow(a, b, r);
}

/* *r = a + b; true on overflow. */
static inline bool dlfs_add_overflow(size_t a, size_t b, size_t *r)
{
    return __builtin_add_overflow(a, b, r);
}

/* Product of n values, true when it overflows or exceeds `limit` (then *r is
 * unspecified). An empty product is 1. */
static inline bool dlfs_prod_exceeds(const uint64_t *v, int n, uint64_t limit, uint64_t *r)
{
    uint64_t p = 1;
    for (int i = 0; i < n; i++)
        if (dlfs_mul_overflow_u64(p, v[i], &p) || p > limit) return true;
    *r = p;
    return false;
}

#endif
