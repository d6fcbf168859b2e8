#!/usr/bin/env bash
# Benchmark (issue 12): the controller at scale. 200 Stacks × 10 Services, every Stack
# `suspend: true` (Swarm has nothing to do for them), plus 50 running one-replica
# services of the local image in 5 Stacks that are not suspended: 2,050 Services and
# 205 Stacks, applied into an etcd prefix of their own, with `kargo controller` at its
# default settings (resync 30s; only --metrics-addr added, to read its counters).
#
#   bench/scale.sh
#
# It prints:
#   - kargo apply of all the manifests: wall time
#   - controller start → every Stack's status.observedGeneration = metadata.generation
#   - controller start → the 50 running services Ready
#   - one full resync of the converged Stacks: CPU seconds (utime + stime of the
#     controller) and wall time, from the first reconcile of the resync until the queue
#     is empty again and kargo_reconciles_total grew by at least every Stack + 1
#   - CPU seconds over 60 s of idling with the default resync (two resyncs in it), with
#     the reconciles and the Swarm network/config/secret/node events of that minute (such
#     an event, whoever caused it, queues the Stacks with services in Swarm — here the
#     running ones — so other users of the Swarm count)
#   - the controller's resident memory (VmRSS) and its peak (VmHWM)
#
# Environment:
#   KARGO_BIN=PATH      the kargo binary to measure (default: cargo build --release here)
#   SIDE_BY_SIDE=N      also N running one-replica services, kargo apply → Ready with the
#                       controller above still running, against `docker stack deploy
#                       --detach=false` of the same services (as bench/deploy.sh);
#                       default 0 (off): docker takes ~5.7 s a service here, 100 is ~10 min
#   STACKS=200 SERVICES_PER_STACK=10 RUNNING_STACKS=5 RUNNING_PER_STACK=10
#   SCALE_METRICS_ADDR=127.0.0.1:9479
# It uses only the etcd prefix /kargo-scalebench, the Swarm objects labelled with that
# installation and the compose stack scalebench-compose; it removes them before it starts
# (a run that was cut short) and on exit. Needs scripts/setup.sh's machine.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
"$ROOT/scripts/setup.sh" >/dev/null
if [[ -n "${KARGO_BIN:-}" ]]; then
  KARGO="$KARGO_BIN"
else
  cargo build --release -q --bin kargo
  KARGO="$ROOT/target/release/kargo"
fi
[[ -x "$KARGO" ]] || { echo "no kargo binary at $KARGO" >&2; exit 2; }

STACKS="${STACKS:-200}"
PER_STACK="${SERVICES_PER_STACK:-10}"
RUNNING_STACKS="${RUNNING_STACKS:-5}"
RUNNING_PER_STACK="${RUNNING_PER_STACK:-10}"
SIDE="${SIDE_BY_SIDE:-0}"
METRICS_ADDR="${SCALE_METRICS_ADDR:-127.0.0.1:9479}"
export KARGO_ETCD_ENDPOINTS="${KARGO_ETCD_ENDPOINTS:-127.0.0.1:2379}"
export KARGO_PREFIX=/kargo-scalebench
unset KARGO_CONFIGURATION KARGO_METRICS_ADDR
INSTALLATION="label=dev.kargo.installation=$KARGO_PREFIX"
COMPOSE_STACK=scalebench-compose
ALL_STACKS=$((STACKS + RUNNING_STACKS))
HZ=$(getconf CLK_TCK)

WORK="$(mktemp -d)"
CTL_PID=""
etcd() { ETCDCTL_API=3 etcdctl --endpoints="$KARGO_ETCD_ENDPOINTS" "$@"; }

wait_gone() { # docker object kind, filter: until none of them remains (at most 2 minutes)
  for _ in $(seq 1 120); do
    [[ -z "$(docker "$1" ls -q --filter "$2")" ]] && return 0
    sleep 1
  done
  echo "warning: $1 objects with $2 still there after 2 minutes" >&2
}

cleanup_state() { # everything of this benchmark, nothing else
  if [[ -n "$CTL_PID" ]]; then
    kill "$CTL_PID" 2>/dev/null || true
    wait "$CTL_PID" 2>/dev/null || true
    CTL_PID=""
  fi
  docker stack rm "$COMPOSE_STACK" >/dev/null 2>&1 || true
  docker service ls -q --filter "$INSTALLATION" | xargs -r docker service rm >/dev/null 2>&1 || true
  wait_gone service "label=com.docker.stack.namespace=$COMPOSE_STACK"
  wait_gone service "$INSTALLATION"
  # Networks are free once the services' tasks are gone; Docker refuses while in use.
  for _ in $(seq 1 30); do
    [[ -z "$(docker network ls -q --filter "$INSTALLATION")" ]] && break
    docker network ls -q --filter "$INSTALLATION" | xargs -r docker network rm >/dev/null 2>&1 || sleep 1
  done
  for kind in config secret; do
    docker "$kind" ls -q --filter "$INSTALLATION" | xargs -r docker "$kind" rm >/dev/null 2>&1 || true
  done
  etcd del --prefix "$KARGO_PREFIX/" >/dev/null
}
cleanup() {
  cleanup_state || true
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

calc() { awk "BEGIN { printf \"%.3f\", $1 }"; }
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$CTL_PID/stat"; }
metric() { # name of a kargo metric -> its value (summed over labels), empty when unreachable
  curl -fsS --max-time 2 "http://$METRICS_ADDR/metrics" 2>/dev/null |
    awk -v m="$1" '$1 == m || index($1, m "{") == 1 { s += $2; found = 1 } END { if (found) print s }'
}
status_kb() { awk -v k="$1:" '$1 == k { print $2 }' "/proc/$CTL_PID/status"; }
controller_alive() {
  kill -0 "$CTL_PID" 2>/dev/null || { echo "controller exited; its log:" >&2; tail -20 "$WORK/controller.log" >&2; exit 1; }
}
stacks_observed() { # how many of this run's Stacks have observedGeneration = generation
  etcd get --prefix "$KARGO_PREFIX/registry/kargo.dev/stacks/" --print-value-only |
    jq -s '[.[] | select(.status.observedGeneration != null
                         and .status.observedGeneration == .metadata.generation)] | length'
}

