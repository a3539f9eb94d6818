/* Private declarations of the CPU backend's ops (one op family per file). */
#ifndef DLFS_CPU_IMPL_H
#define DLFS_CPU_IMPL_H
#include "dlfs/backend.h"

/* Long hot loops also compiled for AVX-512 and AVX2 (the baseline build is SSE2
 * x86-64), the variant picked once at load time (GCC's target_clones, an ifunc).
 * Not for short rows: cnn's 14-float im2col rows and 7-wide pooling rows ran
 * slower with 16-float vectors (all in the scalar remainder). Only for loops
 * whose results cannot depend on the vector width: copies, selects, and
 * element-wise IEEE operations (+ - * / sqrt are correctly rounded at any width;
 * no reassociated sums; -std=c11 keeps a*b+c from becoming an FMA). */
/* (Not under ThreadSanitizer: its instrumented ifunc resolvers run before it is
 * initialised and crash at load time.) */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__) && \
    !defined(__SANITIZE_THREAD__)
#define CPU_CLONES_ __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define CPU_CLONES_
#endif

/* Runs fn(arg, id, threads) for id = 0 .. threads-1, id 0 on the caller and the rest
 * on persistent worker threads (workers.c), and returns when all have; returns
 * `threads`, or fewer where threads could not be created (1: fn ran on the caller
 * alone). At most CPU_MAX_THREADS. */
#define CPU_MAX_THREADS 64
int cpu_workers_run(int threads, void (*fn)(void *arg, int id, int threads), void *arg);
/* fn(arg, first, end) over contiguous parts of [0, n) on the rank's threads (split.c);
 * one thread when `work` (about the values touched) is small. */
void cpu_split_run(size_t n, size_t work, void (*fn)(void *arg, size_t first, size_t end), void *arg);
/* The threads of the cpu_workers_run job the calling thread runs a part of, 1 outside one. */
int cpu_workers_sharing(void);
/* fn(arg, lo, hi) over contiguous ranges that cover [0, n), one per thread of the rank
 * (the BLAS thread count; one range, on the caller, when n / grain < 2 or BLAS has one
 * thread, as inside conv's workers): for loops whose items are independent, so the
 * results are the same bits whatever the split. From the op-issuing thread only. */
void cpu_parallel_for(size_t n, size_t grain, void (*fn)(void *arg, size_t lo, size_t hi), void *arg);

void cpu_gemm(bool trans_a, bool trans_b, int m, int n, int k, float alpha, const float *a, int lda,
              const float *b, int ldb, float beta, float *c, int ldc);
void cpu_gemm_rows(bool trans_a, bool trans_b, int m, int n, int k, float alpha, const float *a, int lda,
                   const float *b, int ldb, float beta, float *c, int ldc);
void cpu_set_precision(enum dlfs_precision p);
void cpu_gemm_account(double out[2], bool reset);
void cpu_bias_act_fwd(float *z, float *a, const float *bias, int rows, int cols, enum dlfs_act act);
void cpu_act_bwd(float *dz, const float *da, const float *z, const float *a, size_t n,
                 enum dlfs_act act);
void cpu_gelu_bias_fwd(float *z, float *a, const float *bias, int rows, int cols);
void cpu_gelu_bwd(float *dz, const float *da, const float *z, size_t n);
void cpu_colsum(float *out, const float *x, int rows, int cols, float beta);
void cpu_softmax_xent(const float *logits, const int32_t *labels, int rows, int classes,
                      float grad_scale, float *dlogits, double *stats);
void cpu_normalize_u8(float *dst, const uint8_t *src, size_t n, int channels, size_t plane,
                      const double *mean, const double *std);
void cpu_gather_u8(float *dst, int32_t *labels_out, const uint8_t *images, const uint8_t *labels,
                   const uint32_t *idx, int rows, int channels, size_t plane, const double *mean,
                   const double *std);
void cpu_sgd_update(size_t n, float *p, const float *g, float *m, const struct dlfs_optim_hp *hp);
void cpu_adam_update(size_t n, float *p, const float *g, float *m, float *v,
                     const struct dlfs_optim_hp *hp);
void cpu_sgd_update_dev(size_t n, float *p, const float *g, float *m, const struct dlfs_optim_hp *hp,
                        const struct dlfs_optim_dyn *dyn);
void cpu_adam_update_dev(size_t n, float *p, const float *g, float *m, float *v, const struct dlfs_optim_hp *hp,
                         const struct dlfs_optim_dyn *dyn);
void cpu_conv2d_fwd(const struct dlfs_conv_geom *g, int n, const float *x, const float *w, const float *b,
                    float *col, float *z, float *a, enum dlfs_act act);
void cpu_conv2d_bwd(const struct dlfs_conv_geom *g, int n, const float *x, const float *w, const float *dz,
                    float *col, float *dw, float *db, float *dx);
void cpu_maxpool_fwd(const struct dlfs_conv_geom *g, int n, const float *x, float *y, int32_t *arg);
void cpu_maxpool_bwd(const struct dlfs_conv_geom *g, int n, const float *dy, const int32_t *arg, float *dx);
void cpu_gap_fwd(int n, int c, int plane, const float *x, float *y);
void cpu_gap_bwd(int n, int c, int plane, const float *dy, float *dx);
void cpu_batchnorm_fwd(int n, int c, int plane, int group, const float *x, const float *gamma, const float *beta,
                       const float *run_mean, const float *run_var, float eps, float *xhat, float *invstd,
                       float *z, float *a, enum dlfs_act act, float *stats);
void cpu_batchnorm_bwd(int n, int c, int plane, int group, const float *dz, const float *xhat, const float *invstd,
                       const float *gamma, float *dgamma, float *dbeta, float *dx);
void cpu_take_ids(const float *x, int rows, int ld, int off, int n, int32_t *out);
void cpu_embed_fwd(const float *tok, const float *pos, const float *ids, int ld, int rows, int T, int dim, float *y);
void cpu_embed_bwd(const float *dy, const float *ids, int ld, int rows, int T, int dim, int vocab, float *dtok,
                   float *dpos);
void cpu_layernorm_fwd(int rows, int dim, const float *x, const float *gamma, const float *beta, float eps, float *y,
                       float *mean, float *rstd);
void cpu_layernorm_bwd(int rows, int dim, const float *dy, const float *x, const float *mean, const float *rstd,
                       const float *gamma, float *dx, float *dgamma, float *dbeta);
void cpu_attn_fwd(int B, int T, int C, int nh, const float *qkv, float *att, float *y);
void cpu_attn_bwd(int B, int T, int C, int nh, const float *qkv, const float *att, const float *dy, float *datt,
                  float *dqkv);
#endif
