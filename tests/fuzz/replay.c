/* The fuzz targets without libFuzzer: a main that hands each file named on the
 * command line (or each file of a directory named there) to the target's
 * LLVMFuzzerTestOneInput once, as libFuzzer does when it is given files instead
 * of a corpus to grow. Built with gcc into every test build (tests/fuzz/CMakeLists.txt),
 * so the seed corpus and every kept regression input run in ctest — under
 * AddressSanitizer and UBSan in the sanitizer build — without clang.
 * Exit status: 0 when every input ran (a target that crashes takes the process
 * with it, as under libFuzzer), 1 when an input could not be read, 2 on usage. */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv) __attribute__((weak));

enum { MAX_INPUT = 1 << 20 };   /* the largest -max_len launch/fuzz gives is 65536 */

static int run_file_(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) { fprintf(stderr, "replay: cannot open %s\n", path); return 1; }
    uint8_t *buf = malloc(MAX_INPUT);
    size_t n = buf ? fread(buf, 1, MAX_INPUT, f) : 0;
    int bad = !buf || ferror(f) || !feof(f);
    fclose(f);
    if (bad) { fprintf(stderr, "replay: %s: unreadable or over %d bytes\n", path, MAX_INPUT); free(buf); return 1; }
    LLVMFuzzerTestOneInput(buf, n);
    free(buf);
    return 0;
}

static int cmp_(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* A directory: its regular files in name order (the same order on every machine). */
static int run_dir_(const char *dir, int *count)
{
    DIR *d = opendir(dir);
    if (!d) { fprintf(stderr, "replay: cannot open directory %s\n", dir); return 1; }
    char **names = NULL;
    size_t n = 0, cap = 0;
    for (struct dirent *e; (e = readdir(d));) {
        if (e->d_name[0] == '.') continue;
        if (n == cap && !(names = realloc(names, (cap = cap ? 2 * cap : 64) * sizeof *names))) abort();
        if (!(names[n] = malloc(strlen(dir) + strlen(e->d_name) + 2))) abort();
        sprintf(names[n++], "%s/%s", dir, e->d_name);
    }
    closedir(d);
    qsort(names, n, sizeof *names, cmp_);
    int fails = 0;
    for (size_t i = 0; i < n; i++) {
        struct stat st;
        if (stat(names[i], &st) == 0 && S_ISREG(st.st_mode)) fails += run_file_(names[i]), ++*count;
        free(names[i]);
    }
    free(names);
    return fails;
}

int main(int argc, char **argv)
{
    if (argc < 2) { fprintf(stderr, "usage: %s FILE|DIR...\n", argv[0]); return 2; }
    if (LLVMFuzzerInitialize) LLVMFuzzerInitialize(&argc, &argv);
    int fails = 0, count = 0;
    for (int i = 1; i < argc; i++) {
        struct stat st;
        if (stat(argv[i], &st) == 0 && S_ISDIR(st.st_mode)) fails += run_dir_(argv[i], &count);
        else fails += run_file_(argv[i]), count++;
    }
    printf("%s: %d input(s) replayed, %d unreadable\n", argv[0], count, fails);
    return fails ? 1 : 0;
}
