/* Communicator set-up, blocking collectives and status agreement over MPI. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "dlfs/comm.h"
#include "dlfs/util.h"

const char *dlfs_comm_path_name(enum dlfs_comm_path p)
{
    static const char *names[DLFS_COMM_PATH_COUNT] = {DLFS_COMM_PATH_NAMES};
    return (unsigned)p < DLFS_COMM_PATH_COUNT ? names[p] : "?";
}

#define SIGNAL_GRACE_ 5.0
#define DLFS_EXIT_SIGNAL_IN_WAIT 4 /* as a run stopped by a signal without a checkpoint */

void dlfs_comm_wait(const struct dlfs_comm *c, int n, MPI_Request *req, const char *what)
{
    if (n <= 0) return;
    /* MPI has no timed wait: test in a loop, as MPI_Waitall would poll (no naps:
     * MPI moves a large message's fragments only inside MPI calls; MPI itself
     * yields the core when the node is oversubscribed) */
    const double t0 = dlfs_now(), deadline = t0 + (c->timeout_s > 0 ? c->timeout_s : 1e30);
    for (;;) {
        int done = 0;
        MPI_Testall(n, req, &done, MPI_STATUSES_IGNORE);
        if (done) return;
        const double now = dlfs_now();
        if (now > deadline)
            dlfs_fatal(1, "%s did not complete within %g s (--comm-timeout): a peer rank is stuck or dead; "
                       "ending the job", what, c->timeout_s);
        /* SIGTERM/SIGUSR1 are for the step boundary, where a checkpoint is written;
         * a wait that has already lasted SIGNAL_GRACE_ s will not get there soon.
         * Not inside a checkpoint write (dlfs_signal_defer): rank 0 is writing, and
         * the time that takes is the I/O's, bounded by --comm-timeout alone */
        if (dlfs_signal_pending() && !dlfs_signal_deferred() && now - t0 > SIGNAL_GRACE_)
            dlfs_fatal(DLFS_EXIT_SIGNAL_IN_WAIT, "stopped by %s while %s had been waiting %.0f s for the other ranks "
                       "(one is stuck or dead); the checkpoints written so far are kept",
                       dlfs_signal_name(dlfs_signal_pending()), what, now - t0);
    }
}

enum dlfs_status dlfs_comm_init(struct dlfs_comm *c)
{
    memset(c, 0, sizeof *c);
    MPI_Comm_dup(MPI_COMM_WORLD, &c->world);
    MPI_Comm_rank(c->world, &c->rank);
    MPI_Comm_size(c->world, &c->size);
    /* The node-local rank comes from MPI, not from SLURM_LOCALID (which is 0 for
     * every rank under mpirun inside an allocation). */
    MPI_Comm local;
    MPI_Comm_split_type(c->world, MPI_COMM_TYPE_SHARED, c->rank, MPI_INFO_NULL, &local);
    MPI_Comm_rank(local, &c->local_rank);
    MPI_Comm_size(local, &c->local_size);
    MPI_Comm_free(&local);
    gethostname(c->host, sizeof c->host - 1);
    c->kind = c->size == 1 ? DLFS_COMM_SELF : DLFS_COMM_MPI;
    dlfs_assert_set_rank(c->rank);
    return DLFS_OK;
}

void dlfs_comm_free(struct dlfs_comm *c)
{
    if (c->world != MPI_COMM_NULL && c->world != 0) MPI_Comm_free(&c->world);
}

/* MPI counts are int: reduce big buffers in pieces. */
#define CHUNK_ ((size_t)1 << 30)

/* The blocking sums are bounded like the gradient waits (--comm-timeout): a rank
 * stuck in evaluation or elsewhere must not hang the others forever. */
#define SUM_WHAT_ "a sum across ranks (evaluation, epoch loss or batch-norm statistics)"

/* In-place sum of n values of `type` (`size` bytes each), in pieces, each wait bounded. */
static void sum_(const struct dlfs_comm *c, void *buf, size_t n, MPI_Datatype type, size_t size)
{
    if (c->kind == DLFS_COMM_SELF) return;
    for (size_t o = 0; o < n; o += CHUNK_) {
        size_t k = n - o < CHUNK_ ? n - o : CHUNK_;
        MPI_Request req;
        MPI_Iallreduce(MPI_IN_PLACE, (char *)buf + o * size, (int)k, type, MPI_SUM, c->world, &req);
        dlfs_comm_wait(c, 1, &req, SUM_WHAT_);
    }
}

void dlfs_comm_allreduce_f32(const struct dlfs_comm *c, float *buf, size_t n)
{
    sum_(c, buf, n, MPI_FLOAT, sizeof *buf);
}

void dlfs_comm_allreduce_f64(const struct dlfs_comm *c, double *buf, size_t n)
{
    sum_(c, buf, n, MPI_DOUBLE, sizeof *buf);
}

