// The public headers from C++: every one compiles as C++ and links against the C
// library (extern "C" guards, DLFS_NORETURN). Exercises one function per header
// that needs no MPI: a missing guard shows up as an undefined, C++-mangled symbol.
#include "dlfs/backend.h"
#include "dlfs/checkpoint.h"
#include "dlfs/comm.h"
#include "dlfs/dataset.h"
#include "dlfs/model.h"
#include "dlfs/sampler.h"
#include "dlfs/status.h"
#include "dlfs/tokens.h"
#include "dlfs/train.h"
#include "dlfs/util.h"
#include <cstdio>
#include <cstring>

int main()
{
    int bad = 0;
    if (std::strcmp(dlfs_status_name(DLFS_OK), "") == 0) bad++;
    if (dlfs_act_parse("relu") != DLFS_ACT_RELU) bad++;
    const struct dlfs_backend *cpu = dlfs_backend_cpu();
    if (!cpu || std::strcmp(cpu->name, "cpu") != 0) bad++;
    struct dlfs_model m;
    if (dlfs_model_parse("784-10", &m) != DLFS_OK) bad++;
    else {
        if (m.num_params != 7850) bad++;
        dlfs_model_free(&m);
    }
    std::printf("%s: C++ sees the C API (%d failures)\n", bad ? "FAIL" : "ok", bad);
    return bad ? 1 : 0;
}
