/* Unit test of the dlfs dataset file: save/load round trip, stats, attributes
 * written by other tools (fixed-length strings), and every validation in
 * dlfs_dataset_load on files this test breaks on purpose with the HDF5 API.
 * After every failed load no HDF5 object may remain open and the struct must
 * be empty. */
#define _POSIX_C_SOURCE 200809L
#include "dlfs/dataset.h"

#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "dlfs/util.h"

#include "testutil.h" /* CHECK, t_failures_ */

enum { NTR = 400, NTE = 50, C = 2, H = 3, W = 5, K = 10 };
static uint8_t tr_img[NTR * C * H * W], tr_lab[NTR], te_img[NTE * C * H * W], te_lab[NTE];
static char *names[K] = {"zero", "one", "two", "three", "four", "five", "six", "seven", "eight",
                         "nine"};
static char path[128];

static struct dlfs_dataset make_ds(void)
{
    struct dlfs_dataset ds = {.c = C, .h = H, .w = W, .num_classes = K, .classes = names,
                              .source = "unit test", .license = "CC0"};
    for (size_t i = 0; i < sizeof tr_img; i++) tr_img[i] = (uint8_t)(i * 37 + i / 7);
    for (size_t i = 0; i < sizeof te_img; i++) te_img[i] = (uint8_t)(i * 11 + 3);
    for (int i = 0; i < NTR; i++) tr_lab[i] = (uint8_t)((i * 7) % K);
    for (int i = 0; i < NTE; i++) te_lab[i] = (uint8_t)(i % K);
    ds.train = (struct dlfs_split){.n = NTR, .images = tr_img, .labels = tr_lab};
    ds.test = (struct dlfs_split){.n = NTE, .images = te_img, .labels = te_lab};
    dlfs_dataset_stats(&ds.train, C, H, W, ds.mean, ds.std);
    return ds;
}

static void save_good(void)
{
    struct dlfs_dataset ds = make_ds();
    dlfs_error_clear();
    enum dlfs_status st = dlfs_dataset_save(path, &ds);
    CHECK(st == DLFS_OK, "save %s: %s", path, dlfs_error_msg());
}

/* ---- editing helpers (HDF5 errors from these are test bugs: let them print) ---- */

static hid_t open_rw(void) { return H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT); }

/* Replace dataset `name` by one of `type` and shape dims (zero-filled). */
static void put_dataset(hid_t f, const char *name, hid_t type, int rank, const hsize_t *dims)
{
    if (H5Lexists(f, name, H5P_DEFAULT) > 0) H5Ldelete(f, name, H5P_DEFAULT);
    size_t n = 1;
    for (int i = 0; i < rank; i++) n *= dims[i];
    uint8_t *zeros = calloc(n ? n : 1, 1);
    hid_t sp = H5Screate_simple(rank, dims, NULL);
    hid_t d = H5Dcreate2(f, name, type, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    H5Dwrite(d, H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, zeros);
    H5Dclose(d), H5Sclose(sp), free(zeros);
}

/* Replace attribute `name` by fixed-length strings (scalar when scalar != 0). */
static void put_fixed_strings(hid_t f, const char *name, char **v, int n, int scalar)
{
    if (H5Aexists(f, name) > 0) H5Adelete(f, name);
    size_t len = 1;
    for (int i = 0; i < n; i++) len = strlen(v[i]) > len ? strlen(v[i]) : len;
    char *buf = calloc((size_t)n, len);
    for (int i = 0; i < n; i++) memcpy(buf + (size_t)i * len, v[i], strlen(v[i]));
    hsize_t dim = (hsize_t)n;
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, len);
    H5Tset_strpad(t, H5T_STR_NULLPAD);  /* what numpy 'S' arrays give */
    hid_t sp = scalar ? H5Screate(H5S_SCALAR) : H5Screate_simple(1, &dim, NULL);
    hid_t a = H5Acreate2(f, name, t, sp, H5P_DEFAULT, H5P_DEFAULT);
    H5Awrite(a, t, buf);
    H5Aclose(a), H5Sclose(sp), H5Tclose(t), free(buf);
}

static void put_int(hid_t f, const char *name, int v)
{
    if (H5Aexists(f, name) > 0) H5Adelete(f, name);
    hid_t sp = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(f, name, H5T_STD_I64LE, sp, H5P_DEFAULT, H5P_DEFAULT);
    H5Awrite(a, H5T_NATIVE_INT, &v);
    H5Aclose(a), H5Sclose(sp);
}

