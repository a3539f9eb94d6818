/* The batcher: where a step's samples come from. It owns the sampler (one
 * permutation per epoch from (seed, epoch)), the splits kept in backend memory,
 * host staging, augmentation and the prefetch thread, and hands the step a batch;
 * the step asks it to fill the workspace's inputs for each pass. Private to
 * src/train. */
#ifndef DLFS_TRAIN_BATCHER_H
#define DLFS_TRAIN_BATCHER_H

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include "dlfs/backend.h"
#include "dlfs/comm.h"
#include "dlfs/dataset.h"
#include "dlfs/model.h"

/* The window cache of a streamed train split (stream.c; --data-cache): 2G slots
 * of one chunk of K samples. Used by one thread at a time (whoever assembles). */
struct dlfs_stream {
    const struct dlfs_split *split;
    size_t dim, K, G, nchunks;
    size_t readahead;     /* chunks of the next window read per batch at most */
    const uint32_t *order;/* (nchunks) the epoch's chunk order (the batcher's) */
    uint32_t *pos;        /* (nchunks) chunk -> its place in order */
    uint32_t *slot_of;    /* (nchunks) chunk -> slot holding it, UINT32_MAX none */
    uint32_t *chunk_in;   /* (2G) slot -> chunk, UINT32_MAX none */
    uint8_t *ahead;       /* (2G) slot holds a chunk read for the next epoch */
    const uint32_t *next; /* (nchunks) the next epoch's chunk order, NULL: none */
    uint8_t *mem;         /* (2G, K, dim) */
    long reads;           /* chunks read from the file */
    int rank;             /* a failed read: ranks > 0 wait DLFS_STREAM_FAIL_WAIT_S for rank 0's message */
};
#define DLFS_STREAM_FAIL_WAIT_S 5
/* Cache of G-chunk windows over split (not collective); the epoch's chunk order;
 * read what rows idx[0..rows) need (and some of the next window); the bytes of a
 * sample held. */
enum dlfs_status dlfs_stream_init(struct dlfs_stream *s, const struct dlfs_split *split, size_t dim, size_t K,
                                  size_t G, int global_batch);
void dlfs_stream_epoch(struct dlfs_stream *s, const uint32_t *order, const uint32_t *next);
enum dlfs_status dlfs_stream_need(struct dlfs_stream *s, const uint32_t *idx, int rows);
const uint8_t *dlfs_stream_row(const struct dlfs_stream *s, uint32_t sample);
void dlfs_stream_free(struct dlfs_stream *s);

/* How rows of a split become a staged batch: copied out, augmented. Immutable
 * once set, so the prefetch thread reads it freely; the stream it points to is
 * used by whichever thread assembles (the prefetch protocol: one at a time). */
struct dlfs_assembly {
    int c, h, w;
    size_t dim;           /* c * h * w bytes per image */
    int crop;             /* --augment-crop */
    bool flip;            /* --augment-flip */
    struct dlfs_stream *stream; /* the train split's rows when its images stay in the file */
};
/* Rows idx[0..rows) of split into img (rows, dim) / lab (rows), augmented when
 * aug_key != 0: shifted by (dy, dx) in [-crop, crop] with zero fill and mirrored
 * with probability 1/2, drawn from (aug_key, sample index) — never from the rank.
 * Thread-safe. */
void dlfs_assemble(const struct dlfs_assembly *a, const struct dlfs_split *split, const uint32_t *idx, int rows,
                   uint64_t aug_key, uint8_t *img, int32_t *lab);

/* One assembled local batch in host staging (prefetch.c). */
struct dlfs_stage {
    void *block;                  /* lab then img, one allocation (pinned when `pinned`) */
    int32_t *lab;                 /* (rows) */
    uint8_t *img;                 /* (rows, dim) */
    uint32_t *idx;                /* (rows) the samples it holds */
    int rows;
    uint64_t aug_key;
    const struct dlfs_split *split;
    int pinned;
};

/* The prefetch thread and its two stages; batch k+1 is posted after batch k is
 * taken. The thread only reads the assembly and the split. */
