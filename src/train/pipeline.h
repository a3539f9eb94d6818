/* The step pipeline: the CUDA graph that records a whole step once and replays
 * it, and the ring of in-flight step slots that lets the host read a step's loss
 * one step late instead of waiting for the device. Private to src/train.
 *
 * Ring: step s uses slot s % DLFS_LAG_SLOTS (its loss sums, and for the graph
 * its per-step values: the update's lr / bias corrections and the sample ids),
 * page-locked when the step runs as a graph. A slot is rewritten only after mark
 * s % DLFS_LAG_SLOTS, recorded at the end of the step that used it last, has
 * passed. */
#ifndef DLFS_TRAIN_PIPELINE_H
#define DLFS_TRAIN_PIPELINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "dlfs/backend.h"

#define DLFS_LAG_SLOTS 2
#define DLFS_DYN_BYTES 32         /* hp, then ids: in a slot and in the device block alike */

struct dlfs_inflight {
    double *stats;                /* (2) the step's loss sum and correct count */
    struct dlfs_optim_dyn *hp;    /* its lr and bias corrections, uploaded for the graph... */
    uint32_t *ids;                /* (pass rows) ...with its sample ids: at hp + DLFS_DYN_BYTES */
};

/* What decides whether a step can be one graph. */
struct dlfs_pipeline_plan {
    bool want_graph;              /* --cuda-graph on */
    int ranks, passes, pass_rows;
    bool gathered;                /* training batches gathered from backend memory */
    bool dropout;                 /* a per-step key, passed by value: not replayable */
    bool nccl;                    /* the transport sums even one rank's gradients (NCCL), outside the graph */
    bool update_dev;              /* the optimizer can read its per-step values from device memory */
};

struct dlfs_pipeline {
    const struct dlfs_backend *be;
    int pass_rows;
    int graph_on;                 /* the step runs as a CUDA graph (plan allowed it, no failure yet) */
    int graph_warm;               /* one eager step done since graph_on */
    int graph_fallback;           /* recording failed: eager from then on */
    void *graph;                  /* the recorded step, NULL until recorded */
    int graph_update;             /* the graph holds the optimizer update too */
    const char *graph_why;        /* why there is no graph ("off", "off: several ranks", ...) */
    struct dlfs_optim_dyn *hp_dev;/* backend memory (graph_update): the update's per-step values, */
    uint32_t *ids_dev;            /* then at hp_dev + DLFS_DYN_BYTES the graph's sample ids */
    struct dlfs_inflight fl[DLFS_LAG_SLOTS];
    void *fl_block;               /* the slots' memory, one allocation */
    int fl_pinned;                /* ... from pinned_alloc (else malloc) */
    int loss_lag;                 /* a step returns the PREVIOUS step's loss */
    int lag_async;                /* ... and the step's loss comes back without a host wait */
    int loss_pending;             /* the last step's loss has not been returned yet */
    double t_wait;                /* seconds the host waited for the device here, accumulated */
};

enum dlfs_status dlfs_pipeline_init(struct dlfs_pipeline *pl, const struct dlfs_backend *be,
                                    const struct dlfs_pipeline_plan *plan);
void dlfs_pipeline_free(struct dlfs_pipeline *pl);
/* One line for banners ("CUDA graph on (recorded after 1 eager step), with the update; ..."). */
void dlfs_pipeline_describe(const struct dlfs_pipeline *pl, char *buf, size_t len);
/* "on", "off" or "fallback" (recording failed; the steps ran eagerly). */
const char *dlfs_pipeline_graph_state(const struct dlfs_pipeline *pl);
/* Whether the next step runs as the graph; whether the graph holds the update too
 * (planned so: then a graph step, recorded or fallen back to eager, ends with it). */
bool dlfs_pipeline_graph_on(const struct dlfs_pipeline *pl);
bool dlfs_pipeline_graph_updates(const struct dlfs_pipeline *pl);
/* Whether the graph is recorded (else its steps run the body eagerly), whether
 * recording failed (eager from then on); the update's per-step values the graph
 * reads (backend memory, with graph_update); whether a step's loss comes back
 * without a host wait; whether the last step's loss is still owed (1) or not (0);
 * the seconds the host waited for the device since the last reset. */
bool dlfs_pipeline_recorded(const struct dlfs_pipeline *pl);
bool dlfs_pipeline_fell_back(const struct dlfs_pipeline *pl);
const struct dlfs_optim_dyn *dlfs_pipeline_dyn_dev(const struct dlfs_pipeline *pl);
int dlfs_pipeline_lag_async(const struct dlfs_pipeline *pl);
int dlfs_pipeline_pending(const struct dlfs_pipeline *pl);
double dlfs_pipeline_seconds(const struct dlfs_pipeline *pl);
void dlfs_pipeline_seconds_reset(struct dlfs_pipeline *pl);

/* Graph steps: upload step `step`'s per-step values (sample ids[0..rows), and
 * with graph_update the optimizer's `dyn`) from its ring slot into the buffers the
 * graph reads: pl->ids_dev, or ws_ids. Then run `body` (ctx) as the graph: eagerly
 * the first time, recorded the second, replayed after. */
void dlfs_pipeline_upload(struct dlfs_pipeline *pl, long step, const uint32_t *ids, int rows,
                          const struct dlfs_optim_dyn *dyn, uint32_t *ws_ids);
void dlfs_pipeline_run(struct dlfs_pipeline *pl, void (*body)(void *ctx), void *ctx);
/* The ids buffer the graph's gather reads. */
const uint32_t *dlfs_pipeline_ids(const struct dlfs_pipeline *pl, const uint32_t *ws_ids);

/* End of step `step`: its loss sums (stats_dev: 2 doubles, backend memory) into
 * its slot, without waiting (`async`) or with a to_host (a sync, which the staged
 * paths rely on). Returns the loss sum owed now: this step's, or with the lag the
 * previous step's (0 after a flush or at the first step). */
double dlfs_pipeline_finish(struct dlfs_pipeline *pl, long step, const double *stats_dev, int async);
/* The loss sum still owed (waits for the last step, step - 1), 0 when none:
 * summing every finish's return and then this gives the same values in the same
 * order as without the lag. */
double dlfs_pipeline_flush(struct dlfs_pipeline *pl, long step);

#endif
