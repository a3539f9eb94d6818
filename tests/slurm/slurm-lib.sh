# shellcheck shell=bash
# Helpers for the SLURM test drivers (sourced after ../lib.sh). s_cluster_up starts a
# cluster with launch/slurm-local in the test's scratch directory (one node; with
# --nodes 2 two nodes in network namespaces); an EXIT trap stops its daemons by PID and
# removes its namespaces and links (also when a check fails or the driver gets TERM/INT,
# which are turned into an exit) and then removes the scratch directory.
S_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
S_LOCAL=$S_ROOT/launch/slurm-local
S_RUN=""

# s_need_slurm: exit 77 (skipped) when SLURM is not installed; exit 77 also when not root
# (slurmd must start job processes as their owner)
s_need_slurm() {
  local p
  for p in slurmctld slurmd sbatch munged; do
    command -v "$p" >/dev/null || PATH=$PATH:/usr/sbin command -v "$p" >/dev/null ||
      { echo "$p not installed (apt-get install -y slurm-wlm munge): skipped"; exit 77; }
  done
  export PATH=$PATH:/usr/sbin
  [ "$(id -u)" -eq 0 ] || { echo "the test cluster's daemons must run as root: skipped"; exit 77; }
}

s_cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if [ -n "$S_RUN" ]; then
    if [ "$T_FAILS" -gt 0 ] || [ "$rc" -ne 0 ]; then
      echo "--- slurmctld.log (tail)"; tail -n 15 "$S_RUN/slurm/log/slurmctld.log" 2>/dev/null
      local f
      for f in "$S_RUN"/slurm/log/slurmd*.log; do
        [ -f "$f" ] && { echo "--- $(basename "$f") (tail)"; tail -n 15 "$f"; }
      done
    fi
    "$S_LOCAL" down "$S_RUN" || true
  fi
  rm -rf "$T_TMP"
  exit "$rc"
}

# s_cluster_up [OPTION...]: start the cluster (options for launch/slurm-local up), export
# SLURM_CONF; with --nodes N >= 2 also S_NET (10.77.K.0/24) and S_VETH1..N as S_VETH
# (the root-namespace end of each node's link), and Open MPI's interface variables that
# keep its traffic on the nodes' network (what `launch/slurm-local env` prints)
S_NET="" S_VETH=()
# shellcheck disable=SC2120 # the options are optional
s_cluster_up() {
  S_RUN=$T_TMP/cluster
  chmod 711 "$T_TMP"   # munged wants o+x on every directory above its socket
  trap s_cleanup EXIT
  trap 'exit 143' TERM
  trap 'exit 130' INT
  "$S_LOCAL" up "$S_RUN" "$@" || { t_fail "launch/slurm-local up $*"; exit 1; }
  export SLURM_CONF=$S_RUN/slurm.conf
  if [ -s "$S_RUN/net.env" ]; then
    local k n i
    k=$(sed -n 's/^NET_K=//p' "$S_RUN/net.env")
    n=$(sed -n 's/^NET_NODES=//p' "$S_RUN/net.env")
    S_NET=10.77.$k.0/24
    for ((i = 1; i <= n; i++)); do S_VETH+=("dlfs$k-v$i"); done
    export OMPI_MCA_btl_tcp_if_include=$S_NET OMPI_MCA_oob_tcp_if_include=$S_NET
  fi
}

# s_need_netns: exit 77 (skipped) when network namespaces, veth pairs or bridges cannot
# be made here (no iproute2 or util-linux, no CAP_NET_ADMIN: an unprivileged container);
# the probe works inside a namespace of its own and deletes it
s_need_netns() {
  local p probe=dlfs-probe-$$ why=""
  for p in ip nsenter unshare; do
    command -v "$p" >/dev/null || { echo "$p not installed (apt-get install -y iproute2 util-linux): skipped"; exit 77; }
  done
  if ! ip netns add "$probe" 2>"$T_TMP/netns.err"; then
    why="ip netns add: $(head -n 1 "$T_TMP/netns.err")"
  elif ! ip -n "$probe" link add name pa type veth peer name pb 2>"$T_TMP/netns.err"; then
    why="veth pair: $(head -n 1 "$T_TMP/netns.err")"
  elif ! ip -n "$probe" link add name pbr type bridge 2>"$T_TMP/netns.err"; then
    why="bridge: $(head -n 1 "$T_TMP/netns.err")"
  elif ! nsenter --net="/run/netns/$probe" unshare --uts --mount true 2>"$T_TMP/netns.err"; then
    why="nsenter/unshare: $(head -n 1 "$T_TMP/netns.err")"
  fi
  ip netns del "$probe" 2>/dev/null
  if [ -n "$why" ]; then
    echo "cannot make the two nodes' network namespaces here ($why; needs root with CAP_NET_ADMIN and CAP_SYS_ADMIN): skipped"
    exit 77
  fi
}

# s_bytes IFACE: bytes received + sent so far by IFACE (root namespace)
s_bytes() {
  echo $(($(cat "/sys/class/net/$1/statistics/rx_bytes") + $(cat "/sys/class/net/$1/statistics/tx_bytes")))
}

