/* The prefetch thread: while step k computes, it assembles batch k+1 (copies the
 * rows out of the split, augments them) into the other of two host staging
 * buffers (page-locked where the backend offers it, so that the upload is an
 * asynchronous copy). It only reads immutable state (the assembly, the split) and
 * writes its own stage, so its results are the bits the main thread would have
 * produced; the main thread takes a stage only when it holds exactly the batch
 * asked for, else assembles the batch itself. */
#define _POSIX_C_SOURCE 200809L
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include "train/batcher.h"
#include "dlfs/util.h"

static void *main_(void *arg)
{
    struct dlfs_prefetch *pf = arg;
    pthread_mutex_lock(&pf->mu);
    for (;;) {
        while (!pf->quit && !pf->busy) pthread_cond_wait(&pf->cv, &pf->mu);
        if (pf->quit) break;
        struct dlfs_stage *s = &pf->stage[pf->job];
        pthread_mutex_unlock(&pf->mu);
        dlfs_assemble(pf->as, s->split, s->idx, s->rows, s->aug_key, s->img, s->lab);
        pthread_mutex_lock(&pf->mu);
        pf->busy = 0;
        pthread_cond_broadcast(&pf->cv);
    }
    pthread_mutex_unlock(&pf->mu);
    return NULL;
}

enum dlfs_status dlfs_prefetch_init(struct dlfs_prefetch *pf, const struct dlfs_assembly *as,
                                    const struct dlfs_backend *be, int rows)
{
    const size_t dim = as->dim;
    memset(pf, 0, sizeof *pf);
    pf->as = as;
    pf->job = -1;
    for (int i = 0; i < 2; i++) {
        struct dlfs_stage *s = &pf->stage[i];
        const size_t bytes = (size_t)rows * (dim + sizeof(int32_t));
        s->block = be->pinned_alloc ? be->pinned_alloc(bytes) : NULL;
        s->pinned = s->block != NULL;
        if (!s->block) s->block = dlfs_malloc(bytes);
        s->lab = s->block;                                 /* int32 first: aligned */
        s->img = (uint8_t *)s->block + (size_t)rows * sizeof(int32_t);
        s->idx = dlfs_malloc((size_t)rows * sizeof *s->idx);
    }
    pthread_mutex_init(&pf->mu, NULL);
    pthread_cond_init(&pf->cv, NULL);
    /* SIGTERM/SIGUSR1 stay with the main thread (the training loop polls their flag) */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    const int e = pthread_create(&pf->thread, NULL, main_, pf);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (e) {
        dlfs_prefetch_free(pf, be);
        return dlfs_error_set(DLFS_ERR_NOMEM, "cannot start the prefetch thread (%s); run with --prefetch off",
                              strerror(e));
    }
    pf->started = 1;
    return DLFS_OK;
}

/* Wait until no job is running (mu held). */
static void idle_(struct dlfs_prefetch *pf)
{
    while (pf->busy) pthread_cond_wait(&pf->cv, &pf->mu);
}

void dlfs_prefetch_idle(struct dlfs_prefetch *pf)
{
    pthread_mutex_lock(&pf->mu);
    idle_(pf);
    pthread_mutex_unlock(&pf->mu);
}

void dlfs_prefetch_post(struct dlfs_prefetch *pf, const struct dlfs_split *split, const uint32_t *idx, int rows,
                        uint64_t aug_key)
{
    pthread_mutex_lock(&pf->mu);
    idle_(pf);
    /* the stage taken last stays untouched until the next take (its upload may be in flight) */
    const int j = pf->taken ^ 1;
    struct dlfs_stage *s = &pf->stage[j];
    s->split = split;
    s->rows = rows;
    s->aug_key = aug_key;
    memcpy(s->idx, idx, (size_t)rows * sizeof *idx); /* the caller's array may change meanwhile */
    pf->job = j;
    pf->busy = 1;
    pthread_cond_broadcast(&pf->cv);
    pthread_mutex_unlock(&pf->mu);
}

const struct dlfs_stage *dlfs_prefetch_take(struct dlfs_prefetch *pf, const struct dlfs_split *split,
                                            const uint32_t *idx, int rows, uint64_t aug_key)
{
    pthread_mutex_lock(&pf->mu);
    idle_(pf);
    const struct dlfs_stage *hit = NULL;
    if (pf->job >= 0) {
        const struct dlfs_stage *s = &pf->stage[pf->job];
        if (s->split == split && s->rows == rows && s->aug_key == aug_key &&
            memcmp(s->idx, idx, (size_t)rows * sizeof *idx) == 0) {
            hit = s;
            pf->taken = pf->job;
            pf->hits++;
        }
        pf->job = -1; /* used or stale: never offered twice */
    }
    pthread_mutex_unlock(&pf->mu);
    return hit;
}

void dlfs_prefetch_free(struct dlfs_prefetch *pf, const struct dlfs_backend *be)
{
    if (pf->started) {
        pthread_mutex_lock(&pf->mu);
        pf->quit = 1;
        pthread_cond_broadcast(&pf->cv);
        pthread_mutex_unlock(&pf->mu);
        pthread_join(pf->thread, NULL);
        pthread_mutex_destroy(&pf->mu);
        pthread_cond_destroy(&pf->cv);
    } else if (pf->as) {
        pthread_mutex_destroy(&pf->mu);
        pthread_cond_destroy(&pf->cv);
    }
    for (int i = 0; i < 2; i++) {
        struct dlfs_stage *s = &pf->stage[i];
        if (s->pinned) be->pinned_free(s->block);
        else free(s->block);
        free(s->idx);
    }
    memset(pf, 0, sizeof *pf);
}
