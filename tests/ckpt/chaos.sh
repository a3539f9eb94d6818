#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR disable=SC2015 # `check && t_pass || t_fail`: t_pass never fails
# Chaos: 20 cycles of a 2-rank deterministic run with frequent checkpoints, each
# killed with SIGKILL on a random rank (every third cycle while the checkpoint writer
# is paused inside a write), then `--resume latest`. The other kills come once the run
# has written a random 1 to 8 checkpoints past where it resumed, after a random extra
# 0-40 ms: a kill lands anywhere in a step or a write, and every cycle moves the run on
# without finishing it, however fast or slow the machine. At the end the run completes
# and its digest equals the uninterrupted run's; no partial file ever carries a
# checkpoint's name. Bounded: every cycle has a time limit. Then --ckpt-sharded: a rank
# killed inside a sharded write (below).
. "$(dirname "$0")/../lib.sh"
train=$1 fm=$(t_small "$3")
[ -f "$fm" ] || { echo "no $fm: skipped"; exit 77; }
RANDOM=${DLFS_CHAOS_SEED:-7}   # the kills are random, but reproducible
steps=3000   # 20 cycles move it on by at most 20 x 80 steps, plus what a poll overshoots
common=(--data "$fm" --model 784-64-10 --batch 64 --epochs 15 --max-steps "$steps" --seed 11 --deterministic
        --virtual-shards 4 --quiet --eval-batch 2000)
