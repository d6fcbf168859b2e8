//! What the controller would deploy, for `apply --dry-run=server` and `diff`: the same
//! [`plan`] the controller calls, over the stored objects with the manifests' versions
//! laid over them.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use crate::api::{DynamicObject, Kind};
use crate::plan::{Plan, Snapshot, plan};

/// The stored objects with `changes` laid over them (replacing same kind and name, or added).
pub fn overlay(stored: &[DynamicObject], changes: &[DynamicObject]) -> Vec<DynamicObject> {
    let mut by_key: BTreeMap<(Kind, String), DynamicObject> = stored
        .iter()
        .map(|o| ((o.kind, o.metadata.name.clone()), o.clone()))
        .collect();
    for c in changes {
        by_key.insert((c.kind, c.metadata.name.clone()), c.clone());
    }
    by_key.into_values().collect()
}

/// The snapshot and plan of a set of objects, as the controller of `configuration` sees them.
pub fn plan_of(
    objects: &[DynamicObject],
    configuration: &str,
    installation: &str,
) -> (Snapshot, Plan) {
    let snapshot = Snapshot::from_objects(objects);
    let p = plan(
        &snapshot,
        configuration,
        installation,
        &crate::manifest::catalog_spec,
    );
    (snapshot, p)
}

/// The policy refusals that writing `changes` over `stored` would bring (see
/// [`crate::plan::new_policy_violations`]): `apply` writes nothing when there are any.
pub fn policy_refusals(
    stored: &[DynamicObject],
    changes: &[DynamicObject],
    configuration: &str,
    installation: &str,
) -> Vec<String> {
    let all = overlay(stored, changes);
    let (_, before) = plan_of(stored, configuration, installation);
    let (_, after) = plan_of(&all, configuration, installation);
    let mut out = crate::plan::new_policy_violations(&before, &after, changes);
    // A Service written that no deployed Stack lists yet is judged alone, as `validate` does.
    for (service, f) in crate::policy::manifests::findings(&all, Some(configuration)) {
        let written = changes
            .iter()
            .any(|o| o.kind == Kind::Service && o.metadata.name == service);
        if written && after.stack_of(&service).is_none() {
            out.push(format!("service {service:?}: {}: {}", f.field, f.message));
        }
    }
    out
}

/// The rendered Swarm services of a plan, by Swarm name: the Engine API spec, or why
/// the service cannot be rendered.
pub fn rendered(p: &Plan) -> BTreeMap<String, Result<Value, String>> {
    p.stacks
        .iter()
        .flat_map(|s| {
            s.services.iter().map(move |svc| {
                let name = crate::swarm::names::swarm_service(&s.name, &svc.name);
                (name, svc.desired.clone().map(|d| d.spec))
            })
        })
        .collect()
}

/// One problem of the merged configuration, as the controller would report it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// The message, as the controller puts it in a status (prefixed with the stack).
    pub message: String,
    /// It names an object or file not stored, which may simply not be applied yet.
    pub pending: bool,
}

/// The problems of the merged configuration that concern `touched` objects: their own
/// shape, their services' merge and render, their stacks, and — when a Configuration or
/// Environment is touched — everything.
pub fn problems(snapshot: &Snapshot, p: &Plan, touched: &[DynamicObject]) -> Vec<Problem> {
    let everything = touched
        .iter()
        .any(|o| matches!(o.kind, Kind::Configuration | Kind::Environment));
    let names = |k: Kind| -> BTreeSet<&str> {
        touched
            .iter()
            .filter(|o| o.kind == k)
            .map(|o| o.metadata.name.as_str())
            .collect()
    };
    let problem = |message: String, raw: &str| Problem {
        pending: p.pending.contains(raw),
        message,
    };
    let mut out = Vec::new();
    for (kind, name, why) in &snapshot.invalid {
        if everything
            || touched
                .iter()
                .any(|o| o.kind == *kind && &o.metadata.name == name)
        {
            out.push(problem(format!("{} {name:?}: {why}", kind.singular()), ""));
        }
    }
    if everything {
        out.extend(p.errors.iter().map(|e| problem(e.clone(), e)));
    }
    let services = names(Kind::Service);
    let stacks = touched_stacks(p, touched);
    for s in &p.stacks {
        let stack_touched = stacks.contains(s.name.as_str());
        if stack_touched {
            out.extend(
                s.errors
                    .iter()
                    .map(|e| problem(format!("stack {:?}: {e}", s.name), e)),
            );
        }
        for svc in &s.services {
            if let Err(e) = &svc.desired
                && (stack_touched || services.contains(svc.name.as_str()))
            {
                let line = problem(format!("stack {:?}: {e}", s.name), e);
                // A policy refusal is also among its Stack's errors.
                if !out.iter().any(|o| o.message == line.message) {
                    out.push(line);
                }
            }
        }
    }
    out
}

/// The deployed stacks `touched` objects concern: those named, those holding a named
/// Service, and every one when a Configuration or Environment is touched.
pub fn touched_stacks<'p>(p: &'p Plan, touched: &[DynamicObject]) -> BTreeSet<&'p str> {
    let everything = touched
        .iter()
        .any(|o| matches!(o.kind, Kind::Configuration | Kind::Environment));
    let named = |k: Kind, name: &str| {
        touched
            .iter()
            .any(|o| o.kind == k && o.metadata.name == name)
    };
    p.stacks
        .iter()
        .filter(|s| {
            everything
                || named(Kind::Stack, &s.name)
                || s.services.iter().any(|svc| named(Kind::Service, &svc.name))
        })
        .map(|s| s.name.as_str())
        .collect()
}

/// What `kargo apply` says of the merged configuration its changes make.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ApplyCheck {
    /// Problems the changes bring: apply refuses and writes nothing.
    pub refusals: Vec<String>,
    /// Problems said but not refused: a reference to an object not applied yet (files may
    /// be applied in any order), or a problem that was already there before the changes.
    pub warnings: Vec<String>,
    /// The doubt the changes leave the installation in (the controller then removes
    /// nothing): said on its own line, so a missing object it names is not a warning too.
    pub doubt: Option<crate::plan::Doubt>,
}

/// Runs the controller's checks (merge with the stored Configuration and Environment,
/// interpolation, the merged schema, rendering) over `stored` with `changes` laid over
/// them, for the objects `changes` touch. The messages are those the controller would put
/// in the status.
pub fn check_apply(
    stored: &[DynamicObject],
    changes: &[DynamicObject],
    configuration: &str,
    installation: &str,
) -> ApplyCheck {
    let (before_snapshot, before_plan) = plan_of(stored, configuration, installation);
    let before: BTreeSet<String> = problems(&before_snapshot, &before_plan, changes)
        .into_iter()
        .map(|p| p.message)
        .collect();
    let (snapshot, after_plan) = plan_of(&overlay(stored, changes), configuration, installation);
    let mut check = ApplyCheck {
        doubt: after_plan.doubt.clone(),
        ..ApplyCheck::default()
    };
    let doubt = after_plan.doubt.as_ref().map(|d| d.message.as_str());
    for p in problems(&snapshot, &after_plan, changes) {
        if p.pending && doubt == Some(p.message.as_str()) {
            continue;
        }
        if p.pending {
            check.warnings.push(format!(
                "{} (not stored yet: the controller reports it until it is applied)",
                p.message
            ));
        } else if before.contains(&p.message) {
            check
                .warnings
                .push(format!("{} (already so before this apply)", p.message));
        } else {
            check.refusals.push(p.message);
        }
    }
    check
}
