/* Backend registry: the one place that knows which backends were built
 * (DLFS_HAVE_CUDA comes from CMake), and the only place in the library, outside
 * the CUDA backend itself, where that is an #ifdef. */
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

enum dlfs_status dlfs_backend_select(enum dlfs_device dev, int local_rank, const struct dlfs_backend **out)
{
    *out = dlfs_backend_cpu();
    if (dev == DLFS_DEVICE_CPU) return DLFS_OK;
    char why[256] = "";
    int n = dlfs_cuda_device_count(why, sizeof why);
    if (n == 0) {
        if (dev == DLFS_DEVICE_AUTO) return DLFS_OK;
        return dlfs_error_set(DLFS_ERR_DEVICE, "--device cuda: no usable GPU: %s; use --device cpu "
                              "(or --device auto to fall back to the CPU)", why);
    }
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

enum dlfs_precision dlfs_precision_parse(const char *s)
{
    for (int p = 0; p < DLFS_PRECISION_COUNT; p++)
        if (strcmp(s, dlfs_precision_name((enum dlfs_precision)p)) == 0) return (enum dlfs_precision)p;
    return DLFS_PRECISION_COUNT;
}

enum dlfs_act dlfs_act_parse(const char *s)
{
    for (int a = 0; a < DLFS_ACT_COUNT; a++)
        if (strcmp(s, dlfs_act_name((enum dlfs_act)a)) == 0) return (enum dlfs_act)a;
    return DLFS_ACT_COUNT;
}
