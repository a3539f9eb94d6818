/* Reading the rows of a split, from memory or from the file they stay in
 * (src/data/split-file.h): the images of a dataset file as they are stored, the
 * windows of a token file built from the ids of their span. */
#define _POSIX_C_SOURCE 200809L
#include "dlfs/dataset.h"

#include <stdlib.h>
#include <string.h>
#include "data/split-file.h"
#include "dlfs/util.h"

void dlfs_split_file_close(struct dlfs_split_file *sf)
{
    if (!sf) return;
    h5_close(sf->img), h5_close(sf->f);
    free(sf->path), free(sf);
}

/* Windows [row0, row0 + rows): their ids [row0*ctx, (row0 + rows)*ctx] read at once
 * (consecutive windows share one id), each checked, laid out as rows of ctx + 1. */
static enum dlfs_status windows_read_(const struct dlfs_split_file *sf, size_t row0, size_t rows, uint8_t *out)
{
    const size_t ctx = (size_t)sf->ctx, n = rows * ctx + 1, row = ctx + 1;
    uint16_t *ids = malloc(n * sizeof *ids);
    if (!ids) return dlfs_error_set(DLFS_ERR_NOMEM, "%s: out of memory reading /train/tokens", sf->path);
    hsize_t start = (hsize_t)(row0 * ctx), count = n;
    hid_t fs = H5Dget_space(sf->img), ms = H5Screate_simple(1, &count, NULL);
    const int ok = fs >= 0 && ms >= 0 && H5Sselect_hyperslab(fs, H5S_SELECT_SET, &start, NULL, &count, NULL) >= 0 &&
                   H5Dread(sf->img, H5T_NATIVE_UINT16, ms, fs, H5P_DEFAULT, ids) >= 0;
    h5_close(ms), h5_close(fs);
    size_t bad = n;
    for (size_t i = 0; ok && i < n && bad == n; i++)
        if (ids[i] >= sf->vocab) bad = i;
    enum dlfs_status st = DLFS_OK;
    if (!ok)
        st = dlfs_error_set(DLFS_ERR_IO, "%s: cannot read tokens %llu..%llu of /train/tokens (the file changed or is "
                            "damaged, or the disk failed); re-create it with 'dlfs-data text'", sf->path,
                            (unsigned long long)start, (unsigned long long)(start + n - 1));
    else if (bad < n)
        st = dlfs_error_set(DLFS_ERR_FORMAT, "%s: token id %u at /train/tokens[%llu] is not below vocab_size %d; "
                            "re-create it with 'dlfs-data text'", sf->path, ids[bad],
                            (unsigned long long)(start + bad), sf->vocab);
    uint16_t *wide = (uint16_t *)(void *)out; /* the window cache's rows: malloc'ed, even sizes */
    for (size_t k = 0; st == DLFS_OK && k < rows; k++)
        for (size_t j = 0; j < row; j++) {
            if (sf->esz == 2) wide[k * row + j] = ids[k * ctx + j];
            else out[k * row + j] = (uint8_t)ids[k * ctx + j];
        }
    free(ids);
    return st;
}

enum dlfs_status dlfs_split_read(const struct dlfs_split *s, size_t row0, size_t rows, size_t row_bytes,
                                 uint8_t *out)
{
    DLFS_ASSERT(row0 + rows <= s->n);
    if (s->images) {
        memcpy(out, s->images + row0 * row_bytes, rows * row_bytes);
        return DLFS_OK;
    }
    const struct dlfs_split_file *sf = s->file;
    h5_silence(); /* a thread-safe HDF5 keeps one error stack per thread: the prefetch thread's too */
    if (sf->ctx) return windows_read_(sf, row0, rows, out);
    if (h5_read_u8_rows(sf->img, 4, sf->dims, row0, rows, out) < 0)
        return dlfs_error_set(DLFS_ERR_IO, "%s: cannot read samples %zu..%zu of /train/images (the file changed or "
                              "is damaged, or the disk failed); re-create it with 'dlfs-data convert'", sf->path,
                              row0, row0 + rows - 1);
    return DLFS_OK;
}
