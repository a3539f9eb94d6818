/* libFuzzer target: the model-spec parser (dlfs_model_parse) on any text. */
#include <stdlib.h>
#include <string.h>
#include "dlfs/model.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    if (!text) return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    struct dlfs_model m, again;
    dlfs_error_clear();
    if (dlfs_model_parse(text, &m) == DLFS_OK) {
        /* the canonical spec parses back to the same model */
        if (dlfs_model_parse(m.spec, &again) != DLFS_OK || strcmp(m.spec, again.spec) != 0 ||
            again.num_params != m.num_params || m.num_layers < 1 || m.num_classes < 2)
            __builtin_trap();
        dlfs_model_free(&again);
        dlfs_model_free(&m);
    } else if (!dlfs_error_msg()[0]) {
        __builtin_trap();
    }
    free(text);
    return 0;
}
