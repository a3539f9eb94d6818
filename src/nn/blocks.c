/* Block items of the spec: one item that expands into a flat list of layers
 * (src/README.md, "Skip connections"), parsed in its place.
 *
 *   res(C[,sS])         the basic residual block (ResNet-18/34, CIFAR ResNets):
 *                       conv 3x3 (stride S) - batchnorm - relu - conv 3x3 -
 *                       batchnorm, plus the block's input, then relu. When the
 *                       shape changes (S > 1 or C != the input's channels) the
 *                       input goes through a 1x1 stride-S conv and a batchnorm
 *                       first (the projection shortcut).
 *   bottleneck(C[,sS])  the bottleneck block (ResNet-50/101/152, torchvision's
 *                       "v1.5": the stride on the 3x3): conv 1x1 (C) - bn - relu -
 *                       conv 3x3 (C, stride S) - bn - relu - conv 1x1 (4C) - bn,
 *                       plus the input (projected when S > 1 or 4C != its
 *                       channels), then relu.
 *
 * The convolutions have no bias (b0): each is followed by a batchnorm, which
 * cancels one. The layers come out in torchvision's parameter order (conv1, bn1,
 * conv2, bn2[, conv3, bn3], downsample conv, downsample bn), so a checkpoint maps
 * onto torchvision's BasicBlock/Bottleneck tensor by tensor. */
#include <string.h>
#include "nn/blocks.h"
#include "nn/layer.h"

/* "C" or "C,sS": channels and stride. 1, or 0 when malformed. */
static int args_(const struct nn_tok *k, int *c, int *stride)
{
    if (!k->arg) return 0;
    const char *comma = memchr(k->arg, ',', k->alen);
    const size_t n0 = comma ? (size_t)(comma - k->arg) : k->alen;
    if (!nn_parse_pos(k->arg, n0, c)) return 0;
    *stride = 1;
    if (!comma) return 1;
    const char *s = comma + 1, *end = k->arg + k->alen;
    while (s < end && *s == ' ') s++;
    while (end > s && end[-1] == ' ') end--;
    return end - s >= 2 && *s == 's' && nn_parse_int(s + 1, (size_t)(end - s - 1), 1, 64, stride);
}

/* "in" or the index */
static void ref_(int k, char *out, size_t room)
{
    if (k < 0) snprintf(out, room, "in");
    else snprintf(out, room, "%d", k);
}

const char *nn_block_expand(const struct nn_tok *k, int base, int src, int in_c, char *out, size_t room)
{
    out[0] = '\0';
    const int bottleneck = strcmp(k->name, "bottleneck") == 0;
    if (!bottleneck && strcmp(k->name, "res") != 0) return NULL;
    int c, s;
    if (!args_(k, &c, &s))
        return bottleneck ? "bottleneck(C[,sS]) needs a positive width C and an optional stride sS (1..64)"
                          : "res(C[,sS]) needs a positive number of channels C and an optional stride sS (1..64)";
    const int oc = bottleneck ? 4 * c : c;
    if (oc > DLFS_MAX_WIDTH) return "bottleneck(C): 4C channels is too many";
    char x[16], sum[16];
    ref_(src, x, sizeof x);
    int n, last; /* chars written; the index of the main branch's last layer */
    if (bottleneck) {
        n = snprintf(out, room, "conv(%d,k1,b0),batchnorm,relu,conv(%d,k3,s%d,p1,b0),batchnorm,relu,"
                     "conv(%d,k1,b0),batchnorm", c, c, s, oc);
        last = base + 5;
    } else {
        n = snprintf(out, room, "conv(%d,k3,s%d,p1,b0),batchnorm,relu,conv(%d,k3,p1,b0),batchnorm", c, s, c);
        last = base + 3;
    }
    if (s == 1 && oc == in_c) { /* identity shortcut: add the block's input */
        n += snprintf(out + n, room - (size_t)n, ",add(%s),relu", x);
    } else { /* projection: from the input, 1x1 stride S, batchnorm, added to the main branch */
        ref_(last, sum, sizeof sum);
        n += snprintf(out + n, room - (size_t)n, ",from(%s),conv(%d,k1,s%d,b0),batchnorm,add(%s),relu", x, oc, s,
                      sum);
    }
    return n < (int)room ? NULL : "block expands to too long a list";
}
