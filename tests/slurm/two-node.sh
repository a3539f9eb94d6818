#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR disable=SC2015 # `check && t_pass || t_fail`: t_pass never fails
# sbatch slurm/train-multinode.sbatch --nodes=2 on a two-node test cluster (launch/slurm-local
# --nodes 2: two network namespaces on a bridge, a slurmd in each), 2 ranks per node, once
# with srun --mpi=pmix and once with DLFS_LAUNCHER=mpirun (which starts its daemon on the
# second node with srun). Each deterministic run ends with the params_sha256 of the same
# run (4 ranks, same options) on one node, and the gradients really crossed between the
# nodes over TCP: at least half a model's worth of bytes per step went through each
# node's link (with vader left on: Open MPI uses shared memory only inside a node).
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/slurm-lib.sh"
train=$1 fm=$3
s_need_slurm
s_need_netns
[ -f "$fm" ] || { echo "no $fm: skipped"; exit 77; }

steps=40
opts=(--batch 64 --max-steps "$steps" --deterministic --virtual-shards 4 --seed 3)
mpirun -np 4 "$train" --data "$fm" --model mlp --epochs 1 --device cpu "${opts[@]}" --quiet \
  --metrics "$T_TMP/ref.jsonl" > "$T_TMP/ref.out" 2>&1 ||
  { cat "$T_TMP/ref.out"; t_fail "one-node reference run (mpirun -np 4) failed"; t_done; }
ref=$(t_digest "$T_TMP/ref.jsonl")
echo "one node, 4 ranks: $ref"

s_cluster_up --nodes 2 --cpus 2 --gpus 2
# mlp = 784-512-512-10: 669706 float32 parameters
min_bytes=$((steps * 669706 * 4 / 2))

for launcher in srun mpirun; do
  run=$T_TMP/run-$launcher
  out=$T_TMP/job-$launcher.out
  declare -a before=()
  for v in "${S_VETH[@]}"; do before+=("$(s_bytes "$v")"); done
  id=$(DLFS_DATA=$fm DLFS_RUN_DIR=$run DLFS_TRAIN=$train DLFS_MODEL=mlp DLFS_DEVICE=cpu DLFS_EPOCHS=1 \
    DLFS_LAUNCHER=$launcher DLFS_ARGS="--quiet" \
    sbatch --parsable --time=5 --nodes=2 --ntasks-per-node=2 --gpus-per-node=2 --cpus-per-task=1 \
    --output="$out" "$S_ROOT/slurm/train-multinode.sbatch" "${opts[@]}") ||
    { t_fail "$launcher: sbatch refused the job"; continue; }
  s_wait "$id" 90
  cat "$out"
  [ "$S_STATE" = COMPLETED ] && [ "$S_EXIT" = 0:0 ] &&
    t_pass "$launcher: job $id completed" || t_fail "$launcher: job $id ended $S_STATE $S_EXIT"
  grep -q "train-multinode.sbatch: 2 node(s) node\[1-2\], 4 ranks" "$out" &&
    t_pass "$launcher: 4 ranks on node[1-2]" || t_fail "$launcher: the job did not get 2 nodes and 4 ranks"
  grep -q "^+ $launcher " "$out" && t_pass "$launcher: the job printed the command it ran" ||
    t_fail "$launcher: no '+ $launcher ...' line in the job output"
  got=$(t_digest "$run/metrics.jsonl")
  grep -q '"ranks": 4' "$run/metrics.jsonl" 2>/dev/null && [ -n "$got" ] && [ "$got" = "$ref" ] &&
    t_pass "$launcher: 2 nodes x 2 ranks give the digest of 4 ranks on one node" ||
    t_fail "$launcher: digest '$got' != one-node '$ref'"
  for i in "${!S_VETH[@]}"; do
    moved=$(($(s_bytes "${S_VETH[$i]}") - before[i]))
    [ "$moved" -ge "$min_bytes" ] &&
      t_pass "$launcher: $moved bytes through node$((i + 1))'s link (>= $min_bytes)" ||
      t_fail "$launcher: only $moved bytes through node$((i + 1))'s link, want >= $min_bytes (did MPI cross the nodes over TCP?)"
  done
done
t_done
