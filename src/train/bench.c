/* dlfs-train --bench: training steps on synthetic data, median step time,
 * throughput (tokens/s for a language model) and achieved GFLOP/s (6 x
 * multiply-adds of the dense and conv layers x batch per step), and where the
 * step goes: the share of the timed steps spent in GEMMs (the backend's account,
 * be->gemm_account: every GEMM, conv-as-GEMM included), the rate they reach, and
 * this machine's sgemm rate with the same GEMM on a large square product.
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

enum { SH_COMM_, SH_DATA_, SH_MED_, SH_GEMM_, SH_GEMM_FLOPS_, SH_GEMM_RATE_, SH_PEAK_, SH_N_ };

/* Timed steps: the median step and the shares of comm-wait and data, the slowest
 * rank's; the GEMMs' share of the step and their rate, the medians over the steps
 * of each step's (robust to a step that a passing load stretched), and their
 * operations per step (the maxima over the ranks; the GEMM figures 0 where the
 * backend does not account for its GEMMs). */
static void timed_(struct dlfs_run *r, const uint32_t *idx, double out[SH_N_])
{
    const int steps = r->o->steps;
    double *t = dlfs_malloc(3 * (size_t)steps * sizeof *t), *share = t + steps, *rate = share + steps;
    double comm_total = 0.0, data_total = 0.0, all_total = 0.0, flops = 0.0, acct[2] = {0.0, 0.0};
    if (r->be->gemm_account) r->be->gemm_account(acct, true);
    for (int i = 0; i < steps; i++) {
        dlfs_comm_barrier(r->comm, "the benchmark's step barrier"); /* each step starts together */
        dlfs_run_times_reset(r);
        const double t0 = dlfs_now();
        const struct dlfs_batch bt = dlfs_batcher_fixed(&r->batcher, idx, r->step);
        dlfs_run_step(r, &bt);
        t[i] = dlfs_now() - t0;
        if (r->be->gemm_account) r->be->gemm_account(acct, true);
        share[i] = acct[0] / t[i], rate[i] = acct[0] > 0 ? acct[1] / acct[0] / 1e9 : 0.0, flops += acct[1];
        const struct dlfs_times tm = dlfs_run_times(r);
        comm_total += tm.comm;
        data_total += tm.data;
        all_total += t[i];
    }
    dlfs_run_flush(r);
    r->be->sync();
    out[SH_COMM_] = comm_total / all_total;
    out[SH_DATA_] = data_total / all_total;
    out[SH_MED_] = dlfs_median(t, (size_t)steps);
    out[SH_GEMM_] = dlfs_median(share, (size_t)steps);
    out[SH_GEMM_RATE_] = dlfs_median(rate, (size_t)steps);
    out[SH_GEMM_FLOPS_] = flops / steps;
    free(t);
}

/* This machine's sgemm rate (GFLOP/s) through the backend's GEMM at the run's
 * threads and precision: the best of 3 products of PEAK_N_ x PEAK_N_ matrices
 * after one to warm up (0 when out of memory). Every rank at once, as its steps. */
#define PEAK_N_ 1536
static double sgemm_peak_(const struct dlfs_backend *be)
{
    const int N = PEAK_N_;
    const size_t nn = (size_t)N * (size_t)N;
    float *a = be->alloc(3 * nn * sizeof *a);
    if (!a) return 0.0;
    be->fill(a, 0.5f, 2 * nn);
    double best = 0.0, acct[2];
    for (int i = 0; i < 4; i++) {
        be->sync();
        const double t0 = dlfs_now();
        be->gemm(false, false, N, N, N, 1.0f, a, N, a + nn, N, 0.0f, a + 2 * nn, N);
        be->sync();
        const double dt = dlfs_now() - t0;
        if (i > 0 && (best == 0.0 || dt < best)) best = dt;
    }
    be->free(a);
    if (be->gemm_account) be->gemm_account(acct, true);
    return best > 0 ? 2.0 * N * (double)N * N / best / 1e9 : 0.0;
}

/* x with at least three significant digits, without an exponent (gpt2: 0.0271 samples/s) */
static const char *rate_(char *o, size_t room, double x)
{
    int d = 2;
    for (double v = x; v >= 10.0 && d > 0; v /= 10.0) d--;
    for (double v = x; v > 0 && v < 1.0 && d < 9; v *= 10.0) d++;
    snprintf(o, room, "%.*f", d, x);
    return o;
}

