/* Checkpoint names, field ranges, digests and the non-finite scan (ckpt-impl.h). */
#define _POSIX_C_SOURCE 200809L
#include "io/ckpt-impl.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include "dlfs/optim.h"
#include "dlfs/util.h"

void ckpt_name(long step, char *buf, size_t len) { snprintf(buf, len, "ckpt-%09ld.h5", step); }
void ckpt_dir_name(long step, char *buf, size_t len) { snprintf(buf, len, "ckpt-%09ld.d", step); }

int ckpt_parse_name(const char *name, long *step, const char **why)
{
    const size_t n = strlen(name);
    const size_t sfx = n >= 3 && strcmp(name + n - 3, ".h5") == 0 ? 3 : n >= 2 && strcmp(name + n - 2, ".d") == 0 ? 2 : 0;
    if (n < 6 + sfx || !sfx || strncmp(name, "ckpt-", 5) != 0) return -1;
    const size_t digits = n - 5 - sfx;
    long v = 0;
    for (size_t i = 5; i < n - sfx; i++)
        if (name[i] < '0' || name[i] > '9') return *why = "not a step number", 0;
    if (digits > 12) return *why = "step out of range (more than 12 digits)", 0;
    for (size_t i = 5; i < n - sfx; i++) v = v * 10 + (name[i] - '0'); /* < 10^12: no overflow */
    char canon[32];
    if (sfx == 3) ckpt_name(v, canon, sizeof canon);
    else ckpt_dir_name(v, canon, sizeof canon);
    if (strcmp(canon, name) != 0) return *why = "not the name dlfs writes for that step (9 digits or more)", 0;
    *step = v;
    return 1;
}

const char *ckpt_fields_bad(const struct dlfs_ckpt *c)
{
    if (c->step < 0 || c->step > DLFS_CKPT_MAX_STEP) return "step";
    if (c->epoch < 1) return "epoch";
    if (c->samples_in_epoch < 0 || c->samples_in_epoch > (long)INT_MAX) return "samples_in_epoch";
    if (c->global_batch < 1) return "global_batch";
    if (c->seed > (uint64_t)DLFS_CKPT_MAX_SEED) return "seed";
    if (c->deterministic != 0 && c->deterministic != 1) return "deterministic";
    if (c->virtual_shards < 1 || c->virtual_shards > DLFS_CKPT_MAX_SHARDS) return "virtual_shards";
    if (c->world_size < 1 || c->world_size > DLFS_CKPT_MAX_WORLD) return "world_size";
    if (c->parent_step < -1 || c->parent_step > DLFS_CKPT_MAX_STEP) return "parent_step";
    if (!dlfs_optim_find(c->optimizer)) return "optimizer";
    if (!c->model_spec || !c->model_spec[0] || strlen(c->model_spec) > DLFS_CKPT_MAX_SPEC) return "model_spec";
    return NULL;
}

const char *ckpt_moments_bad(const char *name, int has_m, int has_v)
{
    const struct dlfs_optim_desc *d = dlfs_optim_find(name);
    const int n = (has_m != 0) + (has_v != 0);
    if (!d) return "an unknown optimizer";
    if (has_v && !has_m) return "a second moment without a first";
    if (n < d->moments_min) return "fewer moments than its optimizer keeps";
    if (n > d->moments_max) return "more moments than its optimizer keeps";
    return NULL;
}

/* "name=<length>:<bytes>\n": unambiguous whatever the bytes */
static void hash_str_(struct dlfs_sha256 *s, const char *name, const char *v)
{
    char head[96];
    v = v ? v : "";
    const int n = snprintf(head, sizeof head, "%s=%zu:", name, strlen(v));
    dlfs_sha256_update(s, head, (size_t)n);
    dlfs_sha256_update(s, v, strlen(v));
    dlfs_sha256_update(s, "\n", 1);
}

static void hash_int_(struct dlfs_sha256 *s, const char *name, long long v)
{
    char line[96];
    const int n = snprintf(line, sizeof line, "%s=%lld\n", name, v);
    dlfs_sha256_update(s, line, (size_t)n);
}

/* The attributes that position the run, the moments named by `moments`, the
 * parameters and the buffers: what both state digests begin with. */
static void state_head_(struct dlfs_sha256 *s, const char *tag, const struct dlfs_ckpt *c, const char *moments)
{
    dlfs_sha256_init(s);
    dlfs_sha256_update(s, tag, strlen(tag));
    hash_str_(s, "model_spec", c->model_spec);
    hash_str_(s, "optimizer", c->optimizer);
    hash_int_(s, "num_params", (long long)c->num_params);
    hash_int_(s, "num_buffers", (long long)(c->buffers ? c->num_buffers : 0));
    hash_int_(s, "step", c->step);
    hash_int_(s, "epoch", c->epoch);
    hash_int_(s, "samples_in_epoch", c->samples_in_epoch);
    hash_int_(s, "global_batch", c->global_batch);
    hash_int_(s, "seed", (long long)c->seed);
    hash_int_(s, "deterministic", c->deterministic);
    hash_int_(s, "virtual_shards", c->virtual_shards);
    hash_int_(s, "world_size", c->world_size);
    hash_str_(s, "run_id", c->run_id);
    hash_str_(s, "parent", c->parent);
    hash_int_(s, "parent_step", c->parent_step);
    hash_str_(s, "moments", moments);
    dlfs_sha256_update_f32le(s, c->params, c->num_params);
    if (c->buffers) dlfs_sha256_update_f32le(s, c->buffers, c->num_buffers);
}

