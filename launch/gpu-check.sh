#!/usr/bin/env bash
# gpu-check.sh — the GPU check, from a clean checkout on a GPU machine (shared/GPU.md):
#
#   launch/gpu-check.sh            configure with CUDA (sm_90), build, ctest -L gpu,
#                                  Fashion-MNIST trainings (CPU vs CUDA; the 10-epoch mlp
#                                  target in fp32 and bf16; the cnn target; 1 rank over
#                                  NCCL and 2 ranks sharing the GPU over MPI), dlfs-train
#                                  --bench for mlp, mlp-large (fp32, bf16) and cnn, the same
#                                  steps in PyTorch (launch/torch-ref.py) when `import torch`
#                                  works, and a Markdown table last.
#
# Environment: OUT (logs; default ./gpu-check-out), BUILD_DIR (default
# $TMPDIR/dlfs-gpu-check-build), CUDA_ARCH (default 90), FMNIST_DIR (default
# /usr/share/datasets/fashion-mnist), GPU_CHECK_QUICK=1 (fewer epochs/steps).
# Budget: about 5 minutes on one H100 (not yet measured: the script has never run on a
# GPU); GPU_CHECK_QUICK=1 where the machine is lent for less. Rows land in
# $OUT/partial.md as they are measured. Exit 0 when every check passed; 1 otherwise
# (the table is printed either way); 1 at once, with the reason, where no GPU is.
set -uo pipefail

SRC=$(cd "$(dirname "$0")/.." && pwd)
OUT=${OUT:-$PWD/gpu-check-out}
BUILD=${BUILD_DIR:-${TMPDIR:-/tmp}/dlfs-gpu-check-build}
ARCH=${CUDA_ARCH:-90}
FMNIST_DIR=${FMNIST_DIR:-/usr/share/datasets/fashion-mnist}
QUICK=${GPU_CHECK_QUICK:-0}
mkdir -p "$OUT"
: >"$OUT/partial.md"
T0=$SECONDS
FAILS=0
declare -a ROWS=()   # Markdown table rows, printed last
declare -a NOTES=()

say() { printf '[%3ds] %s\n' $((SECONDS - T0)) "$*"; }
# Rows and notes also go to $OUT/partial.md as they come, so that a run cut short (a
# device lease running out) still leaves what it measured.
fail() { say "FAIL: $*"; FAILS=$((FAILS + 1)); NOTES+=("FAIL: $*"); echo "- FAIL: $*" >>"$OUT/partial.md"; }
note() { say "$*"; NOTES+=("$*"); echo "- $*" >>"$OUT/partial.md"; }
row() { ROWS+=("| $1 | $2 | $3 | $4 | $5 |"); echo "| $1 | $2 | $3 | $4 | $5 |" >>"$OUT/partial.md"; }
# run NAME TIMEOUT CMD...: log to $OUT/NAME.log, echo the status
run() {
  local name=$1 t=$2; shift 2
  say "$name: $*"
  timeout "$t" "$@" >"$OUT/$name.log" 2>&1
  local rc=$?
  [ $rc -eq 124 ] && say "$name: timed out after $t s"
  return $rc
}

# ---- 0. a GPU, or stop now --------------------------------------------------------------
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >"$OUT/nvidia-smi.log" 2>&1; then
  GPU=$(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null | head -n 1)
elif [ -e /dev/nvidia0 ]; then
  GPU="(nvidia-smi unavailable; /dev/nvidia0 present)"
else
  echo "gpu-check: no GPU on $(hostname): nvidia-smi is missing or lists no GPU and there is no /dev/nvidia0." >&2
  echo "gpu-check: run it on a GPU machine (shared/GPU.md); on this one, use ctest for the CPU suites." >&2
  exit 1
fi
command -v nvcc >/dev/null 2>&1 || [ -x /usr/local/cuda/bin/nvcc ] || {
  echo "gpu-check: no nvcc on PATH or in /usr/local/cuda/bin: install the CUDA toolkit." >&2; exit 1; }
command -v nvcc >/dev/null 2>&1 || export PATH=/usr/local/cuda/bin:$PATH
say "machine $(hostname): $GPU; logs in $OUT"

# ---- 1. configure and build --------------------------------------------------------------
gen=(); command -v ninja >/dev/null 2>&1 && gen=(-G Ninja)
[ -f "$BUILD/CMakeCache.txt" ] && ! grep -q "^CMAKE_GENERATOR:INTERNAL=${gen[1]:-Unix Makefiles}$" "$BUILD/CMakeCache.txt" \
  && rm -rf "$BUILD"
