#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR disable=SC2015 # `check && t_pass || t_fail`: t_pass never fails
# The step pipeline changes no bits: the same params_sha256 (and test loss) with
# the dataset gathered in backend memory (--data-on-device auto), staged per batch
# by the main thread (--data-on-device off --prefetch off) and staged by the
# prefetch thread (--prefetch on); deterministic mode on 1 and 2 ranks, fast mode
# on 1 and 2. With augmentation (always staged) the thread must really deliver
# the batches (counted in the metrics), across an epoch boundary and a resume;
# SIGTERM while it runs still checkpoints and exits 3.
. "$(dirname "$0")/../lib.sh"
train=$1 fm=$(t_small "$3")
[ -f "$fm" ] || { echo "no $fm: skipped"; exit 77; }
common=(--data "$fm" --model mlp --batch 128 --epochs 1 --max-steps 60 --seed 5 --eval-batch 2500)
modes=("--data-on-device auto" "--data-on-device off --prefetch off" "--data-on-device off --prefetch on")
# run NAME NP ARGS...: train, leave NAME.jsonl; print "digest test_loss"
run() {
  local name=$1 np=$2; shift 2
  mpirun -np "$np" "$train" "$@" --quiet --metrics "$T_TMP/$name.jsonl" > "$T_TMP/$name.out" 2>&1 \
    || { cat "$T_TMP/$name.out"; t_fail "$name: run failed"; }
  printf '%s %s\n' "$(t_digest "$T_TMP/$name.jsonl")" \
    "$(sed -n 's/.*"event": "final".*"test_loss": \([0-9.]*\).*/\1/p' "$T_TMP/$name.jsonl")"
}
# prefetched NAME: the thread's batch count in the last epoch line
prefetched() { sed -n 's/.*"prefetched": \([0-9]*\).*/\1/p' "$T_TMP/$1.jsonl" | tail -n 1; }

for setup in "det 1" "det 2" "fast 1" "fast 2"; do
  # shellcheck disable=SC2086 # words on purpose
  set -- $setup
  extra=(); [ "$1" = det ] && extra=(--deterministic --virtual-shards 4)
  ref=""
  for i in 0 1 2; do
    # shellcheck disable=SC2086 # the mode's options, split into words on purpose
    got=$(run "$1-$2-$i" "$2" "${common[@]}" "${extra[@]}" ${modes[$i]})
    [ -n "${got%% *}" ] || t_fail "$setup ${modes[$i]}: no digest"
    if [ -z "$ref" ]; then ref=$got; [ "$1" = det ] && [ "$2" = 1 ] && det_ref=$got
    elif [ "$got" = "$ref" ]; then t_pass "$setup: ${modes[$i]} gives the bits of ${modes[0]}"
    else t_fail "$setup: ${modes[$i]}: $got != $ref"; fi
  done
  [ "$1" = det ] && [ "$2" = 2 ] && { [ "$ref" = "$det_ref" ] && t_pass "deterministic: np=2 == np=1" \
    || t_fail "deterministic np=2 $ref != np=1 $det_ref"; }
done
[ "$(prefetched fast-1-0)" = 0 ] && [ "$(prefetched fast-1-1)" = 0 ] \
  && t_pass "data on the device, or --prefetch off: no batch from the thread" || t_fail "unexpected prefetched batches"
n=$(prefetched fast-1-2)
[ "$n" = 59 ] && t_pass "--data-on-device off: 59 of 60 batches from the thread" || t_fail "$n batches from the thread, want 59"

# augmentation: staged (host code), across an epoch boundary (25 steps per epoch of the
# 12800-image slice at batch 512): the thread delivers every batch but the first of each epoch
aug=(--data "$fm" --model mlp --batch 512 --epochs 2 --max-steps 40 --seed 6 --eval-batch 2000
     --augment-crop 2 --augment-flip)
a_on=$(run aug-on 1 "${aug[@]}")
a_off=$(run aug-off 1 "${aug[@]}" --prefetch off)
[ -n "${a_on%% *}" ] && [ "$a_on" = "$a_off" ] && t_pass "augmentation: prefetch on == off ($a_on)" \
  || t_fail "augmentation: prefetch on $a_on != off $a_off"
