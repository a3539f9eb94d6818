/* Streaming (--data-cache) against independent oracles:
 *  - the windowed shuffle is a permutation of the split, each window made of the
 *    samples of its chunks, a pure function of (seed, epoch, n, K, G);
 *  - how random it is: a sample's position over many epochs is uniform over the
 *    whole split (chi-square, alpha 1e-6), and the number of distinct chunks a
 *    batch draws from has the mean the hypergeometric law gives for B draws
 *    without replacement from a window of G chunks of K samples (worked out here,
 *    within 6 standard errors) — not the mean of a full permutation;
 *  - the window cache: every row of every batch of three epochs, read from an
 *    HDF5 file through a cache of two windows, equals the row in memory, no chunk is
 *    read twice in an epoch (the bound on the reads), and an epoch's first window is
 *    held before its first batch (read ahead during the epoch before). */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <hdf5.h>
#include "dlfs/dataset.h"
#include "dlfs/tokens.h"
#include "dlfs/sampler.h"
#include "dlfs/util.h"
#include "train/batcher.h"
#include "testutil.h"

static double chi2_crit_(int df)
{
    const double z = 4.7534243, k = 2.0 / (9.0 * df), t = 1.0 - k + z * sqrt(k);
    return df * t * t * t;
}

static void test_permutation(void)
{
    static const size_t cases[][3] = {{1000, 64, 3}, {1000, 100, 1}, {999, 7, 200}, {5, 8, 1}, {4096, 1024, 2}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        const size_t n = cases[c][0], K = cases[c][1], G = cases[c][2], nch = (n + K - 1) / K;
        uint32_t *p = malloc(n * 4), *q = malloc(n * 4), *order = malloc(nch * 4);
        char *seen = calloc(n, 1);
        dlfs_sampler_windowed(7, 3, p, n, K, G, order);
        for (size_t i = 0; i < n; i++) {
            CHECK(p[i] < n && !seen[p[i]], "case %zu: sample %u out of range or twice", c, p[i]);
            if (p[i] < n) seen[p[i]] = 1;
        }
        /* the samples at the positions of window w are those of its chunks */
        size_t at = 0;
        for (size_t k0 = 0; k0 < nch; k0 += G)
            for (size_t k = k0; k < k0 + G && k < nch; k++) {
                const size_t rows = (order[k] + 1) * K <= n ? K : n - order[k] * K;
                for (size_t r = 0; r < rows; r++, at++) {
                    const size_t w = (size_t)(p[at] / K);
                    int inwin = 0;
                    for (size_t j = k0; j < k0 + G && j < nch; j++) inwin |= order[j] == w;
                    CHECK(inwin, "case %zu: position %zu holds sample %u of chunk %zu outside its window", c, at,
                          p[at], w);
                }
            }
        dlfs_sampler_windowed(7, 3, q, n, K, G, order);
        CHECK(memcmp(p, q, n * 4) == 0, "case %zu: not a pure function", c);
        dlfs_sampler_windowed(7, 4, q, n, K, G, order);
        CHECK(n < 100 || memcmp(p, q, n * 4) != 0, "case %zu: epochs 3 and 4 alike", c);
        free(p), free(q), free(order), free(seen);
    }
}

/* n = 12, K = 2, G = 3: two windows of 6. Over 24000 epochs every sample at
 * every position 2000 times: chi-square with df 121. */
static void test_positions(void)
{
    enum { N = 12, EPOCHS = 24000 };
    static long pos[N * N];
    uint32_t p[N], order[N];
    for (int e = 0; e < EPOCHS; e++) {
        dlfs_sampler_windowed(11, e, p, N, 2, 3, order);
        for (int i = 0; i < N; i++) pos[p[i] * N + i]++;
    }
    double x = 0, expect = EPOCHS / (double)N;
    for (int i = 0; i < N * N; i++) x += (pos[i] - expect) * (pos[i] - expect) / expect;
    CHECK(x < chi2_crit_((N - 1) * (N - 1)), "sample x position not uniform: chi2 %.1f > %.1f", x,
          chi2_crit_((N - 1) * (N - 1)));
}

