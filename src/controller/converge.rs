//! Converging one Swarm service of a stack: create, adopt or update it when its spec
//! differs from the desired one over the fields kargo sets, then judge its tasks
//! (see [`super::reconcile`] for the stack around it).

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;
use tracing::debug;

use crate::api::{ConditionStatus, Kind, ServiceStatus};
use crate::swarm::names::SPEC_HASH_LABEL;
use crate::swarm::{
    Convergence, DesiredService, LiveService, TaskInfo, assess, changed_fields, comparable, covers,
};

use super::ControllerError;
use super::events::EventType;
use super::reconcile::Reconciler;
use super::status::set_ready;

/// What converging one service needs besides its desired spec.
#[derive(Clone, Copy)]
pub(super) struct ServiceContext<'a> {
    /// The live service kargo owns, if any.
    pub(super) live: Option<&'a LiveService>,
    /// Its tasks as the stack's one task query saw them.
    pub(super) known_tasks: Option<&'a [TaskInfo]>,
    /// Network, config and secret IDs by name.
    pub(super) network_ids: &'a BTreeMap<String, String>,
    /// The stack's progress deadline.
    pub(super) deadline: Option<Duration>,
    /// The time of this reconcile.
    pub(super) now: DateTime<Utc>,
    /// Take over a same-named service kargo does not own.
    pub(super) adopt: bool,
}

pub(super) struct ServiceOutcome {
    pub(super) status: ServiceStatus,
    pub(super) ready: bool,
}

impl Reconciler<'_> {
    /// Creates or updates one Swarm service as needed and reports its convergence.
    pub(super) async fn converge_service(
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
        // A spec that failed is not pushed again until it changes (docs/design.md, "The controller").
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
                    let why = changed_fields(&l.spec, &spec);
                    self.swarm
                        .update_service(&l.id, &desired.name, l.version, &spec)
                        .await?;
                    // Judge the service as it is now, not as the stack's list saw it before.
                    wrote = true;
                    status.last_push_time = Some(now);
                    self.events
                        .record(
                            kind,
                            svc,
                            EventType::Normal,
                            "Updated",
                            &format!("updated Swarm service {}: {why}", desired.name),
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
        if !conv.ready {
            // Name the node to blame, if any (costs a node list only while not Ready).
            let nodes = self.swarm.nodes().await.unwrap_or_default();
            if let Some(why) = crate::swarm::node_trouble(&spec, &tasks, &nodes) {
                message = format!("{message}; {why}");
            }
        }
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
}

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
