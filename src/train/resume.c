/* The glue between a run and its checkpoints: saving the run state (rank 0
 * writes, everyone agrees on the outcome) and restoring it on any rank count. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
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

/* The checkpoint's description of the run (rank 0); params and buffers copied
 * to the host (the caller frees them), moments as given. */
static void describe_(struct dlfs_run *r, struct dlfs_ckpt *c, char *opts, size_t olen, int epoch,
                      long samples_in_epoch)
{
    dlfs_options_describe(r->o, opts, olen);
    *c = (struct dlfs_ckpt){
        .model_spec = r->model.spec,
        .options = opts,
        .num_params = r->n,
        .step = r->step,
        .epoch = epoch,
        .samples_in_epoch = samples_in_epoch,
        .global_batch = r->global_batch,
        .seed = dlfs_batcher_seed(&r->batcher),
        .deterministic = r->o->deterministic,
        .virtual_shards = r->o->virtual_shards,
        .world_size = r->comm->size,
        .optimizer = (char *)dlfs_optim_name(r->o->optim), /* borrowed, as the other strings */
        .run_id = r->lineage.run_id,
        .parent = r->lineage.parent,
        .parent_step = r->lineage.parent_step,
    };
    c->params = dlfs_malloc(r->n * sizeof(float));
    r->be->to_host(c->params, r->params, r->n * sizeof(float));
    if ((c->num_buffers = r->model.num_buffers)) {
        c->buffers = dlfs_malloc(c->num_buffers * sizeof(float));
        r->be->to_host(c->buffers, r->bufs, c->num_buffers * sizeof(float));
    }
}

/* This rank's shard file: the segments it alone updates (rank 0 also those
 * every rank updates), their moments taken from the optimizer's compact copy. */
static enum dlfs_status write_shard_(struct dlfs_run *r, char sha[65])
{
    float *cm, *cv;
    dlfs_optim_moments(&r->opt, &cm, &cv);
    const struct dlfs_shard *sh = dlfs_gsync_shard(&r->gs);
    const int rank = r->comm->rank;
    uint64_t *off = dlfs_malloc((size_t)sh->count * sizeof *off + 1), *len = dlfs_malloc((size_t)sh->count * sizeof *len + 1);
    float *m = dlfs_malloc(sh->total * sizeof *m + 1), *v = cv ? dlfs_malloc(sh->total * sizeof *v + 1) : NULL;
    int k = 0;
    size_t at = 0, out = 0;
    for (int i = 0; i < sh->count; at += sh->seg[i].len, i++) {
        if (sh->seg[i].shared && rank != 0) continue;
        off[k] = sh->seg[i].off, len[k++] = sh->seg[i].len;
        memcpy(m + out, cm + at, sh->seg[i].len * sizeof *m);
        if (v) memcpy(v + out, cv + at, sh->seg[i].len * sizeof *v);
        out += sh->seg[i].len;
    }
    const struct dlfs_ckpt_shard s = {rank, r->comm->size, r->step, r->n, k, off, len, m, v};
    const enum dlfs_status st = dlfs_ckpt_shard_write(r->o->checkpoint_dir, &s, sha);
    free(cm), free(cv), free(off), free(len), free(m), free(v);
    return st;
}

/* --ckpt-sharded: rank 0 makes the directory, every rank writes its shard, rank 0
 * collects the digests (65 bytes a rank) and writes the manifest last. */
static enum dlfs_status save_sharded_(struct dlfs_run *r, int epoch, long samples_in_epoch, char **path)
{
    const struct dlfs_comm *cm = r->comm;
    float *pm, *pv;
    dlfs_optim_moments(&r->opt, &pm, &pv);
    const int has_m = pm != NULL, has_v = pv != NULL;
    free(pm), free(pv);
    if (!has_m) return dlfs_comm_agree(cm, dlfs_error_set(DLFS_ERR_USAGE, "--ckpt-sharded: this optimizer keeps no "
                                                          "moments to shard; drop --ckpt-sharded"));
    DLFS_TRY(dlfs_comm_agree(cm, cm->rank == 0 ? dlfs_ckpt_shard_dir(r->o->checkpoint_dir, r->step) : DLFS_OK));
    char sha[65] = "";
    DLFS_TRY(dlfs_comm_agree(cm, write_shard_(r, sha)));
    char(*all)[65] = cm->rank == 0 ? dlfs_malloc((size_t)cm->size * sizeof *all) : NULL;
    MPI_Request q;
    MPI_Igather(sha, 65, MPI_CHAR, all, 65, MPI_CHAR, 0, cm->world, &q);
    dlfs_comm_wait(cm, 1, &q, "collecting the checkpoint shards' digests");
    enum dlfs_status st = DLFS_OK;
    if (cm->rank == 0) {
        char opts[4096];
        struct dlfs_ckpt c;
        describe_(r, &c, opts, sizeof opts, epoch, samples_in_epoch);
        st = dlfs_ckpt_manifest_write(r->o->checkpoint_dir, &c, has_m, has_v, &r->model, all, r->o->keep, path);
        free(c.params), free(c.buffers);
    }
    free(all);
    return dlfs_comm_agree(cm, st);
}