service_doc() { # name
  printf -- '---\napiVersion: kargo.dev/v1alpha1\nkind: Service\nmetadata: {name: %s}\nspec:\n  image: "kargo-busybox:1.0"\n  command: ["sh", "-c", "while true; do sleep 1; done"]\n  endpointMode: dnsrr\n  deploy: {replicas: 1}\n' "$1"
}
stack_doc() { # name, suspend (true|false), service names...
  local name=$1 suspend=$2
  shift 2
  printf -- '---\napiVersion: kargo.dev/v1alpha1\nkind: Stack\nmetadata: {name: %s}\nspec:\n' "$name"
  [[ "$suspend" == true ]] && printf '  suspend: true\n'
  printf '  services: [%s]\n' "$(IFS=,; echo "$*")"
}
write_stacks() { # stack name prefix, count, services per stack, suspend -> manifests on stdout
  local prefix=$1 count=$2 per=$3 suspend=$4 s i names
  for s in $(seq -w 1 "$count"); do
    names=()
    for i in $(seq 1 "$per"); do
      names+=("$prefix$s-s$i")
      service_doc "$prefix$s-s$i"
    done
    stack_doc "$prefix$s" "$suspend" "${names[@]}"
  done
}

cleanup_state
write_stacks scb-idle- "$STACKS" "$PER_STACK" true >"$WORK/suspended.yaml"
write_stacks scb-run- "$RUNNING_STACKS" "$RUNNING_PER_STACK" false >"$WORK/running.yaml"
cat "$WORK/suspended.yaml" "$WORK/running.yaml" >"$WORK/all.yaml"
services=$((STACKS * PER_STACK + RUNNING_STACKS * RUNNING_PER_STACK))

# 1. apply, no controller running (the registry's write path alone)
t0=$EPOCHREALTIME
"$KARGO" apply -f "$WORK/all.yaml" >/dev/null
apply_secs=$(calc "$EPOCHREALTIME - $t0")

# 2. controller start → every Stack observed; → the running services Ready
t0=$EPOCHREALTIME
"$KARGO" controller --metrics-addr "$METRICS_ADDR" >"$WORK/controller.log" 2>&1 &
CTL_PID=$!
observed_secs=""
for _ in $(seq 1 3000); do # 0.1 s apart: at most 5 minutes
  controller_alive
  if [[ "$(stacks_observed)" -ge "$ALL_STACKS" ]]; then
    observed_secs=$(calc "$EPOCHREALTIME - $t0")
    break
  fi
  sleep 0.1
done
[[ -n "$observed_secs" ]] || { echo "not every Stack observed after 5 minutes" >&2; exit 1; }
for s in $(seq -w 1 "$RUNNING_STACKS"); do
  "$KARGO" wait "stack/scb-run-$s" --for=condition=Ready --timeout=600s >/dev/null
done
ready_secs=$(calc "$EPOCHREALTIME - $t0")

# 3. converged: the queue empty and no reconcile for 2 s (a build whose queue never
# drains goes on after about 2 minutes; the resync below then shows it)
quiet=0
for _ in $(seq 1 240); do
  controller_alive
  before=$(metric kargo_reconciles_total)
  sleep 0.5
  if [[ "$(metric kargo_queue_depth)" == 0 && "$(metric kargo_reconciles_total)" == "$before" ]]; then
    quiet=$((quiet + 1))
    [[ $quiet -ge 4 ]] && break
  else
    quiet=0
  fi
done

