/* Backend registry: the one place that knows which backends were built
 * (DLFS_HAVE_CUDA comes from CMake), and the only place in the library, outside
 * the CUDA backend itself, where that is an #ifdef. */
#define _POSIX_C_SOURCE 200809L
#include <ctype.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "dlfs/backend.h"

#ifdef DLFS_HAVE_CUDA
/* extern "C" entry points of src/backend/cuda (contracts in cuda-impl.cuh) */
int dlfs_cuda_probe_(char *why, size_t why_len);
int dlfs_cuda_init_(int device, char *why, size_t why_len);
const struct dlfs_backend *dlfs_backend_cuda_(void);
int dlfs_cuda_device_uuid_(unsigned char uuid[16]);
const struct dlfs_nccl_api *dlfs_cuda_nccl_api_(void);
#endif

const struct dlfs_nccl_api *dlfs_backend_nccl(const struct dlfs_backend *be)
{
#ifdef DLFS_HAVE_CUDA
    /* by name: dlfs_backend_cuda_() asserts that the device is initialised,
     * and a CUDA build running on the CPU backend never initialises it */
    if (be && strcmp(be->name, "cuda") == 0) return dlfs_cuda_nccl_api_();
#endif
    (void)be;
    return NULL;
}

int dlfs_gpu_uuid(unsigned char uuid[16])
{
#ifdef DLFS_HAVE_CUDA
    return dlfs_cuda_device_uuid_(uuid);
#else
    (void)uuid;
    return -1;
#endif
}

int dlfs_cuda_device_count(char *why, size_t why_len)
{
#ifdef DLFS_HAVE_CUDA
    return dlfs_cuda_probe_(why, why_len);
#else
    if (why) snprintf(why, why_len, "this dlfs was built without the CUDA backend (configure with -DDLFS_CUDA=ON)");
    return 0;
#endif
}

/* Whether this process was meant to see GPUs (for --device auto): 1 with the
 * evidence in `what`, or 0. CUDA_VISIBLE_DEVICES hiding every GPU (-1, empty,
 * NoDevFiles) wins over everything else: the user asked for none (the test
 * suites do so to stay on the CPU on a GPU machine). Otherwise any of: that
 * variable naming devices, SLURM's GPU variables, the driver's device files
 * (/dev/nvidia0...) or its list of GPUs (/proc/driver/nvidia/gpus, what
 * nvidia-smi reads). */
static int gpus_visible_(char *what, size_t len)
{
    const char *cvd = getenv("CUDA_VISIBLE_DEVICES");
    if (cvd) {
        if (!*cvd || strcmp(cvd, "-1") == 0 || strncmp(cvd, "-1,", 3) == 0 || strcmp(cvd, "NoDevFiles") == 0)
            return 0;
        snprintf(what, len, "CUDA_VISIBLE_DEVICES=%.64s", cvd);
        return 1;
    }
    static const char *const slurm[] = {"SLURM_STEP_GPUS", "SLURM_JOB_GPUS", "SLURM_GPUS_ON_NODE"};
    for (size_t i = 0; i < sizeof slurm / sizeof slurm[0]; i++) {
        const char *v = getenv(slurm[i]);
        if (v && *v && (i < 2 || strcmp(v, "0") != 0)) { /* GPU indices; a count: 0 is none */
            snprintf(what, len, "SLURM gave this job GPUs: %s=%.64s", slurm[i], v);
            return 1;
        }
    }
    static const char *const dirs[][2] = {{"/dev", "nvidia"}, {"/proc/driver/nvidia/gpus", ""}};
    for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++) {
        DIR *d = opendir(dirs[i][0]);
        const size_t k = strlen(dirs[i][1]);
        for (struct dirent *e; d && (e = readdir(d)) != NULL;)
            if (strncmp(e->d_name, dirs[i][1], k) == 0 && isdigit((unsigned char)e->d_name[k])) {
                snprintf(what, len, "the NVIDIA driver shows a GPU: %s/%.32s", dirs[i][0], e->d_name);
                closedir(d);
                return 1;
            }
        if (d) closedir(d);
    }
    return 0;
}

/* No usable GPU: --device cuda fails; --device auto falls back to the CPU with
 * the reason in `note`, unless GPUs are visible (then it refuses: a job meant
 * for GPUs must not train for hours on the CPU). */
