/* SIGTERM / SIGUSR1 (what SLURM sends before a time limit or preemption) and
 * SIGINT (Ctrl-C) only set a flag; the training loop agrees on it across ranks at
 * the next step boundary, writes a checkpoint and exits. A second SIGTERM or
 * SIGUSR1 during that write just sets the flag again: nothing is interrupted
 * half-way. A second Ctrl-C is the user saying "now": the process ends at once
 * with SIGINT's default action (exit 130); the checkpoint being written is left
 * as a .tmp file (writes are atomic), so nothing already saved is lost. */
#define _POSIX_C_SOURCE 200809L
#include <signal.h>
#include <string.h>
#include <unistd.h>
#include "dlfs/util.h"

static volatile sig_atomic_t pending_;
static volatile sig_atomic_t announce_; /* print the Ctrl-C notice (rank 0) */
static int deferred_;                /* set by the main thread only */

static void on_signal_(int sig)
{
    if (sig == SIGINT && pending_) { /* the second Ctrl-C (or one after SIGTERM): stop now */
        signal(SIGINT, SIG_DFL);
        raise(SIGINT);
        return;
    }
    pending_ = sig;
    if (sig == SIGINT && announce_) {
        static const char note[] = "\ndlfs-train: Ctrl-C: stopping at the next step boundary (with a checkpoint if "
                                   "--checkpoint-dir is set); Ctrl-C again to stop at once\n";
        const ssize_t w = write(STDERR_FILENO, note, sizeof note - 1);
        (void)w;
    }
}

void dlfs_signals_install(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal_;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGUSR1, &sa, NULL);
    signal(SIGXFSZ, SIG_IGN);
}

void dlfs_signals_catch_int(int announce)
{
    announce_ = announce;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal_;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    sigaction(SIGINT, &sa, NULL);
}

int dlfs_signal_pending(void) { return pending_; }

void dlfs_signal_defer(int on) { deferred_ = on; }

int dlfs_signal_deferred(void) { return deferred_; }

const char *dlfs_signal_name(int sig)
{
    return sig == SIGTERM ? "SIGTERM" : sig == SIGUSR1 ? "SIGUSR1" : sig == SIGINT ? "SIGINT" : "a signal";
}