# s_wait JOBID SECONDS: poll until the job has left the queue (requeues included);
# then S_STATE, S_EXIT and S_RESTARTS hold its final JobState, ExitCode and Restarts
s_wait() {
  local id=$1 limit=$2 t0=$SECONDS info
  while [ -n "$(squeue -h -j "$id" -o %T 2>/dev/null)" ]; do
    if [ $((SECONDS - t0)) -ge "$limit" ]; then
      t_fail "job $id still in the queue after $limit s: $(squeue -h -j "$id" -o '%T %r')"
      scancel "$id" 2>/dev/null
      break
    fi
    sleep 0.2
  done
  info=$(scontrol show job "$id" 2>/dev/null)
  S_STATE=$(sed -n 's/.*JobState=\([A-Z_]*\).*/\1/p' <<< "$info" | head -n 1)
  S_EXIT=$(sed -n 's/.* ExitCode=\([0-9:]*\).*/\1/p' <<< "$info" | head -n 1)
  S_RESTARTS=$(sed -n 's/.*Restarts=\([0-9]*\).*/\1/p' <<< "$info" | head -n 1)
  echo "job $id: state $S_STATE, exit code $S_EXIT, restarts $S_RESTARTS ($((SECONDS - t0)) s)"
}

# s_need_matplotlib: the scaling report's plots need matplotlib in python3 or /usr/bin/python3
# (where launch/scaling-report looks: launch/study/perfmodel.py); a test that checks the plots fails
# when neither has it
s_need_matplotlib() {
  local cand
  for cand in python3 /usr/bin/python3; do
    "$cand" -c 'import matplotlib' 2>/dev/null && return 0
  done
  t_fail "matplotlib is not installed (apt-get install -y python3-matplotlib)"
  t_done
}

# s_png_ok FILE: an 8-byte PNG signature, an IHDR of a plausible size, > 5 kB
s_png_ok() {
  local f=$1 sig w h size
  [ -f "$f" ] || { echo "no $f"; return 1; }
  sig=$(head -c 8 "$f" | od -An -tx1 | tr -d ' \n')
  size=$(stat -c %s "$f")
  w=$(od -An -tu4 --endian=big -j 16 -N 4 "$f" | tr -d ' ')
  h=$(od -An -tu4 --endian=big -j 20 -N 4 "$f" | tr -d ' ')
  echo "$f: signature $sig, ${w}x${h} pixels, $size bytes"
  [ "$sig" = 89504e470d0a1a0a ] && [ "$size" -gt 5000 ] && [ "$w" -ge 400 ] && [ "$h" -ge 200 ]
}

# s_usr1_after_checkpoint RUN_DIR JOB OUT WAIT_S: once the job's first checkpoint exists
# (within 60 s), send SIGUSR1 to its batch shell, then wait for the job (s_wait).
s_usr1_after_checkpoint() {
  local run=$1 id=$2 out=$3 t0=$SECONDS
  until compgen -G "$run/checkpoints/ckpt-*.h5" > /dev/null; do
    if [ $((SECONDS - t0)) -ge 60 ] || [ -z "$(squeue -h -j "$id" 2>/dev/null)" ]; then
      t_fail "no checkpoint appeared within 60 s"; cat "$out"; t_done
    fi
    sleep 0.1
  done
  echo "+ scancel --signal=USR1 --batch $id   (first checkpoint after $((SECONDS - t0)) s)"
  scancel --signal=USR1 --batch "$id" || t_fail "scancel --signal=USR1 failed"
  s_wait "$id" "$4"
}

# s_check_requeue JOB OUT RUN_DIR STEPS: after s_usr1_after_checkpoint, the checks of one
# SIGUSR1 -> checkpoint -> exit 3 -> requeue -> resume cycle: the job completed after one
# requeue, the batch shell trapped the signal, the ranks stopped at a checkpoint, the
# second start resumed from exactly that checkpoint, and the run reached step STEPS.
s_check_requeue() {
  local id=$1 out=$2 run=$3 steps=$4 stop step
  [ "$S_STATE" = COMPLETED ] && [ "$S_EXIT" = 0:0 ] && t_pass "job $id completed" || t_fail "job $id ended $S_STATE $S_EXIT"
  [ "$S_RESTARTS" = 1 ] && t_pass "the job was requeued once" || t_fail "restarts: '$S_RESTARTS', want 1"
  grep -q "SIGUSR1 at" "$out" && t_pass "the batch shell trapped SIGUSR1" || t_fail "no SIGUSR1 line from the batch shell"
  stop=$(grep -o "stopped by SIGUSR1 at step [0-9]*" "$out" | head -n 1)
  [ -n "$stop" ] && t_pass "the ranks checkpointed and stopped: $stop" || t_fail "no 'stopped by SIGUSR1' from dlfs-train"
  grep -q "exited with 3" "$out" && grep -q "+ scontrol requeue $id" "$out" &&
    t_pass "exit code 3 led to scontrol requeue" || t_fail "no exit-3-then-requeue in the job output"
  grep -q "restart 1," "$out" && t_pass "the requeued job started again (restart 1)" || t_fail "no second start"
  # a fresh start would reach the same digest: check that the second start resumed where the first stopped
  step=${stop##* }
  grep -q "^resume: .*/ckpt-0*$step.h5: step $step," "$out" &&
    t_pass "the second start resumed from the checkpoint of step $step" || t_fail "no 'resume: …ckpt…: step $step' line"
  grep -q "\"step\": $steps" "$run/metrics.jsonl" 2>/dev/null && t_pass "the resumed run reached step $steps" ||
    t_fail "no step $steps in the metrics"
}
