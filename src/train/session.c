/* Setting up a run and taking it down: the choices (plan.c), the dataset, the
 * objects (batcher, gradient sync, optimizer, pipeline), the initial parameters.
 * Every failure is agreed across ranks so that all of them stop with one message. */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "core/hooks.h"
#include "core/trace.h"
#include "dlfs/checkpoint.h"
#include "dlfs/tokens.h"
#include "dlfs/util.h"
#include "train/train-impl.h"

/* A token file (dlfs-data text) for a language model: its windows of the
 * model's context + 1 as the dataset; with --data-cache, the train windows stay
 * in the file when they take more (as the images of a dataset file). */
static enum dlfs_status tokens_(struct dlfs_run *r, int stream)
{
    if (r->model.positions < 2)
        return dlfs_error_set(DLFS_ERR_SHAPE, "--data %s is a token file (text): train a language model on it "
                              "(--model gpt-tiny, or a spec ending in lmhead), not '%s'", r->o->data, r->o->model);
    struct dlfs_tokens t;
    DLFS_TRY(stream ? dlfs_tokens_open(r->o->data, &t) : dlfs_tokens_load(r->o->data, &t));
    const enum dlfs_status st =
        stream ? dlfs_tokens_dataset_open(&t, r->model.positions, (uint64_t)r->o->data_cache << 20, &r->ds)
               : dlfs_tokens_dataset(&t, r->model.positions, &r->ds);
    dlfs_tokens_free(&t);
    return st;
}

/* The dataset: loaded (training, evaluation) or synthetic (benchmarks). */
static enum dlfs_status data_(struct dlfs_run *r)
{
    const struct dlfs_model *m = &r->model;
    const double synthetic = r->mode == DLFS_RUN_BENCH ? (double)r->global_batch * ((double)m->input_dim + 1) : 0.0;
    const int batch = r->o->batch_per_rank ? r->o->batch_per_rank : r->global_batch;
    DLFS_TRY(dlfs_run_check_memory(r, r->pass_rows, r->o->batch_per_rank ? "--batch-per-rank" : "--batch", batch,
                                   synthetic));
    /* a language model's benchmark with more than 256 tokens: uint16 ids, drawn as two bytes
     * each (the targets are in the windows: the synthetic labels go unused) */
    const int wide = r->mode == DLFS_RUN_BENCH && m->positions > 1 && m->num_classes > 256;
    const int stream = r->o->data_cache && !dlfs_hook_value(DLFS_HOOK_DATA_RESIDENT);
    enum dlfs_status st = r->mode == DLFS_RUN_BENCH /* one global batch of random images, alike on every rank */
                              ? dlfs_dataset_synthetic(&r->ds, m->in_c, m->in_h, m->in_w * (wide ? 2 : 1),
                                                       wide ? 256 : m->num_classes, (size_t)r->global_batch,
                                                       r->o->seed)
                              : dlfs_tokens_probe(r->o->data) ? tokens_(r, stream)
                              : stream ? dlfs_dataset_open(r->o->data, &r->ds, (uint64_t)r->o->data_cache << 20)
                                  : dlfs_dataset_load(r->o->data, &r->ds);
    r->have_ds = st == DLFS_OK;
    if (st == DLFS_OK && r->mode == DLFS_RUN_BENCH && m->positions > 1) { /* token ids below V, as they are */
        r->ds.mean[0] = 0.0, r->ds.std[0] = 1.0 / 255.0;
        uint8_t *img = r->ds.train.images;
        for (size_t i = 0; !wide && i < r->ds.train.n * (size_t)m->input_dim; i++)
            img[i] = (uint8_t)(img[i] % (unsigned)m->num_classes); /* byte vocabularies: bytes */
        for (size_t i = 0; wide && i < r->ds.train.n * (size_t)m->input_dim; i++) { /* two bytes an id */
            const uint16_t id = (uint16_t)((img[2 * i] | (unsigned)img[2 * i + 1] << 8) % (unsigned)m->num_classes);
            memcpy(img + 2 * i, &id, sizeof id);
        }
        r->ds.w = m->in_w, r->ds.ids16 = wide;
    }
    return st == DLFS_OK && r->mode != DLFS_RUN_BENCH ? dlfs_run_check_data(r) : st;
}

/* An output that is one of the inputs (the same file through any spelling or
 * link) would destroy it: refused before anything is written. */
