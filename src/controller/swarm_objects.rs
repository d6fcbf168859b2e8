//! The Swarm objects besides services: content-named configs and secrets, and node labels.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;
use tracing::{debug, info};

use crate::api::Kind;
use crate::swarm::names::INSTALLATION_LABEL;

use super::ControllerError;
use super::events::EventType;
use super::reconcile::Reconciler;
use crate::plan::{Plan, PlannedStack, Snapshot};

impl Reconciler<'_> {
    /// Creates the Swarm configs and secrets this stack's services mount (content-named,
    /// so a changed file is a new object) and records their IDs in `ids`.
    pub(super) async fn ensure_files(
        &self,
        plan: &Plan,
        stack: &PlannedStack,
        ids: &mut BTreeMap<String, String>,
    ) -> Result<(), ControllerError> {
        let wanted: BTreeSet<(String, bool)> = stack
            .services
            .iter()
            .filter_map(|p| p.desired.as_ref().ok())
            .flat_map(|d| file_refs(&d.spec))
            .collect();
        if wanted.is_empty() {
            return Ok(());
        }
        for secret in [false, true] {
            let existing = self.swarm.list_files(self.installation(), secret).await?;
            for (name, _) in wanted.iter().filter(|(_, s)| *s == secret) {
                let id = match existing.iter().find(|f| &f.name == name) {
                    Some(f) => f.id.clone(),
                    None => {
                        let Some(file) = plan.files.values().find(|f| &f.swarm_name == name) else {
                            continue;
                        };
                        let labels = BTreeMap::from([(
                            INSTALLATION_LABEL.to_string(),
                            self.installation().to_string(),
                        )]);
                        let id = self
                            .swarm
                            .create_file(name, file.content.as_bytes(), &labels, secret)
                            .await?;
                        let what = if secret { "secret" } else { "config" };
                        self.events
                            .record(
                                Kind::Stack,
                                &stack.name,
                                EventType::Normal,
                                "Created",
                                &format!("created Swarm {what} {name}"),
                                self.fence,
                            )
                            .await;
                        id
                    }
                };
                let prefix = if secret { "secret:" } else { "config:" };
                ids.insert(format!("{prefix}{name}"), id);
            }
        }
        Ok(())
    }

    /// Removes configs and secrets of this installation that no desired service mounts;
    /// one still in use (a service not moved yet) stays until a later pass.
    pub(super) async fn collect_files(&self, plan: &Plan) -> Result<(), ControllerError> {
        let wanted: BTreeSet<String> = plan
            .stacks
            .iter()
            .flat_map(|s| s.services.iter())
            .filter_map(|p| p.desired.as_ref().ok())
            .flat_map(|d| file_refs(&d.spec).into_iter().map(|(n, _)| n))
            .collect();
        for secret in [false, true] {
            for f in self.swarm.list_files(self.installation(), secret).await? {
                if wanted.contains(&f.name) {
                    continue;
                }
                match self.swarm.remove_file(&f.id, secret).await {
                    Ok(()) => info!(name = %f.name, "removed unused Swarm config/secret"),
                    Err(e) => {
                        debug!(name = %f.name, error = %e, "config/secret still in use; later")
                    }
                }
            }
        }
        Ok(())
    }

    /// Keeps the labels of the nodes the Environment in force names exactly as declared
    /// (adds missing, removes extra); nodes it does not name are left alone.
    pub(super) async fn sync_node_labels(
        &self,
        snapshot: &Snapshot,
        plan: &Plan,
    ) -> Result<(), ControllerError> {
        let Some(env) = plan
            .environment
            .as_ref()
            .and_then(|e| snapshot.environments.get(e))
        else {
            return Ok(());
        };
        if env.spec.nodes.is_empty() {
            return Ok(());
        }
        for node in self.swarm.nodes().await? {
            let Some(want) = env.spec.nodes.get(&node.hostname) else {
                continue;
            };
            if node.labels != want.labels {
                self.swarm.set_node_labels(&node.id, &want.labels).await?;
                info!(node = %node.hostname, "node labels set as the Environment declares");
            }
        }
        Ok(())
    }
}

/// Swarm config and secret names a rendered spec refers to: (name, is_secret).
pub(super) fn file_refs(spec: &Value) -> Vec<(String, bool)> {
    let mut out = Vec::new();
    for (list, key, secret) in [
        ("/TaskTemplate/ContainerSpec/Configs", "ConfigName", false),
        ("/TaskTemplate/ContainerSpec/Secrets", "SecretName", true),
    ] {
        for r in spec
            .pointer(list)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(n) = r.get(key).and_then(Value::as_str) {
                out.push((n.to_string(), secret));
            }
        }
    }
    out
}