/* P(none of a chunk's K samples among B draws from W) and for two chunks. */
static double absent_(size_t W, size_t K, size_t B)
{
    double p = 1;
    for (size_t i = 0; i < B; i++) p *= (double)(W - K - i) / (double)(W - i);
    return p;
}

/* The number of distinct chunks of a batch: windows of W = G K samples hold
 * whole batches (W a multiple of B). */
static void test_chunks_per_batch(void)
{
    enum { K = 64, G = 8, B = 32, W = K * G, NW = 16, N = W * NW, EPOCHS = 40 };
    uint32_t *p = malloc(N * 4), order[N / K];
    double sum = 0;
    long batches = 0;
    for (int e = 0; e < EPOCHS; e++) {
        dlfs_sampler_windowed(5, e, p, N, K, G, order);
        for (size_t b = 0; b < N / B; b++, batches++) {
            char hit[N / K] = {0};
            int d = 0;
            for (size_t i = 0; i < B; i++) d += !hit[p[b * B + i] / K]++;
            sum += d;
        }
    }
    const double p0 = absent_(W, K, B), p00 = absent_(W, 2 * K, B);
    const double mean = G * (1 - p0), var = G * p0 + G * (G - 1.0) * p00 - (double)G * G * p0 * p0;
    const double got = sum / (double)batches, se = sqrt(var / (double)batches);
    CHECK(fabs(got - mean) < 6 * se, "distinct chunks per batch %.4f, the hypergeometric mean %.4f (se %.4f)", got,
          mean, se);
    /* a full permutation spreads a batch over (almost) B chunks: the window is what limits it */
    const double full = (N / K) * (1 - absent_(N, K, B));
    CHECK(full - got > 10 * se, "windowed %.3f vs full permutation %.3f: indistinguishable", got, full);
    free(p);
}

/* Three epochs through the window cache against the rows in memory. */
static void test_cache(void)
{
    enum { N = 5000, C = 1, H = 2, W = 3, DIM = C * H * W, B = 96, G = 2 };
    static uint8_t img[N * DIM], lab[N];
    static char *names[2] = {"a", "b"};
    for (size_t i = 0; i < sizeof img; i++) img[i] = (uint8_t)(i * 131 + i / 5);
    for (int i = 0; i < N; i++) lab[i] = (uint8_t)(i & 1);
    struct dlfs_dataset ds = {.c = C, .h = H, .w = W, .num_classes = 2, .classes = names, .source = "t",
                              .license = "t"};
    ds.train = (struct dlfs_split){.n = N, .images = img, .labels = lab};
    ds.test = (struct dlfs_split){.n = 10, .images = img, .labels = lab};
    dlfs_dataset_stats(&ds.train, C, H, W, ds.mean, ds.std);
    char path[] = "/tmp/dlfs-test-stream-XXXXXX";
    const int fd = mkstemp(path);
    CHECK(fd >= 0 && dlfs_dataset_save(path, &ds) == DLFS_OK, "save: %s", dlfs_error_msg());
    struct dlfs_dataset in;
    CHECK(dlfs_dataset_open(path, &in, 1) == DLFS_OK, "open: %s", dlfs_error_msg());
    CHECK(!in.train.images && in.train.file && in.train.chunk_rows == 1024, "streamed, chunks of %zu",
          in.train.chunk_rows);
    struct dlfs_stream s;
    const size_t K = in.train.chunk_rows, nch = (N + K - 1) / K;
    CHECK(dlfs_stream_init(&s, &in.train, DIM, K, G, B) == DLFS_OK, "init");
    uint32_t *perm = malloc(N * 4), order[8], next[8];
    long bad = 0;
    for (int e = 0; e < 3; e++) {
        dlfs_sampler_windowed(9, e, perm, N, K, G, order);
        dlfs_sampler_chunks(9, e + 1, next, nch);
        dlfs_stream_epoch(&s, order, next);
        for (size_t k = 0; e > 0 && k < G; k++) /* read ahead in the last window of the epoch before */
            CHECK(s.slot_of[order[k]] != UINT32_MAX, "epoch %d: chunk %u of its first window not read ahead", e,
                  order[k]);
        const long reads0 = s.reads;
        for (size_t b = 0; b + B <= N; b += B)
            for (int r = 0; r < 2; r++) { /* two ranks' halves */
                const uint32_t *mine = perm + b + (size_t)r * B / 2;
                CHECK(dlfs_stream_need(&s, mine, B / 2) == DLFS_OK, "need: %s", dlfs_error_msg());
                for (int i = 0; i < B / 2; i++) bad += memcmp(dlfs_stream_row(&s, mine[i]), img + mine[i] * DIM, DIM) != 0;
            }
        CHECK(s.reads - reads0 <= (long)nch, "epoch %d read %ld chunks of %zu", e, s.reads - reads0, nch);
    }
    CHECK(bad == 0, "%ld rows differ from memory", bad);
    dlfs_stream_free(&s);
    dlfs_dataset_free(&in);
    free(perm);
    unlink(path);
    if (fd >= 0) close(fd);
}

