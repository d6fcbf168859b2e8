//! The controller process: a cache fed by the etcd watch, a cache of the live Swarm fed
//! by Docker events, triggers (etcd changes, Docker events, periodic resync) feeding a
//! work queue, workers reconciling keys, and — with several replicas — leader election
//! so only one replica acts.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use std::panic::AssertUnwindSafe;

use futures::{FutureExt, StreamExt};
use serde_json::Value;
use tokio::sync::watch;
use tracing::{debug, error, info, warn};

use crate::api::conditions::types;
use crate::api::{DynamicObject, Kind};
use crate::store::{Deposer, Election, EtcdConfig, Fence, Store, StoreError, WatchEvent};
use crate::swarm::{Swarm, SwarmClient, SwarmError, SwarmEvent};

use super::ControllerError;
use super::cache::SnapshotCache;
use super::events::EventRecorder;
use super::live::{CachedSwarm, LiveCache};
use super::metrics::{Metrics, serve};
use super::queue::WorkQueue;
use super::reconcile::{Action, INSTALLATION_KEY, PassReport, Reconciler};

/// Looks up a default catalog entry's spec by name.
pub type Catalog = dyn Fn(&str) -> Option<Value> + Send + Sync;

/// Leader election settings.
#[derive(Clone, Debug)]
pub struct ElectionOptions {
    /// How to reach etcd for the election's own connection.
    pub etcd: EtcdConfig,
    /// Lease TTL: a dead leader is replaced within about this long.
    pub ttl: Duration,
    /// This replica's name in the election (shown as the leader's value).
    pub identity: String,
    /// Wait to lead (replicas). False for a controller meant to run alone: it leads at
    /// once or fails with [`ControllerError::AnotherLeader`], so two lone controllers
    /// never write to the same Swarm.
    pub wait: bool,
}

/// How the controller behaves.
#[derive(Clone, Debug)]
pub struct ControllerOptions {
    /// The Configuration in force.
    pub configuration: String,
    /// Full resync period: catches what no event shows (task state, hand changes).
    pub resync: Duration,
    /// Stacks reconciled at once.
    pub workers: usize,
    /// Where to serve /healthz, /readyz and /metrics (none: not served).
    pub metrics_addr: Option<SocketAddr>,
    /// Leader election (none: this replica acts alone).
    pub election: Option<ElectionOptions>,
    /// The private keys that open sealed values (none: sealed values stay closed and
    /// the controller changes nothing in Swarm while the installation holds any).
    pub keys: Option<Arc<crate::secrets::Keyring>>,
    /// The only folder registry password files (`passwordFrom.file`) are read from (none:
    /// no file is read): the Environment naming them is written by whoever can apply.
    pub registry_secrets_dir: Option<std::path::PathBuf>,
}

impl Default for ControllerOptions {
    fn default() -> Self {
        ControllerOptions {
            configuration: "main".into(),
            resync: Duration::from_secs(30),
            workers: 4,
            metrics_addr: None,
            election: None,
            keys: None,
            registry_secrets_dir: None,
        }
    }
}

/// The operator.
pub struct Controller {
    store: Store,
    swarm: SwarmClient,
    options: ControllerOptions,
    catalog: Arc<Catalog>,
    events: EventRecorder,
    metrics: Arc<Metrics>,
    queue: WorkQueue,
    cache: SnapshotCache,
    live: LiveCache,
    /// Registries that could not be reached lately, shared by every term's workers.
    registries: Arc<crate::registry::RegistryState>,
}

