#!/usr/bin/env bash
# Every sample of an epoch is seen exactly once across ranks, except the
# N mod B left-over of the epoch's permutation, identically for np = 1, 2 and 3;
# rank r takes rows [r*B/P, (r+1)*B/P) of each global batch.
. "$(dirname "$0")/../lib.sh"
train=$1 fm=$3
[ -f "$fm" ] || { echo "no $fm: skipped"; exit 77; }
for np in 1 2 3; do
  DLFS_TRACE_SAMPLES="$T_TMP/trace$np" mpirun -np $np "$train" --data "$fm" --model 784-16-10 --batch 6000 \
    --epochs 1 --quiet > "$T_TMP/out$np" 2>&1 || { cat "$T_TMP/out$np"; t_fail "np=$np run"; continue; }
  cat "$T_TMP"/trace$np.* | sort -n > "$T_TMP/all$np"
  total=$(wc -l < "$T_TMP/all$np"); uniq=$(sort -nu "$T_TMP/all$np" | wc -l)
  [ "$total" -eq 60000 ] && [ "$uniq" -eq 60000 ] && t_pass "np=$np: 60000 samples, each once" \
    || t_fail "np=$np: $total samples, $uniq distinct (want 60000 each once)"
  max=$(tail -n 1 "$T_TMP/all$np")
  [ "$max" -lt 60000 ] || t_fail "np=$np: index $max out of range"
done
# with a batch that leaves a remainder: 60000 = 7*7777 + 5561 samples left over
for np in 1 2; do
  DLFS_TRACE_SAMPLES="$T_TMP/rem$np" mpirun -np $np "$train" --data "$fm" --model 784-16-10 --batch 7778 \
    --epochs 1 --quiet > /dev/null 2>&1 || t_fail "remainder np=$np"
  cat "$T_TMP"/rem$np.* | sort -n > "$T_TMP/remall$np"
done
n1=$(sort -nu "$T_TMP/remall1" | wc -l)
[ "$n1" -eq $((7 * 7778)) ] && t_pass "remainder dropped: $n1 samples used" || t_fail "remainder: $n1 used"
cmp -s "$T_TMP/remall1" "$T_TMP/remall2" && t_pass "same samples used on 1 and 2 ranks" || t_fail "np=1 and np=2 used different samples"
# rank r's rows of global batch 0 are the r-th slice of rank-0-of-np=1's batch
head -n 7778 "$T_TMP/rem1.0" > "$T_TMP/batch0"
cat <(head -n 3889 "$T_TMP/rem2.0") <(head -n 3889 "$T_TMP/rem2.1") | cmp -s - "$T_TMP/batch0" \
  && t_pass "rank r takes rows [r*B/P, (r+1)*B/P)" || t_fail "rank slices of the global batch"
t_done