if ! run configure 300 cmake -S "$SRC" -B "$BUILD" "${gen[@]}" -DDLFS_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES="$ARCH" \
     -DCMAKE_BUILD_TYPE=Release; then
  tail -n 30 "$OUT/configure.log"; echo "gpu-check: configure failed (log: $OUT/configure.log)" >&2; exit 1
fi
if ! run build 600 cmake --build "$BUILD" -j "$(nproc)"; then
  grep -E "error|Error" "$OUT/build.log" | head -n 30; echo "gpu-check: build failed (log: $OUT/build.log)" >&2; exit 1
fi
nvcc_warn=$(grep -c "warning" "$OUT/build.log")
say "built in $BUILD ($nvcc_warn warning lines)"
TRAIN=$BUILD/src/dlfs-train DATA=$BUILD/src/dlfs-data
. "$SRC/tests/mpi-env.sh"   # mpirun as root, no pinning surprises, one-line errors

# ---- 2. the gpu tests ----------------------------------------------------------------------
(cd "$BUILD" && timeout 600 ctest -L gpu --output-on-failure) >"$OUT/ctest-gpu.log" 2>&1
gpu_summary=$(grep -E "tests passed|tests failed" "$OUT/ctest-gpu.log" | tail -n 1)
skipped=$(grep -c '\*\*\*Skipped' "$OUT/ctest-gpu.log")
if ! grep -q "100% tests passed" "$OUT/ctest-gpu.log"; then fail "ctest -L gpu: $gpu_summary (see $OUT/ctest-gpu.log)"
elif [ "$skipped" -gt 0 ]; then fail "ctest -L gpu: $skipped test(s) SKIPPED on a GPU machine (see $OUT/ctest-gpu.log)"
else say "ctest -L gpu: $gpu_summary"; fi
row "\`ctest -L gpu\` (op tests vs CPU, device selection)" "${gpu_summary:-no summary}" "—" "—" "all pass, none skipped"

# ---- 3. trainings on Fashion-MNIST ----------------------------------------------------
acc_of() { sed -n 's/.*"event": "final".*"test_acc": \([0-9.]*\).*/\1/p' "$1" 2>/dev/null | tail -n 1; }
# mean epoch time without the first epoch (warm-up), in seconds
epoch_s() { awk -F'"epoch_time_s": ' 'NF > 1 { split($2, a, ","); n++; if (n > 1) { s += a[1]; k++ } else f = a[1] }
  END { if (k) printf "%.3f", s / k; else if (n) printf "%.3f", f }' "$1"; }
# within D points: within A B D (accuracies as fractions)
within() { awk -v a="$1" -v b="$2" -v d="$3" 'BEGIN { x = (a - b) * 100; exit !(x < d && x > -d) }'; }
atleast() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a + 0 >= b) }'; }
FM=$OUT/fmnist.h5
if [ -f "$FMNIST_DIR/train-images-idx3-ubyte.gz" ] || [ -f "$FMNIST_DIR/train-images-idx3-ubyte" ]; then
  run convert 120 "$DATA" convert --fashion-mnist "$FMNIST_DIR" -o "$FM" || { fail "dlfs-data convert"; FM=; }
else
  note "no Fashion-MNIST in $FMNIST_DIR (apt-get install dataset-fashion-mnist): trainings skipped"; FM=
