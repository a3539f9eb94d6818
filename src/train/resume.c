/* The glue between a run and its checkpoints: saving the run state (rank 0
 * writes, everyone agrees on the outcome) and restoring it on any rank count. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "dlfs/checkpoint.h"
#include "dlfs/util.h"
#include "train/train-impl.h"

/* The optimizer's moments in full on rank 0 (ZeRO-1: gathered from every rank's
 * shard; every rank takes part). */
static void moments_(struct dlfs_run *r, float **m, float **v)
{
    float *cm, *cv;
    dlfs_optim_moments(&r->opt, &cm, &cv);
    const size_t bytes = r->n * sizeof(float);
    *m = cm && r->comm->rank == 0 ? dlfs_malloc(bytes) : NULL;
    *v = cv && r->comm->rank == 0 ? dlfs_malloc(bytes) : NULL;
    if (cm) dlfs_gsync_gather_state(&r->gs, cm, *m);
    if (cv) dlfs_gsync_gather_state(&r->gs, cv, *v);
    free(cm);
    free(cv);
}

enum dlfs_status dlfs_run_save(struct dlfs_run *r, int epoch, long samples_in_epoch, char **path)
{
    enum dlfs_status st = DLFS_OK;
    *path = NULL;
    float *m, *v;
    moments_(r, &m, &v);
    if (r->comm->rank == 0) {
        const struct dlfs_backend *be = r->be;
        char opts[4096];
        dlfs_options_describe(r->o, opts, sizeof opts);
        struct dlfs_ckpt c = {
            .model_spec = r->model.spec,
            .options = opts,
            .num_params = r->n,
            .step = r->step,
            .epoch = epoch,
            .samples_in_epoch = samples_in_epoch,
            .global_batch = r->global_batch,
            .seed = r->batcher.seed,
            .deterministic = r->o->deterministic,
            .virtual_shards = r->o->virtual_shards,
            .world_size = r->comm->size,
            .optimizer = (char *)dlfs_optim_name(r->o->optim), /* borrowed, as the other strings */
            .m = m,
            .v = v,
        };
        c.params = dlfs_malloc(r->n * sizeof(float));
        be->to_host(c.params, r->params, r->n * sizeof(float));
        if ((c.num_buffers = r->model.num_buffers)) {
            c.buffers = dlfs_malloc(c.num_buffers * sizeof(float));
            be->to_host(c.buffers, r->bufs, c.num_buffers * sizeof(float));
        }
        st = dlfs_ckpt_save(r->o->checkpoint_dir, &c, &r->model, r->o->keep, path);
        free(c.params);
        free(c.buffers);
    }
    free(m);
    free(v);
    return dlfs_comm_agree(r->comm, st);
}

/* What changed since the checkpoint was written, for the record (rank 0). */
static void report_(const struct dlfs_run *r, const char *path, const struct dlfs_ckpt *c)
{
    const struct dlfs_options *o = r->o;
    printf("resume: %s: step %ld, epoch %d (+%ld samples); saved on %d rank(s), now %d\n", path, c->step, c->epoch,
           c->samples_in_epoch, c->world_size, r->comm->size);
    if (c->seed != o->seed)
        printf("resume: using the checkpoint's seed %llu (--seed %llu ignored)\n", (unsigned long long)c->seed,
               (unsigned long long)o->seed);
    if (c->global_batch != r->global_batch)
        printf("resume: global batch %d (was %d): the epoch continues at the same sample position\n",
               r->global_batch, c->global_batch);
    if (c->deterministic != o->deterministic || (o->deterministic && c->virtual_shards != o->virtual_shards))
        printf("resume: deterministic mode or --virtual-shards changed: the continuation is not "
               "bit-identical to an uninterrupted run\n");
    if (c->options) printf("resume: saved options: %s\n", c->options);
    fflush(stdout);
}

enum dlfs_status dlfs_run_resume(struct dlfs_run *r, int *epoch, long *samples_in_epoch, char **path_out)
{
    const struct dlfs_options *o = r->o;
    char *path = NULL;
    enum dlfs_status st = DLFS_OK;
    *epoch = 0;
    *samples_in_epoch = 0;
    if (path_out) *path_out = NULL;
    if (strcmp(o->resume, "latest") == 0) st = dlfs_ckpt_latest(o->checkpoint_dir, &path);
    else path = strdup(o->resume);
    DLFS_TRY(dlfs_comm_agree(r->comm, st));
    if (!path) {
        if (r->comm->rank == 0 && !o->quiet)
            printf("resume: no checkpoint in %s yet: starting from scratch\n", o->checkpoint_dir);
        return DLFS_OK;
    }
    struct dlfs_ckpt c;
    st = dlfs_ckpt_load(path, &c);
    if (st == DLFS_OK && strcmp(c.model_spec, r->model.spec) != 0)
        st = dlfs_error_set(DLFS_ERR_SHAPE, "%s holds model %s but --model '%s' is %s; resume with --model '%s'",
                            path, c.model_spec, o->model, r->model.spec, c.model_spec);
    const int train = r->mode != DLFS_RUN_EVAL; /* --eval needs no optimizer state */
    if (st == DLFS_OK && train) st = dlfs_optim_check(&r->opt, &c, path);
    st = dlfs_comm_agree(r->comm, st);
    if (st == DLFS_OK) {
        r->be->to_device(r->params, c.params, r->n * sizeof(float));
        if (train) dlfs_optim_load(&r->opt, &c);
        if (r->model.num_buffers) /* same spec => same layout */
            r->be->to_device(r->bufs, c.buffers, r->model.num_buffers * sizeof(float));
        r->step = c.step;
        r->batcher.seed = c.seed; /* the data order continues the saved run's */
        *epoch = c.epoch;
        *samples_in_epoch = c.samples_in_epoch;
        if (r->comm->rank == 0 && !o->quiet) report_(r, path, &c);
        if (path_out) *path_out = strdup(path);
    }
    free(path);
    dlfs_ckpt_free(&c);
    return st;
}
