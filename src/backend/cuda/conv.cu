// 2-D convolution on the GPU (the twin of src/backend/cpu/conv.c): the same
// chunking, scratch layout and GEMMs, with the loops replaced by kernels.
//
// Why im2col + cuBLAS and not an implicit-GEMM kernel or cuDNN: the GEMMs are
// cuBLAS's (tested, fp32 or TF32 by the same switch as dense layers), the unfold
// costs one extra pass over k * S*plane floats, and every index of the unfold,
// the fold-back and the layout changes lives in backend/kernels/conv-idx.h, which
// tests/unit/test_kernel_idx.c runs on the host against the CPU backend. cuDNN
// would be faster but is one more dependency the course machines may not have.
//
// Forward, per chunk of s images (ld = s*plane):
//   col (k, ld) = im2col(x)            im2col_k, one thread per col entry
//   out (oc, ld) = W (oc, k) col       cuda_gemm
//   z, a (NCHW) = act(out + b)         conv_out_k, one thread per output
// Backward: db by a per-channel block reduction over the whole batch (no atomics);
// per chunk dz -> channel-major dzt, dW (+)= dzt col^T, col = W^T dzt, and
// dx = col2im(col) as a gather (each input pixel sums its taps: no atomics).
#include "backend/cuda/act.cuh"
#include "backend/cuda/cuda-impl.cuh"
#include "backend/cuda/reduce.cuh"
#include "backend/kernels/conv-idx.h"

#define CONV_THREADS 256

__global__ void im2col_k(dlfs_conv_geom g, const float *__restrict__ x, float *__restrict__ col, size_t ld,
                         size_t total)
{
    CUDA_GRID_STRIDE(i, total) col[i] = dlfs_im2col_at(&g, x, ld, i);
}

__global__ void col2im_k(dlfs_conv_geom g, const float *__restrict__ col, float *__restrict__ dx, size_t ld,
                         size_t total)
{
    CUDA_GRID_STRIDE(i, total) dx[i] = dlfs_col2im_at(&g, col, ld, i);
}

// NCHW output i of the chunk from the channel-major GEMM result, plus the channel's
// bias, then the activation. z and a may alias (DLFS_ACT_NONE): no __restrict__.
template <int ACT>
__global__ void conv_out_k(const float *__restrict__ out, const float *__restrict__ b, float *z, float *a,
                           size_t plane, int oc, size_t ld, size_t total)
{
    CUDA_GRID_STRIDE(i, total)
    {
        const float v = out[dlfs_chunk_cm_index(plane, oc, ld, i)] + (b ? b[i / plane % (size_t)oc] : 0.0f);
        z[i] = v;
        a[i] = act_f<ACT>(v);
    }
}

// dz of the chunk (NCHW) into channel-major (oc, ld): a permutation, so every
// thread writes its own place.
__global__ void to_channel_major_k(const float *__restrict__ dz, float *__restrict__ dzt, size_t plane, int oc,
                                   size_t ld, size_t total)
{
    CUDA_GRID_STRIDE(i, total) dzt[dlfs_chunk_cm_index(plane, oc, ld, i)] = dz[i];
}

// db[o] = sum of dz over images and pixels of channel o: one block per channel,
// partial sums in double, fixed-order tree.
__global__ void conv_db_k(const float *__restrict__ dz, float *__restrict__ db, int n, int oc, size_t plane)
{
    __shared__ double sh[REDUCE_THREADS];
    const int o = blockIdx.x;
    const size_t total = (size_t)n * plane;
    double s = 0.0;
    for (size_t e = threadIdx.x; e < total; e += REDUCE_THREADS)
        s += dz[(e / plane * (size_t)oc + (size_t)o) * plane + e % plane];
    s = block_sum_(s, sh);
    if (threadIdx.x == 0) db[o] = (float)s;
}

static void conv_out_(const float *out, const float *b, float *z, float *a, size_t plane, int oc, size_t ld,
                      size_t total, enum dlfs_act act)
{
    const unsigned t = CONV_THREADS, gr = cuda_grid_(total, t);
    cudaStream_t s = cuda_ctx_.stream;
    switch (act) {
    case DLFS_ACT_RELU: conv_out_k<DLFS_ACT_RELU><<<gr, t, 0, s>>>(out, b, z, a, plane, oc, ld, total); break;
    case DLFS_ACT_TANH: conv_out_k<DLFS_ACT_TANH><<<gr, t, 0, s>>>(out, b, z, a, plane, oc, ld, total); break;
    case DLFS_ACT_SIGMOID: conv_out_k<DLFS_ACT_SIGMOID><<<gr, t, 0, s>>>(out, b, z, a, plane, oc, ld, total); break;
    case DLFS_ACT_GELU: conv_out_k<DLFS_ACT_GELU><<<gr, t, 0, s>>>(out, b, z, a, plane, oc, ld, total); break;
    default: conv_out_k<DLFS_ACT_NONE><<<gr, t, 0, s>>>(out, b, z, a, plane, oc, ld, total); break;
    }
    CUDA_LAUNCH_CHECK();
}