/* The GEMM line: their share of the step, their rate and the machine's sgemm's. */
static void gemm_line_(const struct dlfs_run *r, const double sh[SH_N_])
{
    if (!r->be->gemm_account) {
        printf("bench: GEMM share not measured on the %s backend\n", r->be->name);
        return;
    }
    char th[32] = "the backend's default threads";
    if (r->threads > 0) snprintf(th, sizeof th, "%d thread%s", r->threads, r->threads > 1 ? "s" : "");
    printf("bench: GEMMs %.0f %% of the step at %.1f GFLOP/s = %.0f %% of this machine's sgemm (%.1f GFLOP/s, %d^3, "
           "%s); %.6g GFLOP of GEMMs per rank per step\n", 100 * sh[SH_GEMM_], sh[SH_GEMM_RATE_],
           sh[SH_PEAK_] > 0 ? 100 * sh[SH_GEMM_RATE_] / sh[SH_PEAK_] : 0.0, sh[SH_PEAK_], PEAK_N_, th,
           sh[SH_GEMM_FLOPS_] / 1e9);
}

static void report_(const struct dlfs_run *r, const double shares[SH_N_], const char *hex)
{
    const struct dlfs_options *o = r->o;
    const int B = r->global_batch, T = r->model.positions;
    const double med = shares[SH_MED_], flops = dlfs_model_train_flops_per_sample(&r->model) * B;
    char sps[32], tps[64] = "";
    rate_(sps, sizeof sps, B / med);
    if (T > 1) {
        char t[32];
        snprintf(tps, sizeof tps, "%s tokens/s, ", rate_(t, sizeof t, (double)B * T / med));
    }
    printf("bench: model %s (%zu parameters), %s backend, %s GEMMs, %d rank(s), comm %s, batch %d global "
           "(%d per rank), %s, optimizer %s\n", r->model.spec, r->n, r->be->name,
           dlfs_precision_name(o->precision), r->comm->size, dlfs_run_comm_name(r), B, r->local_batch,
           o->deterministic ? "deterministic" : "fast mode", dlfs_optim_name(o->optim));
    printf("bench: pipeline: %s; params_sha256 %s after the run\n", r->pipeline, hex);
    const double mib = (double)dlfs_optim_state_bytes(&r->opt) / 1048576.0;
    printf("bench: optimizer state %.1f MiB on rank 0%s\n", mib, dlfs_gsync_zero(&r->gs) ? " (ZeRO-1 shard)" : "");
    printf("bench: %d steps after %d warm-up: median step %.3f ms, %s%s samples/s, %.1f GFLOP/s, "
           "comm-wait %.1f%%, data %.1f%%\n", o->steps, o->bench_warmup, med * 1e3, tps, sps,
           flops / med / 1e9, 100 * shares[SH_COMM_], 100 * shares[SH_DATA_]);
    gemm_line_(r, shares);
    if (r->metrics)
        fprintf(r->metrics, "{\"event\": \"bench\", \"model\": \"%s\", \"params\": %zu, \"backend\": \"%s\", "
                "\"ranks\": %d, \"batch\": %d, \"batch_per_rank\": %d, \"steps\": %d, \"step_ms\": %.4f, "
                "\"samples_per_s\": %.4f, \"gflops\": %.2f, \"comm_wait_share\": %.4f, \"data_share\": %.4f, "
                "\"deterministic\": %s, \"comm\": \"%s\", \"precision\": \"%s\", \"cuda_graph\": \"%s\", "
                "\"zero\": %d, \"optimizer_state_mib\": %.3f, \"accum_steps\": %d, \"tokens_per_s\": %.3f, "
                "\"gemm_share\": %.4f, \"gemm_gflops\": %.2f, \"gemm_flops_per_rank_step\": %.0f, "
                "\"sgemm_peak_gflops\": %.2f}\n",
                r->model.spec, r->n, r->be->name, r->comm->size, B, r->local_batch, o->steps, med * 1e3, B / med,
                flops / med / 1e9, shares[0], shares[1], o->deterministic ? "true" : "false",
                dlfs_run_comm_name(r), dlfs_precision_name(o->precision), dlfs_pipeline_graph_state(&r->pipe),
                (int)dlfs_gsync_zero(&r->gs), mib, o->accum_steps, (double)B * T / med, shares[SH_GEMM_],
                shares[SH_GEMM_RATE_], shares[SH_GEMM_FLOPS_], shares[SH_PEAK_]);
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
    double shares[SH_N_];
    timed_(r, idx, shares);
    dlfs_comm_barrier(r->comm, "the benchmark's sgemm barrier");
    shares[SH_PEAK_] = r->be->gemm_account ? sgemm_peak_(r->be) : 0.0;
    dlfs_comm_max_f64(r->comm, shares, SH_N_);
    char hex[65];
    dlfs_run_digest(r, hex);
    if (comm->rank == 0) report_(r, shares, hex);
    free(idx);
    st = dlfs_tracer_write(r);
    return dlfs_run_close(r, st);
}
