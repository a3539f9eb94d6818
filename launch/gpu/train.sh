# shellcheck shell=bash
# shellcheck disable=SC2015 # `test && row || row`: row never fails
# Sourced by launch/gpu-check.sh, in its shell (its options, helpers and the variables of the
# steps before): step 5, the trainings with gates: the quickstart recipe (fp32, bf16; the CPU run in
# the background) and the cnn recipe; sets recipe, ep, tiny, ACC.

# ==== 5. trainings with gates ==============================================================
# The quickstart recipe (the 90.3 % of the README came from it)
recipe=(--model mlp --batch 128 --optim adam --lr 1e-3 --schedule cosine --seed 1)
ep=10 epc=15; [ "$QUICK" = 1 ] && ep=3 epc=2
tiny=(); [ $DRY = 1 ] && tiny=(--max-steps 60) && ep=1 epc=1
train() { # NAME SECONDS NP DEVICE ARGS...: a training, metrics in $LOGS/NAME.jsonl
  local name=$1 t=$2 np=$3 dev=$4; shift 4
  run "$name" "$t" mpirun -np "$np" "$TRAIN" --data "$FM" --device "$dev" --metrics "$LOGS/$name.jsonl" "$@"
}
graph_ok() { # NAME: a 1-rank GPU run asked for the graph: the final metrics must not say fallback
  local g; g=$(mval "$LOGS/$1.jsonl" final cuda_graph)
  if [ "$g" = fallback ]; then row "$1: CUDA graph" "FAIL: fell back to eager ($(grep -o 'fell back to eager[^;]*' "$LOGS/$1.log" | head -n 1))"; return 1; fi
  return 0
}
if [ -z "$FM" ]; then
  row "trainings" "FAIL: no Fashion-MNIST in the build tree"
else
  # the CPU run of the same recipe, in the background on all but 2 cores (where time allows)
  cpu_pid=""
  if [ $DRY = 0 ] && b=$(budget 120 300); then
    cpu_t=$b cpu_s0=$SECONDS
    train cpu-recipe "$b" 1 cpu "${recipe[@]}" --epochs $ep --threads $((NCPU > 4 ? NCPU - 2 : 2)) &
    cpu_pid=$!
  fi
  declare -A ACC=() EPS=()
  for prec in fp32 bf16; do
    if b=$(budget 20 150); then
      rc=0; train "$DEV-$prec" "$b" 1 $DEV "${recipe[@]}" --epochs $ep --precision $prec "${tiny[@]}" || rc=$?
      if [ $rc -eq 0 ]; then
        ACC[$prec]=$(mval "$LOGS/$DEV-$prec.jsonl" final test_acc); EPS[$prec]=$(epoch_s "$LOGS/$DEV-$prec.jsonl")
        [ $DRY = 0 ] && graph_ok "$DEV-$prec"
      else row "mlp quickstart recipe, $prec, $DEV" "FAIL: $(why $rc "$STEP_S" 150)" "" "" "" "$STEP_S"; tail_of "$DEV-$prec"; fi
    else no_time "mlp quickstart recipe, $prec"; fi
    s_=$STEP_S
    if [ -n "${ACC[$prec]:-}" ]; then
      if [ $DRY = 1 ]; then row "mlp quickstart recipe, $prec, CPU half (dry run: 60 steps)" info "$(pct "${ACC[$prec]}")" "" "" "$s_"
      elif [ $prec = fp32 ]; then
        st=pass
        [ "$QUICK" = 1 ] || atleast "${ACC[fp32]}" 0.895 || st="FAIL: below 89.5 %"
        tm=$(atmost "${EPS[fp32]}" 0.05 && echo met || echo missed)
        row "Fashion-MNIST mlp, $ep epochs, quickstart recipe, fp32: test acc, s/epoch (time target $tm)" "$st" \
          "$(pct "${ACC[fp32]}"), ${EPS[fp32]} s" "" "≥ 89.5 %, ≤ 0.05 s/epoch (PyTorch 88.7 %, 0.45 s)" "$s_"
      else
        st=pass; within "${ACC[bf16]}" "${ACC[fp32]:-}" 0.5 || st="FAIL: not within 0.5 points of fp32 (${ACC[fp32]:-?})"
        [ -n "${ACC[fp32]:-}" ] || st="skipped: no fp32 run to compare with"
        row "… bf16 (GEMMs in bf16, fp32 master weights)" "$st" "$(pct "${ACC[bf16]}"), ${EPS[bf16]} s" "" "within 0.5 points of fp32" "$s_"
      fi
    fi
  done
  # the cnn recipe of the README
  if b=$(budget 30 200); then
    rc=0; train "$DEV-cnn" "$b" 1 $DEV --model cnn --epochs $epc --batch 128 --optim adamw --lr 1e-3 --weight-decay 0.05 \
      --schedule cosine --warmup 200 --augment-crop 2 --augment-flip --seed 1 ${tiny[@]+--max-steps 10} || rc=$?
    if [ $rc -eq 0 ]; then
      a=$(mval "$LOGS/$DEV-cnn.jsonl" final test_acc) e=$(epoch_s "$LOGS/$DEV-cnn.jsonl")
      if [ $DRY = 1 ]; then row "cnn recipe, CPU half (dry run: 10 steps)" info "$(pct "$a")" "" "" "$STEP_S"
      else
        st=pass; [ "$QUICK" = 1 ] || atleast "$a" 0.925 || st="FAIL: below 92.5 %"
        tm=$(atmost "$e" 0.4 && echo met || echo missed)
        row "Fashion-MNIST cnn, $epc epochs, AdamW, crop+flip: test acc, s/epoch (time target $tm)" "$st" "$(pct "$a"), $e s" "" \
          "≥ 92.5 %, ≤ 0.4 s/epoch (PyTorch 91.6 %, 0.8 s)" "$STEP_S"
      fi
    else row "cnn recipe on $DEV" "FAIL: $(why $rc "$STEP_S" 200)" "" "" "" "$STEP_S"; tail_of "$DEV-cnn"; fi
  else no_time "cnn recipe"; fi
  # the CPU run of the recipe: the GPU's fp32 must agree with it
  if [ -n "$cpu_pid" ]; then
    wait "$cpu_pid"; rc=$?
    s_=$((SECONDS - cpu_s0))
    if [ $rc -eq 0 ]; then
      c=$(mval "$LOGS/cpu-recipe.jsonl" final test_acc)
      st=pass; within "${ACC[fp32]:-}" "$c" 0.5 || st="FAIL: GPU fp32 $(pct "${ACC[fp32]:-}") is not within 0.5 points"
      [ -n "${ACC[fp32]:-}" ] || st="skipped: no GPU fp32 run to compare with"
      row "… the same recipe on the CPU ($((NCPU > 4 ? NCPU - 2 : 2)) threads, in the background)" "$st" "$(pct "$c"), $(epoch_s "$LOGS/cpu-recipe.jsonl") s" "" "GPU fp32 within 0.5 points" "$s_"
    elif [ $rc -eq 124 ] || [ $rc -eq 137 ]; then row "… the same recipe on the CPU" "skipped: no time (cut after $cpu_t s)" "" "" "" "$s_"
    else row "… the same recipe on the CPU" "FAIL: exit $rc" "" "" "" "$s_"; tail_of cpu-recipe; fi
  elif [ $DRY = 0 ]; then no_time "the quickstart recipe on the CPU"; fi
fi
pack
