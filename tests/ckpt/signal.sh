#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR disable=SC2015 # `check && t_pass || t_fail`: t_pass never fails
# SIGUSR1 to a running mpirun job: every rank stops at a step boundary, a
# checkpoint appears, the exit code is 3; a second signal during the write does
# not corrupt it; the resumed run ends with the same digest as an uninterrupted one.
# SIGTERM sent to the ranks directly (what slurmstepd does) behaves the same; without --checkpoint-dir
# the exit code is 4. Ctrl-C (SIGINT) to a direct dlfs-train behaves as SIGTERM (exit 3, a
# checkpoint); a second one during that checkpoint's write stops at once (exit 130), losing
# nothing saved before; Ctrl-C to mpirun: the ranks checkpoint and mpirun exits 1.
. "$(dirname "$0")/../lib.sh"
train=$1 fm=$(t_small "$3")
[ -f "$fm" ] || { echo "no $fm: skipped"; exit 77; }
common=(--data "$fm" --model mlp --batch 128 --epochs 2 --max-steps 200 --deterministic --seed 4)
# wait_training FILE: until the job prints its first progress line (it is past start-up)
wait_training() { for _ in $(seq 1 600); do grep -q "  epoch 1  step" "$1" 2>/dev/null && return 0; sleep 0.05; done; return 1; }
live=(--progress-seconds 0.2)
mpirun -np 1 "$train" "${common[@]}" --metrics "$T_TMP/straight.jsonl" >/dev/null 2>&1 || t_fail "straight run"
want=$(t_digest "$T_TMP/straight.jsonl")
[ -n "$want" ] || { t_fail "the straight run left no digest: nothing to compare with"; t_done; }

# USR1 to mpirun, a second USR1 while the checkpoint is being written: the writer
# pauses 5 s half-way through the file (DLFS_FAULT_CKPT_PAUSE); the second signal goes
# only once its .tmp file is there (the write has begun), else the scenario did not happen
DLFS_FAULT_CKPT_PAUSE=1:5 mpirun -np 2 "$train" "${common[@]}" "${live[@]}" --checkpoint-dir "$T_TMP/c" > "$T_TMP/u.out" 2>&1 &
mp=$!
wait_training "$T_TMP/u.out" || t_fail "no progress line within 30 s"
kill -USR1 $mp
tmp=""
for _ in $(seq 1 600); do
  tmp=$(ls "$T_TMP"/c/ckpt-*.h5.tmp 2>/dev/null) && break
  tmp=""; sleep 0.05
done
if [ -n "$tmp" ]; then
  kill -USR1 $mp
  [ -f "$tmp" ] && t_pass "second SIGUSR1 sent while $(basename "$tmp") was being written" \
    || t_fail "the write ended before the second signal (the pause did not hold)"
else
  t_fail "no ckpt-*.h5.tmp within 30 s of the first SIGUSR1: the second signal was not sent during a write"
fi
wait $mp; rc=$?
[ $rc -eq 3 ] && t_pass "exit code 3 after SIGUSR1" || { cat "$T_TMP/u.out"; t_fail "exit code $rc, want 3"; }
grep -q "stopped by SIGUSR1 at step" "$T_TMP/u.out" && t_pass "says where it stopped" || t_fail "no stop message"
n=$(find "$T_TMP/c" -name "ckpt-*.h5" | wc -l)
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
mpirun -np 1 "$train" "${common[@]}" --checkpoint-dir "$T_TMP/t" --resume latest --metrics "$T_TMP/t2.jsonl" \
  > "$T_TMP/t2.out" 2>&1 || { cat "$T_TMP/t2.out"; t_fail "SIGTERM: resume on 1 rank"; }
[ "$(t_digest "$T_TMP/t2.jsonl")" = "$want" ] && t_pass "SIGTERM + resume on 1 rank == uninterrupted" || t_fail "SIGTERM resume digest"

# no --checkpoint-dir: exit 4, nothing saved
mpirun -np 1 "$train" "${common[@]}" "${live[@]}" > "$T_TMP/n.out" 2>&1 &
mp=$!
wait_training "$T_TMP/n.out"; kill -USR1 $mp
wait $mp; rc=$?
[ $rc -eq 4 ] && grep -q "nothing saved" "$T_TMP/n.out" && t_pass "no checkpoint dir: exit 4" || { cat "$T_TMP/n.out"; t_fail "exit $rc, want 4"; }

