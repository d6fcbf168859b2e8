#!/usr/bin/env bash
# Make this machine able to run kargo: install the tools, start etcd and dockerd,
# make a one-node Swarm and build the local test image. Idempotent: every step first
# checks whether its work is already done, so a second run takes about a second.
#
# Environment:
#   KARGO_RUN_DIR   state and logs (default /var/tmp/kargo-run): etcd/ (data), etcd.log,
#                   etcd.pid, dockerd.log, dockerd.pid (pid files only for what we started),
#                   apt.log
#                   registry/ (config.yml, htpasswd, password: the registry's password for
#                   user kargo, data/), registry.log, registry.pid
#   KARGO_DOCKERD_FLAGS  extra dockerd flags (none are needed on the Debian 12 machines
#                   this was written on; e.g. "--iptables=false" elsewhere)
set -euo pipefail

RUN_DIR="${KARGO_RUN_DIR:-/var/tmp/kargo-run}"
ETCD_CLIENT_URL="http://127.0.0.1:2379"
ETCD_PEER_URL="http://127.0.0.1:2380"
ETCD_ENDPOINT="127.0.0.1:2379"
IMAGE="kargo-busybox"
IMAGE_TAGS=(1.0 1.1)
APT_PACKAGES=(protobuf-compiler etcd-server etcd-client docker.io busybox-static docker-registry apache2-utils curl)
# The image registry of the tests and the README's build workflow: distribution 2.8 on
# loopback (dockerd trusts 127.0.0.0/8 over plain HTTP), htpasswd auth, user kargo.
REGISTRY_ADDR="127.0.0.1:5015"
REGISTRY_USER="kargo"

export ETCDCTL_API=3
export DEBIAN_FRONTEND=noninteractive
export NEEDRESTART_SUSPEND=1 # needrestart's apt hook: nothing to restart here
# The docker CLI on these machines (28.x) has no buildx plugin; the engine (20.10) has
# the classic builder, which is all a FROM-scratch image needs.
export DOCKER_BUILDKIT=0

log() { printf 'setup: %s\n' "$*"; }
die() { printf 'setup: ERROR: %s\n' "$*" >&2; exit 1; }

show_log_tail() { # file: what the last start (after the last "=====" marker) logged
  if [[ -f "$1" ]]; then
    printf -- '----- %s (last start, at most 40 lines) -----\n' "$1" >&2
    awk '/^===== /{n=0} {buf[n++]=$0} END{for(i=(n>40?n-40:0);i<n;i++) print buf[i]}' "$1" >&2 || true
    printf -- '-----\n' >&2
  fi
}

pid_alive() { # pidfile name -> 0 if the pid in the file is a live process called name
  local pid
  [[ -f "$1" ]] || return 1
  pid="$(cat "$1" 2>/dev/null || true)"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  [[ -r "/proc/$pid/comm" ]] || return 1
  [[ "$(cat "/proc/$pid/comm" 2>/dev/null)" == "$2" ]]
}

mkdir -p "$RUN_DIR"

# Serialise concurrent runs (e.g. test.sh and example.sh started together).
# Every background child below closes fd 9, so the daemons do not keep the lock.
exec 9>"$RUN_DIR/setup.lock"
if ! flock -w 300 9; then
  die "another setup.sh holds $RUN_DIR/setup.lock for more than 300 s"
fi

