/* The checkpoint directory at the library level: names that do not parse are
 * ignored (never an overflow), pruning never removes the newest checkpoint, the
 * newest one that verifies is found and the skipped ones are reported, rolling
 * back is refused or moves the newer line aside (never deletes), long paths are
 * refused before anything is created, and the io/core helpers behave. */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "ckpt/ckpt_edit.h"
#include "dlfs/checkpoint.h"
#include "dlfs/util.h"
#include "testutil.h"

static char dir[64];
static struct dlfs_model model;
static float params[64], m_[64], v_[64]; /* >= the model's 20 parameters */

static int save_(long step, int keep)
{
    struct dlfs_ckpt c = {.model_spec = model.spec, .optimizer = "adam", .num_params = model.num_params,
                          .params = params, .m = m_, .v = v_, .step = step, .epoch = 1, .global_batch = 4,
                          .seed = 1, .virtual_shards = 8, .world_size = 1, .parent_step = -1};
    for (size_t i = 0; i < model.num_params; i++) params[i] = (float)step + 0.1f * (float)i;
    dlfs_error_clear();
    const enum dlfs_status st = dlfs_ckpt_save(dir, &c, &model, keep, NULL);
    CHECK(st == DLFS_OK, "save %ld: %s", step, dlfs_error_msg());
    return st == DLFS_OK;
}

static const char *at_(const char *name)
{
    static char buf[4][512];
    static int k;
    char *p = buf[k++ % 4];
    snprintf(p, 512, "%s/%s", dir, name);
    return p;
}

static int exists_(const char *name) { return access(at_(name), F_OK) == 0; }

/* The steps listed, as text "5 20". */
static const char *steps_(void)
{
    static char out[256];
    struct dlfs_ckpt_list l;
    out[0] = '\0';
    if (dlfs_ckpt_list(dir, &l) != DLFS_OK) return "error";
    for (size_t i = 0; i < l.n; i++)
        snprintf(out + strlen(out), sizeof out - strlen(out), "%s%ld", i ? " " : "", l.v[i].step);
    dlfs_ckpt_list_free(&l);
    return out;
}

static void check_names(void)
{
    CHECK(save_(10, 0), "save");
    const char *junk[] = {"ckpt-12345678901234567890123.h5", "ckpt-5.h5", "ckpt-abc.h5", "ckpt-999999999999999.h5"};
    for (int i = 0; i < 4; i++) fclose(fopen(at_(junk[i]), "w"));
    mkdir(at_("ckpt-000000099.h5"), 0777); /* a directory under a checkpoint's name */
    struct dlfs_ckpt c;
    char *report = NULL;
    CHECK(dlfs_ckpt_latest_valid(dir, NULL, &c, &report) == DLFS_OK && c.path && strstr(c.path, "ckpt-000000010.h5"),
          "latest: %s", c.path ? c.path : "none");
    dlfs_ckpt_free(&c);
    free(report);
    struct dlfs_ckpt_list l;
    CHECK(dlfs_ckpt_list(dir, &l) == DLFS_OK && l.n == 1 && l.ignored, "list");
    for (int i = 0; l.ignored && i < 4; i++) CHECK(strstr(l.ignored, junk[i]) != NULL, "%s not reported", junk[i]);
    CHECK(l.ignored && strstr(l.ignored, "ckpt-000000099.h5: not a regular file"), "directory not reported");
    if (l.ignored) printf("ok   ignored:\n%s", l.ignored);
    dlfs_ckpt_list_free(&l);
    CHECK(save_(20, 1), "save with --keep 1");
    for (int i = 0; i < 4; i++) CHECK(exists_(junk[i]), "pruning removed %s", junk[i]);
    CHECK(strcmp(steps_(), "20") == 0, "after keep 1: %s", steps_());
    for (int i = 0; i < 4; i++) unlink(at_(junk[i]));
    rmdir(at_("ckpt-000000099.h5"));
}

/* --keep never removes the checkpoint just written nor a newer one; a NaN
 * save is refused, so the newest finite one stays. */
