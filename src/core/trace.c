/* Timeline spans (core/trace.h). */
#include <stdlib.h>
#include "core/trace.h"
#include "dlfs/status.h"
#include "dlfs/util.h"

int dlfs_trace_on;
static struct dlfs_span *buf_;
static size_t cap_, n_, dropped_;

void dlfs_trace_init(size_t capacity)
{
    free(buf_);
    buf_ = capacity ? dlfs_malloc(capacity * sizeof *buf_) : NULL;
    cap_ = capacity;
    n_ = dropped_ = 0;
    dlfs_trace_on = 0;
}

int dlfs_trace_begin(const char *cat, const char *name, int arg)
{
    if (!dlfs_trace_on) return -1;
    if (n_ == cap_) {
        dropped_++;
        return -1;
    }
    buf_[n_] = (struct dlfs_span){dlfs_now(), -1.0, cat, name, DLFS_TRACK_HOST, arg};
    return (int)n_++;
}

void dlfs_trace_end(int handle)
{
    if (handle >= 0) buf_[handle].t1 = dlfs_now();
}

void dlfs_trace_span(int track, const char *cat, const char *name, int arg, double t0, double t1)
{
    if (!buf_) return;
    if (n_ == cap_) {
        dropped_++;
        return;
    }
    buf_[n_++] = (struct dlfs_span){t0, t1, cat, name, track, arg};
}

const struct dlfs_span *dlfs_trace_spans(size_t *count, size_t *dropped)
{
    *count = n_;
    *dropped = dropped_;
    return buf_;
}
