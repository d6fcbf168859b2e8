//! An in-memory Swarm that behaves like a one-node Swarm for what kargo looks at: services
//! with IDs, versions, specs and labels; tasks that run the current spec; networks;
//! configs and secrets refused removal while in use; one node with labels; an event
//! stream; and the write counter by kind, as [`SwarmClient`](super::SwarmClient) keeps it.
//!
//! What it models of the engine (checked against the real one by the shared contract
//! suite): the spec goes through bollard's model (so an unknown field is refused the same
//! way), the engine adds defaults kargo never sets, and `HealthCheck` reads back as absent.
//! Tasks settle at once unless held ([`FakeSwarm::hold_tasks`]); an image named absent
//! ([`FakeSwarm::missing_image`]) makes tasks rejected with "No such image", and an update
//! to it pauses, rolls back or continues as the spec's `UpdateConfig.FailureAction` says.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use futures::StreamExt;
use futures::channel::mpsc::{UnboundedSender, unbounded};
use futures::stream::BoxStream;
use serde_json::{Value, json};

use crate::registry::Credentials;
use crate::registry::resolve::{Resolution, without_digest};

use super::api::Swarm;
use super::docker::{
    LiveService, SwarmClient, SwarmError, SwarmEvent, TaskInfo, WriteGuard, WriteKind,
};
use super::names::INSTALLATION_LABEL;
use super::objects::{FileObject, NetworkOptions, NodeInfo};

/// The node ID of the fake's one node.
pub const FAKE_NODE_ID: &str = "fakenode00000000000000001";
/// The hostname of the fake's one node.
pub const FAKE_NODE_HOSTNAME: &str = "fake-node";

/// A client of an in-memory Swarm. Clones share the engine and the write counter;
/// [`FakeSwarm::client`] is another client of the same engine (a person at the Docker
/// CLI), with a counter of its own.
#[derive(Clone)]
pub struct FakeSwarm {
    engine: Arc<Mutex<Engine>>,
    writes: Arc<Mutex<BTreeMap<WriteKind, u64>>>,
    guard: Option<WriteGuard>,
}

#[derive(Default)]
struct Engine {
    /// Raft-like index: every change takes the next one (service versions are indexes).
    index: u64,
    services: BTreeMap<String, FakeService>,
    networks: BTreeMap<String, (String, BTreeMap<String, String>)>,
    /// How each network was created, by name.
    network_options: BTreeMap<String, NetworkOptions>,
    files: Vec<FakeFile>,
    nodes: Vec<NodeInfo>,
    missing_images: BTreeSet<String>,
    /// What a registry answers for an image; any other is unreachable.
    registry: BTreeMap<String, Resolution>,
    /// Images asked of a registry, in order.
    resolved: Vec<String>,
    /// The registry auth each service write carried: (Swarm name, credentials).
    auths: Vec<(String, Option<Credentials>)>,
    hold: bool,
    unavailable: Option<String>,
    subscribers: Vec<UnboundedSender<Result<SwarmEvent, SwarmError>>>,
}

struct FakeService {
    id: String,
    version: u64,
    spec: Value,
    previous_spec: Option<Value>,
    update_state: Option<String>,
    update_message: Option<String>,
    /// A task-template change is rolling out (settles with the tasks).
    updating: bool,
    tasks: Vec<TaskInfo>,
}

struct FakeFile {
    id: String,
    name: String,
    labels: BTreeMap<String, String>,
    secret: bool,
}

impl Default for FakeSwarm {
    fn default() -> Self {
        Self::new()
    }
}

impl FakeSwarm {
    /// An empty one-node Swarm where every image exists.
    pub fn new() -> Self {
        let engine = Engine {
            index: 10,
            nodes: vec![NodeInfo {
                id: FAKE_NODE_ID.into(),
                hostname: FAKE_NODE_HOSTNAME.into(),
                labels: BTreeMap::new(),
                state: "ready".into(),
                availability: "active".into(),
                role: "manager".into(),
            }],
            ..Engine::default()
        };
        FakeSwarm {
            engine: Arc::new(Mutex::new(engine)),
            writes: Arc::default(),
            guard: None,
        }
    }

    /// Another client of the same Swarm, with its own write counter (hand changes).
    pub fn client(&self) -> FakeSwarm {
        FakeSwarm {
            engine: self.engine.clone(),
            writes: Arc::default(),
            guard: None,
        }
    }

