/* Backend-independent helpers of the op table. */
#include "backend/test-support.h"
#include "dlfs/backend.h"

/* Unfold at most this many floats at once: 16 MB keeps the scratch modest while
 * the GEMMs stay large (cnn's conv2: 26 images of 800 x 196). */
#define DEFAULT_BUDGET_ ((size_t)1 << 22)
static size_t col_budget_ = 0; /* 0: not set, each caller's default */

void dlfs_conv_set_col_budget(size_t floats) { col_budget_ = floats; }

static int chunk_(const struct dlfs_conv_geom *g, int n, size_t budget)
{
    const size_t per = (size_t)g->c * g->kh * g->kw * g->oh * g->ow;
    size_t s = budget / (per ? per : 1);
    if (s < 1) s = 1;
    return s < (size_t)n ? (int)s : n;
}

int dlfs_conv_chunk(const struct dlfs_conv_geom *g, int n)
{
    return chunk_(g, n, col_budget_ ? col_budget_ : DEFAULT_BUDGET_);
}

int dlfs_conv_chunk_within(const struct dlfs_conv_geom *g, int n, size_t floats)
{
    const size_t b = col_budget_ ? col_budget_ : floats < DEFAULT_BUDGET_ ? floats : DEFAULT_BUDGET_;
    return chunk_(g, n, b);
}

size_t dlfs_conv_col_floats(const struct dlfs_conv_geom *g, int n)
{
    /* the unfolded images (k, S*plane) and the GEMM's channel-major output (oc, S*plane) */
    const size_t s = (size_t)dlfs_conv_chunk(g, n > 0 ? n : 1), plane = (size_t)g->oh * g->ow;
    return s * plane * ((size_t)g->c * g->kh * g->kw + (size_t)g->oc);
}
