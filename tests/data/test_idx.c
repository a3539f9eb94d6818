/* Unit test of dlfs_idx_read on IDX files this test writes itself: good files
 * (plain and gzip, 1 to 4 dims) must read back exactly; broken ones must fail
 * with the right status and one message that names the file. */
#define _POSIX_C_SOURCE 200809L
#include "dlfs/dataset.h"
#include "data/idx_write.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h" /* CHECK, t_failures_ */

static char dir[64];
static char *path_of(const char *name)
{
    static char buf[8][256];
    static int next;
    char *p = buf[next++ % 8];
    snprintf(p, 256, "%s/%s", dir, name);
    return p;
}

static void expect_ok(const char *path, int ndim, const uint32_t *dims, const uint8_t *data)
{
    struct dlfs_idx idx;
    dlfs_error_clear();
    enum dlfs_status st = dlfs_idx_read(path, &idx);
    CHECK(st == DLFS_OK, "%s: got %s: %s", path, dlfs_status_name(st), dlfs_error_msg());
    if (st != DLFS_OK) return;
    size_t n = 1;
    CHECK(idx.ndim == ndim, "%s: ndim %d, want %d", path, idx.ndim, ndim);
    for (int i = 0; i < ndim && i < idx.ndim; i++) {
        CHECK(idx.dims[i] == dims[i], "%s: dim %d is %u, want %u", path, i, idx.dims[i], dims[i]);
        n *= dims[i];
    }
    CHECK(memcmp(idx.data, data, n) == 0, "%s: data differs", path);
    dlfs_idx_free(&idx);
    CHECK(idx.data == NULL && idx.ndim == 0, "dlfs_idx_free did not reset the struct");
}

static void expect_fail(const char *path, enum dlfs_status want, const char *phrase)
{
    struct dlfs_idx idx;
    dlfs_error_clear();
    enum dlfs_status st = dlfs_idx_read(path, &idx);
    const char *m = dlfs_error_msg();
    CHECK(st == want, "%s: status '%s', want '%s' (message: %s)", path, dlfs_status_name(st),
          dlfs_status_name(want), m);
    CHECK(strstr(m, path) != NULL, "message does not name %s: %s", path, m);
    CHECK(strstr(m, phrase) != NULL, "message for %s lacks '%s': %s", path, phrase, m);
    CHECK(strchr(m, '\n') == NULL, "message has a newline: %s", m);
    CHECK(idx.data == NULL && idx.ndim == 0, "%s: failed read left data behind", path);
    dlfs_idx_free(&idx);  /* safe on the reset struct */
    const char *base = strrchr(path, '/');
    printf("ok   %-28s -> %s\n", base ? base + 1 : path, m);
}

static off_t file_size(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 ? sb.st_size : -1;
}

