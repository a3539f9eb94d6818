/* Unit test of dlfs_idx_read on IDX files this test writes itself: good files
 * (plain and gzip, 1 to 4 dims) must read back exactly; broken ones must fail
 * with the right status and one message that names the file. */
#define _POSIX_C_SOURCE 200809L
#include "dlfs/dataset.h"
#include "data/idx_write.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
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
