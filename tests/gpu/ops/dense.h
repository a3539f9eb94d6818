/* ---- memory and small ops ---- */
static void memory_case_(const struct ops_args *unused)
{
    (void)unused;
    CHECK(strcmp(dev_->name, self_ ? "cpu" : "cuda") == 0, "name %s", dev_->name);
    CHECK(self_ || dev_->set_threads == NULL, "cuda has no host threads to set");
    const size_t n = 100003;
    float *d = dev_->alloc(n * sizeof(float) + 3), *h = malloc(n * sizeof *h + 3);
    CHECK(d != NULL, "alloc");
    memset(h, 0x55, n * sizeof *h);
    dev_->sync();
    dev_->to_host(h, d, n * sizeof(float) + 3);
    int zero = 1;
    for (size_t i = 0; i < n; i++) zero = zero && h[i] == 0.0f;
    CHECK(zero, "alloc is not zero-filled");
    float *x = rnd_(n, 1), *d2 = gnew_(dev_, n);
    dev_->to_device(d, x, n * sizeof(float));
    dev_->copy(d2 + 1, d + 2, (n - 3) * sizeof(float) + 2); /* odd offsets and byte count */
    float *back = gdown_(dev_, d2, n);
    int same = back[0] == T_SENTINEL && memcmp(back + 1, x + 2, (n - 3) * sizeof(float) + 2) == 0;
    CHECK(same, "to_device/copy/to_host round trip");
    free(back);
    gfree_(dev_, d2, n, "copy");
    dev_->free(d);
    dev_->free(NULL);
    if (!self_) { /* out of memory is a NULL, not an abort, and leaves the backend usable */
        void *huge = dev_->alloc((size_t)1 << 50);
        CHECK(huge == NULL, "alloc of 1 PiB returned non-NULL");
        float *t = gup_(dev_, x, 8), *hb = gdown_(dev_, t, 8);
        CHECK(memcmp(hb, x, 8 * sizeof(float)) == 0, "backend unusable after a failed alloc");
        free(hb);
        gfree_(dev_, t, 8, "after failed alloc");
    }
    free(x);
    free(h);
    printf("  ok  memory (alloc zero-fill, transfers, copy, failed alloc)\n");
}

static void vec_case_(const struct ops_args *a)
{
    const size_t n = (size_t)a->n;
    float *x = rnd_(n, 1), *y = rnd_(n, 1);
    float *dx = gup_(dev_, x, n), *dy = gup_(dev_, y, n), *rx = gup_(ref_, x, n), *ry = gup_(ref_, y, n);
    char what[64];
    dev_->axpy(n, -0.75f, dx, dy); ref_->axpy(n, -0.75f, rx, ry);
    snprintf(what, sizeof what, "axpy n=%zu", n);
    cmp_dev_(what, dy, ry, n, T_ELEM);
    dev_->to_device(dy, y, n * sizeof *y); /* fresh inputs: axpy may differ by an ulp (FMA) */
    ref_->to_device(ry, y, n * sizeof *y);
    dev_->scale(n, 1.5f, dy); ref_->scale(n, 1.5f, ry);
    snprintf(what, sizeof what, "scale n=%zu", n);
    cmp_dev_(what, dy, ry, n, T_EXACT);
    dev_->fill(dx, -3.25f, n); ref_->fill(rx, -3.25f, n);
    snprintf(what, sizeof what, "fill n=%zu", n);
    cmp_dev_(what, dx, rx, n, T_EXACT);
    gfree_(dev_, dx, n, "fill"); gfree_(dev_, dy, n, "axpy/scale");
    gfree_(ref_, rx, n, "fill"); gfree_(ref_, ry, n, "axpy/scale");
    free(x); free(y);
}