/* One int from every rank combined by `op`, the wait bounded (naming `what`). */
static void allreduce_int_(const struct dlfs_comm *c, const int *in, int *out, MPI_Op op, const char *what)
{
    MPI_Request req;
    MPI_Iallreduce(in, out, 1, MPI_INT, op, c->world, &req);
    dlfs_comm_wait(c, 1, &req, what);
}

static void sendrecv_(const struct dlfs_comm *c, const float *send, size_t ns, float *recv, size_t nr,
                      int partner)
{
    /* sizes fit in int: checked by the caller's assertion on n. Non-blocking pair
     * so that a stuck partner ends the job after --comm-timeout. */
    MPI_Request req[2];
    MPI_Irecv(recv, (int)nr, MPI_FLOAT, partner, 71, c->world, &req[0]);
    MPI_Isend(send, (int)ns, MPI_FLOAT, partner, 71, c->world, &req[1]);
    dlfs_comm_wait(c, 2, req, "the deterministic gradient all-reduce");
}

void dlfs_comm_det_segment(int size, int rank, size_t n, size_t *lo, size_t *hi)
{
    *lo = 0;
    *hi = n;
    for (int d = 1; d < size; d <<= 1) {
        const size_t mid = *lo + (*hi - *lo) / 2;
        if ((rank & d) == 0) *hi = mid;
        else *lo = mid;
    }
}

void dlfs_comm_reduce_scatter_det(const struct dlfs_comm *c, float *buf, size_t n, float *scratch)
{
    const int P = c->size, r = c->rank;
    if (P == 1) return;
    DLFS_ASSERT((P & (P - 1)) == 0);
    DLFS_ASSERT(n < ((size_t)1 << 31));
    size_t lo = 0, hi = n;
    /* recursive halving, partner distance 1, 2, 4, ...: after the step with distance
     * d, a rank holds its segment summed over the 2d ranks that share its higher rank
     * bits — one level of the fixed tree */
    for (int d = 1; d < P; d <<= 1) {
        const int partner = r ^ d;
        const size_t mid = lo + (hi - lo) / 2;
        if ((r & d) == 0) { /* keep [lo, mid) */
            sendrecv_(c, buf + mid, hi - mid, scratch, mid - lo, partner);
            for (size_t i = lo; i < mid; i++) buf[i] += scratch[i - lo];
            hi = mid;
        } else {            /* keep [mid, hi) */
            sendrecv_(c, buf + lo, mid - lo, scratch, hi - mid, partner);
            for (size_t i = mid; i < hi; i++) buf[i] += scratch[i - mid];
            lo = mid;
        }
    }
}

void dlfs_comm_allgather_det(const struct dlfs_comm *c, float *buf, size_t n)
{
    const int P = c->size, r = c->rank;
    if (P == 1) return;
    DLFS_ASSERT((P & (P - 1)) == 0);
    /* recursive doubling, the halving in reverse: at distance d the pair exchanges the
     * halves of the segment they shared before the halving step with distance d */
    int steps = 0;
    while ((1 << steps) < P) steps++;
    for (int s = steps - 1; s >= 0; s--) {
        const int partner = r ^ (1 << s);
        size_t plo = 0, phi = n; /* the segment before step s: the halving's first s steps */
        for (int d = 1; d < (1 << s); d <<= 1) {
            const size_t mid = plo + (phi - plo) / 2;
            if ((r & d) == 0) phi = mid;
            else plo = mid;
        }
        const size_t mid = plo + (phi - plo) / 2;
        if ((r & (1 << s)) == 0) /* own [plo, mid), receive [mid, phi) */
            sendrecv_(c, buf + plo, mid - plo, buf + mid, phi - mid, partner);
        else
            sendrecv_(c, buf + mid, phi - mid, buf + plo, mid - plo, partner);
    }
}

void dlfs_comm_allreduce_det(const struct dlfs_comm *c, float *buf, size_t n, float *scratch)
{
    dlfs_comm_reduce_scatter_det(c, buf, n, scratch);
    dlfs_comm_allgather_det(c, buf, n);
}

/* The agreement steps are bounded too: a rank stuck in its set-up, in a checkpoint
 * write (a hung file system) or in a resume ends the job after --comm-timeout
 * instead of holding the others forever. A checkpoint is written to a temporary
 * file and renamed, so ending the job in the middle of one loses nothing saved. */
#define AGREE_WHAT_ "agreeing across ranks on the outcome of set-up, a checkpoint write or a resume"