    /// Makes `image` absent from the node: its tasks are rejected with "No such image".
    pub fn missing_image(&self, image: &str) {
        self.engine().missing_images.insert(image.to_string());
    }

    /// What the registry answers when asked for `image`'s digest (by default every
    /// registry is unreachable, as for the local images of a machine without internet).
    pub fn registry_answers(&self, image: &str, answer: Resolution) {
        self.engine().registry.insert(image.to_string(), answer);
    }

    /// The images asked of a registry so far, in order.
    pub fn resolved_images(&self) -> Vec<String> {
        self.engine().resolved.clone()
    }

    /// The registry auth each service create or update carried, in order: (Swarm name,
    /// credentials).
    pub fn registry_auths(&self) -> Vec<(String, Option<Credentials>)> {
        self.engine().auths.clone()
    }

    /// While held, new tasks stay `pending` and updates stay `updating`; releasing
    /// settles them (running, complete, or rejected).
    pub fn hold_tasks(&self, hold: bool) {
        let mut e = self.engine();
        e.hold = hold;
        if !hold {
            let ids: Vec<String> = e.services.keys().cloned().collect();
            for id in ids {
                e.settle(&id);
            }
        }
    }

    /// Sets a service's UpdateStatus as Swarm would after its own decision.
    pub fn set_update_state(&self, name_or_id: &str, state: &str, message: &str) {
        let mut e = self.engine();
        if let Some(id) = e.find(name_or_id) {
            e.bump();
            if let Some(s) = e.services.get_mut(&id) {
                s.update_state = Some(state.to_string());
                s.update_message = Some(message.to_string());
                let name = service_name(&s.spec);
                e.emit_with_id("service", "update", &name, Some(&id));
            }
        }
    }

    /// The running tasks of a service fail with `error` (a crash, an OOM kill).
    pub fn fail_tasks(&self, name_or_id: &str, error: &str) {
        let mut e = self.engine();
        let now = e.bump();
        let mut failed = Vec::new();
        if let Some(s) = e.find(name_or_id).and_then(|id| e.services.get_mut(&id)) {
            for t in s.tasks.iter_mut().filter(|t| t.state == "running") {
                t.state = "failed".into();
                t.error = Some(error.to_string());
                t.timestamp = Some(timestamp(now));
                failed.push((t.id.clone(), s.id.clone()));
            }
        }
        // As the engine reports it: a `die` of the task's container, naming its service.
        for (task, service) in failed {
            let event = SwarmEvent {
                kind: "container".into(),
                action: "die".into(),
                name: Some(task),
                id: None,
                service: Some(service),
            };
            e.subscribers
                .retain(|s| s.unbounded_send(Ok(event.clone())).is_ok());
        }
    }

    /// Every call fails as if the daemon were unreachable (`None`: reachable again).
    pub fn set_unavailable(&self, message: Option<&str>) {
        self.engine().unavailable = message.map(str::to_string);
    }

    /// Ends every event stream, as a daemon restart does.
    pub fn close_event_streams(&self) {
        self.engine().subscribers.clear();
    }

    /// Whether a Swarm network of this name exists.
    pub fn has_network(&self, name: &str) -> bool {
        self.engine().networks.contains_key(name)
    }

    /// How the network of this name was created, if it exists.
    pub fn network_options(&self, name: &str) -> Option<NetworkOptions> {
        self.engine().network_options.get(name).cloned()
    }

    fn engine(&self) -> MutexGuard<'_, Engine> {
        self.engine.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The engine, unless it is "unreachable".
    fn reach(&self) -> Result<MutexGuard<'_, Engine>, SwarmError> {
        let e = self.engine();
        match &e.unavailable {
            Some(message) => Err(SwarmError::Unavailable {
                host: "fake".into(),
                message: message.clone(),
            }),
            None => Ok(e),
        }
    }

    /// Asks the guard, then counts the write (as `SwarmClient::count`).
    fn count(&self, kind: WriteKind) -> Result<(), SwarmError> {
        if let Some(guard) = &self.guard {
            guard().map_err(|reason| SwarmError::Refused {
                operation: kind.as_str().to_string(),
                reason,
            })?;
        }
        let mut w = self.writes.lock().unwrap_or_else(|e| e.into_inner());
        *w.entry(kind).or_default() += 1;
        Ok(())
    }
}