/* Two epochs of a streamed split through the window cache against `mem` (its rows
 * in memory); the number of rows that differ. */
static long epochs_(const struct dlfs_split *sp, size_t dim, int B, const uint8_t *mem)
{
    const size_t N = sp->n, K = sp->chunk_rows, G = 2, nch = (N + K - 1) / K;
    struct dlfs_stream s;
    CHECK(dlfs_stream_init(&s, sp, dim, K, G, B) == DLFS_OK, "init");
    uint32_t *perm = malloc(N * 4), *order = malloc(nch * 4), *next = malloc(nch * 4);
    long bad = 0;
    for (int e = 0; e < 2; e++) {
        dlfs_sampler_windowed(5, e, perm, N, K, G, order);
        dlfs_sampler_chunks(5, e + 1, next, nch);
        dlfs_stream_epoch(&s, order, next);
        for (size_t b = 0; b + (size_t)B <= N; b += (size_t)B) {
            const enum dlfs_status st = dlfs_stream_need(&s, perm + b, B);
            CHECK(st == DLFS_OK, "need: %s", dlfs_error_msg());
            if (st != DLFS_OK) return -1;
            for (int i = 0; i < B; i++)
                bad += memcmp(dlfs_stream_row(&s, perm[b + i]), mem + perm[b + i] * dim, dim) != 0;
        }
    }
    dlfs_stream_free(&s);
    free(perm), free(order), free(next);
    return bad;
}

/* A token file's windows streamed (dlfs_tokens_open, read a chunk of windows at a
 * time from the ids of their span) against dlfs_tokens_dataset's in memory: ctx 7
 * over HDF5 chunks of 1024 ids (windows straddle the chunks; 146 windows a chunk),
 * byte ids (V 256) and uint16 ids (V 300); an id not below vocab_size is found as
 * the chunk holding it is read, one message naming the file and the id's place. */
