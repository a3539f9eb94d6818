/* One training step: batch assembly, forward/backward (per virtual shard in
 * deterministic mode), gradient reduction, optimizer update. Plus the schedule,
 * evaluation and the parameter digest. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "train/train-impl.h"
#include "dlfs/util.h"

#define DLFS_KEY_DROPOUT 0xd209ULL
#define DLFS_KEY_AUGMENT 0xa096ULL

/* Light augmentation of one uint8 image (c, h, w) in place: shift by (dy, dx)
 * in [-crop, crop] with zero fill (= pad by `crop`, crop back at a random offset)
 * and mirror left-right with probability 1/2 — drawn from (key, sample index),
 * so every rank count sees the same images. */
static void augment_(const struct dlfs_run *r, uint8_t *img, uint32_t sample, uint64_t key, uint8_t *tmp)
{
    const int crop = r->o->augment_crop, C = r->ds.c, H = r->ds.h, W = r->ds.w;
    const uint64_t h = dlfs_hash64(key, sample);
    const int span = 2 * crop + 1;
    const int dy = crop ? (int)(h % (uint64_t)span) - crop : 0;
    const int dx = crop ? (int)((h >> 16) % (uint64_t)span) - crop : 0;
    const int flip = r->o->augment_flip && ((h >> 32) & 1);
    if (!dy && !dx && !flip) return;
    const size_t n = (size_t)C * H * W;
    memcpy(tmp, img, n);
    for (int c = 0; c < C; c++)
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++) {
                const int sy = y + dy, sx0 = x + dx, sx = flip ? W - 1 - sx0 : sx0;
                const int in = sy >= 0 && sy < H && sx0 >= 0 && sx0 < W;
                img[((size_t)c * H + y) * W + x] = in ? tmp[((size_t)c * H + sy) * W + sx] : 0;
            }
}

void dlfs_run_assemble(const struct dlfs_run *r, const struct dlfs_split *split, const uint32_t *idx, int rows,
                       uint64_t aug_key, uint8_t *img, int32_t *lab)
{
    const size_t dim = (size_t)r->model.input_dim;
    uint8_t *tmp = aug_key ? dlfs_malloc(dim) : NULL;
    for (int i = 0; i < rows; i++) {
        memcpy(img + i * dim, split->images + (size_t)idx[i] * dim, dim);
        lab[i] = split->labels[idx[i]];
        if (aug_key) augment_(r, img + i * dim, idx[i], aug_key, tmp);
    }
    free(tmp);
}

/* ws->x / ws->labels / ws->ids from host staging img/lab (rows of samples idx):
 * upload, then normalise on the device. `async`: img/lab are pinned stages that
 * stay untouched until the step's closing to_host. */
static void upload_rows_(struct dlfs_run *r, const uint8_t *img, const int32_t *lab, const uint32_t *idx, int rows,
                         int async)
{
    const struct dlfs_backend *be = r->be;
    const double t0 = dlfs_now();
    void (*put)(void *, const void *, size_t) = async && be->to_device_async ? be->to_device_async : be->to_device;
    put(r->dev_img, img, (size_t)rows * r->model.input_dim);
    put(r->ws.labels, lab, (size_t)rows * sizeof(int32_t));
    be->to_device(r->ws.ids, idx, (size_t)rows * sizeof(uint32_t)); /* dropout's key: the sample, not the rank */
    be->normalize_u8(r->ws.x, r->dev_img, (size_t)rows, r->ds.c, (size_t)r->ds.h * r->ds.w, r->ds.mean,
                     r->ds.std);
    r->t_data += dlfs_now() - t0;
}

/* Test hook: DLFS_FAULT_COMM_STALL="RANK:STEP:SECONDS" makes that rank stop for
 * SECONDS at the start of step STEP, before it takes part in any reduction: the
 * peers' gradient waits must end the job after --comm-timeout (no hang). */
