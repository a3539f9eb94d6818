# shellcheck shell=bash
# shellcheck disable=SC2015 # `test && row || row`: row never fails
# Sourced by launch/gpu-check.sh, in its shell (its options, helpers and the variables of the
# steps before): step 6, the rest: the hung NCCL set-up, ctest -L gpu, checkpoints across devices,
# NCCL with 1 rank, the 8-rank rehearsal, the feature rows, cnn-bn, tf32, compute-sanitizer.

# ==== 6. the rest ============================================================================
# 6a. a hung NCCL set-up ends within --comm-timeout (test hook: one rank never completes init):
# first, so that a real NCCL hang shows here in seconds before the longer NCCL tests
common=(--model mlp --batch 128 --epochs 1 --seed 5)
if [ $DRY = 1 ] || [ $cuda = OFF ]; then row "hung NCCL set-up ends within --comm-timeout" "skipped: dry run (needs a GPU)"
elif [ -z "$FM" ]; then row "hung NCCL set-up" "FAIL: no Fashion-MNIST in the build tree"
elif b=$(budget 40 90); then
  DLFS_FAULT_NCCL_INIT_STALL=0:600 train nccl-stall "$b" 1 cuda "${common[@]}" --max-steps 20 --comm nccl --comm-timeout 5; rc=$?
  msg=$(grep -m1 '^dlfs-train: ' "$LOGS/nccl-stall.log")
  if [ $rc -ne 0 ] && [ $rc -ne 124 ] && [ $rc -ne 137 ] && [ "$STEP_S" -le 35 ] && grep -q "NCCL" <<<"$msg" \
     && ! grep -q "no usable GPU" <<<"$msg"; then
    row "hung NCCL set-up (DLFS_FAULT_NCCL_INIT_STALL), --comm-timeout 5" pass "ended after $STEP_S s: $msg" "" "ends within the timeout" "$STEP_S"
  else row "hung NCCL set-up, --comm-timeout 5" "FAIL: exit $rc after $STEP_S s${msg:+: $msg}" "" "" "ends within the timeout" "$STEP_S"; tail_of nccl-stall; fi
else no_time "hung NCCL set-up"; fi
# 6b. ctest -L gpu: the drivers in tests/gpu (graph on/off digests, NCCL/MPI paths, device selection)
if b=$(budget 60 240); then
  (cd "$BUILD" && run ctest-gpu "$b" ctest -L gpu -E '^(test_cuda_ops|test_pipeline_ops|test_lm_ops_cuda)$' --output-on-failure \
     --timeout "$b"); rc=$?
  STEP_S=$(sed -n 's/^Total Test time (real) = *\([0-9]*\).*/\1/p' "$LOGS/ctest-gpu.log")
  sum=$(grep -E "tests passed|tests failed" "$LOGS/ctest-gpu.log" | tail -n 1)
  nskip=$(grep -c '\*\*\*Skipped\|Not Run' "$LOGS/ctest-gpu.log")
  if [ $DRY = 1 ]; then
    if [ $rc -eq 0 ]; then row "ctest -L gpu (dry run: no GPU, so they report skipped)" "skipped: dry run ($nskip skipped; ${sum:-?})" "" "" "" "${STEP_S:-}"
    else row "ctest -L gpu (dry run)" "FAIL: a GPU test failed without a GPU: $sum" "" "" "" "${STEP_S:-}"; tail_of ctest-gpu 40; fi
  elif [ $rc -ne 0 ]; then row "ctest -L gpu (pipeline digests, NCCL/MPI paths, device selection)" "FAIL: ${sum:-$(why $rc 0 1)}" "" "" "all pass, none skipped" "${STEP_S:-}"; tail_of ctest-gpu 40
  elif [ "$nskip" -gt 0 ]; then row "ctest -L gpu" "FAIL: $nskip test(s) skipped on a GPU machine" "" "" "all pass, none skipped" "${STEP_S:-}"; tail_of ctest-gpu 40
  else row "ctest -L gpu (pipeline digests, NCCL/MPI paths, device selection)" pass "$sum" "" "all pass, none skipped" "${STEP_S:-}"; fi
else no_time "ctest -L gpu"; fi
pack