static uint8_t *slurp(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    uint8_t *b = NULL;
    long sz = -1;
    if (f && fseek(f, 0, SEEK_END) == 0 && (sz = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0 &&
        (b = malloc((size_t)sz + 1)) && fread(b, 1, (size_t)sz, f) == (size_t)sz) *n = (size_t)sz;
    else free(b), b = NULL;
    if (f) fclose(f);
    return b;
}

/* The in-memory reader gives what the file reader gives. */
static void expect_mem_same(const char *path)
{
    size_t n = 0;
    uint8_t *b = slurp(path, &n);
    struct dlfs_idx a, m;
    CHECK(b != NULL, "cannot read %s back", path);
    if (!b) return;
    enum dlfs_status s1 = dlfs_idx_read(path, &a), s2 = dlfs_idx_read_mem(b, n, path, &m);
    CHECK(s1 == s2 && (s1 != DLFS_OK || (a.ndim == m.ndim && !memcmp(a.dims, m.dims, sizeof a.dims))),
          "%s: file and memory readers disagree", path);
    dlfs_idx_free(&a), dlfs_idx_free(&m);
    free(b);
}

/* Append the bytes of `from` to `to`. */
static void append_file(const char *to, const char *from)
{
    size_t n = 0;
    uint8_t *b = slurp(from, &n);
    FILE *f = fopen(to, "ab");
    if (!b || !f || fwrite(b, 1, n, f) != n) perror("append");
    if (f) fclose(f);
    free(b);
}

/* A gzip file that declares 1 GiB but holds little must fail as truncated
 * without ever allocating what it declares: read it in a child limited to
 * 256 MiB of address space (not under ASan, which reserves terabytes). */
static void check_declared_not_allocated(void)
{
#if defined(__SANITIZE_ADDRESS__)
    printf("note: the memory-bound check is skipped under AddressSanitizer\n");
#else
    static uint8_t zeros[1 << 20];
    const uint32_t dims[3] = {4096, 512, 512}; /* 1 GiB declared, 1 MiB stored */
    tw_write_idx(path_of("declares-1g.gz"), 1, 0x08, 3, dims, zeros, sizeof zeros);
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        struct rlimit rl = {256u << 20, 256u << 20};
        setrlimit(RLIMIT_AS, &rl);
        struct dlfs_idx idx;
        dlfs_error_clear();
        enum dlfs_status st = dlfs_idx_read(path_of("declares-1g.gz"), &idx);
        const char *m = dlfs_error_msg();
        const int ok = st == DLFS_ERR_FORMAT && strstr(m, "is truncated: expected 1073741824 bytes of data");
        if (!ok) fprintf(stderr, "child: %s\n", m);
        _exit(ok ? 0 : 1);
    }
    int ws = 0;
    waitpid(pid, &ws, 0);
    CHECK(WIFEXITED(ws) && WEXITSTATUS(ws) == 0, "a gzip file declaring 1 GiB was not refused as truncated within "
          "256 MiB of memory (status %d)", ws);
    if (!t_failures_) printf("ok   declares-1g.gz: refused as truncated within 256 MiB\n");
#endif
}

/* Hostile inputs: gzip without its trailer, trailing garbage, sizes out of the
 * limits, a FIFO (must not block). */
static void check_hostile(const uint8_t *data)
{
    enum { N = 3000 };
    static uint8_t rnd[N * 28 * 28];
    tw_fill(rnd, sizeof rnd, 99);
    const uint32_t d[3] = {N, 28, 28};
    for (int level = 0; level <= 6; level += 6) { /* stored blocks and deflate */
        char name[64];
        snprintf(name, sizeof name, "big%d-notrailer.gz", level);
        FILE *raw = fopen(path_of("plain.tmp"), "wb");
        const uint8_t head[16] = {0, 0, 8, 3, 0, 0, N >> 8, N & 255, 0, 0, 0, 28, 0, 0, 0, 28};
        fwrite(head, 1, 16, raw), fwrite(rnd, 1, sizeof rnd, raw), fclose(raw);
        size_t n = 0;
        uint8_t *b = slurp(path_of("plain.tmp"), &n);
        char mode[8];
        snprintf(mode, sizeof mode, "wb%d", level);
        gzFile g = gzopen(path_of(name), mode);
        gzwrite(g, b, (unsigned)n), gzclose(g), free(b);
        expect_mem_same(path_of(name));
        if (truncate(path_of(name), file_size(path_of(name)) - 8) != 0) perror("truncate");
        expect_fail(path_of(name), DLFS_ERR_FORMAT, "gzip stream ends early");
        expect_mem_same(path_of(name));
    }
    tw_write_idx(path_of("garbage.gz"), 1, 0x08, 3, d, rnd, sizeof rnd);
    FILE *g = fopen(path_of("garbage.gz"), "ab");
    fputs("garbage!", g), fclose(g);
    expect_fail(path_of("garbage.gz"), DLFS_ERR_FORMAT, "trailing data after its gzip stream");
    /* concatenated members: one stream (what gunzip does) */
    const uint32_t d3[3] = {5, 4, 3};
    uint8_t whole[4 + 12 + 60];
    memcpy(whole, "\0\0\x08\x03\0\0\0\x05\0\0\0\x04\0\0\0\x03", 16);
    memcpy(whole + 16, data, 60);
    tw_write_raw(path_of("concat.gz"), 1, whole, 30);
    tw_write_raw(path_of("part2.gz"), 1, whole + 30, sizeof whole - 30);
    append_file(path_of("concat.gz"), path_of("part2.gz"));
    expect_ok(path_of("concat.gz"), 3, d3, data);
    expect_mem_same(path_of("concat.gz"));
    const uint32_t wide[3] = {2, 32768, 32768}; /* 2^31 bytes: items of 2^30 values */
    tw_write_idx(path_of("wide.gz"), 1, 0x08, 3, wide, data, 16);
    expect_fail(path_of("wide.gz"), DLFS_ERR_FORMAT, "items of more than 1048576 values");
    { /* the exact bound: items of 1048576 values are read, 1048577 refused */
        static uint8_t big[(1 << 20) + 1024];
        for (size_t i = 0; i < sizeof big; i++) big[i] = (uint8_t)(i * 7);
        const uint32_t at_max[3] = {1, 1024, 1024}, over[3] = {1, 1024, 1025};
        tw_write_idx(path_of("max-item.gz"), 1, 0x08, 3, at_max, big, 1 << 20);
        expect_ok(path_of("max-item.gz"), 3, at_max, big);
        tw_write_idx(path_of("over-item.idx"), 0, 0x08, 3, over, big, 1024 * 1025);
        expect_fail(path_of("over-item.idx"), DLFS_ERR_FORMAT, "items of more than 1048576 values");
    }
    check_declared_not_allocated();
    if (mkfifo(path_of("fifo.idx"), 0600) == 0) {
        alarm(20); /* a reader that blocks on the FIFO fails here instead of hanging */
        expect_fail(path_of("fifo.idx"), DLFS_ERR_IO, "it is a FIFO (named pipe), not a regular file");
        alarm(0);
    }
    const char *names[] = {"big0-notrailer.gz", "big6-notrailer.gz", "plain.tmp", "garbage.gz", "concat.gz",
                           "part2.gz", "wide.gz", "declares-1g.gz", "fifo.idx", "max-item.gz", "over-item.idx"};
    for (size_t i = 0; !t_failures_ && i < sizeof names / sizeof *names; i++) unlink(path_of(names[i]));
}

