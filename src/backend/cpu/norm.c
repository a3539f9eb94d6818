/* Batch normalisation on the CPU, per channel over (rows of a group, plane).
 * Sums in double: a group of 16 images of 28x28 is 12544 values per channel, and
 * the variance is a difference of nearly equal numbers. */
#include <math.h>
#include <string.h>
#include "backend/cpu/cpu-impl.h"

/* The per-row sums below keep 8 interleaved partial sums (in vector registers:
 * one running double sum is a chain of dependent adds, 4 cycles each) and add
 * them in order at the end: a fixed order for a given plane size, so the bits
 * still depend on the shapes only, never on the rank count. */
#define LANES_ 8

static double sum_(const float *x, int n)
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
static double sum_sq_(const float *x, int n, double mean)
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
static void sums_bwd_(const float *dz, const float *xh, int n, double *sd, double *sdh)
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

void cpu_batchnorm_fwd(int n, int c, int plane, int group, const float *x, const float *gamma, const float *beta,
                       const float *run_mean, const float *run_var, float eps, float *xhat, float *invstd,
                       float *z, float *a, enum dlfs_act act, float *stats)
{
    const size_t img = (size_t)c * plane;
    if (run_mean) { /* evaluation: the running statistics */
        for (int i = 0; i < n; i++)
            for (int ch = 0; ch < c; ch++) {
                const float is = 1.0f / sqrtf(run_var[ch] + eps), mu = run_mean[ch];
                const size_t o = (size_t)i * img + (size_t)ch * plane;
                for (int p = 0; p < plane; p++) z[o + p] = gamma[ch] * ((x[o + p] - mu) * is) + beta[ch];
            }
    } else {
        if (group <= 0 || group > n) group = n;
        for (int g0 = 0, gi = 0; g0 < n; g0 += group, gi++) {
            const int rows = n - g0 < group ? n - g0 : group;
            const double cnt = (double)rows * plane;
            for (int ch = 0; ch < c; ch++) {
                double s = 0.0, s2 = 0.0;
                for (int i = g0; i < g0 + rows; i++) s += sum_(x + (size_t)i * img + (size_t)ch * plane, plane);
                const double mean = s / cnt;
                for (int i = g0; i < g0 + rows; i++)
                    s2 += sum_sq_(x + (size_t)i * img + (size_t)ch * plane, plane, mean);
                const double var = s2 / cnt;
                const float is = (float)(1.0 / sqrt(var + eps)), mu = (float)mean;
                invstd[(size_t)gi * c + ch] = is;
                if (stats) { /* for the running statistics: mean and unbiased variance */
                    stats[ch] += (float)mean;
                    stats[c + ch] += (float)(cnt > 1 ? s2 / (cnt - 1) : var);
                }
                for (int i = g0; i < g0 + rows; i++) {
                    const size_t o = (size_t)i * img + (size_t)ch * plane;
                    for (int p = 0; p < plane; p++) {
                        const float h = (x[o + p] - mu) * is;
                        xhat[o + p] = h;
                        z[o + p] = gamma[ch] * h + beta[ch];
                    }
                }
            }
        }
    }
    if (act != DLFS_ACT_NONE) { /* act(z + 0): the dense op's bias broadcast over one column */
        static const float zero = 0.0f;
        cpu_bias_act_fwd(z, a, &zero, (int)((size_t)n * img), 1, act);
    }
}

void cpu_batchnorm_bwd(int n, int c, int plane, int group, const float *dz, const float *xhat, const float *invstd,
                       const float *gamma, float *dgamma, float *dbeta, float *dx)
{
    const size_t img = (size_t)c * plane;
    if (group <= 0 || group > n) group = n;
    memset(dgamma, 0, (size_t)c * sizeof *dgamma);
    memset(dbeta, 0, (size_t)c * sizeof *dbeta);
    for (int g0 = 0, gi = 0; g0 < n; g0 += group, gi++) {
        const int rows = n - g0 < group ? n - g0 : group;
        const double cnt = (double)rows * plane;
        for (int ch = 0; ch < c; ch++) {
            double sd = 0.0, sdh = 0.0;
            for (int i = g0; i < g0 + rows; i++) {
                const size_t o = (size_t)i * img + (size_t)ch * plane;
                sums_bwd_(dz + o, xhat + o, plane, &sd, &sdh);
            }
            dbeta[ch] += (float)sd;
            dgamma[ch] += (float)sdh;
            if (!dx) continue;
            /* dx = gamma * invstd * (dz - mean(dz) - xhat * mean(dz * xhat)) */
            const float k = gamma[ch] * invstd[(size_t)gi * c + ch];
            const float md = (float)(sd / cnt), mdh = (float)(sdh / cnt);
            for (int i = g0; i < g0 + rows; i++) {
                const size_t o = (size_t)i * img + (size_t)ch * plane;
                for (int p = 0; p < plane; p++) dx[o + p] = k * (dz[o + p] - md - xhat[o + p] * mdh);
            }
        }
    }
}