enum dlfs_status dlfs_run_save(struct dlfs_run *r, int epoch, long samples_in_epoch, char **path)
{
    *path = NULL;
    if (r->o->ckpt_sharded) return save_sharded_(r, epoch, samples_in_epoch, path);
    enum dlfs_status st = DLFS_OK;
    float *m, *v;
    moments_(r, &m, &v);
    if (r->comm->rank == 0) {
        char opts[4096];
        struct dlfs_ckpt c;
        describe_(r, &c, opts, sizeof opts, epoch, samples_in_epoch);
        c.m = m, c.v = v;
        st = dlfs_ckpt_save(r->o->checkpoint_dir, &c, &r->model, r->o->keep, path);
        free(c.params);
        free(c.buffers);
    }
    free(m);
    free(v);
    return dlfs_comm_agree(r->comm, st);
}

/* The value of `key` in an options text "k=v;k=v;..." (its length in *n), or NULL. */
static const char *option_(const char *text, const char *key, size_t *n)
{
    const size_t kl = strlen(key);
    for (const char *p = text; p && *p; p = strchr(p, ';') ? strchr(p, ';') + 1 : NULL)
        if (strncmp(p, key, kl) == 0 && p[kl] == '=') {
            const char *end = strchr(p + kl + 1, ';');
            *n = end ? (size_t)(end - p - kl - 1) : strlen(p + kl + 1);
            return p + kl + 1;
        }
    return NULL;
}

/* The saved options that differ from this run's, one "name old -> new" each (not
 * --resume itself), or a line saying none does. */
static void options_changed_(const struct dlfs_options *o, const char *saved)
{
    char now[4096];
    dlfs_options_describe(o, now, sizeof now);
    int changed = 0;
    for (const char *p = saved; *p;) {
        const char *eq = strchr(p, '='), *end = strchr(p, ';');
        if (!eq || (end && end < eq)) break;
        if (!end) end = p + strlen(p);
        char key[64];
        snprintf(key, sizeof key, "%.*s", (int)(eq - p), p);
        size_t n = 0;
        const char *cur = option_(now, key, &n);
        const size_t old_n = (size_t)(end - eq - 1);
        if (strcmp(key, "resume") != 0 && (!cur || n != old_n || strncmp(cur, eq + 1, n) != 0))
            printf("%s%s %.*s -> %.*s", changed++ ? ", " : "resume: options changed since the checkpoint: ", key,
                   old_n ? (int)old_n : 6, old_n ? eq + 1 : "(none)", cur && n ? (int)n : 6, cur && n ? cur : "(none)");
        p = *end ? end + 1 : end;
    }
    printf("%s\n", changed ? "" : "resume: the options are those the checkpoint was written with");
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
    if (c->options && *c->options) options_changed_(o, c->options);
    fflush(stdout);
}

/* The checkpoint --resume names (the newest one of --checkpoint-dir that
 * verifies, for `latest`), loaded and checked against this run before anything is
 * allocated. Every rank reads it. c->path NULL: nothing to resume. */
