/* Every op of the CUDA table against the CPU table (itself tested against float64
 * references in tests/unit/test_ops.c): the same random inputs through both, a
 * per-op tolerance on the normalised error (NMSE = sum (gpu-cpu)^2 / sum cpu^2)
 * and on each element, the first few mismatches printed, and sentinel values
 * around every output buffer to catch out-of-bounds writes.
 *
 *   test_cuda_ops [FAMILY...]          CUDA vs CPU; exit 77 ("skipped") where there is no GPU
 *   test_cuda_ops --self [FAMILY...]   CPU vs CPU: checks this harness itself (runs anywhere)
 *   test_cuda_ops --list               the op families, one a line
 *   test_cuda_ops --no-fork FAMILY     one family in this process (for tools that follow
 *                                      one process, e.g. compute-sanitizer)
 *
 * Each op family (memory, vec, gemm, ...; all of them by default) runs in a child
 * process of its own, which sets up the backend itself (a CUDA context does not
 * survive fork): a CUDA error, which aborts the process, or a hang (the child's
 * alarm, DLFS_OPS_FAMILY_TIMEOUT seconds, default 300) ends that family only. Each
 * family's result is printed ("family gemm: ok", "family pool: FAIL ...",
 * "crashed (signal 6 ...)", "timed out ..."), then a summary line; exit 0 when every
 * family passed, 77 when every one was skipped (no GPU), 1 otherwise. With
 * DLFS_CUDA_SYNC=1 (the GPU check sets it) a faulting kernel is blamed on its
 * own launch. Test hooks, honoured with --self only (the isolation test uses them):
 * DLFS_TEST_OPS_BREAK=FAMILY makes every comparison of that family fail,
 * DLFS_TEST_OPS_CRASH=FAMILY aborts it at its start.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
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

/* ---- memory and small ops ---- */
static void test_memory(void)
{
    CHECK(strcmp(dev_->name, self_ ? "cpu" : "cuda") == 0, "name %s", dev_->name);
    CHECK(self_ || dev_->set_threads == NULL, "cuda has no host threads to set");
    const size_t n = 100003;
    float *d = dev_->alloc(n * sizeof(float) + 3), *h = malloc(n * sizeof *h + 3);
    CHECK(d != NULL, "alloc");
    memset(h, 0x55, n * sizeof *h);
    dev_->sync();
    dev_->to_host(h, d, n * sizeof(float) + 3);
    int zero = 1;
    for (size_t i = 0; i < n; i++) zero = zero && h[i] == 0.0f;
    CHECK(zero, "alloc is not zero-filled");
    float *x = rnd_(n, 1), *d2 = gnew_(dev_, n);
    dev_->to_device(d, x, n * sizeof(float));
    dev_->copy(d2 + 1, d + 2, (n - 3) * sizeof(float) + 2); /* odd offsets and byte count */
    float *back = gdown_(dev_, d2, n);
    int same = back[0] == T_SENTINEL && memcmp(back + 1, x + 2, (n - 3) * sizeof(float) + 2) == 0;
    CHECK(same, "to_device/copy/to_host round trip");
    free(back);
    gfree_(dev_, d2, n, "copy");
    dev_->free(d);
    dev_->free(NULL);
    if (!self_) { /* out of memory is a NULL, not an abort, and leaves the backend usable */
        void *huge = dev_->alloc((size_t)1 << 50);
        CHECK(huge == NULL, "alloc of 1 PiB returned non-NULL");
        float *t = gup_(dev_, x, 8), *hb = gdown_(dev_, t, 8);
        CHECK(memcmp(hb, x, 8 * sizeof(float)) == 0, "backend unusable after a failed alloc");
        free(hb);
        gfree_(dev_, t, 8, "after failed alloc");
    }
    free(x);
    free(h);
    printf("  ok  memory (alloc zero-fill, transfers, copy, failed alloc)\n");
}

static void test_vec(void)
{
    const size_t sizes[] = {1, 7, 1000003};
    for (size_t s = 0; s < 3; s++) {
        const size_t n = sizes[s];
        float *x = rnd_(n, 1), *y = rnd_(n, 1);
        float *dx = gup_(dev_, x, n), *dy = gup_(dev_, y, n), *rx = gup_(ref_, x, n), *ry = gup_(ref_, y, n);
        char what[64];
        dev_->axpy(n, -0.75f, dx, dy); ref_->axpy(n, -0.75f, rx, ry);
        snprintf(what, sizeof what, "axpy n=%zu", n);
        cmp_dev_(what, dy, ry, n, T_ELEM);
        dev_->to_device(dy, y, n * sizeof *y); /* fresh inputs: axpy may differ by an ulp (FMA) */
        ref_->to_device(ry, y, n * sizeof *y);
        dev_->scale(n, 1.5f, dy); ref_->scale(n, 1.5f, ry);
        snprintf(what, sizeof what, "scale n=%zu", n);
        cmp_dev_(what, dy, ry, n, T_EXACT);
        dev_->fill(dx, -3.25f, n); ref_->fill(rx, -3.25f, n);
        snprintf(what, sizeof what, "fill n=%zu", n);
        cmp_dev_(what, dx, rx, n, T_EXACT);
        gfree_(dev_, dx, n, "fill"); gfree_(dev_, dy, n, "axpy/scale");
        gfree_(ref_, rx, n, "fill"); gfree_(ref_, ry, n, "axpy/scale");
        free(x); free(y);
    }
}

static void test_normalize(void)
{
    /* (images, channels, plane): grey 28x28, RGB, the maximum channel count, 1-pixel planes */
    const size_t cases[][3] = {{128, 1, 784}, {5, 3, 1024}, {3, 16, 5}, {1000, 2, 1}};
    double mean[16], std[16];
    for (int c = 0; c < 16; c++) { mean[c] = 0.1 + 0.05 * c; std[c] = 0.2 + 0.01 * c; }
    for (size_t k = 0; k < 4; k++) {
        const size_t n = cases[k][0], ch = cases[k][1], plane = cases[k][2], total = n * ch * plane;
        uint8_t *src = malloc(total);
        for (size_t i = 0; i < total; i++) src[i] = (uint8_t)((i * 2654435761u) >> 13);
        uint8_t *ds = dev_->alloc(total), *rs = ref_->alloc(total);
        dev_->to_device(ds, src, total); ref_->to_device(rs, src, total);
        float *dd = gnew_(dev_, total), *rd = gnew_(ref_, total);
        dev_->normalize_u8(dd, ds, n, (int)ch, plane, mean, std);
        ref_->normalize_u8(rd, rs, n, (int)ch, plane, mean, std);
        char what[64];
        snprintf(what, sizeof what, "normalize_u8 %zux%zux%zu (bit-exact)", n, ch, plane);
        cmp_dev_(what, dd, rd, total, T_EXACT);
        gfree_(dev_, dd, total, what); gfree_(ref_, rd, total, what);
        dev_->free(ds); ref_->free(rs);
        free(src);
    }
}

/* ---- gemm ---- */
/* Both backends in precision `prec`. `shift` floats in front of A and B break the
 * 16-byte alignment (the bf16 conversion's vector path must not be taken then). */