static void check_prune(void)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "cp '%s' '%s'", at_("ckpt-000000020.h5"), at_("ckpt-000000099.h5"));
    CHECK(system(cmd) == 0, "copy");
    CHECK(save_(30, 1), "save 30");
    CHECK(strcmp(steps_(), "30 99") == 0, "keep 1 with a newer file present: %s", steps_());
    unlink(at_("ckpt-000000099.h5"));
    CHECK(save_(40, 2) && save_(50, 2) && strcmp(steps_(), "40 50") == 0, "keep 2: %s", steps_());
    struct dlfs_ckpt c = {.model_spec = model.spec, .optimizer = "adam", .num_params = model.num_params,
                          .params = params, .m = m_, .v = v_, .step = 60, .epoch = 1, .global_batch = 4,
                          .seed = 1, .virtual_shards = 8, .world_size = 1, .parent_step = -1};
    params[0] = NAN;
    CHECK(dlfs_ckpt_save(dir, &c, &model, 1, NULL) == DLFS_ERR_NUMERIC, "NaN saved");
    CHECK(strcmp(steps_(), "40 50") == 0, "a refused save pruned: %s", steps_());
}

static void check_latest_valid(void)
{
    CHECK(save_(70, 0) && save_(80, 0), "saves");
    /* 80: flipped parameter (corrupt); 70: NaN with matching digests */
    CHECK(ckedit_put_float(at_("ckpt-000000080.h5"), "/params/0_dense/weight", 2, 77.0f) == 0, "flip");
    struct dlfs_ckpt c;
    CHECK(dlfs_ckpt_load_checked(at_("ckpt-000000050.h5"), &c, NULL) == DLFS_OK, "load 50");
    c.params[1] = NAN;
    CHECK(ckedit_put_float(at_("ckpt-000000070.h5"), "/params/0_dense/weight", 1, NAN) == 0, "nan");
    c.step = 70;
    for (size_t i = 0; i < c.num_params; i++) if (i != 1) c.params[i] = 70.0f + 0.1f * (float)i;
    CHECK(ckedit_redigest(at_("ckpt-000000070.h5"), &c) == 0, "redigest");
    dlfs_ckpt_free(&c);
    char *report = NULL;
    dlfs_error_clear();
    CHECK(dlfs_ckpt_latest_valid(dir, NULL, &c, &report) == DLFS_OK && c.path &&
          strstr(c.path, "ckpt-000000050.h5"), "latest_valid: %s", c.path ? c.path : dlfs_error_msg());
    CHECK(report && strstr(report, "skipped") && strstr(report, "ckpt-000000080.h5: checkpoint is corrupt") &&
          strstr(report, "ckpt-000000070.h5: non-finite values"), "report: %s", report ? report : "none");
    if (report) printf("ok   latest_valid -> %s, report:\n%s", c.path, report);
    free(report);
    dlfs_ckpt_free(&c);
    struct dlfs_ckpt_expect other = {.model_spec = "in(3),dense(2)"};
    CHECK(dlfs_ckpt_latest_valid(dir, &other, &c, &report) == DLFS_ERR_SHAPE, "a model mismatch is not skipped");
    free(report);
}

