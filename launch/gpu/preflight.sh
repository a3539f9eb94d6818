# shellcheck shell=bash
# shellcheck disable=SC2015 # `test && row || row`: row never fails
# Sourced by launch/gpu-check.sh, in its shell (its options, helpers and the variables of the
# steps before): step 1, the preflight: one line per dependency (found where, or missing: then the
# check stops with the list and exit 3); sets HAVE_NVCC, GPU, PY, TORCH, SAN, nccl_h, NCCL_ROOT_ARG,
# FMNIST_DIR, PYCHECKS.

# ==== 1. preflight ========================================================================
PF_MISSING=()
pf() { printf '  %-22s %s\n' "$1" "$2" | tee -a "$MD" >>"$LOGS/preflight.log"; printf '  %-22s %s\n' "$1" "$2"; }
miss() { PF_MISSING+=("$1 ($2)"); pf "$1" "MISSING: $2"; }
# first FILE... : the first that exists
first() { local f; for f in "$@"; do [ -e "$f" ] && { echo "$f"; return 0; }; done; return 1; }
. "$SRC/launch/gpu/kit-env.sh"
if [ -n "$KIT" ]; then
  if dlfs_kit_env "$KIT" 2>>"$LOGS/preflight.log"; then
    # shellcheck disable=SC1091 # the machine's own file
    here_os=$( . /etc/os-release 2>/dev/null && echo "${PRETTY_NAME:-?}")
    if [ "$KIT_OS" = "$here_os" ]; then pf "kit" "$KIT_DIR (made on $KIT_OS, as this machine)"
    else pf "kit" "$KIT_DIR (made on '$KIT_OS', this machine is '$here_os': libraries may not fit)"; fi
  else
    miss "kit" "$KIT is not a kit made by launch/gpu-kit"
  fi
fi
MA=$(gcc -print-multiarch 2>/dev/null || dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || echo "$(uname -m)-linux-gnu")
kp=${KIT_PREFIX:+$KIT_PREFIX/usr}
[ -x /usr/local/cuda/bin/nvcc ] && ! command -v nvcc >/dev/null 2>&1 && export PATH=$PATH:/usr/local/cuda/bin

if cc=$(command -v cc || command -v gcc); then pf "C compiler" "found: $cc ($(timeout 5 "$cc" --version 2>/dev/null | head -n 1))"
else miss "C compiler" "no cc/gcc on PATH (apt-get install build-essential)"; fi
if cm=$(command -v cmake); then
  v=$(timeout 5 cmake --version 2>/dev/null | sed -n 's/^cmake version \([0-9.]*\).*/\1/p')
  if printf '%s\n3.25\n' "$v" | sort -V -C 2>/dev/null && [ "$v" != 3.25 ]; then miss "CMake" "$cm is $v; 3.25 or later needed (the kit has one)"
  else pf "CMake" "found: $cm ($v)"; fi
else miss "CMake" "not on PATH (the kit has one)"; fi
HAVE_NVCC=0
if nv=$(command -v nvcc) && timeout 20 "$nv" --version >/dev/null 2>&1; then  # (one that runs)
  HAVE_NVCC=1
  pf "nvcc" "found: $nv ($(timeout 5 nvcc --version 2>/dev/null | sed -n 's/.*release \([0-9.]*\).*/CUDA \1/p'))"
elif [ $DRY = 1 ]; then pf "nvcc" "missing: the dry run builds without CUDA (listed as skipped)"
else miss "nvcc" "no CUDA toolkit (nvcc on PATH or in /usr/local/cuda/bin): it is not in the kit"; fi
GPU=""
if command -v nvidia-smi >/dev/null && timeout 10 nvidia-smi -L >"$LOGS/nvidia-smi.log" 2>&1 && grep -q "^GPU" "$LOGS/nvidia-smi.log"; then
  GPU=$(timeout 10 nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null | head -n 1)
  pf "GPU" "found: $GPU ($(grep -c '^GPU' "$LOGS/nvidia-smi.log") visible)"
