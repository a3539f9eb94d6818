#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR disable=SC2015 # `check && t_pass || t_fail`: t_pass never fails
# mpirun with a host file across the two "nodes" of launch/slurm-local --nodes 2, without
# SLURM and without ssh: Open MPI's launch agent (plm_rsh_agent) is `launch/slurm-local
# exec RUN_DIR`, which runs mpirun's daemon inside the node's network namespace. mpirun
# itself runs outside both nodes (on the bridge's address). 2 ranks per node: they land
# on node1 and node2 with the nodes' own addresses, a deterministic run ends with the
# params_sha256 of the same run with 4 ranks on one node, and its gradients crossed the
# nodes' links over TCP.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/slurm-lib.sh"
train=$1 fm=$3
s_need_slurm
s_need_netns
[ -f "$fm" ] || { echo "no $fm: skipped"; exit 77; }

steps=40
opts=(--data "$fm" --model mlp --batch 64 --epochs 1 --max-steps "$steps" --deterministic --virtual-shards 4
  --seed 11 --device cpu --quiet)
mpirun -np 4 "$train" "${opts[@]}" --metrics "$T_TMP/ref.jsonl" > "$T_TMP/ref.out" 2>&1 ||
  { cat "$T_TMP/ref.out"; t_fail "one-node reference run (mpirun -np 4) failed"; t_done; }
ref=$(t_digest "$T_TMP/ref.jsonl")
echo "one node, 4 ranks: $ref"

s_cluster_up --nodes 2 --cpus 2 --gpus 0
cat "$S_RUN/hostfile"
mpi=(mpirun -np 4 --hostfile "$S_RUN/hostfile" --map-by ppr:2:node --mca plm_rsh_agent "$S_LOCAL exec $S_RUN")
echo "+ ${mpi[*]} …"

# where the ranks run: host name, node-local rank (what MPI_Comm_split_type gives dlfs)
# and the address of the node's eth0
# shellcheck disable=SC2016 # expanded by the ranks' shell
# (stdout only: Open MPI's rsh launcher may warn on stderr, e.g. "setpgid(...) failed in
# parent", when a child has already exec'd: a race, not a placement)
where=$(timeout 60 "${mpi[@]}" sh -c 'echo "$OMPI_COMM_WORLD_RANK $(hostname) local $OMPI_COMM_WORLD_LOCAL_RANK $(ip -o -4 addr show eth0 | awk "{print \$4}")"' 2>"$T_TMP/where.err" | sort)
echo "$where"
cat "$T_TMP/where.err"
k=${S_NET#10.77.}
k=${k%%.*}
want="0 node1 local 0 10.77.$k.2/24
1 node1 local 1 10.77.$k.2/24
2 node2 local 0 10.77.$k.3/24
3 node2 local 1 10.77.$k.3/24"
[ "$where" = "$want" ] && t_pass "ranks 0,1 on node1 and 2,3 on node2 (local ranks 0,1 on each), with the nodes' addresses" ||
  t_fail "rank placement, want: $(echo "$want" | tr '\n' ';')"

declare -a before=()
for v in "${S_VETH[@]}"; do before+=("$(s_bytes "$v")"); done
timeout 90 "${mpi[@]}" "$train" "${opts[@]}" --metrics "$T_TMP/run.jsonl" > "$T_TMP/run.out" 2>&1
rc=$?
cat "$T_TMP/run.out"
[ $rc = 0 ] && t_pass "mpirun across the two nodes exited 0" || t_fail "mpirun across the two nodes exited $rc"
got=$(t_digest "$T_TMP/run.jsonl")
grep -q '"ranks": 4' "$T_TMP/run.jsonl" 2>/dev/null && [ -n "$got" ] && [ "$got" = "$ref" ] &&
  t_pass "2 nodes x 2 ranks (mpirun, host file) give the digest of 4 ranks on one node" ||
  t_fail "digest '$got' != one-node '$ref'"
# mlp = 784-512-512-10: 669706 float32 parameters; at least half of them per step, each link
min_bytes=$((steps * 669706 * 4 / 2))
for i in "${!S_VETH[@]}"; do
  moved=$(($(s_bytes "${S_VETH[$i]}") - before[i]))
  [ "$moved" -ge "$min_bytes" ] && t_pass "$moved bytes through node$((i + 1))'s link (>= $min_bytes)" ||
    t_fail "only $moved bytes through node$((i + 1))'s link, want >= $min_bytes (did MPI cross the nodes over TCP?)"
done
t_done
