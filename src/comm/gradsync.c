/* Gradient synchronisation (dlfs/gradsync.h). */
#include <stdlib.h>
#include <string.h>
#include "dlfs/gradsync.h"
#include "dlfs/util.h"

enum dlfs_status dlfs_gsync_init(struct dlfs_gradsync *g, const struct dlfs_comm *c, const struct dlfs_backend *be,
                                 const struct dlfs_model *m, int passes, size_t bucket_bytes,
                                 const struct dlfs_transport_ops *tp, void *tp_arg, bool zero)
{
    memset(g, 0, sizeof *g);
    g->comm = c;
    g->be = be;
    g->n = m->num_params;
    g->passes = passes;
    g->tree = tp->flags & DLFS_TP_DETERMINISTIC;
    g->slabs = 1;
    if (g->tree) /* a power of two: the tree holds at most log2(passes) + 1 partial sums */
        for (int p = passes; p > 1; p /= 2) g->slabs++;
    else if (passes > 1)
        g->slabs = 2;
    g->nbuf = m->num_buffers;
    g->num_layers = m->num_layers;
    DLFS_ASSERT(passes >= 1 && passes <= (g->tree ? DLFS_MAX_PASSES : DLFS_MAX_ACCUM) &&
                (!g->tree || (passes & (passes - 1)) == 0));
    DLFS_ASSERT(g->slabs <= DLFS_MAX_SLABS);
    for (int l = 0; l < m->num_layers; l++) {
        g->layer_off[l] = m->layers[l].w_off;
        g->layer_len[l] = m->layers[l].num_params;
    }
    const size_t bytes = g->n * sizeof(float);
    int ok = 1;
    for (int i = 0; i < g->slabs; i++) ok = ok && (g->grads[i] = be->alloc(bytes)) != NULL;
    if (g->nbuf) g->bstats = dlfs_calloc((size_t)passes, sizeof *g->bstats);
    for (int i = 0; g->nbuf && i < passes; i++) ok = ok && (g->bstats[i] = be->alloc(g->nbuf * sizeof(float))) != NULL;
    if (g->nbuf) g->bhost = dlfs_malloc((g->nbuf + (g->nbuf + 1) / 2) * sizeof(float));
    enum dlfs_status st = ok ? DLFS_OK
                             : dlfs_error_set(DLFS_ERR_NOMEM, "out of %s memory for the gradients of %zu parameters",
                                              be->name, g->n);
    if (st == DLFS_OK) /* the transport takes tp_arg over */
        st = dlfs_buckets_init(&g->buckets, c, be, g->grads[0], g->layer_off, m->num_layers, g->n, bucket_bytes, tp,
                               tp_arg);
    else if (tp_arg && tp->discard) /* never set up for use */
        tp->discard(be, tp_arg);
    g->buckets.zero = zero && c->size > 1;
    if (st == DLFS_OK) dlfs_buckets_shard(&g->buckets, c->rank, &g->shard);
    return st;
}

void dlfs_gsync_free(struct dlfs_gradsync *g)
{
    if (g->buckets.tp) dlfs_buckets_free(&g->buckets);
    for (int i = 0; g->be && i < g->slabs; i++) g->be->free(g->grads[i]);
    for (int i = 0; g->be && g->bstats && i < g->passes; i++) g->be->free(g->bstats[i]);
    free(g->bstats);
    free(g->bhost);
    free(g->shard.seg);
    memset(g, 0, sizeof *g);
}

void dlfs_gsync_begin_pass(struct dlfs_gradsync *g, int pass) { g->pass = pass; }

float *dlfs_gsync_slab(struct dlfs_gradsync *g)
{
    if (g->tree) return g->grads[g->depth];
    return g->grads[g->pass > 0 ? 1 : 0];
}

void dlfs_gsync_end_pass(struct dlfs_gradsync *g)
{
    if (!g->tree) return;
    g->depth++;
    for (int done = g->pass + 1; done % 2 == 0; done /= 2, g->depth--)
        g->be->axpy(g->n, 1.0f, g->grads[g->depth - 1], g->grads[g->depth - 2]);
}

float *dlfs_gsync_grads(struct dlfs_gradsync *g) { return g->grads[0]; }

float *dlfs_gsync_bn_slot(struct dlfs_gradsync *g, int pass) { return g->nbuf ? g->bstats[pass] : NULL; }

/* After layer `layer` of the backward pass: with accumulation add its gradients
 * into the sum; on the last pass start the sums of the buckets it completed. */
static void layer_done_(int layer, void *ctx)
{
    struct dlfs_gradsync *g = ctx;
    const size_t off = g->layer_off[layer];
    if (g->pass > 0 && g->layer_len[layer])
        g->be->axpy(g->layer_len[layer], 1.0f, g->grads[1] + off, g->grads[0] + off);
    if (g->pass < g->passes - 1) return;
    dlfs_buckets_ready(&g->buckets, off);
    dlfs_buckets_poke(&g->buckets);
}

void (*dlfs_gsync_hook(const struct dlfs_gradsync *g))(int layer, void *ctx)
{
    return g->tree ? NULL : layer_done_;
}

/* Pairwise tree over the first `count` slabs of `slabs` (n values each), into slabs[0]. */
static void tree_(const struct dlfs_backend *be, float **slabs, int count, size_t n)
{
    for (int width = 1; width < count; width *= 2)
        for (int i = 0; i + width < count; i += 2 * width) be->axpy(n, 1.0f, slabs[i + width], slabs[i]);
}

