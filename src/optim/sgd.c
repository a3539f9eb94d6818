/* SGD with optional (Nesterov) momentum: torch.optim.SGD's update (the arithmetic
 * is the backend's sgd_update op). One row of DLFS_OPTIMIZERS. */
#include "optim/optim-impl.h"

static int moments_(const struct dlfs_optim_config *c) { return c->momentum > 0; }

static void hp_(const struct dlfs_optim_config *c, long step, struct dlfs_optim_hp *hp)
{
    (void)c, (void)step; /* no per-step values of its own: no bias corrections */
    hp->decoupled = false;
}

static void update_(const struct dlfs_backend *be, size_t n, float *p, const float *g, float *m, float *v,
                    const struct dlfs_optim_hp *hp)
{
    (void)v;
    be->sgd_update(n, p, g, m, hp);
}

static void update_dev_(const struct dlfs_backend *be, size_t n, float *p, const float *g, float *m, float *v,
                        const struct dlfs_optim_hp *hp, const struct dlfs_optim_dyn *dyn)
{
    (void)v;
    be->sgd_update_dev(n, p, g, m, hp, dyn);
}

static bool has_dev_(const struct dlfs_backend *be) { return be->sgd_update_dev != NULL; }

const struct dlfs_optim_desc dlfs_optim_sgd = {
    .moments_min = 0, .moments_max = 1, .lr = 0.05, .weight_decay = 0.0, .nesterov = true,
    .moments = moments_, .hp = hp_, .update = update_, .update_dev = update_dev_, .has_dev = has_dev_,
};
