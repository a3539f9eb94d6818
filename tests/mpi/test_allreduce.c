/* The all-reduces on awkward sizes (1 element, primes, not divisible by P,
 * larger than a bucket) against exact references; every rank agrees on the
 * verdict before anyone exits (the failure count is summed). Also: how often
 * dlfs_nccl_open polls a set-up (a stand-in for NCCL). */
#define _POSIX_C_SOURCE 200809L
#include <mpi.h>
#include <string.h>
#include "dlfs/comm.h"
#include "dlfs/util.h"
#include "testutil.h"

static float input_(int rank, size_t i, int exact)
{
    /* exact: small integers, whose sums are exact in any order */
    if (exact) return (float)((rank + 1) * (int)(i % 7 + 1));
    return dlfs_uniform01(dlfs_key(11, (uint64_t)rank, 0), i) * 2.0f - 1.0f;
}

/* A stand-in for a device backend on the MPI path (host_memory false): its
 * "device" is host memory, and each staging copy lands only after a few polls,
 * so buckets.c must wait for the copy before it all-reduces the pinned slab. */
static struct { void *dst; const void *src; size_t bytes; int polls; } copies_[DLFS_STAGE_SLOTS];
static int staged_;
static void *fake_pinned_alloc_(size_t bytes)
{
    float *p = malloc(bytes);
    for (size_t i = 0; i < bytes / sizeof *p; i++) p[i] = 1e30f; /* a sum over stale staging shows */
    return p;
}
static void fake_stage_(void *dst, const void *src, size_t bytes, int slot)
{
    copies_[slot].dst = dst;
    copies_[slot].src = src;
    copies_[slot].bytes = bytes;
    copies_[slot].polls = 3;
    staged_++;
}
static int fake_test_(int slot, bool wait)
{
    if (copies_[slot].polls > 0 && !wait && --copies_[slot].polls > 0) return 0;
    if (copies_[slot].dst) memcpy(copies_[slot].dst, copies_[slot].src, copies_[slot].bytes);
    copies_[slot].dst = NULL;
    copies_[slot].polls = 0;
    return 1;
}
static void fake_to_device_(void *dst, const void *src, size_t bytes) { memcpy(dst, src, bytes); }
static const struct dlfs_backend fake_device_ = {
    .name = "fake-device",
    .host_memory = false,
    .to_device = fake_to_device_,
    .pinned_alloc = fake_pinned_alloc_,
    .pinned_free = free,
    .stage_to_host = fake_stage_,
    .stage_test = fake_test_,
};

/* The fixed tree over ranks: level d combines rank blocks d apart. */
static float tree_ref_(int P, size_t i)
{
    float v[64];
    for (int r = 0; r < P; r++) v[r] = input_(r, i, 0);
    for (int d = 1; d < P; d *= 2)
        for (int r = 0; r + d < P; r += 2 * d) v[r] = v[r] + v[r + d];
    return v[0];
}

/* A stand-in for NCCL's set-up (struct dlfs_nccl_api): up after `up_after_s`,
 * counting the polls, and the polls made after it reported up. */
static struct { double t0, up_after_s; int polls, polls_when_up, aborted; } ninit_;
static int nfake_id_(void *id, char *why, size_t why_len)
{
    (void)why, (void)why_len;
    memset(id, 7, 16);
    return 0;
}
static void *nfake_start_(const void *id, int nranks, int rank, double timeout_s, char *why, size_t why_len)
{
    (void)id, (void)nranks, (void)rank, (void)timeout_s, (void)why, (void)why_len;
    ninit_.t0 = dlfs_now();
    return &ninit_;
}
static int nfake_poll_(void *ctx, char *why, size_t why_len)
{
    (void)ctx, (void)why, (void)why_len;
    if (ninit_.polls_when_up) ninit_.polls_when_up++;
    ninit_.polls++;
    if (dlfs_now() < ninit_.t0 + ninit_.up_after_s) return 0;
    if (!ninit_.polls_when_up) ninit_.polls_when_up = 1;
    return 1;
}
static void nfake_abort_(void *ctx) { (void)ctx, ninit_.aborted++; }
static const struct dlfs_nccl_api nfake_ = {
    .id_bytes = 16, .get_id = nfake_id_, .init_start = nfake_start_, .init_poll = nfake_poll_,
    .destroy = nfake_abort_, .abort = nfake_abort_,
};

