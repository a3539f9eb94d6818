/* Unit test of the token file (dlfs/tokens.h): save/load round trip with uint16
 * ids up to 65535, a uint8 file written by another tool, the refusal of an
 * existing output, every validation of dlfs_tokens_load on files broken on
 * purpose with the HDF5 API (one message naming the file, nothing left open or
 * allocated), the text conversion's errors, and the windows of a batch against
 * values worked out by hand. */
#define _POSIX_C_SOURCE 200809L
#include "dlfs/tokens.h"

#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "testutil.h" /* CHECK, t_failures_ */

enum { NTR = 3000, NVA = 200 };
static uint16_t tr[NTR], va[NVA];
static char path[128];

static void save_good(void)
{
    for (int i = 0; i < NTR; i++) tr[i] = (uint16_t)(i * 7919u);
    for (int i = 0; i < NVA; i++) va[i] = (uint16_t)(65535 - i);
    struct dlfs_tokens t = {.vocab = 65536, .source = "unit", .license = "CC0", .tokenizer = "test",
                            .split = "none", .train = {NTR, tr}, .val = {NVA, va}};
    dlfs_error_clear();
    CHECK(dlfs_tokens_save(path, &t, 1) == DLFS_OK, "save %s: %s", path, dlfs_error_msg());
}

static hid_t open_rw(void) { return H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT); }

static void put_int(hid_t f, const char *name, long long v)
{
    if (H5Aexists(f, name) > 0) H5Adelete(f, name);
    hid_t sp = H5Screate(H5S_SCALAR), a = H5Acreate2(f, name, H5T_STD_I64LE, sp, H5P_DEFAULT, H5P_DEFAULT);
    H5Awrite(a, H5T_NATIVE_LLONG, &v);
    H5Aclose(a), H5Sclose(sp);
}

/* Replace /name/tokens by a dataset of `type` and shape dims; written (zeros) unless `unwritten`. */
static void put_tokens(hid_t f, const char *name, hid_t type, int rank, const hsize_t *dims, int unwritten)
{
    if (H5Lexists(f, name, H5P_DEFAULT) > 0) H5Ldelete(f, name, H5P_DEFAULT);
    size_t n = 1;
    for (int i = 0; i < rank; i++) n *= dims[i];
    hsize_t chunk[2] = {dims[0] < 1024 ? dims[0] : 1024, rank > 1 ? dims[1] : 1};
    hid_t sp = H5Screate_simple(rank, dims, NULL), dcpl = H5Pcreate(H5P_DATASET_CREATE);
    if (unwritten) H5Pset_chunk(dcpl, rank, chunk), H5Pset_deflate(dcpl, 4);
    hid_t d = H5Dcreate2(f, name, type, sp, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    if (!unwritten) {
        uint8_t *zeros = calloc(n ? n * 8 : 1, 1);
        H5Dwrite(d, H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, zeros);
        free(zeros);
    }
    H5Dclose(d), H5Pclose(dcpl), H5Sclose(sp);
}

static void expect_fail(const char *what, const char *phrase)
{
    struct dlfs_tokens t;
    dlfs_error_clear();
    enum dlfs_status st = dlfs_tokens_load(path, &t);
    const char *m = dlfs_error_msg();
    CHECK(st == DLFS_ERR_FORMAT, "%s: status %s (message: %s)", what, dlfs_status_name(st), m);
    CHECK(strstr(m, path) != NULL, "%s: message does not name %s: %s", what, path, m);
    CHECK(strstr(m, phrase) != NULL, "%s: message lacks '%s': %s", what, phrase, m);
    CHECK(!t.train.ids && !t.val.ids && !t.path && !t.source, "%s: a failed load left data behind", what);
    ssize_t open = H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_ALL);
    CHECK(open == 0, "%s: %zd HDF5 objects left open", what, open);
    printf("ok   %-24s -> %s\n", what, m);
}

