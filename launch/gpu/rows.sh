# shellcheck shell=bash
# shellcheck disable=SC2015 # `test && row || row`: row never fails
# Sourced by launch/gpu-check.sh: the rows for the features the GPU runs besides plain
# training. They use the check's own helpers (train, row, budget, no_time, mval,
# tail_of, why) and variables (DEV, DRY, LOGS, PY, DL, PT).

# --accum-steps 4 and --zero 1 (2 ranks over MPI: NCCL refuses two ranks on one GPU):
# deterministic mode, so both give the bits of the plain 1-rank run.
gc_feature_rows() {
  local det=(--model mlp --batch 128 --epochs 1 --max-steps 40 --seed 9 --deterministic --virtual-shards 8)
  local ref="" d b t0
  [ "$DRY" = 1 ] && det=(--model mlp --batch 128 --epochs 1 --max-steps 10 --seed 9 --deterministic --virtual-shards 8)
  if b=$(budget 30 90); then
    t0=$SECONDS
    if train feat-ref "$b" 1 "$DEV" "${det[@]}"; then ref=$(mval "$LOGS/feat-ref.jsonl" final params_sha256)
    else row "--accum-steps / --zero: the plain run" "FAIL: $(why $? "$STEP_S" 90)"; tail_of feat-ref; fi
  else no_time "--accum-steps 4, --zero 1" 30; return 0; fi
  if [ -n "$ref" ] && b=$(budget 20 90); then
    t0=$SECONDS
    if train feat-accum "$b" 1 "$DEV" "${det[@]}" --accum-steps 4; then
      d=$(mval "$LOGS/feat-accum.jsonl" final params_sha256)
      [ "$d" = "$ref" ] && row "--accum-steps 4 on $DEV (deterministic): the bits of --accum-steps 1" pass "${d:0:16}…" "" "the same params_sha256" "$((SECONDS - t0))" \
        || row "--accum-steps 4 on $DEV" "FAIL: digest ${d:0:12} vs ${ref:0:12}" "" "" "the same params_sha256" "$((SECONDS - t0))"
    else row "--accum-steps 4 on $DEV" "FAIL: $(why $? "$STEP_S" 90)"; tail_of feat-accum; fi
  elif [ -n "$ref" ]; then no_time "--accum-steps 4" 20; fi
  if [ -n "$ref" ] && b=$(budget 20 120); then
    t0=$SECONDS
    if train feat-zero "$b" 2 "$DEV" "${det[@]}" --zero 1 --comm mpi; then
      d=$(mval "$LOGS/feat-zero.jsonl" final params_sha256)
      [ "$d" = "$ref" ] && row "--zero 1, 2 ranks on one $DEV, --comm mpi (deterministic): the bits of --zero 0" pass "${d:0:16}…" "" "the same params_sha256" "$((SECONDS - t0))" \
        || row "--zero 1, 2 ranks, --comm mpi" "FAIL: digest ${d:0:12} vs ${ref:0:12}" "" "" "the same params_sha256" "$((SECONDS - t0))"
    else row "--zero 1, 2 ranks, --comm mpi" "FAIL: $(why $? "$STEP_S" 120)"; tail_of feat-zero; fi
  elif [ -n "$ref" ]; then no_time "--zero 1" 20; fi
  gc_trace_row
}

# --trace: valid JSON (Chrome trace), with spans on the device track on a GPU
gc_trace_row() {
  local b n spans dev py
  b=$(budget 20 60) || { no_time "--trace" 20; return 0; }
  if ! train feat-trace "$b" 1 "$DEV" --model mlp --batch 128 --epochs 1 --max-steps 12 --seed 3 \
       --trace "$LOGS/feat-trace.json" --trace-steps 4; then
    row "--trace" "FAIL: $(why $? "$STEP_S" 60)"; tail_of feat-trace; return 0
  fi
  py=${PY:-}
  [ -n "$py" ] || py=$(command -v python3 || true)
  if [ -n "$py" ] && n=$("$py" -c 'import json, sys
ev = json.load(open(sys.argv[1]))["traceEvents"]
x = [e for e in ev if e.get("ph") == "X"]
print(len(x), sum(1 for e in x if e.get("cat") == "device"))' "$LOGS/feat-trace.json" 2>>"$LOGS/feat-trace.log"); then
    read -r spans dev <<<"$n"
    if [ "$DRY" = 1 ]; then row "--trace on the CPU (dry run): valid JSON" pass "$spans spans, $dev on the device track (none on the CPU)" "" "" "$STEP_S"
    elif [ "$dev" -gt 0 ]; then row "--trace on the GPU: valid JSON with device spans (CUDA events)" pass "$spans spans, $dev device" "" "device spans > 0" "$STEP_S"
    else row "--trace on the GPU" "FAIL: no span on the device track ($spans spans)" "" "" "device spans > 0" "$STEP_S"; fi
  elif [ -n "$py" ]; then row "--trace" "FAIL: not valid JSON ($(tail -n 1 "$LOGS/feat-trace.log"))" "" "" "" "$STEP_S"
  else row "--trace: JSON" "skipped: no Python to parse it" "$(grep -c '"ph": "X"' "$LOGS/feat-trace.json") spans" "" "" "$STEP_S"; fi
}

# bench-vs-torch: one row per model, dlfs and PyTorch on the same GPU in the same run
# (dlfs: the --bench medians of section 4; PyTorch: launch/study/torch_ref.py's, eager and graph)
gc_torch_rows() {
  local m key model pt batch prec d e g best ratio
  for m in "mlp mlp mlp-fp32 128 fp32" "cnn cnn cnn-fp32 128 fp32" "mlp-large-bf16 mlp-large mlp-large-bf16 8192 bf16"; do
    read -r key model pt batch prec <<<"$m"
    d=${DL[$key]:-} e=${PT[$pt-eager]:-} g=${PT[$pt-graph]:-}
    best=$g; [ -n "$best" ] || best=$e
    ratio=$(awk -v a="$d" -v b="$best" 'BEGIN { if (a + 0 > 0 && b + 0 > 0) printf "%.2fx", b / a; else print "n/a" }')
    row "bench-vs-torch $model $prec, batch $batch, same GPU, same run (ms per step)" info \
      "${d:-?}" "${e:-n/a} / ${g:-n/a}" "PyTorch best / dlfs: $ratio"
  done
}
