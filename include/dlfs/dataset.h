/* dlfs — datasets: IDX reading, the dlfs HDF5 dataset file, and its summary.
 *
 * The dataset file (written by `dlfs-data convert`, read by dlfs-train):
 *
 *   /train/images  uint8 [N, C, H, W]  chunked by rows, gzip level 4
 *   /train/labels  uint8 [N]
 *   /test/images   uint8 [M, C, H, W]
 *   /test/labels   uint8 [M]
 *   root attributes:
 *     format          "dlfs-dataset"   (string)
 *     format_version  1                (int)
 *     classes         K strings, class names in label order
 *     source, license (strings)
 *     mean, std       float64 [C]: per-channel mean/std of the TRAIN images, on the
 *                     0..1 scale (pixel / 255)
 *
 * Ownership: whoever calls a *_load/_read gets a struct to release with the
 * matching *_free. All functions return DLFS_OK or a status with a message
 * (dlfs_error_msg()) that names the file and says what is wrong.
 *
 * Limits (datasets/README.md): every size a file declares is checked against
 * them, and against what the file actually stores, before anything is
 * allocated or read. Only regular files are opened (a FIFO, socket, device or
 * directory is refused at once, never waited on).
 */
#ifndef DLFS_DATASET_H
#define DLFS_DATASET_H

#include <stdint.h>
#include <stddef.h>
#include "dlfs/backend.h" /* DLFS_MAX_CHANNELS */
#include "dlfs/status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define DLFS_DATASET_FORMAT "dlfs-dataset"
#define DLFS_DATASET_VERSION 1
#define DLFS_MAX_CLASSES 1000
/* values per image (C*H*W): the widest model input (DLFS_MAX_WIDTH, dlfs/model.h) */
#define DLFS_DATASET_MAX_IMAGE (1 << 20)
/* samples per split (sample indices are 32-bit) */
#define DLFS_DATASET_MAX_N 2147483647u
/* bytes of images per split */
#define DLFS_DATASET_MAX_BYTES ((uint64_t)64 << 30)
/* a compressed dataset may declare at most this many times the bytes it stores
 * (deflate cannot do better than ~1032:1) */
#define DLFS_DATASET_MAX_RATIO 1100
/* class names, and the source/license texts, in bytes */
#define DLFS_DATASET_MAX_NAME 1024
#define DLFS_DATASET_MAX_TEXT 65536
/* per-channel normalisation (0..1 scale): mean in [0, 1], std in [MIN_STD, 1];
 * a smaller std (a channel of (nearly) constant pixels) would divide by ~0 */
#define DLFS_DATASET_MIN_STD 1e-4

struct dlfs_split_file;

/* One split (train or test): held in host memory, or (a train split opened with
 * dlfs_dataset_open) its labels in memory and its images left in the file. */
struct dlfs_split {
    size_t n;          /* number of samples */
    uint8_t *images;   /* (n, c, h, w) values (uint16 with ids16); NULL when the images stay in the file */
    uint8_t *labels;   /* (n) */
    size_t chunk_rows; /* samples per HDF5 chunk of the images (contiguous data: 1 MiB worth) */
    struct dlfs_split_file *file; /* the open file when the images stay in it */
};

struct dlfs_dataset {
    char *path;
    int c, h, w;                      /* image shape */
    int ids16;                        /* the values are uint16 token ids in host order (2 bytes each, taken
                                       * as they are: vocabularies above 256), not uint8 */
    int num_classes;
    char **classes;                   /* num_classes names */
    char *source, *license;
    double mean[DLFS_MAX_CHANNELS];   /* per channel, 0..1 scale */
    double std[DLFS_MAX_CHANNELS];
    struct dlfs_split train, test;
};

/* Read a dlfs dataset file whole into memory, validating format name/version,
 * shapes and sizes (the limits above), the normalisation, and that every label
 * is < num_classes. */
enum dlfs_status dlfs_dataset_load(const char *path, struct dlfs_dataset *ds);
/* The same, checked the same way, but the train images stay in the file (every
 * label is read and checked): rows come from dlfs_split_read. The test split is
 * read whole. `stream_bytes`: the train images are read whole after all when they
 * take at most this many bytes (then the split is as dlfs_dataset_load's). */
