/* The MPI gradient transports (comm.h): host memory as it is, device memory
 * staged through pinned host memory, and the deterministic tree. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "dlfs/comm.h"
#include "dlfs/util.h"

/* The MPI transports' own state (b->ctx). */
struct mpi_ctx_ {
    MPI_Request *req; /* two requests per bucket (ZeRO: the part, the remainder) */
    float *host;      /* mpi_staged: (n) pinned; det_tree: (n) host copy (device backends) */
    float *scratch;   /* det_tree: (n + 1) / 2 */
    int sent;         /* mpi_staged: buckets whose MPI sum has started */
};
#define CTX_(b) ((struct mpi_ctx_ *)(b)->ctx)

/* The state every MPI transport holds: the requests. */
static enum dlfs_status mpi_open_(struct dlfs_buckets *b, void *arg)
{
    (void)arg;
    struct mpi_ctx_ *x = dlfs_calloc(1, sizeof *x);
    b->ctx = x;
    x->req = dlfs_calloc(2 * (size_t)b->count + 1, sizeof *x->req);
    for (int i = 0; i < 2 * b->count; i++) x->req[i] = MPI_REQUEST_NULL;
    return DLFS_OK;
}

static void mpi_free_(struct dlfs_buckets *b)
{
    if (!b->ctx) return;
    free(CTX_(b)->req);
    free(b->ctx);
    b->ctx = NULL;
}

/* ZeRO-1: bucket i's equal part per rank, and where the remainder starts. */
static size_t part_(const struct dlfs_buckets *b, int i) { return (b->end[i] - b->begin[i]) / (size_t)b->comm->size; }
static size_t rest_(const struct dlfs_buckets *b, int i) { return b->begin[i] + part_(b, i) * (size_t)b->comm->size; }

/* Start bucket i's sum over `base` (the slab, or its host copy): an all-reduce, or
 * with ZeRO a reduce-scatter in place (this rank's sums land at the bucket's start)
 * and an all-reduce of the remainder. */
static void isum_(struct dlfs_buckets *b, float *base, int i)
{
    if (!b->zero) {
        MPI_Iallreduce(MPI_IN_PLACE, base + b->begin[i], (int)(b->end[i] - b->begin[i]), MPI_FLOAT, MPI_SUM,
                       b->comm->world, &CTX_(b)->req[i]);
        return;
    }
    const size_t q = part_(b, i), r0 = rest_(b, i);
    if (q)
        MPI_Ireduce_scatter_block(MPI_IN_PLACE, base + b->begin[i], (int)q, MPI_FLOAT, MPI_SUM, b->comm->world,
                                  &CTX_(b)->req[i]);
    if (b->end[i] > r0)
        MPI_Iallreduce(MPI_IN_PLACE, base + r0, (int)(b->end[i] - r0), MPI_FLOAT, MPI_SUM, b->comm->world,
                       &CTX_(b)->req[b->count + i]);
}

static void mpi_wait_(struct dlfs_buckets *b, int open, const char *what)
{
    char buf[128];
    snprintf(buf, sizeof buf, "the gradient %s (MPI, %d bucket%s)", what, b->count, b->count > 1 ? "s" : "");
    dlfs_comm_wait(b->comm, open, CTX_(b)->req, buf);
    if (b->zero) dlfs_comm_wait(b->comm, b->count, CTX_(b)->req + b->count, buf);
}

/* ZeRO: a reduce-scatter in place leaves this rank's sums at the bucket's start:
 * move them to this rank's part of `base`. */
static void place_parts_(struct dlfs_buckets *b, float *base)
{
    const size_t r = (size_t)b->comm->rank;
    for (int i = 0; b->zero && r && i < b->count; i++)
        if (part_(b, i)) memmove(base + b->begin[i] + r * part_(b, i), base + b->begin[i], part_(b, i) * sizeof(float));
}

/* ZeRO: every rank's part of bucket i of `base` to all (in place). */
static void igather_(struct dlfs_buckets *b, float *base, int i)
{
    if (part_(b, i))
        MPI_Iallgather(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, base + b->begin[i], (int)part_(b, i), MPI_FLOAT,
                       b->comm->world, &CTX_(b)->req[i]);
}

/* ---- mpi_host --------------------------------------------------------------------- */

static void host_start_(struct dlfs_buckets *b, int i)
{
    if (b->comm->kind != DLFS_COMM_SELF) isum_(b, b->grads, i);
}

static void host_progress_(struct dlfs_buckets *b)
{
    int flag;
    if (b->comm->kind != DLFS_COMM_SELF) MPI_Testall(b->started, CTX_(b)->req, &flag, MPI_STATUSES_IGNORE);
}

