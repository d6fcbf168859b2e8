//! The live Swarm state cache: this installation's services and their tasks (plus the
//! networks, configs, secrets and nodes reconciles read), kept current by the Docker
//! event stream and a relist at every resync, so a reconcile of a converged Stack reads
//! memory instead of Docker.
//!
//! [`CachedSwarm`] is the Swarm the workers use: while the cache is synced, its reads of
//! this installation come from memory; every write goes through to Docker and marks what
//! it touched stale, so the next read asks Docker again and no pass judges from an old
//! spec. Until the first relist, and from a lost event stream until the relist after the
//! reconnection, every read goes to Docker as before.
//!
//! Engine API 1.41 gives service events no labels: an event is ours when its service ID
//! is in the cache (an unknown ID is inspected once); a container event names its task's
//! service. Only settled tasks are served from memory: a service whose tasks are still
//! moving is asked about afresh, as before.
//!
//! Nothing is removed on the cache's word: [`CachedSwarm::remove_service`] first reads the
//! service afresh, and refuses (the reconcile retries on fresh state) when its kargo
//! labels are no longer those the decision saw.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use futures::stream::BoxStream;
use serde_json::Value;

use crate::registry::Credentials;
use crate::registry::resolve::Resolution;
use crate::swarm::names::{
    INSTALLATION_LABEL, OWNER_LABEL, STACK_NAMESPACE_LABEL, parse_swarm_service,
};
use crate::swarm::{
    FileObject, LiveService, NetworkOptions, NodeInfo, Swarm, SwarmError, SwarmEvent, TaskInfo,
    WriteGuard, WriteKind,
};

/// Service IDs per task query of a relist (the IDs travel in the query string).
const TASK_QUERY_CHUNK: usize = 200;

/// The cache shared by the Docker watcher, the resync and the workers.
#[derive(Clone)]
pub struct LiveCache {
    installation: Arc<str>,
    state: Arc<Mutex<State>>,
}

#[derive(Default)]
struct State {
    /// Reads are served from memory only while synced.
    synced: bool,
    /// Bumped by every change seen (event or own write): a read that started before a
    /// change to an entry does not overwrite it.
    seq: u64,
    /// Bumped by every loss of the event stream: a relist begun before it is dropped.
    epoch: u64,
    /// The `seq` the last relist started at: it forgot removals older than that, so an
    /// older read must not add a service back.
    relisted_from: u64,
    /// This installation's services, by ID.
    services: HashMap<String, Entry>,
    /// Network IDs by name.
    networks: HashMap<String, String>,
    networks_touched: u64,
    /// Configs (`[0]`) and secrets (`[1]`) of the installation.
    files: [Option<Vec<FileObject>>; 2],
    files_touched: u64,
    nodes: Option<Vec<NodeInfo>>,
    nodes_touched: u64,
}

/// One service as last seen.
struct Entry {
    /// `None`: removed (kept until the next relist, so an older read cannot revive it).
    service: Option<LiveService>,
    /// The Swarm stack (its `com.docker.stack.namespace` label).
    namespace: Option<String>,
    /// The spec or state may have changed since `service` was read.
    stale: bool,
    /// Its tasks as last read; `None` when they must be read again.
    tasks: Option<Vec<TaskInfo>>,
    /// The `seq` of the last change seen.
    touched: u64,
}

impl Entry {
    fn new(touched: u64) -> Self {
        Entry {
            service: None,
            namespace: None,
            stale: true,
            tasks: None,
            touched,
        }
    }

    fn removed(&self) -> bool {
        self.service.is_none() && !self.stale
    }

    /// The kargo Stack it belongs to.
    fn stack(&self) -> Option<String> {
        self.namespace
            .as_deref()
            .and_then(|n| n.strip_prefix("kargo-"))
            .map(str::to_string)
    }
}

/// What a Docker event concerns: the queue keys to add, and an ID to inspect when the
/// event names a service the cache does not know (it may be ours).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Concerns {
    /// The installation key.
    pub installation: bool,
    /// Stacks by name.
    pub stacks: BTreeSet<String>,
    /// A service ID to read, to learn whether it is ours.
    pub inspect: Option<String>,
}

