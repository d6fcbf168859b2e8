//! Reconciling onto Swarm: one Stack at a time (the unit of reconciliation), plus the
//! installation-wide work (garbage collection, finalizers, files, node labels; the
//! statuses of what no stack covers are in [`super::status`]).
//!
//! Level-based and idempotent: a reconcile is never told why it runs. It compares the
//! desired ServiceSpec with the live one over the fields kargo sets, so a converged
//! installation costs no Docker write and no etcd write.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;
use tracing::{debug, info};

use crate::api::{
    ConditionStatus, Kind, RollbackMode, SWARM_FINALIZER, ServiceStatus, StackStatus,
};
use crate::store::{Fence, Store, StoreError};
use crate::swarm::names::{
    INSTALLATION_LABEL, OWNER_LABEL, SPEC_HASH_LABEL, STACK_NAMESPACE_LABEL, swarm_service,
    swarm_stack,
};
use crate::swarm::{
    Convergence, DesiredService, LiveService, SwarmClient, TaskInfo, assess, comparable, covers,
    first_difference,
};

use super::ControllerError;
use super::events::{EventRecorder, EventType};
use super::history;
use super::plan::{CASCADE_ANNOTATION, Plan, PlannedStack, Snapshot, plan};
use super::status::set_ready;

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
    /// The Docker client (with the leader's write guard, when elected).
    pub swarm: &'a SwarmClient,
    /// The Configuration in force.
    pub configuration: &'a str,
    /// The leadership fence for etcd writes, when elected.
    pub fence: Option<&'a Fence>,
    /// The default catalog.
    pub catalog: &'a (dyn Fn(&str) -> Option<Value> + Sync),
    /// Where events go.
    pub events: &'a EventRecorder,
}

/// What converging one service needs besides its desired spec.
#[derive(Clone, Copy)]
struct ServiceContext<'a> {
    /// The live service kargo owns, if any.
    live: Option<&'a LiveService>,
    /// Its tasks as the stack's one task query saw them.
    known_tasks: Option<&'a [TaskInfo]>,
    /// Network, config and secret IDs by name.
    network_ids: &'a BTreeMap<String, String>,
    /// The stack's progress deadline.
    deadline: Option<Duration>,
    /// The time of this reconcile.
    now: DateTime<Utc>,
    /// Take over a same-named service kargo does not own.
    adopt: bool,
}

struct ServiceOutcome {
    status: ServiceStatus,
    ready: bool,
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

    /// Reads every object and types it.
    pub async fn snapshot(&self) -> Result<(Snapshot, i64), ControllerError> {
        let list = self.store.list_all().await?;
        Ok((Snapshot::from_objects(&list.items), list.revision))
    }