static void fault_stall_(const struct dlfs_run *r)
{
    const char *f = getenv("DLFS_FAULT_COMM_STALL");
    int rank, secs;
    long step;
    if (!f || sscanf(f, "%d:%ld:%d", &rank, &step, &secs) != 3) return;
    if (rank != r->comm->rank || step != r->step) return;
    fprintf(stderr, "dlfs: DLFS_FAULT_COMM_STALL: rank %d stalls %d s at step %ld (test hook)\n", rank, secs, step);
    fflush(stderr);
    sleep((unsigned)secs);
}

/* The same from a resident split: gather_u8 reads the rows named by `ids`
 * (backend memory: ws->ids, or the graph's per-step block). */
static void gather_rows_(struct dlfs_run *r, const struct dlfs_resident *res, const uint32_t *ids, int rows)
{
    r->be->gather_u8(r->ws.x, r->ws.labels, res->img, res->lab, ids, rows, r->ds.c, (size_t)r->ds.h * r->ds.w,
                     r->ds.mean, r->ds.std);
}

/* Unaugmented rows of `split` come from backend memory when it is resident. */
static const struct dlfs_resident *resident_(const struct dlfs_run *r, const struct dlfs_split *split,
                                             uint64_t aug_key)
{
    if (aug_key) return NULL; /* augmentation is host code: staged path (with the prefetch thread) */
    for (int i = 0; i < 2; i++)
        if (r->res[i].split == split) return &r->res[i];
    return NULL;
}

/* Eval/one-off batches: rows idx[0..rows) of split into ws, unaugmented. */
static void load_rows_(struct dlfs_run *r, const struct dlfs_split *split, const uint32_t *idx, int rows)
{
    const struct dlfs_resident *res = resident_(r, split, 0);
    if (res) {
        const double t0 = dlfs_now();
        r->be->to_device(r->ws.ids, idx, (size_t)rows * sizeof(uint32_t));
        gather_rows_(r, res, r->ws.ids, rows);
        r->t_data += dlfs_now() - t0;
        return;
    }
    const double t0 = dlfs_now();
    dlfs_run_assemble(r, split, idx, rows, 0, r->host_img, r->host_lab);
    r->t_data += dlfs_now() - t0;
    upload_rows_(r, r->host_img, r->host_lab, idx, rows, 0);
}

static void layer_done_(int layer, void *ctx)
{
    struct dlfs_run *r = ctx;
    dlfs_buckets_ready(&r->buckets, r->model.layers[layer].w_off);
    dlfs_buckets_poke(&r->buckets);
}

/* Batchnorm running statistics: every group of the global batch (one virtual
 * shard) contributed its mean and variance to this rank's per-pass sums; add
 * them in the same fixed order as the gradients (so deterministic mode gives the
 * same bits on any rank count), average, and blend in with momentum 0.1. */
static void running_stats_(struct dlfs_run *r)
{
    const struct dlfs_backend *be = r->be;
    const double t0 = dlfs_now();
    for (int width = 1; width < r->passes; width *= 2)
        for (int i = 0; i + width < r->passes; i += 2 * width)
            be->axpy(r->nbuf, 1.0f, r->bstats[i + width], r->bstats[i]);
    if (r->comm->size > 1) {
        be->to_host(r->bhost, r->bstats[0], r->nbuf * sizeof(float));
        if (r->o->deterministic) dlfs_comm_allreduce_det(r->comm, r->bhost, r->nbuf, r->bhost + r->nbuf);
        else dlfs_comm_allreduce_f32(r->comm, r->bhost, r->nbuf);
        be->to_device(r->bstats[0], r->bhost, r->nbuf * sizeof(float));
    }
    const float momentum = 0.1f, groups = (float)(r->global_batch / r->bn_group);
    be->scale(r->nbuf, 1.0f - momentum, r->bufs);
    be->axpy(r->nbuf, momentum / groups, r->bstats[0], r->bufs);
    r->t_comm += dlfs_now() - t0;
}