fn namespace_of(labels: &BTreeMap<String, String>) -> Option<String> {
    labels.get(STACK_NAMESPACE_LABEL).cloned()
}

/// The labels a removal decision rests on.
fn kargo_labels(s: &LiveService) -> [Option<&String>; 3] {
    [
        s.labels.get(INSTALLATION_LABEL),
        s.labels.get(OWNER_LABEL),
        s.labels.get(STACK_NAMESPACE_LABEL),
    ]
}

/// Whether a service's tasks are at rest: every task in the state Swarm wants for it,
/// and as many wanted running as the spec asks. Anything else is read afresh each time.
fn settled(service: &LiveService, tasks: &[TaskInfo]) -> bool {
    const TERMINAL: [&str; 6] = [
        "complete", "failed", "shutdown", "rejected", "orphaned", "remove",
    ];
    let at_rest = tasks.iter().all(|t| {
        t.state == t.desired_state
            || (t.desired_state != "running" && TERMINAL.contains(&t.state.as_str()))
    });
    if !at_rest || service.update_state.as_deref() == Some("updating") {
        return false;
    }
    let running = tasks
        .iter()
        .filter(|t| t.desired_state == "running")
        .count() as u64;
    match service.spec.pointer("/Mode/Replicated/Replicas") {
        Some(r) => running >= r.as_u64().unwrap_or(1),
        // Global services and jobs: at least one task made.
        None => !tasks.is_empty(),
    }
}

impl LiveCache {
    /// An empty, unsynced cache of one installation's Swarm objects.
    pub fn new(installation: &str) -> Self {
        LiveCache {
            installation: Arc::from(installation),
            state: Arc::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether reads are served from memory.
    #[cfg(test)]
    pub fn is_synced(&self) -> bool {
        self.lock().synced
    }

    /// Reads go to Docker until the next relist (the event stream was lost).
    pub fn unsync(&self) {
        let mut s = self.lock();
        s.synced = false;
        s.epoch += 1;
        s.networks.clear();
        s.files = [None, None];
        s.nodes = None;
    }

    /// Lists the installation's services and their tasks afresh and serves reads from
    /// them (the watcher calls this once its event stream is up); what changed meanwhile
    /// (events, own writes) is kept as it is.
    pub async fn sync(&self, swarm: &dyn Swarm) -> Result<(), SwarmError> {
        self.relist(swarm, true).await
    }

    /// The periodic relist: as [`Self::sync`], but only while synced (a lost stream is
    /// the watcher's to mend), so task changes no event shows are seen every resync.
    pub async fn refresh(&self, swarm: &dyn Swarm) -> Result<(), SwarmError> {
        self.relist(swarm, false).await
    }

    async fn relist(&self, swarm: &dyn Swarm, make_synced: bool) -> Result<(), SwarmError> {
        let (started, epoch) = {
            let s = self.lock();
            if !make_synced && !s.synced {
                return Ok(());
            }
            (s.seq, s.epoch)
        };
        let services = swarm.list_services(&self.installation).await?;
        let ids: Vec<String> = services.iter().map(|s| s.id.clone()).collect();
        let mut tasks = BTreeMap::new();
        for chunk in ids.chunks(TASK_QUERY_CHUNK) {
            tasks.extend(swarm.tasks_of(chunk).await?);
        }
        let mut s = self.lock();
        // The stream was lost meanwhile: what was listed may already be old.
        if s.epoch != epoch || (!make_synced && !s.synced) {
            return Ok(());
        }
        s.services.retain(|_, e| e.touched > started);
        for svc in services {
            if s.services.contains_key(&svc.id) {
                continue;
            }
            let id = svc.id.clone();
            let entry = Entry {
                namespace: namespace_of(&svc.labels),
                tasks: Some(tasks.remove(&id).unwrap_or_default()),
                stale: false,
                touched: 0,
                service: Some(svc),
            };
            s.services.insert(id, entry);
        }
        s.relisted_from = started;
        if make_synced {
            s.synced = true;
        }
        Ok(())
    }

    /// Records a change to one service: its next read goes to Docker.
    fn mark<'a>(s: &'a mut State, id: &str) -> &'a mut Entry {
        s.seq += 1;
        let seq = s.seq;
        let e = s
            .services
            .entry(id.to_string())
            .or_insert_with(|| Entry::new(seq));
        e.touched = seq;
        e.stale = true;
        e.tasks = None;
        e
    }