/// What a worker needs, owned, for one term of leadership.
struct WorkerContext {
    store: Store,
    swarm: SwarmClient,
    /// `swarm` read through the live cache: what reconciles use.
    cached: Arc<dyn Swarm>,
    configuration: String,
    fence: Option<Fence>,
    catalog: Arc<Catalog>,
    events: EventRecorder,
    metrics: Arc<Metrics>,
    queue: WorkQueue,
    /// Gives leadership up at once (a fenced write proved another replica leads).
    step_down: Option<Deposer>,
    cache: SnapshotCache,
    /// The private keys, when given.
    keys: Option<Arc<crate::secrets::Keyring>>,
    /// Registries that could not be reached lately.
    registries: Arc<crate::registry::RegistryState>,
    /// Docker endpoint moves already reported in an event.
    endpoint_switches: std::sync::atomic::AtomicU64,
}

impl WorkerContext {
    /// Says in an event on the Configuration (once per move, whichever worker sees it
    /// first) which Docker manager endpoint the controller uses now.
    async fn report_endpoint_switch(&self) {
        let switches = self.swarm.endpoint_switches();
        let seen = self
            .endpoint_switches
            .load(std::sync::atomic::Ordering::SeqCst);
        if switches == seen
            || self
                .endpoint_switches
                .compare_exchange(
                    seen,
                    switches,
                    std::sync::atomic::Ordering::SeqCst,
                    std::sync::atomic::Ordering::SeqCst,
                )
                .is_err()
        {
            return;
        }
        let message = format!("now using Docker endpoint {}", self.swarm.endpoint());
        info!("{message}");
        self.events
            .record(
                Kind::Configuration,
                &self.configuration,
                super::events::EventType::Warning,
                "DockerEndpointChanged",
                &message,
                self.fence.as_ref(),
            )
            .await;
    }

    fn reconciler(&self) -> Reconciler<'_> {
        Reconciler {
            store: &self.store,
            cache: Some(&self.cache),
            swarm: &*self.cached,
            configuration: &self.configuration,
            fence: self.fence.as_ref(),
            catalog: &*self.catalog,
            events: &self.events,
            metrics: Some(&self.metrics),
            keys: self.keys.as_deref(),
            registries: &self.registries,
        }
    }
}

impl Controller {
    /// A controller over these clients, using the built-in default catalog.
    pub fn new(store: Store, swarm: SwarmClient, options: ControllerOptions) -> Self {
        let registries = Arc::new(crate::registry::RegistryState::new(
            options.registry_secrets_dir.clone(),
        ));
        Controller {
            live: LiveCache::new(store.prefix()),
            events: EventRecorder::new(store.clone()),
            store,
            swarm,
            options,
            catalog: Arc::new(crate::manifest::catalog_spec),
            metrics: Arc::default(),
            queue: WorkQueue::new(),
            cache: SnapshotCache::default(),
            registries,
        }
    }

    /// The same controller layering another default catalog under user Services (an
    /// installation's own catalog, or a test's).
    pub fn with_catalog(mut self, catalog: Arc<Catalog>) -> Self {
        self.catalog = catalog;
        self
    }

    /// The Docker client (its write counter tells what the controller did).
    pub fn swarm(&self) -> &SwarmClient {
        &self.swarm
    }

    /// The controller's metrics.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// One full reconcile pass over the installation (no election, no fence).
    pub async fn pass(&self) -> Result<PassReport, ControllerError> {
        Reconciler {
            store: &self.store,
            // A pass reads etcd afresh: it is what tests and `--once` compare against.
            cache: None,
            swarm: &self.swarm,
            configuration: &self.options.configuration,
            fence: None,
            catalog: &*self.catalog,
            events: &self.events,
            metrics: Some(&self.metrics),
            keys: self.options.keys.as_deref(),
            registries: &self.registries,
        }
        .pass()
        .await
    }

