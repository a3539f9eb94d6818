/* The convolution and pooling ops of every backend this build has a table for,
 * against float64 references; gradients against central finite differences of
 * the float64 function L = sum(r * op(x)) for a random r. Odd sizes, stride 2,
 * padding 0 and 2, batch 1, and sentinels around every output. */
#include <cblas.h> /* openblas_get_num_threads: the CPU backend lends its threads to conv */
#include <math.h>
#include <string.h>
#include "dlfs/backend.h"
#include "dlfs/util.h"
#include "backend/test-support.h"
#include "testutil.h"

static unsigned long long seed_ = 1234;

static double *to_d_(const float *f, size_t n)
{
    double *d = malloc(n * sizeof *d);
    for (size_t i = 0; i < n; i++) d[i] = f[i];
    return d;
}

/* float64 convolution: z(n, oc, oh, ow) */
static void conv_ref_(const struct dlfs_conv_geom *g, int n, const double *x, const double *w, const double *b,
                      double *z)
{
    for (int i = 0; i < n; i++)
        for (int o = 0; o < g->oc; o++)
            for (int oy = 0; oy < g->oh; oy++)
                for (int ox = 0; ox < g->ow; ox++) {
                    double acc = b[o];
                    for (int c = 0; c < g->c; c++)
                        for (int ki = 0; ki < g->kh; ki++)
                            for (int kj = 0; kj < g->kw; kj++) {
                                const int iy = oy * g->stride - g->pad + ki, ix = ox * g->stride - g->pad + kj;
                                if (iy < 0 || iy >= g->h || ix < 0 || ix >= g->w) continue;
                                acc += w[((o * g->c + c) * g->kh + ki) * g->kw + kj] *
                                       x[((size_t)(i * g->c + c) * g->h + iy) * g->w + ix];
                            }
                    z[((size_t)(i * g->oc + o) * g->oh + oy) * g->ow + ox] = acc;
                }
}

