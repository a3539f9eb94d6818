#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR disable=SC2015 # `check && t_pass || t_fail`: t_pass never fails
# Device selection errors of dlfs-train (src/backend/registry.c):
#   hidden          CUDA_VISIBLE_DEVICES=-1: --device cuda fails with one line,
#                   --device auto trains on the CPU and says why once, on rank 0
#                   (any build, any machine); GPUs visible but unusable (a fake
#                   CUDA_VISIBLE_DEVICES=99, SLURM's GPU variables where this
#                   machine has no GPU): --device auto refuses on every rank with
#                   one line naming the evidence, --device cpu still trains
#   oversubscribed  two ranks on one GPU (compared by UUID): one line naming the
#                   way out (fewer ranks per node, or --comm mpi); needs a GPU
. "$(dirname "$0")/../lib.sh"
train=$1 mode=$4
bench=(--bench --steps 1 --bench-warmup 0 --model 784-10)

case $mode in
hidden)
  t_expect_error "--device cuda with every GPU hidden" 1 "--device cuda: no usable GPU" \
    env CUDA_VISIBLE_DEVICES=-1 mpirun -np 1 "$train" "${bench[@]}" --device cuda
  out=$(CUDA_VISIBLE_DEVICES=-1 timeout 120 mpirun -np 2 "$train" "${bench[@]}" --device auto 2>&1)
  if grep -q "cpu backend" <<<"$out" && [ "$(grep -c "^--device auto: no GPU visible (CUDA_VISIBLE_DEVICES hides them), so the CPU: " <<<"$out")" = 1 ]
  then t_pass "--device auto falls back to the CPU and says why once ($(grep "^--device auto" <<<"$out"))"
  else t_fail "--device auto with GPUs hidden, 2 ranks: want the CPU and one line saying why: $out"; fi
  # a job meant for GPUs whose GPUs are unusable: refused on every rank (exit 1 each)
  t_expect_error "--device auto, CUDA_VISIBLE_DEVICES=99 (no such GPU)" 1 \
    "--device auto: GPUs are visible (CUDA_VISIBLE_DEVICES=99) but none is usable" \
    env CUDA_VISIBLE_DEVICES=99 mpirun -np 2 "$train" "${bench[@]}" --device auto
  out=$(CUDA_VISIBLE_DEVICES=99 timeout 120 mpirun -np 1 "$train" "${bench[@]}" --device cpu 2>&1) &&
    grep -q "cpu backend" <<<"$out" && t_pass "--device cpu trains whatever GPUs are visible" ||
    t_fail "--device cpu with CUDA_VISIBLE_DEVICES=99: $out"
  if ls /dev/nvidia[0-9]* /proc/driver/nvidia/gpus/* >/dev/null 2>&1; then
    echo "SLURM variables without CUDA_VISIBLE_DEVICES: skipped (this machine has a GPU, auto would use it)"
  else
    t_expect_error "--device auto, SLURM_STEP_GPUS=0 (GPU index 0) on a machine without GPUs" 1 \
      "GPUs are visible (SLURM gave this job GPUs: SLURM_STEP_GPUS=0) but none is usable" \
      env -u CUDA_VISIBLE_DEVICES SLURM_STEP_GPUS=0 SLURM_GPUS_ON_NODE=1 mpirun -np 2 "$train" "${bench[@]}" --device auto
    out=$(env -u CUDA_VISIBLE_DEVICES SLURM_GPUS_ON_NODE=0 timeout 120 mpirun -np 1 "$train" "${bench[@]}" 2>&1)
    if grep -q "cpu backend" <<<"$out" && grep -q "^--device auto: no GPU visible (no NVIDIA device" <<<"$out"
    then t_pass "no GPU at all (SLURM_GPUS_ON_NODE=0): the CPU, and why"
    else t_fail "no GPU at all: want the CPU and one line saying why: $out"; fi
  fi
  ;;
oversubscribed)
  # one visible GPU, two ranks on this node
  probe=$(CUDA_VISIBLE_DEVICES=0 timeout 120 mpirun -np 1 "$train" "${bench[@]}" --device cuda 2>&1)
  if grep -q "no usable GPU" <<<"$probe"; then echo "skipped: no GPU ($probe)"; exit 77; fi
  grep -q "cuda backend" <<<"$probe" && t_pass "one rank on GPU 0" || t_fail "one rank on GPU 0: $probe"
  t_expect_error "two ranks, one GPU" 1 "fewer ranks per node" \
    env CUDA_VISIBLE_DEVICES=0 mpirun -np 2 "$train" "${bench[@]}" --device cuda
  t_expect_error "two ranks, one GPU, auto" 1 "fewer ranks per node" \
    env CUDA_VISIBLE_DEVICES=0 mpirun -np 2 "$train" "${bench[@]}" --device auto
  ;;
*) echo "usage: $0 TRAIN DATA FMNIST hidden|oversubscribed" >&2; exit 2 ;;
esac
t_done