/* long: the list of cases, run in sequence in one temporary directory */
int main(void)
{
    snprintf(dir, sizeof dir, "idx-test-XXXXXX");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    enum { BIG = 100 * 28 * 28 };
    static uint8_t data[BIG + 16];
    tw_fill(data, sizeof data, 7);

    /* Good files: plain and gzip give the same bytes. */
    const uint32_t d3[3] = {5, 4, 3}, d1[1] = {7}, d4[4] = {2, 3, 2, 2}, big[3] = {100, 28, 28};
    tw_write_idx(path_of("img3.idx"), 0, 0x08, 3, d3, data, 60);
    tw_write_idx(path_of("img3.idx.gz"), 1, 0x08, 3, d3, data, 60);
    tw_write_idx(path_of("lab1.gz"), 1, 0x08, 1, d1, data, 7);
    tw_write_idx(path_of("img4.idx"), 0, 0x08, 4, d4, data, 24);
    tw_write_idx(path_of("big.gz"), 1, 0x08, 3, big, data, BIG);
    expect_ok(path_of("img3.idx"), 3, d3, data);
    expect_ok(path_of("img3.idx.gz"), 3, d3, data);
    expect_ok(path_of("lab1.gz"), 1, d1, data);
    expect_ok(path_of("img4.idx"), 4, d4, data);
    expect_ok(path_of("big.gz"), 3, big, data);

    /* Not IDX at all, or an IDX variant we do not read. */
    tw_write_raw(path_of("text.txt"), 0, "hello world\n", 12);
    expect_fail(path_of("text.txt"), DLFS_ERR_FORMAT, "is not an IDX file");
    tw_write_raw(path_of("empty"), 0, "", 0);
    expect_fail(path_of("empty"), DLFS_ERR_FORMAT, "has only 0 bytes");
    tw_write_raw(path_of("magic.gz"), 1, "\x01\x00\x08\x01\x00\x00\x00\x01\x05", 9);
    expect_fail(path_of("magic.gz"), DLFS_ERR_FORMAT, "magic bytes 01 00 08 01");
    tw_write_idx(path_of("float.idx"), 0, 0x0D, 1, d1, data, 28);
    expect_fail(path_of("float.idx"), DLFS_ERR_FORMAT, "unsupported IDX element type 0x0d in");
    tw_write_idx(path_of("ndim0.idx"), 0, 0x08, 0, d1, data, 1);
    expect_fail(path_of("ndim0.idx"), DLFS_ERR_FORMAT, "0 dimensions");
    const uint32_t d5[5] = {1, 1, 1, 1, 1};
    tw_write_idx(path_of("ndim5.idx"), 0, 0x08, 5, d5, data, 1);
    expect_fail(path_of("ndim5.idx"), DLFS_ERR_FORMAT, "5 dimensions");
    const uint32_t dz[3] = {5, 0, 3};
    tw_write_idx(path_of("dimzero.idx"), 0, 0x08, 3, dz, data, 0);
    expect_fail(path_of("dimzero.idx"), DLFS_ERR_FORMAT, "dimension 1 is 0");
    const uint32_t huge[3] = {65536, 65536, 2};
    tw_write_idx(path_of("huge.idx"), 0, 0x08, 3, huge, data, 16);
    expect_fail(path_of("huge.idx"), DLFS_ERR_FORMAT, "4 GiB");

    /* Wrong amount of data. */
    tw_write_idx(path_of("short.idx"), 0, 0x08, 3, d3, data, 50);
    expect_fail(path_of("short.idx"), DLFS_ERR_FORMAT,
                "is truncated: expected 60 bytes of data, found 50");
    tw_write_idx(path_of("long.idx"), 0, 0x08, 3, d3, data, 61);
    expect_fail(path_of("long.idx"), DLFS_ERR_FORMAT, "trailing data");
    tw_write_idx(path_of("long.gz"), 1, 0x08, 3, d3, data, 64);
    expect_fail(path_of("long.gz"), DLFS_ERR_FORMAT, "trailing data");
    tw_write_idx(path_of("header.idx"), 0, 0x08, 3, d3, data, 0);
    if (truncate(path_of("header.idx"), 4 + 8) != 0) perror("truncate");
    expect_fail(path_of("header.idx"), DLFS_ERR_FORMAT, "header needs 16 bytes, found 12");

    /* Damaged gzip: cut in the middle, cut before the trailer, a flipped byte. */
    tw_write_idx(path_of("cut.gz"), 1, 0x08, 3, big, data, BIG);
    off_t sz = file_size(path_of("cut.gz"));
    if (truncate(path_of("cut.gz"), sz / 2) != 0) perror("truncate");
    expect_fail(path_of("cut.gz"), DLFS_ERR_FORMAT, "is truncated: expected 78400 bytes of data");
    tw_write_idx(path_of("notrailer.gz"), 1, 0x08, 3, d3, data, 60);
    if (truncate(path_of("notrailer.gz"), file_size(path_of("notrailer.gz")) - 4) != 0)
        perror("truncate");
    expect_fail(path_of("notrailer.gz"), DLFS_ERR_FORMAT, "gzip stream ends early");
    tw_write_idx(path_of("flipped.gz"), 1, 0x08, 3, big, data, BIG);
    FILE *f = fopen(path_of("flipped.gz"), "r+b");
    if (f) {
        fseek(f, (long)sz / 2, SEEK_SET);
        int c = fgetc(f);
        fseek(f, (long)sz / 2, SEEK_SET);
        fputc(c ^ 0x5a, f);
        fclose(f);
    }
    expect_fail(path_of("flipped.gz"), DLFS_ERR_FORMAT, "flipped.gz");

    /* Not there or not a file. */
    expect_fail(path_of("missing.idx"), DLFS_ERR_IO, "No such file or directory");
    expect_fail(dir, DLFS_ERR_IO, "directory");
    check_hostile(data);

    if (t_failures_ == 0) {
        const char *names[] = {"img3.idx", "img3.idx.gz", "lab1.gz", "img4.idx", "big.gz",
                               "text.txt", "empty", "magic.gz", "float.idx", "ndim0.idx",
                               "ndim5.idx", "dimzero.idx", "huge.idx", "short.idx", "long.idx",
                               "long.gz", "header.idx", "cut.gz", "notrailer.gz", "flipped.gz"};
        for (size_t i = 0; i < sizeof names / sizeof *names; i++) unlink(path_of(names[i]));
        rmdir(dir);
    }
    printf("%s: %d failure(s)\n", t_failures_ ? "FAILED" : "PASSED", t_failures_);
    return t_failures_ ? 1 : 0;
}
