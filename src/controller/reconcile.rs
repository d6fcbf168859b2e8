//! Reconciling onto Swarm: one Stack at a time (the unit of reconciliation), plus the
//! installation-wide work (garbage collection, finalizers, files, node labels). Each
//! service of a stack is converged in [`super::converge`]; finalizers are in
//! [`super::finalizers`]; the statuses of what no stack covers are in [`super::status`].
//!
//! Level-based and idempotent: a reconcile is never told why it runs. It compares the
//! desired ServiceSpec with the live one over the fields kargo sets, so a converged
//! installation costs no Docker write and no etcd write.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use serde_json::Value;

use crate::api::Kind;
use crate::api::conditions::{events, reasons};
use crate::store::{Fence, Store};
use crate::swarm::names::{
    INSTALLATION_LABEL, OWNER_LABEL, SPEC_HASH_LABEL, swarm_service, swarm_stack,
};
use crate::swarm::{LiveService, NetworkOptions, Swarm};

use super::ControllerError;
use super::cache::SnapshotCache;
use super::decide::{
    Desired, Event, Observed, decide_removals, needs_networks, orphaning, wanted_services,
};
use super::events::{EventRecorder, EventType};
use crate::plan::intent::{Verdict, removal_verdict};
use crate::plan::{Doubt, Plan, PlannedStack, Snapshot, plan_scoped};

/// How soon to look again at a stack that is converging.
pub const CONVERGING_REQUEUE: Duration = Duration::from_secs(1);

/// How soon to look again while the keys do not fit (the key file may be fixed by a restart
/// only, but the stored public key may be corrected meanwhile).
pub const KEY_PROBLEM_REQUEUE: Duration = Duration::from_secs(30);

/// What to do after a reconcile.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Converged: wait for a change (or the periodic resync).
    AwaitChange,
    /// Not converged yet: look again after this long.
    RequeueAfter(Duration),
}

/// What a full pass saw and did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PassReport {
    /// Every deployed stack is Ready.
    pub all_ready: bool,
    /// Docker writes made by this pass.
    pub docker_writes: u64,
    /// etcd writes made by this pass (status, finalizers, history).
    pub etcd_writes: u64,
}

/// Everything a reconcile needs.
pub struct Reconciler<'a> {
    /// The object store.
    pub store: &'a Store,
    /// The watch's typed view of the store, when the controller keeps one (else every
    /// reconcile lists etcd).
    pub cache: Option<&'a SnapshotCache>,
    /// The Docker client (with the leader's write guard, when elected).
    pub swarm: &'a dyn Swarm,
    /// The Configuration in force.
    pub configuration: &'a str,
    /// The leadership fence for etcd writes, when elected.
    pub fence: Option<&'a Fence>,
    /// The default catalog.
    pub catalog: &'a (dyn Fn(&str) -> Option<Value> + Sync),
    /// Where events go.
    pub events: &'a EventRecorder,
    /// The controller's metrics, when it keeps them.
    pub metrics: Option<&'a super::Metrics>,
    /// The private keys that open sealed values (`--secret-key-file`), when given.
    pub keys: Option<&'a crate::secrets::Keyring>,
    /// Registries that could not be reached lately (held by the controller across
    /// reconciles, so an unreachable registry costs one failed lookup, not one per push).
    pub registries: &'a crate::registry::RegistryState,
}

/// The result of reconciling one stack.
#[derive(Clone, Debug, Default)]
pub struct StackOutcome {
    /// The stack is Ready.
    pub ready: bool,
    /// etcd writes made.
    pub etcd_writes: u64,
}

