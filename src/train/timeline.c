/* --trace FILE: the timeline of a run as Chrome trace-event JSON (Perfetto,
 * chrome://tracing). Every rank records spans (core/trace.h) during a window of
 * --trace-steps steps after a short warm-up, plus its evaluations and checkpoint
 * writes; at the end rank 0 gathers every rank's spans, shifted to its own clock by
 * offsets measured at start-up, and writes one file: a process per rank, a track
 * per thread of work (host, device, each gradient bucket). */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/trace.h"
#include "dlfs/util.h"
#include "train/train-impl.h"

#define CAPACITY_ 200000 /* spans per rank: far more than a window of steps needs */
#define WARM_ 2          /* steps before the window: lazily loaded kernels, first allocations */

/* Rank 0's clock minus this rank's, from the exchange with the smallest round trip:
 * rank r sends its time t1, rank 0 answers with its time t0, r receives at t2, and
 * t0 happened around (t1 + t2) / 2 on r's clock. */
static double offset_(const struct dlfs_comm *c)
{
    double best = 0.0, rtt = 1e30;
    for (int r = 1; r < c->size; r++)
        for (int k = 0; k < 8; k++) {
            if (c->rank != 0 && c->rank != r) continue;
            double t[2] = {dlfs_now(), 0.0};
            MPI_Request q[2];
            if (c->rank == r) {
                MPI_Isend(t, 1, MPI_DOUBLE, 0, 73, c->world, &q[0]);
                MPI_Irecv(t + 1, 1, MPI_DOUBLE, 0, 74, c->world, &q[1]);
                dlfs_comm_wait(c, 2, q, "measuring clock offsets (--trace)");
                const double t2 = dlfs_now();
                if (t2 - t[0] < rtt) rtt = t2 - t[0], best = t[1] - 0.5 * (t[0] + t2);
            } else {
                MPI_Irecv(t + 1, 1, MPI_DOUBLE, r, 73, c->world, &q[0]);
                dlfs_comm_wait(c, 1, q, "measuring clock offsets (--trace)");
                t[0] = dlfs_now();
                MPI_Isend(t, 1, MPI_DOUBLE, r, 74, c->world, &q[1]);
                dlfs_comm_wait(c, 1, q + 1, "measuring clock offsets (--trace)");
            }
        }
    return best;
}

void dlfs_tracer_init(struct dlfs_run *r)
{
    struct dlfs_tracer *t = &r->tracer;
    memset(t, 0, sizeof *t);
    t->first = -1;
    if (!r->o->trace) return;
    t->on = 1;
    dlfs_trace_init(CAPACITY_);
    t->offset = offset_(r->comm);
    t->origin = dlfs_now() + t->offset;
    dlfs_comm_bcast(r->comm, &t->origin, (int)sizeof t->origin, 0, "the timeline's origin (--trace)");
}

/* Device spans of a traced step: between consecutive marks, on the device's clock,
 * placed from the host time at which mark 0 was issued. */
static void device_spans_(struct dlfs_run *r)
{
    struct dlfs_tracer *t = &r->tracer;
    double prev = 0.0;
    for (int k = 1; k < t->nmarks; k++) {
        const double e = r->be->timer_read(k);
        dlfs_trace_span(DLFS_TRACK_DEVICE, "device", t->mark_name[k], (int)r->step, t->h0 + prev, t->h0 + e);
        prev = e;
    }
    t->nmarks = 0;
}

void dlfs_tracer_mark(struct dlfs_run *r, const char *what)
{
    struct dlfs_tracer *t = &r->tracer;
    if (!dlfs_trace_on || !r->be->timer_mark || t->nmarks >= DLFS_TIMER_MARKS) return;
    if (t->nmarks == 0) t->h0 = dlfs_now();
    t->mark_name[t->nmarks] = what;
    r->be->timer_mark(t->nmarks++);
}

