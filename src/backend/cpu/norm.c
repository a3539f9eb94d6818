/* Batch normalisation on the CPU, per channel over (rows of a group, plane).
 * Sums in double: a group of 16 images of 28x28 is 12544 values per channel, and
 * the variance is a difference of nearly equal numbers. */
#include <math.h>
#include <stdbool.h>
#include <string.h>
#include "backend/cpu/cpu-impl.h"

/* The per-row sums below keep 8 interleaved partial sums (in vector registers:
 * one running double sum is a chain of dependent adds, 4 cycles each) and add
 * them in order at the end: a fixed order for a given plane size, so the bits
 * still depend on the shapes only, never on the rank count. */
#define LANES_ 8

CPU_CLONES_ static double sum_(const float *x, int n)
{
    double acc[LANES_] = {0};
    int p = 0;
    for (; p + LANES_ <= n; p += LANES_)
        for (int l = 0; l < LANES_; l++) acc[l] += x[p + l];
    double s = 0.0;
    for (int l = 0; l < LANES_; l++) s += acc[l];
    for (; p < n; p++) s += x[p];
    return s;
}

/* sum of (x - mean)^2 */
CPU_CLONES_ static double sum_sq_(const float *x, int n, double mean)
{
    double acc[LANES_] = {0};
    int p = 0;
    for (; p + LANES_ <= n; p += LANES_)
        for (int l = 0; l < LANES_; l++) {
            const double d = x[p + l] - mean;
            acc[l] += d * d;
        }
    double s = 0.0;
    for (int l = 0; l < LANES_; l++) s += acc[l];
    for (; p < n; p++) s += (x[p] - mean) * (x[p] - mean);
    return s;
}

/* *sd += sum of dz, *sdh += sum of dz * xhat */
CPU_CLONES_ static void sums_bwd_(const float *dz, const float *xh, int n, double *sd, double *sdh)
{
    double a[LANES_] = {0}, b[LANES_] = {0};
    int p = 0;
    for (; p + LANES_ <= n; p += LANES_)
        for (int l = 0; l < LANES_; l++) {
            a[l] += dz[p + l];
            b[l] += (double)dz[p + l] * xh[p + l];
        }
    double s = 0.0, t = 0.0;
    for (int l = 0; l < LANES_; l++) {
        s += a[l];
        t += b[l];
    }
    for (; p < n; p++) {
        s += dz[p];
        t += (double)dz[p] * xh[p];
    }
    *sd += s;
    *sdh += t;
}

/* One call of either op, split by channels across the rank's threads
 * (cpu_parallel_for): a channel's statistics, outputs and gradients are its own, so
 * the bits do not depend on the split (nor on the thread count). Threaded only when
 * a thread gets at least GRAIN_ values: below that, waking a worker costs more. */
#define GRAIN_ ((size_t)1 << 15)

struct bn_job_ {
    int n, c, plane, group;
    const float *x, *gamma, *beta, *run_mean, *run_var;
    float eps;
    float *xhat, *invstd, *z, *a, *stats;
    enum dlfs_act act;
    const float *dz, *xh, *is; /* bwd: dz, xhat, invstd */
    float *dgamma, *dbeta, *dx;
};

static size_t grain_(const struct bn_job_ *j)
{
    const size_t per = (size_t)j->n * (size_t)j->plane; /* values of one channel */
    return per >= GRAIN_ ? 1 : (GRAIN_ + per - 1) / per;
}

/* One plane: h = (x - mu) * is (into xhat when there is one), z = g * h + b, and with
 * a fused relu a = max(z + 0, 0): the ops of the cpu_bias_act_fwd pass that followed
 * (its zero bias turns -0 into +0), element by element: the same bits in one pass. */
CPU_CLONES_ static void plane_fwd_(const float *restrict x, float mu, float is, float g, float b, int plane,
                                   float *restrict xhat, float *restrict z, float *restrict a, bool relu)
{
    if (relu && xhat)
        for (int p = 0; p < plane; p++) {
            const float h = (x[p] - mu) * is, v = (g * h + b) + 0.0f;
            xhat[p] = h;
            z[p] = v;
            a[p] = v > 0.0f ? v : 0.0f;
        }
    else if (relu)
        for (int p = 0; p < plane; p++) {
            const float v = (g * ((x[p] - mu) * is) + b) + 0.0f;
            z[p] = v;
            a[p] = v > 0.0f ? v : 0.0f;
        }
    else if (xhat)
        for (int p = 0; p < plane; p++) {
            const float h = (x[p] - mu) * is;
            xhat[p] = h;
            z[p] = g * h + b;
        }
    else
        for (int p = 0; p < plane; p++) z[p] = g * ((x[p] - mu) * is) + b;
}

/* evaluation: the running statistics */
static void eval_part_(void *arg, size_t lo, size_t hi)
{
    const struct bn_job_ *j = arg;
    const size_t img = (size_t)j->c * j->plane;
    for (int i = 0; i < j->n; i++)
        for (size_t ch = lo; ch < hi; ch++) {
            const float is = 1.0f / sqrtf(j->run_var[ch] + j->eps), mu = j->run_mean[ch];
            const size_t o = (size_t)i * img + ch * (size_t)j->plane;
            plane_fwd_(j->x + o, mu, is, j->gamma[ch], j->beta[ch], j->plane, NULL, j->z + o, j->a + o,
                       j->act == DLFS_ACT_RELU);
        }
}

