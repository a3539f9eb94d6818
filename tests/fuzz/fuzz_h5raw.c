/* libFuzzer target, run by hand (launch/fuzz --raw), not in CI: the dataset and
 * checkpoint readers on raw, damaged HDF5 images. It exercises HDF5's own parser
 * of damaged files (libhdf5 1.10 crashes or loops on some: tests/fuzz/README.md),
 * which fuzz_dataset and fuzz_ckpt keep well-formed on purpose. */
#include <stddef.h>
#include <stdint.h>
#include "dlfs/checkpoint.h"
#include "dlfs/dataset.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct dlfs_dataset ds;
    struct dlfs_ckpt c;
    dlfs_error_clear();
    if (dlfs_dataset_load_image(data, size, "fuzz.h5", &ds) == DLFS_OK) dlfs_dataset_free(&ds);
    dlfs_error_clear();
    if (dlfs_ckpt_load_image(data, size, "fuzz-ckpt.h5", &c, NULL) == DLFS_OK) dlfs_ckpt_free(&c);
    return 0;
}
