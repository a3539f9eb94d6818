/* Optimizer updates over a whole parameter slab. The formulas follow PyTorch's
 * torch.optim.SGD / Adam / AdamW so that hyper-parameters carry over. */
#include <math.h>
#include "backend/cpu/cpu-impl.h"

void cpu_sgd_update(size_t n, float *p, const float *g, float *m, const struct dlfs_optim_hp *hp)
{
    const float lr = hp->lr, wd = hp->weight_decay, mu = hp->momentum;
    for (size_t i = 0; i < n; i++) {
        float d = g[i] + wd * p[i];
        if (m) {
            m[i] = mu * m[i] + d;
            d = hp->nesterov ? d + mu * m[i] : m[i];
        }
        p[i] -= lr * d;
    }
}

/* Vectorised: the decoupled branch is taken outside the loop, and this file is
 * built with -fno-math-errno (src/CMakeLists.txt; sqrt of v >= 0 cannot fail) —
 * the same operations in the same order per element as the scalar loop, so the
 * same bits at any vector width. */
CPU_CLONES_ void cpu_adam_update(size_t n, float *restrict p, const float *restrict g, float *restrict m,
                                 float *restrict v, const struct dlfs_optim_hp *hp)
{
    const float lr = hp->lr, b1 = hp->beta1, b2 = hp->beta2, eps = hp->eps, wd = hp->weight_decay;
    const float step = lr / hp->bias_c1;
    const float rc2 = 1.0f / sqrtf(hp->bias_c2);
    const float lrwd = lr * wd;
    if (hp->decoupled) {
        for (size_t i = 0; i < n; i++) {
            const float gi = g[i];
            p[i] -= lrwd * p[i];
            m[i] = b1 * m[i] + (1.0f - b1) * gi;
            v[i] = b2 * v[i] + (1.0f - b2) * gi * gi;
            p[i] -= step * m[i] / (sqrtf(v[i]) * rc2 + eps);
        }
    } else {
        for (size_t i = 0; i < n; i++) {
            const float gi = g[i] + wd * p[i];
            m[i] = b1 * m[i] + (1.0f - b1) * gi;
            v[i] = b2 * v[i] + (1.0f - b2) * gi * gi;
            p[i] -= step * m[i] / (sqrtf(v[i]) * rc2 + eps);
        }
    }
}

/* The *_update_dev entries: on the CPU "backend memory" is host memory, so the
 * step's values are read here, when the update runs. */
static struct dlfs_optim_hp with_dyn_(const struct dlfs_optim_hp *hp, const struct dlfs_optim_dyn *dyn)
{
    struct dlfs_optim_hp h = *hp;
    h.lr = dyn->lr;
    h.bias_c1 = dyn->bias_c1;
    h.bias_c2 = dyn->bias_c2;
    return h;
}

void cpu_sgd_update_dev(size_t n, float *p, const float *g, float *m, const struct dlfs_optim_hp *hp,
                        const struct dlfs_optim_dyn *dyn)
{
    const struct dlfs_optim_hp h = with_dyn_(hp, dyn);
    cpu_sgd_update(n, p, g, m, &h);
}

void cpu_adam_update_dev(size_t n, float *p, const float *g, float *m, float *v, const struct dlfs_optim_hp *hp,
                         const struct dlfs_optim_dyn *dyn)
{
    const struct dlfs_optim_hp h = with_dyn_(hp, dyn);
    cpu_adam_update(n, p, g, m, v, &h);
}
