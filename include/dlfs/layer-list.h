/* dlfs — the layer types, one row each: DLFS_LAYER_ROW(ENUM, name), where
 * DLFS_LAYER_<ENUM> is the type's id and nn_layer_<name> its descriptor
 * (src/nn/layers/layer-<name>.c, src/nn/layer.h). The order is the ids' order;
 * append new rows at the end. A new layer type = its file + one row here
 * (src/README.md, "Adding a layer"). No include guard: included with the macro
 * defined, as an X-macro list. */
DLFS_LAYER_ROW(DENSE, dense)
DLFS_LAYER_ROW(CONV, conv)
DLFS_LAYER_ROW(MAXPOOL, maxpool)
DLFS_LAYER_ROW(FLATTEN, flatten)
DLFS_LAYER_ROW(DROPOUT, dropout)
DLFS_LAYER_ROW(BATCHNORM, batchnorm)
DLFS_LAYER_ROW(GAP, gap)
DLFS_LAYER_ROW(ADD, add)
DLFS_LAYER_ROW(EMBED, embed)
DLFS_LAYER_ROW(BLOCK, block)
DLFS_LAYER_ROW(LNORM, lnorm)
DLFS_LAYER_ROW(LMHEAD, lmhead)
