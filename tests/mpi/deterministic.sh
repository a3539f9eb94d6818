#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR disable=SC2015 # `check && t_pass || t_fail`: t_pass never fails
# Deterministic mode: the same params_sha256 after 100 steps (an epoch of the 12800-image slice) of mlp on
# Fashion-MNIST for np = 1, 2, 4 and 8 (8 virtual shards); fast mode differs in
# bits but stays within a stated tolerance (below).
. "$(dirname "$0")/../lib.sh"
train=$1 fm=$(t_small "$3")
[ -f "$fm" ] || { echo "no $fm: skipped"; exit 77; }
common=(--data "$fm" --model mlp --batch 128 --epochs 1 --max-steps 100 --seed 3 --eval-batch 2000)
ref=""
for np in 1 2 4 8; do
  t0=$(date +%s.%N)
  mpirun -np $np "$train" "${common[@]}" --deterministic --virtual-shards 8 --check-sync 50 \
    --metrics "$T_TMP/det$np.jsonl" > "$T_TMP/det$np.out" 2>&1 || { cat "$T_TMP/det$np.out"; t_fail "np=$np run failed"; continue; }
  d=$(t_digest "$T_TMP/det$np.jsonl")
  printf 'np=%d digest %s (%s s)\n' $np "$d" "$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')"
  [ -n "$d" ] || t_fail "np=$np: no digest"
  if [ -z "$ref" ]; then ref=$d; elif [ "$d" = "$ref" ]; then t_pass "np=$np digest equals np=1"; else t_fail "np=$np digest $d != $ref"; fi
done
# fast mode (any reduction order): parameters after 10 steps on np = 2 and 4, and
# deterministic mode, all within float tolerance of fast np = 1. Tolerance: every
# parameter's update (p - p0) agrees to 1e-5 (SGD) / 2e-3 (Adam) of the largest
# update. Adam gets the looser bound because it divides by sqrt(v): parameters
# whose gradient is near zero turn rounding noise into a visible step (measured
# 4.7e-4 after 10 steps, SGD 3.5e-7).
# (Few steps on purpose: early training amplifies float rounding ~10x every 5
# steps — measured: np=1 vs np=2 SGD differ by 2e-8 after 10 steps, 2e-4 after 25.)
# Three checks: the parameters themselves read by h5dump (no Python) and by h5py
# (skipped without it), and the losses in the metrics: train_loss and test_loss (%.6f) of
# np = 2, 4 and deterministic within LOSS_TOL of np = 1. Measured |difference|:
# at most 1e-6 (SGD and Adam); a gradient divided wrongly across ranks (the loss
# scaled by 1/local_batch: gradients x P) moves the SGD losses by > 1e-2.
LOSS_TOL=1e-4
# losses FILE: "train_loss test_loss" of the epoch line
losses() { sed -n 's/.*"train_loss": \([0-9.eE+-]*\), "test_loss": \([0-9.eE+-]*\).*/\1 \2/p' "$1" | tail -n 1; }
fast=(--data "$fm" --model mlp --batch 128 --epochs 1 --max-steps 10 --seed 3 --quiet)
mpirun -np 1 "$train" "${fast[@]}" --max-steps 1 --optim sgd --lr 1e-12 --checkpoint-dir "$T_TMP/init" > /dev/null 2>&1 \
  || t_fail "initial parameters run"
for opt in sgd adam; do
  for run in 1 2 4 det; do
    np=$run extra=(); [ $run = det ] && np=2 extra=(--deterministic)
    mpirun -np $np "$train" "${fast[@]}" --optim $opt "${extra[@]}" --checkpoint-dir "$T_TMP/f-$opt-$run" \
      --metrics "$T_TMP/f-$opt-$run.jsonl" > "$T_TMP/f.out" 2>&1 || { cat "$T_TMP/f.out"; t_fail "fast $opt $run"; }
  done
  ref_l=$(losses "$T_TMP/f-$opt-1.jsonl")
  for run in 2 4 det; do
    l=$(losses "$T_TMP/f-$opt-$run.jsonl")
    if [ -n "$ref_l" ] && [ -n "$l" ] && awk -v a="$ref_l" -v b="$l" -v t=$LOSS_TOL 'BEGIN { split(a, x, " "); split(b, y, " ");
        for (i = 1; i <= 2; i++) { d = x[i] - y[i]; if (d < 0) d = -d; if (d > t) exit 1 } }'; then
      t_pass "$opt $run: losses ($l) within $LOSS_TOL of np=1 ($ref_l)"
    else t_fail "$opt $run: losses '$l' not within $LOSS_TOL of np=1 '$ref_l'"; fi
  done
  for run in 2 4 det; do   # the parameters, without Python (h5dump)
    t_params_close "$opt $run: parameters vs np=1" "$T_TMP/init/ckpt-000000001.h5" "$T_TMP/f-$opt-1/ckpt-000000010.h5" \
      "$T_TMP/f-$opt-$run/ckpt-000000010.h5" "$([ $opt = sgd ] && echo 1e-5 || echo 2e-3)"
  done
  if ! t_have_h5py; then t_skip "$opt: parameter tolerance check read by h5py: $T_NO_H5PY"; continue; fi
  "$T_PY" - "$T_TMP/init/ckpt-000000001.h5" "$T_TMP/f-$opt-1/ckpt-000000010.h5" "$T_TMP/f-$opt-2/ckpt-000000010.h5" \
    "$T_TMP/f-$opt-4/ckpt-000000010.h5" "$T_TMP/f-$opt-det/ckpt-000000010.h5" "$opt" <<'PY' \
    && t_pass "$opt: fast np=2, np=4 and deterministic within tolerance of np=1" || t_fail "$opt: fast mode tolerance"
import sys, h5py, numpy as np
def load(p):
    f = h5py.File(p, "r")
    return np.concatenate([np.asarray(f["params"][k][n]).ravel() for k in sorted(f["params"]) for n in ("weight", "bias")]).astype(np.float64)
p0, ref = load(sys.argv[1]), load(sys.argv[2])
scale = np.abs(ref - p0).max()
tol = {"sgd": 1e-5, "adam": 2e-3}[sys.argv[-1]]
for path in sys.argv[3:-1]:
    d = np.abs(load(path) - ref).max()
    print("%s: max |p - p_np1| = %.3g (largest update %.3g, ratio %.2g)" % (path.split("/")[-2], d, scale, d / scale))
    assert d <= tol * scale, d / scale
PY
done
t_done
