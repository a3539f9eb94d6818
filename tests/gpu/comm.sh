#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR disable=SC2015 # `check && t_pass || t_fail`: t_pass never fails
# Gradient paths on a GPU (needs one; else skipped with 77). On ONE visible GPU:
#   - 1 rank --comm nccl trains through NCCL, to the same bits as --comm mpi
#     (one rank: NCCL's in-place sum must leave the gradients as they are);
#   - 2 ranks --comm nccl: one clear error (NCCL refuses a shared GPU);
#   - 2 ranks --comm mpi share the GPU (gradients staged through pinned host
#     memory) and train; in deterministic mode to the same bits as 1 rank;
#   - a stalled rank on the staged path ends the job after --comm-timeout;
#   - a hung NCCL set-up (test hook DLFS_FAULT_NCCL_INIT_STALL=RANK:SECONDS: the
#     non-blocking ncclCommInitRankConfig never completes on that rank) ends the
#     job within --comm-timeout, with one error line naming NCCL.
. "$(dirname "$0")/../lib.sh"
train=$1 fm=$3
[ -f "$fm" ] || { echo "no $fm: skipped"; exit 77; }
export CUDA_VISIBLE_DEVICES=${CUDA_VISIBLE_DEVICES:-0}
CUDA_VISIBLE_DEVICES=${CUDA_VISIBLE_DEVICES%%,*} # exactly one GPU
common=(--data "$fm" --model mlp --batch 128 --epochs 1 --max-steps 60 --seed 7 --device cuda)
probe=$(timeout 120 mpirun -np 1 "$train" --bench --steps 1 --bench-warmup 0 --model 784-10 --device cuda 2>&1)
if grep -q "no usable GPU" <<<"$probe"; then echo "skipped: no GPU ($probe)"; exit 77; fi

run() { # NAME NP ARGS...: train, keep stdout+stderr and metrics under NAME
  local name=$1 np=$2; shift 2
  timeout 300 mpirun -np "$np" "$train" "${common[@]}" "$@" --metrics "$T_TMP/$name.jsonl" > "$T_TMP/$name.out" 2>&1 \
    || { t_fail "$name: exit $?"; tail -5 "$T_TMP/$name.out" >&2; return 1; }
}
# banner NAME PATH: the banner names the backend and the gradient path (none: "no gradients to exchange")
banner() { local want="gradients summed by $2;"; [ "$2" = none ] && want="1 rank on .* (no gradients to exchange);"
  grep -q "cuda backend.*$want" "$T_TMP/$1.out" && t_pass "$1: cuda backend, path $2" \
  || { t_fail "$1: banner lacks 'cuda backend ... $2'"; head -2 "$T_TMP/$1.out" >&2; }; }
acc_ok() { awk -v a="$(t_acc "$T_TMP/$1.jsonl")" 'BEGIN { exit !(a > 0.6) }' && t_pass "$1: test_acc $(t_acc "$T_TMP/$1.jsonl")" \
  || t_fail "$1: test_acc '$(t_acc "$T_TMP/$1.jsonl")' after 60 steps"; }

run nccl-np1 1 --comm nccl && { banner nccl-np1 nccl; acc_ok nccl-np1; }
run mpi-np1 1 --comm mpi && banner mpi-np1 none
a=$(t_digest "$T_TMP/nccl-np1.jsonl") b=$(t_digest "$T_TMP/mpi-np1.jsonl")
[ -n "$a" ] && [ "$a" = "$b" ] && t_pass "1 rank: --comm nccl digest equals --comm mpi" || t_fail "1 rank: nccl $a != mpi $b"

t_expect_error "2 ranks, one GPU, --comm nccl" 1 "--comm mpi" \
  mpirun -np 2 "$train" "${common[@]}" --comm nccl

run mpi-np2 2 --comm mpi && { banner mpi-np2 mpi-staged; acc_ok mpi-np2; }
run det-np1 1 --deterministic && banner det-np1 none
run det-np2 2 --deterministic --comm mpi && banner det-np2 mpi-tree
a=$(t_digest "$T_TMP/det-np1.jsonl") b=$(t_digest "$T_TMP/det-np2.jsonl")
[ -n "$a" ] && [ "$a" = "$b" ] && t_pass "deterministic on the GPU: 2 ranks equal 1 rank" || t_fail "deterministic: np=1 $a != np=2 $b"

t0=$(date +%s)
DLFS_FAULT_COMM_STALL=1:3:60 t_expect_error "stalled rank on the staged path" 1 "the gradient all-reduce (MPI" \
  mpirun -np 2 "$train" "${common[@]}" --comm mpi --comm-timeout 2
el=$(( $(date +%s) - t0 )); [ "$el" -lt 40 ] && t_pass "stall ended after $el s" || t_fail "stall took $el s"

t0=$(date +%s)
DLFS_FAULT_NCCL_INIT_STALL=0:120 t_expect_error "hung NCCL set-up, --comm-timeout 3" nz "NCCL" \
  mpirun -np 1 "$train" "${common[@]}" --comm nccl --comm-timeout 3
el=$(( $(date +%s) - t0 )); [ "$el" -lt 30 ] && t_pass "hung NCCL set-up ended after $el s (timeout 3 s)" \
  || t_fail "hung NCCL set-up took $el s with --comm-timeout 3"
t_done
