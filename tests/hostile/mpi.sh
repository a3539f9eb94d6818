#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR disable=SC2015 # `check && t_pass || t_fail`: t_pass never fails
# Distributed bad input (ctest mpi_bad_input): every case ends the whole job with one
# message and exit != 0, within its bound (no hang; tests/lib.sh: h_check).
. "$(dirname "$0")/../lib.sh"
train=$1 fm=$(t_small "$3")
[ -f "$fm" ] || { echo "no $fm: skipped"; exit 77; }
h_expect "batch not divisible by ranks" 2 "not divisible by the 3 ranks" 120 \
  mpirun -np 3 "$train" --data "$fm" --batch 128
h_expect "V not divisible by P" 2 "--virtual-shards 2 is not divisible by the 4 ranks" 120 \
  mpirun -np 4 "$train" --data "$fm" --deterministic --virtual-shards 2
h_expect "batch not divisible by V" 2 "not divisible by --virtual-shards 16" 120 \
  mpirun -np 2 "$train" --data "$fm" --deterministic --virtual-shards 16 --batch 200
# the dataset exists for rank 0 only (per-node scratch that was not staged everywhere)
mkdir -p "$T_TMP/a" "$T_TMP/b" && cp "$fm" "$T_TMP/a/fm.h5"
h_expect "dataset missing on one rank" 1 "rank 1" 120 \
  mpirun -np 1 -wdir "$T_TMP/a" "$train" --data fm.h5 --epochs 1 : -np 1 -wdir "$T_TMP/b" "$train" --data fm.h5 --epochs 1
h_expect "ranks given different options" 2 "rank 1 was given different options" 120 \
  mpirun -np 1 "$train" --data "$fm" --lr 0.001 : -np 1 "$train" --data "$fm" --lr 0.002
h_expect "bad option on one rank" 2 "--lr 'x'" 120 \
  mpirun -np 1 "$train" --data "$fm" : -np 1 "$train" --data "$fm" --lr x
DLFS_FAULT_PERTURB=1:5 h_expect "divergence caught by --check-sync" 1 "parameters diverged" 120 \
  mpirun -np 2 "$train" --data "$fm" --max-steps 20 --check-sync 5
t_done
