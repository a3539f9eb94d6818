/* libFuzzer target: the IDX reader (plain and gzip) on bytes in memory. */
#include <stddef.h>
#include <stdint.h>
#include "dlfs/dataset.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct dlfs_idx idx;
    dlfs_error_clear();
    if (dlfs_idx_read_mem(data, size, "fuzz.idx", &idx) == DLFS_OK) {
        /* what the reader promises: 1..4 dims, their product in bytes, all readable */
        uint64_t n = 1, sum = 0;
        if (idx.ndim < 1 || idx.ndim > 4) __builtin_trap();
        for (int i = 0; i < idx.ndim; i++) n *= idx.dims[i];
        for (uint64_t i = 0; i < n; i++) sum += idx.data[i];
        if (n > DLFS_IDX_MAX_BYTES || sum > 255 * n) __builtin_trap();
    } else if (idx.data || !dlfs_error_msg()[0]) {
        __builtin_trap(); /* a failure frees everything and says why */
    }
    dlfs_idx_free(&idx);
    return 0;
}
