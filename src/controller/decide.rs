//! Deciding apart from doing: what a reconcile of one Stack should do, as a pure function
//! of what is desired (the plan and the stored objects with their statuses) and what is
//! observed (the live Swarm services and tasks). No async and no I/O here: the
//! [`Reconciler`](super::Reconciler) gathers the facts, calls [`decide`], and performs the
//! [`Decision`] (`super::execute`), the only place that writes.
//!
//! A decision that pushes a service is made again once the push is done and the service
//! observed anew (`Observed::pushed` says what was pushed), so the statuses and events
//! that reach etcd are always those of the last decision, made on the freshest facts.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::api::conditions::{reasons, types};
use crate::api::{CommonStatus, ConditionStatus, Kind, RollbackMode, ServiceStatus, StackStatus};
use crate::plan::intent::{Verdict, removal_verdict};
use crate::plan::{Doubt, Plan, PlannedStack, Snapshot};
use crate::swarm::names::{OWNER_LABEL, swarm_service, swarm_stack};
use crate::swarm::{LiveService, NodeInfo, TaskInfo};

use super::converge::{ServiceFacts, decide_service};
use super::events::EventType;

/// What one Stack's reconcile is asked to reach.
#[derive(Clone, Copy)]
pub struct Desired<'a> {
    /// The stored objects; their statuses are where the new ones start from.
    pub snapshot: &'a Snapshot,
    /// The plan of the installation (adoption, frozen Stacks).
    pub plan: &'a Plan,
    /// The Stack, as planned: its services rendered, in order.
    pub stack: &'a PlannedStack,
    /// The Stacks it waits for that are not Ready now.
    pub waiting: &'a [String],
    /// The installation (its etcd prefix, the label on what it owns): a same-named
    /// service labelled by another one is never adopted.
    pub installation: &'a str,
}

/// What the reconcile saw of Swarm.
#[derive(Clone, Debug, Default)]
pub struct Observed {
    /// The live services of the Stack's namespace that kargo owns, by Swarm name.
    pub live: BTreeMap<String, LiveService>,
    /// Their tasks, by service ID, newest first.
    pub tasks: BTreeMap<String, Vec<TaskInfo>>,
    /// Same-named services kargo does not own, by Swarm name (looked up for the desired
    /// services that have no live one).
    pub foreign: BTreeMap<String, LiveService>,
    /// Network, config and secret IDs: network names, and `config:<name>` /
    /// `secret:<name>`, to IDs.
    pub ids: BTreeMap<String, String>,
    /// The Swarm's nodes, once fetched (only needed to explain a service not Ready).
    pub nodes: Option<Vec<NodeInfo>>,
    /// Services this reconcile already created or updated (Swarm name → ID): never
    /// pushed twice in one reconcile, judged as observed after the push.
    pub pushed: BTreeMap<String, String>,
    /// Services this reconcile may not push (Swarm name → (reason, message)): their
    /// registry's credentials could not be had or were refused. What runs stays.
    pub blocked: BTreeMap<String, (&'static str, String)>,
    /// The time of the reconcile.
    pub now: DateTime<Utc>,
}

/// A Docker write a decision asks for.
#[derive(Clone, Debug, PartialEq)]
pub enum Operation {
    /// Create the Swarm service `name` from `spec`.
    Create {
        /// Swarm name.
        name: String,
        /// The spec, IDs resolved.
        spec: Value,
    },
    /// Replace the spec of a service kargo owns (drift, or a new desired spec).
    Update {
        /// Swarm ID.
        id: String,
        /// Swarm name.
        name: String,
        /// The version last read.
        version: u64,
        /// The spec, IDs resolved.
        spec: Value,
    },
    /// Take over a same-named service kargo does not own (`adopt: true`): same ID, same volumes.
    Adopt {
        /// Swarm ID.
        id: String,
        /// Swarm name.
        name: String,
        /// The version last read.
        version: u64,
        /// The spec, IDs resolved.
        spec: Value,
    },
}

impl Operation {
    /// The Swarm name of the service written.
    pub fn name(&self) -> &str {
        match self {
            Operation::Create { name, .. }
            | Operation::Update { name, .. }
            | Operation::Adopt { name, .. } => name,
        }
    }
}

/// An event to record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// The kind of the object it is about.
    pub kind: Kind,
    /// The object's name.
    pub name: String,
    /// Routine or problem.
    pub type_: EventType,
    /// CamelCase reason.
    pub reason: &'static str,
    /// What happened, for a person.
    pub message: String,
}

