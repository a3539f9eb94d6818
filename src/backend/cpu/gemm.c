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
 * cpu_gemm_rows (a language model's products: be->gemm_rows) runs a GEMM of many
 * rows outside a worker job on the rank's threads (workers.c) as contiguous parts
 * of its rows, each a one-thread sgemm, instead of on OpenBLAS's own threads: on 2
 * cores OpenBLAS's two threads reached 31-100 GFLOP/s on gpt-tiny's shapes (1024 x
 * 512 x 128 and the like), the split 80-140. The split is over the rows of C, never
 * over k, but OpenBLAS may block k otherwise for a part than for the whole (mlp's
 * 128 x 512 x 784 rounds differently): so not for cpu_gemm, whose image models keep
 * their bits; one thread (deterministic mode) never splits.
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

#define SPLIT_ROWS_ 64         /* rows a thread at least */
#define SPLIT_FLOPS_ (1 << 22)  /* multiply-adds at least */

struct gemm_job_ {
    bool ta, tb;
    int m, n, k, lda, ldb, ldc;
    float alpha, beta;
    const float *a, *b;
    float *c;
};

static void gemm_part_(void *arg, int id, int threads)
{
    const struct gemm_job_ *j = arg;
    const int first = (int)((long long)j->m * id / threads), end = (int)((long long)j->m * (id + 1) / threads);
    const float *a = j->ta ? j->a + first : j->a + (size_t)first * (size_t)j->lda;
    cblas_sgemm(CblasRowMajor, j->ta ? CblasTrans : CblasNoTrans, j->tb ? CblasTrans : CblasNoTrans, end - first, j->n,
                j->k, j->alpha, a, j->lda, j->b, j->ldb, j->beta, j->c + (size_t)first * (size_t)j->ldc, j->ldc);
}

/* true when it ran the GEMM split by rows across the rank's threads */
static bool split_(const struct gemm_job_ *j)
{
    const int blas = openblas_get_num_threads();
    if (blas < 2 || cpu_workers_sharing() > 1 || j->m < SPLIT_ROWS_ * blas ||
        (double)j->m * j->n * j->k < (double)SPLIT_FLOPS_)
        return false;
    openblas_set_num_threads(1);
    cpu_workers_run(blas, gemm_part_, (void *)j);
    openblas_set_num_threads(blas);
    return true;
}

static void gemm_(bool trans_a, bool trans_b, int m, int n, int k, float alpha, const float *a, int lda,
                  const float *b, int ldb, float beta, float *c, int ldc, bool rows)
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
    const struct gemm_job_ j = {trans_a, trans_b, m, n, k, lda, ldb, ldc, alpha, beta, a, b, c};
    if (!rows || !split_(&j))
        cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans,
                    m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    const double ns = (dlfs_now() - t0) * 1e9 / cpu_workers_sharing();
    atomic_fetch_add(&ns_, (unsigned long long)(ns + 0.5));
    if (m > 0 && n > 0 && k > 0) atomic_fetch_add(&flops_, 2ULL * (unsigned)m * (unsigned)n * (unsigned)k);
}

void cpu_gemm(bool trans_a, bool trans_b, int m, int n, int k, float alpha, const float *a, int lda,
              const float *b, int ldb, float beta, float *c, int ldc)
{
    gemm_(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, false);
}

void cpu_gemm_rows(bool trans_a, bool trans_b, int m, int n, int k, float alpha, const float *a, int lda,
                   const float *b, int ldb, float beta, float *c, int ldc)
{
    gemm_(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, true);
}
