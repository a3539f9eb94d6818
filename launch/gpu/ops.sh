# shellcheck shell=bash
# shellcheck disable=SC2015 # `test && row || row`: row never fails
# Sourced by launch/gpu-check.sh, in its shell (its options, helpers and the variables of the
# steps before): steps 3 and 4: the op tests (every CUDA op family against the CPU, a process each)
# and the benchmarks, dlfs and PyTorch on the same models; sets OPS, DL, PT.

# ==== 3. op tests ==========================================================================
OPS=$BUILD/tests/gpu/test_cuda_ops
ops_row() { # NAME LABEL: the op families of log NAME, summed up
  local f ok fail
  ok=$(grep -c "^family .*: ok$" "$LOGS/$1.log")
  fail=$(grep "^family .*: FAIL" "$LOGS/$1.log" | sed 's/^family \([a-z_]*\): FAIL:\{0,1\} */\1 /' | paste -sd, -)
  f=$(sed -n 's/^op families: //p' "$LOGS/$1.log")
  echo "${f:-no summary}${fail:+; failed: $fail}"
}
if [ $cuda = ON ] && [ -x "$OPS" ]; then
  self=(); [ $DRY = 1 ] && self=(--self)
  if b=$(budget 20 180); then
    DLFS_CUDA_SYNC=1 DLFS_OPS_FAMILY_TIMEOUT=90 run ops "$b" "$OPS" "${self[@]}"; rc=$?
    label="op tests: $("$OPS" --list | wc -l) op families vs the CPU, one process each, DLFS_CUDA_SYNC=1"
    [ $DRY = 1 ] && label="op harness --self (CPU vs CPU; dry run)"
    if [ $rc -eq 0 ]; then row "$label" pass "$(ops_row ops)" "" "all ok" "$STEP_S"
    elif [ $rc -eq 77 ]; then row "$label" "FAIL: skipped on a GPU machine ($(grep -m1 skipped "$LOGS/ops.log"))" "" "" "all ok" "$STEP_S"
    else row "$label" "FAIL: $(why $rc "$STEP_S" 180)" "$(ops_row ops)" "" "all ok" "$STEP_S"; tail_of ops 40; fi
  else no_time "op tests"; fi
else
  row "op tests (test_cuda_ops)" "skipped: no CUDA backend built (dry run without nvcc)"
fi
LMOPS=$BUILD/tests/unit/test_lm_ops_cuda   # the language model's ops against float64 on the device
if [ $cuda = ON ] && [ -x "$LMOPS" ]; then
  if b=$(budget 10 120); then
    lself=(); [ $DRY = 1 ] && lself=(--self)
    DLFS_CUDA_SYNC=1 run lm-ops "$b" "$LMOPS" "${lself[@]}"; rc=$?
    label="language-model ops (embedding, layer norm, attention, loss per position) vs float64"
    [ $DRY = 1 ] && label="language-model ops --self (dry run)"
    if [ $rc -eq 0 ]; then row "$label" pass "" "" "" "$STEP_S"
    else row "$label" "FAIL: $( [ $rc -eq 77 ] && echo "skipped on a GPU machine" || why $rc "$STEP_S" 120)" "" "" "" "$STEP_S"; tail_of lm-ops; fi
  else no_time "language-model ops"; fi
else
  row "language-model ops (test_lm_ops_cuda)" "skipped: no CUDA backend built (dry run without nvcc)"
fi
if b=$(budget 10 120); then
  pself=(); [ $DRY = 1 ] && pself=(--self)
  run pipeline-ops "$b" "$BUILD/tests/gpu/test_pipeline_ops" "${pself[@]}"; rc=$?
  label="pipeline ops (gather, pinned staging, graph replay == eager)"; [ $DRY = 1 ] && label="pipeline ops --self (dry run)"
  if [ $rc -eq 0 ]; then row "$label" pass "" "" "" "$STEP_S"
  else row "$label" "FAIL: $( [ $rc -eq 77 ] && echo "skipped on a GPU machine" || why $rc "$STEP_S" 120)" "" "" "" "$STEP_S"; tail_of pipeline-ops; fi
else no_time "pipeline ops"; fi
pack

# ==== 4. benchmarks: dlfs and PyTorch, same models ============================================
bench_ms() { sed -n 's/.*median step \([0-9.]*\) ms.*/\1/p' "$LOGS/$1.log" | tail -n 1; }
declare -A DL=() PT=()
bs=200 bl=20; [ "$QUICK" = 1 ] && bs=50 bl=5
[ $DRY = 1 ] && bs=5 bl=2
specs=("mlp mlp 128 $bs 20" "mlp-nograph mlp 128 $bs 20 --cuda-graph off" "mlp-large-fp32 mlp-large 8192 $bl 3"
       "mlp-large-bf16 mlp-large 8192 $bl 3 --precision bf16" "mlp-large-tf32 mlp-large 8192 $bl 3 --precision tf32"
       "cnn cnn 128 $bs 10")
