/* --precision tf32/bf16 on the CPU backend: the shared rounding (src/backend/lowp.h,
 * also what the CUDA kernel runs) against hand-picked bit patterns, then the
 * emulated GEMM against (1) a float64 GEMM of the pre-rounded operands (tight: only
 * fp32 accumulation differs) and (2) the fp32 GEMM, whose difference must have the
 * size round-to-nearest-even predicts: not ~0 (rounding skipped), not 4x larger
 * (truncation). */
#include <math.h>
#include <stdint.h>
#include <string.h>
#include "backend/lowp.h"
#include "dlfs/backend.h"
#include "testutil.h"

static unsigned long long seed_ = 7;

static float f_(uint32_t u) { return dlfs_f32_from_bits(u); }

static void test_bf16_bits(void)
{
    static const struct { uint32_t in; uint16_t want; const char *why; } c[] = {
        {0x3f800000u, 0x3f80u, "1 is exact"},
        {0x80000000u, 0x8000u, "-0 keeps its sign"},
        {0x3f808000u, 0x3f80u, "1 + 2^-8: tie, down to even"},
        {0x3f818000u, 0x3f82u, "1 + 3*2^-8: tie, up to even"},
        {0x3f808001u, 0x3f81u, "just above the tie: up"},
        {0x3f807fffu, 0x3f80u, "just below the tie: down"},
        {0xbf808000u, 0xbf80u, "negative tie, to even"},
        {0xbf818000u, 0xbf82u, "negative tie, away to even"},
        {0x3fffc000u, 0x4000u, "rounding carries into the exponent"},
        {0x7f800000u, 0x7f80u, "+inf"},
        {0xff800000u, 0xff80u, "-inf"},
        {0x7f7fffffu, 0x7f80u, "FLT_MAX overflows to inf"},
        {0x7f7f8000u, 0x7f80u, "tie above the largest bf16 (odd): inf"},
        {0x7f7f7fffu, 0x7f7fu, "below that tie: the largest finite bf16"},
        {0xff7fffffu, 0xff80u, "-FLT_MAX overflows to -inf"},
        {0x00000001u, 0x0000u, "smallest subnormal: to +0"},
        {0x00008000u, 0x0000u, "subnormal tie, to even (0)"},
        {0x00018000u, 0x0002u, "subnormal tie, to even (2)"},
        {0x00010000u, 0x0001u, "exact subnormal"},
        {0x007fffffu, 0x0080u, "largest subnormal: up to the smallest normal"},
        {0x80008001u, 0x8001u, "negative subnormal above the tie"},
    };
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
        const uint16_t got = dlfs_bf16_bits(f_(c[i].in));
        CHECK(got == c[i].want, "bf16(0x%08x) = 0x%04x, want 0x%04x (%s)", c[i].in, got, c[i].want, c[i].why);
    }
    /* NaN stays NaN with its sign, even when only the low (dropped) bits say so */
    static const uint32_t nans[] = {0x7fc00000u, 0x7f800001u, 0xff800001u, 0x7fbfffffu, 0xffc12345u};
    for (size_t i = 0; i < sizeof nans / sizeof nans[0]; i++) {
        const float r = dlfs_round_bf16(f_(nans[i]));
        CHECK(isnan(r), "bf16(0x%08x) = %g is not NaN", nans[i], (double)r);
        CHECK(signbit(r) == signbit(f_(nans[i])), "bf16(0x%08x) lost the sign", nans[i]);
    }
    /* widening is exact, and rounding is idempotent */
    CHECK(dlfs_round_bf16(1.0f + 0x1p-7f) == 1.0f + 0x1p-7f, "1 + 2^-7 is a bf16");
    CHECK(dlfs_round_bf16(3.14159265f) == 3.140625f, "pi -> %.9g", (double)dlfs_round_bf16(3.14159265f));
    for (int i = 0; i < 10000; i++) {
        const float x = (float)(1e3 * t_rand_(&seed_)), r = dlfs_round_bf16(x);
        CHECK(dlfs_round_bf16(r) == r && (dlfs_f32_bits(r) & 0xffffu) == 0, "bf16 not idempotent at %.9g", (double)x);
        CHECK(fabs((double)r - x) <= ldexp(fabs((double)x), -8), "bf16(%.9g) = %.9g: more than half an ulp",
              (double)x, (double)r);
    }
}

