/* Models: spec parsing (good and bad), forward against a float64 reference,
 * backward against central finite differences of the float64 loss. */
#include <math.h>
#include <string.h>
#include "dlfs/model.h"
#include "dlfs/util.h"
#include "testutil.h"

/* dropout in the reference: the training key and the rows' sample indices */
static uint64_t ref_key_ = 0x5eed;
static uint32_t ref_id_(int r) { return (uint32_t)(1000 + 7 * r); }

/* float64 reference of the model: mean softmax cross-entropy over rows */
static double act_d(double z, enum dlfs_act a)
{
    switch (a) {
    case DLFS_ACT_RELU: return z > 0 ? z : 0;
    case DLFS_ACT_TANH: return tanh(z);
    case DLFS_ACT_SIGMOID: return 1 / (1 + exp(-z));
    case DLFS_ACT_GELU: return 0.5 * z * (1 + tanh(0.7978845608028654 * (z + 0.044715 * z * z * z)));
    default: return z;
    }
}

/* one layer for one sample (all but batchnorm) */
static void ref_layer_(const struct dlfs_layer *L, int l, const double *p, const double *cur, double *next, int r)
{
    if (L->type == DLFS_LAYER_DENSE) {
        for (int o = 0; o < L->out; o++) {
            double z = p[L->b_off + o];
            for (int i = 0; i < L->in; i++) z += p[L->w_off + (size_t)o * L->in + i] * cur[i];
            next[o] = act_d(z, L->act);
        }
    } else if (L->type == DLFS_LAYER_CONV || L->type == DLFS_LAYER_MAXPOOL) {
        const struct dlfs_conv_geom *g = &L->g;
        for (int o = 0; o < g->oc; o++)
            for (int oy = 0; oy < g->oh; oy++)
                for (int ox = 0; ox < g->ow; ox++) {
                    double acc = L->type == DLFS_LAYER_CONV ? p[L->b_off + o] : -INFINITY;
                    for (int c = 0; c < g->c; c++)
                        for (int ki = 0; ki < g->kh; ki++)
                            for (int kj = 0; kj < g->kw; kj++) {
                                int iy = oy * g->stride - g->pad + ki, ix = ox * g->stride - g->pad + kj;
                                if (iy < 0 || iy >= g->h || ix < 0 || ix >= g->w) continue;
                                double v = cur[(c * g->h + iy) * g->w + ix];
                                if (L->type == DLFS_LAYER_CONV)
                                    acc += p[L->w_off + (size_t)((o * g->c + c) * g->kh + ki) * g->kw + kj] * v;
                                else if (c == o && v > acc)
                                    acc = v;
                            }
                    next[(o * g->oh + oy) * g->ow + ox] = act_d(acc, L->act);
                }
    } else if (L->type == DLFS_LAYER_DROPOUT) {
        const uint64_t rk = dlfs_hash64(dlfs_hash64(ref_key_, (uint64_t)l), ref_id_(r));
        for (int j = 0; j < L->out; j++)
            next[j] = dlfs_uniform01(rk, (uint64_t)j) >= L->rate ? cur[j] / (1.0 - L->rate) : 0.0;
    } else { /* flatten */
        memcpy(next, cur, sizeof(double) * (size_t)L->out);
    }
}

/* batchnorm over all rows (training statistics, biased variance) */
static void ref_bn_(const struct dlfs_layer *L, const double *p, const double *cur, double *next, int rows,
                    size_t stride)
{
    const int C = L->bn_c, P = L->bn_plane;
    for (int c = 0; c < C; c++) {
        double s = 0, s2 = 0, cnt = (double)rows * P;
        for (int r = 0; r < rows; r++)
            for (int q = 0; q < P; q++) s += cur[r * stride + (size_t)c * P + q];
        const double mean = s / cnt;
        for (int r = 0; r < rows; r++)
            for (int q = 0; q < P; q++) {
                const double d = cur[r * stride + (size_t)c * P + q] - mean;
                s2 += d * d;
            }
        const double is = 1.0 / sqrt(s2 / cnt + 1e-5);
        for (int r = 0; r < rows; r++)
            for (int q = 0; q < P; q++) {
                const size_t i = r * stride + (size_t)c * P + q;
                next[i] = act_d(p[L->w_off + c] * (cur[i] - mean) * is + p[L->b_off + c], L->act);
            }
    }
}

