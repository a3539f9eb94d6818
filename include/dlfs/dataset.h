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

/* One split (train or test) held in host memory. */
struct dlfs_split {
    size_t n;          /* number of samples */
    uint8_t *images;   /* (n, c, h, w) */
    uint8_t *labels;   /* (n) */
};

struct dlfs_dataset {
    char *path;
    int c, h, w;                      /* image shape */
    int num_classes;
    char **classes;                   /* num_classes names */
    char *source, *license;
    double mean[DLFS_MAX_CHANNELS];   /* per channel, 0..1 scale */
    double std[DLFS_MAX_CHANNELS];
    struct dlfs_split train, test;
};

/* Read a dlfs dataset file whole into memory, validating format name/version,
 * shapes, and that every label is < num_classes. */
enum dlfs_status dlfs_dataset_load(const char *path, struct dlfs_dataset *ds);
void dlfs_dataset_free(struct dlfs_dataset *ds);

/* Write `ds` (all fields set; path ignored) to `path`, replacing it atomically
 * (written to PATH.tmp then renamed). */
enum dlfs_status dlfs_dataset_save(const char *path, const struct dlfs_dataset *ds);

/* Per-channel mean and std (0..1 scale) of a split's images. */
void dlfs_dataset_stats(const struct dlfs_split *s, int c, int h, int w,
                        double *mean, double *std);

/* IDX files (the MNIST family format), gzip-compressed or plain (detected by
 * content, not by name). Validates the magic number (0x00 0x00 type ndim), the
 * element type (only 0x08 = uint8 is accepted), and that the byte count matches
 * the dimensions exactly. */
struct dlfs_idx {
    int ndim;
    uint32_t dims[4];
    uint8_t *data;  /* prod(dims) bytes */
};
enum dlfs_status dlfs_idx_read(const char *path, struct dlfs_idx *idx);
void dlfs_idx_free(struct dlfs_idx *idx);

#ifdef __cplusplus
}
#endif

#endif