impl Reconciler<'_> {
    pub(super) fn installation(&self) -> &str {
        self.store.prefix()
    }

    /// The objects, typed: from the watch cache when it is synced, else read from etcd.
    pub async fn snapshot(&self) -> Result<(Arc<Snapshot>, i64), ControllerError> {
        let Some(cache) = self.cache else {
            return self.fresh_snapshot().await;
        };
        if !cache.configured() && self.store.configured_before().await? {
            cache.set_configured();
        }
        let Some((mut snapshot, revision)) = cache.current() else {
            return self.fresh_snapshot().await;
        };
        if cache.configured() && !snapshot.configured_before {
            Arc::make_mut(&mut snapshot).configured_before = true;
            cache.update(revision, |s| s.configured_before = true);
        }
        self.report_invalid(&snapshot, 0).await;
        Ok((snapshot, revision))
    }

    /// Reads every object from etcd and types it, with whether the installation was
    /// configured before: the read a removal is confirmed on.
    pub async fn fresh_snapshot(&self) -> Result<(Arc<Snapshot>, i64), ControllerError> {
        let list = self.store.list_all().await?;
        let mut snapshot = Snapshot::from_list(&list);
        snapshot.configured_before = match self.cache {
            Some(c) if c.configured() => true,
            _ => self.store.configured_before().await?,
        };
        let unowned = list.invalid.iter().filter(|b| b.object.is_none()).count();
        self.report_invalid(&snapshot, unowned).await;
        Ok((Arc::new(snapshot), list.revision))
    }

    /// Unusable objects: a Warning event once per object and reason, and the gauge
    /// (`unowned`: bad values under keys that name no object).
    async fn report_invalid(&self, snapshot: &Snapshot, unowned: usize) {
        if let Some(m) = self.metrics {
            m.set_invalid_objects(snapshot.invalid.len() + unowned);
        }
        for (kind, name, why) in &snapshot.invalid {
            self.events
                .record_once(
                    *kind,
                    name,
                    EventType::Warning,
                    reasons::INVALID_OBJECT,
                    &format!("skipped: the stored object is not usable: {why}"),
                    self.fence,
                )
                .await;
        }
    }

    /// Whether removals decided on `snapshot` hold on a fresh read of etcd: a cache that
    /// lags must never remove on stale word. Returns the verdicts to act on.
    async fn confirm_removals(
        &self,
        candidates: Vec<(String, Option<String>, String)>,
    ) -> Result<Vec<(String, String)>, ControllerError> {
        if candidates.is_empty() || self.cache.is_none() {
            // Without a cache the snapshot was read from etcd just now.
            return Ok(candidates
                .into_iter()
                .map(|(name, _, why)| (name, why))
                .collect());
        }
        let (fresh, _) = self.fresh_snapshot().await?;
        let plan = self.plan(&fresh);
        Ok(candidates
            .into_iter()
            .filter_map(
                |(name, owner, _)| match removal_verdict(&fresh, &plan, owner.as_deref()) {
                    Verdict::Remove(why) => Some((name, why)),
                    _ => None,
                },
            )
            .collect())
    }

    /// Says once, in an event on the Stack, that a service not wanted is kept and why.
    async fn report_kept(&self, stack: &str, service: &str, doubt: &Doubt) {
        if let Some(m) = self.metrics {
            m.kept_in_doubt();
        }
        self.events
            .record_once(
                Kind::Stack,
                stack,
                EventType::Warning,
                doubt.reason,
                &format!(
                    "kept Swarm service {service} running: {} (nothing is removed while the desired state is in doubt)",
                    doubt.message
                ),
                self.fence,
            )
            .await;
    }

    /// Records that the Configuration in force exists, once: from then on its absence is
    /// doubt rather than the first-run "deploy every Stack".
    async fn remember_configured(
        &self,
        snapshot: &Snapshot,
        plan: &Plan,
    ) -> Result<u64, ControllerError> {
        if snapshot.configured_before || plan.configuration.is_none() {
            return Ok(0);
        }
        self.store
            .mark_configured(self.configuration, self.fence)
            .await?;
        if let Some(c) = self.cache {
            c.set_configured();
        }
        Ok(1)
    }

    /// The plan for a snapshot.
    pub fn plan(&self, snapshot: &Snapshot) -> Plan {
        self.plan_for(snapshot, None)
    }

    /// The plan, rendering only the services of one Stack when given.
    pub fn plan_for(&self, snapshot: &Snapshot, only: Option<&str>) -> Plan {
        plan_scoped(
            snapshot,
            self.configuration,
            self.installation(),
            self.catalog,
            only,
            self.keys,
        )
    }

    /// One full pass: the installation, then every stack in rollout order. What the
    /// controller's workers do key by key, in one call (for tests and `--once`).
    pub async fn pass(&self) -> Result<PassReport, ControllerError> {
        let writes_before = self.swarm.total_writes();
        let (snapshot, revision) = self.snapshot().await?;
        if self.refuse_without_keys(&snapshot).await? {
            return Ok(PassReport::default());
        }
        let plan = self.plan(&snapshot);
        let mut etcd_writes = self.reconcile_installation_gc(&snapshot, &plan).await?;
        let mut ready: BTreeSet<String> = BTreeSet::new();
        for stack in &plan.stacks {
            let outcome = self
                .reconcile_stack(&snapshot, &plan, stack, revision, &|s| ready.contains(s))
                .await?;
            etcd_writes += outcome.etcd_writes;
            if outcome.ready {
                ready.insert(stack.name.clone());
            }
        }
        etcd_writes += self
            .write_installation_statuses(&snapshot, &plan, &|s| ready.contains(s))
            .await?;
        Ok(PassReport {
            all_ready: plan.errors.is_empty()
                && plan.stacks.iter().all(|s| ready.contains(&s.name)),
            docker_writes: self.swarm.total_writes() - writes_before,
            etcd_writes,
        })
    }

    /// Reconciles one key: `installation` or `stack/<name>`, reading a fresh snapshot.
    pub async fn reconcile_key(&self, key: &str) -> Result<Action, ControllerError> {
        let (snapshot, revision) = self.snapshot().await?;
        if self.refuse_without_keys(&snapshot).await? {
            return Ok(Action::RequeueAfter(KEY_PROBLEM_REQUEUE));
        }
        let plan = match key.strip_prefix("stack/") {
            Some(stack) => self.plan_for(&snapshot, Some(stack)),
            None => self.plan(&snapshot),
        };
        let stored_ready = |name: &str| {
            snapshot.stacks.get(name).is_some_and(|s| {
                s.status.common.is_ready()
                    && s.status.common.observed_generation == s.metadata.generation
            })
        };
        if key == INSTALLATION_KEY {
            self.reconcile_installation_gc(&snapshot, &plan).await?;
            self.write_installation_statuses(&snapshot, &plan, &stored_ready)
                .await?;
            return Ok(Action::AwaitChange);
        }
        let Some(name) = key.strip_prefix("stack/") else {
            return Ok(Action::AwaitChange);
        };
        let Some(stack) = plan.stacks.iter().find(|s| s.name == name) else {
            // Not deployed: the installation key removes its Swarm objects.
            return Ok(Action::AwaitChange);
        };
        let outcome = self
            .reconcile_stack(&snapshot, &plan, stack, revision, &stored_ready)
            .await?;
        Ok(if outcome.ready {
            Action::AwaitChange
        } else {
            Action::RequeueAfter(CONVERGING_REQUEUE)
        })
    }

    /// Removes Swarm services nobody wants (stacks deleted, suspended or dropped;
    /// services deleted) and releases the finalizers of objects whose Swarm objects are gone.
    /// Orphaned objects (`--cascade=orphan`) lose kargo's labels and stay.
    async fn reconcile_installation_gc(
        &self,
        snapshot: &Snapshot,
        plan: &Plan,
    ) -> Result<u64, ControllerError> {
        let wanted: BTreeSet<String> = plan
            .stacks
            .iter()
            .flat_map(|s| {
                s.services
                    .iter()
                    .map(move |p| swarm_service(&s.name, &p.name))
            })
            .collect();
        let marked = self.remember_configured(snapshot, plan).await?;
        let mut live = self.swarm.list_services(self.installation()).await?;
        let removals = decide_removals(snapshot, plan, &live, &wanted);
        for (name, owner, doubt) in &removals.keep {
            let owner = owner.clone().unwrap_or_default();
            let (stack, _) = owner.split_once('/').unwrap_or((owner.as_str(), ""));
            self.report_kept(stack, name, doubt).await;
        }
        for (name, why) in self.confirm_removals(removals.remove).await? {
            let Some(svc) = live.iter().find(|s| s.name == name) else {
                continue;
            };
            let owner = svc.labels.get(OWNER_LABEL).cloned().unwrap_or_default();
            let (stack, _) = owner.split_once('/').unwrap_or((owner.as_str(), ""));
            if orphaning(snapshot, &owner) {
                let mut spec = svc.spec.clone();
                if let Some(labels) = spec.get_mut("Labels").and_then(Value::as_object_mut) {
                    for l in [INSTALLATION_LABEL, OWNER_LABEL, SPEC_HASH_LABEL] {
                        labels.remove(l);
                    }
                }
                self.swarm
                    .update_service(&svc.id, &svc.name, svc.version, &spec, None)
                    .await?;
                self.record(&Event::new(
                    Kind::Stack,
                    stack,
                    EventType::Normal,
                    events::ORPHANED,
                    format!(
                        "Swarm service {} left running without kargo's labels",
                        svc.name
                    ),
                ))
                .await;
            } else {
                self.swarm.remove_service(&svc.id).await?;
                self.record(&Event::new(
                    Kind::Stack,
                    stack,
                    EventType::Normal,
                    events::REMOVED,
                    format!("removed Swarm service {} ({why})", svc.name),
                ))
                .await;
            }
        }
        live.retain(|s| wanted.contains(&s.name));
        // Configs and secrets follow the same rule: none is collected while in doubt.
        if plan.doubt.is_none() && plan.frozen.is_empty() {
            self.collect_files(plan, &live).await?;
            self.collect_networks(plan).await?;
        }
        self.sync_node_labels(snapshot, plan).await?;
        Ok(marked + self.release_finalizers(snapshot, &live).await?)
    }

    /// Reconciles one deployed stack: removals, networks and files, then its services in
    /// order and its status, as [`decide`] decides them on what is observed here.
    pub async fn reconcile_stack(
        &self,
        snapshot: &Snapshot,
        plan: &Plan,
        stack: &PlannedStack,
        _revision: i64,
        is_ready: &(dyn Fn(&str) -> bool + Sync),
    ) -> Result<StackOutcome, ControllerError> {
        let now = Utc::now();
        let mut etcd_writes = self
            .ensure_finalizer(snapshot, Kind::Stack, &stack.name)
            .await?;
        let namespace = swarm_stack(&stack.name);
        let mut live: BTreeMap<String, LiveService> = self
            .swarm
            .list_stack_services(self.installation(), &namespace)
            .await?
            .into_iter()
            .map(|s| (s.name.clone(), s))
            .collect();
        // Services of this stack that it no longer lists go first (removal in reverse order).
        let removals =
            decide_removals(snapshot, plan, live.values().rev(), &wanted_services(stack));
        for (name, _, doubt) in &removals.keep {
            self.report_kept(&stack.name, name, doubt).await;
        }
        for (name, why) in self.confirm_removals(removals.remove).await? {
            // Gone from what the rest of this reconcile looks at (its tasks, its networks).
            let Some(svc) = live.remove(&name) else {
                continue;
            };
            self.swarm.remove_service(&svc.id).await?;
            self.record(&Event::new(
                Kind::Stack,
                &stack.name,
                EventType::Normal,
                events::REMOVED,
                format!("removed Swarm service {name} ({why})"),
            ))
            .await;
        }
        // A config a live service mounts by its earlier name keeps it: no roll on upgrade.
        let kept = super::swarm_objects::keep_previous_file_names(plan, stack, &live);
        let stack: &PlannedStack = &kept;
        let waiting: Vec<String> = stack
            .waits_for
            .iter()
            .filter(|s| !is_ready(s))
            .cloned()
            .collect();
        let mut ids = BTreeMap::new();
        if needs_networks(stack, &waiting, &live) {
            let nets: BTreeSet<&String> = stack
                .services
                .iter()
                .filter_map(|p| p.desired.as_ref().ok())
                .flat_map(|d| d.networks.iter())
                .collect();
            let declared = declared_networks(snapshot, &stack.name);
            for net in nets {
                let Some(options) = declared.get(net.as_str()) else {
                    let id = self.swarm.ensure_network(net, self.installation()).await?;
                    ids.insert(net.clone(), id);
                    continue;
                };
                let (id, differs) = self
                    .swarm
                    .ensure_network_with(net, self.installation(), options)
                    .await?;
                if !differs.is_empty() {
                    let message = format!(
                        "network {net} exists with other settings than the Stack declares ({}): it is not recreated, which would cut the services on it; remove it while nothing uses it to have it created as declared",
                        differs.join("; ")
                    );
                    tracing::warn!("{message}");
                    self.events
                        .record_once(
                            Kind::Stack,
                            &stack.name,
                            EventType::Warning,
                            events::NETWORK_DIFFERS,
                            &message,
                            self.fence,
                        )
                        .await;
                }
                ids.insert(net.clone(), id);
            }
            self.ensure_files(plan, stack, &mut ids).await?;
        }
        let live_ids: Vec<String> = live.values().map(|l| l.id.clone()).collect();
        let tasks = self.swarm.tasks_of(&live_ids).await?;
        for planned in &stack.services {
            if snapshot.services.contains_key(&planned.name) {
                etcd_writes += self
                    .ensure_finalizer(snapshot, Kind::Service, &planned.name)
                    .await?;
            }
        }
        let desired = Desired {
            snapshot,
            plan,
            stack,
            waiting: &waiting,
            installation: self.installation(),
        };
        let mut observed = Observed {
            live,
            tasks,
            ids,
            now,
            ..Observed::default()
        };
        self.observe_foreign(&desired, &mut observed).await?;
        let decision = self.converge_stack(&desired, observed).await?;
        let ready = decision.stack.ready;
        etcd_writes += self.write_stack(snapshot, &stack.name, decision).await?;
        Ok(StackOutcome { ready, etcd_writes })
    }
}

