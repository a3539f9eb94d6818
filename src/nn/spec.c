/* The model spec language (include/dlfs/model.h): presets, the MLP shorthand
 * and the comma-separated layer list, all parsed into one layer table. */
#define _POSIX_C_SOURCE 200809L
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "dlfs/model.h"
#include "nn/blocks.h"
#include "nn/layer.h"

static const struct { const char *name, *spec; } presets_[] = {
    {"mlp", "in(784),dense(512),relu,dense(512),relu,dense(10)"},
    {"mlp-large", "in(784),dense(4096),relu,dense(4096),relu,dense(4096),relu,dense(10)"},
    {"cnn", "in(1x28x28),conv(32,k5,p2),relu,maxpool(2),conv(64,k5,p2),relu,maxpool(2),flatten,"
            "dense(1024),relu,dense(10)"},
    {"cnn-bn", "in(1x28x28),conv(32,k5,p2),batchnorm,relu,maxpool(2),conv(64,k5,p2),batchnorm,relu,maxpool(2),"
               "flatten,dense(1024),relu,dropout(0.5),dense(10)"},
    /* the CIFAR-style ResNet-20 (He et al. 2016, 4.2) for 28x28: 3 stages of 3 basic blocks */
    {"resnet20", "in(1x28x28),conv(16,k3,p1,b0),batchnorm,relu,res(16),res(16),res(16),res(32,s2),res(32),"
                 "res(32),res(64,s2),res(64),res(64),gap,dense(10)"},
    /* ResNet-50 (torchvision's resnet50: the stride on the 3x3 of the bottleneck) */
    {"resnet50", "in(3x224x224),conv(64,k7,s2,p3,b0),batchnorm,relu,maxpool(3,s2,p1),bottleneck(64),"
                 "bottleneck(64),bottleneck(64),bottleneck(128,s2),bottleneck(128),bottleneck(128),bottleneck(128),"
                 "bottleneck(256,s2),bottleneck(256),bottleneck(256),bottleneck(256),bottleneck(256),"
                 "bottleneck(256),bottleneck(512,s2),bottleneck(512),bottleneck(512),gap,dense(1000)"},
    /* language models (src/README.md, "Language models"): byte-level gpt-tiny, GPT-2 small */
    {"gpt-tiny", "in(129),embed(256,128),block(128,h4),block(128,h4),block(128,h4),block(128,h4),lnorm,lmhead"},
    {"gpt2", "in(1025),embed(50257,768),block(768,h12),block(768,h12),block(768,h12),block(768,h12),block(768,h12),block(768,h12),"
             "block(768,h12),block(768,h12),block(768,h12),block(768,h12),block(768,h12),block(768,h12),lnorm,lmhead"},
};

/* Errors in the spec text are usage errors (the text is --model's value): exit 2. */
static enum dlfs_status bad_(const char *text, const char *tok, const char *why)
{
    return dlfs_error_set(DLFS_ERR_USAGE, "--model '%s': %s at '%s' (see 'dlfs-train --help' for "
                          "the spec syntax, e.g. 784-256-10 or in(784),dense(256),gelu,dense(10))",
                          text, why, tok);
}

/* Expand the shorthand "784-512-10[:act]" into the layer-list form. */
static enum dlfs_status expand_shorthand_(const char *text, char **out)
{
    const char *colon = strchr(text, ':');
    size_t n = colon ? (size_t)(colon - text) : strlen(text);
    const char *act = colon ? colon + 1 : "relu";
    if (dlfs_act_parse(act) == DLFS_ACT_COUNT || strcmp(act, "none") == 0)
        return bad_(text, act, "unknown activation (use relu, tanh, sigmoid or gelu)");
    size_t cap = 2 * n + 64 + 16 * n;
    char *s = dlfs_malloc(cap);
    size_t len = 0;
    int count = 0;
    const char *p = text, *end = text + n;
    while (p <= end) {
        const char *q = memchr(p, '-', (size_t)(end - p));
        if (!q) q = end;
        int w;
        if (!nn_parse_pos(p, (size_t)(q - p), &w)) {
            free(s);
            char tok[64];
            snprintf(tok, sizeof tok, "%.*s", (int)(q - p), p);
            return bad_(text, tok, "expected a positive width");
        }
        if (count == 0) len += (size_t)snprintf(s + len, cap - len, "in(%d)", w);
        else if (q == end) len += (size_t)snprintf(s + len, cap - len, ",dense(%d)", w);
        else len += (size_t)snprintf(s + len, cap - len, ",dense(%d),%s", w, act);
        count++;
        p = q + 1;
    }
    if (count < 2) {
        free(s);
        return bad_(text, text, "an MLP needs at least an input width and a class count");
    }
    *out = s;
    return DLFS_OK;
}

