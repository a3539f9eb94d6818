/* dlfs — models: the spec language, the parameter slab and forward/backward.
 *
 * A model is described by a spec string (src/README.md, "Models"):
 *   presets   mlp        = in(784),dense(512),relu,dense(512),relu,dense(10)
 *             mlp-large  = in(784),dense(4096),relu,dense(4096),relu,dense(4096),relu,dense(10)
 *   shorthand 784-256-128-10[:act]   widths from input to classes; act (default relu)
 *                                    after every hidden layer
 *             cnn        = in(1x28x28),conv(32,k5,p2),relu,maxpool(2),conv(64,k5,p2),relu,
 *                          maxpool(2),flatten,dense(1024),relu,dense(10)
 *   shorthand 784-256-128-10[:act]   widths from input to classes; act (default relu)
 *                                    after every hidden layer
 *             resnet20   = in(1x28x28),conv(16,k3,p1,b0),batchnorm,relu,res(16) x3,
 *                          res(32,s2),res(32) x2,res(64,s2),res(64) x2,gap,dense(10)
 *             resnet50   = in(3x224x224),conv(64,k7,s2,p3,b0),batchnorm,relu,
 *                          maxpool(3,s2,p1),bottleneck(64) x3,bottleneck(128,s2),
 *                          bottleneck(128) x3,bottleneck(256,s2),bottleneck(256) x5,
 *                          bottleneck(512,s2),bottleneck(512) x2,gap,dense(1000)
 *   blocks    res(C[,sS])  bottleneck(C[,sS])   expand into flat layer lists
 *             (src/nn/blocks.c): the basic block and the bottleneck (width C, 4C
 *             out, stride on the 3x3), convs b0, a projection when the shape changes
 *   layers    in(784),dense(256),gelu,dense(10)   comma-separated; in(CxHxW) or in(N)
 *             first, then
 *               dense(N)                 fully connected, flattens its input
 *               conv(C,kK[,sS][,pP][,b0]) C output channels, KxK kernel, stride S
 *                                        (default 1), zero padding P (default 0);
 *                                        b0: no bias (before a batchnorm, as ResNets)
 *               maxpool(K[,sS][,pP])     KxK windows, stride S (default K), padding
 *                                        P <= K/2 that is never the maximum (-inf)
 *               flatten                  (C,H,W) -> C*H*W; no computation (NCHW)
 *               dropout(P)               zero each value with probability P (0 <= P < 1)
 *                                        while training, scaling the rest by 1/(1-P)
 *               batchnorm                per channel (per feature after dense): batch
 *                                        statistics while training, running ones in
 *                                        evaluation; weight = gamma, bias = beta
 *               gap                      global average pooling (C,H,W) -> C
 *               add(K)                   y = x + the output of layer K (K: a layer's
 *                                        index, as in its name "K_type", or `in` for
 *                                        the model input); same shapes; the residual add
 *               from(K)                  not a layer: the next layer reads layer K's
 *                                        output instead of the previous one's
 *             an activation (relu|tanh|sigmoid|gelu) may follow a hidden dense,
 *             conv, batchnorm or add layer (it is fused into it); the last layer is a dense
 *             layer whose width is the number of classes. A residual block, e.g.
 *               conv(16,k3,p1),batchnorm,relu,conv(16,k3,p1),batchnorm,add(K),relu
 *             with K the index of the layer before the block (from(K),conv(..,k1,s2),...
 *             for a projection shortcut); block items expand into such flat lists.
 *
 * Skip connections (the contract for layers with other inputs than the previous
 * layer's output): layer l reads the outputs of layers src[0..nsrc) (-1: the model
 * input; every src < l), so forward runs in index order. Backward runs in reverse;
 * the gradient of an output read once, by the next layer, lives in the d0/d1
 * ping-pong (plain chains: as before, same memory and bits); an output read more
 * than once or by a later layer gets its own buffer ws->g[l]: its last reader
 * (last_use) writes it and every other reader adds into it, so a skip and its main
 * branch both send their gradient back. Every output but the logits must be read.
 *
 * Parameters, gradients and optimizer state each live in ONE slab of
 * `num_params` floats; layer l's weight starts at layers[l].w_off (dense (out,
 * in), conv (oc, c, kh, kw)) and its bias (out channels) at layers[l].b_off.
 * Layers without parameters have num_params 0 and w_off = b_off = where the
 * next layer's parameters start. Layer order = slab order = digest order.
 */