/// The queue key of installation-wide work.
pub const INSTALLATION_KEY: &str = "installation";

impl Reconciler<'_> {
    /// Whether the keys forbid any Swarm change now: the installation holds sealed values
    /// and this controller has no private key, or the stored public key is not one of its
    /// keys (someone replaced it: values sealed to it could not be opened, or a key not
    /// the installation's would be trusted). Says so in the Configuration's Ready
    /// condition and a Warning event; changes nothing in Swarm.
    async fn refuse_without_keys(&self, snapshot: &Snapshot) -> Result<bool, ControllerError> {
        let problem = match self.keys {
            None if holds_sealed(snapshot) => Some((
                reasons::SECRET_KEY_MISSING,
                format!(
                    "the installation holds sealed values and this controller has no private key (--secret-key-file or KARGO_SECRET_KEY_FILE); nothing in Swarm is changed until it has one ({})",
                    crate::secrets::CREATE_KEYS_HINT
                ),
            )),
            None => None,
            Some(keys) => match crate::secrets::load_public(self.store).await {
                Ok(Some((public, _))) if keys.holds(&public) => None,
                Ok(Some(_)) => Some((
                    reasons::SECRET_KEY_MISMATCH,
                    "the public key stored for this installation does not match the controller's private key: nothing in Swarm is changed until they match (see docs/security.md)".to_string(),
                )),
                Ok(None) if holds_sealed(snapshot) => Some((
                    reasons::SECRET_KEY_MISMATCH,
                    "the installation holds sealed values but no public key is stored: nothing in Swarm is changed until `kargo keys` restores it".to_string(),
                )),
                Ok(None) => None,
                Err(crate::secrets::LoadError::Store(e)) => return Err(e.into()),
                Err(e) => Some((reasons::SECRET_KEY_MISMATCH, e.to_string())),
            },
        };
        let Some((reason, message)) = problem else {
            return Ok(false);
        };
        tracing::warn!(%reason, "{message}");
        self.events
            .record_once(
                Kind::Configuration,
                self.configuration,
                super::events::EventType::Warning,
                reason,
                &message,
                self.fence,
            )
            .await;
        let now = Utc::now();
        let stored = snapshot.configurations.get(self.configuration);
        if let Some(cfg) = stored {
            let mut status = cfg.status.clone();
            super::status::set_ready(&mut status.common, false, reason, message, now);
            self.put_status(
                Kind::Configuration,
                self.configuration,
                cfg.metadata.generation,
                &cfg.status,
                status,
            )
            .await?;
        }
        Ok(true)
    }
}

