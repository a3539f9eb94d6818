/* Softmax cross-entropy (numerically stable: shift by the row maximum). The rows
 * are split across the rank's threads (split.c; a language model's are B x T rows
 * of its vocabulary); each row's loss is kept and the losses summed in row order
 * afterwards, so the bits are those of one thread. */
#include <math.h>
#include <stdlib.h>
#include "backend/cpu/cpu-impl.h"
#include "dlfs/util.h"

struct xent_job_ {
    const float *logits;
    const int32_t *labels;
    int classes;
    float grad_scale;
    float *dlogits;
    double *loss, *correct; /* per row */
};

static void rows_(void *arg, size_t first, size_t end)
{
    const struct xent_job_ *j = arg;
    const int classes = j->classes;
    for (size_t r = first; r < end; r++) {
        const float *x = j->logits + r * (size_t)classes;
        int y = j->labels[r];
        int arg_max = 0;
        float mx = x[0];
        for (int c = 1; c < classes; c++)
            if (x[c] > mx) { mx = x[c]; arg_max = c; }
        double sum = 0.0;
        for (int c = 0; c < classes; c++) sum += exp((double)x[c] - mx);
        double lse = log(sum) + mx;
        j->loss[r] = lse - x[y];
        j->correct[r] = (arg_max == y);
        if (j->dlogits) {
            float *d = j->dlogits + r * (size_t)classes;
            for (int c = 0; c < classes; c++) {
                float p = (float)exp((double)x[c] - lse);
                d[c] = (p - (c == y ? 1.0f : 0.0f)) * j->grad_scale;
            }
        }
    }
}

void cpu_softmax_xent(const float *logits, const int32_t *labels, int rows, int classes,
                      float grad_scale, float *dlogits, double *stats)
{
    if (rows <= 0) return;
    double *per = dlfs_malloc(2 * (size_t)rows * sizeof *per);
    struct xent_job_ j = {logits, labels, classes, grad_scale, dlogits, per, per + rows};
    cpu_split_run((size_t)rows, (size_t)rows * (size_t)classes * 4, rows_, &j);
    double loss = 0.0, correct = 0.0;
    for (int r = 0; r < rows; r++) loss += j.loss[r], correct += j.correct[r];
    stats[0] += loss;
    stats[1] += correct;
    free(per);
}
