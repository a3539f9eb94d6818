/* Every op of the CUDA table against the CPU table (itself tested against float64
 * references in tests/unit/test_ops.c): the same random inputs through both, a
 * per-op tolerance on the normalised error (NMSE = sum (gpu-cpu)^2 / sum cpu^2)
 * and on each element, the first few mismatches printed, and sentinel values
 * around every output buffer to catch out-of-bounds writes.
 *
 *   test_cuda_ops [FAMILY...]          CUDA vs CPU; exit 77 ("skipped") where there is no GPU
 *   test_cuda_ops --self [FAMILY...]   CPU vs CPU: checks this harness itself (runs anywhere)
 *   test_cuda_ops --list               the op families, one a line
 *   test_cuda_ops --no-fork FAMILY     one family in this process (for tools that follow
 *                                      one process, e.g. compute-sanitizer)
 *
 * The cases are rows of one table (cases_ below): a family name, a case function
 * (ops/dense.h, ops/cnn.h, ops/model.h; the harness is ops/harness.h) and its
 * parameters, as ggml's test-backend-ops lists its cases. A new op: one small case
 * function and its rows; a new family is a new name in a row.
 *
 * Each op family (memory, vec, gemm, ...; all of them by default) runs in a child
 * process of its own, which sets up the backend itself (a CUDA context does not
 * survive fork): a CUDA error, which aborts the process, or a hang (the child's
 * alarm, DLFS_OPS_FAMILY_TIMEOUT seconds, default 300) ends that family only. Each
 * family's result is printed ("family gemm: ok", "family pool: FAIL ...",
 * "crashed (signal 6 ...)", "timed out ..."), then a summary line; exit 0 when every
 * family passed, 77 when every one was skipped (no GPU), 1 otherwise. With
 * DLFS_CUDA_SYNC=1 (the GPU check sets it) a faulting kernel is blamed on its
 * own launch. Test hooks, honoured with --self only (the isolation test uses them):
 * DLFS_TEST_OPS_BREAK=FAMILY makes every comparison of that family fail,
 * DLFS_TEST_OPS_CRASH=FAMILY aborts it at its start.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>
#include "ops/harness.h"
#include "ops/dense.h"
#include "ops/cnn.h"
#include "ops/model.h"

#define HP_SGD {.lr = 0.05f, .weight_decay = 1e-3f}
#define HP_ADAM .lr = 1e-3f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f
static const struct ops_case cases_[] = {
    {"memory", memory_case_, {0}},
    {"vec", vec_case_, {.n = 1}}, {"vec", vec_case_, {.n = 7}}, {"vec", vec_case_, {.n = 1000003}},
    /* images x channels x plane: grey 28x28, RGB, the maximum channel count, 1-pixel planes */
    {"normalize", normalize_case_, {.n = 128, .c = 1, .h = 784}},
    {"normalize", normalize_case_, {.n = 5, .c = 3, .h = 1024}},
    {"normalize", normalize_case_, {.n = 3, .c = 16, .h = 5}},
    {"normalize", normalize_case_, {.n = 1000, .c = 2, .h = 1}},
    /* tiny, odd (also with padded leading dimensions), the mlp's shapes (batch 128:
     * forward, dW, dX), a big-K one; k == 0 (C = beta C); operands off the 16-byte grid */
    {"gemm", gemm_sweep_, {.m = 1, .n = 1, .k = 1, .pad = 3}},
    {"gemm", gemm_sweep_, {.m = 3, .n = 5, .k = 7, .pad = 3}},
    {"gemm", gemm_sweep_, {.m = 17, .n = 9, .k = 33, .pad = 3}},
    {"gemm", gemm_sweep_, {.m = 128, .n = 512, .k = 784}},
    {"gemm", gemm_sweep_, {.m = 512, .n = 784, .k = 128}},
    {"gemm", gemm_sweep_, {.m = 128, .n = 10, .k = 512}},
    {"gemm", gemm_sweep_, {.m = 257, .n = 129, .k = 2000}},
    {"gemm", gemm_one_, {.m = 5, .n = 6, .k = 0, .pad = 1, .alpha = 1.0f, .beta = 0.5f}},
    {"gemm", gemm_one_, {.m = 64, .n = 32, .k = 48, .tb = 1, .shift = 1, .alpha = 1.0f}},
    {"gemm", gemm_rounds_case_, {.prec = DLFS_PRECISION_BF16, .bits = 7}},
    {"gemm", gemm_rounds_case_, {.prec = DLFS_PRECISION_TF32, .bits = 10}},
    /* rows x cols */
    {"act", act_case_, {.n = 1, .w = 1}}, {"act", act_case_, {.n = 7, .w = 13}},
    {"act", act_case_, {.n = 128, .w = 512}}, {"act", act_case_, {.n = 1000, .w = 10}},
    {"act", act_case_, {.n = 3, .w = 70001}},
    {"colsum", colsum_case_, {.n = 1, .w = 1}}, {"colsum", colsum_case_, {.n = 9, .w = 5}},
    {"colsum", colsum_case_, {.n = 128, .w = 10}}, {"colsum", colsum_case_, {.n = 8192, .w = 10}},
    {"colsum", colsum_case_, {.n = 128, .w = 4096}}, {"colsum", colsum_case_, {.n = 1000, .w = 1000}},
    {"colsum", colsum_case_, {.n = 0, .w = 7}},
    /* rows x classes, the gradient's scale; the last: evaluation, statistics only */
    {"loss", xent_case_, {.n = 6, .c = 10, .alpha = 0.25f, .flag = 1}},
    {"loss", xent_case_, {.n = 128, .c = 10, .alpha = 1.0f / 128, .flag = 1}},
    {"loss", xent_case_, {.n = 8192, .c = 10, .alpha = 1.0f / 8192, .flag = 1}},
    {"loss", xent_case_, {.n = 33, .c = 1, .alpha = 1.0f, .flag = 1}},
    {"loss", xent_case_, {.n = 100, .c = 1000, .alpha = 0.01f, .flag = 1}},
    {"loss", xent_case_, {.n = 1000, .c = 10, .alpha = 0.0f, .flag = 0}},
    /* flag: Adam (else SGD) */
    {"optim", optim_sweep_, {.name = "sgd plain", .hp = HP_SGD}},
    {"optim", optim_sweep_, {.name = "sgd momentum", .hp = {.lr = 0.05f, .momentum = 0.9f, .weight_decay = 1e-3f}}},
    {"optim", optim_sweep_, {.name = "sgd nesterov", .hp = {.lr = 0.05f, .momentum = 0.9f, .nesterov = true}}},
    {"optim", optim_sweep_, {.name = "adam", .flag = 1, .hp = {HP_ADAM}}},
    {"optim", optim_sweep_, {.name = "adam L2", .flag = 1, .hp = {HP_ADAM, .weight_decay = 0.1f}}},
    {"optim", optim_sweep_, {.name = "adamw", .flag = 1, .hp = {HP_ADAM, .weight_decay = 0.01f, .decoupled = true}}},
    {"model", model_case_, {0}},
    /* c h w oc kernel stride pad n [budget] act */