enum dlfs_status dlfs_comm_agree(const struct dlfs_comm *c, enum dlfs_status local)
{
    if (c->kind == DLFS_COMM_SELF) return local;
    int mine = local == DLFS_OK ? c->size : c->rank, first = c->size;
    allreduce_int_(c, &mine, &first, MPI_MIN, AGREE_WHAT_);
    if (first == c->size) return DLFS_OK;
    int bad = local != DLFS_OK, nbad = 0;
    allreduce_int_(c, &bad, &nbad, MPI_SUM, AGREE_WHAT_);
    struct { int st; char host[64]; char msg[4096]; } pkt; /* as long as a message can be (status.c) */
    memset(&pkt, 0, sizeof pkt);
    if (c->rank == first) {
        pkt.st = (int)local;
        snprintf(pkt.host, sizeof pkt.host, "%s", c->host);
        snprintf(pkt.msg, sizeof pkt.msg, "%s", dlfs_error_msg());
    }
    MPI_Request req;
    MPI_Ibcast(&pkt, (int)sizeof pkt, MPI_BYTE, first, c->world, &req);
    dlfs_comm_wait(c, 1, &req, AGREE_WHAT_);
    dlfs_error_clear();
    if (nbad == c->size) /* everybody saw it: no rank to name */
        dlfs_error_set((enum dlfs_status)pkt.st, "%s", pkt.msg);
    else
        dlfs_error_set((enum dlfs_status)pkt.st, "rank %d (%s): %s", first,
                       pkt.host, pkt.msg);
    return (enum dlfs_status)pkt.st;
}

int dlfs_comm_same_u64(const struct dlfs_comm *c, uint64_t v, int *first_bad)
{
    if (c->kind == DLFS_COMM_SELF) return 1;
    static const char what[] = "comparing a value across ranks (options or parameters)";
    uint64_t v0 = v;
    MPI_Request req;
    MPI_Ibcast(&v0, 1, MPI_UINT64_T, 0, c->world, &req);
    dlfs_comm_wait(c, 1, &req, what);
    int mine = v == v0 ? c->size : c->rank, first = c->size;
    allreduce_int_(c, &mine, &first, MPI_MIN, what);
    if (first_bad) *first_bad = first;
    return first == c->size;
}

int dlfs_comm_any(const struct dlfs_comm *c, int flag)
{
    if (c->kind == DLFS_COMM_SELF) return flag != 0;
    int in = flag != 0, out = 0;
    allreduce_int_(c, &in, &out, MPI_MAX, "the per-step check for stop signals");
    return out;
}

int dlfs_comm_or(const struct dlfs_comm *c, int flags)
{
    if (c->kind == DLFS_COMM_SELF) return flags;
    int out = 0;
    allreduce_int_(c, &flags, &out, MPI_BOR, "the per-step check for stop signals and divergence");
    return out;
}

void dlfs_comm_barrier(const struct dlfs_comm *c, const char *what)
{
    if (c->kind == DLFS_COMM_SELF) return;
    MPI_Request req;
    MPI_Ibarrier(c->world, &req);
    dlfs_comm_wait(c, 1, &req, what);
}

void dlfs_comm_max_f64(const struct dlfs_comm *c, double *buf, int n)
{
    if (c->kind == DLFS_COMM_SELF) return;
    MPI_Request req;
    MPI_Iallreduce(MPI_IN_PLACE, buf, n, MPI_DOUBLE, MPI_MAX, c->world, &req);
    dlfs_comm_wait(c, 1, &req, "a maximum across ranks");
}

void dlfs_comm_bcast(const struct dlfs_comm *c, void *buf, int bytes, int root, const char *what)
{
    if (c->kind == DLFS_COMM_SELF) return;
    MPI_Request req;
    MPI_Ibcast(buf, bytes, MPI_BYTE, root, c->world, &req);
    dlfs_comm_wait(c, 1, &req, what);
}

int dlfs_comm_node_duplicate(const struct dlfs_comm *c, const void *key, size_t len, int *other)
{
    struct ent { char host[64]; unsigned char key[32]; int has; };
    DLFS_ASSERT(len <= sizeof ((struct ent *)0)->key);
    struct ent me;
    memset(&me, 0, sizeof me);
    snprintf(me.host, sizeof me.host, "%s", c->host);
    if (key) {
        memcpy(me.key, key, len);
        me.has = 1;
    }
    if (other) *other = -1;
    if (c->kind == DLFS_COMM_SELF) return 0;
    struct ent *all = dlfs_malloc((size_t)c->size * sizeof *all);
    MPI_Request req;
    MPI_Iallgather(&me, (int)sizeof me, MPI_BYTE, all, (int)sizeof me, MPI_BYTE, c->world, &req);
    dlfs_comm_wait(c, 1, &req, "comparing the GPUs of the ranks on each node");
    int found = 0;
    for (int i = 0; i < c->size && me.has && !found; i++)
        if (i != c->rank && all[i].has && strcmp(all[i].host, me.host) == 0 && memcmp(all[i].key, me.key, len) == 0) {
            found = 1;
            if (other) *other = i;
        }
    free(all);
    return found;
}
