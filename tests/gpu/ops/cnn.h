/* ---- CNN ops: convolution, max pooling, dropout, mul, batch normalisation ---- */
static void conv_case_(const struct ops_args *arg)
{
    const int c = arg->c, h = arg->h, w = arg->w, oc = arg->oc, k = arg->kernel, stride = arg->stride;
    const int pad = arg->pad, n = arg->n;
    const size_t budget = arg->budget;
    const enum dlfs_act act = (enum dlfs_act)arg->act;
    struct dlfs_conv_geom g;
    t_conv_geom_(&g, c, h, w, oc, k, stride, pad);
    dlfs_conv_set_col_budget(budget); /* set: both backends chunk alike; 0: each its own default */
    const size_t nx = (size_t)n * c * h * w, nw = (size_t)oc * c * k * k, nz = (size_t)n * oc * g.oh * g.ow;
    const size_t ncol = dlfs_conv_col_floats(&g, n);
    float *x = rnd_(nx, 1), *wt = rnd_(nw, 0.5), *b = rnd_((size_t)oc, 1), *dz = rnd_(nz, 1);
    const struct dlfs_backend *bes[2] = {dev_, ref_};
    float *dx_[2], *dw_[2], *db_[2], *dz_[2], *col[2], *z[2], *a[2], *gw[2], *gb[2], *gx[2];
    for (int i = 0; i < 2; i++) {
        const struct dlfs_backend *be = bes[i];
        dx_[i] = gup_(be, x, nx); dw_[i] = gup_(be, wt, nw); db_[i] = gup_(be, b, (size_t)oc); dz_[i] = gup_(be, dz, nz);
        col[i] = gnew_(be, ncol); z[i] = gnew_(be, nz); a[i] = act == DLFS_ACT_NONE ? z[i] : gnew_(be, nz);
        gw[i] = gnew_(be, nw); gb[i] = gnew_(be, (size_t)oc); gx[i] = gnew_(be, nx);
        be->conv2d_fwd(&g, n, dx_[i], dw_[i], db_[i], col[i], z[i], a[i], act);
    }
    char what[128];
    const int kk = c * k * k;
    const struct tol t = {1e-9, 2e-5 * sqrt((double)kk), 1e-4}; /* k products summed in another order */
    snprintf(what, sizeof what, "conv2d_fwd c%d %dx%d oc%d k%d s%d p%d n%d %s chunk %d: z", c, h, w, oc, k, stride,
             pad, n, dlfs_act_name(act), dlfs_conv_chunk(&g, n));
    cmp_dev_(what, z[0], z[1], nz, t);
    if (act != DLFS_ACT_NONE) {
        snprintf(what, sizeof what, "conv2d_fwd c%d %dx%d oc%d k%d s%d p%d n%d %s: act", c, h, w, oc, k, stride, pad,
                 n, dlfs_act_name(act));
        cmp_dev_(what, a[0], a[1], nz, t);
    }
    for (int withdx = 1; withdx >= 0; withdx--) {
        for (int i = 0; i < 2; i++)
            bes[i]->conv2d_bwd(&g, n, dx_[i], dw_[i], dz_[i], col[i], gw[i], gb[i], withdx ? gx[i] : NULL);
        const double m = (double)n * g.oh * g.ow; /* dw, db: sums over images and pixels */
        const struct tol tw = {1e-9, 2e-5 * sqrt(m), 1e-4}, tx = {1e-9, 2e-5 * sqrt((double)oc * k * k), 1e-4};
        snprintf(what, sizeof what, "conv2d_bwd c%d %dx%d oc%d k%d s%d p%d n%d dx=%d: dw", c, h, w, oc, k, stride,
                 pad, n, withdx);
        cmp_dev_(what, gw[0], gw[1], nw, tw);
        snprintf(what, sizeof what, "conv2d_bwd c%d %dx%d oc%d k%d s%d p%d n%d dx=%d: db", c, h, w, oc, k, stride,
                 pad, n, withdx);
        cmp_dev_(what, gb[0], gb[1], (size_t)oc, tw);
        if (withdx) {
            snprintf(what, sizeof what, "conv2d_bwd c%d %dx%d oc%d k%d s%d p%d n%d: dx", c, h, w, oc, k, stride, pad, n);
            cmp_dev_(what, gx[0], gx[1], nx, tx);
        }
    }
    for (int i = 0; i < 2; i++) {
        const struct dlfs_backend *be = bes[i];
        gfree_(be, dx_[i], nx, "conv x"); gfree_(be, dw_[i], nw, "conv w"); gfree_(be, db_[i], (size_t)oc, "conv b");
        gfree_(be, dz_[i], nz, "conv dz"); gfree_(be, col[i], ncol, "conv col scratch"); gfree_(be, z[i], nz, "conv z");
        if (act != DLFS_ACT_NONE) gfree_(be, a[i], nz, "conv act");
        gfree_(be, gw[i], nw, "conv dw"); gfree_(be, gb[i], (size_t)oc, "conv db"); gfree_(be, gx[i], nx, "conv dx");
    }
    free(x); free(wt); free(b); free(dz);
    dlfs_conv_set_col_budget(0);
}

