#define _POSIX_C_SOURCE 200809L
/* libFuzzer target: the checkpoint reader (dlfs_ckpt_load_image) on real
 * checkpoints, written by the library, then edited by the fuzz input
 * (h5script.h). One more edit: recompute params_sha256 and state_sha256 from what
 * the file now holds, so that edited values reach the checks behind the digests
 * (ranges of the arrays, finiteness) as a forger would make them. */
#include <stdlib.h>
#include <unistd.h>
#include "dlfs/checkpoint.h"
#include "h5script.h"
#include "io/ckpt-impl.h"
#include "io/h5.h"

static void *tmpl_[2];
static size_t tmpl_len_[2];
static const char *const specs_[] = {"in(3x4x4),conv(2,k3,p1),batchnorm,relu,maxpool(2),flatten,dense(3)",
                                     "in(5),dense(4),relu,dense(2)", "in(4),dense(2)", "mlp", "", "in(5),dense(9)"};

static void *make_(int k, size_t *len)
{
    struct dlfs_model m;
    if (dlfs_model_parse(specs_[k], &m) != DLFS_OK) return NULL;
    const size_t n = m.num_params, nb = m.num_buffers;
    struct dlfs_ckpt c = {.model_spec = m.spec, .optimizer = k ? "sgd" : "adam", .options = "--fuzz", .num_params = n,
                          .num_buffers = nb, .step = 7, .epoch = 1, .samples_in_epoch = 32, .global_batch = 8,
                          .seed = 3, .virtual_shards = 8, .world_size = 2, .run_id = "fuzz", .parent = "",
                          .parent_step = -1};
    c.params = calloc(n, 4), c.m = calloc(n, 4), c.v = k ? NULL : calloc(n, 4), c.buffers = nb ? calloc(nb, 4) : NULL;
    for (size_t i = 0; i < n; i++) c.params[i] = 0.01f * (float)(i % 17) - 0.05f;
    for (size_t i = 0; i < nb; i++) c.buffers[i] = 1.0f;
    char dir[64], *path = NULL;
    snprintf(dir, sizeof dir, "/tmp/dlfs-fuzz-ckpt-%d-%d", (int)getpid(), k);
    void *b = dlfs_ckpt_save(dir, &c, &m, 0, &path) == DLFS_OK ? fz_slurp(path, len) : NULL;
    if (path) unlink(path), rmdir(dir);
    free(path), free(c.params), free(c.m), free(c.v), free(c.buffers);
    dlfs_model_free(&m);
    return b;
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    for (int k = 0; k < 2; k++)
        if (!(tmpl_[k] = make_(k, &tmpl_len_[k]))) abort();
    return 0;
}

/* One slab (params, m or v) as the file holds it for model m; NULL when absent. */
static float *slab_(hid_t f, const char *group, const struct dlfs_model *m)
{
    char p[128];
    float *x = calloc(m->num_params + 1, sizeof *x);
    for (int l = 0; x && l < m->num_layers; l++) {
        const struct dlfs_layer *L = &m->layers[l];
        uint64_t wd[4], bd[1];
        const int rank = ckpt_weight_dims(L, wd, bd);
        if (!L->num_params) continue;
        snprintf(p, sizeof p, "%s/%s/weight", group, L->name);
        int bad = h5_read_f32(f, p, rank, wd, x + L->w_off) < 0;
        snprintf(p, sizeof p, "%s/%s/bias", group, L->name);
        if (bad || h5_read_f32(f, p, 1, bd, x + L->b_off) < 0) free(x), x = NULL;
    }
    return x;
}

/* The state as the file now holds it (by its model_spec), digested into its
 * attributes (buffers as the templates write them: all 1). */
