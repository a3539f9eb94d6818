/* The MPI gradient transports (comm.h): host memory as it is, device memory
 * staged through pinned host memory, and the deterministic tree. */
#include <stdio.h>
#include <stdlib.h>
#include "dlfs/comm.h"
#include "dlfs/util.h"

static void iallreduce_(struct dlfs_buckets *b, float *base, int i)
{
    MPI_Iallreduce(MPI_IN_PLACE, base + b->begin[i], (int)(b->end[i] - b->begin[i]), MPI_FLOAT, MPI_SUM,
                   b->comm->world, &b->req[i]);
}

static void mpi_wait_(struct dlfs_buckets *b, int open)
{
    char what[96];
    snprintf(what, sizeof what, "the gradient all-reduce (MPI, %d bucket%s)", b->count, b->count > 1 ? "s" : "");
    dlfs_comm_wait(b->comm, open, b->req, what);
}

/* ---- mpi_host --------------------------------------------------------------------- */

static void host_start_(struct dlfs_buckets *b, int i)
{
    if (b->comm->kind != DLFS_COMM_SELF) iallreduce_(b, b->grads, i);
}

static void host_progress_(struct dlfs_buckets *b)
{
    int flag;
    if (b->comm->kind != DLFS_COMM_SELF) MPI_Testall(b->started, b->req, &flag, MPI_STATUSES_IGNORE);
}

static void host_wait_(struct dlfs_buckets *b)
{
    if (b->comm->kind != DLFS_COMM_SELF) mpi_wait_(b, b->count);
}

const struct dlfs_transport_ops dlfs_transport_mpi_host = {
    .name = "mpi", .start = host_start_, .progress = host_progress_, .wait = host_wait_,
};

/* ---- mpi_staged ------------------------------------------------------------------- */

/* One rank has nothing to sum, so nothing to stage. */
static enum dlfs_status staged_open_(struct dlfs_buckets *b)
{
    const struct dlfs_backend *be = b->be;
    if (b->comm->kind == DLFS_COMM_SELF) return DLFS_OK;
    DLFS_ASSERT_MSG(be->pinned_alloc && be->pinned_free && be->stage_to_host && be->stage_test,
                    "a device backend without staging entries");
    if (b->count > DLFS_STAGE_SLOTS) /* one staging slot per bucket: a user error, not an assertion */
        return dlfs_error_set(DLFS_ERR_USAGE, "%d gradient buckets, but staging them for MPI (--comm mpi on a GPU) "
                              "takes at most %d: use a larger --bucket-mb, or --comm nccl", b->count,
                              DLFS_STAGE_SLOTS);
    if (!(b->host = be->pinned_alloc(b->n * sizeof(float))))
        return dlfs_error_set(DLFS_ERR_NOMEM, "out of pinned host memory for the %zu gradients staged for MPI "
                              "(--comm mpi); use --comm nccl, or a smaller model", b->n);
    return DLFS_OK;
}

/* MPI starts once the copy has landed (progress, wait). */
static void staged_start_(struct dlfs_buckets *b, int i)
{
    if (b->host)
        b->be->stage_to_host(b->host + b->begin[i], b->grads + b->begin[i],
                             (b->end[i] - b->begin[i]) * sizeof(float), i);
}

/* Start MPI on every copy that has landed (in order: the copies run in order on
 * one stream). With `wait`, on all of them. */
static void send_staged_(struct dlfs_buckets *b, bool wait)
{
    while (b->sent < b->started && b->be->stage_test(b->sent, wait)) {
        iallreduce_(b, b->host, b->sent);
        b->sent++;
    }
}

static void staged_progress_(struct dlfs_buckets *b)
{
    if (!b->host) return;
    send_staged_(b, false);
    int flag;
    if (b->sent) MPI_Testall(b->sent, b->req, &flag, MPI_STATUSES_IGNORE);
}

static void staged_wait_(struct dlfs_buckets *b)
{
    if (!b->host) return;
    send_staged_(b, true);
    mpi_wait_(b, b->count);
    if (b->count) { /* the sums back to the device, before the optimizer */
        const size_t lo = b->begin[b->count - 1], hi = b->end[0];
        b->be->to_device(b->grads + lo, b->host + lo, (hi - lo) * sizeof(float));
    }
    b->sent = 0;
}

static void staged_free_(struct dlfs_buckets *b)
{
    if (b->host) b->be->pinned_free(b->host);
}

const struct dlfs_transport_ops dlfs_transport_mpi_staged = {
    .name = "mpi-staged", .open = staged_open_, .start = staged_start_, .progress = staged_progress_,
    .wait = staged_wait_, .free = staged_free_,
};

/* ---- det_tree --------------------------------------------------------------------- */

static enum dlfs_status tree_open_(struct dlfs_buckets *b)
{
    if (b->comm->kind == DLFS_COMM_SELF) return DLFS_OK;
    b->scratch = dlfs_malloc((b->n + 1) / 2 * sizeof(float));
    if (!b->be->host_memory) b->host = dlfs_malloc(b->n * sizeof(float));
    return DLFS_OK;
}

static void tree_start_(struct dlfs_buckets *b, int i) { (void)b, (void)i; }

/* The upper levels of the fixed tree, across ranks, on host memory (on host-memory
 * backends the slab itself). */
static void tree_wait_(struct dlfs_buckets *b)
{
    if (b->comm->kind == DLFS_COMM_SELF) return;
    const size_t bytes = b->n * sizeof(float);
    if (b->host) b->be->to_host(b->host, b->grads, bytes);
    dlfs_comm_allreduce_det(b->comm, b->host ? b->host : b->grads, b->n, b->scratch);
    if (b->host) b->be->to_device(b->grads, b->host, bytes);
}

static void tree_free_(struct dlfs_buckets *b)
{
    free(b->scratch);
    free(b->host);
}

const struct dlfs_transport_ops dlfs_transport_det_tree = {
    .name = "mpi-tree", .open = tree_open_, .start = tree_start_, .wait = tree_wait_, .free = tree_free_,
};
