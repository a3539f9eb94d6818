/* Helpers the layers' files share: integer arguments and the default
 * initialisation. A leaf of src/nn (it uses nothing of the table). */
#include <ctype.h>
#include <math.h>
#include "dlfs/util.h"
#include "nn/layer.h"

#define DLFS_KEY_INIT 0x1a17ULL

int nn_parse_pos(const char *s, size_t n, int *out)
{
    if (n == 0 || n > 9) return 0;
    int v = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isdigit((unsigned char)s[i])) return 0;
        v = v * 10 + (s[i] - '0');
    }
    if (v < 1 || v > DLFS_MAX_WIDTH) return 0;
    *out = v;
    return 1;
}

/* An optional leading '-' so that a negative value is reported as out of range,
 * not as garbage. */
int nn_parse_int(const char *s, size_t n, int lo, int hi, int *out)
{
    int neg = n > 0 && s[0] == '-';
    if (neg) { s++; n--; }
    if (n == 0 || n > 9) return 0;
    long v = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isdigit((unsigned char)s[i])) return 0;
        v = v * 10 + (s[i] - '0');
    }
    if (neg) v = -v;
    if (v < lo || v > hi) return 0;
    *out = (int)v;
    return 1;
}

/* PyTorch's Linear and Conv2d defaults, drawn from the counter-based RNG keyed
 * by (seed, layer, element): every rank produces the same bits. */
void nn_init_uniform(uint64_t seed, int l, int fan_in, float *p, size_t n)
{
    const uint64_t key = dlfs_key(seed, DLFS_KEY_INIT, (uint64_t)l);
    const float bound = 1.0f / sqrtf((float)fan_in);
    for (size_t i = 0; i < n; i++)
        p[i] = (2.0f * dlfs_uniform01(key, i) - 1.0f) * bound;
}