static void gemm_case_(enum dlfs_precision prec, int m, int n, int k, int ta, int tb, int pad, int shift,
                       float alpha, float beta)
{
    const int lda = (ta ? m : k) + pad, ldb = (tb ? k : n) + pad, ldc = n + pad;
    const size_t na = (size_t)(ta ? k : m) * lda, nb = (size_t)(tb ? n : k) * ldb, nc = (size_t)m * ldc;
    float *a = rnd_(na, 1), *b = rnd_(nb, 1), *c = rnd_(nc, 1);
    if (beta == 0.0f) for (size_t i = 0; i < nc; i++) c[i] = NAN; /* beta 0 must not read C */
    float *da = gnew_(dev_, na + shift), *db = gnew_(dev_, nb + shift), *dc = gup_(dev_, c, nc);
    float *ra = gnew_(ref_, na + shift), *rb = gnew_(ref_, nb + shift), *rc = gup_(ref_, c, nc);
    dev_->to_device(da + shift, a, na * sizeof *a); dev_->to_device(db + shift, b, nb * sizeof *b);
    ref_->to_device(ra + shift, a, na * sizeof *a); ref_->to_device(rb + shift, b, nb * sizeof *b);
    dev_->set_precision(prec); ref_->set_precision(prec);
    dev_->gemm(ta, tb, m, n, k, alpha, da + shift, lda, db + shift, ldb, beta, dc, ldc);
    ref_->gemm(ta, tb, m, n, k, alpha, ra + shift, lda, rb + shift, ldb, beta, rc, ldc);
    dev_->set_precision(DLFS_PRECISION_FP32); ref_->set_precision(DLFS_PRECISION_FP32);
    char what[96];
    snprintf(what, sizeof what, "gemm %s %dx%dx%d ta=%d tb=%d ld+%d%s a=%g b=%g", dlfs_precision_name(prec), m,
             n, k, ta, tb, pad, shift ? " unaligned" : "", alpha, beta);
    /* fp32: sums of k products in another order, errors grow like sqrt(k).
     * bf16: the CPU emulation rounds the operands to the same bits (lowp.h) and the
     * products are exact, so only the tensor cores' fp32 accumulation differs.
     * tf32: cuBLAS rounds the operands itself (maybe not to nearest even like the
     * emulation): agreement to tf32's ~1e-3, not closer. */
    struct tol t = {1e-9, 2e-5 * sqrt((double)k), 1e-4};
    if (prec == DLFS_PRECISION_BF16) t = (struct tol){1e-9, 4e-5 * sqrt((double)k), 2e-4};
    if (prec == DLFS_PRECISION_TF32) t = (struct tol){2e-6, 3e-3 * sqrt((double)k), 1e-2};
    cmp_dev_(what, dc, rc, nc, t);
    gfree_(dev_, da, na + shift, what); gfree_(dev_, db, nb + shift, what); gfree_(dev_, dc, nc, what);
    gfree_(ref_, ra, na + shift, what); gfree_(ref_, rb, nb + shift, what); gfree_(ref_, rc, nc, what);
    free(a); free(b); free(c);
}

/* The device's bf16/tf32 GEMM differs from the CPU's fp32 one by what operand
 * rounding predicts (NMSE = 2^-2(p+1)/3, tests/unit/test_precision.c): fails if the
 * device silently computed in fp32 (~1e-14). */
static void gemm_rounds_(enum dlfs_precision prec, int mantissa_bits)
{
    const int m = 256, n = 256, k = 256;
    float *a = rnd_((size_t)m * k, 1), *b = rnd_((size_t)k * n, 1);
    float *da = gup_(dev_, a, (size_t)m * k), *db = gup_(dev_, b, (size_t)k * n), *dc = gnew_(dev_, (size_t)m * n);
    float *ra = gup_(ref_, a, (size_t)m * k), *rb = gup_(ref_, b, (size_t)k * n), *rc = gnew_(ref_, (size_t)m * n);
    dev_->set_precision(prec);
    dev_->gemm(false, true, m, n, k, 1.0f, da, k, db, k, 0.0f, dc, n);
    dev_->set_precision(DLFS_PRECISION_FP32);
    ref_->gemm(false, true, m, n, k, 1.0f, ra, k, rb, k, 0.0f, rc, n);
    float *g = gdown_(dev_, dc, (size_t)m * n), *w = gdown_(ref_, rc, (size_t)m * n);
    double num = 0, den = 0;
    for (size_t i = 0; i < (size_t)m * n; i++) { num += ((double)g[i] - w[i]) * ((double)g[i] - w[i]); den += (double)w[i] * w[i]; }
    const double nmse = num / den, pred = ldexp(1.0, -2 * (mantissa_bits + 1)) / 3.0;
    /* tf32 on cuBLAS may truncate (4x the NMSE of rounding to nearest) */
    const double hi = prec == DLFS_PRECISION_TF32 ? 8 * pred : 2 * pred;
    CHECK(nmse > pred / 2 && nmse < hi, "%s gemm 256^3 vs fp32: NMSE %.3g, operand rounding predicts %.3g",
          dlfs_precision_name(prec), nmse, pred);
    if (nmse > pred / 2 && nmse < hi)
        printf("  ok  %-52s NMSE %.2g (predicted %.2g)\n", prec == DLFS_PRECISION_BF16 ? "gemm bf16 vs fp32 "
               "differs as rounding predicts" : "gemm tf32 vs fp32 differs as rounding predicts", nmse, pred);
    free(g); free(w);
    gfree_(dev_, da, (size_t)m * k, "lowp"); gfree_(dev_, db, (size_t)k * n, "lowp"); gfree_(dev_, dc, (size_t)m * n, "lowp");
    gfree_(ref_, ra, (size_t)m * k, "lowp"); gfree_(ref_, rb, (size_t)k * n, "lowp"); gfree_(ref_, rc, (size_t)m * n, "lowp");
    free(a); free(b);
}

static void test_gemm(void)
{
    /* tiny, odd, the mlp's shapes (batch 128: forward, dW, dX), a big-K one */
    const int shapes[][3] = {{1, 1, 1}, {3, 5, 7}, {17, 9, 33}, {128, 512, 784}, {512, 784, 128},
                             {128, 10, 512}, {257, 129, 2000}};
    for (int p = 0; p < DLFS_PRECISION_COUNT; p++) {
        const enum dlfs_precision prec = (enum dlfs_precision)p;
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
            for (int ta = 0; ta < 2; ta++)
                for (int tb = 0; tb < 2; tb++) {
                    gemm_case_(prec, shapes[s][0], shapes[s][1], shapes[s][2], ta, tb, 0, 0, 1.0f, 0.0f);
                    if (s < 3) gemm_case_(prec, shapes[s][0], shapes[s][1], shapes[s][2], ta, tb, 3, 0, 0.5f, 0.25f);
                }
        /* k == 0 (C = beta C), and operands off the 16-byte grid */
        gemm_case_(prec, 5, 6, 0, 0, 0, 1, 0, 1.0f, 0.5f);
        gemm_case_(prec, 64, 32, 48, 0, 1, 0, 1, 1.0f, 0.0f);
    }
    gemm_rounds_(DLFS_PRECISION_BF16, 7);
    gemm_rounds_(DLFS_PRECISION_TF32, 10);
}

