/* SIGTERM / SIGUSR1 (what SLURM sends before a time limit or preemption) only set
 * a flag; the training loop agrees on it across ranks at the next step boundary,
 * writes a checkpoint and exits. A second signal during that write just sets the
 * flag again: nothing is interrupted half-way. */
#define _POSIX_C_SOURCE 200809L
#include <signal.h>
#include <string.h>
#include "dlfs/util.h"

static volatile sig_atomic_t pending_;
static int deferred_; /* set by the main thread only */

static void on_signal_(int sig) { pending_ = sig; }

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

int dlfs_signal_pending(void) { return pending_; }

void dlfs_signal_defer(int on) { deferred_ = on; }

int dlfs_signal_deferred(void) { return deferred_; }

const char *dlfs_signal_name(int sig)
{
    return sig == SIGTERM ? "SIGTERM" : sig == SIGUSR1 ? "SIGUSR1" : sig == SIGINT ? "SIGINT" : "a signal";
}
