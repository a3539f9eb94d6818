/* The step pipeline (train/pipeline.h): CUDA graph and the loss-lag ring. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/hooks.h"
#include "dlfs/util.h"
#include "train/pipeline.h"

_Static_assert(sizeof(struct dlfs_optim_dyn) <= DLFS_DYN_BYTES, "the slot layout assumes it");

/* The ring's slots: page-locked when the step runs as a graph (its uploads and
 * the loss read-back are then plain async copies), else ordinary memory. */
static void ring_init_(struct dlfs_pipeline *pl)
{
    const struct dlfs_backend *be = pl->be;
    const size_t ids = ((size_t)pl->pass_rows * sizeof(uint32_t) + 63) / 64 * 64;
    const size_t slot = 32 + DLFS_DYN_BYTES + ids; /* stats (16 B), hp (16 B), ids */
    const size_t bytes = DLFS_LAG_SLOTS * slot;
    if (pl->graph_on && be->pinned_alloc && be->to_device_async && (pl->fl_block = be->pinned_alloc(bytes)))
        pl->fl_pinned = 1;
    else
        pl->fl_block = dlfs_calloc(1, bytes);
    memset(pl->fl_block, 0, bytes); /* pinned memory comes uninitialised */
    for (int k = 0; k < DLFS_LAG_SLOTS; k++) {
        char *base = (char *)pl->fl_block + (size_t)k * slot;
        pl->fl[k] = (struct dlfs_inflight){.stats = (double *)base, .hp = (struct dlfs_optim_dyn *)(base + 32),
                                           .ids = (uint32_t *)(base + 32 + DLFS_DYN_BYTES)};
    }
}

enum dlfs_status dlfs_pipeline_init(struct dlfs_pipeline *pl, const struct dlfs_backend *be,
                                    const struct dlfs_pipeline_plan *p)
{
    memset(pl, 0, sizeof *pl);
    pl->be = be;
    pl->pass_rows = p->pass_rows;
    /* A graph needs every step to issue the same kernels with the same arguments:
     * no per-step dropout key (passed by value), one pass, no reduction to
     * interleave (a multi-rank reduction is not recorded), data gathered from a
     * fixed id buffer. */
    pl->graph_why = !be->graph_begin ? "not on this backend"
                    : !p->want_graph ? "off"
                    : p->ranks > 1 ? "off: several ranks"
                    : p->passes > 1 ? "off: several passes per step (deterministic shards, accumulation)"
                    : !p->gathered ? "off: data not gathered on the device"
                    : p->dropout ? "off: dropout draws per step" : NULL;
    pl->graph_on = pl->graph_why == NULL;
    ring_init_(pl);
    /* The update joins the graph when no reduction comes between the backward pass
     * and it (one rank; NCCL sums even one rank's gradients, outside the graph). */
    pl->graph_update = pl->graph_on && !p->nccl && pl->fl_pinned && p->update_dev;
    if (pl->graph_update &&
        !(pl->hp_dev = be->alloc(DLFS_DYN_BYTES + (size_t)p->pass_rows * sizeof(uint32_t))))
        pl->graph_update = 0;
    if (pl->graph_update) pl->ids_dev = (uint32_t *)((char *)pl->hp_dev + DLFS_DYN_BYTES);
    /* Then the step need not wait for the device: its loss comes back one step late
     * (test hook DLFS_STEP_LAG=0|1 forces the lag off or on, also where the loss is
     * read back synchronously, e.g. on the CPU: the sums must not change). */
    pl->lag_async = pl->graph_update && be->to_host_async && be->mark_record && be->mark_wait;
    const int lag = dlfs_hook_step_lag();
    pl->loss_lag = lag >= 0 ? lag : pl->lag_async;
    if (!pl->loss_lag) pl->lag_async = 0;
    return DLFS_OK;
}

void dlfs_pipeline_free(struct dlfs_pipeline *pl)
{
    const struct dlfs_backend *be = pl->be;
    if (!be) return;
    if (pl->graph) be->graph_free(pl->graph);
    if (pl->fl_block) {
        be->sync(); /* no copy from or into the slots still queued */
        if (pl->fl_pinned) be->pinned_free(pl->fl_block);
        else free(pl->fl_block);
    }
    be->free(pl->hp_dev);
    memset(pl, 0, sizeof *pl);
}

const char *dlfs_pipeline_graph_state(const struct dlfs_pipeline *pl)
{
    return pl->graph_fallback ? "fallback" : pl->graph_on ? "on" : "off";
}

