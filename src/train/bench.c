/* dlfs-train --bench: training steps on synthetic data, median step time,
 * throughput and achieved GFLOP/s (6 x multiply-adds of the
 * dense and conv layers x batch per step).
 *
 * A step's time is the host time of its dlfs_run_step call, without an extra
 * sync: a step ends waiting for its own loss (a sync) or, with the loss lag, for
 * the previous step's, so in the steady state either is the time per step of a
 * training run (the device's, when it is the bottleneck). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "train/train-impl.h"
#include "dlfs/util.h"

#define DLFS_KEY_SYNTH 0x5917ULL

/* A split of n random images/labels, the same on every rank. */
static void synth_(struct dlfs_run *r, size_t n)
{
    const size_t dim = (size_t)r->model.input_dim;
    struct dlfs_dataset *ds = &r->ds;
    ds->c = r->model.in_c;
    ds->h = r->model.in_h;
    ds->w = r->model.in_w;
    for (int c = 0; c < ds->c && c < DLFS_MAX_CHANNELS; c++) {
        ds->mean[c] = 0.5;
        ds->std[c] = 0.29;
    }
    ds->train.n = n;
    ds->train.images = dlfs_malloc(n * dim);
    ds->train.labels = dlfs_malloc(n);
    for (size_t i = 0; i < n; i++) {
        const uint64_t key = dlfs_key(r->o->seed, DLFS_KEY_SYNTH, i);
        for (size_t j = 0; j < dim; j++) ds->train.images[i * dim + j] = (uint8_t)(dlfs_hash64(key, j) >> 56);
        ds->train.labels[i] = (uint8_t)(dlfs_hash64(key, dim) % (uint64_t)r->model.num_classes);
    }
}

enum dlfs_status dlfs_bench_run(const struct dlfs_options *o, const struct dlfs_comm *comm)
{
    struct dlfs_run run, *r = &run;
    enum dlfs_status st = dlfs_run_init(r, o, comm, 0);
    if (st != DLFS_OK) {
        dlfs_run_free(r);
        return st;
    }
    if (r->model.num_classes > 256) {
        dlfs_run_free(r);
        return dlfs_error_set(DLFS_ERR_USAGE, "--bench: at most 256 classes (labels are bytes)");
    }
    const int B = r->global_batch;
    synth_(r, (size_t)B);
    st = dlfs_run_pipeline_init(r); /* the training path: data on the device, CUDA graph */
    if (st != DLFS_OK) {
        uint8_t *images = r->ds.train.images, *labels = r->ds.train.labels;
        dlfs_run_free(r);
        free(images);
        free(labels);
        return st;
    }
    uint32_t *idx = dlfs_malloc((size_t)B * sizeof *idx);
    for (int i = 0; i < B; i++) idx[i] = (uint32_t)i;
    r->total_steps = o->bench_warmup + o->steps;
    for (int i = 0; i < o->bench_warmup; i++) {
        r->next_idx = idx; /* every step takes the same rows */
        dlfs_run_step(r, &r->ds.train, idx);
    }
    dlfs_run_flush(r);
    r->be->sync();
    double *t = dlfs_malloc((size_t)o->steps * sizeof *t);
    double comm_total = 0.0, data_total = 0.0, all_total = 0.0;
    for (int i = 0; i < o->steps; i++) {
        if (comm->size > 1) MPI_Barrier(comm->world); /* each step starts together: a fair step time */
        r->t_comm = r->t_data = 0.0;
        const double t0 = dlfs_now();
        r->next_idx = i + 1 < o->steps ? idx : NULL;
        dlfs_run_step(r, &r->ds.train, idx);
        t[i] = dlfs_now() - t0;
        comm_total += r->t_comm;
        data_total += r->t_data;
        all_total += t[i];
    }
    dlfs_run_flush(r);
    r->be->sync();
    /* the slowest rank defines the step time */
    double med = dlfs_median(t, (size_t)o->steps);
    double shares[3] = {comm_total / all_total, data_total / all_total, med};
    if (comm->size > 1) MPI_Allreduce(MPI_IN_PLACE, shares, 3, MPI_DOUBLE, MPI_MAX, comm->world);
    med = shares[2];
    char hex[65];
    dlfs_run_digest(r, hex);
    if (comm->rank == 0) {
        const double flops = dlfs_model_train_flops_per_sample(&r->model) * B;
        printf("bench: model %s (%zu parameters), %s backend, %s GEMMs, %d rank(s), comm %s, batch %d global "
               "(%d per rank), %s, optimizer %s\n", r->model.spec, r->n, r->be->name,
               dlfs_precision_name(o->precision), comm->size, dlfs_run_comm_name(r), B, r->local_batch,
               o->deterministic ? "deterministic" : "fast mode", dlfs_optim_name(o->optim));
        printf("bench: pipeline: %s; params_sha256 %s after the run\n", r->pipeline, hex);
        printf("bench: %d steps after %d warm-up: median step %.3f ms, %.0f samples/s, %.1f GFLOP/s, "
               "comm-wait %.1f%%, data %.1f%%\n", o->steps, o->bench_warmup, med * 1e3, B / med,
               flops / med / 1e9, 100 * shares[0], 100 * shares[1]);
        if (r->metrics) {
            fprintf(r->metrics, "{\"event\": \"bench\", \"model\": \"%s\", \"params\": %zu, \"backend\": \"%s\", "
                    "\"ranks\": %d, \"batch\": %d, \"batch_per_rank\": %d, \"steps\": %d, \"step_ms\": %.4f, "
                    "\"samples_per_s\": %.1f, \"gflops\": %.2f, \"comm_wait_share\": %.4f, \"data_share\": %.4f, "
                    "\"deterministic\": %s, \"comm\": \"%s\", \"precision\": \"%s\"}\n", r->model.spec, r->n,
                    r->be->name, comm->size, B, r->local_batch, o->steps, med * 1e3, B / med, flops / med / 1e9,
                    shares[0], shares[1], o->deterministic ? "true" : "false", dlfs_run_comm_name(r),
                    dlfs_precision_name(o->precision));
        }
        fflush(stdout);
    }
    free(t);
    free(idx);
    uint8_t *images = r->ds.train.images, *labels = r->ds.train.labels;
    dlfs_run_free(r); /* first: it joins the prefetch thread, which may read them */
    free(images);
    free(labels);
    return DLFS_OK;
}