static void finish_(struct dlfs_sha256 *s, char hex[65])
{
    uint8_t d[32];
    dlfs_sha256_final(s, d);
    dlfs_sha256_hex(d, hex);
}

void ckpt_state_sha256(const struct dlfs_ckpt *c, char hex[65])
{
    struct dlfs_sha256 s;
    state_head_(&s, "dlfs-state-v2\n", c, c->m ? (c->v ? "mv" : "m") : (c->v ? "v" : ""));
    if (c->m) dlfs_sha256_update_f32le(&s, c->m, c->num_params);
    if (c->v) dlfs_sha256_update_f32le(&s, c->v, c->num_params);
    finish_(&s, hex);
}

void ckpt_sharded_sha256(const struct dlfs_ckpt *c, const char *moments, char (*shard_sha)[65], int shards,
                         char hex[65])
{
    struct dlfs_sha256 s;
    state_head_(&s, "dlfs-sharded-state-v1\n", c, moments);
    hash_int_(&s, "shards", shards);
    for (int r = 0; r < shards; r++) hash_str_(&s, "shard_sha256", shard_sha[r]);
    finish_(&s, hex);
}

/* The shard's digest: its position, its segment table and its values. */
void ckpt_shard_sha256(const struct dlfs_ckpt_shard *s, size_t total, char hex[65])
{
    struct dlfs_sha256 h;
    uint8_t d[32];
    char line[160];
    dlfs_sha256_init(&h);
    int n = snprintf(line, sizeof line, "dlfs-shard-v1\nrank=%d\nworld_size=%d\nstep=%ld\nnum_params=%zu\ncount=%d\n",
                     s->rank, s->world_size, s->step, s->num_params, s->count);
    dlfs_sha256_update(&h, line, (size_t)n);
    for (int i = 0; i < s->count; i++) {
        n = snprintf(line, sizeof line, "%llu+%llu\n", (unsigned long long)s->off[i], (unsigned long long)s->len[i]);
        dlfs_sha256_update(&h, line, (size_t)n);
    }
    dlfs_sha256_update_f32le(&h, s->m, total);
    if (s->v) dlfs_sha256_update_f32le(&h, s->v, total);
    dlfs_sha256_final(&h, d);
    dlfs_sha256_hex(d, hex);
}

int ckpt_weight_dims(const struct dlfs_layer *L, uint64_t wd[4], uint64_t bd[1])
{
    for (int i = 0; i < L->w_rank; i++) wd[i] = L->w_dims[i];
    bd[0] = (uint64_t)(L->num_params - (L->b_off - L->w_off));
    return L->w_rank;
}

static bool finite_(const float *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isfinite(v[i])) return false;
    return true;
}

bool ckpt_nonfinite(const struct dlfs_model *m, const char *group, const float *slab, char *buf, size_t len)
{
    const bool bufs = strcmp(group, "/buffers") == 0;
    for (int l = 0; slab && l < m->num_layers; l++) {
        const struct dlfs_layer *L = &m->layers[l];
        if (bufs ? L->num_bufs == 0 : L->num_params == 0) continue;
        /* two arrays each: weight and bias, or the layer's two buffers */
        const size_t off0 = bufs ? L->buf_off : L->w_off, n0 = bufs ? L->buf_len : L->b_off - L->w_off;
        const size_t off1 = bufs ? L->buf_off + L->buf_len : L->b_off;
        const size_t n1 = bufs ? (L->num_bufs > 1 ? L->buf_len : 0) : L->num_params - (L->b_off - L->w_off);
        const char *what = !finite_(slab + off0, n0) ? (bufs ? L->buf_names[0] : "weight")
                           : !finite_(slab + off1, n1) ? (bufs ? L->buf_names[1] : "bias") : NULL;
        if (what) {
            snprintf(buf, len, "%s/%s/%s", group, L->name, what);
            return true;
        }
    }
    return false;
}

bool ckpt_state_nonfinite(const struct dlfs_model *m, const struct dlfs_ckpt *c, char *buf, size_t len)
{
    return ckpt_nonfinite(m, "/params", c->params, buf, len) || ckpt_nonfinite(m, "/buffers", c->buffers, buf, len) ||
           ckpt_nonfinite(m, "/optimizer/m", c->m, buf, len) || ckpt_nonfinite(m, "/optimizer/v", c->v, buf, len);
}
