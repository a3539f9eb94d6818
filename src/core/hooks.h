/* Test-only hooks: environment variables that tests set to inject faults or to
 * watch the trainer from outside. Users never set them. Every one is parsed here,
 * in one place, from "A[:B[:C]]" integer fields (the trace prefix is a path).
 *
 *   DLFS_TRACE_SAMPLES=PREFIX        every rank writes the sample ids of its steps
 *                                    to PREFIX.<rank>, one per line
 *   DLFS_FAULT_PERTURB=RANK:STEP     that rank nudges one parameter after STEP
 *                                    (the --check-sync test)
 *   DLFS_FAULT_COMM_STALL=RANK:STEP:S   that rank sleeps S s at the start of STEP
 *   DLFS_FAULT_EVAL_STALL=RANK:S        ... before the evaluation sums
 *   DLFS_FAULT_NCCL_INIT_STALL=RANK:S   that rank's NCCL set-up looks unfinished for S s
 *   DLFS_FAULT_CKPT_ABORT=N          abort() half-way through the N-th checkpoint write
 *   DLFS_FAULT_CKPT_PAUSE=N:S        sleep S s half-way through the N-th write
 *   DLFS_STEP_LAG=0|1                force the one-step loss lag off or on
 *   DLFS_DATA_RESIDENT=1             with --data-cache: read the train images whole all
 *                                    the same (the in-memory twin of a streamed run)
 *   DLFS_REPORT_RSS=PREFIX           every rank writes its peak resident memory (VmHWM,
 *                                    KiB) to PREFIX.<rank> as the run ends, before its
 *                                    take-down (which may allocate on its own)
 */
#ifndef DLFS_CORE_HOOKS_H
#define DLFS_CORE_HOOKS_H

enum dlfs_hook {
    DLFS_HOOK_TRACE_SAMPLES = 0,
    DLFS_HOOK_PERTURB,
    DLFS_HOOK_COMM_STALL,
    DLFS_HOOK_EVAL_STALL,
    DLFS_HOOK_NCCL_INIT_STALL,
    DLFS_HOOK_CKPT_ABORT,
    DLFS_HOOK_CKPT_PAUSE,
    DLFS_HOOK_STEP_LAG,
    DLFS_HOOK_DATA_RESIDENT,
    DLFS_HOOK_REPORT_RSS,
    DLFS_HOOK_COUNT
};

/* The raw value of a hook's variable, NULL when unset or empty. */
const char *dlfs_hook_value(enum dlfs_hook h);
/* 1 when the hook is set to RANK:STEP (PERTURB) or RANK:STEP:S (COMM_STALL) with
 * this rank and step. */
int dlfs_hook_at(enum dlfs_hook h, int rank, long step);
/* The stall hooks: sleep the hook's seconds, with one line on stderr, when it
 * names this rank (and, for COMM_STALL, this step). */
void dlfs_hook_stall(enum dlfs_hook h, int rank, long step);
/* Seconds of a RANK:S hook for this rank (0 when it names another or is unset). */
double dlfs_hook_seconds(enum dlfs_hook h, int rank);
/* Inside a checkpoint write (CKPT_ABORT, CKPT_PAUSE): counts the writes of this
 * process and pauses or aborts in the one named. */
void dlfs_hook_ckpt_write(void);
/* DLFS_REPORT_RSS: this rank's VmHWM into PREFIX.<rank> (nothing when unset). */
void dlfs_hook_report_rss(int rank);
/* DLFS_STEP_LAG: -1 unset, else 0 or 1. */
int dlfs_hook_step_lag(void);

#endif