n=$(prefetched aug-on)
[ "$n" = 38 ] && t_pass "augmentation: 38 of 40 batches from the thread (2 epoch starts)" \
  || t_fail "augmentation: $n batches from the thread, want 38"
[ "$(prefetched aug-off)" = 0 ] || t_fail "--prefetch off: the thread delivered batches"
a_det=$(run aug-det2 2 "${aug[@]}" --deterministic --virtual-shards 4)
a_det1=$(run aug-det1 1 "${aug[@]}" --deterministic --virtual-shards 4 --prefetch off)
[ -n "${a_det%% *}" ] && [ "$a_det" = "$a_det1" ] && t_pass "augmentation, deterministic: np=2 prefetch == np=1 inline" \
  || t_fail "augmentation, deterministic: $a_det != $a_det1"

# resume in the middle of an epoch: the thread starts cold, the bits stay
run aug-part 1 "${aug[@]}" --max-steps 30 --checkpoint-dir "$T_TMP/ck" > /dev/null
a_res=$(run aug-res 1 "${aug[@]}" --checkpoint-dir "$T_TMP/ck" --resume latest)
[ -n "${a_res%% *}" ] && [ "$a_res" = "$a_on" ] && t_pass "augmentation: stop at 30 + resume == straight" || t_fail "resume: $a_res != $a_on"

# --cuda-graph on the CPU backend: accepted, and the banner says it does not apply;
# --bench takes the same path and names it
out=$(mpirun -np 1 "$train" --device cpu "${common[@]}" --max-steps 2 --cuda-graph on 2>&1)
grep -q "^pipeline: data resident in memory (the CPU backend's device), gathered per step; CUDA graph not on this backend" <<<"$out" \
  && t_pass "--cuda-graph on, cpu backend: says it does not apply" || t_fail "--cuda-graph on, cpu: $out"
bdig() { sed -n 's/^bench: pipeline: .*params_sha256 \([0-9a-f]*\).*/\1/p' <<<"$1"; }
out=$(mpirun -np 1 "$train" --device cpu --bench --model mlp --batch 64 --steps 3 --bench-warmup 1 2>&1)
grep -q "^bench: pipeline: data resident in memory" <<<"$out" && t_pass "--bench gathers in memory" || t_fail "--bench: $out"
out2=$(mpirun -np 1 "$train" --device cpu --bench --model mlp --batch 64 --steps 3 --bench-warmup 1 --data-on-device off 2>&1)
grep -q "^bench: pipeline: data staged per batch, prefetch thread" <<<"$out2" && t_pass "--bench --data-on-device off: staged" \
  || t_fail "--bench --data-on-device off: $out2"
[ -n "$(bdig "$out")" ] && [ "$(bdig "$out")" = "$(bdig "$out2")" ] && t_pass "--bench: same digest both ways" \
  || t_fail "--bench digests '$(bdig "$out")' '$(bdig "$out2")'"

# SIGTERM while the thread works: checkpoint, exit 3, no hang
mpirun -np 2 "$train" "${aug[@]}" --max-steps 100000 --epochs 50 --progress-seconds 0.2 --checkpoint-dir "$T_TMP/sig" \
  > "$T_TMP/sig.out" 2>&1 &
mp=$!
for _ in $(seq 1 600); do grep -q "  epoch 1  step" "$T_TMP/sig.out" 2>/dev/null && break; sleep 0.05; done
pkill -TERM -f "^$train .*$T_TMP/sig"
rc=0; timeout 60 tail --pid=$mp -f /dev/null || rc=124
wait $mp; rc2=$?
[ $rc -eq 0 ] && [ $rc2 -eq 3 ] && ls "$T_TMP/sig"/ckpt-*.h5 > /dev/null 2>&1 \
  && t_pass "SIGTERM with the prefetch thread: checkpoint, exit 3" || { cat "$T_TMP/sig.out"; t_fail "SIGTERM: exit $rc2 ($rc)"; }
t_done