#ifndef DLFS_MODEL_H
#define DLFS_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "dlfs/backend.h"
#include "dlfs/status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define DLFS_MAX_LAYERS 256 /* ResNet-50 and GPT-2 expand into ~170 and ~100 layers */
#define DLFS_MAX_WIDTH (1 << 20)
/* per-position logits of a sample (lmhead: T x V; gpt2's 1024 x 50257 fit) */
#define DLFS_MAX_SEQ_LOGITS (1 << 26)
/* Parameters of a model at most (2^30: 4 GiB of fp32 per copy; MPI's counts are ints) */
#define DLFS_MAX_PARAMS ((size_t)1 << 30)

enum dlfs_layer_type {
#define DLFS_LAYER_ROW(e, n) DLFS_LAYER_##e,
#include "dlfs/layer-list.h"
#undef DLFS_LAYER_ROW
    DLFS_LAYER_COUNT
};
/* "dense", "conv", ... as in checkpoint group names */
const char *dlfs_layer_type_name(enum dlfs_layer_type t);

/* A layer of the table. Its descriptor (src/nn/layer.h) fills the fields from its
 * spec item; the model code reads only these generic fields. */
struct dlfs_layer {
    enum dlfs_layer_type type;
    int in, out;            /* features in and out per sample (flattened) */
    struct dlfs_conv_geom g;/* input (c, h, w) and output (oc, oh, ow) shape of every
                               layer; window (kh, kw, stride, pad) of conv/maxpool */
    enum dlfs_act act;      /* fused activation after the layer (dense, conv, batchnorm) */
    float rate;             /* dropout: probability of zeroing an element */
    int no_bias;            /* conv: without bias (b0), as before a batch norm */
    int bn_c, bn_plane;     /* batchnorm: channels, values per channel per sample */
    int seq, heads, vocab;  /* language model: positions T, attention heads, vocabulary */
    int tie;                /* embed: the lmhead tied to its table; lmhead: the embed (-1: none) */
    size_t w_off, b_off;    /* offsets into the slab: weight, bias */
    size_t num_params;      /* 0 for layers without parameters */
    int w_rank;             /* checkpoint: the weight's dims (w_dims[0..w_rank)); the */
    uint64_t w_dims[4];     /* bias is 1-D, num_params - (b_off - w_off) long (none if 0) */
    int num_bufs;           /* non-trained state: num_bufs arrays of buf_len floats from */
    size_t buf_off, buf_len;/* buf_off in the buffer slab, named buf_names[i] in checkpoints */
    const char *buf_names[2];
    int nsrc, src[2];       /* inputs: the outputs of layers src[0..nsrc) (-1: the model
                               input); a plain chain has nsrc 1, src[0] = index - 1 */
    int uses, last_use;     /* inputs of later layers that read this output, and the
                               highest such layer (the first to send back a gradient) */
    char name[32];          /* "<index>_<type>", used in checkpoints */
};

struct dlfs_model {
    char *spec;              /* canonical layer-list form */
    int in_c, in_h, in_w;    /* input shape (1x1xN for a flat input) */
    int input_dim;           /* in_c * in_h * in_w */
    int num_classes;
    int positions;           /* labels per sample: T for a language model (lmhead), else 1 */
    int num_layers;
    struct dlfs_layer layers[DLFS_MAX_LAYERS];
    size_t num_params;
    size_t num_buffers;      /* non-trained state (batchnorm running statistics) */
    int max_width;           /* widest activation, input included */
};

/* Parse a preset name or a spec. Errors name the offending token. */
enum dlfs_status dlfs_model_parse(const char *text, struct dlfs_model *m);
void dlfs_model_free(struct dlfs_model *m);

/* Initial buffers (host, m->num_buffers floats): running mean 0, variance 1. */
void dlfs_model_init_buffers(const struct dlfs_model *m, float *buffers);

/* Fill a host slab of m->num_params floats with the initial parameters:
 * uniform(-1/sqrt(in), 1/sqrt(in)) for weights and biases (PyTorch's default for
 * Linear), drawn from the counter-based RNG keyed by (seed, layer, element), so
 * every rank produces the same bits without communication. */
void dlfs_model_init_params(const struct dlfs_model *m, uint64_t seed, float *params);

/* The slab ranges [r[i][0], r[i][0] + r[i][1]) that AdamW/SGD weight decay leaves
 * alone (a language model's biases, norms and embeddings), in slab order, at most
 * max; returns the count (0 for the image models: decay applies to every parameter). */
int dlfs_model_nodecay(const struct dlfs_model *m, size_t (*r)[2], int max);

