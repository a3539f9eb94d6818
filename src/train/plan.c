/* What a run is, decided once at set-up: the batch arithmetic, the gradient path,
 * one GPU per rank, the data fitting the model, threads and precision. Each
 * returns a status for the caller to agree on across ranks. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "train/train-impl.h"
#include "dlfs/util.h"

static enum dlfs_status batch_plan_(struct dlfs_run *r)
{
    const struct dlfs_options *o = r->o;
    const int P = r->comm->size;
    if (o->batch_per_rank) {
        r->global_batch = o->batch_per_rank * P;
    } else {
        r->global_batch = o->batch;
        if (o->batch % P)
            return dlfs_error_set(DLFS_ERR_USAGE, "--batch %d (the global batch) is not divisible by the %d "
                                  "ranks; use a multiple of %d, or --batch-per-rank", o->batch, P, P);
    }
    r->local_batch = r->global_batch / P;
    if (o->deterministic) {
        const int V = o->virtual_shards;
        if (V % P)
            return dlfs_error_set(DLFS_ERR_USAGE, "--virtual-shards %d is not divisible by the %d ranks: in "
                                  "deterministic mode the number of ranks must divide V (use fewer ranks, "
                                  "or a larger power-of-two --virtual-shards)", V, P);
        if (r->global_batch % V)
            return dlfs_error_set(DLFS_ERR_USAGE, "global batch %d is not divisible by --virtual-shards %d",
                                  r->global_batch, V);
        if (V / P > DLFS_MAX_PASSES)
            return dlfs_error_set(DLFS_ERR_USAGE, "--virtual-shards %d: at most %d shards per rank", V,
                                  DLFS_MAX_PASSES);
        if (o->threads > 1)
            return dlfs_error_set(DLFS_ERR_USAGE, "--threads %d: deterministic mode runs one BLAS thread "
                                  "per rank (its bit-identity needs the same GEMM code path on every rank "
                                  "count)", o->threads);
        /* the passes already run one virtual shard at a time: micro-batches are groups
         * of them, so every shard's gradient and the fixed tree stay as they are */
        if ((V / P) % o->accum_steps)
            return dlfs_error_set(DLFS_ERR_USAGE, "--accum-steps %d: in deterministic mode each rank's %d virtual "
                                  "shard(s) (--virtual-shards %d / %d ranks) form the micro-batches, so N must "
                                  "divide %d; use a larger --virtual-shards, or fewer ranks", o->accum_steps, V / P,
                                  V, P, V / P);
        r->passes = V / P;
        r->pass_rows = r->global_batch / V;
        r->bn_group = r->pass_rows;
        return DLFS_OK;
    }
    if (r->local_batch % o->accum_steps)
        return dlfs_error_set(DLFS_ERR_USAGE, "--accum-steps %d does not divide the %d rows each rank takes of the "
                              "global batch %d; use a divisor of %d", o->accum_steps, r->local_batch, r->global_batch,
                              r->local_batch);
    r->passes = o->accum_steps;
    r->pass_rows = r->local_batch / o->accum_steps;
    /* batchnorm statistics per virtual shard here too, so that fast mode normalises
     * like deterministic mode on any rank count; per rank where shards straddle ranks */
    const int V = o->virtual_shards;
    r->bn_group = V > 0 && r->global_batch % V == 0 && r->local_batch % (r->global_batch / V) == 0
                      ? r->global_batch / V : r->local_batch;
    return DLFS_OK;
}

/* Batch norm normalises over groups of bn_group rows: a micro-batch must hold
 * whole groups, or accumulation would change what the model computes. */
static enum dlfs_status micro_groups_(const struct dlfs_run *r)
{
    if (r->pass_rows % r->bn_group == 0 || !r->model.num_buffers) return DLFS_OK;
    return dlfs_error_set(DLFS_ERR_USAGE, "--accum-steps %d: micro-batches of %d rows would split the batch-norm "
                          "groups of %d rows (one virtual shard of the global batch %d); use --accum-steps %d or a "
                          "divisor of it, or fewer --virtual-shards", r->o->accum_steps, r->pass_rows, r->bn_group,
                          r->global_batch, r->local_batch / r->bn_group);
}

