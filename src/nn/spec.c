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

static enum dlfs_status bad_(const char *text, const char *tok, const char *why)
{
    return dlfs_error_set(DLFS_ERR_SHAPE, "--model '%s': %s at '%s' (see 'dlfs-train --help' for "
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

static enum dlfs_status parse_list_(const char *text, const char *list, struct dlfs_model *m)
{
    char *copy = dlfs_malloc(strlen(list) + 1);
    strcpy(copy, list);
    enum dlfs_status st = DLFS_OK;
    int have_in = 0, width = 0;
    char *save = NULL;
    for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        while (isspace((unsigned char)*tok)) tok++;
        size_t tl = strlen(tok);
        while (tl && isspace((unsigned char)tok[tl - 1])) tok[--tl] = '\0';
        char *open = strchr(tok, '(');
        const char *arg = NULL;
        size_t alen = 0;
        if (open) {
            if (tl < 3 || tok[tl - 1] != ')') { st = bad_(text, tok, "missing ')'"); break; }
            arg = open + 1;
            alen = (size_t)(tok + tl - 1 - arg);
            *open = '\0';
        }
        if (!have_in) {
            if (strcmp(tok, "in") != 0 || !arg) { st = bad_(text, tok, "a layer list starts with in(N) or in(CxHxW)"); break; }
            int dims[3] = {1, 1, 1}, nd = 0;
            const char *p = arg, *end = arg + alen;
            while (p <= end && nd < 3) {
                const char *x = memchr(p, 'x', (size_t)(end - p));
                if (!x) x = end;
                if (!parse_pos_(p, (size_t)(x - p), &dims[nd])) { nd = -1; break; }
                nd++;
                p = x + 1;
            }
            if (nd > 0 && p <= end) nd = -1; /* more than three sizes */
            if (nd != 1 && nd != 3) { st = bad_(text, arg, "in() takes N or CxHxW with positive sizes"); break; }
            if (nd == 1) { m->in_c = 1; m->in_h = 1; m->in_w = dims[0]; }
            else { m->in_c = dims[0]; m->in_h = dims[1]; m->in_w = dims[2]; }
            if ((long long)m->in_c * m->in_h * m->in_w > DLFS_MAX_WIDTH) { st = bad_(text, arg, "input too large"); break; }
            m->input_dim = m->in_c * m->in_h * m->in_w;
            width = m->input_dim;
            m->max_width = width;
            have_in = 1;
            continue;
        }
        if (strcmp(tok, "dense") == 0) {
            int w;
            if (!arg || !parse_pos_(arg, alen, &w)) { st = bad_(text, tok, "dense(N) needs a positive width"); break; }
            if (m->num_layers == DLFS_MAX_LAYERS) { st = bad_(text, tok, "too many layers"); break; }
            struct dlfs_layer *L = &m->layers[m->num_layers];
            L->type = DLFS_LAYER_DENSE;
            L->in = width;
            L->out = w;
            L->act = DLFS_ACT_NONE;
            snprintf(L->name, sizeof L->name, "%d_dense", m->num_layers);
            m->num_layers++;
            width = w;
            if (w > m->max_width) m->max_width = w;
            continue;
        }
        enum dlfs_act a = dlfs_act_parse(tok);
        if (a != DLFS_ACT_COUNT && a != DLFS_ACT_NONE && !arg) {
            if (m->num_layers == 0) { st = bad_(text, tok, "an activation must follow a dense layer"); break; }
            struct dlfs_layer *L = &m->layers[m->num_layers - 1];
            if (L->act != DLFS_ACT_NONE) { st = bad_(text, tok, "two activations in a row"); break; }
            L->act = a;
            continue;
        }
        st = bad_(text, tok, "unknown layer (known: in, dense, relu, tanh, sigmoid, gelu)");
        break;
    }
    free(copy);
    if (st != DLFS_OK) return st;
    if (!have_in) return bad_(text, text, "empty spec");
    if (m->num_layers == 0) return bad_(text, text, "no dense layer");
    struct dlfs_layer *last = &m->layers[m->num_layers - 1];
    if (last->act != DLFS_ACT_NONE)
        return bad_(text, dlfs_act_name(last->act), "the last dense layer produces the logits and takes no activation");
    if (last->out < 2) return bad_(text, "dense(1)", "the last layer needs at least 2 classes");
    m->num_classes = last->out;
    return DLFS_OK;
}

static void canonical_(struct dlfs_model *m)
{
    size_t cap = 64 + 40 * (size_t)m->num_layers, len = 0;
    m->spec = dlfs_malloc(cap);
    if (m->in_c == 1 && m->in_h == 1) len += (size_t)snprintf(m->spec, cap, "in(%d)", m->in_w);
    else len += (size_t)snprintf(m->spec, cap, "in(%dx%dx%d)", m->in_c, m->in_h, m->in_w);
    for (int l = 0; l < m->num_layers; l++) {
        len += (size_t)snprintf(m->spec + len, cap - len, ",dense(%d)", m->layers[l].out);
        if (m->layers[l].act != DLFS_ACT_NONE)
            len += (size_t)snprintf(m->spec + len, cap - len, ",%s", dlfs_act_name(m->layers[l].act));
    }
}

enum dlfs_status dlfs_model_parse(const char *text, struct dlfs_model *m)
{
    memset(m, 0, sizeof *m);
    if (!text || !*text) return dlfs_error_set(DLFS_ERR_SHAPE, "--model: empty model name or spec");
    const char *list = text;
    char *expanded = NULL;
    for (size_t i = 0; i < sizeof presets_ / sizeof presets_[0]; i++)
        if (strcmp(text, presets_[i].name) == 0) list = presets_[i].spec;
    if (list == text && !strpbrk(text, "(,") && !isdigit((unsigned char)text[0]))
        return dlfs_error_set(DLFS_ERR_SHAPE, "--model '%s': unknown model name (presets: mlp, mlp-large; or a "
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
        L->w_off = off;
        L->b_off = off + (size_t)L->out * L->in;
        L->num_params = (size_t)L->out * L->in + (size_t)L->out;
        off += L->num_params;
    }
    m->num_params = off;
    canonical_(m);
    return DLFS_OK;
}

void dlfs_model_free(struct dlfs_model *m)
{
    free(m->spec);
    m->spec = NULL;
}