static void check_rollback(void)
{
    char *msg = NULL;
    char resume[512];
    snprintf(resume, sizeof resume, "%s", at_("ckpt-000000050.h5"));
    dlfs_error_clear();
    CHECK(dlfs_ckpt_rollback_check(dir, resume, 50, 0, &msg) == DLFS_ERR_USAGE &&
          strstr(dlfs_error_msg(), "--rollback") && strstr(dlfs_error_msg(), "goes back to step 50"),
          "refusal: %s", dlfs_error_msg());
    printf("ok   rollback refused -> %s\n", dlfs_error_msg());
    CHECK(strcmp(steps_(), "40 50 70 80") == 0, "a refused rollback touched files: %s", steps_());
    dlfs_error_clear();
    CHECK(dlfs_ckpt_rollback_check(dir, NULL, -1, 0, &msg) == DLFS_ERR_USAGE &&
          strstr(dlfs_error_msg(), "already holds 4 checkpoint(s)"), "fresh start: %s", dlfs_error_msg());
    CHECK(dlfs_ckpt_rollback_check(dir, resume, 50, 1, &msg) == DLFS_OK && msg && strstr(msg, "moved 2"),
          "archive: %s", msg ? msg : dlfs_error_msg());
    if (msg) printf("ok   %s", msg);
    free(msg);
    CHECK(strcmp(steps_(), "40 50") == 0, "after the rollback: %s", steps_());
    DIR *d = opendir(dir);
    struct dirent *e;
    int found = 0;
    while (d && (e = readdir(d)))
        if (strncmp(e->d_name, "abandoned-", 10) == 0) {
            char sub[600];
            snprintf(sub, sizeof sub, "%s/%s/ckpt-000000080.h5", dir, e->d_name);
            found += access(sub, F_OK) == 0;
        }
    if (d) closedir(d);
    CHECK(found == 1, "ckpt-80 not in abandoned-*/");
    CHECK(dlfs_ckpt_rollback_check(dir, resume, 50, 0, &msg) == DLFS_OK && !msg, "no rollback needed now");
}

static void check_paths(void)
{
    char *longp = malloc(6000);
    snprintf(longp, 6000, "%s/long", dir);
    for (size_t n = strlen(longp); n < 5000; n += 10) memcpy(longp + n, "/aaaaaaaaa", 11);
    dlfs_error_clear();
    int lock_fd = -1;
    CHECK(dlfs_ckpt_dir_check(longp, &lock_fd) == DLFS_ERR_USAGE && strstr(dlfs_error_msg(), "PATH_MAX"), "long dir: %s",
          dlfs_error_msg());
    CHECK(!exists_("long"), "a refused --checkpoint-dir created directories");
    const char *m = dlfs_error_msg();
    CHECK(strlen(m) < 1000 && strstr(m, "[...]") && strstr(m, "choose a shorter one"),
          "a long path is shortened in the middle (%zu bytes): %s", strlen(m), m);
    char big[6000];
    memset(big, 'z', sizeof big - 1), big[sizeof big - 1] = '\0';
    dlfs_error_clear();
    dlfs_error_set(DLFS_ERR_IO, "start %s end: what to do", big);
    m = dlfs_error_msg();
    CHECK(strlen(m) == 4095 && strncmp(m, "start zz", 8) == 0 && strstr(m, " [...] ") &&
          strcmp(m + strlen(m) - 15, "end: what to do") == 0,
          "a message over 4096 bytes keeps its beginning and end: %.40s...", m);
    free(longp);
    CHECK(dlfs_path_same(at_("ckpt-000000050.h5"), at_("./ckpt-000000050.h5")), "another spelling");
    symlink("ckpt-000000050.h5", at_("link.h5"));
    CHECK(dlfs_path_same(at_("ckpt-000000050.h5"), at_("link.h5")), "link");
    CHECK(!dlfs_path_same(at_("ckpt-000000050.h5"), at_("ckpt-000000040.h5")), "different files");
    CHECK(!dlfs_path_same(at_("ckpt-000000050.h5"), at_("not-there.h5")), "missing output");
    unlink(at_("link.h5"));
    char id1[33], id2[33];
    dlfs_ckpt_run_id(id1), dlfs_ckpt_run_id(id2);
    CHECK(strlen(id1) == 32 && strspn(id1, "0123456789abcdef") == 32 && strcmp(id1, id2) != 0, "run ids");
}

/* The contents of a file (up to 255 bytes), "" when unreadable. */
static const char *slurp_(const char *path)
{
    static char buf[256];
    buf[0] = '\0';
    FILE *f = fopen(path, "r");
    if (!f) return buf;
    buf[fread(buf, 1, sizeof buf - 1, f)] = '\0';
    fclose(f);
    return buf;
}

static int is_regular_(const char *path)
{
    struct stat sb;
    return lstat(path, &sb) == 0 && S_ISREG(sb.st_mode);
}

/* Links planted at every temporary name the directory code creates (the atomic
 * writer's PATH.tmp, the write probe, the lock) aimed at a victim file: the
 * victim stays byte-identical, and what was written is a file of our own. */