/* ---- activations and column sums ---- */
static void test_act(void)
{
    const int shapes[][2] = {{1, 1}, {7, 13}, {128, 512}, {1000, 10}, {3, 70001}};
    const struct tol t = {1e-12, 1e-6, 1e-5}; /* tanhf/expf: <= 2 ulp between libm and CUDA */
    for (int act = 0; act < DLFS_ACT_COUNT; act++)
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
            const int rows = shapes[s][0], cols = shapes[s][1];
            const size_t n = (size_t)rows * cols;
            const enum dlfs_act a = (enum dlfs_act)act;
            float *z = rnd_(n, 3), *bias = rnd_((size_t)cols, 1), *da = rnd_(n, 1);
            float *dz = gup_(dev_, z, n), *db = gup_(dev_, bias, (size_t)cols);
            float *rz = gup_(ref_, z, n), *rb = gup_(ref_, bias, (size_t)cols);
            float *dact = a == DLFS_ACT_NONE ? dz : gnew_(dev_, n), *ract = a == DLFS_ACT_NONE ? rz : gnew_(ref_, n);
            dev_->bias_act_fwd(dz, dact, db, rows, cols, a);
            ref_->bias_act_fwd(rz, ract, rb, rows, cols, a);
            char what[80];
            snprintf(what, sizeof what, "bias_act_fwd %s %dx%d: z", dlfs_act_name(a), rows, cols);
            cmp_dev_(what, dz, rz, n, T_ELEM);
            snprintf(what, sizeof what, "bias_act_fwd %s %dx%d: act", dlfs_act_name(a), rows, cols);
            cmp_dev_(what, dact, ract, n, t);
            /* backward from the CPU's z and act(z) on both, out of place then in place */
            float *hz = gdown_(ref_, rz, n), *ha = gdown_(ref_, ract, n);
            dev_->to_device(dz, hz, n * sizeof(float));
            dev_->to_device(dact, ha, n * sizeof(float));
            float *dda = gup_(dev_, da, n), *rda = gup_(ref_, da, n), *ddz = gnew_(dev_, n), *rdz = gnew_(ref_, n);
            dev_->act_bwd(ddz, dda, dz, dact, n, a);
            ref_->act_bwd(rdz, rda, rz, ract, n, a);
            snprintf(what, sizeof what, "act_bwd %s n=%zu", dlfs_act_name(a), n);
            cmp_dev_(what, ddz, rdz, n, t);
            dev_->act_bwd(dda, dda, dz, dact, n, a);
            ref_->act_bwd(rda, rda, rz, ract, n, a);
            snprintf(what, sizeof what, "act_bwd %s n=%zu in place", dlfs_act_name(a), n);
            cmp_dev_(what, dda, rda, n, t);
            gfree_(dev_, dda, n, what); gfree_(ref_, rda, n, what); gfree_(dev_, ddz, n, what); gfree_(ref_, rdz, n, what);
            if (a != DLFS_ACT_NONE) { gfree_(dev_, dact, n, "act"); gfree_(ref_, ract, n, "act"); }
            gfree_(dev_, dz, n, "z"); gfree_(ref_, rz, n, "z");
            gfree_(dev_, db, (size_t)cols, "bias"); gfree_(ref_, rb, (size_t)cols, "bias");
            free(hz); free(ha); free(z); free(bias); free(da);
        }
}

static void test_colsum(void)
{
    const int shapes[][2] = {{1, 1}, {9, 5}, {128, 10}, {8192, 10}, {128, 4096}, {1000, 1000}, {0, 7}};
    const float betas[] = {0.0f, 1.0f, 0.5f};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        for (int bi = 0; bi < 3; bi++) {
            const int rows = shapes[s][0], cols = shapes[s][1];
            const size_t n = (size_t)rows * cols;
            float *x = rnd_(n, 1), *o = rnd_((size_t)cols, 1);
            if (betas[bi] == 0.0f) for (int c = 0; c < cols; c++) o[c] = NAN; /* beta 0: out is not read */
            float *dx = gup_(dev_, x, n), *rx = gup_(ref_, x, n);
            float *dout = gup_(dev_, o, (size_t)cols), *rout = gup_(ref_, o, (size_t)cols);
            dev_->colsum(dout, dx, rows, cols, betas[bi]);
            ref_->colsum(rout, rx, rows, cols, betas[bi]);
            char what[64];
            snprintf(what, sizeof what, "colsum %dx%d beta=%g", rows, cols, betas[bi]);
            /* the CPU adds rows in sequence, the GPU in 32 strided partial sums: the
             * difference is a random walk of roundings, ~ eps * sqrt(rows) * |sum| */
            const struct tol t = {1e-9, 1e-5 * sqrt((double)rows + 1), 1e-5};
            cmp_dev_(what, dout, rout, (size_t)cols, t);
            gfree_(dev_, dx, n, what); gfree_(ref_, rx, n, what);
            gfree_(dev_, dout, (size_t)cols, what); gfree_(ref_, rout, (size_t)cols, what);
            free(x); free(o);
        }
}

/* ---- loss ---- */
static void xent_case_(int rows, int classes, float grad_scale, int with_grad)
{
    const size_t n = (size_t)rows * classes;
    float *x = rnd_(n, 4);
    int32_t *y = malloc((size_t)rows * sizeof *y);
    for (int r = 0; r < rows; r++) y[r] = (int32_t)((unsigned)(r * 7919) % (unsigned)classes);
    x[0] = 80.0f;                                   /* large logits must not overflow */
    if (rows > 2 && classes > 8) {                  /* ties: the FIRST maximum is the prediction */
        for (int c = 0; c < classes; c++) x[(size_t)1 * classes + c] = 0.5f; /* all equal: argmax 0 */
        y[1] = 0;
        x[(size_t)2 * classes + 3] = x[(size_t)2 * classes + 7] = 9.0f;    /* two maxima, label the later */
        y[2] = 7;
    }
    float *dx = gup_(dev_, x, n), *rx = gup_(ref_, x, n);
    int32_t *dl = dev_->alloc((size_t)rows * sizeof *y), *rl = ref_->alloc((size_t)rows * sizeof *y);
    dev_->to_device(dl, y, (size_t)rows * sizeof *y); ref_->to_device(rl, y, (size_t)rows * sizeof *y);
    float *dd = with_grad ? gnew_(dev_, n) : NULL, *rd = with_grad ? gnew_(ref_, n) : NULL;
    double st0[2] = {1.5, 2.0}, sd[2], sr[2];
    double *dst = dev_->alloc(sizeof st0), *rst = ref_->alloc(sizeof st0);
    dev_->to_device(dst, st0, sizeof st0); ref_->to_device(rst, st0, sizeof st0);
    dev_->softmax_xent(dx, dl, rows, classes, grad_scale, dd, dst);
    ref_->softmax_xent(rx, rl, rows, classes, grad_scale, rd, rst);
    dev_->to_host(sd, dst, sizeof sd); ref_->to_host(sr, rst, sizeof sr);
    char what[80];
    snprintf(what, sizeof what, "softmax_xent %dx%d", rows, classes);
    const int ok = fabs(sd[0] - sr[0]) <= 1e-9 * fabs(sr[0] - 1.5) + 1e-12 && sd[1] == sr[1];
    CHECK(ok, "%s: loss sum %.15g correct %g, cpu %.15g %g (both started at 1.5, 2)", what, sd[0], sd[1], sr[0],
          sr[1]);
    if (ok) printf("  ok  %-52s loss %.9g, correct %g\n", what, sd[0] - 1.5, sd[1] - 2);
    if (with_grad) {
        snprintf(what, sizeof what, "softmax_xent %dx%d dlogits", rows, classes);
        /* p = (float)exp(double): an ulp flip of p near 1 shows up as ~6e-8 * scale */
        cmp_dev_(what, dd, rd, n, (struct tol){1e-12, 2e-7 * fabs(grad_scale), 1e-5});
        gfree_(dev_, dd, n, what); gfree_(ref_, rd, n, what);
    }
    gfree_(dev_, dx, n, "logits"); gfree_(ref_, rx, n, "logits");
    dev_->free(dl); ref_->free(rl); dev_->free(dst); ref_->free(rst);
    free(x); free(y);
}

static void test_loss(void)
{
    xent_case_(6, 10, 0.25f, 1);
    xent_case_(128, 10, 1.0f / 128, 1);
    xent_case_(8192, 10, 1.0f / 8192, 1);
    xent_case_(33, 1, 1.0f, 1);
    xent_case_(100, 1000, 0.01f, 1);
    xent_case_(1000, 10, 0.0f, 0); /* evaluation: statistics only */
}

