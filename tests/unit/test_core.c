/* Core pieces: SHA-256 vectors, the counter RNG, the epoch sampler, option
 * parsing and validation, gradient bucket layout, the transport registry's choice. */
#include <stdio.h>
#include <string.h>
#include "dlfs/comm.h"
#include "dlfs/sampler.h"
#include "dlfs/train.h"
#include "dlfs/util.h"
#include "testutil.h"

static void sha_(const char *msg, size_t reps, const char *want)
{
    struct dlfs_sha256 s;
    uint8_t d[32];
    char hex[65];
    dlfs_sha256_init(&s);
    for (size_t i = 0; i < reps; i++) dlfs_sha256_update(&s, msg, strlen(msg));
    dlfs_sha256_final(&s, d);
    dlfs_sha256_hex(d, hex);
    CHECK(strcmp(hex, want) == 0, "sha256(%s x%zu) = %s", msg, reps, hex);
}

static void test_sha256(void)
{
    sha_("", 1, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    sha_("abc", 1, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    sha_("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", 1,
         "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    sha_("a", 1000000, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
    float one = 1.0f; /* the parameter digest hashes float32 little-endian bytes */
    char hex[65];
    dlfs_params_sha256(&one, 1, hex);
    struct dlfs_sha256 s;
    uint8_t d[32];
    char want[65];
    const uint8_t le[4] = {0x00, 0x00, 0x80, 0x3f};
    dlfs_sha256_init(&s);
    dlfs_sha256_update(&s, le, 4);
    dlfs_sha256_final(&s, d);
    dlfs_sha256_hex(d, want);
    CHECK(strcmp(hex, want) == 0, "params digest is over LE float32 bytes");
}

static void test_rng_sampler(void)
{
    /* uniform01 in [0,1) with a sane mean */
    double sum = 0;
    for (int i = 0; i < 100000; i++) {
        float u = dlfs_uniform01(5, (uint64_t)i);
        CHECK(u >= 0.0f && u < 1.0f, "uniform %g", (double)u);
        sum += u;
    }
    CHECK(sum / 100000 > 0.49 && sum / 100000 < 0.51, "uniform mean %g", sum / 100000);
    const size_t n = 1001;
    uint32_t a[1001], b[1001], c[1001];
    dlfs_sampler_permutation(3, 1, a, n);
    dlfs_sampler_permutation(3, 1, b, n);
    dlfs_sampler_permutation(3, 2, c, n);
    CHECK(memcmp(a, b, sizeof a) == 0, "same (seed, epoch) -> same permutation");
    CHECK(memcmp(a, c, sizeof a) != 0, "different epochs -> different permutations");
    int seen[1001] = {0}, fixed = 0;
    for (size_t i = 0; i < n; i++) {
        CHECK(a[i] < n, "in range");
        if (a[i] < n) seen[a[i]]++;
        fixed += a[i] == i;
    }
    for (size_t i = 0; i < n; i++) CHECK(seen[i] == 1, "sample %zu seen %d times", i, seen[i]);
    CHECK(fixed < 10, "permutation looks shuffled (%d fixed points)", fixed);
}

static enum dlfs_status parse_(const char *line, struct dlfs_options *o)
{
    /* the options point into argv: its strings must outlive the call (a ring of
     * buffers, so that two parsed option sets can be compared) */
    static char ring[4][512];
    static int next;
    char *buf = ring[next++ % 4], *argv[32];
    int argc = 0;
    snprintf(buf, sizeof ring[0], "dlfs-train %s", line);
    for (char *t = strtok(buf, " "); t && argc < 31; t = strtok(NULL, " ")) argv[argc++] = t;
    argv[argc] = NULL;
    bool exit_now;
    dlfs_error_clear();
    return dlfs_options_parse(o, argc, argv, 1, &exit_now);
}

static void test_options(void)
{
    struct dlfs_options o;
    CHECK(parse_("--data x.h5", &o) == DLFS_OK && o.batch == 128 && o.lr == 1e-3 && o.optim == DLFS_OPTIM_ADAM &&
          o.epochs == 10, "defaults");
    CHECK(parse_("--data x.h5 --optim sgd", &o) == DLFS_OK && o.lr == 0.05, "sgd default lr");
    CHECK(parse_("--data x.h5 --optim adamw", &o) == DLFS_OK && o.weight_decay == 0.01, "adamw default wd");
    CHECK(parse_("--data x.h5 --batch-per-rank 64 --schedule cosine --warmup 10 --deterministic "
                 "--virtual-shards 4", &o) == DLFS_OK && o.batch == 0 && o.batch_per_rank == 64 &&
          o.schedule == DLFS_SCHED_COSINE && o.deterministic && o.virtual_shards == 4, "several");
    struct { const char *line, *needle; } bad[] = {
        {"--data x.h5 --lr -1", "--lr '-1'"},
        {"--data x.h5 --lr abc", "--lr 'abc'"},
        {"--data x.h5 --batch 0", "--batch '0'"},
        {"--data x.h5 --batch 12x", "--batch '12x'"},
        {"--data x.h5 --epochs 0", "--epochs"},
        {"--data x.h5 --optim rmsprop", "--optim 'rmsprop'"},
        {"--data x.h5 --device tpu", "--device 'tpu'"},
        {"--data x.h5 --precision fp16", "--precision 'fp16': expected one of: fp32 tf32 bf16"},
        {"--data x.h5 --schedule step", "--schedule"},
        {"--data x.h5 --batch 64 --batch-per-rank 32", "--batch-per-rank"},
        {"--data x.h5 --nesterov", "--nesterov"},
        {"--data x.h5 --deterministic --virtual-shards 6", "--virtual-shards 6"},
        {"--data x.h5 --frobnicate", "--frobnicate"},
        {"--data x.h5 stray", "stray"},
        {"--data", "--data"},
        {"--epochs 3", "--data FILE is required"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CHECK(parse_(bad[i].line, &o) == DLFS_ERR_USAGE, "accepted: %s", bad[i].line);
        CHECK(strstr(dlfs_error_msg(), bad[i].needle) != NULL, "'%s' -> '%s' lacks '%s'", bad[i].line,
              dlfs_error_msg(), bad[i].needle);
    }
    struct dlfs_options a, b;
    parse_("--data x.h5 --lr 0.01", &a);
    parse_("--data x.h5 --lr 0.02", &b);
    CHECK(dlfs_options_digest(&a) != dlfs_options_digest(&b), "digest sees the lr");
    parse_("--data x.h5 --lr 0.01 --quiet --threads 1", &b);
    CHECK(dlfs_options_digest(&a) == dlfs_options_digest(&b), "digest ignores rank-local output options");
    CHECK(a.precision == DLFS_PRECISION_FP32, "default precision %d", (int)a.precision);
    for (int p = 1; p < DLFS_PRECISION_COUNT; p++) { /* results change with it: it is in the digest */
        char line[64];
        snprintf(line, sizeof line, "--data x.h5 --lr 0.01 --precision %s", dlfs_precision_name(p));
        CHECK(parse_(line, &b) == DLFS_OK && (int)b.precision == p, "%s", line);
        CHECK(dlfs_options_digest(&a) != dlfs_options_digest(&b), "digest sees --precision %s",
              dlfs_precision_name(p));
    }
    CHECK(parse_("--data x.h5 --precision fp16", &b) == DLFS_ERR_USAGE &&
          strstr(dlfs_error_msg(), "--precision 'fp16': expected one of: fp32 tf32 bf16"), "fp16 is not a precision: %s",
          dlfs_error_msg());
}

static void test_buckets(void)
{
    /* layers at offsets 0, 100, 150, 160 of a 200-float slab; 40-float buckets
     * from the end: [160,200) [100,160) [0,100) */
    struct dlfs_comm c = {.kind = DLFS_COMM_SELF, .size = 1};
    size_t bnd[4] = {0, 100, 150, 160};
    float g[200];
    struct dlfs_buckets b;
    dlfs_buckets_init(&b, &c, dlfs_backend_cpu(), g, bnd, 4, 200, 40 * sizeof(float), NULL, NULL);
    CHECK(b.count == 3, "bucket count %d", b.count);
    CHECK(b.begin[0] == 160 && b.end[0] == 200, "bucket 0 [%zu,%zu)", b.begin[0], b.end[0]);
    CHECK(b.begin[1] == 100 && b.end[1] == 160, "bucket 1 [%zu,%zu)", b.begin[1], b.end[1]);
    CHECK(b.begin[2] == 0 && b.end[2] == 100, "bucket 2 [%zu,%zu)", b.begin[2], b.end[2]);
    dlfs_buckets_ready(&b, 150);
    CHECK(b.started == 1, "only the complete bucket starts (%d)", b.started);
    dlfs_buckets_ready(&b, 100);
    CHECK(b.started == 2, "second bucket starts (%d)", b.started);
    dlfs_buckets_wait(&b);
    dlfs_buckets_free(&b);
    dlfs_buckets_init(&b, &c, dlfs_backend_cpu(), g, bnd, 4, 200, 0, NULL, NULL);
    CHECK(b.count == 4, "bucket per layer with size 0 (%d)", b.count);
    dlfs_buckets_free(&b);
}

/* The transport registry's choice against a table worked out from the rules by
 * hand (dlfs/comm.h, --comm in src/README.md): deterministic mode always takes the
 * tree; NCCL only for device memory, fast mode and a build with it (auto: on
 * several ranks); MPI staged for device memory otherwise, MPI on host memory; and
 * the two ways --comm nccl cannot run. "device" is the CPU backend's op table
 * marked as memory MPI cannot read (the choice looks at nothing else of it). */
static void test_transports(void)
{
    struct dlfs_backend dev = *dlfs_backend_cpu();
    dev.host_memory = false;
    static const struct dlfs_nccl_api built; /* the choice only asks whether there is one */
    enum { CPU_, DEV_ };
    static const struct {
        int be, comm, det, ranks, nccl;
        const struct dlfs_transport_ops *want; /* NULL: refused with `why` */
        const char *why;
    } t[] = {
        {CPU_, DLFS_COMM_PATH_AUTO, 0, 2, 0, &dlfs_transport_mpi_host, NULL},
        {CPU_, DLFS_COMM_PATH_MPI, 0, 1, 0, &dlfs_transport_mpi_host, NULL},
        {CPU_, DLFS_COMM_PATH_AUTO, 1, 2, 0, &dlfs_transport_det_tree, NULL},
        {CPU_, DLFS_COMM_PATH_MPI, 1, 1, 0, &dlfs_transport_det_tree, NULL},
        {CPU_, DLFS_COMM_PATH_NCCL, 0, 2, 1, NULL, "--comm nccl sums GPU buffers, but this rank runs on the cpu"},
        {DEV_, DLFS_COMM_PATH_AUTO, 0, 2, 1, &dlfs_transport_nccl, NULL},
        {DEV_, DLFS_COMM_PATH_AUTO, 0, 1, 1, &dlfs_transport_mpi_staged, NULL},
        {DEV_, DLFS_COMM_PATH_AUTO, 0, 2, 0, &dlfs_transport_mpi_staged, NULL},
        {DEV_, DLFS_COMM_PATH_AUTO, 1, 2, 1, &dlfs_transport_det_tree, NULL},
        {DEV_, DLFS_COMM_PATH_MPI, 0, 2, 1, &dlfs_transport_mpi_staged, NULL},
        {DEV_, DLFS_COMM_PATH_MPI, 1, 4, 1, &dlfs_transport_det_tree, NULL},
        {DEV_, DLFS_COMM_PATH_NCCL, 0, 1, 1, &dlfs_transport_nccl, NULL},
        {DEV_, DLFS_COMM_PATH_NCCL, 0, 2, 0, NULL, "--comm nccl: this dlfs was built without NCCL"},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        const struct dlfs_transport_want w = {
            .be = t[i].be == DEV_ ? &dev : dlfs_backend_cpu(), .comm = (enum dlfs_comm_path)t[i].comm,
            .deterministic = t[i].det, .ranks = t[i].ranks, .device = "auto", .nccl = t[i].nccl ? &built : NULL,
        };
        const struct dlfs_transport_ops *got = NULL;
        dlfs_error_clear();
        const enum dlfs_status st = dlfs_transport_choose(&w, &got);
        CHECK(got == t[i].want && (t[i].want ? st == DLFS_OK : st == DLFS_ERR_DEVICE && strstr(dlfs_error_msg(),
                                                                                              t[i].why)),
              "row %zu (%s, --comm %s%s, %d ranks): got %s (%s), want %s", i, w.be->host_memory ? "host" : "device",
              dlfs_comm_path_name(w.comm), w.deterministic ? " --deterministic" : "", w.ranks, got ? got->name : "none",
              dlfs_error_msg(), t[i].want ? t[i].want->name : t[i].why);
        if (got) CHECK(t[i].comm == DLFS_COMM_PATH_AUTO || dlfs_transport_path(got) == w.comm, "row %zu's path", i);
    }
    /* --comm's words, in the order --help and the error list show them */
    /* ... and --help's arguments of the two table-made choices */
    char help[16384] = "";
    FILE *f = tmpfile();
    CHECK(f != NULL, "tmpfile");
    if (f) {
        dlfs_options_usage(f);
        rewind(f);
        help[fread(help, 1, sizeof help - 1, f)] = '\0';
        fclose(f);
    }
    CHECK(strstr(help, "  --comm auto|mpi|nccl ") && strstr(help, "  --optim sgd|adam|adamw "),
          "--help's --comm and --optim arguments");
    CHECK(DLFS_COMM_PATH_COUNT == 3 && !strcmp(dlfs_comm_path_name(DLFS_COMM_PATH_AUTO), "auto") &&
          !strcmp(dlfs_comm_path_name(DLFS_COMM_PATH_MPI), "mpi") &&
          !strcmp(dlfs_comm_path_name(DLFS_COMM_PATH_NCCL), "nccl"), "--comm's names");
    CHECK(dlfs_transport_det_tree.flags == DLFS_TP_DETERMINISTIC && dlfs_transport_nccl.flags == DLFS_TP_ALWAYS_SUMS &&
          !dlfs_transport_mpi_host.flags && !dlfs_transport_mpi_staged.flags, "the rows' flags");
}

int main(void)
{
    test_sha256();
    test_rng_sampler();
    test_options();
    test_buckets();
    test_transports();
    T_DONE();
}
