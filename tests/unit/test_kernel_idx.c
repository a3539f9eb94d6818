/* The CUDA kernels' per-element code (src/backend/kernels/conv-idx.h, rng-hd.h)
 * run on the host: every element index of every kernel, in the same sequence of
 * steps as src/backend/cuda/conv.cu, pool.cu and vec.cu, with the CPU backend's
 * GEMM standing in for cuBLAS. Compared with the CPU backend's ops, which the
 * GPU kernels are meant to match bit for bit except where noted (db: another
 * summation order). This is the test of the GPU indexing that runs without a GPU;
 * tests/gpu/test_cuda_ops.c then checks the real kernels where one exists. */
#include <math.h>
#include <string.h>
#include "dlfs/backend.h"
#include "dlfs/util.h"
#include "backend/kernels/conv-idx.h"
#include "backend/test-support.h"
#include "testutil.h"

static unsigned long long seed_ = 77;
static const struct dlfs_backend *cpu_;

static float *rnd_(size_t n, double scale)
{
    float *p = malloc((n ? n : 1) * sizeof *p);
    for (size_t i = 0; i < n; i++) p[i] = (float)(scale * t_rand_(&seed_));
    return p;
}

/* number of positions where a and b differ in bits, first few printed */
static size_t diff_bits_(const char *what, const void *a, const void *b, size_t n, size_t elem)
{
    size_t bad = 0;
    for (size_t i = 0; i < n; i++)
        if (memcmp((const char *)a + i * elem, (const char *)b + i * elem, elem) != 0) {
            if (bad < 5 && elem == sizeof(float))
                fprintf(stderr, "  %s[%zu]: kernel code %.9g, cpu %.9g\n", what, i, ((const float *)a)[i],
                        ((const float *)b)[i]);
            bad++;
        }
    return bad;
}

/* conv.cu's cuda_conv2d_fwd and _bwd, step for step, each kernel a loop over its
 * elements (act: none or relu, enough to check the fused output indexing) */
static void emu_conv_fwd_(const struct dlfs_conv_geom *g, int n, const float *x, const float *w, const float *b,
                          float *col, float *z, float *a, int relu)
{
    const int k = g->c * g->kh * g->kw, plane = g->oh * g->ow, S = dlfs_conv_chunk(g, n);
    const size_t in_sz = (size_t)g->c * g->h * g->w, out_sz = (size_t)g->oc * plane;
    for (int i0 = 0; i0 < n; i0 += S) {
        const int s = n - i0 < S ? n - i0 : S;
        const size_t ld = (size_t)s * plane;
        float *out = col + (size_t)k * ld;
        for (size_t i = 0; i < (size_t)k * ld; i++) col[i] = dlfs_im2col_at(g, x + (size_t)i0 * in_sz, ld, i);
        cpu_->gemm(false, false, g->oc, (int)ld, k, 1.0f, w, k, col, (int)ld, 0.0f, out, (int)ld);
        float *zc = z + (size_t)i0 * out_sz, *ac = a + (size_t)i0 * out_sz;
        for (size_t i = 0; i < (size_t)s * out_sz; i++) {
            const float v = out[dlfs_chunk_cm_index((size_t)plane, g->oc, ld, i)] + b[i / plane % (size_t)g->oc];
            zc[i] = v;
            ac[i] = relu ? (v > 0.0f ? v : 0.0f) : v;
        }
    }
}

static void emu_conv_bwd_(const struct dlfs_conv_geom *g, int n, const float *x, const float *w, const float *dz,
                          float *col, float *dw, float *db, float *dx)
{
    const int k = g->c * g->kh * g->kw, plane = g->oh * g->ow, S = dlfs_conv_chunk(g, n);
    const size_t in_sz = (size_t)g->c * g->h * g->w, out_sz = (size_t)g->oc * plane;
    for (int o = 0; o < g->oc; o++) { /* conv_db_k: one block per channel (order differs: not bit-exact) */
        double s = 0;
        for (size_t e = 0; e < (size_t)n * plane; e++) s += dz[(e / plane * g->oc + o) * plane + e % plane];
        db[o] = (float)s;
    }
    for (int i0 = 0; i0 < n; i0 += S) {
        const int s = n - i0 < S ? n - i0 : S;
        const size_t ld = (size_t)s * plane;
        float *dzt = col + (size_t)k * ld;
        for (size_t i = 0; i < (size_t)s * out_sz; i++)
            dzt[dlfs_chunk_cm_index((size_t)plane, g->oc, ld, i)] = dz[(size_t)i0 * out_sz + i];
        for (size_t i = 0; i < (size_t)k * ld; i++) col[i] = dlfs_im2col_at(g, x + (size_t)i0 * in_sz, ld, i);
        cpu_->gemm(false, true, g->oc, k, (int)ld, 1.0f, dzt, (int)ld, col, (int)ld, i0 ? 1.0f : 0.0f, dw, k);
        if (dx) {
            cpu_->gemm(true, false, k, (int)ld, g->oc, 1.0f, w, k, dzt, (int)ld, 0.0f, col, (int)ld);
            for (size_t i = 0; i < (size_t)s * in_sz; i++)
                dx[(size_t)i0 * in_sz + i] = dlfs_col2im_at(g, col, ld, i);
        }
    }
}

