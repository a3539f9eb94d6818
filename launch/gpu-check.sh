#!/usr/bin/env bash
# shellcheck disable=SC2015 # `test && record || record`: row and detail+= never fail
# gpu-check.sh — the GPU check: one call on a GPU machine, within a deadline, leaving
# one Markdown table and one tarball of logs.
#
#   launch/gpu-check.sh [--kit DIR|ARCHIVE] [--kit-fallback DIR|ARCHIVE] [--deadline S]
#                       [--out DIR] [--build-dir DIR] [--arch SM] [--quick] [--dry-run]
#                       [--dry-run-if-no-gpu] [--preflight-only]
#
# In this order, each step with a time budget cut from what is left of the deadline
# (default 420 s: with the start, the whole call fits 8 minutes; a step that does not
# fit is listed as "skipped: no time", never dropped silently):
#   1. preflight (<= 20 s): one line per dependency, found where or missing; a missing
#      one stops the check with the list and how to bring it (launch/gpu-kit);
#   2. configure (CUDA on, NCCL required: -DDLFS_NCCL=ON) and build, all cores, only
#      dlfs-train, dlfs-data and the GPU test programs; Fashion-MNIST converted into
#      the build tree (never into --out);
#   3. the op tests: every CUDA op family against the CPU backend, each in a process of
#      its own, DLFS_CUDA_SYNC=1 (a faulting kernel is blamed on its own launch);
#   4. benchmarks, dlfs and PyTorch (launch/torch-ref.py) on the same models in the
#      same run: mlp/128 (CUDA graph on and off), mlp-large/8192 (fp32, bf16, tf32),
#      cnn/128;
#   5. the trainings with gates: mlp, the quickstart recipe (Adam 1e-3, cosine, seed 1,
#      batch 128, 10 epochs) in fp32 and bf16 on the GPU and in fp32 on the CPU (in
#      the background, same recipe); the cnn recipe;
#   6. the rest: a hung NCCL set-up ending within --comm-timeout (first: every other
#      NCCL run has --comm-timeout 20 or the tests' own), ctest -L gpu (none may skip),
#      checkpoints (GPU write + resume to the same bits, GPU -> CPU and
#      CPU -> GPU), 1 rank over NCCL, the 8-rank rehearsal (--comm mpi, 8 ranks sharing
#      the GPU, deterministic: the bits of 1 rank), cnn-bn and tf32 trainings,
#      compute-sanitizer memcheck over the op families and racecheck over the kernels
#      that use shared memory (colsum, loss, conv, batchnorm) where the tool exists;
#      --accum-steps 4 and --zero 1 (2 ranks, --comm mpi) give the bits of the plain run
#      (deterministic), --trace writes valid JSON with device spans; a bench-vs-torch
#      row per model where the image's Python has torch (launch/gpu/rows.sh).
#
# The targets (one H100 80GB; PyTorch measured there, same models and step):
#   mlp, batch 128, fp32, Adam step        <= 0.06 ms  (PyTorch: 0.172 ms as a CUDA
#                                                        graph, 0.72-0.92 ms eager)
#   mlp-large, batch 8192, bf16            <= 3.2 ms   (PyTorch 3.53 ms)
#   mlp-large, batch 8192, fp32 (no TF32)  <= 36 ms    (PyTorch 36.0 ms)
#   Fashion-MNIST mlp, 10 epochs           >= 89.5 % test accuracy, <= 0.05 s/epoch
#                                                       (PyTorch 88.7 %, 0.45 s/epoch)
#   Fashion-MNIST cnn                      >= 92.5 %, <= 0.4 s/epoch
#                                                       (PyTorch 91.6 %, 0.8 s/epoch)
# Accuracies and agreements are gates (a miss fails the check); times are measured
# against their targets and reported as met or missed, without failing the check.
#
# Output (small: it may have to come back from a remote machine): $OUT/gpu-check.md,
# the table, written row by row as the steps end (a run cut short keeps what it
# measured), $OUT/env.txt, the machine (driver, toolkit, versions), and
# $OUT/logs.tar.gz, every log, refreshed after each phase. The tail
# of every failing step goes to stdout.
#
# Options:
#   --kit DIR|ARCHIVE  use a kit made by launch/gpu-kit (Open MPI, HDF5, OpenBLAS, zlib,
#                      Fashion-MNIST): its slim archive dlfs-gpu-kit.tar.xz (unpacked
#                      into the build tree) or a kit directory
#   --kit-fallback K   the same, but only when the image lacks one of them (else the
#                      image's own packages are used)
#   --deadline S       overall time limit in seconds, at least 60 (default 420)
#   --out DIR          where the table and the tarball go (default ./gpu-check-out; env OUT)
#   --build-dir DIR    the build tree: absent, empty or a dlfs build tree of this source
#                      (default $TMPDIR/dlfs-gpu-check-build-N, N from this checkout's
#                      path; env BUILD_DIR)
#   --arch SM          CUDA architecture (default 90: H100/H200; env CUDA_ARCH)
#   --quick            fewer epochs and steps; accuracy gates not applied (env GPU_CHECK_QUICK=1)
#   --dry-run          every step that needs no GPU: preflight, kit handling, the build
#                      with CUDA on, the CPU halves of the gates at tiny sizes, the op
#                      harness CPU against CPU, table and tarball; GPU steps are listed
#                      as skipped (CI runs this)
#   --dry-run-if-no-gpu  a dry run where nvidia-smi lists no GPU (the device recipe's
#                      command run here: launch/README.md)
#   --preflight-only   stop after the preflight
# The commit comes from git, else from .gpu-kit/commit.txt (launch/gpu/prepare writes it:
# .git does not travel to a device machine).
# Environment: FMNIST_DIR (default: the kit's, else /usr/share/datasets/fashion-mnist).
# Exit: 0 every check passed (skips for lack of time allowed), 1 a check failed,
# 2 usage, 3 a dependency is missing (preflight).
set -uo pipefail
SRC=$(cd "$(dirname "$0")/.." && pwd)
usage() { sed -n '3,/^set -uo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit "${1:-0}"; }

# shellcheck source=launch/gpu/setup.sh
. "$SRC/launch/gpu/setup.sh"
# shellcheck source=launch/gpu/rows.sh
. "$SRC/launch/gpu/rows.sh"
OUT=${OUT:-$PWD/gpu-check-out}
BUILD=${BUILD_DIR:-} BUILD_DEF=0
[ -n "$BUILD" ] || { BUILD=$(gc_default_build "$SRC"); BUILD_DEF=1; }
ARCH=${CUDA_ARCH:-90}
QUICK=${GPU_CHECK_QUICK:-0}
DEADLINE=420 KIT="" KIT_FALLBACK="" DRY=0 DRY_NOGPU=0 PREFLIGHT_ONLY=0
while [ $# -gt 0 ]; do
  case $1 in
  -h | --help) usage 0 ;;
  --kit) KIT=${2:?--kit DIR}; shift ;;
  --kit-fallback) KIT_FALLBACK=${2:?--kit-fallback DIR}; shift ;;
  --dry-run-if-no-gpu) DRY_NOGPU=1 ;;
  --deadline) DEADLINE=${2:?--deadline S}; shift ;;
  --out) OUT=${2:?--out DIR}; shift ;;
  --build-dir) BUILD=${2:?--build-dir DIR}; BUILD_DEF=0; shift ;;
  --arch) ARCH=${2:?--arch SM}; shift ;;
  --quick) QUICK=1 ;;
  --dry-run) DRY=1 ;;
  --preflight-only) PREFLIGHT_ONLY=1 ;;
  *) echo "gpu-check: unknown argument '$1' (--help lists the options)" >&2; exit 2 ;;
  esac
  shift
