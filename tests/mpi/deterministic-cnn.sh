#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR disable=SC2015 # `check && t_pass || t_fail`: t_pass never fails
# Deterministic mode with batch norm, dropout and augmentation: cnn-bn for 12
# steps of batch 32 (4 virtual shards of 8 rows: statistics per shard; dropout,
# random crop and flip keyed by sample index) gives
# the same params_sha256, the same test accuracy (running statistics) and the
# same checkpointed running statistics on np = 1, 2 and 4; a small ResNet keeps its
# bits across rank counts, --zero 1, --accum-steps and a resume.
. "$(dirname "$0")/../lib.sh"
train=$1 fm=$(t_small "$3")
[ -f "$fm" ] || { echo "no $fm: skipped"; exit 77; }
common=(--data "$fm" --model cnn-bn --batch 32 --epochs 1 --max-steps 12 --seed 5 --optim adamw --deterministic
        --virtual-shards 4 --quiet --augment-crop 2 --augment-flip)
ref=""; ref_acc=""
for np in 1 2 4; do
  t0=$(date +%s)
  mpirun -np $np "$train" "${common[@]}" --metrics "$T_TMP/d$np.jsonl" --checkpoint-dir "$T_TMP/ck$np" \
    > "$T_TMP/d$np.out" 2>&1 || { cat "$T_TMP/d$np.out"; t_fail "np=$np run failed"; continue; }
  d=$(t_digest "$T_TMP/d$np.jsonl"); acc=$(t_acc "$T_TMP/d$np.jsonl")
  echo "np=$np digest $d test_acc $acc ($(( $(date +%s) - t0 )) s)"
  [ -n "$d" ] || t_fail "np=$np: no digest"
  if [ -z "$ref" ]; then ref=$d; ref_acc=$acc
  elif [ "$d" = "$ref" ] && [ "$acc" = "$ref_acc" ]; then t_pass "np=$np digest and accuracy equal np=1"
  else t_fail "np=$np digest $d acc $acc != $ref $ref_acc"; fi
done
# --eval of the np=4 checkpoint on 2 ranks restores the running statistics: same accuracy
mpirun -np 2 "$train" --data "$fm" --model cnn-bn --optim adamw --eval --resume latest --checkpoint-dir "$T_TMP/ck4" --quiet \
  > "$T_TMP/e.out" 2>&1 || { cat "$T_TMP/e.out"; t_fail "--eval"; }
grep -q "test_acc $(awk -v a="$ref_acc" 'BEGIN { printf "%.2f", 100 * a }')%" "$T_TMP/e.out" \
  && t_pass "--eval of the checkpoint agrees ($ref_acc)" || { cat "$T_TMP/e.out"; t_fail "--eval disagrees"; }
# augmentation is applied (a run without it ends elsewhere)
mpirun -np 1 "$train" "${common[@]:0:${#common[@]}-3}" --metrics "$T_TMP/plain.jsonl" > "$T_TMP/plain.out" 2>&1 \
  || { cat "$T_TMP/plain.out"; t_fail "run without augmentation failed"; }
dp=$(t_digest "$T_TMP/plain.jsonl")
[ -n "$dp" ] && [ -n "$ref" ] && [ "$dp" != "$ref" ] && t_pass "augmentation changes the run" \
  || t_fail "augmentation ignored (or no digest: '$dp' '$ref')"
# the running statistics in the checkpoints, bit for bit: without Python (h5dump's raw
# bytes), and read by h5py
if ! command -v h5dump >/dev/null; then t_skip "running statistics (h5dump): no h5dump (apt-get install hdf5-tools)"
else
  same=1 moved=0
  for d in 1_batchnorm/running_mean 1_batchnorm/running_var 4_batchnorm/running_mean 4_batchnorm/running_var; do
    for np in 1 2 4; do
      t_h5_raw "$T_TMP/ck$np/ckpt-000000012.h5" "/buffers/$d" "$T_TMP/raw$np" || { same=0; echo "no /buffers/$d in np=$np"; }
    done
    cmp -s "$T_TMP/raw1" "$T_TMP/raw2" && cmp -s "$T_TMP/raw1" "$T_TMP/raw4" || { same=0; echo "/buffers/$d differs"; }
    [ "$d" = 1_batchnorm/running_mean ] && od -An -tx4 "$T_TMP/raw1" | grep -qv '^[ 0]*$' && moved=1
  done
  [ $same = 1 ] && [ $moved = 1 ] && t_pass "running statistics bit-identical on np = 1, 2, 4 (h5dump), moved from 0" \
    || t_fail "running statistics (h5dump): identical $same, moved $moved"