double dlfs_run_lr(const struct dlfs_run *r, long step)
{
    const struct dlfs_options *o = r->o;
    if (o->warmup > 0 && step < o->warmup) return r->lr * (double)(step + 1) / o->warmup;
    if (o->schedule == DLFS_SCHED_CONSTANT) return r->lr;
    const long span = r->total_steps - o->warmup;
    double t = span > 0 ? (double)(step - o->warmup) / span : 1.0;
    if (t > 1.0) t = 1.0;
    return o->lr_min + (r->lr - o->lr_min) * 0.5 * (1.0 + cos(3.14159265358979323846 * t));
}

static struct dlfs_optim_hp hp_(const struct dlfs_run *r)
{
    const struct dlfs_options *o = r->o;
    struct dlfs_optim_hp hp = {
        .lr = (float)dlfs_run_lr(r, r->step),
        .momentum = (float)o->momentum,
        .nesterov = o->nesterov,
        .beta1 = (float)o->beta1,
        .beta2 = (float)o->beta2,
        .eps = (float)o->eps,
        .weight_decay = (float)o->weight_decay,
        .decoupled = o->optim == DLFS_OPTIM_ADAMW,
    };
    if (o->optim != DLFS_OPTIM_SGD) {
        const double t = (double)(r->step + 1);
        hp.bias_c1 = (float)(1.0 - pow(o->beta1, t));
        hp.bias_c2 = (float)(1.0 - pow(o->beta2, t));
    }
    return hp;
}

static void update_(struct dlfs_run *r)
{
    const struct dlfs_optim_hp hp = hp_(r);
    if (r->o->optim == DLFS_OPTIM_SGD) r->be->sgd_update(r->n, r->params, r->grads[0], r->m, &hp);
    else r->be->adam_update(r->n, r->params, r->grads[0], r->m, r->v, &hp);
}

/* The same update with the per-step values read from r->hp_dev when it runs
 * (graph_update: recorded once, replayed every step). */
static void update_dev_(struct dlfs_run *r)
{
    const struct dlfs_optim_hp hp = hp_(r);
    if (r->o->optim == DLFS_OPTIM_SGD) r->be->sgd_update_dev(r->n, r->params, r->grads[0], r->m, &hp, r->hp_dev);
    else r->be->adam_update_dev(r->n, r->params, r->grads[0], r->m, r->v, &hp, r->hp_dev);
}

/* Augmentation key of a step (0: no augmentation). */
static uint64_t aug_key_(const struct dlfs_run *r, long step)
{
    return r->o->augment_crop || r->o->augment_flip ? dlfs_key(r->seed, DLFS_KEY_AUGMENT, (uint64_t)step) | 1 : 0;
}

/* This rank's staged batch (samples mine[0..local_batch)): the prefetch thread's
 * stage when it holds exactly this batch, else assembled here; then the next
 * step's batch goes to the thread. A stage handed out here stays untouched until
 * the step after next posts into it, and every step ends with a to_host (a
 * sync): its asynchronous uploads are done by then. */
static void stage_batch_(struct dlfs_run *r, const struct dlfs_split *split, const uint32_t *mine,
                         const uint32_t *next, uint64_t aug_key, const uint8_t **img, const int32_t **lab,
                         int *async)
{
    const double t0 = dlfs_now();
    const int rows = r->local_batch;
    const struct dlfs_stage *s =
        r->prefetch.started ? dlfs_prefetch_take(&r->prefetch, split, mine, rows, aug_key) : NULL;
    if (s) {
        *img = s->img;
        *lab = s->lab;
        *async = s->pinned;
    } else {
        dlfs_run_assemble(r, split, mine, rows, aug_key, r->host_img, r->host_lab);
        *img = r->host_img;
        *lab = r->host_lab;
        *async = 0;
    }
    if (r->prefetch.started && next)
        dlfs_prefetch_post(&r->prefetch, split, next + (size_t)r->comm->rank * rows, rows, aug_key_(r, r->step + 1));
    r->t_data += dlfs_now() - t0;
}

