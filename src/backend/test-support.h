/* Test support of the backend layer: entries the tests need and the program never
 * calls, kept out of the public headers (include/dlfs/). Defined in geom.c. */
#ifndef DLFS_BACKEND_TEST_SUPPORT_H
#define DLFS_BACKEND_TEST_SUPPORT_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Unfold at most `floats` at once in the conv ops (0 restores the defaults: 4 Mi
 * floats, or a backend's own), so that small cases run through several chunks and
 * backends compared bit for bit chunk alike. Not thread-safe. */
void dlfs_conv_set_col_budget(size_t floats);

#ifdef __cplusplus
}
#endif

#endif
