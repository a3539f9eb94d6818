#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR disable=SC2015 # `check && t_pass || t_fail`: t_pass never fails
# --precision: bf16 GEMMs (fp32 master weights and optimizer state) reach the fp32
# accuracy of Fashion-MNIST `mlp` within 0.4 points, and fp32 reaches >= 88.5 % (same
# seed, same 5 epochs; a cosine schedule so that the final accuracy is not one noisy
# epoch of a constant lr; the CPU backend emulates the GPU's bf16 operand rounding
# exactly). Measured with this recipe on seeds 1-5 and 7 (2-core VM, 2026-12-01):
# fp32 89.05-89.35 %, bf16 89.13-89.34 %, bf16 - fp32 from -0.22 to +0.24 points.
# Every precision reaches the backend (three different digests after a few steps),
# the run says which precision it ran (header line, metrics JSON, --bench), and
# deterministic mode stays bit-identical across rank counts in bf16.
. "$(dirname "$0")/../lib.sh"
train=$1 fm=$3
[ -f "$fm" ] || { echo "no $fm: skipped"; exit 77; }
common=(--data "$fm" --model mlp --batch 128 --optim adam --lr 1e-3 --seed 3)

declare -A dig
for p in fp32 tf32 bf16; do
  mpirun -np 1 "$train" "${common[@]}" --epochs 1 --max-steps 20 --precision "$p" \
    --metrics "$T_TMP/s-$p.jsonl" > "$T_TMP/s-$p.out" 2>&1 || { cat "$T_TMP/s-$p.out"; t_fail "$p: 20 steps failed"; t_done; }
  dig[$p]=$(t_digest "$T_TMP/s-$p.jsonl")
  grep -q "backend ($p GEMMs)" "$T_TMP/s-$p.out" && t_pass "$p named in the header" || t_fail "$p not in the header"
  grep -q '"event": "final".*"precision": "'"$p"'"' "$T_TMP/s-$p.jsonl" && t_pass "$p in the final metrics" \
    || t_fail "$p not in the final metrics"
done
[ -n "${dig[fp32]}" ] && [ "${dig[fp32]}" != "${dig[bf16]}" ] && [ "${dig[fp32]}" != "${dig[tf32]}" ] \
  && [ "${dig[tf32]}" != "${dig[bf16]}" ] && t_pass "three precisions, three digests" \
  || t_fail "digests fp32 ${dig[fp32]} tf32 ${dig[tf32]} bf16 ${dig[bf16]}: a precision did not reach the GEMMs"

# the operand rounding is elementwise: deterministic mode stays bit-identical on 1 and 2 ranks
for np in 1 2; do
  mpirun -np $np "$train" "${common[@]}" --epochs 1 --max-steps 30 --deterministic --precision bf16 --quiet \
    --metrics "$T_TMP/det$np.jsonl" > "$T_TMP/det$np.out" 2>&1 || { cat "$T_TMP/det$np.out"; t_fail "deterministic np $np"; }
done
d1=$(t_digest "$T_TMP/det1.jsonl") d2=$(t_digest "$T_TMP/det2.jsonl")
[ -n "$d1" ] && [ "$d1" = "$d2" ] && t_pass "bf16 deterministic: same digest on 1 and 2 ranks" \
  || t_fail "bf16 deterministic digests differ: $d1 vs $d2"

# --bench applies and reports it too
mpirun -np 1 "$train" --bench --model 784-64-10 --batch 32 --steps 2 --bench-warmup 1 --precision bf16 \
  --metrics "$T_TMP/bench.jsonl" > "$T_TMP/bench.out" 2>&1
grep -q "bf16 GEMMs" "$T_TMP/bench.out" && grep -q '"precision": "bf16"' "$T_TMP/bench.jsonl" \
  && t_pass "--bench names bf16" || { cat "$T_TMP/bench.out"; t_fail "--bench does not name bf16"; }

for p in fp32 bf16; do
  start=$(date +%s.%N)
  mpirun -np 1 "$train" "${common[@]}" --epochs 5 --schedule cosine --precision "$p" --quiet \
    --metrics "$T_TMP/$p.jsonl" > "$T_TMP/$p.out" 2>&1 || { cat "$T_TMP/$p.out"; t_fail "$p: 5 epochs failed"; t_done; }
  echo "$p: 5 epochs in $(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN { printf "%.1f", e - s }') s," \
    "test_acc $(t_acc "$T_TMP/$p.jsonl")"
done
a32=$(t_acc "$T_TMP/fp32.jsonl") a16=$(t_acc "$T_TMP/bf16.jsonl")
t_within "fp32, 5 epochs: test_acc" "$a32" 0.885 1
[ -n "$a16" ] && awk -v a="$a32" -v b="$a16" 'BEGIN { exit !(b >= a - 0.004) }' && t_pass "bf16 $a16 within 0.4 points of fp32 $a32" \
  || t_fail "bf16 '$a16' more than 0.4 points below fp32 $a32"
t_done
