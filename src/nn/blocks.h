/* Block items of the spec (res, bottleneck): src/nn/blocks.c. Private to src/nn. */
#ifndef DLFS_NN_BLOCKS_H
#define DLFS_NN_BLOCKS_H

#include <stddef.h>

struct nn_tok;

/* If item k is a block item, write the flat list of items it stands for into out
 * (room chars): base is the index its first layer will get, src the layer whose
 * output is the block's input (-1: the model input), in_c that input's channels.
 * Returns NULL (out is "" when k is no block item), or the reason it is bad. */
const char *nn_block_expand(const struct nn_tok *k, int base, int src, int in_c, char *out, size_t room);

#endif
