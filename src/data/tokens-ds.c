/* A token file's windows as a dataset the trainer's batcher takes as it takes
 * images: sample k of a split = window k, its ctx + 1 ids as a 1 x 1 x (ctx+1)
 * "image" of bytes, normalised to the ids themselves (mean 0, std 1/255), or,
 * for a vocabulary above 256, of uint16 ids taken as they are (ids16). The
 * epoch sampler then orders the windows as dlfs/tokens.h documents. */
#define _POSIX_C_SOURCE 200809L
#include "dlfs/tokens.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "data/split-file.h"
#include "dlfs/dataset.h"
#include "dlfs/util.h"

/* The windows of a split of n tokens: their count, within the limits. */
static enum dlfs_status windows_(size_t n, int ctx, int ids16, const char *path, const char *name, size_t *w)
{
    const size_t row = (size_t)ctx + 1, esz = ids16 ? 2 : 1;
    *w = dlfs_tokens_windows(n, ctx);
    if (*w < 1)
        return dlfs_error_set(DLFS_ERR_USAGE, "%s: /%s/tokens holds %zu tokens, too few for one window of %zu (the "
                              "model's context + 1); give more text or a model with a shorter context", path, name,
                              n, row);
    if (*w > DLFS_DATASET_MAX_N || (double)*w * (double)(row * esz) > (double)DLFS_DATASET_MAX_BYTES)
        return dlfs_error_set(DLFS_ERR_USAGE, "%s: %zu windows of /%s are more than dlfs trains on (%u windows, %llu "
                              "GiB)", path, *w, name, DLFS_DATASET_MAX_N,
                              (unsigned long long)(DLFS_DATASET_MAX_BYTES >> 30));
    return DLFS_OK;
}

/* The windows that start in one HDF5 chunk of the ids (the streamed read's unit;
 * 0 for contiguous ids: the batcher takes 1 MiB worth). */
static size_t chunk_rows_(size_t chunk, int ctx)
{
    return chunk ? (chunk > (size_t)ctx ? chunk / (size_t)ctx : 1) : 0;
}

static enum dlfs_status split_(const struct dlfs_token_split *t, int ctx, int ids16, const char *path,
                               const char *name, struct dlfs_split *s)
{
    const size_t row = (size_t)ctx + 1, esz = ids16 ? 2 : 1;
    size_t w = 0;
    DLFS_TRY(windows_(t->n, ctx, ids16, path, name, &w));
    s->images = malloc(w * row * esz);
    s->labels = calloc(w, 1);
    if (!s->images || !s->labels)
        return dlfs_error_set(DLFS_ERR_NOMEM, "%s: cannot allocate %.1f MiB for the windows of /%s", path,
                              (double)(w * row * esz) / 1048576, name);
    uint16_t *wide = (uint16_t *)(void *)s->images; /* malloc's alignment */
    for (size_t k = 0; k < w; k++)
        for (size_t j = 0; j < row; j++) {
            const uint16_t id = t->ids[k * (size_t)ctx + j];
            if (ids16) wide[k * row + j] = id;
            else s->images[k * row + j] = (uint8_t)id;
        }
    s->n = w;
    s->chunk_rows = chunk_rows_(t->chunk, ctx);
    return DLFS_OK;
}

static char *dup_(const char *s)
{
    const size_t n = strlen(s ? s : "") + 1;
    char *p = malloc(n);
    return p ? memcpy(p, s ? s : "", n) : NULL;
}