static void fwd_part_(void *arg, size_t lo, size_t hi)
{
    const struct bn_job_ *j = arg;
    const size_t img = (size_t)j->c * j->plane;
    const int c = j->c, plane = j->plane;
    const bool relu = j->act == DLFS_ACT_RELU;
    for (int g0 = 0, gi = 0; g0 < j->n; g0 += j->group, gi++) {
        const int rows = j->n - g0 < j->group ? j->n - g0 : j->group;
        const double cnt = (double)rows * plane;
        for (size_t ch = lo; ch < hi; ch++) {
            double s = 0.0, s2 = 0.0;
            for (int i = g0; i < g0 + rows; i++) s += sum_(j->x + (size_t)i * img + ch * plane, plane);
            const double mean = s / cnt;
            for (int i = g0; i < g0 + rows; i++) s2 += sum_sq_(j->x + (size_t)i * img + ch * plane, plane, mean);
            const double var = s2 / cnt;
            const float is = (float)(1.0 / sqrt(var + j->eps)), mu = (float)mean;
            j->invstd[(size_t)gi * c + ch] = is;
            if (j->stats) { /* for the running statistics: mean and unbiased variance */
                j->stats[ch] += (float)mean;
                j->stats[c + ch] += (float)(cnt > 1 ? s2 / (cnt - 1) : var);
            }
            for (int i = g0; i < g0 + rows; i++) {
                const size_t o = (size_t)i * img + ch * plane;
                plane_fwd_(j->x + o, mu, is, j->gamma[ch], j->beta[ch], plane, j->xhat + o, j->z + o, j->a + o,
                           relu);
            }
        }
    }
}

void cpu_batchnorm_fwd(int n, int c, int plane, int group, const float *x, const float *gamma, const float *beta,
                       const float *run_mean, const float *run_var, float eps, float *xhat, float *invstd,
                       float *z, float *a, enum dlfs_act act, float *stats)
{
    if (group <= 0 || group > n) group = n;
    struct bn_job_ j = {.n = n, .c = c, .plane = plane, .group = group, .x = x, .gamma = gamma, .beta = beta,
                        .run_mean = run_mean, .run_var = run_var, .eps = eps, .xhat = xhat, .invstd = invstd,
                        .z = z, .a = a, .stats = stats, .act = act};
    cpu_parallel_for((size_t)c, grain_(&j), run_mean ? eval_part_ : fwd_part_, &j);
    if (act != DLFS_ACT_NONE && act != DLFS_ACT_RELU) { /* act(z + 0): a bias broadcast over one column */
        static const float zero = 0.0f;
        cpu_bias_act_fwd(z, a, &zero, (int)((size_t)n * c * plane), 1, act);
    }
}

/* dx = k * (dz - md - xhat * mdh) over one plane */
CPU_CLONES_ static void dx_(const float *restrict dz, const float *restrict xh, float k, float md, float mdh,
                            int plane, float *restrict dx)
{
    for (int p = 0; p < plane; p++) dx[p] = k * (dz[p] - md - xh[p] * mdh);
}

static void bwd_part_(void *arg, size_t lo, size_t hi)
{
    const struct bn_job_ *j = arg;
    const size_t img = (size_t)j->c * j->plane;
    const int c = j->c, plane = j->plane;
    for (int g0 = 0, gi = 0; g0 < j->n; g0 += j->group, gi++) {
        const int rows = j->n - g0 < j->group ? j->n - g0 : j->group;
        const double cnt = (double)rows * plane;
        for (size_t ch = lo; ch < hi; ch++) {
            double sd = 0.0, sdh = 0.0;
            for (int i = g0; i < g0 + rows; i++) {
                const size_t o = (size_t)i * img + ch * plane;
                sums_bwd_(j->dz + o, j->xh + o, plane, &sd, &sdh);
            }
            j->dbeta[ch] += (float)sd;
            j->dgamma[ch] += (float)sdh;
            if (!j->dx) continue;
            /* dx = gamma * invstd * (dz - mean(dz) - xhat * mean(dz * xhat)) */
            const float k = j->gamma[ch] * j->is[(size_t)gi * c + ch];
            const float md = (float)(sd / cnt), mdh = (float)(sdh / cnt);
            for (int i = g0; i < g0 + rows; i++) {
                const size_t o = (size_t)i * img + ch * plane;
                dx_(j->dz + o, j->xh + o, k, md, mdh, plane, j->dx + o);
            }
        }
    }
}

void cpu_batchnorm_bwd(int n, int c, int plane, int group, const float *dz, const float *xhat, const float *invstd,
                       const float *gamma, float *dgamma, float *dbeta, float *dx)
{
    if (group <= 0 || group > n) group = n;
    memset(dgamma, 0, (size_t)c * sizeof *dgamma);
    memset(dbeta, 0, (size_t)c * sizeof *dbeta);
    struct bn_job_ j = {.n = n, .c = c, .plane = plane, .group = group, .xh = xhat, .is = invstd,
                        .gamma = gamma, .dz = dz, .dgamma = dgamma, .dbeta = dbeta, .dx = dx};
    cpu_parallel_for((size_t)c, grain_(&j), bwd_part_, &j);
}
