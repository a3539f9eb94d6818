/* libFuzzer target: the option parser (dlfs_options_parse, public API only) on an
 * argv made from the input split at NUL bytes (argv[0] = "dlfs-train"). */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include "dlfs/train.h"

#define MAX_ARGS 64

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *buf = malloc(size + 1);
    char *argv[MAX_ARGS + 2];
    if (!buf) return 0;
    memcpy(buf, data, size);
    buf[size] = '\0';
    int argc = 0;
    argv[argc++] = "dlfs-train";
    for (char *p = buf; p < buf + size && argc <= MAX_ARGS; p += strlen(p) + 1) argv[argc++] = p;
    argv[argc] = NULL;
    struct dlfs_options o;
    bool exit_now = false;
    dlfs_error_clear();
    /* rank 1: --help and --version print nothing (rank 0 prints them) */
    if (dlfs_options_parse(&o, argc, argv, 1, &exit_now) != DLFS_OK && !dlfs_error_msg()[0]) __builtin_trap();
    free(buf);
    return 0;
}
