#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR disable=SC2015 # `check && t_pass || t_fail`: t_pass never fails
# Atomicity: the writer dies inside a checkpoint write (SIGKILL while paused in
# the write; abort() in the write; the other rank giving up on a writer stuck past
# --comm-timeout) -> the previous checkpoint is intact, no half-written file
# carries a final name, and --resume latest continues from the previous one to the
# same digest as an uninterrupted run.
. "$(dirname "$0")/../lib.sh"
train=$1 fm=$(t_small "$3")
[ -f "$fm" ] || { echo "no $fm: skipped"; exit 77; }
loud=(--data "$fm" --model 784-128-10 --batch 128 --epochs 1 --max-steps 90 --deterministic --seed 9)
common=("${loud[@]}" --quiet)
mpirun -np 1 "$train" "${common[@]}" --metrics "$T_TMP/straight.jsonl" >/dev/null 2>&1 || t_fail "straight run"
want=$(t_digest "$T_TMP/straight.jsonl")
[ -n "$want" ] || { t_fail "the straight run left no digest: nothing to compare with"; t_done; }

# 1. SIGKILL while the 2nd checkpoint (step 60) is being written
DLFS_FAULT_CKPT_PAUSE=2:30 mpirun -np 2 "$train" "${common[@]}" --checkpoint-dir "$T_TMP/k" --checkpoint-every 30 \
  > "$T_TMP/k.out" 2>&1 &
mp=$!
for _ in $(seq 1 300); do [ -f "$T_TMP/k/ckpt-000000060.h5.tmp" ] && break; sleep 0.1; done
[ -f "$T_TMP/k/ckpt-000000060.h5.tmp" ] && t_pass "writer paused inside the write" || t_fail "no .tmp file appeared"
pkill -KILL -f "dlfs-train.*$T_TMP/k" ; wait $mp 2>/dev/null
ls "$T_TMP/k"
[ ! -f "$T_TMP/k/ckpt-000000060.h5" ] && t_pass "no ckpt-60 under its final name" || t_fail "half-written ckpt-60 visible"
h5ls "$T_TMP/k/ckpt-000000030.h5" >/dev/null 2>&1 && t_pass "ckpt-30 intact" || t_fail "ckpt-30 damaged"
mpirun -np 2 "$train" "${common[@]}" --checkpoint-dir "$T_TMP/k" --resume latest --metrics "$T_TMP/k2.jsonl" \
  > "$T_TMP/k2.out" 2>&1 || { cat "$T_TMP/k2.out"; t_fail "resume after SIGKILL"; }
[ "$(t_digest "$T_TMP/k2.jsonl")" = "$want" ] && t_pass "resume after SIGKILL: same digest" || t_fail "digest after SIGKILL"
[ ! -e "$T_TMP/k/ckpt-000000060.h5.tmp" ] && t_pass "stale .tmp removed" || t_fail "stale .tmp left behind"

# 2. abort() inside the 3rd write
DLFS_FAULT_CKPT_ABORT=3 mpirun -np 1 "$train" "${common[@]}" --checkpoint-dir "$T_TMP/a" --checkpoint-every 20 \
  > "$T_TMP/a.out" 2>&1 && t_fail "the aborting run exited 0"
# precondition: it died inside the 3rd write (the hook fired, its half-written .tmp is there)
grep -q "DLFS_FAULT_CKPT_ABORT: aborting inside the checkpoint write" "$T_TMP/a.out" \
  && [ -f "$T_TMP/a/ckpt-000000060.h5.tmp" ] && t_pass "abort: died inside the write of ckpt-60 (its .tmp left)" \
  || { cat "$T_TMP/a.out"; ls "$T_TMP/a"; t_fail "abort: the run did not die inside the 3rd write"; }
[ -f "$T_TMP/a/ckpt-000000040.h5" ] && [ ! -f "$T_TMP/a/ckpt-000000060.h5" ] && t_pass "abort: ckpt-40 kept, no ckpt-60" \
  || { ls "$T_TMP/a"; t_fail "abort left the wrong files"; }
# without --quiet: the resume names the checkpoint it continues from
mpirun -np 1 "$train" "${loud[@]}" --checkpoint-dir "$T_TMP/a" --resume latest \
  --metrics "$T_TMP/a2.jsonl" > "$T_TMP/a2.out" 2>&1 || { cat "$T_TMP/a2.out"; t_fail "resume after abort"; }
grep -q "^resume: $T_TMP/a/ckpt-000000040.h5: step 40," "$T_TMP/a2.out" && t_pass "resume after abort: from ckpt-40" \
  || { grep resume "$T_TMP/a2.out"; t_fail "resume after abort did not continue from ckpt-40"; }
[ "$(t_digest "$T_TMP/a2.jsonl")" = "$want" ] && t_pass "resume after abort: same digest" || t_fail "digest after abort"

# 3. the writer hangs (a stuck file system): rank 1 waits for the outcome of the
# write at most --comm-timeout, then ends the job with a message; nothing saved lost
t0=$(date +%s)
DLFS_FAULT_CKPT_PAUSE=2:60 t_expect_error "writer stuck in a checkpoint write ends the job" 1 \
  "rank 1 ($(hostname)): agreeing across ranks on the outcome of set-up, a checkpoint write" \
  mpirun -np 2 "$train" "${common[@]}" --checkpoint-dir "$T_TMP/h" --checkpoint-every 30 --comm-timeout 2
el=$(( $(date +%s) - t0 ))
if [ "$el" -lt 40 ]; then t_pass "stuck writer: ended after ${el} s (timeout 2 s, stall 60 s)"
else t_fail "stuck writer: took ${el} s: the timeout did not end the job"; fi
# (mpirun's SIGTERM may cut the writer's pause short and let it finish ckpt-60
# before the SIGKILL: then that one is whole too)
bad=0
for f in "$T_TMP"/h/ckpt-*.h5; do h5ls "$f" >/dev/null 2>&1 || bad=1; done
[ -f "$T_TMP/h/ckpt-000000030.h5" ] && [ $bad = 0 ] \
  && t_pass "stuck writer: ckpt-30 kept, every file under a final name whole ($(cd "$T_TMP/h" && echo ckpt-*.h5))" \
  || { ls "$T_TMP/h"; t_fail "stuck writer left the wrong files"; }
mpirun -np 2 "$train" "${common[@]}" --checkpoint-dir "$T_TMP/h" --resume latest --metrics "$T_TMP/h2.jsonl" \
  > "$T_TMP/h2.out" 2>&1 || { cat "$T_TMP/h2.out"; t_fail "resume after the stuck writer"; }
[ "$(t_digest "$T_TMP/h2.jsonl")" = "$want" ] && t_pass "resume after the stuck writer: same digest" \
  || t_fail "digest after the stuck writer"
t_done