/* Replace dataset `name` by a chunked uint8 one of shape dims that is never
 * written: it declares dims but stores nothing (a tiny file). */
static void put_unwritten(hid_t f, const char *name, int rank, const hsize_t *dims)
{
    if (H5Lexists(f, name, H5P_DEFAULT) > 0) H5Ldelete(f, name, H5P_DEFAULT);
    hsize_t chunk[4] = {1, 1, 1, 1};
    for (int i = 1; i < rank; i++) chunk[i] = dims[i] < 64 ? dims[i] : 64;
    hid_t sp = H5Screate_simple(rank, dims, NULL), dcpl = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_chunk(dcpl, rank, chunk);
    H5Pset_deflate(dcpl, 4);
    hid_t d = H5Dcreate2(f, name, H5T_STD_U8LE, sp, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    H5Dclose(d), H5Pclose(dcpl), H5Sclose(sp);
}

static void put_doubles(hid_t f, const char *name, const double *v, hsize_t n)
{
    if (H5Aexists(f, name) > 0) H5Adelete(f, name);
    hid_t sp = H5Screate_simple(1, &n, NULL);
    hid_t a = H5Acreate2(f, name, H5T_IEEE_F64LE, sp, H5P_DEFAULT, H5P_DEFAULT);
    H5Awrite(a, H5T_NATIVE_DOUBLE, v);
    H5Aclose(a), H5Sclose(sp);
}

/* ---- checks ---------------------------------------------------------------------- */

static void expect_no_open_objects(const char *when)
{
    ssize_t n = H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_ALL);
    CHECK(n == 0, "%s: %zd HDF5 object(s) left open", when, n);
}

static void expect_load_fail(const char *what, enum dlfs_status want, const char *phrase)
{
    struct dlfs_dataset ds;
    dlfs_error_clear();
    enum dlfs_status st = dlfs_dataset_load(path, &ds);
    const char *m = dlfs_error_msg();
    CHECK(st == want, "%s: status '%s', want '%s' (message: %s)", what, dlfs_status_name(st),
          dlfs_status_name(want), m);
    CHECK(strstr(m, path) != NULL, "%s: message does not name %s: %s", what, path, m);
    CHECK(strstr(m, phrase) != NULL, "%s: message lacks '%s': %s", what, phrase, m);
    CHECK(strchr(m, '\n') == NULL, "%s: message has a newline", what);
    CHECK(!ds.classes && !ds.train.images && !ds.test.labels && !ds.path && !ds.num_classes,
          "%s: failed load left data in the struct", what);
    expect_no_open_objects(what);
    dlfs_dataset_free(&ds);
    printf("ok   %-22s -> %s\n", what, m);
}

static void check_round_trip(void)
{
    struct dlfs_dataset want = make_ds(), ds;
    save_good();
    dlfs_error_clear();
    enum dlfs_status st = dlfs_dataset_load(path, &ds);
    CHECK(st == DLFS_OK, "load %s: %s", path, dlfs_error_msg());
    if (st != DLFS_OK) return;
    CHECK(ds.c == C && ds.h == H && ds.w == W, "shape %dx%dx%d", ds.c, ds.h, ds.w);
    CHECK(ds.train.n == NTR && ds.test.n == NTE, "counts %zu/%zu", ds.train.n, ds.test.n);
    CHECK(memcmp(ds.train.images, tr_img, sizeof tr_img) == 0, "train images differ");
    CHECK(memcmp(ds.test.images, te_img, sizeof te_img) == 0, "test images differ");
    CHECK(memcmp(ds.train.labels, tr_lab, NTR) == 0, "train labels differ");
    CHECK(memcmp(ds.test.labels, te_lab, NTE) == 0, "test labels differ");
    CHECK(ds.num_classes == K, "num_classes %d", ds.num_classes);
    for (int i = 0; i < K && i < ds.num_classes; i++)
        CHECK(strcmp(ds.classes[i], names[i]) == 0, "class %d is '%s'", i, ds.classes[i]);
    CHECK(strcmp(ds.source, "unit test") == 0 && strcmp(ds.license, "CC0") == 0,
          "source/license '%s' '%s'", ds.source, ds.license);
    CHECK(ds.path && strcmp(ds.path, path) == 0, "path not recorded");
    for (int i = 0; i < C; i++)
        CHECK(ds.mean[i] == want.mean[i] && ds.std[i] == want.std[i], "mean/std %d differ", i);
    dlfs_dataset_free(&ds);
    CHECK(!ds.classes && !ds.path && !ds.train.images, "free did not reset the struct");
    dlfs_dataset_free(&ds);  /* twice is harmless */
    expect_no_open_objects("after good load");
}

