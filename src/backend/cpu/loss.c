/* Softmax cross-entropy (numerically stable: shift by the row maximum). */
#include <math.h>
#include "backend/cpu/cpu-impl.h"

void cpu_softmax_xent(const float *logits, const int32_t *labels, int rows, int classes,
                      float grad_scale, float *dlogits, double *stats)
{
    double loss = 0.0, correct = 0.0;
    for (int r = 0; r < rows; r++) {
        const float *x = logits + (size_t)r * classes;
        int y = labels[r];
        int arg = 0;
        float mx = x[0];
        for (int c = 1; c < classes; c++)
            if (x[c] > mx) { mx = x[c]; arg = c; }
        double sum = 0.0;
        for (int c = 0; c < classes; c++) sum += exp((double)x[c] - mx);
        double lse = log(sum) + mx;
        loss += lse - x[y];
        correct += (arg == y);
        if (dlogits) {
            float *d = dlogits + (size_t)r * classes;
            for (int c = 0; c < classes; c++) {
                float p = (float)exp((double)x[c] - lse);
                d[c] = (p - (c == y ? 1.0f : 0.0f)) * grad_scale;
            }
        }
    }
    stats[0] += loss;
    stats[1] += correct;
}
