#!/usr/bin/env bash
# Benchmark (issue 6): kargo against `docker stack deploy --detach=false`, side by side
# in one run on the same Swarm, for N one-replica services of the local image.
#
#   bench/deploy.sh [N...]        default: 20 50
#
# For each N it prints:
#   - docker stack deploy --detach=false of the equivalent compose file: wall time
#   - kargo: apply → controller → every service Ready: wall time
#   - kargo: one image-tag change → Ready again
#   - kargo: a no-op resync of the converged services (Docker writes, etcd writes, ms)
#   - the controller's resident memory (VmRSS)
# Needs scripts/setup.sh's machine (etcd, Swarm, image kargo-busybox:1.0 and :1.1).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
"$ROOT/scripts/setup.sh" >/dev/null
cargo build --release -q
KARGO="$ROOT/target/release/kargo"
export KARGO_ETCD_ENDPOINTS="${KARGO_ETCD_ENDPOINTS:-127.0.0.1:2379}"
export KARGO_PREFIX=/kargo-bench
WORK="$(mktemp -d)"
CTL_PID=""
cleanup() {
  [[ -n "$CTL_PID" ]] && kill "$CTL_PID" 2>/dev/null || true
  docker stack rm kargo-bcompose >/dev/null 2>&1 || true
  docker service ls -q --filter label=dev.kargo.installation=/kargo-bench | xargs -r docker service rm >/dev/null 2>&1 || true
  ETCDCTL_API=3 etcdctl --endpoints="$KARGO_ETCD_ENDPOINTS" del --prefix /kargo-bench >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT

now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }

wait_gone() { # until no service of the compose stack / installation remains
  for _ in $(seq 1 120); do
    [[ -z "$(docker service ls -q --filter "$1")" ]] && return 0
    sleep 1
  done
}

SIZES=("$@")
[[ ${#SIZES[@]} -gt 0 ]] || SIZES=(20 50)
for n in "${SIZES[@]}"; do
  {
    cleanup_state() {
      docker stack rm kargo-bcompose >/dev/null 2>&1 || true
      docker service ls -q --filter label=dev.kargo.installation=/kargo-bench | xargs -r docker service rm >/dev/null 2>&1 || true
      wait_gone label=com.docker.stack.namespace=kargo-bcompose
      wait_gone label=dev.kargo.installation=/kargo-bench
      ETCDCTL_API=3 etcdctl --endpoints="$KARGO_ETCD_ENDPOINTS" del --prefix /kargo-bench >/dev/null
    }
    cleanup_state
    # The same services twice: a compose file and kargo manifests.
    {
      echo 'version: "3.8"'
      echo 'services:'
      for i in $(seq 1 "$n"); do
        printf '  s%d:\n    image: kargo-busybox:1.0\n    command: ["sh", "-c", "while true; do sleep 1; done"]\n    deploy: {replicas: 1, endpoint_mode: dnsrr}\n' "$i"
      done
    } >"$WORK/compose.yml"
    {
      printf 'apiVersion: kargo.dev/v1alpha1\nkind: Stack\nmetadata: {name: bench}\nspec:\n  services: ['
      for i in $(seq 1 "$n"); do printf 's%d%s' "$i" "$([[ $i -lt $n ]] && echo ', ')"; done
      printf ']\n'
      for i in $(seq 1 "$n"); do
        printf -- '---\napiVersion: kargo.dev/v1alpha1\nkind: Service\nmetadata: {name: s%d}\nspec:\n  image: "kargo-busybox:1.0"\n  command: ["sh", "-c", "while true; do sleep 1; done"]\n  endpointMode: dnsrr\n  deploy: {replicas: 1}\n' "$i"
      done
    } >"$WORK/kargo.yaml"

    t0=$(now)
    docker stack deploy --detach=false -c "$WORK/compose.yml" kargo-bcompose >/dev/null 2>&1
    t1=$(now)
    docker_secs=$(secs "$t0" "$t1")
    docker stack rm kargo-bcompose >/dev/null
    wait_gone label=com.docker.stack.namespace=kargo-bcompose

    t0=$(now)
    "$KARGO" apply -f "$WORK/kargo.yaml" >/dev/null
    "$KARGO" controller --resync-period 30s >"$WORK/controller.log" 2>&1 &
    CTL_PID=$!
    "$KARGO" wait stack/bench --for=condition=Ready --timeout=600s >/dev/null
    t1=$(now)
    kargo_secs=$(secs "$t0" "$t1")

    t0=$(now)
    sed -i '0,/kargo-busybox:1.0/s//kargo-busybox:1.1/' "$WORK/kargo.yaml"
    "$KARGO" apply -f "$WORK/kargo.yaml" >/dev/null
    sleep 0.2
    "$KARGO" wait stack/bench --for=condition=Ready --timeout=300s >/dev/null
    t1=$(now)
    tag_secs=$(secs "$t0" "$t1")
    rss=$(awk '/VmRSS/ {print $2 " " $3}' "/proc/$CTL_PID/status")
    kill "$CTL_PID"; wait "$CTL_PID" 2>/dev/null || true; CTL_PID=""
    noop=$("$KARGO" controller --once || true)

    ratio=$(awk -v k="$kargo_secs" -v d="$docker_secs" 'BEGIN { printf "%.2f", k / d }')
    printf 'N=%-3s docker stack deploy --detach=false: %6ss | kargo apply→Ready: %6ss (%s× docker) | tag change→Ready: %5ss | no-op resync: %s | controller RSS: %s\n' \
      "$n" "$docker_secs" "$kargo_secs" "$ratio" "$tag_secs" "$noop" "$rss"
    cleanup_state
  }
done
