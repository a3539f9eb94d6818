/* Checkpoint files at the library level: round trip of format 2, every
 * attribute's range, the whole-state digest, non-finite state refused on save
 * and on load (also with matching digests), the caller's expectation checked
 * before allocating, version 1 still read, the moment slabs each optimizer keeps,
 * a FIFO refused without blocking. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "ckpt/ckpt_edit.h"
#include "dlfs/checkpoint.h"
#include "testutil.h"

#define SPEC "in(6),dense(5),batchnorm,relu,dense(3)"
static char dir[64];
static struct dlfs_model model;

/* A finite state for the model: params, buffers, Adam's moments. */
static struct dlfs_ckpt state_(long step)
{
    const size_t n = model.num_params, nb = model.num_buffers;
    struct dlfs_ckpt c = {.model_spec = model.spec, .optimizer = "adam", .options = "--test", .num_params = n,
                          .num_buffers = nb, .step = step, .epoch = 2, .samples_in_epoch = 40, .global_batch = 8,
                          .seed = 7, .deterministic = 1, .virtual_shards = 4, .world_size = 2, .run_id = "run-a",
                          .parent = "", .parent_step = -1};
    c.params = malloc(n * sizeof(float)), c.m = malloc(n * sizeof(float)), c.v = malloc(n * sizeof(float));
    c.buffers = malloc(nb * sizeof(float));
    for (size_t i = 0; i < n; i++) c.params[i] = 0.01f * (float)i - 0.3f, c.m[i] = 1e-3f * (float)i, c.v[i] = 1e-6f * (float)i;
    for (size_t i = 0; i < nb; i++) c.buffers[i] = 0.5f + (float)i;
    return c;
}

static void state_free_(struct dlfs_ckpt *c) { free(c->params), free(c->m), free(c->v), free(c->buffers); }

/* Save `c` into dir; the file name (static buffer). */
static const char *save_(const struct dlfs_ckpt *c, int keep)
{
    static char path[256];
    char *p = NULL;
    dlfs_error_clear();
    const enum dlfs_status st = dlfs_ckpt_save(dir, c, &model, keep, &p);
    CHECK(st == DLFS_OK, "save step %ld: %s", c->step, dlfs_error_msg());
    snprintf(path, sizeof path, "%s", p ? p : "?");
    free(p);
    return path;
}

static void expect_load_fail_(const char *what, const char *path, const struct dlfs_ckpt_expect *e,
                              enum dlfs_status want, const char *phrase)
{
    struct dlfs_ckpt c;
    dlfs_error_clear();
    const enum dlfs_status st = dlfs_ckpt_load_checked(path, &c, e);
    const char *m = dlfs_error_msg();
    CHECK(st == want, "%s: status '%s', want '%s' (%s)", what, dlfs_status_name(st), dlfs_status_name(want), m);
    CHECK(strstr(m, path) != NULL && strstr(m, phrase) != NULL && !strchr(m, '\n'),
          "%s: message lacks the file or '%s': %s", what, phrase, m);
    CHECK(!c.params && !c.model_spec && !c.path, "%s: a failed load left data in the struct", what);
    CHECK(H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_ALL) == 0, "%s: HDF5 objects left open", what);
    printf("ok   %-28s -> %s\n", what, m);
}

static void check_round_trip(void)
{
    struct dlfs_ckpt w = state_(12), r;
    const char *p = save_(&w, 0);
    dlfs_error_clear();
    CHECK(dlfs_ckpt_load_checked(p, &r, NULL) == DLFS_OK, "load: %s", dlfs_error_msg());
    CHECK(r.format_version == 2 && r.step == 12 && r.epoch == 2 && r.samples_in_epoch == 40 && r.global_batch == 8 &&
          r.seed == 7 && r.deterministic == 1 && r.virtual_shards == 4 && r.world_size == 2 &&
          strcmp(r.run_id, "run-a") == 0 && strcmp(r.parent, "") == 0 && r.parent_step == -1, "fields differ");
    CHECK(r.m && r.v && r.buffers && !memcmp(r.params, w.params, w.num_params * 4) &&
          !memcmp(r.v, w.v, w.num_params * 4) && !memcmp(r.buffers, w.buffers, w.num_buffers * 4), "arrays differ");
    dlfs_ckpt_free(&r);
    struct dlfs_ckpt_expect e = {.model_spec = model.spec, .optimizer = "adam", .need_m = 1, .need_v = 1,
                                 .params_only = 1};
    CHECK(dlfs_ckpt_load_checked(p, &r, &e) == DLFS_OK && !r.m && !r.v && r.params && r.buffers,
          "params_only: %s", dlfs_error_msg());
    dlfs_ckpt_free(&r);
    struct dlfs_ckpt_expect other = {.model_spec = "in(6),dense(3)", .model_arg = "6-3"};
    expect_load_fail_("another model", p, &other, DLFS_ERR_SHAPE, "resume with --model '" SPEC "'");
    struct dlfs_ckpt_expect sgd = {.optimizer = "sgd"};
    expect_load_fail_("another optimizer", p, &sgd, DLFS_ERR_USAGE, "resume with --optim adam");
    /* no optimizer state at all (SGD without momentum): loads for --eval, refused when needed */
    float *m = w.m, *v = w.v;
    w.optimizer = "sgd", w.m = w.v = NULL, w.step = 13;
    p = save_(&w, 0);
    struct dlfs_ckpt_expect eval = {.model_spec = model.spec, .params_only = 1};
    dlfs_error_clear();
    CHECK(dlfs_ckpt_load_checked(p, &r, &eval) == DLFS_OK && r.params && !r.m, "no moments: %s", dlfs_error_msg());
    dlfs_ckpt_free(&r);
    struct dlfs_ckpt_expect momentum = {.optimizer = "sgd", .need_m = 1};
    expect_load_fail_("moments needed, none stored", p, &momentum, DLFS_ERR_USAGE, "has no optimizer state");
    w.m = m, w.v = v;
    state_free_(&w);
}

