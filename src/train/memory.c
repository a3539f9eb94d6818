/* The memory estimate made before a run allocates (src/README.md, "Memory
 * estimate"): what the model, the batch and the backend will take, against what
 * the process may still take; refused with the estimate in the message. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include "core/memavail.h"
#include "dlfs/util.h"
#include "train/train-impl.h"

#define GIB_ (1024.0 * 1024.0 * 1024.0)

/* The gradient slabs the gradient sync allocates for r->passes passes. */
static int slabs_(const struct dlfs_run *r)
{
    int s = 1;
    if (r->o->deterministic)
        for (int p = r->passes; p > 1; p /= 2) s++;
    else if (r->passes > 1)
        s = 2;
    return s;
}

/* What the run's own choices cost: est[0] parameters, gradients, optimizer state
 * and running statistics in backend memory; est[1] the activations and batch
 * buffers of `rows` rows in backend memory; est[2] host memory (the host copies
 * of the state, the staging of a batch, `data` bytes of data still to be made). */
static void estimate_(const struct dlfs_run *r, int rows, double data, double est[3])
{
    const struct dlfs_options *o = r->o;
    const double n = (double)r->model.num_params, nbuf = (double)r->model.num_buffers;
    const struct dlfs_optim_config oc = dlfs_options_optim(o, r->global_batch);
    const int moments = dlfs_optim_desc(o->optim)->moments(&oc);
    const double hrows = rows > r->local_batch ? rows : r->local_batch, dim = r->model.input_dim;
    est[0] = 4.0 * (n * (1 + slabs_(r) + moments) + nbuf * (1 + r->passes));
    est[1] = dlfs_workspace_bytes(&r->model, rows) + (double)rows * dim;
    est[2] = 4.0 * n * (2 + moments) + hrows * (dim + 4) + data;
}

/* Refused when the estimate exceeds what is available: this process's address space
 * (RLIMIT_AS); the node's memory (MemAvailable, the cgroup's limit) shared by the
 * ranks on the node, each taking as much; on a device its free memory. `opt` names the
 * option that sized `rows`; `data` the bytes of a synthetic dataset still to make. */
enum dlfs_status dlfs_run_check_memory(const struct dlfs_run *r, int rows, const char *opt, int value, double data)
{
    double est[3];
    estimate_(r, rows, data, est);
    const double dev = est[0] + est[1], host = est[2] + (r->be->host_memory ? dev : 0.0);
    const int local = r->comm->local_size > 1 ? r->comm->local_size : 1;
    char which[64], where[160];
    double node = -1.0, need = -1.0, have = -1.0;
    const double own = dlfs_host_mem_available(&node, which, sizeof which);
    if (own >= 0 && host > own) { /* this process's address space */
        need = host, have = own;
        snprintf(where, sizeof where, "host memory (RLIMIT_AS (ulimit -v))");
    } else if (node >= 0 && host * local > node) { /* the ranks of this node share its memory */
        need = host, have = node / local;
        if (local > 1) snprintf(where, sizeof where, "host memory (%s, shared by this node's %d ranks)", which, local);
        else snprintf(where, sizeof where, "host memory (%s)", which);
    }
    if (!r->be->host_memory && r->be->mem_free) {
        const double free_dev = (double)r->be->mem_free();
        if (dev > free_dev) need = dev, have = free_dev, snprintf(where, sizeof where, "free %s memory", r->be->name);
    }
    if (have < 0 || need <= have) return DLFS_OK;
    return dlfs_error_set(DLFS_ERR_NOMEM, "%s %d: this run needs an estimated %.2f GiB of %s per rank (parameters, "
                          "gradients and optimizer state %.2f GiB; activations and batch buffers of %d rows %.2f GiB; "
                          "host copies, staging and data %.2f GiB) but %.2f GiB are available; use a smaller %s "
                          "(or --accum-steps N for a large --batch), or a smaller model",
                          opt, value, need / GIB_, where, est[0] / GIB_, rows, est[1] / GIB_, est[2] / GIB_, have / GIB_, opt);
}