struct dlfs_prefetch {
    const struct dlfs_assembly *as;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct dlfs_stage stage[2];
    int job;                      /* stage holding the posted batch, -1 none */
    int taken;                    /* stage last handed out (left alone by the next post) */
    int busy, quit, started;
    long hits;                    /* batches taken from the thread (the rest were assembled inline) */
};
/* Start the thread with two stages of `rows` rows (pinned where the backend can);
 * post a batch; take it back (NULL unless the posted batch is exactly this one:
 * then the caller assembles it); stop and release (joins the thread; safe on
 * whatever init left, and on a zeroed struct). */
enum dlfs_status dlfs_prefetch_init(struct dlfs_prefetch *pf, const struct dlfs_assembly *as,
                                    const struct dlfs_backend *be, int rows);
void dlfs_prefetch_post(struct dlfs_prefetch *pf, const struct dlfs_split *split, const uint32_t *idx, int rows,
                        uint64_t aug_key);
const struct dlfs_stage *dlfs_prefetch_take(struct dlfs_prefetch *pf, const struct dlfs_split *split,
                                            const uint32_t *idx, int rows, uint64_t aug_key);
void dlfs_prefetch_free(struct dlfs_prefetch *pf, const struct dlfs_backend *be);
/* Wait until the thread has finished its job (it touches nothing after). */
void dlfs_prefetch_idle(struct dlfs_prefetch *pf);

/* A split held in backend memory for gather_u8 (on host-memory backends: the
 * split's own arrays). */
struct dlfs_resident {
    const struct dlfs_split *split; /* NULL: not resident */
    uint8_t *img;                   /* (n, c, h, w) */
    uint8_t *lab;                   /* (n) */
    int owned;                      /* allocated with be->alloc */
};

/* One step's global batch, as the batcher hands it out. */
struct dlfs_batch {
    const struct dlfs_split *split;
    const uint32_t *idx;          /* (B) sample ids; rank r takes [r B/P, (r+1) B/P) */
    const uint32_t *next;         /* the next step's batch of the same split, NULL when unknown */
    long step;                    /* the step that takes it */
    uint64_t aug_key;             /* 0: no augmentation */
};

struct dlfs_batcher {
    const struct dlfs_backend *be;
    const struct dlfs_comm *comm;
    const struct dlfs_dataset *ds;
    struct dlfs_assembly as;
    uint64_t seed;                /* data order and augmentation (a resumed run keeps its own) */
    int global_batch, local_batch, pass_rows;
    int rows;                     /* largest batch a load takes: pass rows or an evaluation chunk */
    long steps_per_epoch, stop_step; /* no batch is prefetched for step stop_step or later */
    uint32_t *perm;               /* (train n) this epoch's permutation */
    size_t window_chunks;         /* --data-cache: the windowed shuffle's G (0: a full permutation) */
    size_t chunk_rows;            /* ... and K */
    uint32_t *order;              /* ... its chunk order of the epoch */
    uint32_t *next_order;         /* ... and of the next epoch (the stream reads ahead into it) */
    struct dlfs_stream stream;    /* ... the window cache when the train images stay in the file */
    uint32_t *fixed;              /* benchmarks: every step takes these rows */
    struct dlfs_resident res[2];  /* train, test */
    struct dlfs_prefetch prefetch;/* started when training batches are staged and --prefetch on */
    uint8_t *host_img;            /* (max(rows, local batch), dim) host staging */
    int32_t *host_lab;
    float *host_x;                /* (max(rows, local batch), input_dim) uint16 token ids as floats (ids16) */
    uint8_t *dev_img;             /* (rows, dim) backend memory */
    const uint8_t *img;           /* the staged local batch of the step in flight */
    const int32_t *lab;
    int async;                    /* ... in pinned memory: uploads need not wait */
    FILE *trace;                  /* test hook DLFS_TRACE_SAMPLES */
    double t_data;                /* seconds, accumulated (the caller resets it) */
};

