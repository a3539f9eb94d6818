/* The batcher (train/batcher.h): the sampler, resident splits, host staging and
 * uploads, the prefetch thread. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/hooks.h"
#include "dlfs/sampler.h"
#include "dlfs/util.h"
#include "train/batcher.h"

#define DLFS_KEY_AUGMENT 0xa096ULL

enum dlfs_status dlfs_batcher_init(struct dlfs_batcher *b, const struct dlfs_backend *be, const struct dlfs_comm *c,
                                   const struct dlfs_dataset *ds, const struct dlfs_model *m, int global_batch,
                                   int local_batch, int pass_rows, int rows, uint64_t seed, int crop, bool flip)
{
    memset(b, 0, sizeof *b);
    b->be = be;
    b->comm = c;
    b->ds = ds;
    /* the images' own shape (an MLP sees 1x1x784; augmentation needs 1x28x28); bytes
     * per sample: one a value, two for uint16 token ids */
    b->as = (struct dlfs_assembly){.c = ds->c, .h = ds->h, .w = ds->w,
                                   .dim = (size_t)m->input_dim * (ds->ids16 ? 2 : 1), .crop = crop, .flip = flip};
    b->seed = seed;
    b->global_batch = global_batch;
    b->local_batch = local_batch;
    b->pass_rows = pass_rows;
    b->rows = rows;
    b->steps_per_epoch = (long)(ds->train.n / (size_t)global_batch);
    b->stop_step = -1;
    b->perm = dlfs_malloc((ds->train.n ? ds->train.n : 1) * sizeof *b->perm);
    /* host staging holds a whole local batch (all passes: staged and prefetched
     * batches are assembled at once) or an evaluation chunk */
    const size_t hrows = (size_t)(rows > local_batch ? rows : local_batch);
    b->host_img = dlfs_malloc(hrows * b->as.dim);
    b->host_lab = dlfs_malloc(hrows * sizeof(int32_t));
    if (ds->ids16) b->host_x = dlfs_malloc(hrows * (size_t)m->input_dim * sizeof(float));
    if (!(b->dev_img = be->alloc((size_t)rows * b->as.dim)))
        return dlfs_error_set(DLFS_ERR_NOMEM, "out of %s memory for a batch of %d images", be->name, rows);
    return DLFS_OK;
}

void dlfs_batcher_free(struct dlfs_batcher *b)
{
    const struct dlfs_backend *be = b->be;
    if (b->trace) fclose(b->trace);
    if (be) {
        dlfs_prefetch_free(&b->prefetch, be); /* joins the thread: before the splits go */
        for (int i = 0; i < 2; i++)
            if (b->res[i].owned) {
                be->free(b->res[i].img);
                be->free(b->res[i].lab);
            }
        be->free(b->dev_img);
    }
    dlfs_stream_free(&b->stream);
    free(b->perm);
    free(b->order);
    free(b->next_order);
    free(b->host_img);
    free(b->host_lab);
    free(b->host_x);
    memset(b, 0, sizeof *b);
}

enum dlfs_status dlfs_batcher_stream(struct dlfs_batcher *b, uint64_t cache_bytes)
{
    const struct dlfs_split *tr = &b->ds->train;
    if (!cache_bytes) return DLFS_OK;
    /* windows of G chunks, two of them in the cache; every window but the last
     * has at least (G - 1) K + 1 samples, so a batch spans at most two when that
     * is at least the batch. A split not read from a dataset file (token windows,
     * synthetic) has no chunks: K is 1 MiB worth of samples. */
    const size_t K = tr->chunk_rows ? tr->chunk_rows : (b->as.dim < (1 << 20) ? (1 << 20) / b->as.dim : 1);
    const size_t chunk = K * b->as.dim, B = (size_t)b->global_batch;
    const size_t G = (size_t)(cache_bytes / 2 / chunk), need = 1 + (B - 1 + K - 1) / K;
    if (G < need)
        return dlfs_error_set(DLFS_ERR_USAGE, "--data-cache %llu is too small for %s: it holds two windows of whole "
                              "chunks (%zu samples, %.2f MiB each) and a window must hold a global batch of %zu "
                              "samples: give --data-cache %llu or more", (unsigned long long)(cache_bytes >> 20),
                              b->ds->path, K, (double)chunk / 1048576.0, B,
                              (unsigned long long)((2 * need * chunk + (1 << 20) - 1) >> 20));
    b->window_chunks = G;
    b->chunk_rows = K;
    b->order = dlfs_malloc(((tr->n + K - 1) / K) * sizeof *b->order);
    b->next_order = dlfs_malloc(((tr->n + K - 1) / K) * sizeof *b->next_order);
    b->as.stream = &b->stream;
    if (tr->images) return DLFS_OK;
    DLFS_TRY(dlfs_stream_init(&b->stream, tr, b->as.dim, K, G, b->global_batch));
    b->stream.rank = b->comm->rank;
    return DLFS_OK;
}