impl Event {
    pub(super) fn new(
        kind: Kind,
        name: &str,
        type_: EventType,
        reason: &'static str,
        message: String,
    ) -> Self {
        Event {
            kind,
            name: name.to_string(),
            type_,
            reason,
            message,
        }
    }
}

/// A Docker write and the event that tells of it once it is done.
#[derive(Clone, Debug, PartialEq)]
pub struct Push {
    /// The kargo Service it is for.
    pub service: String,
    /// The write.
    pub operation: Operation,
    /// Recorded after the write succeeded.
    pub event: Event,
}

/// The decided status of one service of the Stack.
#[derive(Clone, Debug, PartialEq)]
pub struct ServiceDecision {
    /// The kargo Service.
    pub name: String,
    /// Its status (written when the Service object is stored).
    pub status: ServiceStatus,
    /// It counts as Ready.
    pub ready: bool,
}

/// The decided status of the Stack.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StackDecision {
    /// Its status (`None` when the Stack is not stored, e.g. while deleted).
    pub status: Option<StackStatus>,
    /// Every service is Ready and the Stack has no error.
    pub ready: bool,
    /// The specs to record as the last Ready set (when Ready).
    pub record_ready: Option<BTreeMap<String, Value>>,
    /// `rollback: auto` and an update failed: write the last Ready set back.
    pub roll_back: bool,
}

/// Everything one reconcile of a Stack should do.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Decision {
    /// Docker writes, in the Stack's order; none while anything else is decided on
    /// facts a write is about to change.
    pub pushes: Vec<Push>,
    /// The services' statuses, in the Stack's order.
    pub services: Vec<ServiceDecision>,
    /// Events besides those of the pushes.
    pub events: Vec<Event>,
    /// The Stack's own status.
    pub stack: StackDecision,
    /// A service is not Ready and the nodes were not observed: with them, the message
    /// can name the node to blame.
    pub needs_nodes: bool,
}

