#!/usr/bin/env bash
# Deterministic mode: the same params_sha256 after 200 steps of mlp on
# Fashion-MNIST for np = 1, 2, 4 and 8 (8 virtual shards); fast mode differs in
# bits but stays close (test loss within 1e-3 of deterministic mode).
. "$(dirname "$0")/../lib.sh"
train=$1 fm=$3
[ -f "$fm" ] || { echo "no $fm: skipped"; exit 77; }
common=(--data "$fm" --model mlp --batch 128 --epochs 1 --max-steps 200 --seed 3 --eval-batch 2000)
ref=""
for np in 1 2 4 8; do
  t0=$(date +%s.%N)
  mpirun -np $np "$train" "${common[@]}" --deterministic --virtual-shards 8 --check-sync 50 \
    --metrics "$T_TMP/det$np.jsonl" > "$T_TMP/det$np.out" 2>&1 || { cat "$T_TMP/det$np.out"; t_fail "np=$np run failed"; continue; }
  d=$(t_digest "$T_TMP/det$np.jsonl")
  printf 'np=%d digest %s (%.1f s)\n' $np "$d" "$(echo "$(date +%s.%N) - $t0" | bc)"
  [ -n "$d" ] || t_fail "np=$np: no digest"
  if [ -z "$ref" ]; then ref=$d; elif [ "$d" = "$ref" ]; then t_pass "np=$np digest equals np=1"; else t_fail "np=$np digest $d != $ref"; fi
done
# fast mode on 2 ranks: close to deterministic, not necessarily bit-equal
mpirun -np 2 "$train" "${common[@]}" --metrics "$T_TMP/fast2.jsonl" > "$T_TMP/fast2.out" 2>&1 || t_fail "fast np=2"
"${PYTHON:-python3}" - "$T_TMP/det1.jsonl" "$T_TMP/fast2.jsonl" <<'PY' && t_pass "fast mode agrees with deterministic mode" || t_fail "fast vs deterministic"
import json, sys
a = [json.loads(l) for l in open(sys.argv[1])][-1]
b = [json.loads(l) for l in open(sys.argv[2])][-1]
print("det test_loss %.6f acc %.4f / fast test_loss %.6f acc %.4f" % (a["test_loss"], a["test_acc"], b["test_loss"], b["test_acc"]))
assert abs(a["test_loss"] - b["test_loss"]) < 1e-3 and abs(a["test_acc"] - b["test_acc"]) < 2e-3
PY
t_done