static void normalize_case_(const struct ops_args *a) /* n images of c channels of h pixels */
{
    double mean[16], std[16];
    for (int c = 0; c < 16; c++) { mean[c] = 0.1 + 0.05 * c; std[c] = 0.2 + 0.01 * c; }
    const size_t n = (size_t)a->n, ch = (size_t)a->c, plane = (size_t)a->h, total = n * ch * plane;
    uint8_t *src = malloc(total);
    for (size_t i = 0; i < total; i++) src[i] = (uint8_t)((i * 2654435761u) >> 13);
    uint8_t *ds = dev_->alloc(total), *rs = ref_->alloc(total);
    dev_->to_device(ds, src, total); ref_->to_device(rs, src, total);
    float *dd = gnew_(dev_, total), *rd = gnew_(ref_, total);
    dev_->normalize_u8(dd, ds, n, (int)ch, plane, mean, std);
    ref_->normalize_u8(rd, rs, n, (int)ch, plane, mean, std);
    char what[64];
    snprintf(what, sizeof what, "normalize_u8 %zux%zux%zu (bit-exact)", n, ch, plane);
    cmp_dev_(what, dd, rd, total, T_EXACT);
    gfree_(dev_, dd, total, what); gfree_(ref_, rd, total, what);
    dev_->free(ds); ref_->free(rs);
    free(src);
}

/* ---- gemm ---- */
/* Both backends in precision `prec`. `shift` floats in front of A and B break the
 * 16-byte alignment (the bf16 conversion's vector path must not be taken then). */
static void gemm_case_(enum dlfs_precision prec, int m, int n, int k, int ta, int tb, int pad, int shift,
                       float alpha, float beta)
{
    const int lda = (ta ? m : k) + pad, ldb = (tb ? k : n) + pad, ldc = n + pad;
    const size_t na = (size_t)(ta ? k : m) * lda, nb = (size_t)(tb ? n : k) * ldb, nc = (size_t)m * ldc;
    float *a = rnd_(na, 1), *b = rnd_(nb, 1), *c = rnd_(nc, 1);
    if (beta == 0.0f) for (size_t i = 0; i < nc; i++) c[i] = NAN; /* beta 0 must not read C */
    float *da = gnew_(dev_, na + shift), *db = gnew_(dev_, nb + shift), *dc = gup_(dev_, c, nc);
    float *ra = gnew_(ref_, na + shift), *rb = gnew_(ref_, nb + shift), *rc = gup_(ref_, c, nc);
    dev_->to_device(da + shift, a, na * sizeof *a); dev_->to_device(db + shift, b, nb * sizeof *b);
    ref_->to_device(ra + shift, a, na * sizeof *a); ref_->to_device(rb + shift, b, nb * sizeof *b);
    dev_->set_precision(prec); ref_->set_precision(prec);
    dev_->gemm(ta, tb, m, n, k, alpha, da + shift, lda, db + shift, ldb, beta, dc, ldc);
    ref_->gemm(ta, tb, m, n, k, alpha, ra + shift, lda, rb + shift, ldb, beta, rc, ldc);
    dev_->set_precision(DLFS_PRECISION_FP32); ref_->set_precision(DLFS_PRECISION_FP32);
    char what[96];
    snprintf(what, sizeof what, "gemm %s %dx%dx%d ta=%d tb=%d ld+%d%s a=%g b=%g", dlfs_precision_name(prec), m,
             n, k, ta, tb, pad, shift ? " unaligned" : "", alpha, beta);
    /* fp32: sums of k products in another order, errors grow like sqrt(k).
     * bf16: the CPU emulation rounds the operands to the same bits (lowp.h) and the
     * products are exact, so only the tensor cores' fp32 accumulation differs.
     * tf32: cuBLAS rounds the operands itself (maybe not to nearest even like the
     * emulation): agreement to tf32's ~1e-3, not closer. */
    struct tol t = {1e-9, 2e-5 * sqrt((double)k), 1e-4};
    if (prec == DLFS_PRECISION_BF16) t = (struct tol){1e-9, 4e-5 * sqrt((double)k), 2e-4};
    if (prec == DLFS_PRECISION_TF32) t = (struct tol){2e-6, 3e-3 * sqrt((double)k), 1e-2};
    cmp_dev_(what, dc, rc, nc, t);
    gfree_(dev_, da, na + shift, what); gfree_(dev_, db, nb + shift, what); gfree_(dev_, dc, nc, what);
    gfree_(ref_, ra, na + shift, what); gfree_(ref_, rb, nb + shift, what); gfree_(ref_, rc, nc, what);
    free(a); free(b); free(c);
}

