/* The CPU backend's ops that it splits across the rank's threads when they are large
 * (src/README.md, "The CPU convolution": cpu_parallel_for): batch norm by channels
 * with its fused ReLU, max pooling by planes, bias + activation, its backward, add and
 * axpy by ranges. Each at sizes over the one-thread grain, on 3 threads (uneven
 * shares), against float64 and bit for bit against one thread; every output is filled
 * with a sentinel before each run, so a range a thread leaves out cannot pass on the
 * values of the run before. */
#include <math.h>
#include <string.h>
#include "dlfs/backend.h"
#include "testutil.h"

static unsigned long long seed_ = 4321;

static double *to_d_(const float *f, size_t n)
{
    double *d = malloc(n * sizeof *d);
    for (size_t i = 0; i < n; i++) d[i] = f[i];
    return d;
}

/* float64 max pooling, the padding -inf */
static void pool_ref_(const struct dlfs_conv_geom *g, int n, const double *x, double *y)
{
    for (int q = 0; q < n * g->c; q++)
        for (int oy = 0; oy < g->oh; oy++)
            for (int ox = 0; ox < g->ow; ox++) {
                double m = -INFINITY;
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

/* Batch norm large enough that the CPU splits its channels across threads (a
 * channel of 8 x 4100 values is over the one-thread grain; 5 channels on 3 threads:
 * uneven shares): with a fused relu, against float64 (the statistics, relu of the
 * affine output, the backward formula), and the same bits on every thread count. */
static void bn_run_(const struct dlfs_backend *be, int n, int c, int plane, float *const d[6], float *const o[8],
                    float *h[5])
{
    const size_t nx = (size_t)n * c * plane, on[8] = {nx, (size_t)c, nx, nx, (size_t)c, (size_t)c, 0, nx};
    for (int i = 0; i < 8; i++) be->fill(o[i], 7.0f, on[i]); /* no output left from the run before */
    be->fill(o[6], 0.0f, 2 * (size_t)c);
    be->batchnorm_fwd(n, c, plane, 0, d[0], d[1], d[2], NULL, NULL, 1e-5f, o[0], o[1], o[2], o[3], DLFS_ACT_RELU,
                      o[6]);
    be->batchnorm_bwd(n, c, plane, 0, d[3], o[0], o[1], d[1], o[4], o[5], o[7]);
    be->batchnorm_fwd(n, c, plane, 0, d[0], d[1], d[2], d[4], d[5], 1e-5f, NULL, NULL, o[2], o[0], DLFS_ACT_RELU,
                      NULL);
    t_download_(be, h[0], o[3], nx);       /* a, training */
    t_download_(be, h[1], o[7], nx);       /* dx */
    t_download_(be, h[2], o[4], (size_t)c); /* dgamma, then dbeta */
    t_download_(be, h[2] + c, o[5], (size_t)c);
    t_download_(be, h[3], o[0], nx); /* a, evaluation */
    t_download_(be, h[4], o[6], 2 * (size_t)c);
}

/* float64 batch norm of channel ch: a (training and evaluation), dx, dgamma, dbeta */
static void bn_ref_(int n, int c, int plane, int ch, const float *x, const float *g, const float *b, const float *r,
                    const float *rm, const float *rv, double *w[4], double *st)
{
    double s = 0, s2 = 0, sd = 0, sdh = 0;
    const double cnt = (double)n * plane;
#define BN_AT_(i, p) (((size_t)(i) * c + ch) * plane + (p))
    for (int i = 0; i < n; i++)
        for (int p = 0; p < plane; p++) s += x[BN_AT_(i, p)];
    const double mean = s / cnt;
    for (int i = 0; i < n; i++)
        for (int p = 0; p < plane; p++) s2 += (x[BN_AT_(i, p)] - mean) * (x[BN_AT_(i, p)] - mean);
    const double is = 1 / sqrt(s2 / cnt + 1e-5), eis = 1 / sqrt(rv[ch] + 1e-5);
    st[ch] = mean, st[c + ch] = s2 / (cnt - 1);
    for (int i = 0; i < n; i++)
        for (int p = 0; p < plane; p++) {
            const size_t at = BN_AT_(i, p);
            const double h = (x[at] - mean) * is, z = g[ch] * h + b[ch], ze = g[ch] * (x[at] - rm[ch]) * eis + b[ch];
            w[0][at] = z > 0 ? z : 0, w[3][at] = ze > 0 ? ze : 0;
            sd += r[at], sdh += r[at] * h;
        }
    w[2][ch] = sdh, w[2][c + ch] = sd;
    for (int i = 0; i < n; i++)
        for (int p = 0; p < plane; p++) {
            const size_t at = BN_AT_(i, p);
            w[1][at] = g[ch] * is * (r[at] - sd / cnt - (x[at] - mean) * is * sdh / cnt);
        }
#undef BN_AT_
}

static void test_bn_threads(const struct dlfs_backend *be)
{
    if (!be->batchnorm_fwd || !be->batchnorm_bwd || !be->set_threads) return;
    const int n = 8, c = 5, plane = 4100;
    const size_t nx = (size_t)n * c * plane;
    float *x = t_rand_floats_(&seed_, nx, 2), *g = t_rand_floats_(&seed_, (size_t)c, 1);
    float *b = t_rand_floats_(&seed_, (size_t)c, 1), *r = t_rand_floats_(&seed_, nx, 1);
    float rm[5] = {0.5f, -1.0f, 0.0f, 0.25f, 2.0f}, rv[5] = {1.0f, 4.0f, 0.25f, 2.0f, 0.5f};
    float *d[6] = {t_upload_(be, x, nx), t_upload_(be, g, (size_t)c), t_upload_(be, b, (size_t)c),
                   t_upload_(be, r, nx), t_upload_(be, rm, (size_t)c), t_upload_(be, rv, (size_t)c)};
    float *o[8], *h[2][5];
    const size_t on[8] = {nx, (size_t)c, nx, nx, (size_t)c, (size_t)c, 2 * (size_t)c, nx};
    for (int i = 0; i < 8; i++) o[i] = be->alloc(on[i] * sizeof(float));
    const size_t hn[5] = {nx, nx, 2 * (size_t)c, nx, 2 * (size_t)c};
    for (int t = 0; t < 2; t++) {
        for (int i = 0; i < 5; i++) h[t][i] = malloc(hn[i] * sizeof(float));
        be->set_threads(t ? 3 : 1);
        bn_run_(be, n, c, plane, d, o, h[t]);
    }
    be->set_threads(1);
    double *w[4] = {malloc(nx * sizeof(double)), malloc(nx * sizeof(double)), malloc(2 * c * sizeof(double)),
                    malloc(nx * sizeof(double))}, st[10];
    for (int ch = 0; ch < c; ch++) bn_ref_(n, c, plane, ch, x, g, b, r, rm, rv, w, st);
    t_close_("batchnorm threads: relu(bn(x))", h[1][0], w[0], nx, 1e-5, 1e-5);
    t_close_("batchnorm threads: dx", h[1][1], w[1], nx, 1e-5, 1e-4);
    t_close_("batchnorm threads: dgamma, dbeta", h[1][2], w[2], 2 * (size_t)c, 1e-3, 1e-5);
    t_close_("batchnorm threads: evaluation relu(bn(x))", h[1][3], w[3], nx, 1e-5, 1e-5);
    t_close_("batchnorm threads: batch mean, variance", h[1][4], st, 2 * (size_t)c, 1e-6, 1e-5);
    for (int i = 0; i < 5; i++)
        CHECK(memcmp(h[0][i], h[1][i], hn[i] * sizeof(float)) == 0, "batchnorm output %d: 3 threads differ from 1\n",
              i);
    for (int i = 0; i < 8; i++) be->free(o[i]);
    for (int i = 0; i < 6; i++) be->free(d[i]);
    for (int t = 0; t < 2; t++)
        for (int i = 0; i < 5; i++) free(h[t][i]);
    for (int i = 0; i < 4; i++) free(w[i]);
    free(x), free(g), free(b), free(r);
}

/* The element-wise ops around the convolutions (bias + relu, its backward, the
 * residual add, axpy) at sizes the CPU splits across 3 threads (rows whole for a
 * bias of several columns, anywhere for one column): against float64 and bit for
 * bit against one thread. */
static void ew_run_(const struct dlfs_backend *be, int rows, int cols, float *const d[4], float *const o[4],
                    float *h[5])
{
    const size_t n = (size_t)rows * cols;
    for (int i = 1; i < 4; i++) be->fill(o[i], 7.0f, n); /* no output left from the run before */
    be->copy(o[0], d[0], n * sizeof(float));
    be->bias_act_fwd(o[0], o[1], d[1], rows, cols, DLFS_ACT_RELU); /* z += bias[col], a = relu(z) */
    be->act_bwd(o[2], d[2], o[0], o[1], n, DLFS_ACT_RELU);          /* dz = z > 0 ? da : 0 */
    be->add(n, d[0], d[2], o[3]);                                   /* x + da */
    be->axpy(n, 0.5f, d[2], o[3]);                                  /* + da / 2 */
    for (int i = 0; i < 4; i++) t_download_(be, h[i], o[i], n);
    be->fill(o[3], 7.0f, n); /* a copy of 512 KiB and up is split too */
    be->copy(o[3], d[0], n * sizeof(float));
    t_download_(be, h[4], o[3], n);
}

static void test_elementwise_threads(const struct dlfs_backend *be)
{
    if (!be->set_threads) return;
    const int shapes[2][2] = {{300, 701}, {200003, 1}};
    for (int sh = 0; sh < 2; sh++) {
        const int rows = shapes[sh][0], cols = shapes[sh][1];
        const size_t n = (size_t)rows * cols;
        float *x = t_rand_floats_(&seed_, n, 2), *bias = t_rand_floats_(&seed_, (size_t)cols, 1);
        float *da = t_rand_floats_(&seed_, n, 1);
        float *d[4] = {t_upload_(be, x, n), t_upload_(be, bias, (size_t)cols), t_upload_(be, da, n), NULL}, *o[4], *h[2][5];
        for (int i = 0; i < 4; i++) o[i] = be->alloc(n * sizeof(float));
        for (int t = 0; t < 2; t++) {
            for (int i = 0; i < 5; i++) h[t][i] = malloc(n * sizeof(float));
            be->set_threads(t ? 3 : 1);
            ew_run_(be, rows, cols, d, o, h[t]);
        }
        be->set_threads(1);
        double *w[4];
        for (int i = 0; i < 4; i++) w[i] = malloc(n * sizeof(double));
        for (size_t i = 0; i < n; i++) {
            const float z = x[i] + bias[i % (size_t)cols];
            w[0][i] = z, w[1][i] = z > 0 ? z : 0, w[2][i] = z > 0 ? da[i] : 0;
            w[3][i] = (double)(x[i] + da[i]) + 0.5 * da[i];
        }
        const char *what[4] = {"bias_act z", "bias_act relu", "act_bwd relu", "add + axpy"};
        for (int i = 0; i < 4; i++) {
            t_close_(what[i], h[1][i], w[i], n, 1e-6, 1e-6);
            CHECK(memcmp(h[0][i], h[1][i], n * sizeof(float)) == 0, "%s (%d x %d): 3 threads differ from 1\n",
                  what[i], rows, cols);
        }
        CHECK(memcmp(h[1][4], x, n * sizeof(float)) == 0 && memcmp(h[0][4], x, n * sizeof(float)) == 0,
              "copy of %zu bytes on 1 and 3 threads\n", n * sizeof(float));
        for (int i = 0; i < 4; i++) {
            be->free(o[i]);
            free(w[i]), free(h[0][i]), free(h[1][i]);
        }
        free(h[0][4]), free(h[1][4]);
        for (int i = 0; i < 3; i++) be->free(d[i]);
        free(x), free(bias), free(da);
    }
}

/* GELU through the backend's bias + activation and its backward at a size over both
 * splits' grains: gelu.c splits it itself, so these calls must not run it inside a
 * part of another split (a job posted from inside a part would corrupt the running
 * one, or hang). On 3 threads against one thread bit for bit, and against float64. */
static void test_gelu_threads(const struct dlfs_backend *be)
{
    if (!be->set_threads) return;
    const int rows = 300, cols = 701;
    const size_t n = (size_t)rows * cols;
    float *x = t_rand_floats_(&seed_, n, 2), *bias = t_rand_floats_(&seed_, (size_t)cols, 1);
    float *da = t_rand_floats_(&seed_, n, 1);
    float *dx = t_upload_(be, x, n), *db = t_upload_(be, bias, (size_t)cols), *dda = t_upload_(be, da, n);
    float *z = be->alloc(n * sizeof(float)), *a = be->alloc(n * sizeof(float)), *dz = be->alloc(n * sizeof(float));
    float *h[2][2];
    for (int t = 0; t < 2; t++) {
        be->set_threads(t ? 3 : 1);
        be->fill(a, 7.0f, n), be->fill(dz, 7.0f, n);
        be->copy(z, dx, n * sizeof(float));
        be->bias_act_fwd(z, a, db, rows, cols, DLFS_ACT_GELU);
        be->act_bwd(dz, dda, z, a, n, DLFS_ACT_GELU);
        for (int i = 0; i < 2; i++) h[t][i] = malloc(n * sizeof(float));
        t_download_(be, h[t][0], a, n);
        t_download_(be, h[t][1], dz, n);
    }
    be->set_threads(1);
    double *w[2] = {malloc(n * sizeof(double)), malloc(n * sizeof(double))};
    const double k = sqrt(2.0 / 3.14159265358979323846);
    for (size_t i = 0; i < n; i++) {
        const double v = (double)(x[i] + bias[i % (size_t)cols]), u = k * (v + 0.044715 * v * v * v);
        const double th = tanh(u);
        w[0][i] = 0.5 * v * (1.0 + th);
        w[1][i] = da[i] * (0.5 * (1.0 + th) + 0.5 * v * (1.0 - th * th) * k * (1.0 + 3.0 * 0.044715 * v * v));
    }
    const char *what[2] = {"bias_act gelu", "act_bwd gelu"};
    for (int i = 0; i < 2; i++) {
        t_close_(what[i], h[1][i], w[i], n, 1e-5, 1e-5);
        CHECK(memcmp(h[0][i], h[1][i], n * sizeof(float)) == 0, "%s: 3 threads differ from 1\n", what[i]);
        free(w[i]), free(h[0][i]), free(h[1][i]);
    }
    be->free(z), be->free(a), be->free(dz), be->free(dx), be->free(db), be->free(dda);
    free(x), free(bias), free(da);
}

/* Max pooling split by planes across 3 threads (5 x 4 planes of 128 x 128: over the
 * one-thread grain): forward against float64, forward and backward bit for bit
 * against one thread (whose backward test_pool checks by finite differences);
 * resnet50's stem pool (3x3/2, padding 1) and the tiling 2x2/2. */
static void test_pool_threads(const struct dlfs_backend *be, int k, int stride, int pad)
{
    if (!be->set_threads) return;
    const int n = 4, c = 5, h = 128;
    struct dlfs_conv_geom g;
    t_conv_geom_(&g, c, h, h, c, k, stride, pad);
    const size_t nx = (size_t)n * c * h * h, ny = (size_t)n * c * g.oh * g.ow;
    float *x = t_rand_floats_(&seed_, nx, 1), *r = t_rand_floats_(&seed_, ny, 1);
    double *xd = to_d_(x, nx), *yref = malloc(ny * sizeof *yref);
    pool_ref_(&g, n, xd, yref);
    float *dx = t_upload_(be, x, nx), *dr = t_upload_(be, r, ny), *dy = be->alloc(ny * sizeof(float));
    float *gx = be->alloc(nx * sizeof(float)), *hy[2], *hg[2];
    int32_t *arg = be->alloc(ny * sizeof(int32_t));
    for (int t = 0; t < 2; t++) {
        be->set_threads(t ? 3 : 1);
        be->fill(gx, 7.0f, nx); /* no output left from the run before */
        be->fill(dy, 7.0f, ny);
        be->maxpool_fwd(&g, n, dx, dy, arg);
        be->maxpool_bwd(&g, n, dr, arg, gx);
        hy[t] = malloc(ny * sizeof(float)), hg[t] = malloc(nx * sizeof(float));
        t_download_(be, hy[t], dy, ny);
        t_download_(be, hg[t], gx, nx);
    }
    be->set_threads(1);
    char m[96];
    snprintf(m, sizeof m, "maxpool k%d s%d p%d on 3 threads: fwd", k, stride, pad);
    t_close_(m, hy[1], yref, ny, 0, 0);
    CHECK(memcmp(hy[0], hy[1], ny * sizeof(float)) == 0 && memcmp(hg[0], hg[1], nx * sizeof(float)) == 0,
          "%s: 3 threads differ from 1\n", m);
    be->free(dx); be->free(dr); be->free(dy); be->free(gx); be->free(arg);
    for (int t = 0; t < 2; t++) free(hy[t]), free(hg[t]);
    free(x); free(r); free(xd); free(yref);
}

int main(void)
{
    const struct dlfs_backend *be = dlfs_backend_cpu();
    test_bn_threads(be);
    test_elementwise_threads(be);
    test_gelu_threads(be);
    test_pool_threads(be, 3, 2, 1); /* resnet50's stem pool */
    test_pool_threads(be, 2, 2, 0); /* cnn's, tiling the plane */
    T_DONE();
}
