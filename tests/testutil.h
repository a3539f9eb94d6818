/* Tiny test harness: checks count failures and print the first few mismatches
 * (not thousands); main returns the failure count as the exit status. */
#ifndef DLFS_TESTUTIL_H
#define DLFS_TESTUTIL_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int t_failures_;
static int t_printed_;

#define CHECK(cond, ...)                                                          \
    do {                                                                          \
        if (!(cond)) {                                                            \
            t_failures_++;                                                        \
            if (t_printed_++ < 20) {                                              \
                fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);   \
                fprintf(stderr, __VA_ARGS__);                                     \
                fputc('\n', stderr);                                              \
            }                                                                     \
        }                                                                         \
    } while (0)

/* Compare n floats with a double reference: |got - want| <= atol + rtol*|want|.
 * Prints up to 5 mismatches; returns the number of mismatches. */
static inline int t_close_(const char *what, const float *got, const double *want, size_t n,
                           double atol, double rtol)
{
    int bad = 0;
    double worst = 0;
    for (size_t i = 0; i < n; i++) {
        double err = fabs((double)got[i] - want[i]);
        double lim = atol + rtol * fabs(want[i]);
        if (!(err <= lim)) {
            if (bad < 5) fprintf(stderr, "  %s[%zu]: got %.9g want %.9g (err %.3g > %.3g)\n", what, i,
                                 (double)got[i], want[i], err, lim);
            bad++;
        }
        if (err > worst) worst = err;
    }
    if (bad) {
        fprintf(stderr, "FAIL %s: %d of %zu values out of tolerance (worst abs err %.3g)\n", what, bad, n, worst);
        t_failures_++;
    }
    return bad;
}

/* Deterministic pseudo-random doubles in [-1, 1). */
static inline double t_rand_(unsigned long long *s)
{
    *s = *s * 6364136223846793005ULL + 1442695040888963407ULL;
    return (double)(*s >> 11) / 9007199254740992.0 * 2.0 - 1.0;
}

#define T_SENTINEL 12345.678f
/* Allocate n floats with 16 sentinel floats on each side (out-of-bounds writes). */
static inline float *t_guarded_(size_t n)
{
    float *p = malloc((n + 32) * sizeof *p);
    for (size_t i = 0; i < n + 32; i++) p[i] = T_SENTINEL;
    return p + 16;
}
static inline int t_guard_ok_(const float *p, size_t n)
{
    for (int i = 1; i <= 16; i++)
        if (p[-i] != T_SENTINEL || p[n + (size_t)i - 1] != T_SENTINEL) return 0;
    return 1;
}
static inline void t_guarded_free_(float *p) { free(p - 16); }

#ifdef DLFS_BACKEND_H
/* Backend memory helpers for op tests (the backend's buffers may live on a device). */
static inline float *t_upload_(const struct dlfs_backend *be, const float *h, size_t n)
{
    float *d = be->alloc(n * sizeof *d);
    be->to_device(d, h, n * sizeof *d);
    return d;
}
static inline void t_download_(const struct dlfs_backend *be, float *h, const float *d, size_t n)
{
    be->sync();
    be->to_host(h, d, n * sizeof *h);
}
/* A square-window convolution/pooling geometry over (c, h, w) images. */
static inline void t_conv_geom_(struct dlfs_conv_geom *g, int c, int h, int w, int oc, int k, int stride, int pad)
{
    memset(g, 0, sizeof *g);
    g->c = c; g->h = h; g->w = w; g->oc = oc; g->kh = g->kw = k; g->stride = stride; g->pad = pad;
    g->oh = (h + 2 * pad - k) / stride + 1;
    g->ow = (w + 2 * pad - k) / stride + 1;
}
/* The backend under test of a CPU-against-device op test: the CPU itself with
 * --self (the harness checks itself on any machine), else the CUDA backend.
 * Returns 0, 77 (no GPU: the test reports "skipped") or 1 (a GPU is visible but
 * the CUDA backend did not start); prints which it is. */
static inline int t_device_backend_(int argc, char **argv, const struct dlfs_backend **dev, int *self)
{
    *self = argc > 1 && strcmp(argv[1], "--self") == 0;
    if (*self) {
        *dev = dlfs_backend_cpu();
        printf("device under test: the CPU backend (--self: the harness against itself)\n");
        return 0;
    }
    char why[256] = "";
    if (dlfs_cuda_device_count(why, sizeof why) == 0) {
        printf("skipped: no GPU (%s)\n", why);
        return 77;
    }
    if (dlfs_backend_select(DLFS_DEVICE_CUDA, 0, dev, NULL, 0) != DLFS_OK) {
        fprintf(stderr, "FAIL: a GPU is visible but the CUDA backend did not start: %s\n", dlfs_error_msg());
        return 1;
    }
    printf("device under test: the CUDA backend\n");
    return 0;
}
#endif

/* n floats uniform in [-scale, scale) from the stream *s (malloc'ed). */
static inline float *t_rand_floats_(unsigned long long *s, size_t n, double scale)
{
    float *p = malloc(n * sizeof *p);
    for (size_t i = 0; i < n; i++) p[i] = (float)(scale * t_rand_(s));
    return p;
}

#define T_DONE()                                                                  \
    do {                                                                          \
        if (t_failures_) fprintf(stderr, "%d check(s) failed\n", t_failures_);    \
        else printf("all checks passed\n");                                       \
        return t_failures_ ? 1 : 0;                                               \
    } while (0)

#endif