#define CONV_(c_, h_, w_, oc_, k_, s_, p_, n_, budget_, act_)                                                   \
    {"conv", conv_case_, {.c = c_, .h = h_, .w = w_, .oc = oc_, .kernel = k_, .stride = s_, .pad = p_, .n = n_, \
                          .budget = budget_, .act = act_}}
    CONV_(1, 5, 5, 2, 3, 1, 0, 1, 0, DLFS_ACT_NONE),
    CONV_(3, 7, 6, 4, 3, 2, 2, 3, 0, DLFS_ACT_RELU),
    CONV_(2, 9, 9, 3, 5, 1, 2, 2, 0, DLFS_ACT_GELU),
    CONV_(2, 4, 5, 3, 1, 2, 0, 3, 0, DLFS_ACT_TANH),                /* 1x1, stride 2 */
    CONV_(1, 3, 3, 2, 5, 1, 2, 1, 0, DLFS_ACT_RELU),                /* kernel larger than the image */
    CONV_(2, 13, 11, 3, 5, 2, 0, 3, 0, DLFS_ACT_SIGMOID),
    CONV_(3, 7, 6, 4, 3, 2, 2, 3, 1, DLFS_ACT_RELU),                /* one image per chunk */
    CONV_(2, 9, 9, 3, 5, 1, 2, 7, 2 * 50 * 81, DLFS_ACT_RELU),      /* chunks 2, 2, 2, 1 */
    CONV_(1, 28, 28, 32, 5, 1, 2, 64, 0, DLFS_ACT_RELU),            /* the cnn's layers */
    CONV_(32, 14, 14, 64, 5, 1, 2, 64, 0, DLFS_ACT_RELU),