/* ---- optimizers: several steps, aligned (float4 path) and shifted by one float ---- */
static void optim_case_(const char *name, size_t n, size_t shift, struct dlfs_optim_hp hp, int adam, int mom)
{
    float *p = rnd_(n, 1), *g = rnd_(n, 1);
    float *dp = gnew_(dev_, n + shift) + shift, *dg = gnew_(dev_, n + shift) + shift;
    float *rp = gup_(ref_, p, n), *rg = gup_(ref_, g, n);
    dev_->to_device(dp, p, n * sizeof *p); dev_->to_device(dg, g, n * sizeof *g);
    float *dm = mom ? gnew_(dev_, n + shift) : NULL, *dv = adam ? gnew_(dev_, n + shift) : NULL;
    float *rm = mom ? gnew_(ref_, n) : NULL, *rv = adam ? gnew_(ref_, n) : NULL;
    if (dm) { dev_->fill(dm, 0.0f, n + shift); ref_->fill(rm, 0.0f, n); }
    if (dv) { dev_->fill(dv, 0.0f, n + shift); ref_->fill(rv, 0.0f, n); }
    for (int t = 1; t <= 3; t++) {
        hp.bias_c1 = (float)(1.0 - pow(hp.beta1, t));
        hp.bias_c2 = (float)(1.0 - pow(hp.beta2, t));
        if (adam) {
            dev_->adam_update(n, dp, dg, dm ? dm + shift : NULL, dv ? dv + shift : NULL, &hp);
            ref_->adam_update(n, rp, rg, rm, rv, &hp);
        } else {
            dev_->sgd_update(n, dp, dg, dm ? dm + shift : NULL, &hp);
            ref_->sgd_update(n, rp, rg, rm, &hp);
        }
    }
    char what[80];
    const struct tol t = {1e-12, 1e-6, 1e-5};
    snprintf(what, sizeof what, "%s n=%zu shift=%zu: p", name, n, shift);
    cmp_dev_(what, dp, rp, n, t);
    if (mom) {
        snprintf(what, sizeof what, "%s n=%zu shift=%zu: m", name, n, shift);
        cmp_dev_(what, dm + shift, rm, n, t);
    }
    if (adam) {
        snprintf(what, sizeof what, "%s n=%zu shift=%zu: v", name, n, shift);
        cmp_dev_(what, dv + shift, rv, n, t);
    }
    gfree_(dev_, dp - shift, n + shift, what); gfree_(dev_, dg - shift, n + shift, what);
    gfree_(ref_, rp, n, what); gfree_(ref_, rg, n, what);
    if (mom) { gfree_(dev_, dm, n + shift, what); gfree_(ref_, rm, n, what); }
    if (adam) { gfree_(dev_, dv, n + shift, what); gfree_(ref_, rv, n, what); }
    free(p); free(g);
}

static void test_optim(void)
{
    const struct dlfs_optim_hp sgd = {.lr = 0.05f, .weight_decay = 1e-3f};
    const struct dlfs_optim_hp mom = {.lr = 0.05f, .momentum = 0.9f, .weight_decay = 1e-3f};
    const struct dlfs_optim_hp nest = {.lr = 0.05f, .momentum = 0.9f, .nesterov = true};
    const struct dlfs_optim_hp adam = {.lr = 1e-3f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f};
    struct dlfs_optim_hp adam_l2 = adam, adamw = adam;
    adam_l2.weight_decay = 0.1f;
    adamw.weight_decay = 0.01f;
    adamw.decoupled = true;
    const size_t sizes[] = {3, 1000003};
    for (int s = 0; s < 2; s++)
        for (size_t shift = 0; shift < 2; shift++) {
            optim_case_("sgd plain", sizes[s], shift, sgd, 0, 0);
            optim_case_("sgd momentum", sizes[s], shift, mom, 0, 1);
            optim_case_("sgd nesterov", sizes[s], shift, nest, 0, 1);
            optim_case_("adam", sizes[s], shift, adam, 1, 1);
            optim_case_("adam L2", sizes[s], shift, adam_l2, 1, 1);
            optim_case_("adamw", sizes[s], shift, adamw, 1, 1);
        }
}

/* ---- the model's forward/loss/backward through each backend, as the trainer runs it ---- */
/* After one step of `m` on both backends (index 0: under test, 1: CPU): compare
 * the logits, the whole gradient slab and the loss statistics, then free both
 * sides (the sentinels around params and gradients must be intact) and the model. */
static void model_pair_done_(const char *what, struct dlfs_model *m, const struct dlfs_backend *const bes[2],
                             struct dlfs_workspace ws[2], float *par[2], float *grad[2], double st[2][2], int rows)
{
    const size_t np = m->num_params;
    const int last = m->num_layers - 1;
    char label[96];
    snprintf(label, sizeof label, "%s logits", what);
    cmp_dev_(label, ws[0].a[last], ws[1].a[last], (size_t)rows * 10, (struct tol){1e-10, 1e-5, 1e-4});
    snprintf(label, sizeof label, "%s gradients (whole slab)", what);
    cmp_dev_(label, grad[0], grad[1], np, (struct tol){1e-9, 1e-5, 1e-3});
    CHECK(fabs(st[0][0] - st[1][0]) <= 1e-5 * fabs(st[1][0]) && st[0][1] == st[1][1],
          "%s loss %.9g correct %g, cpu %.9g %g", what, st[0][0], st[0][1], st[1][0], st[1][1]);
    for (int b = 0; b < 2; b++) {
        snprintf(label, sizeof label, "%s params", what);
        gfree_(bes[b], par[b], np, label);
        snprintf(label, sizeof label, "%s grads", what);
        gfree_(bes[b], grad[b], np, label);
        dlfs_workspace_free(&ws[b], m);
    }
    dlfs_model_free(m);
}

static void test_model(void)
{
    const char *spec = "in(784),dense(64),gelu,dense(32),relu,dense(16),tanh,dense(10)";
    const int rows = 50;
    struct dlfs_model m;
    CHECK(dlfs_model_parse(spec, &m) == DLFS_OK, "parse: %s", dlfs_error_msg());
    const size_t np = m.num_params, nx = (size_t)rows * m.input_dim;
    float *p = malloc(np * sizeof *p);
    dlfs_model_init_params(&m, 3, p);
    uint8_t *img = malloc(nx);
    int32_t *lab = malloc((size_t)rows * sizeof *lab);
    for (size_t i = 0; i < nx; i++) img[i] = (uint8_t)(t_rand_(&seed_) * 127.5 + 127.5);
    for (int r = 0; r < rows; r++) lab[r] = r % 10;
    const double mean[1] = {0.286}, std[1] = {0.353};
    const struct dlfs_backend *bes[2] = {dev_, ref_};
    struct dlfs_workspace ws[2];
    float *par[2], *grad[2];
    double st[2][2];
    for (int b = 0; b < 2; b++) {
        const struct dlfs_backend *be = bes[b];
        CHECK(dlfs_workspace_init(&ws[b], &m, be, rows) == DLFS_OK, "workspace: %s", dlfs_error_msg());
        par[b] = gup_(be, p, np);
        grad[b] = gnew_(be, np);
        uint8_t *di = be->alloc(nx);
        be->to_device(di, img, nx);
        be->to_device(ws[b].labels, lab, (size_t)rows * sizeof *lab);
        be->fill((float *)ws[b].stats, 0.0f, 4);
        be->normalize_u8(ws[b].x, di, (size_t)rows, 1, 784, mean, std);
        dlfs_model_forward(&m, &ws[b], par[b], rows);
        dlfs_model_loss(&m, &ws[b], rows, 1.0f / rows);
        dlfs_model_backward(&m, &ws[b], par[b], grad[b], rows, NULL, NULL);
        be->to_host(st[b], ws[b].stats, sizeof st[b]);
        be->free(di);
    }
    model_pair_done_("model", &m, bes, ws, par, grad, st, rows);
    free(p); free(img); free(lab);
}