elif [ $DRY = 1 ]; then pf "GPU" "none (dry run: not needed)"
else miss "GPU" "nvidia-smi lists none: run the check on a GPU machine (or --dry-run)"; fi
if mr=$(command -v mpirun); then
  mv_=$(timeout 5 mpirun --version 2>/dev/null | head -n 1)
  mh=""
  command -v mpicc >/dev/null && for d in $(timeout 5 mpicc --showme:incdirs 2>/dev/null); do [ -f "$d/mpi.h" ] && { mh=$d/mpi.h; break; }; done
  [ -n "$mh" ] || mh=$(first ${kp:+"$kp/lib/$MA/openmpi/include/mpi.h"} "/usr/lib/$MA/openmpi/include/mpi.h" /usr/include/openmpi/mpi.h \
                             "/usr/include/$MA/mpi/mpi.h" /usr/include/mpi.h) || mh=""
  if [ -n "$mh" ]; then pf "Open MPI" "found: $mr ($mv_), $mh"
  else miss "Open MPI" "$mr is there but not mpi.h (libopenmpi-dev; the kit has it)"; fi
else miss "Open MPI" "no mpirun (openmpi-bin, libopenmpi-dev; the kit has them)"; fi
if h=$(first ${kp:+"$kp/include/hdf5/serial/hdf5.h"} /usr/include/hdf5/serial/hdf5.h /usr/include/hdf5.h); then
  hv=$(sed -n 's/^#define H5_VERSION "\(.*\)"/\1/p' "$(dirname "$h")/H5pubconf.h" 2>/dev/null)
  pf "HDF5" "found: $h (${hv:-version ?})"
else miss "HDF5" "no hdf5.h (libhdf5-dev; the kit has it)"; fi
if h=$(first ${kp:+"$kp/include/$MA/openblas-pthread/cblas.h"} "/usr/include/$MA/cblas.h" "/usr/include/$MA/openblas-pthread/cblas.h" \
             /usr/include/openblas/cblas.h /usr/include/cblas.h); then
  pf "OpenBLAS" "found: $h"
else miss "OpenBLAS" "no cblas.h (libopenblas-dev; the kit has it)"; fi
if h=$(first ${kp:+"$kp/include/zlib.h"} /usr/include/zlib.h); then pf "zlib" "found: $h"
else miss "zlib" "no zlib.h (zlib1g-dev; the kit has it)"; fi
# NCCL: the system's, a pip wheel's (libnccl.so.2 alone), or the kit's wheel unpacked here
nccl_h="" nccl_l="" NCCL_ROOT_ARG=""
nccl_look() { # ROOT...: sets nccl_h, nccl_l from the first root that has both
  local r
  for r in "$@"; do
    [ -f "$r/include/nccl.h" ] || continue
    nccl_l=$(first "$r"/lib/libnccl.so "$r"/lib64/libnccl.so "$r/lib/$MA/libnccl.so" "$r"/lib/libnccl.so.2 \
                   "$r"/lib64/libnccl.so.2 "$r/lib/$MA/libnccl.so.2") || continue
    nccl_h=$r/include/nccl.h; NCCL_ROOT_ARG=$r; return 0
  done
  return 1
}
PY=$(command -v python3 || true)
if [ -n "$PY" ] && [ -n "${KIT_DIR:-}" ]; then  # the image's Python with the image's libraries, not the kit's
  printf '#!/bin/sh\nLD_LIBRARY_PATH="%s" exec "%s" "$@"\n' "${KIT_ORIG_LD_LIBRARY_PATH:-}" "$PY" >"$WORK/python3"
  chmod +x "$WORK/python3" && PY=$WORK/python3
fi
wheel_nccl=""
[ -n "$PY" ] && wheel_nccl=$(timeout 15 "$PY" -c "import importlib.util as u; s = u.find_spec('nvidia.nccl'); print(list(s.submodule_search_locations)[0] if s else '')" 2>/dev/null)
if nccl_look ${NCCL_ROOT:+"$NCCL_ROOT"} /usr/local/cuda /usr ${wheel_nccl:+"$wheel_nccl"}; then
  [ "$NCCL_ROOT_ARG" = /usr ] || [ "$NCCL_ROOT_ARG" = /usr/local/cuda ] && NCCL_ROOT_ARG=""
elif [ -n "${KIT_NCCL_WHEEL:-}" ] && [ -n "$PY" ] && rm -rf "$BUILD/kit-nccl" \
     && timeout 60 "$PY" -m zipfile -e "$KIT_NCCL_WHEEL" "$BUILD/kit-nccl" >/dev/null 2>&1 && nccl_look "$BUILD/kit-nccl/nvidia/nccl"; then
  :
