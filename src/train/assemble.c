/* Host assembly of staged batches: rows copied out of a split, augmented. Reads
 * only its arguments, so the prefetch thread and the main thread produce the
 * same bytes. */
#define _POSIX_C_SOURCE 200809L
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "train/batcher.h"
#include "dlfs/util.h"

/* Light augmentation of one uint8 image (c, h, w) in place: shift by (dy, dx)
 * in [-crop, crop] with zero fill (= pad by `crop`, crop back at a random offset)
 * and mirror left-right with probability 1/2 — drawn from (key, sample index),
 * so every rank count sees the same images. */
static void augment_(const struct dlfs_assembly *a, uint8_t *img, uint32_t sample, uint64_t key, uint8_t *tmp)
{
    const int crop = a->crop, C = a->c, H = a->h, W = a->w;
    const uint64_t h = dlfs_hash64(key, sample);
    const int span = 2 * crop + 1;
    const int dy = crop ? (int)(h % (uint64_t)span) - crop : 0;
    const int dx = crop ? (int)((h >> 16) % (uint64_t)span) - crop : 0;
    const int flip = a->flip && ((h >> 32) & 1);
    if (!dy && !dx && !flip) return;
    memcpy(tmp, img, a->dim);
    for (int c = 0; c < C; c++)
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++) {
                const int sy = y + dy, sx0 = x + dx, sx = flip ? W - 1 - sx0 : sx0;
                const int in = sy >= 0 && sy < H && sx0 >= 0 && sx0 < W;
                img[((size_t)c * H + y) * W + x] = in ? tmp[((size_t)c * H + sy) * W + sx] : 0;
            }
}

void dlfs_assemble(const struct dlfs_assembly *a, const struct dlfs_split *split, const uint32_t *idx, int rows,
                   uint64_t aug_key, uint8_t *img, int32_t *lab)
{
    const size_t dim = a->dim;
    uint8_t *tmp = aug_key ? dlfs_malloc(dim) : NULL;
    if (!split->images) { /* streamed: the chunks of these rows into the window cache */
        const enum dlfs_status st = dlfs_stream_need(a->stream, idx, rows);
        /* in mid-run, often on the prefetch thread: cannot be agreed. Every rank reads the
         * same chunks, so all fail alike: the others wait for rank 0's line and abort */
        const double until = dlfs_now() + DLFS_STREAM_FAIL_WAIT_S;
        while (st != DLFS_OK && a->stream->rank > 0 && dlfs_now() < until) sleep(1); /* mpirun's SIGTERM: on */
        if (st != DLFS_OK) dlfs_fatal(1, "%s", dlfs_error_msg());
    }
    for (int i = 0; i < rows; i++) {
        const uint8_t *src = split->images ? split->images + (size_t)idx[i] * dim : dlfs_stream_row(a->stream, idx[i]);
        memcpy(img + i * dim, src, dim);
        lab[i] = split->labels[idx[i]];
        if (aug_key) augment_(a, img + i * dim, idx[i], aug_key, tmp);
    }
    free(tmp);
}