/* The device's bf16/tf32 GEMM differs from the CPU's fp32 one by what operand
 * rounding predicts (NMSE = 2^-2(p+1)/3, tests/unit/test_precision.c): fails if the
 * device silently computed in fp32 (~1e-14). */
static void gemm_rounds_(enum dlfs_precision prec, int mantissa_bits)
{
    const int m = 256, n = 256, k = 256;
    float *a = rnd_((size_t)m * k, 1), *b = rnd_((size_t)k * n, 1);
    float *da = gup_(dev_, a, (size_t)m * k), *db = gup_(dev_, b, (size_t)k * n), *dc = gnew_(dev_, (size_t)m * n);
    float *ra = gup_(ref_, a, (size_t)m * k), *rb = gup_(ref_, b, (size_t)k * n), *rc = gnew_(ref_, (size_t)m * n);
    dev_->set_precision(prec);
    dev_->gemm(false, true, m, n, k, 1.0f, da, k, db, k, 0.0f, dc, n);
    dev_->set_precision(DLFS_PRECISION_FP32);
    ref_->gemm(false, true, m, n, k, 1.0f, ra, k, rb, k, 0.0f, rc, n);
    float *g = gdown_(dev_, dc, (size_t)m * n), *w = gdown_(ref_, rc, (size_t)m * n);
    double num = 0, den = 0;
    for (size_t i = 0; i < (size_t)m * n; i++) { num += ((double)g[i] - w[i]) * ((double)g[i] - w[i]); den += (double)w[i] * w[i]; }
    const double nmse = num / den, pred = ldexp(1.0, -2 * (mantissa_bits + 1)) / 3.0;
    /* tf32 on cuBLAS may truncate (4x the NMSE of rounding to nearest) */
    const double hi = prec == DLFS_PRECISION_TF32 ? 8 * pred : 2 * pred;
    CHECK(nmse > pred / 2 && nmse < hi, "%s gemm 256^3 vs fp32: NMSE %.3g, operand rounding predicts %.3g",
          dlfs_precision_name(prec), nmse, pred);
    if (nmse > pred / 2 && nmse < hi)
        printf("  ok  %-52s NMSE %.2g (predicted %.2g)\n", prec == DLFS_PRECISION_BF16 ? "gemm bf16 vs fp32 "
               "differs as rounding predicts" : "gemm tf32 vs fp32 differs as rounding predicts", nmse, pred);
    free(g); free(w);
    gfree_(dev_, da, (size_t)m * k, "lowp"); gfree_(dev_, db, (size_t)k * n, "lowp"); gfree_(dev_, dc, (size_t)m * n, "lowp");
    gfree_(ref_, ra, (size_t)m * k, "lowp"); gfree_(ref_, rb, (size_t)k * n, "lowp"); gfree_(ref_, rc, (size_t)m * n, "lowp");
    free(a); free(b);
}

/* m x n x k in every precision and transpose: alpha 1, beta 0; with .pad also leading
 * dimensions + pad, alpha 0.5, beta 0.25 */
static void gemm_sweep_(const struct ops_args *a)
{
    for (int p = 0; p < DLFS_PRECISION_COUNT; p++)
        for (int ta = 0; ta < 2; ta++)
            for (int tb = 0; tb < 2; tb++) {
                gemm_case_((enum dlfs_precision)p, a->m, a->n, a->k, ta, tb, 0, 0, 1.0f, 0.0f);
                if (a->pad) gemm_case_((enum dlfs_precision)p, a->m, a->n, a->k, ta, tb, a->pad, 0, 0.5f, 0.25f);
            }
}