/* Staging for the batch arithmetic given (global, local, pass rows; `rows`: the
 * largest load, an evaluation chunk included) over dataset ds (its shape from the
 * model when ds has no images yet: benchmarks). Not collective. */
enum dlfs_status dlfs_batcher_init(struct dlfs_batcher *b, const struct dlfs_backend *be, const struct dlfs_comm *c,
                                   const struct dlfs_dataset *ds, const struct dlfs_model *m, int global_batch,
                                   int local_batch, int pass_rows, int rows, uint64_t seed, int crop, bool flip);
/* Keep the splits in backend memory when they fit, start the prefetch thread
 * when training batches are staged. `desc` gets one line for banners. Sets
 * *gathered when training batches are gathered from backend memory. */
enum dlfs_status dlfs_batcher_pipeline(struct dlfs_batcher *b, bool data_on_device, bool prefetch, int *gathered,
                                       char *desc, size_t desc_len);
void dlfs_batcher_free(struct dlfs_batcher *b);
/* What the run reads and sets (the rest of src/train never reaches into the
 * struct): the seed of the data order and augmentation (a resumed run sets its
 * checkpoint's); the largest load in rows; steps per epoch; batches the prefetch
 * thread delivered; the run's length (no batch is prefetched for step stop_step
 * or later); the seconds spent on data since the last reset (`dt` more: uploads
 * the run does for the batcher). */
uint64_t dlfs_batcher_seed(const struct dlfs_batcher *b);
void dlfs_batcher_set_seed(struct dlfs_batcher *b, uint64_t seed);
int dlfs_batcher_rows(const struct dlfs_batcher *b);
long dlfs_batcher_steps_per_epoch(const struct dlfs_batcher *b);
long dlfs_batcher_prefetched(const struct dlfs_batcher *b);
void dlfs_batcher_plan(struct dlfs_batcher *b, long stop_step);
double dlfs_batcher_seconds(const struct dlfs_batcher *b);
void dlfs_batcher_seconds_add(struct dlfs_batcher *b, double dt);
void dlfs_batcher_seconds_reset(struct dlfs_batcher *b);
/* --data-cache: the windowed shuffle with windows of half `cache_bytes` (0: off),
 * and the window cache when the train images stay in the file. Before
 * dlfs_batcher_pipeline. Not collective. */
enum dlfs_status dlfs_batcher_stream(struct dlfs_batcher *b, uint64_t cache_bytes);

/* Epoch e's permutation (a pure function of (seed, e)); then the batch of step
 * `step`, the s-th of the epoch. */
void dlfs_batcher_epoch(struct dlfs_batcher *b, int epoch);
struct dlfs_batch dlfs_batcher_at(struct dlfs_batcher *b, long s, long step);
/* Benchmarks: every step takes rows idx[0..B) of the train split. */
struct dlfs_batch dlfs_batcher_fixed(struct dlfs_batcher *b, const uint32_t *idx, long step);

/* This rank's rows of pass p of batch bt into ws (x, labels, ids). */
void dlfs_batcher_load(struct dlfs_batcher *b, const struct dlfs_batch *bt, int pass, struct dlfs_workspace *ws);
/* Rows idx[0..rows) of split, unaugmented, into ws (evaluation). */
void dlfs_batcher_load_rows(struct dlfs_batcher *b, const struct dlfs_split *split, const uint32_t *idx, int rows,
                            struct dlfs_workspace *ws);
/* The resident copy of bt's split when bt can be gathered there (unaugmented), else NULL. */
const struct dlfs_resident *dlfs_batcher_resident(const struct dlfs_batcher *b, const struct dlfs_batch *bt);
/* Whether `res` is the resident training split (what a recorded step gathers from). */
bool dlfs_batcher_is_train(const struct dlfs_batcher *b, const struct dlfs_resident *res);
/* Gather `rows` rows named by ids (backend memory) from a resident split into ws:
 * only backend ops (a CUDA graph can hold it). */
void dlfs_batcher_gather(const struct dlfs_batcher *b, const struct dlfs_resident *res, const uint32_t *ids, int rows,
                         struct dlfs_workspace *ws);

#endif
