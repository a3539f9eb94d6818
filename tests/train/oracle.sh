#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR disable=SC2015 # `check && t_pass || t_fail`: t_pass never fails
# The trainer against numpy, on a tiny dataset written here (12 training images of 2x3,
# 11 test images, 3 classes; a few seconds):
#  - batch norm's running mean and variance after one and after two steps equal
#    0.9 * before + 0.1 * (the batch mean, the unbiased batch variance) worked out by
#    numpy from the checkpoint's weights and the same batch (the whole training set:
#    --batch 12, --virtual-shards 1, one group); and with two groups of 6 rows
#    (--virtual-shards 2), the average of the groups' statistics;
#  - --eval of the checkpoint on 1, 2 and 3 ranks (11 test samples: the rank counts do
#    not divide them, nor does --eval-batch 4 divide the ranks' parts) gives the loss and
#    accuracy of numpy's forward pass with the running statistics;
#  - the batch's range at its boundary: --batch 12 (= the training samples) trains,
#    --batch 13 is refused.
# Without numpy/h5py the runs and the cross-rank agreement are still checked; the
# comparisons with numpy report skipped.
. "$(dirname "$0")/../lib.sh"
train=$1
cd "$T_TMP" || exit 1
# IDX files: magic 0 0 8 ndim, big-endian sizes (< 256 here), then the bytes
byte() { printf '%b' "\\$(printf %03o "$1")"; }
idx() { # FILE N [H W] OFFSET: the byte values from a fixed formula
  local f=$1 n=$2 h=$3 w=$4 i k
  if [ -n "$h" ]; then
    for k in 0 0 8 3 0 0 0 "$n" 0 0 0 "$h" 0 0 0 "$w"; do byte "$k"; done
    for ((i = 0; i < n; i++)); do
      for ((k = 0; k < h * w; k++)); do byte $(( (i * 37 + k * 101 + i * k * 13 + $5) % 256 )); done
    done
  else
    for k in 0 0 8 1 0 0 0 "$n"; do byte "$k"; done
    for ((i = 0; i < n; i++)); do byte $(( (i * 7 + $5) % 3 )); done
  fi > "$f"
}
idx tr-img 12 2 3 0; idx tr-lab 12 "" "" 0; idx te-img 11 2 3 5; idx te-lab 11 "" "" 1
"$2" convert --train-images tr-img --train-labels tr-lab --test-images te-img --test-labels te-lab \
  -o d.h5 > conv.out 2>&1 || { cat conv.out; t_fail "dlfs-data convert"; t_done; }

model="in(6),dense(4),batchnorm,relu,dense(3)"
# --lr 1e-12 with plain SGD: the weights stay what numpy reads from the checkpoints
mpirun -np 1 "$train" --data d.h5 --model "$model" --batch 12 --epochs 2 --virtual-shards 1 --optim sgd \
  --momentum 0 --lr 1e-12 --seed 5 --device cpu --checkpoint-dir c --checkpoint-every 1 --keep 0 --quiet \
  --metrics m.jsonl > tr.out 2>&1 && [ -f c/ckpt-000000001.h5 ] && [ -f c/ckpt-000000002.h5 ] \
  && t_pass "--batch 12 = the 12 training samples: trained 2 steps, a checkpoint after each" \
  || { cat tr.out; t_fail "training with --batch 12 on 12 samples"; t_done; }
# two batch-norm groups of 6 rows (--virtual-shards 2): the running statistics average the
# groups' statistics; the rows of each group from the sample trace
DLFS_TRACE_SAMPLES=rows mpirun -np 1 "$train" --data d.h5 --model "$model" --batch 12 --epochs 1 \
  --virtual-shards 2 --optim sgd --momentum 0 --lr 1e-12 --seed 5 --device cpu --checkpoint-dir g --quiet \
  > g.out 2>&1 && [ -f g/ckpt-000000001.h5 ] && [ "$(wc -l < rows.0)" = 12 ] \
  && t_pass "--virtual-shards 2: one step, its 12 rows traced" || { cat g.out; t_fail "two-group training"; }
mpirun -np 1 "$train" --data d.h5 --model "$model" --batch 13 --epochs 1 --device cpu --quiet > b13.out 2>&1
rc=$?
[ $rc = 2 ] && grep -q "global batch 13 is larger than the 12 training samples" b13.out \
  && t_pass "--batch 13 refused (exit 2, named)" || { cat b13.out; t_fail "--batch 13: exit $rc"; }

for np in 1 2 3; do
  mpirun -np $np "$train" --data d.h5 --model "$model" --batch 12 --eval --resume c/ckpt-000000002.h5 \
    --eval-batch 4 --device cpu --metrics e$np.jsonl > e$np.out 2>&1 || { cat e$np.out; t_fail "--eval on $np ranks"; continue; }
  sed -n 's/.*"test_loss": \([0-9.]*\), "test_acc": \([0-9.]*\).*/\1 \2/p' e$np.jsonl > r$np
  [ -s r$np ] && t_pass "--eval on $np ranks: loss, accuracy $(cat r$np)" || t_fail "no eval line in e$np.jsonl"