static void check_stats(void)
{
    uint8_t img[] = {0, 255, 255, 255, /* sample 2: */ 10, 10, 200, 200};
    struct dlfs_split s = {.n = 2, .images = img};
    double m[2], sd[2];
    dlfs_dataset_stats(&s, 1, 2, 2, m, sd);  /* one channel, two 2x2 images */
    double mean = (3 * 255.0 + 20 + 400) / 8 / 255;
    double var = (3 * 255.0 * 255 + 2 * 100 + 2 * 40000) / 8 / (255.0 * 255) - mean * mean;
    CHECK(fabs(m[0] - mean) < 1e-12 && fabs(sd[0] - sqrt(var)) < 1e-12, "stats %g %g", m[0], sd[0]);
    dlfs_dataset_stats(&s, 2, 1, 2, m, sd);  /* two channels, two 1x2 images: ch0 = 0,255,10,10 */
    CHECK(fabs(m[0] - 68.75 / 255.0) < 1e-12 && fabs(m[1] - 227.5 / 255.0) < 1e-12,
          "per-channel means %g %g", m[0], m[1]);
    CHECK(fabs(sd[0] - sqrt((65025.0 + 200) / 4 - 68.75 * 68.75) / 255) < 1e-12, "std0 %g", sd[0]);
}

/* Sizes a file declares but cannot hold, normalisations that divide by ~0, a
 * FIFO: each refused with one message naming the file, before allocating. */
static void check_hostile(void)
{
    hid_t f;
    save_good(), f = open_rw();
    put_unwritten(f, "/train/images", 4, (hsize_t[]){1, 1, 65536, 32768}), H5Fclose(f);
    expect_load_fail("[1,1,65536,32768] in a tiny file", DLFS_ERR_FORMAT, "dlfs takes images of at most 1048576 values");
    save_good(), f = open_rw();
    put_unwritten(f, "/train/images", 4, (hsize_t[]){3000000000ull, 1, 28, 28});
    put_unwritten(f, "/train/labels", 1, (hsize_t[]){3000000000ull}), H5Fclose(f);
    expect_load_fail("3e9 images declared", DLFS_ERR_FORMAT, "dlfs reads at most 2147483647 images and 64 GiB");
    save_good(), f = open_rw();
    put_unwritten(f, "/train/images", 4, (hsize_t[]){NTR, C, H, W}), H5Fclose(f);
    expect_load_fail("images declared, not stored", DLFS_ERR_FORMAT, "/train/images declares 12000 bytes but the file "
                     "holds only 0 compressed bytes");
    const double zero[C] = {0, 0}, tiny[C] = {0.2, 1e-300}, big[C] = {1e300, 0.2}, nan_[C] = {NAN, 0.2};
    const double *bad[4] = {zero, tiny, big, nan_};
    const char *want[4] = {"is (nearly) constant (std 0 <", "(std 1e-300 <", "not a usable normalisation",
                           "has mean nan"};
    for (int k = 0; k < 4; k++) {
        save_good(), f = open_rw(), put_doubles(f, k >= 2 ? "mean" : "std", bad[k], C), H5Fclose(f);
        expect_load_fail(want[k], DLFS_ERR_NUMERIC, want[k]);
    }
    struct dlfs_dataset flat = make_ds();
    memset(tr_img, 7, sizeof tr_img); /* constant images: std 0 */
    dlfs_dataset_stats(&flat.train, C, H, W, flat.mean, flat.std);
    dlfs_error_clear();
    CHECK(dlfs_dataset_save(path, &flat) == DLFS_ERR_NUMERIC && strstr(dlfs_error_msg(), "(nearly) constant"),
          "save of constant images: %s", dlfs_error_msg());
    unlink(path);
    if (mkfifo(path, 0600) == 0) {
        alarm(20); /* a loader that blocks on the FIFO fails here instead of hanging */
        expect_load_fail("FIFO", DLFS_ERR_IO, "it is a FIFO (named pipe), not a regular file");
        alarm(0);
        unlink(path);
    }
}

