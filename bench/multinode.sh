#!/usr/bin/env bash
# Benchmark on a real three-node Swarm (scripts/multinode.sh), all three nodes managers:
#   1. N one-replica services spread over the three nodes: `docker stack deploy
#      --detach=false` of the equivalent compose file, then kargo apply → all Ready
#      (the controller given the three managers);
#   2. manager failover, ROUNDS times: kill the manager the controller uses, change one
#      Service, time until the change is in Swarm (seen through another manager); the
#      killed manager is started again before the next round.
#
#   bench/multinode.sh [N] [ROUNDS]     default: 50 5
#
# KARGO_BIN picks the binary (default: a release build). The Swarm is taken down at the end.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
N=${1:-50}
ROUNDS=${2:-5}
MN="$ROOT/scripts/multinode.sh"
"$ROOT/scripts/setup.sh" >/dev/null
if [[ -z "${KARGO_BIN:-}" ]]; then
  cargo build --release -q
  KARGO_BIN="$ROOT/target/release/kargo"
fi
KARGO="$KARGO_BIN"
export KARGO_ETCD_ENDPOINTS="${KARGO_ETCD_ENDPOINTS:-127.0.0.1:2379}"
export KARGO_PREFIX=/kargo-bench-multinode
WORK="$(mktemp -d)"
CTL_PID=""
cleanup() {
  [[ -n "$CTL_PID" ]] && kill "$CTL_PID" 2>/dev/null || true
  ETCDCTL_API=3 etcdctl --endpoints="$KARGO_ETCD_ENDPOINTS" del --prefix "$KARGO_PREFIX" >/dev/null 2>&1 || true
  "$MN" down >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT

now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }

"$MN" down >/dev/null 2>&1
"$MN" up >/dev/null 2>&1
"$MN" promote >/dev/null 2>&1
HOSTS=$("$MN" hosts)
IFS=, read -r -a HOST <<<"$HOSTS"
export KARGO_DOCKER_HOSTS="$HOSTS"
ETCDCTL_API=3 etcdctl --endpoints="$KARGO_ETCD_ENDPOINTS" del --prefix "$KARGO_PREFIX" >/dev/null
# any manager that answers (the docker CLI takes one address)
dk() {
  local h
  for h in "${HOST[@]}"; do
    if timeout 10 docker -H "$h" node ls >/dev/null 2>&1; then timeout 60 docker -H "$h" "$@"; return; fi
  done
  return 1
}

# 1. N services, docker stack deploy vs kargo
{
  echo 'version: "3.8"'
  echo 'services:'
  for i in $(seq 1 "$N"); do
    printf '  s%d:\n    image: kargo-busybox:1.0\n    command: ["sh", "-c", "while true; do sleep 1; done"]\n    stop_grace_period: 1s\n    deploy: {replicas: 1, endpoint_mode: dnsrr}\n' "$i"
  done
} >"$WORK/compose.yml"
{
  printf 'apiVersion: kargo.dev/v1alpha1\nkind: Stack\nmetadata: {name: bench}\nspec:\n  services: ['
  for i in $(seq 1 "$N"); do printf 's%d%s' "$i" "$([[ $i -lt $N ]] && echo ', ')"; done
  printf ']\n'
  for i in $(seq 1 "$N"); do
    printf -- '---\napiVersion: kargo.dev/v1alpha1\nkind: Service\nmetadata: {name: s%d}\nspec:\n  image: "kargo-busybox:1.0"\n  command: ["sh", "-c", "while true; do sleep 1; done"]\n  stopGracePeriod: 1s\n  endpointMode: dnsrr\n  env: {ROUND: "0"}\n  deploy: {replicas: 1}\n' "$i"
  done
} >"$WORK/kargo.yaml"

t0=$(now)
docker -H "${HOST[0]}" stack deploy --detach=false -c "$WORK/compose.yml" kargo-bcompose >/dev/null 2>&1
t1=$(now)
docker_secs=$(secs "$t0" "$t1")
spread=$(dk stack ps kargo-bcompose --format '{{.Node}}' | sort | uniq -c | awk '{printf "%s:%s ", $2, $1}')
dk stack rm kargo-bcompose >/dev/null
for _ in $(seq 1 120); do
  [[ -z "$(dk service ls -q)" ]] && break
  sleep 1
done

t0=$(now)
"$KARGO" apply -f "$WORK/kargo.yaml" >/dev/null
"$KARGO" controller --resync-period 5s --metrics-addr 127.0.0.1:19591 >"$WORK/controller.log" 2>&1 &
CTL_PID=$!
"$KARGO" wait stack/bench --for=condition=Ready --timeout=600s >/dev/null
t1=$(now)
kargo_secs=$(secs "$t0" "$t1")
kspread=$(dk service ps -q $(dk service ls -q) --filter desired-state=running --format '{{.Node}}' | sort | uniq -c | awk '{printf "%s:%s ", $2, $1}')
printf 'N=%s on 3 nodes: docker stack deploy --detach=false: %ss (tasks per node: %s) | kargo apply→Ready: %ss (tasks per node: %s)\n' \
  "$N" "$docker_secs" "$spread" "$kargo_secs" "$kspread"

# 2. failover rounds
in_use() { # the index (0-based) of the endpoint the controller uses
  local m i
  m=$(curl -s http://127.0.0.1:19591/metrics | awk -F'"' '/^kargo_docker_endpoint\{/ && $NF ~ / 1$/ {print $2}')
  for i in "${!HOST[@]}"; do [[ "${HOST[$i]}" == "$m" ]] && echo "$i"; done
  return 0
}
times=()
for r in $(seq 1 "$ROUNDS"); do
  i=$(in_use)
  [[ -n "$i" ]] || { echo "no endpoint in use reported" >&2; exit 1; }
  "$MN" kill-node $((i + 1)) >/dev/null 2>&1
  t0=$(now)
  sed -i "0,/ROUND: \"[0-9]*\"/s//ROUND: \"$r\"/" "$WORK/kargo.yaml"
  "$KARGO" apply -f "$WORK/kargo.yaml" >/dev/null
  landed=""
  for _ in $(seq 1 600); do
    if dk service inspect kargo-bench_s1 --format '{{json .Spec.TaskTemplate.ContainerSpec.Env}}' 2>/dev/null | grep -q "ROUND=$r\""; then
      landed=$(now); break
    fi
    sleep 0.2
  done
  [[ -n "$landed" ]] || { echo "round $r: the change did not land within 120 s" >&2; exit 1; }
  times+=("$(secs "$t0" "$landed")")
  printf 'failover round %s: killed %s, change landed after %ss (now using %s)\n' \
    "$r" "${HOST[$i]}" "${times[-1]}" "${HOST[$(in_use)]:-?}"
  "$MN" start-node $((i + 1)) >/dev/null 2>&1
  # wait until the restarted manager is reachable again before the next round
  for _ in $(seq 1 120); do
    [[ "$(dk node ls --format '{{.ManagerStatus}}' | grep -cE '^(Leader|Reachable)$')" == 3 ]] && break
    sleep 0.5
  done
done
printf '%s\n' "${times[@]}" | sort -n | awk '{a[NR]=$1} END {printf "failover (kill the manager in use → next change in Swarm), %d rounds: median %.1fs, worst %.1fs\n", NR, (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2), a[NR]}'