/* What the CUDA graph holds (r->graph_on: one pass, one rank, resident
 * unaugmented data, no dropout): from the zeroed loss sums to the gradients,
 * only kernels with fixed pointers, shapes and arguments; with r->graph_update
 * (no reduction to wait for) also the running statistics and the optimizer
 * update. What changes per step is read from device memory, uploaded before each
 * replay: the sample ids (ws->ids; with graph_update r->ids_dev, which follows
 * r->hp_dev, the update's lr / bias corrections, so that one copy takes both). */
static void graph_body_(struct dlfs_run *r, const struct dlfs_resident *res, float scale)
{
    const struct dlfs_backend *be = r->be;
    be->fill((float *)r->ws.stats, 0.0f, 4);
    gather_rows_(r, res, r->graph_update ? r->ids_dev : r->ws.ids, r->pass_rows);
    if (r->nbuf) be->fill(r->bstats[0], 0.0f, r->nbuf);
    r->ws.bn_stats = r->nbuf ? r->bstats[0] : NULL;
    dlfs_model_forward(&r->model, &r->ws, r->params, r->pass_rows);
    dlfs_model_loss(&r->model, &r->ws, r->pass_rows, scale);
    dlfs_model_backward(&r->model, &r->ws, r->params, r->grads[0], r->pass_rows, NULL, NULL);
    if (r->graph_update) { /* the order of the eager path: running statistics, then the update */
        if (r->nbuf) running_stats_(r);
        update_dev_(r);
    }
}

/* Record after one eager warm-up step (cuBLAS heuristics, lazily loaded
 * kernels), then replay: the same kernels in the same order, so the same bits
 * as --cuda-graph off. No host wait here. The uploads come from this step's
 * ring slot, which the step two back used last: its mark says it is free
 * (with the loss lag the previous step already waited for it). */
static void graph_step_(struct dlfs_run *r, const struct dlfs_resident *res, const uint32_t *mine, float scale)
{
    const struct dlfs_backend *be = r->be;
    const int k = (int)(r->step % DLFS_LAG_SLOTS);
    const struct dlfs_inflight *f = &r->fl[k];
    double t0 = dlfs_now();
    const size_t bytes = (size_t)r->pass_rows * sizeof(uint32_t);
    if (r->fl_pinned && be->mark_wait) be->mark_wait(k);
    if (r->graph_update) { /* implies fl_pinned (session.c); hp then ids, as in hp_dev / ids_dev */
        const struct dlfs_optim_hp hp = hp_(r);
        *f->hp = (struct dlfs_optim_dyn){.lr = hp.lr, .bias_c1 = hp.bias_c1, .bias_c2 = hp.bias_c2};
        memcpy(f->ids, mine, bytes);
        be->to_device_async(r->hp_dev, f->hp, DLFS_DYN_BYTES + bytes);
    } else if (r->fl_pinned) {
        memcpy(f->ids, mine, bytes);
        be->to_device_async(r->ws.ids, f->ids, bytes);
    } else {
        be->to_device(r->ws.ids, mine, bytes);
    }
    r->t_data += dlfs_now() - t0;
    t0 = dlfs_now();
    if (!r->graph && r->graph_warm) {
        if (be->graph_begin() == 0) {
            graph_body_(r, res, scale);
            r->graph = be->graph_end(); /* NULL: nothing ran; eager below and from now on */
        }
        if (!r->graph) r->graph_on = 0;
    }
    if (r->graph) {
        be->graph_launch(r->graph);
    } else {
        graph_body_(r, res, scale);
        r->graph_warm = 1;
    }
    r->t_compute += dlfs_now() - t0;
}

double dlfs_run_flush(struct dlfs_run *r)
{
    if (!r->loss_pending) return 0.0;
    const int k = (int)((r->step - 1) % DLFS_LAG_SLOTS);
    if (r->lag_async) {
        const double t0 = dlfs_now();
        r->be->mark_wait(k);
        r->t_compute += dlfs_now() - t0;
    }
    r->loss_pending = 0;
    return r->fl[k].stats[0];
}