/* The window: --trace-steps steps, after WARM_ when the run is long enough. */
void dlfs_tracer_step(struct dlfs_run *r, int begin)
{
    struct dlfs_tracer *t = &r->tracer;
    if (!t->on) return;
    if (!begin) {
        dlfs_trace_end(t->span);
        if (t->nmarks) device_spans_(r);
        dlfs_trace_on = 0;
        return;
    }
    if (t->first < 0) {
        t->first = r->step;
        const long left = r->total_steps - r->step, n = r->o->trace_steps;
        t->w0 = r->step + (left > n + WARM_ ? WARM_ : 0);
        if (r->mode == DLFS_RUN_BENCH && r->o->bench_warmup < left) t->w0 = r->step + r->o->bench_warmup;
        t->w1 = t->w0 + n;
    }
    dlfs_trace_on = r->step >= t->w0 && r->step < t->w1;
    t->span = dlfs_trace_begin("step", "step", (int)r->step);
    dlfs_tracer_mark(r, "step begins");
}

/* A span of evaluation or checkpointing between two steps of the window (one
 * after it would stretch the timeline far past the traced steps: a viewer opens
 * zoomed out on a long gap). */
int dlfs_tracer_begin(struct dlfs_run *r, const char *name)
{
    const struct dlfs_tracer *t = &r->tracer;
    if (!t->on || t->first < 0 || r->step <= t->w0 || r->step >= t->w1) return -1;
    const int was = dlfs_trace_on;
    dlfs_trace_on = 1;
    const int h = dlfs_trace_begin("run", name, (int)r->step);
    dlfs_trace_on = was;
    return h;
}

/* One span as a trace event, times on rank 0's clock in microseconds. */
static int event_(char *out, size_t len, const struct dlfs_span *s, int pid, double shift)
{
    const char *pre = strcmp(s->cat, "forward") == 0 ? "fwd " : strcmp(s->cat, "backward") == 0 ? "bwd " : "";
    const double t1 = s->t1 < s->t0 ? s->t0 : s->t1;
    return snprintf(out, len, ",\n{\"name\": \"%s%s\", \"cat\": \"%s\", \"ph\": \"X\", \"pid\": %d, \"tid\": %d, "
                    "\"ts\": %.3f, \"dur\": %.3f, \"args\": {\"i\": %d}}", pre, s->name, s->cat, pid, s->track,
                    (s->t0 + shift) * 1e6, (t1 - s->t0) * 1e6, s->arg);
}

/* This rank's events and track names as JSON text (malloc'd). */
static char *events_(const struct dlfs_run *r, size_t *len)
{
    size_t n, dropped, cap = 4096, used = 0;
    const struct dlfs_span *sp = dlfs_trace_spans(&n, &dropped);
    char *out = dlfs_malloc(cap);
    const double shift = r->tracer.offset - r->tracer.origin;
    int tracks[DLFS_TRACK_BUCKET + 512] = {0};
    for (size_t i = 0; i <= n; i++) {
        char one[512];
        int k;
        if (i < n) {
            k = event_(one, sizeof one, &sp[i], r->comm->rank, shift);
            if (sp[i].track < (int)(sizeof tracks / sizeof tracks[0])) tracks[sp[i].track] = 1;
        } else {
            k = snprintf(one, sizeof one, ",\n{\"name\": \"process_name\", \"ph\": \"M\", \"pid\": %d, \"tid\": 0, "
                         "\"args\": {\"name\": \"rank %d (%s)\"}}", r->comm->rank, r->comm->rank, r->comm->host);
        }
        while (used + (size_t)k + 1 > cap) out = realloc(out, cap *= 2);
        if (!out) dlfs_fatal(71, "out of host memory writing the timeline");
        memcpy(out + used, one, (size_t)k + 1);
        used += (size_t)k;
    }
    for (int t = 0; t < (int)(sizeof tracks / sizeof tracks[0]); t++) {
        if (!tracks[t]) continue;
        char one[256], name[32];
        if (t >= DLFS_TRACK_BUCKET) snprintf(name, sizeof name, "bucket %d", t - DLFS_TRACK_BUCKET);
        else snprintf(name, sizeof name, "%s", t == DLFS_TRACK_HOST ? "host" : "device (CUDA events)");
        const int k = snprintf(one, sizeof one, ",\n{\"name\": \"thread_name\", \"ph\": \"M\", \"pid\": %d, \"tid\": %d, "
                               "\"args\": {\"name\": \"%s\"}}", r->comm->rank, t, name);
        while (used + (size_t)k + 1 > cap) out = realloc(out, cap *= 2);
        if (!out) dlfs_fatal(71, "out of host memory writing the timeline");
        memcpy(out + used, one, (size_t)k + 1);
        used += (size_t)k;
    }
    *len = used;
    return out;
}

