/* One training step — batcher -> model -> gradient sync -> optimizer — and the
 * step's neighbours: evaluation, the parameter digest, the cross-rank check. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/hooks.h"
#include "core/trace.h"
#include "dlfs/util.h"
#include "train/train-impl.h"

#define DLFS_KEY_DROPOUT 0xd209ULL

/* The model's part of pass p over the rows in the workspace: the batch-norm sums
 * zeroed, forward, loss, backward into the gradient sync's slab (`hook` after each
 * layer: the buckets' start). Only backend ops: the CUDA graph records it too. */
static void model_pass_(struct dlfs_run *r, int p, void (*hook)(int layer, void *ctx))
{
    const struct dlfs_backend *be = r->be;
    int span = dlfs_trace_begin("step", "forward", p);
    r->ws.bn_stats = dlfs_gsync_bn_slot(&r->gs, p);
    if (r->ws.bn_stats) be->fill(r->ws.bn_stats, 0.0f, dlfs_gsync_nbuf(&r->gs));
    dlfs_model_forward(&r->model, &r->ws, r->params, r->pass_rows);
    dlfs_model_loss(&r->model, &r->ws, r->pass_rows, 1.0f / (float)r->global_batch);
    dlfs_trace_end(span);
    span = dlfs_trace_begin("step", "backward", p);
    dlfs_gsync_begin_pass(&r->gs, p);
    dlfs_model_backward(&r->model, &r->ws, r->params, dlfs_gsync_slab(&r->gs), r->pass_rows, hook, &r->gs);
    dlfs_gsync_end_pass(&r->gs);
    dlfs_trace_end(span);
}

/* Pass p of batch bt: this rank's rows loaded, then the model. With buckets, each
 * one's sum starts as soon as the backward pass has issued its last gradient (on
 * devices: ordered after it by events). */
static void pass_(struct dlfs_run *r, const struct dlfs_batch *bt, int p)
{
    const int span = dlfs_trace_begin("step", "data", p);
    dlfs_batcher_load(&r->batcher, bt, p, &r->ws);
    dlfs_trace_end(span);
    const double t0 = dlfs_now();
    model_pass_(r, p, dlfs_gsync_hook(&r->gs));
    dlfs_tracer_mark(r, "data, forward, backward");
    r->be->sync();
    r->t_compute += dlfs_now() - t0;
}

/* What the CUDA graph holds (one pass, one rank, resident unaugmented data, no
 * dropout): from the zeroed loss sums to the gradients, only kernels with fixed
 * pointers, shapes and arguments; with graph_update (no reduction to wait for)
 * also the running statistics and the optimizer update. What changes per step is
 * read from device memory, uploaded before each replay (dlfs_pipeline_upload). */
struct graph_ctx_ {
    struct dlfs_run *r;
    const struct dlfs_resident *res;
};

static void graph_body_(void *ctx)
{
    const struct graph_ctx_ *g = ctx;
    struct dlfs_run *r = g->r;
    r->be->fill((float *)r->ws.stats, 0.0f, 4); /* two doubles: all-zero bits */
    dlfs_batcher_gather(&r->batcher, g->res, dlfs_pipeline_ids(&r->pipe, r->ws.ids), r->pass_rows, &r->ws);
    model_pass_(r, 0, NULL);
    if (dlfs_pipeline_graph_updates(&r->pipe)) { /* the order of the eager path: running statistics, then the update */
        if (dlfs_gsync_nbuf(&r->gs)) dlfs_gsync_running_stats(&r->gs, r->bufs, r->global_batch, r->bn_group);
        dlfs_optim_update_dev(&r->opt, r->params, dlfs_gsync_grads(&r->gs), r->step, dlfs_pipeline_dyn_dev(&r->pipe));
    }
}

static void graph_step_(struct dlfs_run *r, const struct dlfs_resident *res, const struct dlfs_batch *bt)
{
    double t0 = dlfs_now();
    const struct dlfs_optim_dyn dyn = dlfs_optim_dyn(&r->opt, r->step);
    const uint32_t *mine = bt->idx + (size_t)r->comm->rank * r->local_batch;
    dlfs_pipeline_upload(&r->pipe, r->step, mine, r->pass_rows, &dyn, r->ws.ids);
    dlfs_batcher_seconds_add(&r->batcher, dlfs_now() - t0);
    t0 = dlfs_now();
    struct graph_ctx_ g = {r, res};
    const bool fallback = dlfs_pipeline_fell_back(&r->pipe);
    const int span = dlfs_trace_begin("step", dlfs_pipeline_recorded(&r->pipe) ? "graph launch" : "graph body", 0);
    dlfs_pipeline_run(&r->pipe, graph_body_, &g);
    dlfs_trace_end(span);
    dlfs_tracer_mark(r, "the step's graph");
    if (dlfs_pipeline_fell_back(&r->pipe) && !fallback && !r->o->quiet)
        printf("pipeline: recording the CUDA graph failed at step %ld: the steps run eagerly from now on\n", r->step);
    r->t_compute += dlfs_now() - t0;
}

/* The step's loss sums back to the host (or, with the lag, queued), then the
 * step counts as done. */
/* A language model's loss sums are over every position: per sample = per token. */
static double per_sample_(const struct dlfs_run *r, double loss)
{
    return r->model.positions > 1 ? loss / r->model.positions : loss;
}

static double finish_(struct dlfs_run *r, int async)
{
    const double loss = per_sample_(r, dlfs_pipeline_finish(&r->pipe, r->step, r->ws.stats, async));
    dlfs_tracer_step(r, 0);
    r->step++;
    return loss;
}

