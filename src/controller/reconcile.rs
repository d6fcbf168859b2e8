//! One reconcile pass over the installation: plan, act on Swarm, write status back.
//!
//! Level-based and idempotent: a pass is never told why it runs. It compares the
//! desired ServiceSpec with the live one over the fields kargo sets, so a converged
//! installation costs no Docker write and no etcd write.

use std::collections::{BTreeMap, BTreeSet};

use chrono::Utc;
use serde::Serialize;
use serde_json::Value;
use tracing::{info, warn};

use crate::api::{
    CommonStatus, ConditionStatus, ConfigurationStatus, EnvironmentStatus, Kind, SWARM_FINALIZER,
    ServiceStatus, StackStatus,
};
use crate::store::{Fence, Store};
use crate::swarm::names::{OWNER_LABEL, SPEC_HASH_LABEL, swarm_stack};
use crate::swarm::{
    DesiredService, LiveService, SwarmClient, assess, comparable, covers, first_difference,
};

use super::ControllerError;
use super::plan::{Plan, Snapshot, plan};

/// What a pass saw and did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PassReport {
    /// Every deployed stack is Ready.
    pub all_ready: bool,
    /// Docker writes made by this pass.
    pub docker_writes: u64,
    /// etcd writes made by this pass.
    pub etcd_writes: u64,
}

/// Everything a pass needs.
pub struct Reconciler<'a> {
    /// The object store.
    pub store: &'a Store,
    /// The Docker client.
    pub swarm: &'a SwarmClient,
    /// The Configuration in force.
    pub configuration: &'a str,
    /// The leadership fence for etcd writes, when elected.
    pub fence: Option<&'a Fence>,
    /// The default catalog.
    pub catalog: &'a (dyn Fn(&str) -> Option<Value> + Sync),
}

struct ServiceOutcome {
    status: ServiceStatus,
    ready: bool,
}