/* DLFS_OK when backend `be` has every op the model needs; otherwise
 * DLFS_ERR_DEVICE naming the first missing op and the layer that needs it. */
enum dlfs_status dlfs_model_check_backend(const struct dlfs_model *m, const struct dlfs_backend *be);

/* true when a layer draws random numbers while training (dropout). */
bool dlfs_model_draws_random(const struct dlfs_model *m);

/* Floating-point operations of one training step per sample (forward + backward
 * = 6 * multiply-adds of the GEMMs), as used by the benchmark. */
double dlfs_model_train_flops_per_sample(const struct dlfs_model *m);

/* Activation buffers for up to max_rows samples, in backend memory. */
struct dlfs_workspace {
    const struct dlfs_backend *be;
    int max_rows;
    float *x;                   /* (max_rows, input_dim) normalised inputs */
    float *z[DLFS_MAX_LAYERS];  /* (max_rows, out) pre-activations */
    float *a[DLFS_MAX_LAYERS];  /* (max_rows, out) activations (== z without activation;
                                   flatten: the previous layer's output) */
    int32_t *arg[DLFS_MAX_LAYERS]; /* maxpool: (max_rows, out) window maxima positions */
    float *aux[DLFS_MAX_LAYERS];   /* dropout: (max_rows, out) mask; batchnorm: xhat */
    float *invstd[DLFS_MAX_LAYERS];/* batchnorm: (groups, bn_c) */
    int bn_group;               /* batchnorm statistics over groups of this many rows (0: all) */
    float *bn_stats;            /* NULL, or a buffer-slab-shaped sum of the groups' statistics */
    const float *buffers;       /* running statistics for evaluation (device) */
    float *col;                 /* conv im2col scratch */
    uint32_t *ids;              /* (max_rows) global sample index of each row (dropout key) */
    int training;               /* 1: dropout draws masks; 0 (evaluation): dropout is the identity */
    uint64_t key;               /* per-step random key (seed, step): see dlfs_model_forward */
    float *d0, *d1;             /* (max_rows, max_width) ping-pong gradient buffers */
    float *g[DLFS_MAX_LAYERS];  /* (max_rows, out) dL/d(output of layer l): d0 or d1 along a
                                   plain chain, an own buffer for an output read twice or by
                                   a later layer than the next (see dlfs_model_backward) */
    int32_t *labels;            /* (max_rows) */
    double *stats;              /* [2]: loss sum, correct count (see softmax_xent) */
};
enum dlfs_status dlfs_workspace_init(struct dlfs_workspace *ws, const struct dlfs_model *m,
                                     const struct dlfs_backend *be, int max_rows);
void dlfs_workspace_free(struct dlfs_workspace *ws, const struct dlfs_model *m);
/* The bytes dlfs_workspace_init takes for max_rows rows (computed in double: no
 * overflow, nothing allocated), for the memory estimate made before it. */
double dlfs_workspace_bytes(const struct dlfs_model *m, int max_rows);

/* Forward pass of `rows` samples from ws->x; returns the logits (rows, classes).
 * When ws->training, dropout layer l keeps element j of row r by the draw keyed by
 * (ws->key, l, ws->ids[r], j): the caller sets key = f(seed, step) and ids = the
 * rows' global sample indices, so masks never depend on the rank count. */
const float *dlfs_model_forward(const struct dlfs_model *m, struct dlfs_workspace *ws,
                                const float *params, int rows);

/* Loss of the last forward pass against ws->labels — for a language model (positions
 * T > 1) the last T ids of each input row, taken into ws->labels here, the loss at
 * every position, grad_scale per sample spread over its T positions: adds (loss sum, correct) to
 * ws->stats and, when `grad_scale` != 0, leaves dlogits in ws->g[num_layers - 1] (== ws->d0). */
void dlfs_model_loss(const struct dlfs_model *m, struct dlfs_workspace *ws, int rows, float grad_scale);

/* Backward pass after dlfs_model_loss: writes (overwrites) every gradient in the
 * slab `grads`. After layer l's gradients are complete, calls layer_done(l, ctx)
 * (may be NULL), in order L-1 .. 0 — the hook that starts gradient all-reduces
 * while earlier layers are still being differentiated. */
void dlfs_model_backward(const struct dlfs_model *m, struct dlfs_workspace *ws, const float *params,
                         float *grads, int rows, void (*layer_done)(int layer, void *ctx), void *ctx);

#ifdef __cplusplus
}
#endif

#endif
