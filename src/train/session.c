/* Setting up a run: backend, model, batch arithmetic, dataset, slabs. Every
 * failure is agreed across ranks so that all of them stop with one message. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "train/train-impl.h"
#include "dlfs/checkpoint.h"
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
        if (V / P > (int)(sizeof r->grads / sizeof r->grads[0]))
            return dlfs_error_set(DLFS_ERR_USAGE, "--virtual-shards %d: at most %d shards per rank",
                                  V, (int)(sizeof r->grads / sizeof r->grads[0]));
        if (o->threads > 1)
            return dlfs_error_set(DLFS_ERR_USAGE, "--threads %d: deterministic mode runs one BLAS thread "
                                  "per rank (its bit-identity needs the same GEMM code path on every rank "
                                  "count)", o->threads);
        r->passes = V / P;
        r->pass_rows = r->global_batch / V;
        r->bn_group = r->pass_rows;
    } else {
        r->passes = 1;
        r->pass_rows = r->local_batch;
        /* batchnorm statistics per virtual shard here too, so that fast mode normalises
         * like deterministic mode on any rank count; per rank where shards straddle ranks */
        const int V = o->virtual_shards;
        r->bn_group = V > 0 && r->global_batch % V == 0 && r->local_batch % (r->global_batch / V) == 0
                          ? r->global_batch / V : r->local_batch;
    }
    r->lr = o->lr;
    if (o->lr_scaling == DLFS_LR_SCALING_LINEAR) r->lr = o->lr * r->global_batch / o->lr_ref_batch;
    return DLFS_OK;
}

static enum dlfs_status check_data_(struct dlfs_run *r)
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