    /// Runs until `shutdown` resolves. In-flight reconciles finish first; a leader resigns
    /// so another replica takes over at once.
    pub async fn run(
        &self,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> Result<(), ControllerError> {
        let mut background = Vec::new();
        if let Some(addr) = self.options.metrics_addr {
            background.push(tokio::spawn(serve(
                addr,
                self.metrics.clone(),
                self.queue.clone(),
                self.swarm.clone(),
            )));
        }
        let known = KnownStacks::default();
        background.push(tokio::spawn(watch_etcd(
            self.store.clone(),
            self.queue.clone(),
            self.metrics.clone(),
            known.clone(),
            self.cache.clone(),
        )));
        background.push(tokio::spawn(watch_docker(
            self.swarm.clone(),
            self.queue.clone(),
            known.clone(),
            self.live.clone(),
        )));
        background.push(tokio::spawn(resync(
            self.queue.clone(),
            self.options.resync,
            known,
            self.swarm.clone(),
            self.live.clone(),
        )));
        tokio::pin!(shutdown);

        match &self.options.election {
            None => {
                let (stop_tx, stop_rx) = watch::channel(false);
                let workers = self.spawn_workers(self.swarm.clone(), None, None, stop_rx);
                (&mut shutdown).await;
                info!("shutting down: letting reconciles in flight finish");
                let _ = stop_tx.send(true);
                for w in workers {
                    let _ = w.await;
                }
            }
            Some(opts) => {
                self.metrics.enable_elections();
                let election = loop {
                    match Election::connect(
                        &opts.etcd,
                        self.store.prefix(),
                        &opts.identity,
                        opts.ttl,
                    )
                    .await
                    {
                        Ok(e) => break e,
                        Err(e) => {
                            warn!(error = %e, "cannot connect for the election; retrying");
                            tokio::select! {
                                _ = &mut shutdown => return Ok(()),
                                _ = tokio::time::sleep(Duration::from_secs(2)) => {}
                            }
                        }
                    }
                };
                if !opts.wait {
                    match election.leader().await {
                        Ok(Some(other)) => {
                            return Err(ControllerError::AnotherLeader {
                                prefix: self.store.prefix().to_string(),
                                identity: other,
                            });
                        }
                        Ok(None) => {}
                        Err(e) => return Err(ControllerError::Store(e.into())),
                    }
                }
                loop {
                    let mut leadership = tokio::select! {
                        _ = &mut shutdown => break,
                        r = election.campaign() => match r {
                            Ok(l) => l,
                            Err(e) => {
                                warn!(error = %e, "campaign failed; retrying");
                                tokio::time::sleep(Duration::from_secs(1)).await;
                                continue;
                            }
                        },
                    };
                    let guard: crate::swarm::WriteGuard = Arc::new(leadership.guard());
                    self.metrics.set_leader(Some(guard.clone()));
                    let swarm = self.swarm.with_write_guard(guard);
                    let (stop_tx, stop_rx) = watch::channel(false);
                    let workers = self.spawn_workers(
                        swarm,
                        Some(leadership.fence.clone()),
                        Some(leadership.deposer()),
                        stop_rx,
                    );
                    enqueue_everything(&self.store, &self.queue).await;
                    let shutting_down = tokio::select! {
                        _ = &mut shutdown => true,
                        _ = leadership.lost() => false,
                    };
                    let _ = stop_tx.send(true);
                    for w in workers {
                        let _ = w.await;
                    }
                    self.metrics.set_leader(None);
                    if shutting_down {
                        info!("shutting down: handing leadership over");
                        leadership.resign().await;
                        break;
                    }
                    // Whatever is left of this term (its key, its lease) goes, so the
                    // next campaign starts clean.
                    leadership.resign().await;
                    warn!("lost leadership; campaigning again");
                }
            }
        }
        self.queue.shutdown();
        for b in background {
            b.abort();
        }
        info!("controller stopped");
        Ok(())
    }

    fn spawn_workers(
        &self,
        swarm: SwarmClient,
        fence: Option<Fence>,
        step_down: Option<Deposer>,
        stop: watch::Receiver<bool>,
    ) -> Vec<tokio::task::JoinHandle<()>> {
        let cached: Arc<dyn Swarm> =
            Arc::new(CachedSwarm::new(Arc::new(swarm.clone()), self.live.clone()));
        let ctx = Arc::new(WorkerContext {
            store: self.store.clone(),
            swarm,
            cached,
            configuration: self.options.configuration.clone(),
            fence,
            catalog: self.catalog.clone(),
            events: self.events.clone(),
            metrics: self.metrics.clone(),
            queue: self.queue.clone(),
            endpoint_switches: std::sync::atomic::AtomicU64::new(0),
            step_down,
            cache: self.cache.clone(),
            keys: self.options.keys.clone(),
            registries: self.registries.clone(),
        });
        (0..self.options.workers.max(1))
            .map(|_| tokio::spawn(worker(ctx.clone(), stop.clone())))
            .collect()
    }
}

/// Takes keys until told to stop; a reconcile in flight always finishes.
async fn worker(ctx: Arc<WorkerContext>, mut stop: watch::Receiver<bool>) {
    loop {
        if *stop.borrow() {
            return;
        }
        let key = tokio::select! {
            k = ctx.queue.next() => match k { Some(k) => k, None => return },
            _ = stop.changed() => return,
        };
        let started = Instant::now();
        // A panic while reconciling one key is a kargo bug: it must cost that Stack its
        // Ready (said in its status), never the worker or the process.
        let caught = AssertUnwindSafe(ctx.reconciler().reconcile_key(&key))
            .catch_unwind()
            .await;
        let result = match caught {
            Ok(r) => r,
            Err(panic) => {
                let message = panic_message(panic.as_ref());
                ctx.metrics.panicked();
                error!(%key, %message, "reconcile panicked; the worker goes on");
                ctx.reconciler().mark_panicked(&key, &message).await;
                Err(ControllerError::Internal(format!(
                    "reconcile panicked: {message}"
                )))
            }
        };
        ctx.metrics.observe(result.is_ok(), started.elapsed());
        if let Err(ControllerError::Swarm(e @ SwarmError::NoLeader { .. })) = &result {
            ctx.reconciler().mark_no_leader(&key, &e.to_string()).await;
        }
        ctx.report_endpoint_switch().await;
        if let Err(ControllerError::Store(StoreError::Fenced)) = &result {
            // etcd refused a fenced write: another replica leads. Stop Docker writes now
            // and campaign again, rather than wait for the lease to tell.
            ctx.metrics.fenced();
            warn!(%key, "a write was refused by the leader fence; stepping down");
            if let Some(d) = &ctx.step_down {
                d.depose();
            }
        }
        match result {
            Ok(Action::AwaitChange) => ctx.queue.forget(&key),
            Ok(Action::RequeueAfter(d)) => {
                ctx.queue.forget(&key);
                ctx.queue.add_after(&key, d);
            }
            Err(e) => {
                let delay = ctx.queue.retry(&key);
                warn!(%key, error = %e, retry_in = ?delay, "reconcile failed");
            }
        }
        ctx.queue.done(&key);
        debug!(%key, elapsed = ?started.elapsed(), "reconciled");
    }
}

/// The text a panic carried (`panic!` with a string or a format).
fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic without a message".to_string()
    }
}