/* The step's loss sums into its slot: without waiting (`async`: to_host_async and
 * a mark) or with a to_host (a sync, which the staged paths rely on). Returns the
 * loss sum owed now: this step's, or with the lag the previous step's. */
static double finish_(struct dlfs_run *r, int async)
{
    const struct dlfs_backend *be = r->be;
    const int k = (int)(r->step % DLFS_LAG_SLOTS);
    const double t0 = dlfs_now();
    if (async) {
        be->to_host_async(r->fl[k].stats, r->ws.stats, 2 * sizeof(double));
        be->mark_record(k);
    } else {
        be->to_host(r->fl[k].stats, r->ws.stats, 2 * sizeof(double));
    }
    r->t_compute += dlfs_now() - t0;
    double loss;
    if (r->loss_lag) {
        loss = dlfs_run_flush(r); /* the previous step, r->step - 1 */
        r->loss_pending = 1;
    } else {
        loss = r->fl[k].stats[0];
    }
    r->step++;
    return loss;
}

double dlfs_run_step(struct dlfs_run *r, const struct dlfs_split *split, const uint32_t *idx)
{
    const struct dlfs_backend *be = r->be;
    const float scale = 1.0f / (float)r->global_batch;
    const uint32_t *mine = idx + (size_t)r->comm->rank * r->local_batch;
    const uint32_t *next = r->next_idx;
    r->next_idx = NULL;
    fault_stall_(r);
    if (r->trace) {
        for (int i = 0; i < r->local_batch; i++) fprintf(r->trace, "%u\n", mine[i]);
    }
    r->ws.training = 1;
    r->ws.key = dlfs_key(r->seed, DLFS_KEY_DROPOUT, (uint64_t)r->step);
    const uint64_t aug_key = aug_key_(r, r->step);
    const struct dlfs_resident *res = resident_(r, split, aug_key);
    const uint8_t *img = NULL;
    const int32_t *lab = NULL;
    int async = 0;
    int passes = r->passes;
    if (r->graph_on && res == &r->res[0]) {
        graph_step_(r, res, mine, scale);
        if (r->graph_update) return finish_(r, r->lag_async); /* the graph did the rest */
        passes = 0; /* the graph ran the one pass */
    } else {
        if (!res) stage_batch_(r, split, mine, next, aug_key, &img, &lab, &async);
        be->fill((float *)r->ws.stats, 0.0f, 4); /* two doubles: all-zero bits */
    }
    for (int p = 0; p < passes; p++) {
        const size_t off = (size_t)p * r->pass_rows;
        if (res) load_rows_(r, split, mine + off, r->pass_rows);
        else upload_rows_(r, img + off * r->model.input_dim, lab + off, mine + off, r->pass_rows, async);
        const double t0 = dlfs_now();
        if (r->nbuf) be->fill(r->bstats[p], 0.0f, r->nbuf);
        r->ws.bn_stats = r->nbuf ? r->bstats[p] : NULL;
        dlfs_model_forward(&r->model, &r->ws, r->params, r->pass_rows);
        dlfs_model_loss(&r->model, &r->ws, r->pass_rows, scale);
        if (r->o->deterministic) {
            dlfs_model_backward(&r->model, &r->ws, r->params, r->grads[p], r->pass_rows, NULL, NULL);
        } else {
            /* each bucket's reduction starts as soon as the backward pass has issued
             * its last gradient (on devices: ordered after it by events, buckets.c) */
            dlfs_model_backward(&r->model, &r->ws, r->params, r->grads[0], r->pass_rows, layer_done_, r);
        }
        be->sync();
        r->t_compute += dlfs_now() - t0;
    }
    double t0 = dlfs_now();
    if (r->o->deterministic) {
        /* pairwise tree over this rank's shards: the lower levels of the global tree */
        for (int width = 1; width < r->passes; width *= 2)
            for (int i = 0; i + width < r->passes; i += 2 * width)
                be->axpy(r->n, 1.0f, r->grads[i + width], r->grads[i]);
        if (r->comm->size > 1) {
            /* host path: on the CPU backend these are the same buffers */
            be->to_host(r->host, r->grads[0], r->n * sizeof(float));
            dlfs_comm_allreduce_det(r->comm, r->host, r->n, r->scratch);
            be->to_device(r->grads[0], r->host, r->n * sizeof(float));
        }
        r->t_comm += dlfs_now() - t0;
    } else {
        r->t_comm += dlfs_buckets_wait(&r->buckets);
    }
    if (r->nbuf) running_stats_(r);
    t0 = dlfs_now();
    update_(r);
    r->t_compute += dlfs_now() - t0;
    return finish_(r, 0);
}

