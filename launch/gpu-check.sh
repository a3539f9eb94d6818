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
#   4. benchmarks, dlfs and PyTorch (launch/study/torch_ref.py) on the same models in the
#      same run: mlp/128 (CUDA graph on and off), mlp-large/8192 (fp32, bf16, tf32),
#      cnn/128;
#   5. the trainings with gates: mlp, the quickstart recipe (Adam 1e-3, cosine, seed 1,
#      batch 128, 10 epochs) in fp32 and bf16 on the GPU and in fp32 on the CPU (in
#      the background, same recipe); the cnn recipe;
#   5b. resnet20 (the README's recipe, 1 epoch: >= 83 %) and gpt-tiny (300 steps on a
#      token file made from the repository's own docs: validation loss below 0.8 x the
#      byte unigram entropy of its validation text); resnet50 (batch 32) and gpt2
#      (4 windows of 1024) benches in fp32 and bf16 beside PyTorch's (launch/gpu/models.sh);
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

# ==== the steps: each a file of launch/gpu/, run in this shell ===============================
# shellcheck source=launch/gpu/preflight.sh
. "$SRC/launch/gpu/preflight.sh"      # 1. preflight (exit 3 when something is missing)
# shellcheck source=launch/gpu/build.sh
. "$SRC/launch/gpu/build.sh"          # 2. configure and build (exit 1 when it fails)
# shellcheck source=launch/gpu/ops.sh
. "$SRC/launch/gpu/ops.sh"            # 3. op tests, 4. benchmarks
# shellcheck source=launch/gpu/train.sh
. "$SRC/launch/gpu/train.sh"          # 5. trainings with gates
# shellcheck source=launch/gpu/models.sh
. "$SRC/launch/gpu/models.sh"         # 5b. resnet20, gpt-tiny; resnet50, gpt2 beside PyTorch
# shellcheck source=launch/gpu/rest.sh
. "$SRC/launch/gpu/rest.sh"           # 6. the rest

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