enum dlfs_status dlfs_run_check_data(struct dlfs_run *r)
{
    const struct dlfs_dataset *ds = &r->ds;
    const struct dlfs_model *m = &r->model;
    if (m->input_dim != ds->c * ds->h * ds->w)
        return dlfs_error_set(DLFS_ERR_SHAPE, "model '%s' takes %d inputs but the images of %s are %dx%dx%d "
                              "= %d values; start the spec with in(%d)", r->o->model, m->input_dim, ds->path,
                              ds->c, ds->h, ds->w, ds->c * ds->h * ds->w, ds->c * ds->h * ds->w);
    if (m->num_classes != ds->num_classes)
        return dlfs_error_set(DLFS_ERR_SHAPE, "model '%s' has %d outputs but %s has %d classes; make the "
                              "last dense layer %d wide", r->o->model, m->num_classes, ds->path,
                              ds->num_classes, ds->num_classes);
    if ((size_t)r->global_batch > ds->train.n)
        return dlfs_error_set(DLFS_ERR_USAGE, "global batch %d is larger than the %zu training samples of %s",
                              r->global_batch, ds->train.n, ds->path);
    if (ds->test.n < (size_t)r->comm->size)
        return dlfs_error_set(DLFS_ERR_USAGE, "%s has %zu test samples, fewer than the %d ranks",
                              ds->path, ds->test.n, r->comm->size);
    return DLFS_OK;
}

void dlfs_run_threads(struct dlfs_run *r)
{
    if (!r->be->set_threads) return;
    int t = r->o->threads;
    if (r->o->deterministic) t = 1;
    else if (!t) {
        if (getenv("OPENBLAS_NUM_THREADS")) { /* the user's choice */
            r->threads = atoi(getenv("OPENBLAS_NUM_THREADS"));
            return;
        }
        long cores = sysconf(_SC_NPROCESSORS_ONLN);
        t = (int)(cores / r->comm->local_size);
        if (t < 1) t = 1;
    }
    r->threads = t;
    r->be->set_threads(t);
}

int dlfs_run_eval_batch(const struct dlfs_run *r)
{
    if (r->o->eval_batch > 0) return r->o->eval_batch;
    if (r->model.positions <= 1) return 1000; /* the image models' default, as ever */
    int lo = 1, hi = 1000; /* the most windows within the budget: lo fits (or is 1) */
    while (lo < hi) {
        const int mid = lo + (hi - lo + 1) / 2;
        if (dlfs_workspace_bytes(&r->model, mid) <= DLFS_EVAL_LM_BYTES) lo = mid;
        else hi = mid - 1;
    }
    return lo > r->pass_rows ? lo : r->pass_rows;
}

/* --precision is process-wide backend state: set on every run, fp32 included, so a
 * run never inherits the previous one's (tests run several in one process). */
static enum dlfs_status precision_(struct dlfs_run *r)
{
    const enum dlfs_precision p = r->o->precision;
    if (r->be->set_precision) r->be->set_precision(p);
    else if (p != DLFS_PRECISION_FP32)
        return dlfs_error_set(DLFS_ERR_USAGE, "--precision %s: the %s backend computes in fp32 only",
                              dlfs_precision_name(p), r->be->name);
    return DLFS_OK;
}

/* --comm: the transport that sums this run's gradients, from the rows of
 * DLFS_TRANSPORTS (dlfs/comm.h; deterministic mode takes the fixed-order tree, its
 * bit-identical guarantee; NCCL needs device buffers and a build with NCCL). */
