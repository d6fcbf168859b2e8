#!/usr/bin/env bash
# The test command (CI runs it through .ci/run): set the machine up (etcd, a one-node
# Swarm, the local test image), build everything, run every test.
# Extra arguments go to `cargo test`, e.g. `scripts/test.sh store` or
# `scripts/test.sh --test swarm -- --nocapture`.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

"$ROOT/scripts/setup.sh"

export KARGO_ETCD_ENDPOINTS="${KARGO_ETCD_ENDPOINTS:-127.0.0.1:2379}"
export KARGO_TEST_IMAGE="${KARGO_TEST_IMAGE:-kargo-busybox}"
# Same as `cargo test -- --test-threads=4`, but leaves the command line free for
# the caller's own `-- ...` arguments.
export RUST_TEST_THREADS="${RUST_TEST_THREADS:-4}"

echo "==> cargo build --all-targets"
cargo build --all-targets
echo "==> cargo test $* (RUST_TEST_THREADS=$RUST_TEST_THREADS)"
exec cargo test "$@"