static void conv_case_(int c, int h, int w, int oc, int k, int stride, int pad, int n, size_t budget)
{
    struct dlfs_conv_geom g;
    t_conv_geom_(&g, c, h, w, oc, k, stride, pad);
    /* always a set budget (0: the shared default, 4 Mi floats), which the CPU op
     * then honours too instead of its smaller cache-sized chunks: dW is summed
     * chunk by chunk, so only equal chunks give equal bits */
    dlfs_conv_set_col_budget(budget ? budget : (size_t)1 << 22);
    const size_t nx = (size_t)n * c * h * w, nw = (size_t)oc * c * k * k, nz = (size_t)n * oc * g.oh * g.ow;
    const size_t ncol = dlfs_conv_col_floats(&g, n);
    float *x = rnd_(nx, 1), *wt = rnd_(nw, 0.5), *b = rnd_((size_t)oc, 1), *dz = rnd_(nz, 1);
    float *col = t_guarded_(ncol), *ccol = t_guarded_(ncol);
    float *z = t_guarded_(nz), *a = t_guarded_(nz), *cz = t_guarded_(nz), *ca = t_guarded_(nz);
    float *dw = t_guarded_(nw), *db = t_guarded_((size_t)oc), *dx = t_guarded_(nx);
    float *cdw = t_guarded_(nw), *cdb = t_guarded_((size_t)oc), *cdx = t_guarded_(nx);
    char what[128];
    snprintf(what, sizeof what, "conv c%d %dx%d oc%d k%d s%d p%d n%d chunk %d", c, h, w, oc, k, stride, pad, n,
             dlfs_conv_chunk(&g, n));
    for (int relu = 0; relu < 2; relu++) {
        emu_conv_fwd_(&g, n, x, wt, b, col, z, a, relu);
        cpu_->conv2d_fwd(&g, n, x, wt, b, ccol, cz, ca, relu ? DLFS_ACT_RELU : DLFS_ACT_NONE);
        CHECK(diff_bits_("z", z, cz, nz, sizeof *z) == 0, "%s relu=%d: z differs from the CPU's", what, relu);
        CHECK(diff_bits_("a", a, ca, nz, sizeof *a) == 0, "%s relu=%d: act differs from the CPU's", what, relu);
    }
    emu_conv_bwd_(&g, n, x, wt, dz, col, dw, db, dx);
    cpu_->conv2d_bwd(&g, n, x, wt, dz, ccol, cdw, cdb, cdx);
    CHECK(diff_bits_("dw", dw, cdw, nw, sizeof *dw) == 0, "%s: dw differs from the CPU's", what);
    CHECK(diff_bits_("dx", dx, cdx, nx, sizeof *dx) == 0, "%s: dx (col2im gather) differs from the CPU's", what);
    double *wdb = malloc((size_t)oc * sizeof *wdb);
    for (int o = 0; o < oc; o++) wdb[o] = cdb[o];
    t_close_("db", db, wdb, (size_t)oc, 1e-5, 1e-5);
    /* dx NULL: dw alone */
    emu_conv_bwd_(&g, n, x, wt, dz, col, dw, db, NULL);
    CHECK(diff_bits_("dw", dw, cdw, nw, sizeof *dw) == 0, "%s: dw without dx differs", what);
    CHECK(t_guard_ok_(col, ncol) && t_guard_ok_(z, nz) && t_guard_ok_(a, nz) && t_guard_ok_(dw, nw) &&
              t_guard_ok_(db, (size_t)oc) && t_guard_ok_(dx, nx),
          "%s: the kernel code wrote out of bounds", what);
    if (t_failures_ == 0) printf("  ok  %s\n", what);
    free(x); free(wt); free(b); free(dz); free(wdb);
    t_guarded_free_(col); t_guarded_free_(ccol); t_guarded_free_(z); t_guarded_free_(a);
    t_guarded_free_(cz); t_guarded_free_(ca); t_guarded_free_(dw); t_guarded_free_(db); t_guarded_free_(dx);
    t_guarded_free_(cdw); t_guarded_free_(cdb); t_guarded_free_(cdx);
    dlfs_conv_set_col_budget(0);
}