impl Reconciler<'_> {
    fn installation(&self) -> &str {
        self.store.prefix()
    }

    /// Runs one pass. Errors from Docker or etcd abort the pass; the caller retries.
    pub async fn pass(&self) -> Result<PassReport, ControllerError> {
        let writes_before = self.swarm.total_writes();
        let mut etcd_writes = 0u64;
        let list = self.store.list_all().await?;
        let snapshot = Snapshot::from_objects(&list.items);
        let plan = plan(
            &snapshot,
            self.configuration,
            self.installation(),
            self.catalog,
        );
        let mut live: BTreeMap<String, LiveService> = self
            .swarm
            .list_services(self.installation())
            .await?
            .into_iter()
            .map(|s| (s.name.clone(), s))
            .collect();

        // Swarm objects no longer wanted go first (deleted, suspended, dropped objects).
        let wanted: BTreeSet<String> = plan
            .stacks
            .iter()
            .flat_map(|s| {
                s.services
                    .iter()
                    .map(move |p| crate::swarm::names::swarm_service(&s.name, &p.name))
            })
            .collect();
        for (name, svc) in &live {
            if !wanted.contains(name) {
                info!(service = %name, "removing Swarm service no longer wanted");
                self.swarm.remove_service(&svc.id).await?;
            }
        }
        live.retain(|name, _| wanted.contains(name));
        etcd_writes += self.release_finalizers(&snapshot, &live).await?;

        let mut network_ids = BTreeMap::new();
        if !plan.stacks.is_empty() {
            for net in &plan.networks {
                let id = self.swarm.ensure_network(net, self.installation()).await?;
                network_ids.insert(net.clone(), id);
            }
        }

        let now = Utc::now();
        let mut ready_stacks: BTreeSet<String> = BTreeSet::new();
        let mut stack_counts: BTreeMap<String, u64> = BTreeMap::new();
        let mut service_outcomes: BTreeMap<String, ServiceOutcome> = BTreeMap::new();
        let mut all_ready = plan.errors.is_empty();
        for stack in &plan.stacks {
            let waiting: Vec<&String> = stack
                .waits_for
                .iter()
                .filter(|s| !ready_stacks.contains(*s))
                .collect();
            let mut ready_services: BTreeSet<String> = BTreeSet::new();
            let mut stack_ready = stack.errors.is_empty();
            etcd_writes += self
                .ensure_finalizer(&snapshot, Kind::Stack, &stack.name)
                .await?;
            for planned in &stack.services {
                if snapshot.services.contains_key(&planned.name) {
                    etcd_writes += self
                        .ensure_finalizer(&snapshot, Kind::Service, &planned.name)
                        .await?;
                }
                let previous = snapshot
                    .services
                    .get(&planned.name)
                    .map(|s| s.status.clone())
                    .unwrap_or_default();
                let mut status = previous.clone();
                status.stack = Some(stack.name.clone());
                let blocked_by: Vec<&String> = planned
                    .depends_on
                    .iter()
                    .filter(|d| !ready_services.contains(*d))
                    .collect();
                let outcome = match &planned.desired {
                    Err(message) => {
                        status.common.set_condition(
                            "Ready",
                            ConditionStatus::False,
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
                        let msg = format!("waiting for stack {} to be Ready", join(&waiting));
                        status.common.set_condition(
                            "Ready",
                            ConditionStatus::False,
                            "WaitingForStack",
                            msg,
                            now,
                        );
                        ServiceOutcome {
                            status,
                            ready: false,
                        }
                    }
                    Ok(desired) if !blocked_by.is_empty() && !live.contains_key(&desired.name) => {
                        let msg = format!("waiting for service {} to be Ready", join(&blocked_by));
                        status.common.set_condition(
                            "Ready",
                            ConditionStatus::False,
                            "WaitingForService",
                            msg,
                            now,
                        );
                        ServiceOutcome {
                            status,
                            ready: false,
                        }
                    }
                    Ok(desired) => {
                        self.converge_service(
                            desired,
                            live.get(&desired.name),
                            &network_ids,
                            status,
                            now,
                        )
                        .await?
                    }
                };
                if outcome.ready {
                    ready_services.insert(planned.name.clone());
                } else {
                    stack_ready = false;
                }
                service_outcomes.insert(planned.name.clone(), outcome);
            }
            stack_counts.insert(stack.name.clone(), ready_services.len() as u64);
            if stack_ready {
                ready_stacks.insert(stack.name.clone());
            } else {
                all_ready = false;
            }
        }

        etcd_writes += self
            .write_statuses(
                &snapshot,
                &plan,
                &ready_stacks,
                &stack_counts,
                service_outcomes,
                now,
            )
            .await?;
        Ok(PassReport {
            all_ready,
            docker_writes: self.swarm.total_writes() - writes_before,
            etcd_writes,
        })
    }

    /// Creates or updates one Swarm service as needed and reports its convergence.
    async fn converge_service(
        &self,
        desired: &DesiredService,
        live: Option<&LiveService>,
        network_ids: &BTreeMap<String, String>,
        mut status: ServiceStatus,
        now: chrono::DateTime<Utc>,
    ) -> Result<ServiceOutcome, ControllerError> {
        let spec = resolve_ids(&desired.spec, network_ids);
        let (id, mut version) = match live {
            None => {
                info!(service = %desired.name, "creating Swarm service");
                let id = self.swarm.create_service(&desired.name, &spec).await?;
                (id, 0)
            }
            Some(l) => {
                let hash_differs = l.labels.get(SPEC_HASH_LABEL) != Some(&desired.hash);
                let seen = comparable(&spec);
                if hash_differs || !covers(&l.spec, &seen) {
                    let why =
                        first_difference(&l.spec, &seen, "").unwrap_or_else(|| "spec hash".into());
                    info!(service = %desired.name, field = %why, "updating Swarm service");
                    self.swarm
                        .update_service(&l.id, &desired.name, l.version, &spec)
                        .await?;
                }
                (l.id.clone(), l.version)
            }
        };
        let current = self.swarm.inspect_service(&id).await?;
        let tasks = self.swarm.tasks(&id).await?;
        let conv = match &current {
            Some(c) => {
                version = c.version;
                assess(c, &spec, &tasks, desired.mode, desired.replicas)
            }
            None => crate::swarm::Convergence {
                running: 0,
                desired: desired.replicas,
                ready: false,
                reason: "Missing",
                message: "the Swarm service disappeared".into(),
                errors: Vec::new(),
            },
        };
        status.image = desired
            .spec
            .pointer("/TaskTemplate/ContainerSpec/Image")
            .and_then(Value::as_str)
            .map(str::to_string);
        status.swarm_name = Some(desired.name.clone());
        status.service_id = Some(id);
        status.version = Some(version);
        status.running_tasks = conv.running;
        status.desired_tasks = conv.desired;
        status.update_state = current.as_ref().and_then(|c| c.update_state.clone());
        status.task_errors = conv.errors.clone();
        status.spec_hash = Some(desired.hash.clone());
        let cs = if conv.ready {
            ConditionStatus::True
        } else {
            ConditionStatus::False
        };
        status
            .common
            .set_condition("Ready", cs, conv.reason, conv.message, now);
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
        let has = match kind {
            Kind::Stack => snapshot.stacks.get(name).map(|s| &s.metadata),
            Kind::Service => snapshot.services.get(name).map(|s| &s.metadata),
            _ => None,
        }
        .map(|m| {
            m.finalizers.iter().any(|f| f == SWARM_FINALIZER) || m.deletion_timestamp.is_some()
        });
        if has != Some(false) {
            return Ok(0);
        }
        let w = self
            .store
            .modify(kind, name, self.fence, |o| {
                if !o.metadata.finalizers.iter().any(|f| f == SWARM_FINALIZER) {
                    o.metadata.finalizers.push(SWARM_FINALIZER.to_string());
                }
            })
            .await?;
        Ok(u64::from(w.changed))
    }

    /// Drops the finalizer of deleted Stacks and Services whose Swarm services are gone.
    async fn release_finalizers(
        &self,
        snapshot: &Snapshot,
        live: &BTreeMap<String, LiveService>,
    ) -> Result<u64, ControllerError> {
        let mut writes = 0;
        let owners: Vec<&str> = live
            .values()
            .filter_map(|s| s.labels.get(OWNER_LABEL).map(String::as_str))
            .collect();
        let mut release = Vec::new();
        for (name, s) in &snapshot.stacks {
            if s.metadata.deletion_timestamp.is_some()
                && s.metadata.finalizers.iter().any(|f| f == SWARM_FINALIZER)
                && !owners
                    .iter()
                    .any(|o| o.split('/').next() == Some(name.as_str()))
            {
                release.push((Kind::Stack, name.clone()));
            }
        }
        for (name, s) in &snapshot.services {
            if s.metadata.deletion_timestamp.is_some()
                && s.metadata.finalizers.iter().any(|f| f == SWARM_FINALIZER)
                && !owners
                    .iter()
                    .any(|o| o.split('/').nth(1) == Some(name.as_str()))
            {
                release.push((Kind::Service, name.clone()));
            }
        }
        for (kind, name) in release {
            info!(%kind, %name, "Swarm objects removed; releasing finalizer");
            let w = self
                .store
                .modify(kind, &name, self.fence, |o| {
                    o.metadata.finalizers.retain(|f| f != SWARM_FINALIZER)
                })
                .await?;
            writes += u64::from(w.changed);
        }
        Ok(writes)
    }

    async fn write_statuses(
        &self,
        snapshot: &Snapshot,
        plan: &Plan,
        ready_stacks: &BTreeSet<String>,
        stack_counts: &BTreeMap<String, u64>,
        mut services: BTreeMap<String, ServiceOutcome>,
        now: chrono::DateTime<Utc>,
    ) -> Result<u64, ControllerError> {
        let mut writes = 0;
        for (name, svc) in &snapshot.services {
            if svc.metadata.deletion_timestamp.is_some() {
                continue;
            }
            let status = match services.remove(name) {
                Some(o) => o.status,
                None => {
                    let mut s = ServiceStatus {
                        common: svc.status.common.clone(),
                        ..ServiceStatus::default()
                    };
                    s.common.set_condition(
                        "Ready",
                        ConditionStatus::False,
                        "NotDeployed",
                        "no deployed Stack lists this Service",
                        now,
                    );
                    s
                }
            };
            writes += self
                .put_status(
                    Kind::Service,
                    name,
                    svc.metadata.generation,
                    &svc.status,
                    status,
                )
                .await?;
        }
        for (name, st) in &snapshot.stacks {
            if st.metadata.deletion_timestamp.is_some() {
                continue;
            }
            let mut status = StackStatus {
                common: st.status.common.clone(),
                last_ready_revision: st.status.last_ready_revision,
                ..StackStatus::default()
            };
            match plan.stacks.iter().find(|p| &p.name == name) {
                Some(p) => {
                    let total = p.services.len() as u64;
                    let ready = stack_counts.get(name).copied().unwrap_or_default();
                    status.swarm_stack = Some(swarm_stack(name));
                    status.services_total = total;
                    status.services_ready = ready.min(total);
                    let (cs, reason, msg) = if ready_stacks.contains(name) {
                        (
                            ConditionStatus::True,
                            "Converged",
                            format!("{total}/{total} services Ready"),
                        )
                    } else if !p.errors.is_empty() {
                        (ConditionStatus::False, "InvalidStack", p.errors.join("; "))
                    } else if let Some(w) = p.waits_for.iter().find(|w| !ready_stacks.contains(*w))
                    {
                        (
                            ConditionStatus::False,
                            "WaitingForStack",
                            format!("waiting for stack {w} to be Ready"),
                        )
                    } else {
                        (
                            ConditionStatus::False,
                            "Progressing",
                            format!("{}/{total} services Ready", status.services_ready),
                        )
                    };
                    status.common.set_condition("Ready", cs, reason, msg, now);
                }
                None => {
                    let reason = if st.spec.suspend {
                        "Suspended"
                    } else {
                        "NotDeployed"
                    };
                    let msg = if st.spec.suspend {
                        "suspended: its Swarm objects are removed"
                    } else {
                        "the Environment in force does not list this Stack"
                    };
                    status
                        .common
                        .set_condition("Ready", ConditionStatus::False, reason, msg, now);
                }
            }
            writes += self
                .put_status(
                    Kind::Stack,
                    name,
                    st.metadata.generation,
                    &st.status,
                    status,
                )
                .await?;
        }
        for (name, env) in &snapshot.environments {
            let mut status = EnvironmentStatus {
                common: env.status.common.clone(),
                variables_resolved: env.spec.variables.len() as u64,
                ..EnvironmentStatus::default()
            };
            status.common.set_condition(
                "Ready",
                ConditionStatus::True,
                "Resolved",
                "every variable resolves",
                now,
            );
            writes += self
                .put_status(
                    Kind::Environment,
                    name,
                    env.metadata.generation,
                    &env.status,
                    status,
                )
                .await?;
        }
        for (name, cfg) in &snapshot.configurations {
            let mut status = ConfigurationStatus {
                common: cfg.status.common.clone(),
                digest: cfg.status.digest.clone(),
                ..ConfigurationStatus::default()
            };
            if plan.configuration.as_deref() == Some(name.as_str()) {
                status.stacks = plan.stacks.iter().map(|s| s.name.clone()).collect();
                status.services = plan
                    .stacks
                    .iter()
                    .flat_map(|s| {
                        s.services
                            .iter()
                            .map(move |p| format!("{}/{}", s.name, p.name))
                    })
                    .collect();
                let not_ready: Vec<&str> = plan
                    .stacks
                    .iter()
                    .map(|s| s.name.as_str())
                    .filter(|s| !ready_stacks.contains(*s))
                    .collect();
                let (cs, reason, msg) = if !plan.errors.is_empty() {
                    (
                        ConditionStatus::False,
                        "InvalidConfiguration",
                        plan.errors.join("; "),
                    )
                } else if not_ready.is_empty() {
                    (
                        ConditionStatus::True,
                        "Converged",
                        format!("{} stacks Ready", plan.stacks.len()),
                    )
                } else {
                    (
                        ConditionStatus::False,
                        "Progressing",
                        format!("stacks not Ready: {}", not_ready.join(", ")),
                    )
                };
                status.common.set_condition("Ready", cs, reason, msg, now);
            } else {
                status.common.set_condition(
                    "Ready",
                    ConditionStatus::False,
                    "NotInForce",
                    "another Configuration is in force",
                    now,
                );
            }
            writes += self
                .put_status(
                    Kind::Configuration,
                    name,
                    cfg.metadata.generation,
                    &cfg.status,
                    status,
                )
                .await?;
        }
        Ok(writes)
    }

    /// Writes a status when it differs from the stored one; returns the number of writes.
    async fn put_status<T: Serialize + PartialEq + HasCommon>(
        &self,
        kind: Kind,
        name: &str,
        generation: Option<i64>,
        stored: &T,
        mut next: T,
    ) -> Result<u64, ControllerError> {
        next.common_mut().observed_generation = generation;
        if &next == stored {
            return Ok(0);
        }
        let value =
            serde_json::to_value(&next).map_err(|e| ControllerError::Internal(e.to_string()))?;
        match self
            .store
            .update_status(kind, name, &value, self.fence)
            .await
        {
            Ok(w) => Ok(u64::from(w.changed)),
            Err(crate::store::StoreError::NotFound { .. }) => Ok(0),
            Err(e) => {
                warn!(%kind, %name, error = %e, "status write failed");
                Err(e.into())
            }
        }
    }
}

/// Status types that carry the common fields.
pub trait HasCommon {
    /// The common fields.
    fn common_mut(&mut self) -> &mut CommonStatus;
}

macro_rules! has_common {
    ($($t:ty),*) => {$(
        impl HasCommon for $t {
            fn common_mut(&mut self) -> &mut CommonStatus { &mut self.common }
        }
    )*};
}
has_common!(
    ServiceStatus,
    StackStatus,
    EnvironmentStatus,
    ConfigurationStatus
);

fn join(items: &[&String]) -> String {
    items
        .iter()
        .map(|s| s.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Network names → IDs in the task template, as the engine stores them.
fn resolve_ids(spec: &Value, network_ids: &BTreeMap<String, String>) -> Value {
    let mut spec = spec.clone();
    if let Some(nets) = spec
        .pointer_mut("/TaskTemplate/Networks")
        .and_then(Value::as_array_mut)
    {
        for n in nets {
            if let Some(target) = n.get_mut("Target")
                && let Some(id) = target.as_str().and_then(|t| network_ids.get(t))
            {
                *target = Value::String(id.clone());
            }
        }
    }
    spec
}
