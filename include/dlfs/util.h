/* dlfs — small core utilities: counter-based random numbers, SHA-256, timers. */
#ifndef DLFS_UTIL_H
#define DLFS_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "dlfs/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Counter-based RNG: every value is a pure function of (key, counter), so a draw
 * never depends on which rank or thread makes it, or in which order. */
uint64_t dlfs_hash64(uint64_t key, uint64_t counter);
/* Uniform in [0, 1) with 24 random bits (exact in float32). */
float dlfs_uniform01(uint64_t key, uint64_t counter);
/* Combine values into a key (e.g. seed, purpose, epoch). */
uint64_t dlfs_key(uint64_t a, uint64_t b, uint64_t c);

/* SHA-256 */
struct dlfs_sha256 {
    uint32_t h[8];
    uint64_t len;
    uint8_t buf[64];
    size_t fill;
};
void dlfs_sha256_init(struct dlfs_sha256 *s);
void dlfs_sha256_update(struct dlfs_sha256 *s, const void *data, size_t n);
void dlfs_sha256_final(struct dlfs_sha256 *s, uint8_t out[32]);
/* 64 hex characters + NUL */
void dlfs_sha256_hex(const uint8_t digest[32], char hex[65]);

/* Add n float32 values as little-endian bytes, whatever the host's byte order. */
void dlfs_sha256_update_f32le(struct dlfs_sha256 *s, const float *v, size_t n);
/* SHA-256 of a float32 slab as little-endian bytes (hex, 65 chars): the
 * params_sha256 that dlfs-train prints and checkpoints record. */
void dlfs_params_sha256(const float *params, size_t n, char hex[65]);

/* Install the SIGTERM/SIGUSR1 handlers (they only set a flag; the training loop
 * stops at the next step boundary, a wait for other ranks that has lasted a few
 * seconds ends the job) and ignore SIGXFSZ (a file-size limit then fails the
 * write instead of killing the process). */
void dlfs_signals_install(void);
/* From here on SIGINT (Ctrl-C) is handled as SIGTERM is; a second one ends the
 * process at once. `announce`: say so on the standard error when it comes. */
void dlfs_signals_catch_int(int announce);
/* The signal received (0 if none), and its name ("SIGTERM", ...). */
int dlfs_signal_pending(void);
const char *dlfs_signal_name(int sig);
/* While on (around a checkpoint write the ranks have started together), a
 * pending signal does not end a wait for the other ranks early
 * (dlfs_comm_wait): the write finishes (bounded by --comm-timeout only) and
 * the signal is handled at the next step boundary, alike on every rank. */
void dlfs_signal_defer(int on);
int dlfs_signal_deferred(void);

/* Monotonic wall-clock seconds. */
double dlfs_now(void);

/* True when a and b name the same file: the same device and inode when both
 * exist (following symbolic links: hard links, links and other spellings
 * included), else the same resolved path (dlfs_path_resolve: two outputs not
 * yet written, an output that the run will create). */
bool dlfs_path_same(const char *a, const char *b);
/* The absolute path `path` names (malloc'ed; NULL for NULL, "" or no memory):
 * realpath() when it exists, else (dangling links followed) the real path of
 * its directory and its last name; as given when the directory is missing too. */
char *dlfs_path_resolve(const char *path);

/* `path` for a message: itself when shorter than len, else its beginning and
 * end around "[...]" written into buf[len] (the end names the file). */
const char *dlfs_path_short(const char *path, char *buf, size_t len);

/* Check a path given by the user before creating anything under it: not empty,
 * shorter than PATH_MAX less `extra` (room for names appended inside it), no
 * component longer than NAME_MAX. DLFS_ERR_USAGE with a message "WHAT PATH: …". */
enum dlfs_status dlfs_path_check(const char *what, const char *path, size_t extra);

/* --version: "PROGRAM VERSION", the commit the build was configured from
 * ("+changes" when it had uncommitted edits, "unknown" outside git) and the
 * backends compiled in, one per line on stdout. */
void dlfs_version_print(const char *program);

/* qsort-based median of n doubles (reorders v). */
double dlfs_median(double *v, size_t n);

#ifdef __cplusplus
}
#endif

#endif
