//! Deciding one Swarm service of a Stack: create, adopt or update it when its spec differs
//! from the desired one over the fields kargo sets, then judge its tasks (see
//! [`super::decide`] for the Stack around it). Pure, like the rest of the decision.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde_json::Value;

use crate::api::conditions::{events, reasons};
use crate::api::{DeployMode, Kind, ServiceStatus};
use crate::swarm::names::SPEC_HASH_LABEL;
use crate::swarm::{
    Convergence, DesiredService, TaskInfo, assess, changed_fields, comparable, covers,
};

use super::decide::{Condition, Conditions, Event, Observed, Operation, Push, set_conditions};
use super::events::EventType;

/// What deciding one service needs besides its desired spec and stored status.
#[derive(Clone, Copy)]
pub(super) struct ServiceFacts<'a> {
    /// What the reconcile saw of Swarm.
    pub(super) observed: &'a Observed,
    /// The Stack's progress deadline.
    pub(super) deadline: Option<Duration>,
    /// Take over a same-named service kargo does not own.
    pub(super) adopt: bool,
    /// This installation: a same-named service another one labelled is never taken.
    pub(super) installation: &'a str,
}

/// The decision for one service.
pub(super) struct ServiceStep {
    /// Its status as decided.
    pub(super) status: ServiceStatus,
    /// It counts as Ready.
    pub(super) ready: bool,
    /// The write to make first, if any (then the service is decided again).
    pub(super) push: Option<Push>,
    /// Events to record.
    pub(super) events: Vec<Event>,
    /// Not Ready, and the nodes were not observed.
    pub(super) needs_nodes: bool,
}

