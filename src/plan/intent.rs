//! Removal only on positive intent: the one decision of whether a live Swarm service of
//! the installation may be removed. Pure, so every rule is a unit test.
//!
//! A service goes only when the desired state says so without doubt: its Service was
//! deleted or taken out of its Stack, or its Stack was deleted, suspended, or taken out of
//! the Environment's list. A Configuration or Environment in force that is missing or
//! unusable freezes removal for the whole installation (except a Stack's own suspend or
//! deletion, which is intent); an unusable object freezes only its Stack.

use super::{Doubt, Plan, Snapshot};
use crate::api::Kind;
use crate::api::conditions::reasons;

/// What to do with a live Swarm service of the installation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The plan deploys it: converge it.
    Wanted,
    /// The desired state asks for its removal; the text says which intent.
    Remove(String),
    /// Not wanted, but the desired state is in doubt: it keeps running, for this reason.
    Keep(Doubt),
}

/// Decides for the live service labelled as `owner` (`<stack>/<service>`, the owner label).
pub fn removal_verdict(snapshot: &Snapshot, plan: &Plan, owner: Option<&str>) -> Verdict {
    let Some((stack_name, service_name)) = owner.and_then(|o| o.split_once('/')) else {
        return Verdict::Keep(Doubt {
            reason: "UnknownOwner",
            message: "the Swarm service has no kargo owner label".into(),
        });
    };
    let planned = plan.stacks.iter().find(|s| s.name == stack_name);
    if planned.is_some_and(|s| s.services.iter().any(|p| p.name == service_name)) {
        return Verdict::Wanted;
    }
    let stack = snapshot.stacks.get(stack_name);
    // A Stack's own suspend or deletion is intent, even while the rest is in doubt.
    if let Some(st) = stack {
        if st.metadata.deletion_timestamp.is_some() {
            return Verdict::Remove(format!("Stack {stack_name:?} is being deleted"));
        }
        if st.spec.suspend {
            return Verdict::Remove(format!("Stack {stack_name:?} is suspended"));
        }
    }
    if let Some(doubt) = &plan.doubt {
        return Verdict::Keep(doubt.clone());
    }
    if let Some(doubt) = plan.frozen.get(stack_name) {
        return Verdict::Keep(doubt.clone());
    }
    if let Some(why) = snapshot.invalid_reason(Kind::Stack, stack_name) {
        return Verdict::Keep(Doubt {
            reason: reasons::INVALID_OBJECT,
            message: format!("Stack {stack_name:?} is invalid: {why}"),
        });
    }
    let Some(stack) = stack else {
        // Not stored and not listed (a listed missing Stack is doubt, in the plan).
        return Verdict::Remove(format!("Stack {stack_name:?} was deleted"));
    };
    if planned.is_none() {
        let env = plan.environment.as_deref().unwrap_or("in force");
        return Verdict::Remove(format!(
            "Stack {stack_name:?} is not in the stacks of Environment {env:?}"
        ));
    }
    if !stack.spec.services.iter().any(|s| s == service_name) {
        return Verdict::Remove(format!(
            "service {service_name:?} is no longer listed by Stack {stack_name:?}"
        ));
    }
    if snapshot
        .services
        .get(service_name)
        .is_some_and(|s| s.metadata.deletion_timestamp.is_some())
    {
        return Verdict::Remove(format!("Service {service_name:?} is being deleted"));
    }
    if snapshot.is_invalid(Kind::Service, service_name) {
        return Verdict::Keep(Doubt {
            reason: reasons::INVALID_OBJECT,
            message: format!("Service {service_name:?} is invalid"),
        });
    }
    // Listed, present, not planned (claimed by another Stack first): not clear intent.
    Verdict::Keep(Doubt {
        reason: "NotPlanned",
        message: format!(
            "service {service_name:?} of Stack {stack_name:?} is not deployed by the plan"
        ),
    })
}

#[cfg(test)]
mod tests;
