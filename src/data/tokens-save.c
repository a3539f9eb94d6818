/* Writing the token file, the byte-level conversion of text files (the
 * validation rule of dlfs/tokens.h), and the windows of a batch. */
#define _POSIX_C_SOURCE 200809L
#include "dlfs/tokens.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "io/h5.h"
#include "io/io.h"

#define TOK_CHUNK ((hsize_t)1 << 20) /* ids per chunk (2 MiB) */
#define TOK_MAX_DEPTH 64            /* directory levels below an input */

static int write_split_(hid_t f, const char *name, const struct dlfs_token_split *s)
{
    const hsize_t want = s->chunk ? s->chunk : TOK_CHUNK;
    hsize_t dim = s->n, chunk = s->n < want ? s->n : want;
    unsigned cfg = 0;
    const int gzip = H5Zfilter_avail(H5Z_FILTER_DEFLATE) > 0 && H5Zget_filter_info(H5Z_FILTER_DEFLATE, &cfg) >= 0 &&
                     (cfg & H5Z_FILTER_CONFIG_ENCODE_ENABLED);
    hid_t g = H5Gcreate2(f, name, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), sp = H5Screate_simple(1, &dim, NULL);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE), d = -1;
    const int ok = g >= 0 && sp >= 0 && dcpl >= 0 && H5Pset_chunk(dcpl, 1, &chunk) >= 0 &&
                   (!gzip || H5Pset_deflate(dcpl, 4) >= 0) &&
                   (d = H5Dcreate2(g, "tokens", H5T_STD_U16LE, sp, H5P_DEFAULT, dcpl, H5P_DEFAULT)) >= 0 &&
                   H5Dwrite(d, H5T_NATIVE_UINT16, H5S_ALL, H5S_ALL, H5P_DEFAULT, s->ids) >= 0;
    h5_close(d), h5_close(dcpl), h5_close(sp), h5_close(g);
    return ok ? 0 : -1;
}

static int write_all_(hid_t f, const struct dlfs_tokens *t)
{
    const int version = DLFS_TOKENS_VERSION;
    const char *s[4] = {t->source, t->license, t->tokenizer, t->split}, *n[4] = {"source", "license", "tokenizer",
                                                                                 "split"};
    int bad = write_split_(f, "train", &t->train) || write_split_(f, "val", &t->val) ||
              h5_attr_str_write(f, "format", DLFS_TOKENS_FORMAT) ||
              h5_attr_num_write(f, "format_version", H5T_STD_I32LE, H5T_NATIVE_INT, 0, &version) ||
              h5_attr_num_write(f, "vocab_size", H5T_STD_I32LE, H5T_NATIVE_INT, 0, &t->vocab);
    for (int k = 0; k < 4 && !bad; k++) bad = h5_attr_str_write(f, n[k], s[k] ? s[k] : "");
    return bad ? -1 : 0;
}

enum dlfs_status dlfs_tokens_save(const char *path, const struct dlfs_tokens *t, int force)
{
    struct stat sb;
    if (!force && lstat(path, &sb) == 0)
        return dlfs_error_set(DLFS_ERR_USAGE, "%s exists; give --force to replace it, or another -o", path);
    int ok = t->vocab >= 2 && t->vocab <= DLFS_TOKENS_MAX_VOCAB && t->train.n >= 1 && t->val.n >= 1 &&
             t->train.n <= DLFS_TOKENS_MAX_N && t->val.n <= DLFS_TOKENS_MAX_N && t->train.ids && t->val.ids;
    const struct dlfs_token_split *sp[2] = {&t->train, &t->val};
    for (int k = 0; k < 2 && ok; k++)
        for (size_t i = 0; i < sp[k]->n && ok; i++) ok = sp[k]->ids[i] < t->vocab;
    if (!ok)
        return dlfs_error_set(DLFS_ERR_SHAPE, "cannot write token file %s: empty split, sizes out of the limits or an "
                              "id not below vocab_size %d (%zu train, %zu val tokens)", path, t->vocab, t->train.n,
                              t->val.n);
    void *image = NULL;
    size_t len = 0;
    h5_silence();
    hid_t f = h5_create_memory((size_t)16 << 20);
    const int built = f >= 0 && write_all_(f, t) == 0 && h5_get_image(f, &image, &len) == 0;
    h5_close(f);
    enum dlfs_status st = DLFS_OK;
    struct io_atomic_err e = {0, NULL, NULL};
    if (!built)
        st = dlfs_error_set(DLFS_ERR_NOMEM, "cannot write token file %s: building the HDF5 file in memory failed "
                            "(out of memory?)", path);
    else if (io_atomic_write(path, image, len, 0, &e) != 0)
        st = dlfs_error_set(DLFS_ERR_IO, "cannot write token file %s: %s%s%s; check that the directory exists, is "
                            "writable and has room", e.tmp ? e.tmp : path, e.stage, e.err ? ": " : "",
                            e.err ? strerror(e.err) : "");
    io_atomic_err_free(&e);
    free(image);
    return st;
}