/* ---- CNN ops: convolution, max pooling, dropout, mul, batch normalisation ---- */
static int conv_nobias_; /* 1: the conv without bias (b, db NULL) */

static void conv_case_(int c, int h, int w, int oc, int k, int stride, int pad, int n, size_t budget,
                       enum dlfs_act act)
{
    struct dlfs_conv_geom g;
    t_conv_geom_(&g, c, h, w, oc, k, stride, pad);
    dlfs_conv_set_col_budget(budget); /* set: both backends chunk alike; 0: each its own default */
    const size_t nx = (size_t)n * c * h * w, nw = (size_t)oc * c * k * k, nz = (size_t)n * oc * g.oh * g.ow;
    const size_t ncol = dlfs_conv_col_floats(&g, n);
    float *x = rnd_(nx, 1), *wt = rnd_(nw, 0.5), *b = rnd_((size_t)oc, 1), *dz = rnd_(nz, 1);
    const struct dlfs_backend *bes[2] = {dev_, ref_};
    float *dx_[2], *dw_[2], *db_[2], *dz_[2], *col[2], *z[2], *a[2], *gw[2], *gb[2], *gx[2];
    for (int i = 0; i < 2; i++) {
        const struct dlfs_backend *be = bes[i];
        dx_[i] = gup_(be, x, nx); dw_[i] = gup_(be, wt, nw); db_[i] = gup_(be, b, (size_t)oc); dz_[i] = gup_(be, dz, nz);
        col[i] = gnew_(be, ncol); z[i] = gnew_(be, nz); a[i] = act == DLFS_ACT_NONE ? z[i] : gnew_(be, nz);
        gw[i] = gnew_(be, nw); gb[i] = gnew_(be, (size_t)oc); gx[i] = gnew_(be, nx);
        be->conv2d_fwd(&g, n, dx_[i], dw_[i], conv_nobias_ ? NULL : db_[i], col[i], z[i], a[i], act);
    }
    char what[128];
    const int kk = c * k * k;
    const struct tol t = {1e-9, 2e-5 * sqrt((double)kk), 1e-4}; /* k products summed in another order */
    snprintf(what, sizeof what, "conv2d_fwd c%d %dx%d oc%d k%d s%d p%d n%d %s chunk %d%s: z", c, h, w, oc, k, stride,
             pad, n, dlfs_act_name(act), dlfs_conv_chunk(&g, n), conv_nobias_ ? " no bias" : "");
    cmp_dev_(what, z[0], z[1], nz, t);
    if (act != DLFS_ACT_NONE) {
        snprintf(what, sizeof what, "conv2d_fwd c%d %dx%d oc%d k%d s%d p%d n%d %s: act", c, h, w, oc, k, stride, pad,
                 n, dlfs_act_name(act));
        cmp_dev_(what, a[0], a[1], nz, t);
    }
    for (int withdx = 1; withdx >= 0; withdx--) {
        for (int i = 0; i < 2; i++)
            bes[i]->conv2d_bwd(&g, n, dx_[i], dw_[i], dz_[i], col[i], gw[i], conv_nobias_ ? NULL : gb[i],
                               withdx ? gx[i] : NULL);
        const double m = (double)n * g.oh * g.ow; /* dw, db: sums over images and pixels */
        const struct tol tw = {1e-9, 2e-5 * sqrt(m), 1e-4}, tx = {1e-9, 2e-5 * sqrt((double)oc * k * k), 1e-4};
        snprintf(what, sizeof what, "conv2d_bwd c%d %dx%d oc%d k%d s%d p%d n%d dx=%d: dw", c, h, w, oc, k, stride,
                 pad, n, withdx);
        cmp_dev_(what, gw[0], gw[1], nw, tw);
        snprintf(what, sizeof what, "conv2d_bwd c%d %dx%d oc%d k%d s%d p%d n%d dx=%d: db", c, h, w, oc, k, stride,
                 pad, n, withdx);
        if (!conv_nobias_) cmp_dev_(what, gb[0], gb[1], (size_t)oc, tw);
        if (withdx) {
            snprintf(what, sizeof what, "conv2d_bwd c%d %dx%d oc%d k%d s%d p%d n%d: dx", c, h, w, oc, k, stride, pad, n);
            cmp_dev_(what, gx[0], gx[1], nx, tx);
        }
    }
    for (int i = 0; i < 2; i++) {
        const struct dlfs_backend *be = bes[i];
        gfree_(be, dx_[i], nx, "conv x"); gfree_(be, dw_[i], nw, "conv w"); gfree_(be, db_[i], (size_t)oc, "conv b");
        gfree_(be, dz_[i], nz, "conv dz"); gfree_(be, col[i], ncol, "conv col scratch"); gfree_(be, z[i], nz, "conv z");
        if (act != DLFS_ACT_NONE) gfree_(be, a[i], nz, "conv act");
        gfree_(be, gw[i], nw, "conv dw"); gfree_(be, gb[i], (size_t)oc, "conv db"); gfree_(be, gx[i], nx, "conv dx");
    }
    free(x); free(wt); free(b); free(dz);
    dlfs_conv_set_col_budget(0);
}

static void test_conv(void)
{
    /*         c  h   w  oc k  s  p  n  budget */
    conv_case_(1, 5, 5, 2, 3, 1, 0, 1, 0, DLFS_ACT_NONE);
    conv_case_(3, 7, 6, 4, 3, 2, 2, 3, 0, DLFS_ACT_RELU);
    conv_case_(2, 9, 9, 3, 5, 1, 2, 2, 0, DLFS_ACT_GELU);
    conv_case_(2, 4, 5, 3, 1, 2, 0, 3, 0, DLFS_ACT_TANH);   /* 1x1, stride 2 */
    conv_case_(1, 3, 3, 2, 5, 1, 2, 1, 0, DLFS_ACT_RELU);   /* kernel larger than the image */
    conv_case_(2, 13, 11, 3, 5, 2, 0, 3, 0, DLFS_ACT_SIGMOID);
    conv_case_(3, 7, 6, 4, 3, 2, 2, 3, 1, DLFS_ACT_RELU);   /* one image per chunk */
    conv_case_(4, 6, 5, 3, 1, 1, 0, 3, 1, DLFS_ACT_RELU);   /* 1x1 one image a chunk (the CPU's direct GEMMs) */
    conv_nobias_ = 1;                                        /* without bias (ResNets' convs before batch norm) */
    conv_case_(3, 9, 8, 5, 3, 2, 1, 4, 0, DLFS_ACT_NONE);
    conv_case_(8, 7, 7, 16, 1, 2, 0, 3, 0, DLFS_ACT_RELU);  /* the 1x1 stride-2 projection */
    conv_nobias_ = 0;
    conv_case_(2, 9, 9, 3, 5, 1, 2, 7, 2 * 50 * 81, DLFS_ACT_RELU); /* chunks 2, 2, 2, 1 */
    conv_case_(1, 28, 28, 32, 5, 1, 2, 64, 0, DLFS_ACT_RELU);       /* the cnn's layers */
    conv_case_(32, 14, 14, 64, 5, 1, 2, 64, 0, DLFS_ACT_RELU);
}