enum dlfs_status dlfs_dataset_open(const char *path, struct dlfs_dataset *ds, uint64_t stream_bytes);
/* Rows [row0, row0 + rows) of a split's images into out (from memory or the
 * file). Thread-safe where the HDF5 library is (dlfs_dataset_threadsafe). */
enum dlfs_status dlfs_split_read(const struct dlfs_split *s, size_t row0, size_t rows, size_t row_bytes,
                                 uint8_t *out);
int dlfs_dataset_threadsafe(void);
/* The same from an HDF5 file image in memory (`len` bytes; `name` for the
 * messages and ds->path). For tests and fuzzing. */
enum dlfs_status dlfs_dataset_load_image(const void *buf, size_t len, const char *name, struct dlfs_dataset *ds);
void dlfs_dataset_free(struct dlfs_dataset *ds);

/* Write `ds` (all fields set; path ignored) to `path`, replacing it atomically
 * (built in memory, written to PATH.tmp, fsync'ed, renamed). Refuses a
 * normalisation dlfs_dataset_check_norm refuses. */
enum dlfs_status dlfs_dataset_save(const char *path, const struct dlfs_dataset *ds);

/* Per-channel mean and std (0..1 scale) of a split's images. */
void dlfs_dataset_stats(const struct dlfs_split *s, int c, int h, int w,
                        double *mean, double *std);
/* DLFS_OK when c channels' mean/std are usable for normalising (finite, mean in
 * [0, 1], std in [DLFS_DATASET_MIN_STD, 1]); else DLFS_ERR_NUMERIC with one
 * message naming `name` and the channel. */
enum dlfs_status dlfs_dataset_check_norm(const char *name, int c, const double *mean, const double *std);

/* A synthetic dataset (the benchmark's): a train split of n images of c x h x w
 * whose bytes and labels are a pure function of (seed, sample, position) —
 * image byte j of sample i = top byte of dlfs_hash64(dlfs_key(seed, 0x5917, i), j),
 * label = dlfs_hash64(that key, c*h*w) mod classes — mean 0.5 and std 0.29 per
 * channel, classes named "0".."K-1", an empty test split. Free with
 * dlfs_dataset_free. DLFS_ERR_USAGE for sizes out of the limits (classes 2..256:
 * labels are bytes), DLFS_ERR_NOMEM when the images do not fit. */
enum dlfs_status dlfs_dataset_synthetic(struct dlfs_dataset *ds, int c, int h, int w, int classes, size_t n,
                                        uint64_t seed);
/* The file `dlfs-data synth` writes: train split dlfs_dataset_synthetic(seed) of
 * n images, test split dlfs_dataset_synthetic(seed + 1) of n_test, as
 * dlfs_dataset_save would write them, but generated and written a chunk of rows
 * at a time straight into PATH.tmp (then renamed, as dlfs_dataset_save does):
 * memory stays a few MiB whatever n. */
enum dlfs_status dlfs_dataset_synth_save(const char *path, int c, int h, int w, int classes, size_t n, size_t n_test,
                                         uint64_t seed);

/* IDX files (the MNIST family format), gzip-compressed or plain (detected by
 * content, not by name). Validates the magic number (0x00 0x00 type ndim), the
 * element type (only 0x08 = uint8 is accepted), the sizes (every dimension >= 1,
 * an item — the dimensions after the first — at most DLFS_IDX_MAX_ITEM values,
 * the whole at most DLFS_IDX_MAX_BYTES) before allocating, and that the byte
 * count matches the dimensions exactly. gzip: every member must be complete
 * with a valid CRC and length; concatenated members are one stream; anything
 * else after the data is refused. */
#define DLFS_IDX_MAX_ITEM (1 << 20)
#define DLFS_IDX_MAX_BYTES (((uint64_t)4 << 30) - 1)
struct dlfs_idx {
    int ndim;
    uint32_t dims[4];
    uint8_t *data;  /* prod(dims) bytes */
};
enum dlfs_status dlfs_idx_read(const char *path, struct dlfs_idx *idx);
/* The same from `len` bytes in memory (`name` for the messages). */
enum dlfs_status dlfs_idx_read_mem(const void *buf, size_t len, const char *name, struct dlfs_idx *idx);
void dlfs_idx_free(struct dlfs_idx *idx);

#ifdef __cplusplus
}
#endif

#endif