done
gc_deadline_ok "$DEADLINE" || exit 2
gc_build_dir_ok "$BUILD" "$SRC" "$BUILD_DEF" || exit 2
if [ $DRY_NOGPU = 1 ] && ! { timeout 10 nvidia-smi -L 2>/dev/null | grep -q "^GPU"; }; then
  DRY=1; echo "gpu-check: nvidia-smi lists no GPU: a dry run (--dry-run-if-no-gpu)"
fi
mkdir -p "$OUT" "$BUILD" || { echo "gpu-check: cannot create $OUT or $BUILD" >&2; exit 2; }
OUT=$(cd "$OUT" && pwd) BUILD=$(cd "$BUILD" && pwd)
: >"$BUILD/.dlfs-gpu-check"   # a tree this check may reuse
if [ -n "$KIT_FALLBACK" ] && [ -z "$KIT" ]; then
  lacks=$(gc_image_lacks)
  if [ -n "$lacks" ]; then KIT=$KIT_FALLBACK; echo "gpu-check: the image lacks $lacks: the kit $KIT is used"
  else echo "gpu-check: the image has Open MPI, HDF5, OpenBLAS, zlib and Fashion-MNIST: no kit"; fi
fi
if [ -n "$KIT" ]; then KIT=$(gc_kit_dir "$KIT" "$BUILD") || exit 2; fi
gc_env_report >"$OUT/env.txt" 2>&1
WORK=$BUILD/gpu-check          # logs/ (into the tarball), runs/ (checkpoints: not)
LOGS=$WORK/logs RUNS=$WORK/runs
rm -rf "$WORK" && mkdir -p "$LOGS" "$RUNS"
MD=$OUT/gpu-check.md
rm -f "$MD" "$OUT/logs.tar.gz"
T0=$SECONDS
RESERVE=10                     # kept for the last table lines and the tarball
NCPU=$(nproc 2>/dev/null || echo 4)
N_PASS=0 N_FAIL=0 N_SKIP=0 N_INFO=0
declare -a FAILED=() SKIPPED=()
export NCCL_DEBUG=WARN         # NCCL's warnings in the logs, not its chatter

# the helpers: say, left, budget, row, no_time, tail_of, run, why, pack, mval, epoch_s,
# within, atleast, atmost, pct
# shellcheck source=launch/gpu/lib.sh
. "$SRC/launch/gpu/lib.sh"

host=$(hostname 2>/dev/null || echo "?")
commit=$(gc_commit "$SRC")
{
  echo "# dlfs GPU check — $host, $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo
  echo "commit $commit; \`launch/gpu-check.sh$([ $DRY = 1 ] && echo " --dry-run")$([ -n "$KIT" ] && echo " --kit $KIT")$([ "$QUICK" = 1 ] && echo " --quick") --deadline $DEADLINE\`"
  echo
  echo "## Preflight"
  echo
  echo '```'
} >"$MD"

# ==== 1. preflight ========================================================================
PF_MISSING=()
pf() { printf '  %-22s %s\n' "$1" "$2" | tee -a "$MD" >>"$LOGS/preflight.log"; printf '  %-22s %s\n' "$1" "$2"; }
miss() { PF_MISSING+=("$1 ($2)"); pf "$1" "MISSING: $2"; }
# first FILE... : the first that exists
first() { local f; for f in "$@"; do [ -e "$f" ] && { echo "$f"; return 0; }; done; return 1; }
. "$SRC/launch/kit-env.sh"
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

# ==== 2. configure and build ===============================================================
DEV=cuda
[ $DRY = 1 ] && DEV=cpu
cuda=ON nccl=ON
[ $HAVE_NVCC = 1 ] || cuda=OFF
[ -n "$nccl_h" ] || nccl=AUTO
[ $cuda = ON ] || nccl=OFF
# Ninja for a new tree when there is one; a configured tree keeps its generator (reused as it is)
gen=()
[ ! -f "$BUILD/CMakeCache.txt" ] && command -v ninja >/dev/null && gen=(-G Ninja)
cargs=(-S "$SRC" -B "$BUILD" "${gen[@]}" -DCMAKE_BUILD_TYPE=Release "-DDLFS_CUDA=$cuda" "-DDLFS_NCCL=$nccl"
       -DCMAKE_CUDA_ARCHITECTURES="$ARCH" -DDLFS_FMNIST_DIR="$FMNIST_DIR" ${KIT_CMAKE_ARGS[@]+"${KIT_CMAKE_ARGS[@]}"})