void dlfs_gsync_reduce(struct dlfs_gradsync *g)
{
    const double t0 = dlfs_now();
    /* every pass folded in: the rank's tree is complete (a replayed graph of one
     * pass leaves the host's count alone) */
    DLFS_ASSERT(!g->tree || g->depth == 1 || g->passes == 1);
    g->depth = 0;
    g->pass = 0;
    dlfs_buckets_wait(&g->buckets);
    g->t_comm += dlfs_now() - t0;
}

void dlfs_gsync_running_stats(struct dlfs_gradsync *g, float *bufs, int global_batch, int group)
{
    const struct dlfs_backend *be = g->be;
    const double t0 = dlfs_now();
    tree_(be, g->bstats, g->passes, g->nbuf);
    if (g->comm->size > 1) {
        be->to_host(g->bhost, g->bstats[0], g->nbuf * sizeof(float));
        if (g->tree) dlfs_comm_allreduce_det(g->comm, g->bhost, g->nbuf, g->bhost + g->nbuf);
        else dlfs_comm_allreduce_f32(g->comm, g->bhost, g->nbuf);
        be->to_device(g->bstats[0], g->bhost, g->nbuf * sizeof(float));
    }
    const float momentum = 0.1f, groups = (float)(global_batch / group);
    be->scale(g->nbuf, 1.0f - momentum, bufs);
    be->axpy(g->nbuf, momentum / groups, g->bstats[0], bufs);
    g->t_comm += dlfs_now() - t0;
}

void dlfs_gsync_gather_params(struct dlfs_gradsync *g, float *params)
{
    const double t0 = dlfs_now();
    dlfs_buckets_gather(&g->buckets, params);
    g->t_comm += dlfs_now() - t0;
}

/* Rank r's own (not shared) values of `compact`, in slab order, packed into out. */
static size_t own_(const struct dlfs_shard *sh, const float *compact, float *out)
{
    size_t at = 0, k = 0;
    for (int i = 0; i < sh->count; at += sh->seg[i].len, i++)
        if (!sh->seg[i].shared) {
            if (out) memcpy(out + k, compact + at, sh->seg[i].len * sizeof(float));
            k += sh->seg[i].len;
        }
    return k;
}

void dlfs_gsync_gather_state(struct dlfs_gradsync *g, const float *compact, float *full)
{
    const struct dlfs_comm *c = g->comm;
    if (!g->buckets.zero) {
        if (c->rank == 0) memcpy(full, compact, g->n * sizeof(float));
        return;
    }
    const int P = c->size;
    int *counts = dlfs_calloc((size_t)P, sizeof *counts), *displs = dlfs_calloc((size_t)P, sizeof *displs);
    struct dlfs_shard *all = dlfs_calloc((size_t)P, sizeof *all);
    size_t sum = 0;
    for (int r = 0; r < P; r++) {
        dlfs_buckets_shard(&g->buckets, r, &all[r]);
        counts[r] = (int)own_(&all[r], NULL, NULL);
        displs[r] = (int)sum;
        sum += (size_t)counts[r];
    }
    float *mine = dlfs_malloc((size_t)counts[c->rank] * sizeof(float) + 1);
    float *recv = c->rank == 0 ? dlfs_malloc(sum * sizeof(float) + 1) : NULL;
    own_(&g->shard, compact, mine);
    MPI_Request req;
    MPI_Igatherv(mine, counts[c->rank], MPI_FLOAT, recv, counts, displs, MPI_FLOAT, 0, c->world, &req);
    dlfs_comm_wait(c, 1, &req, "gathering the optimizer state for a checkpoint (ZeRO-1)");
    for (int r = 0; c->rank == 0 && r < P; r++) { /* each rank's parts in place; shared ones from rank 0 */
        size_t k = (size_t)displs[r], at = 0;
        for (int i = 0; i < all[r].count; at += all[r].seg[i].len, i++) {
            const struct dlfs_seg *sg = &all[r].seg[i];
            if (!sg->shared) memcpy(full + sg->off, recv + k, sg->len * sizeof(float)), k += sg->len;
            else if (r == 0) memcpy(full + sg->off, compact + at, sg->len * sizeof(float));
        }
    }
    for (int r = 0; r < P; r++) free(all[r].seg);
    free(all);
    free(counts);
    free(displs);
    free(mine);
    free(recv);
}

bool dlfs_gsync_zero(const struct dlfs_gradsync *g) { return g->buckets.zero != 0; }
const struct dlfs_shard *dlfs_gsync_shard(const struct dlfs_gradsync *g) { return &g->shard; }
size_t dlfs_gsync_nbuf(const struct dlfs_gradsync *g) { return g->nbuf; }
double dlfs_gsync_seconds(const struct dlfs_gradsync *g) { return g->t_comm; }
void dlfs_gsync_seconds_reset(struct dlfs_gradsync *g) { g->t_comm = 0.0; }

const char *dlfs_gsync_name(const struct dlfs_gradsync *g)
{
    if (g->comm->size == 1 && !(g->buckets.tp->flags & DLFS_TP_ALWAYS_SUMS)) return "none";
    return g->buckets.tp->name;
}