/* one shape, transposes, pad, shift, alpha, beta as given, in every precision */
static void gemm_one_(const struct ops_args *a)
{
    for (int p = 0; p < DLFS_PRECISION_COUNT; p++)
        gemm_case_((enum dlfs_precision)p, a->m, a->n, a->k, a->ta, a->tb, a->pad, a->shift, a->alpha, a->beta);
}

static void gemm_rounds_case_(const struct ops_args *a) { gemm_rounds_((enum dlfs_precision)a->prec, a->bits); }

/* ---- activations and column sums ---- */
static void act_case_(const struct ops_args *arg) /* rows n, cols w, every activation */
{
    const struct tol t = {1e-12, 1e-6, 1e-5}; /* tanhf/expf: <= 2 ulp between libm and CUDA */
    for (int act = 0; act < DLFS_ACT_COUNT; act++) {
        const int rows = arg->n, cols = arg->w;
        const size_t n = (size_t)rows * cols;
        const enum dlfs_act a = (enum dlfs_act)act;
        float *z = rnd_(n, 3), *bias = rnd_((size_t)cols, 1), *da = rnd_(n, 1);
        float *dz = gup_(dev_, z, n), *db = gup_(dev_, bias, (size_t)cols);
        float *rz = gup_(ref_, z, n), *rb = gup_(ref_, bias, (size_t)cols);
        float *dact = a == DLFS_ACT_NONE ? dz : gnew_(dev_, n), *ract = a == DLFS_ACT_NONE ? rz : gnew_(ref_, n);
        dev_->bias_act_fwd(dz, dact, db, rows, cols, a);
        ref_->bias_act_fwd(rz, ract, rb, rows, cols, a);
        char what[80];
        snprintf(what, sizeof what, "bias_act_fwd %s %dx%d: z", dlfs_act_name(a), rows, cols);
        cmp_dev_(what, dz, rz, n, T_ELEM);
        snprintf(what, sizeof what, "bias_act_fwd %s %dx%d: act", dlfs_act_name(a), rows, cols);
        cmp_dev_(what, dact, ract, n, t);
        /* backward from the CPU's z and act(z) on both, out of place then in place */
        float *hz = gdown_(ref_, rz, n), *ha = gdown_(ref_, ract, n);
        dev_->to_device(dz, hz, n * sizeof(float));
        dev_->to_device(dact, ha, n * sizeof(float));
        float *dda = gup_(dev_, da, n), *rda = gup_(ref_, da, n), *ddz = gnew_(dev_, n), *rdz = gnew_(ref_, n);
        dev_->act_bwd(ddz, dda, dz, dact, n, a);
        ref_->act_bwd(rdz, rda, rz, ract, n, a);
        snprintf(what, sizeof what, "act_bwd %s n=%zu", dlfs_act_name(a), n);
        cmp_dev_(what, ddz, rdz, n, t);
        dev_->act_bwd(dda, dda, dz, dact, n, a);
        ref_->act_bwd(rda, rda, rz, ract, n, a);
        snprintf(what, sizeof what, "act_bwd %s n=%zu in place", dlfs_act_name(a), n);
        cmp_dev_(what, dda, rda, n, t);
        gfree_(dev_, dda, n, what); gfree_(ref_, rda, n, what); gfree_(dev_, ddz, n, what); gfree_(ref_, rdz, n, what);
        if (a != DLFS_ACT_NONE) { gfree_(dev_, dact, n, "act"); gfree_(ref_, ract, n, "act"); }
        gfree_(dev_, dz, n, "z"); gfree_(ref_, rz, n, "z");
        gfree_(dev_, db, (size_t)cols, "bias"); gfree_(ref_, rb, (size_t)cols, "bias");
        free(hz); free(ha); free(z); free(bias); free(da);
    }
}