async fn enqueue_everything(store: &Store, queue: &WorkQueue) {
    queue.add(INSTALLATION_KEY);
    if let Ok(list) = store.list(Kind::Stack).await {
        for s in list.items {
            queue.add(&format!("stack/{}", s.metadata.name));
        }
    }
}

/// Changes taken from the watch at once when they are already there.
const WATCH_BATCH: usize = 1024;

/// Every resync period, every key, on a fresh list of the live Swarm (task changes on
/// other nodes show in no event this controller receives).
async fn resync(
    queue: WorkQueue,
    period: Duration,
    known: KnownStacks,
    swarm: SwarmClient,
    live: LiveCache,
) {
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if let Err(e) = live.refresh(&swarm).await {
            // Reads go to Docker (and fail there) until the watcher has relisted.
            warn!(error = %e, "relisting the Swarm failed");
            live.unsync();
        }
        queue.add(INSTALLATION_KEY);
        for k in known.get() {
            queue.add(&k);
        }
    }
}

/// The stack keys the cache knows, shared with the triggers that enqueue every stack.
#[derive(Clone, Default)]
struct KnownStacks(Arc<std::sync::Mutex<Vec<String>>>);

impl KnownStacks {
    fn get(&self) -> Vec<String> {
        self.0.lock().map(|s| s.clone()).unwrap_or_default()
    }

