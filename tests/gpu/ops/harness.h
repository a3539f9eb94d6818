/* The harness of test_cuda_ops.c: the two backends, guarded buffers, comparison with
 * tolerances, and the case table's row type. Included once, by test_cuda_ops.c only,
 * like ops/dense.h, ops/cnn.h and ops/model.h: the op tests are one translation unit,
 * so testutil.h's failure counters (static) count them all. */
#ifndef DLFS_TEST_OPS_HARNESS_H
#define DLFS_TEST_OPS_HARNESS_H
#include <math.h>
#include <stdint.h>
#include <string.h>
#include "dlfs/backend.h"
#include "dlfs/model.h"
#include "testutil.h"

static const struct dlfs_backend *ref_, *dev_; /* CPU, and the backend under test */
static unsigned long long seed_ = 2024;
static int self_;                              /* --self: dev_ is the CPU too */

/* ---- guarded buffers: G sentinel floats either side, in the backend's memory ---- */
#define G 16
static float *gnew_(const struct dlfs_backend *be, size_t n)
{
    float *base = be->alloc((n + 2 * G) * sizeof(float)), *h = malloc((n + 2 * G) * sizeof *h);
    if (!base) { fprintf(stderr, "FAIL: %s alloc of %zu floats\n", be->name, n); exit(1); }
    for (size_t i = 0; i < n + 2 * G; i++) h[i] = T_SENTINEL;
    be->to_device(base, h, (n + 2 * G) * sizeof(float)); /* not be->fill: that is under test */
    free(h);
    return base + G;
}
static float *gup_(const struct dlfs_backend *be, const float *host, size_t n)
{
    float *p = gnew_(be, n);
    be->to_device(p, host, n * sizeof *p);
    return p;
}
static float *gdown_(const struct dlfs_backend *be, const float *p, size_t n) /* malloc'd host copy */
{
    float *h = malloc((n ? n : 1) * sizeof *h);
    be->sync();
    be->to_host(h, p, n * sizeof *h);
    return h;
}
static void gfree_(const struct dlfs_backend *be, float *p, size_t n, const char *what)
{
    float *h = gdown_(be, p - G, n + 2 * G);
    int sentinels_intact = 1;
    for (size_t i = 0; i < G; i++)
        sentinels_intact = sentinels_intact && h[i] == T_SENTINEL && h[n + G + i] == T_SENTINEL;
    CHECK(sentinels_intact, "%s: the %s op wrote outside its %zu values", what, be->name, n);
    free(h);
    be->free(p - G);
}
static float *rnd_(size_t n, double scale)
{
    float *p = malloc((n ? n : 1) * sizeof *p);
    for (size_t i = 0; i < n; i++) p[i] = (float)(scale * t_rand_(&seed_));
    return p;
}

/* ---- comparison ---- */
struct tol { double nmse, atol, rtol; };
static int broken_; /* DLFS_TEST_OPS_BREAK names this family (--self): every comparison fails */
static void cmp_(const char *what, const float *got, const float *want, size_t n, struct tol t)
{
    double num = 0, den = 0;
    size_t bad = 0;
    for (size_t i = 0; i < n; i++) {
        const double g = got[i] + (broken_ ? 1.0 + fabs((double)want[i]) : 0.0), w = want[i], d = g - w;
        if (isnan(g) && isnan(w)) continue;
        num += d * d;
        den += w * w;
        if (!(fabs(d) <= t.atol + t.rtol * fabs(w))) {
            if (bad < 5 && t_printed_ < 20) fprintf(stderr, "  %s[%zu]: got %.9g, cpu %.9g (diff %.3g)\n", what, i, g, w, d);
            bad++;
        }
    }
    const double nmse = den > 0 ? num / den : num;
    if (bad || !(nmse <= t.nmse)) {
        if (t_printed_++ < 40) /* the first mismatches of the first 20 comparisons, then 20 more names */
            fprintf(stderr, "FAIL %s: %zu of %zu values out of tolerance, NMSE %.3g (max %.3g)\n", what, bad, n, nmse,
                    t.nmse);
        t_failures_++;
    } else {
        printf("  ok  %-52s n=%-8zu NMSE %.2g\n", what, n, nmse);
    }
}
/* run on both backends: upload, op, download, compare, check sentinels */
static void cmp_dev_(const char *what, const float *d_dev, const float *d_ref, size_t n, struct tol t)
{
    float *a = gdown_(dev_, d_dev, n), *b = gdown_(ref_, d_ref, n);
    cmp_(what, a, b, n, t);
    free(a);
    free(b);
}

static const struct tol T_EXACT = {0, 0, 0};
static const struct tol T_ELEM = {1e-12, 1e-7, 2e-6};  /* elementwise float ops: FMA / libm ulps */

/* ---- the case table ---- */
/* One case's parameters: each case function reads the fields it names (designated
 * initializers in the table name them too), the rest stay zero. */
struct ops_args {
    int n, c, h, w;            /* images or rows, channels, height (or plane), width (or cols) */
    int m, k, ta, tb;          /* gemm: C (m x n) = A (m x k) B (k x n), transposes */
    int oc, kernel, stride, pad; /* conv, pool; gemm: pad = extra leading dimension */
    int shift, group, bits;    /* floats off the 16-byte grid; batchnorm group; mantissa bits */
    int act, prec, flag;       /* enum dlfs_act, enum dlfs_precision, a case's own switch */
    float alpha, beta, rate;
    size_t budget;             /* conv: the im2col budget (0: each backend its own) */
    unsigned long long seed;
    const char *name;
    struct dlfs_optim_hp hp;
};
/* A row: the family (one process each: --list, a FAMILY argument), the case function
 * and its parameters. Adding an op's test: one small case function (ops/dense.h, cnn.h or model.h) and its
 * rows in test_cuda_ops.c's table. */
struct ops_case {
    const char *family;
    void (*run)(const struct ops_args *a);
    struct ops_args a;
};
#endif