/// Decides one Stack's reconcile: the writes to make, then (once nothing is left to
/// push) the statuses and events. Pure: the same facts give the same decision.
pub fn decide(desired: &Desired<'_>, observed: &Observed) -> Decision {
    let Desired {
        snapshot,
        plan,
        stack,
        waiting,
        installation,
    } = *desired;
    let now = observed.now;
    let stack_obj = snapshot.stacks.get(&stack.name);
    let deadline = stack_obj
        .and_then(|s| s.spec.progress_deadline_seconds)
        .map(Duration::from_secs);
    let mut decision = Decision::default();
    let mut ready_services: BTreeSet<String> = BTreeSet::new();
    let mut failed: Vec<String> = Vec::new();
    for planned in &stack.services {
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
        let ready = match &planned.desired {
            Err(message) => {
                let reason = match planned.policy {
                    Some(_) => reasons::POLICY_VIOLATION,
                    None => reasons::INVALID_SPEC,
                };
                set_conditions(
                    &mut status.common,
                    Conditions::failing(reason, message.clone()),
                    now,
                );
                false
            }
            Ok(d) if !waiting.is_empty() && !observed.live.contains_key(&d.name) => {
                let message = format!("waiting for stack {} to be Ready", waiting.join(", "));
                waiting_status(&mut status, reasons::WAITING_FOR_STACK, message, now);
                false
            }
            Ok(d) if !blocked_by.is_empty() && !observed.live.contains_key(&d.name) => {
                let message = format!("waiting for service {} to be Ready", blocked_by.join(", "));
                waiting_status(&mut status, reasons::WAITING_FOR_SERVICE, message, now);
                false
            }
            Ok(d) => {
                let facts = ServiceFacts {
                    observed,
                    deadline,
                    adopt: plan.adopt,
                    installation,
                };
                let step = decide_service(d, status, &facts);
                status = step.status;
                decision.events.extend(step.events);
                decision.needs_nodes |= step.needs_nodes;
                if let Some(push) = step.push {
                    decision.pushes.push(push);
                }
                step.ready
            }
        };
        if ready {
            ready_services.insert(planned.name.clone());
        }
        if status.failed_spec_hash.is_some()
            && status.failed_spec_hash == status.spec_hash
            && status
                .common
                .condition(types::READY)
                .is_some_and(|c| c.status != ConditionStatus::True)
        {
            failed.push(planned.name.clone());
        }
        decision.services.push(ServiceDecision {
            name: planned.name.clone(),
            status,
            ready,
        });
    }
    if !decision.pushes.is_empty() {
        // Decided again after the pushes, on what they changed.
        decision.events.clear();
        decision.needs_nodes = false;
    }
    let total = stack.services.len() as u64;
    let ready = stack.errors.is_empty() && ready_services.len() == stack.services.len();
    decision.stack.ready = ready;
    let rollout = super::revision::advance(snapshot, stack, &mut decision.services);
    let Some(stack_obj) = stack_obj else {
        return decision;
    };
    let mut status = StackStatus {
        common: stack_obj.status.common.clone(),
        last_ready_revision: stack_obj.status.last_ready_revision,
        swarm_stack: Some(swarm_stack(&stack.name)),
        services_ready: ready_services.len() as u64,
        services_total: total,
        rollout_revision: rollout.number,
        spec_hash: rollout.hash,
    };
    let conditions = if ready {
        decision.stack.record_ready = Some(
            stack
                .services
                .iter()
                .map(|p| {
                    let spec = snapshot.service_specs.get(&p.name).cloned();
                    (p.name.clone(), spec.unwrap_or(Value::Null))
                })
                .collect(),
        );
        Conditions::ready(format!("{total}/{total} services Ready"))
    } else if !stack.errors.is_empty() {
        match plan.frozen.get(&stack.name) {
            Some(d) => Conditions::failing(
                d.reason,
                format!(
                    "{}; nothing of this Stack is removed until this is mended",
                    stack.errors.join("; ")
                ),
            ),
            None => Conditions::failing(reasons::INVALID_STACK, stack.errors.join("; ")),
        }
    } else if !failed.is_empty() {
        decision.stack.roll_back = stack_obj.spec.rollback == Some(RollbackMode::Auto);
        Conditions::failed_update(format!("update failed for {}", failed.join(", ")))
    } else if !waiting.is_empty() {
        Conditions::waiting(
            reasons::WAITING_FOR_STACK,
            format!("waiting for stack {} to be Ready", waiting.join(", ")),
        )
    } else {
        Conditions::waiting(
            reasons::PROGRESSING,
            format!("{}/{total} services Ready", ready_services.len()),
        )
    };
    set_conditions(&mut status.common, conditions, now);
    decision.stack.status = Some(status);
    decision
}

/// A service that waits (for its Stack's turn or its dependencies) and has no live
/// service: nothing of it runs.
fn waiting_status(
    status: &mut ServiceStatus,
    reason: &'static str,
    message: String,
    now: DateTime<Utc>,
) {
    set_conditions(
        &mut status.common,
        Conditions::waiting(reason, message),
        now,
    );
    status.running_tasks = 0;
    status.ready_replicas = 0;
    status.updated_replicas = 0;
    status.available_replicas = 0;
}

/// One condition: its status, reason and message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Condition {
    pub(super) status: bool,
    pub(super) reason: &'static str,
    pub(super) message: String,
}

impl Condition {
    pub(super) fn new(status: bool, reason: &'static str, message: String) -> Self {
        Condition {
            status,
            reason,
            message,
        }
    }
}

/// The three conditions of a Stack or a deployed Service, decided together on every
/// reconcile so none is left over from an earlier one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Conditions {
    pub(super) ready: Condition,
    pub(super) progressing: Condition,
    pub(super) degraded: Condition,
}

impl Conditions {
    /// Everything asked for is in place.
    fn ready(message: String) -> Self {
        Conditions {
            ready: Condition::new(true, reasons::CONVERGED, message),
            progressing: Condition::new(false, reasons::CONVERGED, String::new()),
            degraded: Condition::new(false, reasons::CONVERGED, String::new()),
        }
    }

    /// On its way: not Ready, progressing, not degraded.
    fn waiting(reason: &'static str, message: String) -> Self {
        Conditions {
            ready: Condition::new(false, reason, message.clone()),
            progressing: Condition::new(true, reason, message),
            degraded: Condition::new(false, reason, String::new()),
        }
    }