/* The image entry point reads what the file entry point reads. */
static void check_image(void)
{
    save_good();
    FILE *fp = fopen(path, "rb");
    static uint8_t buf[1 << 20];
    const size_t n = fp ? fread(buf, 1, sizeof buf, fp) : 0;
    if (fp) fclose(fp);
    struct dlfs_dataset a, b;
    dlfs_error_clear();
    CHECK(dlfs_dataset_load(path, &a) == DLFS_OK && dlfs_dataset_load_image(buf, n, "mem", &b) == DLFS_OK,
          "image load: %s", dlfs_error_msg());
    CHECK(a.train.n == b.train.n && b.train.images && !memcmp(a.train.images, b.train.images, a.train.n * C * H * W) &&
          strcmp(b.path, "mem") == 0, "image load differs from file load");
    dlfs_dataset_free(&a), dlfs_dataset_free(&b);
    expect_no_open_objects("after image loads");
}

/* The synthetic dataset has the benchmark's bytes: the digest below was taken from
 * bench.c's synth_ (commit 1d0af6e) for 64 images of 1x28x28, 10 classes, seed 1. */
static void check_synthetic(void)
{
    struct dlfs_dataset ds;
    dlfs_error_clear();
    enum dlfs_status st = dlfs_dataset_synthetic(&ds, 1, 28, 28, 10, 64, 1);
    CHECK(st == DLFS_OK, "synthetic: %s", dlfs_error_msg());
    if (st != DLFS_OK) return;
    struct dlfs_sha256 s;
    uint8_t d[32];
    char hex[65];
    dlfs_sha256_init(&s);
    dlfs_sha256_update(&s, ds.train.images, 64 * 784);
    dlfs_sha256_update(&s, ds.train.labels, 64);
    dlfs_sha256_final(&s, d);
    dlfs_sha256_hex(d, hex);
    CHECK(strcmp(hex, "a659b856b7c4545b58191d0d11b32f38221bfad5f590d7fdc66774d12a98b760") == 0,
          "synthetic bytes moved: %s", hex);
    CHECK(ds.num_classes == 10 && ds.mean[0] == 0.5 && ds.std[0] == 0.29 && ds.test.n == 0, "synthetic fields");
    dlfs_dataset_free(&ds);
    CHECK(dlfs_dataset_synthetic(&ds, 1, 2048, 1024, 10, 4, 1) == DLFS_ERR_USAGE, "synthetic: images too large");
    CHECK(dlfs_dataset_synthetic(&ds, 1, 8, 8, 4097, 4, 1) == DLFS_ERR_USAGE, "synthetic: 4097 classes");
    CHECK(dlfs_dataset_synthetic(&ds, 1, 8, 8, 1, 4, 1) == DLFS_ERR_USAGE, "synthetic: 1 class");
    CHECK(dlfs_dataset_synthetic(&ds, 1, 8, 8, 4096, 4, 1) == DLFS_OK && ds.num_classes == 4096, "synthetic: 4096 classes");
    dlfs_dataset_free(&ds);
}

/* dlfs_dataset_synth_save writes a chunk of rows at a time what dlfs_dataset_save
 * writes of dlfs_dataset_synthetic (the arrays whose bytes check_synthetic pins):
 * 2500 train images of 1x28x28 (chunks of 1024 rows: the last holds 452) and 77 test
 * images (seed + 1); a directory that does not exist is one error naming the file. */
