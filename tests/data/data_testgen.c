/* Helper for the dlfs-data shell tests (not a test itself).
 *
 *   data_testgen gen DIR
 *       writes small synthetic IDX sets and broken inputs into DIR:
 *       gray: DIR/{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz] (Fashion-MNIST
 *             names, plain and gzip mixed), 60 + 20 images of 7x5, labels 0..9
 *       rgb:  DIR/rgb-{train,test}-{images,labels}.idx, 4-D [N,3,4,6], labels 0..4
 *       bad:  not-idx.txt, cut-images.gz (truncated gzip), short-labels.idx
 *             (59 labels), label12.idx (a 12 among 60 labels), not-dlfs.h5 (HDF5
 *             without the dlfs attributes), float-images.idx (IDX type 0x0D),
 *             const-images.idx (60 images of 7x5, every pixel 128: std 0)
 *   data_testgen compare OUT.h5 TRAIN_IMG TRAIN_LAB TEST_IMG TEST_LAB CLASS...
 *       loads OUT.h5 with the library and checks bytes, shapes, classes against
 *       the IDX files, and mean/std against a separate two-pass computation.
 */
#define _POSIX_C_SOURCE 200809L
#include "dlfs/dataset.h"
#include "data/idx_write.h"

#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int failures;
#define CHECK(cond, ...)                                                    \
    do {                                                                    \
        if (!(cond)) {                                                      \
            fprintf(stderr, "FAIL: ");                                      \
            fprintf(stderr, __VA_ARGS__);                                   \
            fputc('\n', stderr);                                            \
            failures++;                                                     \
        }                                                                   \
    } while (0)

static const char *dir;
static const char *at(const char *name)
{
    static char buf[4][512];
    static int next;
    char *p = buf[next++ % 4];
    snprintf(p, 512, "%s/%s", dir, name);
    return p;
}