common=(--model mlp --batch 128 --epochs 1 --seed 5)
if [ -z "$FM" ]; then row "checkpoints, NCCL, rehearsal, cnn-bn, tf32" "FAIL: no Fashion-MNIST in the build tree"; else

# 6c. checkpoints: GPU write + resume (same bits, deterministic mode), GPU -> CPU and CPU -> GPU
full=200; [ $DRY = 1 ] && full=40
half=$((full / 2))
ck=(--model mlp --batch 128 --epochs 1 --max-steps "$full" --deterministic --seed 5)
ckf() { printf '%s/ckpt-%09d.h5' "$RUNS/$1" "$2"; }
OTHER=cpu
if b=$(budget 60 240); then
  t_ck=$SECONDS ok=1 detail=()
  devs=("$DEV"); [ "$DEV" = "$OTHER" ] || devs+=("$OTHER")
  for d in "${devs[@]}"; do
    rm -rf "${RUNS:?}/ck-$d"
    train "ck-$d" 60 1 "$d" "${ck[@]}" --checkpoint-dir "$RUNS/ck-$d" --checkpoint-every "$half" || { ok=0; detail+=("$d straight run failed"); tail_of "ck-$d"; }
  done
  dg=$(mval "$LOGS/ck-$DEV.jsonl" final params_sha256) ag=$(mval "$LOGS/ck-$DEV.jsonl" final test_acc)
  dc=$(mval "$LOGS/ck-$OTHER.jsonl" final params_sha256) ac=$(mval "$LOGS/ck-$OTHER.jsonl" final test_acc)
  # resume on the same device: the bits of the straight run
  if train ck-resume 60 1 $DEV "${ck[@]}" --resume "$(ckf "ck-$DEV" "$half")"; then
    [ -n "$dg" ] && [ "$(mval "$LOGS/ck-resume.jsonl" final params_sha256)" = "$dg" ] && detail+=("$DEV resume: same bits") \
      || { ok=0; detail+=("$DEV resume: digest differs"); }
  else ok=0; detail+=("$DEV resume failed"); tail_of ck-resume; fi
  # the other backend evaluates the checkpoint to the same bits and accuracy, and trains on from it
  pairs=("$DEV $OTHER $dg $ag"); [ "$DEV" = "$OTHER" ] || pairs+=("$OTHER $DEV $dc $ac")
  for pair in "${pairs[@]}"; do
    read -r from to dig acc <<<"$pair"
    if train "ck-eval-$from-$to" 60 1 "$to" --eval --resume "$(ckf "ck-$from" "$full")"; then
      e_d=$(mval "$LOGS/ck-eval-$from-$to.jsonl" eval params_sha256) e_a=$(mval "$LOGS/ck-eval-$from-$to.jsonl" eval test_acc)
      [ "$e_d" = "$dig" ] && within "$e_a" "$acc" 0.2 && detail+=("$from→$to eval: same bits, acc $(pct "$e_a")") \
        || { ok=0; detail+=("$from→$to eval: digest ${e_d:0:12} vs ${dig:0:12}, acc $(pct "$e_a") vs $(pct "$acc")"); }
    else ok=0; detail+=("$from→$to eval failed"); tail_of "ck-eval-$from-$to"; fi
    if train "ck-on-$from-$to" 60 1 "$to" "${ck[@]}" --resume "$(ckf "ck-$from" "$half")"; then
      r_a=$(mval "$LOGS/ck-on-$from-$to.jsonl" final test_acc)
      within "$r_a" "$acc" 1.5 && detail+=("$from→$to resume: acc $(pct "$r_a")") \
        || { ok=0; detail+=("$from→$to resume: acc $(pct "$r_a") vs $(pct "$acc")"); }
    else ok=0; detail+=("$from→$to resume failed"); tail_of "ck-on-$from-$to"; fi
  done
  st=pass; [ $ok = 1 ] || st="FAIL"
  [ $DRY = 1 ] && [ $ok = 1 ] && st="pass (dry run: CPU on both sides)"
  row "checkpoints: write + resume on $DEV, $DEV→$OTHER and $OTHER→$DEV (eval: same bits, ±0.2 pt; resume: ±1.5 pt)" "$st" \
    "$(IFS=';'; echo "${detail[*]}")" "" "" "$((SECONDS - t_ck))"