static void pool_case_(const struct ops_args *a)
{
    const int c = a->c, h = a->h, w = a->w, k = a->kernel, stride = a->stride, n = a->n;
    struct dlfs_conv_geom g;
    t_conv_geom_(&g, c, h, w, c, k, stride, 0);
    const size_t nx = (size_t)n * c * h * w, ny = (size_t)n * c * g.oh * g.ow;
    float *x = malloc(nx * sizeof *x), *dy = rnd_(ny, 1);
    for (size_t i = 0; i < nx; i++) x[i] = (float)(int)(3.0 * t_rand_(&seed_)); /* ties: first maximum wins */
    const struct dlfs_backend *bes[2] = {dev_, ref_};
    float *dx_[2], *y[2], *ddy[2], *gx[2];
    int32_t *arg[2], *harg[2];
    for (int i = 0; i < 2; i++) {
        dx_[i] = gup_(bes[i], x, nx); y[i] = gnew_(bes[i], ny); ddy[i] = gup_(bes[i], dy, ny); gx[i] = gnew_(bes[i], nx);
        arg[i] = bes[i]->alloc(ny * sizeof(int32_t));
        bes[i]->maxpool_fwd(&g, n, dx_[i], y[i], arg[i]);
        bes[i]->maxpool_bwd(&g, n, ddy[i], arg[i], gx[i]);
        harg[i] = malloc(ny * sizeof(int32_t));
        bes[i]->to_host(harg[i], arg[i], ny * sizeof(int32_t));
    }
    char what[96];
    snprintf(what, sizeof what, "maxpool_fwd c%d %dx%d k%d s%d n%d (bit-exact)", c, h, w, k, stride, n);
    cmp_dev_(what, y[0], y[1], ny, T_EXACT);
    size_t bad = 0;
    for (size_t i = 0; i < ny; i++) bad += harg[0][i] != harg[1][i];
    CHECK(bad == 0, "%s: %zu window maxima at another position than the CPU's", what, bad);
    snprintf(what, sizeof what, "maxpool_bwd c%d %dx%d k%d s%d n%d (bit-exact)", c, h, w, k, stride, n);
    cmp_dev_(what, gx[0], gx[1], nx, T_EXACT);
    for (int i = 0; i < 2; i++) {
        gfree_(bes[i], dx_[i], nx, "pool x"); gfree_(bes[i], y[i], ny, "pool y");
        gfree_(bes[i], ddy[i], ny, "pool dy"); gfree_(bes[i], gx[i], nx, "pool dx");
        bes[i]->free(arg[i]); free(harg[i]);
    }
    free(x); free(dy);
}