static void check_round_trip(void)
{
    save_good();
    struct dlfs_tokens t;
    CHECK(dlfs_tokens_load(path, &t) == DLFS_OK, "load: %s", dlfs_error_msg());
    CHECK(t.vocab == 65536 && t.train.n == NTR && t.val.n == NVA, "sizes %d %zu %zu", t.vocab, t.train.n, t.val.n);
    if (t.train.n == NTR && t.val.n == NVA)
        CHECK(!memcmp(t.train.ids, tr, sizeof tr) && !memcmp(t.val.ids, va, sizeof va), "ids differ");
    CHECK(t.source && !strcmp(t.source, "unit") && !strcmp(t.tokenizer, "test"), "strings read wrong");
    dlfs_tokens_free(&t);
    CHECK(dlfs_tokens_probe(path) == 1, "probe of a token file");
    /* an existing file is kept without force */
    struct dlfs_tokens u = {.vocab = 256, .train = {NTR, tr}, .val = {NVA, va}};
    dlfs_error_clear();
    CHECK(dlfs_tokens_save(path, &u, 0) == DLFS_ERR_USAGE && strstr(dlfs_error_msg(), "--force"),
          "existing output: %s", dlfs_error_msg());
    /* an id not below the vocabulary is never written */
    dlfs_error_clear();
    CHECK(dlfs_tokens_save(path, &u, 1) == DLFS_ERR_SHAPE, "id >= vocab saved");
    CHECK(dlfs_tokens_load(path, &t) == DLFS_OK && t.vocab == 65536, "refused save changed the file");
    dlfs_tokens_free(&t);
}

static void check_hostile(void)
{
    hid_t f;
    save_good(), f = open_rw(), H5Adelete(f, "format"), H5Fclose(f);
    expect_fail("no format", "is not a dlfs token file");
    save_good(), f = open_rw(), put_int(f, "format_version", 2), H5Fclose(f);
    expect_fail("version 2", "format_version");
    const long long vocab[3] = {0, 1, 65537};
    for (int k = 0; k < 3; k++) {
        save_good(), f = open_rw(), put_int(f, "vocab_size", vocab[k]), H5Fclose(f);
        expect_fail("vocab out of range", "'vocab_size'");
    }
    save_good(), f = open_rw(), put_int(f, "vocab_size", 256), H5Fclose(f);
    expect_fail("id >= vocab", "is not below vocab_size 256");
    save_good(), f = open_rw(), put_int(f, "vocab_size", 65535), H5Fclose(f); /* /val/tokens[0] = 65535 */
    expect_fail("id == vocab", "token id 65535 at /val/tokens[0] is not below vocab_size 65535");
    save_good(), f = open_rw(), H5Ldelete(f, "/val", H5P_DEFAULT), H5Fclose(f);
    expect_fail("no val", "/val/tokens is missing");
    save_good(), f = open_rw(), put_tokens(f, "/train/tokens", H5T_STD_U16LE, 2, (hsize_t[]){10, 2}, 0), H5Fclose(f);
    expect_fail("2-D tokens", "has 2 dimensions");
    save_good(), f = open_rw(), put_tokens(f, "/train/tokens", H5T_IEEE_F32LE, 1, (hsize_t[]){10}, 0), H5Fclose(f);
    expect_fail("float tokens", "uint8 or uint16");
    save_good(), f = open_rw(), put_tokens(f, "/train/tokens", H5T_STD_U32LE, 1, (hsize_t[]){10}, 0), H5Fclose(f);
    expect_fail("uint32 tokens", "uint8 or uint16");
    save_good(), f = open_rw(), put_tokens(f, "/val/tokens", H5T_STD_U16LE, 1, (hsize_t[]){0}, 0), H5Fclose(f);
    expect_fail("empty val", "declares 0 tokens");
    save_good(), f = open_rw(), put_tokens(f, "/val/tokens", H5T_STD_U16LE, 1, (hsize_t[]){1ull << 32}, 1),
        H5Fclose(f);
    expect_fail("4 Gi tokens", "declares 4294967296 tokens");
    save_good(), f = open_rw(), put_tokens(f, "/val/tokens", H5T_STD_U16LE, 1, (hsize_t[]){1u << 30}, 1), H5Fclose(f);
    expect_fail("declared, not stored", "the file holds only");
    /* uint8 ids as another tool may write them are read as they are */
    save_good(), f = open_rw(), put_int(f, "vocab_size", 256);
    put_tokens(f, "/val/tokens", H5T_STD_U8LE, 1, (hsize_t[]){5}, 0), H5Fclose(f);
    f = open_rw(), put_tokens(f, "/train/tokens", H5T_STD_U8LE, 1, (hsize_t[]){7}, 0), H5Fclose(f);
    struct dlfs_tokens t;
    CHECK(dlfs_tokens_load(path, &t) == DLFS_OK && t.train.n == 7 && t.val.n == 5 && t.val.ids[4] == 0,
          "uint8 file: %s", dlfs_error_msg());
    dlfs_tokens_free(&t);
    /* not HDF5 at all, and a directory */
    FILE *fp = fopen(path, "w");
    fputs("plain text\n", fp), fclose(fp);
    expect_fail("not HDF5", "is not an HDF5 file");
    CHECK(dlfs_tokens_probe(path) == 0, "probe of a text file");
}

