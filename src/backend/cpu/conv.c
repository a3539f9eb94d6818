/* 2-D convolution on the CPU: im2col + one OpenBLAS GEMM per chunk of images.
 *
 * Per image GEMMs are too small for two BLAS threads (conv 5x5x32 on 28x28 is
 * 32 x 784 x 25: the threads spent more time in sched_yield than computing —
 * measured 528 ms per cnn step at batch 128), so dlfs_conv_chunk() images are
 * unfolded side by side into col (k, S*plane) and multiplied at once. The GEMM
 * output is channel-major over the chunk, (oc, S*plane); one copy puts it into
 * NCHW, cheap next to the k multiply-adds per output.
 *
 * A chunk unfolds about 1 MiB (CHUNK_FLOATS_), not the 16 MB the scratch allows:
 * then the unfolded images, the GEMM's output and its packed panels stay in L2/L3
 * instead of going out to memory and back (cnn conv2: 1 image of 800 x 196 per
 * GEMM and 64 x 800 x 196 multiply-adds; measured 150 vs 180 ms per cnn step,
 * one thread).
 *
 * With several threads per rank, each takes a share of the images with one-thread
 * BLAS (below, conv_job_): cnn step on 2 cores 98 -> 77..87 ms, where two BLAS
 * threads per GEMM left the second core idle in the unfolding between GEMMs. */
#include <cblas.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include "backend/cpu/cpu-impl.h"

#define CHUNK_FLOATS_ ((size_t)1 << 18)

/* Rows of an unfolded image are short (cnn's conv2: 14 floats): a call to memcpy
 * per row cost more than the copy. GCC turns a copy loop into that call unless told
 * not to. */
#if defined(__GNUC__) && !defined(__clang__)
#define NO_MEMCPY_LOOPS_ __attribute__((optimize("no-tree-loop-distribute-patterns")))
#else
#define NO_MEMCPY_LOOPS_
#endif

/* Grow-on-demand scratch, one per thread (the caller's and conv's workers') for
 * the thread's lifetime. */
static float *grow_(float **buf, size_t *cap, size_t n)
{
    if (n > *cap) {
        free(*buf);
        *buf = dlfs_malloc(n * sizeof(float));
        *cap = n;
    }
    return *buf;
}

/* One image with its zero border, (c, h + 2 pad, w + 2 pad): every window then lies
 * inside it and im2col_ copies rows of fixed length with no bounds to test. */
static _Thread_local float *pad_buf_;
static _Thread_local size_t pad_cap_;

static const float *padded_(const struct dlfs_conv_geom *g, const float *x)
{
    if (g->pad == 0) return x;
    const int hp = g->h + 2 * g->pad, wp = g->w + 2 * g->pad;
    float *out = grow_(&pad_buf_, &pad_cap_, (size_t)g->c * hp * wp);
    for (int c = 0; c < g->c; c++) {
        float *oc = out + (size_t)c * hp * wp;
        const float *xc = x + (size_t)c * g->h * g->w;
        memset(oc, 0, (size_t)g->pad * wp * sizeof *oc);
        for (int iy = 0; iy < g->h; iy++) {
            float *r = oc + (size_t)(iy + g->pad) * wp;
            for (int j = 0; j < g->pad; j++) r[j] = r[g->pad + g->w + j] = 0.0f;
            memcpy(r + g->pad, xc + (size_t)iy * g->w, (size_t)g->w * sizeof *r);
        }
        memset(oc + (size_t)(g->pad + g->h) * wp, 0, (size_t)g->pad * wp * sizeof *oc);
    }
    return out;
}

/* col rows (c*kh*kw) x columns [0, plane) at leading dimension ld, from one
 * image x (c, h, w); zero where the window hangs over the padding. */
NO_MEMCPY_LOOPS_ static void im2col_(const struct dlfs_conv_geom *g, const float *x, float *col, size_t ld)
{
    const float *xp = padded_(g, x);
    const int hp = g->h + 2 * g->pad, wp = g->w + 2 * g->pad, ow = g->ow, s = g->stride;
    for (int c = 0; c < g->c; c++)
        for (int ki = 0; ki < g->kh; ki++)
            for (int kj = 0; kj < g->kw; kj++) {
                float *row = col + (size_t)((c * g->kh + ki) * g->kw + kj) * ld;
                const float *xc = xp + (size_t)c * hp * wp + ki * wp + kj;
                for (int oy = 0; oy < g->oh; oy++) {
                    float *r = row + (size_t)oy * ow;
                    const float *xr = xc + (size_t)oy * s * wp;
                    if (s == 1) for (int ox = 0; ox < ow; ox++) r[ox] = xr[ox];
                    else for (int ox = 0; ox < ow; ox++) r[ox] = xr[ox * s];
                }
            }
}

