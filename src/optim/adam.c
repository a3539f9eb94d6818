/* Adam and AdamW (decoupled weight decay): torch.optim.Adam / AdamW's update (the
 * arithmetic is the backend's adam_update op). Two rows of DLFS_OPTIMIZERS. */
#include <math.h>
#include "optim/optim-impl.h"

static int moments_(const struct dlfs_optim_config *c)
{
    (void)c;
    return 2;
}

/* The bias corrections 1 - beta^(step + 1), computed in double on the host. */
static void bias_(const struct dlfs_optim_config *c, long step, struct dlfs_optim_hp *hp)
{
    const double t = (double)(step + 1);
    hp->bias_c1 = (float)(1.0 - pow(c->beta1, t));
    hp->bias_c2 = (float)(1.0 - pow(c->beta2, t));
}

static void adam_hp_(const struct dlfs_optim_config *c, long step, struct dlfs_optim_hp *hp)
{
    bias_(c, step, hp);
    hp->decoupled = false;
}

static void adamw_hp_(const struct dlfs_optim_config *c, long step, struct dlfs_optim_hp *hp)
{
    bias_(c, step, hp);
    hp->decoupled = true;
}

static void update_(const struct dlfs_backend *be, size_t n, float *p, const float *g, float *m, float *v,
                    const struct dlfs_optim_hp *hp)
{
    be->adam_update(n, p, g, m, v, hp);
}

static void update_dev_(const struct dlfs_backend *be, size_t n, float *p, const float *g, float *m, float *v,
                        const struct dlfs_optim_hp *hp, const struct dlfs_optim_dyn *dyn)
{
    be->adam_update_dev(n, p, g, m, v, hp, dyn);
}

static bool has_dev_(const struct dlfs_backend *be) { return be->adam_update_dev != NULL; }

const struct dlfs_optim_desc dlfs_optim_adam = {
    .moments_min = 2, .moments_max = 2, .lr = 1e-3, .weight_decay = 0.0, .nesterov = false,
    .moments = moments_, .hp = adam_hp_, .update = update_, .update_dev = update_dev_, .has_dev = has_dev_,
};

const struct dlfs_optim_desc dlfs_optim_adamw = {
    .moments_min = 2, .moments_max = 2, .lr = 1e-3, .weight_decay = 0.01, .nesterov = false,
    .moments = moments_, .hp = adamw_hp_, .update = update_, .update_dev = update_dev_, .has_dev = has_dev_,
};