# Ctrl-C to a direct dlfs-train (no mpirun): SIGINT as SIGTERM, exit 3 and a checkpoint
"$train" "${common[@]}" "${live[@]}" --checkpoint-dir "$T_TMP/i" > "$T_TMP/i.out" 2>&1 &
pid=$!
wait_training "$T_TMP/i.out"; kill -INT $pid
wait $pid; rc=$?
[ $rc -eq 3 ] && grep -q "stopped by SIGINT (Ctrl-C) at step" "$T_TMP/i.out" && ls "$T_TMP/i"/ckpt-*.h5 >/dev/null 2>&1 \
  && t_pass "Ctrl-C: checkpoint and exit 3" || { cat "$T_TMP/i.out"; t_fail "Ctrl-C: exit $rc, want 3 and a checkpoint"; }
grep -q "Ctrl-C again to stop at once" "$T_TMP/i.out" && t_pass "Ctrl-C: says what a second one does" \
  || t_fail "Ctrl-C: no notice on the standard error"
# resumed from it, a second Ctrl-C while the next checkpoint is written (paused 20 s): exit 130 at once
DLFS_FAULT_CKPT_PAUSE=1:20 "$train" "${common[@]}" "${live[@]}" --checkpoint-dir "$T_TMP/i" --resume latest \
  > "$T_TMP/i2.out" 2>&1 &
pid=$!
for _ in $(seq 1 600); do grep -q "  epoch . *step" "$T_TMP/i2.out" 2>/dev/null && break; sleep 0.05; done
kill -INT $pid
tmp=""
for _ in $(seq 1 600); do
  tmp=$(ls "$T_TMP"/i/ckpt-*.h5.tmp 2>/dev/null) && break
  tmp=""; sleep 0.05
done
t0=$(date +%s)
[ -n "$tmp" ] && kill -INT $pid || t_fail "Ctrl-C: no checkpoint write began within 30 s of the first one"
wait $pid; rc=$?
took=$(( $(date +%s) - t0 ))
[ $rc -eq 130 ] && [ "$took" -lt 10 ] && t_pass "second Ctrl-C during the write: exit 130 after $took s" \
  || { cat "$T_TMP/i2.out"; t_fail "second Ctrl-C: exit $rc after $took s, want 130 at once (the write pauses 20 s)"; }
n=$(find "$T_TMP/i" -name "ckpt-*.h5" | wc -l)
[ "$n" -eq 1 ] && t_pass "the checkpoint saved before is still there" || { ls "$T_TMP/i"; t_fail "$n checkpoints, want 1"; }
"$train" --eval --data "$fm" --model mlp --checkpoint-dir "$T_TMP/i" --resume latest > "$T_TMP/i3.out" 2>&1 \
  && grep -q "^resume: .*ckpt-.*: step" "$T_TMP/i3.out" && t_pass "it still loads (--eval --resume latest)" \
  || { cat "$T_TMP/i3.out"; t_fail "Ctrl-C: the checkpoint saved before does not load"; }

# Ctrl-C to mpirun: Open MPI sends the ranks SIGCONT, SIGTERM one odls_base_sigkill_timeout
# later (1 s), SIGKILL one more later; the ranks checkpoint on the SIGTERM, mpirun exits 1
# whatever they return (documented in src/README.md)
# (a run of up to 4000 steps, ~20 s: the 200 of the others can end before that SIGTERM on an idle machine)
long=(--data "$fm" --model mlp --batch 128 --epochs 40 --max-steps 4000 --deterministic --seed 4)
mpirun -np 2 "$train" "${long[@]}" "${live[@]}" --checkpoint-dir "$T_TMP/m" > "$T_TMP/m.out" 2>&1 &
mp=$!
wait_training "$T_TMP/m.out"; kill -INT $mp
wait $mp; rc=$?
[ $rc -eq 1 ] && ls "$T_TMP/m"/ckpt-*.h5 >/dev/null 2>&1 && grep -q "stopped by SIGTERM at step" "$T_TMP/m.out" \
  && t_pass "Ctrl-C to mpirun: the ranks checkpoint, mpirun exits 1" \
  || { cat "$T_TMP/m.out"; ls "$T_TMP/m"; t_fail "Ctrl-C to mpirun: exit $rc (want 1) or no checkpoint"; }
t_done
