/* dlfs — the optimizer: SGD (momentum, Nesterov), Adam and AdamW over the
 * parameter slab, the learning-rate schedule, and its state in checkpoints.
 *
 * The optimizer owns its moments (m: momentum / Adam's first moment, v: Adam's
 * second moment) in backend memory, sized for the parameters it updates, and
 * knows the schedule: lr(step) is a pure function of the step, so a resumed run
 * continues the same curve. The update follows PyTorch's formulas (the backend
 * ops in dlfs/backend.h hold the arithmetic).
 *
 * Schedule, for step s = 0, 1, ... (the step being taken):
 *   warm-up (s < warmup):  lr * (s + 1) / warmup
 *   constant:              lr
 *   cosine:                lr_min + (lr - lr_min) * (1 + cos(pi * t)) / 2,
 *                          t = min(1, (s - warmup) / (total_steps - warmup)), t = 1 when
 *                          total_steps <= warmup
 * where lr is --lr, after --lr-scaling linear (lr * global batch / --lr-ref-batch).
 */
#ifndef DLFS_OPTIM_H
#define DLFS_OPTIM_H

#include <stdbool.h>
#include <stddef.h>
#include "dlfs/backend.h"
#include "dlfs/checkpoint.h"
#include "dlfs/comm.h"
#include "dlfs/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The optimizers, ONE row each: its enum constant, its name (as --optim spells it
 * and checkpoints record it) and the descriptor its file in src/optim/ defines. The
 * enum, --optim's choices and the table the rest asks are generated from it, so a
 * new optimizer is its file and one row here (src/README.md, Adding an optimizer). */
#define DLFS_OPTIMIZERS(X)                     \
    X(DLFS_OPTIM_SGD, "sgd", dlfs_optim_sgd)   \
    X(DLFS_OPTIM_ADAM, "adam", dlfs_optim_adam) \
    X(DLFS_OPTIM_ADAMW, "adamw", dlfs_optim_adamw)

#define DLFS_OPTIM_ENUM_(e, name, desc) e,
#define DLFS_OPTIM_NAME_(e, name, desc) name,
enum dlfs_optim { DLFS_OPTIMIZERS(DLFS_OPTIM_ENUM_) DLFS_OPTIM_COUNT };
enum dlfs_schedule { DLFS_SCHED_CONSTANT = 0, DLFS_SCHED_COSINE };

struct dlfs_optim_config {
    enum dlfs_optim kind;
    double lr;                   /* base rate, after linear scaling */
    double momentum, weight_decay, beta1, beta2, eps;
    bool nesterov;
    enum dlfs_schedule schedule;
    int warmup;                  /* steps */
    double lr_min;
    long total_steps;            /* the schedule's length (cosine) */
};

/* What one optimizer is (its name is its row's), for everyone who must know: the optimizer object (the
 * update), the options (defaults, rules), the memory estimate and the checkpoint
 * code (how many moment slabs a checkpoint of it holds). */
struct dlfs_optim_desc {
    /* Moment slabs (m, then v) a checkpoint of this optimizer holds: at least
     * moments_min, at most moments_max (SGD: m only with momentum). */
    int moments_min, moments_max;
    double lr;                  /* the default --lr */
    double weight_decay;        /* the default --weight-decay */
    bool nesterov;              /* --nesterov applies */
    /* The moment slabs this configuration keeps (moments_min..moments_max). */
    int (*moments)(const struct dlfs_optim_config *c);
    /* Its fields of the step's hyper-parameters (the shared ones are set). */
    void (*hp)(const struct dlfs_optim_config *c, long step, struct dlfs_optim_hp *hp);
    /* One update of n parameters with the backend's op (m, v: NULL where not kept). */
    void (*update)(const struct dlfs_backend *be, size_t n, float *p, const float *g, float *m, float *v,
                   const struct dlfs_optim_hp *hp);
    /* The same with the step's values read from backend memory (NULL: the backend
     * has no such op); whether the backend has it. */
    void (*update_dev)(const struct dlfs_backend *be, size_t n, float *p, const float *g, float *m, float *v,
                       const struct dlfs_optim_hp *hp, const struct dlfs_optim_dyn *dyn);
    bool (*has_dev)(const struct dlfs_backend *be);
};

/* The row of `o` (DLFS_ASSERT on an out-of-range value). */
const struct dlfs_optim_desc *dlfs_optim_desc(enum dlfs_optim o);
/* The row named `name` (as a checkpoint records it); NULL for none. */
const struct dlfs_optim_desc *dlfs_optim_find(const char *name);

