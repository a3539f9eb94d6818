/* Causal self-attention on the CPU: per sequence and head, two GEMMs (through
 * cpu_gemm, so --precision applies as to every GEMM) around a masked softmax;
 * the backward as four GEMMs around the softmax's Jacobian. Layout in
 * dlfs/backend.h (attn_fwd).
 *
 * The (sequence, head) pairs are split across the rank's threads, each with
 * one-thread BLAS (as conv.c splits images): a head's GEMMs (gpt-tiny: 128 x 128
 * x 32) are too small for two BLAS threads, and the softmax between them ran on
 * one core. Each pair writes its own rows and columns, so the split changes no
 * bit. */
#include <cblas.h>
#include <math.h>
#include "backend/cpu/cpu-impl.h"

/* P(t, s) = softmax over s <= t of S(t, s) (S holds the scaled scores), 0 for s > t. */
static void causal_softmax_(float *S, int T)
{
    for (int t = 0; t < T; t++) {
        float *row = S + (size_t)t * (size_t)T, mx = row[0];
        for (int s = 1; s <= t; s++) mx = row[s] > mx ? row[s] : mx;
        double sum = 0;
        for (int s = 0; s <= t; s++) sum += row[s] = expf(row[s] - mx);
        const float inv = (float)(1.0 / sum);
        for (int s = 0; s <= t; s++) row[s] *= inv;
        for (int s = t + 1; s < T; s++) row[s] = 0.0f;
    }
}

struct attn_job_ {
    int B, T, C, nh;
    const float *qkv, *att, *dy;
    float *P, *y, *datt, *dqkv;
};

static void fwd_head_(const struct attn_job_ *j, int b, int h)
{
    const int T = j->T, C = j->C, hs = C / j->nh, ld = 3 * C;
    const float scale = 1.0f / sqrtf((float)hs);
    const float *q = j->qkv + (size_t)b * (size_t)T * (size_t)ld + (size_t)h * (size_t)hs;
    float *P = j->P + ((size_t)b * (size_t)j->nh + (size_t)h) * (size_t)T * (size_t)T;
    cpu_gemm(false, true, T, T, hs, scale, q, ld, q + C, ld, 0.0f, P, T);
    causal_softmax_(P, T);
    cpu_gemm(false, false, T, hs, T, 1.0f, P, T, q + 2 * C, ld, 0.0f,
             j->y + (size_t)b * (size_t)T * (size_t)C + (size_t)h * (size_t)hs, C);
}

/* dS(t, s) = P (dP - sum_s' P dP) for s <= t, else 0 (in place of dP). */
static void softmax_bwd_(const float *P, float *dP, int T)
{
    for (int t = 0; t < T; t++) {
        const float *p = P + (size_t)t * (size_t)T;
        float *d = dP + (size_t)t * (size_t)T;
        double dot = 0;
        for (int s = 0; s <= t; s++) dot += (double)p[s] * d[s];
        const float df = (float)dot;
        for (int s = 0; s <= t; s++) d[s] = p[s] * (d[s] - df);
        for (int s = t + 1; s < T; s++) d[s] = 0.0f;
    }
}

static void bwd_head_(const struct attn_job_ *j, int b, int h)
{
    const int T = j->T, C = j->C, hs = C / j->nh, ld = 3 * C;
    const float scale = 1.0f / sqrtf((float)hs);
    const size_t row0 = (size_t)b * (size_t)T, col = (size_t)h * (size_t)hs;
    const size_t at = ((size_t)b * (size_t)j->nh + (size_t)h) * (size_t)T * (size_t)T;
    const float *q = j->qkv + row0 * (size_t)ld + col, *P = j->att + at, *g = j->dy + row0 * (size_t)C + col;
    float *dq = j->dqkv + row0 * (size_t)ld + col, *dS = j->datt + at;
    cpu_gemm(false, true, T, T, hs, 1.0f, g, C, q + 2 * C, ld, 0.0f, dS, T); /* dP = dY V^T */
    cpu_gemm(true, false, T, hs, T, 1.0f, P, T, g, C, 0.0f, dq + 2 * C, ld); /* dV = P^T dY */
    softmax_bwd_(P, dS, T);
    cpu_gemm(false, false, T, hs, T, scale, dS, T, q + C, ld, 0.0f, dq, ld);  /* dQ = dS K */
    cpu_gemm(true, false, T, hs, T, scale, dS, T, q, ld, 0.0f, dq + C, ld);   /* dK = dS^T Q */
}

/* pairs [n id / threads, n (id + 1) / threads) of the job, pair i = (i / nh, i % nh) */
static void part_(void *arg, int id, int threads)
{
    const struct attn_job_ *j = arg;
    const int n = j->B * j->nh, first = (int)((long long)n * id / threads), end = (int)((long long)n * (id + 1) / threads);
    for (int i = first; i < end; i++) {
        if (j->dy) bwd_head_(j, i / j->nh, i % j->nh);
        else fwd_head_(j, i / j->nh, i % j->nh);
    }
}

/* over the BLAS threads (at most one per pair), with one-thread BLAS meanwhile */
static void run_(struct attn_job_ *j)
{
    const int blas = openblas_get_num_threads(), n = j->B * j->nh, t = blas < n ? blas : n;
    if (t <= 1) {
        part_(j, 0, 1);
        return;
    }
    openblas_set_num_threads(1);
    cpu_workers_run(t, part_, j);
    openblas_set_num_threads(blas);
}

void cpu_attn_fwd(int B, int T, int C, int nh, const float *qkv, float *att, float *y)
{
    struct attn_job_ j = {.B = B, .T = T, .C = C, .nh = nh, .qkv = qkv, .P = att, .y = y};
    run_(&j);
}

void cpu_attn_bwd(int B, int T, int C, int nh, const float *qkv, const float *att, const float *dy, float *datt,
                  float *dqkv)
{
    struct attn_job_ j = {.B = B, .T = T, .C = C, .nh = nh, .qkv = qkv, .att = att, .dy = dy, .datt = datt,
                          .dqkv = dqkv};
    run_(&j);
}