static double ref_loss(const struct dlfs_model *m, const double *p, const double *x, const int32_t *y,
                       int rows, double *logits_out)
{
    const size_t W = (size_t)m->max_width;
    double *cur = malloc(sizeof(double) * W * rows), *next = malloc(sizeof(double) * W * rows);
    for (int r = 0; r < rows; r++) memcpy(cur + r * W, x + (size_t)r * m->input_dim, sizeof(double) * m->input_dim);
    for (int l = 0; l < m->num_layers; l++) {
        const struct dlfs_layer *L = &m->layers[l];
        if (L->type == DLFS_LAYER_BATCHNORM) ref_bn_(L, p, cur, next, rows, W);
        else for (int r = 0; r < rows; r++) ref_layer_(L, l, p, cur + r * W, next + r * W, r);
        double *t = cur; cur = next; next = t;
    }
    double loss = 0;
    for (int r = 0; r < rows; r++) {
        const double *o = cur + r * W;
        double mx = o[0], s = 0;
        for (int c = 0; c < m->num_classes; c++) if (o[c] > mx) mx = o[c];
        for (int c = 0; c < m->num_classes; c++) s += exp(o[c] - mx);
        loss += log(s) + mx - o[y[r]];
        if (logits_out) memcpy(logits_out + (size_t)r * m->num_classes, o, sizeof(double) * (size_t)m->num_classes);
    }
    free(cur);
    free(next);
    return loss / rows;
}

/* long: forward, loss and backward of one model against the float64 reference, in sequence */
static void check_model(const char *spec, int rows)
{
    const struct dlfs_backend *be = dlfs_backend_cpu();
    struct dlfs_model m;
    CHECK(dlfs_model_parse(spec, &m) == DLFS_OK, "parse %s: %s", spec, dlfs_error_msg());
    const size_t n = m.num_params;
    float *p = malloc(n * sizeof *p);
    dlfs_model_init_params(&m, 7, p);
    unsigned long long s = 99;
    for (size_t i = 0; i < n; i++) p[i] += (float)(0.3 * t_rand_(&s)); /* larger weights: sharper test */
    const size_t xin = (size_t)rows * m.input_dim;
    float *x = malloc(xin * sizeof *x);
    double *xd = malloc(xin * sizeof *xd), *pd = malloc(n * sizeof *pd);
    int32_t *y = malloc((size_t)rows * sizeof *y);
    for (size_t i = 0; i < xin; i++) xd[i] = x[i] = (float)t_rand_(&s);
    for (int r = 0; r < rows; r++) y[r] = r % m.num_classes;
    for (size_t i = 0; i < n; i++) pd[i] = p[i];

    struct dlfs_workspace ws;
    CHECK(dlfs_workspace_init(&ws, &m, be, rows) == DLFS_OK, "workspace");
    memcpy(ws.x, x, xin * sizeof *x);
    memcpy(ws.labels, y, (size_t)rows * sizeof *y);
    ws.training = 1;
    ws.key = ref_key_;
    for (int r = 0; r < rows; r++) ws.ids[r] = ref_id_(r);
    ws.stats[0] = ws.stats[1] = 0;
    const float *logits = dlfs_model_forward(&m, &ws, p, rows);
    double *wl = malloc((size_t)rows * m.num_classes * sizeof *wl);
    double want_loss = ref_loss(&m, pd, xd, y, rows, wl);
    char what[160];
    snprintf(what, sizeof what, "%s forward logits (batch %d)", spec, rows);
    t_close_(what, logits, wl, (size_t)rows * m.num_classes, 1e-4, 1e-4);
    dlfs_model_loss(&m, &ws, rows, 1.0f / rows);
    CHECK(fabs(ws.stats[0] / rows - want_loss) < 1e-4 * (1 + want_loss), "%s loss %.8g want %.8g", spec,
          ws.stats[0] / rows, want_loss);

    float *g = t_guarded_(n);
    dlfs_model_backward(&m, &ws, p, g, rows, NULL, NULL);
    CHECK(t_guard_ok_(g, n), "%s gradient slab guard", spec);

    /* central finite differences of the float64 loss, on a sample of parameters */
    const size_t stride = n > 400 ? n / 397 : 1;
    size_t cnt = 0;
    double *want = malloc(n * sizeof *want);
    float *got = malloc(n * sizeof *got);
    for (size_t i = 0; i < n; i += stride) {
        const double h = 1e-5, keep = pd[i];
        pd[i] = keep + h;
        double lp = ref_loss(&m, pd, xd, y, rows, NULL);
        pd[i] = keep - h;
        double lm = ref_loss(&m, pd, xd, y, rows, NULL);
        pd[i] = keep;
        want[cnt] = (lp - lm) / (2 * h);
        got[cnt] = g[i];
        cnt++;
    }
    snprintf(what, sizeof what, "%s backward vs finite differences (batch %d)", spec, rows);
    t_close_(what, got, want, cnt, 1e-5, 1e-3);
    free(want); free(got);
    t_guarded_free_(g);
    dlfs_workspace_free(&ws, &m);
    dlfs_model_free(&m);
    free(p); free(x); free(xd); free(pd); free(y); free(wl);
}

