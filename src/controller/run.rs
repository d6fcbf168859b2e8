//! The controller's main loop: triggers (etcd watch, periodic resync, requeue while
//! converging) and one reconcile pass at a time.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use serde_json::Value;
use tokio::sync::Notify;
use tracing::{debug, info, warn};

use crate::api::DynamicObject;
use crate::store::{Store, WatchEvent};
use crate::swarm::SwarmClient;

use super::ControllerError;
use super::reconcile::{PassReport, Reconciler};

/// How the controller behaves.
#[derive(Clone, Debug)]
pub struct ControllerOptions {
    /// The Configuration in force.
    pub configuration: String,
    /// Full resync period: catches what no event shows (task state, hand changes).
    pub resync: Duration,
    /// How soon to look again while something is converging.
    pub requeue: Duration,
}

impl Default for ControllerOptions {
    fn default() -> Self {
        ControllerOptions {
            configuration: "main".into(),
            resync: Duration::from_secs(30),
            requeue: Duration::from_secs(2),
        }
    }
}

/// Looks up a default catalog entry's spec by name.
pub type Catalog = dyn Fn(&str) -> Option<Value> + Send + Sync;

/// The operator: owns a store and a Docker client and reconciles until told to stop.
pub struct Controller {
    store: Store,
    swarm: SwarmClient,
    options: ControllerOptions,
    catalog: Box<Catalog>,
}

impl Controller {
    /// A controller over these clients, using the built-in default catalog.
    pub fn new(store: Store, swarm: SwarmClient, options: ControllerOptions) -> Self {
        Controller {
            store,
            swarm,
            options,
            catalog: Box::new(crate::manifest::catalog_spec),
        }
    }

    /// The Docker client (its write counter tells what the controller did).
    pub fn swarm(&self) -> &SwarmClient {
        &self.swarm
    }

    /// One full reconcile pass.
    pub async fn pass(&self) -> Result<PassReport, ControllerError> {
        Reconciler {
            store: &self.store,
            swarm: &self.swarm,
            configuration: &self.options.configuration,
            fence: None,
            catalog: &*self.catalog,
        }
        .pass()
        .await
    }

    /// Reconciles until `shutdown` resolves; a pass in flight finishes first.
    pub async fn run(
        &self,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> Result<(), ControllerError> {
        let changed = Arc::new(Notify::new());
        let watcher = tokio::spawn(watch_changes(self.store.clone(), changed.clone()));
        tokio::pin!(shutdown);
        let mut failures = 0u32;
        loop {
            let wait = match self.pass().await {
                Ok(report) => {
                    failures = 0;
                    if report.docker_writes + report.etcd_writes > 0 {
                        info!(
                            docker_writes = report.docker_writes,
                            etcd_writes = report.etcd_writes,
                            all_ready = report.all_ready,
                            "reconciled"
                        );
                    } else {
                        debug!(all_ready = report.all_ready, "reconciled: nothing to do");
                    }
                    if report.all_ready {
                        self.options.resync
                    } else {
                        self.options.requeue
                    }
                }
                Err(e) => {
                    failures = failures.saturating_add(1);
                    let backoff =
                        Duration::from_millis(500u64.saturating_mul(1 << failures.min(6)))
                            .min(Duration::from_secs(30));
                    warn!(error = %e, retry_in = ?backoff, "reconcile failed");
                    backoff
                }
            };
            tokio::select! {
                _ = &mut shutdown => break,
                _ = changed.notified() => {
                    // Let a burst of writes (an apply of many objects) settle into one pass.
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                _ = tokio::time::sleep(wait) => {}
            }
        }
        watcher.abort();
        info!("controller stopped");
        Ok(())
    }
}

/// What of an object makes a pass worth running: everything but status and resourceVersion.
fn fingerprint(o: &DynamicObject) -> String {
    let mut o = o.clone();
    o.status = None;
    o.metadata.resource_version = None;
    serde_json::to_string(&o).unwrap_or_default()
}

/// Lists, then watches from the list's revision + 1; notifies on changes other than
/// status writes (the controller's own). Relists after a compaction or a lost watch.
async fn watch_changes(store: Store, changed: Arc<Notify>) {
    loop {
        let list = match store.list_all().await {
            Ok(l) => l,
            Err(e) => {
                warn!(error = %e, "listing objects failed; retrying");
                tokio::time::sleep(Duration::from_secs(2)).await;
                continue;
            }
        };
        let mut seen: BTreeMap<String, String> = list
            .items
            .iter()
            .map(|o| (o.reference(), fingerprint(o)))
            .collect();
        let mut stream = match store.watch(list.revision + 1).await {
            Ok(s) => s,
            Err(e) => {
                warn!(error = %e, "watching objects failed; retrying");
                tokio::time::sleep(Duration::from_secs(2)).await;
                continue;
            }
        };
        changed.notify_one();
        while let Some(ev) = stream.next().await {
            match ev {
                Ok(WatchEvent::Applied(o)) => {
                    let fp = fingerprint(&o);
                    if seen.insert(o.reference(), fp.clone()).as_ref() != Some(&fp) {
                        changed.notify_one();
                    }
                }
                Ok(WatchEvent::Deleted { kind, name, .. }) => {
                    seen.remove(&format!("{}/{}", kind.singular(), name));
                    changed.notify_one();
                }
                Ok(WatchEvent::Compacted(rev)) => {
                    info!(
                        compact_revision = rev,
                        "watch fell behind compaction; relisting"
                    );
                    break;
                }
                Err(e) => {
                    warn!(error = %e, "watch lost; relisting");
                    break;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
