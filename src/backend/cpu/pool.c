/* Max pooling on the CPU: plain loops over NCHW planes. */
#include <string.h>
#include "backend/cpu/cpu-impl.h"

void cpu_maxpool_fwd(const struct dlfs_conv_geom *g, int n, const float *x, float *y, int32_t *arg)
{
    const size_t in_plane = (size_t)g->h * g->w, out_plane = (size_t)g->oh * g->ow;
    for (size_t q = 0; q < (size_t)n * g->c; q++) {
        const float *xp = x + q * in_plane;
        float *yp = y + q * out_plane;
        int32_t *ap = arg + q * out_plane;
        for (int oy = 0; oy < g->oh; oy++)
            for (int ox = 0; ox < g->ow; ox++) {
                const int y0 = oy * g->stride, x0 = ox * g->stride;
                int best = y0 * g->w + x0;
                float m = xp[best];
                for (int i = 0; i < g->kh; i++)
                    for (int j = 0; j < g->kw; j++) {
                        const int at = (y0 + i) * g->w + x0 + j;
                        if (xp[at] > m) { m = xp[at]; best = at; } /* first maximum wins */
                    }
                yp[oy * g->ow + ox] = m;
                ap[oy * g->ow + ox] = best;
            }
    }
}

void cpu_maxpool_bwd(const struct dlfs_conv_geom *g, int n, const float *dy, const int32_t *arg, float *dx)
{
    const size_t in_plane = (size_t)g->h * g->w, out_plane = (size_t)g->oh * g->ow;
    memset(dx, 0, (size_t)n * g->c * in_plane * sizeof *dx);
    for (size_t q = 0; q < (size_t)n * g->c; q++) {
        float *dp = dx + q * in_plane;
        for (size_t o = 0; o < out_plane; o++) dp[arg[q * out_plane + o]] += dy[q * out_plane + o];
    }
}
