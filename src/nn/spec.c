/* The model spec language (include/dlfs/model.h): presets, the MLP shorthand
 * and the comma-separated layer list, all parsed into one layer table. */
#define _POSIX_C_SOURCE 200809L
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "dlfs/model.h"

static const struct { const char *name, *spec; } presets_[] = {
    {"mlp", "in(784),dense(512),relu,dense(512),relu,dense(10)"},
    {"mlp-large", "in(784),dense(4096),relu,dense(4096),relu,dense(4096),relu,dense(10)"},
    {"cnn", "in(1x28x28),conv(32,k5,p2),relu,maxpool(2),conv(64,k5,p2),relu,maxpool(2),flatten,"
            "dense(1024),relu,dense(10)"},
    {"cnn-bn", "in(1x28x28),conv(32,k5,p2),batchnorm,relu,maxpool(2),conv(64,k5,p2),batchnorm,relu,maxpool(2),"
               "flatten,dense(1024),relu,dropout(0.5),dense(10)"},
};

/* Parse a positive int in [1, DLFS_MAX_WIDTH] from s[0..n). */
static int parse_pos_(const char *s, size_t n, int *out)
{
    if (n == 0 || n > 9) return 0;
    int v = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isdigit((unsigned char)s[i])) return 0;
        v = v * 10 + (s[i] - '0');
    }
    if (v < 1 || v > DLFS_MAX_WIDTH) return 0;
    *out = v;
    return 1;
}

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
        if (!parse_pos_(p, (size_t)(q - p), &w)) {
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

/* Parse an int in [lo, hi] from s[0..n) (an optional leading '-' so that a
 * negative value is reported as out of range, not as garbage). */
static int parse_int_(const char *s, size_t n, int lo, int hi, int *out)
{
    int neg = n > 0 && s[0] == '-';
    if (neg) { s++; n--; }
    if (n == 0 || n > 9) return 0;
    long v = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isdigit((unsigned char)s[i])) return 0;
        v = v * 10 + (s[i] - '0');
    }
    if (neg) v = -v;
    if (v < lo || v > hi) return 0;
    *out = (int)v;
    return 1;
}

const char *dlfs_layer_type_name(enum dlfs_layer_type t)
{
    static const char *names[DLFS_LAYER_COUNT] = {"dense", "conv", "maxpool", "flatten", "dropout",
                                                      "batchnorm"};
    return t < DLFS_LAYER_COUNT ? names[t] : "?";
}

#define UNKNOWN_ "unknown layer (known: in, dense, conv, maxpool, flatten, dropout, batchnorm, relu, tanh, " \
                 "sigmoid, gelu)"

/* Window arguments after the first: "k5", "s2", "p0" (key in `keys`). Returns
 * NULL or the reason it is bad. */
