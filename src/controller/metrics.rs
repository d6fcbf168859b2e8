//! `/healthz`, `/readyz` and `/metrics` (Prometheus text) for the controller.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use tracing::{info, warn};

use crate::swarm::{SwarmClient, WriteGuard};

use super::queue::WorkQueue;

/// Counters and gauges the controller keeps.
#[derive(Default)]
pub struct Metrics {
    reconciles_ok: AtomicU64,
    reconciles_failed: AtomicU64,
    duration_micros: AtomicU64,
    synced: AtomicBool,
    etcd_ok: AtomicBool,
    elections: AtomicBool,
    leader_guard: std::sync::Mutex<Option<WriteGuard>>,
    invalid_objects: AtomicU64,
    kept_in_doubt: AtomicU64,
    panics: AtomicU64,
    fenced_writes: AtomicU64,
}

impl Metrics {
    /// Counts one reconcile and its duration.
    pub fn observe(&self, ok: bool, elapsed: std::time::Duration) {
        let counter = if ok {
            &self.reconciles_ok
        } else {
            &self.reconciles_failed
        };
        counter.fetch_add(1, Ordering::Relaxed);
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        self.duration_micros.fetch_add(micros, Ordering::Relaxed);
    }

    /// Whether the cache has listed once and etcd answers.
    pub fn set_synced(&self, synced: bool) {
        self.synced.store(synced, Ordering::Relaxed);
        self.etcd_ok.store(synced, Ordering::Relaxed);
    }