fi
if ! t_have_h5py; then t_skip "running statistics read by h5py: $T_NO_H5PY"
else
  "$T_PY" - "$T_TMP"/ck{1,2,4}/ckpt-000000012.h5 <<'PY' && t_pass "running statistics bit-identical" || t_fail "running statistics differ"
import sys, h5py, numpy as np
def bufs(p):
    f = h5py.File(p, "r")["buffers"]
    return np.concatenate([np.asarray(f[g][n]).ravel() for g in sorted(f) for n in ("running_mean", "running_var")])
a = bufs(sys.argv[1])
assert a.size == 2 * (32 + 64) and np.any(a[:32] != 0)  # moved away from the initial mean 0
for p in sys.argv[2:]:
    assert np.array_equal(bufs(p).view(np.uint32), a.view(np.uint32)), p
PY
fi
# A small ResNet (a basic block and a bottleneck: convs without bias, batch norm in
# every block, residual adds, a projection shortcut, gap): the same digest and test
# accuracy (running statistics) on np = 1 and 2, and through a resume on another rank
# count that changes the mechanisms: 3 steps with --zero 1 on 4 ranks, then 3 more with
# --accum-steps 2 on 2 ranks.
rn=(--data "$fm" --model "in(1x28x28),conv(8,k3,s2,p1,b0),batchnorm,relu,res(8),bottleneck(4,s2),gap,dense(10)"
    --batch 32 --epochs 1 --max-steps 6 --seed 7 --optim sgd --lr 0.05 --deterministic --virtual-shards 4 --quiet)
run_rn() { # NAME NP ARGS...: one run, its digest and accuracy in rn_d[NAME], rn_a[NAME]
  local name=$1 np=$2; shift 2
  mpirun -np "$np" "$train" "${rn[@]}" --metrics "$T_TMP/rn-$name.jsonl" "$@" > "$T_TMP/rn-$name.out" 2>&1 \
    || { cat "$T_TMP/rn-$name.out"; t_fail "resnet $name: run failed"; }
  rn_d[$name]=$(t_digest "$T_TMP/rn-$name.jsonl"); rn_a[$name]=$(t_acc "$T_TMP/rn-$name.jsonl")
  echo "resnet $name: digest ${rn_d[$name]} test_acc ${rn_a[$name]}"
}
declare -A rn_d rn_a
run_rn np1 1
run_rn np2 2
run_rn half 4 --max-steps 3 --zero 1 --checkpoint-dir "$T_TMP/rnck"
run_rn resumed 2 --accum-steps 2 --checkpoint-dir "$T_TMP/rnck" --resume latest
[ -n "${rn_d[np1]}" ] && [ -n "${rn_a[np1]}" ] || t_fail "resnet: no digest or accuracy on np=1"
for k in np2 resumed; do
  [ "${rn_d[$k]}" = "${rn_d[np1]}" ] && [ "${rn_a[$k]}" = "${rn_a[np1]}" ] && t_pass "resnet $k: digest and accuracy equal np=1" \
    || t_fail "resnet $k: ${rn_d[$k]} ${rn_a[$k]} != ${rn_d[np1]} ${rn_a[np1]}"
done
[ -n "${rn_d[half]}" ] && [ "${rn_d[half]}" != "${rn_d[np1]}" ] && t_pass "resnet: the resumed run started from step 3" \
  || t_fail "resnet: the 3-step run's digest '${rn_d[half]}' (should differ from the 6-step one)"
t_done
