#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR disable=SC2015 # `check && t_pass || t_fail`: t_pass never fails
# sbatch slurm/train.sbatch on a one-node test cluster with 2 tasks: a small model trains
# to completion and leaves metrics, checkpoints and the command line in its run directory.
# Once with srun --mpi=pmix (the default launcher), once with DLFS_LAUNCHER=mpirun.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/slurm-lib.sh"
train=$1 fm=$3
s_need_slurm
[ -f "$fm" ] || { echo "no $fm: skipped"; exit 77; }
s_cluster_up

for launcher in srun mpirun; do
  run=$T_TMP/run-$launcher
  out=$T_TMP/job-$launcher.out
  id=$(DLFS_DATA=$fm DLFS_RUN_DIR=$run DLFS_TRAIN=$train DLFS_MODEL=784-32-10 DLFS_DEVICE=cpu \
    DLFS_LAUNCHER=$launcher DLFS_ARGS="--batch 64 --max-steps 60 --checkpoint-every 20 --seed 5" \
    sbatch --parsable --time=5 --ntasks-per-node=2 --gpus-per-node=2 --cpus-per-task=1 \
    --output="$out" "$S_ROOT/slurm/train.sbatch" --quiet) || { t_fail "$launcher: sbatch refused the job"; continue; }
  s_wait "$id" 90
  cat "$out"
  [ "$S_STATE" = COMPLETED ] && [ "$S_EXIT" = 0:0 ] &&
    t_pass "$launcher: job $id completed" || t_fail "$launcher: job $id ended $S_STATE $S_EXIT"
  grep -q "^+ $launcher " "$out" && t_pass "$launcher: the job printed the command it ran" ||
    t_fail "$launcher: no '+ $launcher ...' line in the job output"
  grep -q -- "--resume latest" "$run/command.txt" 2>/dev/null && grep -q -- "--checkpoint-dir $run/checkpoints" "$run/command.txt" &&
    t_pass "$launcher: --resume latest and --checkpoint-dir passed" || t_fail "$launcher: command.txt lacks --resume/--checkpoint-dir"
  grep -q "ranks\": 2" "$run/metrics.jsonl" 2>/dev/null && [ -n "$(t_digest "$run/metrics.jsonl")" ] &&
    t_pass "$launcher: metrics of 2 ranks with a final digest" || t_fail "$launcher: metrics missing or incomplete"
  ls "$run"/checkpoints/ckpt-000000060.h5 >/dev/null 2>&1 &&
    t_pass "$launcher: checkpoints written ($(cd "$run/checkpoints" && echo ckpt-*))" || t_fail "$launcher: no final checkpoint"
  grep -q "GPUs 0,1" "$out" && t_pass "$launcher: SLURM handed out 2 (fake) GPUs" || t_fail "$launcher: CUDA_VISIBLE_DEVICES not 0,1"
done

# README.md's sbatch example for this test cluster, verbatim (the lines after its comment
# "the 8-CPU test cluster of launch/slurm-local"), from a directory laid out as a checkout
# after the quickstart (datasets/fashion-mnist.h5: the small fixture): the job completes,
# its log lands in the submit directory, its metrics in runs/dlfs-train-JOBID/
w=$T_TMP/checkout
mkdir -p "$w/datasets" && ln -s "$fm" "$w/datasets/fashion-mnist.h5" && ln -s "$S_ROOT/slurm" "$w/slurm" &&
  ln -s "$(cd "$(dirname "$train")/.." && pwd)" "$w/build"
example=$(sed -n '/^# the 8-CPU test cluster of launch\/slurm-local/,/^```/p' "$S_ROOT/README.md" | sed '1d;$d')
[ -n "$example" ] || t_fail "README.md has no example for the launch/slurm-local cluster"
id=$(cd "$w" && bash -c "$example" | sed -n 's/^Submitted batch job \([0-9]*\)$/\1/p')
if [ -n "$id" ]; then
  s_wait "$id" 120
  [ "$S_STATE" = COMPLETED ] && [ "$S_EXIT" = 0:0 ] && [ -n "$(t_digest "$w/runs/dlfs-train-$id/metrics.jsonl")" ] &&
    [ -f "$w/dlfs-train-$id.out" ] && t_pass "README's slurm-local example, as written: job $id completed, log and metrics" ||
    { cat "$w/dlfs-train-$id.out"; t_fail "README's slurm-local example: job $id ended $S_STATE $S_EXIT"; }
else
  t_fail "README's slurm-local example was not submitted: $example"
fi
t_done