static void colsum_case_(const struct ops_args *a) /* rows n, cols w, beta 0, 1 and 0.5 */
{
    const float betas[] = {0.0f, 1.0f, 0.5f};
    for (int bi = 0; bi < 3; bi++) {
        const int rows = a->n, cols = a->w;
        const size_t n = (size_t)rows * cols;
        float *x = rnd_(n, 1), *o = rnd_((size_t)cols, 1);
        if (betas[bi] == 0.0f) for (int c = 0; c < cols; c++) o[c] = NAN; /* beta 0: out is not read */
        float *dx = gup_(dev_, x, n), *rx = gup_(ref_, x, n);
        float *dout = gup_(dev_, o, (size_t)cols), *rout = gup_(ref_, o, (size_t)cols);
        dev_->colsum(dout, dx, rows, cols, betas[bi]);
        ref_->colsum(rout, rx, rows, cols, betas[bi]);
        char what[64];
        snprintf(what, sizeof what, "colsum %dx%d beta=%g", rows, cols, betas[bi]);
        /* the CPU adds rows in sequence, the GPU in 32 strided partial sums: the
         * difference is a random walk of roundings, ~ eps * sqrt(rows) * |sum| */
        const struct tol t = {1e-9, 1e-5 * sqrt((double)rows + 1), 1e-5};
        cmp_dev_(what, dout, rout, (size_t)cols, t);
        gfree_(dev_, dx, n, what); gfree_(ref_, rx, n, what);
        gfree_(dev_, dout, (size_t)cols, what); gfree_(ref_, rout, (size_t)cols, what);
        free(x); free(o);
    }
}

/* ---- loss ---- */
static void xent_case_(const struct ops_args *a) /* rows n, classes c, grad scale alpha, dlogits if flag */
{
    const int rows = a->n, classes = a->c, with_grad = a->flag;
    const float grad_scale = a->alpha;
    const size_t n = (size_t)rows * classes;
    float *x = rnd_(n, 4);
    int32_t *y = malloc((size_t)rows * sizeof *y);
    for (int r = 0; r < rows; r++) y[r] = (int32_t)((unsigned)(r * 7919) % (unsigned)classes);
    x[0] = 80.0f;                                   /* large logits must not overflow */
    if (rows > 2 && classes > 8) {                  /* ties: the FIRST maximum is the prediction */
        for (int c = 0; c < classes; c++) x[(size_t)1 * classes + c] = 0.5f; /* all equal: argmax 0 */
        y[1] = 0;
        x[(size_t)2 * classes + 3] = x[(size_t)2 * classes + 7] = 9.0f;    /* two maxima, label the later */
        y[2] = 7;
    }
    float *dx = gup_(dev_, x, n), *rx = gup_(ref_, x, n);
    int32_t *dl = dev_->alloc((size_t)rows * sizeof *y), *rl = ref_->alloc((size_t)rows * sizeof *y);
    dev_->to_device(dl, y, (size_t)rows * sizeof *y); ref_->to_device(rl, y, (size_t)rows * sizeof *y);
    float *dd = with_grad ? gnew_(dev_, n) : NULL, *rd = with_grad ? gnew_(ref_, n) : NULL;
    double st0[2] = {1.5, 2.0}, sd[2], sr[2];
    double *dst = dev_->alloc(sizeof st0), *rst = ref_->alloc(sizeof st0);
    dev_->to_device(dst, st0, sizeof st0); ref_->to_device(rst, st0, sizeof st0);
    dev_->softmax_xent(dx, dl, rows, classes, grad_scale, dd, dst);
    ref_->softmax_xent(rx, rl, rows, classes, grad_scale, rd, rst);
    dev_->to_host(sd, dst, sizeof sd); ref_->to_host(sr, rst, sizeof sr);
    char what[80];
    snprintf(what, sizeof what, "softmax_xent %dx%d", rows, classes);
    const int ok = fabs(sd[0] - sr[0]) <= 1e-9 * fabs(sr[0] - 1.5) + 1e-12 && sd[1] == sr[1];
    CHECK(ok, "%s: loss sum %.15g correct %g, cpu %.15g %g (both started at 1.5, 2)", what, sd[0], sd[1], sr[0],
          sr[1]);
    if (ok) printf("  ok  %-52s loss %.9g, correct %g\n", what, sd[0] - 1.5, sd[1] - 2);
    if (with_grad) {
        snprintf(what, sizeof what, "softmax_xent %dx%d dlogits", rows, classes);
        /* p = (float)exp(double): an ulp flip of p near 1 shows up as ~6e-8 * scale */
        cmp_dev_(what, dd, rd, n, (struct tol){1e-12, 2e-7 * fabs(grad_scale), 1e-5});
        gfree_(dev_, dd, n, what); gfree_(ref_, rd, n, what);
    }
    gfree_(dev_, dx, n, "logits"); gfree_(ref_, rx, n, "logits");
    dev_->free(dl); ref_->free(rl); dev_->free(dst); ref_->free(rst);
    free(x); free(y);
}

