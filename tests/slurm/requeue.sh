#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR disable=SC2015 # `check && t_pass || t_fail`: t_pass never fails
# The time-limit path of slurm/train.sbatch, for real: a deterministic 2-rank job gets
# SIGUSR1 in its batch shell (what --signal=B:USR1@120 delivers before the time limit),
# the shell forwards it to the job step, the ranks checkpoint and exit 3, the job requeues
# itself, starts again with --resume latest, finishes, and ends with the same params_sha256
# as an uninterrupted run of the same options started with mpirun.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/slurm-lib.sh"
train=$1 fm=$3
s_need_slurm
[ -f "$fm" ] || { echo "no $fm: skipped"; exit 77; }

opts=(--data "$fm" --model mlp --batch 64 --epochs 1 --max-steps 400 --deterministic --seed 3)
mpirun -np 2 "$train" "${opts[@]}" --quiet --metrics "$T_TMP/ref.jsonl" > "$T_TMP/ref.out" 2>&1 ||
  { cat "$T_TMP/ref.out"; t_fail "uninterrupted reference run failed"; t_done; }
ref=$(t_digest "$T_TMP/ref.jsonl")
echo "uninterrupted: $ref"

s_cluster_up
run=$T_TMP/run
out=$T_TMP/job.out
id=$(DLFS_RUN_DIR=$run DLFS_TRAIN=$train DLFS_DEVICE=cpu DLFS_MODEL=mlp DLFS_EPOCHS=1 \
  DLFS_ARGS="--checkpoint-every 50" \
  sbatch --parsable --time=10 --ntasks-per-node=2 --gpus-per-node=0 --cpus-per-task=1 \
  --output="$out" "$S_ROOT/slurm/train.sbatch" "${opts[@]}") || { t_fail "sbatch refused the job"; t_done; }

# signal once training is under way: the first periodic checkpoint (step 50 of 400) exists
s_usr1_after_checkpoint "$run" "$id" "$out" 150
cat "$out"

s_check_requeue "$id" "$out" "$run" 400
got=$(t_digest "$run/metrics.jsonl")
[ -n "$got" ] && [ "$got" = "$ref" ] && t_pass "digest after interrupt + requeue + resume equals the uninterrupted run" ||
  t_fail "digest '$got' != uninterrupted '$ref'"
t_done