static void check_synth_save(void)
{
    struct dlfs_dataset a, tr, te;
    dlfs_error_clear();
    CHECK(dlfs_dataset_synth_save(path, 1, 28, 28, 10, 2500, 77, 9) == DLFS_OK, "synth_save: %s", dlfs_error_msg());
    expect_no_open_objects("after synth_save");
    const int ok = dlfs_dataset_load(path, &a) == DLFS_OK;
    CHECK(ok, "synth_save's file: %s", dlfs_error_msg());
    CHECK(dlfs_dataset_synthetic(&tr, 1, 28, 28, 10, 2500, 9) == DLFS_OK &&
          dlfs_dataset_synthetic(&te, 1, 28, 28, 10, 77, 10) == DLFS_OK, "synthetic: %s", dlfs_error_msg());
    if (ok) {
        CHECK(a.train.n == 2500 && a.test.n == 77 && a.c == 1 && a.h == 28 && a.w == 28, "synth_save: sizes");
        CHECK(a.train.n == 2500 && !memcmp(a.train.images, tr.train.images, 2500 * 784) &&
              !memcmp(a.train.labels, tr.train.labels, 2500), "synth_save: train split differs from the synthetic");
        CHECK(a.test.n == 77 && !memcmp(a.test.images, te.train.images, 77 * 784) &&
              !memcmp(a.test.labels, te.train.labels, 77), "synth_save: test split differs from seed + 1's");
        CHECK(a.num_classes == 10 && !strcmp(a.classes[9], "9") && a.mean[0] == 0.5 && a.std[0] == 0.29 &&
              !strcmp(a.source, tr.source), "synth_save: attributes");
    }
    dlfs_dataset_free(&a), dlfs_dataset_free(&tr), dlfs_dataset_free(&te);
    char tmp[160];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    CHECK(access(tmp, F_OK) != 0, "%s left behind by synth_save", tmp);
    CHECK(dlfs_dataset_synth_save("no-such-dir/s.h5", 1, 8, 8, 10, 10, 10, 1) == DLFS_ERR_IO &&
          strstr(dlfs_error_msg(), "no-such-dir/s.h5"), "synth_save into a missing directory: %s", dlfs_error_msg());
    CHECK(dlfs_dataset_synth_save(path, 1, 8, 8, 1, 10, 10, 1) == DLFS_ERR_USAGE, "synth_save: 1 class");
}

