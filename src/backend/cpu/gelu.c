/* GELU (the tanh form) on the CPU, forward with its bias and backward: a
 * language model's MLP applies it to 4C values a position, and libm's tanhf, one
 * value at a time on one thread, was a third of gpt-tiny's step.
 *
 * tanh here comes from an expm1 of our own in double: the exponent's integer part
 * from the round-to-nearest of a shifted sum, 2^k built from its bits, a degree-11
 * Taylor polynomial for the rest (|r| <= ln2/2: error < 3e-13, far below a float's
 * half ulp; the result rounded to float is tanhf's within an ulp). Only + - * /
 * and bit moves, so the loops vectorise (CPU_CLONES_) and give the same bits at
 * every vector width; each element's result depends on that element alone, so the
 * split across the rank's threads (large arrays only) changes no bit either. */
#include <cblas.h>
#include <math.h>
#include <stdint.h>
#include <string.h>
#include "backend/cpu/cpu-impl.h"

#define GELU_K 0.7978845608028654f /* sqrt(2/pi) */
#define GELU_C 0.044715f
#define PAR_MIN_ ((size_t)1 << 15) /* fewer values: one thread */

/* expm1(x) for 0 <= x <= 20 */
static inline double expm1_(double x)
{
    const double shift = 0x1.8p52, inv_ln2 = 1.4426950408889634;
    const double ln2_hi = 6.93147180369123816490e-01, ln2_lo = 1.90821492927058770002e-10;
    const double s = x * inv_ln2 + shift, k = s - shift; /* k = round(x / ln2) */
    uint64_t bits;
    memcpy(&bits, &s, sizeof bits);
    bits = (bits + 1023u) << 52; /* s's low bits hold k: 2^k */
    double two_k;
    memcpy(&two_k, &bits, sizeof two_k);
    const double r = (x - k * ln2_hi) - k * ln2_lo;
    double p = 1.0 / 39916800.0;
    p = p * r + 1.0 / 3628800.0;
    p = p * r + 1.0 / 362880.0;
    p = p * r + 1.0 / 40320.0;
    p = p * r + 1.0 / 5040.0;
    p = p * r + 1.0 / 720.0;
    p = p * r + 1.0 / 120.0;
    p = p * r + 1.0 / 24.0;
    p = p * r + 1.0 / 6.0;
    p = p * r + 0.5;
    p = (p * r + 1.0) * r; /* expm1(r) */
    return two_k * p + (two_k - 1.0);
}

/* tanh(u) = e / (e + 2), e = expm1(2|u|), |u| capped at 10 (tanh = 1 in float); the
 * cap and the sign by bit operations, which vectorise where float selects do not
 * (a NaN becomes +-1 here, and its GELU stays NaN through the factor u) */
static inline float tanh_(float u)
{
    uint32_t b;
    memcpy(&b, &u, sizeof b);
    b &= 0x7fffffffu;
    b = b < 0x41200000u ? b : 0x41200000u; /* 10.0f */
    float a;
    memcpy(&a, &b, sizeof a);
    const double e = expm1_(2.0 * (double)a);
    return copysignf((float)(e / (e + 2.0)), u);
}

struct gelu_job_ {
    float *z, *a, *dz;
    const float *bias, *da, *zin;
    size_t n;
    int cols;
};

/* values [first, end) of z (+ bias, stored back) and a = gelu(z) */
CPU_CLONES_ static void fwd_range_(float *z, float *a, const float *bias, int cols, size_t first, size_t end)
{
    for (size_t i = first; i < end;) {
        const size_t c0 = i % (size_t)cols, len = end - i < (size_t)cols - c0 ? end - i : (size_t)cols - c0;
        float *zr = z + i, *ar = a + i;
        const float *br = bias + c0;
        for (size_t c = 0; c < len; c++) {
            const float v = zr[c] + br[c];
            zr[c] = v;
            ar[c] = 0.5f * v * (1.0f + tanh_(GELU_K * (v + GELU_C * v * v * v)));
        }
        i += len;
    }
}

CPU_CLONES_ static void bwd_range_(float *dz, const float *da, const float *z, size_t first, size_t end)
{
    for (size_t i = first; i < end; i++) {
        const float x = z[i];
        const float t = tanh_(GELU_K * (x + GELU_C * x * x * x));
        const float du = GELU_K * (1.0f + 3.0f * GELU_C * x * x);
        dz[i] = da[i] * (0.5f * (1.0f + t) + 0.5f * x * (1.0f - t * t) * du);
    }
}

static void part_(void *arg, int id, int threads)
{
    const struct gelu_job_ *j = arg;
    const size_t first = j->n * (size_t)id / (size_t)threads, end = j->n * (size_t)(id + 1) / (size_t)threads;
    if (j->dz) bwd_range_(j->dz, j->da, j->zin, first, end);
    else fwd_range_(j->z, j->a, j->bias, j->cols, first, end);
}

static void run_(struct gelu_job_ *j)
{
    const int t = j->n >= PAR_MIN_ ? openblas_get_num_threads() : 1;
    cpu_workers_run(t, part_, j);
}

void cpu_gelu_bias_fwd(float *z, float *a, const float *bias, int rows, int cols)
{
    struct gelu_job_ j = {.z = z, .a = a, .bias = bias, .n = (size_t)rows * (size_t)cols, .cols = cols};
    run_(&j);
}

void cpu_gelu_bwd(float *dz, const float *da, const float *z, size_t n)
{
    struct gelu_job_ j = {.zin = z, .dz = dz, .da = da, .n = n};
    run_(&j);
}
