/* The comm layer's seam to NCCL: the only C file that knows whether the CUDA
 * backend and NCCL were built (DLFS_HAVE_CUDA, DLFS_HAVE_NCCL from CMake). It
 * calls the extern "C" wrappers of src/backend/cuda/nccl.cu through the plain C
 * declarations below and never sees a CUDA or NCCL type. */
#include <stdio.h>
#include "dlfs/comm.h"

#ifdef DLFS_HAVE_CUDA
#include "backend/cuda/nccl-api.h" /* contracts there */
#endif

int dlfs_comm_nccl_built(void)
{
#if defined(DLFS_HAVE_CUDA) && defined(DLFS_HAVE_NCCL)
    return 1;
#else
    return 0;
#endif
}

enum dlfs_status dlfs_comm_nccl_init(const struct dlfs_comm *c)
{
#ifdef DLFS_HAVE_CUDA
    char why[512] = "";
    unsigned char id[512];
    const int bytes = dlfs_nccl_id_bytes();
    DLFS_ASSERT(bytes > 0 && (size_t)bytes <= sizeof id);
    /* rank 0 makes the id; a failure there must stop everyone, not leave them
     * waiting in ncclCommInitRank for an id that never comes */
    enum dlfs_status st = DLFS_OK;
    if (c->rank == 0 && dlfs_nccl_get_id(id, why, sizeof why) != 0) st = dlfs_error_set(DLFS_ERR_COMM, "%s", why);
    DLFS_TRY(dlfs_comm_agree(c, st));
    MPI_Bcast(id, bytes, MPI_BYTE, 0, c->world);
    if (dlfs_nccl_init(id, c->size, c->rank, why, sizeof why) != 0) st = dlfs_error_set(DLFS_ERR_COMM, "%s", why);
    st = dlfs_comm_agree(c, st);
    /* ranks whose init succeeded while another's failed: tear down locally
     * (ncclCommDestroy could wait for the peers that failed) */
    if (st != DLFS_OK) dlfs_nccl_abort();
    return st;
#else
    (void)c;
    return dlfs_error_set(DLFS_ERR_COMM, "--comm nccl: this dlfs was built without the CUDA backend and NCCL "
                          "(configure with -DDLFS_CUDA=ON and libnccl-dev installed), or use --comm mpi");
#endif
}

void dlfs_comm_nccl_free(void)
{
#ifdef DLFS_HAVE_CUDA
    dlfs_nccl_free();
#endif
}

void dlfs_comm_nccl_allreduce(float *buf, size_t n)
{
#ifdef DLFS_HAVE_CUDA
    dlfs_nccl_allreduce_f32(buf, n);
#else
    (void)buf;
    (void)n;
    DLFS_ASSERT_MSG(0, "NCCL all-reduce in a build without CUDA");
#endif
}

void dlfs_comm_nccl_wait(const struct dlfs_comm *c)
{
#ifdef DLFS_HAVE_CUDA
    char why[512] = "";
    /* no --comm-timeout (0): a deadline far beyond any job */
    if (dlfs_nccl_wait(c->timeout_s > 0 ? c->timeout_s : 1e9, why, sizeof why) != 0)
        dlfs_fatal(1, "the gradient all-reduce (NCCL): %s; ending the job", why);
#else
    (void)c;
    DLFS_ASSERT_MSG(0, "NCCL wait in a build without CUDA");
#endif
}
