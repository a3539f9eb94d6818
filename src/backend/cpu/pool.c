/* Max pooling on the CPU: plain loops over NCHW planes.
 *
 * The common case, windows that tile the plane (kernel == stride, no remainder:
 * cnn's 2x2 stride 2), has its own loops: branch-free selects instead of a compare
 * and branch per input (a maximum lands anywhere: the branches mispredict), and a
 * backward that writes each input pixel once instead of a memset and a scatter.
 * Both give the general loops' bits: the same comparisons in the same order, and
 * 0.0f + dy where the scatter added dy to a zeroed pixel. Global average pooling
 * (gap) is at the end. */
#include <stdbool.h>
#include <string.h>
#include "backend/cpu/cpu-impl.h"

static bool tiles_(const struct dlfs_conv_geom *g)
{
    return g->pad == 0 && g->kh == g->stride && g->kw == g->stride && g->oh * g->stride == g->h &&
           g->ow * g->stride == g->w;
}

/* one plane, 2x2 windows at stride 2 that tile it (w, ow in locals: a store
 * through ap could alias g, and reloading it per element blocks the vectoriser) */
static void pool2_fwd_(int oh, int ow, int w, const float *restrict xp, float *restrict yp,
                       int32_t *restrict ap)
{
    for (int oy = 0; oy < oh; oy++) {
        const float *r0 = xp + (size_t)(2 * oy) * w, *r1 = r0 + w;
        float *yr = yp + (size_t)oy * ow;
        int32_t *ar = ap + (size_t)oy * ow;
        const int base = 2 * oy * w;
        for (int ox = 0; ox < ow; ox++) {
            const int at = base + 2 * ox;
            const float v0 = r0[2 * ox], v1 = r0[2 * ox + 1], v2 = r1[2 * ox], v3 = r1[2 * ox + 1];
            /* first maximum wins: only a strictly greater value moves it */
            const int b1 = v1 > v0 ? at + 1 : at;
            const float m1 = v1 > v0 ? v1 : v0;
            const int b2 = v2 > m1 ? at + w : b1;
            const float m2 = v2 > m1 ? v2 : m1;
            ar[ox] = v3 > m2 ? at + w + 1 : b2;
            yr[ox] = v3 > m2 ? v3 : m2;
        }
    }
}

/* Both ops split by planes (image, channel) across the rank's threads when large
 * (cpu_parallel_for; resnet50's stem pool is 64 planes of 112 x 112 an image):
 * planes are independent, so the same bits whatever the split. */
#define GRAIN_ ((size_t)1 << 16)

struct pool_job_ {
    const struct dlfs_conv_geom *g;
    const float *x, *dy;
    float *y, *dx;
    int32_t *arg;
    const int32_t *carg;
};

static size_t grain_(const struct dlfs_conv_geom *g)
{
    const size_t per = (size_t)g->h * g->w; /* values of one input plane */
    return (GRAIN_ + per - 1) / per;
}

static void fwd_part_(void *p, size_t lo, size_t hi)
{
    const struct pool_job_ *j = p;
    const struct dlfs_conv_geom *g = j->g;
    const size_t in_plane = (size_t)g->h * g->w, out_plane = (size_t)g->oh * g->ow;
    const bool two = tiles_(g) && g->stride == 2;
    for (size_t q = lo; q < hi; q++) {
        const float *xp = j->x + q * in_plane;
        float *yp = j->y + q * out_plane;
        int32_t *ap = j->arg + q * out_plane;
        if (two) {
            pool2_fwd_(g->oh, g->ow, g->w, xp, yp, ap);
            continue;
        }
        for (int oy = 0; oy < g->oh; oy++)
            for (int ox = 0; ox < g->ow; ox++) {
                /* the window clipped to the plane: padding is -inf, never chosen */
                const int y0 = oy * g->stride - g->pad, x0 = ox * g->stride - g->pad;
                const int ya = y0 > 0 ? y0 : 0, xa = x0 > 0 ? x0 : 0;
                const int yb = y0 + g->kh < g->h ? y0 + g->kh : g->h, xb = x0 + g->kw < g->w ? x0 + g->kw : g->w;
                int best = ya * g->w + xa;
                float m = xp[best];
                for (int iy = ya; iy < yb; iy++)
                    for (int ix = xa; ix < xb; ix++) {
                        const int at = iy * g->w + ix;
                        if (xp[at] > m) { m = xp[at]; best = at; } /* first maximum wins */
                    }
                yp[oy * g->ow + ox] = m;
                ap[oy * g->ow + ox] = best;
            }
    }
}