static void threads_(struct dlfs_run *r)
{
    if (!r->be->set_threads) return;
    int t = r->o->threads;
    if (r->o->deterministic) t = 1;
    else if (!t) {
        if (getenv("OPENBLAS_NUM_THREADS")) return; /* the user's choice */
        long cores = sysconf(_SC_NPROCESSORS_ONLN);
        t = (int)(cores / r->comm->local_size);
        if (t < 1) t = 1;
    }
    r->be->set_threads(t);
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

static enum dlfs_status alloc_(struct dlfs_run *r)
{
    const struct dlfs_backend *be = r->be;
    const size_t bytes = r->n * sizeof(float);
    int ok = (r->params = be->alloc(bytes)) != NULL;
    for (int i = 0; i < r->passes; i++) ok = ok && (r->grads[i] = be->alloc(bytes)) != NULL;
    if (r->o->optim != DLFS_OPTIM_SGD || r->o->momentum > 0) ok = ok && (r->m = be->alloc(bytes)) != NULL;
    if (r->o->optim != DLFS_OPTIM_SGD) ok = ok && (r->v = be->alloc(bytes)) != NULL;
    r->nbuf = r->model.num_buffers;
    if (r->nbuf) {
        ok = ok && (r->bufs = be->alloc(r->nbuf * sizeof(float))) != NULL;
        for (int i = 0; i < r->passes; i++) ok = ok && (r->bstats[i] = be->alloc(r->nbuf * sizeof(float))) != NULL;
        r->bhost = dlfs_malloc((r->nbuf + (r->nbuf + 1) / 2) * sizeof(float));
    }
    if (!ok)
        return dlfs_error_set(DLFS_ERR_NOMEM, "out of %s memory for %zu parameters (model '%s')",
                              be->name, r->n, r->o->model);
    r->host = dlfs_malloc(bytes);
    if (r->o->deterministic) r->scratch = dlfs_malloc((r->n + 1) / 2 * sizeof(float));
    int rows = r->pass_rows;
    if (r->have_ds && r->o->eval_batch > rows) rows = r->o->eval_batch;
    DLFS_TRY(dlfs_workspace_init(&r->ws, &r->model, be, rows));
    r->stage_rows = rows;
    /* host staging holds a whole local batch (all passes: staged and prefetched
     * batches are assembled at once) or an evaluation chunk */
    const size_t hrows = (size_t)(rows > r->local_batch ? rows : r->local_batch);
    r->host_img = dlfs_malloc(hrows * r->model.input_dim);
    r->host_lab = dlfs_malloc(hrows * sizeof(int32_t));
    if (!(r->dev_img = be->alloc((size_t)rows * r->model.input_dim)))
        return dlfs_error_set(DLFS_ERR_NOMEM, "out of %s memory for a batch of %d images", be->name, rows);
    for (int l = 0; l < r->model.num_layers; l++) r->boundaries[l] = r->model.layers[l].w_off;
    dlfs_buckets_init(&r->buckets, r->comm, r->grads[0], r->boundaries, r->model.num_layers, r->n,
                      (size_t)(r->o->bucket_mb * 1048576.0));
    if (!r->o->deterministic) DLFS_TRY(dlfs_buckets_use(&r->buckets, r->path, be));
    return DLFS_OK;
}

/* --comm: how this run sums its gradients (dlfs_comm_path). Deterministic mode
 * always takes the fixed-order MPI reduction on host copies (its bit-identical
 * guarantee); NCCL needs device buffers and a build with NCCL. */
static enum dlfs_status comm_path_(struct dlfs_run *r)
{
    const struct dlfs_options *o = r->o;
    const bool device = !r->be->host_memory;
    r->path = DLFS_COMM_PATH_MPI;
    if (o->comm == DLFS_COMM_PATH_NCCL) {
        if (!device)
            return dlfs_error_set(DLFS_ERR_DEVICE, "--comm nccl sums GPU buffers, but this rank runs on the %s "
                                  "backend (--device %s found no usable GPU); use --comm mpi or auto",
                                  r->be->name, o->device == DLFS_DEVICE_AUTO ? "auto" : "cuda");
        if (!dlfs_comm_nccl_built())
            return dlfs_error_set(DLFS_ERR_DEVICE, "--comm nccl: this dlfs was built without NCCL (install "
                                  "libnccl-dev and reconfigure), or use --comm mpi");
        r->path = DLFS_COMM_PATH_NCCL;
    } else if (o->comm == DLFS_COMM_PATH_AUTO && device && !o->deterministic && dlfs_comm_nccl_built() &&
               r->comm->size > 1) { /* one rank: nothing to sum (--comm nccl still runs it, for tests) */
        r->path = DLFS_COMM_PATH_NCCL;
    }
    return DLFS_OK;
}

const char *dlfs_run_comm_name(const struct dlfs_run *r)
{
    if (r->path == DLFS_COMM_PATH_NCCL) return "nccl";
    if (r->comm->size == 1) return "none";
    if (r->o->deterministic) return "mpi-tree";
    return r->be->host_memory ? "mpi" : "mpi-staged";
}

/* Keep a split in backend memory for gather_u8: host-memory backends use the
 * split's own arrays; devices get a copy when both splits together take at most
 * half of the free memory (the rest is the model's to grow into: eval chunks,
 * other processes). Returns 1 when resident. */
static int resident_init_(struct dlfs_run *r, struct dlfs_resident *res, const struct dlfs_split *split,
                          size_t budget)
{
    const struct dlfs_backend *be = r->be;
    const size_t bytes = split->n * (size_t)r->model.input_dim;
    if (be->host_memory) {
        *res = (struct dlfs_resident){.split = split, .img = split->images, .lab = split->labels};
        return 1;
    }
    if (bytes + split->n > budget) return 0;
    uint8_t *img = be->alloc(bytes), *lab = be->alloc(split->n);
    if (!img || !lab) { /* too big after all: the staged path works everywhere */
        be->free(img);
        be->free(lab);
        return 0;
    }
    be->to_device(img, split->images, bytes);
    be->to_device(lab, split->labels, split->n);
    *res = (struct dlfs_resident){.split = split, .img = img, .lab = lab, .owned = 1};
    return 1;
}

_Static_assert(sizeof(struct dlfs_optim_dyn) <= DLFS_DYN_BYTES, "the slot layout assumes it");

/* The ring of in-flight step slots (train-impl.h). Page-locked when the step runs
 * as a graph (its uploads and the loss read-back are then plain async copies),
 * else ordinary memory. */
static enum dlfs_status inflight_init_(struct dlfs_run *r)
{
    const struct dlfs_backend *be = r->be;
    const size_t ids = ((size_t)r->pass_rows * sizeof(uint32_t) + 63) / 64 * 64;
    const size_t slot = 32 + DLFS_DYN_BYTES + ids; /* stats (16 B), hp (16 B), ids */
    const size_t bytes = DLFS_LAG_SLOTS * slot;
    if (r->graph_on && be->pinned_alloc && be->to_device_async && (r->fl_block = be->pinned_alloc(bytes)))
        r->fl_pinned = 1;
    else
        r->fl_block = dlfs_calloc(1, bytes);
    memset(r->fl_block, 0, bytes); /* pinned memory comes uninitialised */
    for (int k = 0; k < DLFS_LAG_SLOTS; k++) {
        char *base = (char *)r->fl_block + (size_t)k * slot;
        r->fl[k] = (struct dlfs_inflight){.stats = (double *)base, .hp = (struct dlfs_optim_dyn *)(base + 32),
                                          .ids = (uint32_t *)(base + 32 + DLFS_DYN_BYTES)};
    }
    return DLFS_OK;
}

enum dlfs_status dlfs_run_pipeline_init(struct dlfs_run *r)
{
    const struct dlfs_options *o = r->o;
    const struct dlfs_backend *be = r->be;
    const struct dlfs_split *splits[2] = {&r->ds.train, &r->ds.test};
    int on_dev = 0;
    if (o->data_on_device && be->gather_u8) {
        size_t budget = be->mem_free ? be->mem_free() / 2 : (size_t)-1;
        for (int i = 0; i < 2; i++) {
            if (!splits[i]->n || !resident_init_(r, &r->res[i], splits[i], budget)) continue;
            budget -= splits[i]->n * ((size_t)r->model.input_dim + 1);
            on_dev |= 1 << i;
        }
    }
    const int augment = o->augment_crop || o->augment_flip;
    const int train_gathered = (on_dev & 1) && !augment; /* augmentation is host code: staged */
    enum dlfs_status st = DLFS_OK;
    if (!train_gathered && o->prefetch) st = dlfs_prefetch_init(&r->prefetch, r, r->local_batch);
    DLFS_TRY(dlfs_comm_agree(r->comm, st));

    int dropout = 0;
    for (int l = 0; l < r->model.num_layers; l++) dropout |= r->model.layers[l].type == DLFS_LAYER_DROPOUT;
    /* A graph needs every step to issue the same kernels with the same arguments:
     * no per-step dropout key (passed by value), one pass, no reduction to
     * interleave (a multi-rank reduction is not recorded), data gathered from a
     * fixed id buffer. */
    const char *why_not = !be->graph_begin ? "not on this backend"
                          : o->cuda_graph == 0 ? "off"
                          : r->comm->size > 1 ? "off: several ranks"
                          : r->passes > 1 ? "off: deterministic passes"
                          : !train_gathered ? "off: data not gathered on the device"
                          : dropout ? "off: dropout draws per step" : NULL;
    r->graph_on = why_not == NULL;
    DLFS_TRY(inflight_init_(r));
    /* The update joins the graph when no reduction comes between the backward pass
     * and it (one rank; NCCL sums even one rank's gradients, outside the graph). */
    r->graph_update = r->graph_on && r->path != DLFS_COMM_PATH_NCCL && r->fl_pinned && be->sgd_update_dev &&
                      be->adam_update_dev;
    if (r->graph_update &&
        !(r->hp_dev = be->alloc(DLFS_DYN_BYTES + (size_t)r->pass_rows * sizeof(uint32_t))))
        r->graph_update = 0;
    if (r->graph_update) r->ids_dev = (uint32_t *)((char *)r->hp_dev + DLFS_DYN_BYTES);
    /* Then the step need not wait for the device: its loss comes back one step late
     * (test hook DLFS_STEP_LAG=0|1 forces the lag off or on, also where the loss is
     * read back synchronously, e.g. on the CPU: the sums must not change). */
    r->lag_async = r->graph_update && be->to_host_async && be->mark_record && be->mark_wait;
    const char *lag = getenv("DLFS_STEP_LAG");
    r->loss_lag = lag && *lag ? strcmp(lag, "0") != 0 : r->lag_async;
    if (!r->loss_lag) r->lag_async = 0;
    snprintf(r->pipeline, sizeof r->pipeline, "data %s%s; CUDA graph %s%s%s",
             train_gathered ? "on the device, gathered per step"
             : r->prefetch.started ? "staged per batch, prefetch thread" : "staged per batch",
             !train_gathered && r->prefetch.started && r->prefetch.stage[0].pinned ? " (pinned)" : "",
             r->graph_on ? "on (recorded after 1 eager step)" : why_not,
             r->graph_update ? ", with the update" : "",
             r->lag_async ? "; no host wait per step (loss read 1 step late)"
             : r->loss_lag ? "; loss read 1 step late" : "");
    return DLFS_OK;
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

enum dlfs_status dlfs_run_init(struct dlfs_run *r, const struct dlfs_options *o,
                               const struct dlfs_comm *comm, int with_data)
{
    memset(r, 0, sizeof *r);
    r->o = o;
    r->comm = comm;
    /* only the MPI path may put several ranks on one GPU (NCCL refuses) */
    enum dlfs_status st = dlfs_backend_select(o->device, comm->local_rank, &r->be);
    st = gpu_unique_(r, st);
    if (st == DLFS_OK) st = comm_path_(r);
    if (st == DLFS_OK) st = dlfs_model_parse(o->model, &r->model);
    if (st == DLFS_OK) st = dlfs_model_check_backend(&r->model, r->be);
    if (st == DLFS_OK) st = precision_(r);
    if (st == DLFS_OK) st = batch_plan_(r);
    DLFS_TRY(dlfs_comm_agree(comm, st));
    int bad = 0;
    if (!dlfs_comm_same_u64(comm, (uint64_t)r->path, &bad)) {
        /* two choices only: rank `bad` took the one rank 0 did not */
        const enum dlfs_comm_path other = r->path == DLFS_COMM_PATH_NCCL ? DLFS_COMM_PATH_MPI : DLFS_COMM_PATH_NCCL;
        return dlfs_error_set(DLFS_ERR_COMM, "--comm %s: rank %d chose %s for its gradients but rank 0 chose %s "
                              "(nodes with different GPUs or builds?); give --comm mpi",
                              dlfs_comm_path_name(o->comm), bad, dlfs_comm_path_name(other),
                              dlfs_comm_path_name(r->path));
    }
    if (r->path == DLFS_COMM_PATH_NCCL) {
        DLFS_TRY(dlfs_comm_nccl_init(comm));
        r->nccl_up = 1;
    }
    threads_(r);
    r->n = r->model.num_params;

    if (with_data) {
        st = dlfs_dataset_load(o->data, &r->ds);
        r->have_ds = st == DLFS_OK;
        if (st == DLFS_OK) st = check_data_(r);
        DLFS_TRY(dlfs_comm_agree(comm, st));
    }
    /* a resumed run appends: its metrics continue the interrupted run's */
    if (comm->rank == 0 && o->metrics && !(r->metrics = fopen(o->metrics, o->resume ? "a" : "w")))
        st = dlfs_error_set(DLFS_ERR_IO, "--metrics %s: cannot open for writing: %s", o->metrics,
                            strerror(errno));
    if (st == DLFS_OK && comm->rank == 0 && o->checkpoint_dir) st = dlfs_ckpt_dir_check(o->checkpoint_dir);
    if (st == DLFS_OK) st = alloc_(r);
    DLFS_TRY(dlfs_comm_agree(comm, st));

    const char *trace = getenv("DLFS_TRACE_SAMPLES"); /* tests: PREFIX -> PREFIX.<rank> */
    if (trace && with_data) {
        char path[4096];
        snprintf(path, sizeof path, "%s.%d", trace, comm->rank);
        r->trace = fopen(path, "w");
    }
    /* same seed => same bits on every rank; dlfs_run_check_sync verifies it */
    r->seed = o->seed;
    dlfs_model_init_params(&r->model, o->seed, r->host);
    r->be->to_device(r->params, r->host, r->n * sizeof(float));
    if (r->nbuf) {
        dlfs_model_init_buffers(&r->model, r->bhost);
        r->be->to_device(r->bufs, r->bhost, r->nbuf * sizeof(float));
    }
    r->ws.buffers = r->bufs;
    r->ws.bn_group = r->bn_group;
    if (with_data) DLFS_TRY(dlfs_run_pipeline_init(r));
    return DLFS_OK;
}

void dlfs_run_free(struct dlfs_run *r)
{
    const struct dlfs_backend *be = r->be;
    if (r->metrics) fclose(r->metrics);
    if (r->trace) fclose(r->trace);
    if (be) {
        dlfs_prefetch_free(&r->prefetch, be); /* joins the thread: before the split goes */
        if (r->graph) be->graph_free(r->graph);
        if (r->fl_block) {
            be->sync(); /* no copy from or into the slots still queued */
            if (r->fl_pinned) be->pinned_free(r->fl_block);
            else free(r->fl_block);
        }
        be->free(r->hp_dev);
        for (int i = 0; i < 2; i++)
            if (r->res[i].owned) {
                be->free(r->res[i].img);
                be->free(r->res[i].lab);
            }
        if (r->ws.be) dlfs_workspace_free(&r->ws, &r->model);
        be->free(r->params);
        for (int i = 0; i < r->passes; i++) be->free(r->grads[i]);
        be->free(r->bufs);
        for (int i = 0; i < r->passes; i++) be->free(r->bstats[i]);
        be->free(r->m);
        be->free(r->v);
        be->free(r->dev_img);
    }
    if (r->buckets.begin) dlfs_buckets_free(&r->buckets);
    if (r->nccl_up) dlfs_comm_nccl_free();
    free(r->host);
    free(r->scratch);
    free(r->bhost);
    free(r->host_img);
    free(r->host_lab);
    if (r->have_ds) dlfs_dataset_free(&r->ds);
    dlfs_model_free(&r->model);
    memset(r, 0, sizeof *r);
}
