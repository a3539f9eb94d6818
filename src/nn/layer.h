/* The layer table: one descriptor per layer type (include/dlfs/layer-list.h),
 * each in its own file under src/nn/layers/. model.c, spec.c and workspace.c are
 * generic loops over these descriptors; nothing outside a layer's file knows
 * what the layer computes. Private to src/nn. */
#ifndef DLFS_NN_LAYER_H
#define DLFS_NN_LAYER_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include "dlfs/model.h"

/* One spec item as written: its name and the text between its parentheses. */
struct nn_tok {
    char *name;
    char *arg;         /* NULL without parentheses */
    size_t alen;
    char full[96];     /* the item as written, for messages */
};

/* The shape (c, h, w) of the layer's input on entry to parse, of its output on
 * return; why: room for a reason the parser formats; m: the layers parsed so far
 * (the new one is m->layers[m->num_layers]), for layers that read earlier outputs. */
struct nn_shape {
    int c, h, w;
    char why[160];
    const struct dlfs_model *m;
};

/* What a layer needs in the workspace beyond its output (rows * out floats, and
 * as much again for a fused activation's input): each count for `rows` rows. */
struct nn_ws_need {
    size_t aux;   /* floats: ws->aux[l] (dropout mask, batchnorm xhat) */
    size_t arg;   /* int32s: ws->arg[l] (maxpool positions) */
    size_t stat;  /* floats: ws->invstd[l] (batchnorm) */
    size_t col;   /* floats of the scratch ws->col that all layers share */
};

/* The arguments of a forward or backward call. x[i] is input i (the output of
 * layer src[i], or the model input); y the layer's output buffer, z its value
 * before the fused activation (the layer applies L->act itself; z == y without
 * one). Backward: dy is dL/dz (the model has run the activation's backward);
 * dx[i] is where dL/dx[i] goes, NULL when nobody needs it (the model input). It is
 * overwritten, except that acc[i] != 0 asks NN_BWD_ACC layers to add to it.
 * NN_BWD_INPLACE layers get dx[0] == dy and turn it into dL/dx in place. */
struct nn_call {
    const struct dlfs_layer *L;
    int l, rows;
    struct dlfs_workspace *ws;
    const float *params;
    const float *x[2];
    float *z, *y;
    float *grads;
    float *dy, *dx[2];
    int acc[2];
};

enum nn_flags {
    NN_ACT = 1,         /* a fused activation may follow (forward applies it) */
    NN_VIEW = 2,        /* the output is the input itself (no buffer, no computation) */
    NN_BWD_INPLACE = 4, /* backward turns dy into dx in place (dx[0] == dy) */
    NN_RANDOM = 8,      /* draws random numbers while training (dropout) */
    NN_BWD_ACC = 16,    /* backward honours acc[] (adds into dx instead of overwriting);
                           required of a layer with two inputs */
    NN_LAST = 32,       /* may be the last layer (produces the logits) */
    NN_SEQ = 64,        /* its logits are (T, classes): one prediction per position */
};

struct nn_layer_desc {
    const char *name;   /* the spec item's name, and the "<index>_<name>" layer names */
    unsigned flags;
    /* Fill L (type aside) from the item and s (the input shape); update s to the
     * output shape. NULL, or the reason the item is bad. */
    const char *(*parse)(const struct nn_tok *k, struct dlfs_layer *L, struct nn_shape *s);
    /* The item in canonical form (NULL: the bare name); returns the length. */
    int (*print)(const struct dlfs_layer *L, char *out, size_t room);
    /* Parameter counts (weight *nw, bias *nb) and the checkpoint dims (w_rank,
     * w_dims) and buffers (num_bufs, buf_len, buf_names); NULL: none. */
    void (*sizes)(struct dlfs_layer *L, size_t *nw, size_t *nb);
    /* Initial parameters p (= slab + w_off) and buffers b (= buffer slab + buf_off). */
    void (*init)(const struct dlfs_layer *L, uint64_t seed, int l, float *p);
    void (*init_buffers)(const struct dlfs_layer *L, float *b);
    void (*ws_need)(const struct dlfs_layer *L, int rows, struct nn_ws_need *n);
    /* The first backend op it needs that `be` lacks, or NULL. */
    const char *(*missing_op)(const struct dlfs_backend *be);
    void (*forward)(const struct nn_call *c);
    void (*backward)(const struct nn_call *c);
    double (*macs)(const struct dlfs_layer *L); /* multiply-adds of the forward per sample */
    /* Parameters weight decay leaves alone (biases, norms, embeddings: src/README.md,
     * "Language models"), as up to 8 ranges [off, off + len) relative to w_off into
     * r; returns their count. NULL: decay applies to all (the image layers, as ever). */
    int (*nodecay)(const struct dlfs_layer *L, size_t r[][2]);
};

#define DLFS_LAYER_ROW(e, n) extern const struct nn_layer_desc nn_layer_##n;
#include "dlfs/layer-list.h"
#undef DLFS_LAYER_ROW

/* The descriptor of a type, or of an item name (NULL if unknown). */
const struct nn_layer_desc *nn_layer_desc(enum dlfs_layer_type t);
const struct nn_layer_desc *nn_layer_find(const char *name, enum dlfs_layer_type *t);
/* "dense, conv, ..." (the item names, table order) into buf. */
void nn_layer_names(char *buf, size_t len);

/* The output shape of layer k of m (-1: the model input). */
void nn_out_shape(const struct dlfs_model *m, int k, int *c, int *h, int *w);
/* Parse a layer reference ("in" or an index below `below`) into *k; 0 if bad. */
int nn_parse_ref(const char *s, size_t n, int below, int *k);

/* Helpers for the layers' files (src/nn/layers/layer-args.c). */
int nn_parse_pos(const char *s, size_t n, int *out);                /* [1, DLFS_MAX_WIDTH] */
int nn_parse_int(const char *s, size_t n, int lo, int hi, int *out);
/* uniform(-1/sqrt(fan_in), 1/sqrt(fan_in)) over the n floats of p, keyed by (seed, layer l) */
void nn_init_uniform(uint64_t seed, int l, int fan_in, float *p, size_t n);
/* uniform with standard deviation sd (GPT-2's 0.02) over p, keyed by (seed, l) (layer-lm.c) */
void nn_init_std(uint64_t seed, int l, float sd, float *p, size_t n);
/* The reason parse returns for an item it does not know (an argument where none
 * is taken): spec.c replaces it by the list of known items. */
#define NN_UNKNOWN "unknown layer"

#endif