    /// The plan for a snapshot.
    pub fn plan(&self, snapshot: &Snapshot) -> Plan {
        plan(
            snapshot,
            self.configuration,
            self.installation(),
            self.catalog,
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
        let plan = self.plan(&snapshot);
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
        for svc in &live {
            if wanted.contains(&svc.name) {
                continue;
            }
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
                        &format!("removed Swarm service {} (no longer wanted)", svc.name),
                        self.fence,
                    )
                    .await;
            }
        }
        live.retain(|s| wanted.contains(&s.name));
        self.collect_files(plan).await?;
        self.sync_node_labels(snapshot, plan).await?;
        self.release_finalizers(snapshot, &live).await
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
        let live: BTreeMap<String, LiveService> = self
            .swarm
            .list_services(self.installation())
            .await?
            .into_iter()
            .filter(|s| s.labels.get(STACK_NAMESPACE_LABEL) == Some(&namespace))
            .map(|s| (s.name.clone(), s))
            .collect();
        // Services of this stack that it no longer lists go first (removal in reverse order).
        let wanted: BTreeSet<String> = stack
            .services
            .iter()
            .map(|p| swarm_service(&stack.name, &p.name))
            .collect();
        for (name, svc) in live.iter().rev() {
            if !wanted.contains(name) {
                self.swarm.remove_service(&svc.id).await?;
                self.events
                    .record(
                        Kind::Stack,
                        &stack.name,
                        EventType::Normal,
                        "Removed",
                        &format!("removed Swarm service {name}"),
                        self.fence,
                    )
                    .await;
            }
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
                        "InvalidSpec",
                        message.clone(),
                        now,
                    );
                    status.common.set_condition(
                        "Degraded",
                        ConditionStatus::True,
                        "InvalidSpec",
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
                        "WaitingForStack",
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
                        "WaitingForService",
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
                    .condition("Ready")
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
            if let Some(rev) =
                history::record_ready(self.store, &stack.name, specs, revision, self.fence).await?
            {
                status.last_ready_revision = Some(rev);
                etcd_writes += 1;
            }
            set_ready(
                &mut status.common,
                true,
                "Converged",
                format!("{total}/{total} services Ready"),
                now,
            );
            status.common.set_condition(
                "Progressing",
                ConditionStatus::False,
                "Converged",
                "",
                now,
            );
            status
                .common
                .set_condition("Degraded", ConditionStatus::False, "Converged", "", now);
        } else if !stack.errors.is_empty() {
            set_ready(
                &mut status.common,
                false,
                "InvalidStack",
                stack.errors.join("; "),
                now,
            );
            status.common.set_condition(
                "Degraded",
                ConditionStatus::True,
                "InvalidStack",
                stack.errors.join("; "),
                now,
            );
        } else if !failed.is_empty() {
            let msg = format!("update failed for {}", failed.join(", "));
            set_ready(&mut status.common, false, "UpdateFailed", msg.clone(), now);
            status.common.set_condition(
                "Progressing",
                ConditionStatus::False,
                "UpdateFailed",
                msg.clone(),
                now,
            );
            status.common.set_condition(
                "Degraded",
                ConditionStatus::True,
                "UpdateFailed",
                msg.clone(),
                now,
            );
            if stack_obj.spec.rollback == Some(RollbackMode::Auto) {
                etcd_writes += self.auto_rollback(snapshot, &stack.name).await?;
            }
        } else if !waiting.is_empty() {
            set_ready(
                &mut status.common,
                false,
                "WaitingForStack",
                format!("waiting for stack {} to be Ready", waiting.join(", ")),
                now,
            );
        } else {
            let msg = format!("{}/{total} services Ready", ready_services.len());
            set_ready(&mut status.common, false, "Progressing", msg.clone(), now);
            status.common.set_condition(
                "Progressing",
                ConditionStatus::True,
                "Progressing",
                msg,
                now,
            );
        }
        let _ = plan;
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

    /// `rollback: auto`: writes the last Ready set of specs back as the Services' specs.
    async fn auto_rollback(
        &self,
        snapshot: &Snapshot,
        stack: &str,
    ) -> Result<u64, ControllerError> {
        let records = history::records(self.store, stack).await?;
        let Some(last) = records.last() else {
            return Ok(0);
        };
        let mut writes = 0;
        for (name, spec) in &last.services {
            if spec.is_null() || snapshot.service_specs.get(name) == Some(spec) {
                continue;
            }
            let target = spec.clone();
            let w = self
                .store
                .modify(Kind::Service, name, self.fence, |o| o.spec = target.clone())
                .await?;
            writes += u64::from(w.changed);
        }
        if writes > 0 {
            self.events
                .record(
                    Kind::Stack,
                    stack,
                    EventType::Warning,
                    "RolledBack",
                    &format!(
                        "update failed; rolled back to the specs Ready at revision {}",
                        last.revision
                    ),
                    self.fence,
                )
                .await;
        }
        Ok(writes)
    }

