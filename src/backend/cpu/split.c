/* Row loops split across the rank's threads: fn(arg, first, end) over contiguous
 * parts of [0, n), one a thread (cpu_parallel_for, workers.c), on the caller alone
 * when the work is small. For ops whose every output element is computed by one
 * thread in the same order as on one thread: the split changes no bit. */
#include "backend/cpu/cpu-impl.h"

#define SPLIT_MIN_WORK_ ((size_t)1 << 15) /* below: one thread (waking a worker costs more) */

void cpu_split_run(size_t n, size_t work, void (*fn)(void *arg, size_t first, size_t end), void *arg)
{
    if (work < SPLIT_MIN_WORK_) fn(arg, 0, n);
    else cpu_parallel_for(n, 1, fn, arg);
}