[ -n "$NCCL_ROOT_ARG" ] && cargs+=(-DNCCL_ROOT="$NCCL_ROOT_ARG")
[ $PYCHECKS = OFF ] && cargs+=(-DDLFS_PYTHON_CHECKS=OFF)   # else configure stops: no Python with numpy and h5py
# with a kit, the image's compiler and CMake run without the kit's copies of base libraries
BENV=(); [ -n "${KIT_DIR:-}" ] && BENV=(env "LD_LIBRARY_PATH=$KIT_BUILD_LD_LIBRARY_PATH")
targets=(dlfs-train dlfs-data test_pipeline_ops)
[ $cuda = ON ] && targets+=(test_cuda_ops)
BUILT=0
rc=0
if ! b=$(budget 30 180); then no_time "configure"
elif run configure "$b" ${BENV[@]+"${BENV[@]}"} cmake "${cargs[@]}" || { rc=$?; false; }; [ $rc -ne 0 ]; then
  row "configure (CUDA $cuda, NCCL $nccl, sm_$ARCH)" "FAIL: $(why $rc "$STEP_S" 180)" "" "" "" "$STEP_S"; tail_of configure 30
else
  cs=$STEP_S
  if ! b=$(budget 60 480); then no_time "build"
  elif run build "$b" ${BENV[@]+"${BENV[@]}"} cmake --build "$BUILD" -j "$NCPU" --target "${targets[@]}" || { rc=$?; false; }; [ $rc -ne 0 ]; then
    row "build (${targets[*]})" "FAIL: $(why $rc "$STEP_S" 480)" "" "" "" "$((cs + STEP_S))"
    grep -E "error|Error" "$LOGS/build.log" | head -n 30
  else
    BUILT=1
    nw=$(grep -c "warning" "$LOGS/build.log")
    ncl=$(sed -n 's/.*dlfs: NCCL \([0-9.]*\):.*/\1/p' "$LOGS/configure.log" | head -n 1)
    st=pass; [ "$nw" -eq 0 ] || st="pass ($nw warning lines)"
    row "configure + build: CUDA $cuda (sm_$ARCH), NCCL ${ncl:-off} ($nccl), Python checks $PYCHECKS, ${targets[*]}, -j $NCPU" "$st" "" "" "" "$((cs + STEP_S))"
    [ $cuda = ON ] || row "build with the CUDA backend" "skipped: no nvcc here (dry run)"
  fi
fi
TRAIN=$BUILD/src/dlfs-train DATA=$BUILD/src/dlfs-data
FM=$BUILD/fmnist.h5
if [ $BUILT = 1 ]; then
  if "$DATA" info "$FM" >/dev/null 2>&1; then :
  elif b=$(budget 10 120) && run convert "$b" "$DATA" convert --fashion-mnist "$FMNIST_DIR" --force -o "$FM"; then :
  else row "Fashion-MNIST converted into the build tree" "FAIL: $(tail -n 1 "$LOGS/convert.log" 2>/dev/null)"; FM=""; fi
fi
pack
if [ $BUILT = 0 ]; then
  row "everything after the build" "skipped: the build did not finish"
  { echo; echo "$N_FAIL failed, $N_SKIP skipped, $N_PASS passed; $((SECONDS - T0)) s"; } >>"$MD"
  pack; echo "gpu-check: the build failed (table: $MD, logs: $OUT/logs.tar.gz)"; exit 1
fi
# shellcheck source=tests/mpi-env.sh
. "$SRC/tests/mpi-env.sh"   # mpirun as root, oversubscription, loopback, one-line errors

# ==== 3. op tests ==========================================================================
OPS=$BUILD/tests/gpu/test_cuda_ops
ops_row() { # NAME LABEL: the op families of log NAME, summed up
  local f ok fail
  ok=$(grep -c "^family .*: ok$" "$LOGS/$1.log")
  fail=$(grep "^family .*: FAIL" "$LOGS/$1.log" | sed 's/^family \([a-z_]*\): FAIL:\{0,1\} */\1 /' | paste -sd, -)
  f=$(sed -n 's/^op families: //p' "$LOGS/$1.log")
  echo "${f:-no summary}${fail:+; failed: $fail}"
}
if [ $cuda = ON ] && [ -x "$OPS" ]; then
  self=(); [ $DRY = 1 ] && self=(--self)
  if b=$(budget 20 180); then
    DLFS_CUDA_SYNC=1 DLFS_OPS_FAMILY_TIMEOUT=90 run ops "$b" "$OPS" "${self[@]}"; rc=$?
    label="op tests: $("$OPS" --list | wc -l) op families vs the CPU, one process each, DLFS_CUDA_SYNC=1"
    [ $DRY = 1 ] && label="op harness --self (CPU vs CPU; dry run)"
    if [ $rc -eq 0 ]; then row "$label" pass "$(ops_row ops)" "" "all ok" "$STEP_S"
    elif [ $rc -eq 77 ]; then row "$label" "FAIL: skipped on a GPU machine ($(grep -m1 skipped "$LOGS/ops.log"))" "" "" "all ok" "$STEP_S"
    else row "$label" "FAIL: $(why $rc "$STEP_S" 180)" "$(ops_row ops)" "" "all ok" "$STEP_S"; tail_of ops 40; fi
  else no_time "op tests"; fi
else
  row "op tests (test_cuda_ops)" "skipped: no CUDA backend built (dry run without nvcc)"
fi
if b=$(budget 10 120); then
  pself=(); [ $DRY = 1 ] && pself=(--self)
  run pipeline-ops "$b" "$BUILD/tests/gpu/test_pipeline_ops" "${pself[@]}"; rc=$?
  label="pipeline ops (gather, pinned staging, graph replay == eager)"; [ $DRY = 1 ] && label="pipeline ops --self (dry run)"
  if [ $rc -eq 0 ]; then row "$label" pass "" "" "" "$STEP_S"
  else row "$label" "FAIL: $( [ $rc -eq 77 ] && echo "skipped on a GPU machine" || why $rc "$STEP_S" 120)" "" "" "" "$STEP_S"; tail_of pipeline-ops; fi
else no_time "pipeline ops"; fi
pack