/* Split `list` at commas outside parentheses; tokens are written NUL-terminated
 * into `copy`. Returns the number of tokens (at most `max`). */
static int split_top_(char *copy, char **tok, int max)
{
    int n = 0, depth = 0;
    char *start = copy;
    for (char *p = copy;; p++) {
        if (*p == '(') depth++;
        else if (*p == ')') depth--;
        if ((*p == ',' && depth <= 0) || *p == '\0') {
            const int end = *p == '\0';
            *p = '\0';
            if (n < max) tok[n++] = start;
            if (end) break;
            start = p + 1;
        }
    }
    return n;
}

/* Trim the token and split off its argument. NULL, or the reason it is bad. */
static const char *tok_split_(char *t, struct nn_tok *k)
{
    while (isspace((unsigned char)*t)) t++;
    size_t tl = strlen(t);
    while (tl && isspace((unsigned char)t[tl - 1])) t[--tl] = '\0';
    snprintf(k->full, sizeof k->full, "%s", t);
    k->name = t;
    k->arg = NULL;
    k->alen = 0;
    char *open = strchr(t, '(');
    if (!open) return NULL;
    if (tl < 3 || t[tl - 1] != ')') return "missing ')'";
    k->arg = open + 1;
    k->alen = (size_t)(t + tl - 1 - k->arg);
    *open = '\0';
    t[tl - 1] = '\0';
    return NULL;
}

/* in(N) or in(CxHxW): the model's input. */
static const char *in_(const struct nn_tok *k, struct dlfs_model *m, struct nn_shape *s)
{
    int dims[3] = {1, 1, 1}, nd = 0;
    const char *p = k->arg, *end = k->arg + k->alen;
    while (p <= end && nd < 3) {
        const char *x = memchr(p, 'x', (size_t)(end - p));
        if (!x) x = end;
        if (!nn_parse_pos(p, (size_t)(x - p), &dims[nd])) { nd = -1; break; }
        nd++;
        p = x + 1;
    }
    if (nd > 0 && p <= end) nd = -1; /* more than three sizes */
    if (nd != 1 && nd != 3) return "in() takes N or CxHxW with positive sizes";
    if (nd == 1) { m->in_c = 1; m->in_h = 1; m->in_w = dims[0]; }
    else { m->in_c = dims[0]; m->in_h = dims[1]; m->in_w = dims[2]; }
    if ((long long)m->in_c * m->in_h * m->in_w > DLFS_MAX_WIDTH) return "input too large";
    m->input_dim = m->in_c * m->in_h * m->in_w;
    s->c = m->in_c; s->h = m->in_h; s->w = m->in_w;
    m->max_width = m->input_dim;
    return NULL;
}

#define NO_FROM_ (-2) /* no from(K) pending */

/* An activation, fused into the layer before it. */
static const char *act_(struct dlfs_model *m, enum dlfs_act a, int from)
{
    if (m->num_layers == 0) return "an activation must follow a dense or conv layer";
    if (from != NO_FROM_) return "from(K) must be followed by a layer";
    struct dlfs_layer *L = &m->layers[m->num_layers - 1];
    if (!(nn_layer_desc(L->type)->flags & NN_ACT))
        return "an activation must follow a dense, conv, batchnorm or add layer (put it before pooling and dropout)";
    if (L->act != DLFS_ACT_NONE) return "two activations in a row";
    L->act = a;
    return NULL;
}