/* After the passes: the sum across ranks, running statistics, the update. */
static void sum_and_update_(struct dlfs_run *r)
{
    int span = dlfs_trace_begin("step", "gradient sum (wait)", -1);
    dlfs_gsync_reduce(&r->gs);
    if (dlfs_gsync_nbuf(&r->gs)) dlfs_gsync_running_stats(&r->gs, r->bufs, r->global_batch, r->bn_group);
    dlfs_trace_end(span);
    span = dlfs_trace_begin("step", "update", -1);
    const double t0 = dlfs_now();
    if (r->o->clip_grad > 0) dlfs_run_clip(r, dlfs_gsync_grads(&r->gs));
    dlfs_optim_update(&r->opt, r->params, dlfs_gsync_grads(&r->gs), r->step);
    r->t_compute += dlfs_now() - t0;
    dlfs_trace_end(span);
    if (dlfs_gsync_zero(&r->gs)) { /* ZeRO-1: every rank's updated part to all */
        span = dlfs_trace_begin("step", "parameter all-gather", -1);
        dlfs_gsync_gather_params(&r->gs, r->params);
        dlfs_trace_end(span);
    }
    dlfs_tracer_mark(r, "gradient sum, update");
}

double dlfs_run_step(struct dlfs_run *r, const struct dlfs_batch *bt)
{
    dlfs_tracer_step(r, 1);
    dlfs_hook_stall(DLFS_HOOK_COMM_STALL, r->comm->rank, r->step);
    r->ws.training = 1;
    r->ws.key = dlfs_key(dlfs_batcher_seed(&r->batcher), DLFS_KEY_DROPOUT, (uint64_t)r->step);
    const struct dlfs_resident *res = dlfs_batcher_resident(&r->batcher, bt);
    int passes = r->passes;
    if (dlfs_pipeline_graph_on(&r->pipe) && dlfs_batcher_is_train(&r->batcher, res)) {
        graph_step_(r, res, bt);
        if (dlfs_pipeline_graph_updates(&r->pipe)) /* the graph did the rest */
            return finish_(r, dlfs_pipeline_lag_async(&r->pipe));
        passes = 0; /* the graph ran the one pass */
    } else {
        r->be->fill((float *)r->ws.stats, 0.0f, 4);
    }
    for (int p = 0; p < passes; p++) pass_(r, bt, p);
    sum_and_update_(r);
    return finish_(r, 0);
}

double dlfs_run_flush(struct dlfs_run *r) { return per_sample_(r, dlfs_pipeline_flush(&r->pipe, r->step)); }

struct dlfs_times dlfs_run_times(const struct dlfs_run *r)
{
    return (struct dlfs_times){.compute = r->t_compute + dlfs_pipeline_seconds(&r->pipe),
                               .comm = dlfs_gsync_seconds(&r->gs), .data = dlfs_batcher_seconds(&r->batcher)};
}

void dlfs_run_times_reset(struct dlfs_run *r)
{
    r->t_compute = 0.0;
    dlfs_pipeline_seconds_reset(&r->pipe);
    dlfs_gsync_seconds_reset(&r->gs);
    dlfs_batcher_seconds_reset(&r->batcher);
}

void dlfs_run_evaluate(struct dlfs_run *r, const struct dlfs_split *split, double *loss, double *acc)
{
    const size_t P = (size_t)r->comm->size, me = (size_t)r->comm->rank, chunk = (size_t)dlfs_batcher_rows(&r->batcher);
    const size_t lo = split->n * me / P, hi = split->n * (me + 1) / P;
    uint32_t *idx = dlfs_malloc(chunk * sizeof *idx);
    double stats[2] = {0, 0};
    r->be->fill((float *)r->ws.stats, 0.0f, 4);
    r->ws.training = 0;
    for (size_t i = lo; i < hi; i += chunk) {
        const int rows = (int)(hi - i < chunk ? hi - i : chunk);
        for (int j = 0; j < rows; j++) idx[j] = (uint32_t)(i + j);
        dlfs_batcher_load_rows(&r->batcher, split, idx, rows, &r->ws);
        dlfs_model_forward(&r->model, &r->ws, r->params, rows);
        dlfs_model_loss(&r->model, &r->ws, rows, 0.0f);
    }
    free(idx);
    r->be->to_host(stats, r->ws.stats, sizeof stats);
    /* test hook: the others' bounded wait must end the job (tests/mpi/comm.sh) */
    dlfs_hook_stall(DLFS_HOOK_EVAL_STALL, r->comm->rank, 0);
    dlfs_comm_allreduce_f64(r->comm, stats, 2);
    *loss = per_sample_(r, stats[0] / (double)split->n);
    *acc = per_sample_(r, stats[1] / (double)split->n); /* language models: next-token accuracy */
}

void dlfs_run_digest(struct dlfs_run *r, char hex[65])
{
    r->be->to_host(r->host, r->params, r->n * sizeof(float));
    dlfs_params_sha256(r->host, r->n, hex);
}

enum dlfs_status dlfs_run_check_sync(struct dlfs_run *r)
{
    char hex[65];
    dlfs_run_digest(r, hex);
    const uint64_t v = strtoull(hex + 48, NULL, 16);
    int bad = 0;
    if (dlfs_comm_same_u64(r->comm, v, &bad)) return DLFS_OK;
    return dlfs_error_set(DLFS_ERR_COMM, "parameters diverged across ranks at step %ld: rank %d differs "
                          "from rank 0 (a rank computed different gradients or missed an update; "
                          "this is a bug or a hardware fault, please report it)", r->step, bad);
}