# ==== 4. benchmarks: dlfs and PyTorch, same models ============================================
bench_ms() { sed -n 's/.*median step \([0-9.]*\) ms.*/\1/p' "$LOGS/$1.log" | tail -n 1; }
declare -A DL=() PT=()
bs=200 bl=20; [ "$QUICK" = 1 ] && bs=50 bl=5
[ $DRY = 1 ] && bs=5 bl=2
specs=("mlp mlp 128 $bs 20" "mlp-nograph mlp 128 $bs 20 --cuda-graph off" "mlp-large-fp32 mlp-large 8192 $bl 3"
       "mlp-large-bf16 mlp-large 8192 $bl 3 --precision bf16" "mlp-large-tf32 mlp-large 8192 $bl 3 --precision tf32"
       "cnn cnn 128 $bs 10")
[ $DRY = 1 ] && specs=("mlp mlp 128 $bs 1" "mlp-nograph mlp 128 $bs 1 --cuda-graph off")
for spec in "${specs[@]}"; do
  read -r -a w <<<"$spec"
  name=${w[0]} model=${w[1]} batch=${w[2]} steps=${w[3]} warm=${w[4]}
  if b=$(budget 15 60); then
    rc=0
    run "bench-$name" "$b" mpirun -np 1 "$TRAIN" --bench --device $DEV --model "$model" --batch "$batch" \
      --steps "$steps" --bench-warmup "$warm" "${w[@]:5}" || rc=$?
    if [ $rc -eq 0 ]; then
      DL[$name]=$(bench_ms "bench-$name")
      if grep -q "CUDA graph fell back to eager" "$LOGS/bench-$name.log"; then
        row "bench $name: the CUDA graph" "FAIL: $(grep -o 'CUDA graph fell back to eager[^;]*' "$LOGS/bench-$name.log" | head -n 1)"
        DL[$name]="${DL[$name]} (eager!)"
      fi
    else
      DL[$name]="failed"; row "dlfs-train --bench $name" "FAIL: $(why $rc "$STEP_S" 60)" "" "" "" "$STEP_S"; tail_of "bench-$name"
    fi
  else DL[$name]="no time"; fi
done
if [ $TORCH = 1 ] && [ $DRY = 0 ]; then
  for part in "small $bs 20 mlp:128 mlp:128:fp32:graph cnn:128 cnn:128:fp32:graph" \
              "large $bl 3 mlp-large:8192 mlp-large:8192:bf16 mlp-large:8192:bf16:graph"; do
    read -r -a w <<<"$part"
    if b=$(budget 30 150); then
      run "torch-${w[0]}" "$b" "$PY" "$SRC/launch/torch-ref.py" --device cuda --steps "${w[1]}" --warmup "${w[2]}" "${w[@]:3}" \
        || { rc=$?; row "PyTorch reference (${w[0]})" "FAIL: $(why $rc "$STEP_S" 150)"; tail_of "torch-${w[0]}"; }
    else no_time "PyTorch reference (${w[0]})"; fi
  done
  while read -r _ name _ prec mode ms; do PT[$name-$prec-$mode]=$ms
  done < <(cat "$LOGS"/torch-*.log 2>/dev/null | grep -E '^torch [a-z-]+ [0-9]+ (fp32|bf16) (eager|graph) [0-9.]+$')
  say "$(head -n 2 "$LOGS/torch-small.log" 2>/dev/null | tail -n 1)"
fi
pt() { if [ $TORCH = 1 ] && [ $DRY = 0 ]; then echo "${PT[$1-eager]:-n/a} / ${PT[$1-graph]:-n/a}"; else echo "no PyTorch with CUDA"; fi; }
perf() { # MEASURED TARGET_MS: met / missed / why there is no number (a row of its own says why)
  case $1 in '' | failed | "no time" | *eager*) echo "not measured (${1:-no result})" ;;
  *) atmost "$1" "$2" && echo "met" || echo "missed" ;; esac
}
if [ $DRY = 1 ]; then
  row "bench mlp/128 on the CPU, graph on / off (dry run: the parsing, not a figure)" info "${DL[mlp]:-?} / ${DL[mlp-nograph]:-?} ms"
  if [ $TORCH != 0 ] && b=$(budget 30 90); then  # PyTorch on the CPU, to exercise the parsing
    rc=0; run torch-cpu "$b" "$PY" "$SRC/launch/torch-ref.py" --device cpu --steps 3 --warmup 1 mlp:128 || rc=$?
    if [ $rc -eq 0 ]; then
      ms=$(grep -E '^torch mlp 128 fp32 eager [0-9.]+$' "$LOGS/torch-cpu.log" | cut -d' ' -f6)
      row "PyTorch reference on the CPU, mlp/128 (dry run: the parsing)" info "" "${ms:-?} ms" "" "$STEP_S"
    else row "PyTorch reference on the CPU (dry run)" "FAIL: $(why $rc "$STEP_S" 90)"; tail_of torch-cpu; fi
  fi
else
  row "mlp 784-512-512-10, batch 128, fp32, Adam step (ms): CUDA graph" "$(perf "${DL[mlp]:-}" 0.06)" "${DL[mlp]:-?}" "$(pt mlp-fp32)" "≤ 0.06 (PyTorch on H100: 0.172 graph, 0.72–0.92 eager)"
  row "mlp, batch 128, fp32: --cuda-graph off (ms)" info "${DL[mlp-nograph]:-?}" "" ""
  row "mlp-large 784-4096×3-10, batch 8192, fp32 no TF32 (ms)" "$(perf "${DL[mlp-large-fp32]:-}" 36)" "${DL[mlp-large-fp32]:-?}" "$(pt mlp-large-fp32)" "≤ 36 (PyTorch 36.0)"
  row "mlp-large, batch 8192, bf16, fp32 master weights (ms)" "$(perf "${DL[mlp-large-bf16]:-}" 3.2)" "${DL[mlp-large-bf16]:-?}" "$(pt mlp-large-bf16)" "≤ 3.2 (PyTorch 3.53)"
  row "mlp-large, batch 8192, --precision tf32 (ms)" info "${DL[mlp-large-tf32]:-?}" "" ""
  row "cnn, batch 128, fp32, Adam step (ms)" info "${DL[cnn]:-?}" "$(pt cnn-fp32)" "469 steps ≤ 0.4 s"
  if [ $TORCH = 1 ]; then gc_torch_rows
  else row "bench-vs-torch (dlfs and PyTorch on the same GPU)" "skipped: the image's Python has no torch with CUDA"; fi