    /// A service this installation just created (its namespace from the spec's labels).
    pub fn created(&self, id: &str, spec: &Value) {
        let mut s = self.lock();
        let e = Self::mark(&mut s, id);
        e.namespace = spec
            .get("Labels")
            .and_then(|l| l.get(STACK_NAMESPACE_LABEL))
            .and_then(Value::as_str)
            .map(str::to_string);
    }

    /// A service written (updated) or otherwise changed: read it again next time.
    pub fn changed(&self, id: &str) {
        let mut s = self.lock();
        if s.services.contains_key(id) {
            Self::mark(&mut s, id);
        }
    }

    /// A service removed.
    pub fn removed(&self, id: &str) {
        let mut s = self.lock();
        let e = Self::mark(&mut s, id);
        e.service = None;
        e.stale = false;
    }

    /// Stores a service read at `started` (unless something changed it since).
    fn store(&self, started: u64, id: &str, read: Option<&LiveService>) {
        let mut s = self.lock();
        let relisted_from = s.relisted_from;
        match (s.services.get_mut(id), read) {
            (Some(e), _) if e.touched > started => {}
            (Some(e), Some(svc))
                if svc.labels.get(INSTALLATION_LABEL).map(String::as_str)
                    == Some(&*self.installation) =>
            {
                e.namespace = namespace_of(&svc.labels);
                e.service = Some(svc.clone());
                e.stale = false;
            }
            // Gone, or no longer this installation's (orphaned, relabelled by hand).
            (Some(e), _) => {
                e.service = None;
                e.stale = false;
                e.tasks = None;
            }
            (None, Some(svc))
                if started >= relisted_from
                    && svc.labels.get(INSTALLATION_LABEL).map(String::as_str)
                        == Some(&*self.installation) =>
            {
                let mut e = Entry::new(0);
                e.namespace = namespace_of(&svc.labels);
                e.service = Some(svc.clone());
                e.stale = false;
                s.services.insert(id.to_string(), e);
            }
            (None, _) => {}
        }
    }

    /// Learns a service the watcher inspected after an event; returns its Stack when it
    /// is this installation's.
    pub fn learn(&self, started: u64, svc: &LiveService) -> Option<String> {
        self.store(started, &svc.id, Some(svc));
        self.lock().services.get(&svc.id).and_then(Entry::stack)
    }

    /// The change counter now (a read that starts now passes it to [`Self::learn`]).
    pub fn seq(&self) -> u64 {
        self.lock().seq
    }

    /// Applies one Docker event and says what it concerns. Only this installation's
    /// services count (by cached ID); a name in the form of kargo's also queues that
    /// Stack, since a foreign service may hold a name one of ours wants.
    pub fn apply(&self, ev: &SwarmEvent) -> Concerns {
        let mut c = Concerns::default();
        let mut s = self.lock();
        match ev.kind.as_str() {
            "service" => {
                if let Some((stack, _)) = ev.name.as_deref().and_then(parse_swarm_service) {
                    c.stacks.insert(stack.to_string());
                }
                let Some(id) = ev.id.as_deref() else {
                    return c;
                };
                let known = s
                    .services
                    .get(id)
                    .filter(|e| !e.removed())
                    .map(Entry::stack);
                match known {
                    Some(stack) => {
                        c.installation = true;
                        c.stacks.extend(stack);
                        if ev.action == "remove" {
                            let e = Self::mark(&mut s, id);
                            e.service = None;
                            e.stale = false;
                        } else {
                            Self::mark(&mut s, id);
                        }
                    }
                    None if ev.action != "remove" => c.inspect = Some(id.to_string()),
                    None => {}
                }
            }
            "container" => {
                // Health checks' exec_* and attach/resize say nothing about the task.
                if ev.action.starts_with("exec_") || ev.action == "attach" || ev.action == "resize"
                {
                    return c;
                }
                let Some(id) = ev.service.as_deref() else {
                    return c;
                };
                if let Some(e) = s.services.get_mut(id).filter(|e| !e.removed()) {
                    e.tasks = None;
                    c.stacks.extend(e.stack());
                }
            }
            "network" => {
                // Containers joining and leaving say nothing about the network itself.
                if ev.action == "connect" || ev.action == "disconnect" {
                    return c;
                }
                s.seq += 1;
                s.networks_touched = s.seq;
                if let Some(name) = &ev.name {
                    s.networks.remove(name);
                }
                // The Stacks whose services are attached to it (a network removed by hand).
                if let Some(id) = &ev.id {
                    c.stacks = Self::using(&s, id, "/TaskTemplate/Networks", "Target");
                }
            }
            "config" | "secret" => {
                s.seq += 1;
                s.files_touched = s.seq;
                s.files = [None, None];
                c.installation = true;
                if let Some(id) = &ev.id {
                    let (list, key) = match ev.kind.as_str() {
                        "config" => ("/TaskTemplate/ContainerSpec/Configs", "ConfigID"),
                        _ => ("/TaskTemplate/ContainerSpec/Secrets", "SecretID"),
                    };
                    c.stacks = Self::using(&s, id, list, key);
                }
            }
            "node" => {
                s.seq += 1;
                s.nodes_touched = s.seq;
                s.nodes = None;
                // Tasks move with nodes; placement troubles name them.
                for e in s.services.values_mut() {
                    e.tasks = None;
                }
                c.installation = true;
                c.stacks = Self::deployed(&s);
            }
            _ => {}
        }
        c
    }

