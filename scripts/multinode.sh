#!/usr/bin/env bash
# A real three-node Docker Swarm on this one machine, for the multi-node tests
# (tests/multinode.rs) and the multi-node benchmark (bench/multinode.sh).
#
# Each node is its own dockerd in its own network namespace (and UTS namespace, for its
# hostname), the nodes joined by a bridge that lives in a namespace of its own. Nothing
# here touches the machine's main dockerd, its Swarm, or the root namespace's iptables:
# every name below (namespaces, sockets, data, cgroups) is this script's own, and only
# processes proven to be ours (by pid file and command line, or by our cgroup) are killed.
#
# Usage: scripts/multinode.sh COMMAND
#   up            start the nodes and form the Swarm (node 1 manager, 2 and 3 workers), load
#                 the test images from the main dockerd (read-only); idempotent: a healthy
#                 Swarm is kept as it is
#   promote       make every node a manager (three managers: one may fail)
#   demote        make nodes 2 and 3 workers again
#   kill-node N   SIGKILL node N's dockerd (a crash; its containers keep running)
#   stop-node N   stop node N's dockerd cleanly (SIGTERM)
#   start-node N  start node N's dockerd again (it rejoins the Swarm by itself)
#   hosts         print the nodes' Docker endpoints, comma-separated (for --docker-host)
#   tls           print the client's TLS directory (DOCKER_CERT_PATH) and the nodes' TLS
#                 endpoints (tcp://10.215.0.1N:2376, reachable from inside the nodes' network
#                 namespaces only)
#   status        the nodes as the first answering manager sees them
#   down          remove everything `up` made, also after a node was killed
#
# Environment: KARGO_MN_IMAGES (default "kargo-busybox:1.0 kargo-busybox:1.1") images to
# copy into every node; KARGO_MN_DOCKERD_FLAGS extra dockerd flags.
set -euo pipefail

NODES=(kmn1 kmn2 kmn3)
BRNS=kmnbr                       # the namespace holding the bridge (not the root namespace)
NET=10.215.0                     # node i gets $NET.(10+i)
ADDR_POOL=10.216.0.0/16          # the inner Swarm's overlay subnets, away from $NET.0/24
DATA=/var/lib/kargo-multinode
RUN=/run/kargo-multinode
IMAGES=(${KARGO_MN_IMAGES:-kargo-busybox:1.0 kargo-busybox:1.1})
DOCKERD_FLAGS=${KARGO_MN_DOCKERD_FLAGS:-}
T0=$(date +%s.%N)

elapsed() { awk -v a="$T0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1fs", b-a}'; }
log() { echo "[multinode $(elapsed)] $*" >&2; }
die() { echo "multinode: ERROR: $*" >&2; exit 1; }
sock() { echo "$RUN/$1/docker.sock"; }
d() { local n=$1; shift; timeout 30 docker -H "unix://$(sock "$n")" "$@"; }
alive() { [[ -n "${1:-}" ]] && kill -0 "$1" 2>/dev/null; }
node_name() { # 1..3 -> kmnN
  [[ "${1:-}" =~ ^[1-3]$ ]] || die "a node number is 1, 2 or 3 (got '${1:-}')"
  echo "${NODES[$(($1 - 1))]}"
}
# The pid of node n's dockerd, only if the pid file names a dockerd started with our pid file.
dockerd_pid() {
  local p
  p=$(cat "$RUN/$1/docker.pid" 2>/dev/null || true)
  [[ "$p" =~ ^[0-9]+$ ]] && alive "$p" &&
    tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null | grep -qF -- "--pidfile $RUN/$1/docker.pid" &&
    echo "$p"
}
# Any manager that answers (node 1 first).
manager() {
  local n
  for n in "${NODES[@]}"; do
    if [[ "$(d "$n" info --format '{{.Swarm.ControlAvailable}}' 2>/dev/null)" == true ]]; then
      echo "$n"; return 0
    fi
  done
  return 1
}
ready_nodes() { d "$1" node ls --format '{{.Status}}' 2>/dev/null | grep -c '^Ready$' || true; }

need_tools() {
  local t
  for t in ip nsenter unshare setsid dockerd docker timeout flock openssl; do
    command -v "$t" >/dev/null || die "'$t' is missing (scripts/setup.sh installs docker.io; ip, nsenter, unshare come with iproute2 and util-linux)"
  done
  [[ $(id -u) == 0 ]] || die "needs root (network namespaces, dockerd)"
}