static enum dlfs_status over_input_(const struct dlfs_run *r, const char *opt, const char *out)
{
    const struct dlfs_options *o = r->o;
    const char *in[2][2] = {{"--data", o->data}, {"--resume", o->resume}};
    for (int i = 0; out && i < 2; i++)
        if (in[i][1] && strcmp(in[i][1], "latest") != 0 && dlfs_path_same(out, in[i][1]))
            return dlfs_error_set(DLFS_ERR_USAGE, "%s %s is the same file as %s %s: writing it would destroy that "
                                  "input; give %s another path", opt, out, in[i][0], in[i][1], opt);
    return DLFS_OK;
}

/* A name the checkpoint directory's own files have: checkpoints (ckpt-*.h5),
 * their temporary files (ckpt-*.h5.tmp), the lock and the write probe (.dlfs-*). */
static int ckpt_dir_name_(const char *base)
{
    return strncmp(base, "ckpt-", 5) == 0 || strncmp(base, ".dlfs-", 6) == 0;
}

/* `path` (an option's file) is one of --checkpoint-dir's own files: under the
 * directory (by resolved path, also when not there yet) with such a name, or
 * the same file as one of the directory's entries with such a name (a link). */
static int in_ckpt_dir_(const char *dir, const char *path)
{
    char *rd = dlfs_path_resolve(dir), *rp = dlfs_path_resolve(path);
    const size_t n = rd ? strlen(rd) : 0;
    const char *base = rp ? strrchr(rp, '/') : NULL;
    int clash = rd && rp && base && strncmp(rp, rd, n) == 0 && (rp[n] == '/' || strcmp(rd, "/") == 0) &&
                ckpt_dir_name_(base + 1);
    free(rd);
    free(rp);
    DIR *d = clash ? NULL : opendir(dir);
    struct dirent *e;
    while (d && !clash && (e = readdir(d))) {
        if (!ckpt_dir_name_(e->d_name)) continue;
        char *p = dlfs_malloc(strlen(dir) + strlen(e->d_name) + 2);
        sprintf(p, "%s/%s", dir, e->d_name);
        clash = dlfs_path_same(p, path);
        free(p);
    }
    if (d) closedir(d);
    return clash;
}

/* The files of --checkpoint-dir (written, pruned, moved and renamed over by the
 * run) must be no input and no other output: refused before anything is written. */
static enum dlfs_status ckpt_dir_clash_(const struct dlfs_options *o)
{
    if (!o->checkpoint_dir) return DLFS_OK;
    if (o->data && in_ckpt_dir_(o->checkpoint_dir, o->data))
        return dlfs_error_set(DLFS_ERR_USAGE, "--data %s lies in --checkpoint-dir %s under a checkpoint's name: it "
                              "could be overwritten or pruned; move it, or use another --checkpoint-dir", o->data,
                              o->checkpoint_dir);
    const char *out[2][2] = {{"--metrics", o->metrics}, {"--trace", o->trace}};
    for (int i = 0; i < 2; i++)
        if (out[i][1] && in_ckpt_dir_(o->checkpoint_dir, out[i][1]))
            return dlfs_error_set(DLFS_ERR_USAGE, "%s %s is a file of --checkpoint-dir %s (a checkpoint ckpt-*.h5, "
                                  "its temporary file or the directory's lock): writing it would destroy a "
                                  "checkpoint, or a checkpoint would replace it; give %s another path", out[i][0],
                                  out[i][1], o->checkpoint_dir, out[i][0]);
    return DLFS_OK;
}

/* Outputs only rank 0 writes: the metrics file, the timeline, the checkpoint directory. */
static enum dlfs_status outputs_(struct dlfs_run *r)
{
    const struct dlfs_options *o = r->o;
    if (r->comm->rank != 0) return DLFS_OK;
    DLFS_TRY(over_input_(r, "--metrics", o->metrics));
    DLFS_TRY(over_input_(r, "--trace", o->trace));
    DLFS_TRY(ckpt_dir_clash_(o));
    if (o->metrics && o->trace && dlfs_path_same(o->metrics, o->trace)) /* also when neither is there yet */
        return dlfs_error_set(DLFS_ERR_USAGE, "--metrics %s and --trace %s name the same file; give them two",
                              o->metrics, o->trace);
    /* opened without truncating: a run refused later (lineage) must not cost the old
     * file its lines; a fresh run truncates it once it is under way (dlfs_run_start) */
    if (o->metrics && !(r->metrics = fopen(o->metrics, r->mode == DLFS_RUN_BENCH ? "w" : "a")))
        return dlfs_error_set(DLFS_ERR_IO, "--metrics %s: cannot open for writing: %s", o->metrics, strerror(errno));
    FILE *t = o->trace ? fopen(o->trace, "a") : NULL; /* written at the end: find out now */
    if (o->trace && !t)
        return dlfs_error_set(DLFS_ERR_IO, "--trace %s: cannot open for writing: %s", o->trace, strerror(errno));
    if (t) fclose(t);
    if (!o->checkpoint_dir || r->mode != DLFS_RUN_TRAIN) return DLFS_OK;
    int lock = -1; /* held until dlfs_run_free (or the process ends) */
    const enum dlfs_status st = dlfs_ckpt_dir_check(o->checkpoint_dir, &lock);
    r->ckpt_lock = lock + 1;
    return st;
}

