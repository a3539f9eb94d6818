#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR disable=SC2015 # `check && t_pass || t_fail`: t_pass never fails
# DLFS_NCCL and cmake/FindNCCL.cmake, by configuring the project in scratch trees:
#   - a root holding only lib/libnccl.so.2 (a real shared object, built here, as a
#     pip wheel's nvidia/nccl has it) and include/nccl.h: found with -DNCCL_ROOT and
#     DLFS_NCCL=ON, and on the programs' link lines;
#   - DLFS_NCCL=OFF: configured, NCCL on no link line;
#   - DLFS_NCCL=ON with an empty NCCL_ROOT: the configure fails and says why;
#     AUTO with it: configured without NCCL, with a status line saying so;
#   - DLFS_NCCL=ON without the CUDA backend: the configure fails and says why.
# Arguments: SOURCE_DIR CMAKE C_COMPILER. Needs nvcc for all but the last (else
# only that one runs, and the rest is reported as not run).
. "$(dirname "$0")/../lib.sh"
src=$1 cmake=$2 cc=$3
fake=$T_TMP/fake empty=$T_TMP/empty
mkdir -p "$fake/lib" "$fake/include" "$empty"
cat >"$T_TMP/nccl.c" <<'C'
typedef struct ncclComm *ncclComm_t;
int ncclGetVersion(int *version) { *version = 22809; return 0; }
const char *ncclGetErrorString(int result) { (void)result; return "fake"; }
int ncclCommAbort(ncclComm_t comm) { (void)comm; return 0; }
C
"$cc" -shared -fPIC -Wl,-soname,libnccl.so.2 -o "$fake/lib/libnccl.so.2" "$T_TMP/nccl.c" \
  || { t_fail "could not build the fake libnccl.so.2"; t_done; }
hdr=""
for h in /usr/local/cuda/include/nccl.h /usr/include/nccl.h; do [ -f "$h" ] && { hdr=$h; break; }; done
if [ -n "$hdr" ]; then cp "$hdr" "$fake/include/nccl.h"
else printf '#define NCCL_MAJOR 2\n#define NCCL_MINOR 28\n#define NCCL_PATCH 9\nint ncclGetVersion(int *version);\n' \
  >"$fake/include/nccl.h"; fi
ver=$(sed -n 's/^#define NCCL_\(MAJOR\|MINOR\|PATCH\) *\([0-9]*\).*/\2/p' "$fake/include/nccl.h" | paste -sd.)

b=$T_TMP/b
conf() { # LOG ARGS...: configure the scratch tree, output in $T_TMP/LOG; returns cmake's status
  local log=$1; shift
  timeout 300 "$cmake" -S "$src" -B "$b" -DCMAKE_BUILD_TYPE=Release -DDLFS_TESTS=OFF "$@" >"$T_TMP/$log" 2>&1
}
# dlfs-train's link line (with nvcc in the build, the libraries are in a response file)
links() { cat "$b"/src/CMakeFiles/dlfs-train.dir/link.txt "$b"/src/CMakeFiles/dlfs-train.dir/linkLibs.rsp 2>/dev/null; }
# said LOG TEXT: TEXT in cmake's output, whose messages are wrapped at any space
said() { tr -s ' \n' '  ' <"$T_TMP/$1" | grep -qF -- "$2"; }

nvcc=$(command -v nvcc || { [ -x /usr/local/cuda/bin/nvcc ] && echo /usr/local/cuda/bin/nvcc; })
if [ -n "$nvcc" ]; then
  if conf on.log -DDLFS_CUDA=ON -DCMAKE_CUDA_COMPILER="$nvcc" -DDLFS_NCCL=ON -DNCCL_ROOT="$fake"; then
    said on.log "dlfs: NCCL $ver: $fake/lib/libnccl.so.2 (DLFS_NCCL=ON)" \
      && t_pass "libnccl.so.2 alone under NCCL_ROOT: found (NCCL $ver)" \
      || { grep -i nccl "$T_TMP/on.log" >&2; t_fail "ON with the fake root: no 'dlfs: NCCL $ver: $fake/lib/libnccl.so.2' line"; }
    links | grep -qF "$fake/lib/libnccl.so.2" && t_pass "dlfs-train links $fake/lib/libnccl.so.2" \
      || t_fail "dlfs-train's link line lacks the versioned library: $(links)"
  else
    tail -n 20 "$T_TMP/on.log" >&2; t_fail "DLFS_NCCL=ON with a root holding libnccl.so.2 and nccl.h: configure failed"
  fi
  if conf off.log -DDLFS_NCCL=OFF; then
    said off.log "dlfs: NCCL off (DLFS_NCCL=OFF)" && t_pass "OFF: says so" || t_fail "OFF: no status line"
    if links | grep -q nccl; then t_fail "OFF: NCCL still on the link line: $(links)"
    elif [ -z "$(links)" ]; then t_fail "OFF: no link line to look at"
    else t_pass "OFF: NCCL on no link line"; fi
  else
    tail -n 20 "$T_TMP/off.log" >&2; t_fail "DLFS_NCCL=OFF: configure failed"
  fi
  if conf none.log -DDLFS_NCCL=ON -DNCCL_ROOT="$empty" -UNCCL_INCLUDE_DIR -UNCCL_LIBRARY; then
    t_fail "DLFS_NCCL=ON with an empty NCCL_ROOT configured"
  elif said none.log "DLFS_NCCL=ON but NCCL is not usable: neither nccl.h nor libnccl.so / libnccl.so.2 was found in NCCL_ROOT=$empty"; then
    t_pass "ON without NCCL: fails at configure time, naming what is missing and where"
  else
    tail -n 20 "$T_TMP/none.log" >&2; t_fail "ON without NCCL: the failure does not say why"
  fi
  if conf auto.log -DDLFS_NCCL=AUTO -DNCCL_ROOT="$empty" -UNCCL_INCLUDE_DIR -UNCCL_LIBRARY; then
    said auto.log "dlfs: NCCL not found (neither nccl.h" && ! links | grep -q nccl \
      && t_pass "AUTO without NCCL: configured without it, with a status line" \
      || { grep -i nccl "$T_TMP/auto.log" >&2; t_fail "AUTO without NCCL: no status line, or NCCL linked"; }
  else
    tail -n 20 "$T_TMP/auto.log" >&2; t_fail "AUTO without NCCL: configure failed"
  fi
else
  echo "note: no nvcc: the NCCL look-ups need the CUDA backend and are not run here"
fi
rm -rf "$b"
if conf nocuda.log -DDLFS_CUDA=OFF -DDLFS_NCCL=ON; then t_fail "DLFS_NCCL=ON without the CUDA backend configured"
elif said nocuda.log "DLFS_NCCL=ON but the CUDA backend is not built"; then
  t_pass "ON without the CUDA backend: fails at configure time, saying why"
else tail -n 20 "$T_TMP/nocuda.log" >&2; t_fail "ON without CUDA: the failure does not say why"; fi
t_done