fi
if [ -n "$nccl_h" ]; then
  nv_=$(sed -n 's/^#define NCCL_\(MAJOR\|MINOR\|PATCH\) *\([0-9]*\).*/\2/p' "$nccl_h" | paste -sd.)
  pf "NCCL" "found: $nccl_l, $nccl_h (NCCL $nv_)"
  if [ -n "$NCCL_ROOT_ARG" ]; then LD_LIBRARY_PATH="$(dirname "$nccl_l")${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"; export LD_LIBRARY_PATH; fi
elif [ $DRY = 1 ] || [ $HAVE_NVCC = 0 ]; then pf "NCCL" "missing: the dry run builds with DLFS_NCCL=AUTO"
else miss "NCCL" "no nccl.h + libnccl.so[.2] (libnccl-dev, or the wheel: launch/gpu-kit DIR --wheels)"; fi
FMNIST_DIR=${FMNIST_DIR:-${KIT_FMNIST_DIR:-/usr/share/datasets/fashion-mnist}}
if [ -f "$FMNIST_DIR/train-images-idx3-ubyte.gz" ] || [ -f "$FMNIST_DIR/train-images-idx3-ubyte" ]; then
  pf "Fashion-MNIST" "found: $FMNIST_DIR"
else miss "Fashion-MNIST" "no IDX files in $FMNIST_DIR (dataset-fashion-mnist; the kit has it; or FMNIST_DIR=...)"; fi
PYCHECKS=OFF
for p_ in ${PY:+"$PY"} /usr/bin/python3; do
  if out=$(timeout 10 "$p_" -c 'import numpy, h5py; print(numpy.__version__, h5py.__version__)' 2>/dev/null); then
    PYCHECKS=ON; pf "Python numpy/h5py" "found: $p_ (numpy/h5py $out; optional)"; break
  fi
done
if [ $PYCHECKS = OFF ]; then pf "Python numpy/h5py" "missing: configured with -DDLFS_PYTHON_CHECKS=OFF (optional: only the CPU suites' cross-checks use them)"; fi
TORCH=0
if [ -n "$PY" ] && out=$(timeout 20 "$PY" -c 'import torch; print(torch.__version__, torch.version.cuda, torch.cuda.is_available())' 2>/dev/null); then
  case $out in *True) TORCH=1; pf "PyTorch" "found: $out (CUDA; the reference column)" ;;
  *) TORCH=2; pf "PyTorch" "found without CUDA: $out (optional: no PyTorch column on the GPU)" ;; esac
else pf "PyTorch" "missing (optional: no PyTorch column)"; fi
SAN=$(command -v compute-sanitizer || first /usr/local/cuda/bin/compute-sanitizer) || SAN=""
if [ -n "$SAN" ]; then pf "compute-sanitizer" "found: $SAN (optional)"
else pf "compute-sanitizer" "missing (optional: no memcheck/racecheck rows)"; fi
{ echo '```'; echo; } >>"$MD"
say "preflight done in $((SECONDS - T0)) s"
if [ ${#PF_MISSING[@]} -gt 0 ]; then
  {
    echo "**Stopped at the preflight.** Missing:"
    echo
    printf -- '- %s\n' "${PF_MISSING[@]}"
    echo
    echo "To bring the missing packages to a machine with no package registry: on a networked machine of the"
    echo "same release (e.g. a container of the same image) run \`launch/gpu-kit DIR\` (add \`--wheels\` for NCCL"
    echo "as a pip wheel), copy DIR here, then run \`launch/gpu-check.sh --kit DIR\`."
  } | tee -a "$MD"
  pack
  exit 3
fi
if [ $PREFLIGHT_ONLY = 1 ]; then pack; echo "gpu-check: preflight passed (--preflight-only)"; exit 0; fi
{
  echo "## Results"
  echo
  echo "Times: dlfs wall clock per step with a device sync, PyTorch CUDA events; medians; data resident on the device."
  echo
  echo "| check | status | dlfs | PyTorch eager / graph | target | s |"
  echo "|---|---|---|---|---|---|"
} >>"$MD"
