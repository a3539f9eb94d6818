/* How much host memory this process may still take (src/README.md, "Memory
 * estimate"): the least of MemAvailable (/proc/meminfo), the cgroup's limit less
 * its usage (cgroup v2 memory.max/memory.current, or v1 memory.limit_in_bytes/
 * memory.usage_in_bytes) and RLIMIT_AS less the address space already mapped
 * (/proc/self/statm). */
#ifndef DLFS_CORE_MEMAVAIL_H
#define DLFS_CORE_MEMAVAIL_H

#include <stddef.h>

/* Bytes available. *node: what the processes of this node (or cgroup) share, the
 * least of MemAvailable and the cgroup's room, `which` naming it ("MemAvailable",
 * "the cgroup's memory limit"); the return value: what this process alone may
 * still map (RLIMIT_AS less its mapped address space). Each is negative when no
 * bound could be read (no /proc, no limit): the caller checks nothing then. */
double dlfs_host_mem_available(double *node, char *which, size_t len);

#endif
