/* The optimizer: state, schedule, update, checkpoint fields (dlfs/optim.h). */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "optim/optim-impl.h"

#define OPTIM_ROW_(e, name, desc) &desc,
static const struct dlfs_optim_desc *const table_[] = {DLFS_OPTIMIZERS(OPTIM_ROW_)};
static const char *const names_[] = {DLFS_OPTIMIZERS(DLFS_OPTIM_NAME_)};

const struct dlfs_optim_desc *dlfs_optim_desc(enum dlfs_optim o)
{
    DLFS_ASSERT((unsigned)o < DLFS_OPTIM_COUNT);
    return table_[o];
}

const struct dlfs_optim_desc *dlfs_optim_find(const char *name)
{
    for (int i = 0; name && i < DLFS_OPTIM_COUNT; i++)
        if (strcmp(name, names_[i]) == 0) return table_[i];
    return NULL;
}

const char *dlfs_optim_name(enum dlfs_optim o)
{
    return (unsigned)o < DLFS_OPTIM_COUNT ? names_[o] : "?";
}

enum dlfs_status dlfs_optim_init(struct dlfs_optimizer *op, const struct dlfs_optim_config *cfg,
                                 const struct dlfs_backend *be, size_t n, const struct dlfs_shard *shard)
{
    memset(op, 0, sizeof *op);
    op->cfg = *cfg;
    op->be = be;
    op->n = n;
    const struct dlfs_seg all = {0, n, false};
    const struct dlfs_shard whole = {1, (struct dlfs_seg *)&all, n};
    if (!shard) shard = &whole;
    op->shard = *shard;
    op->shard.seg = dlfs_malloc((size_t)(shard->count ? shard->count : 1) * sizeof *shard->seg);
    memcpy(op->shard.seg, shard->seg, (size_t)shard->count * sizeof *shard->seg);
    const size_t bytes = shard->total * sizeof(float);
    const int moments = dlfs_optim_desc(cfg->kind)->moments(cfg);
    int ok = 1;
    if (moments >= 1) ok = (op->m = be->alloc(bytes)) != NULL;
    if (moments >= 2) ok = ok && (op->v = be->alloc(bytes)) != NULL;
    if (!ok)
        return dlfs_error_set(DLFS_ERR_NOMEM, "out of %s memory for the %s optimizer state of %zu parameters",
                              be->name, dlfs_optim_name(cfg->kind), n);
    return DLFS_OK;
}

void dlfs_optim_free(struct dlfs_optimizer *op)
{
    if (op->be) {
        op->be->free(op->m);
        op->be->free(op->v);
    }
    free(op->shard.seg);
    free(op->nodecay);
    memset(op, 0, sizeof *op);
}

size_t dlfs_optim_state_bytes(const struct dlfs_optimizer *op)
{
    return ((op->m != NULL) + (op->v != NULL)) * op->shard.total * sizeof(float);
}

const struct dlfs_shard *dlfs_optim_shard(const struct dlfs_optimizer *op) { return &op->shard; }
double dlfs_optim_base_lr(const struct dlfs_optimizer *op) { return op->cfg.lr; }
double dlfs_optim_step_lr(const struct dlfs_optimizer *op, long step) { return dlfs_optim_lr(&op->cfg, step); }
void dlfs_optim_set_horizon(struct dlfs_optimizer *op, long total_steps) { op->cfg.total_steps = total_steps; }
bool dlfs_optim_has_m(const struct dlfs_optimizer *op) { return op->m != NULL; }
bool dlfs_optim_has_v(const struct dlfs_optimizer *op) { return op->v != NULL; }

void dlfs_optim_set_nodecay(struct dlfs_optimizer *op, size_t (*ranges)[2], int n)
{
    free(op->nodecay);
    op->nodecay = ranges;
    op->n_nodecay = n;
}

double dlfs_optim_lr(const struct dlfs_optim_config *c, long step)
{
    if (c->warmup > 0 && step < c->warmup) return c->lr * (double)(step + 1) / c->warmup;
    if (c->schedule == DLFS_SCHED_CONSTANT) return c->lr;
    const long span = c->total_steps - c->warmup;
    double t = span > 0 ? (double)(step - c->warmup) / span : 1.0;
    if (t > 1.0) t = 1.0;
    return c->lr_min + (c->lr - c->lr_min) * 0.5 * (1.0 + cos(3.14159265358979323846 * t));
}

struct dlfs_optim_hp dlfs_optim_hp(const struct dlfs_optimizer *op, long step)
{
    const struct dlfs_optim_config *c = &op->cfg;
    struct dlfs_optim_hp hp = {
        .lr = (float)dlfs_optim_lr(c, step),
        .momentum = (float)c->momentum,
        .nesterov = c->nesterov,
        .beta1 = (float)c->beta1,
        .beta2 = (float)c->beta2,
        .eps = (float)c->eps,
        .weight_decay = (float)c->weight_decay,
    };
    dlfs_optim_desc(c->kind)->hp(c, step, &hp);
    return hp;
}