fn api(operation: String, status: u16, message: String) -> SwarmError {
    SwarmError::Api {
        operation,
        status: Some(status),
        message,
    }
}

/// A task timestamp that sorts with the engine's index (RFC 3339, as the engine's).
fn timestamp(index: u64) -> String {
    let base = chrono::DateTime::<chrono::Utc>::from_timestamp(1_700_000_000, 0)
        .unwrap_or_default()
        + chrono::Duration::milliseconds(i64::try_from(index).unwrap_or(0));
    base.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn labels_of(spec: &Value) -> BTreeMap<String, String> {
    spec.get("Labels")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

fn image_of(spec: &Value) -> String {
    spec.pointer("/TaskTemplate/ContainerSpec/Image")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

/// How many tasks a spec wants, and whether they run to completion.
fn wanted_tasks(spec: &Value) -> (u64, bool) {
    let mode = spec.get("Mode").cloned().unwrap_or(Value::Null);
    if let Some(r) = mode.get("Replicated") {
        (
            r.get("Replicas").and_then(Value::as_u64).unwrap_or(1),
            false,
        )
    } else if let Some(j) = mode.get("ReplicatedJob") {
        let n = j.get("TotalCompletions").and_then(Value::as_u64);
        (n.unwrap_or(1), true)
    } else {
        // Global modes: one task on the one node.
        (1, mode.get("GlobalJob").is_some())
    }
}

fn is_global(spec: &Value) -> bool {
    spec.pointer("/Mode/Global").is_some() || spec.pointer("/Mode/GlobalJob").is_some()
}

impl Engine {
    fn bump(&mut self) -> u64 {
        self.index += 1;
        self.index
    }

    fn next_id(&mut self, kind: char) -> String {
        let n = self.bump();
        format!("{kind}{n:024}")
    }

    fn emit(&mut self, kind: &str, action: &str, name: &str) {
        self.emit_with_id(kind, action, name, None);
    }

    /// As the engine reports a service: with its ID (and no labels).
    fn emit_with_id(&mut self, kind: &str, action: &str, name: &str, id: Option<&str>) {
        let event = SwarmEvent {
            kind: kind.to_string(),
            action: action.to_string(),
            name: Some(name.to_string()),
            id: id.map(str::to_string),
            service: None,
        };
        self.subscribers
            .retain(|s| s.unbounded_send(Ok(event.clone())).is_ok());
    }

    /// A service's ID by ID or name.
    fn find(&self, name_or_id: &str) -> Option<String> {
        if self.services.contains_key(name_or_id) {
            return Some(name_or_id.to_string());
        }
        self.services
            .values()
            .find(|s| s.spec.get("Name").and_then(Value::as_str) == Some(name_or_id))
            .map(|s| s.id.clone())
    }

    fn live(&self, s: &FakeService) -> LiveService {
        LiveService {
            id: s.id.clone(),
            name: s
                .spec
                .get("Name")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
            version: s.version,
            spec: s.spec.clone(),
            labels: labels_of(&s.spec),
            update_state: s.update_state.clone(),
            update_message: s.update_message.clone(),
        }
    }

    /// What the engine stores for a spec: bollard's model (refusing what it would cut),
    /// names resolved to IDs, the engine's defaults added, `HealthCheck` unreadable.
    fn store_spec(&self, operation: &str, name: &str, spec: &Value) -> Result<Value, SwarmError> {
        let model = SwarmClient::to_model(name, spec)?;
        let mut stored = serde_json::to_value(&model).map_err(|e| SwarmError::InvalidSpec {
            name: name.to_string(),
            message: e.to_string(),
        })?;
        let operation = format!("{operation} service {name}");
        if let Some(nets) = stored
            .pointer_mut("/TaskTemplate/Networks")
            .and_then(Value::as_array_mut)
        {
            for n in nets {
                let Some(target) = n.get_mut("Target") else {
                    continue;
                };
                let t = target.as_str().unwrap_or_default().to_string();
                if let Some((id, _)) = self.networks.get(&t) {
                    *target = Value::String(id.clone());
                } else if !self.networks.values().any(|(id, _)| *id == t) {
                    return Err(api(
                        operation.clone(),
                        404,
                        format!("network {t} not found"),
                    ));
                }
            }
        }
        for (list, id_key, secret) in [
            ("/TaskTemplate/ContainerSpec/Configs", "ConfigID", false),
            ("/TaskTemplate/ContainerSpec/Secrets", "SecretID", true),
        ] {
            for r in stored
                .pointer(list)
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let id = r.get(id_key).and_then(Value::as_str).unwrap_or_default();
                if !self.files.iter().any(|f| f.id == id && f.secret == secret) {
                    let what = if secret { "secret" } else { "config" };
                    return Err(api(
                        operation.clone(),
                        404,
                        format!("{what} {id} not found"),
                    ));
                }
            }
        }
        if let Some(task) = stored
            .get_mut("TaskTemplate")
            .and_then(Value::as_object_mut)
        {
            task.entry("ForceUpdate").or_insert(json!(0));
            task.entry("Runtime").or_insert(json!("container"));
            if let Some(c) = task.get_mut("ContainerSpec").and_then(Value::as_object_mut) {
                c.entry("Isolation").or_insert(json!("default"));
                c.remove("HealthCheck");
            }
        }
        Ok(stored)
    }

    /// Replaces the tasks a spec change makes stale and adds the missing ones (pending).
    fn roll(&mut self, id: &str, template_changed: bool) {
        let now = self.bump();
        let Some(s) = self.services.get_mut(id) else {
            return;
        };
        let (want, _) = wanted_tasks(&s.spec);
        let template = s.spec.get("TaskTemplate").cloned().unwrap_or(Value::Null);
        let global = is_global(&s.spec);
        for t in s.tasks.iter_mut().filter(|t| t.desired_state != "shutdown") {
            let stale = template_changed || t.slot.is_some_and(|n| n as u64 > want);
            if stale {
                t.desired_state = "shutdown".into();
                if matches!(t.state.as_str(), "running" | "pending") {
                    t.state = "shutdown".into();
                }
                t.timestamp = Some(timestamp(now));
            }
        }
        let active: BTreeSet<i64> = s
            .tasks
            .iter()
            .filter(|t| t.desired_state != "shutdown")
            .filter_map(|t| t.slot.or(Some(0)))
            .collect();
        let slots: Vec<i64> = if global {
            vec![0]
        } else {
            (1..=i64::try_from(want).unwrap_or(0)).collect()
        };
        for (i, slot) in slots.into_iter().enumerate() {
            if active.contains(&slot) {
                continue;
            }
            s.tasks.push(TaskInfo {
                id: format!("t{:012}{:012}", now, i),
                slot: (!global).then_some(slot),
                node_id: Some(FAKE_NODE_ID.into()),
                desired_state: "running".into(),
                state: "pending".into(),
                error: None,
                message: Some("pending task scheduling".into()),
                timestamp: Some(timestamp(now)),
                spec: template.clone(),
            });
        }
    }

    /// Pending tasks start (or are rejected), and an update in progress ends as its
    /// failure action says.
    fn settle(&mut self, id: &str) {
        if self.hold {
            return;
        }
        let now = self.bump();
        let missing = &self.missing_images;
        let Some(s) = self.services.get_mut(id) else {
            return;
        };
        let (_, job) = wanted_tasks(&s.spec);
        let image = image_of(&s.spec);
        let absent = missing.contains(without_digest(&image));
        for t in s.tasks.iter_mut().filter(|t| t.state == "pending") {
            t.timestamp = Some(timestamp(now));
            if absent {
                t.state = "rejected".into();
                t.error = Some(format!("No such image: {image}"));
                t.message = Some("preparing".into());
            } else if job {
                t.state = "complete".into();
                t.desired_state = "complete".into();
                t.message = Some("finished".into());
            } else {
                t.state = "running".into();
                t.message = Some("started".into());
            }
        }
        if !s.updating {
            return;
        }
        s.updating = false;
        if !absent {
            s.update_state = Some("completed".into());
            s.update_message = Some("update completed".into());
            return;
        }
        let action = s
            .spec
            .pointer("/UpdateConfig/FailureAction")
            .and_then(Value::as_str)
            .unwrap_or("pause")
            .to_string();
        match action.as_str() {
            "rollback" => {
                if let Some(previous) = s.previous_spec.take() {
                    s.previous_spec = Some(std::mem::replace(&mut s.spec, previous));
                }
                s.version = now;
                s.update_state = Some("rollback_completed".into());
                s.update_message = Some("rollback completed".into());
                self.roll(id, true);
                self.settle(id);
            }
            "continue" => {
                s.update_state = Some("completed".into());
                s.update_message = Some("update completed".into());
            }
            _ => {
                let task = s.tasks.last().map(|t| t.id.clone()).unwrap_or_default();
                s.update_state = Some("paused".into());
                s.update_message = Some(format!(
                    "update paused due to failure or early termination of task {task}"
                ));
            }
        }
    }

    /// Removal of a config or secret: refused while a service mounts it.
    fn in_use(&self, id: &str, secret: bool) -> Vec<String> {
        let (list, key) = if secret {
            ("/TaskTemplate/ContainerSpec/Secrets", "SecretID")
        } else {
            ("/TaskTemplate/ContainerSpec/Configs", "ConfigID")
        };
        self.services
            .values()
            .filter(|s| {
                s.spec
                    .pointer(list)
                    .and_then(Value::as_array)
                    .is_some_and(|refs| {
                        refs.iter()
                            .any(|r| r.get(key).and_then(Value::as_str) == Some(id))
                    })
            })
            .map(|s| service_name(&s.spec))
            .collect()
    }
}

fn service_name(spec: &Value) -> String {
    spec.get("Name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

#[async_trait]
impl Swarm for FakeSwarm {
    async fn list_services(&self, installation: &str) -> Result<Vec<LiveService>, SwarmError> {
        let e = self.reach()?;
        Ok(e.services
            .values()
            .filter(|s| {
                labels_of(&s.spec)
                    .get(INSTALLATION_LABEL)
                    .map(String::as_str)
                    == Some(installation)
            })
            .map(|s| e.live(s))
            .collect())
    }

    async fn inspect_service(&self, name: &str) -> Result<Option<LiveService>, SwarmError> {
        let e = self.reach()?;
        Ok(e.find(name)
            .and_then(|id| e.services.get(&id))
            .map(|s| e.live(s)))
    }

    async fn create_service(
        &self,
        name: &str,
        spec: &Value,
        auth: Option<&Credentials>,
    ) -> Result<String, SwarmError> {
        let mut e = self.reach()?;
        let stored = e.store_spec("create", name, spec)?;
        self.count(WriteKind::ServiceCreate)?;
        e.auths.push((name.to_string(), auth.cloned()));
        let swarm_name = service_name(&stored);
        if e.find(&swarm_name).is_some() {
            return Err(api(
                format!("create service {name}"),
                409,
                format!(
                    "rpc error: code = AlreadyExists desc = name conflicts with an existing object: service {swarm_name} already exists"
                ),
            ));
        }
        let id = e.next_id('s');
        let version = e.bump();
        e.services.insert(
            id.clone(),
            FakeService {
                id: id.clone(),
                version,
                spec: stored,
                previous_spec: None,
                update_state: None,
                update_message: None,
                updating: false,
                tasks: Vec::new(),
            },
        );
        e.roll(&id, true);
        e.settle(&id);
        e.emit_with_id("service", "create", &swarm_name, Some(&id));
        Ok(id)
    }

    async fn update_service(
        &self,
        id: &str,
        name: &str,
        version: u64,
        spec: &Value,
        auth: Option<&Credentials>,
    ) -> Result<(), SwarmError> {
        let mut e = self.reach()?;
        let mut stored = e.store_spec("update", name, spec)?;
        self.count(WriteKind::ServiceUpdate)?;
        e.auths.push((name.to_string(), auth.cloned()));
        let operation = format!("update service {name}");
        let Some(key) = e.find(id) else {
            return Err(api(operation, 404, format!("service {id} not found")));
        };
        let next = e.bump();
        let Some(s) = e.services.get_mut(&key) else {
            return Err(api(operation, 404, format!("service {id} not found")));
        };
        if s.version != version {
            return Err(api(
                operation,
                500,
                "rpc error: code = Unknown desc = update out of sequence".into(),
            ));
        }
        // The name is immutable; a spec naming another is refused as the engine does.
        if service_name(&stored) != service_name(&s.spec) {
            return Err(api(
                operation,
                400,
                "rpc error: code = Unimplemented desc = renaming services is not supported".into(),
            ));
        }
        if let Some(obj) = stored.as_object_mut() {
            obj.insert(
                "Name".into(),
                s.spec.get("Name").cloned().unwrap_or_default(),
            );
        }
        let template_changed = stored.get("TaskTemplate") != s.spec.get("TaskTemplate");
        s.previous_spec = Some(std::mem::replace(&mut s.spec, stored));
        s.version = next;
        if template_changed {
            s.updating = true;
            s.update_state = Some("updating".into());
            s.update_message = Some("update in progress".into());
        }
        let swarm_name = service_name(&s.spec);
        e.roll(&key, template_changed);
        e.settle(&key);
        e.emit_with_id("service", "update", &swarm_name, Some(&key));
        Ok(())
    }

    async fn resolve_image(&self, image: &str, _auth: Option<&Credentials>) -> Resolution {
        let mut e = self.engine();
        e.resolved.push(image.to_string());
        e.registry.get(image).cloned().unwrap_or_else(|| {
            Resolution::Unresolved(format!(
                "Get \"https://{}/v2/\": dial tcp: lookup {}: no such host",
                crate::registry::registry_of(image),
                crate::registry::registry_of(image)
            ))
        })
    }

    async fn remove_service(&self, id: &str) -> Result<(), SwarmError> {
        let mut e = self.reach()?;
        self.count(WriteKind::ServiceRemove)?;
        if let Some(key) = e.find(id)
            && let Some(s) = e.services.remove(&key)
        {
            e.bump();
            let name = service_name(&s.spec);
            e.emit_with_id("service", "remove", &name, Some(&key));
        }
        Ok(())
    }

    async fn ensure_network(&self, name: &str, installation: &str) -> Result<String, SwarmError> {
        let options = NetworkOptions::default();
        let (id, _) = self
            .ensure_network_with(name, installation, &options)
            .await?;
        Ok(id)
    }

    async fn ensure_network_with(
        &self,
        name: &str,
        installation: &str,
        options: &NetworkOptions,
    ) -> Result<(String, Vec<String>), SwarmError> {
        let mut e = self.reach()?;
        if let Some((id, _)) = e.networks.get(name) {
            let id = id.clone();
            let has = e.network_options.get(name).cloned().unwrap_or_default();
            let differs =
                options.differences(has.driver(), has.internal, has.attachable, &has.driver_opts);
            return Ok((id, differs));
        }
        self.count(WriteKind::NetworkCreate)?;
        let id = e.next_id('n');
        let mut labels = options.labels.clone();
        labels.insert(INSTALLATION_LABEL.to_string(), installation.to_string());
        e.networks.insert(name.to_string(), (id.clone(), labels));
        e.network_options.insert(name.to_string(), options.clone());
        e.emit("network", "create", name);
        Ok((id, Vec::new()))
    }

    async fn list_networks(&self, installation: &str) -> Result<Vec<(String, String)>, SwarmError> {
        let e = self.reach()?;
        Ok(e.networks
            .iter()
            .filter(|(_, (_, labels))| {
                labels.get(INSTALLATION_LABEL).map(String::as_str) == Some(installation)
            })
            .map(|(name, (id, _))| (id.clone(), name.clone()))
            .collect())
    }

    async fn remove_network(&self, id: &str) -> Result<(), SwarmError> {
        let mut e = self.reach()?;
        self.count(WriteKind::NetworkRemove)?;
        let users: Vec<String> = e
            .services
            .values()
            .filter(|s| {
                s.spec
                    .pointer("/TaskTemplate/Networks")
                    .and_then(Value::as_array)
                    .is_some_and(|nets| {
                        nets.iter()
                            .any(|n| n.get("Target").and_then(Value::as_str) == Some(id))
                    })
            })
            .map(|s| service_name(&s.spec))
            .collect();
        if !users.is_empty() {
            return Err(api(
                format!("remove network {id}"),
                403,
                format!(
                    "rpc error: code = FailedPrecondition desc = network {id} is in use by service {}",
                    users.join(", ")
                ),
            ));
        }
        let name = e
            .networks
            .iter()
            .find(|(_, (nid, _))| nid == id)
            .map(|(name, _)| name.clone());
        if let Some(name) = name {
            e.networks.remove(&name);
            e.network_options.remove(&name);
            e.emit("network", "remove", &name);
        }
        Ok(())
    }

    async fn tasks_of(
        &self,
        service_ids: &[String],
    ) -> Result<BTreeMap<String, Vec<TaskInfo>>, SwarmError> {
        let e = self.reach()?;
        let mut out = BTreeMap::new();
        for id in service_ids {
            let Some(s) = e.services.get(id) else {
                continue;
            };
            if s.tasks.is_empty() {
                continue;
            }
            let mut tasks = s.tasks.clone();
            tasks.sort_by(|a, b| b.timestamp.cmp(&a.timestamp));
            out.insert(id.clone(), tasks);
        }
        Ok(out)
    }

    async fn list_files(
        &self,
        installation: &str,
        secret: bool,
    ) -> Result<Vec<FileObject>, SwarmError> {
        let e = self.reach()?;
        Ok(e.files
            .iter()
            .filter(|f| f.secret == secret)
            .filter(|f| f.labels.get(INSTALLATION_LABEL).map(String::as_str) == Some(installation))
            .map(|f| FileObject {
                id: f.id.clone(),
                name: f.name.clone(),
            })
            .collect())
    }

    async fn create_file(
        &self,
        name: &str,
        _content: &[u8],
        labels: &BTreeMap<String, String>,
        secret: bool,
    ) -> Result<String, SwarmError> {
        let mut e = self.reach()?;
        let (what, kind) = if secret {
            ("secret", WriteKind::SecretCreate)
        } else {
            ("config", WriteKind::ConfigCreate)
        };
        self.count(kind)?;
        if e.files.iter().any(|f| f.name == name && f.secret == secret) {
            return Err(api(
                format!("create {what} {name}"),
                409,
                format!("rpc error: code = AlreadyExists desc = {what} {name} already exists"),
            ));
        }
        let id = e.next_id(if secret { 'x' } else { 'c' });
        e.files.push(FakeFile {
            id: id.clone(),
            name: name.to_string(),
            labels: labels.clone(),
            secret,
        });
        e.emit(what, "create", name);
        Ok(id)
    }

    async fn remove_file(&self, id: &str, secret: bool) -> Result<(), SwarmError> {
        let mut e = self.reach()?;
        let (what, kind) = if secret {
            ("secret", WriteKind::SecretRemove)
        } else {
            ("config", WriteKind::ConfigRemove)
        };
        self.count(kind)?;
        let users = e.in_use(id, secret);
        if !users.is_empty() {
            return Err(api(
                format!("remove {id}"),
                400,
                format!(
                    "rpc error: code = InvalidArgument desc = {what} '{id}' is in use by the following service: {}",
                    users.join(", ")
                ),
            ));
        }
        if let Some(pos) = e
            .files
            .iter()
            .position(|f| f.id == id && f.secret == secret)
        {
            let f = e.files.remove(pos);
            e.bump();
            e.emit(what, "remove", &f.name);
        }
        Ok(())
    }

    async fn nodes(&self) -> Result<Vec<NodeInfo>, SwarmError> {
        Ok(self.reach()?.nodes.clone())
    }

    async fn set_node_labels(
        &self,
        id: &str,
        labels: &BTreeMap<String, String>,
    ) -> Result<(), SwarmError> {
        let mut e = self.reach()?;
        if !e.nodes.iter().any(|n| n.id == id) {
            return Err(api(
                format!("inspect node {id}"),
                404,
                format!("node {id} not found"),
            ));
        }
        self.count(WriteKind::NodeUpdate)?;
        e.bump();
        let mut hostname = String::new();
        if let Some(n) = e.nodes.iter_mut().find(|n| n.id == id) {
            n.labels = labels.clone();
            hostname = n.hostname.clone();
        }
        e.emit("node", "update", &hostname);
        Ok(())
    }

    fn events(&self) -> BoxStream<'static, Result<SwarmEvent, SwarmError>> {
        let (tx, rx) = unbounded();
        let mut e = self.engine();
        match &e.unavailable {
            Some(message) => {
                let _ = tx.unbounded_send(Err(SwarmError::Unavailable {
                    host: "fake".into(),
                    message: format!("event stream: {message}"),
                }));
            }
            None => e.subscribers.push(tx),
        }
        rx.boxed()
    }

    fn writes(&self) -> BTreeMap<WriteKind, u64> {
        self.writes.lock().map(|w| w.clone()).unwrap_or_default()
    }

    fn guarded(&self, guard: WriteGuard) -> Arc<dyn Swarm> {
        Arc::new(FakeSwarm {
            guard: Some(guard),
            ..self.clone()
        })
    }
}

#[cfg(test)]
mod tests;