bool dlfs_pipeline_graph_on(const struct dlfs_pipeline *pl) { return pl->graph_on; }
bool dlfs_pipeline_graph_updates(const struct dlfs_pipeline *pl) { return pl->graph_update; }
bool dlfs_pipeline_recorded(const struct dlfs_pipeline *pl) { return pl->graph != NULL; }
bool dlfs_pipeline_fell_back(const struct dlfs_pipeline *pl) { return pl->graph_fallback; }
const struct dlfs_optim_dyn *dlfs_pipeline_dyn_dev(const struct dlfs_pipeline *pl) { return pl->hp_dev; }
int dlfs_pipeline_lag_async(const struct dlfs_pipeline *pl) { return pl->lag_async; }
int dlfs_pipeline_pending(const struct dlfs_pipeline *pl) { return pl->loss_pending; }
double dlfs_pipeline_seconds(const struct dlfs_pipeline *pl) { return pl->t_wait; }
void dlfs_pipeline_seconds_reset(struct dlfs_pipeline *pl) { pl->t_wait = 0.0; }

void dlfs_pipeline_describe(const struct dlfs_pipeline *pl, char *buf, size_t len)
{
    snprintf(buf, len, "CUDA graph %s%s%s",
             pl->graph_fallback ? "fell back to eager steps (the recording failed)"
             : pl->graph_on ? "on (recorded after 1 eager step)" : pl->graph_why,
             pl->graph_update ? ", with the update" : "",
             pl->lag_async ? "; no host wait per step (loss read 1 step late)"
             : pl->loss_lag ? "; loss read 1 step late" : "");
}

const uint32_t *dlfs_pipeline_ids(const struct dlfs_pipeline *pl, const uint32_t *ws_ids)
{
    return pl->graph_update ? pl->ids_dev : ws_ids;
}

/* The uploads come from this step's ring slot, which the step two back used last:
 * its mark says it is free (with the loss lag the previous step already waited
 * for it). */
void dlfs_pipeline_upload(struct dlfs_pipeline *pl, long step, const uint32_t *ids, int rows,
                          const struct dlfs_optim_dyn *dyn, uint32_t *ws_ids)
{
    const struct dlfs_backend *be = pl->be;
    const int k = (int)(step % DLFS_LAG_SLOTS);
    const struct dlfs_inflight *f = &pl->fl[k];
    const size_t bytes = (size_t)rows * sizeof(uint32_t);
    if (pl->fl_pinned && be->mark_wait) be->mark_wait(k);
    if (pl->graph_update) { /* implies fl_pinned; hp then ids, as in hp_dev / ids_dev */
        *f->hp = *dyn;
        memcpy(f->ids, ids, bytes);
        be->to_device_async(pl->hp_dev, f->hp, DLFS_DYN_BYTES + bytes);
    } else if (pl->fl_pinned) {
        memcpy(f->ids, ids, bytes);
        be->to_device_async(ws_ids, f->ids, bytes);
    } else {
        be->to_device(ws_ids, ids, bytes);
    }
}

/* Record after one eager warm-up step (cuBLAS heuristics, lazily loaded
 * kernels), then replay: the same kernels in the same order, so the same bits
 * as --cuda-graph off. No host wait here. */
void dlfs_pipeline_run(struct dlfs_pipeline *pl, void (*body)(void *ctx), void *ctx)
{
    const struct dlfs_backend *be = pl->be;
    if (!pl->graph && pl->graph_warm) {
        if (be->graph_begin() == 0) {
            body(ctx);
            pl->graph = be->graph_end(); /* NULL: nothing ran; eager below and from now on */
        }
        if (!pl->graph) {
            pl->graph_on = 0;
            pl->graph_fallback = 1;
        }
    }
    if (pl->graph) {
        be->graph_launch(pl->graph);
    } else {
        body(ctx);
        pl->graph_warm = 1;
    }
}

double dlfs_pipeline_flush(struct dlfs_pipeline *pl, long step)
{
    if (!pl->loss_pending) return 0.0;
    const int k = (int)((step - 1) % DLFS_LAG_SLOTS);
    if (pl->lag_async) {
        const double t0 = dlfs_now();
        pl->be->mark_wait(k);
        pl->t_wait += dlfs_now() - t0;
    }
    pl->loss_pending = 0;
    return pl->fl[k].stats[0];
}

double dlfs_pipeline_finish(struct dlfs_pipeline *pl, long step, const double *stats_dev, int async)
{
    const struct dlfs_backend *be = pl->be;
    const int k = (int)(step % DLFS_LAG_SLOTS);
    const double t0 = dlfs_now();
    if (async) {
        be->to_host_async(pl->fl[k].stats, stats_dev, 2 * sizeof(double));
        be->mark_record(k);
    } else {
        be->to_host(pl->fl[k].stats, stats_dev, 2 * sizeof(double));
    }
    pl->t_wait += dlfs_now() - t0;
    if (!pl->loss_lag) return pl->fl[k].stats[0];
    const double loss = dlfs_pipeline_flush(pl, step); /* the previous step, step - 1 */
    pl->loss_pending = 1;
    return loss;
}