/* Timelines: whether bucket i's requests are done (MPI_Test frees them when they are). */
static int mpi_test_(struct dlfs_buckets *b, int i)
{
    MPI_Request *req = CTX_(b)->req;
    int a = 1, c = 1;
    if (req[i] != MPI_REQUEST_NULL) MPI_Test(&req[i], &a, MPI_STATUS_IGNORE);
    if (b->zero && req[b->count + i] != MPI_REQUEST_NULL) MPI_Test(&req[b->count + i], &c, MPI_STATUS_IGNORE);
    return a && c;
}

static int staged_test_(struct dlfs_buckets *b, int i) { return i < CTX_(b)->sent && mpi_test_(b, i); }

static void host_wait_(struct dlfs_buckets *b)
{
    if (b->comm->kind == DLFS_COMM_SELF) return;
    mpi_wait_(b, b->count, b->zero ? "reduce-scatter" : "all-reduce");
    place_parts_(b, b->grads);
}

static void host_gather_(struct dlfs_buckets *b, float *params)
{
    for (int i = 0; i < b->count; i++) igather_(b, params, i);
    dlfs_comm_wait(b->comm, b->count, CTX_(b)->req, "the parameter all-gather (ZeRO-1, MPI)");
}

/* Fast mode on a backend whose memory MPI reads. */
static int host_applies_(const struct dlfs_transport_want *w) { return !w->deterministic && w->be->host_memory; }

const struct dlfs_transport_ops dlfs_transport_mpi_host = {
    .name = "mpi", .applies = host_applies_, .open = mpi_open_, .start = host_start_, .progress = host_progress_,
    .test = mpi_test_, .wait = host_wait_, .gather = host_gather_, .free = mpi_free_,
};

/* ---- mpi_staged ------------------------------------------------------------------- */

/* One rank has nothing to sum, so nothing to stage. */
static enum dlfs_status staged_open_(struct dlfs_buckets *b, void *arg)
{
    const struct dlfs_backend *be = b->be;
    DLFS_TRY(mpi_open_(b, arg));
    if (b->comm->kind == DLFS_COMM_SELF) return DLFS_OK;
    DLFS_ASSERT_MSG(be->pinned_alloc && be->pinned_free && be->stage_to_host && be->stage_test,
                    "a device backend without staging entries");
    if (b->count > DLFS_STAGE_SLOTS) /* one staging slot per bucket: a user error, not an assertion */
        return dlfs_error_set(DLFS_ERR_USAGE, "%d gradient buckets, but staging them for MPI (--comm mpi on a GPU) "
                              "takes at most %d: use a larger --bucket-mb, or --comm nccl", b->count,
                              DLFS_STAGE_SLOTS);
    if (!(CTX_(b)->host = be->pinned_alloc(b->n * sizeof(float))))
        return dlfs_error_set(DLFS_ERR_NOMEM, "out of pinned host memory for the %zu gradients staged for MPI "
                              "(--comm mpi); use --comm nccl, or a smaller model", b->n);
    return DLFS_OK;
}

/* MPI starts once the copy has landed (progress, wait). */
static void staged_start_(struct dlfs_buckets *b, int i)
{
    float *const host = CTX_(b)->host;
    if (host)
        b->be->stage_to_host(host + b->begin[i], b->grads + b->begin[i],
                             (b->end[i] - b->begin[i]) * sizeof(float), i);
}

/* Start MPI on every copy that has landed (in order: the copies run in order on
 * one stream). With `wait`, on all of them. */
static void send_staged_(struct dlfs_buckets *b, bool wait)
{
    struct mpi_ctx_ *x = CTX_(b);
    while (x->sent < b->started && b->be->stage_test(x->sent, wait)) {
        isum_(b, x->host, x->sent);
        x->sent++;
    }
}

static void staged_progress_(struct dlfs_buckets *b)
{
    struct mpi_ctx_ *x = CTX_(b);
    if (!x->host) return;
    send_staged_(b, false);
    int flag;
    if (x->sent) MPI_Testall(x->sent, x->req, &flag, MPI_STATUSES_IGNORE);
}

static void staged_wait_(struct dlfs_buckets *b)
{
    float *const host = CTX_(b)->host;
    if (!host) return;
    send_staged_(b, true);
    mpi_wait_(b, b->count, b->zero ? "reduce-scatter" : "all-reduce");
    CTX_(b)->sent = 0;
    if (!b->count) return;
    if (!b->zero) { /* the sums back to the device, before the optimizer */
        const size_t lo = b->begin[b->count - 1], hi = b->end[0];
        b->be->to_device(b->grads + lo, host + lo, (hi - lo) * sizeof(float));
        return;
    }
    const size_t r = (size_t)b->comm->rank; /* ZeRO: only what this rank updates */
    for (int i = 0; i < b->count; i++) {
        const size_t q = part_(b, i), r0 = rest_(b, i);
        if (q) b->be->to_device(b->grads + b->begin[i] + r * q, host + b->begin[i], q * sizeof(float));
        if (b->end[i] > r0) b->be->to_device(b->grads + r0, host + r0, (b->end[i] - r0) * sizeof(float));
    }
}