/* dx (c, h, w) += the columns of col folded back (the adjoint of im2col_) */
static void col2im_(const struct dlfs_conv_geom *g, const float *col, size_t ld, float *dx)
{
    for (int c = 0; c < g->c; c++)
        for (int ki = 0; ki < g->kh; ki++)
            for (int kj = 0; kj < g->kw; kj++) {
                const float *row = col + (size_t)((c * g->kh + ki) * g->kw + kj) * ld;
                float *dc = dx + (size_t)c * g->h * g->w;
                int lo = 0, hi = g->ow;
                while (lo < hi && lo * g->stride - g->pad + kj < 0) lo++;
                while (hi > lo && (hi - 1) * g->stride - g->pad + kj >= g->w) hi--;
                for (int oy = 0; oy < g->oh; oy++) {
                    const int iy = oy * g->stride - g->pad + ki;
                    if (iy < 0 || iy >= g->h) continue;
                    const float *r = row + oy * g->ow;
                    float *dr = dc + (size_t)iy * g->w - g->pad + kj;
                    if (g->stride == 1) /* contiguous: the vectoriser's case (same sums, lane by lane) */
                        for (int ox = lo; ox < hi; ox++) dr[ox] += r[ox];
                    else
                        for (int ox = lo; ox < hi; ox++) dr[ox * g->stride] += r[ox];
                }
            }
}

/* x[0] + ... + x[n-1] in 8 interleaved partial sums, then those in order: the
 * vectoriser keeps them in registers, where one running sum is a chain of
 * dependent adds. A fixed order, whatever the threads. */
static float sum_(const float *x, int n)
{
    float acc[8] = {0};
    int p = 0;
    for (; p + 8 <= n; p += 8)
        for (int l = 0; l < 8; l++) acc[l] += x[p + l];
    float sum = 0.0f;
    for (int l = 0; l < 8; l++) sum += acc[l];
    for (; p < n; p++) sum += x[p];
    return sum;
}

/* A 1x1 convolution at stride 1 without padding is a plain GEMM: an image unfolded
 * is the image itself, (c, plane). Chunks of one image (the planes of 28x28 and up in
 * resnet50) then multiply x in place (no copy) and the backward writes dx straight
 * from its GEMM (no fold-back into a zeroed dx). The same GEMMs on the same values:
 * the same bits as the unfolded path, but for the sign of a zero in dx. */
static bool pointwise_(const struct dlfs_conv_geom *g)
{
    return g->kh == 1 && g->kw == 1 && g->stride == 1 && g->pad == 0;
}

/* One call of the op, split by images across the rank's threads (workers.c):
 * thread `id` of T takes images [n id / T, n (id+1) / T) with one-thread BLAS and
 * its own scratch; the weight and bias gradients of threads 1.. are partial sums
 * added to thread 0's in thread order. One thread (deterministic mode always runs
 * one) is the plain loop over the batch, chunk after chunk. */
struct conv_job_ {
    const struct dlfs_conv_geom *g;
    int n, S;               /* images; images unfolded per GEMM */
    const float *x, *w, *b; /* fwd */
    const float *dz;        /* bwd */
    float *col;             /* the caller's scratch: thread 0's */
    float *z, *a, *dw, *db, *dx;
    enum dlfs_act act;
    float *part[CPU_MAX_THREADS]; /* bwd: thread t's dW (oc, k) then db (oc); t >= 1 */
};

static _Thread_local float *scratch_;
static _Thread_local size_t scratch_cap_;

/* The weight gradient is summed transposed, dW^T (k, oc) = col * dz^T, and turned
 * at the end: OpenBLAS runs that shape faster (resnet20's 16-channel convs: k = 144,
 * oc = 16, 1568 columns: 63 -> 79 GFLOP/s on one core; 32 channels 79 -> 92). Each
 * element is the same dot product over the same columns in the same order, so the
 * same bits as dW = dz * col^T (digests of cnn, cnn-bn, resnet20 unchanged). */
static _Thread_local float *dwt_buf_;
static _Thread_local size_t dwt_cap_;

