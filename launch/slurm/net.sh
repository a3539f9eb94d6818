# shellcheck shell=bash
# shellcheck disable=SC2154 # RUN, nodes, cpus: slurm-local's
# Sourced by launch/slurm-local: the nodes of `--nodes N` (N >= 2) as network namespaces on
# a bridge: claim a subnet, build and remove the namespaces and links, run a command inside
# a node. Uses slurm-local's RUN, nodes, cpus, run and die.

# --- several nodes: network namespaces on a bridge -------------------------------------
# RUN/net.env remembers the subnet number K and the node count, written as soon as the
# bridge is claimed so that `down` finds everything even after a failed `up`.
NET_K="" NET_NODES=0
net_load() {
  [ -s "$RUN/net.env" ] || return 1
  NET_K=$(sed -n 's/^NET_K=\([0-9]*\)$/\1/p' "$RUN/net.env")
  NET_NODES=$(sed -n 's/^NET_NODES=\([0-9]*\)$/\1/p' "$RUN/net.env")
  [ -n "$NET_K" ] && [ -n "$NET_NODES" ]
}
net_ns() { echo "dlfs$NET_K-node$1"; }
ns_exists() { ip netns list 2>/dev/null | awk '{print $1}' | grep -qx "$1"; }
link_exists() { ip link show "$1" >/dev/null 2>&1; }

# net_claim: the first K whose subnet 10.77.K.0/24 no address or route on this machine
# uses; creating the bridge dlfs<K>-br is the claim (it fails if another cluster has it)
net_claim() {
  local k
  for k in $(seq 0 255); do
    [ -z "$(ip -o -4 addr show to "10.77.$k.0/24")" ] || continue
    [ -z "$(ip -4 route show root "10.77.$k.0/24")" ] || continue
    ip netns list 2>/dev/null | grep -q "^dlfs$k-" && continue
    if ip link add "dlfs$k-br" type bridge 2>/dev/null; then
      echo "+ ip link add dlfs$k-br type bridge"
      NET_K=$k NET_NODES=$nodes
      printf 'NET_K=%s\nNET_NODES=%s\n' "$k" "$nodes" > "$RUN/net.env"
      return 0
    fi
  done
  die "no free subnet 10.77.K.0/24 for the nodes' network (or no CAP_NET_ADMIN: ip link add failed)"
}

net_up() {
  command -v ip >/dev/null || die "ip not found (apt-get install -y iproute2)"
  if ! command -v unshare >/dev/null || ! command -v nsenter >/dev/null; then
    die "unshare or nsenter not found (apt-get install -y util-linux)"
  fi
  net_claim
  local br=dlfs$NET_K-br i ns
  run ip addr add "10.77.$NET_K.1/24" dev "$br"
  run ip link set "$br" up
  for ((i = 1; i <= nodes; i++)); do
    ns=$(net_ns "$i")
    run ip netns add "$ns"
    run ip link add "dlfs$NET_K-v$i" type veth peer name eth0 netns "$ns"
    run ip link set "dlfs$NET_K-v$i" master "$br" up
    run ip -n "$ns" link set lo up
    run ip -n "$ns" addr add "10.77.$NET_K.$((i + 1))/24" dev eth0
    run ip -n "$ns" link set eth0 up
  done
  for ((i = 1; i <= nodes; i++)); do echo "node$i slots=$cpus"; done > "$RUN/hostfile"
}

# net_down: end what is left in the namespaces (after the daemons were stopped by PID),
# delete the links and the namespaces
net_down() {
  net_load || return 0
  local i ns pids pid
  for ((i = 1; i <= NET_NODES; i++)); do
    ns=$(net_ns "$i")
    ns_exists "$ns" || continue
    pids=$(ip netns pids "$ns" 2>/dev/null | tr '\n' ' ')
    if [ -n "${pids// /}" ]; then
      # shellcheck disable=SC2086 # one PID per word
      run kill $pids 2>/dev/null || true
      for _ in $(seq 1 50); do
        [ -z "$(ip netns pids "$ns" 2>/dev/null)" ] && break
        sleep 0.1
      done
      for pid in $(ip netns pids "$ns" 2>/dev/null); do run kill -9 "$pid" 2>/dev/null || true; done
    fi
    if link_exists "dlfs$NET_K-v$i"; then run ip link del "dlfs$NET_K-v$i" || true; fi
    run ip netns del "$ns" || true
  done
  if link_exists "dlfs$NET_K-br"; then run ip link del "dlfs$NET_K-br" || true; fi
  rm -f "$RUN/net.env"
}

# in_node NODE CMD...: run CMD inside NODE's network namespace, with NODE as host name
# (a UTS namespace) and RUN/nodes/NODE/tmp mounted on RUN/tmp (a mount namespace): the
# job's TmpFS is node-local, as on a real cluster (SLURM's PMIx plugin puts a directory
# per job step there, which two nodes sharing one would both try to create).
in_node() {
  local node=$1
  shift
  # nsenter, not `ip netns exec`: that also remounts /sys, which hides the cgroup file
  # system slurmd needs
  # shellcheck disable=SC2016 # $0, $1, $2 and $@ are the inner shell's
  nsenter --net="/run/netns/$(net_ns "${node#node}")" unshare --uts --mount -- \
    sh -c 'mount --bind "$1" "$2" && hostname "$0" && shift 2 && exec "$@"' \
    "$node" "$RUN/nodes/$node/tmp" "$RUN/tmp" "$@"
}