    fn set(&self, cache: &BTreeMap<String, Seen>) {
        if let Ok(mut s) = self.0.lock() {
            *s = stack_keys(cache);
        }
    }
}

/// What the watch remembers of an object: enough to tell which keys a change affects
/// (the objects themselves live once, typed, in the [`SnapshotCache`]).
#[derive(Clone, Debug, PartialEq, Eq)]
struct Seen {
    kind: Kind,
    name: String,
    /// A hash of everything but status and resourceVersion: what makes a reconcile worth running.
    fingerprint: u64,
    /// The status of its Ready condition (a Stack's readiness gates other Stacks).
    ready: Option<String>,
    /// The services a Stack lists.
    services: Vec<String>,
}

impl Seen {
    fn of(o: &DynamicObject) -> Self {
        use std::hash::Hasher;
        // Streamed into the hasher: no copy of the object and no JSON text of it (every
        // object passes here at each list, every change at each watch event).
        let mut meta = o.metadata.clone();
        meta.resource_version = None;
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        let _ = serde_json::to_writer(
            HashWriter(&mut hasher),
            &(&o.api_version, o.kind, &meta, &o.spec),
        );
        let ready = o
            .status
            .as_ref()
            .and_then(|s| s.get("conditions"))
            .and_then(Value::as_array)
            .and_then(|cs| {
                cs.iter()
                    .find(|c| c.get("type").and_then(Value::as_str) == Some(types::READY))
            })
            .and_then(|c| c.get("status"))
            .and_then(Value::as_str)
            .map(str::to_string);
        let services = match o.kind {
            Kind::Stack => o
                .spec
                .get("services")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default(),
            _ => Vec::new(),
        };
        Seen {
            kind: o.kind,
            name: o.metadata.name.clone(),
            fingerprint: hasher.finish(),
            ready,
            services,
        }
    }
}

/// Feeds serialised bytes to a hasher.
struct HashWriter<'a>(&'a mut std::collections::hash_map::DefaultHasher);