static void staged_gather_(struct dlfs_buckets *b, float *params)
{
    float *const host = CTX_(b)->host;
    const size_t r = (size_t)b->comm->rank;
    for (int i = 0; i < b->count; i++) {
        const size_t q = part_(b, i), at = b->begin[i] + r * q;
        if (q) b->be->to_host(host + at, params + at, q * sizeof(float));
        igather_(b, host, i);
    }
    dlfs_comm_wait(b->comm, b->count, CTX_(b)->req, "the parameter all-gather (ZeRO-1, MPI staged)");
    for (int i = 0; i < b->count; i++) /* every rank's part back (the remainders are alike everywhere) */
        b->be->to_device(params + b->begin[i], host + b->begin[i], (rest_(b, i) - b->begin[i]) * sizeof(float));
}

static void staged_free_(struct dlfs_buckets *b)
{
    if (b->ctx && CTX_(b)->host) b->be->pinned_free(CTX_(b)->host);
    mpi_free_(b);
}

/* Fast mode on a backend whose memory MPI cannot read. */
static int staged_applies_(const struct dlfs_transport_want *w) { return !w->deterministic && !w->be->host_memory; }

const struct dlfs_transport_ops dlfs_transport_mpi_staged = {
    .name = "mpi-staged", .applies = staged_applies_, .open = staged_open_, .start = staged_start_,
    .progress = staged_progress_, .test = staged_test_, .wait = staged_wait_, .gather = staged_gather_,
    .free = staged_free_,
};

/* ---- det_tree --------------------------------------------------------------------- */

static enum dlfs_status tree_open_(struct dlfs_buckets *b, void *arg)
{
    DLFS_TRY(mpi_open_(b, arg));
    if (b->comm->kind == DLFS_COMM_SELF) return DLFS_OK;
    CTX_(b)->scratch = dlfs_malloc((b->n + 1) / 2 * sizeof(float));
    if (!b->be->host_memory) CTX_(b)->host = dlfs_malloc(b->n * sizeof(float));
    return DLFS_OK;
}

static void tree_start_(struct dlfs_buckets *b, int i) { (void)b, (void)i; }

/* The upper levels of the fixed tree, across ranks, on host memory (on host-memory
 * backends the slab itself). */
static void tree_wait_(struct dlfs_buckets *b)
{
    float *const host = CTX_(b)->host;
    if (b->comm->kind == DLFS_COMM_SELF) return;
    const size_t bytes = b->n * sizeof(float);
    float *buf = host ? host : b->grads;
    if (host) b->be->to_host(host, b->grads, bytes);
    if (!b->zero) {
        dlfs_comm_allreduce_det(b->comm, buf, b->n, CTX_(b)->scratch);
        if (host) b->be->to_device(b->grads, host, bytes);
        return;
    }
    dlfs_comm_reduce_scatter_det(b->comm, buf, b->n, CTX_(b)->scratch); /* ZeRO: this rank's segment summed */
    size_t lo, hi;
    dlfs_comm_det_segment(b->comm->size, b->comm->rank, b->n, &lo, &hi);
    if (host) b->be->to_device(b->grads + lo, host + lo, (hi - lo) * sizeof(float));
}

static void tree_gather_(struct dlfs_buckets *b, float *params)
{
    float *const host = CTX_(b)->host;
    size_t lo, hi;
    dlfs_comm_det_segment(b->comm->size, b->comm->rank, b->n, &lo, &hi);
    if (host) b->be->to_host(host + lo, params + lo, (hi - lo) * sizeof(float));
    dlfs_comm_allgather_det(b->comm, host ? host : params, b->n);
    if (host) b->be->to_device(params, host, b->n * sizeof(float));
}

static void tree_free_(struct dlfs_buckets *b)
{
    if (b->ctx) free(CTX_(b)->scratch), free(CTX_(b)->host);
    mpi_free_(b);
}

/* Deterministic mode, on any backend. */
static int tree_applies_(const struct dlfs_transport_want *w) { return w->deterministic; }

const struct dlfs_transport_ops dlfs_transport_det_tree = {
    .name = "mpi-tree", .flags = DLFS_TP_DETERMINISTIC, .applies = tree_applies_, .open = tree_open_,
    .start = tree_start_, .wait = tree_wait_, .gather = tree_gather_, .free = tree_free_,
};