static void test_tf32_bits(void)
{
    static const struct { uint32_t in, want; const char *why; } c[] = {
        {0x3f800000u, 0x3f800000u, "1 is exact"},
        {0x3f801000u, 0x3f800000u, "1 + 2^-11: tie, down to even"},
        {0x3f803000u, 0x3f804000u, "1 + 3*2^-11: tie, up to even"},
        {0x3f801001u, 0x3f802000u, "just above the tie: up"},
        {0x3f800fffu, 0x3f800000u, "just below the tie: down"},
        {0xbf803000u, 0xbf804000u, "negative tie, to even"},
        {0x7f7fffffu, 0x7f800000u, "FLT_MAX overflows to inf"},
        {0xff800000u, 0xff800000u, "-inf"},
        {0x00001000u, 0x00000000u, "subnormal tie, to even (0)"},
        {0x00003000u, 0x00004000u, "subnormal tie, to even"},
        {0x007fffffu, 0x00800000u, "largest subnormal: up to the smallest normal"},
    };
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
        const uint32_t got = dlfs_f32_bits(dlfs_round_tf32(f_(c[i].in)));
        CHECK(got == c[i].want, "tf32(0x%08x) = 0x%08x, want 0x%08x (%s)", c[i].in, got, c[i].want, c[i].why);
    }
    CHECK(isnan(dlfs_round_tf32(f_(0x7f800001u))), "tf32 of a low-bit NaN is NaN");
    CHECK(isnan(dlfs_round_tf32(f_(0xffc00000u))) && signbit(dlfs_round_tf32(f_(0xffc00000u))), "tf32 -NaN");
}

/* want(m,n) = alpha * op(A) op(B) + beta * C in float64, operands first passed through rnd */
static void ref_gemm_(bool ta, bool tb, int m, int n, int k, double alpha, const float *a, int lda,
                      const float *b, int ldb, double beta, const float *c, int ldc, float (*rnd)(float),
                      double *want)
{
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++) {
            double acc = 0;
            for (int p = 0; p < k; p++) {
                const float x = ta ? a[(size_t)p * lda + i] : a[(size_t)i * lda + p];
                const float y = tb ? b[(size_t)j * ldb + p] : b[(size_t)p * ldb + j];
                acc += (double)rnd(x) * rnd(y);
            }
            want[(size_t)i * n + j] = alpha * acc + beta * c[(size_t)i * ldc + j];
        }
}

static float id_(float x) { return x; }
static float bf16_(float x) { return dlfs_round_bf16(x); }
static float tf32_(float x) { return dlfs_round_tf32(x); }