static int calls_[DLFS_MAX_LAYERS], ncalls_;
static void record_(int layer, void *ctx) { (void)ctx; calls_[ncalls_++] = layer; }

static void test_layer_done_order(void)
{
    struct dlfs_model m;
    dlfs_model_parse("6-5-4-3", &m);
    struct dlfs_workspace ws;
    dlfs_workspace_init(&ws, &m, dlfs_backend_cpu(), 2);
    float *p = calloc(m.num_params, sizeof *p), *g = calloc(m.num_params, sizeof *g);
    dlfs_model_init_params(&m, 1, p);
    dlfs_model_forward(&m, &ws, p, 2);
    dlfs_model_loss(&m, &ws, 2, 0.5f);
    dlfs_model_backward(&m, &ws, p, g, 2, record_, NULL);
    CHECK(ncalls_ == 3 && calls_[0] == 2 && calls_[1] == 1 && calls_[2] == 0, "layer_done order %d: %d %d %d",
          ncalls_, calls_[0], calls_[1], calls_[2]);
    dlfs_workspace_free(&ws, &m);
    dlfs_model_free(&m);
    free(p); free(g);
}

/* long: a list of spec strings and what each must give, one case a line or two */
static void test_specs(void)
{
    struct dlfs_model m;
    CHECK(dlfs_model_parse("mlp", &m) == DLFS_OK, "mlp");
    CHECK(m.num_layers == 3 && m.num_params == 784 * 512 + 512 + 512 * 512 + 512 + 512 * 10 + 10,
          "mlp params %zu", m.num_params);
    CHECK(strcmp(m.spec, "in(784),dense(512),relu,dense(512),relu,dense(10)") == 0, "canonical %s", m.spec);
    dlfs_model_free(&m);
    CHECK(dlfs_model_parse("mlp-large", &m) == DLFS_OK && m.num_layers == 4 && m.layers[2].out == 4096, "mlp-large");
    dlfs_model_free(&m);
    CHECK(dlfs_model_parse("784-100-10:tanh", &m) == DLFS_OK && m.layers[0].act == DLFS_ACT_TANH &&
          m.layers[1].act == DLFS_ACT_NONE, "shorthand act");
    dlfs_model_free(&m);
    CHECK(dlfs_model_parse(" in(1x28x28), dense(64) ,gelu,dense(10)", &m) == DLFS_OK && m.input_dim == 784 &&
          m.in_c == 1 && m.in_h == 28 && m.layers[0].act == DLFS_ACT_GELU, "layer list: %s", dlfs_error_msg());
    /* the canonical form parses to the same model */
    struct dlfs_model m2;
    CHECK(dlfs_model_parse(m.spec, &m2) == DLFS_OK && strcmp(m.spec, m2.spec) == 0, "canonical round trip");
    dlfs_model_free(&m2);
    dlfs_model_free(&m);
    /* the cnn preset and the convolutional layers */
    CHECK(dlfs_model_parse("cnn", &m) == DLFS_OK, "cnn: %s", dlfs_error_msg());
    CHECK(m.num_layers == 7 && m.layers[0].type == DLFS_LAYER_CONV && m.layers[0].act == DLFS_ACT_RELU &&
          m.layers[1].type == DLFS_LAYER_MAXPOOL && m.layers[4].type == DLFS_LAYER_FLATTEN &&
          m.layers[5].in == 64 * 7 * 7 && m.num_classes == 10, "cnn layers");
    CHECK(m.num_params == 32 * 25 + 32 + 64 * 32 * 25 + 64 + 3136 * 1024 + 1024 + 1024 * 10 + 10,
          "cnn params %zu", m.num_params);
    CHECK(strcmp(m.layers[0].name, "0_conv") == 0 && strcmp(m.layers[5].name, "5_dense") == 0, "names");
    CHECK(m.layers[1].num_params == 0 && m.layers[1].w_off == m.layers[2].w_off, "parameterless offsets");
    CHECK(strcmp(m.spec, "in(1x28x28),conv(32,k5,p2),relu,maxpool(2),conv(64,k5,p2),relu,maxpool(2),flatten,"
                         "dense(1024),relu,dense(10)") == 0, "cnn canonical %s", m.spec);
    dlfs_model_free(&m);
    CHECK(dlfs_model_parse("in(3x9x8), conv(4, k3, s2, p1), tanh, maxpool(3,s2), dense(5)", &m) == DLFS_OK &&
          m.layers[0].g.oh == 5 && m.layers[0].g.ow == 4 && m.layers[1].g.oh == 2 && m.layers[1].g.ow == 1 &&
          m.layers[2].in == 8, "conv geometry: %s", dlfs_error_msg());
    CHECK(strcmp(m.spec, "in(3x9x8),conv(4,k3,s2,p1),tanh,maxpool(3,s2),dense(5)") == 0, "canonical %s", m.spec);
    CHECK(dlfs_model_parse(m.spec, &m2) == DLFS_OK && strcmp(m.spec, m2.spec) == 0, "conv canonical round trip");
    dlfs_model_free(&m2);
    dlfs_model_free(&m);
    CHECK(dlfs_model_parse("in(9),dense(5),relu,dropout(0.25),dense(3)", &m) == DLFS_OK &&
          m.layers[1].type == DLFS_LAYER_DROPOUT && m.layers[1].rate == 0.25f && m.layers[1].num_params == 0 &&
          strcmp(m.spec, "in(9),dense(5),relu,dropout(0.25),dense(3)") == 0, "dropout: %s", dlfs_error_msg());
    dlfs_model_free(&m);
    const char *bad[] = {"", "mlpx", "784", "784-", "784--10", "784-0-10", "784-10:swish", "784-x-10",
                         "in(784),relu,dense(10)", "in(784),dense(10),relu", "in(784),dense(5),relu,relu,dense(3)",
                         "dense(10)", "in(0),dense(10)", "in(1x28),dense(10)", "in(1x2x3x4),dense(10)",
                         "in(784),dense(1)", "in(784),dense(-5),dense(10)", "in(784),conv(3),dense(10)",
                         "in(784),dense(10", "784-99999999-10", "in(784)",
                         "in(1x4x4),conv(2,k5),dense(3)", "in(1x8x8),conv(0,k3),dense(3)",
                         "in(1x8x8),conv(2,k3,p-1),dense(3)", "in(1x8x8),conv(2,k0),dense(3)",
                         "in(1x8x8),conv(2,k3,s0),dense(3)", "in(1x8x8),conv(2),dense(3)",
                         "in(1x8x8),conv(2,k3,q1),dense(3)", "in(1x3x3),maxpool(4),dense(3)",
                         "in(1x8x8),maxpool(2,p1),dense(3)", "in(1x8x8),maxpool(2),relu,dense(3)",
                         "in(1x8x8),conv(2,k3),flatten", "in(1x8x8),conv(2,k3,p1,dense(3)",
                         "in(1x8x8),flatten(2),dense(3)", "in(9),dropout(1),dense(3)",
                         "in(9),dropout(-0.1),dense(3)", "in(9),dropout,dense(3)", "in(9),dropout(0.5x),dense(3)",
                         "in(1x8x8),conv(8,k5,k3),dense(3)", "in(1x8x8),conv(8,k3,s1,s2),dense(3)",
                         "in(1x8x8),conv(8,k3,p1,p0),dense(3)", "in(1x8x8),maxpool(2,s2,s1),dense(3)"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        dlfs_error_clear();
        enum dlfs_status st = dlfs_model_parse(bad[i], &m);
        CHECK(st == DLFS_ERR_USAGE, "bad spec '%s': status %s, want a usage error", bad[i], dlfs_status_name(st));
        CHECK(strstr(dlfs_error_msg(), "--model") != NULL, "message for '%s' names the option: %s", bad[i],
              dlfs_error_msg());
        if (st == DLFS_OK) dlfs_model_free(&m);
    }
}

