/* --version: what this build is (the values CMake wrote into dlfs-build.h at
 * configure time: cmake/DlfsVersion.cmake, src/CMakeLists.txt). */
#include <stdio.h>
#include "dlfs-build.h"
#include "dlfs/util.h"

void dlfs_version_print(const char *program)
{
    printf("%s %s\n"
           "commit: %s\n"
           "backends: %s\n",
           program, DLFS_VERSION, DLFS_BUILD_COMMIT, DLFS_BUILD_BACKENDS);
}
