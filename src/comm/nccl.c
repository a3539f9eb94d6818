/* The NCCL gradient transport and NCCL's bounded set-up over MPI. NCCL itself
 * comes from the backend (struct dlfs_nccl_api, dlfs_backend_nccl): this file
 * sees no CUDA or NCCL type and no #ifdef. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include "core/hooks.h"
#include "dlfs/comm.h"
#include "dlfs/util.h"

#define WHY_ 512

/* One poll of the set-up every millisecond until it is up (1) or failed (-1); it
 * is never polled again once up. Test hook DLFS_FAULT_NCCL_INIT_STALL=RANK:S: on
 * that rank the set-up looks unfinished for S seconds (as when a peer never
 * joins). Past --comm-timeout the job ends from here: a peer that never joins
 * cannot agree either. */
static int wait_up_(const struct dlfs_comm *c, const struct dlfs_nccl_api *api, void *x, char *why)
{
    const double stall = dlfs_hook_seconds(DLFS_HOOK_NCCL_INIT_STALL, c->rank);
    const double t0 = dlfs_now(), deadline = t0 + (c->timeout_s > 0 ? c->timeout_s : 1e9);
    int up = 0;
    for (;;) {
        if (up == 0) up = api->init_poll(x, why, WHY_);
        if (up < 0 || (up == 1 && dlfs_now() >= t0 + stall)) return up;
        if (dlfs_now() > deadline) {
            api->abort(x);
            dlfs_fatal(1, "NCCL set-up did not finish within %g s (--comm-timeout): a peer rank is stuck or dead "
                       "(or its network unreachable: NCCL_SOCKET_IFNAME)", c->timeout_s);
        }
        const struct timespec nap = {0, 1000000}; /* 1 ms: set-up takes hundreds */
        nanosleep(&nap, NULL);
    }
}

enum dlfs_status dlfs_nccl_open(const struct dlfs_comm *c, const struct dlfs_nccl_api *api, void **ctx)
{
    char why[WHY_] = "";
    unsigned char id[512];
    *ctx = NULL;
    enum dlfs_status st = DLFS_OK;
    if (!api)
        st = dlfs_error_set(DLFS_ERR_COMM, "--comm nccl: this dlfs was built without NCCL (install libnccl-dev "
                            "and reconfigure), or use --comm mpi");
    else if ((size_t)api->id_bytes > sizeof id)
        st = dlfs_error_set(DLFS_ERR_COMM, "NCCL's unique id takes %d bytes, more than the %zu expected",
                            api->id_bytes, sizeof id);
    /* rank 0 makes the id; a failure there must stop everyone, not leave them
     * waiting for an id that never comes */
    if (st == DLFS_OK && c->rank == 0 && api->get_id(id, why, sizeof why) != 0)
        st = dlfs_error_set(DLFS_ERR_COMM, "%s", why);
    DLFS_TRY(dlfs_comm_agree(c, st));
    dlfs_comm_bcast(c, id, api->id_bytes, 0, "handing out NCCL's id (NCCL set-up)");
    void *x = api->init_start(id, c->size, c->rank, c->timeout_s, why, sizeof why);
    const int up = x ? wait_up_(c, api, x, why) : -1;
    if (up < 0) st = dlfs_error_set(DLFS_ERR_COMM, "%s", why);
    st = dlfs_comm_agree(c, st);
    /* ranks whose set-up succeeded while another's failed: tear down locally
     * (a normal destroy could wait for the peers that failed) */
    if (st != DLFS_OK && x) api->abort(x);
    else *ctx = x;
    return st;
}

/* ---- the transport ------------------------------------------------------------------ */

/* Its own state (b->ctx): the backend's NCCL and the communicator's context. */
struct nccl_ctx_ {
    const struct dlfs_nccl_api *api;
    void *x;
};
#define CTX_(b) ((struct nccl_ctx_ *)(b)->ctx)

/* --comm nccl where it can run (else -1 with the way out); auto: fast mode on several
 * ranks of device memory, with a build that has NCCL (one rank sums nothing; --comm
 * nccl still runs it there, for tests). --comm nccl --deterministic is refused with
 * the options. */