/* Parameters, running statistics, workspace and the objects, in backend memory.
 * The gradient sync gets transport tp and *tp_arg (what its prepare made), which
 * it owns from then on (*tp_arg NULL), also when that fails. */
static enum dlfs_status objects_(struct dlfs_run *r, const struct dlfs_transport_ops *tp, void **tp_arg)
{
    const struct dlfs_options *o = r->o;
    const struct dlfs_backend *be = r->be;
    const size_t nbuf = r->model.num_buffers;
    r->n = r->model.num_params;
    /* evaluation chunks: --eval-batch rows, but never more than a rank's share of the test split */
    const size_t share = (r->ds.test.n + (size_t)r->comm->size - 1) / (size_t)r->comm->size;
    const int eval_batch = dlfs_run_eval_batch(r);
    const int eval_rows = (size_t)eval_batch < share ? eval_batch : (int)share;
    int rows = r->pass_rows;
    if (r->mode != DLFS_RUN_BENCH && eval_rows > rows) rows = eval_rows;
    const int by_eval = rows > r->pass_rows, batch = o->batch_per_rank ? o->batch_per_rank : r->global_batch;
    DLFS_TRY(dlfs_run_check_memory(r, rows, by_eval ? "--eval-batch" : o->batch_per_rank ? "--batch-per-rank" : "--batch",
                                   by_eval ? eval_batch : batch, 0.0));
    if (!(r->params = be->alloc(r->n * sizeof(float))) || (nbuf && !(r->bufs = be->alloc(nbuf * sizeof(float)))))
        return dlfs_error_set(DLFS_ERR_NOMEM, "out of %s memory for %zu parameters (model '%s')", be->name, r->n,
                              o->model);
    r->host = dlfs_malloc((r->n > nbuf ? r->n : nbuf) * sizeof(float));
    DLFS_TRY(dlfs_workspace_init(&r->ws, &r->model, be, rows));
    void *arg = *tp_arg;
    *tp_arg = NULL;
    DLFS_TRY(dlfs_gsync_init(&r->gs, r->comm, be, &r->model, r->passes, (size_t)(o->bucket_mb * 1048576.0), tp,
                             arg, o->zero));
    const struct dlfs_optim_config oc = dlfs_options_optim(o, r->global_batch);
    DLFS_TRY(dlfs_optim_init(&r->opt, &oc, be, r->n, dlfs_gsync_shard(&r->gs))); /* ZeRO-1: this rank's part */
    if (oc.weight_decay > 0) { /* a language model's biases, norms and embeddings keep theirs */
        size_t(*nodecay)[2] = dlfs_malloc(5 * DLFS_MAX_LAYERS * sizeof *nodecay);
        dlfs_optim_set_nodecay(&r->opt, nodecay, dlfs_model_nodecay(&r->model, nodecay, 5 * DLFS_MAX_LAYERS));
    }
    DLFS_TRY(dlfs_batcher_init(&r->batcher, be, r->comm, &r->ds, &r->model, r->global_batch, r->local_batch,
                               r->pass_rows, rows, o->seed, o->augment_crop, o->augment_flip));
    /* the windowed order and its cache serve training only (--eval leaves the train images in the file) */
    return r->mode == DLFS_RUN_TRAIN ? dlfs_batcher_stream(&r->batcher, (uint64_t)o->data_cache << 20) : DLFS_OK;
}

/* Same seed => same bits on every rank; dlfs_run_check_sync verifies it. */
static void initial_state_(struct dlfs_run *r)
{
    dlfs_model_init_params(&r->model, r->o->seed, r->host);
    r->be->to_device(r->params, r->host, r->n * sizeof(float));
    if (r->model.num_buffers) {
        dlfs_model_init_buffers(&r->model, r->host);
        r->be->to_device(r->bufs, r->host, r->model.num_buffers * sizeof(float));
    }
    r->ws.buffers = r->bufs;
    r->ws.bn_group = r->bn_group;
}