    /// The Stacks with a service in Swarm.
    fn deployed(s: &State) -> BTreeSet<String> {
        s.services
            .values()
            .filter(|e| !e.removed())
            .filter_map(Entry::stack)
            .collect()
    }

    /// The Stacks with a service whose spec refers to `id` in `list` (by `key`).
    fn using(s: &State, id: &str, list: &str, key: &str) -> BTreeSet<String> {
        s.services
            .values()
            .filter(|e| {
                e.service.as_ref().is_some_and(|svc| {
                    svc.spec
                        .pointer(list)
                        .and_then(Value::as_array)
                        .is_some_and(|refs| {
                            refs.iter()
                                .any(|r| r.get(key).and_then(Value::as_str) == Some(id))
                        })
                })
            })
            .filter_map(Entry::stack)
            .collect()
    }
}

/// The Swarm the workers use: reads of the installation from [`LiveCache`] while it is
/// synced, everything else (and every write) from `inner`.
pub struct CachedSwarm {
    inner: Arc<dyn Swarm>,
    cache: LiveCache,
}

impl CachedSwarm {
    /// Reads through `cache`, writes to `inner`.
    pub fn new(inner: Arc<dyn Swarm>, cache: LiveCache) -> Self {
        CachedSwarm { inner, cache }
    }

    /// The services of the installation (of one Swarm stack, when given) from memory, the
    /// stale ones read afresh; `None` when the cache is not synced.
    async fn services(
        &self,
        namespace: Option<&str>,
    ) -> Result<Option<Vec<LiveService>>, SwarmError> {
        let (started, mut out, stale) = {
            let s = self.cache.lock();
            if !s.synced {
                return Ok(None);
            }
            let mut out = Vec::new();
            let mut stale = Vec::new();
            for (id, e) in &s.services {
                if namespace.is_some() && e.namespace.as_deref() != namespace {
                    continue;
                }
                match (&e.service, e.stale) {
                    (Some(svc), false) => out.push(svc.clone()),
                    (_, true) => stale.push(id.clone()),
                    (None, false) => {}
                }
            }
            (s.seq, out, stale)
        };
        for id in stale {
            let fresh = self.inner.inspect_service(&id).await?;
            self.cache.store(started, &id, fresh.as_ref());
            if let Some(svc) = fresh
                && (namespace.is_none() || namespace_of(&svc.labels).as_deref() == namespace)
                && svc.labels.get(INSTALLATION_LABEL).map(String::as_str)
                    == Some(&*self.cache.installation)
            {
                out.push(svc);
            }
        }
        Ok(Some(out))
    }
}