/* Runs fn over the rank's threads (the BLAS thread count, at most one per image)
 * with one-thread BLAS, then gives BLAS its threads back; the thread count it ran on. */
static int run_(struct conv_job_ *j, void (*fn)(void *, int, int))
{
    const int blas = openblas_get_num_threads();
    int t = blas < CPU_MAX_THREADS ? blas : CPU_MAX_THREADS;
    if (t > j->n) t = j->n;
    if (t <= 1) {
        fn(j, 0, 1);
        return 1;
    }
    openblas_set_num_threads(1);
    const int ran = cpu_workers_run(t, fn, j);
    openblas_set_num_threads(blas);
    return ran;
}

static const float zero_ = 0.0f; /* the bias of a conv without one */

static void fwd_part_(void *arg, int id, int threads)
{
    const struct conv_job_ *j = arg;
    const struct dlfs_conv_geom *g = j->g;
    const int k = g->c * g->kh * g->kw, plane = g->oh * g->ow, S = j->S;
    const size_t in_sz = (size_t)g->c * g->h * g->w, out_sz = (size_t)g->oc * plane;
    const int first = (int)((long long)j->n * id / threads), end = (int)((long long)j->n * (id + 1) / threads);
    float *col = id == 0 ? j->col : grow_(&scratch_, &scratch_cap_, (size_t)S * plane * (size_t)(k + g->oc));
    for (int i0 = first; i0 < end; i0 += S) {
        const int s = end - i0 < S ? end - i0 : S;
        const size_t ld = (size_t)s * plane;
        /* (oc, s*plane); for one image that is its NCHW place in z already */
        float *out = s == 1 ? j->z + (size_t)i0 * out_sz : col + (size_t)k * ld;
        const bool direct = s == 1 && pointwise_(g);
        const float *unf = direct ? j->x + (size_t)i0 * in_sz : col;
        if (!direct)
            for (int q = 0; q < s; q++) im2col_(g, j->x + (size_t)(i0 + q) * in_sz, col + (size_t)q * plane, ld);
        /* out (oc, s*plane) = W (oc, k) * col (k, s*plane) */
        cpu_gemm(false, false, g->oc, (int)ld, k, 1.0f, j->w, k, unf, (int)ld, 0.0f, out, (int)ld);
        for (int q = 0; q < s; q++)
            for (int o = 0; o < g->oc; o++) { /* bias per channel, activation, into NCHW */
                const float *src = out + (size_t)o * ld + (size_t)q * plane;
                const size_t at = (size_t)(i0 + q) * out_sz + (size_t)o * plane;
                float *zr = j->z + at, *ar = j->a + at;
                const float bo = j->b ? j->b[o] : 0.0f;
                if (j->act == DLFS_ACT_RELU) {
                    for (int p = 0; p < plane; p++) {
                        const float v = src[p] + bo;
                        zr[p] = v;
                        ar[p] = v > 0.0f ? v : 0.0f;
                    }
                } else if (j->act == DLFS_ACT_NONE) { /* the copy and the bias in one pass */
                    for (int p = 0; p < plane; p++) zr[p] = src[p] + bo;
                    if (ar != zr) memcpy(ar, zr, (size_t)plane * sizeof *ar);
                } else {
                    if (zr != src) memcpy(zr, src, (size_t)plane * sizeof *zr);
                    /* (plane, 1): the dense op's bias broadcast over one column */
                    cpu_bias_act_fwd(zr, ar, j->b ? j->b + o : &zero_, plane, 1, j->act);
                }
            }
    }
}

void cpu_conv2d_fwd(const struct dlfs_conv_geom *g, int n, const float *x, const float *w, const float *b,
                    float *col, float *z, float *a, enum dlfs_act act)
{
    if (n <= 0) return;
    struct conv_job_ j = {.g = g, .n = n, .S = dlfs_conv_chunk_within(g, n, CHUNK_FLOATS_),
                          .x = x, .w = w, .b = b, .col = col, .z = z, .a = a, .act = act};
    run_(&j, fwd_part_);
}

