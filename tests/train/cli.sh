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
grep -qE 'median step [0-9.]+ ms, [0-9.]+ samples/s, [0-9.]+ GFLOP/s' "$T_TMP/bench" && t_pass "bench line" \
  || { cat "$T_TMP/bench"; t_fail "bench prints step time, samples/s and GFLOP/s"; }
grep -q '"event": "bench"' "$T_TMP/b.jsonl" && t_pass "bench metrics" || t_fail "bench metrics"
# Where the step goes: the GEMMs' share, rate and the machine's sgemm. The operations behind
# it, by hand: 784-64-10 has 784x64 + 64x10 = 50816 multiply-adds a sample; forward, weight
# gradient and input gradient are 2 flops each per multiply-add, except the first layer's
# input gradient (nothing to send it to): 2 x 32 x (3 x 50816 - 784 x 64) = 6545408 a step.
grep -qE '^bench: GEMMs [0-9]+ % of the step at [0-9.]+ GFLOP/s = [0-9]+ % of this machine.s sgemm \([0-9.]+ GFLOP/s' \
  "$T_TMP/bench" && t_pass "bench GEMM line" || { cat "$T_TMP/bench"; t_fail "bench prints the GEMMs' share"; }
g=$(sed -n 's/.*"gemm_flops_per_rank_step": \([0-9]*\).*/\1/p' "$T_TMP/b.jsonl")
[ "$g" = 6545408 ] && t_pass "GEMM operations of mlp 784-64-10 by hand" \
  || t_fail "GEMM operations per step: '$g', want 6545408 (worked out by hand)"
t_done