static void dropout_case_(const struct ops_args *a) /* rows n, cols w, rate, key 0x1234567890abcdef + seed */
{
    const int rows = a->n, cols = a->w;
    const size_t n = (size_t)rows * cols;
    const float rate = a->rate;
    const unsigned long long s = a->seed;
    float *x = rnd_(n, 2), *g = rnd_(n, 1);
    uint32_t *ids = malloc((size_t)rows * sizeof *ids);
    for (int r = 0; r < rows; r++) ids[r] = (uint32_t)(r * 2654435761u + 7u);
    const struct dlfs_backend *bes[2] = {dev_, ref_};
    float *dx_[2], *y[2], *m[2], *dg[2];
    uint32_t *did[2];
    for (int i = 0; i < 2; i++) {
        dx_[i] = gup_(bes[i], x, n); y[i] = gnew_(bes[i], n); m[i] = gnew_(bes[i], n); dg[i] = gup_(bes[i], g, n);
        did[i] = bes[i]->alloc((size_t)rows * sizeof *ids);
        bes[i]->to_device(did[i], ids, (size_t)rows * sizeof *ids);
        bes[i]->dropout_fwd(dx_[i], y[i], m[i], rows, cols, rate, 0x1234567890abcdefULL + s, did[i]);
        bes[i]->mul(n, m[i], dg[i]);
    }
    char what[80];
    snprintf(what, sizeof what, "dropout_fwd %dx%d rate %g: mask (bit-exact)", rows, cols, (double)rate);
    cmp_dev_(what, m[0], m[1], n, T_EXACT);
    snprintf(what, sizeof what, "dropout_fwd %dx%d rate %g: y (bit-exact)", rows, cols, (double)rate);
    cmp_dev_(what, y[0], y[1], n, T_EXACT);
    snprintf(what, sizeof what, "mul n=%zu (bit-exact)", n);
    cmp_dev_(what, dg[0], dg[1], n, T_EXACT);
    for (int i = 0; i < 2; i++) {
        gfree_(bes[i], dx_[i], n, "dropout x"); gfree_(bes[i], y[i], n, "dropout y");
        gfree_(bes[i], m[i], n, "dropout mask"); gfree_(bes[i], dg[i], n, "mul");
        bes[i]->free(did[i]);
    }
    free(x); free(g); free(ids);
}

/* bn_case_'s comparisons: field name, device and CPU buffers, count, tolerance */
#define BN_CMP_(field, d, r, cnt, tl)                                                                 \
    do {                                                                                           \
        snprintf(what, sizeof what, "batchnorm n%d c%d plane%d group%d %s: %s", n, c, plane, group, an, field); \
        cmp_dev_(what, d, r, cnt, tl);                                                             \
    } while (0)
