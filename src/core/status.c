/* Error messages, status names and the assertion path. */
#define _GNU_SOURCE /* program_invocation_short_name */
#include "dlfs/status.h"

#include <mpi.h>
#include <stdarg.h>
#include <stdio.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Messages name files, and paths can be long: a message that does not fit keeps
 * its beginning and its end (which says what to do) and loses its middle. */
#define MSG_CAP 4096
static char msg_[MSG_CAP];
static int msg_set_;
static int assert_rank_ = -1;

/* Format into out[cap]; when the text is longer, cut its middle out: head + " [...] " + tail. */
static void format_middle_(char *out, size_t cap, const char *fmt, va_list ap)
{
    va_list ap2;
    va_copy(ap2, ap);
    const int n = vsnprintf(out, cap, fmt, ap);
    if (n >= 0 && (size_t)n >= cap) {
        char *full = malloc((size_t)n + 1);
        if (full) {
            static const char cut[] = " [...] ";
            const size_t keep = cap - sizeof cut, head = keep / 2, tail = keep - head;
            vsnprintf(full, (size_t)n + 1, fmt, ap2);
            memcpy(out, full, head);
            memcpy(out + head, cut, sizeof cut - 1);
            memcpy(out + head + sizeof cut - 1, full + (size_t)n - tail, tail);
            out[cap - 1] = '\0';
            free(full);
        }
    }
    va_end(ap2);
}

enum dlfs_status dlfs_error_set(enum dlfs_status st, const char *fmt, ...)
{
    if (!msg_set_) {
        va_list ap;
        va_start(ap, fmt);
        format_middle_(msg_, sizeof msg_, fmt, ap);
        va_end(ap);
        msg_set_ = 1;
    }
    return st;
}

const char *dlfs_error_msg(void) { return msg_set_ ? msg_ : ""; }

void dlfs_error_clear(void)
{
    msg_[0] = '\0';
    msg_set_ = 0;
}

const char *dlfs_status_name(enum dlfs_status st)
{
    static const char *names[DLFS_STATUS_COUNT] = {
        [DLFS_OK] = "ok",
        [DLFS_ERR_USAGE] = "usage error",
        [DLFS_ERR_IO] = "I/O error",
        [DLFS_ERR_FORMAT] = "format error",
        [DLFS_ERR_SHAPE] = "shape error",
        [DLFS_ERR_NUMERIC] = "numerical error",
        [DLFS_ERR_COMM] = "communication error",
        [DLFS_ERR_DEVICE] = "device error",
        [DLFS_ERR_NOMEM] = "out of memory",
        [DLFS_ERR_INTERRUPTED] = "interrupted",
    };
    if ((int)st < 0 || st >= DLFS_STATUS_COUNT) return "unknown status";
    return names[st];
}

void dlfs_assert_set_rank(int rank) { assert_rank_ = rank; }

/* Ends every rank of the job. MPI_Abort is for the thread that initialised MPI
 * (the trainer asks for MPI_THREAD_FUNNELED); a failure on another thread (the
 * prefetch thread, conv's workers) ends this process at once instead: mpirun ends
 * the job when a rank exits before MPI_Finalize. Returns only where MPI is not
 * running, for the caller's own way out. */
static void end_job_(int code)
{
    int init = 0, fin = 0;
    MPI_Initialized(&init);
    MPI_Finalized(&fin);
    if (!init || fin) return;
    int main_thread = 0;
    MPI_Is_thread_main(&main_thread);
    if (main_thread) MPI_Abort(MPI_COMM_WORLD, code);
    _exit(code);
}

_Noreturn void dlfs_assert_fail(const char *expr, const char *file, int line, const char *msg)
{
    char host[256] = "?";
    gethostname(host, sizeof host - 1);
    fprintf(stderr, "dlfs: internal error on rank %d (%s) at %s:%d: assertion '%s' failed%s%s\n",
            assert_rank_, host, file, line, expr, msg ? ": " : "", msg ? msg : "");
    fflush(stderr);
    end_job_(70);
    abort();
}

_Noreturn void dlfs_fatal(int code, const char *fmt, ...)
{
    char host[256] = "?", msg[MSG_CAP];
    gethostname(host, sizeof host - 1);
    va_list ap;
    va_start(ap, fmt);
    format_middle_(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stderr, "%s: error: rank %d (%s): %s\n", program_invocation_short_name, assert_rank_, host, msg);
    fflush(stderr);
    end_job_(code);
    exit(code);
}

static _Noreturn void oom_(size_t n)
{
    fprintf(stderr, "dlfs: out of host memory allocating %zu bytes on rank %d\n", n, assert_rank_);
    fflush(stderr);
    end_job_(71);
    exit(71);
}

void *dlfs_malloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p) oom_(n);
    return p;
}

void *dlfs_calloc(size_t count, size_t size)
{
    void *p = calloc(count ? count : 1, size ? size : 1);
    if (!p) oom_(count * size);
    return p;
}