/* The options as a JSON string (quotes and backslashes escaped). */
static void json_str_(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"' || *s == '\\') fputc('\\', f);
        if ((unsigned char)*s >= 0x20) fputc(*s, f);
    }
    fputc('"', f);
}

static enum dlfs_status file_(const struct dlfs_run *r, const char *all, size_t dropped)
{
    FILE *f = fopen(r->o->trace, "w");
    if (!f) return dlfs_error_set(DLFS_ERR_IO, "--trace %s: cannot write: %s", r->o->trace, strerror(errno));
    char opts[4096];
    dlfs_options_describe(r->o, opts, sizeof opts);
    fprintf(f, "{\"displayTimeUnit\": \"ms\",\n\"otherData\": {\"dlfs_version\": \"%s\", \"ranks\": %d, "
            "\"backend\": \"%s\", \"comm\": \"%s\", \"window\": [%ld, %ld], \"dropped_spans\": %zu, \"options\": ",
            DLFS_VERSION, r->comm->size, r->be->name, dlfs_gsync_name(&r->gs), r->tracer.w0, r->tracer.w1, dropped);
    json_str_(f, opts);
    fprintf(f, "},\n\"traceEvents\": [\n{\"name\": \"dlfs\", \"ph\": \"M\", \"pid\": 0, \"tid\": 0, \"args\": {}}%s\n]}\n",
            all);
    const int bad = fflush(f) != 0 || ferror(f);
    const int err = errno;
    if (fclose(f) != 0 || bad)
        return dlfs_error_set(DLFS_ERR_IO, "--trace %s: write failed: %s; the timeline is incomplete", r->o->trace,
                              strerror(bad ? err : errno));
    if (!r->o->quiet) {
        printf("trace written to %s: steps %ld to %ld of %d rank(s); open it in https://ui.perfetto.dev\n", r->o->trace,
               r->tracer.w0, r->tracer.w1 - 1, r->comm->size);
        fflush(stdout);
    }
    return DLFS_OK;
}

enum dlfs_status dlfs_tracer_write(struct dlfs_run *r)
{
    if (!r->tracer.on) return DLFS_OK;
    const struct dlfs_comm *c = r->comm;
    size_t len, n, dropped;
    char *mine = events_(r, &len);
    dlfs_trace_spans(&n, &dropped);
    int *lens = dlfs_calloc((size_t)c->size, sizeof *lens), *displs = dlfs_calloc((size_t)c->size, sizeof *displs);
    const int my = (int)len;
    char *all = NULL;
    if (c->kind == DLFS_COMM_SELF) {
        all = mine, mine = NULL;
    } else {
        MPI_Request q;
        MPI_Igather(&my, 1, MPI_INT, lens, 1, MPI_INT, 0, c->world, &q);
        dlfs_comm_wait(c, 1, &q, "gathering the timeline (--trace)");
        size_t total = 0;
        for (int i = 0; i < c->size; i++) displs[i] = (int)total, total += (size_t)lens[i];
        if (c->rank == 0) all = dlfs_calloc(total + 1, 1);
        MPI_Igatherv(mine, my, MPI_CHAR, all, lens, displs, MPI_CHAR, 0, c->world, &q);
        dlfs_comm_wait(c, 1, &q, "gathering the timeline (--trace)");
    }
    enum dlfs_status st = c->rank == 0 ? file_(r, all, dropped) : DLFS_OK;
    free(mine);
    free(all);
    free(lens);
    free(displs);
    dlfs_trace_init(0);
    return dlfs_comm_agree(c, st);
}