fi
pack

# ==== 5. trainings with gates ==============================================================
# The quickstart recipe (the 90.3 % of the README came from it)
recipe=(--model mlp --batch 128 --optim adam --lr 1e-3 --schedule cosine --seed 1)
ep=10 epc=15; [ "$QUICK" = 1 ] && ep=3 epc=2
tiny=(); [ $DRY = 1 ] && tiny=(--max-steps 60) && ep=1 epc=1
train() { # NAME SECONDS NP DEVICE ARGS...: a training, metrics in $LOGS/NAME.jsonl
  local name=$1 t=$2 np=$3 dev=$4; shift 4
  run "$name" "$t" mpirun -np "$np" "$TRAIN" --data "$FM" --device "$dev" --metrics "$LOGS/$name.jsonl" "$@"
}
graph_ok() { # NAME: a 1-rank GPU run asked for the graph: the final metrics must not say fallback
  local g; g=$(mval "$LOGS/$1.jsonl" final cuda_graph)
  if [ "$g" = fallback ]; then row "$1: CUDA graph" "FAIL: fell back to eager ($(grep -o 'fell back to eager[^;]*' "$LOGS/$1.log" | head -n 1))"; return 1; fi
  return 0
}
if [ -z "$FM" ]; then
  row "trainings" "FAIL: no Fashion-MNIST in the build tree"
else
  # the CPU run of the same recipe, in the background on all but 2 cores (where time allows)
  cpu_pid=""
  if [ $DRY = 0 ] && b=$(budget 120 300); then
    cpu_t=$b cpu_s0=$SECONDS
    train cpu-recipe "$b" 1 cpu "${recipe[@]}" --epochs $ep --threads $((NCPU > 4 ? NCPU - 2 : 2)) &
    cpu_pid=$!
  fi
  declare -A ACC=() EPS=()
  for prec in fp32 bf16; do
    if b=$(budget 20 150); then
      rc=0; train "$DEV-$prec" "$b" 1 $DEV "${recipe[@]}" --epochs $ep --precision $prec "${tiny[@]}" || rc=$?
      if [ $rc -eq 0 ]; then
        ACC[$prec]=$(mval "$LOGS/$DEV-$prec.jsonl" final test_acc); EPS[$prec]=$(epoch_s "$LOGS/$DEV-$prec.jsonl")
        [ $DRY = 0 ] && graph_ok "$DEV-$prec"
      else row "mlp quickstart recipe, $prec, $DEV" "FAIL: $(why $rc "$STEP_S" 150)" "" "" "" "$STEP_S"; tail_of "$DEV-$prec"; fi
    else no_time "mlp quickstart recipe, $prec"; fi
    s_=$STEP_S
    if [ -n "${ACC[$prec]:-}" ]; then
      if [ $DRY = 1 ]; then row "mlp quickstart recipe, $prec, CPU half (dry run: 60 steps)" info "$(pct "${ACC[$prec]}")" "" "" "$s_"
      elif [ $prec = fp32 ]; then
        st=pass
        [ "$QUICK" = 1 ] || atleast "${ACC[fp32]}" 0.895 || st="FAIL: below 89.5 %"
        tm=$(atmost "${EPS[fp32]}" 0.05 && echo met || echo missed)
        row "Fashion-MNIST mlp, $ep epochs, quickstart recipe, fp32: test acc, s/epoch (time target $tm)" "$st" \
          "$(pct "${ACC[fp32]}"), ${EPS[fp32]} s" "" "≥ 89.5 %, ≤ 0.05 s/epoch (PyTorch 88.7 %, 0.45 s)" "$s_"
      else
        st=pass; within "${ACC[bf16]}" "${ACC[fp32]:-}" 0.5 || st="FAIL: not within 0.5 points of fp32 (${ACC[fp32]:-?})"
        [ -n "${ACC[fp32]:-}" ] || st="skipped: no fp32 run to compare with"
        row "… bf16 (GEMMs in bf16, fp32 master weights)" "$st" "$(pct "${ACC[bf16]}"), ${EPS[bf16]} s" "" "within 0.5 points of fp32" "$s_"
      fi
    fi
  done
  # the cnn recipe of the README
  if b=$(budget 30 200); then
    rc=0; train "$DEV-cnn" "$b" 1 $DEV --model cnn --epochs $epc --batch 128 --optim adamw --lr 1e-3 --weight-decay 0.05 \
      --schedule cosine --warmup 200 --augment-crop 2 --augment-flip --seed 1 ${tiny[@]+--max-steps 10} || rc=$?
    if [ $rc -eq 0 ]; then
      a=$(mval "$LOGS/$DEV-cnn.jsonl" final test_acc) e=$(epoch_s "$LOGS/$DEV-cnn.jsonl")
      if [ $DRY = 1 ]; then row "cnn recipe, CPU half (dry run: 10 steps)" info "$(pct "$a")" "" "" "$STEP_S"
      else
        st=pass; [ "$QUICK" = 1 ] || atleast "$a" 0.925 || st="FAIL: below 92.5 %"
        tm=$(atmost "$e" 0.4 && echo met || echo missed)
        row "Fashion-MNIST cnn, $epc epochs, AdamW, crop+flip: test acc, s/epoch (time target $tm)" "$st" "$(pct "$a"), $e s" "" \
          "≥ 92.5 %, ≤ 0.4 s/epoch (PyTorch 91.6 %, 0.8 s)" "$STEP_S"
      fi
    else row "cnn recipe on $DEV" "FAIL: $(why $rc "$STEP_S" 200)" "" "" "" "$STEP_S"; tail_of "$DEV-cnn"; fi
  else no_time "cnn recipe"; fi
  # the CPU run of the recipe: the GPU's fp32 must agree with it
  if [ -n "$cpu_pid" ]; then
    wait "$cpu_pid"; rc=$?
    s_=$((SECONDS - cpu_s0))
    if [ $rc -eq 0 ]; then
      c=$(mval "$LOGS/cpu-recipe.jsonl" final test_acc)
      st=pass; within "${ACC[fp32]:-}" "$c" 0.5 || st="FAIL: GPU fp32 $(pct "${ACC[fp32]:-}") is not within 0.5 points"
      [ -n "${ACC[fp32]:-}" ] || st="skipped: no GPU fp32 run to compare with"
      row "… the same recipe on the CPU ($((NCPU > 4 ? NCPU - 2 : 2)) threads, in the background)" "$st" "$(pct "$c"), $(epoch_s "$LOGS/cpu-recipe.jsonl") s" "" "GPU fp32 within 0.5 points" "$s_"
    elif [ $rc -eq 124 ] || [ $rc -eq 137 ]; then row "… the same recipe on the CPU" "skipped: no time (cut after $cpu_t s)" "" "" "" "$s_"
    else row "… the same recipe on the CPU" "FAIL: exit $rc" "" "" "" "$s_"; tail_of cpu-recipe; fi
  elif [ $DRY = 0 ]; then no_time "the quickstart recipe on the CPU"; fi