/* from(K): the next layer reads the output of layer K (or the model input). */
static const char *from_(const struct nn_tok *k, struct dlfs_model *m, struct nn_shape *s, int *from)
{
    int src;
    if (*from != NO_FROM_) return "from(K) must be followed by a layer";
    if (!k->arg || !nn_parse_ref(k->arg, k->alen, m->num_layers, &src))
        return "from(K) needs an earlier layer's index K (its name's number) or 'in'";
    *from = src;
    nn_out_shape(m, src, &s->c, &s->h, &s->w);
    return NULL;
}

/* A layer item: a new layer appended to m, reading the previous layer's output
 * (or the one a from(K) before it names). */
static const char *layer_(const struct nn_tok *k, struct dlfs_model *m, struct nn_shape *s, int *from)
{
    if (m->num_layers == DLFS_MAX_LAYERS) return "too many layers";
    struct dlfs_layer *L = &m->layers[m->num_layers];
    memset(L, 0, sizeof *L);
    L->g.c = s->c; L->g.h = s->h; L->g.w = s->w;
    L->in = s->c * s->h * s->w;
    L->nsrc = 1;
    L->src[0] = L->src[1] = *from != NO_FROM_ ? *from : m->num_layers - 1;
    *from = NO_FROM_;
    enum dlfs_layer_type t = DLFS_LAYER_COUNT;
    const struct nn_layer_desc *d = nn_layer_find(k->name, &t);
    const char *why = d ? d->parse(k, L, s) : NN_UNKNOWN;
    if (why) return why;
    L->type = t;
    const long long most = d->flags & NN_SEQ ? DLFS_MAX_SEQ_LOGITS : DLFS_MAX_WIDTH;
    if ((long long)s->c * s->h * s->w > most) return "layer output too large";
    L->g.oc = s->c; L->g.oh = s->h; L->g.ow = s->w;
    L->out = s->c * s->h * s->w;
    L->act = DLFS_ACT_NONE;
    snprintf(L->name, sizeof L->name, "%d_%s", m->num_layers, d->name);
    m->num_layers++;
    if (L->out > m->max_width) m->max_width = L->out;
    return NULL;
}

/* The model as a whole: an input, and a last dense layer of at least 2 classes. */
static enum dlfs_status finish_(const char *text, int have_in, struct dlfs_model *m)
{
    if (!have_in) return bad_(text, text, "empty spec");
    if (m->num_layers == 0) return bad_(text, text, "no dense layer");
    struct dlfs_layer *last = &m->layers[m->num_layers - 1];
    if (!(nn_layer_desc(last->type)->flags & NN_LAST))
        return bad_(text, dlfs_layer_type_name(last->type), "the last layer must be dense(classes)");
    if (last->act != DLFS_ACT_NONE)
        return bad_(text, dlfs_act_name(last->act), "the last dense layer produces the logits and takes no activation");
    if (last->out < 2) return bad_(text, "dense(1)", "the last layer needs at least 2 classes");
    const int seq = (nn_layer_desc(last->type)->flags & NN_SEQ) != 0;
    m->positions = seq ? last->g.oh : 1;
    m->num_classes = seq ? last->g.ow : last->out;
    return DLFS_OK;
}

/* Who reads each output: uses and last_use (dlfs_model_backward routes the
 * gradients by them). Every output but the logits must be read. */
static const char *link_(struct dlfs_model *m, struct nn_shape *s)
{
    for (int l = 0; l < m->num_layers; l++) m->layers[l].uses = m->layers[l].last_use = 0;
    for (int l = 0; l < m->num_layers; l++)
        for (int i = 0; i < m->layers[l].nsrc; i++) {
            const int k = m->layers[l].src[i];
            if (k < 0) continue;
            m->layers[k].uses++;
            m->layers[k].last_use = l;
        }
    for (int l = 0; l + 1 < m->num_layers; l++)
        if (m->layers[l].uses == 0) {
            snprintf(s->why, sizeof s->why, "the output of layer %s is never used", m->layers[l].name);
            return s->why;
        }
    return NULL;
}