static void im2col_(const struct dlfs_conv_geom *g, const float *x, float *col, size_t ld)
{
    const size_t total = (size_t)g->c * g->kh * g->kw * ld;
    im2col_k<<<cuda_grid_(total, CONV_THREADS), CONV_THREADS, 0, cuda_ctx_.stream>>>(*g, x, col, ld, total);
    CUDA_LAUNCH_CHECK();
}

void cuda_conv2d_fwd(const struct dlfs_conv_geom *g, int n, const float *x, const float *w, const float *b,
                     float *col, float *z, float *a, enum dlfs_act act)
{
    DLFS_ASSERT(n >= 0 && g->oh > 0 && g->ow > 0 && g->stride > 0 && (a != z || act == DLFS_ACT_NONE));
    const int k = g->c * g->kh * g->kw, plane = g->oh * g->ow, S = dlfs_conv_chunk(g, n);
    const size_t in_sz = (size_t)g->c * g->h * g->w, out_sz = (size_t)g->oc * plane;
    for (int i0 = 0; i0 < n; i0 += S) {
        const int s = n - i0 < S ? n - i0 : S;
        const size_t ld = (size_t)s * plane;
        float *out = col + (size_t)k * ld; // (oc, ld)
        im2col_(g, x + (size_t)i0 * in_sz, col, ld);
        cuda_gemm(false, false, g->oc, (int)ld, k, 1.0f, w, k, col, (int)ld, 0.0f, out, (int)ld);
        conv_out_(out, b, z + (size_t)i0 * out_sz, a + (size_t)i0 * out_sz, (size_t)plane, g->oc, ld,
                  (size_t)s * out_sz, act);
    }
}

void cuda_conv2d_bwd(const struct dlfs_conv_geom *g, int n, const float *x, const float *w, const float *dz,
                     float *col, float *dw, float *db, float *dx)
{
    DLFS_ASSERT(n >= 0 && g->oh > 0 && g->ow > 0 && g->stride > 0);
    const int k = g->c * g->kh * g->kw, plane = g->oh * g->ow, S = dlfs_conv_chunk(g, n);
    const size_t in_sz = (size_t)g->c * g->h * g->w, out_sz = (size_t)g->oc * plane;
    cudaStream_t st = cuda_ctx_.stream;
    if (g->oc > 0 && db) { // one block per channel: no channels, no launch (a 0-block grid is an error)
        conv_db_k<<<(unsigned)g->oc, REDUCE_THREADS, 0, st>>>(dz, db, n, g->oc, (size_t)plane);
        CUDA_LAUNCH_CHECK();
    }
    for (int i0 = 0; i0 < n; i0 += S) {
        const int s = n - i0 < S ? n - i0 : S;
        const size_t ld = (size_t)s * plane, nout = (size_t)s * out_sz, nin = (size_t)s * in_sz;
        float *dzt = col + (size_t)k * ld; // (oc, ld)
        to_channel_major_k<<<cuda_grid_(nout, CONV_THREADS), CONV_THREADS, 0, st>>>(
            dz + (size_t)i0 * out_sz, dzt, (size_t)plane, g->oc, ld, nout);
        CUDA_LAUNCH_CHECK();
        im2col_(g, x + (size_t)i0 * in_sz, col, ld);
        // dW (oc, k) (+)= dzt (oc, ld) col^T (ld, k); the first chunk overwrites
        cuda_gemm(false, true, g->oc, k, (int)ld, 1.0f, dzt, (int)ld, col, (int)ld, i0 ? 1.0f : 0.0f, dw, k);
        if (dx) {
            // col (k, ld) = W^T (k, oc) dzt (oc, ld), folded back into the chunk's dx
            cuda_gemm(true, false, k, (int)ld, g->oc, 1.0f, w, k, dzt, (int)ld, 0.0f, col, (int)ld);
            col2im_k<<<cuda_grid_(nin, CONV_THREADS), CONV_THREADS, 0, st>>>(*g, col, dx + (size_t)i0 * in_sz, ld,
                                                                             nin);
            CUDA_LAUNCH_CHECK();
        }
    }
}