/* Attributes out of range, each in a fresh copy of a good file. */
static void check_fields(void)
{
    static const struct { const char *name; long long v; const char *phrase; } bad[] = {
        {"samples_in_epoch", -5, "'samples_in_epoch' is -5, outside"}, {"step", -1, "'step' is -1"},
        {"epoch", 0, "'epoch' is 0"}, {"global_batch", 0, "'global_batch' is 0"},
        {"world_size", 0, "'world_size' is 0"}, {"virtual_shards", 100000, "'virtual_shards' is 100000"},
        {"seed", -3, "'seed' is -3"}, {"deterministic", 2, "'deterministic' is 2"},
        {"num_params", 1000000000000000000LL, "num_params does not match its model spec"},
        {"step", 10000000000000LL, "outside [0, 999999999999]"}, {"format_version", 3, "format version 3"}};
    struct dlfs_ckpt w = state_(3);
    const char *p = save_(&w, 0);
    char copy[300];
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        snprintf(copy, sizeof copy, "%s/field-%zu.h5", dir, i);
        char cmd[700];
        snprintf(cmd, sizeof cmd, "cp '%s' '%s'", p, copy);
        CHECK(system(cmd) == 0 && ckedit_set_i64(copy, bad[i].name, bad[i].v) == 0, "edit %s", bad[i].name);
        expect_load_fail_(bad[i].name, copy, NULL, DLFS_ERR_FORMAT, bad[i].phrase);
        unlink(copy);
    }
    snprintf(copy, sizeof copy, "%s/spec.h5", dir);
    char *huge = malloc(70000);
    memset(huge, 'x', 69999), huge[69999] = '\0';
    char cmd[700];
    snprintf(cmd, sizeof cmd, "cp '%s' '%s'", p, copy);
    CHECK(system(cmd) == 0 && ckedit_set_str(copy, "model_spec", huge) == 0, "edit model_spec");
    expect_load_fail_("model_spec of 70000 bytes", copy, NULL, DLFS_ERR_FORMAT, "'model_spec' attribute is not a string");
    free(huge);
    unlink(copy), unlink(p);
    state_free_(&w);
}

/* Flipped state outside the parameters; NaN with matching digests; save of non-finite state. */
static void check_integrity(void)
{
    struct dlfs_ckpt w = state_(4), r;
    const char *p = save_(&w, 0);
    CHECK(ckedit_put_float(p, "/optimizer/m/2_dense/weight", 5, 123.0f) == 0, "edit m");
    expect_load_fail_("flipped /optimizer/m", p, NULL, DLFS_ERR_FORMAT, "does not match the state_sha256");
    p = save_(&w, 0);
    CHECK(ckedit_put_float(p, "/buffers/1_batchnorm/running_var", 1, 9.0f) == 0, "edit buffers");
    expect_load_fail_("flipped /buffers", p, NULL, DLFS_ERR_FORMAT, "does not match the state_sha256");
    p = save_(&w, 0);
    CHECK(ckedit_set_i64(p, "samples_in_epoch", 41) == 0, "edit position");
    expect_load_fail_("moved data position", p, NULL, DLFS_ERR_FORMAT, "does not match the state_sha256");
    p = save_(&w, 0);
    w.params[3] = NAN; /* the file gets the NaN and digests that match it */
    CHECK(ckedit_put_float(p, "/params/0_dense/weight", 3, NAN) == 0 && ckedit_redigest(p, &w) == 0, "forge NaN");
    expect_load_fail_("NaN params, digests match", p, NULL, DLFS_ERR_NUMERIC,
                      "non-finite values in /params/0_dense/weight: the run had diverged before this checkpoint");
    struct dlfs_ckpt_list l;
    dlfs_ckpt_list(dir, &l);
    const size_t before = l.n;
    dlfs_ckpt_list_free(&l);
    w.step = 5;
    dlfs_error_clear();
    CHECK(dlfs_ckpt_save(dir, &w, &model, 1, NULL) == DLFS_ERR_NUMERIC &&
          strstr(dlfs_error_msg(), "non-finite values in /params/0_dense/weight"), "NaN save: %s", dlfs_error_msg());
    w.params[3] = 0.5f, w.v[7] = INFINITY;
    dlfs_error_clear();
    CHECK(dlfs_ckpt_save(dir, &w, &model, 1, NULL) == DLFS_ERR_NUMERIC &&
          strstr(dlfs_error_msg(), "/optimizer/v/0_dense/weight"), "Inf save: %s", dlfs_error_msg());
    dlfs_ckpt_list(dir, &l);
    CHECK(l.n == before, "a refused save changed the directory (%zu -> %zu files)", before, l.n);
    dlfs_ckpt_list_free(&l);
    w.v[7] = 0;
    /* version 1: no state digest, no lineage; read, parameters verified */
    p = save_(&w, 0);
    CHECK(!ckedit_set_i64(p, "format_version", 1) && !ckedit_set_str(p, "state_sha256", NULL) &&
          !ckedit_set_str(p, "run_id", NULL) && !ckedit_set_str(p, "parent", NULL) &&
          !ckedit_set_str(p, "parent_step", NULL), "make v1");
    dlfs_error_clear();
    CHECK(dlfs_ckpt_load_checked(p, &r, NULL) == DLFS_OK && r.format_version == 1 && r.parent_step == -1 && r.run_id &&
          !r.run_id[0], "version 1: %s", dlfs_error_msg());
    dlfs_ckpt_free(&r);
    unlink(p);
    state_free_(&w);
}