static enum dlfs_status comm_path_(const struct dlfs_run *r, const struct dlfs_transport_ops **tp)
{
    const struct dlfs_options *o = r->o;
    const struct dlfs_transport_want w = {
        .be = r->be, .comm = o->comm, .deterministic = o->deterministic, .ranks = r->comm->size,
        .device = o->device == DLFS_DEVICE_AUTO ? "auto" : "cuda", .nccl = dlfs_backend_nccl(r->be),
    };
    return dlfs_transport_choose(&w, tp);
}

/* One rank per physical GPU unless --comm mpi: compare the GPUs' UUIDs across the
 * node (collective: every rank takes part, whatever `st` says). */
static enum dlfs_status gpu_unique_(struct dlfs_run *r, enum dlfs_status st)
{
    const struct dlfs_options *o = r->o;
    unsigned char uuid[16];
    const int check = st == DLFS_OK && !r->be->host_memory && o->comm != DLFS_COMM_PATH_MPI &&
                      dlfs_gpu_uuid(uuid) == 0;
    int other = -1;
    const int dup = dlfs_comm_node_duplicate(r->comm, check ? uuid : NULL, sizeof uuid, &other);
    if (st != DLFS_OK || !dup) return st;
    const char *cvd = getenv("CUDA_VISIBLE_DEVICES");
    char why[8];
    return dlfs_error_set(DLFS_ERR_DEVICE, "--device %s: node-local rank %d has no GPU of its own: it would share "
                          "one with rank %d (%d GPU(s) visible to it, CUDA_VISIBLE_DEVICES=%s) and each rank needs "
                          "its own, because NCCL refuses two ranks on one GPU; run fewer ranks per node (one per "
                          "GPU), or --comm mpi (ranks then share GPUs, for testing), or --device cpu",
                          o->device == DLFS_DEVICE_AUTO ? "auto" : "cuda", r->comm->local_rank, other,
                          dlfs_cuda_device_count(why, sizeof why), cvd ? cvd : "unset");
}

/* The choices every rank must make alike, agreed: backend (one GPU per rank
 * unless --comm mpi), gradient path, model, precision, batch arithmetic. */
enum dlfs_status dlfs_run_choose(struct dlfs_run *r, const struct dlfs_transport_ops **tp)
{
    const struct dlfs_options *o = r->o;
    char note[512];
    enum dlfs_status st = dlfs_backend_select(o->device, r->comm->local_rank, &r->be, note, sizeof note);
    if (st == DLFS_OK && note[0] && r->comm->rank == 0 && !o->quiet) printf("--device auto: %s\n", note);
    st = gpu_unique_(r, st);
    if (st == DLFS_OK) st = comm_path_(r, tp);
    if (st == DLFS_OK) st = dlfs_model_parse(o->model, &r->model);
    if (st == DLFS_OK) st = dlfs_model_check_backend(&r->model, r->be);
    if (st == DLFS_OK && r->model.positions > 1 && (o->augment_crop || o->augment_flip))
        st = dlfs_error_set(DLFS_ERR_USAGE, "--augment-crop/--augment-flip would shift and mirror the token windows "
                            "of language model %s: leave them out", o->model);
    if (st == DLFS_OK) st = precision_(r);
    if (st == DLFS_OK) st = batch_plan_(r);
    if (st == DLFS_OK) st = micro_groups_(r);
    DLFS_TRY(dlfs_comm_agree(r->comm, st));
    int bad = 0;
    const enum dlfs_comm_path path = dlfs_transport_path(*tp);
    if (dlfs_comm_same_u64(r->comm, (uint64_t)path, &bad)) return DLFS_OK;
    /* two choices only: rank `bad` took the one rank 0 did not */
    const enum dlfs_comm_path other = path == DLFS_COMM_PATH_NCCL ? DLFS_COMM_PATH_MPI : DLFS_COMM_PATH_NCCL;
    return dlfs_error_set(DLFS_ERR_COMM, "--comm %s: rank %d chose %s for its gradients but rank 0 chose %s "
                          "(nodes with different GPUs or builds?); give --comm mpi",
                          dlfs_comm_path_name(o->comm), bad, dlfs_comm_path_name(other),
                          dlfs_comm_path_name(path));
}
