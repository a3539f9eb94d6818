/* The NCCL wrappers of the CUDA backend (src/backend/cuda/nccl.cu), in plain C
 * types: the comm layer (src/comm/nccl.c) calls them without seeing NCCL or CUDA. */
#ifndef DLFS_NCCL_API_H
#define DLFS_NCCL_API_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Bytes of the unique id that rank 0 creates and MPI broadcasts (NCCL_UNIQUE_ID_BYTES). */
int dlfs_nccl_id_bytes(void);
/* Rank 0: fill `id` (dlfs_nccl_id_bytes() bytes). 0, or -1 with a reason in `why`. */
int dlfs_nccl_get_id(void *id, char *why, size_t why_len);
/* Every rank, collectively, after dlfs_cuda_init_: 0, or -1 with a reason
 * (including NCCL's "duplicate GPU" as the clear "one rank per GPU" message). */
int dlfs_nccl_init(const void *id, int nranks, int rank, char *why, size_t why_len);
/* In-place sum of n floats of device memory, ordered after every op issued so far
 * on the compute stream; returns at once (the reduction runs on the comm stream). */
void dlfs_nccl_allreduce_f32(float *buf, size_t n);
/* Make later compute ops wait for every reduction issued so far; the host waits
 * too (bounded: `timeout_s`), so it can measure comm time and catch failures.
 * 0 when done, -1 with a reason when a peer failed or the deadline passed (the
 * communicator is then aborted; the caller ends the job). */
int dlfs_nccl_wait(double timeout_s, char *why, size_t why_len);
/* Normal end, every rank (ncclCommDestroy may synchronise with the peers). */
void dlfs_nccl_free(void);
/* Error paths where peers may have failed: local teardown (ncclCommAbort). Both
 * are no-ops when no communicator is up. */
void dlfs_nccl_abort(void);

#ifdef __cplusplus
}
#endif

#endif