static enum dlfs_status no_gpu_(enum dlfs_device dev, const char *why, char *note, size_t note_len)
{
    if (dev != DLFS_DEVICE_AUTO)
        return dlfs_error_set(DLFS_ERR_DEVICE, "--device cuda: no usable GPU: %s; use --device cpu "
                              "(or --device auto to fall back to the CPU)", why);
    char what[200];
    if (gpus_visible_(what, sizeof what))
        return dlfs_error_set(DLFS_ERR_DEVICE, "--device auto: GPUs are visible (%s) but none is usable: %s; "
                              "fix the GPU set-up (nvidia-smi, the driver, the build), or give --device cpu to "
                              "train on the CPU", what, why);
    if (note) snprintf(note, note_len, "no GPU visible (%s), so the CPU: %s", getenv("CUDA_VISIBLE_DEVICES") ?
                       "CUDA_VISIBLE_DEVICES hides them" : "no NVIDIA device, no CUDA_VISIBLE_DEVICES or SLURM GPUs",
                       why);
    return DLFS_OK;
}

enum dlfs_status dlfs_backend_select(enum dlfs_device dev, int local_rank, const struct dlfs_backend **out,
                                     char *note, size_t note_len)
{
    *out = dlfs_backend_cpu();
    if (note && note_len) note[0] = '\0';
    if (dev == DLFS_DEVICE_CPU) return DLFS_OK;
    char why[256] = "";
    int n = dlfs_cuda_device_count(why, sizeof why);
    if (n == 0) return no_gpu_(dev, why, note, note_len);
#ifdef DLFS_HAVE_CUDA
    /* One GPU per rank: the node-local rank picks among the VISIBLE devices (the
     * CUDA runtime has applied CUDA_VISIBLE_DEVICES), modulo their number, so that
     * per-task binding (SLURM --gpus-per-task=1: every rank sees one GPU, its own)
     * works as well as every rank seeing all of them. Whether two ranks ended up on
     * the same physical GPU is decided afterwards by comparing UUIDs across the node
     * (dlfs_run_init): sharing is refused unless the user asked for the MPI path
     * (--comm mpi), because NCCL rejects two ranks on one device and two ranks
     * halve each other's throughput. AUTO refuses too: falling back to the CPU on
     * some ranks only would mix backends in one job. */
    const char *devname = dev == DLFS_DEVICE_AUTO ? "auto" : "cuda";
    const int gpu = local_rank % n;
    if (dlfs_cuda_init_(gpu, why, sizeof why) != 0)
        return dlfs_error_set(DLFS_ERR_DEVICE, "--device %s: GPU %d (node-local rank %d) is visible but unusable: "
                              "%s; check nvidia-smi, or use --device cpu", devname, gpu, local_rank, why);
    *out = dlfs_backend_cuda_();
    return DLFS_OK;
#else
    (void)local_rank;
    return DLFS_OK; /* not reached: without the CUDA backend the count is 0 */
#endif
}

const char *dlfs_act_name(enum dlfs_act a)
{
    static const char *names[DLFS_ACT_COUNT] = {
        [DLFS_ACT_NONE] = "none", [DLFS_ACT_RELU] = "relu", [DLFS_ACT_TANH] = "tanh",
        [DLFS_ACT_SIGMOID] = "sigmoid", [DLFS_ACT_GELU] = "gelu",
    };
    return (unsigned)a < DLFS_ACT_COUNT ? names[a] : "?";
}

const char *dlfs_precision_name(enum dlfs_precision p)
{
    static const char *names[DLFS_PRECISION_COUNT] = {
        [DLFS_PRECISION_FP32] = "fp32", [DLFS_PRECISION_TF32] = "tf32", [DLFS_PRECISION_BF16] = "bf16",
    };
    return (unsigned)p < DLFS_PRECISION_COUNT ? names[p] : "?";
}

enum dlfs_act dlfs_act_parse(const char *s)
{
    for (int a = 0; a < DLFS_ACT_COUNT; a++)
        if (strcmp(s, dlfs_act_name((enum dlfs_act)a)) == 0) return (enum dlfs_act)a;
    return DLFS_ACT_COUNT;
}
