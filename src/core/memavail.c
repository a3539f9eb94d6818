/* The host memory a process may still take (core/memavail.h). */
#define _POSIX_C_SOURCE 200809L
#include "core/memavail.h"
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

/* The first number in a small file (after `key` when given), times `scale`; < 0 when absent. */
static double read_num_(const char *path, const char *key, double scale)
{
    FILE *f = fopen(path, "r");
    if (!f) return -1.0;
    char line[256];
    double v = -1.0;
    while (v < 0 && fgets(line, sizeof line, f)) {
        if (key && strncmp(line, key, strlen(key)) != 0) continue;
        double x;
        if (sscanf(key ? line + strlen(key) : line, "%lf", &x) == 1 && x >= 0) v = x * scale;
        if (!key) break;
    }
    fclose(f);
    return v;
}

static void take_(double v, const char *name, double *best, char *which, size_t len)
{
    if (v < 0 || (*best >= 0 && v >= *best)) return;
    *best = v;
    snprintf(which, len, "%s", name);
}

double dlfs_host_mem_available(double *node, char *which, size_t len)
{
    double best = -1.0, own = -1.0;
    snprintf(which, len, "unknown");
    take_(read_num_("/proc/meminfo", "MemAvailable:", 1024.0), "MemAvailable", &best, which, len);
    /* "max" (no limit) does not parse as a number: skipped */
    double lim = read_num_("/sys/fs/cgroup/memory.max", NULL, 1.0);
    double use = read_num_("/sys/fs/cgroup/memory.current", NULL, 1.0);
    if (lim < 0) { /* cgroup v1; an unlimited v1 group reads as a huge number */
        lim = read_num_("/sys/fs/cgroup/memory/memory.limit_in_bytes", NULL, 1.0);
        use = read_num_("/sys/fs/cgroup/memory/memory.usage_in_bytes", NULL, 1.0);
    }
    if (lim >= 0 && use >= 0) take_(lim > use ? lim - use : 0.0, "the cgroup's memory limit", &best, which, len);
    *node = best;
    struct rlimit rl;
    if (getrlimit(RLIMIT_AS, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY) {
        const double mapped = read_num_("/proc/self/statm", NULL, (double)sysconf(_SC_PAGESIZE));
        const double cap = (double)rl.rlim_cur;
        own = mapped >= 0 && mapped < cap ? cap - mapped : 0.0;
    }
    return own;
}
