#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR disable=SC2015 # `check && t_pass || t_fail`: t_pass never fails
# --comm and --comm-timeout (src/comm, src/train/session.c), on the CPU:
#   - bad values and impossible combinations end with one message;
#   - --comm mpi trains to the same bits as the default path (deterministic and
#     fast mode, 2 ranks), and the banner and metrics name the path that ran;
#   - a rank that stalls before its reduction ends the whole job after
#     --comm-timeout, with a message naming the stuck wait (no hang).
. "$(dirname "$0")/../lib.sh"
train=$1 fm=$(t_small "$3")
[ -f "$fm" ] || { echo "no $fm: skipped"; exit 77; }
short=(--data "$fm" --model mlp --batch 128 --epochs 1 --max-steps 2)
t_expect_error "--comm bogus" 2 "--comm 'bogus': expected one of: auto mpi nccl" \
  mpirun -np 2 "$train" "${short[@]}" --comm bogus
t_expect_error "--comm-timeout -1" 2 "--comm-timeout '-1': must be between" \
  mpirun -np 2 "$train" "${short[@]}" --comm-timeout -1
t_expect_error "--comm nccl --device cpu" 2 "--comm nccl sums GPU buffers but --device cpu" \
  mpirun -np 2 "$train" "${short[@]}" --comm nccl --device cpu
t_expect_error "--comm nccl --deterministic" 2 "fixed order" \
  mpirun -np 2 "$train" "${short[@]}" --comm nccl --deterministic
# --device auto falling back to the CPU (no GPU visible, any build): NCCL has nothing to sum
t_expect_error "--comm nccl on the CPU fallback" 1 "--comm nccl sums GPU buffers, but this rank runs on the cpu backend" \
  env CUDA_VISIBLE_DEVICES=-1 mpirun -np 2 "$train" "${short[@]}" --comm nccl

# same bits through --comm mpi as through the default (auto = mpi on the CPU)
common=(--data "$fm" --model mlp --batch 128 --epochs 1 --max-steps 40 --seed 5 --device cpu)
for mode in det fast; do
  extra=(); [ $mode = det ] && extra=(--deterministic)
  for comm in default mpi; do
    c=(); [ $comm = mpi ] && c=(--comm mpi)
    mpirun -np 2 "$train" "${common[@]}" "${extra[@]}" "${c[@]}" --metrics "$T_TMP/$mode-$comm.jsonl" \
      > "$T_TMP/$mode-$comm.out" 2>&1 || { cat "$T_TMP/$mode-$comm.out"; t_fail "$mode --comm $comm run failed"; }
  done
  a=$(t_digest "$T_TMP/$mode-default.jsonl") b=$(t_digest "$T_TMP/$mode-mpi.jsonl")
  if [ -n "$a" ] && [ "$a" = "$b" ]; then t_pass "$mode: --comm mpi digest equals the default ($a)"
  else t_fail "$mode: --comm mpi digest '$b' != default '$a'"; fi
done
# and the deterministic guarantee holds through --comm mpi: 2 ranks = 1 rank, bit for bit
mpirun -np 1 "$train" "${common[@]}" --deterministic --metrics "$T_TMP/det-np1.jsonl" > "$T_TMP/det-np1.out" 2>&1 \
  || t_fail "det np=1 run failed"
a=$(t_digest "$T_TMP/det-np1.jsonl") b=$(t_digest "$T_TMP/det-mpi.jsonl")
[ -n "$a" ] && [ "$a" = "$b" ] && t_pass "det: --comm mpi on 2 ranks equals 1 rank" || t_fail "det: np=1 $a != np=2 --comm mpi $b"
# shellcheck disable=SC2034 # read through ${!w}
want_det=mpi-tree want_fast=mpi
for mode in det fast; do
  w=want_$mode
  grep -q "gradients summed by ${!w};" "$T_TMP/$mode-mpi.out" && grep -q "\"comm\": \"${!w}\"" "$T_TMP/$mode-mpi.jsonl" \
    && t_pass "$mode: banner and metrics name the path (${!w})" \
    || { t_fail "$mode: banner/metrics lack '${!w}'"; head -3 "$T_TMP/$mode-mpi.out"; tail -1 "$T_TMP/$mode-mpi.jsonl"; }
done
# one rank: nothing to sum
mpirun -np 1 "$train" "${common[@]}" --max-steps 2 2>&1 | grep -q " 1 rank on .* (no gradients to exchange);" \
  && t_pass "1 rank: the banner says no gradients are exchanged" || t_fail "1 rank: banner lacks 'no gradients to exchange'"

# a stuck rank: rank 1 stalls 60 s at step 3; rank 0 must give up after 2 s (fast
# mode: the bucket wait; deterministic mode: the fixed-order exchange)
for mode in fast det; do
  extra=(); [ $mode = det ] && extra=(--deterministic)
  what="the gradient all-reduce (MPI"; [ $mode = det ] && what="the deterministic gradient all-reduce"
  t0=$(date +%s)
  DLFS_FAULT_COMM_STALL=1:3:60 t_expect_error "$mode: stalled rank ends the job" 1 \
    "rank 0 ($(hostname)): $what" mpirun -np 2 "$train" "${common[@]}" "${extra[@]}" --comm-timeout 2
  el=$(( $(date +%s) - t0 ))
  if [ "$el" -lt 30 ]; then t_pass "$mode: ended after ${el} s (timeout 2 s, stall 60 s)"
  else t_fail "$mode: took ${el} s: the timeout did not end the job"; fi
done
# a rank stuck outside the gradient path (here: before the evaluation sums) must end
# the job the same way: every blocking sum is bounded by --comm-timeout
t0=$(date +%s)
DLFS_FAULT_EVAL_STALL=1:60 t_expect_error "stall in evaluation ends the job" 1 \
  "rank 0 ($(hostname)): a sum across ranks (evaluation" mpirun -np 2 "$train" "${common[@]}" --max-steps 2 \
  --comm-timeout 2
el=$(( $(date +%s) - t0 ))
if [ "$el" -lt 30 ]; then t_pass "evaluation stall: ended after ${el} s (timeout 2 s, stall 60 s)"
else t_fail "evaluation stall: took ${el} s: the timeout did not end the job"; fi
t_done
