#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR disable=SC2015 # `check && t_pass || t_fail`: t_pass never fails
# The step pipeline on a GPU: the same params_sha256 with the step replayed as a
# CUDA graph with the optimizer update and the loss read one step late (default),
# issued op by op (--cuda-graph off), with the batches
# staged by the prefetch thread through pinned memory (--data-on-device off) and
# staged inline (--prefetch off). First --bench (synthetic data, no dataset
# needed; it also prints both step times, which are benchmarks, not checked), then
# Fashion-MNIST trainings across epochs with evaluation, and deterministic mode (8
# passes, no graph) gathered vs staged, when the dataset is there. A run that asks
# for the graph and falls back to eager steps (banner "CUDA graph fell back to
# eager", metrics "cuda_graph": "fallback") fails. Skipped (77) without a GPU: the
# probe's own verdict (dlfs-train says "no usable GPU"), never the absence of a
# banner, so a probe that crashes is a failure.
. "$(dirname "$0")/../lib.sh"
train=$1 fm=$3
prc=0
probe=$(timeout 120 mpirun -np 1 "$train" --bench --steps 1 --bench-warmup 0 --model 784-10 --device cuda 2>&1) || prc=$?
if [ "$prc" -ne 0 ]; then
  if grep -q "no usable GPU" <<<"$probe"; then echo "skipped: no GPU ($probe)"; exit 77; fi
  t_fail "the GPU probe (dlfs-train --bench --device cuda) failed with exit $prc: $probe"; t_done
fi
grep -q "cuda backend" <<<"$probe" || { t_fail "the GPU probe ran but not on the cuda backend: $probe"; t_done; }

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
  if grep -q "CUDA graph fell back to eager" <<<"$out"; then t_fail "--bench $name: $(grep -o 'CUDA graph fell back.*' <<<"$out")"
  else grep -q "^bench: pipeline: .*$want" <<<"$out" || t_fail "--bench $name: pipeline is not '$want': $out"; fi
  compare "bench $name" "$(sed -n 's/^bench: pipeline: .*params_sha256 \([0-9a-f]*\).*/\1/p' <<<"$out")"
}
ref=""
bench graph "on the device.*CUDA graph on.*with the update; no host wait per step" --cuda-graph on
bench eager "on the device.*CUDA graph off" --cuda-graph off
bench staged "staged per batch, prefetch thread (pinned)" --data-on-device off
# the update in the graph reading lr / bias corrections from device memory, with a
# cosine schedule and warm-up (both change per step), Adam, AdamW and SGD (Nesterov):
# the bits of the by-value update; with the loss read back at once (DLFS_STEP_LAG=0) too
# shellcheck disable=SC2086 # $opt: several words on purpose
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
  # the graph's actual state, as the final metrics report it
  local g; g=$(sed -n 's/.*"event": "final".*"cuda_graph": "\([a-z]*\)".*/\1/p' "$T_TMP/$name.jsonl")
  case $want in
  *"CUDA graph on"*) [ "$g" = on ] || t_fail "$name: asked for the CUDA graph, final metrics say cuda_graph '$g'" ;;
  *) [ "$g" != fallback ] || t_fail "$name: final metrics say cuda_graph 'fallback'" ;;
  esac
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
