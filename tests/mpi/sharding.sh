#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR disable=SC2015 # `check && t_pass || t_fail`: t_pass never fails
# Every sample of an epoch is seen exactly once across ranks, except the
# N mod B left-over of the epoch's permutation, identically for np = 1, 2 and 3, and
# each epoch in a new order;
# rank r takes rows [r*B/P, (r+1)*B/P) of each global batch.
. "$(dirname "$0")/../lib.sh"
train=$1 fm=$3
[ -f "$fm" ] || { echo "no $fm: skipped"; exit 77; }
# two epochs (10 steps each): every rank's trace holds epoch 1, then epoch 2
for np in 1 2 3; do
  DLFS_TRACE_SAMPLES="$T_TMP/trace$np" mpirun -np $np "$train" --data "$fm" --model 784-16-10 --batch 6000 \
    --epochs 2 --quiet > "$T_TMP/out$np" 2>&1 || { cat "$T_TMP/out$np"; t_fail "np=$np run"; continue; }
  for e in 1 2; do
    for f in "$T_TMP/trace$np".[0-9]; do
      half=$(( $(wc -l < "$f") / 2 ))
      if [ $e = 1 ]; then head -n $half "$f"; else tail -n +$((half + 1)) "$f"; fi > "$f.e$e"
    done
    cat "$T_TMP/trace$np".[0-9].e$e > "$T_TMP/order$np.e$e"   # rank 0's rows, then rank 1's, ...
    sort -n "$T_TMP/order$np.e$e" > "$T_TMP/all$np.e$e"
    total=$(wc -l < "$T_TMP/all$np.e$e"); uniq=$(sort -nu "$T_TMP/all$np.e$e" | wc -l)
    max=$(tail -n 1 "$T_TMP/all$np.e$e")
    [ "$total" -eq 60000 ] && [ "$uniq" -eq 60000 ] && [ "${max:-60000}" -lt 60000 ] \
      && t_pass "np=$np, epoch $e: 60000 samples, each once" \
      || t_fail "np=$np, epoch $e: $total samples, $uniq distinct, largest $max (want 0..59999 each once)"
  done
  # a new permutation each epoch: the rows come in another order
  cmp -s "$T_TMP/trace$np.0.e1" "$T_TMP/trace$np.0.e2" && t_fail "np=$np: epoch 2 repeats the order of epoch 1" \
    || t_pass "np=$np: epoch 2 visits the samples in another order than epoch 1"
done
# the ranks' slices of every step, put back together, are the 1-rank run's batches
for np in 2 3; do
  awk -v R=$((6000 / np)) 'FNR == 1 { f++ } { a[f, FNR] = $0; n = FNR }
    END { for (s = 0; s < n / R; s++) for (r = 1; r <= f; r++) for (i = 1; i <= R; i++) print a[r, s * R + i] }' \
    "$T_TMP/trace$np".[0-9] > "$T_TMP/global$np"
  [ -s "$T_TMP/global$np" ] && cmp -s "$T_TMP/global$np" "$T_TMP/trace1.0" \
    && t_pass "np=$np: rank r takes rows [r*B/P, (r+1)*B/P) of every global batch of both epochs" \
    || t_fail "np=$np: the ranks' rows put together differ from the 1-rank batches"
done
# with a batch that leaves a remainder: 60000 = 7*7777 + 5561 samples left over
for np in 1 2; do
  DLFS_TRACE_SAMPLES="$T_TMP/rem$np" mpirun -np $np "$train" --data "$fm" --model 784-16-10 --batch 7778 \
    --epochs 1 --quiet > /dev/null 2>&1 || t_fail "remainder np=$np"
  cat "$T_TMP"/rem$np.* | sort -n > "$T_TMP/remall$np"
done
n1=$(sort -nu "$T_TMP/remall1" | wc -l)
[ "$n1" -eq $((7 * 7778)) ] && t_pass "remainder dropped: $n1 samples used" || t_fail "remainder: $n1 used"
[ -s "$T_TMP/remall1" ] && cmp -s "$T_TMP/remall1" "$T_TMP/remall2" && t_pass "same samples used on 1 and 2 ranks" || t_fail "np=1 and np=2 used different samples"
# rank r's rows of global batch 0 are the r-th slice of rank-0-of-np=1's batch
head -n 7778 "$T_TMP/rem1.0" > "$T_TMP/batch0"
[ -s "$T_TMP/batch0" ] && cat <(head -n 3889 "$T_TMP/rem2.0") <(head -n 3889 "$T_TMP/rem2.1") | cmp -s - "$T_TMP/batch0" \
  && t_pass "rank r takes rows [r*B/P, (r+1)*B/P)" || t_fail "rank slices of the global batch"
t_done