fi
pack

# ==== 6. the rest ============================================================================
# 6a. a hung NCCL set-up ends within --comm-timeout (test hook: one rank never completes init):
# first, so that a real NCCL hang shows here in seconds before the longer NCCL tests
common=(--model mlp --batch 128 --epochs 1 --seed 5)
if [ $DRY = 1 ] || [ $cuda = OFF ]; then row "hung NCCL set-up ends within --comm-timeout" "skipped: dry run (needs a GPU)"
elif [ -z "$FM" ]; then row "hung NCCL set-up" "FAIL: no Fashion-MNIST in the build tree"
elif b=$(budget 40 90); then
  DLFS_FAULT_NCCL_INIT_STALL=0:600 train nccl-stall "$b" 1 cuda "${common[@]}" --max-steps 20 --comm nccl --comm-timeout 5; rc=$?
  msg=$(grep -m1 '^dlfs-train: ' "$LOGS/nccl-stall.log")
  if [ $rc -ne 0 ] && [ $rc -ne 124 ] && [ $rc -ne 137 ] && [ "$STEP_S" -le 35 ] && grep -q "NCCL" <<<"$msg" \
     && ! grep -q "no usable GPU" <<<"$msg"; then
    row "hung NCCL set-up (DLFS_FAULT_NCCL_INIT_STALL), --comm-timeout 5" pass "ended after $STEP_S s: $msg" "" "ends within the timeout" "$STEP_S"
  else row "hung NCCL set-up, --comm-timeout 5" "FAIL: exit $rc after $STEP_S s${msg:+: $msg}" "" "" "ends within the timeout" "$STEP_S"; tail_of nccl-stall; fi
else no_time "hung NCCL set-up"; fi
# 6b. ctest -L gpu: the drivers in tests/gpu (graph on/off digests, NCCL/MPI paths, device selection)
if b=$(budget 60 240); then
  (cd "$BUILD" && run ctest-gpu "$b" ctest -L gpu -E '^(test_cuda_ops|test_pipeline_ops)$' --output-on-failure \
     --timeout "$b"); rc=$?
  STEP_S=$(sed -n 's/^Total Test time (real) = *\([0-9]*\).*/\1/p' "$LOGS/ctest-gpu.log")
  sum=$(grep -E "tests passed|tests failed" "$LOGS/ctest-gpu.log" | tail -n 1)
  nskip=$(grep -c '\*\*\*Skipped\|Not Run' "$LOGS/ctest-gpu.log")
  if [ $DRY = 1 ]; then
    if [ $rc -eq 0 ]; then row "ctest -L gpu (dry run: no GPU, so they report skipped)" "skipped: dry run ($nskip skipped; ${sum:-?})" "" "" "" "${STEP_S:-}"
    else row "ctest -L gpu (dry run)" "FAIL: a GPU test failed without a GPU: $sum" "" "" "" "${STEP_S:-}"; tail_of ctest-gpu 40; fi
  elif [ $rc -ne 0 ]; then row "ctest -L gpu (pipeline digests, NCCL/MPI paths, device selection)" "FAIL: ${sum:-$(why $rc 0 1)}" "" "" "all pass, none skipped" "${STEP_S:-}"; tail_of ctest-gpu 40
  elif [ "$nskip" -gt 0 ]; then row "ctest -L gpu" "FAIL: $nskip test(s) skipped on a GPU machine" "" "" "all pass, none skipped" "${STEP_S:-}"; tail_of ctest-gpu 40
  else row "ctest -L gpu (pipeline digests, NCCL/MPI paths, device selection)" pass "$sum" "" "all pass, none skipped" "${STEP_S:-}"; fi
else no_time "ctest -L gpu"; fi
pack

common=(--model mlp --batch 128 --epochs 1 --seed 5)
if [ -z "$FM" ]; then row "checkpoints, NCCL, rehearsal, cnn-bn, tf32" "FAIL: no Fashion-MNIST in the build tree"; else

