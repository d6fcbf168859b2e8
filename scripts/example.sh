#!/usr/bin/env bash
# The main job: set the machine up, build kargo, apply the example workspace in
# manifests/, run the controller in the background and wait until every Stack and
# Service is Ready. The controller is left running; scripts/stop.sh stops it.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export KARGO_RUN_DIR="${KARGO_RUN_DIR:-/var/tmp/kargo-run}"
export KARGO_ETCD_ENDPOINTS="${KARGO_ETCD_ENDPOINTS:-127.0.0.1:2379}"
RUN_DIR="$KARGO_RUN_DIR"
KARGO="$ROOT/target/release/kargo"
PIDFILE="$RUN_DIR/controller.pid"
LOG="$RUN_DIR/controller.log"

step() { printf '\n==> %s\n' "$*"; }

step "setting the machine up (scripts/setup.sh)"
"$ROOT/scripts/setup.sh"

step "cargo build --release"
cargo build --release

step "kargo apply -f manifests/"
"$KARGO" apply -f manifests/

# --- controller ------------------------------------------------------------------
step "starting the controller"
"$ROOT/scripts/stop.sh" # stops a controller left by a previous run (no-op otherwise)
mkdir -p "$RUN_DIR"
printf '===== %s example.sh starting the controller =====\n' "$(date -Is)" >>"$LOG"
# The child writes its own pid and execs the controller, so the pid file names the
# controller itself. All fds are redirected so the caller's pipes are not held open.
setsid nohup sh -c 'echo $$ >"$1"; shift; exec "$@"' sh "$PIDFILE" \
  "$KARGO" controller </dev/null >>"$LOG" 2>&1 &
sleep 1
pid="$(cat "$PIDFILE" 2>/dev/null || true)"
if [[ -z "$pid" || ! -d "/proc/$pid" ]]; then
  tail -n 60 "$LOG" >&2 || true
  echo "example: the controller exited at once (log: $LOG)" >&2
  exit 1
fi
echo "controller running: pid $pid, log $LOG"

# --- wait ------------------------------------------------------------------------
fail() {
  printf -- '\n----- last 60 lines of %s -----\n' "$LOG" >&2
  tail -n 60 "$LOG" >&2 || true
  printf -- '-----\n' >&2
  "$KARGO" get stacks >&2 || true
  "$KARGO" get services >&2 || true
  echo "example: $*" >&2
  exit 1
}

step "waiting for every Stack to be Ready"
"$KARGO" wait stack --all --for=condition=Ready --timeout=300s || fail "Stacks not Ready"
step "waiting for every Service to be Ready"
"$KARGO" wait service --all --for=condition=Ready --timeout=300s || fail "Services not Ready"

step "kargo get stacks"
"$KARGO" get stacks
step "kargo get services"
"$KARGO" get services
step "docker stack ls"
docker stack ls

printf '\nAll Ready. The controller keeps running (pid %s, log %s); scripts/stop.sh stops it.\n' \
  "$pid" "$LOG"