static void check_planted_links(void)
{
    const char *victim = at_("victim.txt");
    FILE *f = fopen(victim, "w");
    if (f) fputs("precious\n", f), fclose(f);
    CHECK(symlink("victim.txt", at_("ckpt-000000070.h5.tmp")) == 0, "planting a symlink");
    if (save_(70, 0)) {
        CHECK(strcmp(slurp_(victim), "precious\n") == 0, "a symlink at PATH.tmp: the victim was written");
        CHECK(is_regular_(at_("ckpt-000000070.h5")), "a symlink at PATH.tmp: the checkpoint is not a file of ours");
    }
    CHECK(link(victim, at_("ckpt-000000080.h5.tmp")) == 0, "planting a hard link");
    if (save_(80, 0)) {
        struct stat sb;
        CHECK(strcmp(slurp_(victim), "precious\n") == 0, "a hard link at PATH.tmp: the victim was truncated");
        CHECK(stat(victim, &sb) == 0 && sb.st_nlink == 1, "the hard link's name still holds the victim");
    }
    char sub[128], probe[160], lock[160], stale[160];
    snprintf(sub, sizeof sub, "%s/locked", dir);
    snprintf(probe, sizeof probe, "%s/.dlfs-write-test.%ld.0", sub, (long)getpid());
    snprintf(lock, sizeof lock, "%s/.dlfs-lock", sub);
    snprintf(stale, sizeof stale, "%s/ckpt-000000001.h5.tmp", sub);
    mkdir(sub, 0777);
    char target[160];
    snprintf(target, sizeof target, "../victim.txt");
    symlink(target, probe), symlink(target, stale), symlink(target, lock);
    int fd = -1;
    dlfs_error_clear();
    CHECK(dlfs_ckpt_dir_check(sub, &fd) == DLFS_ERR_IO && strstr(dlfs_error_msg(), ".dlfs-lock") && fd == -1,
          "a symlink at the lock: %s", dlfs_error_msg());
    unlink(lock);
    CHECK(link(victim, lock) == 0, "planting a hard link at the lock");
    dlfs_error_clear();
    CHECK(dlfs_ckpt_dir_check(sub, &fd) == DLFS_ERR_IO && strstr(dlfs_error_msg(), "one name") && fd == -1,
          "a hard link at the lock: %s", dlfs_error_msg());
    unlink(lock);
    CHECK(strcmp(slurp_(victim), "precious\n") == 0, "a link at the probe or the lock: the victim was written");
    dlfs_error_clear();
    CHECK(dlfs_ckpt_dir_check(sub, &fd) == DLFS_OK && fd >= 0, "the lock: %s", dlfs_error_msg());
    char want[64];
    snprintf(want, sizeof want, "pid %ld on host ", (long)getpid());
    CHECK(strncmp(slurp_(lock), want, strlen(want)) == 0, "the lock file names its holder: '%s'", slurp_(lock));
    CHECK(strcmp(slurp_(victim), "precious\n") == 0 && access(stale, F_OK) != 0 && access(victim, F_OK) == 0,
          "the stale .tmp link is removed, never its target");
    dlfs_ckpt_dir_unlock(sub, fd);
    CHECK(access(lock, F_OK) != 0 && access(victim, F_OK) == 0, "the lock file goes with the lock");
    /* a link under a checkpoint's name is no checkpoint: never listed (so never read as
     * latest, pruned or moved), noted as ignored */
    CHECK(symlink("ckpt-000000080.h5", at_("ckpt-000000090.h5")) == 0, "planting a link ckpt-90");
    struct dlfs_ckpt_list l;
    CHECK(dlfs_ckpt_list(dir, &l) == DLFS_OK && l.n && l.v[l.n - 1].step == 80 && l.ignored &&
          strstr(l.ignored, "ckpt-000000090.h5: a symbolic link"), "a link as the newest checkpoint: %s",
          l.ignored ? l.ignored : "(nothing ignored)");
    dlfs_ckpt_list_free(&l);
    unlink(at_("ckpt-000000090.h5"));
    /* two outputs not there yet are the same file under two spellings, also through a dangling link */
    CHECK(dlfs_path_same(at_("new.json"), at_("locked/../new.json")), "a file to be created, two spellings");
    symlink("future.json", at_("dangling"));
    CHECK(dlfs_path_same(at_("dangling"), at_("future.json")), "a dangling link and the file it will create");
    CHECK(!dlfs_path_same(at_("new.json"), at_("newer.json")), "two files to be created");
}