/* ---- text files -> byte tokens ------------------------------------------------------------ */

struct list_ { char **v; size_t n, cap; };

static int ends_with_(const char *s, const char *ext)
{
    const size_t a = strlen(s), b = ext ? strlen(ext) : 0;
    return a >= b && strcmp(s + a - b, ext ? ext : "") == 0;
}

static enum dlfs_status push_(struct list_ *l, const char *path)
{
    if (l->n == l->cap) {
        const size_t cap = l->cap ? 2 * l->cap : 64;
        char **v = realloc(l->v, cap * sizeof *v);
        if (!v) return dlfs_error_set(DLFS_ERR_NOMEM, "text inputs: out of memory");
        l->v = v, l->cap = cap;
    }
    const size_t n = strlen(path) + 1;
    if (!(l->v[l->n] = malloc(n))) return dlfs_error_set(DLFS_ERR_NOMEM, "text inputs: out of memory");
    memcpy(l->v[l->n++], path, n);
    return DLFS_OK;
}

/* Every regular file below dir whose name ends in ext (links followed, as named). */
static enum dlfs_status walk_(const char *dir, const char *ext, int depth, struct list_ *l)
{
    DIR *d = opendir(dir);
    if (!d) return dlfs_error_set(DLFS_ERR_IO, "cannot read text input directory %s: %s", dir, strerror(errno));
    enum dlfs_status st = DLFS_OK;
    for (struct dirent *e; st == DLFS_OK && (e = readdir(d));) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        const size_t len = strlen(dir) + strlen(e->d_name) + 2;
        char *p = malloc(len);
        if (!p) {
            st = dlfs_error_set(DLFS_ERR_NOMEM, "text inputs: out of memory");
            break;
        }
        snprintf(p, len, "%s/%s", dir, e->d_name);
        struct stat sb;
        if (stat(p, &sb) == 0 && S_ISDIR(sb.st_mode)) {
            st = depth < TOK_MAX_DEPTH ? walk_(p, ext, depth + 1, l)
                                       : dlfs_error_set(DLFS_ERR_USAGE, "%s: more than %d directory levels (a link "
                                                        "loop?)", p, TOK_MAX_DEPTH);
        } else if (stat(p, &sb) == 0 && S_ISREG(sb.st_mode) && ends_with_(e->d_name, ext)) {
            st = push_(l, p);
        }
        free(p);
    }
    closedir(d);
    return st;
}

