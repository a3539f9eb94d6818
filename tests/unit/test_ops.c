/* Every op of the backend table against a float64 reference, gradients against
 * central finite differences of the float64 function, optimizer updates against
 * hand-computed values. Runs on every backend this build has a table for. */
#include <math.h>
#include <string.h>
#include "dlfs/backend.h"
#include "testutil.h"

#define M_PI_ 3.14159265358979323846

static unsigned long long seed_ = 42;


static void test_gemm(const struct dlfs_backend *be)
{
    const int shapes[][3] = {{1, 1, 1}, {3, 5, 7}, {17, 9, 33}, {64, 31, 5}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        for (int ta = 0; ta < 2; ta++)
            for (int tb = 0; tb < 2; tb++) {
                const int m = shapes[s][0], n = shapes[s][1], k = shapes[s][2];
                float *a = t_rand_floats_(&seed_, (size_t)m * k, 1), *b = t_rand_floats_(&seed_, (size_t)k * n, 1), *c = t_rand_floats_(&seed_, (size_t)m * n, 1);
                const int lda = ta ? m : k, ldb = tb ? k : n;
                double *want = malloc((size_t)m * n * sizeof *want);
                for (int i = 0; i < m; i++)
                    for (int j = 0; j < n; j++) {
                        double acc = 0;
                        for (int p = 0; p < k; p++)
                            acc += (double)(ta ? a[p * lda + i] : a[i * lda + p]) * (tb ? b[j * ldb + p] : b[p * ldb + j]);
                        want[i * n + j] = 0.5 * acc + 0.25 * c[i * n + j];
                    }
                float *da = t_upload_(be, a, (size_t)m * k), *db = t_upload_(be, b, (size_t)k * n), *dc = t_upload_(be, c, (size_t)m * n);
                be->gemm(ta, tb, m, n, k, 0.5f, da, lda, db, ldb, 0.25f, dc, n);
                t_download_(be, c, dc, (size_t)m * n);
                char what[64];
                snprintf(what, sizeof what, "gemm %dx%dx%d ta=%d tb=%d", m, n, k, ta, tb);
                t_close_(what, c, want, (size_t)m * n, 1e-5 * k, 1e-5);
                be->free(da); be->free(db); be->free(dc);
                free(a); free(b); free(c); free(want);
            }
}

/* float64 activations and their derivatives */
static double act_d(double z, enum dlfs_act a)
{
    switch (a) {
    case DLFS_ACT_RELU: return z > 0 ? z : 0;
    case DLFS_ACT_TANH: return tanh(z);
    case DLFS_ACT_SIGMOID: return 1 / (1 + exp(-z));
    case DLFS_ACT_GELU: return 0.5 * z * (1 + tanh(sqrt(2 / M_PI_) * (z + 0.044715 * z * z * z)));
    default: return z;
    }
}

static void test_bias_act(const struct dlfs_backend *be)
{
    const int rows = 7, cols = 13;
    const size_t n = (size_t)rows * cols;
    for (int a = 0; a < DLFS_ACT_COUNT; a++) {
        float *z = t_rand_floats_(&seed_, n, 3), *bias = t_rand_floats_(&seed_, cols, 1);
        double *wz = malloc(n * sizeof *wz), *wa = malloc(n * sizeof *wa);
        for (int r = 0; r < rows; r++)
            for (int c = 0; c < cols; c++) {
                wz[r * cols + c] = (double)z[r * cols + c] + bias[c];
                wa[r * cols + c] = act_d(wz[r * cols + c], (enum dlfs_act)a);
            }
        float *dz = t_upload_(be, z, n), *db = t_upload_(be, bias, cols);
        float *dact = a == DLFS_ACT_NONE ? dz : be->alloc(n * sizeof(float));
        float *hz = t_guarded_(n), *ha = t_guarded_(n);
        be->bias_act_fwd(dz, dact, db, rows, cols, (enum dlfs_act)a);
        t_download_(be, hz, dz, n);
        t_download_(be, ha, dact, n);
        char what[64];
        snprintf(what, sizeof what, "bias_act_fwd z (%s)", dlfs_act_name((enum dlfs_act)a));
        t_close_(what, hz, wz, n, 1e-6, 1e-6);
        snprintf(what, sizeof what, "bias_act_fwd a (%s)", dlfs_act_name((enum dlfs_act)a));
        t_close_(what, ha, wa, n, 2e-6, 2e-6);
        CHECK(t_guard_ok_(hz, n) && t_guard_ok_(ha, n), "guard");

        /* backward: dz = da * act'(z), act' by central differences in float64 */
        float *da = t_rand_floats_(&seed_, n, 1);
        double *wd = malloc(n * sizeof *wd);
        for (size_t i = 0; i < n; i++) {
            double zz = (double)hz[i], h = 1e-6;
            if (a == DLFS_ACT_RELU && fabs(zz) < 1e-4) zz = 1e-4 * (zz < 0 ? -1 : 1); /* kink */
            hz[i] = (float)zz;
            double fd = (act_d(zz + h, (enum dlfs_act)a) - act_d(zz - h, (enum dlfs_act)a)) / (2 * h);
            wd[i] = da[i] * fd;
        }
        be->to_device(dz, hz, n * sizeof(float));
        if (a != DLFS_ACT_NONE) { /* `a` must be act(z) for the ops that use it */
            float *hact = malloc(n * sizeof *hact);
            for (size_t i = 0; i < n; i++) hact[i] = (float)act_d(hz[i], (enum dlfs_act)a);
            be->to_device(dact, hact, n * sizeof(float));
            free(hact);
        }
        float *dda = t_upload_(be, da, n), *ddz = be->alloc(n * sizeof(float));
        be->act_bwd(ddz, dda, dz, dact, n, (enum dlfs_act)a);
        float *got = t_guarded_(n);
        t_download_(be, got, ddz, n);
        snprintf(what, sizeof what, "act_bwd vs finite differences (%s)", dlfs_act_name((enum dlfs_act)a));
        t_close_(what, got, wd, n, 1e-5, 1e-4);
        /* in place, as the model uses it */
        be->act_bwd(dda, dda, dz, dact, n, (enum dlfs_act)a);
        t_download_(be, got, dda, n);
        snprintf(what, sizeof what, "act_bwd in place (%s)", dlfs_act_name((enum dlfs_act)a));
        t_close_(what, got, wd, n, 1e-5, 1e-4);
        be->free(dda); be->free(ddz);
        if (dact != dz) be->free(dact);
        be->free(dz); be->free(db);
        t_guarded_free_(hz); t_guarded_free_(ha); t_guarded_free_(got);
        free(z); free(bias); free(wz); free(wa); free(da); free(wd);
    }
}

static void test_colsum(const struct dlfs_backend *be)
{
    const int rows = 9, cols = 5;
    float *x = t_rand_floats_(&seed_, (size_t)rows * cols, 1), *o = t_rand_floats_(&seed_, cols, 1);
    double want[5];
    for (int c = 0; c < cols; c++) {
        want[c] = 0.5 * o[c];
        for (int r = 0; r < rows; r++) want[c] += x[r * cols + c];
    }
    float *dx = t_upload_(be, x, (size_t)rows * cols), *dout = t_upload_(be, o, cols);
    be->colsum(dout, dx, rows, cols, 0.5f);
    t_download_(be, o, dout, cols);
    t_close_("colsum beta=0.5", o, want, cols, 1e-6, 1e-6);
    be->colsum(dout, dx, rows, cols, 0.0f);
    t_download_(be, o, dout, cols);
    for (int c = 0; c < cols; c++) want[c] -= 0.5 * 0; /* recompute for beta 0 */
    for (int c = 0; c < cols; c++) {
        want[c] = 0;
        for (int r = 0; r < rows; r++) want[c] += x[r * cols + c];
    }
    t_close_("colsum beta=0", o, want, cols, 1e-6, 1e-6);
    be->free(dx); be->free(dout);
    free(x); free(o);
}

static double xent_d(const float *x, int classes, int y)
{
    double mx = x[0], s = 0;
    for (int c = 1; c < classes; c++) if (x[c] > mx) mx = x[c];
    for (int c = 0; c < classes; c++) s += exp(x[c] - mx);
    return log(s) + mx - x[y];
}

static void test_softmax_xent(const struct dlfs_backend *be)
{
    const int rows = 6, classes = 10;
    const size_t n = (size_t)rows * classes;
    float *x = t_rand_floats_(&seed_, n, 4);
    x[0] = 80.0f; /* large logits must not overflow */
    int32_t labels[6] = {0, 3, 9, 1, 1, 7};
    double want_loss = 0, want_correct = 0;
    double *wd = malloc(n * sizeof *wd);
    for (int r = 0; r < rows; r++) {
        float *row = x + r * classes;
        want_loss += xent_d(row, classes, labels[r]);
        int arg = 0;
        for (int c = 1; c < classes; c++) if (row[c] > row[arg]) arg = c;
        want_correct += arg == labels[r];
        for (int c = 0; c < classes; c++) { /* d(loss * scale)/dx by central differences */
            double h = 1e-3, keep = row[c];
            float hi[10], lo[10];
            memcpy(hi, row, sizeof hi); memcpy(lo, row, sizeof lo);
            double xp = keep + h, xm = keep - h;
            hi[c] = (float)xp; lo[c] = (float)xm;
            wd[r * classes + c] = 0.25 * (xent_d(hi, classes, labels[r]) - xent_d(lo, classes, labels[r])) /
                                  ((double)hi[c] - (double)lo[c]);
        }
    }
    float *dx = t_upload_(be, x, n), *dd = be->alloc(n * sizeof(float));
    int32_t *dl = be->alloc(sizeof labels);
    be->to_device(dl, labels, sizeof labels);
    double *dstats = be->alloc(2 * sizeof(double)), stats[2] = {1.5, 2.0};
    be->to_device(dstats, stats, sizeof stats);
    be->softmax_xent(dx, dl, rows, classes, 0.25f, dd, dstats);
    float *got = t_guarded_(n);
    t_download_(be, got, dd, n);
    be->to_host(stats, dstats, sizeof stats);
    CHECK(fabs(stats[0] - 1.5 - want_loss) < 1e-4 * want_loss, "loss %.9g want %.9g", stats[0] - 1.5, want_loss);
    CHECK(stats[1] - 2.0 == want_correct, "correct %g want %g", stats[1] - 2.0, want_correct);
    t_close_("softmax_xent dlogits vs finite differences", got, wd, n, 2e-5, 1e-3);
    CHECK(t_guard_ok_(got, n), "guard");
    be->free(dx); be->free(dd); be->free(dl); be->free(dstats);
    t_guarded_free_(got); free(x); free(wd);
}

static void test_normalize(const struct dlfs_backend *be)
{
    const size_t n = 3, ch = 2, plane = 5, total = n * ch * plane;
    uint8_t src[30];
    for (size_t i = 0; i < total; i++) src[i] = (uint8_t)(i * 37 % 256);
    const double mean[2] = {0.25, 0.5}, std[2] = {0.5, 0.125};
    double want[30];
    for (size_t i = 0; i < total; i++) {
        size_t c = i / plane % ch;
        want[i] = (src[i] / 255.0 - mean[c]) / std[c];
    }
    uint8_t *ds = be->alloc(total);
    be->to_device(ds, src, total);
    float *dd = be->alloc(total * sizeof(float)), got[30];
    be->normalize_u8(dd, ds, n, (int)ch, plane, mean, std);
    t_download_(be, got, dd, total);
    t_close_("normalize_u8", got, want, total, 1e-5, 1e-6);
    be->free(ds); be->free(dd);
}

/* long: one hand-computed step per optimizer variant, each a short block against its numbers */
static void test_optim(const struct dlfs_backend *be)
{
    /* hand-computed single steps */
    float p[2] = {1.0f, -2.0f}, g[2] = {0.5f, 0.25f}, m[2] = {0.1f, 0.0f}, v[2] = {0, 0};
    float *dp = t_upload_(be, p, 2), *dg = t_upload_(be, g, 2), *dm = t_upload_(be, m, 2), *dv = t_upload_(be, v, 2);
    struct dlfs_optim_hp hp = {.lr = 0.1f, .momentum = 0.9f, .weight_decay = 0.01f};
    /* SGD momentum, L2: d = g + wd p = (0.51, 0.23); m = 0.9 m + d = (0.6, 0.23); p -= lr m */
    be->sgd_update(2, dp, dg, dm, &hp);
    float got[2];
    t_download_(be, got, dp, 2);
    double want_sgd[2] = {1.0 - 0.1 * 0.6, -2.0 - 0.1 * 0.23};
    t_close_("sgd momentum", got, want_sgd, 2, 1e-6, 1e-6);
    /* Nesterov from m = 0.1, 0: d + mu*m_new */
    be->to_device(dp, p, sizeof p); be->to_device(dm, m, sizeof m);
    hp.nesterov = true;
    be->sgd_update(2, dp, dg, dm, &hp);
    t_download_(be, got, dp, 2);
    double want_nest[2] = {1.0 - 0.1 * (0.51 + 0.9 * 0.6), -2.0 - 0.1 * (0.23 + 0.9 * 0.23)};
    t_close_("sgd nesterov", got, want_nest, 2, 1e-6, 1e-6);
    /* plain SGD without state */
    be->to_device(dp, p, sizeof p);
    struct dlfs_optim_hp plain = {.lr = 0.5f};
    be->sgd_update(2, dp, dg, NULL, &plain);
    t_download_(be, got, dp, 2);
    double want_plain[2] = {0.75, -2.125};
    t_close_("sgd plain", got, want_plain, 2, 1e-7, 0);

    /* Adam, first step from zero state: m = 0.1 g, v = 0.001 g^2; with bias
     * corrections the step is lr * g / (|g| + eps) = lr * sign(g) */
    float zero[2] = {0, 0};
    be->to_device(dp, p, sizeof p); be->to_device(dm, zero, sizeof zero); be->to_device(dv, zero, sizeof zero);
    struct dlfs_optim_hp ah = {.lr = 0.01f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f,
                               .bias_c1 = 0.1f, .bias_c2 = 0.001f};
    be->adam_update(2, dp, dg, dm, dv, &ah);
    t_download_(be, got, dp, 2);
    double want_adam[2] = {1.0 - 0.01 * 0.5 / (0.5 + 1e-8), -2.0 - 0.01 * 0.25 / (0.25 + 1e-8)};
    t_close_("adam step 1", got, want_adam, 2, 1e-6, 1e-6);
    float hm[2], hv[2];
    t_download_(be, hm, dm, 2); t_download_(be, hv, dv, 2);
    double want_m[2] = {0.05, 0.025}, want_v[2] = {0.001 * 0.25, 0.001 * 0.0625};
    t_close_("adam m", hm, want_m, 2, 1e-8, 1e-6);
    t_close_("adam v", hv, want_v, 2, 1e-10, 1e-4); /* (1 - beta2) rounds in float */
    /* second step, by hand: g' = (0.5, 0.25) again, t = 2 */
    ah.bias_c1 = 1 - 0.81f; ah.bias_c2 = (float)(1 - 0.999 * 0.999);
    be->adam_update(2, dp, dg, dm, dv, &ah);
    t_download_(be, got, dp, 2);
    double want2[2];
    for (int i = 0; i < 2; i++) {
        double gi = g[i], mm = 0.9 * (0.1 * gi) + 0.1 * gi, vv = 0.999 * (0.001 * gi * gi) + 0.001 * gi * gi;
        double mhat = mm / (1 - 0.81), vhat = vv / (1 - 0.999 * 0.999);
        want2[i] = want_adam[i] - 0.01 * mhat / (sqrt(vhat) + 1e-8);
    }
    t_close_("adam step 2", got, want2, 2, 1e-6, 1e-6);
    /* AdamW: decoupled decay p -= lr*wd*p before the Adam step; Adam with L2 adds wd*p to g */
    be->to_device(dp, p, sizeof p); be->to_device(dm, zero, sizeof zero); be->to_device(dv, zero, sizeof zero);
    ah.bias_c1 = 0.1f; ah.bias_c2 = 0.001f; ah.weight_decay = 0.5f; ah.decoupled = true;
    be->adam_update(2, dp, dg, dm, dv, &ah);
    t_download_(be, got, dp, 2);
    double want_w[2] = {1.0 * (1 - 0.005) - 0.01, -2.0 * (1 - 0.005) - 0.01};
    t_close_("adamw step 1", got, want_w, 2, 1e-6, 1e-6);
    be->to_device(dp, p, sizeof p); be->to_device(dm, zero, sizeof zero); be->to_device(dv, zero, sizeof zero);
    ah.decoupled = false; /* g + wd p = (1.0, -0.75): step = lr * sign */
    be->adam_update(2, dp, dg, dm, dv, &ah);
    t_download_(be, got, dp, 2);
    double want_l2[2] = {1.0 - 0.01, -2.0 + 0.01};
    t_close_("adam L2 step 1", got, want_l2, 2, 1e-6, 1e-6);
    be->free(dp); be->free(dg); be->free(dm); be->free(dv);
}

static void test_misc(const struct dlfs_backend *be)
{
    float x[5] = {1, 2, 3, 4, 5}, y[5] = {1, 1, 1, 1, 1};
    float *dx = t_upload_(be, x, 5), *dy = t_upload_(be, y, 5), got[5];
    be->axpy(5, 2.0f, dx, dy);
    t_download_(be, got, dy, 5);
    double want[5] = {3, 5, 7, 9, 11};
    t_close_("axpy", got, want, 5, 0, 0);
    be->scale(5, 0.5f, dy);
    t_download_(be, got, dy, 5);
    double want2[5] = {1.5, 2.5, 3.5, 4.5, 5.5};
    t_close_("scale", got, want2, 5, 0, 0);
    be->fill(dy, -1.25f, 5);
    t_download_(be, got, dy, 5);
    double want3[5] = {-1.25, -1.25, -1.25, -1.25, -1.25};
    t_close_("fill", got, want3, 5, 0, 0);
    be->free(dx); be->free(dy);
}

int main(void)
{
    const struct dlfs_backend *backends[] = {dlfs_backend_cpu()};
    for (size_t i = 0; i < sizeof backends / sizeof backends[0]; i++) {
        const struct dlfs_backend *be = backends[i];
        printf("backend %s\n", be->name);
        if (be->set_threads) be->set_threads(1);
        test_gemm(be);
        test_bias_act(be);
        test_colsum(be);
        test_softmax_xent(be);
        test_normalize(be);
        test_optim(be);
        test_misc(be);
    }
    T_DONE();
}