static int gen(void)
{
    enum { NTR = 60, NTE = 20, H = 7, W = 5, C3 = 3, H3 = 4, W3 = 6, BIGN = 200 };
    static uint8_t img[BIGN * 28 * 28], lab[NTR];
    int rc = 0;
    tw_fill(img, sizeof img, 42);
    for (int i = 0; i < NTR; i++) lab[i] = (uint8_t)((i * 3 + i / 10) % 10);
    /* gray set with the Fashion-MNIST names: some plain, some gzip */
    rc |= tw_write_idx(at("train-images-idx3-ubyte"), 0, 8, 3, (uint32_t[]){NTR, H, W}, img,
                       NTR * H * W);
    rc |= tw_write_idx(at("train-labels-idx1-ubyte.gz"), 1, 8, 1, (uint32_t[]){NTR}, lab, NTR);
    rc |= tw_write_idx(at("t10k-images-idx3-ubyte.gz"), 1, 8, 3, (uint32_t[]){NTE, H, W},
                       img + 1000, NTE * H * W);
    rc |= tw_write_idx(at("t10k-labels-idx1-ubyte"), 0, 8, 1, (uint32_t[]){NTE}, lab + 17, NTE);
    /* rgb set, 4-D, labels 0..4 only */
    uint8_t lab5[NTR];
    for (int i = 0; i < NTR; i++) lab5[i] = (uint8_t)(lab[i] % 5);
    rc |= tw_write_idx(at("rgb-train-images.idx"), 1, 8, 4, (uint32_t[]){30, C3, H3, W3}, img + 7,
                       30 * C3 * H3 * W3);
    rc |= tw_write_idx(at("rgb-train-labels.idx"), 0, 8, 1, (uint32_t[]){30}, lab5, 30);
    rc |= tw_write_idx(at("rgb-test-images.idx"), 0, 8, 4, (uint32_t[]){10, C3, H3, W3}, img + 99,
                       10 * C3 * H3 * W3);
    rc |= tw_write_idx(at("rgb-test-labels.idx"), 1, 8, 1, (uint32_t[]){10}, lab5 + 30, 10);
    /* broken inputs */
    rc |= tw_write_raw(at("not-idx.txt"), 0, "these are not the bytes you are looking for\n", 44);
    rc |= tw_write_idx(at("cut-images.gz"), 1, 8, 3, (uint32_t[]){BIGN, 28, 28}, img,
                       BIGN * 28 * 28);
    struct stat sb;
    if (stat(at("cut-images.gz"), &sb) != 0 || truncate(at("cut-images.gz"), sb.st_size / 3) != 0)
        rc = 1;
    rc |= tw_write_idx(at("short-labels.idx"), 0, 8, 1, (uint32_t[]){NTR - 1}, lab, NTR - 1);
    uint8_t lab12[NTR];
    memcpy(lab12, lab, NTR);
    lab12[37] = 12;
    rc |= tw_write_idx(at("label12.idx"), 0, 8, 1, (uint32_t[]){NTR}, lab12, NTR);
    rc |= tw_write_idx(at("float-images.idx"), 0, 0x0D, 3, (uint32_t[]){NTR, H, W}, img,
                       4 * NTR * H * W);
    static uint8_t flat[NTR * H * W];
    memset(flat, 128, sizeof flat);
    rc |= tw_write_idx(at("const-images.idx"), 0, 8, 3, (uint32_t[]){NTR, H, W}, flat, sizeof flat);
    /* An HDF5 file that is not a dlfs dataset: right-looking datasets, no attributes. */
    hid_t f = H5Fcreate(at("not-dlfs.h5"), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    hsize_t dims[1] = {NTR};
    hid_t sp = H5Screate_simple(1, dims, NULL);
    hid_t g = H5Gcreate2(f, "train", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    hid_t d = H5Dcreate2(g, "labels", H5T_STD_U8LE, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (f < 0 || d < 0 || H5Dwrite(d, H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, lab) < 0)
        rc = 1;
    H5Dclose(d), H5Gclose(g), H5Sclose(sp);
    if (H5Fclose(f) < 0) rc = 1;
    if (rc) fprintf(stderr, "data_testgen: could not write the test files in %s\n", dir);
    return rc ? 1 : 0;
}

static int compare(int argc, char **argv)
{
    const char *h5 = argv[0];
    struct dlfs_idx f[4];
    struct dlfs_dataset ds;
    if (dlfs_dataset_load(h5, &ds) != DLFS_OK) {
        fprintf(stderr, "FAIL: load: %s\n", dlfs_error_msg());
        return 1;
    }
    for (int i = 0; i < 4; i++)
        if (dlfs_idx_read(argv[1 + i], &f[i]) != DLFS_OK) {
            fprintf(stderr, "FAIL: %s\n", dlfs_error_msg());
            return 1;
        }
    const struct dlfs_split *sp[2] = {&ds.train, &ds.test};
    for (int s = 0; s < 2; s++) {
        const struct dlfs_idx *im = &f[2 * s], *lb = &f[2 * s + 1];
        int c = im->ndim == 4 ? (int)im->dims[1] : 1;
        int h = (int)im->dims[im->ndim - 2], w = (int)im->dims[im->ndim - 1];
        CHECK(ds.c == c && ds.h == h && ds.w == w, "shape %dx%dx%d, IDX %dx%dx%d", ds.c, ds.h,
              ds.w, c, h, w);
        CHECK(sp[s]->n == im->dims[0] && sp[s]->n == lb->dims[0], "split %d count %zu", s,
              sp[s]->n);
        if (failures) break;
        CHECK(memcmp(sp[s]->images, im->data, sp[s]->n * (size_t)(c * h * w)) == 0,
              "split %d images differ from %s", s, argv[1 + 2 * s]);
        CHECK(memcmp(sp[s]->labels, lb->data, sp[s]->n) == 0, "split %d labels differ", s);
    }
    int k = argc - 5;
    CHECK(ds.num_classes == k, "%d classes, want %d", ds.num_classes, k);
    for (int i = 0; i < k && i < ds.num_classes; i++)
        CHECK(strcmp(ds.classes[i], argv[5 + i]) == 0, "class %d '%s', want '%s'", i,
              ds.classes[i], argv[5 + i]);
    /* two-pass mean/std per channel, independent of dlfs_dataset_stats */
    size_t plane = (size_t)ds.h * ds.w;
    for (int c = 0; !failures && c < ds.c; c++) {
        double sum = 0, ss = 0;
        for (size_t i = 0; i < ds.train.n; i++)
            for (size_t j = 0; j < plane; j++) sum += ds.train.images[(i * ds.c + c) * plane + j];
        double m = sum / (ds.train.n * plane);
        for (size_t i = 0; i < ds.train.n; i++)
            for (size_t j = 0; j < plane; j++) {
                double x = ds.train.images[(i * ds.c + c) * plane + j] - m;
                ss += x * x;
            }
        double sd = sqrt(ss / (ds.train.n * plane));
        CHECK(fabs(ds.mean[c] - m / 255) < 1e-9 && fabs(ds.std[c] - sd / 255) < 1e-9,
              "channel %d mean/std %.9f/%.9f, want %.9f/%.9f", c, ds.mean[c], ds.std[c], m / 255,
              sd / 255);
    }
    for (int i = 0; i < 4; i++) dlfs_idx_free(&f[i]);
    dlfs_dataset_free(&ds);
    printf("%s: %s matches its IDX files\n", failures ? "FAILED" : "ok", h5);
    return failures ? 1 : 0;
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "gen") == 0) {
        dir = argv[2];
        return gen();
    }
    if (argc >= 7 && strcmp(argv[1], "compare") == 0) return compare(argc - 2, argv + 2);
    fprintf(stderr, "usage: data_testgen gen DIR | compare OUT.h5 TRI TRL TEI TEL CLASS...\n");
    return 2;
}