/// Whether any object of the snapshot holds a sealed value.
fn holds_sealed(snapshot: &Snapshot) -> bool {
    snapshot
        .configurations
        .values()
        .any(|c| c.spec.files.values().any(|f| f.sealed.is_some()))
        || snapshot.environments.values().any(|e| {
            e.spec
                .sensitive_variables
                .values()
                .any(|v| matches!(v, crate::api::SensitiveValue::Sealed(_)))
        })
}

/// The networks a Stack declares and kargo creates, by real name (as the renderer names
/// them), with how to create them; an `external` one is not the Stack's to shape.
fn declared_networks(snapshot: &Snapshot, stack: &str) -> BTreeMap<String, NetworkOptions> {
    let Some(s) = snapshot.stacks.get(stack) else {
        return BTreeMap::new();
    };
    s.spec
        .networks
        .iter()
        .filter(|(_, n)| n.external != Some(true))
        .map(|(key, n)| {
            let name = n
                .name
                .clone()
                .unwrap_or_else(|| format!("{}_{key}", swarm_stack(stack)));
            let defaults = NetworkOptions::default();
            let options = NetworkOptions {
                driver: n.driver.clone(),
                internal: n.internal.unwrap_or(defaults.internal),
                attachable: n.attachable.unwrap_or(defaults.attachable),
                driver_opts: n.driver_opts.clone().unwrap_or_default(),
                labels: n.labels.clone().unwrap_or_default(),
            };
            (name, options)
        })
        .collect()
}