/* pool.cu: one call per output (fwd) and per input pixel (bwd). Inputs from a
 * few integer values, so windows have ties (the first maximum must win). */
static void pool_case_(int c, int h, int w, int k, int stride, int pad, int n)
{
    struct dlfs_conv_geom g;
    t_conv_geom_(&g, c, h, w, c, k, stride, pad);
    const size_t nx = (size_t)n * c * h * w, ny = (size_t)n * c * g.oh * g.ow;
    float *x = malloc(nx * sizeof *x), *dy = rnd_(ny, 1);
    for (size_t i = 0; i < nx; i++) x[i] = (float)(int)(3.0 * t_rand_(&seed_));
    float *y = t_guarded_(ny), *cy = t_guarded_(ny), *dx = t_guarded_(nx), *cdx = t_guarded_(nx);
    int32_t *arg = malloc(ny * sizeof *arg), *carg = malloc(ny * sizeof *carg);
    for (size_t i = 0; i < ny; i++) dlfs_maxpool_fwd_at(&g, x, y, arg, i);
    cpu_->maxpool_fwd(&g, n, x, cy, carg);
    for (size_t i = 0; i < nx; i++) dx[i] = dlfs_maxpool_bwd_at(&g, dy, arg, i);
    cpu_->maxpool_bwd(&g, n, dy, carg, cdx);
    char what[96];
    snprintf(what, sizeof what, "maxpool c%d %dx%d k%d s%d p%d n%d", c, h, w, k, stride, pad, n);
    CHECK(diff_bits_("y", y, cy, ny, sizeof *y) == 0, "%s: y differs", what);
    CHECK(diff_bits_("arg", arg, carg, ny, sizeof *arg) == 0, "%s: arg differs (first maximum?)", what);
    CHECK(diff_bits_("dx", dx, cdx, nx, sizeof *dx) == 0, "%s: dx (gather) differs from the CPU's scatter", what);
    CHECK(t_guard_ok_(y, ny) && t_guard_ok_(dx, nx), "%s: out of bounds", what);
    if (t_failures_ == 0) printf("  ok  %s\n", what);
    free(x); free(dy); free(arg); free(carg);
    t_guarded_free_(y); t_guarded_free_(cy); t_guarded_free_(dx); t_guarded_free_(cdx);
}

/* vec.cu's dropout: masks bit-identical to the CPU's for any row order */
static void dropout_case_(int rows, int cols, float rate, uint64_t key)
{
    const size_t n = (size_t)rows * cols;
    float *x = rnd_(n, 2), *y = t_guarded_(n), *m = t_guarded_(n), *cy = t_guarded_(n), *cm = t_guarded_(n);
    uint32_t *ids = malloc((size_t)rows * sizeof *ids);
    for (int r = 0; r < rows; r++) ids[r] = (uint32_t)(r * 2654435761u + 12345u);
    const float keep = 1.0f / (1.0f - rate);
    for (size_t i = 0; i < n; i++) dlfs_dropout_at(x, y, m, cols, rate, keep, key, ids, i);
    cpu_->dropout_fwd(x, cy, cm, rows, cols, rate, key, ids);
    char what[80];
    snprintf(what, sizeof what, "dropout %dx%d rate %g", rows, cols, (double)rate);
    CHECK(diff_bits_("mask", m, cm, n, sizeof *m) == 0, "%s: mask differs", what);
    CHECK(diff_bits_("y", y, cy, n, sizeof *y) == 0, "%s: y differs", what);
    CHECK(t_guard_ok_(y, n) && t_guard_ok_(m, n), "%s: out of bounds", what);
    if (t_failures_ == 0) printf("  ok  %s\n", what);
    free(x); free(ids);
    t_guarded_free_(y); t_guarded_free_(m); t_guarded_free_(cy); t_guarded_free_(cm);
}

