#define _POSIX_C_SOURCE 200809L
/* libFuzzer target: the token-file reader (dlfs_tokens_load_image) on real token
 * files written by the library (byte tokens, vocab 256; uint16 ids, vocab 65536),
 * then edited by the fuzz input (h5script.h). */
#include <stdlib.h>
#include <unistd.h>
#include "dlfs/tokens.h"
#include "h5script.h"

static void *tmpl_[2];
static size_t tmpl_len_[2];

static void *make_(int k, size_t *len)
{
    enum { NTR = 700, NVA = 90 };
    uint16_t tr[NTR], va[NVA];
    for (int i = 0; i < NTR; i++) tr[i] = (uint16_t)(k ? i * 7919u : (unsigned)(i * 37 + i / 5) & 255u);
    for (int i = 0; i < NVA; i++) va[i] = (uint16_t)(k ? 65535 - i : i);
    struct dlfs_tokens t = {.vocab = k ? 65536 : 256, .source = "fuzz", .license = "CC0",
                            .tokenizer = k ? "bpe" : "bytes", .split = "fuzz", .train = {NTR, tr}, .val = {NVA, va}};
    char path[64];
    snprintf(path, sizeof path, "/tmp/dlfs-fuzz-tok-%d-%d.h5", (int)getpid(), k);
    void *b = dlfs_tokens_save(path, &t, 1) == DLFS_OK ? fz_slurp(path, len) : NULL;
    unlink(path);
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

static const char *const objs_[] = {"/", "/train", "/val", "/train/tokens", "/val/tokens"};
static const char *const attrs_[] = {"format", "format_version", "vocab_size", "tokenizer", "split", "source",
                                     "license"};
static const char *const dsets_[] = {"/train/tokens", "/val/tokens", "/train", "/val", "/extra"};
static const char *const strs_[] = {"dlfs-tokens", "dlfs-dataset", "", "bytes"};
static const struct fz_names names_ = {objs_, 5, attrs_, 7, dsets_, 5, strs_, 4};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    void *image;
    size_t len;
    if (fz_edit(data, size, tmpl_, tmpl_len_, &names_, NULL, &image, &len) != 0) return 0;
    struct dlfs_tokens t;
    dlfs_error_clear();
    const enum dlfs_status st = dlfs_tokens_load_image(image, len, "fuzz.h5", &t);
    if (getenv("DLFS_FUZZ_VERBOSE")) fprintf(stderr, "load: %s\n", st == DLFS_OK ? "ok" : dlfs_error_msg());
    if (st == DLFS_OK) {
        /* what the loader promises: a vocabulary in range, non-empty splits, every id below it */
        if (t.vocab < 2 || t.vocab > DLFS_TOKENS_MAX_VOCAB || !t.train.n || !t.val.n || !t.source || !t.split)
            __builtin_trap();
        for (size_t i = 0; i < t.train.n; i++)
            if (t.train.ids[i] >= t.vocab) __builtin_trap();
        for (size_t i = 0; i < t.val.n; i++)
            if (t.val.ids[i] >= t.vocab) __builtin_trap();
    } else if (t.train.ids || !dlfs_error_msg()[0]) {
        __builtin_trap(); /* a failure frees everything and says why */
    }
    dlfs_tokens_free(&t);
    free(image);
    return 0;
}