/* A backend without the conv op must be refused with one message naming it. */
static void test_missing_op(void)
{
    struct dlfs_backend be = *dlfs_backend_cpu();
    be.name = "lacking";
    be.conv2d_bwd = NULL;
    struct dlfs_model m;
    CHECK(dlfs_model_parse("in(1x6x6),maxpool(2),conv(2,k3),relu,dense(3)", &m) == DLFS_OK, "parse");
    CHECK(dlfs_model_check_backend(&m, dlfs_backend_cpu()) == DLFS_OK, "cpu has every op");
    dlfs_error_clear();
    CHECK(dlfs_model_check_backend(&m, &be) == DLFS_ERR_DEVICE, "missing op accepted");
    CHECK(strstr(dlfs_error_msg(), "conv2d_bwd") && strstr(dlfs_error_msg(), "1_conv") &&
          strstr(dlfs_error_msg(), "lacking"), "message: %s", dlfs_error_msg());
    dlfs_model_free(&m);
    CHECK(dlfs_model_parse("mlp", &m) == DLFS_OK && dlfs_model_check_backend(&m, &be) == DLFS_OK, "mlp needs no conv");
    dlfs_model_free(&m);
}

int main(void)
{
    dlfs_backend_cpu()->set_threads(1);
    test_specs();
    test_layer_done_order();
    test_missing_op();
    check_model("7-5-3:relu", 1);
    check_model("7-5-3:relu", 4);
    check_model("in(11),dense(6),tanh,dense(5),sigmoid,dense(4)", 3);
    check_model("in(9),dense(8),gelu,dense(3)", 5);
    check_model("in(1x3x3),dense(4),dense(2)", 2);
    check_model("in(1x5x5),conv(2,k3),relu,dense(3)", 1);
    check_model("in(2x7x6),conv(3,k3,s2,p2),tanh,maxpool(2),flatten,dense(4),relu,dense(3)", 3);
    check_model("in(1x9x9),conv(3,k5,p2),relu,maxpool(2),conv(4,k3),gelu,maxpool(2,s1),flatten,dense(3)", 2);
    check_model("in(1x6x6),maxpool(3,s2),conv(2,k2),dense(2)", 2);
    check_model("in(12),dense(9),relu,dropout(0.5),dense(3)", 4);
    check_model("in(2x5x5),conv(3,k3,p1),batchnorm,relu,maxpool(2),flatten,dense(3)", 3);
    check_model("in(1x4x3),conv(2,k2),batchnorm,dense(4),batchnorm,tanh,dense(3)", 5);
    check_model("in(3x5x5),batchnorm,conv(2,k3,s2,p2),gelu,batchnorm,flatten,dropout(0.2),dense(3)", 2);
    check_model("in(2x5x5),conv(3,k3,p1),relu,dropout(0.3),flatten,dense(6),tanh,dropout(0),dense(3)", 3);
    T_DONE();
}
