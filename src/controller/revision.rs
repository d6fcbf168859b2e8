//! Rollout revisions: the one rule by which `status.rolloutRevision` of a Service and of
//! its Stack advance (1, 2, 3...). Every change that rolls a service changes the hash of
//! its desired Swarm spec (a spec change, a `rollout restart` through ForceUpdate, a
//! `rollout undo`, a configuration file rolled over to a new name), so a new hash is a
//! new revision. The numbers are what `kargo rollout history` lists; a Stack's `specHash`
//! is what `kargo rollout status` compares with the plan it computes, so a wait is about
//! the revision asked for, never an earlier one.

use serde_json::json;

use crate::plan::PlannedStack;
use crate::plan::Snapshot;

use super::decide::ServiceDecision;

/// The revision after a reconcile that was about `before` and is now about `after`: one
/// more when they differ (or when no revision was counted yet), the same otherwise.
pub(super) fn next(revision: u64, before: Option<&str>, after: Option<&str>) -> u64 {
    match after {
        Some(a) if before != Some(a) || revision == 0 => revision + 1,
        _ => revision,
    }
}

/// Hash over a Stack's services and the hashes of their desired specs (a service that
/// cannot be rendered counts as one without a hash), in order; `None` while the Stack has
/// errors (a member not applied yet, a claim by two stacks): it asks for no revision then.
/// The controller and the CLI compute it from the same plan, so they agree on what the
/// current revision is.
pub fn stack_spec_hash(stack: &PlannedStack) -> Option<String> {
    if !stack.errors.is_empty() {
        return None;
    }
    let parts: Vec<(&str, &str)> = stack
        .services
        .iter()
        .map(|p| {
            let hash = p.desired.as_ref().map(|d| d.hash.as_str()).unwrap_or("");
            (p.name.as_str(), hash)
        })
        .collect();
    Some(crate::swarm::hash_json(&json!(parts)))
}

/// A Stack's rollout revision after a reconcile, with the hash it is about.
pub(super) struct StackRevision {
    /// `status.rolloutRevision`.
    pub(super) number: u64,
    /// `status.specHash`.
    pub(super) hash: Option<String>,
}

/// Advances the revision of each service decided for a stack (from its stored status: the
/// spec hash it was about, and the one now pushed) and returns the stack's.
pub(super) fn advance(
    snapshot: &Snapshot,
    stack: &PlannedStack,
    services: &mut [ServiceDecision],
) -> StackRevision {
    for decided in services.iter_mut() {
        let Some(stored) = snapshot.services.get(decided.name.as_str()) else {
            continue;
        };
        decided.status.rollout_revision = next(
            stored.status.rollout_revision,
            stored.status.spec_hash.as_deref(),
            decided.status.spec_hash.as_deref(),
        );
    }
    let stored = snapshot.stacks.get(&stack.name).map(|s| &s.status);
    let revision = stored.map_or(0, |s| s.rollout_revision);
    let before = stored.and_then(|s| s.spec_hash.clone());
    match stack_spec_hash(stack) {
        Some(hash) => StackRevision {
            number: next(revision, before.as_deref(), Some(&hash)),
            hash: Some(hash),
        },
        // Not deployable as it stands: the revision stays what it was.
        None => StackRevision {
            number: revision,
            hash: before,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_hash_is_a_new_revision_and_the_same_hash_is_not() {
        assert_eq!(next(0, None, Some("a")), 1);
        assert_eq!(next(1, Some("a"), Some("a")), 1);
        assert_eq!(next(1, Some("a"), Some("b")), 2);
        // Back to an earlier spec (an undo) is a new revision too, as kubectl's.
        assert_eq!(next(2, Some("b"), Some("a")), 3);
        // Nothing pushed yet (waiting, invalid): no revision.
        assert_eq!(next(2, Some("b"), None), 2);
        // A status written before revisions were counted starts at 1.
        assert_eq!(next(0, Some("a"), Some("a")), 1);
    }
}
