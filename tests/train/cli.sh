#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR disable=SC2015 # `check && t_pass || t_fail`: t_pass never fails
# --help and --version, and the benchmark on synthetic data (no dataset needed).
. "$(dirname "$0")/../lib.sh"
train=$1
mpirun -np 1 "$train" --help > "$T_TMP/help" 2>&1 && t_pass "--help exits 0" || t_fail "--help"
for opt in --data --model --epochs --batch --batch-per-rank --lr --optim --schedule --warmup --seed --device \
           --metrics --bench --steps --deterministic --virtual-shards --bucket-mb --check-sync --lr-scaling; do
  grep -q -- "$opt" "$T_TMP/help" || t_fail "--help does not mention $opt"
done
mpirun -np 1 "$train" --version | grep -q '^dlfs-train [0-9]' && t_pass "--version" || t_fail "--version"
mpirun -np 1 "$train" --bench --model 784-64-10 --batch 32 --steps 5 --metrics "$T_TMP/b.jsonl" > "$T_TMP/bench" 2>&1 \
  && t_pass "bench runs" || { cat "$T_TMP/bench"; t_fail "bench"; }
grep -qE 'median step [0-9.]+ ms, [0-9]+ samples/s, [0-9.]+ GFLOP/s' "$T_TMP/bench" && t_pass "bench line" \
  || { cat "$T_TMP/bench"; t_fail "bench prints step time, samples/s and GFLOP/s"; }
grep -q '"event": "bench"' "$T_TMP/b.jsonl" && t_pass "bench metrics" || t_fail "bench metrics"
t_done
