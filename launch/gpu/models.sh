# shellcheck shell=bash
# shellcheck disable=SC2015 # `test && row || row`: row never fails
# Sourced by launch/gpu-check.sh, in its shell (its options, helpers and the variables of the
# steps before): step 5b, the residual networks and the language models (issues 22, 23):
#   - resnet20 trained on Fashion-MNIST, the README's recipe for one epoch (gate: test accuracy
#     >= 83 %; the same run on the CPU, seed 1, reached 85.86 %);
#   - gpt-tiny trained on a token file made here, offline, from the repository's own
#     documentation (gate: the validation loss below 0.8 x the byte unigram entropy of the
#     validation bytes, worked out by awk from the text files, not by dlfs; on the CPU the same
#     300 steps reached 2.42 nats against 0.8 x 3.47 = 2.78);
#   - resnet50 (batch 32, fp32 and bf16) and gpt2 (batch 4 windows of 1024 tokens, fp32 and
#     bf16) benches, dlfs and PyTorch (launch/study/torch_ref.py) on the same GPU, same run.
# The dry run trains a few steps of each on the CPU (gates computed, not applied), benches
# resnet50 at batch 1 and gpt-tiny in place of gpt2 (a gpt2 step takes minutes on a CPU) and
# parses PyTorch's CPU lines of the same cases, so that every parse here runs in CI.

# the documentation the token file is made of (paths in the source tree; those present are used)
GC_DOCS=(README.md src/README.md src/backend/cuda/README.md src/io/README.md launch/README.md tests/README.md
         datasets/README.md slurm/README.md results/RESULTS.md)

# gc_doc_files: the absolute paths of the GC_DOCS files present, one a line
gc_doc_files() { local f; for f in "${GC_DOCS[@]}"; do [ -f "$SRC/$f" ] && echo "$SRC/$f"; done; }

# gc_bench NAME SECONDS MODEL BATCH STEPS WARMUP [ARGS...]: dlfs-train --bench; DL[NAME] = ms or why not
gc_bench() {
  local name=$1 t=$2 model=$3 batch=$4 steps=$5 warm=$6 rc=0; shift 6
  run "bench-$name" "$t" mpirun -np 1 "$TRAIN" --bench --device "$DEV" --model "$model" --batch "$batch" \
    --steps "$steps" --bench-warmup "$warm" --metrics "$LOGS/bench-$name.jsonl" "$@" || rc=$?
  if [ $rc -eq 0 ] && DL[$name]=$(bench_ms "bench-$name") && [ -n "${DL[$name]}" ]; then return 0; fi
  DL[$name]=failed
  row "dlfs-train --bench $model, batch $batch $*" "FAIL: $( [ $rc -eq 0 ] && echo "no median step in the log" || why $rc "$STEP_S" "$t")" \
    "" "" "" "$STEP_S"
  tail_of "bench-$name"
}

# ==== 5b. residual networks and language models ==================================================
if [ -n "$FM" ]; then   # resnet20: the README's recipe, one epoch (cosine over it)
  r20=(--model resnet20 --batch 128 --optim sgd --lr 0.1 --weight-decay 5e-4 --schedule cosine --warmup 200
       --augment-crop 2 --augment-flip --seed 1 --epochs 1)
  steps=(); [ "$QUICK" = 1 ] && steps=(--max-steps 200); [ $DRY = 1 ] && steps=(--max-steps 5)
  if b=$(budget 30 120); then
    rc=0; train "$DEV-resnet20" "$b" 1 "$DEV" "${r20[@]}" "${steps[@]}" || rc=$?
    a=$(mval "$LOGS/$DEV-resnet20.jsonl" final test_acc) e=$(epoch_s "$LOGS/$DEV-resnet20.jsonl")
    if [ $rc -ne 0 ] || [ -z "$a" ]; then row "resnet20 recipe on $DEV" "FAIL: $(why $rc "$STEP_S" 120)" "" "" "" "$STEP_S"; tail_of "$DEV-resnet20"
    elif [ $DRY = 1 ]; then row "resnet20 recipe, CPU half (dry run: 5 steps)" info "$(pct "$a")" "" "" "$STEP_S"
    else
      st=pass; [ "$QUICK" = 1 ] || atleast "$a" 0.83 || st="FAIL: below 83 %"
      row "Fashion-MNIST resnet20, 1 epoch, SGD 0.1 + cosine, crop+flip: test acc, s/epoch" "$st" "$(pct "$a"), $e s" "" \
        "≥ 83 % after one epoch (85.9 % on the CPU, seed 1)" "$STEP_S"
    fi
  else no_time "resnet20 recipe" 30; fi
