/* Gradient buckets: non-blocking all-reduces started while the backward pass is
 * still running (the overlap that data-parallel training lives on). */
#include <stdlib.h>
#include "dlfs/comm.h"
#include "dlfs/util.h"

void dlfs_buckets_init(struct dlfs_buckets *b, const struct dlfs_comm *c, float *grads,
                       const size_t *boundaries, int num_boundaries, size_t n, size_t bucket_bytes)
{
    b->comm = c;
    b->grads = grads;
    b->started = 0;
    b->begin = dlfs_calloc((size_t)num_boundaries + 1, sizeof *b->begin);
    b->end = dlfs_calloc((size_t)num_boundaries + 1, sizeof *b->end);
    b->req = dlfs_calloc((size_t)num_boundaries + 1, sizeof *b->req);
    /* walk the layer boundaries from the end of the slab towards its start */
    size_t end = n;
    int count = 0;
    for (int i = num_boundaries - 1; i >= 0; i--) {
        size_t start = boundaries[i];
        if ((end - start) * sizeof(float) >= bucket_bytes || i == 0) {
            b->begin[count] = start;
            b->end[count] = end;
            count++;
            end = start;
        }
    }
    b->count = count;
    for (int i = 0; i < count; i++) b->req[i] = MPI_REQUEST_NULL;
    for (int i = 0; i < count; i++) DLFS_ASSERT(b->end[i] - b->begin[i] < ((size_t)1 << 31));
}

void dlfs_buckets_free(struct dlfs_buckets *b)
{
    free(b->begin);
    free(b->end);
    free(b->req);
    b->begin = b->end = NULL;
    b->req = NULL;
}

void dlfs_buckets_ready(struct dlfs_buckets *b, size_t off)
{
    while (b->started < b->count && b->begin[b->started] >= off) {
        int i = b->started++;
        if (b->comm->kind == DLFS_COMM_SELF) continue;
        MPI_Iallreduce(MPI_IN_PLACE, b->grads + b->begin[i], (int)(b->end[i] - b->begin[i]),
                       MPI_FLOAT, MPI_SUM, b->comm->world, &b->req[i]);
    }
}

void dlfs_buckets_poke(struct dlfs_buckets *b)
{
    if (b->comm->kind == DLFS_COMM_SELF || b->started == 0) return;
    int flag;
    MPI_Testall(b->started, b->req, &flag, MPI_STATUSES_IGNORE);
}

double dlfs_buckets_wait(struct dlfs_buckets *b)
{
    dlfs_buckets_ready(b, 0);
    double t0 = dlfs_now();
    if (b->comm->kind != DLFS_COMM_SELF) MPI_Waitall(b->count, b->req, MPI_STATUSES_IGNORE);
    b->started = 0;
    return dlfs_now() - t0;
}