static const char *item_(const struct nn_tok *k, struct dlfs_model *m, struct nn_shape *s, int *from);

/* A block item (res, bottleneck: src/nn/blocks.c) parsed as the flat list it
 * expands into, item by item. NULL, or the reason (naming the generated item). */
static const char *block_(const char *list, struct dlfs_model *m, struct nn_shape *s, int *from)
{
    char copy[512], *toks[32];
    strcpy(copy, list); /* (nn_block_expand wrote at most sizeof copy) */
    const int n = split_top_(copy, toks, 32);
    for (int i = 0; i < n; i++) {
        struct nn_tok k;
        const char *why = tok_split_(toks[i], &k);
        if (!why) why = item_(&k, m, s, from);
        if (why) {
            char r[80]; /* (why may be s->why) */
            snprintf(r, sizeof r, "%s", why);
            snprintf(s->why, sizeof s->why, "%.79s (in the block: '%.50s')", r, k.full);
            return s->why;
        }
    }
    return NULL;
}

/* One item after in(): an activation, from(K), a block or a layer. NULL, or the reason. */
static const char *item_(const struct nn_tok *k, struct dlfs_model *m, struct nn_shape *s, int *from)
{
    const enum dlfs_act a = dlfs_act_parse(k->name);
    if (a != DLFS_ACT_COUNT && a != DLFS_ACT_NONE && !k->arg) return act_(m, a, *from);
    if (strcmp(k->name, "from") == 0) return from_(k, m, s, from);
    char list[512];
    const int src = *from != NO_FROM_ ? *from : m->num_layers - 1;
    const char *why = nn_block_expand(k, m->num_layers, src, s->c, list, sizeof list);
    if (why) return why;
    if (list[0]) return block_(list, m, s, from);
    return layer_(k, m, s, from);
}

static enum dlfs_status parse_list_(const char *text, const char *list, struct dlfs_model *m)
{
    char *copy = dlfs_malloc(strlen(list) + 1);
    strcpy(copy, list);
    char *toks[4 * DLFS_MAX_LAYERS];
    const int ntok = split_top_(copy, toks, 4 * DLFS_MAX_LAYERS);
    struct nn_shape s = {1, 1, 1, "", m};
    int have_in = 0, from = NO_FROM_;
    const char *why = NULL;
    for (int ti = 0; ti < ntok; ti++) {
        struct nn_tok k;
        const char *at = k.full; /* the text to name with the reason */
        why = tok_split_(toks[ti], &k);
        if (why) {
            /* the token itself is malformed: named as written */
        } else if (!have_in && (strcmp(k.name, "in") != 0 || !k.arg)) {
            why = "a layer list starts with in(N) or in(CxHxW)";
        } else if (!have_in) {
            why = in_(&k, m, &s);
            if (why) at = k.arg; /* in()'s errors name its argument */
            have_in = 1;
        } else {
            why = item_(&k, m, &s, &from);
        }
        if (why && strcmp(why, NN_UNKNOWN) == 0) {
            nn_layer_names(s.why, sizeof s.why);
            const enum dlfs_status st = dlfs_error_set(DLFS_ERR_USAGE, "--model '%s': unknown layer (known: in, %s, "
                                                       "from, relu, tanh, sigmoid, gelu) at '%s' (see 'dlfs-train "
                                                       "--help' for the spec syntax, e.g. 784-256-10 or in(784),"
                                                       "dense(256),gelu,dense(10))", text, s.why, at);
            free(copy);
            return st;
        }
        if (why) {
            const enum dlfs_status st = bad_(text, at, why);
            free(copy);
            return st;
        }
    }
    free(copy);
    if (from != NO_FROM_) return bad_(text, "from", "from(K) must be followed by a layer");
    DLFS_TRY(finish_(text, have_in, m));
    why = link_(m, &s);
    return why ? bad_(text, text, why) : DLFS_OK;
}