static void test_gemm(const struct dlfs_backend *be, enum dlfs_precision prec, float (*rnd)(float),
                      int mantissa_bits)
{
    /* odd shapes, padded leading dimensions (the emulation packs strided operands) */
    const int shapes[][3] = {{1, 1, 1}, {3, 5, 7}, {17, 9, 33}, {64, 31, 200}, {128, 96, 512}};
    double nmse_num = 0, nmse_den = 0;
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        for (int ta = 0; ta < 2; ta++)
            for (int tb = 0; tb < 2; tb++) {
                const int m = shapes[s][0], n = shapes[s][1], k = shapes[s][2], pad = (int)s % 3;
                const int lda = (ta ? m : k) + pad, ldb = (tb ? k : n) + pad, ldc = n + pad;
                const size_t na = (size_t)(ta ? k : m) * lda, nb = (size_t)(tb ? n : k) * ldb;
                const size_t nc = (size_t)m * ldc;
                float *a = t_rand_floats_(&seed_, na, 1), *b = t_rand_floats_(&seed_, nb, 2);
                float *c = t_rand_floats_(&seed_, nc, 1), *got = malloc(nc * sizeof *got);
                double *want = malloc((size_t)m * n * sizeof *want), *want32 = malloc((size_t)m * n * sizeof *want32);
                ref_gemm_(ta, tb, m, n, k, 0.5, a, lda, b, ldb, 0.25, c, ldc, rnd, want);
                ref_gemm_(ta, tb, m, n, k, 0.5, a, lda, b, ldb, 0.25, c, ldc, id_, want32);

                float *da = t_upload_(be, a, na), *db = t_upload_(be, b, nb), *dc = t_upload_(be, c, nc);
                be->set_precision(prec);
                be->gemm(ta, tb, m, n, k, 0.5f, da, lda, db, ldb, 0.25f, dc, ldc);
                be->set_precision(DLFS_PRECISION_FP32);
                t_download_(be, got, dc, nc);
                float *packed = malloc((size_t)m * n * sizeof *packed);
                int pad_ok = 1;
                for (int i = 0; i < m; i++) {
                    memcpy(packed + (size_t)i * n, got + (size_t)i * ldc, (size_t)n * sizeof *packed);
                    for (int j = n; j < ldc; j++) pad_ok = pad_ok && got[(size_t)i * ldc + j] == c[(size_t)i * ldc + j];
                }
                char what[96];
                snprintf(what, sizeof what, "%s gemm %dx%dx%d ta=%d tb=%d vs float64 of rounded operands",
                         dlfs_precision_name(prec), m, n, k, ta, tb);
                /* products of rounded operands are exact in fp32: fp32 summation error only */
                t_close_(what, packed, want, (size_t)m * n, 2e-6 * sqrt((double)k), 1e-5);
                CHECK(pad_ok, "%s wrote into C's padding", what);
                for (size_t i = 0; i < (size_t)m * n; i++) { /* vs exact fp32-operand GEMM (beta C cancels) */
                    const double d = packed[i] - want32[i], w = want32[i] - 0.25 * c[(i / n) * ldc + i % n];
                    if (k >= 200) { nmse_num += d * d; nmse_den += w * w; }
                }
                be->free(da); be->free(db); be->free(dc);
                free(a); free(b); free(c); free(got); free(packed); free(want); free(want32);
            }
    /* Each operand's relative error under RNE is uniform in +-2^-(p+1)/mant, mant uniform
     * in [1,2) over a binade: E[rel^2] = 2^-2(p+1)/3 * E[1/mant^2] = 2^-2(p+1)/6; a product
     * has twice that, and with random signs the normalised squared error of the sum is
     * the same: NMSE = 2^-2(p+1)/3 (p = stored mantissa bits). Truncation would be 4x. */
    const double pred = ldexp(1.0, -2 * (mantissa_bits + 1)) / 3.0, nmse = nmse_num / nmse_den;
    printf("%s: NMSE vs fp32 operands %.3g (RNE predicts %.3g)\n", dlfs_precision_name(prec), nmse, pred);
    CHECK(nmse > pred / 2 && nmse < pred * 2, "%s GEMM differs from fp32 by NMSE %.3g; rounding to nearest "
          "predicts %.3g (skipped rounding: ~1e-14; truncation: ~4x)", dlfs_precision_name(prec), nmse, pred);
}

/* fp32 is untouched: the GEMM equals the float64 one to fp32 summation error, and
 * differs from the bf16 one (set_precision really switches back) */
static void test_fp32_default(const struct dlfs_backend *be)
{
    const int m = 32, n = 48, k = 256;
    float *a = t_rand_floats_(&seed_, (size_t)m * k, 1), *b = t_rand_floats_(&seed_, (size_t)k * n, 1);
    float *c = calloc((size_t)m * n, sizeof *c), *c16 = calloc((size_t)m * n, sizeof *c16);
    double *want = malloc((size_t)m * n * sizeof *want);
    ref_gemm_(false, false, m, n, k, 1, a, k, b, n, 0, c, n, id_, want);
    float *da = t_upload_(be, a, (size_t)m * k), *db = t_upload_(be, b, (size_t)k * n);
    float *dc = t_upload_(be, c, (size_t)m * n);
    be->set_precision(DLFS_PRECISION_BF16);
    be->gemm(false, false, m, n, k, 1, da, k, db, n, 0, dc, n);
    t_download_(be, c16, dc, (size_t)m * n);
    be->set_precision(DLFS_PRECISION_FP32);
    be->gemm(false, false, m, n, k, 1, da, k, db, n, 0, dc, n);
    t_download_(be, c, dc, (size_t)m * n);
    t_close_("fp32 gemm after bf16", c, want, (size_t)m * n, 2e-6 * sqrt((double)k), 1e-5);
    size_t differ = 0;
    for (size_t i = 0; i < (size_t)m * n; i++) differ += c[i] != c16[i];
    CHECK(differ > (size_t)m * n / 2, "bf16 and fp32 GEMMs agree on %zu of %d values", (size_t)m * n - differ, m * n);
    be->free(da); be->free(db); be->free(dc);
    free(a); free(b); free(c); free(c16); free(want);
}

int main(void)
{
    test_bf16_bits();
    test_tf32_bits();
    const struct dlfs_backend *be = dlfs_backend_cpu();
    CHECK(be->set_precision != NULL, "the CPU backend has set_precision");
    if (be->set_threads) be->set_threads(1);
    test_gemm(be, DLFS_PRECISION_BF16, bf16_, 7);
    test_gemm(be, DLFS_PRECISION_TF32, tf32_, 10);
    test_fp32_default(be);
    T_DONE();
}