/* ---- optimizers: several steps, aligned (float4 path) and shifted by one float ---- */
static void optim_case_(const char *name, size_t n, size_t shift, struct dlfs_optim_hp hp, int adam, int mom)
{
    float *p = rnd_(n, 1), *g = rnd_(n, 1);
    float *dp = gnew_(dev_, n + shift) + shift, *dg = gnew_(dev_, n + shift) + shift;
    float *rp = gup_(ref_, p, n), *rg = gup_(ref_, g, n);
    dev_->to_device(dp, p, n * sizeof *p); dev_->to_device(dg, g, n * sizeof *g);
    float *dm = mom ? gnew_(dev_, n + shift) : NULL, *dv = adam ? gnew_(dev_, n + shift) : NULL;
    float *rm = mom ? gnew_(ref_, n) : NULL, *rv = adam ? gnew_(ref_, n) : NULL;
    if (dm) { dev_->fill(dm, 0.0f, n + shift); ref_->fill(rm, 0.0f, n); }
    if (dv) { dev_->fill(dv, 0.0f, n + shift); ref_->fill(rv, 0.0f, n); }
    for (int t = 1; t <= 3; t++) {
        hp.bias_c1 = (float)(1.0 - pow(hp.beta1, t));
        hp.bias_c2 = (float)(1.0 - pow(hp.beta2, t));
        if (adam) {
            dev_->adam_update(n, dp, dg, dm ? dm + shift : NULL, dv ? dv + shift : NULL, &hp);
            ref_->adam_update(n, rp, rg, rm, rv, &hp);
        } else {
            dev_->sgd_update(n, dp, dg, dm ? dm + shift : NULL, &hp);
            ref_->sgd_update(n, rp, rg, rm, &hp);
        }
    }
    char what[80];
    const struct tol t = {1e-12, 1e-6, 1e-5};
    snprintf(what, sizeof what, "%s n=%zu shift=%zu: p", name, n, shift);
    cmp_dev_(what, dp, rp, n, t);
    if (mom) {
        snprintf(what, sizeof what, "%s n=%zu shift=%zu: m", name, n, shift);
        cmp_dev_(what, dm + shift, rm, n, t);
    }
    if (adam) {
        snprintf(what, sizeof what, "%s n=%zu shift=%zu: v", name, n, shift);
        cmp_dev_(what, dv + shift, rv, n, t);
    }
    gfree_(dev_, dp - shift, n + shift, what); gfree_(dev_, dg - shift, n + shift, what);
    gfree_(ref_, rp, n, what); gfree_(ref_, rg, n, what);
    if (mom) { gfree_(dev_, dm, n + shift, what); gfree_(ref_, rm, n, what); }
    if (adam) { gfree_(dev_, dv, n + shift, what); gfree_(ref_, rv, n, what); }
    free(p); free(g);
}

/* optimizer a->name (hp; adam if flag, with momentum if hp.momentum or adam): 3 and
 * 1000003 values, aligned and shifted by one float */
static void optim_sweep_(const struct ops_args *a)
{
    const size_t sizes[] = {3, 1000003};
    const int mom = a->flag || a->hp.momentum != 0.0f;
    for (int s = 0; s < 2; s++)
        for (size_t shift = 0; shift < 2; shift++) optim_case_(a->name, sizes[s], shift, a->hp, a->flag, mom);
}
