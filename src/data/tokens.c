/* Reading the token file (layout in include/dlfs/tokens.h), HDF5 serial API
 * through src/io/h5.h.
 *
 * As for the image dataset (dataset.c): every size the file declares is checked
 * before anything is allocated — the count against DLFS_TOKENS_MAX_N, the
 * bytes declared against the bytes stored (equal or more uncompressed, at most
 * TOK_MAX_RATIO times less compressed, never more than the file) — then the ids
 * are read in pieces and each one is checked against vocab_size. Every handle
 * opened is closed on every path. */
#define _POSIX_C_SOURCE 200809L
#include "dlfs/tokens.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/checked.h"
#include "data/split-file.h"
#include "io/h5.h"
#include "io/io.h"

#define TOK_READ_PIECE ((size_t)16 << 20) /* ids per read */
#define TOK_MAX_RATIO 1100                /* deflate cannot do better than ~1032:1 */
#define TOK_MAX_TEXT 65536                /* source, license, tokenizer, split */
#define TOK_REDO "re-create it with 'dlfs-data text'"

static char *strdup_(const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = malloc(n);
    return p ? memcpy(p, s, n) : NULL;
}

/* Open /name/tokens: a 1-D unsigned integer dataset of 1- or 2-byte values, 1..MAX_N of them. */
static enum dlfs_status split_open_(hid_t f, const char *path, const char *name, hid_t *d, uint64_t *n,
                                    size_t *chunk)
{
    char obj[32];
    snprintf(obj, sizeof obj, "/%s/tokens", name);
    if (H5Lexists(f, name, H5P_DEFAULT) <= 0 || H5Lexists(f, obj, H5P_DEFAULT) <= 0 ||
        (*d = H5Dopen2(f, obj, H5P_DEFAULT)) < 0)
        return dlfs_error_set(DLFS_ERR_FORMAT, "%s: dataset %s is missing or not a dataset; " TOK_REDO, path, obj);
    hid_t t = H5Dget_type(*d), sp = H5Dget_space(*d);
    const size_t size = t >= 0 && H5Tget_class(t) == H5T_INTEGER && H5Tget_sign(t) == H5T_SGN_NONE ? H5Tget_size(t)
                                                                                                    : 0;
    const int rank = sp >= 0 ? H5Sget_simple_extent_ndims(sp) : -1;
    hsize_t dim = 0;
    if (rank == 1) H5Sget_simple_extent_dims(sp, &dim, NULL);
    h5_close(t), h5_close(sp);
    if (size != 1 && size != 2)
        return dlfs_error_set(DLFS_ERR_FORMAT, "%s: %s must hold uint8 or uint16 token ids; " TOK_REDO, path, obj);
    if (rank != 1)
        return dlfs_error_set(DLFS_ERR_FORMAT, "%s: %s has %d dimensions, expected 1 [N]; " TOK_REDO, path, obj, rank);
    if (dim < 1 || dim > DLFS_TOKENS_MAX_N)
        return dlfs_error_set(DLFS_ERR_FORMAT, "%s: %s declares %llu tokens; dlfs reads 1 to %llu per split; " TOK_REDO,
                              path, obj, (unsigned long long)dim, (unsigned long long)DLFS_TOKENS_MAX_N);
    hid_t dcpl = H5Dget_create_plist(*d);
    const int filters = dcpl >= 0 ? H5Pget_nfilters(dcpl) : -1;
    hsize_t cdim = 0;
    *chunk = dcpl >= 0 && H5Pget_layout(dcpl) == H5D_CHUNKED && H5Pget_chunk(dcpl, 1, &cdim) == 1 ? (size_t)cdim : 0;
    h5_close(dcpl);
    const uint64_t declared = dim * size, stored = H5Dget_storage_size(*d), file = h5_file_size(f);
    uint64_t bound = 0;
    const int ok = filters >= 0 && stored <= file &&
                   (filters == 0 ? stored >= declared
                                 : !dlfs_mul_overflow_u64(stored, TOK_MAX_RATIO, &bound) && bound >= declared);
    if (!ok)
        return dlfs_error_set(DLFS_ERR_FORMAT, "%s: %s declares %llu bytes but the file holds only %llu %sbytes for "
                              "it; the file is truncated or damaged: " TOK_REDO, path, obj,
                              (unsigned long long)declared, (unsigned long long)stored,
                              filters > 0 ? "compressed " : "");
    *n = dim;
    return DLFS_OK;
}

