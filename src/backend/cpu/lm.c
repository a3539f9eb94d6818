/* The language model's elementwise ops on the CPU: embedding (gather and its
 * deterministic scatter-add) and layer norm. Row statistics in double; every
 * sum over rows runs in increasing row order, so the bits depend on the shapes
 * only. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "backend/cpu/cpu-impl.h"
#include "dlfs/util.h"

/* the id of row r: sequence r / T, position r mod T, ld apart */
static size_t id_(const float *ids, int ld, int r, int T)
{
    return (size_t)(ids[(size_t)(r / T) * (size_t)ld + (size_t)(r % T)] + 0.5f);
}

void cpu_take_ids(const float *x, int rows, int ld, int off, int n, int32_t *out)
{
    for (int s = 0; s < rows; s++)
        for (int j = 0; j < n; j++) out[(size_t)s * (size_t)n + (size_t)j] = (int32_t)(x[(size_t)s * (size_t)ld + (size_t)(off + j)] + 0.5f);
}

void cpu_embed_fwd(const float *tok, const float *pos, const float *ids, int ld, int rows, int T, int dim, float *y)
{
    for (int r = 0; r < rows; r++) {
        const float *e = tok + id_(ids, ld, r, T) * (size_t)dim, *p = pos ? pos + (size_t)(r % T) * (size_t)dim : NULL;
        float *o = y + (size_t)r * (size_t)dim;
        if (p)
            for (int j = 0; j < dim; j++) o[j] = e[j] + p[j];
        else
            memcpy(o, e, (size_t)dim * sizeof *o);
    }
}

void cpu_embed_bwd(const float *dy, const float *ids, int ld, int rows, int T, int dim, int vocab, float *dtok,
                   float *dpos)
{
    for (int r = 0; r < rows; r++) {
        const size_t id = id_(ids, ld, r, T);
        DLFS_ASSERT(id < (size_t)vocab);
        const float *g = dy + (size_t)r * (size_t)dim;
        float *e = dtok + id * (size_t)dim, *p = dpos ? dpos + (size_t)(r % T) * (size_t)dim : NULL;
        for (int j = 0; j < dim; j++) e[j] += g[j];
        if (p)
            for (int j = 0; j < dim; j++) p[j] += g[j];
    }
}

/* Layer norm's rows (and, backward, its parameters' columns) are split across the
 * rank's threads (split.c): each row's statistics and output, and each column's sum
 * over the rows in increasing order, are computed as on one thread. */
struct ln_job_ {
    int rows, dim;
    float eps;
    const float *x, *gamma, *beta, *dy, *mean, *rstd;
    float *y, *mean_out, *rstd_out, *dx;
    double *acc;
};

static void ln_fwd_rows_(void *arg, size_t first, size_t end)
{
    const struct ln_job_ *c = arg;
    const int dim = c->dim;
    for (size_t r = first; r < end; r++) {
        const float *xr = c->x + r * (size_t)dim;
        double s = 0, q = 0;
        for (int j = 0; j < dim; j++) s += xr[j];
        const double m = s / dim;
        for (int j = 0; j < dim; j++) q += (xr[j] - m) * (xr[j] - m);
        const float mf = (float)m, rs = (float)(1.0 / sqrt(q / dim + (double)c->eps));
        float *yr = c->y + r * (size_t)dim;
        for (int j = 0; j < dim; j++) yr[j] = (xr[j] - mf) * rs * c->gamma[j] + c->beta[j];
        c->mean_out[r] = mf, c->rstd_out[r] = rs;
    }
}

void cpu_layernorm_fwd(int rows, int dim, const float *x, const float *gamma, const float *beta, float eps, float *y,
                       float *mean, float *rstd)
{
    struct ln_job_ c = {.rows = rows, .dim = dim, .eps = eps, .x = x, .gamma = gamma, .beta = beta, .y = y,
                        .mean_out = mean, .rstd_out = rstd};
    cpu_split_run((size_t)rows, (size_t)rows * (size_t)dim, ln_fwd_rows_, &c);
}

/* dx = rstd * (g - mean(g) - xhat * mean(g * xhat)), g = dy * gamma, for rows [first, end) */
static void ln_dx_rows_(void *arg, size_t first, size_t end)
{
    const struct ln_job_ *c = arg;
    const int dim = c->dim;
    for (size_t r = first; r < end; r++) {
        const float *xr = c->x + r * (size_t)dim, *gr = c->dy + r * (size_t)dim;
        const float m = c->mean[r], rs = c->rstd[r];
        double sg = 0, sgx = 0;
        for (int j = 0; j < dim; j++) {
            const float xh = (xr[j] - m) * rs, g = gr[j] * c->gamma[j];
            sg += g, sgx += (double)g * xh;
        }
        const float mg = (float)(sg / dim), mgx = (float)(sgx / dim);
        float *o = c->dx + r * (size_t)dim;
        for (int j = 0; j < dim; j++) o[j] = rs * (gr[j] * c->gamma[j] - mg - (xr[j] - m) * rs * mgx);
    }
}

/* dgamma = sum dy * xhat, dbeta = sum dy over every row, for columns [first, end) */
static void ln_dparam_cols_(void *arg, size_t first, size_t end)
{
    const struct ln_job_ *c = arg;
    const size_t dim = (size_t)c->dim;
    for (int r = 0; r < c->rows; r++) {
        const float *xr = c->x + (size_t)r * dim, *gr = c->dy + (size_t)r * dim;
        const float m = c->mean[r], rs = c->rstd[r];
        for (size_t j = first; j < end; j++) {
            const float xh = (xr[j] - m) * rs;
            c->acc[j] += (double)gr[j] * xh, c->acc[dim + j] += gr[j];
        }
    }
}

void cpu_layernorm_bwd(int rows, int dim, const float *dy, const float *x, const float *mean, const float *rstd,
                       const float *gamma, float *dx, float *dgamma, float *dbeta)
{
    struct ln_job_ c = {.rows = rows, .dim = dim, .x = x, .gamma = gamma, .dy = dy, .mean = mean, .rstd = rstd,
                        .dx = dx, .acc = dlfs_calloc(2 * (size_t)dim, sizeof(double))};
    const size_t work = (size_t)rows * (size_t)dim;
    if (dx) cpu_split_run((size_t)rows, work, ln_dx_rows_, &c);
    cpu_split_run((size_t)dim, work, ln_dparam_cols_, &c);
    for (int j = 0; j < dim; j++) dgamma[j] = (float)c.acc[j], dbeta[j] = (float)c.acc[dim + j];
    free(c.acc);
}
