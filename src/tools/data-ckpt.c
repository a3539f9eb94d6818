/* dlfs-data ckpt-merge SHARDED -o FILE: one single-file checkpoint (today's format,
 * include/dlfs/checkpoint.h) from a sharded one, for inspection and for PyTorch.
 * The sharded checkpoint is verified in full (every shard's digest, the manifest's
 * state digest) before a byte is written; FILE is written atomically. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include "dlfs/checkpoint.h"
#include "tools/dlfs-data.h"

int dlfs_data_ckpt_merge(int argc, char **argv)
{
    const char *in = NULL, *out = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-o") && i + 1 < argc) out = argv[++i];
        else if (argv[i][0] != '-' && !in) in = argv[i];
        else in = out = NULL, i = argc;
    }
    if (!in || !out) {
        fprintf(stderr, "dlfs-data: ckpt-merge takes one sharded checkpoint (a ckpt-<step>.d directory) and -o "
                "FILE\n");
        return 2;
    }
    struct stat sb;
    if (stat(in, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
        fprintf(stderr, "dlfs-data: ckpt-merge: %s is not a sharded checkpoint (a ckpt-<step>.d directory written "
                "with --ckpt-sharded); a single-file checkpoint needs no merging\n", in);
        return 1;
    }
    if (lstat(out, &sb) == 0) {
        fprintf(stderr, "dlfs-data: ckpt-merge: %s exists; remove it or choose another -o\n", out);
        return 1;
    }
    struct dlfs_ckpt c;
    struct dlfs_model m;
    enum dlfs_status st = dlfs_ckpt_load_checked(in, &c, NULL);
    if (st == DLFS_OK && (st = dlfs_model_parse(c.model_spec, &m)) == DLFS_OK) {
        st = dlfs_ckpt_write_file(out, &c, &m);
        dlfs_model_free(&m);
    }
    if (st != DLFS_OK) {
        fprintf(stderr, "dlfs-data: ckpt-merge: %s\n", dlfs_error_msg());
        dlfs_ckpt_free(&c);
        return 1;
    }
    printf("%s: step %ld, %zu parameters, the optimizer state of %d shards in one file\n", out, c.step,
           c.num_params, c.shards);
    dlfs_ckpt_free(&c);
    return 0;
}