#[async_trait]
impl Swarm for CachedSwarm {
    async fn list_services(&self, installation: &str) -> Result<Vec<LiveService>, SwarmError> {
        if installation == &*self.cache.installation
            && let Some(services) = self.services(None).await?
        {
            return Ok(services);
        }
        self.inner.list_services(installation).await
    }

    async fn list_stack_services(
        &self,
        installation: &str,
        namespace: &str,
    ) -> Result<Vec<LiveService>, SwarmError> {
        if installation == &*self.cache.installation
            && let Some(services) = self.services(Some(namespace)).await?
        {
            return Ok(services);
        }
        self.inner
            .list_stack_services(installation, namespace)
            .await
    }

    async fn inspect_service(&self, name: &str) -> Result<Option<LiveService>, SwarmError> {
        let started = self.cache.seq();
        let fresh = self.inner.inspect_service(name).await?;
        if let Some(svc) = &fresh {
            self.cache.store(started, &svc.id, Some(svc));
        }
        Ok(fresh)
    }

    async fn create_service(
        &self,
        name: &str,
        spec: &Value,
        auth: Option<&Credentials>,
    ) -> Result<String, SwarmError> {
        let id = self.inner.create_service(name, spec, auth).await?;
        self.cache.created(&id, spec);
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
        let result = self
            .inner
            .update_service(id, name, version, spec, auth)
            .await;
        // Refused or not, what the cache holds may be old (a refusal for sequence says so).
        self.cache.changed(id);
        result
    }

    async fn resolve_image(&self, image: &str, auth: Option<&Credentials>) -> Resolution {
        self.inner.resolve_image(image, auth).await
    }

    async fn remove_service(&self, id: &str) -> Result<(), SwarmError> {
        let seen = {
            let s = self.cache.lock();
            s.services
                .get(id)
                .filter(|_| s.synced)
                .and_then(|e| e.service.clone())
        };
        if let Some(seen) = seen {
            let started = self.cache.seq();
            let fresh = self.inner.inspect_service(id).await?;
            if let Some(fresh) = &fresh
                && (kargo_labels(fresh) != kargo_labels(&seen) || fresh.name != seen.name)
            {
                self.cache.store(started, id, Some(fresh));
                return Err(SwarmError::Api {
                    operation: format!("remove service {}", seen.name),
                    status: None,
                    message: "its kargo labels changed since it was observed; not removed, decided again on a fresh read".into(),
                });
            }
        }
        let result = self.inner.remove_service(id).await;
        if result.is_ok() {
            self.cache.removed(id);
        } else {
            self.cache.changed(id);
        }
        result
    }

    async fn ensure_network(&self, name: &str, installation: &str) -> Result<String, SwarmError> {
        let started = {
            let s = self.cache.lock();
            if s.synced
                && let Some(id) = s.networks.get(name)
            {
                return Ok(id.clone());
            }
            s.seq
        };
        let id = self.inner.ensure_network(name, installation).await?;
        let mut s = self.cache.lock();
        if s.synced && s.networks_touched <= started {
            s.networks.insert(name.to_string(), id.clone());
        }
        Ok(id)
    }

    async fn ensure_network_with(
        &self,
        name: &str,
        installation: &str,
        options: &NetworkOptions,
    ) -> Result<(String, Vec<String>), SwarmError> {
        // A cached network was compared when it was first met: nothing new to say.
        let started = {
            let s = self.cache.lock();
            if s.synced
                && let Some(id) = s.networks.get(name)
            {
                return Ok((id.clone(), Vec::new()));
            }
            s.seq
        };
        let (id, differs) = self
            .inner
            .ensure_network_with(name, installation, options)
            .await?;
        let mut s = self.cache.lock();
        if s.synced && s.networks_touched <= started {
            s.networks.insert(name.to_string(), id.clone());
        }
        Ok((id, differs))
    }

    async fn list_networks(&self, installation: &str) -> Result<Vec<(String, String)>, SwarmError> {
        // Only the installation's cleanup asks, after deciding on its own reads.
        self.inner.list_networks(installation).await
    }

    async fn remove_network(&self, id: &str) -> Result<(), SwarmError> {
        let result = self.inner.remove_network(id).await;
        // Whatever the engine answered, the cached name → ID may be wrong now.
        let mut s = self.cache.lock();
        s.seq += 1;
        s.networks_touched = s.seq;
        s.networks.retain(|_, v| v != id);
        result
    }