fi
if [ -n "$FM" ]; then
  ep_short=2 ep_long=10 ep_cnn=15; [ "$QUICK" = 1 ] && ep_long=3 ep_cnn=2
  # the same 2 epochs on both backends: accuracies must agree (not bit-identical: other GEMM order)
  for dev in cpu cuda; do
    run "train-$dev-${ep_short}ep" 300 mpirun -np 1 "$TRAIN" --data "$FM" --device "$dev" --epochs $ep_short \
      --metrics "$OUT/train-$dev.jsonl" || fail "training ${ep_short} epochs on $dev (log: $OUT/train-$dev-${ep_short}ep.log)"
  done
  a_cpu=$(acc_of "$OUT/train-cpu.jsonl"); a_gpu=$(acc_of "$OUT/train-cuda.jsonl")
  if [ -n "$a_cpu" ] && [ -n "$a_gpu" ]; then
    within "$a_cpu" "$a_gpu" 1 || fail "CPU and CUDA disagree after $ep_short epochs: test_acc $a_cpu vs $a_gpu"
  fi
  row "Fashion-MNIST mlp, $ep_short epochs, test acc CPU / CUDA" "${a_cpu:-?} / ${a_gpu:-?}" "—" "—" "within 1 point"
  # the target runs: mlp, 10 epochs, batch 128, Adam 1e-3 (DESIGN.md Targets), fp32 then bf16
  declare -A ACC=()
  for prec in fp32 bf16; do
    if run "train-cuda-$prec-${ep_long}ep" 300 mpirun -np 1 "$TRAIN" --data "$FM" --device cuda --epochs $ep_long \
         --precision $prec --metrics "$OUT/train-cuda-$prec.jsonl"; then
      ACC[$prec]=$(acc_of "$OUT/train-cuda-$prec.jsonl")
      row "Fashion-MNIST mlp, $ep_long epochs, batch 128, $prec (acc, s/epoch)" \
        "${ACC[$prec]}, $(epoch_s "$OUT/train-cuda-$prec.jsonl") s" "88.7 %, 0.45 s (DESIGN.md)" "—" \
        "$([ $prec = fp32 ] && echo "≥ 0.895, ≤ 0.05 s" || echo "within 0.5 points of fp32")"
    else
      fail "training $ep_long epochs on cuda, $prec (log: $OUT/train-cuda-$prec-${ep_long}ep.log)"
    fi
  done
  if [ "$QUICK" != 1 ] && [ -n "${ACC[fp32]:-}" ]; then
    atleast "${ACC[fp32]}" 0.895 || fail "mlp fp32 after $ep_long epochs: ${ACC[fp32]} < 0.895"
    [ -n "${ACC[bf16]:-}" ] && { within "${ACC[fp32]}" "${ACC[bf16]}" 0.5 \
      || fail "mlp bf16 ${ACC[bf16]} is not within 0.5 points of fp32 ${ACC[fp32]}"; }
  fi
  # the cnn target (README's recipe): >= 92.5 % within 15 epochs, <= 0.4 s per epoch
  if run "train-cuda-cnn" 420 mpirun -np 1 "$TRAIN" --data "$FM" --device cuda --model cnn --epochs $ep_cnn \
       --batch 128 --optim adamw --lr 1e-3 --weight-decay 0.05 --schedule cosine --warmup 200 --augment-crop 2 \
       --augment-flip --seed 1 --metrics "$OUT/train-cuda-cnn.jsonl"; then
    a_cnn=$(acc_of "$OUT/train-cuda-cnn.jsonl")
    row "Fashion-MNIST cnn, $ep_cnn epochs, AdamW, crop+flip (acc, s/epoch)" \
      "$a_cnn, $(epoch_s "$OUT/train-cuda-cnn.jsonl") s" "91.6 %, 0.8 s (DESIGN.md)" "—" "≥ 0.925, ≤ 0.4 s"
    [ "$QUICK" = 1 ] || atleast "$a_cnn" 0.925 || fail "cnn after $ep_cnn epochs: $a_cnn < 0.925"
  else
    fail "cnn training on cuda (log: $OUT/train-cuda-cnn.log)"
  fi
  # NCCL with one rank; two ranks sharing the one GPU only through the MPI path (NCCL refuses)
  run train-np1-nccl 300 mpirun -np 1 "$TRAIN" --data "$FM" --device cuda --comm nccl --epochs 1 \
    --metrics "$OUT/train-np1-nccl.jsonl" || fail "1 rank --comm nccl (log: $OUT/train-np1-nccl.log)"
  run train-np2-mpi 300 mpirun -np 2 "$TRAIN" --data "$FM" --device cuda --comm mpi --epochs 1 \
    --metrics "$OUT/train-np2-mpi.jsonl" || fail "2 ranks on one GPU, --comm mpi (log: $OUT/train-np2-mpi.log)"
  row "1 epoch: 1 rank \`--comm nccl\` / 2 ranks on one GPU \`--comm mpi\` (acc)" \
    "$(acc_of "$OUT/train-np1-nccl.jsonl") / $(acc_of "$OUT/train-np2-mpi.jsonl")" "—" "—" "both train"
fi

# ---- 4. benchmarks: dlfs and PyTorch, same models, same steps ------------------------
bsteps_small=200 bsteps_large=20; [ "$QUICK" = 1 ] && bsteps_small=50 bsteps_large=5
bench_ms() { sed -n 's/.*median step \([0-9.]*\) ms.*/\1/p' "$1" | tail -n 1; }
declare -A DL=()
# name model batch steps warmup extra options
for spec in "mlp mlp 128 $bsteps_small 20" "mlp-nograph mlp 128 $bsteps_small 20 --cuda-graph off" \
            "mlp-large-fp32 mlp-large 8192 $bsteps_large 3" "cnn cnn 128 $bsteps_small 10"; do
  set -- $spec
  name=$1 model=$2 batch=$3 steps=$4 warm=$5; shift 5
  if run "bench-$name" 300 mpirun -np 1 "$TRAIN" --bench --device cuda --model "$model" --batch "$batch" \
       --steps "$steps" --bench-warmup "$warm" "$@"; then DL[$name]=$(bench_ms "$OUT/bench-$name.log")
  else fail "dlfs-train --bench $name (log: $OUT/bench-$name.log)"; fi