/* The moment slabs a checkpoint holds, against what each optimizer keeps by its
 * definition (SGD: none, or the momentum buffer; Adam and AdamW: m and v): a write
 * with the wrong ones is refused, and so is a file whose optimizer does not match
 * its slabs. */
static void check_moments(void)
{
    static const struct { const char *opt; int m, v, ok; } w_[] = {
        {"adam", 1, 1, 1}, {"adam", 1, 0, 0}, {"adam", 0, 0, 0}, {"adamw", 1, 0, 0}, {"adamw", 1, 1, 1},
        {"sgd", 0, 0, 1},  {"sgd", 1, 0, 1},  {"sgd", 1, 1, 0},  {"sgd", 0, 1, 0},
    };
    struct dlfs_ckpt w = state_(30);
    float *m = w.m, *v = w.v;
    for (size_t i = 0; i < sizeof w_ / sizeof w_[0]; i++) {
        w.optimizer = (char *)w_[i].opt, w.m = w_[i].m ? m : NULL, w.v = w_[i].v ? v : NULL, w.step = 30 + (long)i;
        dlfs_error_clear();
        const enum dlfs_status st = dlfs_ckpt_save(dir, &w, &model, 0, NULL);
        CHECK(w_[i].ok ? st == DLFS_OK : st == DLFS_ERR_FORMAT && strstr(dlfs_error_msg(), "does not match the model"),
              "save %s with m %d v %d: %s (%s)", w_[i].opt, w_[i].m, w_[i].v, dlfs_status_name(st), dlfs_error_msg());
    }
    /* SGD with momentum on disk, relabelled Adam / AdamW with digests that match */
    const char *relabel[] = {"adam", "adamw"};
    for (int k = 0; k < 2; k++) {
        w.optimizer = "sgd", w.m = m, w.v = NULL, w.step = 50 + k;
        const char *p = save_(&w, 0);
        w.optimizer = (char *)relabel[k];
        CHECK(ckedit_set_str(p, "optimizer", relabel[k]) == 0 && ckedit_redigest(p, &w) == 0, "relabel");
        char want[96];
        snprintf(want, sizeof want, "(%s state with fewer moments than its optimizer keeps)", relabel[k]);
        expect_load_fail_("Adam label on SGD state", p, NULL, DLFS_ERR_FORMAT, want);
        unlink(p);
    }
    w.m = m, w.v = v;
    state_free_(&w);
}

static void check_fifo(void)
{
    char fifo[128];
    snprintf(fifo, sizeof fifo, "%s/ckpt-000000077.h5", dir);
    if (mkfifo(fifo, 0600) != 0) return;
    alarm(20); /* a loader that blocks on the FIFO fails here instead of hanging */
    expect_load_fail_("FIFO", fifo, NULL, DLFS_ERR_IO, "it is a FIFO (named pipe), not a regular file");
    alarm(0);
    unlink(fifo);
}

int main(void)
{
    snprintf(dir, sizeof dir, "ckpt-test-XXXXXX");
    if (!mkdtemp(dir)) return perror("mkdtemp"), 1;
    if (dlfs_model_parse(SPEC, &model) != DLFS_OK) return fprintf(stderr, "%s\n", dlfs_error_msg()), 1;
    check_round_trip();
    check_fields();
    check_integrity();
    check_moments();
    check_fifo();
    dlfs_model_free(&model);
    if (!t_failures_) {
        char cmd[128];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
        if (system(cmd) != 0) perror("rm");
    }
    printf("%s: %d failure(s)\n", t_failures_ ? "FAILED" : "PASSED", t_failures_);
    return t_failures_ ? 1 : 0;
}