static int nccl_applies_(const struct dlfs_transport_want *w)
{
    const bool device = !w->be->host_memory;
    if (w->comm != DLFS_COMM_PATH_NCCL) return device && !w->deterministic && w->nccl && w->ranks > 1;
    if (!device)
        dlfs_error_set(DLFS_ERR_DEVICE, "--comm nccl sums GPU buffers, but this rank runs on the %s backend (--device "
                       "%s found no usable GPU); use --comm mpi or auto", w->be->name, w->device);
    else if (!w->nccl)
        dlfs_error_set(DLFS_ERR_DEVICE, "--comm nccl: this dlfs was built without NCCL (install libnccl-dev and "
                       "reconfigure), or use --comm mpi");
    return device && w->nccl ? 1 : -1;
}

static enum dlfs_status nccl_prepare_(const struct dlfs_comm *c, const struct dlfs_backend *be, void **arg)
{
    return dlfs_nccl_open(c, dlfs_backend_nccl(be), arg);
}

/* Set up, never used (a failed set-up elsewhere): a local teardown. */
static void nccl_discard_(const struct dlfs_backend *be, void *arg)
{
    if (arg) dlfs_backend_nccl(be)->abort(arg);
}

static enum dlfs_status nccl_topen_(struct dlfs_buckets *b, void *arg)
{
    struct nccl_ctx_ *x = dlfs_calloc(1, sizeof *x);
    x->api = dlfs_backend_nccl(b->be);
    x->x = arg; /* owned: freed with the buckets */
    b->ctx = x;
    return DLFS_OK;
}

static void fail_(struct dlfs_buckets *b, const char *why)
{
    CTX_(b)->api->abort(CTX_(b)->x); /* unblocks the comm stream before the job ends */
    CTX_(b)->x = NULL;
    dlfs_fatal(1, "the gradient all-reduce (NCCL): %s; ending the job", why);
}

/* A bucket's sum: all-reduced, or with ZeRO-1 reduce-scattered in equal parts
 * (in place: this rank's sums land in its own part) and the remainder all-reduced. */
static void nccl_start_(struct dlfs_buckets *b, int i)
{
    char why[WHY_];
    const struct nccl_ctx_ *x = CTX_(b);
    const size_t len = b->end[i] - b->begin[i], P = (size_t)b->comm->size, q = b->zero ? len / P : 0;
    int rc = 0;
    if (q) rc = x->api->reduce_scatter(x->x, b->grads + b->begin[i], q, why, sizeof why);
    if (rc == 0 && len > P * q)
        rc = x->api->allreduce(x->x, b->grads + b->begin[i] + P * q, len - P * q, why, sizeof why);
    if (rc != 0) fail_(b, why);
}

static void nccl_wait_(struct dlfs_buckets *b)
{
    char why[WHY_];
    if (CTX_(b)->api->wait(CTX_(b)->x, why, sizeof why) != 0) fail_(b, why);
}

static void nccl_gather_(struct dlfs_buckets *b, float *params)
{
    char why[WHY_];
    const size_t P = (size_t)b->comm->size;
    for (int i = 0; i < b->count; i++) {
        const size_t q = (b->end[i] - b->begin[i]) / P;
        if (q && CTX_(b)->api->all_gather(CTX_(b)->x, params + b->begin[i], q, why, sizeof why) != 0) fail_(b, why);
    }
    nccl_wait_(b);
}

static void nccl_free_(struct dlfs_buckets *b)
{
    struct nccl_ctx_ *x = CTX_(b);
    if (x && x->x) x->api->destroy(x->x);
    free(x);
    b->ctx = NULL;
}

const struct dlfs_transport_ops dlfs_transport_nccl = {
    .name = "nccl", .flags = DLFS_TP_ALWAYS_SUMS, .applies = nccl_applies_, .prepare = nccl_prepare_,
    .discard = nccl_discard_, .open = nccl_topen_, .start = nccl_start_, .wait = nccl_wait_, .gather = nccl_gather_,
    .free = nccl_free_,
};
