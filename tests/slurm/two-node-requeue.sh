#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR disable=SC2015 # `check && t_pass || t_fail`: t_pass never fails
# The time-limit path of slurm/train-multinode.sbatch across two nodes (launch/slurm-local
# --nodes 2): a deterministic job of 2 nodes x 2 ranks gets SIGUSR1 in its batch shell
# (on node1) after its first checkpoint; the shell forwards it to the job step, the ranks
# of both nodes stop, rank 0 checkpoints, all exit 3, the job requeues itself, starts again
# on both nodes with --resume latest (node2's ranks read the checkpoint node1 wrote: one
# file system), finishes, and ends with the params_sha256 of an uninterrupted run of the
# same options with 4 ranks on one node.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/slurm-lib.sh"
train=$1 fm=$3
s_need_slurm
s_need_netns
[ -f "$fm" ] || { echo "no $fm: skipped"; exit 77; }

opts=(--data "$fm" --model mlp --batch 64 --epochs 1 --max-steps 200 --deterministic --virtual-shards 4 --seed 7)
mpirun -np 4 "$train" "${opts[@]}" --device cpu --quiet --metrics "$T_TMP/ref.jsonl" > "$T_TMP/ref.out" 2>&1 ||
  { cat "$T_TMP/ref.out"; t_fail "uninterrupted one-node reference run (mpirun -np 4) failed"; t_done; }
ref=$(t_digest "$T_TMP/ref.jsonl")
echo "uninterrupted, one node, 4 ranks: $ref"

s_cluster_up --nodes 2 --cpus 2 --gpus 0 --requeue-delay 5
run=$T_TMP/run
out=$T_TMP/job.out
id=$(DLFS_RUN_DIR=$run DLFS_TRAIN=$train DLFS_DEVICE=cpu DLFS_MODEL=mlp DLFS_EPOCHS=1 \
  DLFS_ARGS="--checkpoint-every 20" \
  sbatch --parsable --time=10 --nodes=2 --ntasks-per-node=2 --gpus-per-node=0 --cpus-per-task=1 \
  --output="$out" "$S_ROOT/slurm/train-multinode.sbatch" "${opts[@]}") || { t_fail "sbatch refused the job"; t_done; }

# signal once training is under way: the first periodic checkpoint (step 20 of 200) exists
s_usr1_after_checkpoint "$run" "$id" "$out" 100
cat "$out"

s_check_requeue "$id" "$out" "$run" 200
[ "$(grep -c "train-multinode.sbatch: 2 node(s) node\[1-2\], 4 ranks" "$out")" = 2 ] &&
  t_pass "both starts ran 4 ranks on node[1-2]" || t_fail "the two starts did not both get 2 nodes and 4 ranks"
got=$(t_digest "$run/metrics.jsonl")
[ -n "$got" ] && [ "$got" = "$ref" ] &&
  t_pass "digest after interrupt + requeue + resume on 2 nodes equals the uninterrupted one-node run" ||
  t_fail "digest '$got' != uninterrupted one-node '$ref'"
t_done