done
# the ranks agree (the loss's sums may differ in the last bits: 1e-6)
for np in 2 3; do
  l1='' a1='' l='' a=''; [ -s r1 ] && read -r l1 a1 < r1; [ -s r$np ] && read -r l a < r$np
  [ -n "$l1" ] && [ "$a" = "$a1" ] && awk -v x="$l" -v y="$l1" 'BEGIN { d = x - y; exit !(d < 1e-6 && d > -1e-6) }' \
    && t_pass "$np ranks: the 1-rank loss and accuracy" || t_fail "$np ranks: '$l $a', 1 rank: '$l1 $a1'"
done

if ! t_have_h5py; then t_skip "numpy cross-checks: $T_NO_H5PY"; t_done; fi
"$T_PY" - d.h5 c/ckpt-000000001.h5 c/ckpt-000000002.h5 g/ckpt-000000001.h5 rows.0 r1 r2 r3 <<'PY' && t_pass "numpy: running statistics after steps 1 and 2 and of two groups, --eval on 1, 2, 3 ranks" || t_fail "numpy cross-check"
import sys
import h5py, numpy as np
d = h5py.File(sys.argv[1], "r")
mean, std = np.asarray(d.attrs["mean"], np.float64), np.asarray(d.attrs["std"], np.float64)
def inputs(split):
    u8 = np.asarray(d[split]["images"], np.float64).reshape(len(d[split]["images"]), -1)
    return (u8 / 255.0 - mean[0]) / std[0], np.asarray(d[split]["labels"], np.int64)
xtr, _ = inputs("train")
xte, yte = inputs("test")
def layers(path):
    f = h5py.File(path, "r")
    p = {n: (np.asarray(f["params"][n]["weight"], np.float64), np.asarray(f["params"][n]["bias"], np.float64))
         for n in f["params"]}
    b = f["buffers"]["1_batchnorm"]
    return p, np.asarray(b["running_mean"], np.float64), np.asarray(b["running_var"], np.float64)
p1, rm1, rv1 = layers(sys.argv[2])
p2, rm2, rv2 = layers(sys.argv[3])
assert sorted(p1) == ["0_dense", "1_batchnorm", "2_dense"], sorted(p1)
bad = []
def close(what, got, want, tol=2e-5):
    err = np.max(np.abs(got - want) / (tol + tol * np.abs(want)))
    print(f"{what}: got {np.round(got, 6)} want {np.round(want, 6)}")
    if not err <= 1: bad.append(what)
def batch_stats(p):  # the dense layer's outputs over the whole batch: mean, unbiased variance
    h = xtr @ p["0_dense"][0].T + p["0_dense"][1]
    return h.mean(0), h.var(0, ddof=1)
# step 1: the initial buffers are mean 0, variance 1; the step's forward used the initial
# weights, equal (lr 1e-12) to those of the first checkpoint
mu, var = batch_stats(p1)
close("running_mean after 1 step", rm1, 0.9 * 0 + 0.1 * mu)
close("running_var after 1 step", rv1, 0.9 * 1 + 0.1 * var)
# step 2: from the first checkpoint's buffers and the forward of its weights
mu, var = batch_stats(p1)
close("running_mean after 2 steps", rm2, 0.9 * rm1 + 0.1 * mu)
close("running_var after 2 steps", rv2, 0.9 * rv1 + 0.1 * var)
# two groups: the average of the groups' means and unbiased variances (rows in batch order)
pg, rmg, rvg = layers(sys.argv[4])
rows = [int(l) for l in open(sys.argv[5])]
h = xtr @ pg["0_dense"][0].T + pg["0_dense"][1]
groups = [h[rows[:6]], h[rows[6:]]]
close("running_mean, 2 groups", rmg, 0.1 * np.mean([g.mean(0) for g in groups], 0))
close("running_var, 2 groups", rvg, 0.9 + 0.1 * np.mean([g.var(0, ddof=1) for g in groups], 0))
# evaluation: the running statistics (eps 1e-5), ReLU, the last dense layer
h = xte @ p2["0_dense"][0].T + p2["0_dense"][1]
h = np.maximum(p2["1_batchnorm"][0] * (h - rm2) / np.sqrt(rv2 + 1e-5) + p2["1_batchnorm"][1], 0)
z = h @ p2["2_dense"][0].T + p2["2_dense"][1]
zmax = z.max(1, keepdims=True)
loss = np.mean(np.log(np.exp(z - zmax).sum(1)) + zmax[:, 0] - z[np.arange(len(yte)), yte])
acc = np.mean(z.argmax(1) == yte)
for r in sys.argv[6:]:
    l, a = map(float, open(r).read().split())
    close(f"{r}: test loss", l, loss, 1e-5)
    close(f"{r}: test accuracy", a, acc, 1e-6)
print("numpy: loss %.6f, accuracy %.6f (%d of %d)" % (loss, acc, round(acc * len(yte)), len(yte)))
sys.exit(1 if bad else 0)
PY
t_done
