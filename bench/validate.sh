#!/usr/bin/env bash
# Throughput of `kargo validate` against ajv-cli on the same documents and the same
# umbrella schema (schemas/kargo.json), each in one invocation over the whole corpus.
#
#   bench/validate.sh [DOCUMENTS]      # default 10000
#
# The corpus is generated into a temporary folder: one document per file (ajv-cli reads
# only single-document YAML files), 60% Services, 20% Stacks, 10% Environments and 10%
# Configurations, all valid, and shaped like the example workspace. The tools take turns,
# five runs each (RUNS=N to change); the fastest run of each counts. Needs the release build (built here) and ajv-cli
# (tests/lsp/node_modules, installed by scripts/setup.sh). KEEP_CORPUS=1 keeps the
# generated folder (for profiling: perf record ./target/release/kargo validate -f DIR).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
N="${1:-10000}"
AJV="$ROOT/tests/lsp/node_modules/.bin/ajv"
KARGO="$ROOT/target/release/kargo"
SCHEMA="$ROOT/schemas/kargo.json"

[[ -x "$AJV" ]] || { echo "ajv-cli missing: run scripts/setup.sh (npm ci --prefix tests/lsp)" >&2; exit 2; }
(cd "$ROOT" && cargo build --release --quiet --bin kargo)

DIR="$(mktemp -d)"
trap '[[ -n "${KEEP_CORPUS:-}" ]] || rm -rf "$DIR"' EXIT

awk -v n="$N" -v dir="$DIR" 'BEGIN {
  for (i = 0; i < n; i++) {
    f = sprintf("%s/doc-%05d.yaml", dir, i)
    k = i % 10
    print "# yaml-language-server: $schema=../schemas/kargo.json" > f
    print "apiVersion: kargo.dev/v1alpha1" > f
    if (k < 6) {
      print "kind: Service\nmetadata:\n  name: svc-" i "\n  labels:\n    tier: backend" > f
      print "spec:\n  image: \"kargo-busybox:1.0\"\n  command: [\"sh\", \"-c\"]" > f
      print "  args: [\"while true; do echo ok | nc -l -p 7000; done\"]" > f
      print "  env:\n    SITE: example\n    LOG_LEVEL: info\n  networks: [front, back]\n  endpointMode: dnsrr" > f
      print "  ports:\n    - target: 8080\n      published: " (10000 + i % 50000) "\n      mode: host" > f
      print "  volumes:\n    - type: volume\n      source: data\n      target: /data" > f
      print "  healthcheck:\n    test: [\"CMD\", \"true\"]\n    interval: 5s\n    timeout: 2s\n    retries: 3" > f
      print "  deploy:\n    replicas: 2\n    placement:\n      constraints: [\"node.role==worker\"]" > f
      print "    resources:\n      limits:\n        cpus: \"0.25\"\n        memory: 32M" > f
      print "    restartPolicy:\n      condition: on-failure\n      delay: 2s" > f
      print "    updateConfig:\n      parallelism: 1\n      order: stop-first" > f
    } else if (k < 8) {
      print "kind: Stack\nmetadata:\n  name: stack-" i "\nspec:\n  services:" > f
      print "    - svc-" (i - k) "\n    - svc-" (i - k + 1) "\n    - redis\n  rollback: auto" > f
    } else if (k == 8) {
      print "kind: Environment\nmetadata:\n  name: env-" i "\nspec:\n  variables:\n    DOMAIN: example.test" > f
      print "    SUBDOMAIN: kargo.${DOMAIN}\n  stacks:\n    - stack-" (i - 2) "\n  rollout: ordered" > f
      print "  services:\n    svc-" (i - 8) ":\n      replicas: 2\n      tag: \"1.10\"" > f
    } else {
      print "kind: Configuration\nmetadata:\n  name: cfg-" i "\nspec:\n  environment: env-" (i - 1) "\n  defaults: builtin" > f
      print "  files:\n    app.conf:\n      content: |\n        listen 8080\n        root /www\n      template: true" > f
    }
    close(f)
  }
}'

# The corpus was just written: flush it to disk and read it once, so neither tool's timing
# includes writeback of the new files or the first read's access-time updates.
sync
cat "$DIR"/doc-*.yaml >/dev/null

calc() { awk "BEGIN { printf \"%.6f\", $1 }"; }

RUNS="${RUNS:-5}"
# Both tools run in the corpus folder and name the files relative to it.
run_ajv() { (cd "$DIR" && "$AJV" validate --spec=draft7 --strict=true -s "$SCHEMA" -d 'doc-*.yaml'); }
run_kargo() { (cd "$DIR" && "$KARGO" validate -f .); }

seconds() { # command... -> wall seconds of one run (the command must succeed)
  local start end
  # EPOCHREALTIME (bash 5) reads the clock without starting a process, unlike `date`.
  start=$EPOCHREALTIME
  "$@" >/dev/null 2>&1 || { echo "failed: $*" >&2; "$@" 2>&1 | tail -5 >&2; exit 1; }
  end=$EPOCHREALTIME
  calc "$end - $start"
}

# The tools take turns, RUNS times each, so a busy moment of the machine hits both; the
# fastest run of each counts.
k="" a=""
for _ in $(seq "$RUNS"); do
  t=$(seconds run_kargo)
  if [[ -z "$k" ]] || [[ $(calc "$t < $k") == 1.000000 ]]; then k=$t; fi
  t=$(seconds run_ajv)
  if [[ -z "$a" ]] || [[ $(calc "$t < $a") == 1.000000 ]]; then a=$t; fi
done
printf '%-40s %9s %13s\n' "$N documents, $(nproc) cores" "seconds" "documents/s"
printf '%-40s %9.3f %13.0f\n' "kargo validate" "$k" "$(calc "$N / $k")"
printf '%-40s %9.3f %13.0f\n' "ajv-cli 5.0.0 (draft7, --strict)" "$a" "$(calc "$N / $a")"
printf 'kargo validate: %.1fx the throughput of ajv-cli\n' "$(calc "$a / $k")"