static void pool_case_(int c, int h, int w, int k, int stride, int pad, int n)
{
    struct dlfs_conv_geom g;
    t_conv_geom_(&g, c, h, w, c, k, stride, pad);
    const size_t nx = (size_t)n * c * h * w, ny = (size_t)n * c * g.oh * g.ow;
    float *x = malloc(nx * sizeof *x), *dy = rnd_(ny, 1);
    for (size_t i = 0; i < nx; i++) x[i] = (float)(int)(3.0 * t_rand_(&seed_)); /* ties: first maximum wins */
    const struct dlfs_backend *bes[2] = {dev_, ref_};
    float *dx_[2], *y[2], *ddy[2], *gx[2];
    int32_t *arg[2], *harg[2];
    for (int i = 0; i < 2; i++) {
        dx_[i] = gup_(bes[i], x, nx); y[i] = gnew_(bes[i], ny); ddy[i] = gup_(bes[i], dy, ny); gx[i] = gnew_(bes[i], nx);
        arg[i] = bes[i]->alloc(ny * sizeof(int32_t));
        bes[i]->maxpool_fwd(&g, n, dx_[i], y[i], arg[i]);
        bes[i]->maxpool_bwd(&g, n, ddy[i], arg[i], gx[i]);
        harg[i] = malloc(ny * sizeof(int32_t));
        bes[i]->to_host(harg[i], arg[i], ny * sizeof(int32_t));
    }
    char what[96];
    snprintf(what, sizeof what, "maxpool_fwd c%d %dx%d k%d s%d p%d n%d (bit-exact)", c, h, w, k, stride, pad, n);
    cmp_dev_(what, y[0], y[1], ny, T_EXACT);
    size_t bad = 0;
    for (size_t i = 0; i < ny; i++) bad += harg[0][i] != harg[1][i];
    CHECK(bad == 0, "%s: %zu window maxima at another position than the CPU's", what, bad);
    snprintf(what, sizeof what, "maxpool_bwd c%d %dx%d k%d s%d p%d n%d (bit-exact)", c, h, w, k, stride, pad, n);
    cmp_dev_(what, gx[0], gx[1], nx, T_EXACT);
    for (int i = 0; i < 2; i++) {
        gfree_(bes[i], dx_[i], nx, "pool x"); gfree_(bes[i], y[i], ny, "pool y");
        gfree_(bes[i], ddy[i], ny, "pool dy"); gfree_(bes[i], gx[i], nx, "pool dx");
        bes[i]->free(arg[i]); free(harg[i]);
    }
    free(x); free(dy);
}

static void test_pool(void)
{
    pool_case_(3, 6, 6, 2, 2, 0, 2);
    pool_case_(2, 7, 5, 2, 2, 0, 1);   /* odd sizes */
    pool_case_(2, 7, 7, 3, 2, 0, 3);   /* overlapping windows */
    pool_case_(2, 8, 9, 3, 1, 0, 2);   /* stride 1 */
    pool_case_(1, 9, 10, 2, 3, 0, 2);  /* stride > kernel */
    pool_case_(32, 28, 28, 2, 2, 0, 64);
    pool_case_(3, 9, 8, 3, 2, 1, 2);   /* padded: resnet50's stem pool 3x3/2 pad 1 */
    pool_case_(2, 7, 7, 3, 1, 1, 2);   /* padded, stride 1 */
    pool_case_(8, 112, 112, 3, 2, 1, 4);
}

static void test_dropout(void)
{
    const int shapes[][2] = {{1, 1}, {7, 1000}, {128, 1024}, {3, 70001}};
    const float rates[] = {0.0f, 0.3f, 0.5f, 0.9f};
    for (size_t s = 0; s < 4; s++) {
        const int rows = shapes[s][0], cols = shapes[s][1];
        const size_t n = (size_t)rows * cols;
        const float rate = rates[s];
        float *x = rnd_(n, 2), *g = rnd_(n, 1);
        uint32_t *ids = malloc((size_t)rows * sizeof *ids);
        for (int r = 0; r < rows; r++) ids[r] = (uint32_t)(r * 2654435761u + 7u);
        const struct dlfs_backend *bes[2] = {dev_, ref_};
        float *dx_[2], *y[2], *m[2], *dg[2];
        uint32_t *did[2];
        for (int i = 0; i < 2; i++) {
            dx_[i] = gup_(bes[i], x, n); y[i] = gnew_(bes[i], n); m[i] = gnew_(bes[i], n); dg[i] = gup_(bes[i], g, n);
            did[i] = bes[i]->alloc((size_t)rows * sizeof *ids);
            bes[i]->to_device(did[i], ids, (size_t)rows * sizeof *ids);
            bes[i]->dropout_fwd(dx_[i], y[i], m[i], rows, cols, rate, 0x1234567890abcdefULL + s, did[i]);
            bes[i]->mul(n, m[i], dg[i]);
        }
        char what[80];
        snprintf(what, sizeof what, "dropout_fwd %dx%d rate %g: mask (bit-exact)", rows, cols, (double)rate);
        cmp_dev_(what, m[0], m[1], n, T_EXACT);
        snprintf(what, sizeof what, "dropout_fwd %dx%d rate %g: y (bit-exact)", rows, cols, (double)rate);
        cmp_dev_(what, y[0], y[1], n, T_EXACT);
        snprintf(what, sizeof what, "mul n=%zu (bit-exact)", n);
        cmp_dev_(what, dg[0], dg[1], n, T_EXACT);
        for (int i = 0; i < 2; i++) {
            gfree_(bes[i], dx_[i], n, "dropout x"); gfree_(bes[i], y[i], n, "dropout y");
            gfree_(bes[i], m[i], n, "dropout mask"); gfree_(bes[i], dg[i], n, "mul");
            bes[i]->free(did[i]);
        }
        free(x); free(g); free(ids);
    }
}