static double dot_(const double *a, const double *b, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

/* L = sum(r * conv(x, w, b)) in float64 */
static double conv_loss_(const struct dlfs_conv_geom *g, int n, const double *x, const double *w, const double *b,
                         const double *r, double *tmp)
{
    conv_ref_(g, n, x, w, b, tmp);
    return dot_(tmp, r, (size_t)n * g->oc * g->oh * g->ow);
}

/* central differences of f at every element of v (n values), into out */
#define FD_(v, count, out, expr)                                 \
    for (size_t i_ = 0; i_ < (count); i_++) {                    \
        const double keep_ = (v)[i_], h_ = 1e-4;                 \
        (v)[i_] = keep_ + h_;                                    \
        const double lp_ = (expr);                               \
        (v)[i_] = keep_ - h_;                                    \
        const double lm_ = (expr);                               \
        (v)[i_] = keep_;                                         \
        (out)[i_] = (lp_ - lm_) / (2 * h_);                      \
    }

/* bias 0: the conv without one (b and db NULL), against the reference with b = 0 */
/* long: forward and backward of one geometry against float64 and finite differences, in sequence */
static void test_conv_b(const struct dlfs_backend *be, int c, int h, int w, int oc, int k, int stride, int pad,
                        int n, int bias)
{
    struct dlfs_conv_geom g;
    t_conv_geom_(&g, c, h, w, oc, k, stride, pad);
    const size_t nx = (size_t)n * c * h * w, nw = (size_t)oc * c * k * k, nz = (size_t)n * oc * g.oh * g.ow;
    float *x = t_rand_floats_(&seed_, nx, 1), *wt = t_rand_floats_(&seed_, nw, 0.5), *b = t_rand_floats_(&seed_, (size_t)oc, 0.5), *r = t_rand_floats_(&seed_, nz, 1);
    if (!bias) memset(b, 0, (size_t)oc * sizeof *b);
    double *xd = to_d_(x, nx), *wd = to_d_(wt, nw), *bd = to_d_(b, (size_t)oc), *rd = to_d_(r, nz);
    double *zref = malloc(nz * sizeof *zref), *aref = malloc(nz * sizeof *aref), *tmp = malloc(nz * sizeof *tmp);
    conv_ref_(&g, n, xd, wd, bd, zref);
    for (size_t i = 0; i < nz; i++) aref[i] = zref[i] > 0 ? zref[i] : 0;
    char what[128];
    snprintf(what, sizeof what, "conv c%d %dx%d oc%d k%d s%d p%d n%d%s", c, h, w, oc, k, stride, pad, n,
             bias ? "" : " no bias");

    float *dx = t_upload_(be, x, nx), *dw = t_upload_(be, wt, nw), *db = bias ? t_upload_(be, b, (size_t)oc) : NULL;
    float *col = be->alloc(dlfs_conv_col_floats(&g, n) * sizeof(float));
    float *dz = be->alloc(nz * sizeof(float)), *da = be->alloc(nz * sizeof(float));
    float *hz = t_guarded_(nz), *ha = t_guarded_(nz);
    be->conv2d_fwd(&g, n, dx, dw, db, col, dz, da, DLFS_ACT_RELU);
    t_download_(be, hz, dz, nz);
    t_download_(be, ha, da, nz);
    char m[160];
    snprintf(m, sizeof m, "%s fwd z", what);
    t_close_(m, hz, zref, nz, 1e-5, 1e-5);
    snprintf(m, sizeof m, "%s fwd relu", what);
    t_close_(m, ha, aref, nz, 1e-5, 1e-5);
    be->conv2d_fwd(&g, n, dx, dw, db, col, dz, dz, DLFS_ACT_NONE); /* in place without activation */
    t_download_(be, hz, dz, nz);
    snprintf(m, sizeof m, "%s fwd none", what);
    t_close_(m, hz, zref, nz, 1e-5, 1e-5);
    CHECK(t_guard_ok_(hz, nz) && t_guard_ok_(ha, nz), "%s guard", what);

    /* backward with dz = r: gradients of L = sum(r * z) */
    be->to_device(dz, r, nz * sizeof(float));
    float *gw = be->alloc(nw * sizeof(float)), *gb = bias ? be->alloc((size_t)oc * sizeof(float)) : NULL;
    float *gx = be->alloc(nx * sizeof(float));
    be->fill(gw, 7.0f, nw); /* must be overwritten, not accumulated */
    be->fill(gx, 7.0f, nx);
    be->conv2d_bwd(&g, n, dx, dw, dz, col, gw, gb, gx);
    float *hgw = t_guarded_(nw), *hgb = t_guarded_((size_t)oc), *hgx = t_guarded_(nx);
    t_download_(be, hgw, gw, nw);
    if (bias) t_download_(be, hgb, gb, (size_t)oc);
    t_download_(be, hgx, gx, nx);
    double *fw = malloc(nw * sizeof *fw), *fb = malloc((size_t)oc * sizeof *fb), *fx = malloc(nx * sizeof *fx);
    FD_(wd, nw, fw, conv_loss_(&g, n, xd, wd, bd, rd, tmp));
    FD_(bd, (size_t)oc, fb, conv_loss_(&g, n, xd, wd, bd, rd, tmp));
    FD_(xd, nx, fx, conv_loss_(&g, n, xd, wd, bd, rd, tmp));
    snprintf(m, sizeof m, "%s bwd dw vs finite differences", what);
    t_close_(m, hgw, fw, nw, 1e-4, 1e-4);
    snprintf(m, sizeof m, "%s bwd db vs finite differences", what);
    if (bias) t_close_(m, hgb, fb, (size_t)oc, 1e-4, 1e-4);
    snprintf(m, sizeof m, "%s bwd dx vs finite differences", what);
    t_close_(m, hgx, fx, nx, 1e-4, 1e-4);
    CHECK(t_guard_ok_(hgw, nw) && t_guard_ok_(hgb, (size_t)oc) && t_guard_ok_(hgx, nx), "%s bwd guard", what);
    /* dx may be NULL (the first layer) */
    be->fill(gw, 7.0f, nw);
    be->conv2d_bwd(&g, n, dx, dw, dz, col, gw, gb, NULL);
    t_download_(be, hgw, gw, nw);
    snprintf(m, sizeof m, "%s bwd dw without dx", what);
    t_close_(m, hgw, fw, nw, 1e-4, 1e-4);

    be->free(dx); be->free(dw); if (db) be->free(db); be->free(col); be->free(dz); be->free(da);
    be->free(gw); if (gb) be->free(gb); be->free(gx);
    t_guarded_free_(hz); t_guarded_free_(ha); t_guarded_free_(hgw); t_guarded_free_(hgb); t_guarded_free_(hgx);
    free(x); free(wt); free(b); free(r); free(xd); free(wd); free(bd); free(rd);
    free(zref); free(aref); free(tmp); free(fw); free(fb); free(fx);
}

static void test_conv(const struct dlfs_backend *be, int c, int h, int w, int oc, int k, int stride, int pad,
                      int n)
{
    test_conv_b(be, c, h, w, oc, k, stride, pad, n, 1);
}

static void pool_ref_(const struct dlfs_conv_geom *g, int n, const double *x, double *y)
{
    for (int q = 0; q < n * g->c; q++)
        for (int oy = 0; oy < g->oh; oy++)
            for (int ox = 0; ox < g->ow; ox++) {
                double m = -INFINITY; /* the padding: -inf, as PyTorch's max_pool2d */
                for (int i = 0; i < g->kh; i++)
                    for (int j = 0; j < g->kw; j++) {
                        const int iy = oy * g->stride - g->pad + i, ix = ox * g->stride - g->pad + j;
                        if (iy < 0 || iy >= g->h || ix < 0 || ix >= g->w) continue;
                        const double v = x[((size_t)q * g->h + iy) * g->w + ix];
                        if (v > m) m = v;
                    }
                y[((size_t)q * g->oh + oy) * g->ow + ox] = m;
            }
}

static void test_pool(const struct dlfs_backend *be, int c, int h, int w, int k, int stride, int pad, int n)
{
    struct dlfs_conv_geom g;
    t_conv_geom_(&g, c, h, w, c, k, stride, pad);
    const size_t nx = (size_t)n * c * h * w, ny = (size_t)n * c * g.oh * g.ow;
    float *x = t_rand_floats_(&seed_, nx, 1), *r = t_rand_floats_(&seed_, ny, 1);
    /* distinct values at least 2/nx apart (a shuffled ladder): no two in a window are
     * within the finite differences' step, which would split the gradient */
    for (size_t i = 0; i < nx; i++) x[i] = (float)(2.0 * (double)i / (double)nx - 1.0);
    for (size_t i = nx - 1; i > 0; i--) {
        const size_t j = (size_t)((t_rand_(&seed_) + 1.0) / 2.0 * (double)(i + 1)); /* t_rand_: [-1, 1) */
        const float t = x[i];
        x[i] = x[j];
        x[j] = t;
    }
    double *xd = to_d_(x, nx), *rd = to_d_(r, ny), *yref = malloc(ny * sizeof *yref);
    pool_ref_(&g, n, xd, yref);
    char what[96], m[160];
    snprintf(what, sizeof what, "maxpool c%d %dx%d k%d s%d p%d n%d", c, h, w, k, stride, pad, n);
    float *dx = t_upload_(be, x, nx), *dy = be->alloc(ny * sizeof(float));
    int32_t *arg = be->alloc(ny * sizeof(int32_t));
    be->maxpool_fwd(&g, n, dx, dy, arg);
    float *hy = t_guarded_(ny);
    t_download_(be, hy, dy, ny);
    snprintf(m, sizeof m, "%s fwd", what);
    t_close_(m, hy, yref, ny, 0, 0);
    CHECK(t_guard_ok_(hy, ny), "%s guard", what);
    be->to_device(dy, r, ny * sizeof(float));
    float *gx = be->alloc(nx * sizeof(float));
    be->fill(gx, 7.0f, nx);
    be->maxpool_bwd(&g, n, dy, arg, gx);
    float *hgx = t_guarded_(nx);
    t_download_(be, hgx, gx, nx);
    double *fx = malloc(nx * sizeof *fx), *tmp = malloc(ny * sizeof *tmp);
    FD_(xd, nx, fx, (pool_ref_(&g, n, xd, tmp), dot_(tmp, rd, ny)));
    snprintf(m, sizeof m, "%s bwd dx vs finite differences", what);
    t_close_(m, hgx, fx, nx, 1e-5, 1e-4);
    CHECK(t_guard_ok_(hgx, nx), "%s bwd guard", what);
    be->free(dx); be->free(dy); be->free(arg); be->free(gx);
    t_guarded_free_(hy); t_guarded_free_(hgx);
    free(x); free(r); free(xd); free(rd); free(yref); free(fx); free(tmp);
}

/* Dropout: the mask of a row depends on its sample index only (not its position
 * in the batch, hence not on the rank that holds it); keep rate ~ 1 - p. */
static void test_dropout(const struct dlfs_backend *be)
{
    if (!be->dropout_fwd || !be->mul) {
        printf("  no dropout ops: skipped\n");
        return;
    }
    const int rows = 4, cols = 1000;
    const size_t n = (size_t)rows * cols;
    const float rate = 0.3f;
    float *x = t_rand_floats_(&seed_, n, 1);
    uint32_t ids[4] = {17, 5, 123456, 9};
    float *dx = t_upload_(be, x, n), *dy = be->alloc(n * sizeof(float)), *dm = be->alloc(n * sizeof(float));
    uint32_t *did = be->alloc(sizeof ids);
    be->to_device(did, ids, sizeof ids);
    be->dropout_fwd(dx, dy, dm, rows, cols, rate, 99, did);
    float *y = malloc(n * sizeof *y), *mask = malloc(n * sizeof *mask);
    t_download_(be, y, dy, n);
    t_download_(be, mask, dm, n);
    size_t kept = 0, bad = 0;
    for (int r = 0; r < rows; r++)
        for (int j = 0; j < cols; j++) {
            const size_t i = (size_t)r * cols + j;
            const int keep = dlfs_uniform01(dlfs_hash64(99, ids[r]), (uint64_t)j) >= rate;
            const float want = keep ? 1.0f / (1.0f - rate) : 0.0f;
            kept += keep;
            bad += mask[i] != want || y[i] != x[i] * want;
        }
    CHECK(bad == 0, "dropout: %zu values differ from the keyed draw", bad);
    CHECK(kept > 0.65 * n && kept < 0.75 * n, "dropout kept %zu of %zu at rate %.1f", kept, n, (double)rate);
    /* row 2 alone (another rank's batch) draws the same mask */
    be->dropout_fwd(dx + 2 * cols, dy, dm, 1, cols, rate, 99, did + 2);
    float *m1 = malloc((size_t)cols * sizeof *m1);
    t_download_(be, m1, dm, (size_t)cols);
    CHECK(memcmp(m1, mask + 2 * cols, (size_t)cols * sizeof *m1) == 0, "dropout mask depends on the row position");
    /* backward: y *= mask */
    be->to_device(dy, x, n * sizeof(float));
    be->to_device(dm, mask, n * sizeof(float));
    be->mul(n, dm, dy);
    t_download_(be, y, dy, n);
    bad = 0;
    for (size_t i = 0; i < n; i++) bad += y[i] != x[i] * mask[i];
    CHECK(bad == 0, "mul: %zu values differ", bad);
    be->free(dx); be->free(dy); be->free(dm); be->free(did);
    free(x); free(y); free(mask); free(m1);
}

/* Batch norm in groups: one call over groups of 2 rows (the last one short)
 * equals separate calls per group, and stats sums the groups' mean/variance. */
static void test_bn_groups(const struct dlfs_backend *be)
{
    if (!be->batchnorm_fwd || !be->batchnorm_bwd) {
        printf("  no batchnorm ops: skipped\n");
        return;
    }
    const int n = 5, c = 3, plane = 7, group = 2;
    const size_t img = (size_t)c * plane, nx = n * img;
    float *x = t_rand_floats_(&seed_, nx, 2), *gm = t_rand_floats_(&seed_, (size_t)c, 1), *bt = t_rand_floats_(&seed_, (size_t)c, 1), *r = t_rand_floats_(&seed_, nx, 1);
    float *dx = t_upload_(be, x, nx), *dg = t_upload_(be, gm, (size_t)c), *db = t_upload_(be, bt, (size_t)c), *dr = t_upload_(be, r, nx);
    float *xh = be->alloc(nx * sizeof(float)), *is = be->alloc((size_t)n * c * sizeof(float));
    float *z = be->alloc(nx * sizeof(float)), *a = be->alloc(nx * sizeof(float));
    float *st = be->alloc(2 * (size_t)c * sizeof(float)), *gx = be->alloc(nx * sizeof(float));
    float *gg = be->alloc((size_t)c * sizeof(float)), *gb = be->alloc((size_t)c * sizeof(float));
    be->fill(st, 0.0f, 2 * (size_t)c);
    be->batchnorm_fwd(n, c, plane, group, dx, dg, db, NULL, NULL, 1e-5f, xh, is, z, a, DLFS_ACT_RELU, st);
    be->batchnorm_bwd(n, c, plane, group, dr, xh, is, dg, gg, gb, gx);
    float *hz = malloc(nx * sizeof *hz), *hgx = malloc(nx * sizeof *hgx), hst[6], hgg[3], hgb[3];
    t_download_(be, hz, a, nx); t_download_(be, hgx, gx, nx); t_download_(be, hst, st, 6); t_download_(be, hgg, gg, 3); t_download_(be, hgb, gb, 3);
    double *wz = malloc(nx * sizeof *wz), *wgx = malloc(nx * sizeof *wgx), wst[6] = {0}, wgg[3] = {0}, wgb[3] = {0};
    for (int g0 = 0; g0 < n; g0 += group) {
        const int rows = n - g0 < group ? n - g0 : group;
        be->fill(st, 0.0f, 6);
        be->batchnorm_fwd(rows, c, plane, 0, dx + g0 * img, dg, db, NULL, NULL, 1e-5f, xh, is, z, a, DLFS_ACT_RELU, st);
        be->batchnorm_bwd(rows, c, plane, 0, dr + g0 * img, xh, is, dg, gg, gb, gx);
        float *t = malloc(rows * img * sizeof *t), s6[6], g3[3], b3[3];
        t_download_(be, t, a, rows * img);
        for (size_t i = 0; i < rows * img; i++) wz[g0 * img + i] = t[i];
        t_download_(be, t, gx, rows * img);
        for (size_t i = 0; i < rows * img; i++) wgx[g0 * img + i] = t[i];
        t_download_(be, s6, st, 6); t_download_(be, g3, gg, 3); t_download_(be, b3, gb, 3);
        for (int i = 0; i < 6; i++) wst[i] += s6[i];
        for (int i = 0; i < 3; i++) { wgg[i] += g3[i]; wgb[i] += b3[i]; }
        free(t);
    }
    t_close_("batchnorm groups fwd", hz, wz, nx, 1e-6, 1e-6);
    t_close_("batchnorm groups dx", hgx, wgx, nx, 1e-6, 1e-6);
    t_close_("batchnorm groups stats", hst, wst, 6, 1e-6, 1e-6);
    t_close_("batchnorm groups dgamma", hgg, wgg, 3, 1e-5, 1e-5);
    t_close_("batchnorm groups dbeta", hgb, wgb, 3, 1e-5, 1e-5);
    /* evaluation with running statistics: (x - mean) / sqrt(var + eps) * gamma + beta */
    float rm[3] = {0.5f, -1.0f, 0.0f}, rv[3] = {1.0f, 4.0f, 0.25f};
    float *drm = t_upload_(be, rm, 3), *drv = t_upload_(be, rv, 3);
    be->batchnorm_fwd(n, c, plane, 0, dx, dg, db, drm, drv, 1e-5f, NULL, NULL, z, z, DLFS_ACT_NONE, NULL);
    t_download_(be, hz, z, nx);
    for (size_t i = 0; i < nx; i++) {
        const int ch = (int)(i / plane % c);
        wz[i] = gm[ch] * (x[i] - rm[ch]) / sqrt(rv[ch] + 1e-5) + bt[ch];
    }
    t_close_("batchnorm eval", hz, wz, nx, 1e-5, 1e-5);
    be->free(dx); be->free(dg); be->free(db); be->free(dr); be->free(xh); be->free(is); be->free(z); be->free(a);
    be->free(st); be->free(gx); be->free(gg); be->free(gb); be->free(drm); be->free(drv);
    free(x); free(gm); free(bt); free(r); free(hz); free(hgx); free(wz); free(wgx);
}

static void conv_cases_(const struct dlfs_backend *be)
{
    /*        c  h  w  oc k  s  p  n */
    test_conv(be, 1, 5, 5, 2, 3, 1, 0, 1);
    test_conv(be, 3, 7, 6, 4, 3, 2, 2, 3);
    test_conv(be, 2, 9, 9, 3, 5, 1, 2, 2);
    test_conv(be, 2, 4, 5, 3, 1, 1, 0, 2);  /* 1x1 */
    test_conv(be, 1, 3, 3, 2, 5, 1, 2, 1);  /* kernel larger than the image, padding makes it fit */
    test_conv(be, 3, 11, 8, 5, 4, 2, 0, 2); /* even kernel, stride 2, odd leftover column */
    /* several chunks: one image per chunk, then 2 + 1 (a partial last chunk) */
    dlfs_conv_set_col_budget(1);
    test_conv(be, 3, 7, 6, 4, 3, 2, 2, 3);
    test_conv(be, 4, 6, 5, 3, 1, 1, 0, 3);  /* 1x1 one image a chunk: x and dx straight in the GEMMs */
    dlfs_conv_set_col_budget(2 * 27 * 5 * 4); /* k = 27, plane = 5 x 4 */
    test_conv(be, 3, 7, 6, 4, 3, 2, 2, 3);
    dlfs_conv_set_col_budget(0);
    test_conv(be, 2, 6, 5, 3, 3, 1, 1, 7);  /* 7 images: 2 + 2 + 3 on three threads */
    test_conv_b(be, 2, 6, 5, 3, 3, 2, 1, 7, 0); /* without bias (b, db NULL), threads' partial sums */
    test_conv_b(be, 3, 5, 4, 4, 1, 1, 0, 2, 0);
    dlfs_conv_set_col_budget(2 * 18 * 30);  /* k = 18, plane = 6 x 5: two images a chunk */
    test_conv(be, 2, 6, 5, 3, 3, 1, 1, 7);
    dlfs_conv_set_col_budget(0);
}

int main(void)
{
    const struct dlfs_backend *backends[] = {dlfs_backend_cpu()};
    for (size_t i = 0; i < sizeof backends / sizeof backends[0]; i++) {
        const struct dlfs_backend *be = backends[i];
        printf("backend %s\n", be->name);
        if (be->set_threads) be->set_threads(1);
        if (!be->conv2d_fwd || !be->maxpool_fwd) {
            printf("  no conv/maxpool ops: skipped\n");
            continue;
        }
        /* one thread, then three: the CPU splits a batch by images across its threads
         * (uneven shares, fewer images than threads, several chunks per thread) */
        for (int threads = 1; threads <= 3; threads += 2) {
            if (threads > 1 && !be->set_threads) break;
            if (be->set_threads) be->set_threads(threads);
            printf("  conv, %d thread(s)\n", threads);
            conv_cases_(be);
            /* the op borrows BLAS's threads (one-thread BLAS inside) and gives all back,
             * also after batches with fewer images than threads */
            if (strcmp(be->name, "cpu") == 0)
                CHECK(openblas_get_num_threads() == threads, "BLAS threads after the conv ops: %d, want %d",
                      openblas_get_num_threads(), threads);
        }
        if (be->set_threads) be->set_threads(1);
        test_pool(be, 3, 6, 6, 2, 2, 0, 2);
        test_pool(be, 2, 7, 5, 2, 2, 0, 1);      /* odd sizes: the last row/column is dropped */
        test_pool(be, 2, 7, 7, 3, 2, 0, 3);      /* overlapping windows */
        test_pool(be, 3, 9, 8, 3, 2, 1, 2);      /* padding: resnet50's stem pool 3x3/2 pad 1 */
        test_pool(be, 2, 6, 7, 2, 2, 1, 1);      /* padding, even kernel: windows half outside */
        test_dropout(be);
        test_bn_groups(be);
    }
    T_DONE();
}