static void redigest_(hid_t f, struct fz *s)
{
    (void)s;
    static const char *const ints[] = {"step", "epoch", "samples_in_epoch", "global_batch", "seed",
                                       "deterministic", "virtual_shards", "world_size", "parent_step"};
    struct dlfs_ckpt c = {.parent_step = -1};
    struct dlfs_model m;
    int64_t v[9];
    int ok = h5_attr_str_read(f, "model_spec", 4096, &c.model_spec) == 0 &&
             h5_attr_str_read(f, "optimizer", 64, &c.optimizer) == 0 && h5_attr_str_read(f, "run_id", 4096, &c.run_id) == 0 &&
             h5_attr_str_read(f, "parent", 4096, &c.parent) == 0;
    for (int i = 0; ok && i < 9; i++) ok = h5_attr_i64_read(f, ints[i], &v[i]) == 0;
    const int parsed = ok && dlfs_model_parse(c.model_spec, &m) == DLFS_OK;
    dlfs_error_clear();
    if (parsed && m.num_params <= (1u << 16)) {
        c.step = (long)v[0], c.epoch = (int)v[1], c.samples_in_epoch = (long)v[2], c.global_batch = (int)v[3];
        c.seed = (uint64_t)v[4], c.deterministic = (int)v[5], c.virtual_shards = (int)v[6], c.world_size = (int)v[7];
        c.parent_step = (long)v[8], c.num_params = m.num_params, c.num_buffers = m.num_buffers;
        c.params = slab_(f, "/params", &m), c.m = slab_(f, "/optimizer/m", &m), c.v = slab_(f, "/optimizer/v", &m);
        c.buffers = m.num_buffers ? calloc(m.num_buffers, sizeof(float)) : NULL;
        for (size_t i = 0; c.buffers && i < m.num_buffers; i++) c.buffers[i] = 1.0f;
        if (c.params) {
            char a[65], b[65];
            dlfs_params_sha256(c.params, c.num_params, a);
            ckpt_state_sha256(&c, b);
            if (H5Aexists(f, "params_sha256") > 0) H5Adelete(f, "params_sha256");
            if (H5Aexists(f, "state_sha256") > 0) H5Adelete(f, "state_sha256");
            h5_attr_str_write(f, "params_sha256", a), h5_attr_str_write(f, "state_sha256", b);
        }
    }
    if (parsed) dlfs_model_free(&m);
    free(c.model_spec), free(c.optimizer), free(c.run_id), free(c.parent);
    free(c.params), free(c.m), free(c.v), free(c.buffers);
}

static const char *const objs_[] = {"/", "/optimizer", "/params", "/params/0_conv"};
static const char *const attrs_[] = {"format", "format_version", "model_spec", "num_params", "params_sha256",
                                     "state_sha256", "optimizer", "step", "epoch", "samples_in_epoch", "global_batch",
                                     "seed", "deterministic", "virtual_shards", "world_size", "run_id", "parent",
                                     "parent_step", "options"};
static const char *const dsets_[] = {"/params/0_conv/weight", "/params/0_conv/bias", "/params/1_batchnorm/weight",
                                     "/buffers/1_batchnorm/running_var", "/optimizer/m/0_conv/weight",
                                     "/optimizer/v/4_dense/bias", "/params/4_dense/weight", "/params/0_dense/weight",
                                     "/params/2_dense/bias", "/optimizer/m/2_dense/weight", "/optimizer/v",
                                     "/buffers"};
static const struct fz_names names_ = {objs_, 4, attrs_, 19, dsets_, 12, specs_, 6};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    void *image;
    size_t len;
    if (fz_edit(data, size, tmpl_, tmpl_len_, &names_, redigest_, &image, &len) != 0) return 0;
    struct dlfs_ckpt c;
    dlfs_error_clear();
    const enum dlfs_status st = dlfs_ckpt_load_image(image, len, "fuzz-ckpt.h5", &c, NULL);
    if (getenv("DLFS_FUZZ_VERBOSE")) fprintf(stderr, "load: %s\n", st == DLFS_OK ? "ok" : dlfs_error_msg());
    if (st == DLFS_OK) {
        /* what the loader promises: fields in range, finite state */
        if (c.step < 0 || c.epoch < 1 || c.samples_in_epoch < 0 || c.global_batch < 1 || c.world_size < 1 ||
            c.format_version < 1)
            __builtin_trap();
        for (size_t i = 0; i < c.num_params; i++)
            if (!isfinite(c.params[i]) || (c.m && !isfinite(c.m[i])) || (c.v && !isfinite(c.v[i]))) __builtin_trap();
    } else if (c.params || !dlfs_error_msg()[0]) {
        __builtin_trap();
    }
    dlfs_ckpt_free(&c);
    free(image);
    return 0;
}