# --- 1. packages -------------------------------------------------------------------
missing=()
for p in "${APT_PACKAGES[@]}"; do
  if [[ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)" != "install ok installed" ]]; then
    missing+=("$p")
  fi
done
if ((${#missing[@]} == 0)); then
  log "packages: already installed (${APT_PACKAGES[*]})"
else
  [[ "$(id -u)" == 0 ]] || die "packages missing (${missing[*]}) and not root"
  log "packages: installing ${missing[*]}"
  # No service may be started by the packages' maintainer scripts: this script
  # starts etcd and dockerd itself, with its own flags, data dirs and logs.
  created_policy=""
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    created_policy=1
  fi
  apt_rc=0
  {
    apt-get update -q &&
      apt-get install -y -q "${missing[@]}" # with Recommends, as verified (cgroupfs-mount, ...)
  } >"$RUN_DIR/apt.log" 2>&1 9>&- || apt_rc=$?
  if [[ -n "$created_policy" ]]; then rm -f /usr/sbin/policy-rc.d; fi
  if ((apt_rc != 0)); then
    show_log_tail "$RUN_DIR/apt.log"
    die "apt-get failed (exit $apt_rc)"
  fi
  log "packages: installed ${missing[*]}"
fi
for c in protoc etcd etcdctl dockerd docker; do
  command -v "$c" >/dev/null || die "'$c' not on PATH after installing packages"
done
[[ -x /bin/busybox ]] || die "/bin/busybox missing (package busybox-static)"

# --- 2. etcd -------------------------------------------------------------------------
etcd_healthy() {
  etcdctl --endpoints="$ETCD_ENDPOINT" --dial-timeout=2s --command-timeout=3s \
    endpoint health >/dev/null 2>&1
}

if etcd_healthy; then
  log "etcd: already healthy on $ETCD_ENDPOINT"
else
  if pid_alive "$RUN_DIR/etcd.pid" etcd; then
    log "etcd: pid $(cat "$RUN_DIR/etcd.pid") is running but not healthy yet; waiting"
  else
    mkdir -p "$RUN_DIR/etcd"
    chmod 700 "$RUN_DIR/etcd"
    printf '===== %s setup.sh starting etcd =====\n' "$(date -Is)" >>"$RUN_DIR/etcd.log"
    # The child writes its own pid (then execs etcd), so the pid file is right
    # whether or not setsid had to fork.
    setsid nohup sh -c 'echo $$ >"$1"; shift; exec "$@"' sh "$RUN_DIR/etcd.pid" \
      etcd --name kargo \
      --data-dir "$RUN_DIR/etcd" \
      --listen-client-urls "$ETCD_CLIENT_URL" \
      --advertise-client-urls "$ETCD_CLIENT_URL" \
      --listen-peer-urls "$ETCD_PEER_URL" \
      --initial-advertise-peer-urls "$ETCD_PEER_URL" \
      --initial-cluster "kargo=$ETCD_PEER_URL" \
      </dev/null >>"$RUN_DIR/etcd.log" 2>&1 9>&- &
    sleep 0.2
    log "etcd: started pid $(cat "$RUN_DIR/etcd.pid" 2>/dev/null || echo '?'), data $RUN_DIR/etcd, log $RUN_DIR/etcd.log"
  fi
  deadline=$((SECONDS + 30))
  while ((SECONDS < deadline)); do
    etcd_healthy && break
    if ((SECONDS > deadline - 28)) && ! pid_alive "$RUN_DIR/etcd.pid" etcd; then
      sleep 0.5 # it exited: one last look, then stop waiting
      break
    fi
    sleep 0.5
  done
  if ! etcd_healthy; then
    show_log_tail "$RUN_DIR/etcd.log"
    if pid_alive "$RUN_DIR/etcd.pid" etcd; then
      die "etcd did not become healthy on $ETCD_ENDPOINT within 30 s"
    fi
    die "etcd exited (log: $RUN_DIR/etcd.log)"
  fi
  log "etcd: healthy on $ETCD_ENDPOINT"
fi

# --- 3. dockerd ----------------------------------------------------------------------
docker_up() { docker info >/dev/null 2>&1; }
# The machine's main dockerd only: the one serving /var/run/docker.pid (other dockerd,
# e.g. the multi-node test's nodes in their own namespaces, have their own pid files).
main_dockerd_pid() {
  local pid
  pid="$(cat /var/run/docker.pid 2>/dev/null || true)"
  [[ "$pid" =~ ^[0-9]+$ && "$(cat "/proc/$pid/comm" 2>/dev/null)" == dockerd ]] && echo "$pid"
}

if docker_up; then
  log "dockerd: already running ($(docker version --format '{{.Server.Version}}' 2>/dev/null))"
else
  if pid_alive "$RUN_DIR/dockerd.pid" dockerd; then
    log "dockerd: pid $(cat "$RUN_DIR/dockerd.pid") is running but not answering yet; waiting"
  elif [[ -n "$(main_dockerd_pid)" ]]; then
    log "dockerd: a dockerd not started by this script is running (pid $(main_dockerd_pid)); waiting for it"
  else
    # A dockerd that died without cleaning up leaves its pid file, and then
    # refuses to start ("pid file found, ensure docker is not running").
    if [[ -f /var/run/docker.pid ]]; then
      oldpid="$(cat /var/run/docker.pid 2>/dev/null || true)"
      if [[ -z "$oldpid" || ! -d "/proc/$oldpid" ]]; then
        rm -f /var/run/docker.pid
      fi
    fi
    printf '===== %s setup.sh starting dockerd =====\n' "$(date -Is)" >>"$RUN_DIR/dockerd.log"
    setsid nohup sh -c 'echo $$ >"$1"; shift; exec "$@"' sh "$RUN_DIR/dockerd.pid" \
      dockerd ${KARGO_DOCKERD_FLAGS:-} \
      </dev/null >>"$RUN_DIR/dockerd.log" 2>&1 9>&- &
    sleep 0.2
    log "dockerd: started pid $(cat "$RUN_DIR/dockerd.pid" 2>/dev/null || echo '?'), log $RUN_DIR/dockerd.log"
  fi
  deadline=$((SECONDS + 60))
  while ((SECONDS < deadline)); do
    docker_up && break
    if ((SECONDS > deadline - 58)) && ! pid_alive "$RUN_DIR/dockerd.pid" dockerd && [[ -z "$(main_dockerd_pid)" ]]; then
      sleep 0.5 # it exited: one last look, then stop waiting
      break
    fi
    sleep 0.5
  done
  if ! docker_up; then
    show_log_tail "$RUN_DIR/dockerd.log"
    if pid_alive "$RUN_DIR/dockerd.pid" dockerd || [[ -n "$(main_dockerd_pid)" ]]; then
      die "dockerd did not answer 'docker info' within 60 s"
    fi
    die "dockerd exited (log: $RUN_DIR/dockerd.log)"
  fi
  log "dockerd: up ($(docker version --format '{{.Server.Version}}' 2>/dev/null))"
fi

# --- 4. swarm ------------------------------------------------------------------------
swarm_state() { docker info --format '{{.Swarm.LocalNodeState}}' 2>/dev/null || true; }
state="$(swarm_state)"
if [[ "$state" == active ]]; then
  log "swarm: already active"
else
  if [[ "$state" != inactive ]]; then
    log "swarm: node state is '$state'; leaving before init"
    docker swarm leave --force >/dev/null 2>&1 || true
  fi
  docker swarm init --advertise-addr 127.0.0.1 >/dev/null
  for ((i = 0; i < 40; i++)); do
    [[ "$(swarm_state)" == active ]] && break
    sleep 0.5
  done
  [[ "$(swarm_state)" == active ]] || die "swarm init did not make the node active (state: $(swarm_state))"
  log "swarm: initialised one-node swarm (advertise 127.0.0.1)"
fi

# --- 5. test image -------------------------------------------------------------------
have_image() { docker image inspect "$1" >/dev/null 2>&1; }
if have_image "$IMAGE:${IMAGE_TAGS[0]}"; then
  log "image: $IMAGE:${IMAGE_TAGS[0]} already present"
else
  ctx="$(mktemp -d)"
  trap 'rm -rf "$ctx"' EXIT
  cp /bin/busybox "$ctx/busybox"
  cat >"$ctx/Dockerfile" <<'EOF'
FROM scratch
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
RUN ["/bin/busybox", "mkdir", "-m", "1777", "/tmp"]
LABEL dev.kargo.test-image="busybox-static"
EOF
  if ! build_out="$(docker build -q -t "$IMAGE:${IMAGE_TAGS[0]}" "$ctx" 2>&1)"; then
    printf '%s\n' "$build_out" >&2
    die "docker build of $IMAGE:${IMAGE_TAGS[0]} failed"
  fi
  rm -rf "$ctx"
  trap - EXIT
  log "image: built $IMAGE:${IMAGE_TAGS[0]} from /bin/busybox (busybox-static)"
fi
for t in "${IMAGE_TAGS[@]:1}"; do
  if ! have_image "$IMAGE:$t" ||
    [[ "$(docker image inspect -f '{{.Id}}' "$IMAGE:$t")" != "$(docker image inspect -f '{{.Id}}' "$IMAGE:${IMAGE_TAGS[0]}")" ]]; then
    docker tag "$IMAGE:${IMAGE_TAGS[0]}" "$IMAGE:$t"
    log "image: tagged $IMAGE:$t (same image as ${IMAGE_TAGS[0]})"
  else
    log "image: $IMAGE:$t already present"
  fi
done
# Cheap (~0.3 s) and catches a broken container runtime before any test does.
out="$(docker run --rm "$IMAGE:${IMAGE_TAGS[0]}" echo ok 2>&1 || true)"
[[ "$out" == ok ]] || die "'docker run --rm $IMAGE:${IMAGE_TAGS[0]} echo ok' printed: $out"
log "image: 'docker run --rm $IMAGE:${IMAGE_TAGS[0]} echo ok' works"

# --- 6. node tools for the tests ------------------------------------------------------
# yaml-language-server (tests/lsp.rs drives it over LSP) and ajv-cli (bench/validate.sh),
# pinned by tests/lsp/package-lock.json. Reinstalled only when the lock file is newer than
# what npm last installed.
NODE_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/tests/lsp"
if [[ -f "$NODE_DIR/node_modules/.package-lock.json" &&
  ! "$NODE_DIR/package-lock.json" -nt "$NODE_DIR/node_modules/.package-lock.json" &&
  -f "$NODE_DIR/node_modules/yaml-language-server/bin/yaml-language-server" ]]; then
  log "node tools: already installed in $NODE_DIR/node_modules"
else
  command -v npm >/dev/null || die "npm is not on PATH (Node.js 20 is needed for the editor tests)"
  log "node tools: npm ci in $NODE_DIR"
  if ! npm ci --prefix "$NODE_DIR" --no-audit --no-fund >"$RUN_DIR/npm.log" 2>&1 9>&-; then
    show_log_tail "$RUN_DIR/npm.log"
    die "npm ci --prefix $NODE_DIR failed (log: $RUN_DIR/npm.log)"
  fi
  log "node tools: installed ($(node --version), yaml-language-server, ajv-cli)"
fi

# --- 7. image registry --------------------------------------------------------------
registry_up() { # 401 without credentials: up, and asking for them
  [[ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://$REGISTRY_ADDR/v2/" || true)" == 401 ]]
}
REG_DIR="$RUN_DIR/registry"
if registry_up; then
  log "registry: already up on $REGISTRY_ADDR"
else
  mkdir -p "$REG_DIR/data"
  chmod 700 "$REG_DIR"
  if [[ ! -s "$REG_DIR/password" ]]; then
    (umask 077 && head -c 18 /dev/urandom | base64 | tr -d '/+=' >"$REG_DIR/password")
  fi
  htpasswd -Bbc "$REG_DIR/htpasswd" "$REGISTRY_USER" "$(cat "$REG_DIR/password")" 2>/dev/null
  cat >"$REG_DIR/config.yml" <<YAML
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $REG_DIR/data
  delete:
    enabled: true
http:
  addr: $REGISTRY_ADDR
auth:
  htpasswd:
    realm: kargo-registry
    path: $REG_DIR/htpasswd
YAML
  pid_alive "$RUN_DIR/registry.pid" docker-registry && kill "$(cat "$RUN_DIR/registry.pid")" 2>/dev/null || true
  printf '===== %s setup.sh starting the registry =====\n' "$(date -Is)" >>"$RUN_DIR/registry.log"
  setsid nohup sh -c 'echo $$ >"$1"; shift; exec "$@"' sh "$RUN_DIR/registry.pid" \
    docker-registry serve "$REG_DIR/config.yml" </dev/null >>"$RUN_DIR/registry.log" 2>&1 9>&- &
  deadline=$((SECONDS + 15))
  until registry_up; do
    if ((SECONDS > deadline)); then
      show_log_tail "$RUN_DIR/registry.log"
      die "the registry did not answer on http://$REGISTRY_ADDR/v2/ within 15 s"
    fi
    sleep 0.2
  done
  log "registry: started on $REGISTRY_ADDR (user $REGISTRY_USER, password in $REG_DIR/password, log $RUN_DIR/registry.log)"
fi

log "ready: etcd $ETCD_ENDPOINT, docker $(docker version --format '{{.Server.Version}}' 2>/dev/null) (swarm active), image $IMAGE:${IMAGE_TAGS[*]}, registry $REGISTRY_ADDR, logs in $RUN_DIR"
