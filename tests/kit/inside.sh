#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR disable=SC2015 # `check && t_pass || t_fail`: t_pass never fails
# Run by tests/kit/kit.sh in a mount namespace of its own (unshare -m): hides the
# system's copies of what the kit holds, proves they are gone, then builds, converts
# and trains with the kit alone.
# Arguments: SOURCE_DIR KIT_DIR HIDE_DIRS_FILE HIDE_FILES_FILE WORK_DIR.
. "$(dirname "$0")/../lib.sh"
src=$1 kit=$2 hide_dirs=$3 hide_files=$4 work=$5
mkdir -p "$work"
: >"$work/empty"
ma=$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || gcc -print-multiarch)
declare -A inst=()
for p in libopenmpi-dev libhdf5-dev zlib1g-dev libopenblas-dev dataset-fashion-mnist openmpi-bin; do
  dpkg-query -W "$p" >/dev/null 2>&1 && inst[$p]=1
done
mount --make-rprivate / || { t_fail "mount --make-rprivate /"; t_done; }
nd=0 nf=0 bad=0
while read -r d; do mount -t tmpfs -o size=1m,mode=755 none "$d" && nd=$((nd + 1)) || bad=$((bad + 1)); done <"$hide_dirs"
# Links are left alone: a bind mount would land on the link's target, and the target
# is either hidden itself (one of these files, or in one of these directories) or a
# file of the base (libz.so -> the runtime libz.so.1, which must stay).
while read -r f; do
  [ -L "$f" ] && continue
  mount --bind "$work/empty" "$f" && nf=$((nf + 1)) || bad=$((bad + 1))
done <"$hide_files"
[ "$bad" -eq 0 ] && t_pass "hid $nd directories and $nf files" || t_fail "$bad mounts failed ($nd directories, $nf files hidden)"