/* Keep a split in backend memory for gather_u8: host-memory backends use the
 * split's own arrays; devices get a copy when both splits together take at most
 * half of the free memory (the rest is the model's to grow into: eval chunks,
 * other processes). Returns 1 when resident. */
static int resident_init_(struct dlfs_batcher *b, struct dlfs_resident *res, const struct dlfs_split *split,
                          size_t budget)
{
    const struct dlfs_backend *be = b->be;
    const size_t bytes = split->n * b->as.dim;
    if (!split->images || b->ds->ids16) return 0; /* streamed; uint16 ids have no gather op: staged */
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

enum dlfs_status dlfs_batcher_pipeline(struct dlfs_batcher *b, bool data_on_device, bool prefetch, int *gathered,
                                       char *desc, size_t desc_len)
{
    const struct dlfs_backend *be = b->be;
    const struct dlfs_split *splits[2] = {&b->ds->train, &b->ds->test};
    int on_dev = 0;
    if (data_on_device && be->gather_u8) {
        size_t budget = be->mem_free ? be->mem_free() / 2 : (size_t)-1;
        for (int i = 0; i < 2; i++) {
            if (!splits[i]->n || !resident_init_(b, &b->res[i], splits[i], budget)) continue;
            budget -= splits[i]->n * (b->as.dim + 1);
            on_dev |= 1 << i;
        }
    }
    const int augment = b->as.crop || b->as.flip;
    *gathered = (on_dev & 1) && !augment; /* augmentation is host code: staged */
    enum dlfs_status st = DLFS_OK;
    /* a streamed split is read by the thread: HDF5 must allow it */
    const int thread = prefetch && (b->ds->train.images || dlfs_dataset_threadsafe());
    if (!*gathered && thread) st = dlfs_prefetch_init(&b->prefetch, &b->as, be, b->local_batch);
    char win[96] = "";
    if (b->window_chunks)
        snprintf(win, sizeof win, "; %s, windows of %zu samples", b->ds->train.images ? "in memory" : "streamed",
                 b->window_chunks * b->chunk_rows);
    snprintf(desc, desc_len, "%s%s%s",
             *gathered && strcmp(be->name, "cpu") == 0 ? "resident in memory (the CPU backend's device), gathered per step"
             : *gathered ? "on the device, gathered per step"
             : b->prefetch.started ? "staged per batch, prefetch thread" : "staged per batch",
             !*gathered && b->prefetch.started && b->prefetch.stage[0].pinned ? " (pinned)" : "", win);
    return st;
}

/* ---- handing out batches --------------------------------------------------------- */

static uint64_t aug_key_(const struct dlfs_batcher *b, long step)
{
    return b->as.crop || b->as.flip ? dlfs_key(b->seed, DLFS_KEY_AUGMENT, (uint64_t)step) | 1 : 0;
}

void dlfs_batcher_epoch(struct dlfs_batcher *b, int epoch)
{
    const struct dlfs_split *tr = &b->ds->train;
    if (!b->window_chunks) {
        dlfs_sampler_permutation(b->seed, epoch, b->perm, tr->n);
        return;
    }
    if (b->prefetch.started) dlfs_prefetch_idle(&b->prefetch); /* the thread may hold the stream */
    dlfs_sampler_windowed(b->seed, epoch, b->perm, tr->n, b->chunk_rows, b->window_chunks, b->order);
    if (tr->images) return;
    dlfs_sampler_chunks(b->seed, epoch + 1, b->next_order, b->stream.nchunks);
    dlfs_stream_epoch(&b->stream, b->order, b->next_order);
}

static void trace_(struct dlfs_batcher *b, const uint32_t *idx)
{
    const char *prefix = dlfs_hook_value(DLFS_HOOK_TRACE_SAMPLES); /* PREFIX -> PREFIX.<rank> */
    if (prefix && !b->trace) {
        char path[4096];
        snprintf(path, sizeof path, "%s.%d", prefix, b->comm->rank);
        b->trace = fopen(path, "w");
    }
    const uint32_t *mine = idx + (size_t)b->comm->rank * b->local_batch;
    for (int i = 0; b->trace && i < b->local_batch; i++) fprintf(b->trace, "%u\n", mine[i]);
}

struct dlfs_batch dlfs_batcher_at(struct dlfs_batcher *b, long s, long step)
{
    const size_t B = (size_t)b->global_batch;
    struct dlfs_batch bt = {.split = &b->ds->train, .idx = b->perm + (size_t)s * B, .step = step,
                            .aug_key = aug_key_(b, step)};
    /* the next batch of this epoch, for the prefetch thread (perm changes between epochs) */
    if (s + 1 < b->steps_per_epoch && (b->stop_step < 0 || step + 1 < b->stop_step)) bt.next = bt.idx + B;
    trace_(b, bt.idx);
    return bt;
}

struct dlfs_batch dlfs_batcher_fixed(struct dlfs_batcher *b, const uint32_t *idx, long step)
{
    struct dlfs_batch bt = {.split = &b->ds->train, .idx = idx, .step = step, .aug_key = aug_key_(b, step)};
    if (b->stop_step < 0 || step + 1 < b->stop_step) bt.next = idx;
    return bt;
}

/* ---- into the workspace ------------------------------------------------------------ */

const struct dlfs_resident *dlfs_batcher_resident(const struct dlfs_batcher *b, const struct dlfs_batch *bt)
{
    if (bt->aug_key) return NULL; /* augmentation is host code: staged path (with the prefetch thread) */
    for (int i = 0; i < 2; i++)
        if (b->res[i].split == bt->split) return &b->res[i];
    return NULL;
}

bool dlfs_batcher_is_train(const struct dlfs_batcher *b, const struct dlfs_resident *res)
{
    return res && res == &b->res[0];
}

void dlfs_batcher_gather(const struct dlfs_batcher *b, const struct dlfs_resident *res, const uint32_t *ids, int rows,
                         struct dlfs_workspace *ws)
{
    const struct dlfs_dataset *ds = b->ds;
    b->be->gather_u8(ws->x, ws->labels, res->img, res->lab, ids, rows, ds->c, (size_t)ds->h * ds->w, ds->mean,
                     ds->std);
}

/* ws->x / labels / ids from host staging img/lab (rows of samples idx): upload,
 * then normalise on the device; uint16 token ids become floats (the ids
 * themselves) on the host and go up as they are. `async`: img/lab are pinned
 * stages that stay untouched until the step's closing to_host. */
static void upload_(struct dlfs_batcher *b, const uint8_t *img, const int32_t *lab, const uint32_t *idx, int rows,
                    int async, struct dlfs_workspace *ws)
{
    const struct dlfs_backend *be = b->be;
    const struct dlfs_dataset *ds = b->ds;
    void (*put)(void *, const void *, size_t) = async && be->to_device_async ? be->to_device_async : be->to_device;
    if (ds->ids16) {
        const size_t n = (size_t)rows * (b->as.dim / 2);
        for (size_t i = 0; i < n; i++) {
            uint16_t id;
            memcpy(&id, img + 2 * i, sizeof id);
            b->host_x[i] = (float)id;
        }
        be->to_device(ws->x, b->host_x, n * sizeof(float));
    } else {
        put(b->dev_img, img, (size_t)rows * b->as.dim);
    }
    put(ws->labels, lab, (size_t)rows * sizeof(int32_t));
    be->to_device(ws->ids, idx, (size_t)rows * sizeof(uint32_t)); /* dropout's key: the sample, not the rank */
    if (!ds->ids16) be->normalize_u8(ws->x, b->dev_img, (size_t)rows, ds->c, (size_t)ds->h * ds->w, ds->mean, ds->std);
}

void dlfs_batcher_load_rows(struct dlfs_batcher *b, const struct dlfs_split *split, const uint32_t *idx, int rows,
                            struct dlfs_workspace *ws)
{
    const double t0 = dlfs_now();
    const struct dlfs_batch bt = {.split = split};
    const struct dlfs_resident *res = dlfs_batcher_resident(b, &bt);
    if (res) {
        b->be->to_device(ws->ids, idx, (size_t)rows * sizeof(uint32_t));
        dlfs_batcher_gather(b, res, ws->ids, rows, ws);
    } else {
        dlfs_assemble(&b->as, split, idx, rows, 0, b->host_img, b->host_lab);
        upload_(b, b->host_img, b->host_lab, idx, rows, 0, ws);
    }
    b->t_data += dlfs_now() - t0;
}

/* This rank's staged batch (samples mine[0..local_batch)): the prefetch thread's
 * stage when it holds exactly this batch, else assembled here; then the next
 * step's batch goes to the thread. A stage handed out here stays untouched until
 * the step after next posts into it, and every step ends with a to_host (a
 * sync): its asynchronous uploads are done by then. */
static void stage_(struct dlfs_batcher *b, const struct dlfs_batch *bt, const uint32_t *mine)
{
    const int rows = b->local_batch;
    const struct dlfs_stage *s =
        b->prefetch.started ? dlfs_prefetch_take(&b->prefetch, bt->split, mine, rows, bt->aug_key) : NULL;
    if (s) {
        b->img = s->img;
        b->lab = s->lab;
        b->async = s->pinned;
    } else {
        dlfs_assemble(&b->as, bt->split, mine, rows, bt->aug_key, b->host_img, b->host_lab);
        b->img = b->host_img;
        b->lab = b->host_lab;
        b->async = 0;
    }
    if (b->prefetch.started && bt->next)
        dlfs_prefetch_post(&b->prefetch, bt->split, bt->next + (size_t)b->comm->rank * rows, rows,
                           aug_key_(b, bt->step + 1));
}

void dlfs_batcher_load(struct dlfs_batcher *b, const struct dlfs_batch *bt, int pass, struct dlfs_workspace *ws)
{
    const uint32_t *mine = bt->idx + (size_t)b->comm->rank * b->local_batch;
    const size_t off = (size_t)pass * b->pass_rows;
    const struct dlfs_resident *res = dlfs_batcher_resident(b, bt);
    if (res) {
        dlfs_batcher_load_rows(b, bt->split, mine + off, b->pass_rows, ws);
        return;
    }
    const double t0 = dlfs_now();
    if (pass == 0) stage_(b, bt, mine);
    upload_(b, b->img + off * b->as.dim, b->lab + off, mine + off, b->pass_rows, b->async, ws);
    b->t_data += dlfs_now() - t0;
}

uint64_t dlfs_batcher_seed(const struct dlfs_batcher *b) { return b->seed; }
void dlfs_batcher_set_seed(struct dlfs_batcher *b, uint64_t seed) { b->seed = seed; }
int dlfs_batcher_rows(const struct dlfs_batcher *b) { return b->rows; }
long dlfs_batcher_steps_per_epoch(const struct dlfs_batcher *b) { return b->steps_per_epoch; }
long dlfs_batcher_prefetched(const struct dlfs_batcher *b) { return b->prefetch.hits; }
void dlfs_batcher_plan(struct dlfs_batcher *b, long stop_step) { b->stop_step = stop_step; }
double dlfs_batcher_seconds(const struct dlfs_batcher *b) { return b->t_data; }
void dlfs_batcher_seconds_add(struct dlfs_batcher *b, double dt) { b->t_data += dt; }
void dlfs_batcher_seconds_reset(struct dlfs_batcher *b) { b->t_data = 0.0; }
