/* dlfs — the backend op table.
 *
 * A backend is a table of function pointers filled with designated initialisers
 * (src/backend/cpu/cpu.c, src/backend/cuda/...). Code above this seam never sees
 * CUDA types and never writes #ifdef: it calls through the table. "Supports op X"
 * is `be->x != NULL`; there is no second switch to keep in sync.
 *
 * Conventions:
 *   - all tensors are float32, row-major, in the backend's memory ("device");
 *   - shape comments name (rows, cols); a batch of activations is (batch, features);
 *   - dense weights are stored (out, in) like PyTorch, so forward is Z = X W^T + b;
 *   - ops are asynchronous with respect to the host on devices that can be;
 *     `sync` waits. Host-visible results are only read after `to_host`;
 *   - no op can fail at run time except alloc (returns NULL); bad arguments are
 *     programming errors (DLFS_ASSERT).
 */
#ifndef DLFS_BACKEND_H
#define DLFS_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "dlfs/status.h"

#ifdef __cplusplus
extern "C" {
#endif

enum dlfs_act {
    DLFS_ACT_NONE = 0,
    DLFS_ACT_RELU,
    DLFS_ACT_TANH,
    DLFS_ACT_SIGMOID,
    DLFS_ACT_GELU,   /* tanh approximation, as PyTorch's gelu(approximate='tanh') */
    DLFS_ACT_COUNT
};
const char *dlfs_act_name(enum dlfs_act a);
/* Parse "relu"/"tanh"/"sigmoid"/"gelu"/"none"; returns DLFS_ACT_COUNT when unknown. */
enum dlfs_act dlfs_act_parse(const char *s);

/* Arithmetic of the GEMMs (dense layers and the GEMMs inside convolutions); every
 * other op, the weights, gradients and optimizer state stay fp32 (master weights).
 * FP32: plain fp32. TF32: operands rounded to a 10-bit mantissa (tensor cores on
 * CUDA). BF16: operands rounded to bfloat16 (8-bit mantissa), products summed in
 * fp32. The CPU backend emulates TF32/BF16 bit for bit on the operands (slower). */
enum dlfs_precision {
    DLFS_PRECISION_FP32 = 0,
    DLFS_PRECISION_TF32,
    DLFS_PRECISION_BF16,
    DLFS_PRECISION_COUNT
};
const char *dlfs_precision_name(enum dlfs_precision p);

/* Geometry of a 2-D convolution or pooling window over NCHW images (square
 * windows are what the spec language offers, the ops take kh != kw too). */
struct dlfs_conv_geom {
    int c, h, w;           /* input channels, height, width */
    int oc, oh, ow;        /* output channels, height, width */
    int kh, kw, stride, pad;
};
/* Images the conv ops unfold at once for a batch of n (bounded scratch), and the
 * floats of scratch (`col`) they need for a batch of up to n images. */
int dlfs_conv_chunk(const struct dlfs_conv_geom *g, int n);
size_t dlfs_conv_col_floats(const struct dlfs_conv_geom *g, int n);
/* A backend's own, smaller chunk: at most `floats` unfolded at once (the CPU keeps
 * a chunk in its caches), never more than dlfs_conv_chunk (so the scratch fits).
 * A budget set by the tests (src/backend/test-support.h) overrides it: then every
 * backend chunks alike, as the tests comparing them bit for bit need. */
int dlfs_conv_chunk_within(const struct dlfs_conv_geom *g, int n, size_t floats);

/* Adam/AdamW/SGD hyper-parameters for one update over a slab. */
struct dlfs_optim_hp {
    float lr;
    float momentum;      /* SGD */
    bool nesterov;       /* SGD */
    float beta1, beta2, eps;
    float weight_decay;  /* SGD/Adam: added to the gradient (L2); AdamW: decoupled */
    bool decoupled;      /* AdamW */
    float bias_c1, bias_c2; /* Adam: 1 - beta1^t, 1 - beta2^t (computed on the host) */
};

/* The fields of dlfs_optim_hp that change from step to step (the schedule's lr,
 * Adam's bias corrections), as the *_update_dev entries read them from backend
 * memory: a recorded CUDA graph replays the same launch while the host writes
 * each step's values (one async copy). 16 bytes. */
struct dlfs_optim_dyn {
    float lr, bias_c1, bias_c2;
    float pad_;
};

struct dlfs_backend {
    const char *name;   /* "cpu", "cuda" */
    bool host_memory;   /* its buffers are ordinary host memory (MPI may use them directly) */

    /* memory */
    void *(*alloc)(size_t bytes);                           /* zero-filled; NULL when out of memory */
    void (*free)(void *p);
    void (*to_device)(void *dst, const void *src, size_t bytes);
    void (*to_host)(void *dst, const void *src, size_t bytes);
    void (*copy)(void *dst, const void *src, size_t bytes);  /* device to device */
    void (*sync)(void);
    void (*fill)(float *x, float v, size_t n);

    /* C(m,n) = alpha * op(A) op(B) + beta * C, row-major; op(A) is (m,k), op(B) is (k,n). */
    void (*gemm)(bool trans_a, bool trans_b, int m, int n, int k, float alpha,
                 const float *a, int lda, const float *b, int ldb, float beta, float *c, int ldc);

    /* z(rows,cols) += bias(cols) broadcast over rows; a = act(z). `a` may equal `z`
     * only for DLFS_ACT_NONE. */
    void (*bias_act_fwd)(float *z, float *a, const float *bias, int rows, int cols, enum dlfs_act act);
    /* dz = da * act'(z) elementwise over n values (`a` = act(z), used where cheaper). */
    void (*act_bwd)(float *dz, const float *da, const float *z, const float *a, size_t n,
                    enum dlfs_act act);
    /* out(cols) = beta * out + sum over rows of x(rows,cols). */
    void (*colsum)(float *out, const float *x, int rows, int cols, float beta);

    /* Softmax cross-entropy over logits(rows,classes) with integer labels(rows).
     * If dlogits != NULL: dlogits = (softmax - onehot) * grad_scale.
     * stats[0] += sum of per-row losses, stats[1] += number of rows whose argmax
     * equals the label (first maximum wins). stats lives in device memory. */
    void (*softmax_xent)(const float *logits, const int32_t *labels, int rows, int classes,
                         float grad_scale, float *dlogits, double *stats);

    /* dst[i] = (src[i] / 255 - mean[ch]) / std[ch] for a batch of images
     * (n images of `channels` planes of `plane` pixels). mean/std are host arrays. */
    void (*normalize_u8)(float *dst, const uint8_t *src, size_t n, int channels, size_t plane,
                         const double *mean, const double *std);

    /* y += alpha * x */
    void (*axpy)(size_t n, float alpha, const float *x, float *y);
    /* x *= alpha */
    void (*scale)(size_t n, float alpha, float *x);

    /* One optimizer step over a whole slab of n parameters (p), gradients (g) and
     * state (m: momentum / first moment, v: second moment; NULL where unused). */
    void (*sgd_update)(size_t n, float *p, const float *g, float *m, const struct dlfs_optim_hp *hp);
    void (*adam_update)(size_t n, float *p, const float *g, float *m, float *v,
                        const struct dlfs_optim_hp *hp);
    /* Optional: the same updates, bit for bit, with hp->lr / bias_c1 / bias_c2 taken
     * at run time from `dyn` (backend memory, read when the update runs, not when
     * it is issued); the other fields of hp by value as above. */
    void (*sgd_update_dev)(size_t n, float *p, const float *g, float *m, const struct dlfs_optim_hp *hp,
                           const struct dlfs_optim_dyn *dyn);
    void (*adam_update_dev)(size_t n, float *p, const float *g, float *m, float *v,
                            const struct dlfs_optim_hp *hp, const struct dlfs_optim_dyn *dyn);

    /* Convolution over n NCHW images (optional: NULL where a backend lacks it, and
     * the trainer refuses models that need it). Weights are (oc, c, kh, kw), bias (oc).
     * fwd: z(n, oc, oh, ow) = conv(x(n, c, h, w), w) + b; a = act(z) (`a` may equal
     * `z` only for DLFS_ACT_NONE). col: dlfs_conv_col_floats(g, n) floats of scratch.
     * bwd: from dz(n, oc, oh, ow) overwrite dw and db, and dx(n, c, h, w) unless NULL.
     * A conv without bias (before batch norm, as in ResNets): b and db NULL. */
    void (*conv2d_fwd)(const struct dlfs_conv_geom *g, int n, const float *x, const float *w,
                       const float *b, float *col, float *z, float *a, enum dlfs_act act);
    void (*conv2d_bwd)(const struct dlfs_conv_geom *g, int n, const float *x, const float *w,
                       const float *dz, float *col, float *dw, float *db, float *dx);
    /* Max pooling (kh x kw windows, stride, padding pad <= kh/2, kw/2; oc == c; the
     * padding counts as -inf, so a window's maximum is always a pixel of its input
     * plane, as PyTorch's max_pool2d). fwd writes y and the
     * index of each window's first maximum within its input plane (arg); bwd
     * overwrites dx(n, c, h, w) with dy routed to those maxima. */
    void (*maxpool_fwd)(const struct dlfs_conv_geom *g, int n, const float *x, float *y, int32_t *arg);
    void (*maxpool_bwd)(const struct dlfs_conv_geom *g, int n, const float *dy, const int32_t *arg,
                        float *dx);

    /* Dropout over x(rows, cols): row r is global sample ids[r] (device memory), and
     * element j is kept with probability 1 - rate, decided by
     * dlfs_uniform01(dlfs_hash64(key, ids[r]), j) >= rate — never by rank or thread,
     * so every rank count draws the same masks. mask = kept / (1 - rate); y = x * mask. */
    void (*dropout_fwd)(const float *x, float *y, float *mask, int rows, int cols, float rate, uint64_t key,
                        const uint32_t *ids);
    /* y *= x elementwise (dropout's backward: dx = dy * mask) */
    void (*mul)(size_t n, const float *x, float *y);
    /* y = a + b elementwise, y may be a or b (the residual add; its backward is copy/axpy). */
    void (*add)(size_t n, const float *a, const float *b, float *y);
    /* Global average pooling of x(n, c, plane): y(n, c) = each plane's values summed in
     * order, then divided by plane; bwd overwrites dx(n, c, plane) = dy(n, c) / plane. */
    void (*gap_fwd)(int n, int c, int plane, const float *x, float *y);
    void (*gap_bwd)(int n, int c, int plane, const float *dy, float *dx);

    /* Batch normalisation of x(n, c, plane), per channel. Training (run_mean NULL):
     * statistics over each group of `group` consecutive rows (the last may be
     * shorter; <= 0: all n) and its planes; xhat = (x - mean) / sqrt(var + eps)
     * (biased var), invstd ((n + group - 1) / group, c) saved for the backward;
     * when stats != NULL, stats[0..c) += each group's mean and stats[c..2c) += its
     * unbiased variance (for the running statistics). Evaluation: run_mean/run_var
     * instead, xhat/invstd/stats unused. Then z = gamma * xhat + beta, a = act(z)
     * (`a` may equal `z` only for DLFS_ACT_NONE).
     * bwd: from dz overwrite dgamma, dbeta (c) and dx(n, c, plane) unless NULL. */
    void (*batchnorm_fwd)(int n, int c, int plane, int group, const float *x, const float *gamma,
                          const float *beta, const float *run_mean, const float *run_var, float eps,
                          float *xhat, float *invstd, float *z, float *a, enum dlfs_act act, float *stats);
    void (*batchnorm_bwd)(int n, int c, int plane, int group, const float *dz, const float *xhat,
                          const float *invstd, const float *gamma, float *dgamma, float *dbeta, float *dx);

    /* ---- language-model ops (optional: NULL where a backend lacks them) ---- */
    /* Embedding of rows = S sequences x T positions: y(rows, dim) = tok[id(r)] +
     * pos[r mod T] (pos may be NULL), id(r) = ids[(r / T) * ld + r mod T] rounded to
     * the nearest whole number: the ids are floats in backend memory (a model's input
     * rows hold them, ld apart), each below the table's rows (the caller checked).
     * bwd ADDS: dtok[id(r)] += dy[r], dpos[r mod T] += dy[r] (dpos may be NULL), every
     * table row summed over r in increasing order (deterministic, no atomics); `vocab`:
     * the rows of dtok. */
    void (*embed_fwd)(const float *tok, const float *pos, const float *ids, int ld, int rows, int T, int dim,
                      float *y);
    void (*embed_bwd)(const float *dy, const float *ids, int ld, int rows, int T, int dim, int vocab, float *dtok,
                      float *dpos);
    /* out[s * n + j] = x[s * ld + off + j] rounded to the nearest whole number, for s <
     * rows, j < n: a language model's targets, taken from its input rows. */
    void (*take_ids)(const float *x, int rows, int ld, int off, int n, int32_t *out);
    /* Layer norm over the dim values of each row: y = (x - mean) * rstd * gamma + beta,
     * rstd = 1 / sqrt(var + eps) (biased variance); mean, rstd (rows) kept for bwd.
     * bwd overwrites dx(rows, dim) and dgamma, dbeta (dim: sums over the rows in order). */
    void (*layernorm_fwd)(int rows, int dim, const float *x, const float *gamma, const float *beta, float eps,
                          float *y, float *mean, float *rstd);
    void (*layernorm_bwd)(int rows, int dim, const float *dy, const float *x, const float *mean, const float *rstd,
                          const float *gamma, float *dx, float *dgamma, float *dbeta);
    /* Causal self-attention over B sequences of T positions, C = nh heads x hs columns.
     * qkv(B*T, 3C) holds q | k | v in each row (head h at columns h*hs of each part);
     * att(B, nh, T, T) = softmax over s <= t of q_t . k_s / sqrt(hs) (0 for s > t),
     * kept for bwd; y(B*T, C): head h's att @ v at columns h*hs. bwd: datt is
     * scratch of att's size; overwrites dqkv(B*T, 3C). */
    void (*attn_fwd)(int B, int T, int C, int nh, const float *qkv, float *att, float *y);
    void (*attn_bwd)(int B, int T, int C, int nh, const float *qkv, const float *att, const float *dy, float *datt,
                     float *dqkv);

    /* Optional: the precision of every later gemm of this process (default FP32).
     * Process-wide state of the backend, like its BLAS threads; cannot fail. */
    void (*set_precision)(enum dlfs_precision p);

    /* Optional: threads the backend may use on the host (CPU BLAS). */
    void (*set_threads)(int n);

    /* Optional (--bench): the account of every gemm since the last reset: out[0]
     * seconds spent in them (GEMMs running concurrently on worker threads counted
     * once), out[1] their floating-point operations (2mnk each); reset zeroes it
     * after reading. NULL: the backend does not measure its GEMMs. */
    void (*gemm_account)(double out[2], bool reset);

    /* Optional: gemm for a language model's products (its blocks and head): the same
     * contract, but a backend may run it otherwise than gemm (the CPU splits a large
     * one by rows across its threads), which may round differently from gemm on the
     * same shapes. NULL: gemm. */
    void (*gemm_rows)(bool trans_a, bool trans_b, int m, int n, int k, float alpha, const float *a, int lda,
                      const float *b, int ldb, float beta, float *c, int ldc);

    /* Optional, for backends whose memory MPI cannot read (host_memory false):
     * staging of gradient buckets through pinned host memory, overlapped with
     * compute (src/comm/buckets.c). pinned_alloc: page-locked host memory, NULL
     * when out of it. stage_to_host: copy `bytes` device -> pinned host on a copy
     * stream, after every op issued so far; returns at once; `slot` in
     * [0, DLFS_STAGE_SLOTS) names the copy. stage_test: 1 when copy `slot` has
     * finished; with `wait`, blocks until it has (a local copy: it cannot hang). */
    void *(*pinned_alloc)(size_t bytes);
    void (*pinned_free)(void *p);
    void (*stage_to_host)(void *dst, const void *src, size_t bytes, int slot);
    int (*stage_test)(int slot, bool wait);

    /* ---- the training-step pipeline (src/train/step.c; all but gather_u8 optional) ---- */

    /* Batch assembly from a dataset held in backend memory: for i < rows, image
     * idx[i] of images (N, channels, plane) uint8 becomes row i of dst(rows,
     * channels * plane), normalised exactly as normalize_u8 does, and
     * labels_out[i] = labels[idx[i]]. idx in backend memory; mean/std host arrays. */
    void (*gather_u8)(float *dst, int32_t *labels_out, const uint8_t *images, const uint8_t *labels,
                      const uint32_t *idx, int rows, int channels, size_t plane, const double *mean,
                      const double *std);
    /* Optional: host to device without waiting; `src` (from pinned_alloc) must stay
     * unchanged until the next sync or to_host. NULL: use to_device. */
    void (*to_device_async)(void *dst, const void *src, size_t bytes);
    /* Optional: bytes of backend memory free now (NULL: host memory, no limit known). */
    size_t (*mem_free)(void);
    /* Optional (CUDA graphs): graph_begin starts recording the ops issued from now
     * on (they do not run) and returns 0, or -1 when it cannot record here; then
     * only kernel-issuing ops may be called (no to_device, to_host, sync, alloc,
     * free) until graph_end, which returns a replayable graph, or NULL when the
     * recording failed (the ops are then lost: issue them again). graph_launch
     * replays one asynchronously, ordered like any op; graph_free releases one. */
    int (*graph_begin)(void);
    void *(*graph_end)(void);
    void (*graph_launch)(void *graph);
    void (*graph_free)(void *graph);
    /* Optional (a step that does not wait for the device; all three or none):
     * to_host_async copies device -> `dst` (from pinned_alloc) ordered like any op,
     * without waiting: dst holds the bytes only after a later mark_wait on a mark
     * recorded after it (or a sync / to_host). mark_record(k) puts mark k,
     * k in [0, DLFS_MARKS), after every op issued so far (replacing its previous
     * place); mark_wait(k) blocks the host until the device has passed it (at
     * once for a mark never recorded). Not while a graph records. */
    void (*to_host_async)(void *dst, const void *src, size_t bytes);
    void (*mark_record)(int k);
    void (*mark_wait)(int k);

    /* Optional (timelines, --trace): timer_mark(k), k < DLFS_TIMER_MARKS, places timer
     * mark k after every op issued so far; timer_read(k) waits until mark k has passed
     * and returns the device's seconds from mark 0 to it. */
    void (*timer_mark)(int k);
    double (*timer_read)(int k);
};
#define DLFS_TIMER_MARKS 16
#define DLFS_MARKS 4
#define DLFS_STAGE_SLOTS 128
/* Image channels the normalising ops (normalize_u8, gather_u8) take at most. */
#define DLFS_MAX_CHANNELS 16

/* NCCL as a backend offers it to the communication layer (src/comm/nccl.c):
 * plain C types, one context per communicator, on the GPU the backend drives.
 * Calls that could wait for other ranks never block without bound: set-up is
 * started and then polled, waits take a deadline, and a failure comes back as -1
 * with a one-line reason in `why` (the caller ends the job). */
struct dlfs_nccl_api {
    int id_bytes; /* the unique id rank 0 makes and every rank joins with */
    /* Rank 0: a new unique id into `id`. 0, or -1 with a reason. */
    int (*get_id)(void *id, char *why, size_t why_len);
    /* Start joining communicator `id` as `rank` of `nranks` without waiting for
     * the others; the context, or NULL with a reason when it cannot start.
     * `timeout_s` bounds every later wait on this context. */
    void *(*init_start)(const void *id, int nranks, int rank, double timeout_s, char *why, size_t why_len);
    /* 1 when set up, 0 while in progress, -1 failed (with a reason). Cheap and
     * idempotent: once up, later calls return 1 and create nothing; the caller
     * sleeps between polls. */
    int (*init_poll)(void *ctx, char *why, size_t why_len);
    /* In-place sum of n device floats, ordered after every op issued so far on the
     * backend's stream; returns once issued (0), or -1 with a reason. */
    int (*allreduce)(void *ctx, float *buf, size_t n, char *why, size_t why_len);
    /* ZeRO-1, in place, ordered like allreduce: reduce_scatter sums buf (nranks x
     * count floats) across ranks and leaves this rank's part of the sums at
     * buf + rank * count; all_gather hands every rank's part buf + r * count to all. */
    int (*reduce_scatter)(void *ctx, float *buf, size_t count, char *why, size_t why_len);
    int (*all_gather)(void *ctx, float *buf, size_t count, char *why, size_t why_len);
    /* Later ops on the backend's stream wait for every sum issued so far; the host
     * waits too, at most the context's timeout. 0, or -1 with a reason. */
    int (*wait)(void *ctx, char *why, size_t why_len);
    /* Normal end on every rank (may wait for the peers, bounded). */
    void (*destroy)(void *ctx);
    /* Error paths: local teardown that never waits for peers. */
    void (*abort)(void *ctx);
};

enum dlfs_device { DLFS_DEVICE_CPU = 0, DLFS_DEVICE_CUDA, DLFS_DEVICE_AUTO };

/* The CPU backend (always built). */
const struct dlfs_backend *dlfs_backend_cpu(void);

/* Pick a backend for `dev`. CUDA returns DLFS_ERR_DEVICE with a message saying
 * whether it was not built or no GPU is visible. AUTO without a usable GPU falls
 * back to the CPU and says why in `note` (may be NULL; empty otherwise), but
 * refuses with DLFS_ERR_DEVICE when GPUs are visible and unusable
 * (CUDA_VISIBLE_DEVICES naming devices, SLURM's GPU variables, the NVIDIA
 * driver's devices; CUDA_VISIBLE_DEVICES=-1 hides them all). The local rank
 * selects the GPU: node-local rank r takes visible GPU r mod n. Whether two ranks
 * then share one physical GPU is for the caller to check (dlfs_gpu_uuid across
 * the node: NCCL refuses two ranks on one GPU). */
enum dlfs_status dlfs_backend_select(enum dlfs_device dev, int local_rank, const struct dlfs_backend **out,
                                     char *note, size_t note_len);

/* Number of visible CUDA devices (0 when CUDA is not built or there is no GPU or
 * driver); `why` (may be NULL) receives a short reason when it is 0. */
int dlfs_cuda_device_count(char *why, size_t why_len);

/* The NCCL entry points of backend `be`, or NULL where it has none (the CPU
 * backend; a CUDA build without NCCL). */
const struct dlfs_nccl_api *dlfs_backend_nccl(const struct dlfs_backend *be);

/* The 16-byte UUID of the GPU this process drives (after dlfs_backend_select chose
 * CUDA): 0, or -1 when it runs no GPU. Two ranks with the same UUID share a GPU. */
int dlfs_gpu_uuid(unsigned char uuid[16]);

#ifdef __cplusplus
}
#endif

#endif