static void bn_case_(int n, int c, int plane, int group, enum dlfs_act act)
{
    const size_t nx = (size_t)n * c * plane;
    const int eff = group <= 0 || group > n ? n : group, groups = (n + eff - 1) / eff;
    const size_t ni = (size_t)groups * c;
    float *x = rnd_(nx, 2), *gm = rnd_((size_t)c, 1), *bt = rnd_((size_t)c, 1), *dz = rnd_(nx, 1);
    float *st0 = rnd_(2 * (size_t)c, 1), *rm = rnd_((size_t)c, 1), *rv = rnd_((size_t)c, 1);
    for (size_t i = 0; i < nx; i++) x[i] += 0.5f * (float)(i / plane % (size_t)c); /* channel offsets */
    for (int ch = 0; ch < c; ch++) rv[ch] = 0.5f + fabsf(rv[ch]);
    const struct dlfs_backend *bes[2] = {dev_, ref_};
    float *dx_[2], *dg[2], *db[2], *ddz[2], *xh[2], *is[2], *z[2], *a[2], *st[2], *drm[2], *drv[2], *gg[2], *gb[2],
        *gx[2];
    for (int i = 0; i < 2; i++) {
        const struct dlfs_backend *be = bes[i];
        dx_[i] = gup_(be, x, nx); dg[i] = gup_(be, gm, (size_t)c); db[i] = gup_(be, bt, (size_t)c);
        ddz[i] = gup_(be, dz, nx); xh[i] = gnew_(be, nx); is[i] = gnew_(be, ni); z[i] = gnew_(be, nx);
        a[i] = act == DLFS_ACT_NONE ? z[i] : gnew_(be, nx); st[i] = gup_(be, st0, 2 * (size_t)c);
        drm[i] = gup_(be, rm, (size_t)c); drv[i] = gup_(be, rv, (size_t)c);
        gg[i] = gnew_(be, (size_t)c); gb[i] = gnew_(be, (size_t)c); gx[i] = gnew_(be, nx);
        be->batchnorm_fwd(n, c, plane, group, dx_[i], dg[i], db[i], NULL, NULL, 1e-5f, xh[i], is[i], z[i], a[i], act,
                          st[i]);
        be->batchnorm_bwd(n, c, plane, group, ddz[i], xh[i], is[i], dg[i], gg[i], gb[i], gx[i]);
    }
    char what[96];
    const char *an = dlfs_act_name(act);
    /* statistics in double on both sides, in another order: agree to float rounding */
    const struct tol t = {1e-10, 1e-5, 1e-5}, ts = {1e-10, 1e-5 * sqrt((double)n * plane), 1e-4};
#define BN_CMP_(field, d, r, cnt, tl)                                                                 \
    do {                                                                                           \
        snprintf(what, sizeof what, "batchnorm n%d c%d plane%d group%d %s: %s", n, c, plane, group, an, field); \
        cmp_dev_(what, d, r, cnt, tl);                                                             \
    } while (0)
    BN_CMP_("xhat", xh[0], xh[1], nx, t);
    BN_CMP_("invstd", is[0], is[1], ni, t);
    BN_CMP_("z", z[0], z[1], nx, t);
    if (act != DLFS_ACT_NONE) BN_CMP_("act", a[0], a[1], nx, t);
    BN_CMP_("stats (+= group mean, unbiased var)", st[0], st[1], 2 * (size_t)c, t);
    BN_CMP_("dgamma", gg[0], gg[1], (size_t)c, ts);
    BN_CMP_("dbeta", gb[0], gb[1], (size_t)c, ts);
    const struct tol tdx = {1e-10, 1e-5, 1e-4};
    BN_CMP_("dx", gx[0], gx[1], nx, tdx);
    for (int i = 0; i < 2; i++) { /* dx NULL: parameter gradients only */
        bes[i]->to_device(gg[i], st0, (size_t)c * sizeof(float)); /* garbage: must be overwritten */
        bes[i]->batchnorm_bwd(n, c, plane, group, ddz[i], xh[i], is[i], dg[i], gg[i], gb[i], NULL);
    }
    BN_CMP_("dgamma (dx NULL)", gg[0], gg[1], (size_t)c, ts);
    for (int i = 0; i < 2; i++) /* evaluation: the running statistics */
        bes[i]->batchnorm_fwd(n, c, plane, group, dx_[i], dg[i], db[i], drm[i], drv[i], 1e-5f, NULL, NULL, z[i], a[i],
                              act, NULL);
    BN_CMP_("eval z", z[0], z[1], nx, t);
    if (act != DLFS_ACT_NONE) BN_CMP_("eval act", a[0], a[1], nx, t);
#undef BN_CMP_
    for (int i = 0; i < 2; i++) {
        const struct dlfs_backend *be = bes[i];
        gfree_(be, dx_[i], nx, "bn x"); gfree_(be, dg[i], (size_t)c, "bn gamma"); gfree_(be, db[i], (size_t)c, "bn beta");
        gfree_(be, ddz[i], nx, "bn dz"); gfree_(be, xh[i], nx, "bn xhat"); gfree_(be, is[i], ni, "bn invstd");
        gfree_(be, z[i], nx, "bn z");
        if (act != DLFS_ACT_NONE) gfree_(be, a[i], nx, "bn act");
        gfree_(be, st[i], 2 * (size_t)c, "bn stats"); gfree_(be, drm[i], (size_t)c, "bn run_mean");
        gfree_(be, drv[i], (size_t)c, "bn run_var"); gfree_(be, gg[i], (size_t)c, "bn dgamma");
        gfree_(be, gb[i], (size_t)c, "bn dbeta"); gfree_(be, gx[i], nx, "bn dx");
    }
    free(x); free(gm); free(bt); free(dz); free(st0); free(rm); free(rv);
}

static void test_batchnorm(void)
{
    bn_case_(5, 3, 7, 2, DLFS_ACT_RELU);       /* groups 2, 2, 1: the last one shorter */
    bn_case_(9, 4, 13, 0, DLFS_ACT_NONE);      /* one group: the whole batch */
    bn_case_(7, 2, 5, 3, DLFS_ACT_GELU);
    bn_case_(1, 3, 1, 0, DLFS_ACT_NONE);       /* one value per channel: variance 0 */
    bn_case_(64, 300, 1, 16, DLFS_ACT_RELU);   /* after a dense layer: plane 1 */
    bn_case_(128, 32, 784, 32, DLFS_ACT_RELU); /* cnn-bn's first batchnorm */
    bn_case_(50, 64, 196, 0, DLFS_ACT_TANH);
}

/* the CNN model through both backends: conv, batchnorm (groups), pool, dropout */
static void test_model_cnn(void)
{
    const char *spec = "in(2x12x12),conv(4,k3,p1),batchnorm,relu,maxpool(2),conv(6,k3,s2),relu,flatten,"
                       "dense(16),relu,dropout(0.3),dense(10)";
    const int rows = 12;
    struct dlfs_model m;
    CHECK(dlfs_model_parse(spec, &m) == DLFS_OK, "parse: %s", dlfs_error_msg());
    CHECK(dlfs_model_check_backend(&m, dev_) == DLFS_OK, "%s refuses the cnn: %s", dev_->name, dlfs_error_msg());
    const size_t np = m.num_params, nx = (size_t)rows * m.input_dim;
    float *p = malloc(np * sizeof *p), *x = rnd_(nx, 1);
    dlfs_model_init_params(&m, 5, p);
    int32_t *lab = malloc((size_t)rows * sizeof *lab);
    uint32_t *ids = malloc((size_t)rows * sizeof *ids);
    for (int r = 0; r < rows; r++) { lab[r] = (r * 3) % 10; ids[r] = (uint32_t)(1000 + 7 * r); }
    const struct dlfs_backend *bes[2] = {dev_, ref_};
    struct dlfs_workspace ws[2];
    float *par[2], *grad[2];
    double st[2][2];
    for (int b = 0; b < 2; b++) {
        const struct dlfs_backend *be = bes[b];
        CHECK(dlfs_workspace_init(&ws[b], &m, be, rows) == DLFS_OK, "workspace: %s", dlfs_error_msg());
        par[b] = gup_(be, p, np);
        grad[b] = gnew_(be, np);
        ws[b].training = 1;
        ws[b].key = 0xfeedULL;
        ws[b].bn_group = 5; /* groups 5, 5, 2 */
        be->to_device(ws[b].x, x, nx * sizeof *x);
        be->to_device(ws[b].ids, ids, (size_t)rows * sizeof *ids);
        be->to_device(ws[b].labels, lab, (size_t)rows * sizeof *lab);
        be->fill((float *)ws[b].stats, 0.0f, 4);
        dlfs_model_forward(&m, &ws[b], par[b], rows);
        dlfs_model_loss(&m, &ws[b], rows, 1.0f / rows);
        dlfs_model_backward(&m, &ws[b], par[b], grad[b], rows, NULL, NULL);
        be->to_host(st[b], ws[b].stats, sizeof st[b]);
    }
    model_pair_done_("cnn model", &m, bes, ws, par, grad, st, rows);
    free(p); free(x); free(lab); free(ids);
}