    /// Stuck until a person acts: not Ready, not progressing, degraded.
    pub(super) fn failing(reason: &'static str, message: String) -> Self {
        Conditions {
            ready: Condition::new(false, reason, message.clone()),
            progressing: Condition::new(false, reason, String::new()),
            degraded: Condition::new(true, reason, message),
        }
    }

    /// An update failed: degraded, and the message says so on every condition.
    fn failed_update(message: String) -> Self {
        let reason = reasons::UPDATE_FAILED;
        Conditions {
            ready: Condition::new(false, reason, message.clone()),
            progressing: Condition::new(false, reason, message.clone()),
            degraded: Condition::new(true, reason, message),
        }
    }
}

/// Sets the three conditions and drops any other type, keeping each transition time
/// when its status did not change.
pub(super) fn set_conditions(common: &mut CommonStatus, c: Conditions, now: DateTime<Utc>) {
    for (type_, cond) in [
        (types::READY, c.ready),
        (types::PROGRESSING, c.progressing),
        (types::DEGRADED, c.degraded),
    ] {
        let status = if cond.status {
            ConditionStatus::True
        } else {
            ConditionStatus::False
        };
        common.set_condition(type_, status, cond.reason, cond.message, now);
    }
    common.conditions.retain(|c| {
        [types::READY, types::PROGRESSING, types::DEGRADED].contains(&c.type_.as_str())
    });
}

/// What to do with live services that nobody wants.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Removals {
    /// To remove once a fresh read confirms it: (Swarm name, owner label, why).
    pub remove: Vec<(String, Option<String>, String)>,
    /// Kept running because the desired state is in doubt: (Swarm name, owner label, why).
    pub keep: Vec<(String, Option<String>, Doubt)>,
}

/// Decides, for each live service not in `wanted` (Swarm names), whether the desired
/// state asks for its removal or keeps it in doubt (removal only on positive intent).
pub fn decide_removals<'l>(
    snapshot: &Snapshot,
    plan: &Plan,
    live: impl IntoIterator<Item = &'l LiveService>,
    wanted: &BTreeSet<String>,
) -> Removals {
    let mut out = Removals::default();
    for svc in live {
        if wanted.contains(&svc.name) {
            continue;
        }
        let owner = svc.labels.get(OWNER_LABEL).cloned();
        match removal_verdict(snapshot, plan, owner.as_deref()) {
            Verdict::Remove(why) => out.remove.push((svc.name.clone(), owner, why)),
            Verdict::Keep(doubt) => out.keep.push((svc.name.clone(), owner, doubt)),
            Verdict::Wanted => {}
        }
    }
    out
}

/// The Swarm names of a Stack's planned services.
pub fn wanted_services(stack: &PlannedStack) -> BTreeSet<String> {
    stack
        .services
        .iter()
        .map(|p| swarm_service(&stack.name, &p.name))
        .collect()
}

/// Whether the Stack's networks, configs and secrets must exist now: once it may deploy
/// (waits for nothing), or while any service of it runs.
pub fn needs_networks(
    stack: &PlannedStack,
    waiting: &[String],
    live: &BTreeMap<String, LiveService>,
) -> bool {
    waiting.is_empty()
        || stack
            .services
            .iter()
            .any(|p| live.contains_key(&swarm_service(&stack.name, &p.name)))
}

/// Whether the live service owned as `owner` (`<stack>/<service>`) is to be orphaned
/// (`kargo delete --cascade=orphan` on its Stack or Service) rather than removed.
pub fn orphaning(snapshot: &Snapshot, owner: &str) -> bool {
    use crate::api::annotations::CASCADE_ANNOTATION;
    let (stack, service) = owner.split_once('/').unwrap_or((owner, ""));
    let orphan = |m: &crate::api::ObjectMeta| {
        m.deletion_timestamp.is_some()
            && m.annotations.get(CASCADE_ANNOTATION).map(String::as_str) == Some("orphan")
    };
    snapshot
        .stacks
        .get(stack)
        .is_some_and(|s| orphan(&s.metadata))
        || snapshot
            .services
            .get(service)
            .is_some_and(|s| orphan(&s.metadata))
}

#[cfg(test)]
mod tests;
