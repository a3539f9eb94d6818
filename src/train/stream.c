/* The window cache of a streamed train split (--data-cache, train/batcher.h).
 *
 * The epoch's order is the windowed shuffle (dlfs_sampler_windowed): windows of
 * G chunks of K samples, the chunks being the HDF5 chunks of the file. The cache
 * has 2G slots of one chunk each, so that it holds two windows: the batch being
 * assembled needs at most two (every window but the last has more than B - 1
 * samples, which the set-up checks), and while a batch needs only window w the
 * free slots take the first chunks of window w + 1 (a few per batch: enough to
 * have the whole window by the time the batches reach it; in the epoch's last window, the
next epoch's first window, whose order the batcher computes ahead). Chunks are read by
 * whoever assembles the batch: the prefetch thread, or the main thread when the
 * thread is off or missed; never both at once (the prefetch protocol). Which
 * samples a slot holds never changes their bytes, so the batches are exactly the
 * in-memory ones. */
#define _POSIX_C_SOURCE 200809L
#include <stdlib.h>
#include <string.h>
#include "dlfs/util.h"
#include "train/batcher.h"

#define NONE_ UINT32_MAX

enum dlfs_status dlfs_stream_init(struct dlfs_stream *s, const struct dlfs_split *split, size_t dim, size_t K,
                                  size_t G, int global_batch)
{
    memset(s, 0, sizeof *s);
    s->split = split;
    s->dim = dim;
    s->K = K;
    s->G = G;
    s->nchunks = (split->n + K - 1) / K;
    /* chunks a step consumes, and one more: the next window is complete in time */
    s->readahead = ((size_t)global_batch + K - 1) / K + 1;
    s->pos = dlfs_malloc(s->nchunks * sizeof *s->pos);
    s->slot_of = dlfs_malloc(s->nchunks * sizeof *s->slot_of);
    s->chunk_in = dlfs_malloc(2 * G * sizeof *s->chunk_in);
    s->ahead = dlfs_calloc(2 * G, 1);
    for (size_t c = 0; c < s->nchunks; c++) s->slot_of[c] = NONE_;
    for (size_t i = 0; i < 2 * G; i++) s->chunk_in[i] = NONE_;
    if (!(s->mem = malloc(2 * G * K * dim)))
        return dlfs_error_set(DLFS_ERR_NOMEM, "--data-cache: cannot allocate the %.1f MiB of the window cache",
                              (double)(2 * G * K * dim) / 1048576.0);
    return DLFS_OK;
}

void dlfs_stream_free(struct dlfs_stream *s)
{
    free(s->pos);
    free(s->slot_of);
    free(s->chunk_in);
    free(s->ahead);
    free(s->mem);
    memset(s, 0, sizeof *s);
}

void dlfs_stream_epoch(struct dlfs_stream *s, const uint32_t *order, const uint32_t *next)
{
    for (size_t k = 0; k < s->nchunks; k++) s->pos[order[k]] = (uint32_t)k;
    s->order = order;
    s->next = next;
    memset(s->ahead, 0, 2 * s->G); /* what was read for this epoch is its window 0 now */
}

static size_t window_(const struct dlfs_stream *s, uint32_t chunk) { return s->pos[chunk] / s->G; }

/* A slot whose chunk (if any) lies outside windows [lo, hi]; NONE_ when none. */
static size_t free_slot_(const struct dlfs_stream *s, size_t lo, size_t hi)
{
    for (size_t slot = 0; slot < 2 * s->G; slot++) {
        const uint32_t c = s->chunk_in[slot];
        if (c == NONE_ || (!s->ahead[slot] && (window_(s, c) < lo || window_(s, c) > hi))) return slot;
    }
    return NONE_;
}

/* Chunk c into a slot not holding a chunk of windows [lo, hi] (preferably not
 * one read ahead for window hi + 1 either). */
static enum dlfs_status load_(struct dlfs_stream *s, uint32_t c, size_t lo, size_t hi)
{
    size_t slot = free_slot_(s, lo, hi + 1);
    if (slot == NONE_) slot = free_slot_(s, lo, hi);
    DLFS_ASSERT(slot != NONE_); /* [lo, hi] spans at most two windows of G chunks */
    if (s->chunk_in[slot] != NONE_) s->slot_of[s->chunk_in[slot]] = NONE_;
    s->chunk_in[slot] = NONE_;
    const size_t r0 = (size_t)c * s->K, rows = r0 + s->K < s->split->n ? s->K : s->split->n - r0;
    DLFS_TRY(dlfs_split_read(s->split, r0, rows, s->dim, s->mem + slot * s->K * s->dim));
    s->chunk_in[slot] = c;
    s->slot_of[c] = (uint32_t)slot;
    s->ahead[slot] = 0;
    s->reads++;
    return DLFS_OK;
}

/* The chunks of window w, at most `max` of them not yet held, read. */
static enum dlfs_status window_load_(struct dlfs_stream *s, size_t w, size_t lo, size_t hi, size_t max)
{
    const size_t k1 = (w + 1) * s->G < s->nchunks ? (w + 1) * s->G : s->nchunks;
    for (size_t k = w * s->G; k < k1 && max; k++)
        if (s->slot_of[s->order[k]] == NONE_) {
            DLFS_TRY(load_(s, s->order[k], lo, hi));
            max--;
        }
    return DLFS_OK;
}

/* In the epoch's last window: the next epoch's window 0 (chunks next[0..G)), a few per
 * batch, into slots marked `ahead` (kept until the epoch changes). */
static enum dlfs_status next_epoch_(struct dlfs_stream *s, size_t lo)
{
    size_t max = s->readahead;
    for (size_t k = 0; k < s->G && k < s->nchunks && max; k++) {
        const uint32_t c = s->next[k];
        if (s->slot_of[c] != NONE_) { /* held already: keep it */
            s->ahead[s->slot_of[c]] = 1;
            continue;
        }
        if (free_slot_(s, lo, lo) == NONE_) break; /* the cache is full */
        DLFS_TRY(load_(s, c, lo, lo));
        s->ahead[s->slot_of[c]] = 1;
        max--;
    }
    return DLFS_OK;
}

enum dlfs_status dlfs_stream_need(struct dlfs_stream *s, const uint32_t *idx, int rows)
{
    size_t lo = (size_t)-1, hi = 0;
    for (int i = 0; i < rows; i++) {
        const size_t w = window_(s, (uint32_t)(idx[i] / s->K));
        lo = w < lo ? w : lo;
        hi = w > hi ? w : hi;
    }
    if (rows <= 0) return DLFS_OK;
    DLFS_ASSERT(hi - lo <= 1);
    for (size_t w = lo; w <= hi; w++) DLFS_TRY(window_load_(s, w, lo, hi, (size_t)-1));
    const size_t nwin = (s->nchunks + s->G - 1) / s->G;
    if (hi == lo && hi + 1 < nwin) DLFS_TRY(window_load_(s, hi + 1, lo, hi + 1, s->readahead));
    if (hi == lo && hi + 1 == nwin && s->next) DLFS_TRY(next_epoch_(s, lo));
    return DLFS_OK;
}

const uint8_t *dlfs_stream_row(const struct dlfs_stream *s, uint32_t sample)
{
    const uint32_t slot = s->slot_of[sample / s->K];
    DLFS_ASSERT(slot != NONE_);
    return s->mem + ((size_t)slot * s->K + sample % s->K) * s->dim;
}