else no_time "checkpoints"; fi
pack

# 6d. 1 rank over NCCL; the 8-rank rehearsal: 8 ranks share the one GPU over MPI, deterministic
if [ $DRY = 0 ] && [ -n "$nccl_h" ]; then
  if ! b=$(budget 20 90); then no_time "1 rank --comm nccl"
  elif rc=0; train nccl-np1 "$b" 1 cuda "${common[@]}" --max-steps 200 --comm nccl --comm-timeout 20 || rc=$?; [ $rc -eq 0 ]; then
    if grep -q "gradients summed by nccl" "$LOGS/nccl-np1.log"; then
      row "1 rank --comm nccl (200 steps)" pass "$(pct "$(mval "$LOGS/nccl-np1.jsonl" final test_acc)")" "" "" "$STEP_S"
    else row "1 rank --comm nccl" "FAIL: the banner does not say 'gradients summed by nccl'" "" "" "" "$STEP_S"; fi
  else row "1 rank --comm nccl" "FAIL: $(why $rc "$STEP_S" 90)" "" "" "" "$STEP_S"; tail_of nccl-np1; fi
fi
np=8; [ $DRY = 1 ] && np=2
if b=$(budget 40 180); then
  t_r=$SECONDS
  det=(--model mlp --batch 128 --epochs 1 --max-steps 100 --seed 7 --deterministic)
  [ $DRY = 1 ] && det=(--model mlp --batch 128 --epochs 1 --max-steps 20 --seed 7 --deterministic)
  if train "rehearsal-np1" 90 1 $DEV "${det[@]}" && train "rehearsal-np$np" "$(budget 20 150 || echo 20)" $np $DEV "${det[@]}" --comm mpi; then
    a=$(mval "$LOGS/rehearsal-np1.jsonl" final params_sha256) b8=$(mval "$LOGS/rehearsal-np$np.jsonl" final params_sha256)
    path=$(grep -o 'gradients summed by [a-z-]*' "$LOGS/rehearsal-np$np.log" | head -n 1)
    lab="rehearsal: $np ranks on one $( [ $DRY = 1 ] && echo CPU || echo GPU) (--comm mpi, deterministic) vs 1 rank"
    [ -n "$a" ] && [ "$a" = "$b8" ] && row "$lab" pass "same bits (${a:0:16}…), $path" "" "the same params_sha256" "$((SECONDS - t_r))" \
      || row "$lab" "FAIL: digests differ (${a:0:12} vs ${b8:0:12})" "" "" "the same params_sha256" "$((SECONDS - t_r))"
  else row "rehearsal: $np ranks, --comm mpi" "FAIL: a run failed" "" "" "" "$((SECONDS - t_r))"; tail_of "rehearsal-np$np"; fi
else no_time "8-rank rehearsal"; fi

# 6d'. --accum-steps 4, --zero 1, --trace (launch/gpu/rows.sh)
gc_feature_rows

# 6e. cnn-bn (batch norm, dropout: no graph) on the GPU against the CPU, the same 300 steps
nb=300; [ $DRY = 1 ] && nb=10
if b=$(budget 40 150); then
  t_b=$SECONDS
  bn=(--model cnn-bn --batch 128 --epochs 1 --max-steps "$nb" --optim adam --lr 1e-3 --schedule cosine --seed 3)
  if [ $DRY = 0 ]; then train cnnbn-cpu "$b" 1 cpu "${bn[@]}" --threads $((NCPU > 4 ? NCPU - 2 : 2)) & bpid=$!; fi
  train "cnnbn-$DEV" "$b" 1 $DEV "${bn[@]}"; rc=$?
  a=$(mval "$LOGS/cnnbn-$DEV.jsonl" final test_acc)
  if [ $DRY = 1 ]; then
    [ $rc -eq 0 ] && row "cnn-bn, CPU half (dry run: $nb steps)" info "$(pct "$a")" "" "" "$((SECONDS - t_b))" \
      || { row "cnn-bn (dry run)" "FAIL: exit $rc" "" "" "" "$((SECONDS - t_b))"; tail_of "cnnbn-$DEV"; }
  else
    wait "$bpid"; rc2=$?
    c=$(mval "$LOGS/cnnbn-cpu.jsonl" final test_acc)
    if [ $rc -ne 0 ]; then row "cnn-bn, $nb steps, GPU" "FAIL: $(why $rc $((SECONDS - t_b)) 150)" "" "" "" "$((SECONDS - t_b))"; tail_of "cnnbn-$DEV"
    elif [ $rc2 -ne 0 ]; then row "cnn-bn, $nb steps: GPU / CPU" "skipped: the CPU run did not finish (exit $rc2)" "$(pct "$a")" "" "" "$((SECONDS - t_b))"
    else
      st=pass; within "$a" "$c" 1.5 && atleast "$a" 0.80 || st="FAIL: not ≥ 80 % and within 1.5 points of the CPU"
      row "cnn-bn (batch norm, dropout), $nb steps: test acc GPU / CPU" "$st" "$(pct "$a") / $(pct "$c")" "" "≥ 80 %, within 1.5 points" "$((SECONDS - t_b))"
    fi
  fi