static void test_token_cache(void)
{
    enum { N = 10001, CTX = 7 };
    static uint16_t ids[N], val[64];
    char path[] = "/tmp/dlfs-test-tokstream-XXXXXX";
    const int fd = mkstemp(path);
    for (int v = 0; v < 2; v++) {
        const int vocab = v ? 300 : 256;
        for (int i = 0; i < N; i++) ids[i] = (uint16_t)((i * 7919u + (unsigned)i / 13) % (unsigned)vocab);
        struct dlfs_tokens t = {.vocab = vocab, .source = "t", .license = "t", .tokenizer = "t", .split = "t",
                                .train = {N, ids, 1024}, .val = {64, val, 0}};
        CHECK(fd >= 0 && dlfs_tokens_save(path, &t, 1) == DLFS_OK, "save: %s", dlfs_error_msg());
        struct dlfs_tokens a, b;
        struct dlfs_dataset mem, st;
        CHECK(dlfs_tokens_load(path, &a) == DLFS_OK && dlfs_tokens_dataset(&a, CTX, &mem) == DLFS_OK, "in memory: %s",
              dlfs_error_msg());
        CHECK(dlfs_tokens_open(path, &b) == DLFS_OK && !b.train.ids && b.train.n == N, "open: %s", dlfs_error_msg());
        CHECK(dlfs_tokens_dataset_open(&b, CTX, 1, &st) == DLFS_OK, "dataset_open: %s", dlfs_error_msg());
        CHECK(!st.train.images && st.train.file && st.train.n == mem.train.n && st.train.n == (N - 1) / CTX &&
              st.train.chunk_rows == 1024 / CTX && mem.train.chunk_rows == st.train.chunk_rows && st.ids16 == v,
              "V %d: streamed %zu windows in chunks of %zu (in memory: %zu, %zu)", vocab, st.train.n,
              st.train.chunk_rows, mem.train.n, mem.train.chunk_rows);
        const size_t dim = (CTX + 1) * (v ? 2 : 1);
        const long bad = epochs_(&st.train, dim, 40, mem.train.images);
        CHECK(bad == 0, "V %d: %ld windows differ from memory", vocab, bad);
        dlfs_dataset_free(&st), dlfs_tokens_free(&b);
        /* windows that fit in the cache: read whole through the same reader, the same bytes */
        CHECK(dlfs_tokens_open(path, &b) == DLFS_OK && dlfs_tokens_dataset_open(&b, CTX, 1 << 20, &st) == DLFS_OK &&
              st.train.images && st.train.n == mem.train.n &&
              !memcmp(st.train.images, mem.train.images, st.train.n * dim), "V %d: read whole: %s", vocab,
              dlfs_error_msg());
        dlfs_dataset_free(&mem), dlfs_dataset_free(&st);
        dlfs_tokens_free(&a), dlfs_tokens_free(&b);
    }
    /* vocab_size lowered to 299 in the file: the id 299 at /train/tokens[k] is refused when read */
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT), at = H5Aopen(f, "vocab_size", H5P_DEFAULT);
    const int v299 = 299;
    CHECK(at >= 0 && H5Awrite(at, H5T_NATIVE_INT, &v299) >= 0, "set vocab_size");
    H5Aclose(at), H5Fclose(f);
    size_t k = 0;
    while (k < N && ids[k] != 299) k++;
    char want[64];
    snprintf(want, sizeof want, "/train/tokens[%zu] is not below", k);
    struct dlfs_tokens b;
    struct dlfs_dataset st;
    CHECK(dlfs_tokens_open(path, &b) == DLFS_OK && dlfs_tokens_dataset_open(&b, CTX, 1, &st) == DLFS_OK,
          "open, vocab 299: %s", dlfs_error_msg());
    uint8_t row[16 * 147];
    const size_t r0 = (k / CTX) / st.train.chunk_rows * st.train.chunk_rows;
    CHECK(k < N && dlfs_split_read(&st.train, r0, st.train.chunk_rows, 16, row) == DLFS_ERR_FORMAT &&
          strstr(dlfs_error_msg(), path) && strstr(dlfs_error_msg(), want), "id 299 at %zu: %s", k, dlfs_error_msg());
    dlfs_dataset_free(&st), dlfs_tokens_free(&b);
    unlink(path);
    if (fd >= 0) close(fd);
}

int main(void)
{
    test_permutation();
    test_positions();
    test_chunks_per_batch();
    test_cache();
    test_token_cache();
    T_DONE();
}