    /// Creates or updates one Swarm service as needed and reports its convergence.
    async fn converge_service(
        &self,
        desired: &DesiredService,
        mut status: ServiceStatus,
        ctx: &ServiceContext<'_>,
    ) -> Result<ServiceOutcome, ControllerError> {
        let ServiceContext {
            live,
            known_tasks,
            network_ids,
            deadline,
            now,
            adopt,
        } = *ctx;
        let spec = resolve_ids(&desired.spec, network_ids);
        let kind = Kind::Service;
        let svc = desired.service.as_str();
        // A spec that failed is not pushed again until it changes (DESIGN.md §6).
        let failed_before = status.failed_spec_hash.as_deref() == Some(desired.hash.as_str());
        if status.failed_spec_hash.is_some() && !failed_before {
            status.failed_spec_hash = None;
        }
        let mut wrote = false;
        // A same-named service kargo does not own (left by Kargo or `docker stack deploy`).
        let foreign = match live {
            None => self.swarm.inspect_service(&desired.name).await?,
            Some(_) => None,
        };
        if let Some(f) = &foreign {
            if !adopt {
                let msg = format!(
                    "Swarm service {} exists and kargo does not own it; set `adopt: true` in the Environment to take it over",
                    desired.name
                );
                if status.common.condition("Ready").map(|c| c.reason.as_str()) != Some("NotAdopted")
                {
                    self.events
                        .record(
                            kind,
                            svc,
                            EventType::Warning,
                            "NotAdopted",
                            &msg,
                            self.fence,
                        )
                        .await;
                }
                set_ready(&mut status.common, false, "NotAdopted", msg, now);
                return Ok(ServiceOutcome {
                    status,
                    ready: false,
                });
            }
            self.swarm
                .update_service(&f.id, &desired.name, f.version, &spec)
                .await?;
            self.events
                .record(
                    kind,
                    svc,
                    EventType::Normal,
                    "Adopted",
                    &format!(
                        "took over Swarm service {} (same ID, same volumes)",
                        desired.name
                    ),
                    self.fence,
                )
                .await;
            status.last_push_time = Some(now);
            wrote = true;
        }
        let id = match (live, &foreign) {
            (None, Some(f)) => f.id.clone(),
            (None, None) => {
                wrote = true;
                let id = self.swarm.create_service(&desired.name, &spec).await?;
                status.last_push_time = Some(now);
                self.events
                    .record(
                        kind,
                        svc,
                        EventType::Normal,
                        "Created",
                        &format!("created Swarm service {}", desired.name),
                        self.fence,
                    )
                    .await;
                id
            }
            (Some(l), _) => {
                let seen = comparable(&spec);
                let differs =
                    l.labels.get(SPEC_HASH_LABEL) != Some(&desired.hash) || !covers(&l.spec, &seen);
                if differs && !failed_before {
                    let why = first_difference(&l.spec, &seen, "")
                        .unwrap_or_else(|| "/Labels/dev.kargo.spec-hash".into());
                    self.swarm
                        .update_service(&l.id, &desired.name, l.version, &spec)
                        .await?;
                    status.last_push_time = Some(now);
                    self.events
                        .record(
                            kind,
                            svc,
                            EventType::Normal,
                            "Updated",
                            &format!("updated Swarm service {} ({why} differed)", desired.name),
                            self.fence,
                        )
                        .await;
                } else if differs {
                    debug!(service = %desired.name, "spec failed before; not pushed again");
                }
                l.id.clone()
            }
        };
        // Without a write, what the stack's list and task query saw is current.
        let (current, tasks) = match (wrote, live, known_tasks) {
            (false, Some(l), Some(t)) => (Some(l.clone()), t.to_vec()),
            (false, Some(l), None) => (Some(l.clone()), Vec::new()),
            _ => (
                self.swarm.inspect_service(&id).await?,
                self.swarm.tasks(&id).await?,
            ),
        };
        let conv = match &current {
            Some(c) => assess(c, &spec, &tasks, desired.mode, desired.replicas),
            None => Convergence {
                running: 0,
                desired: desired.replicas,
                ready: false,
                reason: "Missing",
                message: "the Swarm service disappeared".into(),
                errors: Vec::new(),
            },
        };
        let mut reason = conv.reason;
        let mut message = conv.message.clone();
        if !conv.ready && !failed_before {
            let rolled_back = reason == "RolledBack";
            let overdue = deadline
                .zip(status.last_push_time)
                .is_some_and(|(d, t)| (now - t).to_std().is_ok_and(|elapsed| elapsed > d));
            if rolled_back || overdue {
                status.failed_spec_hash = Some(desired.hash.clone());
                if overdue && !rolled_back {
                    reason = "ProgressDeadlineExceeded";
                    message = format!("not Ready within the progress deadline: {message}");
                }
                self.events
                    .record(kind, svc, EventType::Warning, reason, &message, self.fence)
                    .await;
            }
        } else if !conv.ready && failed_before && reason != "RolledBack" {
            reason = "UpdateFailed";
            message = format!(
                "this spec failed before and is not pushed again until it changes: {message}"
            );
        }
        status.image = desired
            .spec
            .pointer("/TaskTemplate/ContainerSpec/Image")
            .and_then(Value::as_str)
            .map(str::to_string);
        status.swarm_name = Some(desired.name.clone());
        status.service_id = Some(id);
        status.version = current.as_ref().map(|c| c.version);
        status.running_tasks = conv.running;
        status.desired_tasks = conv.desired;
        status.update_state = current.as_ref().and_then(|c| c.update_state.clone());
        status.task_errors = conv.errors.clone();
        status.spec_hash = Some(desired.hash.clone());
        set_ready(&mut status.common, conv.ready, reason, message.clone(), now);
        let progressing = !conv.ready && status.failed_spec_hash.is_none();
        status.common.set_condition(
            "Progressing",
            if progressing {
                ConditionStatus::True
            } else {
                ConditionStatus::False
            },
            if progressing { "Progressing" } else { reason },
            if progressing {
                message.clone()
            } else {
                String::new()
            },
            now,
        );
        let degraded =
            status.failed_spec_hash.is_some() || (!conv.ready && !conv.errors.is_empty());
        status.common.set_condition(
            "Degraded",
            if degraded {
                ConditionStatus::True
            } else {
                ConditionStatus::False
            },
            if degraded { reason } else { "Converged" },
            if degraded { message } else { String::new() },
            now,
        );
        Ok(ServiceOutcome {
            status,
            ready: conv.ready,
        })
    }

