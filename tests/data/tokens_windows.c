/* Test helper (not a test): the windows each rank gets, printed for a numpy
 * oracle (tokens_check.py). For every global batch b of the epoch and every
 * rank r of P: one line "b r id id ..." per row (ctx + 1 ids).
 * usage: tokens_windows FILE CTX B P SEED EPOCH */
#include <stdio.h>
#include <stdlib.h>
#include "dlfs/sampler.h"
#include "dlfs/tokens.h"

int main(int argc, char **argv)
{
    if (argc != 7) return fprintf(stderr, "usage: tokens_windows FILE CTX B P SEED EPOCH\n"), 2;
    const int ctx = atoi(argv[2]), B = atoi(argv[3]), P = atoi(argv[4]);
    const uint64_t seed = strtoull(argv[5], NULL, 10);
    struct dlfs_tokens t;
    if (dlfs_tokens_load(argv[1], &t) != DLFS_OK) return fprintf(stderr, "%s\n", dlfs_error_msg()), 1;
    const size_t w = dlfs_tokens_windows(t.train.n, ctx);
    uint32_t *perm = malloc(w * sizeof *perm);
    uint16_t *rows = malloc((size_t)B * (size_t)(ctx + 1) * sizeof *rows);
    dlfs_sampler_permutation(seed, atoi(argv[6]), perm, w);
    for (size_t b = 0; b < w / (size_t)B; b++)
        for (int r = 0; r < P; r++) {
            const int n = dlfs_tokens_batch(&t.train, ctx, perm, b, B, r, P, rows);
            for (int i = 0; i < n; i++) {
                printf("%zu %d", b, r);
                for (int j = 0; j <= ctx; j++) printf(" %u", rows[(size_t)i * (size_t)(ctx + 1) + (size_t)j]);
                putchar('\n');
            }
        }
    free(perm), free(rows);
    dlfs_tokens_free(&t);
    return 0;
}