static void check_text_errors(const char *dir)
{
    char sub[160], file[200];
    snprintf(sub, sizeof sub, "%s/empty", dir);
    mkdir(sub, 0777);
    struct dlfs_tokens t;
    const char *in[1] = {sub};
    dlfs_error_clear();
    CHECK(dlfs_tokens_from_text(in, 1, ".txt", 5, &t) == DLFS_ERR_USAGE && strstr(dlfs_error_msg(), sub) &&
              strstr(dlfs_error_msg(), "holds no file"), "empty dir: %s", dlfs_error_msg());
    snprintf(file, sizeof file, "%s/missing.txt", dir);
    in[0] = file;
    dlfs_error_clear();
    CHECK(dlfs_tokens_from_text(in, 1, ".txt", 5, &t) == DLFS_ERR_IO && strstr(dlfs_error_msg(), file),
          "missing file: %s", dlfs_error_msg());
    FILE *fp = fopen(file, "w");
    fputs("ab", fp), fclose(fp);
    dlfs_error_clear();
    CHECK(dlfs_tokens_from_text(in, 1, ".txt", 5, &t) == DLFS_ERR_USAGE && strstr(dlfs_error_msg(), "too little"),
          "2 bytes: %s", dlfs_error_msg());
    CHECK(!t.train.ids && !t.val.ids, "failed conversion left data");
    /* 100 bytes, 5 %: the last 5 bytes are validation; 101 bytes: ceil(5.05) = 6 */
    for (int len = 100; len <= 101; len++) {
        fp = fopen(file, "w");
        for (int i = 0; i < len; i++) fputc('a' + i % 26, fp);
        fclose(fp);
        CHECK(dlfs_tokens_from_text(in, 1, ".txt", 5, &t) == DLFS_OK, "%d bytes: %s", len, dlfs_error_msg());
        const size_t nv = len == 100 ? 5 : 6;
        CHECK(t.val.n == nv && t.train.n == (size_t)len - nv && t.vocab == 256, "%d bytes: split %zu + %zu", len,
              t.train.n, t.val.n);
        if (t.val.n == nv) CHECK(t.val.ids[0] == 'a' + (len - nv) % 26, "val starts at the wrong byte");
        dlfs_tokens_free(&t);
    }
}

/* Windows: worked by hand. 10 tokens 0..9, ctx 3: W = floor(9/3) = 3, window k = ids[3k .. 3k+3]. */
static void check_windows(void)
{
    CHECK(dlfs_tokens_windows(10, 3) == 3 && dlfs_tokens_windows(9, 3) == 2 && dlfs_tokens_windows(3, 3) == 0 &&
              dlfs_tokens_windows(4, 3) == 1, "window counts");
    uint16_t ids[10] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, out[16];
    const struct dlfs_token_split s = {10, ids, 0};
    const uint32_t perm[3] = {2, 0, 1};
    /* global batch 0 of B = 3 on 2 ranks: rank 0 rows [0, 1), rank 1 rows [1, 3) */
    CHECK(dlfs_tokens_batch(&s, 3, perm, 0, 3, 0, 2, out) == 1, "rank 0 rows");
    CHECK(out[0] == 6 && out[3] == 9, "rank 0 window 2: %u..%u", out[0], out[3]);
    CHECK(dlfs_tokens_batch(&s, 3, perm, 0, 3, 1, 2, out) == 2, "rank 1 rows");
    CHECK(out[0] == 0 && out[3] == 3 && out[4] == 3 && out[7] == 6, "rank 1 windows 0, 1");
    /* B = 1: batch 2 is window perm[2] = 1 */
    CHECK(dlfs_tokens_batch(&s, 3, perm, 2, 1, 0, 1, out) == 1 && out[0] == 3 && out[3] == 6, "batch 2");
}

int main(void)
{
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    char dir[32] = "tok-test-XXXXXX";
    if (!mkdtemp(dir)) return perror("mkdtemp"), 1;
    snprintf(path, sizeof path, "%s/t.h5", dir);
    dlfs_tokens_free(NULL);
    check_round_trip();
    check_hostile();
    check_text_errors(dir);
    check_windows();
    if (t_failures_) fprintf(stderr, "%d check(s) failed\n", t_failures_);
    return t_failures_ ? 1 : 0;
}
