#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR disable=SC2015 # `check && t_pass || t_fail`: t_pass never fails
# --target-acc / --eval-every (time to accuracy): a target within reach stops the run
# at the evaluation that first reaches it, with the steps and time recorded; one out of
# reach says so and records target_reached false; several ranks stop at the same step
# as one rank (deterministic mode: the same accuracies bit for bit).
. "$(dirname "$0")/../lib.sh"
train=$1 fm=$3
[ -f "$fm" ] || { echo "no $fm: skipped"; exit 77; }
py=${PYTHON:-python3}
"$py" -c 'import json' 2>/dev/null || { echo "no python3: skipped"; exit 77; }
common=(--data "$fm" --model mlp --batch 128 --epochs 2 --seed 3 --eval-batch 2000 --deterministic --virtual-shards 4)
# what the metrics must say: PY FILE WANT_REACHED [STEP]
check() {
  "$py" - "$@" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
final = [r for r in rows if r.get("event") == "final"][-1]
evals = [r for r in rows if r.get("event") == "eval"]
want = sys.argv[2] == "1"
assert final["target_reached"] is want, final
if want:
    hit = [r for r in evals if r["test_acc"] >= final["target_acc"]]
    assert hit and hit[0]["step"] == final["steps_to_target"] == final["step"], (hit[:1], final)
    assert all(r["test_acc"] < final["target_acc"] for r in evals if r["step"] < final["step"]), evals
    assert 0 < final["time_to_target_s"] <= hit[0]["elapsed_s"] + 1e-3, final
    assert final["steps_to_target"] % 40 == 0 or final["steps_to_target"] % 468 == 0, final
else:
    assert final["steps_to_target"] == -1 and final["time_to_target_s"] == -1, final
    assert max(r["test_acc"] for r in evals) < final["target_acc"], evals
if len(sys.argv) > 3:
    assert final["step"] == int(sys.argv[3]), (final["step"], sys.argv[3])
print("steps_to_target %s, step %d, %d evaluations" % (final["steps_to_target"], final["step"], len(evals)))
PY
}
# 1. within reach: 0.80 comes within the first epoch of mlp
mpirun -np 1 "$train" "${common[@]}" --target-acc 0.80 --eval-every 40 --metrics "$T_TMP/r1.jsonl" \
  > "$T_TMP/r1.out" 2>&1 || { cat "$T_TMP/r1.out"; t_fail "np=1 run failed"; t_done; }
step1=$(sed -n 's/.*"steps_to_target": \([0-9]*\).*/\1/p' "$T_TMP/r1.jsonl")
check "$T_TMP/r1.jsonl" 1 && t_pass "target 0.80 reached and recorded (step $step1)" || t_fail "target within reach"
[ -n "$step1" ] && [ "$step1" -lt 468 ] && t_pass "stopped early, at step $step1" || t_fail "did not stop early: step '$step1'"
grep -q "target_acc 80.00% reached at step $step1 after" "$T_TMP/r1.out" && t_pass "printed" \
  || { t_fail "no 'reached' line"; tail -3 "$T_TMP/r1.out"; }
# 2. several ranks: the same step (and the same digest: deterministic mode)
for np in 2 4; do
  mpirun -np $np "$train" "${common[@]}" --target-acc 0.80 --eval-every 40 --metrics "$T_TMP/r$np.jsonl" \
    > "$T_TMP/r$np.out" 2>&1 || { cat "$T_TMP/r$np.out"; t_fail "np=$np run failed"; continue; }
  check "$T_TMP/r$np.jsonl" 1 "$step1" && [ "$(t_digest "$T_TMP/r$np.jsonl")" = "$(t_digest "$T_TMP/r1.jsonl")" ] \
    && t_pass "np=$np stops at the same step $step1 with the same digest" || t_fail "np=$np disagrees with np=1"
done
# 3. out of reach: recorded as not reached, the run goes to its end, exit 0. Its console
# (mpirun's output to a file, the ranks on mpirun's pseudo-terminal): each --eval-every
# evaluation printed as the metrics record it, plain progress lines (no \r), the
# --max-steps stop announced.
mpirun -np 2 "$train" "${common[@]}" --max-steps 80 --target-acc 0.99 --eval-every 40 --metrics "$T_TMP/n.jsonl" \
  --progress-seconds 0.01 > "$T_TMP/n.out" 2>&1 && t_pass "not reached: exit 0" || { cat "$T_TMP/n.out"; t_fail "not reached: exit code"; }
check "$T_TMP/n.jsonl" 0 80 && t_pass "not reached: recorded, ran to step 80" || t_fail "target out of reach"
grep -q "target_acc 99.00% NOT reached: best" "$T_TMP/n.out" && t_pass "not reached: printed" || t_fail "no 'NOT reached' line"
want=$("$py" -c 'import json, sys
for l in open(sys.argv[1]):
    r = json.loads(l)
    if r.get("event") == "eval": print("  eval at step %d: test_loss %.4f  test_acc %6.2f%%" % (r["step"], r["test_loss"], 100 * r["test_acc"]))' "$T_TMP/n.jsonl")
got=$(sed -n 's/^\(  eval at step .*%\)  (.*/\1/p' "$T_TMP/n.out")
[ "$(wc -l <<<"$want")" = 2 ] && [ "$got" = "$want" ] && t_pass "--eval-every: both evaluations printed as recorded" \
  || t_fail "--eval-every: printed '$got', metrics say '$want'"
! grep -q $'\r' "$T_TMP/n.out" && [ "$(grep -c '^  epoch 1  step [0-9]*/468  loss' "$T_TMP/n.out")" -ge 2 ] \
  && t_pass "under mpirun into a file: plain progress lines, no \\r" || { cat -A "$T_TMP/n.out" | head; t_fail "progress lines"; }
grep -q "^--max-steps 80 reached: stopped at step 80 of the 936 that --epochs 2 would take$" "$T_TMP/n.out" \
  && t_pass "the --max-steps stop is announced" || t_fail "no --max-steps line"
# 4. bad values name the option
t_expect_error "target above 1" 2 "--target-acc '90'" mpirun -np 1 "$train" --data "$fm" --target-acc 90
t_done