# 6c. checkpoints: GPU write + resume (same bits, deterministic mode), GPU -> CPU and CPU -> GPU
full=200; [ $DRY = 1 ] && full=40
half=$((full / 2))
ck=(--model mlp --batch 128 --epochs 1 --max-steps "$full" --deterministic --seed 5)
ckf() { printf '%s/ckpt-%09d.h5' "$RUNS/$1" "$2"; }
OTHER=cpu
if b=$(budget 60 240); then
  t_ck=$SECONDS ok=1 detail=()
  devs=("$DEV"); [ "$DEV" = "$OTHER" ] || devs+=("$OTHER")
  for d in "${devs[@]}"; do
    rm -rf "${RUNS:?}/ck-$d"
    train "ck-$d" 60 1 "$d" "${ck[@]}" --checkpoint-dir "$RUNS/ck-$d" --checkpoint-every "$half" || { ok=0; detail+=("$d straight run failed"); tail_of "ck-$d"; }
  done
  dg=$(mval "$LOGS/ck-$DEV.jsonl" final params_sha256) ag=$(mval "$LOGS/ck-$DEV.jsonl" final test_acc)
  dc=$(mval "$LOGS/ck-$OTHER.jsonl" final params_sha256) ac=$(mval "$LOGS/ck-$OTHER.jsonl" final test_acc)
  # resume on the same device: the bits of the straight run
  if train ck-resume 60 1 $DEV "${ck[@]}" --resume "$(ckf "ck-$DEV" "$half")"; then
    [ -n "$dg" ] && [ "$(mval "$LOGS/ck-resume.jsonl" final params_sha256)" = "$dg" ] && detail+=("$DEV resume: same bits") \
      || { ok=0; detail+=("$DEV resume: digest differs"); }
  else ok=0; detail+=("$DEV resume failed"); tail_of ck-resume; fi
  # the other backend evaluates the checkpoint to the same bits and accuracy, and trains on from it
  pairs=("$DEV $OTHER $dg $ag"); [ "$DEV" = "$OTHER" ] || pairs+=("$OTHER $DEV $dc $ac")
  for pair in "${pairs[@]}"; do
    read -r from to dig acc <<<"$pair"
    if train "ck-eval-$from-$to" 60 1 "$to" --eval --resume "$(ckf "ck-$from" "$full")"; then
      e_d=$(mval "$LOGS/ck-eval-$from-$to.jsonl" eval params_sha256) e_a=$(mval "$LOGS/ck-eval-$from-$to.jsonl" eval test_acc)
      [ "$e_d" = "$dig" ] && within "$e_a" "$acc" 0.2 && detail+=("$from→$to eval: same bits, acc $(pct "$e_a")") \
        || { ok=0; detail+=("$from→$to eval: digest ${e_d:0:12} vs ${dig:0:12}, acc $(pct "$e_a") vs $(pct "$acc")"); }
    else ok=0; detail+=("$from→$to eval failed"); tail_of "ck-eval-$from-$to"; fi
    if train "ck-on-$from-$to" 60 1 "$to" "${ck[@]}" --resume "$(ckf "ck-$from" "$half")"; then
      r_a=$(mval "$LOGS/ck-on-$from-$to.jsonl" final test_acc)
      within "$r_a" "$acc" 1.5 && detail+=("$from→$to resume: acc $(pct "$r_a")") \
        || { ok=0; detail+=("$from→$to resume: acc $(pct "$r_a") vs $(pct "$acc")"); }
    else ok=0; detail+=("$from→$to resume failed"); tail_of "ck-on-$from-$to"; fi
  done
  st=pass; [ $ok = 1 ] || st="FAIL"
  [ $DRY = 1 ] && [ $ok = 1 ] && st="pass (dry run: CPU on both sides)"
  row "checkpoints: write + resume on $DEV, $DEV→$OTHER and $OTHER→$DEV (eval: same bits, ±0.2 pt; resume: ±1.5 pt)" "$st" \
    "$(IFS=';'; echo "${detail[*]}")" "" "" "$((SECONDS - t_ck))"
else no_time "checkpoints"; fi
pack

# 6d. 1 rank over NCCL; the 8-rank rehearsal: 8 ranks share the one GPU over MPI, deterministic
if [ $DRY = 0 ] && [ -n "$nccl_h" ]; then
  if ! b=$(budget 20 90); then no_time "1 rank --comm nccl"
  elif rc=0; train nccl-np1 "$b" 1 cuda "${common[@]}" --max-steps 200 --comm nccl --comm-timeout 20 || rc=$?; [ $rc -eq 0 ]; then
    if grep -q "gradients summed by nccl" "$LOGS/nccl-np1.log"; then
      row "1 rank --comm nccl (200 steps)" pass "$(pct "$(mval "$LOGS/nccl-np1.jsonl" final test_acc)")" "" "" "$STEP_S"
    else row "1 rank --comm nccl" "FAIL: the banner does not say 'gradients summed by nccl'" "" "" "" "$STEP_S"; fi
  else row "1 rank --comm nccl" "FAIL: $(why $rc "$STEP_S" 90)" "" "" "" "$STEP_S"; tail_of nccl-np1; fi
fi
np=8; [ $DRY = 1 ] && np=2
if b=$(budget 40 180); then
  t_r=$SECONDS
  det=(--model mlp --batch 128 --epochs 1 --max-steps 100 --seed 7 --deterministic)
  [ $DRY = 1 ] && det=(--model mlp --batch 128 --epochs 1 --max-steps 20 --seed 7 --deterministic)
  if train "rehearsal-np1" 90 1 $DEV "${det[@]}" && train "rehearsal-np$np" "$(budget 20 150 || echo 20)" $np $DEV "${det[@]}" --comm mpi; then
    a=$(mval "$LOGS/rehearsal-np1.jsonl" final params_sha256) b8=$(mval "$LOGS/rehearsal-np$np.jsonl" final params_sha256)
    path=$(grep -o 'gradients summed by [a-z-]*' "$LOGS/rehearsal-np$np.log" | head -n 1)
    lab="rehearsal: $np ranks on one $( [ $DRY = 1 ] && echo CPU || echo GPU) (--comm mpi, deterministic) vs 1 rank"
    [ -n "$a" ] && [ "$a" = "$b8" ] && row "$lab" pass "same bits (${a:0:16}…), $path" "" "the same params_sha256" "$((SECONDS - t_r))" \
      || row "$lab" "FAIL: digests differ (${a:0:12} vs ${b8:0:12})" "" "" "the same params_sha256" "$((SECONDS - t_r))"
  else row "rehearsal: $np ranks, --comm mpi" "FAIL: a run failed" "" "" "" "$((SECONDS - t_r))"; tail_of "rehearsal-np$np"; fi
else no_time "8-rank rehearsal"; fi

# 6d'. --accum-steps 4, --zero 1, --trace (launch/gpu/rows.sh)
gc_feature_rows