    async fn ensure_finalizer(
        &self,
        snapshot: &Snapshot,
        kind: Kind,
        name: &str,
    ) -> Result<u64, ControllerError> {
        let meta = match kind {
            Kind::Stack => snapshot.stacks.get(name).map(|s| &s.metadata),
            Kind::Service => snapshot.services.get(name).map(|s| &s.metadata),
            _ => None,
        };
        let missing = meta.is_some_and(|m| {
            m.deletion_timestamp.is_none() && !m.finalizers.iter().any(|f| f == SWARM_FINALIZER)
        });
        if !missing {
            return Ok(0);
        }
        let w = self
            .store
            .modify(kind, name, self.fence, |o| {
                if o.metadata.deletion_timestamp.is_none()
                    && !o.metadata.finalizers.iter().any(|f| f == SWARM_FINALIZER)
                {
                    o.metadata.finalizers.push(SWARM_FINALIZER.to_string());
                }
            })
            .await;
        match w {
            Ok(w) => Ok(u64::from(w.changed)),
            Err(StoreError::NotFound { .. }) => Ok(0),
            Err(e) => Err(e.into()),
        }
    }

    /// Drops the finalizer of deleted Stacks and Services whose Swarm services are gone.
    async fn release_finalizers(
        &self,
        snapshot: &Snapshot,
        live: &[LiveService],
    ) -> Result<u64, ControllerError> {
        let owners: Vec<(&str, &str)> = live
            .iter()
            .filter_map(|s| s.labels.get(OWNER_LABEL))
            .filter_map(|o| o.split_once('/'))
            .collect();
        let finalizing = |m: &crate::api::ObjectMeta| {
            m.deletion_timestamp.is_some() && m.finalizers.iter().any(|f| f == SWARM_FINALIZER)
        };
        let mut release = Vec::new();
        for (name, s) in &snapshot.stacks {
            if finalizing(&s.metadata) && !owners.iter().any(|(st, _)| st == name) {
                release.push((Kind::Stack, name.clone()));
            }
        }
        for (name, s) in &snapshot.services {
            if finalizing(&s.metadata) && !owners.iter().any(|(_, sv)| sv == name) {
                release.push((Kind::Service, name.clone()));
            }
        }
        let mut writes = 0;
        for (kind, name) in release {
            info!(%kind, %name, "Swarm objects removed; releasing finalizer");
            match self
                .store
                .modify(kind, &name, self.fence, |o| {
                    o.metadata.finalizers.retain(|f| f != SWARM_FINALIZER)
                })
                .await
            {
                Ok(w) => writes += u64::from(w.changed),
                Err(StoreError::NotFound { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(writes)
    }
}

/// The queue key of installation-wide work.
pub const INSTALLATION_KEY: &str = "installation";

/// Network, config and secret names → IDs in the task template, as the engine stores
/// them. `ids` maps network names, and `config:<name>` / `secret:<name>`, to IDs.
fn resolve_ids(spec: &Value, ids: &BTreeMap<String, String>) -> Value {
    let mut spec = spec.clone();
    if let Some(nets) = spec
        .pointer_mut("/TaskTemplate/Networks")
        .and_then(Value::as_array_mut)
    {
        for n in nets {
            if let Some(target) = n.get_mut("Target")
                && let Some(id) = target.as_str().and_then(|t| ids.get(t))
            {
                *target = Value::String(id.clone());
            }
        }
    }
    for (list, name_key, id_key, prefix) in [
        (
            "/TaskTemplate/ContainerSpec/Configs",
            "ConfigName",
            "ConfigID",
            "config:",
        ),
        (
            "/TaskTemplate/ContainerSpec/Secrets",
            "SecretName",
            "SecretID",
            "secret:",
        ),
    ] {
        if let Some(refs) = spec.pointer_mut(list).and_then(Value::as_array_mut) {
            for r in refs {
                let id = r
                    .get(name_key)
                    .and_then(Value::as_str)
                    .and_then(|n| ids.get(&format!("{prefix}{n}")))
                    .cloned();
                if let (Some(id), Some(obj)) = (id, r.as_object_mut()) {
                    obj.insert(id_key.into(), Value::String(id));
                }
            }
        }
    }
    spec
}
