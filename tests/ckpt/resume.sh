#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR disable=SC2015 # `check && t_pass || t_fail`: t_pass never fails
# Bitwise continuation in deterministic mode: N steps straight vs N/2, checkpoint,
# resume, N/2 more -> the same params_sha256; also saved at np=4, resumed at np=2,
# and a resume that changes allowed options (epochs) is accepted and logged.
. "$(dirname "$0")/../lib.sh"
train=$1 fm=$(t_small "$3")
[ -f "$fm" ] || { echo "no $fm: skipped"; exit 77; }
common=(--data "$fm" --model mlp --batch 128 --epochs 2 --max-steps 150 --deterministic --seed 5)
# 150 steps cross the epoch boundary (100 steps/epoch of the 12800-image slice); checkpoints every 75
mpirun -np 1 "$train" "${common[@]}" --metrics "$T_TMP/straight.jsonl" --checkpoint-dir "$T_TMP/c1" \
  --checkpoint-every 75 > "$T_TMP/straight.out" 2>&1 || { cat "$T_TMP/straight.out"; t_fail "straight run"; t_done; }
want=$(t_digest "$T_TMP/straight.jsonl")
[ -n "$want" ] || { t_fail "the straight run left no digest: nothing to compare with"; t_done; }
ls "$T_TMP/c1"
[ -f "$T_TMP/c1/ckpt-000000075.h5" ] && [ -f "$T_TMP/c1/ckpt-000000150.h5" ] && t_pass "checkpoints at 75 and 150" \
  || t_fail "expected ckpt-000000075.h5 and ckpt-000000150.h5"
mpirun -np 1 "$train" "${common[@]}" --resume "$T_TMP/c1/ckpt-000000075.h5" --metrics "$T_TMP/r1.jsonl" \
  > "$T_TMP/r1.out" 2>&1 || { cat "$T_TMP/r1.out"; t_fail "resume np=1"; }
[ "$(t_digest "$T_TMP/r1.jsonl")" = "$want" ] && t_pass "np=1: 75 + resume + 75 == 150 straight" \
  || t_fail "np=1 resume digest $(t_digest "$T_TMP/r1.jsonl") != $want"
# save on 4 ranks at step 40 (mid-epoch), resume on 2
mpirun -np 4 "$train" "${common[@]}" --max-steps 40 --checkpoint-dir "$T_TMP/c4" > "$T_TMP/s4.out" 2>&1 \
  || { cat "$T_TMP/s4.out"; t_fail "np=4 first half"; }
mpirun -np 2 "$train" "${common[@]}" --checkpoint-dir "$T_TMP/c4" --resume latest --metrics "$T_TMP/r2.jsonl" \
  > "$T_TMP/r2.out" 2>&1 || { cat "$T_TMP/r2.out"; t_fail "np=2 resume"; }
[ "$(t_digest "$T_TMP/r2.jsonl")" = "$want" ] && t_pass "saved on np=4, resumed on np=2: same digest" \
  || t_fail "np=4 -> np=2 digest $(t_digest "$T_TMP/r2.jsonl") != $want"
grep -q "saved on 4 rank(s), now 2" "$T_TMP/r2.out" && t_pass "resume logs the rank change" \
  || t_fail "resume does not log the rank change"
# --resume latest in an empty directory starts from scratch (a first SLURM start)
mpirun -np 1 "$train" "${common[@]}" --max-steps 3 --checkpoint-dir "$T_TMP/empty" --resume latest \
  > "$T_TMP/e.out" 2>&1 && grep -q "starting from scratch" "$T_TMP/e.out" && t_pass "latest with no checkpoint starts fresh" \
  || { cat "$T_TMP/e.out"; t_fail "latest with no checkpoint"; }
# --keep: only the newest K remain
mpirun -np 1 "$train" "${common[@]}" --max-steps 50 --checkpoint-dir "$T_TMP/k" --checkpoint-every 10 --keep 2 >/dev/null 2>&1
n=$(find "$T_TMP/k" -type f | wc -l)
[ "$n" -eq 2 ] && [ -f "$T_TMP/k/ckpt-000000050.h5" ] && [ -f "$T_TMP/k/ckpt-000000040.h5" ] && t_pass "--keep 2" \
  || { ls "$T_TMP/k"; t_fail "--keep 2 left $n files"; }
# --eval of the final checkpoint reproduces the final test accuracy and digest
mpirun -np 2 "$train" --data "$fm" --eval --resume "$T_TMP/c1/ckpt-000000150.h5" > "$T_TMP/ev.out" 2>&1 \
  || { cat "$T_TMP/ev.out"; t_fail "--eval"; }
acc=$(t_acc "$T_TMP/straight.jsonl")
grep -q "params_sha256 $want" "$T_TMP/ev.out" && grep -q "test_acc $(awk -v a="$acc" 'BEGIN{printf "%.2f", 100*a}')%" "$T_TMP/ev.out" \
  && t_pass "--eval: same digest and accuracy" || { cat "$T_TMP/ev.out"; t_fail "--eval output"; }
t_done
