/* Row loops split across the rank's threads: fn(arg, first, end) over contiguous
 * parts of [0, n), one a thread (the BLAS thread count, workers.c), on the caller
 * alone when the work is small. For ops whose every output element is computed by
 * one thread in the same order as on one thread: the split changes no bit. */
#include <cblas.h>
#include "backend/cpu/cpu-impl.h"

#define SPLIT_MIN_WORK_ ((size_t)1 << 15) /* below: one thread (waking a worker costs more) */

struct split_job_ {
    size_t n;
    void (*fn)(void *arg, size_t first, size_t end);
    void *arg;
};

static void part_(void *arg, int id, int threads)
{
    const struct split_job_ *j = arg;
    j->fn(j->arg, j->n * (size_t)id / (size_t)threads, j->n * (size_t)(id + 1) / (size_t)threads);
}

void cpu_split_run(size_t n, size_t work, void (*fn)(void *arg, size_t first, size_t end), void *arg)
{
    int t = work >= SPLIT_MIN_WORK_ ? openblas_get_num_threads() : 1;
    if ((size_t)t > n) t = (int)n;
    if (t <= 1) {
        fn(arg, 0, n);
        return;
    }
    struct split_job_ j = {n, fn, arg};
    cpu_workers_run(t, part_, &j);
}