void cpu_maxpool_fwd(const struct dlfs_conv_geom *g, int n, const float *x, float *y, int32_t *arg)
{
    struct pool_job_ j = {.g = g, .x = x, .y = y, .arg = arg};
    cpu_parallel_for((size_t)n * g->c, grain_(g), fwd_part_, &j);
}

/* one plane's dx for windows of s x s at stride s that tile it: each input pixel is
 * written once (locals and restrict for the vectoriser, as in pool2_fwd_) */
static void tiled_bwd_(int h, int w, int ow, int s, const float *restrict dq, const int32_t *restrict aq,
                       float *restrict dp)
{
    for (int iy = 0; iy < h; iy++) {
        const float *dr_y = dq + (size_t)(iy / s) * ow;
        const int32_t *ar = aq + (size_t)(iy / s) * ow;
        float *dr = dp + (size_t)iy * w;
        const int32_t at0 = iy * w;
        if (s == 2) {
            for (int ox = 0; ox < ow; ox++) {
                const float d = 0.0f + dr_y[ox]; /* as the scatter into zeros: -0 becomes +0 */
                dr[2 * ox] = ar[ox] == at0 + 2 * ox ? d : 0.0f;
                dr[2 * ox + 1] = ar[ox] == at0 + 2 * ox + 1 ? d : 0.0f;
            }
        } else {
            for (int ox = 0; ox < ow; ox++) {
                const float d = 0.0f + dr_y[ox];
                for (int j = 0; j < s; j++) dr[ox * s + j] = ar[ox] == at0 + ox * s + j ? d : 0.0f;
            }
        }
    }
}

static void bwd_part_(void *p, size_t lo, size_t hi)
{
    const struct pool_job_ *j = p;
    const struct dlfs_conv_geom *g = j->g;
    const size_t in_plane = (size_t)g->h * g->w, out_plane = (size_t)g->oh * g->ow;
    if (tiles_(g)) {
        for (size_t q = lo; q < hi; q++)
            tiled_bwd_(g->h, g->w, g->ow, g->stride, j->dy + q * out_plane, j->carg + q * out_plane,
                       j->dx + q * in_plane);
        return;
    }
    memset(j->dx + lo * in_plane, 0, (hi - lo) * in_plane * sizeof *j->dx);
    for (size_t q = lo; q < hi; q++) {
        float *dp = j->dx + q * in_plane;
        for (size_t o = 0; o < out_plane; o++) dp[j->carg[q * out_plane + o]] += j->dy[q * out_plane + o];
    }
}

void cpu_maxpool_bwd(const struct dlfs_conv_geom *g, int n, const float *dy, const int32_t *arg, float *dx)
{
    struct pool_job_ j = {.g = g, .dy = dy, .dx = dx, .carg = arg};
    cpu_parallel_for((size_t)n * g->c, grain_(g), bwd_part_, &j);
}

/* Global average pooling: each (sample, channel) plane summed in order and divided
 * by its size (the CUDA kernel sums in the same order: the same bits). */
void cpu_gap_fwd(int n, int c, int plane, const float *x, float *y)
{
    for (size_t q = 0; q < (size_t)n * c; q++) {
        const float *xp = x + q * (size_t)plane;
        float s = 0.0f;
        for (int i = 0; i < plane; i++) s += xp[i];
        y[q] = s / (float)plane;
    }
}

void cpu_gap_bwd(int n, int c, int plane, const float *dy, float *dx)
{
    for (size_t q = 0; q < (size_t)n * c; q++) {
        const float d = dy[q] / (float)plane;
        for (int i = 0; i < plane; i++) dx[q * (size_t)plane + i] = d;
    }
}