struct dlfs_optimizer {
    struct dlfs_optim_config cfg; /* cfg.kind: its row of the table (dlfs_optim_desc) */
    const struct dlfs_backend *be;
    size_t n;                    /* parameters of the slab */
    struct dlfs_shard shard;     /* the ones this optimizer updates (owned copy) */
    float *m, *v;                /* (shard.total) backend memory, segment after segment; NULL
                                    where the optimizer has none */
    size_t (*nodecay)[2];        /* slab ranges [off, off + len) updated without weight decay, */
    int n_nodecay;               /* in slab order (dlfs_model_nodecay; set after init) */
};

/* "sgd", "adam", "adamw" (as --optim spells them and checkpoints record them). */
const char *dlfs_optim_name(enum dlfs_optim o);

/* Allocate the state (zeroed) for the parameters of `shard` of a slab of n (NULL:
 * all n). DLFS_ERR_NOMEM with a message when the backend is out of memory;
 * dlfs_optim_free undoes it either way. */
enum dlfs_status dlfs_optim_init(struct dlfs_optimizer *op, const struct dlfs_optim_config *cfg,
                                 const struct dlfs_backend *be, size_t n, const struct dlfs_shard *shard);
/* Bytes of optimizer state this rank holds. */
size_t dlfs_optim_state_bytes(const struct dlfs_optimizer *op);
/* What the run reads and sets (src/train never reaches into the struct): the
 * parameters this optimizer updates; --lr as configured and the lr of step `step`
 * (0-based) under the schedule; the schedule's horizon, once the run knows its
 * length; the slab ranges updated without weight decay (`ranges`, malloc'd, is
 * the optimizer's from then on). */
const struct dlfs_shard *dlfs_optim_shard(const struct dlfs_optimizer *op);
double dlfs_optim_base_lr(const struct dlfs_optimizer *op);
double dlfs_optim_step_lr(const struct dlfs_optimizer *op, long step);
void dlfs_optim_set_horizon(struct dlfs_optimizer *op, long total_steps);
/* Whether it keeps first moments (momentum, Adam's m) and second moments (Adam's v). */
bool dlfs_optim_has_m(const struct dlfs_optimizer *op);
bool dlfs_optim_has_v(const struct dlfs_optimizer *op);
void dlfs_optim_set_nodecay(struct dlfs_optimizer *op, size_t (*ranges)[2], int n);
void dlfs_optim_free(struct dlfs_optimizer *op);

/* The learning rate of step `step` (0-based) under the schedule. */
double dlfs_optim_lr(const struct dlfs_optim_config *cfg, long step);
/* Every hyper-parameter of step `step`: the lr and Adam's bias corrections
 * 1 - beta^(step + 1) change from step to step, the rest are the config's. */
struct dlfs_optim_hp dlfs_optim_hp(const struct dlfs_optimizer *op, long step);
/* The per-step values alone, as the *_update_dev ops read them from backend memory. */
struct dlfs_optim_dyn dlfs_optim_dyn(const struct dlfs_optimizer *op, long step);

/* One update of the shard's params with its summed gradients (both slabs of n), as
 * step `step`; the other parameters are left alone. */
void dlfs_optim_update(struct dlfs_optimizer *op, float *params, const float *grads, long step);
/* The same, bit for bit, with the per-step values read from `dyn` (backend memory)
 * when it runs: a recorded CUDA graph replays it every step. Available when the
 * backend has the optimizer's *_update_dev op (dlfs_optim_has_dev). */
void dlfs_optim_update_dev(struct dlfs_optimizer *op, float *params, const float *grads, long step,
                           const struct dlfs_optim_dyn *dyn);
bool dlfs_optim_has_dev(const struct dlfs_optimizer *op);

/* The moments of the shard as host copies (shard.total floats each; NULL where
 * the optimizer has none), allocated here, the caller frees them. */
void dlfs_optim_moments(const struct dlfs_optimizer *op, float **m, float **v);
/* Whether checkpoint `c` (read from `path`) can restore this optimizer: the same
 * optimizer, with the moments it needs. DLFS_ERR_USAGE naming the file and the
 * way out otherwise. */
enum dlfs_status dlfs_optim_check(const struct dlfs_optimizer *op, const struct dlfs_ckpt *c, const char *path);
/* Restore the shard's moments from a checkpoint that passed dlfs_optim_check (the
 * checkpoint holds all n of them). */
void dlfs_optim_load(struct dlfs_optimizer *op, const struct dlfs_ckpt *c);

#ifdef __cplusplus
}
#endif

#endif
