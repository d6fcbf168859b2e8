//! The Swarm objects besides services: content-named configs and secrets, the
//! installation's networks once unused, and node labels.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};
use tracing::{debug, info};

use crate::api::Kind;
use crate::api::conditions::reasons;
use crate::swarm::names::{
    INSTALLATION_LABEL, NODE_LABELS_RECORD_PREFIX, SPEC_HASH_LABEL, node_labels_record,
};
use crate::swarm::{DesiredService, LiveService, hash_json};

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

    /// Removes configs and secrets of this installation that no desired service mounts
    /// and no `live` service of the installation mounts (one not moved yet, or one that
    /// keeps a config by its earlier name): those stay until a later pass.
    pub(super) async fn collect_files(
        &self,
        plan: &Plan,
        live: &[LiveService],
    ) -> Result<(), ControllerError> {
        let wanted: BTreeSet<String> = plan
            .stacks
            .iter()
            .flat_map(|s| s.services.iter())
            .filter_map(|p| p.desired.as_ref().ok())
            .map(|d| &d.spec)
            .chain(live.iter().map(|l| &l.spec))
            .flat_map(|spec| file_refs(spec).into_iter().map(|(n, _)| n))
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
            let (want, taken) = not_taken(&node.labels, want, &record);
            for (key, other) in taken {
                self.events
                    .record_once(
                        Kind::Environment,
                        env.name(),
                        crate::controller::events::EventType::Warning,
                        reasons::OWNED_BY_ANOTHER_INSTALLATION,
                        &format!(
                            "node {}: label {key} is set by another kargo installation (its record {other}); not overwritten",
                            node.hostname
                        ),
                        self.fence,
                    )
                    .await;
            }
            let next = next_node_labels(&node.labels, &want, &record);
            if next != node.labels {
                self.swarm.set_node_labels(&node.id, &next).await?;
                info!(node = %node.hostname, "node labels set as the Environment declares");
            }
        }
        Ok(())
    }
}

/// The labels of `want` this installation may write on a node: not those another
/// installation's record lists with another value (they are its to set and remove); the
/// others are returned with that installation's record label. A label this installation
/// recorded itself stays its own.
pub(super) fn not_taken(
    current: &BTreeMap<String, String>,
    want: &BTreeMap<String, String>,
    record: &str,
) -> (BTreeMap<String, String>, Vec<(String, String)>) {
    let listed = |r: &str, key: &str| {
        current
            .get(r)
            .is_some_and(|v| v.split(',').any(|k| k == key))
    };
    let mut free = BTreeMap::new();
    let mut taken = Vec::new();
    for (k, v) in want {
        let other = current
            .keys()
            .filter(|r| r.starts_with(NODE_LABELS_RECORD_PREFIX) && r.as_str() != record)
            .find(|r| listed(r, k));
        match other {
            Some(o) if !listed(record, k) && current.get(k) != Some(v) => {
                taken.push((k.clone(), o.clone()));
            }
            Some(_) if !listed(record, k) => {}
            _ => {
                free.insert(k.clone(), v.clone());
            }
        }
    }
    (free, taken)
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

/// The stack with each config a live service still mounts by its earlier name
/// ([`crate::plan::PlannedFile::previous_name`], same content) kept at that name in the
/// desired spec, so upgrading kargo rolls no service: the new name applies to new and
/// changed configs only.
pub(super) fn keep_previous_file_names<'a>(
    plan: &Plan,
    stack: &'a PlannedStack,
    live: &BTreeMap<String, LiveService>,
) -> Cow<'a, PlannedStack> {
    let renames: Vec<(&str, &str)> = plan
        .files
        .values()
        .filter_map(|f| Some((f.swarm_name.as_str(), f.previous_name.as_deref()?)))
        .filter(|(new, old)| new != old)
        .collect();
    if renames.is_empty() {
        return Cow::Borrowed(stack);
    }
    let mut out = Cow::Borrowed(stack);
    for (i, p) in stack.services.iter().enumerate() {
        let Ok(desired) = &p.desired else {
            continue;
        };
        let Some(l) = live.get(&desired.name) else {
            continue;
        };
        let mounted: BTreeSet<String> = file_refs(&l.spec)
            .into_iter()
            .filter(|(_, secret)| !secret)
            .map(|(n, _)| n)
            .collect();
        let here: BTreeMap<&str, &str> = renames
            .iter()
            .filter(|(_, old)| mounted.contains(*old))
            .copied()
            .collect();
        if here.is_empty() {
            continue;
        }
        let kept = renamed_configs(desired, &here);
        if let Some(p) = out.to_mut().services.get_mut(i) {
            p.desired = Ok(kept);
        }
    }
    out
}