static void bn_case_(const struct ops_args *arg)
{
    const int n = arg->n, c = arg->c, plane = arg->h, group = arg->group;
    const enum dlfs_act act = (enum dlfs_act)arg->act;
    const size_t nx = (size_t)n * c * plane;
    const int eff = group <= 0 || group > n ? n : group, groups = (n + eff - 1) / eff;
    const size_t ni = (size_t)groups * c;
    float *x = rnd_(nx, 2), *gm = rnd_((size_t)c, 1), *bt = rnd_((size_t)c, 1), *dz = rnd_(nx, 1);
    float *st0 = rnd_(2 * (size_t)c, 1), *rm = rnd_((size_t)c, 1), *rv = rnd_((size_t)c, 1);
    for (size_t i = 0; i < nx; i++) x[i] += 0.5f * (float)(i / plane % (size_t)c); /* channel offsets */
    for (int ch = 0; ch < c; ch++) rv[ch] = 0.5f + fabsf(rv[ch]);
    const struct dlfs_backend *bes[2] = {dev_, ref_};
    float *dx_[2], *dg[2], *db[2], *ddz[2], *xh[2], *is[2], *z[2], *a[2], *st[2], *drm[2], *drv[2], *gg[2], *gb[2],
        *gx[2];
    for (int i = 0; i < 2; i++) {
        const struct dlfs_backend *be = bes[i];
        dx_[i] = gup_(be, x, nx); dg[i] = gup_(be, gm, (size_t)c); db[i] = gup_(be, bt, (size_t)c);
        ddz[i] = gup_(be, dz, nx); xh[i] = gnew_(be, nx); is[i] = gnew_(be, ni); z[i] = gnew_(be, nx);
        a[i] = act == DLFS_ACT_NONE ? z[i] : gnew_(be, nx); st[i] = gup_(be, st0, 2 * (size_t)c);
        drm[i] = gup_(be, rm, (size_t)c); drv[i] = gup_(be, rv, (size_t)c);
        gg[i] = gnew_(be, (size_t)c); gb[i] = gnew_(be, (size_t)c); gx[i] = gnew_(be, nx);
        be->batchnorm_fwd(n, c, plane, group, dx_[i], dg[i], db[i], NULL, NULL, 1e-5f, xh[i], is[i], z[i], a[i], act,
                          st[i]);
        be->batchnorm_bwd(n, c, plane, group, ddz[i], xh[i], is[i], dg[i], gg[i], gb[i], gx[i]);
    }
    char what[96];
    const char *an = dlfs_act_name(act);
    /* statistics in double on both sides, in another order: agree to float rounding */
    const struct tol t = {1e-10, 1e-5, 1e-5}, ts = {1e-10, 1e-5 * sqrt((double)n * plane), 1e-4};
    BN_CMP_("xhat", xh[0], xh[1], nx, t);
    BN_CMP_("invstd", is[0], is[1], ni, t);
    BN_CMP_("z", z[0], z[1], nx, t);
    if (act != DLFS_ACT_NONE) BN_CMP_("act", a[0], a[1], nx, t);
    BN_CMP_("stats (+= group mean, unbiased var)", st[0], st[1], 2 * (size_t)c, t);
    BN_CMP_("dgamma", gg[0], gg[1], (size_t)c, ts);
    BN_CMP_("dbeta", gb[0], gb[1], (size_t)c, ts);
    const struct tol tdx = {1e-10, 1e-5, 1e-4};
    BN_CMP_("dx", gx[0], gx[1], nx, tdx);
    for (int i = 0; i < 2; i++) { /* dx NULL: parameter gradients only */
        bes[i]->to_device(gg[i], st0, (size_t)c * sizeof(float)); /* garbage: must be overwritten */
        bes[i]->batchnorm_bwd(n, c, plane, group, ddz[i], xh[i], is[i], dg[i], gg[i], gb[i], NULL);
    }
    BN_CMP_("dgamma (dx NULL)", gg[0], gg[1], (size_t)c, ts);
    for (int i = 0; i < 2; i++) /* evaluation: the running statistics */
        bes[i]->batchnorm_fwd(n, c, plane, group, dx_[i], dg[i], db[i], drm[i], drv[i], 1e-5f, NULL, NULL, z[i], a[i],
                              act, NULL);
    BN_CMP_("eval z", z[0], z[1], nx, t);
    if (act != DLFS_ACT_NONE) BN_CMP_("eval act", a[0], a[1], nx, t);
    for (int i = 0; i < 2; i++) {
        const struct dlfs_backend *be = bes[i];
        gfree_(be, dx_[i], nx, "bn x"); gfree_(be, dg[i], (size_t)c, "bn gamma"); gfree_(be, db[i], (size_t)c, "bn beta");
        gfree_(be, ddz[i], nx, "bn dz"); gfree_(be, xh[i], nx, "bn xhat"); gfree_(be, is[i], ni, "bn invstd");
        gfree_(be, z[i], nx, "bn z");
        if (act != DLFS_ACT_NONE) gfree_(be, a[i], nx, "bn act");
        gfree_(be, st[i], 2 * (size_t)c, "bn stats"); gfree_(be, drm[i], (size_t)c, "bn run_mean");
        gfree_(be, drv[i], (size_t)c, "bn run_var"); gfree_(be, gg[i], (size_t)c, "bn dgamma");
        gfree_(be, gb[i], (size_t)c, "bn dbeta"); gfree_(be, gx[i], nx, "bn dx");
    }
    free(x); free(gm); free(bt); free(dz); free(st0); free(rm); free(rv);
}
#undef BN_CMP_
