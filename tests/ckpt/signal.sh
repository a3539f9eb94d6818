#!/usr/bin/env bash
# SIGUSR1 to a running mpirun job: every rank stops at a step boundary, a
# checkpoint appears, the exit code is 3; a second signal during the write does
# not corrupt it; the resumed run ends with the same digest as an uninterrupted one.
# SIGTERM sent to the ranks directly (what slurmstepd does) behaves the same; without --checkpoint-dir
# the exit code is 4.
. "$(dirname "$0")/../lib.sh"
train=$1 fm=$3
[ -f "$fm" ] || { echo "no $fm: skipped"; exit 77; }
common=(--data "$fm" --model mlp --batch 128 --epochs 1 --max-steps 400 --deterministic --seed 4)
# wait_training FILE: until the job prints its first progress line (it is past start-up)
wait_training() { for _ in $(seq 1 600); do grep -q "  epoch 1  step" "$1" 2>/dev/null && return 0; sleep 0.05; done; return 1; }
live=(--progress-seconds 0.2)
mpirun -np 1 "$train" "${common[@]}" --metrics "$T_TMP/straight.jsonl" >/dev/null 2>&1 || t_fail "straight run"
want=$(t_digest "$T_TMP/straight.jsonl")

# USR1 to mpirun, a second USR1 while the checkpoint is being written (paused 2 s)
DLFS_FAULT_CKPT_PAUSE=1:2 mpirun -np 2 "$train" "${common[@]}" "${live[@]}" --checkpoint-dir "$T_TMP/c" > "$T_TMP/u.out" 2>&1 &
mp=$!
wait_training "$T_TMP/u.out"; kill -USR1 $mp
for _ in $(seq 1 100); do ls "$T_TMP"/c/*.tmp >/dev/null 2>&1 && break; sleep 0.05; done
kill -USR1 $mp 2>/dev/null
wait $mp; rc=$?
[ $rc -eq 3 ] && t_pass "exit code 3 after SIGUSR1" || { cat "$T_TMP/u.out"; t_fail "exit code $rc, want 3"; }
grep -q "stopped by SIGUSR1 at step" "$T_TMP/u.out" && t_pass "says where it stopped" || t_fail "no stop message"
n=$(ls "$T_TMP/c"/ckpt-*.h5 2>/dev/null | wc -l)
[ "$n" -eq 1 ] && t_pass "one checkpoint written" || { ls "$T_TMP/c"; t_fail "$n checkpoints"; }
mpirun -np 2 "$train" "${common[@]}" --checkpoint-dir "$T_TMP/c" --resume latest --metrics "$T_TMP/r.jsonl" \
  > "$T_TMP/r.out" 2>&1 || { cat "$T_TMP/r.out"; t_fail "resume"; }
[ "$(t_digest "$T_TMP/r.jsonl")" = "$want" ] && t_pass "interrupted + resumed == uninterrupted" \
  || t_fail "digest $(t_digest "$T_TMP/r.jsonl") != $want"

# SIGTERM delivered to the ranks themselves (as srun/slurmstepd do)
mpirun -np 2 "$train" "${common[@]}" "${live[@]}" --checkpoint-dir "$T_TMP/t" > "$T_TMP/t.out" 2>&1 &
mp=$!
wait_training "$T_TMP/t.out"; pkill -TERM -f "^$train .*$T_TMP/t"  # the ranks, not mpirun
wait $mp; rc=$?
[ $rc -eq 3 ] && ls "$T_TMP/t"/ckpt-*.h5 >/dev/null 2>&1 && t_pass "SIGTERM: checkpoint and exit 3" \
  || { cat "$T_TMP/t.out"; t_fail "SIGTERM: exit $rc"; }
mpirun -np 1 "$train" "${common[@]}" --checkpoint-dir "$T_TMP/t" --resume latest --metrics "$T_TMP/t2.jsonl" >/dev/null 2>&1
[ "$(t_digest "$T_TMP/t2.jsonl")" = "$want" ] && t_pass "SIGTERM + resume on 1 rank == uninterrupted" || t_fail "SIGTERM resume digest"

# no --checkpoint-dir: exit 4, nothing saved
mpirun -np 1 "$train" "${common[@]}" "${live[@]}" > "$T_TMP/n.out" 2>&1 &
mp=$!
wait_training "$T_TMP/n.out"; kill -USR1 $mp
wait $mp; rc=$?
[ $rc -eq 4 ] && grep -q "nothing saved" "$T_TMP/n.out" && t_pass "no checkpoint dir: exit 4" || { cat "$T_TMP/n.out"; t_fail "exit $rc, want 4"; }
t_done