static void canonical_(struct dlfs_model *m)
{
    size_t cap = 64 + 64 * (size_t)m->num_layers, len = 0;
    m->spec = dlfs_malloc(cap);
    if (m->in_c == 1 && m->in_h == 1) len += (size_t)snprintf(m->spec, cap, "in(%d)", m->in_w);
    else len += (size_t)snprintf(m->spec, cap, "in(%dx%dx%d)", m->in_c, m->in_h, m->in_w);
    for (int l = 0; l < m->num_layers; l++) {
        const struct dlfs_layer *L = &m->layers[l];
        const struct nn_layer_desc *d = nn_layer_desc(L->type);
        len += (size_t)snprintf(m->spec + len, cap - len, ",");
        if (L->src[0] != l - 1 && L->src[0] < 0) len += (size_t)snprintf(m->spec + len, cap - len, "from(in),");
        else if (L->src[0] != l - 1) len += (size_t)snprintf(m->spec + len, cap - len, "from(%d),", L->src[0]);
        if (d->print) len += (size_t)d->print(L, m->spec + len, cap - len);
        else len += (size_t)snprintf(m->spec + len, cap - len, "%s", d->name);
        if (L->act != DLFS_ACT_NONE)
            len += (size_t)snprintf(m->spec + len, cap - len, ",%s", dlfs_act_name(L->act));
    }
}

/* Each layer's slab offsets, checkpoint dims and buffers, from its descriptor. */
static void place_(struct dlfs_model *m)
{
    size_t off = 0;
    for (int l = 0; l < m->num_layers; l++) {
        struct dlfs_layer *L = &m->layers[l];
        const struct nn_layer_desc *d = nn_layer_desc(L->type);
        size_t nw = 0, nb = 0;
        if (d->sizes) d->sizes(L, &nw, &nb);
        L->buf_off = m->num_buffers;
        m->num_buffers += (size_t)L->num_bufs * L->buf_len;
        L->w_off = off;
        L->b_off = off + nw;
        L->num_params = nw + nb;
        off += L->num_params;
    }
    m->num_params = off;
}

enum dlfs_status dlfs_model_parse(const char *text, struct dlfs_model *m)
{
    memset(m, 0, sizeof *m);
    if (!text || !*text) return dlfs_error_set(DLFS_ERR_USAGE, "--model: empty model name or spec");
    const char *list = text;
    char *expanded = NULL;
    for (size_t i = 0; i < sizeof presets_ / sizeof presets_[0]; i++)
        if (strcmp(text, presets_[i].name) == 0) list = presets_[i].spec;
    if (list == text && !strpbrk(text, "(,") && !isdigit((unsigned char)text[0]))
        return dlfs_error_set(DLFS_ERR_USAGE, "--model '%s': unknown model name (presets: mlp, mlp-large, cnn, cnn-bn, gpt-tiny, gpt2; or a "
                              "spec such as 784-256-10 or in(784),dense(256),gelu,dense(10))", text);
    if (list == text && isdigit((unsigned char)text[0])) {
        DLFS_TRY(expand_shorthand_(text, &expanded));
        list = expanded;
    }
    enum dlfs_status st = parse_list_(text, list, m);
    free(expanded);
    if (st != DLFS_OK) return st;
    place_(m);
    const size_t off = m->num_params;
    if (off > DLFS_MAX_PARAMS) /* before anything is allocated (MPI's counts are ints) */
        return dlfs_error_set(DLFS_ERR_USAGE, "--model '%.200s': %zu parameters, more than the %zu dlfs supports; "
                              "use narrower or fewer layers", text, off, DLFS_MAX_PARAMS);
    canonical_(m);
    return DLFS_OK;
}
