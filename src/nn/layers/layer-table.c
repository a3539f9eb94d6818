/* The layer table: the descriptors of include/dlfs/layer-list.h, by type. */
#include <string.h>
#include "nn/layer.h"

static const struct nn_layer_desc *const table_[DLFS_LAYER_COUNT] = {
#define DLFS_LAYER_ROW(e, n) [DLFS_LAYER_##e] = &nn_layer_##n,
#include "dlfs/layer-list.h"
#undef DLFS_LAYER_ROW
};

const struct nn_layer_desc *nn_layer_desc(enum dlfs_layer_type t)
{
    DLFS_ASSERT((unsigned)t < DLFS_LAYER_COUNT);
    return table_[t];
}

const struct nn_layer_desc *nn_layer_find(const char *name, enum dlfs_layer_type *t)
{
    for (int i = 0; i < DLFS_LAYER_COUNT; i++)
        if (strcmp(name, table_[i]->name) == 0) {
            *t = (enum dlfs_layer_type)i;
            return table_[i];
        }
    return NULL;
}

void nn_layer_names(char *buf, size_t len)
{
    size_t n = 0;
    buf[0] = '\0';
    for (int i = 0; i < DLFS_LAYER_COUNT && n < len; i++)
        n += (size_t)snprintf(buf + n, len - n, "%s%s", i ? ", " : "", table_[i]->name);
}

const char *dlfs_layer_type_name(enum dlfs_layer_type t)
{
    return (unsigned)t < DLFS_LAYER_COUNT ? table_[t]->name : "?";
}