/* dlfs_nccl_open polls a set-up that takes 0.3 s about once a millisecond (a
 * tight loop polls hundreds of thousands of times), and never again once it is
 * up, also while the stall hook holds rank 0 for 1 s more. */
static void nccl_setup_polls_(struct dlfs_comm *c)
{
    setenv("DLFS_FAULT_NCCL_INIT_STALL", "0:1", 1);
    ninit_.up_after_s = 0.3;
    void *ctx = NULL;
    const double t0 = dlfs_now();
    CHECK(dlfs_nccl_open(c, &nfake_, &ctx) == DLFS_OK && ctx == &ninit_, "fake NCCL set-up: %s", dlfs_error_msg());
    const double took = dlfs_now() - t0;
    CHECK(ninit_.polls >= 2 && ninit_.polls <= 1000, "NCCL set-up polled %d times in %.2f s (want one a ms)",
          ninit_.polls, took);
    CHECK(ninit_.polls_when_up == 1, "NCCL set-up polled %d more times after it was up", ninit_.polls_when_up - 1);
    if (c->rank == 0) CHECK(took >= 1.0, "the stall hook held rank 0 only %.2f s", took);
    CHECK(ninit_.aborted == 0, "set-up aborted");
    unsetenv("DLFS_FAULT_NCCL_INIT_STALL");
}