void dlfs_run_evaluate(struct dlfs_run *r, const struct dlfs_split *split, double *loss, double *acc)
{
    const size_t P = (size_t)r->comm->size, me = (size_t)r->comm->rank;
    const size_t lo = split->n * me / P, hi = split->n * (me + 1) / P;
    uint32_t *idx = dlfs_malloc((size_t)r->stage_rows * sizeof *idx);
    double stats[2] = {0, 0};
    r->be->fill((float *)r->ws.stats, 0.0f, 4);
    r->ws.training = 0;
    for (size_t i = lo; i < hi; i += (size_t)r->stage_rows) {
        int rows = (int)(hi - i < (size_t)r->stage_rows ? hi - i : (size_t)r->stage_rows);
        for (int j = 0; j < rows; j++) idx[j] = (uint32_t)(i + j);
        load_rows_(r, split, idx, rows);
        dlfs_model_forward(&r->model, &r->ws, r->params, rows);
        dlfs_model_loss(&r->model, &r->ws, rows, 0.0f);
    }
    free(idx);
    r->be->to_host(stats, r->ws.stats, sizeof stats);
    /* test hook: DLFS_FAULT_EVAL_STALL="RANK:SECONDS" stops that rank before the
     * evaluation sums; the others' bounded wait must end the job (tests/mpi/comm.sh) */
    const char *f = getenv("DLFS_FAULT_EVAL_STALL");
    int stall_rank, stall_s;
    if (f && sscanf(f, "%d:%d", &stall_rank, &stall_s) == 2 && stall_rank == r->comm->rank) {
        fprintf(stderr, "dlfs: DLFS_FAULT_EVAL_STALL: rank %d stalls %d s in evaluation (test hook)\n", stall_rank,
                stall_s);
        fflush(stderr);
        sleep((unsigned)stall_s);
    }
    dlfs_comm_allreduce_f64(r->comm, stats, 2);
    *loss = stats[0] / (double)split->n;
    *acc = stats[1] / (double)split->n;
}

void dlfs_params_sha256(const float *params, size_t n, char hex[65])
{
    struct dlfs_sha256 s;
    uint8_t d[32];
    dlfs_sha256_init(&s);
    const uint32_t probe = 1;
    if (*(const uint8_t *)&probe == 1) {
        dlfs_sha256_update(&s, params, n * sizeof(float));
    } else { /* big-endian host: hash little-endian bytes */
        for (size_t i = 0; i < n; i++) {
            uint32_t u;
            memcpy(&u, params + i, 4);
            uint8_t b[4] = {(uint8_t)u, (uint8_t)(u >> 8), (uint8_t)(u >> 16), (uint8_t)(u >> 24)};
            dlfs_sha256_update(&s, b, 4);
        }
    }
    dlfs_sha256_final(&s, d);
    dlfs_sha256_hex(d, hex);
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
    uint64_t v = strtoull(hex + 48, NULL, 16);
    int bad = 0;
    if (dlfs_comm_same_u64(r->comm, v, &bad)) return DLFS_OK;
    return dlfs_error_set(DLFS_ERR_COMM, "parameters diverged across ranks at step %ld: rank %d differs "
                          "from rank 0 (a rank computed different gradients or missed an update; "
                          "this is a bug or a hardware fault, please report it)", r->step, bad);
}