struct dlfs_optim_dyn dlfs_optim_dyn(const struct dlfs_optimizer *op, long step)
{
    const struct dlfs_optim_hp hp = dlfs_optim_hp(op, step);
    return (struct dlfs_optim_dyn){.lr = hp.lr, .bias_c1 = hp.bias_c1, .bias_c2 = hp.bias_c2};
}

/* Elements [off, off + len) of the slab, their moments from m/v (NULL: none). */
static void piece_(struct dlfs_optimizer *op, float *params, const float *grads, size_t off, size_t len, float *m,
                   float *v, const struct dlfs_optim_hp *hp)
{
    if (!len) return;
    dlfs_optim_desc(op->cfg.kind)->update(op->be, len, params + off, grads + off, m, v, hp);
}

/* Segment after segment, each cut where the ranges without weight decay begin and
 * end: element-wise arithmetic, so the same bits as one update over the slab. */
void dlfs_optim_update(struct dlfs_optimizer *op, float *params, const float *grads, long step)
{
    const struct dlfs_optim_hp hp = dlfs_optim_hp(op, step);
    struct dlfs_optim_hp free_ = hp;
    free_.weight_decay = 0.0f;
    size_t at = 0;
    for (int i = 0; i < op->shard.count; i++) {
        const struct dlfs_seg *s = &op->shard.seg[i];
        size_t pos = s->off;
        const size_t end = s->off + s->len;
        for (int k = 0; k <= op->n_nodecay && pos < end; k++) {
            /* [pos, a): decayed; [a, b): not (the k-th range, clipped to the segment) */
            size_t a = end, b = end;
            if (k < op->n_nodecay) {
                a = op->nodecay[k][0], b = a + op->nodecay[k][1];
                if (b <= pos) continue;
                a = a < pos ? pos : a > end ? end : a;
                b = b > end ? end : b;
            }
            const size_t o1 = at + (pos - s->off), o2 = at + (a - s->off);
            piece_(op, params, grads, pos, a - pos, op->m ? op->m + o1 : NULL, op->v ? op->v + o1 : NULL, &hp);
            piece_(op, params, grads, a, b - a, op->m ? op->m + o2 : NULL, op->v ? op->v + o2 : NULL, &free_);
            pos = b;
        }
        at += s->len;
    }
}

bool dlfs_optim_has_dev(const struct dlfs_optimizer *op)
{
    return dlfs_optim_desc(op->cfg.kind)->has_dev(op->be) && op->n_nodecay == 0; /* one range: the graph's */
}

void dlfs_optim_update_dev(struct dlfs_optimizer *op, float *params, const float *grads, long step,
                           const struct dlfs_optim_dyn *dyn)
{
    DLFS_ASSERT(op->shard.count == 1 && op->shard.total == op->n); /* the graph runs one rank: no shards */
    const struct dlfs_optim_hp hp = dlfs_optim_hp(op, step);
    dlfs_optim_desc(op->cfg.kind)->update_dev(op->be, op->n, params, grads, op->m, op->v, &hp, dyn);
}

void dlfs_optim_moments(const struct dlfs_optimizer *op, float **m, float **v)
{
    const size_t bytes = op->shard.total * sizeof(float);
    *m = *v = NULL;
    if (op->m) op->be->to_host(*m = dlfs_malloc(bytes), op->m, bytes);
    if (op->v) op->be->to_host(*v = dlfs_malloc(bytes), op->v, bytes);
}

enum dlfs_status dlfs_optim_check(const struct dlfs_optimizer *op, const struct dlfs_ckpt *c, const char *path)
{
    const char *mine = dlfs_optim_name(op->cfg.kind);
    if (strcmp(c->optimizer, mine) != 0)
        return dlfs_error_set(DLFS_ERR_USAGE, "%s holds %s optimizer state but --optim is %s; resume with --optim %s",
                              path, c->optimizer, mine, c->optimizer);
    if ((op->m && !c->m) || (op->v && !c->v))
        return dlfs_error_set(DLFS_ERR_USAGE, "%s has no optimizer state for these options (e.g. SGD without "
                              "momentum); use the optimizer settings it was written with", path);
    return DLFS_OK;
}

void dlfs_optim_load(struct dlfs_optimizer *op, const struct dlfs_ckpt *c)
{
    DLFS_ASSERT(c->num_params == op->n);
    size_t at = 0;
    for (int i = 0; i < op->shard.count; i++) {
        const struct dlfs_seg *s = &op->shard.seg[i];
        if (op->m) op->be->to_device(op->m + at, c->m + s->off, s->len * sizeof(float));
        if (op->v) op->be->to_device(op->v + at, c->v + s->off, s->len * sizeof(float));
        at += s->len;
    }
}