static void test_rng(void)
{
    size_t bad = 0;
    for (uint64_t i = 0; i < 100000; i++) {
        const uint64_t key = i * 0x9e3779b97f4a7c15ULL ^ (i << 7), ctr = i * i + (i >> 3);
        bad += dlfs_hash64_hd_(key, ctr) != dlfs_hash64(key, ctr);
        bad += dlfs_uniform01_hd_(key, ctr) != dlfs_uniform01(key, ctr);
    }
    CHECK(bad == 0, "rng-hd.h and dlfs_hash64/dlfs_uniform01 disagree %zu times", bad);
    /* extremes of the 24-bit draw */
    const float u = dlfs_uniform01_hd_(~0ULL, ~0ULL);
    CHECK(u >= 0.0f && u < 1.0f, "uniform01 out of [0, 1): %g", (double)u);
    if (t_failures_ == 0) printf("  ok  rng-hd.h == dlfs_hash64/dlfs_uniform01 (100000 draws)\n");
}

int main(void)
{
    cpu_ = dlfs_backend_cpu();
    if (cpu_->set_threads) cpu_->set_threads(1); /* one BLAS order on both sides */
    test_rng();
    /*         c  h   w  oc k  s  p  n  col budget (0: default) */
    conv_case_(1, 5, 5, 2, 3, 1, 0, 1, 0);
    conv_case_(3, 7, 6, 4, 3, 2, 2, 3, 0);
    conv_case_(2, 9, 9, 3, 5, 1, 2, 2, 0);
    conv_case_(2, 4, 5, 3, 1, 1, 0, 2, 0);   /* 1x1 */
    conv_case_(2, 4, 5, 3, 1, 2, 0, 3, 0);   /* 1x1 stride 2: pixels no tap reads */
    conv_case_(1, 3, 3, 2, 5, 1, 2, 1, 0);   /* kernel larger than the image */
    conv_case_(3, 11, 8, 5, 4, 2, 0, 2, 0);  /* even kernel, stride 2, leftover column */
    conv_case_(2, 13, 11, 3, 5, 2, 0, 3, 0); /* k5 s2 p0, odd sizes */
    conv_case_(2, 13, 11, 3, 5, 2, 2, 5, 0); /* k5 s2 p2 */
    conv_case_(3, 7, 6, 4, 3, 2, 2, 3, 1);   /* one image per chunk */
    conv_case_(3, 7, 6, 4, 3, 2, 2, 3, 2 * 27 * 5 * 4); /* chunks of 2 + 1 */
    conv_case_(2, 9, 9, 3, 5, 1, 2, 7, 2 * 50 * 81);    /* chunks of 2, 2, 2, 1 */
    conv_case_(1, 28, 28, 8, 5, 1, 2, 4, 0); /* the cnn's first layer, narrower */
    /*         c  h  w  k  s  n */
    pool_case_(3, 6, 6, 2, 2, 0, 2);
    pool_case_(2, 7, 5, 2, 2, 0, 1);         /* odd sizes: last row/column dropped */
    pool_case_(2, 7, 7, 3, 2, 0, 3);         /* overlapping windows */
    pool_case_(2, 8, 9, 3, 1, 0, 2);         /* stride 1: up to 9 windows per pixel */
    pool_case_(1, 9, 10, 2, 3, 0, 2);        /* stride > kernel: pixels in no window */
    pool_case_(2, 5, 5, 1, 1, 0, 1);         /* 1x1 */
    pool_case_(4, 28, 28, 2, 2, 0, 3);
    pool_case_(3, 9, 8, 3, 2, 1, 2);         /* padding: resnet50's stem pool 3x3/2 pad 1 */
    pool_case_(2, 7, 7, 3, 1, 1, 2);         /* padding, stride 1 */
    pool_case_(2, 6, 7, 2, 2, 1, 1);         /* padding, even kernel */
    dropout_case_(1, 1, 0.5f, 1);
    dropout_case_(7, 1000, 0.3f, 99);
    dropout_case_(5, 33, 0.0f, 12345);
    dropout_case_(3, 517, 0.9f, 0xdeadbeefcafef00dULL);
    T_DONE();
}
