/* dlfs-data synth: a synthetic dataset file of a given size (tools/dlfs-data.c
 * dispatches here). The images and labels are those of dlfs_dataset_synthetic
 * (uniform random bytes and labels, a pure function of the seed): nothing to
 * learn, but the sizes, the file layout and the reads of a real dataset. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/hooks.h"
#include "dlfs/dataset.h"
#include "tools/dlfs-data.h"

static int bad_(const char *opt, const char *arg)
{
    fprintf(stderr, "dlfs-data: synth: %s '%s' is not valid; see 'dlfs-data --help'\n", opt, arg);
    return 2;
}

/* A whole number in [lo, hi]. */
static int num_(const char *arg, long long lo, long long hi, long long *out)
{
    char *end;
    errno = 0;
    const long long v = strtoll(arg, &end, 10);
    if (errno || end == arg || *end || v < lo || v > hi) return -1;
    *out = v;
    return 0;
}

int dlfs_data_synth(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"size", required_argument, NULL, 'S'},    {"shape", required_argument, NULL, 's'},
        {"classes", required_argument, NULL, 'k'}, {"test", required_argument, NULL, 't'},
        {"seed", required_argument, NULL, 'e'},    {"output", required_argument, NULL, 'o'},
        {NULL, 0, NULL, 0}};
    long long mib = 0, classes = 10, test = 1000, seed = 1;
    int c, ch = 1, h = 28, w = 28;
    const char *out = NULL;
    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, "+:o:", longopts, NULL)) != -1) {
        int ok = 1;
        if (c == 'S') ok = num_(optarg, 1, 1 << 16, &mib) == 0;
        else if (c == 'k') ok = num_(optarg, 2, 256, &classes) == 0;
        else if (c == 't') ok = num_(optarg, 1, DLFS_DATASET_MAX_N, &test) == 0;
        else if (c == 'e') ok = num_(optarg, 0, 0x7fffffffLL, &seed) == 0;
        else if (c == 's') ok = sscanf(optarg, "%dx%dx%d", &ch, &h, &w) == 3;
        else if (c == 'o') out = optarg;
        else return bad_("option", argv[optind - 1]);
        if (!ok) return bad_(argv[optind - 2], optarg);
    }
    if (!mib || !out || optind != argc) {
        fprintf(stderr, "dlfs-data: synth needs --size MB and -o OUT.h5 (and nothing else)\n");
        return 2;
    }
    const size_t dim = (size_t)ch * (size_t)(h > 0 ? h : 1) * (size_t)(w > 0 ? w : 1);
    const size_t n = ((size_t)mib << 20) / dim;
    /* written a chunk at a time: a file of any size in a few MiB (DLFS_REPORT_RSS: the peak, for the tests) */
    const enum dlfs_status st = dlfs_dataset_synth_save(out, ch, h, w, (int)classes, n ? n : 1, (size_t)test,
                                                        (uint64_t)seed);
    dlfs_hook_report_rss(0);
    if (st != DLFS_OK) {
        fprintf(stderr, "dlfs-data: %s\n", dlfs_error_msg());
        return st == DLFS_ERR_USAGE ? 2 : 1;
    }
    printf("%s: %zu train and %lld test images of %dx%dx%d, %lld classes (synthetic, seed %lld)\n", out, n, test, ch,
           h, w, classes, seed);
    return 0;
}
