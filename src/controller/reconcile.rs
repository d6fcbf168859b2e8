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

use crate::api::conditions::{reasons, types};
use crate::api::{ConditionStatus, Kind, RollbackMode, StackStatus};
use crate::store::{Fence, RollbackBy, RollbackStep, Store, roll_back};
use crate::swarm::names::{
    INSTALLATION_LABEL, OWNER_LABEL, SPEC_HASH_LABEL, swarm_service, swarm_stack,
};
use crate::swarm::{LiveService, Swarm};

use super::ControllerError;
use super::cache::SnapshotCache;
use super::converge::{ServiceContext, ServiceOutcome};
use super::events::{EventRecorder, EventType};
use super::status::set_ready;
use crate::plan::intent::{Verdict, removal_verdict};
use crate::plan::{CASCADE_ANNOTATION, Doubt, Plan, PlannedStack, Snapshot, plan_scoped};

/// How soon to look again at a stack that is converging.
pub const CONVERGING_REQUEUE: Duration = Duration::from_secs(1);

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
        )
    }

    /// One full pass: the installation, then every stack in rollout order. What the
    /// controller's workers do key by key, in one call (for tests and `--once`).
    pub async fn pass(&self) -> Result<PassReport, ControllerError> {
        let writes_before = self.swarm.total_writes();
        let (snapshot, revision) = self.snapshot().await?;
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
        let orphaning = |owner: &str| {
            let (stack, service) = owner.split_once('/').unwrap_or((owner, ""));
            let orphan = |annotations: &BTreeMap<String, String>| {
                annotations.get(CASCADE_ANNOTATION).map(String::as_str) == Some("orphan")
            };
            snapshot.stacks.get(stack).is_some_and(|s| {
                s.metadata.deletion_timestamp.is_some() && orphan(&s.metadata.annotations)
            }) || snapshot.services.get(service).is_some_and(|s| {
                s.metadata.deletion_timestamp.is_some() && orphan(&s.metadata.annotations)
            })
        };
        let mut candidates = Vec::new();
        for svc in &live {
            if wanted.contains(&svc.name) {
                continue;
            }
            let owner = svc.labels.get(OWNER_LABEL).cloned();
            match removal_verdict(snapshot, plan, owner.as_deref()) {
                Verdict::Remove(why) => candidates.push((svc.name.clone(), owner, why)),
                Verdict::Wanted => {}
                Verdict::Keep(doubt) => {
                    let owner = owner.unwrap_or_default();
                    let (stack, _) = owner.split_once('/').unwrap_or((owner.as_str(), ""));
                    self.report_kept(stack, &svc.name, &doubt).await;
                }
            }
        }
        for (name, why) in self.confirm_removals(candidates).await? {
            let Some(svc) = live.iter().find(|s| s.name == name) else {
                continue;
            };
            let owner = svc.labels.get(OWNER_LABEL).cloned().unwrap_or_default();
            let (stack, _) = owner.split_once('/').unwrap_or((owner.as_str(), ""));
            if orphaning(&owner) {
                let mut spec = svc.spec.clone();
                if let Some(labels) = spec.get_mut("Labels").and_then(Value::as_object_mut) {
                    for l in [INSTALLATION_LABEL, OWNER_LABEL, SPEC_HASH_LABEL] {
                        labels.remove(l);
                    }
                }
                self.swarm
                    .update_service(&svc.id, &svc.name, svc.version, &spec)
                    .await?;
                self.events
                    .record(
                        Kind::Stack,
                        stack,
                        EventType::Normal,
                        "Orphaned",
                        &format!(
                            "Swarm service {} left running without kargo's labels",
                            svc.name
                        ),
                        self.fence,
                    )
                    .await;
            } else {
                self.swarm.remove_service(&svc.id).await?;
                self.events
                    .record(
                        Kind::Stack,
                        stack,
                        EventType::Normal,
                        "Removed",
                        &format!("removed Swarm service {} ({why})", svc.name),
                        self.fence,
                    )
                    .await;
            }
        }
        live.retain(|s| wanted.contains(&s.name));
        // Configs and secrets follow the same rule: none is collected while in doubt.
        if plan.doubt.is_none() && plan.frozen.is_empty() {
            self.collect_files(plan).await?;
        }
        self.sync_node_labels(snapshot, plan).await?;
        Ok(marked + self.release_finalizers(snapshot, &live).await?)
    }

    /// Reconciles one deployed stack: networks, then its services in order, then status.
    pub async fn reconcile_stack(
        &self,
        snapshot: &Snapshot,
        plan: &Plan,
        stack: &PlannedStack,
        revision: i64,
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
        let wanted: BTreeSet<String> = stack
            .services
            .iter()
            .map(|p| swarm_service(&stack.name, &p.name))
            .collect();
        let mut candidates = Vec::new();
        for (name, svc) in live.iter().rev() {
            if wanted.contains(name) {
                continue;
            }
            let owner = svc.labels.get(OWNER_LABEL).cloned();
            match removal_verdict(snapshot, plan, owner.as_deref()) {
                Verdict::Remove(why) => candidates.push((name.clone(), owner, why)),
                Verdict::Keep(doubt) => self.report_kept(&stack.name, name, &doubt).await,
                Verdict::Wanted => {}
            }
        }
        for (name, why) in self.confirm_removals(candidates).await? {
            // Gone from what the rest of this reconcile looks at (its tasks, its networks).
            let Some(svc) = live.remove(&name) else {
                continue;
            };
            self.swarm.remove_service(&svc.id).await?;
            self.events
                .record(
                    Kind::Stack,
                    &stack.name,
                    EventType::Normal,
                    "Removed",
                    &format!("removed Swarm service {name} ({why})"),
                    self.fence,
                )
                .await;
        }
        let waiting: Vec<&str> = stack
            .waits_for
            .iter()
            .map(String::as_str)
            .filter(|s| !is_ready(s))
            .collect();
        let mut network_ids = BTreeMap::new();
        let needs_networks = waiting.is_empty()
            || stack
                .services
                .iter()
                .any(|p| live.contains_key(&swarm_service(&stack.name, &p.name)));
        if needs_networks {
            let nets: BTreeSet<&String> = stack
                .services
                .iter()
                .filter_map(|p| p.desired.as_ref().ok())
                .flat_map(|d| d.networks.iter())
                .collect();
            for net in nets {
                let id = self.swarm.ensure_network(net, self.installation()).await?;
                network_ids.insert(net.clone(), id);
            }
        }
        if needs_networks {
            self.ensure_files(plan, stack, &mut network_ids).await?;
        }
        let live_ids: Vec<String> = live.values().map(|l| l.id.clone()).collect();
        let tasks = self.swarm.tasks_of(&live_ids).await?;
        let stack_obj = snapshot.stacks.get(&stack.name);
        let deadline = stack_obj
            .and_then(|s| s.spec.progress_deadline_seconds)
            .map(Duration::from_secs);
        let mut ready_services: BTreeSet<String> = BTreeSet::new();
        let mut outcomes: Vec<(String, ServiceOutcome)> = Vec::new();
        let mut failed: Vec<String> = Vec::new();
        for planned in &stack.services {
            if snapshot.services.contains_key(&planned.name) {
                etcd_writes += self
                    .ensure_finalizer(snapshot, Kind::Service, &planned.name)
                    .await?;
            }
            let mut status = snapshot
                .services
                .get(&planned.name)
                .map(|s| s.status.clone())
                .unwrap_or_default();
            status.stack = Some(stack.name.clone());
            let blocked_by: Vec<&str> = planned
                .depends_on
                .iter()
                .map(String::as_str)
                .filter(|d| !ready_services.contains(*d))
                .collect();
            let outcome = match &planned.desired {
                Err(message) => {
                    set_ready(
                        &mut status.common,
                        false,
                        reasons::INVALID_SPEC,
                        message.clone(),
                        now,
                    );
                    status.common.set_condition(
                        types::DEGRADED,
                        ConditionStatus::True,
                        reasons::INVALID_SPEC,
                        message.clone(),
                        now,
                    );
                    ServiceOutcome {
                        status,
                        ready: false,
                    }
                }
                Ok(desired) if !waiting.is_empty() && !live.contains_key(&desired.name) => {
                    set_ready(
                        &mut status.common,
                        false,
                        reasons::WAITING_FOR_STACK,
                        format!("waiting for stack {} to be Ready", waiting.join(", ")),
                        now,
                    );
                    ServiceOutcome {
                        status,
                        ready: false,
                    }
                }
                Ok(desired) if !blocked_by.is_empty() && !live.contains_key(&desired.name) => {
                    set_ready(
                        &mut status.common,
                        false,
                        reasons::WAITING_FOR_SERVICE,
                        format!("waiting for service {} to be Ready", blocked_by.join(", ")),
                        now,
                    );
                    ServiceOutcome {
                        status,
                        ready: false,
                    }
                }
                Ok(desired) => {
                    let known = live
                        .get(&desired.name)
                        .and_then(|l| tasks.get(&l.id))
                        .map(Vec::as_slice);
                    let ctx = ServiceContext {
                        live: live.get(&desired.name),
                        known_tasks: known,
                        network_ids: &network_ids,
                        deadline,
                        now,
                        adopt: plan.adopt,
                    };
                    self.converge_service(desired, status, &ctx).await?
                }
            };
            if outcome.ready {
                ready_services.insert(planned.name.clone());
            }
            if outcome.status.failed_spec_hash.is_some()
                && outcome.status.failed_spec_hash == outcome.status.spec_hash
                && outcome
                    .status
                    .common
                    .condition(types::READY)
                    .is_some_and(|c| c.status != ConditionStatus::True)
            {
                failed.push(planned.name.clone());
            }
            outcomes.push((planned.name.clone(), outcome));
        }
        let total = stack.services.len() as u64;
        let ready = stack.errors.is_empty() && ready_services.len() == stack.services.len();
        for (name, outcome) in outcomes {
            if let Some(svc) = snapshot.services.get(&name) {
                etcd_writes += self
                    .put_status(
                        Kind::Service,
                        &name,
                        svc.metadata.generation,
                        &svc.status,
                        outcome.status,
                    )
                    .await?;
            }
        }
        let Some(stack_obj) = stack_obj else {
            return Ok(StackOutcome { ready, etcd_writes });
        };
        let mut status = StackStatus {
            common: stack_obj.status.common.clone(),
            last_ready_revision: stack_obj.status.last_ready_revision,
            swarm_stack: Some(namespace),
            services_ready: ready_services.len() as u64,
            services_total: total,
        };
        if ready {
            let specs: BTreeMap<String, Value> = stack
                .services
                .iter()
                .map(|p| {
                    (
                        p.name.clone(),
                        snapshot
                            .service_specs
                            .get(&p.name)
                            .cloned()
                            .unwrap_or(Value::Null),
                    )
                })
                .collect();
            if let Some(rev) = self
                .store
                .record_ready(&stack.name, specs, revision, self.fence)
                .await?
            {
                status.last_ready_revision = Some(rev);
                etcd_writes += 1;
            }
            set_ready(
                &mut status.common,
                true,
                reasons::CONVERGED,
                format!("{total}/{total} services Ready"),
                now,
            );
            status.common.set_condition(
                types::PROGRESSING,
                ConditionStatus::False,
                reasons::CONVERGED,
                "",
                now,
            );
            status.common.set_condition(
                types::DEGRADED,
                ConditionStatus::False,
                reasons::CONVERGED,
                "",
                now,
            );
        } else if !stack.errors.is_empty() {
            let (reason, msg) = match plan.frozen.get(&stack.name) {
                Some(d) => (
                    d.reason,
                    format!(
                        "{}; nothing of this Stack is removed until this is mended",
                        stack.errors.join("; ")
                    ),
                ),
                None => (reasons::INVALID_STACK, stack.errors.join("; ")),
            };
            set_ready(&mut status.common, false, reason, msg.clone(), now);
            status
                .common
                .set_condition(types::DEGRADED, ConditionStatus::True, reason, msg, now);
        } else if !failed.is_empty() {
            let msg = format!("update failed for {}", failed.join(", "));
            set_ready(
                &mut status.common,
                false,
                reasons::UPDATE_FAILED,
                msg.clone(),
                now,
            );
            status.common.set_condition(
                types::PROGRESSING,
                ConditionStatus::False,
                reasons::UPDATE_FAILED,
                msg.clone(),
                now,
            );
            status.common.set_condition(
                types::DEGRADED,
                ConditionStatus::True,
                reasons::UPDATE_FAILED,
                msg.clone(),
                now,
            );
            if stack_obj.spec.rollback == Some(RollbackMode::Auto) {
                etcd_writes += self.auto_rollback(&stack.name).await?;
            }
        } else if !waiting.is_empty() {
            set_ready(
                &mut status.common,
                false,
                reasons::WAITING_FOR_STACK,
                format!("waiting for stack {} to be Ready", waiting.join(", ")),
                now,
            );
        } else {
            let msg = format!("{}/{total} services Ready", ready_services.len());
            set_ready(
                &mut status.common,
                false,
                reasons::PROGRESSING,
                msg.clone(),
                now,
            );
            status.common.set_condition(
                types::PROGRESSING,
                ConditionStatus::True,
                reasons::PROGRESSING,
                msg,
                now,
            );
        }
        etcd_writes += self
            .put_status(
                Kind::Stack,
                &stack.name,
                stack_obj.metadata.generation,
                &stack_obj.status,
                status,
            )
            .await?;
        Ok(StackOutcome { ready, etcd_writes })
    }

    /// `rollback: auto`: writes the last Ready set of specs back as the Services' specs
    /// (the rollback `kargo rollout undo` uses; a Service deleted since stays deleted).
    async fn auto_rollback(&self, stack: &str) -> Result<u64, ControllerError> {
        let records = self.store.history(stack).await?;
        let Some(last) = records.last() else {
            return Ok(0);
        };
        let steps = roll_back(
            self.store,
            last,
            None,
            RollbackBy::Controller,
            false,
            self.fence,
        )
        .await?;
        let mut writes = 0;
        let mut left_deleted = Vec::new();
        for (name, step) in steps {
            match step? {
                RollbackStep::Restored { .. } | RollbackStep::Recreated { .. } => writes += 1,
                RollbackStep::LeftDeleted => left_deleted.push(name),
                RollbackStep::Unchanged => {}
            }
        }
        if writes > 0 {
            let mut message = format!(
                "update failed; rolled back to the specs Ready at revision {}",
                last.revision
            );
            if !left_deleted.is_empty() {
                message.push_str(&format!(
                    " ({} deleted since: left deleted)",
                    left_deleted.join(", ")
                ));
            }
            self.events
                .record(
                    Kind::Stack,
                    stack,
                    EventType::Warning,
                    "RolledBack",
                    &message,
                    self.fence,
                )
                .await;
        }
        Ok(writes)
    }
}

/// The queue key of installation-wide work.
pub const INSTALLATION_KEY: &str = "installation";