/* Everything but the splits. */
static enum dlfs_status head_(const struct dlfs_tokens *t, int ctx, struct dlfs_dataset *ds)
{
    memset(ds, 0, sizeof *ds);
    ds->ids16 = t->vocab > 256; /* byte vocabularies keep their byte windows (and bits) */
    ds->c = ds->h = 1, ds->w = ctx + 1;
    ds->mean[0] = 0.0, ds->std[0] = 1.0 / 255.0; /* normalised = the id itself */
    ds->num_classes = t->vocab;
    enum dlfs_status st = (ds->classes = calloc((size_t)t->vocab, sizeof *ds->classes)) ? DLFS_OK : DLFS_ERR_NOMEM;
    for (int i = 0; st == DLFS_OK && i < t->vocab; i++) {
        char name[16];
        snprintf(name, sizeof name, "%d", i);
        if (!(ds->classes[i] = dup_(name))) st = DLFS_ERR_NOMEM;
    }
    if (st == DLFS_OK && (!(ds->path = dup_(t->path)) || !(ds->source = dup_(t->source)) ||
                          !(ds->license = dup_(t->license))))
        st = DLFS_ERR_NOMEM;
    return st == DLFS_OK ? DLFS_OK : dlfs_error_set(DLFS_ERR_NOMEM, "%s: out of memory", t->path);
}

enum dlfs_status dlfs_tokens_dataset(const struct dlfs_tokens *t, int ctx, struct dlfs_dataset *ds)
{
    enum dlfs_status st = head_(t, ctx, ds);
    if (st == DLFS_OK) st = split_(&t->train, ctx, ds->ids16, t->path, "train", &ds->train);
    if (st == DLFS_OK) st = split_(&t->val, ctx, ds->ids16, t->path, "val", &ds->test);
    if (st != DLFS_OK) dlfs_dataset_free(ds);
    return st;
}

#define TOK_READ_WINDOWS ((size_t)1 << 16) /* windows per read of a split read whole */

/* The train windows left in t's file: moved into ds->train, then read whole when
 * they take at most stream_bytes. */
static enum dlfs_status train_file_(struct dlfs_tokens *t, int ctx, uint64_t stream_bytes, struct dlfs_dataset *ds)
{
    const size_t row = (size_t)ctx + 1, esz = ds->ids16 ? 2 : 1;
    size_t w = 0;
    DLFS_TRY(windows_(t->train.n, ctx, ds->ids16, t->path, "train", &w));
    if (!(ds->train.labels = calloc(w, 1)))
        return dlfs_error_set(DLFS_ERR_NOMEM, "%s: cannot allocate %.1f MiB for the windows' labels of /train",
                              t->path, (double)w / 1048576);
    ds->train.n = w;
    ds->train.chunk_rows = chunk_rows_(t->train.chunk, ctx);
    ds->train.file = t->train_file;
    t->train_file = NULL;
    ds->train.file->ctx = ctx, ds->train.file->vocab = t->vocab, ds->train.file->esz = (int)esz;
    if ((uint64_t)w * row * esz > stream_bytes) return DLFS_OK; /* streamed */
    uint8_t *img = malloc(w * row * esz);
    if (!img)
        return dlfs_error_set(DLFS_ERR_NOMEM, "%s: cannot allocate %.1f MiB for the windows of /train", t->path,
                              (double)(w * row * esz) / 1048576);
    for (size_t r = 0; r < w; r += TOK_READ_WINDOWS) {
        const enum dlfs_status st = dlfs_split_read(&ds->train, r, w - r < TOK_READ_WINDOWS ? w - r : TOK_READ_WINDOWS,
                                                    row * esz, img + r * row * esz);
        if (st != DLFS_OK) return free(img), st;
    }
    ds->train.images = img;
    return DLFS_OK;
}

enum dlfs_status dlfs_tokens_dataset_open(struct dlfs_tokens *t, int ctx, uint64_t stream_bytes,
                                          struct dlfs_dataset *ds)
{
    DLFS_ASSERT(t->train_file && !t->train.ids);
    enum dlfs_status st = head_(t, ctx, ds);
    if (st == DLFS_OK) st = split_(&t->val, ctx, ds->ids16, t->path, "val", &ds->test);
    if (st == DLFS_OK) st = train_file_(t, ctx, stream_bytes, ds);
    if (st != DLFS_OK) dlfs_dataset_free(ds);
    return st;
}
