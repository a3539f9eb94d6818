/* dlfs-train --bench: training steps on synthetic data, median step time,
 * throughput and achieved GFLOP/s (6 x multiply-adds of the dense and conv layers
 * x batch per step).
 *
 * A step's time is the host time of its dlfs_run_step call, without an extra
 * sync: a step ends waiting for its own loss (a sync) or, with the loss lag, for
 * the previous step's, so in the steady state either is the time per step of a
 * training run (the device's, when it is the bottleneck). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "dlfs/util.h"
#include "train/train-impl.h"

/* Timed steps: the median step and the shares of comm-wait and data, the slowest
 * rank's (all three are maxima over the ranks). */
static void timed_(struct dlfs_run *r, const uint32_t *idx, double out[3])
{
    const int steps = r->o->steps;
    double *t = dlfs_malloc((size_t)steps * sizeof *t);
    double comm_total = 0.0, data_total = 0.0, all_total = 0.0;
    for (int i = 0; i < steps; i++) {
        dlfs_comm_barrier(r->comm, "the benchmark's step barrier"); /* each step starts together */
        dlfs_run_times_reset(r);
        const double t0 = dlfs_now();
        const struct dlfs_batch bt = dlfs_batcher_fixed(&r->batcher, idx, r->step);
        dlfs_run_step(r, &bt);
        t[i] = dlfs_now() - t0;
        const struct dlfs_times tm = dlfs_run_times(r);
        comm_total += tm.comm;
        data_total += tm.data;
        all_total += t[i];
    }
    dlfs_run_flush(r);
    r->be->sync();
    out[0] = comm_total / all_total;
    out[1] = data_total / all_total;
    out[2] = dlfs_median(t, (size_t)steps);
    free(t);
    dlfs_comm_max_f64(r->comm, out, 3);
}

static void report_(const struct dlfs_run *r, const double shares[3], const char *hex)
{
    const struct dlfs_options *o = r->o;
    const int B = r->global_batch;
    const double med = shares[2], flops = dlfs_model_train_flops_per_sample(&r->model) * B;
    printf("bench: model %s (%zu parameters), %s backend, %s GEMMs, %d rank(s), comm %s, batch %d global "
           "(%d per rank), %s, optimizer %s\n", r->model.spec, r->n, r->be->name,
           dlfs_precision_name(o->precision), r->comm->size, dlfs_run_comm_name(r), B, r->local_batch,
           o->deterministic ? "deterministic" : "fast mode", dlfs_optim_name(o->optim));
    printf("bench: pipeline: %s; params_sha256 %s after the run\n", r->pipeline, hex);
    const double mib = (double)dlfs_optim_state_bytes(&r->opt) / 1048576.0;
    printf("bench: optimizer state %.1f MiB on rank 0%s\n", mib, dlfs_gsync_zero(&r->gs) ? " (ZeRO-1 shard)" : "");
    printf("bench: %d steps after %d warm-up: median step %.3f ms, %.0f samples/s, %.1f GFLOP/s, "
           "comm-wait %.1f%%, data %.1f%%\n", o->steps, o->bench_warmup, med * 1e3, B / med,
           flops / med / 1e9, 100 * shares[0], 100 * shares[1]);
    if (r->metrics)
        fprintf(r->metrics, "{\"event\": \"bench\", \"model\": \"%s\", \"params\": %zu, \"backend\": \"%s\", "
                "\"ranks\": %d, \"batch\": %d, \"batch_per_rank\": %d, \"steps\": %d, \"step_ms\": %.4f, "
                "\"samples_per_s\": %.1f, \"gflops\": %.2f, \"comm_wait_share\": %.4f, \"data_share\": %.4f, "
                "\"deterministic\": %s, \"comm\": \"%s\", \"precision\": \"%s\", \"cuda_graph\": \"%s\", "
                "\"zero\": %d, \"optimizer_state_mib\": %.3f, \"accum_steps\": %d}\n",
                r->model.spec, r->n, r->be->name, r->comm->size, B, r->local_batch, o->steps, med * 1e3, B / med,
                flops / med / 1e9, shares[0], shares[1], o->deterministic ? "true" : "false",
                dlfs_run_comm_name(r), dlfs_precision_name(o->precision), dlfs_pipeline_graph_state(&r->pipe),
                (int)dlfs_gsync_zero(&r->gs), mib, o->accum_steps);
    fflush(stdout);
}

enum dlfs_status dlfs_bench_run(const struct dlfs_options *o, const struct dlfs_comm *comm)
{
    struct dlfs_run run, *r = &run;
    enum dlfs_status st = dlfs_run_init(r, o, comm, DLFS_RUN_BENCH);
    if (st != DLFS_OK) {
        dlfs_run_free(r);
        return st;
    }
    const int B = r->global_batch;
    uint32_t *idx = dlfs_malloc((size_t)B * sizeof *idx);
    for (int i = 0; i < B; i++) idx[i] = (uint32_t)i; /* every step takes the same rows */
    dlfs_run_plan(r, o->bench_warmup + o->steps);
    for (int i = 0; i < o->bench_warmup; i++) {
        const struct dlfs_batch bt = dlfs_batcher_fixed(&r->batcher, idx, r->step);
        dlfs_run_step(r, &bt);
    }
    dlfs_run_flush(r);
    r->be->sync();
    double shares[3];
    timed_(r, idx, shares);
    char hex[65];
    dlfs_run_digest(r, hex);
    if (comm->rank == 0) report_(r, shares, hex);
    free(idx);
    st = dlfs_tracer_write(r);
    return dlfs_run_close(r, st);
}