/* long: the list of cases, run in sequence in one temporary directory */
int main(void)
{
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    char dir[32] = "ds-test-XXXXXX";
    if (!mkdtemp(dir)) return perror("mkdtemp"), 1;
    snprintf(path, sizeof path, "%s/ds.h5", dir);

    struct dlfs_dataset z = {0};
    dlfs_dataset_free(&z);
    dlfs_dataset_free(NULL);
    check_stats();
    check_synth_save();
    check_round_trip();
    char tmp[160];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    CHECK(access(tmp, F_OK) != 0, "%s left behind after save", tmp);

    /* Attributes as other tools write them (fixed-length strings) are accepted. */
    hid_t f = open_rw();
    put_fixed_strings(f, "format", (char *[]){DLFS_DATASET_FORMAT}, 1, 1);
    put_fixed_strings(f, "classes", names, K, 0);
    put_fixed_strings(f, "source", (char *[]){"fixed"}, 1, 0);  /* 1-element array */
    H5Adelete(f, "license");                                  /* optional */
    H5Fclose(f);
    struct dlfs_dataset ds;
    dlfs_error_clear();
    CHECK(dlfs_dataset_load(path, &ds) == DLFS_OK, "fixed strings: %s", dlfs_error_msg());
    if (ds.classes) CHECK(strcmp(ds.classes[9], "nine") == 0 && strcmp(ds.source, "fixed") == 0 &&
                          ds.license[0] == 0, "fixed strings read wrong");
    dlfs_dataset_free(&ds);

    /* Broken files. Each starts from a good one. */
    save_good(), f = open_rw(), H5Adelete(f, "format"), H5Fclose(f);
    expect_load_fail("no format", DLFS_ERR_FORMAT,
                     "is not a dlfs dataset (no 'format' attribute = dlfs-dataset); convert "
                     "IDX files with 'dlfs-data convert'");
    save_good(), f = open_rw(), put_fixed_strings(f, "format", (char *[]){"other"}, 1, 1), H5Fclose(f);
    expect_load_fail("other format", DLFS_ERR_FORMAT, "'format' attribute is 'other'");
    save_good(), f = open_rw(), put_int(f, "format_version", 2), H5Fclose(f);
    expect_load_fail("format_version 2", DLFS_ERR_FORMAT, "format_version 2");
    save_good(), f = open_rw(), H5Adelete(f, "classes"), H5Fclose(f);
    expect_load_fail("no classes", DLFS_ERR_FORMAT, "'classes'");
    save_good(), f = open_rw(), H5Adelete(f, "std"), H5Fclose(f);
    expect_load_fail("no std", DLFS_ERR_FORMAT, "'std'");
    save_good(), f = open_rw(), H5Ldelete(f, "/test/labels", H5P_DEFAULT), H5Fclose(f);
    expect_load_fail("no /test/labels", DLFS_ERR_FORMAT, "/test/labels is missing");
    save_good(), f = open_rw(), H5Ldelete(f, "/train", H5P_DEFAULT), H5Fclose(f);
    expect_load_fail("no /train", DLFS_ERR_FORMAT, "/train is missing");
    save_good(), f = open_rw();
    put_dataset(f, "/train/labels", H5T_STD_U8LE, 1, (hsize_t[]){NTR - 1}), H5Fclose(f);
    expect_load_fail("label count", DLFS_ERR_FORMAT, "has 399 entries but /train/images has 400");
    save_good(), f = open_rw();
    put_dataset(f, "/train/images", H5T_STD_U8LE, 3, (hsize_t[]){NTR, H, W}), H5Fclose(f);
    expect_load_fail("rank 3 images", DLFS_ERR_FORMAT, "has 3 dimensions");
    save_good(), f = open_rw();
    put_dataset(f, "/test/images", H5T_STD_I16LE, 4, (hsize_t[]){NTE, C, H, W}), H5Fclose(f);
    expect_load_fail("int16 images", DLFS_ERR_FORMAT, "/test/images must hold uint8");
    save_good(), f = open_rw();
    put_dataset(f, "/test/images", H5T_STD_U8LE, 4, (hsize_t[]){NTE, C, H + 1, W}), H5Fclose(f);
    expect_load_fail("shape mismatch", DLFS_ERR_FORMAT, "both splits need one image shape");
    save_good(), f = open_rw();
    put_dataset(f, "/train/images", H5T_STD_U8LE, 4, (hsize_t[]){NTR, 17, H, W}), H5Fclose(f);
    expect_load_fail("17 channels", DLFS_ERR_FORMAT, "has 17 channels");
    {
        struct dlfs_dataset bad = make_ds();
        tr_lab[345] = 12;  /* save does not police labels: load must */
        CHECK(dlfs_dataset_save(path, &bad) == DLFS_OK, "save: %s", dlfs_error_msg());
    }
    expect_load_fail("label 12", DLFS_ERR_FORMAT,
                     ": label 12 of /train/labels[345] is outside the 10 classes");
    /* the exact boundary: K - 1 is the last legal label (the good file has it), K the first
     * illegal one, also in the last entry of the other split */
    CHECK(memchr(tr_lab, K - 1, NTR) && memchr(te_lab, K - 1, NTE), "the good file lacks label %d", K - 1);
    {
        struct dlfs_dataset bad = make_ds();
        te_lab[NTE - 1] = K;
        CHECK(dlfs_dataset_save(path, &bad) == DLFS_OK, "save: %s", dlfs_error_msg());
    }
    {
        char want[96];
        snprintf(want, sizeof want, ": label %d of /test/labels[%d] is outside the %d classes", K, NTE - 1, K);
        expect_load_fail("label = classes", DLFS_ERR_FORMAT, want);
    }
    FILE *t = fopen(path, "w");
    if (t) fputs("not hdf5\n", t), fclose(t);
    expect_load_fail("text file", DLFS_ERR_FORMAT, "is not an HDF5 file");
    save_good();
    if (truncate(path, 2000) != 0) perror("truncate");
    expect_load_fail("truncated HDF5", DLFS_ERR_FORMAT, "truncated or damaged");
    unlink(path);
    expect_load_fail("missing file", DLFS_ERR_IO, "No such file or directory");

    check_hostile();
    check_image();
    check_synthetic();

    /* Save into a directory that does not exist: IO error naming PATH.tmp. */
    struct dlfs_dataset good = make_ds();
    dlfs_error_clear();
    CHECK(dlfs_dataset_save("no-such-dir/x.h5", &good) == DLFS_ERR_IO &&
          strstr(dlfs_error_msg(), "no-such-dir/x.h5.tmp"), "save: %s", dlfs_error_msg());
    expect_no_open_objects("after failed save");

    if (!t_failures_) rmdir(dir);
    printf("%s: %d failure(s)\n", t_failures_ ? "FAILED" : "PASSED", t_failures_);
    return t_failures_ ? 1 : 0;
}