# the system's copies are gone (where this machine has them)
gone() { # NAME PATH: PATH is no longer usable
  if [ -s "$2" ] || { [ -d "$2" ] && [ -n "$(ls -A "$2" 2>/dev/null)" ]; }; then t_fail "$1 still visible: $2"
  else t_pass "$1 hidden"; fi
}
[ -n "${inst[libopenmpi-dev]:-}" ] && gone "the system's mpi.h" "/usr/lib/$ma/openmpi/include/mpi.h"
[ -n "${inst[libhdf5-dev]:-}" ] && gone "the system's hdf5.h" /usr/include/hdf5/serial/hdf5.h
[ -n "${inst[zlib1g-dev]:-}" ] && gone "the system's zlib.h" /usr/include/zlib.h
[ -n "${inst[libopenblas-dev]:-}" ] && gone "the system's cblas.h" "/usr/include/$ma/cblas.h"
[ -n "${inst[dataset-fashion-mnist]:-}" ] && gone "the system's Fashion-MNIST" /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz
# a base library the kit copied from this machine (kit-base/) is hidden here too
for b in "$kit"/prefix/usr/lib/"$ma"/kit-base/*; do
  [ -e "/lib/$ma/$(basename "$b")" ] && grep -qxF "$(realpath "/lib/$ma/$(basename "$b")")" "$hide_files" || continue
  gone "the system's $(basename "$b") (a base library the kit carries)" "/lib/$ma/$(basename "$b")"; break
done
if [ -n "${inst[openmpi-bin]:-}" ]; then
  /usr/bin/mpirun --version >/dev/null 2>&1 && t_fail "the system's mpirun still runs" || t_pass "the system's mpirun no longer runs"
fi

# the kit's environment, as the GPU check sets it
. "$src/launch/gpu/kit-env.sh"
dlfs_kit_env "$kit" || { t_fail "dlfs_kit_env $kit"; t_done; }
# CMake is the machine's (the slim kit has none: the GPU image brings CMake 4)
cmake --version >/dev/null 2>&1 && t_pass "cmake runs ($(command -v cmake), not in the kit)" || t_fail "cmake does not run with the kit's libraries"
[ "$(command -v mpirun)" = "$KIT_PREFIX/usr/bin/mpirun" ] && t_pass "mpirun from the kit" || t_fail "mpirun is $(command -v mpirun)"
b=$work/build
# configure and build as gpu-check.sh does: without the kit's copies of base libraries on
# the library path (the linker finds them through -rpath-link)
if ! LD_LIBRARY_PATH=$KIT_BUILD_LD_LIBRARY_PATH cmake -S "$src" -B "$b" -DCMAKE_BUILD_TYPE=Release -DDLFS_CUDA=OFF -DDLFS_TESTS=OFF "${KIT_CMAKE_ARGS[@]}" \
     >"$work/configure.log" 2>&1; then
  tail -n 30 "$work/configure.log"; t_fail "configure with the kit"; t_done
fi
t_pass "configured with the kit"
# every dependency the configure found lies in the kit
for v in MPI_C_HEADER_DIR HDF5_C_INCLUDE_DIR HDF5_C_LIBRARY_hdf5 BLAS_openblas_LIBRARY DLFS_CBLAS_INCLUDE_DIR \
         ZLIB_INCLUDE_DIR ZLIB_LIBRARY_RELEASE ZLIB_LIBRARY; do
  val=$(sed -n "s/^$v:[A-Z]*=//p" "$b/CMakeCache.txt")
  [ -n "$val" ] || continue
  case $val in "$KIT_PREFIX"/*) t_pass "$v in the kit" ;; *) t_fail "$v = $val, outside the kit" ;; esac
done
if ! LD_LIBRARY_PATH=$KIT_BUILD_LD_LIBRARY_PATH cmake --build "$b" -j "$(nproc)" --target dlfs-train dlfs-data >"$work/build.log" 2>&1; then
  grep -E "error|Error" "$work/build.log" | head -n 20; t_fail "build with the kit"; t_done
fi
t_pass "built dlfs-train and dlfs-data"
nf=$(ldd "$b/src/dlfs-train" | grep -c "not found")
[ "$nf" -eq 0 ] && t_pass "dlfs-train's libraries all resolve" || { ldd "$b/src/dlfs-train" | grep "not found"; t_fail "$nf libraries not found"; }
for lib in libmpi.so libhdf5 libopenblas; do
  where=$(ldd "$b/src/dlfs-train" | awk -v l="$lib" 'index($1, l) == 1 { print $3; exit }')
  case $where in "$KIT_PREFIX"/*) t_pass "$lib from the kit" ;; *) t_fail "$lib resolves to '$where'" ;; esac
done
[ -n "$KIT_FMNIST_DIR" ] || { t_fail "the kit has no Fashion-MNIST"; t_done; }
"$b/src/dlfs-data" convert --fashion-mnist "$KIT_FMNIST_DIR" -o "$work/fm.h5" >"$work/convert.log" 2>&1 \
  && t_pass "converted the kit's Fashion-MNIST" || { tail -n 5 "$work/convert.log"; t_fail "convert"; t_done; }
. "$src/tests/mpi-env.sh"
if timeout 300 mpirun -np 2 "$b/src/dlfs-train" --data "$work/fm.h5" --epochs 1 --max-steps 20 --batch 128 --seed 1 \
     --metrics "$work/m.jsonl" >"$work/train.log" 2>&1; then
  acc=$(t_acc "$work/m.jsonl")
  awk -v a="$acc" 'BEGIN { exit !(a > 0.5) }' && t_pass "mpirun -np 2: 20 steps, test_acc $acc" \
    || t_fail "mpirun -np 2: test_acc '$acc' after 20 steps"
else
  tail -n 20 "$work/train.log"; t_fail "mpirun -np 2 dlfs-train with the kit's Open MPI"
fi
# the GPU check's own preflight with this kit (a dry run: no GPU needed)
if timeout 120 "$src/launch/gpu-check.sh" --dry-run --preflight-only --kit "$kit" --out "$work/check" \
     --build-dir "$work/check-build" >"$work/preflight.log" 2>&1; then
  t_pass "gpu-check.sh --kit: preflight passes"
else
  cat "$work/preflight.log"; t_fail "gpu-check.sh --dry-run --preflight-only --kit $kit"
fi
for dep in "Open MPI" HDF5 OpenBLAS zlib Fashion-MNIST; do
  grep -E "^ *$dep.*(found|ok).*$KIT_PREFIX" "$work/preflight.log" >/dev/null && t_pass "preflight: $dep from the kit" \
    || t_fail "preflight: no '$dep ... $KIT_PREFIX' line"
done
t_done