impl std::io::Write for HashWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        std::hash::Hasher::write(self.0, buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The cache: lists, then watches from the list's revision + 1, and turns changes into
/// queue keys. Relists after a compaction or a lost watch. The only writer of the cache.
async fn watch_etcd(
    store: Store,
    queue: WorkQueue,
    metrics: Arc<Metrics>,
    known: KnownStacks,
    shared: SnapshotCache,
) {
    let mut backoff = Duration::from_millis(500);
    loop {
        shared.invalidate();
        let list = match store.list_all().await {
            Ok(l) => l,
            Err(e) => {
                metrics.set_synced(false);
                warn!(error = %e, retry_in = ?backoff, "listing objects failed");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(10));
                continue;
            }
        };
        shared.reset(&list);
        let revision = list.revision;
        let mut cache: BTreeMap<String, Seen> = list
            .items
            .iter()
            .map(|o| (o.reference(), Seen::of(o)))
            .collect();
        // Typed in the snapshot and summed up in `cache`: the list itself (every object
        // with its status, as JSON values) would otherwise live as long as the watch.
        drop(list);
        known.set(&cache);
        let mut stream = match store.watch(revision + 1).await {
            Ok(s) => s,
            Err(e) => {
                metrics.set_synced(false);
                warn!(error = %e, retry_in = ?backoff, "watching objects failed");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(10));
                continue;
            }
        };
        backoff = Duration::from_millis(500);
        metrics.set_synced(true);
        enqueue_all(&cache, &queue);
        'watching: while let Some(first) = stream.next().await {
            // What is already there comes as one batch: one copy of the shared snapshot
            // for all of it (a reconcile may hold the previous one), not one per change.
            let mut batch = vec![first];
            while batch.len() < WATCH_BATCH {
                match stream.next().now_or_never() {
                    Some(Some(ev)) => batch.push(ev),
                    _ => break,
                }
            }
            let revision = batch
                .iter()
                .filter_map(|ev| match ev {
                    Ok(WatchEvent::Applied(o)) => o
                        .metadata
                        .resource_version
                        .as_deref()
                        .and_then(|r| r.parse().ok()),
                    Ok(WatchEvent::Deleted { revision, .. }) => Some(*revision),
                    _ => None,
                })
                .max()
                .unwrap_or(0);
            shared.update(revision, |s| {
                for ev in &batch {
                    match ev {
                        Ok(WatchEvent::Applied(o)) => s.insert(o),
                        Ok(WatchEvent::Deleted { kind, name, .. }) => s.remove(*kind, name),
                        Ok(WatchEvent::Invalid(bad)) => {
                            if let Some((kind, name)) = &bad.object {
                                s.insert_invalid(*kind, name, &bad.message);
                            }
                        }
                        _ => {}
                    }
                }
            });
            for ev in batch {
                match ev {
                    Ok(WatchEvent::Applied(o)) => {
                        let seen = Seen::of(&o);
                        let old = cache.insert(o.reference(), seen.clone());
                        for k in affected_keys(&cache, old.as_ref(), Some(&seen)) {
                            queue.add(&k);
                        }
                    }
                    Ok(WatchEvent::Deleted { kind, name, .. }) => {
                        let old = cache.remove(&format!("{}/{}", kind.singular(), name));
                        for k in affected_keys(&cache, old.as_ref(), None) {
                            queue.add(&k);
                        }
                    }
                    Ok(WatchEvent::Invalid(bad)) => {
                        // Written without the CLI: the object at that key (if any) is gone
                        // from the cache, and every reconcile reports it (doubt, not removal).
                        warn!(key = %bad.key, error = %bad.message, "skipped a value that is not a usable kargo object");
                        if let Some((kind, name)) = &bad.object {
                            cache.remove(&format!("{}/{}", kind.singular(), name));
                        }
                        enqueue_all(&cache, &queue);
                    }
                    Ok(WatchEvent::Compacted(rev)) => {
                        info!(
                            compact_revision = rev,
                            "watch fell behind compaction; relisting"
                        );
                        break 'watching;
                    }
                    Err(e) => {
                        warn!(error = %e, "watch lost; relisting");
                        metrics.set_synced(false);
                        break 'watching;
                    }
                }
            }
            known.set(&cache);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn stack_keys(cache: &BTreeMap<String, Seen>) -> Vec<String> {
    cache
        .values()
        .filter(|o| o.kind == Kind::Stack)
        .map(|o| format!("stack/{}", o.name))
        .collect()
}

fn enqueue_all(cache: &BTreeMap<String, Seen>, queue: &WorkQueue) {
    queue.add(INSTALLATION_KEY);
    for k in stack_keys(cache) {
        queue.add(&k);
    }
}

/// The keys a change affects (docs/design.md, "The controller": a change to a Service, Environment or
/// Configuration queues the Stacks it affects). The controller's own status writes
/// queue nothing, except a Stack's, which gates the stacks that wait for it.
fn affected_keys(
    cache: &BTreeMap<String, Seen>,
    old: Option<&Seen>,
    new: Option<&Seen>,
) -> Vec<String> {
    let Some(o) = new.or(old) else {
        return Vec::new();
    };
    let spec_changed = old.map(|s| s.fingerprint) != new.map(|s| s.fingerprint);
    // Only a Stack becoming Ready or not Ready gates others (dependsOn, ordered rollout);
    // its other status changes (counts, messages) concern no other key.
    let readiness_changed =
        old.and_then(|s| s.ready.as_ref()) != new.and_then(|s| s.ready.as_ref());
    if !spec_changed {
        return if readiness_changed && o.kind == Kind::Stack {
            let mut keys = stack_keys(cache);
            keys.push(INSTALLATION_KEY.into());
            keys
        } else {
            Vec::new()
        };
    }
    let mut keys = vec![INSTALLATION_KEY.to_string()];
    match o.kind {
        Kind::Service => {
            keys.extend(
                cache
                    .values()
                    .filter(|s| s.kind == Kind::Stack && s.services.contains(&o.name))
                    .map(|s| format!("stack/{}", s.name)),
            );
        }
        Kind::Stack => {
            keys.push(format!("stack/{}", o.name));
            keys.extend(stack_keys(cache));
        }
        Kind::Environment | Kind::Configuration => keys.extend(stack_keys(cache)),
    }
    keys
}

/// Docker events: keeps the live cache current and queues the keys each event concerns
/// (a service of ours → its Stack; a network, node, config or secret → the Stacks with
/// services in Swarm). On every (re)connection the cache is relisted before it is read
/// again; events that arrive meanwhile are applied after the list.
async fn watch_docker(swarm: SwarmClient, queue: WorkQueue, known: KnownStacks, live: LiveCache) {
    let mut reconnection = false;
    loop {
        let mut events = swarm.events();
        // The stream is polled first so that it is open before the list is read.
        let mut pending = Vec::new();
        let synced = {
            let sync = live.sync(&swarm);
            tokio::pin!(sync);
            loop {
                tokio::select! {
                    biased;
                    ev = events.next() => match ev {
                        Some(Ok(ev)) => pending.push(ev),
                        Some(Err(e)) => break Err(e),
                        None => break Err(SwarmError::Unavailable {
                            host: swarm.endpoint(),
                            message: "event stream ended".into(),
                        }),
                    },
                    r = &mut sync => break r,
                }
            }
        };
        if let Err(e) = synced {
            warn!(error = %e, "Docker event stream or Swarm list failed; retrying");
            live.unsync();
            tokio::time::sleep(Duration::from_secs(2)).await;
            reconnection = true;
            continue;
        }
        if reconnection {
            // Whatever happened while the stream was down was seen by no event.
            info!("Docker event stream back; Swarm relisted");
            queue.add(INSTALLATION_KEY);
            for k in known.get() {
                queue.add(&k);
            }
        }
        for ev in pending {
            on_docker_event(&swarm, &live, &queue, &ev).await;
        }
        while let Some(ev) = events.next().await {
            match ev {
                Ok(ev) => on_docker_event(&swarm, &live, &queue, &ev).await,
                Err(e) => {
                    warn!(error = %e, "Docker event stream lost; reconnecting");
                    break;
                }
            }
        }
        // Until the relist after reconnecting, reconciles read Docker.
        live.unsync();
        reconnection = true;
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

/// Applies one Docker event to the live cache and queues what it concerns.
async fn on_docker_event(
    swarm: &SwarmClient,
    live: &LiveCache,
    queue: &WorkQueue,
    ev: &SwarmEvent,
) {
    let mut concerns = live.apply(ev);
    if let Some(id) = concerns.inspect.take() {
        // A service the cache does not know: ours (created by hand with our labels, or
        // by another writer) only if its labels say so.
        let started = live.seq();
        match swarm.inspect_service(&id).await {
            Ok(Some(svc)) => {
                if let Some(stack) = live.learn(started, &svc) {
                    concerns.installation = true;
                    concerns.stacks.insert(stack);
                }
            }
            Ok(None) => {}
            Err(e) => debug!(%id, error = %e, "inspecting a service named by an event failed"),
        }
    }
    if concerns.installation {
        queue.add(INSTALLATION_KEY);
    }
    for stack in concerns.stacks {
        queue.add(&format!("stack/{stack}"));
    }
}