    /// How many values under the registry are not usable objects (skipped, reported).
    pub fn set_invalid_objects(&self, n: usize) {
        self.invalid_objects
            .store(u64::try_from(n).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    /// Counts a Swarm service kept running because the desired state was in doubt.
    pub fn kept_in_doubt(&self) {
        self.kept_in_doubt.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a reconcile that panicked (caught; the worker lives on).
    pub fn panicked(&self) {
        self.panics.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a write etcd refused because this replica no longer leads.
    pub fn fenced(&self) {
        self.fenced_writes.fetch_add(1, Ordering::Relaxed);
    }

    /// Elections are on: leadership is reported from the lease, not assumed.
    pub fn enable_elections(&self) {
        self.elections.store(true, Ordering::Relaxed);
    }

    /// The current leadership check (`None`: not leading).
    pub fn set_leader(&self, guard: Option<WriteGuard>) {
        *self.leader_guard.lock().unwrap_or_else(|e| e.into_inner()) = guard;
    }

    /// Leads now, by this replica's own clock.
    pub fn is_leader(&self) -> bool {
        if !self.elections.load(Ordering::Relaxed) {
            return true;
        }
        self.leader_guard
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .is_some_and(|g| g().is_ok())
    }

    /// Ready to serve: listed once and etcd reachable.
    pub fn is_ready(&self) -> bool {
        self.synced.load(Ordering::Relaxed) && self.etcd_ok.load(Ordering::Relaxed)
    }

    fn render(&self, queue: &WorkQueue, swarm: &SwarmClient) -> String {
        let mut out = String::new();
        let ok = self.reconciles_ok.load(Ordering::Relaxed);
        let failed = self.reconciles_failed.load(Ordering::Relaxed);
        let secs = self.duration_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "# HELP kargo_reconciles_total Reconciles by result.");
        let _ = writeln!(out, "# TYPE kargo_reconciles_total counter");
        let _ = writeln!(out, "kargo_reconciles_total{{result=\"ok\"}} {ok}");
        let _ = writeln!(out, "kargo_reconciles_total{{result=\"error\"}} {failed}");
        let _ = writeln!(
            out,
            "# HELP kargo_reconcile_errors_total Reconciles that failed and were retried."
        );
        let _ = writeln!(out, "# TYPE kargo_reconcile_errors_total counter");
        let _ = writeln!(out, "kargo_reconcile_errors_total {failed}");
        let _ = writeln!(
            out,
            "# HELP kargo_reconcile_duration_seconds Time spent reconciling."
        );
        let _ = writeln!(out, "# TYPE kargo_reconcile_duration_seconds summary");
        let _ = writeln!(out, "kargo_reconcile_duration_seconds_sum {secs}");
        let _ = writeln!(
            out,
            "kargo_reconcile_duration_seconds_count {}",
            ok + failed
        );
        let _ = writeln!(
            out,
            "# HELP kargo_queue_depth Keys waiting to be reconciled."
        );
        let _ = writeln!(out, "# TYPE kargo_queue_depth gauge");
        let _ = writeln!(out, "kargo_queue_depth {}", queue.depth());
        let _ = writeln!(
            out,
            "# HELP kargo_docker_writes_total Docker writes by kind."
        );
        let _ = writeln!(out, "# TYPE kargo_docker_writes_total counter");
        for (kind, n) in swarm.writes() {
            let _ = writeln!(
                out,
                "kargo_docker_writes_total{{kind=\"{}\"}} {n}",
                kind.as_str()
            );
        }
        let _ = writeln!(
            out,
            "# HELP kargo_docker_endpoint 1 for the Docker manager endpoint in use, 0 for the others."
        );
        let _ = writeln!(out, "# TYPE kargo_docker_endpoint gauge");
        let in_use = swarm.endpoint();
        for e in swarm.endpoints() {
            let _ = writeln!(
                out,
                "kargo_docker_endpoint{{endpoint=\"{e}\"}} {}",
                u8::from(e == in_use)
            );
        }
        let _ = writeln!(
            out,
            "# HELP kargo_docker_endpoint_switches_total Moves to another Docker manager endpoint."
        );
        let _ = writeln!(out, "# TYPE kargo_docker_endpoint_switches_total counter");
        let _ = writeln!(
            out,
            "kargo_docker_endpoint_switches_total {}",
            swarm.endpoint_switches()
        );
        let _ = writeln!(
            out,
            "# HELP kargo_leader 1 while this replica leads (by its own clock)."
        );
        let _ = writeln!(out, "# TYPE kargo_leader gauge");
        let _ = writeln!(out, "kargo_leader {}", u8::from(self.is_leader()));
        for (name, help, kind, value) in [
            (
                "kargo_invalid_objects",
                "Values under the registry that are not usable objects (skipped).",
                "gauge",
                &self.invalid_objects,
            ),
            (
                "kargo_kept_in_doubt_total",
                "Swarm services kept running because the desired state was in doubt.",
                "counter",
                &self.kept_in_doubt,
            ),
            (
                "kargo_reconcile_panics_total",
                "Reconciles that panicked (caught; the Stack is Degraded).",
                "counter",
                &self.panics,
            ),
            (
                "kargo_fenced_writes_total",
                "Writes etcd refused because this replica no longer led.",
                "counter",
                &self.fenced_writes,
            ),
        ] {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} {kind}");
            let _ = writeln!(out, "{name} {}", value.load(Ordering::Relaxed));
        }
        out
    }
}

#[derive(Clone)]
struct ServerState {
    metrics: Arc<Metrics>,
    queue: WorkQueue,
    swarm: SwarmClient,
}

/// Serves the endpoints until the task is dropped.
pub async fn serve(addr: SocketAddr, metrics: Arc<Metrics>, queue: WorkQueue, swarm: SwarmClient) {
    let state = ServerState {
        metrics,
        queue,
        swarm,
    };
    let app = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route(
            "/readyz",
            get(|State(s): State<ServerState>| async move {
                let role = if s.metrics.is_leader() {
                    "leader"
                } else {
                    "follower"
                };
                if s.metrics.is_ready() {
                    (StatusCode::OK, format!("ready ({role})\n"))
                } else {
                    (
                        StatusCode::SERVICE_UNAVAILABLE,
                        format!("not ready: etcd unreachable or not listed yet ({role})\n"),
                    )
                }
            }),
        )
        .route(
            "/metrics",
            get(|State(s): State<ServerState>| async move { s.metrics.render(&s.queue, &s.swarm) }),
        )
        .with_state(state);
    match tokio::net::TcpListener::bind(addr).await {
        Ok(listener) => {
            info!(%addr, "serving /healthz, /readyz, /metrics");
            if let Err(e) = axum::serve(listener, app).await {
                warn!(error = %e, "metrics server stopped");
            }
        }
        Err(e) => warn!(%addr, error = %e, "cannot serve metrics"),
    }
}