# A CA, one server certificate for every node address and a client certificate, under
# $RUN/tls; the client's files have the names DOCKER_CERT_PATH uses (ca.pem, cert.pem, key.pem).
make_tls() {
  local dir=$RUN/tls sans="IP:127.0.0.1" i
  [[ -s "$dir/client/key.pem" ]] && return 0
  mkdir -p "$dir/client"
  for i in 1 2 3; do sans+=",IP:$NET.$((10 + i))"; done
  (
    cd "$dir"
    key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }
    key ca-key.pem
    openssl req -x509 -new -key ca-key.pem -subj /CN=kargo-multinode-ca -days 2 -out ca.pem 2>/dev/null
    key server-key.pem
    openssl req -new -key server-key.pem -subj /CN=kargo-multinode -out server.csr 2>/dev/null
    printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth\n' "$sans" >server.ext
    openssl x509 -req -in server.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial -days 2 \
      -extfile server.ext -out server-cert.pem 2>/dev/null
    key client/key.pem
    openssl req -new -key client/key.pem -subj /CN=kargo-test -out client.csr 2>/dev/null
    printf 'extendedKeyUsage=clientAuth\n' >client.ext
    openssl x509 -req -in client.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial -days 2 \
      -extfile client.ext -out client/cert.pem 2>/dev/null
    cp ca.pem client/ca.pem
  ) || die "making the TLS certificates failed"
}

