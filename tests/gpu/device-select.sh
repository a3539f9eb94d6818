#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR disable=SC2015 # `check && t_pass || t_fail`: t_pass never fails
# Device selection errors of dlfs-train (src/backend/registry.c):
#   hidden          CUDA_VISIBLE_DEVICES=-1: --device cuda fails with one line,
#                   --device auto trains on the CPU (any build, any machine)
#   oversubscribed  two ranks on one GPU (compared by UUID): one line naming the
#                   way out (fewer ranks per node, or --comm mpi); needs a GPU
. "$(dirname "$0")/../lib.sh"
train=$1 mode=$4
bench=(--bench --steps 1 --bench-warmup 0 --model 784-10)

case $mode in
hidden)
  t_expect_error "--device cuda with every GPU hidden" 1 "--device cuda: no usable GPU" \
    env CUDA_VISIBLE_DEVICES=-1 mpirun -np 1 "$train" "${bench[@]}" --device cuda
  out=$(CUDA_VISIBLE_DEVICES=-1 timeout 120 mpirun -np 1 "$train" "${bench[@]}" --device auto 2>&1)
  if grep -q "cpu backend" <<<"$out"; then t_pass "--device auto falls back to the CPU"
  else t_fail "--device auto with GPUs hidden: $out"; fi
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
