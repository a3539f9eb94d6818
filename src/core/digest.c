/* The parameter digest users and tests compare (params_sha256): SHA-256 of the
 * float32 values as little-endian bytes, in slab order. */
#include <string.h>
#include "dlfs/util.h"

void dlfs_sha256_update_f32le(struct dlfs_sha256 *s, const float *v, size_t n)
{
    const uint32_t probe = 1;
    if (*(const uint8_t *)&probe == 1) {
        dlfs_sha256_update(s, v, n * sizeof(float));
        return;
    }
    for (size_t i = 0; i < n; i++) { /* big-endian host: hash little-endian bytes */
        uint32_t u;
        memcpy(&u, v + i, 4);
        const uint8_t b[4] = {(uint8_t)u, (uint8_t)(u >> 8), (uint8_t)(u >> 16), (uint8_t)(u >> 24)};
        dlfs_sha256_update(s, b, 4);
    }
}

void dlfs_params_sha256(const float *params, size_t n, char hex[65])
{
    struct dlfs_sha256 s;
    uint8_t d[32];
    dlfs_sha256_init(&s);
    dlfs_sha256_update_f32le(&s, params, n);
    dlfs_sha256_final(&s, d);
    dlfs_sha256_hex(d, hex);
}