    async fn tasks_of(
        &self,
        service_ids: &[String],
    ) -> Result<BTreeMap<String, Vec<TaskInfo>>, SwarmError> {
        let mut out = BTreeMap::new();
        let mut fetch = Vec::new();
        let started = {
            let s = self.cache.lock();
            for id in service_ids {
                let cached = s.services.get(id).filter(|_| s.synced).and_then(|e| {
                    let (svc, tasks) = (e.service.as_ref()?, e.tasks.as_ref()?);
                    (!e.stale && settled(svc, tasks)).then_some(tasks)
                });
                match cached {
                    Some(tasks) if tasks.is_empty() => {}
                    Some(tasks) => {
                        out.insert(id.clone(), tasks.clone());
                    }
                    None => fetch.push(id.clone()),
                }
            }
            s.seq
        };
        if fetch.is_empty() {
            return Ok(out);
        }
        let mut fresh = self.inner.tasks_of(&fetch).await?;
        let mut s = self.cache.lock();
        for id in fetch {
            let tasks = fresh.remove(&id).unwrap_or_default();
            if let Some(e) = s.services.get_mut(&id)
                && e.touched <= started
            {
                e.tasks = Some(tasks.clone());
            }
            if !tasks.is_empty() {
                out.insert(id, tasks);
            }
        }
        Ok(out)
    }

    async fn list_files(
        &self,
        installation: &str,
        secret: bool,
    ) -> Result<Vec<FileObject>, SwarmError> {
        let i = usize::from(secret);
        let ours = installation == &*self.cache.installation;
        let started = {
            let s = self.cache.lock();
            if ours
                && s.synced
                && let Some(files) = &s.files[i]
            {
                return Ok(files.clone());
            }
            s.seq
        };
        let files = self.inner.list_files(installation, secret).await?;
        let mut s = self.cache.lock();
        if ours && s.synced && s.files_touched <= started {
            s.files[i] = Some(files.clone());
        }
        Ok(files)
    }

    async fn create_file(
        &self,
        name: &str,
        content: &[u8],
        labels: &BTreeMap<String, String>,
        secret: bool,
    ) -> Result<String, SwarmError> {
        let result = self.inner.create_file(name, content, labels, secret).await;
        self.cache.files_changed();
        result
    }

    async fn remove_file(&self, id: &str, secret: bool) -> Result<(), SwarmError> {
        let result = self.inner.remove_file(id, secret).await;
        self.cache.files_changed();
        result
    }

    async fn nodes(&self) -> Result<Vec<NodeInfo>, SwarmError> {
        let started = {
            let s = self.cache.lock();
            if s.synced
                && let Some(nodes) = &s.nodes
            {
                return Ok(nodes.clone());
            }
            s.seq
        };
        let nodes = self.inner.nodes().await?;
        let mut s = self.cache.lock();
        if s.synced && s.nodes_touched <= started {
            s.nodes = Some(nodes.clone());
        }
        Ok(nodes)
    }

    async fn set_node_labels(
        &self,
        id: &str,
        labels: &BTreeMap<String, String>,
    ) -> Result<(), SwarmError> {
        let result = self.inner.set_node_labels(id, labels).await;
        let mut s = self.cache.lock();
        s.seq += 1;
        s.nodes_touched = s.seq;
        s.nodes = None;
        result
    }

    fn events(&self) -> BoxStream<'static, Result<SwarmEvent, SwarmError>> {
        self.inner.events()
    }

    fn writes(&self) -> BTreeMap<WriteKind, u64> {
        self.inner.writes()
    }

    fn guarded(&self, guard: WriteGuard) -> Arc<dyn Swarm> {
        Arc::new(CachedSwarm {
            inner: self.inner.guarded(guard),
            cache: self.cache.clone(),
        })
    }
}

impl LiveCache {
    /// A config or secret written: list them again next time.
    fn files_changed(&self) {
        let mut s = self.lock();
        s.seq += 1;
        s.files_touched = s.seq;
        s.files = [None, None];
    }
}

#[cfg(test)]
mod tests;
