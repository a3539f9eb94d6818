/* --clip-grad N: global gradient-norm clipping that keeps deterministic mode's
 * bits on any rank count. The sum of squares is exact: each square (exact in
 * double) becomes an integer count of 2^-40 (truncated; squares of 2^40 and more
 * saturate there, far beyond any clipping threshold), and integers add in any
 * order to the same total. With ZeRO-1 each rank adds its own segments (the
 * shared ones on rank 0 only) and the ranks sum the total as four 32-bit limbs
 * held in doubles, exact in any order for up to 2^21 ranks. */
#include <math.h>
#include "train/train-impl.h"

__extension__ typedef unsigned __int128 clip_u128_;
#define CLIP_FRAC_BITS 40

static clip_u128_ sumsq_(const float *g, size_t n)
{
    clip_u128_ acc = 0;
    const double cap = ldexp(1.0, 2 * CLIP_FRAC_BITS); /* 2^40 squares, in units of 2^-40 */
    for (size_t i = 0; i < n; i++) {
        const double q = ldexp((double)g[i] * g[i], CLIP_FRAC_BITS);
        acc += (clip_u128_)(q < cap ? q : cap); /* a NaN stays 0: the step's NaN guard reports it */
    }
    return acc;
}

void dlfs_run_clip(struct dlfs_run *r, float *grads)
{
    const struct dlfs_shard *sh = dlfs_optim_shard(&r->opt);
    const bool zero = dlfs_gsync_zero(&r->gs);
    clip_u128_ acc = 0;
    for (int i = 0; i < sh->count; i++) {
        const struct dlfs_seg *s = &sh->seg[i];
        if (zero && s->shared && r->comm->rank != 0) continue;
        r->be->to_host(r->host, grads + s->off, s->len * sizeof(float));
        acc += sumsq_(r->host, s->len);
    }
    if (zero) {
        double limb[4];
        for (int k = 0; k < 4; k++) limb[k] = (double)(uint32_t)(acc >> (32 * k));
        dlfs_comm_allreduce_f64(r->comm, limb, 4);
        acc = 0;
        for (int k = 0; k < 4; k++) acc += (clip_u128_)limb[k] << (32 * k);
    }
    const double norm = sqrt(ldexp((double)acc, -CLIP_FRAC_BITS));
    r->grad_norm = norm;
    if (!(norm > r->o->clip_grad)) return;
    const float f = (float)(r->o->clip_grad / norm);
    for (int i = 0; i < sh->count; i++) r->be->scale(sh->seg[i].len, f, grads + sh->seg[i].off);
}