/* A sharded checkpoint whose shards leave a gap (rank 0 holds [0, 5), rank 1 [10, 20) of
 * 20 parameters; every digest right, as the writer made them): loading it is refused
 * with one message naming its manifest and the gap; latest passes over it, saying
 * so, to the single file of step 5 before it. */
static void check_shard_gap(void)
{
    char sub[96];
    snprintf(sub, sizeof sub, "%s", at_("gap"));
    struct dlfs_ckpt c = {.model_spec = model.spec, .optimizer = "adam", .num_params = model.num_params,
                          .params = params, .m = m_, .v = v_, .step = 5, .epoch = 1, .global_batch = 4,
                          .seed = 1, .virtual_shards = 8, .world_size = 1, .parent_step = -1};
    for (size_t i = 0; i < model.num_params; i++) params[i] = m_[i] = v_[i] = 0.5f + 0.1f * (float)i;
    CHECK(dlfs_ckpt_save(sub, &c, &model, 0, NULL) == DLFS_OK, "save 5: %s", dlfs_error_msg());
    uint64_t off[2] = {0, 10}, len[2] = {5, 10};
    const struct dlfs_ckpt_shard s[2] = {{0, 2, 9, 20, 1, off, len, m_, v_},
                                         {1, 2, 9, 20, 1, off + 1, len + 1, m_ + 10, v_ + 10}};
    char sha[2][65];
    c.step = 9, c.world_size = 2, c.m = c.v = NULL;
    CHECK(model.num_params == 20 && dlfs_ckpt_shard_dir(sub, 9) == DLFS_OK &&
          dlfs_ckpt_shard_write(sub, &s[0], sha[0]) == DLFS_OK && dlfs_ckpt_shard_write(sub, &s[1], sha[1]) == DLFS_OK &&
          dlfs_ckpt_manifest_write(sub, &c, 1, 1, &model, sha, 0, NULL) == DLFS_OK, "write the shards: %s",
          dlfs_error_msg());
    char d9[160];
    snprintf(d9, sizeof d9, "%s/ckpt-000000009.d", sub);
    struct dlfs_ckpt in;
    dlfs_error_clear();
    CHECK(dlfs_ckpt_load_checked(d9, &in, NULL) == DLFS_ERR_FORMAT && strstr(dlfs_error_msg(), "009.d/manifest.h5: ") &&
          strstr(dlfs_error_msg(), "15 of the 20 parameters (none for 5..9"), "a gap: %s", dlfs_error_msg());
    char *report = NULL;
    CHECK(dlfs_ckpt_latest_valid(sub, NULL, &in, &report) == DLFS_OK && in.step == 5, "latest: %s",
          in.path ? in.path : dlfs_error_msg());
    CHECK(report && strstr(report, "ckpt-000000009.d") && strstr(report, "checkpoint is incomplete"), "report: %s",
          report ? report : "none");
    free(report);
    dlfs_ckpt_free(&in);
}

int main(void)
{
    snprintf(dir, sizeof dir, "ckptdir-test-XXXXXX");
    if (!mkdtemp(dir)) return perror("mkdtemp"), 1;
    if (dlfs_model_parse("in(3),dense(3),dense(2)", &model) != DLFS_OK) return 1;
    check_names();
    check_prune();
    check_latest_valid();
    check_rollback();
    check_paths();
    check_planted_links();
    check_shard_gap();
    dlfs_model_free(&model);
    if (!t_failures_ && !getenv("KEEP")) {
        char cmd[128];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
        if (system(cmd) != 0) perror("rm");
    }
    printf("%s: %d failure(s)\n", t_failures_ ? "FAILED" : "PASSED", t_failures_);
    return t_failures_ ? 1 : 0;
}