start_dockerd() { # node: start its dockerd in its namespaces, wait until it answers
  local n=$1 t i
  i=$(( ${n#kmn} + 10 ))
  mkdir -p "$RUN/$n" "$DATA/$n"
  # Its own config file and identity key: never /etc/docker/daemon.json or key.json.
  printf '{ "deprecated-key-path": "%s/%s/key.json" }\n' "$DATA" "$n" >"$RUN/$n/daemon.json"
  # nsenter --net, not `ip netns exec`: the latter remounts /sys and hides the cgroup mount.
  setsid -f nsenter --net="/run/netns/$n" -- unshare --uts -- sh -c "
      echo $n > /proc/sys/kernel/hostname
      exec dockerd --config-file $RUN/$n/daemon.json \
        --data-root $DATA/$n --exec-root $RUN/$n/x --pidfile $RUN/$n/docker.pid \
        -H unix://$(sock "$n") -H tcp://$NET.$i:2376 --tlsverify --tlscacert $RUN/tls/ca.pem \
        --tlscert $RUN/tls/server-cert.pem --tlskey $RUN/tls/server-key.pem --cgroup-parent /kargo-$n --storage-driver overlay2 $DOCKERD_FLAGS" \
    >>"$RUN/$n/dockerd.log" 2>&1 </dev/null 9>&-
  for t in $(seq 1 120); do d "$n" version >/dev/null 2>&1 && return 0; sleep 0.25; done
  tail -20 "$RUN/$n/dockerd.log" >&2 || true
  die "dockerd of $n did not answer within 30 s (log: $RUN/$n/dockerd.log)"
}

load_images() {
  local tar="$DATA/images.tar" n pids=()
  if [[ ! -s "$tar" ]]; then
    docker image inspect "${IMAGES[@]}" >/dev/null 2>&1 ||
      die "the main dockerd lacks ${IMAGES[*]}: run scripts/setup.sh first"
    docker save -o "$tar.tmp" "${IMAGES[@]}" && mv "$tar.tmp" "$tar"
  fi
  for n in "${NODES[@]}"; do
    d "$n" image inspect "${IMAGES[@]}" >/dev/null 2>&1 && continue
    d "$n" load -q -i "$tar" >/dev/null & pids+=($!)
  done
  for p in "${pids[@]}"; do wait "$p" || die "docker load into a node failed"; done
}

healthy() { # the three daemons answer and a manager sees three Ready nodes
  local n m
  for n in "${NODES[@]}"; do dockerd_pid "$n" >/dev/null || return 1; done
  m=$(manager) || return 1
  [[ "$(ready_nodes "$m")" == "${#NODES[@]}" ]]
}

cmd_up() {
  need_tools
  if healthy; then
    load_images
    log "already up: $(cmd_hosts)"
    return 0
  fi
  if [[ -e "$RUN" || -e "/run/netns/$BRNS" ]]; then
    log "a previous Swarm is half up: removing it first"
    cmd_down
  fi
  mkdir -p "$DATA" "$RUN"
  [[ -d /run/netns ]] || touch "$RUN/.made-run-netns"
  # 1. network: the bridge in its own namespace (in the root namespace the main dockerd's
  # FORWARD policy would drop the bridged frames, and those chains are not ours).
  ip netns add "$BRNS"
  ip -n "$BRNS" link set lo up
  ip -n "$BRNS" link add kmnbr0 type bridge
  ip -n "$BRNS" link set kmnbr0 up
  local i=0 n
  for n in "${NODES[@]}"; do
    i=$((i + 1))
    ip netns add "$n"
    ip -n "$BRNS" link add "$n-h" type veth peer name eth0 netns "$n"
    ip -n "$BRNS" link set "$n-h" master kmnbr0 up
    ip -n "$n" link set lo up
    ip -n "$n" addr add "$NET.$((10 + i))/24" dev eth0
    ip -n "$n" link set eth0 up
  done
  # 2. one dockerd per node (unix socket, and TLS on its address, port 2376)
  make_tls
  for n in "${NODES[@]}"; do start_dockerd "$n" & done
  wait
  for n in "${NODES[@]}"; do dockerd_pid "$n" >/dev/null || die "dockerd of $n is not running"; done
  log "3 dockerd up"
  # 3. images (no registry): copied from the main dockerd, which is only read
  load_images
  log "images ${IMAGES[*]} loaded into every node"
  # 4. the Swarm
  local m=${NODES[0]} token pids=()
  d "$m" swarm init --advertise-addr "$NET.11" --listen-addr "$NET.11:2377" \
    --default-addr-pool "$ADDR_POOL" >/dev/null
  token=$(d "$m" swarm join-token -q worker)
  i=1
  for n in "${NODES[@]:1}"; do
    i=$((i + 1))
    d "$n" swarm join --token "$token" --advertise-addr "$NET.$((10 + i))" \
      --listen-addr "$NET.$((10 + i)):2377" "$NET.11:2377" >/dev/null & pids+=($!)
  done
  for p in "${pids[@]}"; do wait "$p" || die "swarm join failed"; done
  for _ in $(seq 1 120); do [[ "$(ready_nodes "$m")" == 3 ]] && break; sleep 0.25; done
  [[ "$(ready_nodes "$m")" == 3 ]] || { d "$m" node ls >&2; die "not all nodes Ready"; }
  log "swarm ready: $(cmd_hosts)"
}

cmd_promote() {
  local m
  m=$(manager) || die "no manager answers"
  d "$m" node promote "${NODES[@]:1}" >/dev/null
  for _ in $(seq 1 120); do
    [[ "$(d "$m" node ls --format '{{.ManagerStatus}}' | grep -cE '^(Leader|Reachable)$')" == 3 ]] && { log "3 managers"; return 0; }
    sleep 0.25
  done
  d "$m" node ls >&2
  die "the nodes did not all become reachable managers"
}

cmd_demote() {
  local m
  m=$(manager) || die "no manager answers"
  d "$m" node demote "${NODES[@]:1}" >/dev/null
}

cmd_kill_node() {
  local n p
  n=$(node_name "${1:-}")
  p=$(dockerd_pid "$n") || die "dockerd of $n is not running"
  kill -KILL "$p"
  for _ in $(seq 1 40); do alive "$p" || break; sleep 0.05; done
  log "killed dockerd of $n ($p)"
}

cmd_stop_node() {
  local n p
  n=$(node_name "${1:-}")
  p=$(dockerd_pid "$n") || die "dockerd of $n is not running"
  kill -TERM "$p"
  for _ in $(seq 1 120); do alive "$p" || { log "stopped dockerd of $n"; return 0; }; sleep 0.25; done
  kill -KILL "$p"
  log "dockerd of $n did not stop within 30 s: killed"
}

cmd_start_node() {
  local n
  n=$(node_name "${1:-}")
  [[ -e "/run/netns/$n" ]] || die "node $n does not exist: run 'up' first"
  if dockerd_pid "$n" >/dev/null; then log "dockerd of $n is running"; return 0; fi
  start_dockerd "$n"
  log "started dockerd of $n"
}

cmd_hosts() {
  local out=() n
  for n in "${NODES[@]}"; do out+=("unix://$(sock "$n")"); done
  (IFS=,; echo "${out[*]}")
}

cmd_tls() { # the client's TLS files (for DOCKER_CERT_PATH) and the nodes' TLS endpoints
  local n i=0 out=()
  for n in "${NODES[@]}"; do i=$((i + 1)); out+=("tcp://$NET.$((10 + i)):2376"); done
  echo "$RUN/tls/client"
  (IFS=,; echo "${out[*]}")
}

cmd_status() {
  local m
  m=$(manager) || die "no manager answers"
  d "$m" node ls
}

# Processes of containerd (and its shims) whose command line names this string.
pids_with() {
  local p c
  for p in /proc/[0-9]*; do
    c=$(cat "$p/comm" 2>/dev/null) || continue
    case $c in containerd | containerd-shim*) ;; *) continue ;; esac
    tr '\0' ' ' <"$p/cmdline" 2>/dev/null | grep -qF -- "$1" && echo "${p#/proc/}"
  done
}

cmd_down() {
  local n p c s
  # 1. our services, then every container at once (no 10 s stop timeouts)
  if m=$(manager 2>/dev/null); then
    s=$(d "$m" service ls -q 2>/dev/null || true)
    [[ -n "$s" ]] && d "$m" service rm $s >/dev/null 2>&1 || true
  fi
  for n in "${NODES[@]}"; do
    if dockerd_pid "$n" >/dev/null; then
      c=$(d "$n" ps -aq 2>/dev/null || true)
      [[ -n "$c" ]] && d "$n" rm -f $c >/dev/null 2>&1 || true
    fi
  done
  # 2. the daemons, SIGTERM then SIGKILL; only our own pids
  declare -A dpid=()
  for n in "${NODES[@]}"; do
    if p=$(dockerd_pid "$n"); then dpid[$n]=$p; kill -TERM "$p"; fi
  done
  for n in "${!dpid[@]}"; do
    p=${dpid[$n]}
    for _ in $(seq 1 80); do alive "$p" || break; sleep 0.25; done
    alive "$p" && kill -KILL "$p"
  done
  # what a hard-killed dockerd left: its containerd and shims (by socket path), and the
  # processes in our cgroups
  for n in "${NODES[@]}"; do
    for p in $(pids_with "$RUN/$n/x/containerd/containerd"); do
      local a id="" ns="" addr="" k
      a=($(tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null))
      for k in "${!a[@]}"; do
        case ${a[$k]} in -id) id=${a[$((k + 1))]} ;; -namespace) ns=${a[$((k + 1))]} ;; -address) addr=${a[$((k + 1))]} ;; esac
      done
      kill -KILL "$p" 2>/dev/null || true
      # a SIGKILLed shim leaves its socket /run/containerd/s/sha256(<address>/<ns>/<id>)
      if [[ -n "$id" && -n "$ns" && -n "$addr" ]]; then
        rm -f "/run/containerd/s/$(printf '%s' "$addr/$ns/$id" | sha256sum | cut -d' ' -f1)"
      fi
    done
    if [[ -d "/sys/fs/cgroup/pids/kargo-$n" ]]; then
      for p in $(find "/sys/fs/cgroup/pids/kargo-$n" -name cgroup.procs -exec cat {} + 2>/dev/null); do
        kill -KILL "$p" 2>/dev/null || true
      done
    fi
  done
  for _ in $(seq 1 40); do
    [[ -z "$(for n in "${NODES[@]}"; do find "/sys/fs/cgroup/pids/kargo-$n" -name cgroup.procs -exec cat {} + 2>/dev/null; done)" ]] && break
    sleep 0.25
  done
  # 3. mounts, directories, cgroups
  for n in "${NODES[@]}"; do
    awk -v a="$RUN/$n" -v b="$DATA/$n" '$2==a || $2==b || index($2,a"/")==1 || index($2,b"/")==1 {print $2}' /proc/mounts |
      sort -r | while read -r mnt; do umount -l "$mnt" 2>/dev/null || true; done
    rm -rf "${DATA:?}/$n"
    for c in /sys/fs/cgroup/*/"kargo-$n"; do
      [[ -d "$c" ]] && find "$c" -depth -type d -exec rmdir {} \; 2>/dev/null || true
    done
  done
  local made_netns=no
  [[ -e "$RUN/.made-run-netns" ]] && made_netns=yes
  rm -rf "${RUN:?}"
  # 4. namespaces: deleting one destroys its veth end; the bridge goes with $BRNS
  for n in "${NODES[@]}" "$BRNS"; do
    [[ -e "/run/netns/$n" ]] && ip netns del "$n"
  done
  if [[ $made_netns == yes && -d /run/netns && -z "$(ls -A /run/netns)" ]]; then
    mountpoint -q /run/netns && umount /run/netns
    rmdir /run/netns
  fi
  log "down"
}

# One command at a time (the tests and a person at the keyboard may both call this).
mkdir -p "$(dirname "$RUN")"
exec 9>"/run/kargo-multinode.lock"
flock -w 120 9 || die "another multinode.sh holds /run/kargo-multinode.lock"

case "${1:-}" in
  up) cmd_up ;;
  down) cmd_down ;;
  promote) cmd_promote ;;
  demote) cmd_demote ;;
  kill-node) cmd_kill_node "${2:-}" ;;
  stop-node) cmd_stop_node "${2:-}" ;;
  start-node) cmd_start_node "${2:-}" ;;
  hosts) cmd_hosts ;;
  tls) cmd_tls ;;
  status) cmd_status ;;
  *) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2 ;;
esac