fi
# gpt-tiny on the repository's own docs (offline: the files travel with the tree)
mapfile -t docs < <(gc_doc_files)
LMTOK=$BUILD/gpu-check-docs.h5
if [ ${#docs[@]} -eq 0 ]; then row "gpt-tiny on the repository's docs" "FAIL: none of ${GC_DOCS[*]} in $SRC"
elif ! run docs-tokens 60 "$DATA" text "${docs[@]}" --val-percent 5 --force -o "$LMTOK"; then
  row "dlfs-data text over the repository's docs" "FAIL: $(tail -n 1 "$LOGS/docs-tokens.log")"; tail_of docs-tokens
elif ! ent=$(gc_unigram_nats 5 "${docs[@]}"); then row "gpt-tiny: the unigram entropy of the docs" "FAIL: no bytes"
elif b=$(budget 30 120); then
  lb=32; [ $DRY = 1 ] && lb=8
  lm=(--model gpt-tiny --batch $lb --optim adamw --lr 3e-3 --beta2 0.95 --weight-decay 0.1 --schedule cosine --warmup 50
      --lr-min 3e-4 --clip-grad 1.0 --seed 1)
  n=300; [ "$QUICK" = 1 ] && n=150; [ $DRY = 1 ] && n=10
  rc=0; run "$DEV-gpt-tiny" "$b" mpirun -np 1 "$TRAIN" --data "$LMTOK" --device "$DEV" --metrics "$LOGS/$DEV-gpt-tiny.jsonl" \
    "${lm[@]}" --max-steps $n || rc=$?
  l=$(mval "$LOGS/$DEV-gpt-tiny.jsonl" final test_loss)
  tok=$(sed -n 's/^wrote .*: \([0-9]*\) train + \([0-9]*\) val.*/\1 + \2/p' "$LOGS/docs-tokens.log")
  lab="gpt-tiny, $n AdamW steps of $lb × 129 bytes of the repository's docs (${#docs[@]} files, $tok tokens): validation nats/byte"
  if [ $rc -ne 0 ] || [ -z "$l" ]; then row "gpt-tiny on $DEV" "FAIL: $(why $rc "$STEP_S" 120)" "" "" "" "$STEP_S"; tail_of "$DEV-gpt-tiny"
  elif [ $DRY = 1 ]; then row "$lab (dry run: the gate not applied)" info "$l (unigram entropy $ent)" "" "" "$STEP_S"
  else
    st=pass; [ "$QUICK" = 1 ] || awk -v l="$l" -v e="$ent" 'BEGIN { exit !(l < 0.8 * e) }' || st="FAIL: not below 0.8 × the unigram entropy"
    row "$lab" "$st" "$l" "" "< 0.8 × the byte unigram entropy of the validation text ($ent, awk)" "$STEP_S"
  fi
else no_time "gpt-tiny training" 30; fi
pack
# resnet50 and gpt2: dlfs's --bench, then PyTorch's steps of the same cases on the same device
if [ $DRY = 1 ]; then
  m_s=1 m_w=0
  mb=("r50-fp32 resnet50 1 $m_s $m_w" "lm-fp32 gpt-tiny 4 $m_s $m_w") tcases=(resnet50:1 gpt-tiny:4) lmname=gpt-tiny lmb=4 rb=1
else
  m_s=10 m_w=3; [ "$QUICK" = 1 ] && m_s=4 m_w=2
  mb=("r50-fp32 resnet50 32 $m_s $m_w" "r50-bf16 resnet50 32 $m_s $m_w --precision bf16"
      "lm-fp32 gpt2 4 $m_s $m_w" "lm-bf16 gpt2 4 $m_s $m_w --precision bf16")
  tcases=(resnet50:32 resnet50:32:bf16 gpt2:4 gpt2:4:bf16) lmname=gpt2 lmb=4 rb=32
fi
for spec in "${mb[@]}"; do
  read -r -a w <<<"$spec"
  if b=$(budget 20 90); then gc_bench "${w[@]:0:1}" "$b" "${w[@]:1}"; else DL[${w[0]}]="no time"; no_time "bench ${w[1]} ${w[*]:5}" 20; fi
done
if [ "$TORCH" = 1 ] || { [ $DRY = 1 ] && [ "$TORCH" != 0 ]; }; then
  tdev=cuda; [ $DRY = 1 ] && tdev=cpu
  if b=$(budget 30 150); then
    run torch-models "$b" "$PY" "$SRC/launch/study/torch_ref.py" --device $tdev --steps $m_s --warmup $m_w "${tcases[@]}" \
      || { rc=$?; row "PyTorch reference (resnet50, $lmname)" "FAIL: $(why $rc "$STEP_S" 150)"; tail_of torch-models; }
    STEP_S_M=$STEP_S
    gc_torch_lines torch-models
  else no_time "PyTorch reference (resnet50, $lmname)" 30; fi
fi
dry=""; [ $DRY = 1 ] && dry=" (dry run, CPU: the parsing, not a figure)"
wh="same GPU, same run"; [ $DRY = 1 ] && wh="CPU"
for prec in fp32 bf16; do
  [ -n "${DL[r50-$prec]:-}" ] && gc_vs_torch "bench-vs-torch resnet50 $prec, batch $rb, 3×224×224, $wh (ms per step)$dry" \
    "r50-$prec" resnet50 "$rb" "$prec" "$rb" images
  [ -n "${DL[lm-$prec]:-}" ] && gc_vs_torch "bench-vs-torch $lmname $prec, batch $lmb windows, $wh (ms per step)$dry" \
    "lm-$prec" "$lmname" "$lmb" "$prec" "$((lmb * $( [ $lmname = gpt2 ] && echo 1024 || echo 128)))" tokens
done
[ "$TORCH" = 1 ] || [ $DRY = 1 ] || row "bench-vs-torch resnet50, gpt2" "skipped: the image's Python has no torch with CUDA"
pack
