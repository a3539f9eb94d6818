/* ---- the model's forward/loss/backward through each backend, as the trainer runs it ---- */
/* After one step of `m` on both backends (index 0: under test, 1: CPU): compare
 * the logits, the whole gradient slab and the loss statistics, then free both
 * sides (the sentinels around params and gradients must be intact) and the model. */
static void model_pair_done_(const char *what, struct dlfs_model *m, const struct dlfs_backend *const bes[2],
                             struct dlfs_workspace ws[2], float *par[2], float *grad[2], double st[2][2], int rows)
{
    const size_t np = m->num_params;
    const int last = m->num_layers - 1;
    char label[96];
    snprintf(label, sizeof label, "%s logits", what);
    cmp_dev_(label, ws[0].a[last], ws[1].a[last], (size_t)rows * 10, (struct tol){1e-10, 1e-5, 1e-4});
    snprintf(label, sizeof label, "%s gradients (whole slab)", what);
    cmp_dev_(label, grad[0], grad[1], np, (struct tol){1e-9, 1e-5, 1e-3});
    CHECK(fabs(st[0][0] - st[1][0]) <= 1e-5 * fabs(st[1][0]) && st[0][1] == st[1][1],
          "%s loss %.9g correct %g, cpu %.9g %g", what, st[0][0], st[0][1], st[1][0], st[1][1]);
    for (int b = 0; b < 2; b++) {
        snprintf(label, sizeof label, "%s params", what);
        gfree_(bes[b], par[b], np, label);
        snprintf(label, sizeof label, "%s grads", what);
        gfree_(bes[b], grad[b], np, label);
        dlfs_workspace_free(&ws[b], m);
    }
    dlfs_model_free(m);
}

static void model_case_(const struct ops_args *unused)
{
    (void)unused;
    const char *spec = "in(784),dense(64),gelu,dense(32),relu,dense(16),tanh,dense(10)";
    const int rows = 50;
    struct dlfs_model m;
    CHECK(dlfs_model_parse(spec, &m) == DLFS_OK, "parse: %s", dlfs_error_msg());
    const size_t np = m.num_params, nx = (size_t)rows * m.input_dim;
    float *p = malloc(np * sizeof *p);
    dlfs_model_init_params(&m, 3, p);
    uint8_t *img = malloc(nx);
    int32_t *lab = malloc((size_t)rows * sizeof *lab);
    for (size_t i = 0; i < nx; i++) img[i] = (uint8_t)(t_rand_(&seed_) * 127.5 + 127.5);
    for (int r = 0; r < rows; r++) lab[r] = r % 10;
    const double mean[1] = {0.286}, std[1] = {0.353};
    const struct dlfs_backend *bes[2] = {dev_, ref_};
    struct dlfs_workspace ws[2];
    float *par[2], *grad[2];
    double st[2][2];
    for (int b = 0; b < 2; b++) {
        const struct dlfs_backend *be = bes[b];
        CHECK(dlfs_workspace_init(&ws[b], &m, be, rows) == DLFS_OK, "workspace: %s", dlfs_error_msg());
        par[b] = gup_(be, p, np);
        grad[b] = gnew_(be, np);
        uint8_t *di = be->alloc(nx);
        be->to_device(di, img, nx);
        be->to_device(ws[b].labels, lab, (size_t)rows * sizeof *lab);
        be->fill((float *)ws[b].stats, 0.0f, 4);
        be->normalize_u8(ws[b].x, di, (size_t)rows, 1, 784, mean, std);
        dlfs_model_forward(&m, &ws[b], par[b], rows);
        dlfs_model_loss(&m, &ws[b], rows, 1.0f / rows);
        dlfs_model_backward(&m, &ws[b], par[b], grad[b], rows, NULL, NULL);
        be->to_host(st[b], ws[b].stats, sizeof st[b]);
        be->free(di);
    }
    model_pair_done_("model", &m, bes, ws, par, grad, st, rows);
    free(p); free(img); free(lab);
}

/* the CNN model through both backends: conv, batchnorm (groups), pool, dropout */
static void model_cnn_case_(const struct ops_args *unused)
{
    (void)unused;
    const char *spec = "in(2x12x12),conv(4,k3,p1),batchnorm,relu,maxpool(2),conv(6,k3,s2),relu,flatten,"
                       "dense(16),relu,dropout(0.3),dense(10)";
    const int rows = 12;
    struct dlfs_model m;
    CHECK(dlfs_model_parse(spec, &m) == DLFS_OK, "parse: %s", dlfs_error_msg());
    CHECK(dlfs_model_check_backend(&m, dev_) == DLFS_OK, "%s refuses the cnn: %s", dev_->name, dlfs_error_msg());
    const size_t np = m.num_params, nx = (size_t)rows * m.input_dim;
    float *p = malloc(np * sizeof *p), *x = rnd_(nx, 1);
    dlfs_model_init_params(&m, 5, p);
    int32_t *lab = malloc((size_t)rows * sizeof *lab);
    uint32_t *ids = malloc((size_t)rows * sizeof *ids);
    for (int r = 0; r < rows; r++) { lab[r] = (r * 3) % 10; ids[r] = (uint32_t)(1000 + 7 * r); }
    const struct dlfs_backend *bes[2] = {dev_, ref_};
    struct dlfs_workspace ws[2];
    float *par[2], *grad[2];
    double st[2][2];
    for (int b = 0; b < 2; b++) {
        const struct dlfs_backend *be = bes[b];
        CHECK(dlfs_workspace_init(&ws[b], &m, be, rows) == DLFS_OK, "workspace: %s", dlfs_error_msg());
        par[b] = gup_(be, p, np);
        grad[b] = gnew_(be, np);
        ws[b].training = 1;
        ws[b].key = 0xfeedULL;
        ws[b].bn_group = 5; /* groups 5, 5, 2 */
        be->to_device(ws[b].x, x, nx * sizeof *x);
        be->to_device(ws[b].ids, ids, (size_t)rows * sizeof *ids);
        be->to_device(ws[b].labels, lab, (size_t)rows * sizeof *lab);
        be->fill((float *)ws[b].stats, 0.0f, 4);
        dlfs_model_forward(&m, &ws[b], par[b], rows);
        dlfs_model_loss(&m, &ws[b], rows, 1.0f / rows);
        dlfs_model_backward(&m, &ws[b], par[b], grad[b], rows, NULL, NULL);
        be->to_host(st[b], ws[b].stats, sizeof st[b]);
    }
    model_pair_done_("cnn model", &m, bes, ws, par, grad, st, rows);
    free(p); free(x); free(lab); free(ids);
}
