/* Timeline spans (--trace): a bounded buffer of begin/end times per track, filled
 * by whichever layer knows when a thing starts and ends (the step and the model's
 * layers, the gradient buckets, evaluation, checkpoints). Recording is off unless
 * dlfs_trace_on is set, and then costs a clock read and a store per span; src/train
 * decides when it is on (--trace-steps) and writes the merged file. Main thread only. */
#ifndef DLFS_CORE_TRACE_H
#define DLFS_CORE_TRACE_H

#include <stddef.h>

/* Tracks (Chrome trace "threads" of a rank's process). */
#define DLFS_TRACK_HOST 0
#define DLFS_TRACK_DEVICE 1
#define DLFS_TRACK_BUCKET 10   /* + bucket index */

struct dlfs_span {
    double t0, t1;             /* seconds, dlfs_now() clock of this rank */
    const char *cat, *name;    /* static strings (or living as long as the run) */
    int track;
    int arg;                   /* layer or bucket index, step, ... (-1: none) */
};

extern int dlfs_trace_on;

/* A buffer of `capacity` spans (0: drop it). Spans past it are counted, not kept. */
void dlfs_trace_init(size_t capacity);
/* Open a span on the host track now; returns its handle for dlfs_trace_end (-1 when
 * recording is off or the buffer is full). Spans opened and closed in LIFO order nest. */
int dlfs_trace_begin(const char *cat, const char *name, int arg);
void dlfs_trace_end(int handle);
/* A whole span on any track, with its times. */
void dlfs_trace_span(int track, const char *cat, const char *name, int arg, double t0, double t1);
const struct dlfs_span *dlfs_trace_spans(size_t *count, size_t *dropped);

#endif
