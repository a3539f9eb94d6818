/* Workspaces: the activation and gradient buffers of a model for up to
 * max_rows samples. One layout function serves both the allocation and the
 * memory estimate made before it (dlfs_workspace_bytes), so they cannot differ. */
#include <string.h>
#include "nn/layer.h"

/* Allocates (be != NULL) or only counts (be == NULL) the workspace's buffers. */
struct plan_ {
    const struct dlfs_backend *be;
    double bytes;
    int ok;
};

static void take_(struct plan_ *p, void *slot, double bytes)
{
    p->bytes += bytes;
    if (!p->be || bytes <= 0.0) return;
    void *b = p->be->alloc((size_t)bytes);
    memcpy(slot, &b, sizeof b);
    p->ok = p->ok && b != NULL;
}

/* An output with its own gradient buffer: read by more than one input, or by a
 * layer other than the next one. Others share the d0/d1 ping-pong. */
static int own_grad_(const struct dlfs_model *m, int l)
{
    const struct dlfs_layer *L = &m->layers[l];
    return l < m->num_layers - 1 && (L->uses > 1 || L->last_use != l + 1);
}

/* The gradient buffers: the logits' is d0; a plain chain alternates d0/d1, and
 * an in-place layer's input shares its output's buffer. */
static void route_grads_(const struct dlfs_model *m, struct dlfs_workspace *ws)
{
    ws->g[m->num_layers - 1] = ws->d0;
    for (int l = m->num_layers - 1; l >= 0; l--) {
        const struct dlfs_layer *L = &m->layers[l];
        for (int i = 0; i < L->nsrc; i++) {
            const int k = L->src[i];
            if (k < 0 || own_grad_(m, k)) continue;
            ws->g[k] = nn_layer_desc(L->type)->flags & NN_BWD_INPLACE ? ws->g[l]
                       : ws->g[l] == ws->d0                           ? ws->d1
                                                                      : ws->d0;
        }
    }
}

/* The one layout of every buffer, in allocation order. */
static void layout_(const struct dlfs_model *m, int max_rows, struct dlfs_workspace *ws, struct plan_ *p)
{
    const double rows = max_rows;
    size_t col = 0;
    take_(p, &ws->x, rows * m->input_dim * sizeof(float));
    for (int l = 0; l < m->num_layers; l++) {
        const struct dlfs_layer *L = &m->layers[l];
        const struct nn_layer_desc *d = nn_layer_desc(L->type);
        if (own_grad_(m, l)) take_(p, &ws->g[l], rows * L->out * sizeof(float));
        if (d->flags & NN_VIEW) { /* a view of its input */
            ws->z[l] = ws->a[l] = L->src[0] < 0 ? ws->x : ws->a[L->src[0]];
            continue;
        }
        struct nn_ws_need n = {0, 0, 0, 0};
        if (d->ws_need) d->ws_need(L, max_rows, &n);
        take_(p, &ws->z[l], rows * L->out * sizeof(float));
        if (L->act != DLFS_ACT_NONE) take_(p, &ws->a[l], rows * L->out * sizeof(float));
        else ws->a[l] = ws->z[l];
        take_(p, &ws->arg[l], (double)n.arg * sizeof(int32_t));
        take_(p, &ws->aux[l], (double)n.aux * sizeof(float));
        take_(p, &ws->invstd[l], (double)n.stat * sizeof(float));
        if (n.col > col) col = n.col;
    }
    take_(p, &ws->col, (double)col * sizeof(float));
    take_(p, &ws->ids, rows * sizeof(uint32_t));
    take_(p, &ws->d0, rows * m->max_width * sizeof(float));
    take_(p, &ws->d1, rows * m->max_width * sizeof(float));
    take_(p, &ws->labels, rows * (m->positions > 1 ? m->positions : 1) * sizeof(int32_t));
    take_(p, &ws->stats, 2 * sizeof(double));
    route_grads_(m, ws);
}

enum dlfs_status dlfs_workspace_init(struct dlfs_workspace *ws, const struct dlfs_model *m,
                                     const struct dlfs_backend *be, int max_rows)
{
    memset(ws, 0, sizeof *ws);
    ws->be = be;
    ws->max_rows = max_rows;
    struct plan_ p = {be, 0.0, 1};
    layout_(m, max_rows, ws, &p);
    if (!p.ok) {
        dlfs_workspace_free(ws, m);
        return dlfs_error_set(DLFS_ERR_NOMEM, "out of %s memory for activations of %d samples; "
                              "use a smaller --batch", be->name, max_rows);
    }
    return DLFS_OK;
}

double dlfs_workspace_bytes(const struct dlfs_model *m, int max_rows)
{
    struct dlfs_workspace ws;
    memset(&ws, 0, sizeof ws);
    struct plan_ p = {NULL, 0.0, 1};
    layout_(m, max_rows, &ws, &p);
    return p.bytes;
}

void dlfs_workspace_free(struct dlfs_workspace *ws, const struct dlfs_model *m)
{
    const struct dlfs_backend *be = ws->be;
    if (!be) return;
    be->free(ws->x);
    for (int l = 0; l < m->num_layers; l++) {
        if (own_grad_(m, l)) be->free(ws->g[l]);
        if (nn_layer_desc(m->layers[l].type)->flags & NN_VIEW) continue; /* views, not owned */
        if (ws->a[l] != ws->z[l]) be->free(ws->a[l]);
        be->free(ws->z[l]);
        be->free(ws->arg[l]);
        be->free(ws->aux[l]);
        be->free(ws->invstd[l]);
    }
    be->free(ws->col);
    be->free(ws->ids);
    be->free(ws->d0);
    be->free(ws->d1);
    be->free(ws->labels);
    be->free(ws->stats);
    memset(ws, 0, sizeof *ws);
}