/* Read the opened split in pieces; every id must be < vocab. */
static enum dlfs_status split_read_(hid_t d, const char *path, const char *name, uint64_t n, int vocab,
                                    struct dlfs_token_split *s)
{
    if (!(s->ids = malloc((size_t)n * sizeof *s->ids)))
        return dlfs_error_set(DLFS_ERR_NOMEM, "%s: cannot allocate %.1f MiB for the tokens of /%s", path,
                              (double)n * 2 / 1048576, name);
    for (uint64_t r0 = 0; r0 < n; r0 += TOK_READ_PIECE) {
        hsize_t start = r0, count = n - r0 < TOK_READ_PIECE ? n - r0 : TOK_READ_PIECE;
        hid_t fs = H5Dget_space(d), ms = H5Screate_simple(1, &count, NULL);
        const int ok = fs >= 0 && ms >= 0 && H5Sselect_hyperslab(fs, H5S_SELECT_SET, &start, NULL, &count, NULL) >= 0 &&
                       H5Dread(d, H5T_NATIVE_UINT16, ms, fs, H5P_DEFAULT, s->ids + r0) >= 0;
        h5_close(ms), h5_close(fs);
        if (!ok)
            return dlfs_error_set(DLFS_ERR_FORMAT, "%s: cannot read /%s/tokens (damaged or truncated file?); " TOK_REDO,
                                  path, name);
    }
    for (uint64_t i = 0; i < n; i++)
        if (s->ids[i] >= vocab)
            return dlfs_error_set(DLFS_ERR_FORMAT, "%s: token id %u at /%s/tokens[%llu] is not below vocab_size %d; "
                                  TOK_REDO, path, s->ids[i], name, (unsigned long long)i, vocab);
    s->n = (size_t)n;
    return DLFS_OK;
}

/* format, format_version, vocab_size and the informational strings. */
static enum dlfs_status attrs_(hid_t f, const char *path, struct dlfs_tokens *t)
{
    char *v = NULL;
    const int have = h5_attr_str_read(f, "format", 64, &v) == 0;
    const int match = have && strcmp(v, DLFS_TOKENS_FORMAT) == 0;
    free(v);
    if (!match)
        return dlfs_error_set(DLFS_ERR_FORMAT, "%s is not a dlfs token file (its 'format' attribute is not "
                              DLFS_TOKENS_FORMAT "); make one from text with 'dlfs-data text'", path);
    int version = 0, vocab = 0;
    if (h5_attr_num_read(f, "format_version", H5T_INTEGER, H5T_NATIVE_INT, 1, &version) != 0 ||
        version != DLFS_TOKENS_VERSION)
        return dlfs_error_set(DLFS_ERR_FORMAT, "%s: format_version is missing or not %d (the version this dlfs "
                              "reads); " TOK_REDO, path, DLFS_TOKENS_VERSION);
    if (h5_attr_num_read(f, "vocab_size", H5T_INTEGER, H5T_NATIVE_INT, 1, &vocab) != 0 || vocab < 2 ||
        vocab > DLFS_TOKENS_MAX_VOCAB)
        return dlfs_error_set(DLFS_ERR_FORMAT, "%s: the 'vocab_size' attribute is missing or not an integer from 2 "
                              "to %d; " TOK_REDO, path, DLFS_TOKENS_MAX_VOCAB);
    t->vocab = vocab;
    const char *names[4] = {"source", "license", "tokenizer", "split"};
    char **dst[4] = {&t->source, &t->license, &t->tokenizer, &t->split};
    for (int k = 0; k < 4; k++) { /* informational: absent means unknown */
        const int rc = h5_attr_str_read(f, names[k], TOK_MAX_TEXT, dst[k]);
        if (rc < 0)
            return dlfs_error_set(DLFS_ERR_FORMAT, "%s: the '%s' attribute is not a string of at most %d bytes", path,
                                  names[k], TOK_MAX_TEXT);
        if (rc > 0 && !(*dst[k] = strdup_("")))
            return dlfs_error_set(DLFS_ERR_NOMEM, "%s: out of memory", path);
    }
    return DLFS_OK;
}