/* long: the list of cases, run in sequence on one communicator */
int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    struct dlfs_comm c;
    dlfs_comm_init(&c);
    const int P = c.size, pow2 = (P & (P - 1)) == 0;
    c.timeout_s = 60; /* the bounded waits (dlfs_comm_wait), with room for a loaded machine */
    const size_t sizes[] = {1, 2, 3, 7, 13, 97, 1000, 4099, 100003};
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        const size_t n = sizes[s];
        float *buf = malloc(n * sizeof *buf), *scratch = malloc((n + 1) / 2 * sizeof *scratch);
        /* deterministic: exact sums, and bitwise the reference tree on random values */
        if (pow2) {
            for (size_t i = 0; i < n; i++) buf[i] = input_(c.rank, i, 1);
            dlfs_comm_allreduce_det(&c, buf, n, scratch);
            int bad = 0;
            for (size_t i = 0; i < n; i++) bad += buf[i] != (float)(P * (P + 1) / 2 * (int)(i % 7 + 1));
            CHECK(bad == 0, "det exact n=%zu: %d wrong on rank %d", n, bad, c.rank);
            for (size_t i = 0; i < n; i++) buf[i] = input_(c.rank, i, 0);
            dlfs_comm_allreduce_det(&c, buf, n, scratch);
            bad = 0;
            for (size_t i = 0; i < n; i++) {
                float want = tree_ref_(P, i);
                bad += memcmp(&buf[i], &want, sizeof want) != 0;
            }
            CHECK(bad == 0, "det tree n=%zu: %d values differ from the reference tree on rank %d", n, bad, c.rank);
            char hex[65];
            uint8_t d[32];
            struct dlfs_sha256 h;
            dlfs_sha256_init(&h);
            dlfs_sha256_update(&h, buf, n * sizeof *buf);
            dlfs_sha256_final(&h, d);
            dlfs_sha256_hex(d, hex);
            CHECK(dlfs_comm_same_u64(&c, strtoull(hex + 48, NULL, 16), NULL), "det bits differ across ranks n=%zu", n);
        }
        /* fast: buckets over uneven "layers", some larger than a bucket */
        size_t bnd[5] = {0, n / 3, n / 2, n - n / 5, n - 1};
        int nb = n >= 5 ? 5 : 1;
        for (size_t i = 0; i < n; i++) buf[i] = input_(c.rank, i, 1);
        struct dlfs_buckets b;
        dlfs_buckets_init(&b, &c, dlfs_backend_cpu(), buf, bnd, nb, n, 64 * sizeof(float), NULL);
        for (int l = nb - 1; l >= 0; l--) {
            dlfs_buckets_ready(&b, bnd[l]);
            dlfs_buckets_poke(&b);
        }
        dlfs_buckets_wait(&b);
        int bad = 0;
        for (size_t i = 0; i < n; i++) bad += buf[i] != (float)(P * (P + 1) / 2 * (int)(i % 7 + 1));
        CHECK(bad == 0, "buckets n=%zu (%d buckets): %d wrong on rank %d", n, b.count, bad, c.rank);
        dlfs_buckets_free(&b);
        /* the same through the staging path (device buffers, --comm mpi) */
        for (size_t i = 0; i < n; i++) buf[i] = input_(c.rank, i, 1);
        CHECK(dlfs_buckets_init(&b, &c, &fake_device_, buf, bnd, nb, n, 64 * sizeof(float),
                                &dlfs_transport_mpi_staged) == DLFS_OK, "staging set-up");
        staged_ = 0;
        for (int l = nb - 1; l >= 0; l--) {
            dlfs_buckets_ready(&b, bnd[l]);
            dlfs_buckets_poke(&b);
        }
        dlfs_buckets_wait(&b);
        bad = 0;
        for (size_t i = 0; i < n; i++) bad += buf[i] != (float)(P * (P + 1) / 2 * (int)(i % 7 + 1));
        CHECK(bad == 0, "staged buckets n=%zu (%d buckets): %d wrong on rank %d", n, b.count, bad, c.rank);
        CHECK(staged_ == (P > 1 ? b.count : 0), "staged %d copies for %d buckets", staged_, b.count);
        dlfs_buckets_free(&b);
        /* blocking f32 */
        for (size_t i = 0; i < n; i++) buf[i] = input_(c.rank, i, 1);
        dlfs_comm_allreduce_f32(&c, buf, n);
        bad = 0;
        for (size_t i = 0; i < n; i++) bad += buf[i] != (float)(P * (P + 1) / 2 * (int)(i % 7 + 1));
        CHECK(bad == 0, "allreduce_f32 n=%zu wrong on rank %d", n, c.rank);
        free(buf);
        free(scratch);
    }
    /* status agreement: rank P-1 fails, everyone learns its message */
    dlfs_error_clear();
    enum dlfs_status st = c.rank == P - 1 ? dlfs_error_set(DLFS_ERR_IO, "cannot open x.h5") : DLFS_OK;
    st = dlfs_comm_agree(&c, st);
    CHECK(st == DLFS_ERR_IO, "agree status %d", st);
    CHECK(strstr(dlfs_error_msg(), "cannot open x.h5") != NULL, "agree message '%s'", dlfs_error_msg());
    if (P > 1) CHECK(strstr(dlfs_error_msg(), "rank") != NULL, "names the rank: '%s'", dlfs_error_msg());
    dlfs_error_clear();
    CHECK(dlfs_comm_agree(&c, DLFS_OK) == DLFS_OK, "agree ok");

    /* node-wide duplicate keys (GPU UUIDs): every rank runs on this one host */
    {
        unsigned char key[16] = {0};
        int other = -2;
        memcpy(key, &c.rank, sizeof c.rank); /* all distinct */
        CHECK(dlfs_comm_node_duplicate(&c, key, sizeof key, &other) == 0 && other == -1,
              "distinct keys reported as shared (other %d)", other);
        const int pair = c.rank / 2; /* ranks 2k and 2k+1 share */
        memcpy(key, &pair, sizeof pair);
        const int want = c.rank + 1 < P || c.rank % 2 == 1 ? P > 1 : 0;
        const int got = dlfs_comm_node_duplicate(&c, key, sizeof key, &other);
        CHECK(got == want, "pairs: rank %d got %d, want %d", c.rank, got, want);
        if (want) CHECK(other == (c.rank ^ 1), "pairs: rank %d shares with %d, want %d", c.rank, other, c.rank ^ 1);
        /* ranks without a key (a CPU rank, a failed selection) match nobody */
        const int none = dlfs_comm_node_duplicate(&c, c.rank % 2 ? NULL : key, sizeof key, &other);
        CHECK(none == 0, "a NULL key made rank %d a duplicate", c.rank);
        CHECK(dlfs_comm_node_duplicate(&c, NULL, sizeof key, &other) == 0 && other == -1, "all NULL");
    }

    nccl_setup_polls_(&c);

    int total = 0;
    MPI_Allreduce(&t_failures_, &total, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    if (c.rank == 0) printf("%d ranks: %s\n", P, total ? "FAILED" : "all checks passed");
    dlfs_comm_free(&c);
    MPI_Finalize();
    return total ? 1 : 0;
}
