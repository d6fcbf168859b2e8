#!/usr/bin/env bash
# Stop the controller that scripts/example.sh left running (by its pid file).
#   --all   also remove kargo's Swarm services (every installation: label
#           dev.kargo.installation), and stop the etcd, dockerd and registry that
#           scripts/setup.sh started (by their pid files; others are left alone).
#           etcd's data and the Swarm stay, so setup.sh brings everything back.
set -euo pipefail

RUN_DIR="${KARGO_RUN_DIR:-/var/tmp/kargo-run}"
all=""
case "${1:-}" in
  "") ;;
  --all) all=1 ;;
  -h | --help) sed -n '2,6p' "$0"; exit 0 ;;
  *) echo "usage: $0 [--all]" >&2; exit 2 ;;
esac

# stop_pidfile NAME PIDFILE COMM TIMEOUT_S: TERM the process if it is still what the pid
# file says (its /proc comm is COMM, so a reused pid is never hit), wait, then KILL.
stop_pidfile() {
  local name="$1" pidfile="$2" comm="$3" timeout="$4" pid i
  if [[ ! -f "$pidfile" ]]; then
    echo "stop: $name: no pid file ($pidfile), nothing to stop"
    return 0
  fi
  pid="$(cat "$pidfile" 2>/dev/null || true)"
  if ! [[ "$pid" =~ ^[0-9]+$ ]] || [[ "$(cat "/proc/$pid/comm" 2>/dev/null || true)" != "$comm" ]]; then
    echo "stop: $name: not running (stale pid file removed)"
    rm -f "$pidfile"
    return 0
  fi
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < timeout * 10; i++)); do
    [[ -d "/proc/$pid" ]] || break
    sleep 0.1
  done
  if [[ -d "/proc/$pid" ]]; then
    echo "stop: $name: pid $pid still running after ${timeout}s, sending KILL"
    kill -KILL "$pid" 2>/dev/null || true
    sleep 0.5
  fi
  rm -f "$pidfile"
  echo "stop: $name: stopped pid $pid"
}

stop_pidfile controller "$RUN_DIR/controller.pid" kargo 15

[[ -n "$all" ]] || exit 0

if docker info >/dev/null 2>&1; then
  ids="$(docker service ls --filter label=dev.kargo.installation -q)"
  if [[ -n "$ids" ]]; then
    echo "$ids" | xargs -r docker service rm >/dev/null
    echo "stop: removed $(echo "$ids" | wc -l) kargo Swarm service(s)"
  else
    echo "stop: no kargo Swarm services"
  fi
  # Networks, configs and secrets can only go once the tasks using them are gone:
  # retry for up to 30 s.
  for ((i = 0; i < 30; i++)); do
    left=0
    for kind in network config secret; do
      ids="$(docker "$kind" ls --filter label=dev.kargo.installation -q 2>/dev/null || true)"
      [[ -n "$ids" ]] || continue
      echo "$ids" | xargs -r docker "$kind" rm >/dev/null 2>&1 || left=1
    done
    ((left == 0)) && break
    sleep 1
  done
  if ((left == 0)); then
    echo "stop: no kargo networks, configs or secrets left"
  else
    echo "stop: some kargo networks/configs/secrets are still in use, left in place"
  fi
else
  echo "stop: docker not answering, no Swarm objects removed"
fi

stop_pidfile dockerd "$RUN_DIR/dockerd.pid" dockerd 60
stop_pidfile registry "$RUN_DIR/registry.pid" docker-registry 10
stop_pidfile etcd "$RUN_DIR/etcd.pid" etcd 30