/* The residual ops: gap (sums in the CPU's order) and add, bit for bit. */
static void test_gap_add(void)
{
    const int shapes[][3] = {{1, 1, 1}, {3, 5, 7}, {32, 64, 64}, {8, 2048, 49}}; /* n, c, plane */
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        const int n = shapes[s][0], c = shapes[s][1], plane = shapes[s][2];
        const size_t nc = (size_t)n * c, total = nc * plane;
        float *x = rnd_(total, 2), *g = rnd_(nc, 1);
        float *dx = gup_(dev_, x, total), *rx = gup_(ref_, x, total), *dg = gup_(dev_, g, nc), *rg = gup_(ref_, g, nc);
        float *dy = gnew_(dev_, nc), *ry = gnew_(ref_, nc);
        char what[64];
        dev_->gap_fwd(n, c, plane, dx, dy); ref_->gap_fwd(n, c, plane, rx, ry);
        snprintf(what, sizeof what, "gap_fwd n%d c%d plane%d", n, c, plane);
        cmp_dev_(what, dy, ry, nc, T_EXACT);
        dev_->gap_bwd(n, c, plane, dg, dx); ref_->gap_bwd(n, c, plane, rg, rx);
        snprintf(what, sizeof what, "gap_bwd n%d c%d plane%d", n, c, plane);
        cmp_dev_(what, dx, rx, total, T_EXACT);
        dev_->to_device(dx, x, total * sizeof *x); ref_->to_device(rx, x, total * sizeof *x);
        float *da = gup_(dev_, x + total / 2, total / 2), *ra = gup_(ref_, x + total / 2, total / 2);
        dev_->add(total / 2, dx, da, da); ref_->add(total / 2, rx, ra, ra); /* in place: y is b */
        snprintf(what, sizeof what, "add n=%zu", total / 2);
        cmp_dev_(what, da, ra, total / 2, T_EXACT);
        gfree_(dev_, dx, total, "gap x"); gfree_(ref_, rx, total, "gap x"); gfree_(dev_, dg, nc, "gap dy");
        gfree_(ref_, rg, nc, "gap dy"); gfree_(dev_, dy, nc, "gap y"); gfree_(ref_, ry, nc, "gap y");
        gfree_(dev_, da, total / 2, "add"); gfree_(ref_, ra, total / 2, "add");
        free(x); free(g);
    }
}

static const struct family {
    const char *name;
    void (*run)(void);
} families_[] = {
    {"memory", test_memory}, {"vec", test_vec}, {"normalize", test_normalize}, {"gemm", test_gemm},
    {"act", test_act}, {"colsum", test_colsum}, {"loss", test_loss}, {"optim", test_optim},
    {"model", test_model}, {"conv", test_conv}, {"pool", test_pool}, {"dropout", test_dropout},
    {"batchnorm", test_batchnorm}, {"model_cnn", test_model_cnn}, {"gap_add", test_gap_add},
};
enum { NFAM = sizeof families_ / sizeof families_[0] };

static int env_is_(const char *var, const char *name)
{
    const char *v = getenv(var);
    return v && strcmp(v, name) == 0;
}

/* The child: its own backend, then one family. Exit 0 / 1 / 77. */
static int run_family_(const struct family *f, int argc, char **argv)
{
    const char *to = getenv("DLFS_OPS_FAMILY_TIMEOUT");
    alarm(to && atoi(to) > 0 ? (unsigned)atoi(to) : 300u); /* SIGALRM ends a hung family */
    ref_ = dlfs_backend_cpu();
    if (ref_->set_threads) ref_->set_threads(1);
    const int rc = t_device_backend_(argc, argv, &dev_, &self_);
    if (rc) return rc;
    if (self_ && env_is_("DLFS_TEST_OPS_CRASH", f->name)) {
        fprintf(stderr, "DLFS_TEST_OPS_CRASH=%s: aborting (test hook)\n", f->name);
        abort();
    }
    broken_ = self_ && env_is_("DLFS_TEST_OPS_BREAK", f->name);
    f->run();
    fflush(stdout);
    if (t_failures_) fprintf(stderr, "%d check(s) failed\n", t_failures_);
    return t_failures_ ? 1 : 0;
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0); /* "ok" lines and FAIL lines in order in the log */
    int self = 0, nsel = 0, nofork = 0;
    const struct family *sel[NFAM];
    for (int a = 1; a < argc; a++) {
        if (strcmp(argv[a], "--self") == 0) { self = 1; continue; }
        if (strcmp(argv[a], "--no-fork") == 0) { nofork = 1; continue; }
        if (strcmp(argv[a], "--list") == 0) {
            for (int k = 0; k < NFAM; k++) printf("%s\n", families_[k].name);
            return 0;
        }
        int k = 0;
        while (k < NFAM && strcmp(argv[a], families_[k].name) != 0) k++;
        if (k == NFAM) {
            fprintf(stderr, "test_cuda_ops: unknown op family '%s' (--list lists them)\n", argv[a]);
            return 2;
        }
        if (nsel < NFAM) sel[nsel++] = &families_[k];
    }
    if (nsel == 0)
        for (int k = 0; k < NFAM; k++) sel[nsel++] = &families_[k];
    char *self_argv[] = {argv[0], "--self", NULL};
    char **child_argv = self ? self_argv : argv;
    const int child_argc = self ? 2 : 1;
    if (nofork) {
        if (nsel != 1) {
            fprintf(stderr, "test_cuda_ops: --no-fork runs exactly one op family (--list lists them)\n");
            return 2;
        }
        printf("--- family %s (in this process)\n", sel[0]->name);
        const int rc = run_family_(sel[0], child_argc, child_argv);
        printf("family %s: %s\n", sel[0]->name, rc == 0 ? "ok" : rc == 77 ? "skipped" : "FAIL (exit 1)");
        return rc;
    }

    int ok = 0, skipped = 0, failed = 0;
    char failed_names[512] = "";
    for (int k = 0; k < nsel; k++) {
        const struct family *f = sel[k];
        printf("--- family %s\n", f->name);
        fflush(stdout);
        fflush(stderr);
        const pid_t pid = fork();
        if (pid < 0) { perror("test_cuda_ops: fork"); return 1; }
        if (pid == 0) _exit(run_family_(f, child_argc, child_argv));
        int status = 0;
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
        char what[160];
        if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
            snprintf(what, sizeof what, "ok");
            ok++;
        } else if (WIFEXITED(status) && WEXITSTATUS(status) == 77) {
            snprintf(what, sizeof what, "skipped");
            skipped++;
        } else {
            if (WIFEXITED(status))
                snprintf(what, sizeof what, "FAIL (exit %d)", WEXITSTATUS(status));
            else if (WIFSIGNALED(status) && WTERMSIG(status) == SIGALRM)
                snprintf(what, sizeof what, "FAIL: timed out (DLFS_OPS_FAMILY_TIMEOUT)");
            else
                snprintf(what, sizeof what, "FAIL: crashed (signal %d, %s)", WIFSIGNALED(status) ? WTERMSIG(status) : 0,
                         WIFSIGNALED(status) ? strsignal(WTERMSIG(status)) : "?");
            failed++;
            if (strlen(failed_names) + strlen(f->name) + 2 < sizeof failed_names) {
                if (*failed_names) strcat(failed_names, " ");
                strcat(failed_names, f->name);
            }
        }
        printf("family %s: %s\n", f->name, what);
    }
    printf("op families: %d ok, %d failed%s%s%s, %d skipped, of %d\n", ok, failed, failed ? " (" : "", failed_names,
           failed ? ")" : "", skipped, nsel);
    if (failed) return 1;
    if (skipped == nsel) return 77;
    if (skipped) {
        fprintf(stderr, "FAIL: %d of %d families skipped, the others ran\n", skipped, nsel);
        return 1;
    }
    printf("all checks passed\n");
    return 0;
}
