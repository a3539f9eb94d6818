/* Persistent worker threads for the CPU ops that split a batch by images.
 *
 * OpenBLAS threads one GEMM at a time; cnn's convolutions are many small GEMMs
 * with single-threaded unfolding and folding between them, so two BLAS threads
 * gave 1.4x over one (the second core waited in sched_yield a quarter of the
 * time). conv.c instead gives each thread its own images and one-thread BLAS.
 *
 * The workers sleep on a condition variable between jobs (no spinning that would
 * compete with OpenBLAS's own threads on a small machine), block every signal
 * (the trainer's SIGINT/SIGTERM handling stays with the main thread), and live
 * for the process, created on first use. One caller at a time: the trainer runs
 * the ops from one thread per rank. */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <cblas.h>
#include "backend/cpu/cpu-impl.h"

static pthread_mutex_t mu_ = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t go_ = PTHREAD_COND_INITIALIZER, done_ = PTHREAD_COND_INITIALIZER;
static int started_;          /* workers created: ids 1 .. started_ */
static unsigned long job_;    /* bumped for each job */
static int job_threads_;      /* threads in the current job, the caller (id 0) included */
static int pending_;          /* workers of the current job not finished yet */
static void (*job_fn_)(void *arg, int id, int threads);
static void *job_arg_;
static _Thread_local int sharing_ = 1; /* threads of the job this thread runs a part of, else 1 */

int cpu_workers_sharing(void) { return sharing_; }

static void part_(void (*fn)(void *, int, int), void *arg, int id, int threads)
{
    sharing_ = threads;
    fn(arg, id, threads);
    sharing_ = 1;
}

static void *worker_(void *p)
{
    const int id = (int)(intptr_t)p;
    /* Created (under mu_) by the call that posts the job it is first needed for,
     * and it takes mu_ only after that post: job_ is already that job's number. */
    unsigned long seen = 0;
    pthread_mutex_lock(&mu_);
    for (;;) {
        while (job_ == seen) pthread_cond_wait(&go_, &mu_);
        seen = job_;
        if (id >= job_threads_) continue;
        void (*fn)(void *, int, int) = job_fn_;
        void *arg = job_arg_;
        const int threads = job_threads_;
        pthread_mutex_unlock(&mu_);
        part_(fn, arg, id, threads);
        pthread_mutex_lock(&mu_);
        if (--pending_ == 0) pthread_cond_signal(&done_);
    }
    return NULL;
}

/* Workers 1 .. threads-1 exist afterwards, or as many as could be made; returns
 * the threads available (caller included). Called with mu_ held. */
static int grow_(int threads)
{
    if (started_ >= threads - 1) return threads;
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old); /* inherited by the new threads */
    while (started_ < threads - 1) {
        pthread_t t;
        if (pthread_create(&t, NULL, worker_, (void *)(intptr_t)(started_ + 1)) != 0) break;
        pthread_detach(t);
        started_++;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return started_ + 1 < threads ? started_ + 1 : threads;
}

int cpu_workers_run(int threads, void (*fn)(void *arg, int id, int threads), void *arg)
{
    if (threads > CPU_MAX_THREADS) threads = CPU_MAX_THREADS;
    /* from inside a part (a split op calling another): the whole job on this thread,
     * as one part, since posting a second job while this one runs would corrupt it */
    if (threads <= 1 || sharing_ > 1) {
        fn(arg, 0, 1);
        return 1;
    }
    pthread_mutex_lock(&mu_);
    threads = grow_(threads);
    if (threads <= 1) { /* no worker could be started */
        pthread_mutex_unlock(&mu_);
        fn(arg, 0, 1);
        return 1;
    }
    job_fn_ = fn;
    job_arg_ = arg;
    job_threads_ = threads;
    pending_ = threads - 1;
    job_++;
    pthread_cond_broadcast(&go_);
    pthread_mutex_unlock(&mu_);
    part_(fn, arg, 0, threads);
    pthread_mutex_lock(&mu_);
    while (pending_) pthread_cond_wait(&done_, &mu_);
    pthread_mutex_unlock(&mu_);
    return threads;
}

/* cpu_parallel_for: [0, n) in contiguous ranges, one per thread */
struct range_job_ {
    void (*fn)(void *arg, size_t lo, size_t hi);
    void *arg;
    size_t n;
};

static void range_part_(void *p, int id, int threads)
{
    const struct range_job_ *j = p;
    j->fn(j->arg, j->n * (size_t)id / (size_t)threads, j->n * (size_t)(id + 1) / (size_t)threads);
}

void cpu_parallel_for(size_t n, size_t grain, void (*fn)(void *arg, size_t lo, size_t hi), void *arg)
{
    size_t t = (size_t)openblas_get_num_threads();
    if (grain < 1) grain = 1;
    if (t > n / grain) t = n / grain;
    if (t > CPU_MAX_THREADS) t = CPU_MAX_THREADS;
    if (t <= 1) {
        fn(arg, 0, n);
        return;
    }
    struct range_job_ j = {fn, arg, n};
    cpu_workers_run((int)t, range_part_, &j);
}