[ $DRY = 1 ] && specs=("mlp mlp 128 $bs 1" "mlp-nograph mlp 128 $bs 1 --cuda-graph off")
for spec in "${specs[@]}"; do
  read -r -a w <<<"$spec"
  name=${w[0]} model=${w[1]} batch=${w[2]} steps=${w[3]} warm=${w[4]}
  if b=$(budget 15 60); then
    rc=0
    run "bench-$name" "$b" mpirun -np 1 "$TRAIN" --bench --device $DEV --model "$model" --batch "$batch" \
      --steps "$steps" --bench-warmup "$warm" "${w[@]:5}" || rc=$?
    if [ $rc -eq 0 ]; then
      DL[$name]=$(bench_ms "bench-$name")
      if grep -q "CUDA graph fell back to eager" "$LOGS/bench-$name.log"; then
        row "bench $name: the CUDA graph" "FAIL: $(grep -o 'CUDA graph fell back to eager[^;]*' "$LOGS/bench-$name.log" | head -n 1)"
        DL[$name]="${DL[$name]} (eager!)"
      fi
    else
      DL[$name]="failed"; row "dlfs-train --bench $name" "FAIL: $(why $rc "$STEP_S" 60)" "" "" "" "$STEP_S"; tail_of "bench-$name"
    fi
  else DL[$name]="no time"; fi
done
if [ $TORCH = 1 ] && [ $DRY = 0 ]; then
  for part in "small $bs 20 mlp:128 mlp:128:fp32:graph cnn:128 cnn:128:fp32:graph" \
              "large $bl 3 mlp-large:8192 mlp-large:8192:bf16 mlp-large:8192:bf16:graph"; do
    read -r -a w <<<"$part"
    if b=$(budget 30 150); then
      run "torch-${w[0]}" "$b" "$PY" "$SRC/launch/study/torch_ref.py" --device cuda --steps "${w[1]}" --warmup "${w[2]}" "${w[@]:3}" \
        || { rc=$?; row "PyTorch reference (${w[0]})" "FAIL: $(why $rc "$STEP_S" 150)"; tail_of "torch-${w[0]}"; }
    else no_time "PyTorch reference (${w[0]})"; fi
  done
  while read -r _ name _ prec mode ms; do PT[$name-$prec-$mode]=$ms
  done < <(cat "$LOGS"/torch-*.log 2>/dev/null | grep -E '^torch [a-z-]+ [0-9]+ (fp32|bf16) (eager|graph) [0-9.]+$')
  say "$(head -n 2 "$LOGS/torch-small.log" 2>/dev/null | tail -n 1)"
fi
pt() { if [ $TORCH = 1 ] && [ $DRY = 0 ]; then echo "${PT[$1-eager]:-n/a} / ${PT[$1-graph]:-n/a}"; else echo "no PyTorch with CUDA"; fi; }
perf() { # MEASURED TARGET_MS: met / missed / why there is no number (a row of its own says why)
  case $1 in '' | failed | "no time" | *eager*) echo "not measured (${1:-no result})" ;;
  *) atmost "$1" "$2" && echo "met" || echo "missed" ;; esac
}
if [ $DRY = 1 ]; then
  row "bench mlp/128 on the CPU, graph on / off (dry run: the parsing, not a figure)" info "${DL[mlp]:-?} / ${DL[mlp-nograph]:-?} ms"
  if [ $TORCH != 0 ] && b=$(budget 30 90); then  # PyTorch on the CPU, to exercise the parsing
    rc=0; run torch-cpu "$b" "$PY" "$SRC/launch/study/torch_ref.py" --device cpu --steps 3 --warmup 1 mlp:128 || rc=$?
    if [ $rc -eq 0 ]; then
      ms=$(grep -E '^torch mlp 128 fp32 eager [0-9.]+$' "$LOGS/torch-cpu.log" | cut -d' ' -f6)
      row "PyTorch reference on the CPU, mlp/128 (dry run: the parsing)" info "" "${ms:-?} ms" "" "$STEP_S"
    else row "PyTorch reference on the CPU (dry run)" "FAIL: $(why $rc "$STEP_S" 90)"; tail_of torch-cpu; fi
  fi
else
  row "mlp 784-512-512-10, batch 128, fp32, Adam step (ms): CUDA graph" "$(perf "${DL[mlp]:-}" 0.06)" "${DL[mlp]:-?}" "$(pt mlp-fp32)" "≤ 0.06 (PyTorch on H100: 0.172 graph, 0.72–0.92 eager)"
  row "mlp, batch 128, fp32: --cuda-graph off (ms)" info "${DL[mlp-nograph]:-?}" "" ""
  row "mlp-large 784-4096×3-10, batch 8192, fp32 no TF32 (ms)" "$(perf "${DL[mlp-large-fp32]:-}" 36)" "${DL[mlp-large-fp32]:-?}" "$(pt mlp-large-fp32)" "≤ 36 (PyTorch 36.0)"
  row "mlp-large, batch 8192, bf16, fp32 master weights (ms)" "$(perf "${DL[mlp-large-bf16]:-}" 3.2)" "${DL[mlp-large-bf16]:-?}" "$(pt mlp-large-bf16)" "≤ 3.2 (PyTorch 3.53)"
  row "mlp-large, batch 8192, --precision tf32 (ms)" info "${DL[mlp-large-tf32]:-?}" "" ""
  row "cnn, batch 128, fp32, Adam step (ms)" info "${DL[cnn]:-?}" "$(pt cnn-fp32)" "469 steps ≤ 0.4 s"
  if [ $TORCH = 1 ]; then gc_torch_rows
  else row "bench-vs-torch (dlfs and PyTorch on the same GPU)" "skipped: the image's Python has no torch with CUDA"; fi
fi
pack