#undef CONV_
    /* c h w kernel stride n */
    {"pool", pool_case_, {.c = 3, .h = 6, .w = 6, .kernel = 2, .stride = 2, .n = 2}},
    {"pool", pool_case_, {.c = 2, .h = 7, .w = 5, .kernel = 2, .stride = 2, .n = 1}},   /* odd sizes */
    {"pool", pool_case_, {.c = 2, .h = 7, .w = 7, .kernel = 3, .stride = 2, .n = 3}},   /* overlapping windows */
    {"pool", pool_case_, {.c = 2, .h = 8, .w = 9, .kernel = 3, .stride = 1, .n = 2}},   /* stride 1 */
    {"pool", pool_case_, {.c = 1, .h = 9, .w = 10, .kernel = 2, .stride = 3, .n = 2}},  /* stride > kernel */
    {"pool", pool_case_, {.c = 32, .h = 28, .w = 28, .kernel = 2, .stride = 2, .n = 64}},
    /* rows x cols, rate, key offset */
    {"dropout", dropout_case_, {.n = 1, .w = 1, .rate = 0.0f, .seed = 0}},
    {"dropout", dropout_case_, {.n = 7, .w = 1000, .rate = 0.3f, .seed = 1}},
    {"dropout", dropout_case_, {.n = 128, .w = 1024, .rate = 0.5f, .seed = 2}},
    {"dropout", dropout_case_, {.n = 3, .w = 70001, .rate = 0.9f, .seed = 3}},
    /* images, channels, plane (h), group (0: the whole batch), activation */
    {"batchnorm", bn_case_, {.n = 5, .c = 3, .h = 7, .group = 2, .act = DLFS_ACT_RELU}}, /* groups 2, 2, 1 */
    {"batchnorm", bn_case_, {.n = 9, .c = 4, .h = 13, .group = 0, .act = DLFS_ACT_NONE}},
    {"batchnorm", bn_case_, {.n = 7, .c = 2, .h = 5, .group = 3, .act = DLFS_ACT_GELU}},
    {"batchnorm", bn_case_, {.n = 1, .c = 3, .h = 1, .group = 0, .act = DLFS_ACT_NONE}},  /* variance 0 */
    {"batchnorm", bn_case_, {.n = 64, .c = 300, .h = 1, .group = 16, .act = DLFS_ACT_RELU}}, /* after dense */
    {"batchnorm", bn_case_, {.n = 128, .c = 32, .h = 784, .group = 32, .act = DLFS_ACT_RELU}}, /* cnn-bn's */
    {"batchnorm", bn_case_, {.n = 50, .c = 64, .h = 196, .group = 0, .act = DLFS_ACT_TANH}},
    {"model_cnn", model_cnn_case_, {0}},
};
#undef HP_SGD
#undef HP_ADAM
enum { NCASES = sizeof cases_ / sizeof cases_[0], MAXFAM = 64 };

/* the families, in the order of their first rows, each once */
static int families_(const char *out[MAXFAM])
{
    int nf = 0;
    for (int i = 0; i < NCASES; i++) {
        int k = 0;
        while (k < nf && strcmp(out[k], cases_[i].family) != 0) k++;
        if (k == nf && nf < MAXFAM) out[nf++] = cases_[i].family;
    }
    return nf;
}

static int env_is_(const char *var, const char *name)
{
    const char *v = getenv(var);
    return v && strcmp(v, name) == 0;
}

/* The child: its own backend, then the rows of one family. Exit 0 / 1 / 77. */
static int run_family_(const char *family, int argc, char **argv)
{
    const char *to = getenv("DLFS_OPS_FAMILY_TIMEOUT");
    alarm(to && atoi(to) > 0 ? (unsigned)atoi(to) : 300u); /* SIGALRM ends a hung family */
    ref_ = dlfs_backend_cpu();
    if (ref_->set_threads) ref_->set_threads(1);
    const int rc = t_device_backend_(argc, argv, &dev_, &self_);
    if (rc) return rc;
    if (self_ && env_is_("DLFS_TEST_OPS_CRASH", family)) {
        fprintf(stderr, "DLFS_TEST_OPS_CRASH=%s: aborting (test hook)\n", family);
        abort();
    }
    broken_ = self_ && env_is_("DLFS_TEST_OPS_BREAK", family);
    for (int i = 0; i < NCASES; i++)
        if (strcmp(cases_[i].family, family) == 0) cases_[i].run(&cases_[i].a);
    fflush(stdout);
    if (t_failures_) fprintf(stderr, "%d check(s) failed\n", t_failures_);
    return t_failures_ ? 1 : 0;
}