done

# the same mlp-large in bf16 and tf32 GEMMs (PyTorch's bf16 anchor, DESIGN.md: 3.53 ms)
for prec in bf16 tf32; do
  if run "bench-mlp-large-$prec" 300 mpirun -np 1 "$TRAIN" --bench --device cuda --model mlp-large --batch 8192 \
       --steps "$bsteps_large" --bench-warmup 3 --precision $prec; then
    DL[mlp-large-$prec]=$(bench_ms "$OUT/bench-mlp-large-$prec.log")
  else fail "dlfs-train --bench --model mlp-large --precision $prec (log: $OUT/bench-mlp-large-$prec.log)"; fi
done

declare -A PT=()
if python3 -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' >/dev/null 2>&1; then
  run torch-small 300 python3 "$SRC/launch/torch-ref.py" --device cuda --steps "$bsteps_small" --warmup 20 \
    mlp:128 mlp:128:fp32:graph cnn:128 cnn:128:fp32:graph || fail "PyTorch reference (log: $OUT/torch-small.log)"
  run torch-large 300 python3 "$SRC/launch/torch-ref.py" --device cuda --steps "$bsteps_large" --warmup 3 \
    mlp-large:8192 mlp-large:8192:bf16 mlp-large:8192:bf16:graph || fail "PyTorch reference (log: $OUT/torch-large.log)"
  while read -r _ name _ prec mode ms; do PT[$name-$prec-$mode]=$ms
  done < <(cat "$OUT/torch-small.log" "$OUT/torch-large.log" 2>/dev/null | grep -E '^torch [a-z-]+ [0-9]+ (fp32|bf16) (eager|graph) [0-9.]+$')
  say "$(head -n 1 "$OUT/torch-small.log")"
else
  note "no PyTorch with CUDA here (python3 -c 'import torch' failed or sees no GPU): no PyTorch column"
fi
row "\`mlp\` 784-512-512-10, batch 128, fp32, Adam step (ms), CUDA graph / off" \
  "${DL[mlp]:-?} / ${DL[mlp-nograph]:-?}" "${PT[mlp-fp32-eager]:-n/a}" "${PT[mlp-fp32-graph]:-n/a}" "≤ 0.06"
row "\`mlp-large\` 784-4096×3-10, batch 8192, fp32 no TF32, Adam step (ms)" "${DL[mlp-large-fp32]:-?}" \
  "${PT[mlp-large-fp32-eager]:-n/a}" "—" "≤ 36"
row "\`mlp-large\`, batch 8192, bf16 (fp32 master weights), Adam step (ms)" "${DL[mlp-large-bf16]:-?}" \
  "${PT[mlp-large-bf16-eager]:-n/a}" "${PT[mlp-large-bf16-graph]:-n/a}" "≤ 3.2"
row "\`mlp-large\`, batch 8192, --precision tf32, Adam step (ms)" "${DL[mlp-large-tf32]:-?}" "—" "—" "—"
row "\`cnn\`, batch 128, fp32, Adam step (ms)" "${DL[cnn]:-?}" "${PT[cnn-fp32-eager]:-n/a}" \
  "${PT[cnn-fp32-graph]:-n/a}" "469 steps ≤ 0.4 s"

# ---- 5. the table, last -----------------------------------------------------------------
echo
echo "## dlfs GPU check — $(hostname), $GPU, $(date -u '+%Y-%m-%d %H:%M UTC'), $((SECONDS - T0)) s"
echo
echo "Measured in this run on this machine (medians over the timed steps; dlfs: wall clock per step with"
echo "a device sync, PyTorch: CUDA events; both with device-resident data)."
echo
echo "| check | dlfs (cuda) | PyTorch eager | PyTorch CUDA graph | target |"
echo "|---|---|---|---|---|"
printf '%s\n' "${ROWS[@]}"
if [ ${#NOTES[@]} -gt 0 ]; then echo; printf -- '- %s\n' "${NOTES[@]}"; fi
echo
if [ $FAILS -eq 0 ]; then echo "gpu-check: all checks passed (logs: $OUT)"; exit 0; fi
echo "gpu-check: $FAILS check(s) failed (logs: $OUT)"; exit 1
