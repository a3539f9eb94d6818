/* A train split whose samples stay in their file (private to src/data): the
 * images of a dataset file (dlfs_dataset_open) or the windows of a token file
 * (dlfs_tokens_open + dlfs_tokens_dataset_open), read a few rows at a time by
 * dlfs_split_read (split-read.c). */
#ifndef DLFS_DATA_SPLIT_FILE_H
#define DLFS_DATA_SPLIT_FILE_H

#include <stddef.h>
#include "io/h5.h"

struct dlfs_split_file {
    hid_t f, img;     /* the open file and dataset (/train/images, or /train/tokens) */
    hsize_t dims[4];  /* its dimensions (a token file: dims[0] ids) */
    char *path;
    /* a token file's windows (ctx 0: images): window k = ids [k*ctx, k*ctx + ctx], each
     * id checked against vocab as it is read, stored as esz bytes (1: the id as a byte,
     * 2: a host-order uint16), as dlfs_tokens_dataset stores them */
    int ctx, vocab, esz;
};

/* Close the file and free sf (NULL: nothing). */
void dlfs_split_file_close(struct dlfs_split_file *sf);

#endif
