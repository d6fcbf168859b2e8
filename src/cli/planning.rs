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

/// The problems of the merged configuration that concern `touched` objects: their own
/// shape, their services' merge and render, their stacks, and — when a Configuration or
/// Environment is touched — everything.
pub fn problems(snapshot: &Snapshot, p: &Plan, touched: &[DynamicObject]) -> Vec<String> {
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
    let (stacks, services) = (names(Kind::Stack), names(Kind::Service));
    let mut out = Vec::new();
    for (kind, name, why) in &snapshot.invalid {
        if everything
            || touched
                .iter()
                .any(|o| o.kind == *kind && &o.metadata.name == name)
        {
            out.push(format!("{} {name:?}: {why}", kind.singular()));
        }
    }
    if everything {
        out.extend(p.errors.iter().cloned());
    }
    for s in &p.stacks {
        let stack_touched = everything
            || stacks.contains(s.name.as_str())
            || s.services
                .iter()
                .any(|svc| services.contains(svc.name.as_str()));
        if stack_touched {
            out.extend(s.errors.iter().map(|e| format!("stack {:?}: {e}", s.name)));
        }
        for svc in &s.services {
            if let Err(e) = &svc.desired
                && (stack_touched || services.contains(svc.name.as_str()))
            {
                let line = format!("stack {:?}: {e}", s.name);
                // A policy refusal is also among its Stack's errors.
                if !out.contains(&line) {
                    out.push(line);
                }
            }
        }
    }
    out
}
