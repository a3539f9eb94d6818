#!/usr/bin/env bash
# The step pipeline on a GPU: the same params_sha256 with the step replayed as a
# CUDA graph with the optimizer update and the loss read one step late (default),
# issued op by op (--cuda-graph off), with the batches
# staged by the prefetch thread through pinned memory (--data-on-device off) and
# staged inline (--prefetch off). First --bench (synthetic data, no dataset
# needed; it also prints both step times, which are benchmarks, not checked), then
# Fashion-MNIST trainings across epochs with evaluation, and deterministic mode (8
# passes, no graph) gathered vs staged, when the dataset is there. Skipped (77)
# without a GPU.
. "$(dirname "$0")/../lib.sh"
train=$1 fm=$3
probe=$(timeout 120 mpirun -np 1 "$train" --bench --steps 1 --bench-warmup 0 --model 784-10 --device cuda 2>&1)
if ! grep -q "cuda backend" <<<"$probe"; then echo "skipped: no GPU ($probe)"; exit 77; fi

# compare NAME DIGEST: the first one of a group sets the reference
compare() {
  if [ -z "$2" ]; then t_fail "$1: no digest"
  elif [ -z "${ref:-}" ]; then ref=$2; echo "$1: $2"
  elif [ "$2" = "$ref" ]; then t_pass "$1: same digest"
  else t_fail "$1: digest $2 != $ref"; fi
}
# bench NAME WANT_PIPELINE_WORDS ARGS...
bench() {
  local name=$1 want=$2; shift 2
  local out; out=$(timeout 300 mpirun -np 1 "$train" --bench --device cuda --model mlp --batch 128 --steps 200 \
    --bench-warmup 5 "$@" 2>&1)
  grep "^bench: [0-9]* steps" <<<"$out" | sed "s/^/$name: /"
  grep -q "^bench: pipeline: .*$want" <<<"$out" || t_fail "--bench $name: pipeline is not '$want': $out"
  compare "bench $name" "$(sed -n 's/^bench: pipeline: .*params_sha256 \([0-9a-f]*\).*/\1/p' <<<"$out")"
}
ref=""
bench graph "on the device.*CUDA graph on.*with the update; no host wait per step" --cuda-graph on
bench eager "on the device.*CUDA graph off" --cuda-graph off
bench staged "staged per batch, prefetch thread (pinned)" --data-on-device off
# the update in the graph reading lr / bias corrections from device memory, with a
# cosine schedule and warm-up (both change per step), Adam, AdamW and SGD (Nesterov):
# the bits of the by-value update; with the loss read back at once (DLFS_STEP_LAG=0) too
for opt in "--optim adam" "--optim adamw --weight-decay 0.05" "--optim sgd --nesterov --lr 0.05"; do
  ref=""
  bench "graph $opt" "CUDA graph on.*with the update" $opt --schedule cosine --warmup 20
  bench "eager $opt" "CUDA graph off" $opt --schedule cosine --warmup 20 --cuda-graph off
  DLFS_STEP_LAG=0 bench "graph, no lag, $opt" "with the update; params_sha256" $opt --schedule cosine --warmup 20
done

# train NAME WANT_PIPELINE_WORDS ARGS...
run_train() {
  local name=$1 want=$2; shift 2
  timeout 300 mpirun -np 1 "$train" "$@" --metrics "$T_TMP/$name.jsonl" > "$T_TMP/$name.out" 2>&1 \
    || { cat "$T_TMP/$name.out"; t_fail "$name: run failed"; return; }
  grep -q "^pipeline: .*$want" "$T_TMP/$name.out" || { grep pipeline "$T_TMP/$name.out"; t_fail "$name: pipeline is not '$want'"; }
  compare "$name" "$(t_digest "$T_TMP/$name.jsonl")"
}
if [ -f "$fm" ]; then
  common=(--device cuda --data "$fm" --model mlp --batch 1024 --epochs 3 --max-steps 150 --seed 9 --eval-batch 2000)
  ref=""
  run_train graph "on the device.*CUDA graph on" "${common[@]}"
  run_train eager "on the device.*CUDA graph off" "${common[@]}" --cuda-graph off
  run_train staged-prefetch "staged per batch, prefetch thread (pinned)" "${common[@]}" --data-on-device off
  run_train staged-inline "staged per batch; CUDA graph off" "${common[@]}" --data-on-device off --prefetch off
  # the loss read back one step late (graph) sums to the same per-epoch train_loss
  tl() { grep -o '"train_loss": [0-9.]*' "$T_TMP/$1.jsonl" | tr '\n' ' '; }
  [ -n "$(tl graph)" ] && [ "$(tl graph)" = "$(tl eager)" ] && t_pass "train_loss with the loss lag: $(tl graph)" \
    || t_fail "train_loss: graph '$(tl graph)' != eager '$(tl eager)'"
  n=$(sed -n 's/.*"prefetched": \([0-9]*\).*/\1/p' "$T_TMP/staged-prefetch.jsonl" | tail -n 1)
  [ "$n" = 147 ] && t_pass "147 of 150 batches from the prefetch thread (3 epoch starts)" || t_fail "$n batches from the thread, want 147"
  ref=""
  det=(--device cuda --data "$fm" --model mlp --batch 128 --epochs 1 --max-steps 100 --seed 9 --deterministic --virtual-shards 8)
  run_train det-gathered "on the device.*deterministic passes" "${det[@]}"
  run_train det-staged "staged per batch" "${det[@]}" --data-on-device off
else
  echo "note: no $fm: the Fashion-MNIST trainings are not run (bench checks only)"
fi
t_done
