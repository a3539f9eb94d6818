/* GEMM through OpenBLAS, in fp32 or emulating the GPU's TF32/BF16 numerics.
 *
 * The emulation rounds both operands exactly as the CUDA backend does (the shared
 * src/backend/lowp.h) into packed scratch, then runs sgemm on them: products of
 * bf16 (or tf32) values are exact in fp32, so what remains is fp32 accumulation,
 * as on the tensor cores. It costs a pass over both operands per call, which is
 * small next to the GEMM for the layer shapes we train, but the CPU does not get
 * faster: it is there so that --precision means the same on every backend and is
 * tested where no GPU is.
 *
 * Every call is accounted for --bench (cpu_gemm_account): its 2mnk operations and
 * its wall time, divided by the threads of the worker job it runs in (conv.c's
 * images split across threads, each with one-thread BLAS: concurrent GEMMs count
 * once), in nanoseconds and operations, atomically (two clock reads a call). */
#include <cblas.h>
#include <stdatomic.h>
#include <stdlib.h>
#include "backend/cpu/cpu-impl.h"
#include "backend/lowp.h"
#include "dlfs/util.h"

static enum dlfs_precision precision_ = DLFS_PRECISION_FP32;
static atomic_ullong ns_, flops_;

void cpu_gemm_account(double out[2], bool reset)
{
    out[0] = 1e-9 * (double)(reset ? atomic_exchange(&ns_, 0) : atomic_load(&ns_));
    out[1] = (double)(reset ? atomic_exchange(&flops_, 0) : atomic_load(&flops_));
}

void cpu_set_precision(enum dlfs_precision p)
{
    DLFS_ASSERT_MSG((unsigned)p < DLFS_PRECISION_COUNT, "unknown precision");
    precision_ = p;
}

/* Grow-on-demand scratch for the two rounded operands, per thread (conv.c calls
 * gemm from its worker threads). */
static _Thread_local float *scratch_[2];
static _Thread_local size_t scratch_cap_[2];

/* x(rows, cols) with leading dimension ld, rounded, into scratch `slot` packed
 * (leading dimension cols). */
static const float *round_(int slot, const float *x, int rows, int cols, int ld, enum dlfs_precision p)
{
    const size_t n = (size_t)rows * cols;
    if (n > scratch_cap_[slot]) {
        free(scratch_[slot]);
        scratch_[slot] = dlfs_malloc(n * sizeof(float));
        scratch_cap_[slot] = n;
    }
    float *out = scratch_[slot];
    for (int r = 0; r < rows; r++) {
        const float *src = x + (size_t)r * ld;
        float *dst = out + (size_t)r * cols;
        if (p == DLFS_PRECISION_BF16)
            for (int c = 0; c < cols; c++) dst[c] = dlfs_round_bf16(src[c]);
        else
            for (int c = 0; c < cols; c++) dst[c] = dlfs_round_tf32(src[c]);
    }
    return out;
}

void cpu_gemm(bool trans_a, bool trans_b, int m, int n, int k, float alpha, const float *a, int lda,
              const float *b, int ldb, float beta, float *c, int ldc)
{
    const double t0 = dlfs_now();
    if (precision_ != DLFS_PRECISION_FP32 && m > 0 && n > 0 && k > 0) {
        /* stored shapes: A is (m, k) or (k, m) transposed; B is (k, n) or (n, k) */
        const int ar = trans_a ? k : m, ac = trans_a ? m : k;
        const int br = trans_b ? n : k, bc = trans_b ? k : n;
        a = round_(0, a, ar, ac, lda, precision_);
        b = round_(1, b, br, bc, ldb, precision_);
        lda = ac;
        ldb = bc;
    }
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans,
                m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    const double ns = (dlfs_now() - t0) * 1e9 / cpu_workers_sharing();
    atomic_fetch_add(&ns_, (unsigned long long)(ns + 0.5));
    if (m > 0 && n > 0 && k > 0) atomic_fetch_add(&flops_, 2ULL * (unsigned)m * (unsigned)n * (unsigned)k);
}