/* The step pipeline: data in backend memory, the prefetch thread, the CUDA graph. */
static enum dlfs_status pipeline_(struct dlfs_run *r, const struct dlfs_transport_ops *tp)
{
    const struct dlfs_options *o = r->o;
    int gathered = 0;
    char data[192], graph[160];
    enum dlfs_status st = dlfs_batcher_pipeline(&r->batcher, o->data_on_device, o->prefetch, &gathered, data,
                                                sizeof data);
    DLFS_TRY(dlfs_comm_agree(r->comm, st));
    const int dropout = dlfs_model_draws_random(&r->model);
    const struct dlfs_pipeline_plan plan = {
        .want_graph = o->cuda_graph, .ranks = r->comm->size, .passes = r->passes, .pass_rows = r->pass_rows,
        .gathered = gathered, .dropout = dropout, .nccl = (tp->flags & DLFS_TP_ALWAYS_SUMS) != 0,
        .update_dev = dlfs_optim_has_dev(&r->opt) && !(r->o->clip_grad > 0), /* clipping reads the norm on the host */
    };
    DLFS_TRY(dlfs_pipeline_init(&r->pipe, r->be, &plan));
    dlfs_pipeline_describe(&r->pipe, graph, sizeof graph);
    snprintf(r->pipeline, sizeof r->pipeline, "data %s; %s", data, graph);
    return DLFS_OK;
}

enum dlfs_status dlfs_run_init(struct dlfs_run *r, const struct dlfs_options *o, const struct dlfs_comm *comm,
                               enum dlfs_run_mode mode)
{
    memset(r, 0, sizeof *r);
    r->o = o;
    r->comm = comm;
    r->mode = mode;
    dlfs_lineage_init(&r->lineage);
    const struct dlfs_transport_ops *tp = NULL; /* the gradient transport, chosen alike on every rank */
    DLFS_TRY(dlfs_run_choose(r, &tp));
    void *tp_arg = NULL; /* what the transport's prepare made (NCCL's communicator), until handed over */
    if (tp->prepare) DLFS_TRY(tp->prepare(comm, r->be, &tp_arg)); /* collective */
    dlfs_run_threads(r);
    enum dlfs_status st = dlfs_comm_agree(comm, data_(r));
    if (st == DLFS_OK) {
        st = outputs_(r);
        if (st == DLFS_OK) st = objects_(r, tp, &tp_arg);
        st = dlfs_comm_agree(comm, st);
    }
    if (tp_arg && tp->discard) tp->discard(r->be, tp_arg); /* set up, never handed over */
    DLFS_TRY(st);
    initial_state_(r);
    DLFS_TRY(pipeline_(r, tp));
    dlfs_tracer_init(r);
    return DLFS_OK;
}

void dlfs_run_plan(struct dlfs_run *r, long total_steps)
{
    r->total_steps = total_steps;
    dlfs_optim_set_horizon(&r->opt, total_steps);
    dlfs_batcher_plan(&r->batcher, total_steps);
}

const char *dlfs_run_comm_name(const struct dlfs_run *r) { return dlfs_gsync_name(&r->gs); }

enum dlfs_status dlfs_run_close(struct dlfs_run *r, enum dlfs_status st)
{
    dlfs_hook_report_rss(r->comm->rank);
    if (r->metrics) {
        const int bad = fflush(r->metrics) != 0 || ferror(r->metrics);
        const int err = errno;
        if (fclose(r->metrics) != 0 || bad)
            if (st == DLFS_OK)
                st = dlfs_error_set(DLFS_ERR_IO, "--metrics %s: write failed: %s; its lines are incomplete",
                                    r->o->metrics, strerror(bad ? err : errno));
        r->metrics = NULL;
    }
    dlfs_run_free(r);
    return st;
}

void dlfs_run_free(struct dlfs_run *r)
{
    const struct dlfs_backend *be = r->be;
    if (r->metrics) fclose(r->metrics);
    if (r->ckpt_lock > 0) dlfs_ckpt_dir_unlock(r->o->checkpoint_dir, r->ckpt_lock - 1);
    dlfs_batcher_free(&r->batcher); /* joins the prefetch thread: before the dataset goes */
    dlfs_pipeline_free(&r->pipe);
    if (be) {
        if (r->ws.be) dlfs_workspace_free(&r->ws, &r->model);
        be->free(r->params);
        be->free(r->bufs);
    }
    dlfs_optim_free(&r->opt);
    dlfs_gsync_free(&r->gs);
    free(r->host);
    if (r->tracer.on) dlfs_trace_init(0); /* not written (an error ended the run) */
    dlfs_lineage_free(&r->lineage);
    if (r->have_ds) dlfs_dataset_free(&r->ds);
    dlfs_model_free(&r->model);
    memset(r, 0, sizeof *r);
}
