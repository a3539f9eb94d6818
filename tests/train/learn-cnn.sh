#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR disable=SC2015 # `check && t_pass || t_fail`: t_pass never fails
# Learning, convolutional: the cnn preset on Fashion-MNIST after 150 steps of batch 64
# (9600 samples, a sixth of an epoch; Adam, cosine schedule, seed 1) reaches >= 81.5 %
# test accuracy with a mean train_loss <= 0.68, and a checkpoint of it holds the conv
# weights as (oc, c, kh, kw) and no group for parameterless layers.
# The bounds sit just below what the recipe reaches (seeds 1-5 and 7, this test's exact
# recipe, 2-core VM, 2026-12-01): test_acc 82.66-83.66 %, train_loss 0.6046-0.6485. A conv
# weight gradient summed over the last chunk of images only
# (tests/mutants/10-conv-weight-grad.patch) reaches 77.79-79.66 % (train_loss
# 0.7054-0.7568) on the same seeds: it passed the old 78 % bound.
. "$(dirname "$0")/../lib.sh"
train=$1 fm=$3
[ -f "$fm" ] || { echo "no $fm: skipped"; exit 77; }
t0=$(date +%s)
mpirun -np 1 "$train" --data "$fm" --model cnn --epochs 1 --max-steps 150 --batch 64 --optim adam --lr 1e-3 \
  --schedule cosine --seed 1 --metrics "$T_TMP/a.jsonl" --checkpoint-dir "$T_TMP/ck" > "$T_TMP/a.out" 2>&1 \
  || { cat "$T_TMP/a.out"; t_fail "cnn run failed"; t_done; }
acc=$(t_acc "$T_TMP/a.jsonl")
echo "cnn, 150 steps of 64: test_acc $acc ($(( $(date +%s) - t0 )) s)"
t_within "150 steps: test_acc" "$acc" 0.815 1
t_within "150 steps: train_loss" "$(t_train_loss "$T_TMP/a.jsonl")" 0 0.68
# the layout, without Python (h5ls) and read by h5py
ck=$T_TMP/ck/ckpt-000000150.h5
if ! command -v h5ls >/dev/null; then t_skip "checkpoint layout (h5ls): no h5ls (apt-get install hdf5-tools)"
else
  h5ls -r "$ck" > "$T_TMP/ls" 2>&1
  groups=$(sed -n 's|^/params/\([^/ ]*\) *Group$|\1|p' "$T_TMP/ls" | tr '\n' ' ')
  if [ "$groups" = "0_conv 2_conv 5_dense 6_dense " ] && grep -q '^/params/0_conv/weight *Dataset {32, 1, 5, 5}$' "$T_TMP/ls" \
     && grep -q '^/params/2_conv/weight *Dataset {64, 32, 5, 5}$' "$T_TMP/ls" && grep -q '^/params/2_conv/bias *Dataset {64}$' "$T_TMP/ls" \
     && grep -q '^/params/5_dense/weight *Dataset {1024, 3136}$' "$T_TMP/ls"; then
    t_pass "checkpoint layout (h5ls): groups $groups, conv weights (oc, c, kh, kw)"
  else t_fail "checkpoint layout (h5ls): groups '$groups'"; grep '^/params' "$T_TMP/ls" >&2; fi
fi
if ! t_have_h5py; then t_skip "checkpoint layout read by h5py: $T_NO_H5PY"
else
  "$T_PY" - "$T_TMP/ck/ckpt-000000150.h5" <<'PY' && t_pass "checkpoint layout" || t_fail "checkpoint layout"
import sys, h5py
p = h5py.File(sys.argv[1], "r")["params"]
assert sorted(p) == ["0_conv", "2_conv", "5_dense", "6_dense"], sorted(p)
assert p["0_conv/weight"].shape == (32, 1, 5, 5) and p["2_conv/weight"].shape == (64, 32, 5, 5)
assert p["2_conv/bias"].shape == (64,) and p["5_dense/weight"].shape == (1024, 3136)
PY
fi
# the checkpoint evaluates to the same accuracy
mpirun -np 1 "$train" --data "$fm" --model cnn --eval --resume latest --checkpoint-dir "$T_TMP/ck" --quiet \
  > "$T_TMP/e.out" 2>&1 || { cat "$T_TMP/e.out"; t_fail "--eval"; }
grep -q "test_acc $(awk -v a="$acc" 'BEGIN { printf "%.2f", 100 * a }')%" "$T_TMP/e.out" && t_pass "--eval agrees" \
  || { cat "$T_TMP/e.out"; t_fail "--eval disagrees with $acc"; }
t_done