else no_time "cnn-bn"; fi

# 6f. tf32 training, the quickstart recipe: within 0.5 points of fp32
if b=$(budget 20 150); then
  rc=0; train "$DEV-tf32" "$b" 1 $DEV "${recipe[@]}" --epochs $ep --precision tf32 "${tiny[@]}" || rc=$?
  if [ $rc -eq 0 ]; then
    a=$(mval "$LOGS/$DEV-tf32.jsonl" final test_acc)
    if [ $DRY = 1 ]; then row "mlp quickstart recipe, tf32, CPU half (dry run)" info "$(pct "$a")" "" "" "$STEP_S"
    else
      graph_ok "$DEV-tf32"
      st=pass; within "$a" "${ACC[fp32]:-}" 0.5 || st="FAIL: not within 0.5 points of fp32 ($(pct "${ACC[fp32]:-}"))"
      [ -n "${ACC[fp32]:-}" ] || st="skipped: no fp32 run to compare with"
      row "… tf32 (cuBLAS TF32 tensor-op math), $ep epochs" "$st" "$(pct "$a"), $(epoch_s "$LOGS/$DEV-tf32.jsonl") s" "" "within 0.5 points of fp32" "$STEP_S"
    fi
  else row "mlp quickstart recipe, tf32" "FAIL: $(why $rc "$STEP_S" 150)" "" "" "" "$STEP_S"; tail_of "$DEV-tf32"; fi
else no_time "tf32 training"; fi
fi  # [ -n "$FM" ]
pack

# 6g. compute-sanitizer: memcheck over every op family, racecheck over those with shared memory
if [ $DRY = 1 ] || [ $cuda = OFF ]; then row "compute-sanitizer memcheck / racecheck" "skipped: dry run (needs a GPU)"
elif [ -z "$SAN" ]; then row "compute-sanitizer memcheck / racecheck" "skipped: no compute-sanitizer on this machine"
else
  for tool in memcheck racecheck; do
    fams=$("$OPS" --list)
    # the kernels with __shared__ arrays: colsum (act.cu), conv_db (conv.cu), loss.cu, norm.cu
    [ $tool = racecheck ] && fams="colsum loss conv batchnorm"
    clean=() bad=() notrun=() t_s=$SECONDS
    for f in $fams; do
      if b=$(budget 15 120); then
        rc=0; DLFS_OPS_FAMILY_TIMEOUT=$b run "san-$tool-$f" "$b" "$SAN" --tool $tool --error-exitcode 99 "$OPS" --no-fork "$f" || rc=$?
        if [ $rc -eq 0 ]; then clean+=("$f")
        else bad+=("$f ($( [ $rc -eq 99 ] && echo "$tool errors" || why $rc "$STEP_S" 120))"); tail_of "san-$tool-$f" 15; fi
      else notrun+=("$f"); fi
    done
    st=pass; [ ${#bad[@]} -eq 0 ] || st="FAIL: ${bad[*]}"
    [ ${#notrun[@]} -eq 0 ] || { [ ${#bad[@]} -eq 0 ] && st="skipped: no time for ${notrun[*]}"; }
    row "compute-sanitizer $tool: op families" "$st" "${#clean[@]} clean: ${clean[*]}" "" "no errors" "$((SECONDS - t_s))"
  done
fi
