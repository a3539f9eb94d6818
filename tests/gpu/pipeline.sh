#!/usr/bin/env bash
# The step pipeline on a GPU: the same params_sha256 with the step replayed as a
# CUDA graph (default), issued op by op (--cuda-graph off), with the batches
# staged by the prefetch thread through pinned memory (--data-on-device off) and
# staged inline (--prefetch off); and in deterministic mode (8 passes, no graph)
# gathered vs staged. Then --bench names its path and times both (printed only:
# timings are benchmarks, not tests). Skipped (77) without a GPU.
. "$(dirname "$0")/../lib.sh"
train=$1 fm=$3
[ -f "$fm" ] || { echo "no $fm: skipped"; exit 77; }
probe=$(timeout 120 mpirun -np 1 "$train" --bench --steps 1 --bench-warmup 0 --model 784-10 --device cuda 2>&1)
if ! grep -q "cuda backend" <<<"$probe"; then echo "skipped: no GPU ($probe)"; exit 77; fi

common=(--device cuda --data "$fm" --model mlp --batch 128 --epochs 1 --max-steps 300 --seed 9 --eval-batch 2000)
check() { # check NAME WANT_PIPELINE_WORDS ARGS...: run, compare with the first run's digest
  local name=$1 want=$2; shift 2
  mpirun -np 1 "$train" "$@" --metrics "$T_TMP/$name.jsonl" > "$T_TMP/$name.out" 2>&1 \
    || { cat "$T_TMP/$name.out"; t_fail "$name: run failed"; return; }
  grep -q "^pipeline: .*$want" "$T_TMP/$name.out" || { grep pipeline "$T_TMP/$name.out"; t_fail "$name: pipeline is not '$want'"; }
  local d; d=$(t_digest "$T_TMP/$name.jsonl")
  [ -n "$d" ] || { t_fail "$name: no digest"; return; }
  if [ -z "${ref:-}" ]; then ref=$d; echo "$name: $d"
  elif [ "$d" = "$ref" ]; then t_pass "$name: same digest"
  else t_fail "$name: digest $d != $ref"; fi
}
ref=""
check graph "on the device.*CUDA graph on" "${common[@]}"
check eager "on the device.*CUDA graph off" "${common[@]}" --cuda-graph off
check staged-prefetch "staged per batch, prefetch thread (pinned)" "${common[@]}" --data-on-device off
check staged-inline "staged per batch; CUDA graph off" "${common[@]}" --data-on-device off --prefetch off
n=$(sed -n 's/.*"prefetched": \([0-9]*\).*/\1/p' "$T_TMP/staged-prefetch.jsonl" | tail -n 1)
[ "$n" = 299 ] && t_pass "299 of 300 batches from the prefetch thread" || t_fail "$n batches from the thread, want 299"
ref=""
check det-gathered "on the device.*deterministic passes" "${common[@]}" --deterministic --virtual-shards 8
check det-staged "staged per batch" "${common[@]}" --deterministic --virtual-shards 8 --data-on-device off

for g in on off; do
  out=$(mpirun -np 1 "$train" --bench --device cuda --model mlp --batch 128 --steps 200 --bench-warmup 20 --cuda-graph $g 2>&1)
  grep "^bench:" <<<"$out"
  grep -q "^bench: pipeline: data on the device.*CUDA graph $g" <<<"$out" && t_pass "--bench --cuda-graph $g names its path" \
    || t_fail "--bench --cuda-graph $g: $out"
done
t_done
