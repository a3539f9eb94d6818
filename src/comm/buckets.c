/* Gradient buckets: the layout of the slab, and the schedule that starts each
 * bucket's sum as soon as the backward pass has finished it (the overlap that
 * data-parallel training lives on). How a bucket travels is its transport's
 * business (transport.c, nccl.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/trace.h"
#include "dlfs/comm.h"
#include "dlfs/util.h"

/* Walk the layer boundaries from the end of the slab towards its start. */
static int layout_(struct dlfs_buckets *b, const size_t *boundaries, int nb, size_t bucket_bytes)
{
    size_t end = b->n;
    int count = 0;
    for (int i = nb - 1; i >= 0; i--) {
        const size_t start = boundaries[i];
        /* never an empty bucket: layers without parameters repeat a boundary, and
         * with a small bucket_bytes each would cost a reduction (and a staging slot) */
        if (end > start && ((end - start) * sizeof(float) >= bucket_bytes || i == 0)) {
            b->begin[count] = start;
            b->end[count] = end;
            count++;
            end = start;
        }
    }
    return count;
}

enum dlfs_status dlfs_buckets_init(struct dlfs_buckets *b, const struct dlfs_comm *c, const struct dlfs_backend *be,
                                   float *grads, const size_t *boundaries, int num_boundaries, size_t n,
                                   size_t bucket_bytes, const struct dlfs_transport_ops *tp, void *arg)
{
    memset(b, 0, sizeof *b);
    b->comm = c;
    b->be = be;
    b->grads = grads;
    b->n = n;
    b->tp = tp ? tp : &dlfs_transport_mpi_host;
    b->begin = dlfs_calloc((size_t)num_boundaries + 1, sizeof *b->begin);
    b->end = dlfs_calloc((size_t)num_boundaries + 1, sizeof *b->end);
    b->t_start = dlfs_calloc((size_t)num_boundaries + 1, sizeof *b->t_start);
    const size_t zero = 0;
    const bool whole = b->tp->flags & DLFS_TP_DETERMINISTIC;
    b->count = whole ? layout_(b, &zero, 1, 0) /* the whole slab */
                     : layout_(b, boundaries, num_boundaries, bucket_bytes);
    for (int i = 0; i < b->count; i++) {
        DLFS_ASSERT(whole || b->end[i] - b->begin[i] < ((size_t)1 << 31));
    }
    return b->tp->open(b, arg);
}

void dlfs_buckets_free(struct dlfs_buckets *b)
{
    if (b->tp && b->tp->free) b->tp->free(b);
    free(b->begin);
    free(b->end);
    free(b->t_start);
    memset(b, 0, sizeof *b);
}

void dlfs_buckets_ready(struct dlfs_buckets *b, size_t off)
{
    while (b->started < b->count && b->begin[b->started] >= off) {
        if (dlfs_trace_on) b->t_start[b->started] = dlfs_now();
        b->tp->start(b, b->started++);
    }
}

/* Timelines: bucket i's span, from its start to `t` (when its end was seen). */
static void span_(struct dlfs_buckets *b, int i, double t)
{
    if (!b->t_start[i]) return;
    dlfs_trace_span(DLFS_TRACK_BUCKET + i, "comm", b->zero ? "reduce-scatter" : "all-reduce", i, b->t_start[i], t);
    b->t_start[i] = 0;
}

void dlfs_buckets_poke(struct dlfs_buckets *b)
{
    if (b->started && b->tp->progress) b->tp->progress(b);
    for (int i = 0; dlfs_trace_on && b->tp->test && i < b->started; i++)
        if (b->t_start[i] && b->tp->test(b, i)) span_(b, i, dlfs_now());
}

void dlfs_buckets_shard(const struct dlfs_buckets *b, int rank, struct dlfs_shard *out)
{
    const int P = b->comm->size;
    out->seg = dlfs_calloc(2 * (size_t)b->count + 1, sizeof *out->seg);
    out->count = 0;
    out->total = 0;
    if (!b->zero || P == 1) {
        out->seg[out->count++] = (struct dlfs_seg){0, b->n, false};
    } else if (b->tp->flags & DLFS_TP_DETERMINISTIC) {
        size_t lo, hi;
        dlfs_comm_det_segment(P, rank, b->n, &lo, &hi);
        out->seg[out->count++] = (struct dlfs_seg){lo, hi - lo, false};
    } else {
        for (int i = b->count - 1; i >= 0; i--) { /* slab order: bucket 0 is the tail */
            const size_t len = b->end[i] - b->begin[i], q = len / (size_t)P;
            if (q) out->seg[out->count++] = (struct dlfs_seg){b->begin[i] + (size_t)rank * q, q, false};
            if (len % (size_t)P) out->seg[out->count++] = (struct dlfs_seg){b->begin[i] + (size_t)P * q, len % P, true};
        }
    }
    for (int i = 0; i < out->count; i++) out->total += out->seg[i].len;
}

void dlfs_buckets_gather(struct dlfs_buckets *b, float *params)
{
    if (b->zero && b->comm->kind != DLFS_COMM_SELF) b->tp->gather(b, params);
}

double dlfs_buckets_wait(struct dlfs_buckets *b)
{
    dlfs_buckets_ready(b, 0);
    const double t0 = dlfs_now();
    b->tp->wait(b);
    const double t1 = dlfs_now();
    for (int i = 0; i < b->started; i++) span_(b, i, t1);
    b->started = 0;
    return t1 - t0;
}
