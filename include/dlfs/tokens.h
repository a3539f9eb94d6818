/* dlfs — token datasets for language models: the file, its reader and writer,
 * the conversion of text files, and the windows a training step draws.
 *
 * The token file (written by `dlfs-data text`, read by dlfs-train):
 *
 *   /train/tokens  uint16 [N]   chunked, gzip level 4 (the reader also takes uint8)
 *   /val/tokens    uint16 [M]
 *   root attributes:
 *     format          "dlfs-tokens"  (string)
 *     format_version  1              (int)
 *     vocab_size      V              (int, 2..65536): every token id is < V
 *     tokenizer       "bytes" for byte-level text (id = byte value, V = 256), or
 *                     whatever made the ids (informational)
 *     split           the rule that made the validation split (informational)
 *     source, license (strings)
 *
 * The validation split of `dlfs-data text` (DLFS_TOKENS_VAL_RULE): the inputs
 * are taken in byte-wise sorted path order (a directory: every regular file
 * below it, recursively, whose name ends in --ext); of each file the last
 * ceil(len * P / 100) bytes (P = --val-percent, default 5) go to /val/tokens,
 * the rest to /train/tokens, each split the concatenation over the files in
 * that order. Every file thus contributes to both splits in proportion.
 *
 * Windows: a split of n tokens holds W = floor((n - 1) / ctx) windows of ctx + 1
 * tokens; window k is tokens [k*ctx, k*ctx + ctx] (inputs the first ctx, targets
 * the last ctx: consecutive windows share one token). The windows of an epoch
 * are ordered by dlfs_sampler_permutation(seed, epoch, W) (dlfs/sampler.h);
 * global batch b is windows perm[b*B .. b*B + B), rank r of P takes its rows
 * [r*B/P, (r+1)*B/P). The global order is thus a function of the seed alone,
 * whatever the rank count.
 *
 * Limits: every size the file declares is checked against them and against the
 * bytes it stores before anything is allocated or read; every id against V.
 */
#ifndef DLFS_TOKENS_H
#define DLFS_TOKENS_H

#include <stddef.h>
#include <stdint.h>
#include "dlfs/status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define DLFS_TOKENS_FORMAT "dlfs-tokens"
#define DLFS_TOKENS_VERSION 1
#define DLFS_TOKENS_MAX_VOCAB 65536
/* tokens per split: window indices stay 32-bit for any context >= 1 */
#define DLFS_TOKENS_MAX_N ((uint64_t)1 << 31)
#define DLFS_TOKENS_VAL_RULE "the last ceil(len*P/100) bytes of each input file (sorted path order), P = %d"

struct dlfs_token_split {
    size_t n;       /* tokens */
    uint16_t *ids;  /* n ids, each < vocab */
    size_t chunk;   /* ids per HDF5 chunk (read: the file's, 0 when contiguous; written: 0 = 2^20) */
};

struct dlfs_split_file;

struct dlfs_tokens {
    char *path, *source, *license, *tokenizer, *split;
    int vocab;
    struct dlfs_token_split train, val;
    struct dlfs_split_file *train_file; /* dlfs_tokens_open: /train/tokens left in the file (train.ids NULL) */
};

/* Read a token file whole, validating format, version, vocab_size, the sizes
 * (1 to DLFS_TOKENS_MAX_N ids per split, against the bytes stored) and every id. */
enum dlfs_status dlfs_tokens_load(const char *path, struct dlfs_tokens *t);
/* The same, checked the same way, but the train ids stay in the file (train.n set,
 * train.ids NULL, train_file open): for dlfs_tokens_dataset_open, which reads the
 * windows a few at a time and checks each id as it is read. */
enum dlfs_status dlfs_tokens_open(const char *path, struct dlfs_tokens *t);
/* The same from an HDF5 file image in memory (tests, fuzzing). */
enum dlfs_status dlfs_tokens_load_image(const void *buf, size_t len, const char *name, struct dlfs_tokens *t);
void dlfs_tokens_free(struct dlfs_tokens *t);
/* 1 when `path` is an HDF5 file whose 'format' attribute is DLFS_TOKENS_FORMAT, else 0. */
int dlfs_tokens_probe(const char *path);

/* Write `t` (path ignored) to `path` atomically. Refuses an existing `path`
 * unless `force` (DLFS_ERR_USAGE naming it and --force). */
enum dlfs_status dlfs_tokens_save(const char *path, const struct dlfs_tokens *t, int force);

/* Byte-level conversion of text files and directories (the rule above) into
 * `t` (vocab 256, tokenizer "bytes"); `ext` filters the files found in
 * directories (NULL or "": all), files named directly are always taken.
 * One message naming the input for an unreadable one; DLFS_ERR_USAGE when the
 * inputs hold no file, or no bytes for either split. */
enum dlfs_status dlfs_tokens_from_text(const char *const *inputs, int n, const char *ext, int val_percent,
                                       struct dlfs_tokens *t);

/* The windows of both splits as a dataset for the trainer (src/data/tokens-ds.c):
 * train sample k = window k of /train (val: of /val) as a 1 x 1 x (ctx+1) image of
 * its ids, normalisation mean 0, std 1/255 (normalised values = the ids), classes
 * "0".."V-1", labels 0 (unused: a language model takes its targets from the
 * window). Vocabularies up to 256 only (the images are bytes); DLFS_ERR_USAGE for
 * a larger one or a split without one window. Free with dlfs_dataset_free. */
struct dlfs_dataset;
enum dlfs_status dlfs_tokens_dataset(const struct dlfs_tokens *t, int ctx, struct dlfs_dataset *ds);

/* The same dataset from a file opened by dlfs_tokens_open (--data-cache): the val
 * windows in memory; the train windows read whole (through dlfs_split_read) when
 * they take at most stream_bytes, else left in the file (ds->train.images NULL,
 * ds->train.file, its labels 0 in memory): dlfs_split_read builds a chunk of them
 * from the ids of their span, the same bytes as dlfs_tokens_dataset's. The split
 * file moves from t to ds. */
enum dlfs_status dlfs_tokens_dataset_open(struct dlfs_tokens *t, int ctx, uint64_t stream_bytes,
                                          struct dlfs_dataset *ds);

/* Windows of ctx + 1 tokens in a split of n tokens: floor((n - 1) / ctx), 0 when n <= ctx. */
size_t dlfs_tokens_windows(size_t n, int ctx);
/* This rank's rows of global batch b (B windows, rank r of P), as ctx + 1 ids
 * each into out (rows * (ctx + 1)), from the epoch's permutation perm of the
 * split's windows ((b + 1) * B <= windows). Returns the number of rows. */
int dlfs_tokens_batch(const struct dlfs_token_split *s, int ctx, const uint32_t *perm, size_t b, int B, int r, int P,
                      uint16_t *out);

#ifdef __cplusplus
}
#endif

#endif
