/* dlfs — status codes, error reporting and assertions.
 *
 * Two tiers (src/README.md, "Errors"):
 *   - recoverable failures (bad file, bad option, shape mismatch, NaN loss, ...)
 *     return an `enum dlfs_status` that travels up to the program; the place that
 *     detects the failure records ONE human message with dlfs_error_set(), which the
 *     program prints once (rank 0, or the rank that saw it) before exiting non-zero;
 *   - programming errors hit DLFS_ASSERT, which prints rank, host, file:line and
 *     aborts the whole job (MPI_Abort when MPI is up).
 */
#ifndef DLFS_STATUS_H
#define DLFS_STATUS_H

#include <stddef.h>

/* Functions that never return, in the spelling of the including language (C11
 * `_Noreturn`, C++11 `[[noreturn]]`): the public headers are usable from C++ and
 * CUDA (.cu) code as they are. */
#ifdef __cplusplus
#define DLFS_NORETURN [[noreturn]]
#else
#define DLFS_NORETURN _Noreturn
#endif

#ifdef __cplusplus
extern "C" {
#endif

enum dlfs_status {
    DLFS_OK = 0,
    DLFS_ERR_USAGE,    /* bad option or option value */
    DLFS_ERR_IO,       /* file missing, unreadable, unwritable, disk full */
    DLFS_ERR_FORMAT,   /* file exists but is not what we expect */
    DLFS_ERR_SHAPE,    /* model/data mismatch, bad model spec */
    DLFS_ERR_NUMERIC,  /* NaN/Inf loss */
    DLFS_ERR_COMM,     /* communication failure, ranks disagree */
    DLFS_ERR_DEVICE,   /* requested device not built / not present */
    DLFS_ERR_NOMEM,
    DLFS_ERR_INTERRUPTED, /* stopped by a signal (checkpoint written) */
    DLFS_STATUS_COUNT
};

/* Record the message for the failure being returned (printf-style). Returns `st`
 * so call sites can write `return dlfs_error_set(DLFS_ERR_IO, "...")`.
 * The first message set since the last dlfs_error_clear() wins: the innermost
 * failure is the most precise one. */
enum dlfs_status dlfs_error_set(enum dlfs_status st, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* The recorded message ("" if none). Valid until the next clear. */
const char *dlfs_error_msg(void);
void dlfs_error_clear(void);
const char *dlfs_status_name(enum dlfs_status st);

/* Return the status of `expr` from the enclosing function when it is not DLFS_OK. */
#define DLFS_TRY(expr)                                   \
    do {                                                 \
        enum dlfs_status dlfs_try_st_ = (expr);          \
        if (dlfs_try_st_ != DLFS_OK) return dlfs_try_st_; \
    } while (0)

/* Rank and host that assertion messages print; set once MPI is initialised. */
void dlfs_assert_set_rank(int rank);
DLFS_NORETURN void dlfs_assert_fail(const char *expr, const char *file, int line, const char *msg);

#define DLFS_ASSERT(cond)                                                   \
    do {                                                                    \
        if (!(cond)) dlfs_assert_fail(#cond, __FILE__, __LINE__, NULL);     \
    } while (0)
#define DLFS_ASSERT_MSG(cond, msg)                                          \
    do {                                                                    \
        if (!(cond)) dlfs_assert_fail(#cond, __FILE__, __LINE__, (msg));    \
    } while (0)

/* A failure that cannot be agreed across ranks because a peer is stuck or dead
 * (a communication timeout, NCCL's asynchronous error): print ONE line
 * "<program>: error: rank R (host): <message>" and end the whole job with
 * MPI_Abort(code) (exit(code) without MPI). Never returns. */
DLFS_NORETURN void dlfs_fatal(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* malloc/calloc that never return NULL: running out of host memory ends the job
 * with a message naming the size (there is nothing useful a caller could do). */
void *dlfs_malloc(size_t n);
void *dlfs_calloc(size_t count, size_t size);

#ifdef __cplusplus
}
#endif

#endif