/* one family in a child process: "ok", "skipped" or why it failed; returns the exit code */
static int run_forked_(const char *family, int argc, char **argv, char *what, size_t len)
{
    printf("--- family %s\n", family);
    fflush(stdout);
    fflush(stderr);
    const pid_t pid = fork();
    if (pid < 0) { perror("test_cuda_ops: fork"); exit(1); }
    if (pid == 0) _exit(run_family_(family, argc, argv));
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
    if (WIFEXITED(status) && (WEXITSTATUS(status) == 0 || WEXITSTATUS(status) == 77)) {
        snprintf(what, len, WEXITSTATUS(status) == 0 ? "ok" : "skipped");
        return WEXITSTATUS(status);
    }
    if (WIFEXITED(status))
        snprintf(what, len, "FAIL (exit %d)", WEXITSTATUS(status));
    else if (WIFSIGNALED(status) && WTERMSIG(status) == SIGALRM)
        snprintf(what, len, "FAIL: timed out (DLFS_OPS_FAMILY_TIMEOUT)");
    else
        snprintf(what, len, "FAIL: crashed (signal %d, %s)", WIFSIGNALED(status) ? WTERMSIG(status) : 0,
                 WIFSIGNALED(status) ? strsignal(WTERMSIG(status)) : "?");
    return 1;
}

/* every selected family, one process each; the summary line; exit 0, 1 or 77 */
static int run_all_(const char *const *sel, int nsel, int argc, char **argv)
{
    int ok = 0, skipped = 0, failed = 0;
    char failed_names[512] = "", what[160];
    for (int k = 0; k < nsel; k++) {
        const int rc = run_forked_(sel[k], argc, argv, what, sizeof what);
        ok += rc == 0;
        skipped += rc == 77;
        if (rc != 0 && rc != 77) {
            failed++;
            if (strlen(failed_names) + strlen(sel[k]) + 2 < sizeof failed_names) {
                if (*failed_names) strcat(failed_names, " ");
                strcat(failed_names, sel[k]);
            }
        }
        printf("family %s: %s\n", sel[k], what);
    }
    printf("op families: %d ok, %d failed%s%s%s, %d skipped, of %d\n", ok, failed, failed ? " (" : "", failed_names,
           failed ? ")" : "", skipped, nsel);
    if (failed) return 1;
    if (skipped == nsel) return 77;
    if (skipped) {
        fprintf(stderr, "FAIL: %d of %d families skipped, the others ran\n", skipped, nsel);
        return 1;
    }
    printf("all checks passed\n");
    return 0;
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0); /* "ok" lines and FAIL lines in order in the log */
    const char *fam[MAXFAM], *sel[MAXFAM];
    const int nf = families_(fam);
    int self = 0, nsel = 0, nofork = 0;
    for (int a = 1; a < argc; a++) {
        if (strcmp(argv[a], "--self") == 0) { self = 1; continue; }
        if (strcmp(argv[a], "--no-fork") == 0) { nofork = 1; continue; }
        if (strcmp(argv[a], "--list") == 0) {
            for (int k = 0; k < nf; k++) printf("%s\n", fam[k]);
            return 0;
        }
        int k = 0;
        while (k < nf && strcmp(argv[a], fam[k]) != 0) k++;
        if (k == nf) {
            fprintf(stderr, "test_cuda_ops: unknown op family '%s' (--list lists them)\n", argv[a]);
            return 2;
        }
        if (nsel < MAXFAM) sel[nsel++] = fam[k];
    }
    if (nsel == 0)
        for (int k = 0; k < nf; k++) sel[nsel++] = fam[k];
    char *self_argv[] = {argv[0], "--self", NULL};
    char **child_argv = self ? self_argv : argv;
    const int child_argc = self ? 2 : 1;
    if (!nofork) return run_all_(sel, nsel, child_argc, child_argv);
    if (nsel != 1) {
        fprintf(stderr, "test_cuda_ops: --no-fork runs exactly one op family (--list lists them)\n");
        return 2;
    }
    printf("--- family %s (in this process)\n", sel[0]);
    const int rc = run_family_(sel[0], child_argc, child_argv);
    printf("family %s: %s\n", sel[0], rc == 0 ? "ok" : rc == 77 ? "skipped" : "FAIL (exit 1)");
    return rc;
}
