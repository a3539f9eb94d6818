/* Backend registry: the one place that knows which backends were built
 * (DLFS_HAVE_CUDA comes from CMake). */
#include <stdio.h>
#include <string.h>
#include "dlfs/backend.h"

#ifdef DLFS_HAVE_CUDA
int dlfs_cuda_probe_(char *why, size_t why_len); /* src/backend/cuda/probe.cu */
#endif

int dlfs_cuda_device_count(char *why, size_t why_len)
{
#ifdef DLFS_HAVE_CUDA
    return dlfs_cuda_probe_(why, why_len);
#else
    if (why) snprintf(why, why_len, "this dlfs was built without the CUDA backend (configure with -DDLFS_CUDA=ON)");
    return 0;
#endif
}

enum dlfs_status dlfs_backend_select(enum dlfs_device dev, int local_rank,
                                     const struct dlfs_backend **out)
{
    (void)local_rank;
    *out = dlfs_backend_cpu();
    if (dev == DLFS_DEVICE_CPU) return DLFS_OK;
    char why[256] = "";
    int n = dlfs_cuda_device_count(why, sizeof why);
    if (n == 0) {
        if (dev == DLFS_DEVICE_AUTO) return DLFS_OK;
        return dlfs_error_set(DLFS_ERR_DEVICE, "--device cuda: no usable GPU: %s; use --device cpu "
                              "(or --device auto to fall back to the CPU)", why);
    }
    if (dev == DLFS_DEVICE_AUTO) return DLFS_OK; /* no CUDA op table yet: CPU */
    return dlfs_error_set(DLFS_ERR_DEVICE, "--device cuda: %d GPU(s) visible, but this version of dlfs "
                          "has no CUDA op table yet (it comes with the CUDA backend); use --device cpu", n);
}

const char *dlfs_act_name(enum dlfs_act a)
{
    static const char *names[DLFS_ACT_COUNT] = {
        [DLFS_ACT_NONE] = "none", [DLFS_ACT_RELU] = "relu", [DLFS_ACT_TANH] = "tanh",
        [DLFS_ACT_SIGMOID] = "sigmoid", [DLFS_ACT_GELU] = "gelu",
    };
    return (unsigned)a < DLFS_ACT_COUNT ? names[a] : "?";
}

enum dlfs_act dlfs_act_parse(const char *s)
{
    for (int a = 0; a < DLFS_ACT_COUNT; a++)
        if (strcmp(s, dlfs_act_name((enum dlfs_act)a)) == 0) return (enum dlfs_act)a;
    return DLFS_ACT_COUNT;
}
