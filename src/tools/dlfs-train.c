/* dlfs-train: the trainer's main. Started by mpirun/srun (one rank is fine).
 * Exit codes: 0 done, 1 runtime error, 2 usage error, 3 stopped by a signal
 * (SIGTERM, SIGUSR1, SIGINT) with a checkpoint written, 4 stopped by a signal
 * without --checkpoint-dir (every rank exits the same); 130 after a second Ctrl-C. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <mpi.h>
#include "dlfs/comm.h"
#include "dlfs/train.h"
#include "dlfs/util.h"

/* `dlfs-train --help` and `--version` alone answer before MPI starts: on a login node,
 * in a package build (help2man makes the man page from them) and wherever MPI cannot
 * start. Under a launcher only rank 0 (by the launcher's variables) prints. */
static int info_only_(int argc, char **argv)
{
    if (argc != 2) return 0;
    const bool help = !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h");
    if (!help && strcmp(argv[1], "--version") != 0) return 0;
    static const char *const rank_vars[] = {"OMPI_COMM_WORLD_RANK", "PMIX_RANK", "PMI_RANK", "SLURM_PROCID"};
    for (size_t i = 0; i < sizeof rank_vars / sizeof rank_vars[0]; i++) {
        const char *v = getenv(rank_vars[i]);
        if (v && *v) {
            if (atoi(v) != 0) return 1;
            break;
        }
    }
    if (help) dlfs_options_usage(stdout);
    else dlfs_version_print("dlfs-train");
    return 1;
}

int main(int argc, char **argv)
{
    if (info_only_(argc, argv)) return fflush(stdout) == 0 && !ferror(stdout) ? 0 : 1;
    /* FUNNELED, not MPI_Init's SINGLE: the process has other threads (the prefetch
     * thread, CUDA's and NCCL's), though only this one calls MPI */
    int provided = 0;
    MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided);
    dlfs_signals_install();
    struct dlfs_comm comm;
    dlfs_comm_init(&comm);

    struct dlfs_options o;
    bool exit_now = false;
    enum dlfs_status st = dlfs_options_parse(&o, argc, argv, comm.rank, &exit_now);
    st = dlfs_comm_agree(&comm, st);
    if (st == DLFS_OK) comm.timeout_s = o.comm_timeout;
    if (st == DLFS_OK && !exit_now) {
        /* every rank must run the same job: compare a digest of the options */
        int bad = 0;
        if (!dlfs_comm_same_u64(&comm, dlfs_options_digest(&o), &bad))
            st = dlfs_error_set(DLFS_ERR_USAGE, "rank %d was given different options than rank 0; every "
                                "rank must get the same command line", bad);
        else
            st = o.bench ? dlfs_bench_run(&o, &comm) : o.eval_only ? dlfs_eval_run(&o, &comm)
                                                                   : dlfs_train_run(&o, &comm);
        /* a failed standard output (full disk, closed pipe) must not pass for success */
        if (st == DLFS_OK && (fflush(stdout) != 0 || ferror(stdout)))
            st = dlfs_error_set(DLFS_ERR_IO, "cannot write the standard output: %s", strerror(errno));
        st = dlfs_comm_agree(&comm, st);
    }
    if (st != DLFS_OK && comm.rank == 0) {
        fprintf(stderr, "dlfs-train: %s%s\n", st == DLFS_ERR_INTERRUPTED ? "" : "error: ", dlfs_error_msg());
        fflush(stderr);
    }
    int code = 0;
    if (st == DLFS_ERR_INTERRUPTED)
        code = o.checkpoint_dir ? DLFS_EXIT_CHECKPOINTED : DLFS_EXIT_INTERRUPTED_NO_CKPT;
    else if (st != DLFS_OK)
        code = st == DLFS_ERR_USAGE ? 2 : 1;
    dlfs_comm_free(&comm);
    MPI_Finalize();
    return code;
}