# 6e. cnn-bn (batch norm, dropout: no graph) on the GPU against the CPU, the same 300 steps
nb=300; [ $DRY = 1 ] && nb=10
if b=$(budget 40 150); then
  t_b=$SECONDS
  bn=(--model cnn-bn --batch 128 --epochs 1 --max-steps "$nb" --optim adam --lr 1e-3 --schedule cosine --seed 3)
  if [ $DRY = 0 ]; then train cnnbn-cpu "$b" 1 cpu "${bn[@]}" --threads $((NCPU > 4 ? NCPU - 2 : 2)) & bpid=$!; fi
  train "cnnbn-$DEV" "$b" 1 $DEV "${bn[@]}"; rc=$?
  a=$(mval "$LOGS/cnnbn-$DEV.jsonl" final test_acc)
  if [ $DRY = 1 ]; then
    [ $rc -eq 0 ] && row "cnn-bn, CPU half (dry run: $nb steps)" info "$(pct "$a")" "" "" "$((SECONDS - t_b))" \
      || { row "cnn-bn (dry run)" "FAIL: exit $rc" "" "" "" "$((SECONDS - t_b))"; tail_of "cnnbn-$DEV"; }
  else
    wait "$bpid"; rc2=$?
    c=$(mval "$LOGS/cnnbn-cpu.jsonl" final test_acc)
    if [ $rc -ne 0 ]; then row "cnn-bn, $nb steps, GPU" "FAIL: $(why $rc $((SECONDS - t_b)) 150)" "" "" "" "$((SECONDS - t_b))"; tail_of "cnnbn-$DEV"
    elif [ $rc2 -ne 0 ]; then row "cnn-bn, $nb steps: GPU / CPU" "skipped: the CPU run did not finish (exit $rc2)" "$(pct "$a")" "" "" "$((SECONDS - t_b))"
    else
      st=pass; within "$a" "$c" 1.5 && atleast "$a" 0.80 || st="FAIL: not ≥ 80 % and within 1.5 points of the CPU"
      row "cnn-bn (batch norm, dropout), $nb steps: test acc GPU / CPU" "$st" "$(pct "$a") / $(pct "$c")" "" "≥ 80 %, within 1.5 points" "$((SECONDS - t_b))"
    fi
  fi
else no_time "cnn-bn"; fi

# 6f. tf32 training, the quickstart recipe: within 0.5 points of fp32
if b=$(budget 20 150); then
  rc=0; train "$DEV-tf32" "$b" 1 $DEV "${recipe[@]}" --epochs $ep --precision tf32 "${tiny[@]}" || rc=$?
  if [ $rc -eq 0 ]; then
    a=$(mval "$LOGS/$DEV-tf32.jsonl" final test_acc)
    if [ $DRY = 1 ]; then row "mlp quickstart recipe, tf32, CPU half (dry run)" info "$(pct "$a")" "" "" "$STEP_S"
    else
      graph_ok "$DEV-tf32"
      st=pass; within "$a" "${ACC[fp32]:-}" 0.5 || st="FAIL: not within 0.5 points of fp32 ($(pct "${ACC[fp32]:-}"))"
      [ -n "${ACC[fp32]:-}" ] || st="skipped: no fp32 run to compare with"
      row "… tf32 (cuBLAS TF32 tensor-op math), $ep epochs" "$st" "$(pct "$a"), $(epoch_s "$LOGS/$DEV-tf32.jsonl") s" "" "within 0.5 points of fp32" "$STEP_S"
    fi
  else row "mlp quickstart recipe, tf32" "FAIL: $(why $rc "$STEP_S" 150)" "" "" "" "$STEP_S"; tail_of "$DEV-tf32"; fi
else no_time "tf32 training"; fi
fi  # [ -n "$FM" ]
pack

# 6g. compute-sanitizer: memcheck over every op family, racecheck over those with shared memory
if [ $DRY = 1 ] || [ $cuda = OFF ]; then row "compute-sanitizer memcheck / racecheck" "skipped: dry run (needs a GPU)"
elif [ -z "$SAN" ]; then row "compute-sanitizer memcheck / racecheck" "skipped: no compute-sanitizer on this machine"
else
  for tool in memcheck racecheck; do
    fams=$("$OPS" --list)
    # the kernels with __shared__ arrays: colsum (act.cu), conv_db (conv.cu), loss.cu, norm.cu
    [ $tool = racecheck ] && fams="colsum loss conv batchnorm"
    clean=() bad=() notrun=() t_s=$SECONDS
    for f in $fams; do
      if b=$(budget 15 120); then
        rc=0; DLFS_OPS_FAMILY_TIMEOUT=$b run "san-$tool-$f" "$b" "$SAN" --tool $tool --error-exitcode 99 "$OPS" --no-fork "$f" || rc=$?
        if [ $rc -eq 0 ]; then clean+=("$f")
        else bad+=("$f ($( [ $rc -eq 99 ] && echo "$tool errors" || why $rc "$STEP_S" 120))"); tail_of "san-$tool-$f" 15; fi
      else notrun+=("$f"); fi
    done
    st=pass; [ ${#bad[@]} -eq 0 ] || st="FAIL: ${bad[*]}"
    [ ${#notrun[@]} -eq 0 ] || { [ ${#bad[@]} -eq 0 ] && st="skipped: no time for ${notrun[*]}"; }
    row "compute-sanitizer $tool: op families" "$st" "${#clean[@]} clean: ${clean[*]}" "" "no errors" "$((SECONDS - t_s))"
  done
fi

# ==== the end ==================================================================================
{
  echo
  echo "## Summary"
  echo
  echo "$N_PASS passed, $N_FAIL failed, $N_SKIP skipped, $N_INFO for information; $((SECONDS - T0)) s of --deadline $DEADLINE${GPU:+; $GPU}."
  [ ${#FAILED[@]} -eq 0 ] || { echo; echo "Failed:"; printf -- '- %s\n' "${FAILED[@]}"; }
  [ ${#SKIPPED[@]} -eq 0 ] || { echo; echo "Skipped:"; printf -- '- %s\n' "${SKIPPED[@]}"; }
  echo
  echo "Logs: logs.tar.gz (one log per step)."
} >>"$MD"
pack
echo
cat "$MD"
echo
if [ $N_FAIL -eq 0 ]; then echo "gpu-check: no check failed ($N_SKIP skipped) in $((SECONDS - T0)) s: $MD, $OUT/logs.tar.gz"; exit 0; fi
echo "gpu-check: $N_FAIL check(s) failed in $((SECONDS - T0)) s: $MD, $OUT/logs.tar.gz"; exit 1
