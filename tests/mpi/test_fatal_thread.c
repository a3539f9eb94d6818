/* dlfs_fatal on a thread other than the one that initialised MPI (the prefetch
 * thread, conv's worker threads) must still end every rank of the job, with its
 * one message. Run by fatal-thread.sh under mpirun -np 2: rank 0's helper thread
 * fails while rank 1 waits in a barrier that only the end of the job can end. */
#define _POSIX_C_SOURCE 200809L
#include <mpi.h>
#include <pthread.h>
#include "dlfs/status.h"

static void *helper_(void *arg)
{
    (void)arg;
    dlfs_fatal(3, "a helper thread failed (test)");
}

int main(int argc, char **argv)
{
    int provided = 0, rank = 0;
    MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided); /* as dlfs-train */
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    dlfs_assert_set_rank(rank);
    if (rank == 0) {
        pthread_t t;
        if (pthread_create(&t, NULL, helper_, NULL) == 0) pthread_join(t, NULL);
    }
    MPI_Barrier(MPI_COMM_WORLD);
    MPI_Finalize();
    return 0; /* reached only if the failure did not end the job: the driver fails then */
}
