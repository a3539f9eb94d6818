/* Gradient buckets: non-blocking all-reduces started while the backward pass is
 * still running (the overlap that data-parallel training lives on). Three ways a
 * bucket travels (comm.h): MPI on host memory, MPI on a pinned host copy of
 * device memory, NCCL on device memory. */
#include <stdio.h>
#include <stdlib.h>
#include "dlfs/comm.h"
#include "dlfs/util.h"

void dlfs_buckets_init(struct dlfs_buckets *b, const struct dlfs_comm *c, float *grads,
                       const size_t *boundaries, int num_boundaries, size_t n, size_t bucket_bytes)
{
    b->comm = c;
    b->grads = grads;
    b->started = 0;
    b->path = DLFS_COMM_PATH_MPI;
    b->be = NULL;
    b->host = NULL;
    b->n = n;
    b->sent = 0;
    b->begin = dlfs_calloc((size_t)num_boundaries + 1, sizeof *b->begin);
    b->end = dlfs_calloc((size_t)num_boundaries + 1, sizeof *b->end);
    b->req = dlfs_calloc((size_t)num_boundaries + 1, sizeof *b->req);
    /* walk the layer boundaries from the end of the slab towards its start */
    size_t end = n;
    int count = 0;
    for (int i = num_boundaries - 1; i >= 0; i--) {
        size_t start = boundaries[i];
        /* never an empty bucket: layers without parameters repeat a boundary, and
         * with a small bucket_bytes each would cost a reduction (and a staging slot) */
        if (end > start && ((end - start) * sizeof(float) >= bucket_bytes || i == 0)) {
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

enum dlfs_status dlfs_buckets_use(struct dlfs_buckets *b, enum dlfs_comm_path path,
                                  const struct dlfs_backend *be)
{
    DLFS_ASSERT(path == DLFS_COMM_PATH_MPI || path == DLFS_COMM_PATH_NCCL);
    b->path = path;
    /* MPI on device memory: stage. One rank has nothing to sum, so nothing to stage. */
    if (path != DLFS_COMM_PATH_MPI || be->host_memory || b->comm->kind == DLFS_COMM_SELF) return DLFS_OK;
    DLFS_ASSERT_MSG(be->pinned_alloc && be->pinned_free && be->stage_to_host && be->stage_test,
                    "a device backend without staging entries");
    if (b->count > DLFS_STAGE_SLOTS) /* one staging slot per bucket: a user error, not an assertion */
        return dlfs_error_set(DLFS_ERR_USAGE, "%d gradient buckets, but staging them for MPI (--comm mpi on a GPU) "
                              "takes at most %d: use a larger --bucket-mb, or --comm nccl", b->count,
                              DLFS_STAGE_SLOTS);
    if (!(b->host = be->pinned_alloc(b->n * sizeof(float))))
        return dlfs_error_set(DLFS_ERR_NOMEM, "out of pinned host memory for the %zu gradients staged for MPI "
                              "(--comm mpi); use --comm nccl, or a smaller model", b->n);
    b->be = be;
    return DLFS_OK;
}

void dlfs_buckets_free(struct dlfs_buckets *b)
{
    if (b->host) b->be->pinned_free(b->host);
    free(b->begin);
    free(b->end);
    free(b->req);
    b->begin = b->end = NULL;
    b->req = NULL;
    b->host = NULL;
}

static void iallreduce_(struct dlfs_buckets *b, float *base, int i)
{
    MPI_Iallreduce(MPI_IN_PLACE, base + b->begin[i], (int)(b->end[i] - b->begin[i]), MPI_FLOAT, MPI_SUM,
                   b->comm->world, &b->req[i]);
}

void dlfs_buckets_ready(struct dlfs_buckets *b, size_t off)
{
    while (b->started < b->count && b->begin[b->started] >= off) {
        int i = b->started++;
        const size_t len = b->end[i] - b->begin[i];
        if (b->path == DLFS_COMM_PATH_NCCL) /* also on one rank: the path the test runs is the real one */
            dlfs_comm_nccl_allreduce(b->grads + b->begin[i], len);
        else if (b->comm->kind == DLFS_COMM_SELF)
            continue;
        else if (b->host) /* MPI starts once the copy is done (poke, wait) */
            b->be->stage_to_host(b->host + b->begin[i], b->grads + b->begin[i], len * sizeof(float), i);
        else
            iallreduce_(b, b->grads, i);
    }
}

/* Staged buckets: start MPI on every copy that has landed (in order: the copies
 * run in order on one stream). With `wait`, on all of them. */
static void send_staged_(struct dlfs_buckets *b, bool wait)
{
    while (b->sent < b->started && b->be->stage_test(b->sent, wait)) {
        iallreduce_(b, b->host, b->sent);
        b->sent++;
    }
}

void dlfs_buckets_poke(struct dlfs_buckets *b)
{
    if (b->path == DLFS_COMM_PATH_NCCL || b->comm->kind == DLFS_COMM_SELF || b->started == 0) return;
    if (b->host) send_staged_(b, false);
    const int open = b->host ? b->sent : b->started;
    int flag;
    if (open) MPI_Testall(open, b->req, &flag, MPI_STATUSES_IGNORE);
}

double dlfs_buckets_wait(struct dlfs_buckets *b)
{
    dlfs_buckets_ready(b, 0);
    double t0 = dlfs_now();
    if (b->path == DLFS_COMM_PATH_NCCL) {
        dlfs_comm_nccl_wait(b->comm);
    } else if (b->comm->kind != DLFS_COMM_SELF) {
        char what[96];
        snprintf(what, sizeof what, "the gradient all-reduce (MPI, %d bucket%s)", b->count, b->count > 1 ? "s" : "");
        if (b->host) send_staged_(b, true);
        dlfs_comm_wait(b->comm, b->count, b->req, what);
        if (b->host && b->count) { /* the sums back to the device, before the optimizer */
            const size_t lo = b->begin[b->count - 1], hi = b->end[0];
            b->be->to_device(b->grads + lo, b->host + lo, (hi - lo) * sizeof(float));
            b->sent = 0;
        }
    }
    b->started = 0;
    return dlfs_now() - t0;
}