mpirun -np 2 "$train" "${common[@]}" --metrics "$T_TMP/straight.jsonl" >/dev/null 2>&1
want=$(t_digest "$T_TMP/straight.jsonl")
[ -n "$want" ] || { t_fail "no reference digest"; t_done; }
dir=$T_TMP/ck
run=("${common[@]}" --checkpoint-dir "$dir" --checkpoint-every 10 --keep 3 --resume latest)
kills=0 mid_write=0
newest_() { # the step of the newest checkpoint (0: none)
  local f n=0
  for f in "$dir"/ckpt-*.h5; do [ -e "$f" ] && n=$((10#$(basename "$f" .h5 | cut -d- -f2))); done
  echo "$n"
}
ranks_() { # the dlfs-train processes of this run
  local p
  for p in $(pgrep -f -- "--checkpoint-dir $dir"); do [ "$(cat /proc/"$p"/comm 2>/dev/null)" = dlfs-train ] && echo "$p"; done
}
for cycle in $(seq 1 20); do
  pause=""
  [ $((cycle % 3)) = 0 ] && pause="1:4"   # the first write of this run pauses 4 s half-way
  DLFS_FAULT_CKPT_PAUSE=$pause timeout 60 mpirun -np 2 "$train" "${run[@]}" > "$T_TMP/c$cycle.out" 2>&1 &
  job=$!
  if [ -n "$pause" ]; then   # wait for the write to begin (the hook says so), then kill inside it
    for _ in $(seq 1 300); do grep -q "pausing 4 s inside the checkpoint write" "$T_TMP/c$cycle.out" && break; sleep 0.1; done
  else                       # once it has written 1-8 checkpoints past its start, then 0-40 ms more
    target=$(( $(newest_) + 10 * (1 + RANDOM % 8) ))
    for _ in $(seq 1 3000); do [ "$(newest_)" -ge "$target" ] && break; sleep 0.01; done
    sleep "$(awk -v r="$RANDOM" 'BEGIN { printf "%.3f", (r % 41) / 1000 }')"
  fi
  mapfile -t victims < <(ranks_)
  if [ ${#victims[@]} -gt 0 ]; then
    [ -n "$pause" ] && grep -q "pausing 4 s" "$T_TMP/c$cycle.out" && ls "$dir"/*.tmp >/dev/null 2>&1 \
      && mid_write=$((mid_write + 1))
    kill -9 "${victims[$((RANDOM % ${#victims[@]}))]}" 2>/dev/null && kills=$((kills + 1))
  fi
  wait $job
  rc=$?
  [ $rc = 124 ] && t_fail "cycle $cycle: the job did not end within 60 s after the kill"
  for f in "$dir"/ckpt-*.h5; do   # every checkpoint under a final name is whole
    [ -e "$f" ] || continue
    h5ls "$f" >/dev/null 2>&1 || t_fail "cycle $cycle: $f is not a whole HDF5 file"
  done
done
t_pass "$kills kills in 20 cycles ($mid_write while a checkpoint write was paused half-way)"
[ "$kills" -ge 15 ] || t_fail "only $kills kills: the cycles did not exercise the recovery"
[ "$mid_write" -ge 4 ] || t_fail "only $mid_write kills inside a checkpoint write (want 4 or more)"
timeout 120 mpirun -np 2 "$train" "${run[@]}" --metrics "$T_TMP/final.jsonl" > "$T_TMP/final.out" 2>&1 \
  || { cat "$T_TMP/final.out"; t_fail "the last resume failed"; }
got=$(t_digest "$T_TMP/final.jsonl")
[ "$got" = "$want" ] && t_pass "after the chaos the run ends with the uninterrupted digest ${want:0:16}" \
  || t_fail "digest after the chaos ${got:-none} != $want"
# --ckpt-sharded: kill -9 of one random rank of 4 while every rank is paused half-way
# through its shard of the step-20 write: the step-10 checkpoint stays whole, the
# half-written directory has no manifest, and --resume latest (2 ranks, no ZeRO) passes
# over it with a message and ends with the uninterrupted digest.
sc=(--data "$fm" --model 784-64-10 --batch 64 --epochs 1 --max-steps 20 --seed 11 --deterministic
    --virtual-shards 4 --quiet --eval-batch 2000)
mpirun -np 2 "$train" "${sc[@]}" --metrics "$T_TMP/s20.jsonl" >/dev/null 2>&1
sdir=$T_TMP/sk
mpirun -np 4 "$train" "${sc[@]}" --max-steps 10 --zero 1 --ckpt-sharded --checkpoint-dir "$sdir" >/dev/null 2>&1 \
  || t_fail "sharded run to step 10"
dir=$sdir
DLFS_FAULT_CKPT_PAUSE=1:4 timeout 60 mpirun -np 4 "$train" "${sc[@]}" --zero 1 --ckpt-sharded --checkpoint-dir "$sdir" \
  --resume latest > "$T_TMP/sk.out" 2>&1 &
job=$!
for _ in $(seq 1 300); do grep -q "pausing 4 s inside the checkpoint write" "$T_TMP/sk.out" && break; sleep 0.1; done
mapfile -t victims < <(ranks_)
[ ${#victims[@]} = 4 ] && kill -9 "${victims[$((RANDOM % 4))]}" || t_fail "sharded write: ${#victims[@]} ranks to kill, not 4"
wait $job
[ -f "$sdir/ckpt-000000010.d/manifest.h5" ] && [ -d "$sdir/ckpt-000000020.d" ] && [ ! -e "$sdir/ckpt-000000020.d/manifest.h5" ] \
  && t_pass "kill -9 of a rank inside a sharded write: step 10 kept, step 20 has no manifest" \
  || { ls -R "$sdir"; t_fail "the sharded checkpoints after the kill"; }
timeout 120 mpirun -np 2 "$train" "${sc[@]}" --checkpoint-dir "$sdir" --resume latest --metrics "$T_TMP/sk.jsonl" \
  > "$T_TMP/sk2.out" 2>&1 || cat "$T_TMP/sk2.out"
got=$(t_digest "$T_TMP/sk.jsonl") want=$(t_digest "$T_TMP/s20.jsonl")
[ -n "$want" ] && [ "$got" = "$want" ] && grep -q "ckpt-000000020.d: sharded checkpoint is incomplete" "$T_TMP/sk2.out" \
  && t_pass "latest passes over the killed sharded write and ends with the uninterrupted digest" \
  || { cat "$T_TMP/sk2.out"; t_fail "resume after the killed sharded write: '$got' != '$want'"; }
t_done