static void bwd_part_(void *arg, int id, int threads)
{
    struct conv_job_ *j = arg;
    const struct dlfs_conv_geom *g = j->g;
    const int k = g->c * g->kh * g->kw, plane = g->oh * g->ow, S = j->S;
    const size_t in_sz = (size_t)g->c * g->h * g->w, out_sz = (size_t)g->oc * plane;
    const int first = (int)((long long)j->n * id / threads), end = (int)((long long)j->n * (id + 1) / threads);
    float *col = j->col, *dw = j->dw, *db = j->db;
    if (id > 0) { /* scratch: col, then this thread's dW and db */
        const size_t col_n = (size_t)S * plane * (size_t)(k + g->oc);
        col = grow_(&scratch_, &scratch_cap_, col_n + (size_t)g->oc * k + g->oc);
        dw = col + col_n;
        db = j->db ? dw + (size_t)g->oc * k : NULL;
        j->part[id] = dw;
    }
    float *dwt = grow_(&dwt_buf_, &dwt_cap_, (size_t)g->oc * k);
    if (db) memset(db, 0, (size_t)g->oc * sizeof *db);
    if (j->dx && !(S == 1 && pointwise_(g))) /* (direct: every dx written by a GEMM) */
        memset(j->dx + (size_t)first * in_sz, 0, (size_t)(end - first) * in_sz * sizeof *j->dx);
    for (int i0 = first; i0 < end; i0 += S) {
        const int s = end - i0 < S ? end - i0 : S;
        const size_t ld = (size_t)s * plane;
        /* dz of the chunk, channel-major (oc, s*plane): for one image, dz itself */
        const float *dzt = s == 1 ? j->dz + (size_t)i0 * out_sz : col + (size_t)k * ld;
        for (int q = 0; q < s; q++)
            for (int o = 0; o < g->oc; o++) {
                const float *src = j->dz + (size_t)(i0 + q) * out_sz + (size_t)o * plane;
                if (s > 1) memcpy(col + (size_t)k * ld + (size_t)o * ld + (size_t)q * plane, src,
                                  (size_t)plane * sizeof *src);
                if (db) db[o] += sum_(src, plane);
            }
        const bool direct = s == 1 && pointwise_(g);
        const float *unf = direct ? j->x + (size_t)i0 * in_sz : col;
        if (!direct)
            for (int q = 0; q < s; q++) im2col_(g, j->x + (size_t)(i0 + q) * in_sz, col + (size_t)q * plane, ld);
        /* dW^T (k, oc) (+)= col (k, s*plane) * dz^T (s*plane, oc) (dwt_buf_) */
        cpu_gemm(false, true, k, g->oc, (int)ld, 1.0f, unf, (int)ld, dzt, (int)ld, i0 > first ? 1.0f : 0.0f, dwt,
                 g->oc);
        if (j->dx && direct) /* dx (c, plane) = W^T (c, oc) * dz (oc, plane) */
            cpu_gemm(true, false, k, (int)ld, g->oc, 1.0f, j->w, k, dzt, (int)ld, 0.0f, j->dx + (size_t)i0 * in_sz,
                     (int)ld);
        else if (j->dx) {
            /* col (k, s*plane) = W^T (k, oc) * dz (oc, s*plane), folded back into dx */
            cpu_gemm(true, false, k, (int)ld, g->oc, 1.0f, j->w, k, dzt, (int)ld, 0.0f, col, (int)ld);
            for (int q = 0; q < s; q++) col2im_(g, col + (size_t)q * plane, ld, j->dx + (size_t)(i0 + q) * in_sz);
        }
    }
    for (int o = 0; o < g->oc; o++)
        for (int i = 0; i < k; i++) dw[(size_t)o * k + i] = dwt[(size_t)i * g->oc + o];
}

void cpu_conv2d_bwd(const struct dlfs_conv_geom *g, int n, const float *x, const float *w, const float *dz,
                    float *col, float *dw, float *db, float *dx)
{
    const int k = g->c * g->kh * g->kw;
    if (n <= 0) {
        memset(dw, 0, (size_t)g->oc * k * sizeof *dw);
        if (db) memset(db, 0, (size_t)g->oc * sizeof *db);
        return;
    }
    struct conv_job_ j = {.g = g, .n = n, .S = dlfs_conv_chunk_within(g, n, CHUNK_FLOATS_),
                          .x = x, .w = w, .dz = dz, .col = col, .dw = dw, .db = db, .dx = dx};
    const int threads = run_(&j, bwd_part_);
    for (int t = 1; t < threads; t++) { /* the other threads' sums, in thread order */
        const float *pw = j.part[t], *pb = pw + (size_t)g->oc * k;
        for (size_t i = 0; i < (size_t)g->oc * k; i++) dw[i] += pw[i];
        if (db)
            for (int o = 0; o < g->oc; o++) db[o] += pb[o];
    }
}