# 4. one full resync: from the last sample before kargo_reconciles_total moves until it
# grew by every Stack + the installation key and the queue is empty again. A stray
# reconcile (a Docker event) that stops short of that for 1 s starts the watch over.
prev_total=$(metric kargo_reconciles_total) prev_cpu=$(cpu_ticks) prev_t=$EPOCHREALTIME
start_total="" resync_cpu="" resync_wall=""
for _ in $(seq 1 1500); do # 0.05 s apart, plus the samples' own time: well over 75 s
  sleep 0.05
  controller_alive
  total=$(metric kargo_reconciles_total) cpu=$(cpu_ticks) t=$EPOCHREALTIME
  if [[ "$total" != "$prev_total" ]]; then
    [[ -n "$start_total" ]] || { start_total=$prev_total start_cpu=$prev_cpu start_t=$prev_t; }
    moved_t=$t
  fi
  if [[ -n "$start_total" ]]; then
    if ((total - start_total >= ALL_STACKS + 1)) && [[ "$(metric kargo_queue_depth)" == 0 ]]; then
      resync_cpu=$(calc "($(cpu_ticks) - $start_cpu) / $HZ")
      resync_wall=$(calc "$EPOCHREALTIME - $start_t")
      resync_count=$((total - start_total))
      break
    fi
    if [[ $(calc "($t - $moved_t > 1)") == 1.000 && "$(metric kargo_queue_depth)" == 0 ]]; then
      start_total="" # a stray reconcile, not a resync
    fi
  fi
  prev_total=$total prev_cpu=$cpu prev_t=$t
done
[[ -n "$resync_cpu" ]] || { echo "no full resync seen within 75 s" >&2; exit 1; }

# 5. idle: 60 s with the default resync, nothing applied
# The controller queues the Stacks with services in Swarm on a network, config, secret or
# node event, whoever caused it: count them, since other users of the Swarm add to this figure.
timeout 60 docker events --format '{{.Type}}' --filter type=network --filter type=config \
  --filter type=secret --filter type=node >"$WORK/idle-events" 2>/dev/null &
events_pid=$!
c0=$(cpu_ticks) r0=$(metric kargo_reconciles_total)
sleep 60
controller_alive
idle_cpu=$(calc "($(cpu_ticks) - $c0) / $HZ")
idle_reconciles=$(($(metric kargo_reconciles_total) - r0))
wait "$events_pid" 2>/dev/null || true
idle_events=$(wc -l <"$WORK/idle-events")
rss=$(status_kb VmRSS) hwm=$(status_kb VmHWM)
reconciles=$(metric kargo_reconciles_total)
reconcile_secs=$(metric kargo_reconcile_duration_seconds_sum)

# 6. optional: N running services, kargo (controller above, still running) vs docker
side_kargo="" side_docker=""
if ((SIDE > 0)); then
  {
    echo 'version: "3.8"'
    echo 'services:'
    for i in $(seq 1 "$SIDE"); do
      printf '  s%d:\n    image: kargo-busybox:1.0\n    command: ["sh", "-c", "while true; do sleep 1; done"]\n    deploy: {replicas: 1, endpoint_mode: dnsrr}\n' "$i"
    done
  } >"$WORK/compose.yml"
  write_stacks scb-side- 1 "$SIDE" false >"$WORK/side.yaml"
  t0=$EPOCHREALTIME
  docker stack deploy --detach=false -c "$WORK/compose.yml" "$COMPOSE_STACK" >/dev/null 2>&1
  side_docker=$(calc "$EPOCHREALTIME - $t0")
  docker stack rm "$COMPOSE_STACK" >/dev/null
  wait_gone service "label=com.docker.stack.namespace=$COMPOSE_STACK"
  t0=$EPOCHREALTIME
  "$KARGO" apply -f "$WORK/side.yaml" >/dev/null
  "$KARGO" wait stack/scb-side-1 --for=condition=Ready --timeout=1200s >/dev/null
  side_kargo=$(calc "$EPOCHREALTIME - $t0")
fi

mb() { awk "BEGIN { printf \"%.1f\", $1 / 1024 }"; }
running=$((RUNNING_STACKS * RUNNING_PER_STACK))
printf '%s Services in %s Stacks (%s suspended × %s; %s running in %s Stacks), %s cores, resync 30s, %s\n\n' \
  "$services" "$ALL_STACKS" "$STACKS" "$PER_STACK" "$running" "$RUNNING_STACKS" "$(nproc)" "$KARGO"
echo "| figure | value | goal |"
echo "| --- | --- | --- |"
echo "| kargo apply of all (wall) | $apply_secs s | — |"
echo "| controller start → every Stack observed | $observed_secs s | < 5 s |"
echo "| controller start → $running running services Ready | $ready_secs s | — |"
echo "| one full resync, converged: CPU ($resync_count reconciles, $resync_wall s wall) | $resync_cpu s | < 0.5 s |"
echo "| 60 s idle, default resync: CPU ($idle_reconciles reconciles; $idle_events Swarm network/config/secret/node events) | $idle_cpu s | < 1.5 s |"
echo "| controller RSS (VmRSS; peak VmHWM) | $(mb "$rss") MB (peak $(mb "$hwm") MB) | < 50 MB |"
echo "| controller totals at the end | $reconciles reconciles, $reconcile_secs s in reconcile | — |"
if ((SIDE > 0)); then
  echo "| $SIDE running services, apply → Ready (at scale) | $side_kargo s | docker stack deploy --detach=false: $side_docker s (kargo $(calc "$side_kargo / $side_docker")×; goal ≤ 0.1×) |"
fi