/* keep_train: /train/tokens stays in the file, open (t->train_file, which then owns f). */
static enum dlfs_status load_hid_(hid_t f, const char *path, struct dlfs_tokens *t, int keep_train)
{
    char obj[256];
    if (h5_find_outside(f, obj, sizeof obj) == 1)
        return dlfs_error_set(DLFS_ERR_FORMAT, "%s: %s keeps its values outside the file (external storage, a virtual "
                              "dataset or a link into another file); dlfs reads only data stored in the file itself: "
                              TOK_REDO, path, obj);
    hid_t d[2] = {-1, -1};
    uint64_t n[2] = {0, 0};
    const char *names[2] = {"train", "val"};
    struct dlfs_token_split *sp[2] = {&t->train, &t->val};
    enum dlfs_status st = attrs_(f, path, t);
    for (int k = 0; k < 2 && st == DLFS_OK; k++) st = split_open_(f, path, names[k], &d[k], &n[k], &sp[k]->chunk);
    for (int k = keep_train; k < 2 && st == DLFS_OK; k++) st = split_read_(d[k], path, names[k], n[k], t->vocab, sp[k]);
    if (st == DLFS_OK && keep_train) {
        char *p = strdup_(path);
        if (p && (t->train_file = calloc(1, sizeof *t->train_file))) {
            *t->train_file = (struct dlfs_split_file){.f = f, .img = d[0], .dims = {n[0]}, .path = p};
            t->train.n = (size_t)n[0];
            d[0] = -1; /* the split file's now, as is f */
        } else {
            free(p);
            st = dlfs_error_set(DLFS_ERR_NOMEM, "%s: out of memory", path);
        }
    }
    h5_close(d[0]), h5_close(d[1]);
    if (st == DLFS_OK && !(t->path = strdup_(path))) st = dlfs_error_set(DLFS_ERR_NOMEM, "%s: out of memory", path);
    return st;
}

static enum dlfs_status load_path_(const char *path, struct dlfs_tokens *t, int keep_train)
{
    memset(t, 0, sizeof *t);
    uint64_t size = 0;
    enum dlfs_status st = io_check_regular(path, "token file", &size);
    if (st != DLFS_OK) return st;
    h5_silence();
    hid_t f = -1;
    if (H5Fis_hdf5(path) <= 0)
        st = dlfs_error_set(DLFS_ERR_FORMAT, "%s is not an HDF5 file; make a token file from text with "
                            "'dlfs-data text'", path);
    else if ((f = h5_open_path(path)) < 0)
        st = dlfs_error_set(DLFS_ERR_FORMAT, "%s cannot be opened as HDF5 (truncated or damaged file? " TOK_REDO
                            "; on a filesystem without file locks set HDF5_USE_FILE_LOCKING=FALSE)", path);
    else
        st = load_hid_(f, path, t, keep_train);
    if (!t->train_file) h5_close(f); /* else the split file keeps it open */
    if (st != DLFS_OK) dlfs_tokens_free(t);
    return st;
}

enum dlfs_status dlfs_tokens_load(const char *path, struct dlfs_tokens *t) { return load_path_(path, t, 0); }

enum dlfs_status dlfs_tokens_open(const char *path, struct dlfs_tokens *t) { return load_path_(path, t, 1); }

enum dlfs_status dlfs_tokens_load_image(const void *buf, size_t len, const char *name, struct dlfs_tokens *t)
{
    memset(t, 0, sizeof *t);
    h5_silence();
    hid_t f = h5_open_image(buf, len);
    enum dlfs_status st = f < 0 ? dlfs_error_set(DLFS_ERR_FORMAT, "%s cannot be opened as HDF5 (not an HDF5 "
                                                 "file, truncated or damaged)", name)
                                : load_hid_(f, name, t, 0);
    h5_close(f);
    if (st != DLFS_OK) dlfs_tokens_free(t);
    return st;
}

int dlfs_tokens_probe(const char *path)
{
    uint64_t size = 0;
    if (io_check_regular(path, "token file", &size) != DLFS_OK) {
        dlfs_error_clear();
        return 0;
    }
    h5_silence();
    hid_t f = H5Fis_hdf5(path) > 0 ? h5_open_path(path) : -1;
    char *v = NULL;
    const int yes = f >= 0 && h5_attr_str_read(f, "format", 64, &v) == 0 && strcmp(v, DLFS_TOKENS_FORMAT) == 0;
    free(v);
    h5_close(f);
    return yes;
}

void dlfs_tokens_free(struct dlfs_tokens *t)
{
    if (!t) return;
    free(t->path), free(t->source), free(t->license), free(t->tokenizer), free(t->split);
    free(t->train.ids), free(t->val.ids);
    dlfs_split_file_close(t->train_file);
    memset(t, 0, sizeof *t);
}
