//! The Swarm objects besides services: content-named configs and secrets, the
//! installation's networks once unused, and node labels.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;
use tracing::{debug, info};

use crate::api::Kind;
use crate::swarm::names::{INSTALLATION_LABEL, node_labels_record};

use super::ControllerError;
use super::events::EventType;
use super::reconcile::Reconciler;
use crate::plan::{Plan, PlannedStack, Snapshot};

impl Reconciler<'_> {
    /// Creates the Swarm configs and secrets this stack's services mount (content-named,
    /// so a changed file is a new object) and records their IDs in `ids`. A sealed file's
    /// content was opened in memory by the plan; it goes to Docker and nowhere else (no
    /// log, event or error holds it), and its name is an HMAC that says nothing of it.
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
                        // A sealed file the plan could not open has no content to give.
                        let Some(file) = plan
                            .files
                            .values()
                            .find(|f| &f.swarm_name == name && !f.unopened)
                        else {
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

    /// Removes the networks this installation created (labelled as its own) that no
    /// desired service attaches and no live service of the installation uses, as `docker
    /// stack rm` removes a stack's networks. The caller runs it only when the desired state
    /// is beyond doubt; a network something else still uses (a service of another
    /// installation, a container) is refused by the engine and stays until a later pass.
    /// A network kargo found and did not create carries no label of ours and is never touched.
    pub(super) async fn collect_networks(&self, plan: &Plan) -> Result<(), ControllerError> {
        let wanted: BTreeSet<&String> = plan
            .stacks
            .iter()
            .flat_map(|s| s.services.iter())
            .filter_map(|p| p.desired.as_ref().ok())
            .flat_map(|d| d.networks.iter())
            .collect();
        let unwanted: Vec<(String, String)> = self
            .swarm
            .list_networks(self.installation())
            .await?
            .into_iter()
            .filter(|(_, name)| !wanted.contains(name))
            .collect();
        if unwanted.is_empty() {
            return Ok(());
        }
        let live = self.swarm.list_services(self.installation()).await?;
        for (id, name) in unwanted {
            if live.iter().any(|l| attaches(&l.spec, &id, &name)) {
                continue;
            }
            match self.swarm.remove_network(&id).await {
                Ok(()) => info!(%name, "removed unused Swarm network"),
                Err(e) => debug!(%name, error = %e, "network still in use; later"),
            }
        }
        Ok(())
    }

    /// Keeps on each node the labels the Environment in force declares for it, and removes
    /// the labels this installation set earlier and no longer declares (a node dropped
    /// from the Environment loses them too). Which labels it set is recorded on the node
    /// itself ([`node_labels_record`]), so labels set by hand or by another installation
    /// are never removed; a declared label overrides a hand-set value of the same key and
    /// is from then on the installation's. Changes nothing while the desired state is in
    /// doubt or no Environment is in force.
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
        if plan.doubt.is_some() {
            return Ok(());
        }
        let record = node_labels_record(self.installation());
        let nothing = BTreeMap::new();
        for node in self.swarm.nodes().await? {
            let want = env
                .spec
                .nodes
                .get(&node.hostname)
                .map_or(&nothing, |n| &n.labels);
            let next = next_node_labels(&node.labels, want, &record);
            if next != node.labels {
                self.swarm.set_node_labels(&node.id, &next).await?;
                info!(node = %node.hostname, "node labels set as the Environment declares");
            }
        }
        Ok(())
    }
}

/// A node's labels once `want` is applied: the labels recorded in `record` as set by this
/// installation and no longer wanted are removed, the wanted ones set, the record updated
/// (dropped when nothing is wanted); every other label is kept as it is.
pub(super) fn next_node_labels(
    current: &BTreeMap<String, String>,
    want: &BTreeMap<String, String>,
    record: &str,
) -> BTreeMap<String, String> {
    let mut next = current.clone();
    let set_before: BTreeSet<&str> = current
        .get(record)
        .map(|v| v.split(',').filter(|k| !k.is_empty()).collect())
        .unwrap_or_default();
    for key in set_before {
        if !want.contains_key(key) {
            next.remove(key);
        }
    }
    next.remove(record);
    for (k, v) in want {
        next.insert(k.clone(), v.clone());
    }
    if !want.is_empty() {
        let keys: Vec<&str> = want.keys().map(String::as_str).collect();
        next.insert(record.to_string(), keys.join(","));
    }
    next
}

/// Whether a service spec attaches the network of this ID or name.
fn attaches(spec: &Value, id: &str, name: &str) -> bool {
    spec.pointer("/TaskTemplate/Networks")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|n| n.get("Target").and_then(Value::as_str))
        .any(|t| t == id || t == name)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn node_labels_removes_only_what_the_installation_set() {
        let record = "dev.kargo.labels.abc";
        // First sync: the hand-set label stays, ours are set and recorded.
        let first = next_node_labels(
            &labels(&[("by-hand", "1")]),
            &labels(&[("zone", "a"), ("db", "yes")]),
            record,
        );
        assert_eq!(
            first,
            labels(&[
                ("by-hand", "1"),
                ("db", "yes"),
                ("zone", "a"),
                (record, "db,zone")
            ])
        );
        // One label dropped, one changed: only ours move.
        let second = next_node_labels(&first, &labels(&[("zone", "b")]), record);
        assert_eq!(
            second,
            labels(&[("by-hand", "1"), ("zone", "b"), (record, "zone")])
        );
        // The node no longer named: every label we set goes, with the record.
        let third = next_node_labels(&second, &BTreeMap::new(), record);
        assert_eq!(third, labels(&[("by-hand", "1")]));
        // Another installation's record and labels are not ours.
        let other = labels(&[("dev.kargo.labels.other", "rack"), ("rack", "r1")]);
        assert_eq!(next_node_labels(&other, &BTreeMap::new(), record), other);
    }
}