static enum dlfs_status load_(struct dlfs_run *r, struct dlfs_ckpt *c, int *skipped)
{
    const struct dlfs_options *o = r->o;
    const int train = r->mode != DLFS_RUN_EVAL; /* --eval needs no optimizer state */
    const struct dlfs_ckpt_expect e = {
        .model_spec = r->model.spec, .model_arg = o->model, .optimizer = train ? dlfs_optim_name(o->optim) : NULL,
        .need_m = train && dlfs_optim_has_m(&r->opt), .need_v = train && dlfs_optim_has_v(&r->opt),
        .params_only = !train,
    };
    char *report = NULL;
    enum dlfs_status st;
    memset(c, 0, sizeof *c);
    if (strcmp(o->resume, "latest") == 0) st = dlfs_ckpt_latest_valid(o->checkpoint_dir, &e, c, &report);
    else st = dlfs_ckpt_load_checked(o->resume, c, &e);
    *skipped = report != NULL;
    if (report && r->comm->rank == 0) { /* what --resume latest passed over, and why (also with --quiet) */
        printf("%s%s", report, report[strlen(report) - 1] == '\n' ? "" : "\n");
        fflush(stdout);
    }
    free(report);
    if (st == DLFS_OK && c->path && c->format_version < 2 && r->comm->rank == 0) { /* also with --quiet */
        fprintf(stderr, "dlfs: warning: %s is a format-%d checkpoint (no state_sha256): its parameters were "
                "verified, its optimizer state and position (step %ld, epoch %d, +%ld samples) were not\n", c->path,
                c->format_version, c->step, c->epoch, c->samples_in_epoch);
        fflush(stderr);
    }
    /* the data position must lie within this dataset (a checkpoint of another one) */
    if (st == DLFS_OK && c->path && r->have_ds && (size_t)c->samples_in_epoch > r->ds.train.n)
        st = dlfs_error_set(DLFS_ERR_USAGE, "%s continues epoch %d at sample %ld, but %s has only %zu training "
                            "samples: it was written for another dataset; resume with the --data it was trained on",
                            c->path, c->epoch, c->samples_in_epoch, r->ds.path, r->ds.train.n);
    return st;
}

enum dlfs_status dlfs_run_resume(struct dlfs_run *r, int *epoch, long *samples_in_epoch, char **path_out)
{
    const struct dlfs_options *o = r->o;
    *epoch = 0;
    *samples_in_epoch = 0;
    if (path_out) *path_out = NULL;
    struct dlfs_ckpt c;
    int skipped = 0;
    enum dlfs_status st = dlfs_comm_agree(r->comm, load_(r, &c, &skipped));
    r->lineage.skipped_newer = skipped;
    if (st == DLFS_OK && !c.path && r->comm->rank == 0 && !o->quiet)
        printf("resume: no checkpoint in %s yet: starting from scratch\n", o->checkpoint_dir);
    if (st == DLFS_OK && c.path) {
        r->be->to_device(r->params, c.params, r->n * sizeof(float));
        if (r->mode != DLFS_RUN_EVAL) dlfs_optim_load(&r->opt, &c);
        if (r->model.num_buffers) /* same spec => same layout */
            r->be->to_device(r->bufs, c.buffers, r->model.num_buffers * sizeof(float));
        r->step = c.step;
        dlfs_batcher_set_seed(&r->batcher, c.seed); /* the data order continues the saved run's */
        *epoch = c.epoch;
        *samples_in_epoch = c.samples_in_epoch;
        const char *slash = strrchr(c.path, '/');
        r->lineage.parent = strdup(slash ? slash + 1 : c.path);
        r->lineage.parent_path = strdup(c.path);
        r->lineage.parent_step = c.step;
        if (r->comm->rank == 0 && !o->quiet) report_(r, c.path, &c);
        if (path_out) *path_out = strdup(c.path);
    }
    dlfs_ckpt_free(&c);
    return st;
}

void dlfs_lineage_init(struct dlfs_lineage *l)
{
    memset(l, 0, sizeof *l);
    l->parent_step = -1;
    dlfs_ckpt_run_id(l->run_id);
}

void dlfs_lineage_free(struct dlfs_lineage *l)
{
    free(l->parent);
    free(l->parent_path);
    memset(l, 0, sizeof *l);
}

enum dlfs_status dlfs_run_lineage(struct dlfs_run *r, int archive)
{
    const struct dlfs_options *o = r->o;
    enum dlfs_status st = DLFS_OK;
    if (r->comm->rank == 0 && o->checkpoint_dir) {
        char *msg = NULL;
        /* newer files that latest passed over (damaged, non-finite) go aside too */
        const struct dlfs_lineage *l = &r->lineage;
        st = dlfs_ckpt_rollback_check(o->checkpoint_dir, l->parent_path, l->parent ? l->parent_step : -1,
                                      archive || l->skipped_newer, &msg);
        if (msg && !o->quiet) printf("%s%s", msg, msg[strlen(msg) - 1] == '\n' ? "" : "\n");
        free(msg);
    }
    /* the run goes ahead: a fresh one starts its metrics afresh (a resumed one appends) */
    if (st == DLFS_OK && r->metrics && !o->resume && ftruncate(fileno(r->metrics), 0) != 0)
        st = dlfs_error_set(DLFS_ERR_IO, "--metrics %s: cannot truncate: %s", o->metrics, strerror(errno));
    return dlfs_comm_agree(r->comm, st);
}