/// Decides one service: the write it needs, or (written already or needing none) its status.
pub(super) fn decide_service(
    desired: &DesiredService,
    mut status: ServiceStatus,
    facts: &ServiceFacts<'_>,
) -> ServiceStep {
    let ServiceFacts {
        observed,
        deadline,
        adopt,
        installation,
    } = *facts;
    let now = observed.now;
    let spec = resolve_ids(&desired.spec, &observed.ids);
    let kind = Kind::Service;
    let svc = desired.service.as_str();
    let mut events_out = Vec::new();
    // A spec that failed is not pushed again until it changes (docs/design.md, "The controller").
    let failed_before = status.failed_spec_hash.as_deref() == Some(desired.hash.as_str());
    if status.failed_spec_hash.is_some() && !failed_before {
        status.failed_spec_hash = None;
    }
    let live = observed.live.get(&desired.name);
    let pushed = observed.pushed.get(&desired.name);
    let step = |status, push, events| ServiceStep {
        status,
        ready: false,
        push,
        events,
        needs_nodes: false,
    };
    if pushed.is_some() {
        status.last_push_time = Some(now);
    } else {
        // A same-named service kargo does not own (left by Kargo or `docker stack deploy`).
        let foreign = live
            .is_none()
            .then(|| observed.foreign.get(&desired.name))
            .flatten();
        // Another installation's service: never adopted, whatever `adopt` says.
        if let Some(owner) =
            foreign.and_then(|f| super::ownership::other_installation(&f.labels, installation))
        {
            let (status, events) =
                super::ownership::refuse_other_installation(desired, status, owner, now);
            return step(status, None, events);
        }
        let push = match (live, foreign) {
            (None, Some(_)) if !adopt => {
                let msg = format!(
                    "Swarm service {} exists and kargo does not own it; set `adopt: true` in the Environment to take it over",
                    desired.name
                );
                let said = status
                    .common
                    .condition(crate::api::conditions::types::READY)
                    .map(|c| c.reason.as_str());
                let warn = said != Some(reasons::NOT_ADOPTED);
                not_pushed(
                    &mut status,
                    svc,
                    reasons::NOT_ADOPTED,
                    msg,
                    warn,
                    now,
                    &mut events_out,
                );
                return step(status, None, events_out);
            }
            (None, Some(f)) => Some(Push {
                service: svc.to_string(),
                operation: Operation::Adopt {
                    id: f.id.clone(),
                    name: desired.name.clone(),
                    version: f.version,
                    spec: spec.clone(),
                },
                event: Event::new(
                    kind,
                    svc,
                    EventType::Normal,
                    events::ADOPTED,
                    format!(
                        "took over Swarm service {} (same ID, same volumes)",
                        desired.name
                    ),
                ),
            }),
            (None, None) => Some(Push {
                service: svc.to_string(),
                operation: Operation::Create {
                    name: desired.name.clone(),
                    spec: spec.clone(),
                },
                event: Event::new(
                    kind,
                    svc,
                    EventType::Normal,
                    events::CREATED,
                    format!("created Swarm service {}", desired.name),
                ),
            }),
            (Some(l), _) => {
                let seen = comparable(&spec);
                let differs =
                    l.labels.get(SPEC_HASH_LABEL) != Some(&desired.hash) || !covers(&l.spec, &seen);
                (differs && !failed_before).then(|| {
                    let why = if l.labels.contains_key(SPEC_HASH_LABEL) {
                        changed_fields(&l.spec, &spec)
                    } else {
                        "its spec-hash label was missing (removed outside kargo)".to_string()
                    };
                    Push {
                        service: svc.to_string(),
                        operation: Operation::Update {
                            id: l.id.clone(),
                            name: desired.name.clone(),
                            version: l.version,
                            spec: spec.clone(),
                        },
                        event: Event::new(
                            kind,
                            svc,
                            EventType::Normal,
                            events::UPDATED,
                            format!("updated Swarm service {}: {why}", desired.name),
                        ),
                    }
                })
            }
        };
        if push.is_some()
            && let Some((reason, message)) = observed.blocked.get(&desired.name)
        {
            let said = status
                .common
                .condition(crate::api::conditions::types::READY)
                .map(|c| (c.reason.as_str(), c.message.as_str()));
            let warn = said != Some((*reason, message.as_str()));
            let message = message.clone();
            not_pushed(
                &mut status,
                svc,
                reason,
                message,
                warn,
                now,
                &mut events_out,
            );
            return step(status, None, events_out);
        }
        if push.is_some() {
            status.last_push_time = Some(now);
            return step(status, push, events_out);
        }
    }
    let id = live.map(|l| l.id.clone()).or_else(|| pushed.cloned());
    let no_tasks = Vec::new();
    let tasks = live
        .and_then(|l| observed.tasks.get(&l.id))
        .unwrap_or(&no_tasks);
    let conv = match live {
        Some(c) => assess(c, &spec, tasks, desired.mode, desired.replicas, now),
        None => Convergence {
            running: 0,
            desired: desired.replicas,
            ready: false,
            reason: reasons::MISSING,
            message: "the Swarm service disappeared".into(),
            errors: Vec::new(),
        },
    };
    let mut reason = conv.reason;
    let mut message = conv.message.clone();
    let mut needs_nodes = false;
    if !conv.ready {
        // Name the node to blame, if any (the nodes are observed only while not Ready).
        match &observed.nodes {
            Some(nodes) => {
                if let Some(why) = crate::swarm::node_trouble(&spec, tasks, nodes) {
                    message = format!("{message}; {why}");
                }
            }
            None => needs_nodes = true,
        }
    }
    if !conv.ready && !failed_before {
        let rolled_back = reason == reasons::ROLLED_BACK;
        let overdue = deadline
            .zip(status.last_push_time)
            .is_some_and(|(d, t)| (now - t).to_std().is_ok_and(|elapsed| elapsed > d));
        if rolled_back || overdue {
            status.failed_spec_hash = Some(desired.hash.clone());
            if overdue && !rolled_back {
                reason = reasons::PROGRESS_DEADLINE_EXCEEDED;
                message = format!("not Ready within the progress deadline: {message}");
            }
            events_out.push(Event::new(
                kind,
                svc,
                EventType::Warning,
                reason,
                message.clone(),
            ));
        }
    } else if !conv.ready && failed_before && reason != reasons::ROLLED_BACK {
        reason = reasons::UPDATE_FAILED;
        message =
            format!("this spec failed before and is not pushed again until it changes: {message}");
    }
    let (updated, available) = match live {
        Some(_) => replica_counts(&spec, tasks, desired.mode, conv.running),
        None => (0, 0),
    };
    status.image = desired
        .spec
        .pointer("/TaskTemplate/ContainerSpec/Image")
        .and_then(Value::as_str)
        .map(str::to_string);
    // The digest the service runs, as the controller pinned it (or as the spec names it).
    status.image_digest = live
        .and_then(|l| l.spec.pointer("/TaskTemplate/ContainerSpec/Image"))
        .and_then(Value::as_str)
        .and_then(crate::registry::resolve::digest_of)
        .map(str::to_string);
    status.swarm_name = Some(desired.name.clone());
    status.service_id = id;
    status.version = live.map(|c| c.version);
    status.running_tasks = conv.running;
    status.desired_tasks = conv.desired;
    status.ready_replicas = conv.running;
    status.updated_replicas = updated;
    status.available_replicas = available;
    status.update_state = live.and_then(|c| c.update_state.clone());
    status.task_errors = conv.errors.clone();
    status.spec_hash = Some(desired.hash.clone());
    let progressing = !conv.ready && status.failed_spec_hash.is_none();
    let degraded = status.failed_spec_hash.is_some() || (!conv.ready && !conv.errors.is_empty());
    let conditions = Conditions {
        ready: Condition::new(conv.ready, reason, message.clone()),
        progressing: if progressing {
            Condition::new(true, reasons::PROGRESSING, message.clone())
        } else {
            Condition::new(false, reason, String::new())
        },
        degraded: if degraded {
            Condition::new(true, reason, message)
        } else {
            Condition::new(false, reasons::CONVERGED, String::new())
        },
    };
    set_conditions(&mut status.common, conditions, now);
    ServiceStep {
        status,
        ready: conv.ready,
        push: None,
        events: events_out,
        needs_nodes,
    }
}

