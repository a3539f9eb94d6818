/* Test-only hooks (contracts and variables in core/hooks.h). */
#define _POSIX_C_SOURCE 200809L
#include "core/hooks.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *const names_[DLFS_HOOK_COUNT] = {
    [DLFS_HOOK_TRACE_SAMPLES] = "DLFS_TRACE_SAMPLES",
    [DLFS_HOOK_PERTURB] = "DLFS_FAULT_PERTURB",
    [DLFS_HOOK_COMM_STALL] = "DLFS_FAULT_COMM_STALL",
    [DLFS_HOOK_EVAL_STALL] = "DLFS_FAULT_EVAL_STALL",
    [DLFS_HOOK_NCCL_INIT_STALL] = "DLFS_FAULT_NCCL_INIT_STALL",
    [DLFS_HOOK_CKPT_ABORT] = "DLFS_FAULT_CKPT_ABORT",
    [DLFS_HOOK_CKPT_PAUSE] = "DLFS_FAULT_CKPT_PAUSE",
    [DLFS_HOOK_STEP_LAG] = "DLFS_STEP_LAG",
    [DLFS_HOOK_DATA_RESIDENT] = "DLFS_DATA_RESIDENT",
    [DLFS_HOOK_REPORT_RSS] = "DLFS_REPORT_RSS",
};

const char *dlfs_hook_value(enum dlfs_hook h)
{
    const char *v = getenv(names_[h]);
    return v && *v ? v : NULL;
}

/* The hook's colon-separated integers into f[0..max); the count read (0: unset). */
static int fields_(enum dlfs_hook h, long *f, int max)
{
    const char *v = dlfs_hook_value(h);
    int n = 0;
    while (v && n < max) {
        char *end;
        f[n++] = strtol(v, &end, 10);
        if (end == v) return 0; /* malformed: as if unset */
        v = *end == ':' ? end + 1 : NULL;
    }
    return n;
}

int dlfs_hook_at(enum dlfs_hook h, int rank, long step)
{
    long f[3];
    return fields_(h, f, 3) >= 2 && f[0] == rank && f[1] == step;
}

static void sleep_(enum dlfs_hook h, int rank, long secs)
{
    fprintf(stderr, "dlfs: %s: rank %d stalls %ld s (test hook)\n", names_[h], rank, secs);
    fflush(stderr);
    sleep((unsigned)secs);
}

void dlfs_hook_stall(enum dlfs_hook h, int rank, long step)
{
    long f[3];
    const int n = fields_(h, f, 3);
    if (h == DLFS_HOOK_COMM_STALL) {
        if (n == 3 && f[0] == rank && f[1] == step) sleep_(h, rank, f[2]);
    } else if (n == 2 && f[0] == rank) {
        sleep_(h, rank, f[1]);
    }
}

double dlfs_hook_seconds(enum dlfs_hook h, int rank)
{
    long f[2];
    return fields_(h, f, 2) == 2 && f[0] == rank ? (double)f[1] : 0.0;
}

void dlfs_hook_ckpt_write(void)
{
    static long writes;
    writes++;
    long f[2];
    if (fields_(DLFS_HOOK_CKPT_PAUSE, f, 2) == 2 && f[0] == writes) {
        fprintf(stderr, "dlfs: DLFS_FAULT_CKPT_PAUSE: pausing %ld s inside the checkpoint write (test hook)\n",
                f[1]);
        sleep((unsigned)f[1]);
    }
    if (fields_(DLFS_HOOK_CKPT_ABORT, f, 1) == 1 && f[0] == writes) {
        fprintf(stderr, "dlfs: DLFS_FAULT_CKPT_ABORT: aborting inside the checkpoint write (test hook)\n");
        abort();
    }
}

int dlfs_hook_step_lag(void)
{
    const char *v = dlfs_hook_value(DLFS_HOOK_STEP_LAG);
    return v ? strcmp(v, "0") != 0 : -1;
}

void dlfs_hook_report_rss(int rank)
{
    const char *prefix = dlfs_hook_value(DLFS_HOOK_REPORT_RSS);
    if (!prefix) return;
    char path[4096], line[256];
    long kib = -1;
    FILE *in = fopen("/proc/self/status", "r");
    while (in && fgets(line, sizeof line, in))
        if (sscanf(line, "VmHWM: %ld", &kib) == 1) break;
    if (in) fclose(in);
    snprintf(path, sizeof path, "%s.%d", prefix, rank);
    FILE *out = fopen(path, "w");
    if (out) {
        fprintf(out, "%ld\n", kib);
        fclose(out);
    }
}