/// `desired` with its config references renamed (`new` → `old`) and its hash recomputed.
fn renamed_configs(desired: &DesiredService, renames: &BTreeMap<&str, &str>) -> DesiredService {
    let mut d = desired.clone();
    if let Some(refs) = d
        .spec
        .pointer_mut("/TaskTemplate/ContainerSpec/Configs")
        .and_then(Value::as_array_mut)
    {
        for r in refs {
            let old = r
                .get("ConfigName")
                .and_then(Value::as_str)
                .and_then(|n| renames.get(n));
            if let (Some(old), Some(obj)) = (old, r.as_object_mut()) {
                obj.insert("ConfigName".into(), json!(old));
            }
        }
    }
    if let Some(labels) = d.spec.get_mut("Labels").and_then(Value::as_object_mut) {
        labels.remove(SPEC_HASH_LABEL);
    }
    d.hash = hash_json(&d.spec);
    if let Some(labels) = d.spec.get_mut("Labels").and_then(Value::as_object_mut) {
        labels.insert(SPEC_HASH_LABEL.into(), json!(d.hash));
    }
    d
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

    #[test]
    fn a_config_mounted_by_its_earlier_name_keeps_it_so_an_upgrade_rolls_nothing() {
        use crate::api::DynamicObject;
        use crate::swarm::names::{config_name, content_name};
        let objects = vec![
            DynamicObject::new(
                Kind::Configuration,
                "main",
                json!({"defaults": "none", "files": {"app.conf": {"content": "x=1"}}}),
            ),
            DynamicObject::new(Kind::Stack, "s", json!({"services": ["a"]})),
            DynamicObject::new(
                Kind::Service,
                "a",
                json!({"image": "busybox:1", "configs": [{"file": "app.conf"}]}),
            ),
        ];
        let snapshot = crate::plan::Snapshot::from_objects(&objects);
        let plan = crate::plan::plan(&snapshot, "main", "/kargo", &|_| None);
        let stack = &plan.stacks[0];
        let Ok(desired) = &stack.services[0].desired else {
            panic!("rendered");
        };
        let (new, old) = (
            config_name("/kargo", "app.conf", "x=1"),
            content_name("app.conf", "x=1"),
        );
        assert_eq!(file_refs(&desired.spec), vec![(new, false)]);
        // What an earlier kargo deployed: the same spec under the content-only name.
        let mut ctx = crate::swarm::RenderContext::new("/kargo");
        ctx.files.insert("app.conf".into(), old.clone());
        let before = crate::swarm::render_service(&ctx, "s", "a", &snapshot.services["a"].spec)
            .expect("render");
        let live = BTreeMap::from([(
            desired.name.clone(),
            LiveService {
                id: "id".into(),
                name: desired.name.clone(),
                version: 1,
                spec: before.spec.clone(),
                labels: BTreeMap::new(),
                update_state: None,
                update_message: None,
            },
        )]);
        let kept = keep_previous_file_names(&plan, stack, &live);
        let Ok(kept) = &kept.services[0].desired else {
            panic!("rendered");
        };
        assert_eq!(kept.spec, before.spec);
        assert_eq!(kept.hash, before.hash, "same hash: no update, no roll");
        // No live service by that name (a new one): the new name.
        assert!(matches!(
            keep_previous_file_names(&plan, stack, &BTreeMap::new()),
            Cow::Borrowed(_)
        ));
    }

    #[test]
    fn node_labels_another_installation_set_are_left_to_it() {
        let record = "dev.kargo.labels.abc";
        let theirs = "dev.kargo.labels.other";
        let node = labels(&[(theirs, "rack,zone"), ("rack", "r1"), ("zone", "a")]);
        let (free, taken) = not_taken(
            &node,
            &labels(&[("rack", "r2"), ("zone", "a"), ("db", "yes")]),
            record,
        );
        // Ours to write: only the key nobody else recorded; the same value is no conflict.
        assert_eq!(free, labels(&[("db", "yes")]));
        assert_eq!(taken, vec![("rack".to_string(), theirs.to_string())]);
        let next = next_node_labels(&node, &free, record);
        assert_eq!(next.get("rack").map(String::as_str), Some("r1"));
        assert_eq!(next.get(record).map(String::as_str), Some("db"));
        // A label this installation recorded itself stays its own.
        let shared = labels(&[(theirs, "rack"), (record, "rack"), ("rack", "r1")]);
        let (free, taken) = not_taken(&shared, &labels(&[("rack", "r2")]), record);
        assert_eq!((free, taken), (labels(&[("rack", "r2")]), vec![]));
    }
}
