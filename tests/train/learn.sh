#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR disable=SC2015 # `check && t_pass || t_fail`: t_pass never fails
# Learning: mlp on Fashion-MNIST after one epoch (Adam, batch 128, seed 7) reaches
# >= 85.0 % test accuracy, and its mean train_loss over the epoch lies in [0.440, 0.475];
# a second run with the same seed gives the same params_sha256.
# The bounds sit just below what the recipe reaches (seeds 1-5 and 7, this test's exact
# recipe, 2-core VM, 2026-12-01): test_acc 85.67-86.25 %, train_loss 0.4538-0.4615.
# The accuracy alone cannot tell un-normalised inputs (x/255, the dataset's mean and std
# ignored) from the spread: they reach 84.93-85.82 % on the same seeds; their train_loss,
# 0.5073-0.5171, is well outside the band (tests/mutants/09-normalize-stats.patch).
. "$(dirname "$0")/../lib.sh"
train=$1 fm=$3
[ -f "$fm" ] || { echo "no $fm: skipped"; exit 77; }
for run in a b; do
  mpirun -np 1 "$train" --data "$fm" --model mlp --epochs 1 --batch 128 --optim adam --lr 1e-3 \
    --seed 7 --metrics "$T_TMP/$run.jsonl" > "$T_TMP/$run.out" 2>&1 || { cat "$T_TMP/$run.out"; t_fail "run $run failed"; t_done; }
done
acc=$(t_acc "$T_TMP/a.jsonl")
echo "one epoch: test_acc $acc"
t_within "one epoch: test_acc" "$acc" 0.850 1
t_within "one epoch: train_loss" "$(t_train_loss "$T_TMP/a.jsonl")" 0.440 0.475
da=$(t_digest "$T_TMP/a.jsonl"); db=$(t_digest "$T_TMP/b.jsonl")
[ -n "$da" ] && [ "$da" = "$db" ] && t_pass "same seed, same digest $da" || t_fail "digests differ: $da vs $db"
[ -n "$da" ] && grep -q "params_sha256 $da" "$T_TMP/a.out" && t_pass "digest printed" || t_fail "digest not printed"
# the metrics file: one epoch object with the documented keys, then the final object
"${PYTHON:-python3}" - "$T_TMP/a.jsonl" <<'PY' && t_pass "metrics JSON lines" || t_fail "metrics JSON lines"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
assert len(rows) == 2, rows
for k in ("epoch", "step", "train_loss", "test_loss", "test_acc", "samples_per_s"):
    assert k in rows[0], k
assert rows[0]["epoch"] == 1 and rows[0]["step"] == 468
assert rows[1]["event"] == "final" and len(rows[1]["params_sha256"]) == 64
assert rows[1]["test_acc"] == rows[0]["test_acc"]
PY
# a different seed gives a different digest
mpirun -np 1 "$train" --data "$fm" --epochs 1 --max-steps 5 --seed 8 --metrics "$T_TMP/c.jsonl" > "$T_TMP/c.out" 2>&1 \
  || { cat "$T_TMP/c.out"; t_fail "seed 8 run failed"; }
dc=$(t_digest "$T_TMP/c.jsonl")
[ -n "$dc" ] && [ "$dc" != "$da" ] && t_pass "seed changes the digest" || t_fail "seed ignored (or no digest: '$dc')"
t_done
