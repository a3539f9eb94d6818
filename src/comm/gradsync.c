/* Gradient synchronisation (dlfs/gradsync.h). */
#include <stdlib.h>
#include <string.h>
#include "dlfs/gradsync.h"
#include "dlfs/util.h"

enum dlfs_status dlfs_gsync_init(struct dlfs_gradsync *g, const struct dlfs_comm *c, const struct dlfs_backend *be,
                                 const struct dlfs_model *m, int passes, size_t bucket_bytes,
                                 const struct dlfs_transport_ops *tp, void *nccl_ctx)
{
    memset(g, 0, sizeof *g);
    g->comm = c;
    g->be = be;
    g->n = m->num_params;
    g->passes = passes;
    g->nbuf = m->num_buffers;
    g->num_layers = m->num_layers;
    DLFS_ASSERT(passes >= 1 && passes <= DLFS_MAX_PASSES);
    for (int l = 0; l < m->num_layers; l++) g->layer_off[l] = m->layers[l].w_off;
    const size_t bytes = g->n * sizeof(float);
    int ok = 1;
    for (int i = 0; i < passes; i++) ok = ok && (g->grads[i] = be->alloc(bytes)) != NULL;
    for (int i = 0; g->nbuf && i < passes; i++) ok = ok && (g->bstats[i] = be->alloc(g->nbuf * sizeof(float))) != NULL;
    if (g->nbuf) g->bhost = dlfs_malloc((g->nbuf + (g->nbuf + 1) / 2) * sizeof(float));
    enum dlfs_status st = ok ? DLFS_OK
                             : dlfs_error_set(DLFS_ERR_NOMEM, "out of %s memory for the gradients of %zu parameters",
                                              be->name, g->n);
    if (st == DLFS_OK)
        st = dlfs_buckets_init(&g->buckets, c, be, g->grads[0], g->layer_off, m->num_layers, g->n, bucket_bytes, tp);
    if (st != DLFS_OK && nccl_ctx) { /* never set up for use: a local teardown */
        dlfs_backend_nccl(be)->abort(nccl_ctx);
        nccl_ctx = NULL;
    }
    g->buckets.nccl = dlfs_backend_nccl(be);
    g->buckets.nccl_ctx = nccl_ctx; /* owned: freed with the buckets */
    return st;
}

void dlfs_gsync_free(struct dlfs_gradsync *g)
{
    if (g->buckets.tp) dlfs_buckets_free(&g->buckets);
    for (int i = 0; g->be && i < g->passes; i++) {
        g->be->free(g->grads[i]);
        g->be->free(g->bstats[i]);
    }
    free(g->bhost);
    memset(g, 0, sizeof *g);
}

float *dlfs_gsync_slab(struct dlfs_gradsync *g, int pass) { return g->grads[g->passes > 1 ? pass : 0]; }

float *dlfs_gsync_grads(struct dlfs_gradsync *g) { return g->grads[0]; }

float *dlfs_gsync_bn_slot(struct dlfs_gradsync *g, int pass) { return g->nbuf ? g->bstats[pass] : NULL; }

static void layer_done_(int layer, void *ctx)
{
    struct dlfs_gradsync *g = ctx;
    dlfs_buckets_ready(&g->buckets, g->layer_off[layer]);
    dlfs_buckets_poke(&g->buckets);
}

void (*dlfs_gsync_hook(const struct dlfs_gradsync *g))(int layer, void *ctx)
{
    return g->buckets.tp == &dlfs_transport_det_tree ? NULL : layer_done_;
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
    tree_(g->be, g->grads, g->passes, g->n); /* the lower levels of the global tree */
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
        if (g->buckets.tp == &dlfs_transport_det_tree) dlfs_comm_allreduce_det(g->comm, g->bhost, g->nbuf, g->bhost + g->nbuf);
        else dlfs_comm_allreduce_f32(g->comm, g->bhost, g->nbuf);
        be->to_device(g->bstats[0], g->bhost, g->nbuf * sizeof(float));
    }
    const float momentum = 0.1f, groups = (float)(global_batch / group);
    be->scale(g->nbuf, 1.0f - momentum, bufs);
    be->axpy(g->nbuf, momentum / groups, g->bstats[0], bufs);
    g->t_comm += dlfs_now() - t0;
}

const char *dlfs_gsync_name(const struct dlfs_gradsync *g)
{
    if (g->buckets.tp == &dlfs_transport_nccl) return "nccl";
    if (g->comm->size == 1) return "none";
    return g->buckets.tp->name;
}
