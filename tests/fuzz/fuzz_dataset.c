#define _POSIX_C_SOURCE 200809L
/* libFuzzer target: the dataset reader (dlfs_dataset_load_image) on real dataset
 * files, written by the library, then edited by the fuzz input (h5script.h). */
#include <stdlib.h>
#include <unistd.h>
#include "dlfs/dataset.h"
#include "h5script.h"

static void *tmpl_[2];
static size_t tmpl_len_[2];

/* Two real dataset files (gray 1x7x5 and color 3x4x6), as bytes. */
static void *make_(int k, size_t *len)
{
    enum { NTR = 60, NTE = 20 };
    const int c = k ? 3 : 1, h = k ? 4 : 7, w = k ? 6 : 5, chw = c * h * w;
    uint8_t *img = malloc((NTR + NTE) * (size_t)chw), lab[NTR + NTE];
    for (int i = 0; i < (NTR + NTE) * chw; i++) img[i] = (uint8_t)(i * 37 + i / 5);
    for (int i = 0; i < NTR + NTE; i++) lab[i] = (uint8_t)(i % (k ? 5 : 10));
    char *names[10] = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                       "Ankle boot"};
    struct dlfs_dataset ds = {.c = c, .h = h, .w = w, .num_classes = k ? 5 : 10, .classes = names, .source = "fuzz",
                              .license = "CC0", .train = {NTR, img, lab}, .test = {NTE, img + NTR * chw, lab + NTR}};
    dlfs_dataset_stats(&ds.train, c, h, w, ds.mean, ds.std);
    char path[64];
    snprintf(path, sizeof path, "/tmp/dlfs-fuzz-ds-%d-%d.h5", (int)getpid(), k);
    void *b = dlfs_dataset_save(path, &ds) == DLFS_OK ? fz_slurp(path, len) : NULL;
    unlink(path);
    free(img);
    return b;
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    for (int k = 0; k < 2; k++)
        if (!(tmpl_[k] = make_(k, &tmpl_len_[k]))) abort();
    return 0;
}

static const char *const objs_[] = {"/", "/train", "/test", "/train/images", "/train/labels"};
static const char *const attrs_[] = {"format", "format_version", "classes", "source", "license", "mean", "std"};
static const char *const dsets_[] = {"/train/images", "/train/labels", "/test/images", "/test/labels", "/train",
                                     "/extra"};
static const char *const strs_[] = {"dlfs-dataset", "dlfs-checkpoint", "", "0", "T-shirt/top"};
static const struct fz_names names_ = {objs_, 5, attrs_, 7, dsets_, 6, strs_, 5};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    void *image;
    size_t len;
    if (fz_edit(data, size, tmpl_, tmpl_len_, &names_, NULL, &image, &len) != 0) return 0;
    struct dlfs_dataset ds;
    dlfs_error_clear();
    const enum dlfs_status st = dlfs_dataset_load_image(image, len, "fuzz.h5", &ds);
    if (getenv("DLFS_FUZZ_VERBOSE")) fprintf(stderr, "load: %s\n", st == DLFS_OK ? "ok" : dlfs_error_msg());
    if (st == DLFS_OK) {
        /* what the loader promises: shapes in the limits, labels below the classes, finite normalisation */
        if (ds.c < 1 || ds.c > DLFS_MAX_CHANNELS || !ds.train.n || !ds.test.n || ds.num_classes < 1 ||
            dlfs_dataset_check_norm("x", ds.c, ds.mean, ds.std) != DLFS_OK)
            __builtin_trap();
        for (size_t i = 0; i < ds.train.n; i++)
            if (ds.train.labels[i] >= ds.num_classes) __builtin_trap();
        volatile uint8_t last = ds.test.images[ds.test.n * (size_t)ds.c * ds.h * ds.w - 1];
        (void)last;
    } else if (ds.train.images || !dlfs_error_msg()[0]) {
        __builtin_trap(); /* a failure frees everything and says why */
    }
    dlfs_dataset_free(&ds);
    free(image);
    return 0;
}