static const char *window_args_(char *args, const char *keys, int *k, int *stride, int *pad)
{
    char *save = NULL, seen[4] = "";
    for (char *a = strtok_r(args, ",", &save); a; a = strtok_r(NULL, ",", &save)) {
        while (isspace((unsigned char)*a)) a++;
        size_t n = strlen(a);
        while (n && isspace((unsigned char)a[n - 1])) a[--n] = '\0';
        if (n < 2 || !strchr(keys, a[0])) return "unknown argument (use kK, sS, pP)";
        if (strchr(seen, a[0]))
            return a[0] == 'k' ? "the kernel size is given twice" : a[0] == 's' ? "the stride is given twice"
                                                                            : "the padding is given twice";
        seen[strlen(seen)] = a[0];
        int v;
        if (a[0] == 'p') {
            if (!parse_int_(a + 1, n - 1, 0, 4096, &v)) return "padding must be an integer >= 0";
            *pad = v;
        } else if (!parse_int_(a + 1, n - 1, 1, 4096, &v)) {
            return a[0] == 'k' ? "kernel size must be a positive integer" : "stride must be a positive integer";
        } else if (a[0] == 'k') {
            *k = v;
        } else {
            *stride = v;
        }
    }
    return NULL;
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

/* One token of a layer list: its name and the text between its parentheses. */
struct tok_ {
    char *name;
    char *arg;         /* NULL without parentheses */
    size_t alen;
    char full[96];     /* the token as written, for messages */
};

/* The shape of the activation as the list is read, and a buffer for reasons. */
struct shape_ {
    int c, h, w;
    char why[160];
};

/* Trim the token and split off its argument. NULL, or the reason it is bad. */
static const char *tok_split_(char *t, struct tok_ *k)
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
static const char *in_(const struct tok_ *k, struct dlfs_model *m, struct shape_ *s)
{
    int dims[3] = {1, 1, 1}, nd = 0;
    const char *p = k->arg, *end = k->arg + k->alen;
    while (p <= end && nd < 3) {
        const char *x = memchr(p, 'x', (size_t)(end - p));
        if (!x) x = end;
        if (!parse_pos_(p, (size_t)(x - p), &dims[nd])) { nd = -1; break; }
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

/* An activation, fused into the layer before it. */
static const char *act_(struct dlfs_model *m, enum dlfs_act a)
{
    if (m->num_layers == 0) return "an activation must follow a dense or conv layer";
    struct dlfs_layer *L = &m->layers[m->num_layers - 1];
    if (L->type != DLFS_LAYER_DENSE && L->type != DLFS_LAYER_CONV && L->type != DLFS_LAYER_BATCHNORM)
        return "an activation must follow a dense, conv or batchnorm layer (put it before pooling and dropout)";
    if (L->act != DLFS_ACT_NONE) return "two activations in a row";
    L->act = a;
    return NULL;
}

static const char *dense_(const struct tok_ *k, struct dlfs_layer *L, struct shape_ *s)
{
    int n;
    if (!k->arg || !parse_pos_(k->arg, k->alen, &n)) return "dense(N) needs a positive width";
    L->type = DLFS_LAYER_DENSE;
    s->c = 1; s->h = 1; s->w = n;
    return NULL;
}

/* conv(C,kK[,sS][,pP]) and maxpool(K[,sS]). */
static const char *window_(const struct tok_ *k, struct dlfs_layer *L, struct shape_ *s)
{
    const int conv = k->name[0] == 'c';
    char *comma = k->arg ? strchr(k->arg, ',') : NULL;
    int first, win = 0, stride = 1, pad = 0;
    if (!k->arg || !parse_pos_(k->arg, comma ? (size_t)(comma - k->arg) : k->alen, &first))
        return conv ? "conv(C,kK[,sS][,pP]) needs a positive number of output channels"
                    : "maxpool(K[,sS]) needs a positive window size";
    const char *why = comma ? window_args_(comma + 1, conv ? "ksp" : "s", &win, &stride, &pad) : NULL;
    if (why) return why;
    if (conv && win == 0) return "conv needs a kernel size, e.g. conv(32,k5,p2)";
    if (!conv) { win = first; if (!comma) stride = first; }
    if (win > s->h + 2 * pad || win > s->w + 2 * pad) {
        snprintf(s->why, sizeof s->why, "the %dx%d window is larger than its %dx%d input%s", win, win, s->h, s->w,
                 pad ? " plus padding" : "");
        return s->why;
    }
    L->type = conv ? DLFS_LAYER_CONV : DLFS_LAYER_MAXPOOL;
    L->g.kh = L->g.kw = win;
    L->g.stride = stride;
    L->g.pad = pad;
    s->c = conv ? first : s->c;
    s->h = (s->h + 2 * pad - win) / stride + 1;
    s->w = (s->w + 2 * pad - win) / stride + 1;
    return NULL;
}

static const char *dropout_(const struct tok_ *k, struct dlfs_layer *L, struct shape_ *s)
{
    (void)s;
    char *end = NULL;
    const double p = k->arg ? strtod(k->arg, &end) : -1.0;
    if (!k->arg || k->alen == 0 || end != k->arg + k->alen || !(p >= 0.0 && p < 1.0))
        return "dropout(P) needs a probability 0 <= P < 1";
    L->type = DLFS_LAYER_DROPOUT;
    L->rate = (float)p;
    return NULL;
}

static const char *batchnorm_(const struct tok_ *k, struct dlfs_layer *L, struct shape_ *s)
{
    if (k->arg) return UNKNOWN_;
    L->type = DLFS_LAYER_BATCHNORM;
    /* a flat input (1x1xN) is normalised per feature, an image per channel */
    L->bn_c = s->c == 1 && s->h == 1 ? s->w : s->c;
    L->bn_plane = s->c == 1 && s->h == 1 ? 1 : s->h * s->w;
    return NULL;
}

static const char *flatten_(const struct tok_ *k, struct dlfs_layer *L, struct shape_ *s)
{
    if (k->arg) return UNKNOWN_;
    L->type = DLFS_LAYER_FLATTEN;
    s->w = s->c * s->h * s->w;
    s->c = s->h = 1;
    return NULL;
}

/* The layers with parameters or windows, by name. */
static const struct {
    const char *name;
    const char *(*parse)(const struct tok_ *k, struct dlfs_layer *L, struct shape_ *s);
} layers_[] = {
    {"dense", dense_}, {"conv", window_}, {"maxpool", window_}, {"dropout", dropout_},
    {"batchnorm", batchnorm_}, {"flatten", flatten_},
};

/* A layer token: a new layer appended to m. */
static const char *layer_(const struct tok_ *k, struct dlfs_model *m, struct shape_ *s)
{
    if (m->num_layers == DLFS_MAX_LAYERS) return "too many layers";
    struct dlfs_layer *L = &m->layers[m->num_layers];
    memset(L, 0, sizeof *L);
    L->g.c = s->c; L->g.h = s->h; L->g.w = s->w;
    L->in = s->c * s->h * s->w;
    const char *why = UNKNOWN_;
    for (size_t i = 0; i < sizeof layers_ / sizeof layers_[0]; i++)
        if (strcmp(k->name, layers_[i].name) == 0) why = layers_[i].parse(k, L, s);
    if (why) return why;
    if ((long long)s->c * s->h * s->w > DLFS_MAX_WIDTH) return "layer output too large";
    L->g.oc = s->c; L->g.oh = s->h; L->g.ow = s->w;
    L->out = s->c * s->h * s->w;
    L->act = DLFS_ACT_NONE;
    snprintf(L->name, sizeof L->name, "%d_%s", m->num_layers, dlfs_layer_type_name(L->type));
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
    if (last->type != DLFS_LAYER_DENSE)
        return bad_(text, dlfs_layer_type_name(last->type), "the last layer must be dense(classes)");
    if (last->act != DLFS_ACT_NONE)
        return bad_(text, dlfs_act_name(last->act), "the last dense layer produces the logits and takes no activation");
    if (last->out < 2) return bad_(text, "dense(1)", "the last layer needs at least 2 classes");
    m->num_classes = last->out;
    return DLFS_OK;
}

static enum dlfs_status parse_list_(const char *text, const char *list, struct dlfs_model *m)
{
    char *copy = dlfs_malloc(strlen(list) + 1);
    strcpy(copy, list);
    char *toks[4 * DLFS_MAX_LAYERS];
    const int ntok = split_top_(copy, toks, 4 * DLFS_MAX_LAYERS);
    struct shape_ s = {1, 1, 1, ""};
    int have_in = 0;
    const char *why = NULL, *at = NULL; /* the reason a token is bad, and the text to name */
    for (int ti = 0; ti < ntok; ti++) {
        struct tok_ k;
        at = k.full;
        why = tok_split_(toks[ti], &k);
        const enum dlfs_act a = why ? DLFS_ACT_COUNT : dlfs_act_parse(k.name);
        if (why) {
            /* the token itself is malformed: named as written */
        } else if (!have_in && (strcmp(k.name, "in") != 0 || !k.arg)) {
            why = "a layer list starts with in(N) or in(CxHxW)";
        } else if (!have_in) {
            why = in_(&k, m, &s);
            if (why) at = k.arg; /* in()'s errors name its argument */
            have_in = 1;
        } else if (a != DLFS_ACT_COUNT && a != DLFS_ACT_NONE && !k.arg) {
            why = act_(m, a);
        } else {
            why = layer_(&k, m, &s);
        }
        if (why) {
            const enum dlfs_status st = bad_(text, at, why);
            free(copy);
            return st;
        }
    }
    free(copy);
    return finish_(text, have_in, m);
}

static void canonical_(struct dlfs_model *m)
{
    size_t cap = 64 + 48 * (size_t)m->num_layers, len = 0;
    m->spec = dlfs_malloc(cap);
    if (m->in_c == 1 && m->in_h == 1) len += (size_t)snprintf(m->spec, cap, "in(%d)", m->in_w);
    else len += (size_t)snprintf(m->spec, cap, "in(%dx%dx%d)", m->in_c, m->in_h, m->in_w);
    for (int l = 0; l < m->num_layers; l++) {
        const struct dlfs_layer *L = &m->layers[l];
        char *o = m->spec + len;
        const size_t room = cap - len;
        switch (L->type) {
        case DLFS_LAYER_DENSE: len += (size_t)snprintf(o, room, ",dense(%d)", L->out); break;
        case DLFS_LAYER_CONV:
            len += (size_t)snprintf(o, room, ",conv(%d,k%d", L->g.oc, L->g.kh);
            if (L->g.stride != 1) len += (size_t)snprintf(m->spec + len, cap - len, ",s%d", L->g.stride);
            if (L->g.pad) len += (size_t)snprintf(m->spec + len, cap - len, ",p%d", L->g.pad);
            len += (size_t)snprintf(m->spec + len, cap - len, ")");
            break;
        case DLFS_LAYER_MAXPOOL:
            if (L->g.stride == L->g.kh) len += (size_t)snprintf(o, room, ",maxpool(%d)", L->g.kh);
            else len += (size_t)snprintf(o, room, ",maxpool(%d,s%d)", L->g.kh, L->g.stride);
            break;
        case DLFS_LAYER_DROPOUT: len += (size_t)snprintf(o, room, ",dropout(%g)", (double)L->rate); break;
        default: len += (size_t)snprintf(o, room, ",%s", dlfs_layer_type_name(L->type)); break;
        }
        if (L->act != DLFS_ACT_NONE)
            len += (size_t)snprintf(m->spec + len, cap - len, ",%s", dlfs_act_name(L->act));
    }
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
        return dlfs_error_set(DLFS_ERR_USAGE, "--model '%s': unknown model name (presets: mlp, mlp-large, cnn, cnn-bn; or a "
                              "spec such as 784-256-10 or in(784),dense(256),gelu,dense(10))", text);
    if (list == text && isdigit((unsigned char)text[0])) {
        DLFS_TRY(expand_shorthand_(text, &expanded));
        list = expanded;
    }
    enum dlfs_status st = parse_list_(text, list, m);
    free(expanded);
    if (st != DLFS_OK) return st;
    size_t off = 0;
    for (int l = 0; l < m->num_layers; l++) {
        struct dlfs_layer *L = &m->layers[l];
        size_t nw = 0, nb = 0;
        if (L->type == DLFS_LAYER_DENSE) { nw = (size_t)L->out * L->in; nb = (size_t)L->out; }
        if (L->type == DLFS_LAYER_CONV) { nw = (size_t)L->g.oc * L->g.c * L->g.kh * L->g.kw; nb = (size_t)L->g.oc; }
        if (L->type == DLFS_LAYER_BATCHNORM) {
            nw = nb = (size_t)L->bn_c;
            L->buf_off = m->num_buffers;
            m->num_buffers += 2 * (size_t)L->bn_c;
        }
        L->w_off = off;
        L->b_off = off + nw;
        L->num_params = nw + nb;
        off += L->num_params;
    }
    m->num_params = off;
    if (off > DLFS_MAX_PARAMS) /* before anything is allocated (MPI's counts are ints) */
        return dlfs_error_set(DLFS_ERR_USAGE, "--model '%.200s': %zu parameters, more than the %zu dlfs supports; "
                              "use narrower or fewer layers", text, off, DLFS_MAX_PARAMS);
    canonical_(m);
    return DLFS_OK;
}