/// A service kargo does not push (a same-named service it does not own, its registry's
/// credentials missing or refused): failing with the reason until it is mended, with a
/// Warning event when `warn` (the first time it is said). What runs stays.
fn not_pushed(
    status: &mut ServiceStatus,
    svc: &str,
    reason: &'static str,
    message: String,
    warn: bool,
    now: chrono::DateTime<chrono::Utc>,
    events_out: &mut Vec<Event>,
) {
    if warn {
        events_out.push(Event::new(
            Kind::Service,
            svc,
            EventType::Warning,
            reason,
            message.clone(),
        ));
    }
    set_conditions(
        &mut status.common,
        Conditions::failing(reason, message),
        now,
    );
}

/// UP-TO-DATE and AVAILABLE, as `kubectl get deployments` counts them: slots (nodes, for
/// global services) with a task of the current spec that is not being shut down, and
/// slots serving now with a running task of any spec. A job's tasks serve by completing,
/// so its AVAILABLE is its READY (`ready`).
fn replica_counts(spec: &Value, tasks: &[TaskInfo], mode: DeployMode, ready: u64) -> (u64, u64) {
    let template = comparable(spec)
        .get("TaskTemplate")
        .cloned()
        .unwrap_or(Value::Null);
    let place = |t: &TaskInfo| match mode {
        DeployMode::Global | DeployMode::GlobalJob => t.node_id.clone(),
        DeployMode::Replicated | DeployMode::ReplicatedJob => t.slot.map(|s| s.to_string()),
    };
    let ending = |t: &TaskInfo| matches!(t.desired_state.as_str(), "shutdown" | "remove");
    let updated: BTreeSet<String> = tasks
        .iter()
        .filter(|t| !ending(t) && covers(&t.spec, &template))
        .filter_map(place)
        .collect();
    let available = match mode {
        DeployMode::ReplicatedJob | DeployMode::GlobalJob => ready,
        DeployMode::Replicated | DeployMode::Global => tasks
            .iter()
            .filter(|t| t.state == "running")
            .filter_map(place)
            .collect::<BTreeSet<String>>()
            .len() as u64,
    };
    (updated.len() as u64, available)
}

/// Network, config and secret names → IDs in the task template, as the engine stores
/// them. `ids` maps network names, and `config:<name>` / `secret:<name>`, to IDs.
pub(super) fn resolve_ids(spec: &Value, ids: &BTreeMap<String, String>) -> Value {
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