static int cmp_str_(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Append ceil-split bytes of one file to the two splits. */
static enum dlfs_status add_file_(const char *path, int val_percent, struct dlfs_tokens *t, size_t cap[2])
{
    int fd = -1;
    uint64_t size = 0;
    DLFS_TRY(io_open_regular(path, "text input", &fd, &size));
    const uint64_t val = (size * (uint64_t)val_percent + 99) / 100, train = size - val;
    struct dlfs_token_split *sp[2] = {&t->train, &t->val};
    const uint64_t want[2] = {train, val};
    enum dlfs_status st = DLFS_OK;
    if (t->train.n + train > DLFS_TOKENS_MAX_N || t->val.n + val > DLFS_TOKENS_MAX_N)
        st = dlfs_error_set(DLFS_ERR_USAGE, "text inputs: more than %llu bytes for one split at %s; convert a part",
                            (unsigned long long)DLFS_TOKENS_MAX_N, path);
    uint8_t *buf = st == DLFS_OK && size ? malloc(size) : NULL;
    if (st == DLFS_OK && size && !buf) st = dlfs_error_set(DLFS_ERR_NOMEM, "%s: out of memory", path);
    if (st == DLFS_OK && size && io_read_full(fd, buf, size) != 0)
        st = dlfs_error_set(DLFS_ERR_IO, "cannot read text input %s: %s", path, errno ? strerror(errno) : "short read");
    close(fd);
    for (int k = 0; k < 2 && st == DLFS_OK; k++) {
        struct dlfs_token_split *s = sp[k];
        if (s->n + want[k] > cap[k]) {
            size_t c = cap[k] ? cap[k] : 4096;
            while (c < s->n + want[k]) c *= 2;
            uint16_t *v = realloc(s->ids, c * sizeof *v);
            if (!v) {
                st = dlfs_error_set(DLFS_ERR_NOMEM, "%s: out of memory", path);
                break;
            }
            s->ids = v, cap[k] = c;
        }
        const uint8_t *src = buf + (k ? train : 0);
        for (uint64_t i = 0; i < want[k]; i++) s->ids[s->n + i] = src[i];
        s->n += want[k];
    }
    free(buf);
    return st;
}

static enum dlfs_status collect_(const char *const *inputs, int n, const char *ext, struct list_ *l)
{
    for (int i = 0; i < n; i++) {
        struct stat sb;
        if (stat(inputs[i], &sb) != 0)
            return dlfs_error_set(DLFS_ERR_IO, "cannot read text input %s: %s", inputs[i], strerror(errno));
        const size_t before = l->n;
        if (S_ISDIR(sb.st_mode)) DLFS_TRY(walk_(inputs[i], ext, 0, l));
        else if (S_ISREG(sb.st_mode)) DLFS_TRY(push_(l, inputs[i]));
        else return dlfs_error_set(DLFS_ERR_IO, "cannot read text input %s: not a regular file or directory",
                                   inputs[i]);
        if (l->n == before)
            return dlfs_error_set(DLFS_ERR_USAGE, "text input %s holds no file whose name ends in '%s'; give a "
                                  "directory with text files, or another --ext", inputs[i], ext ? ext : "");
    }
    qsort(l->v, l->n, sizeof *l->v, cmp_str_);
    return DLFS_OK;
}

enum dlfs_status dlfs_tokens_from_text(const char *const *inputs, int n, const char *ext, int val_percent,
                                       struct dlfs_tokens *t)
{
    memset(t, 0, sizeof *t);
    if (n < 1 || val_percent < 1 || val_percent > 50)
        return dlfs_error_set(DLFS_ERR_USAGE, "text: give at least one input and a validation share of 1 to 50 %%");
    struct list_ l = {NULL, 0, 0};
    size_t cap[2] = {0, 0};
    enum dlfs_status st = collect_(inputs, n, ext, &l);
    for (size_t i = 0; i < l.n && st == DLFS_OK; i++) st = add_file_(l.v[i], val_percent, t, cap);
    if (st == DLFS_OK && (t->train.n < 2 || t->val.n < 2))
        st = dlfs_error_set(DLFS_ERR_USAGE, "text inputs (%s%s): too little text, %zu bytes for training and %zu for "
                            "validation; give files with more text", inputs[0], n > 1 ? ", ..." : "", t->train.n,
                            t->val.n);
    char rule[160];
    snprintf(rule, sizeof rule, DLFS_TOKENS_VAL_RULE, val_percent);
    t->vocab = 256;
    if (st == DLFS_OK && (!(t->tokenizer = strdup("bytes")) || !(t->split = strdup(rule))))
        st = dlfs_error_set(DLFS_ERR_NOMEM, "text inputs: out of memory");
    for (size_t i = 0; i < l.n; i++) free(l.v[i]);
    free(l.v);
    if (st != DLFS_OK) dlfs_tokens_free(t);
    return st;
}

/* ---- windows ---------------------------------------------------------------------------------- */

size_t dlfs_tokens_windows(size_t n, int ctx) { return ctx >= 1 && n > (size_t)ctx ? (n - 1) / (size_t)ctx : 0; }

int dlfs_tokens_batch(const struct dlfs_token_split *s, int ctx, const uint32_t *perm, size_t b, int B, int r, int P,
                      uint16_t *out)
{
    const int lo = (int)((int64_t)r * B / P), hi = (int)((int64_t)(r + 1) * B / P);
    const size_t w = (size_t)ctx + 1;
    for (int i = lo; i < hi; i++) {
        const size_t k = perm[b * (size_t)B + (size_t)i];
        memcpy(out + (size_t)(i - lo) * w, s->ids + k * (size_t)ctx, w * sizeof *out);
    }
    return hi - lo;
}
